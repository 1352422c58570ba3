"""The store contract suite in async form, for async stores (the host's and ours).

Every rule of :mod:`mfa_core.testing` holds for an async store too, so the suite is not
written twice: :class:`BlockingFacade` drives an async store from blocking code by running
each call as a task on a private event loop (in its own thread), and the async contract
mixins run every test of the blocking mixins through it. Calls that the blocking races
make from many threads at once become concurrent tasks on that loop, interleaving at
every ``await`` of the store. On top, each mixin adds races written with
:func:`asyncio.gather` (driven by :func:`asyncio.run` inside plain test methods: no
pytest plugin needed)::

    from mfa_core.aio.testing import AsyncCredentialStoreContract, AsyncFailureCounterContract

    class TestMyAsyncStore(AsyncCredentialStoreContract, AsyncFailureCounterContract):
        def make_async_store(self):
            return MyAsyncStore(...)

Stores with a ``close()`` coroutine (or method) are closed after each test.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import unittest
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import attrs

from ..models import CredentialState, FailureState
from ..testing.contract import (
    _FUSED,
    _NO_DELAY,
    CredentialStoreContract,
    FailureCounterContract,
    OOBChallengeStoreContract,
    RecoveryCodeStoreContract,
    StoreContract,
    _check,
    _credential,
    _equal,
    _oob_record,
    _recovery_records,
    _uid,
)
from ..throttle import ThrottleConfig

__all__ = [
    "AsyncCredentialStoreContract",
    "AsyncFailureCounterContract",
    "AsyncOOBChallengeStoreContract",
    "AsyncRecoveryCodeStoreContract",
    "AsyncStoreContract",
    "BlockingFacade",
]

_R = TypeVar("_R")


async def _close(store: object) -> None:
    close = getattr(store, "close", None)
    if callable(close):
        done = close()
        if inspect.isawaitable(done):
            await done


class BlockingFacade:
    """A blocking view of an async store: ``facade.claim(...)`` runs ``store.claim(...)``
    on the facade's own event loop and waits for it (from any thread). Attributes that
    are not coroutine functions are passed through. :meth:`close` closes the store and
    stops the loop."""

    def __init__(self, store: object) -> None:
        self._store = store
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="mfa-async-contract", daemon=True
        )
        self._thread.start()

    def __repr__(self) -> str:
        return f"BlockingFacade({self._store!r})"

    def run(self, coroutine: Coroutine[Any, Any, _R], timeout: float = 60.0) -> _R:
        """Run ``coroutine`` on the facade's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if not inspect.iscoroutinefunction(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            return self.run(attribute(*args, **kwargs))

        return call

    def close(self) -> None:
        """Close the store (on its loop), then stop and close the loop."""
        try:
            self.run(_close(self._store))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()


class AsyncStoreContract(StoreContract):
    """Base of the async contract mixins: define :meth:`make_async_store`."""

    gather_tasks: int = 100
    """Tasks started at once by each :func:`asyncio.gather` race."""

    def make_async_store(self) -> Any:
        """Return a fresh async store implementing the port(s) under test. Override this."""
        raise NotImplementedError("an async contract test class must define make_async_store()")

    def make_store(self) -> Any:
        """The blocking contract's store: the async store behind a :class:`BlockingFacade`."""
        return BlockingFacade(self.make_async_store())

    def close_store(self, store: Any) -> None:
        """Close the facade (and with it the async store)."""
        store.close()

    def run_async(self, test: Callable[[Any], Coroutine[Any, Any, None]]) -> None:
        """Run ``test(store)`` with a fresh async store on a new loop, then close it."""

        async def main() -> None:
            store = self.make_async_store()
            try:
                await test(store)
            finally:
                await _close(store)

        asyncio.run(main())


class AsyncCredentialStoreContract(AsyncStoreContract, CredentialStoreContract):
    """:class:`~mfa_core.testing.CredentialStoreContract` for an
    :class:`~mfa_core.aio.ports.AsyncCredentialStore`, plus task races."""

    def test_async_claim_gather_has_exactly_one_winner(self) -> None:
        async def test(store: Any) -> None:
            credential = _credential(_uid("user"), status=CredentialState.ACTIVE)
            await store.add(credential)
            for value in (5, 6):
                won = await asyncio.gather(
                    *(store.claim(credential.id, value, drift=i) for i in range(self.gather_tasks))
                )
                _equal(won.count(True), 1, f"winners of {self.gather_tasks} tasks claiming {value}")
            stored = await store.get(credential.id)
            _equal(None if stored is None else stored.last_accepted, 6, "last_accepted")

        self.run_async(test)

    def test_async_update_gather_has_exactly_one_winner(self) -> None:
        async def test(store: Any) -> None:
            credential = _credential(_uid("user"), status=CredentialState.PENDING)
            await store.add(credential)
            updates = [
                attrs.evolve(credential, label=f"device {i}") for i in range(self.gather_tasks)
            ]
            won = await asyncio.gather(*(store.update(u, expected_version=0) for u in updates))
            _equal(won.count(True), 1, "winners of concurrent update(expected_version=0)")
            stored = await store.get(credential.id)
            _check(stored is not None and stored.version == 1, "version after the race is 1")
            _check(
                stored is not None and stored.label == updates[won.index(True)].label,
                "the stored credential is the winner's",
            )

        self.run_async(test)


