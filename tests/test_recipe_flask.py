"""The Flask recipe (examples/flask_app.py) attacked through Flask's test client."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import recipe_scenarios as scenarios

from mfa_core import totp
from mfa_core.service import MFAService
from mfa_core.stores import SQLiteStore
from mfa_core.testing import FakeClock, FaultyStore

pytest.importorskip("flask")


def _client(app: Any) -> scenarios.Wrapped:
    return scenarios.Wrapped(app.test_client(), lambda r: r.get_data(as_text=True))


def service(tmp_path: Path, clock: FakeClock, store: Any = None) -> MFAService:
    store = SQLiteStore(tmp_path / "mfa.sqlite3") if store is None else store
    return scenarios.service_over(MFAService, store, clock, "Flask recipe")


@pytest.fixture
def example() -> Any:
    return scenarios.load_example("flask_app")


@pytest.fixture
def make_client(tmp_path: Path, example: Any) -> scenarios.MakeClient:
    def make(clock: FakeClock) -> scenarios.Wrapped:
        app = example.create_app(service(tmp_path, clock), users={"alice": "correct horse"})
        return _client(app)

    return make


class TestAttacks(scenarios.Attacks):
    """Replay, throttling and the lock, one refusal text, sessions (recipe_scenarios)."""


def test_a_forged_session_cookie_signs_nobody_in(tmp_path: Path, example: Any) -> None:
    clock = FakeClock(scenarios.T0)
    app = example.create_app(service(tmp_path, clock), session_secret="s" * 32)
    client = _client(app)
    scenarios.enrol(client, clock)
    other = example.create_app(service(tmp_path, clock), session_secret="t" * 32)
    with other.test_client() as forger:
        with forger.session_transaction() as forged:  # signed with the wrong key
            forged.update(user="alice", mfa=True)
        cookie = forger.get_cookie("session")
        assert cookie is not None
    victim = app.test_client()
    victim.set_cookie("session", cookie.value)
    assert victim.get("/").status_code == 303
    assert victim.post("/recovery-codes").headers["Location"].endswith("/login")


def test_concurrent_logins_with_one_code_sign_in_once(tmp_path: Path, example: Any) -> None:
    """Eight browsers of an attacker who saw the code race the user: one session wins."""
    clock = FakeClock(scenarios.T0)
    app = example.create_app(service(tmp_path, clock), users={"alice": "correct horse"})
    alice = scenarios.enrol(_client(app), clock)
    clock.advance(30)
    code = totp(alice.key, clock.now())
    clients = [_client(app) for _ in range(8)]
    for client in clients:
        scenarios.sign_in(client)
    barrier = threading.Barrier(len(clients))
    statuses: list[int] = []

    def attempt(client: scenarios.Wrapped) -> None:
        barrier.wait()
        statuses.append(client.post("/login/code", {"code": code}).status)

    threads = [threading.Thread(target=attempt, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses).count(303) == 1, statuses
    assert sum(scenarios.is_signed_in_with_second_factor(c) for c in clients) == 1


def test_a_failing_store_is_503_with_the_error_code(tmp_path: Path, example: Any) -> None:
    clock = FakeClock(scenarios.T0)
    faulty = FaultyStore(SQLiteStore(tmp_path / "f.sqlite3"), fail_on={"add": 1})
    client = _client(example.create_app(service(tmp_path, clock, faulty)))
    scenarios.sign_in(client)
    broken = client.get("/enrol")
    assert broken.status == 503 and "store_unavailable" in broken.text
    assert client.post("/login", {"username": "alice", "password": "nope"}).status == 401


def test_default_service_runs_on_the_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, example: Any
) -> None:
    monkeypatch.setenv("MFA_SQLITE", str(tmp_path / "env.sqlite3"))
    client = _client(example.create_app())
    scenarios.sign_in(client)
    assert client.get("/enrol").status == 200
    assert SQLiteStore(tmp_path / "env.sqlite3").list_for_user("alice")
