"""8 processes presenting the same WebAuthn assertion: exactly one is accepted, on Redis and
PostgreSQL (each process with its own client / engine, released at one barrier).

Each round is a fresh assertion (a fresh challenge, the counter one higher); every process
presents it at once. The challenge's single-use consume decides the race; the losers are
refused as ``replayed``, and the stored sign count is the winner's.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.connection import Connection
from typing import Any

import pytest
from store_race import build_store

from mfa_core.sealing import AESGCMSealer
from mfa_core.service import MFAService, ServiceConfig
from mfa_core.testing import FakeClock
from mfa_core.testing.authenticator import SoftwareAuthenticator
from mfa_core.throttle import ThrottleConfig
from mfa_core.webauthn import WebAuthnConfig

pytest_plugins = ("servers",)

PROCESSES = 8
ROUNDS = 4
TIMEOUT = 120.0
T0 = 1_800_000_000.0
ORIGIN = "http://localhost:8000"
RP = {"rp_id": "localhost", "rp_name": "Example", "origins": [ORIGIN]}
CONFIG = ServiceConfig(throttle=ThrottleConfig(max_failures=100, base_delay=0.0))


def _service(store: Any) -> MFAService:
    sealer = AESGCMSealer({"k1": bytes(32)}, current_key_id="k1")
    return MFAService(
        store, store, sealer, clock=FakeClock(T0), config=CONFIG,
        webauthn=store, webauthn_config=WebAuthnConfig(**RP),
    )  # fmt: skip


def _presenter(
    spec: tuple[str, str, str], responses: list[Any], barrier: Any, pipe: Connection
) -> None:
    try:
        store = build_store(spec)
        service = _service(store)
        store.get_failures("warm-up")  # connect before the race
        outcomes = []
        for response in responses:
            barrier.wait(TIMEOUT)
            result = service.finish_webauthn_authentication("alice", response)
            outcomes.append((result.accepted, str(result.webauthn_reason)))
        pipe.send(("ok", outcomes))
    except BaseException as exc:
        pipe.send(("error", repr(exc)))


@pytest.fixture(params=["redis", "postgresql"])
def spec(request: pytest.FixtureRequest) -> tuple[str, str, str]:
    if request.param == "redis":
        return (
            "redis",
            request.getfixturevalue("redis_url"),
            request.getfixturevalue("redis_prefix"),
        )
    url = request.getfixturevalue("postgres_url")
    return ("postgresql", url, request.getfixturevalue("postgres_schema"))


@pytest.mark.slow
def test_8_processes_one_assertion_exactly_one_accepted(spec: tuple[str, str, str]) -> None:
    store = build_store(spec)
    service = _service(store)
    key = SoftwareAuthenticator()
    options = service.begin_webauthn_registration("alice", user_name="alice")
    assert service.finish_webauthn_registration("alice", key.create(options, ORIGIN)).accepted
    responses = [
        key.get(service.begin_webauthn_authentication("alice"), ORIGIN) for _ in range(ROUNDS)
    ]
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    pipes, workers = [], []
    for _ in range(PROCESSES):
        mine, theirs = context.Pipe()
        worker = context.Process(target=_presenter, args=(spec, responses, barrier, theirs))
        worker.start()
        pipes.append(mine)
        workers.append(worker)
    per_round: list[list[tuple[bool, str]]] = [[] for _ in range(ROUNDS)]
    for pipe in pipes:
        assert pipe.poll(TIMEOUT), "a worker did not answer"
        status, value = pipe.recv()
        assert status == "ok", value
        for index, outcome in enumerate(value):
            per_round[index].append(outcome)
    for worker in workers:
        worker.join(TIMEOUT)
    for outcomes in per_round:
        assert len(outcomes) == PROCESSES
        assert sum(accepted for accepted, _ in outcomes) == 1, outcomes
        assert {reason for accepted, reason in outcomes if not accepted} == {"replayed"}
    (stored,) = service.list_webauthn_credentials("alice")
    assert stored.sign_count == ROUNDS
    close = getattr(store, "close", None)
    if callable(close):
        close()
