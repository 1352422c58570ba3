"""Concurrent submissions through MFAService: exactly one winner, exact failure counts.

* 32 threads on the memory store and on a SQLite file submit the same valid code at once,
  for several rounds (a fresh code each round): exactly one is accepted every round, and
  every other attempt is refused as a replay (counted) or throttled by a replay counted a
  moment earlier (not counted).
* 8 processes, each with its own service and connection to one SQLite file, do the same.
* A burst of wrong codes from 32 threads: every attempt that was not throttled is counted,
  exactly once (the counter's increment is atomic).

Bounded: a few rounds each, a timeout on every join.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from mfa_core import b32decode_key, totp
from mfa_core.sealing import AESGCMSealer
from mfa_core.service import MFAService, ServiceConfig, VerificationResult, VerifyReason
from mfa_core.stores import MemoryStore, SQLiteStore
from mfa_core.testing import FakeClock
from mfa_core.throttle import ThrottleConfig

THREADS = 32
PROCESSES = 8
ROUNDS = 4
T0 = 1_800_000_005.0
SEALING_KEY = bytes(range(32))
# Generous limits: the tests count failures, they do not want to hit the lock.
THROTTLE = ThrottleConfig(max_failures=100, base_delay=1.0, max_delay=4.0, lockout=60.0)
CONFIG = ServiceConfig(throttle=THROTTLE)
USER = "alice"


def _service(store: Any, clock: FakeClock) -> MFAService:
    sealer = AESGCMSealer({"k1": SEALING_KEY}, current_key_id="k1")
    return MFAService(store, store, sealer, clock=clock, config=CONFIG)


def _enrol(service: MFAService, clock: FakeClock) -> bytes:
    enrolment = service.begin_enrolment(USER)
    key = b32decode_key(enrolment.secret)
    assert service.confirm_enrolment(USER, enrolment.credential_id, totp(key, clock.now())).accepted
    return key


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    made: Any = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "c.db")
    yield made
    close = getattr(made, "close", None)
    if close is not None:
        close()


def _burst(
    pool: ThreadPoolExecutor, attempt: Callable[[], VerificationResult]
) -> list[VerificationResult]:
    barrier = threading.Barrier(THREADS)

    def run(_: int) -> VerificationResult:
        barrier.wait(timeout=30)
        return attempt()

    return list(pool.map(run, range(THREADS), timeout=120))


def test_same_valid_code_from_32_threads_is_accepted_exactly_once(store: Any) -> None:
    clock = FakeClock(T0)
    service = _service(store, clock)
    key = _enrol(service, clock)
    with ThreadPoolExecutor(THREADS) as pool:
        for _ in range(ROUNDS):
            clock.advance(300)  # a fresh step, past any delay from the last round
            service.admin_unlock(USER, admin_id="test")
            code = totp(key, clock.now())
            results = _burst(pool, lambda code=code: service.verify(USER, code))  # type: ignore[misc]
            reasons = Counter(r.reason for r in results)
            assert reasons[VerifyReason.OK] == 1, reasons
            assert set(reasons) <= {VerifyReason.OK, VerifyReason.REPLAYED, VerifyReason.THROTTLED}
            # The winner saw no failure (else it would have been throttled), so it reset
            # nothing: every counted replay is in the store, exactly once.
            assert _count(store) == reasons[VerifyReason.REPLAYED]


def test_burst_of_wrong_codes_is_counted_exactly(store: Any) -> None:
    clock = FakeClock(T0)
    # No delay between attempts, so that every one of the burst is checked and counted.
    no_delay = ServiceConfig(throttle=ThrottleConfig(max_failures=100, base_delay=0.0))
    sealer = AESGCMSealer({"k1": SEALING_KEY}, current_key_id="k1")
    service = MFAService(store, store, sealer, clock=clock, config=no_delay)
    key = _enrol(service, clock)
    window = {totp(key, clock.now() + s * 30) for s in range(-3, 4)}
    wrong = next(c for c in (f"{n:06d}" for n in range(1000)) if c not in window)
    with ThreadPoolExecutor(THREADS) as pool:
        for rounds in range(1, 3):
            results = _burst(pool, lambda: service.verify(USER, wrong))
            assert {r.reason for r in results} == {VerifyReason.INVALID_CODE}
            assert _count(store) == THREADS * rounds


def test_burst_of_wrong_codes_with_delays_counts_every_checked_attempt(store: Any) -> None:
    clock = FakeClock(T0)
    service = _service(store, clock)
    key = _enrol(service, clock)
    window = {totp(key, clock.now() + s * 30) for s in range(-3, 4)}
    wrong = next(c for c in (f"{n:06d}" for n in range(1000)) if c not in window)
    with ThreadPoolExecutor(THREADS) as pool:
        results = _burst(pool, lambda: service.verify(USER, wrong))
    reasons = Counter(r.reason for r in results)
    # Attempts that passed the gate before the first failure landed are checked and
    # counted; the rest are throttled (not counted). Either way, the count is exact.
    assert set(reasons) <= {VerifyReason.INVALID_CODE, VerifyReason.THROTTLED}
    assert reasons[VerifyReason.INVALID_CODE] >= 1
    assert _count(store) == reasons[VerifyReason.INVALID_CODE]


def _count(store: Any) -> int:
    return int(store.get_failures(USER).count)


# -- processes ---------------------------------------------------------------------------


def _worker(
    path: str,
    rounds: list[tuple[float, str]],
    barrier: Any,
    results: Any,
    index: int,
) -> None:
    store = SQLiteStore(path)
    clock = FakeClock(rounds[0][0])
    service = _service(store, clock)
    for number, (when, code) in enumerate(rounds):
        clock.set(when)
        barrier.wait(timeout=60)
        result = service.verify(USER, code)
        results.put((index, number, result.accepted, result.reason.value))
    close = getattr(store, "close", None)
    if close is not None:
        close()


def test_same_valid_code_from_8_processes_on_one_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    store = SQLiteStore(path)
    clock = FakeClock(T0)
    service = _service(store, clock)
    key = _enrol(service, clock)
    # Rounds far apart: fresh steps, and past any delay left by the last round's replays.
    rounds = [(T0 + 600.0 * (n + 1), totp(key, T0 + 600.0 * (n + 1))) for n in range(ROUNDS)]
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    queue = context.Queue()
    workers = [
        context.Process(target=_worker, args=(str(path), rounds, barrier, queue, i))
        for i in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    outcomes = [queue.get(timeout=120) for _ in range(PROCESSES * ROUNDS)]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    for number in range(ROUNDS):
        this_round = [o for o in outcomes if o[1] == number]
        assert len(this_round) == PROCESSES
        assert sum(1 for o in this_round if o[2]) == 1, this_round
        assert {o[3] for o in this_round if not o[2]} <= {"replayed", "throttled"}
    close = getattr(store, "close", None)
    if close is not None:
        close()
