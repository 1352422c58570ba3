"""The FastAPI recipe (examples/fastapi_app.py) attacked through FastAPI's TestClient."""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path
from typing import Any

import pytest
import recipe_scenarios as scenarios

from mfa_core.aio import AsyncMFAService, AsyncStoreAdapter
from mfa_core.stores import SQLiteStore
from mfa_core.testing import FakeClock, FaultyStore

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

T0 = scenarios.T0
load_example = scenarios.load_example


def _client(app: Any) -> scenarios.Wrapped:
    return scenarios.Wrapped(TestClient(app, follow_redirects=False), lambda r: r.text)


def service(tmp_path: Path, clock: FakeClock, store: Any = None) -> AsyncMFAService:
    store = AsyncStoreAdapter(SQLiteStore(tmp_path / "mfa.sqlite3")) if store is None else store
    return scenarios.service_over(AsyncMFAService, store, clock, "FastAPI recipe")


@pytest.fixture
def make_client(tmp_path: Path) -> scenarios.MakeClient:
    example = load_example("fastapi_app")

    def make(clock: FakeClock) -> scenarios.Wrapped:
        app = example.create_app(service(tmp_path, clock), users={"alice": "correct horse"})
        return _client(app)

    return make


class TestAttacks(scenarios.Attacks):
    """Replay, throttling and the lock, one refusal text, sessions (recipe_scenarios)."""


def test_wrong_password_and_a_failing_store(tmp_path: Path) -> None:
    example = load_example("fastapi_app")
    clock = FakeClock(T0)
    faulty = FaultyStore(SQLiteStore(tmp_path / "f.sqlite3"), fail_on={"add": 1})
    app = example.create_app(service(tmp_path, clock, AsyncStoreAdapter(faulty)))
    client = _client(app)
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
    client = _client(example.create_app())
    scenarios.sign_in(client)
    assert client.get("/enrol").status == 200
    assert SQLiteStore(tmp_path / "env.sqlite3").list_for_user("alice")
    assert asyncio.iscoroutinefunction(example.default_service().verify)


def test_fifty_tasks_racing_one_code_sign_in_once(tmp_path: Path) -> None:
    """Fifty sessions (an attacker who saw the code) post it at once on one event loop:
    exactly one is signed in; every other answer is the uniform refusal."""
    import httpx

    clock = FakeClock(T0)
    app = load_example("fastapi_app").create_app(service(tmp_path, clock))
    alice = scenarios.enrol(_client(app), clock)
    clock.advance(30)
    code = scenarios.totp(alice.key, clock.now())
    login = {"username": "alice", "password": scenarios.PASSWORD}

    async def race() -> list[tuple[int, str]]:
        transport = httpx.ASGITransport(app=app)
        clients = [httpx.AsyncClient(transport=transport, base_url="http://t") for _ in range(50)]
        try:
            await asyncio.gather(*(c.post("/login", data=login) for c in clients))
            replies = await asyncio.gather(
                *(c.post("/login/code", data={"code": code}) for c in clients)
            )
            homes = await asyncio.gather(*(c.get("/") for c in clients))
        finally:
            await asyncio.gather(*(c.aclose() for c in clients))
        signed_in = [h.status_code == 200 and "second factor" in h.text for h in homes]
        assert sum(signed_in) == 1
        return [
            (r.status_code, scenarios.Reply(r.status_code, r.text).message or "") for r in replies
        ]

    outcomes = asyncio.run(race())
    assert [s for s, _ in outcomes].count(303) == 1
    assert {m for s, m in outcomes if s != 303} == {scenarios.REFUSAL}
