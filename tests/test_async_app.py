"""The asyncio example app (examples/async_app.py), driven with Starlette's TestClient."""

from __future__ import annotations

import importlib.util
import time
import warnings
from pathlib import Path
from types import ModuleType

import pytest

from mfa_core import b32decode_key, totp
from mfa_core.aio import AsyncMFAService, AsyncStoreAdapter
from mfa_core.sealing import AESGCMSealer
from mfa_core.stores import SQLiteStore
from mfa_core.stores.redis import RedisStore
from mfa_core.testing import FakeClock

pytest.importorskip("starlette")
pytest.importorskip("httpx")
with warnings.catch_warnings():  # newer Starlette nudges towards another HTTP client
    warnings.simplefilter("ignore", UserWarning)
    from starlette.testclient import TestClient

pytest_plugins = ("servers",)

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_800_000_005.0


def _example() -> ModuleType:
    path = ROOT / "examples" / "async_app.py"
    spec = importlib.util.spec_from_file_location("async_app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_enrol_confirm_verify_replay_and_throttle_over_http(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    store = AsyncStoreAdapter(SQLiteStore(tmp_path / "app.sqlite3"))
    service = AsyncMFAService(store, store, AESGCMSealer.generate(), clock=clock)
    with TestClient(_example().create_app(service=service)) as client:
        enrolled = client.post("/enrol", json={"user": "alice"}).json()
        assert enrolled["uri"].startswith("otpauth://totp/")
        key = b32decode_key(enrolled["secret"])
        wrong = client.post(
            "/confirm",
            json={"user": "alice", "credential_id": enrolled["credential_id"], "code": "12345x"},
        )
        assert wrong.json() == {"accepted": False, "message": "invalid code"}
        clock.advance(2)  # past the delay the failure started
        confirmed = client.post(
            "/confirm",
            json={
                "user": "alice",
                "credential_id": enrolled["credential_id"],
                "code": totp(key, clock.now()),
            },
        )
        assert confirmed.json()["accepted"] is True
        clock.advance(30)
        code = totp(key, clock.now())
        assert client.post("/verify", json={"user": "alice", "code": code}).json() == {
            "accepted": True,
            "message": "code accepted",
        }
        replay = client.post("/verify", json={"user": "alice", "code": code})
        assert replay.status_code == 200 and replay.json()["accepted"] is False
        throttled = client.post("/verify", json={"user": "alice", "code": code})
        assert throttled.status_code == 429
        assert int(throttled.headers["Retry-After"]) >= 1
        bad = client.post("/enrol", json={"user": ""})
        assert bad.status_code == 400 and bad.json() == {"error": "invalid_parameter"}
        assert client.post("/verify", content=b"not json").status_code == 400


def test_default_app_runs_on_memory_or_the_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = _example()
    monkeypatch.delenv("MFA_SQLITE", raising=False)
    monkeypatch.delenv("MFA_REDIS_URL", raising=False)
    with TestClient(example.create_app()) as client:
        assert client.post("/enrol", json={"user": "bob"}).status_code == 200
    monkeypatch.setenv("MFA_SQLITE", str(tmp_path / "env.sqlite3"))
    with TestClient(example.create_app()) as client:
        assert client.post("/enrol", json={"user": "bob"}).status_code == 200
    assert SQLiteStore(tmp_path / "env.sqlite3").list_for_user("bob")


def test_default_app_on_redis(
    redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MFA_REDIS_URL", redis_url)
    monkeypatch.setenv("MFA_REDIS_PREFIX", redis_prefix)
    with TestClient(_example().create_app()) as client:
        enrolled = client.post("/enrol", json={"user": "carol"}).json()
        code = totp(b32decode_key(enrolled["secret"]), time.time())
        confirmed = client.post(
            "/confirm",
            json={"user": "carol", "credential_id": enrolled["credential_id"], "code": code},
        )
        assert confirmed.json()["accepted"] is True
    blocking = RedisStore.from_url(redis_url, prefix=redis_prefix)
    try:
        assert [c.id for c in blocking.list_for_user("carol")] == [enrolled["credential_id"]]
    finally:
        blocking.close()
