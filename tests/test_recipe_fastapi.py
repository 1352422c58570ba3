"""The FastAPI recipe (examples/fastapi_app.py) attacked through FastAPI's TestClient."""

from __future__ import annotations

import asyncio
import os
import warnings
from pathlib import Path
from typing import Any

import pytest
import recipe_scenarios as scenarios

from mfa_core.aio import AsyncMFAService, AsyncStoreAdapter
from mfa_core.sealing import AESGCMSealer
from mfa_core.stores import SQLiteStore
from mfa_core.testing import FakeClock, FaultyStore

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

T0 = scenarios.T0
load_example = scenarios.load_example


class _Client:
    def __init__(self, client: Any) -> None:
        self._client = client

    def _reply(self, response: Any) -> scenarios.Reply:
        headers = {k.lower(): v for k, v in response.headers.items()}
        return scenarios.Reply(response.status_code, response.text, headers)

    def get(self, path: str) -> scenarios.Reply:
        return self._reply(self._client.get(path))

    def post(self, path: str, data: dict[str, str]) -> scenarios.Reply:
        return self._reply(self._client.post(path, data=data))


def service(tmp_path: Path, clock: FakeClock, store: Any = None) -> AsyncMFAService:
    store = AsyncStoreAdapter(SQLiteStore(tmp_path / "mfa.sqlite3")) if store is None else store
    return AsyncMFAService(
        store,
        store,
        AESGCMSealer.generate(),
        clock=clock,
        config=scenarios.config("FastAPI recipe"),
        recovery_codes=store,
        secret=os.urandom(32),
    )


@pytest.fixture
def make_client(tmp_path: Path) -> scenarios.MakeClient:
    example = load_example("fastapi_app")

    def make(clock: FakeClock) -> _Client:
        app = example.create_app(service(tmp_path, clock), users={"alice": "correct horse"})
        return _Client(TestClient(app, follow_redirects=False))

    return make


def test_whole_loop(make_client: scenarios.MakeClient) -> None:
    scenarios.whole_loop(make_client, FakeClock(T0))


def test_throttle_429_with_retry_after_and_lock_at_the_11th(
    make_client: scenarios.MakeClient,
) -> None:
    scenarios.throttle_and_lock(make_client, FakeClock(T0))


def test_one_refusal_text(make_client: scenarios.MakeClient) -> None:
    scenarios.uniform_refusal(make_client, FakeClock(T0))


def test_wrong_password_and_a_failing_store(tmp_path: Path) -> None:
    example = load_example("fastapi_app")
    clock = FakeClock(T0)
    faulty = FaultyStore(SQLiteStore(tmp_path / "f.sqlite3"), fail_on={"add": 1})
    app = example.create_app(service(tmp_path, clock, AsyncStoreAdapter(faulty)))
    client = _Client(TestClient(app, follow_redirects=False))
    wrong = client.post("/login", {"username": "alice", "password": "nope"})
    assert wrong.status == 401 and not scenarios.is_signed_in_with_second_factor(client)
    assert client.post("/login", {"username": "mallory", "password": "x"}).status == 401
    scenarios.sign_in(client)
    broken = client.get("/enrol")  # the store fails to add the credential
    assert broken.status == 503 and "store_unavailable" in broken.text


def test_default_service_runs_on_the_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MFA_SQLITE", str(tmp_path / "env.sqlite3"))
    example = load_example("fastapi_app")
    client = _Client(TestClient(example.create_app(), follow_redirects=False))
    scenarios.sign_in(client)
    assert client.get("/enrol").status == 200
    assert SQLiteStore(tmp_path / "env.sqlite3").list_for_user("alice")
    assert asyncio.iscoroutinefunction(example.default_service().verify)