class AsyncFailureCounterContract(AsyncStoreContract, FailureCounterContract):
    """:class:`~mfa_core.testing.FailureCounterContract` for an
    :class:`~mfa_core.aio.ports.AsyncFailureCounter`, plus task races:
    :attr:`admit_gather_tasks` (500) concurrent ``admit_attempt`` calls for one user admit
    exactly ``max_failures`` (10) without delays, and exactly one at one instant with the
    default delays; the same for ``begin_attempt`` when the store has the fused
    operations of :class:`~mfa_core.aio.ports.AsyncAttemptStore`."""

    admit_gather_tasks: int = 500
    """Tasks started at once by the admission races."""

    def test_async_admit_gather_admits_exactly_max_failures(self) -> None:
        async def test(store: Any) -> None:
            user = _uid("user")
            admissions = await asyncio.gather(
                *(
                    store.admit_attempt(user, 1_700_000_000.0 + i % 7, _NO_DELAY)
                    for i in range(self.admit_gather_tasks)
                )
            )
            expected = min(self.admit_gather_tasks, _NO_DELAY.max_failures)
            counts = sorted(a.state.count for a in admissions if a.admitted)
            _equal(counts, list(range(1, expected + 1)), "counts admitted by the tasks")
            _check(
                all(a.state.count == expected for a in admissions if not a.admitted),
                "every refusal reports the locked count",
            )
            _equal((await store.get_failures(user)).count, expected, "count after the race")

        self.run_async(test)

    def test_async_admit_gather_with_delays_admits_one_per_instant(self) -> None:
        async def test(store: Any) -> None:
            user = _uid("user")
            limits = ThrottleConfig()
            for instant in (1_700_000_000.0, 1_700_000_000.5, 1_700_000_001.0):
                admissions = await asyncio.gather(
                    *(
                        store.admit_attempt(user, instant, limits)
                        for _ in range(self.admit_gather_tasks)
                    )
                )
                admitted = sum(a.admitted for a in admissions)
                # 1 s after the first failure the second attempt is due; not half-way.
                _equal(admitted, 0 if instant % 1 else 1, f"admitted at {instant}")
            state = await store.get_failures(user)
            _equal(state, FailureState(2, 1_700_000_001.0), "state after the races")

        self.run_async(test)

    def test_async_begin_attempt_gather_admits_exactly_max_failures(self) -> None:
        async def test(store: Any) -> None:
            fused = all(callable(getattr(store, name, None)) for name in _FUSED)
            if self.attempt_store is False or (self.attempt_store is None and not fused):
                raise unittest.SkipTest("the store does not implement the AttemptStore operations")
            _check(fused, "the store must implement begin_attempt() and claim_and_reset()")
            user = _uid("user")
            credential = _credential(user)
            await store.add(credential)
            results = await asyncio.gather(
                *(
                    store.begin_attempt(user, 1_700_000_000.0, _NO_DELAY)
                    for _ in range(self.admit_gather_tasks)
                )
            )
            admitted = [list(listed) for admission, listed in results if admission.admitted]
            _equal(len(admitted), _NO_DELAY.max_failures, "attempts admitted by the tasks")
            _check(all(c == [credential] for c in admitted), "admitted ones get the list")
            _check(
                all(len(c) == 0 for a, c in results if not a.admitted),
                "refused ones get no credentials",
            )
            won = await asyncio.gather(
                *(
                    store.claim_and_reset(credential.id, 9, drift=0, user_id=user)
                    for _ in range(self.admit_gather_tasks)
                )
            )
            _equal(won.count(True), 1, "winners of concurrent claim_and_reset()")
            _equal(await store.get_failures(user), FailureState(), "reset by the winner")

        self.run_async(test)


class AsyncRecoveryCodeStoreContract(AsyncStoreContract, RecoveryCodeStoreContract):
    """:class:`~mfa_core.testing.RecoveryCodeStoreContract` for an
    :class:`~mfa_core.aio.ports.AsyncRecoveryCodeStore`, plus a task race."""

    def test_async_consume_gather_has_exactly_one_winner(self) -> None:
        async def test(store: Any) -> None:
            user = _uid("user")
            records = _recovery_records(3)
            await store.replace_recovery_codes(user, records)
            left = await asyncio.gather(
                *(
                    store.consume_recovery_code(user, records[0].id, 1_700_000_000.0)
                    for _ in range(self.gather_tasks)
                )
            )
            winners = [n for n in left if n is not None]
            _equal(winners, [2], "codes left reported by the one winning consumption")

        self.run_async(test)


class AsyncOOBChallengeStoreContract(AsyncStoreContract, OOBChallengeStoreContract):
    """:class:`~mfa_core.testing.OOBChallengeStoreContract` for an
    :class:`~mfa_core.aio.ports.AsyncOOBChallengeStore`, plus task races (mark used,
    send counts)."""

    def test_async_mark_used_gather_has_exactly_one_winner(self) -> None:
        async def test(store: Any) -> None:
            record = _oob_record()
            await store.put_challenge(record)
            used = attrs.evolve(record, used=True, attempts=record.attempts + 1)
            won = await asyncio.gather(
                *(store.update_challenge(used, expected=record) for _ in range(self.gather_tasks))
            )
            _equal(won.count(True), 1, "winners of concurrent mark-used compare-and-sets")

        self.run_async(test)

    def test_async_send_count_gather_gives_distinct_counts(self) -> None:
        async def test(store: Any) -> None:
            key = _uid("u:gather")
            start = 1_800_000_000.0
            counts = await asyncio.gather(
                *(store.count_send(key, start, start + 3600) for _ in range(self.gather_tasks))
            )
            _equal(
                sorted(counts),
                list(range(1, self.gather_tasks + 1)),
                "counts returned by concurrent count_send() tasks",
            )

        self.run_async(test)
