"""Exactly-once under real concurrency: 32 threads (memory, SQLite) and 8 processes (one
SQLite file) claim the same value at the same moment, round after round; bursts of
attempts are counted exactly, and attempts at one moment are admitted exactly up to the
throttle's limit (10 of 32 threads x 3, or of 8 processes x 10). Every wait is bounded,
so a hang fails instead of stalling CI.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from store_race import Crew, attempts_from_every_worker_admit_exactly_the_limit

from mfa_core.models import Credential, CredentialKind, CredentialState, FailureState
from mfa_core.stores import MemoryStore, SQLiteStore
from mfa_core.testing import CombinedStore
from mfa_core.throttle import ThrottleConfig

BURST = ThrottleConfig(max_failures=100, base_delay=0.0, max_delay=0.0, lockout=900.0)
"""No delays and a lock only after 100: every attempt of a burst up to 100 is counted."""
NO_DELAY = ThrottleConfig(max_failures=10, base_delay=0.0, max_delay=0.0, lockout=900.0)
"""The limits of the admission races: 10 attempts, no delays."""

THREADS = 32
PROCESSES = 8
THREAD_ROUNDS = 40
PROCESS_ROUNDS = 40
TIMEOUT = 60.0
T0 = 1_800_000_000.0


def _credential(credential_id: str = "c1") -> Credential:
    return Credential(
        id=credential_id,
        user_id="alice",
        kind=CredentialKind.TOTP,
        sealed_key=b"sealed",
        created_at=T0,
        status=CredentialState.ACTIVE,
    )


# -- threads ----------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite-shared", "sqlite-per-thread"])
def store_for_thread(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[int], CombinedStore]]:
    """A function giving thread i its store: one shared object, or one SQLiteStore object
    per thread on the same file (as separate application instances would have)."""
    opened: list[SQLiteStore] = []
    if request.param == "memory":
        memory = MemoryStore()
        yield lambda _: memory
        return
    path = tmp_path / "threads.sqlite3"
    opened.append(SQLiteStore(path))
    if request.param == "sqlite-shared":
        yield lambda _: opened[0]
    else:
        per_thread = [SQLiteStore(path) for _ in range(THREADS)]
        opened.extend(per_thread)
        yield lambda index: per_thread[index]
    for store in opened:
        store.close()


def _run_threads(count: int, work: Callable[[int], None]) -> None:
    errors: list[BaseException] = []

    def guarded(index: int) -> None:
        try:
            work(index)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a thread did not finish in time"
    assert not errors, errors[0]


def test_32_threads_claim_the_same_value_exactly_one_wins_every_round(
    store_for_thread: Callable[[int], CombinedStore],
) -> None:
    store_for_thread(0).add(_credential())
    start = threading.Barrier(THREADS)
    end = threading.Barrier(THREADS)
    wins = [[False] * THREADS for _ in range(THREAD_ROUNDS)]

    def work(index: int) -> None:
        store = store_for_thread(index)
        try:
            for round_ in range(THREAD_ROUNDS):
                start.wait(TIMEOUT)
                wins[round_][index] = store.claim("c1", round_, drift=index)
                end.wait(TIMEOUT)
        except BaseException:
            start.abort()
            end.abort()
            raise

    _run_threads(THREADS, work)
    assert [row.count(True) for row in wins] == [1] * THREAD_ROUNDS
    stored = store_for_thread(0).get("c1")
    assert stored is not None
    assert stored.last_accepted == THREAD_ROUNDS - 1
    assert stored.drift == wins[-1].index(True)


def test_a_burst_of_attempts_from_32_threads_is_counted_exactly(
    store_for_thread: Callable[[int], CombinedStore],
) -> None:
    per_thread = 10
    start = threading.Barrier(THREADS)
    counts: list[list[int]] = [[] for _ in range(THREADS)]

    def work(index: int) -> None:
        store = store_for_thread(index)
        start.wait(TIMEOUT)
        for i in range(per_thread):
            admission = store.admit_attempt("alice", T0 + i, BURST)
            if admission.admitted:
                counts[index].append(admission.state.count)

    _run_threads(THREADS, work)
    total = min(THREADS * per_thread, BURST.max_failures)
    assert sorted(c for mine in counts for c in mine) == list(range(1, total + 1))
    assert all(mine == sorted(mine) for mine in counts)  # each thread sees its count grow
    assert store_for_thread(0).get_failures("alice").count == total


@pytest.mark.parametrize("fused", [False, True], ids=["admit_attempt", "begin_attempt"])
def test_32_threads_attempting_at_once_are_admitted_exactly_up_to_the_limit(
    store_for_thread: Callable[[int], CombinedStore], fused: bool
) -> None:
    start = threading.Barrier(THREADS)
    admitted: list[list[bool]] = [[] for _ in range(THREADS)]

    def work(index: int) -> None:
        store: Any = store_for_thread(index)
        start.wait(TIMEOUT)
        for limits, user in ((NO_DELAY, "bob"), (ThrottleConfig(), "carol")):
            for _ in range(3):
                if fused:
                    admission = store.begin_attempt(user, T0, limits)[0]
                else:
                    admission = store.admit_attempt(user, T0, limits)
                admitted[index].append(admission.admitted)

    _run_threads(THREADS, work)
    assert sum(sum(mine[:3]) for mine in admitted) == NO_DELAY.max_failures
    assert sum(sum(mine[3:]) for mine in admitted) == 1  # the default delays: one per instant
    assert store_for_thread(0).get_failures("bob").count == NO_DELAY.max_failures
    assert store_for_thread(0).get_failures("carol") == FailureState(1, T0)


# -- processes --------------------------------------------------------------------------------


def _claim_in_process(
    path: str, index: int, rounds: int, barrier: Any, results: Any
) -> None:  # pragma: no cover - runs in a child process
    store = SQLiteStore(path)
    try:
        for round_ in range(rounds):
            barrier.wait(TIMEOUT)
            results.put((round_, index, store.claim("c1", round_, drift=index)))
            barrier.wait(TIMEOUT)
    except BaseException as exc:
        results.put(("error", index, repr(exc)))
        barrier.abort()
    finally:
        store.close()


def _fail_in_process(
    path: str, index: int, count: int, barrier: Any, results: Any
) -> None:  # pragma: no cover - runs in a child process
    try:
        barrier.wait(TIMEOUT)  # all open the (new) file at once, then count at once
        with SQLiteStore(path) as store:
            barrier.wait(TIMEOUT)
            seen = [store.admit_attempt("alice", T0 + i, BURST).state.count for i in range(count)]
        results.put(("counts", index, seen))
    except BaseException as exc:
        results.put(("error", index, repr(exc)))
        barrier.abort()


def _run_processes(
    target: Callable[..., None], path: Path, arg: Any, expected: int, *, processes: int = PROCESSES
) -> list[Any]:
    """Start ``processes`` spawned workers ``target(path, index, arg, barrier, results)``
    that meet at one barrier; collect ``expected`` messages (a message starting with
    ``"error"`` fails the test) and check that every worker exited cleanly."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    results = context.Queue()
    workers = [
        context.Process(target=target, args=(str(path), i, arg, barrier, results), daemon=True)
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    messages: list[Any] = []
    try:
        for _ in range(expected):
            message = results.get(timeout=TIMEOUT)
            assert message[0] != "error", message
            messages.append(message)
    except queue.Empty:  # pragma: no cover - only on a hang
        pytest.fail("the worker processes did not report in time")
    finally:
        for worker in workers:
            worker.join(TIMEOUT)
            if worker.is_alive():  # pragma: no cover - only on a hang
                worker.kill()
    assert [worker.exitcode for worker in workers] == [0] * processes
    return messages


def test_8_processes_claim_the_same_value_exactly_one_wins_every_round(tmp_path: Path) -> None:
    path = tmp_path / "processes.sqlite3"
    with SQLiteStore(path) as store:
        store.add(_credential())
    messages = _run_processes(_claim_in_process, path, PROCESS_ROUNDS, PROCESSES * PROCESS_ROUNDS)
    wins: dict[int, list[int]] = {round_: [] for round_ in range(PROCESS_ROUNDS)}
    for round_, index, won in messages:
        if won:
            wins[round_].append(index)
    assert [len(winners) for winners in wins.values()] == [1] * PROCESS_ROUNDS
    with SQLiteStore(path) as store:
        stored = store.get("c1")
    assert stored is not None
    assert stored.last_accepted == PROCESS_ROUNDS - 1
    assert stored.drift == wins[PROCESS_ROUNDS - 1][0]


def test_a_burst_of_attempts_from_8_processes_is_counted_exactly(tmp_path: Path) -> None:
    path = tmp_path / "burst.sqlite3"  # a new file: the workers also race to create it
    per_process = BURST.max_failures // PROCESSES
    messages = _run_processes(_fail_in_process, path, per_process, PROCESSES)
    total = PROCESSES * per_process
    counts = sorted(c for _, _, seen in messages for c in seen)
    assert counts == list(range(1, total + 1))
    with SQLiteStore(path) as store:
        assert store.get_failures("alice").count == total


@pytest.mark.parametrize("fused", [False, True], ids=["admit_attempt", "begin_attempt"])
def test_8_processes_x_10_attempts_are_admitted_exactly_up_to_the_limit(
    tmp_path: Path, fused: bool
) -> None:
    """Issue 10's bound across processes on one SQLite file (the same check runs on any
    back-end: see ``store_race.attempts_from_every_worker_admit_exactly_the_limit``)."""
    path = tmp_path / "admit.sqlite3"
    with SQLiteStore(path) as store, Crew(("sqlitestore", str(path), ""), PROCESSES) as crew:
        attempts_from_every_worker_admit_exactly_the_limit(crew, store, fused=fused)
