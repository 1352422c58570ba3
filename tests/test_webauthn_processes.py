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


Spec = tuple[str, str, str]


def _presenter(plan: list[tuple[Spec, list[Any]]], barrier: Any, pipe: Connection) -> None:
    try:
        outcomes = []
        for spec, responses in plan:  # one crew for both servers: spawning is the cost
            store = build_store(spec)
            service = _service(store)
            store.get_failures("warm-up")  # connect before the race
            for response in responses:
                barrier.wait(TIMEOUT)
                result = service.finish_webauthn_authentication("alice", response)
                outcomes.append((spec[0], result.accepted, str(result.webauthn_reason)))
            getattr(store, "close", lambda: None)()
        pipe.send(("ok", outcomes))
    except BaseException as exc:
        pipe.send(("error", repr(exc)))


def _prepare(spec: Spec) -> tuple[MFAService, list[Any]]:
    """Register a key for alice and make ROUNDS assertions (fresh challenges)."""
    service = _service(build_store(spec))
    key = SoftwareAuthenticator()
    options = service.begin_webauthn_registration("alice", user_name="alice")
    assert service.finish_webauthn_registration("alice", key.create(options, ORIGIN)).accepted
    responses = [
        key.get(service.begin_webauthn_authentication("alice"), ORIGIN) for _ in range(ROUNDS)
    ]
    return service, responses


@pytest.mark.slow
def test_8_processes_one_assertion_exactly_one_accepted(
    redis_url: str, redis_prefix: str, postgres_url: str, postgres_schema: str
) -> None:
    specs: list[Spec] = [
        ("redis", redis_url, redis_prefix),
        ("postgresql", postgres_url, postgres_schema),
    ]
    prepared = [_prepare(spec) for spec in specs]
    plan = [(spec, responses) for spec, (_, responses) in zip(specs, prepared, strict=True)]
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    pipes, workers = [], []
    for _ in range(PROCESSES):
        mine, theirs = context.Pipe()
        worker = context.Process(target=_presenter, args=(plan, barrier, theirs))
        worker.start()
        pipes.append(mine)
        workers.append(worker)
    rounds = len(specs) * ROUNDS
    per_round: list[list[tuple[str, bool, str]]] = [[] for _ in range(rounds)]
    for pipe in pipes:
        assert pipe.poll(TIMEOUT), "a worker did not answer"
        status, value = pipe.recv()
        assert status == "ok", value
        for index, outcome in enumerate(value):
            per_round[index].append(outcome)
    for worker in workers:
        worker.join(TIMEOUT)
    for index, outcomes in enumerate(per_round):
        assert len(outcomes) == PROCESSES
        assert {backend for backend, _, _ in outcomes} == {specs[index // ROUNDS][0]}
        assert sum(accepted for _, accepted, _ in outcomes) == 1, outcomes
        assert {reason for _, accepted, reason in outcomes if not accepted} == {"replayed"}
    for service, _ in prepared:
        (stored,) = service.list_webauthn_credentials("alice")
        assert stored.sign_count == ROUNDS
