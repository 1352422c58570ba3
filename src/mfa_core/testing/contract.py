"""The store contract suite: the rules every store follows, as test mixins.

No test-runner dependency (nothing here imports pytest; a skipped test raises
:class:`unittest.SkipTest`, which pytest honours), so a host application can check its own
store against the same rules the reference stores follow.

:class:`CredentialStoreContract` and :class:`FailureCounterContract` are
mixins whose ``test_*`` methods a pytest test class inherits; the class provides
``make_store()`` returning a fresh store (ids are random per test, so a shared database
works too)::

    from mfa_core.testing import CredentialStoreContract, FailureCounterContract

    class TestMyStore(CredentialStoreContract, FailureCounterContract):
        def make_store(self):
            return MyStore(dsn=...)

Stores with a ``close()`` method are closed after each test (override
:meth:`StoreContract.close_store` to clean up differently). The races (32 threads by
default, :attr:`StoreContract.race_threads`) check every compare-and-set: of N concurrent
``claim`` calls with one value exactly one wins, of N concurrent ``update`` calls with one
expected version exactly one wins, of N concurrent ``admit_attempt`` calls for one user
exactly as many are admitted as the limits allow (10 of 32 with ``max_failures=10`` and no
delays, 1 at one instant with the default delays), each with its own count.
``admit_attempt`` must also agree exactly with :func:`mfa_core.throttle.admit` on long
walks over many limits; a store with the fused operations of
:class:`~mfa_core.ports.AttemptStore` (``begin_attempt``, ``claim_and_reset``) has them
checked against the separate calls they stand for.

:class:`RecoveryCodeStoreContract` and :class:`OOBChallengeStoreContract` do the same for
the recovery-code and out-of-band ports (16 threads by default,
``code_race_threads``): of 16 concurrent consumptions of one recovery code exactly one
wins, 16 concurrent consumptions of distinct codes return the counts left 15..0, of 16
concurrent "mark used" compare-and-sets on a challenge exactly one wins, 16 concurrent
attempt increments (with re-reads on a lost compare-and-set) add exactly 16, and of 16
concurrent resends of one generation exactly one replaces the code, and 16 threads
calling ``count_send`` 20 times each on one counter get every count from 1 to 320 once.
"""

from __future__ import annotations

import hmac
import math
import os
import random
import secrets
import threading
import unittest
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

import attrs

from ..errors import InvalidParameter, StoreError
from ..models import Admission, Credential, CredentialKind, CredentialState, FailureState
from ..oob import MAX_ATTEMPTS_LIMIT, OOBChannel, OOBConfig, OOBPurpose, OOBRecord
from ..oob import issue as oob_issue
from ..otp import Algorithm
from ..ports import (
    AttemptStore,
    CredentialStore,
    FailureCounter,
    OOBChallengeStore,
    RecoveryCodeStore,
    StoreMaintenance,
)
from ..recovery import ALPHABET as RECOVERY_ALPHABET
from ..recovery import TAG_BYTES, Argon2Params, RecoveryRecord, hash_recovery_code
from ..throttle import ThrottleConfig
from ..throttle import admit as throttle_admit

__all__ = [
    "CredentialStoreContract",
    "FailureCounterContract",
    "OOBChallengeStoreContract",
    "RecoveryCodeStoreContract",
    "StoreContract",
    "StoreMaintenanceContract",
]

_R = TypeVar("_R")


# -- contract suite helpers ---------------------------------------------------------------


def _check(condition: bool, message: str) -> None:
    # Not ``assert``: this module is not rewritten by pytest and may run under ``-O``.
    if not condition:
        raise AssertionError(message)


def _equal(actual: object, expected: object, what: str) -> None:
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}")


def _raises(error: type[BaseException], call: Callable[[], object], what: str) -> BaseException:
    try:
        call()
    except error as exc:
        return exc
    raise AssertionError(f"{what}: expected {error.__name__} to be raised")


def _stored(store: CredentialStore, credential_id: str, what: str) -> Credential:
    credential = store.get(credential_id)
    if credential is None:
        raise AssertionError(f"{what}: get() returned None for a stored credential")
    return credential


def _uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def _race(
    threads: int,
    rounds: int,
    action: Callable[[int, int], _R],
    *,
    after_round: Callable[[int], None] | None = None,
    timeout: float = 60.0,
) -> list[list[_R]]:
    """Run ``action(round, thread)`` on ``threads`` threads for ``rounds`` rounds.

    Within a round every thread is released at once by a barrier; the next round starts
    only when all calls of the previous one have returned (and ``after_round(round)``, a
    check between rounds, has run). Returns the results by round, then by thread. Any
    exception in a thread fails the race (re-raised as AssertionError).
    """
    finished = [0]

    def between_rounds() -> None:
        if after_round is not None:
            after_round(finished[0])
        finished[0] += 1

    start = threading.Barrier(threads)
    end = threading.Barrier(threads, action=between_rounds)
    results: list[list[Any]] = [[None] * threads for _ in range(rounds)]
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            for round_ in range(rounds):
                start.wait(timeout)
                results[round_][index] = action(round_, index)
                end.wait(timeout)
        except BaseException as exc:
            errors.append(exc)
            start.abort()
            end.abort()

    workers = [
        threading.Thread(target=work, args=(i,), name=f"contract-race-{i}", daemon=True)
        for i in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout * (2 * rounds + 1))
    if any(worker.is_alive() for worker in workers):
        start.abort()
        end.abort()
        raise AssertionError("a racing store call did not return in time")
    if errors:
        first = next(
            (e for e in errors if not isinstance(e, threading.BrokenBarrierError)), errors[0]
        )
        raise AssertionError(f"a racing store call failed: {first!r}") from first
    return results


def _credential(user_id: str, *, created_at: float = 1_700_000_000.0, **changes: Any) -> Credential:
    return attrs.evolve(
        Credential(
            id=_uid("cred"),
            user_id=user_id,
            kind=CredentialKind.TOTP,
            sealed_key=os.urandom(48),
            created_at=created_at,
        ),
        **changes,
    )


# -- contract suite -----------------------------------------------------------------------


class StoreContract:
    """Base of the contract mixins: store creation, cleanup and the race sizes."""

    race_threads: int = 32
    """Threads released at once in each race."""
    race_rounds: int = 10
    """Rounds per race (each round is checked on its own)."""
    burst_per_thread: int = 4
    """``admit_attempt`` calls per thread in the failure-count burst."""

    def make_store(self) -> Any:
        """Return a fresh store implementing the port(s) under test. Override this."""
        raise NotImplementedError("a contract test class must define make_store()")

    def close_store(self, store: Any) -> None:
        """Release a store made by :meth:`make_store` (default: call its ``close()``)."""
        close = getattr(store, "close", None)
        if callable(close):
            close()

    def _new_store(self) -> Any:
        store = self.make_store()
        made: list[Any] = self.__dict__.setdefault("_contract_stores", [])
        made.append(store)
        return store

    def teardown_method(self, method: object) -> None:
        """Close every store this test made (pytest calls this after each test)."""
        for store in self.__dict__.pop("_contract_stores", []):
            self.close_store(store)


class CredentialStoreContract(StoreContract):
    """The rules every :class:`~mfa_core.ports.CredentialStore` follows, as tests."""

    def _store(self) -> CredentialStore:
        store: CredentialStore = self._new_store()
        return store

    def test_credentials_round_trip_every_field(self) -> None:
        store = self._store()
        user = _uid("user")
        full = _credential(
            user,
            created_at=1_700_000_000.25,
            kind=CredentialKind.HOTP,
            status=CredentialState.ACTIVE,
            algorithm=Algorithm.SHA512,
            digits=8,
            period=60,
            label="Work phone \u2713",
            pending_until=1_700_000_600.5,
            confirmed_at=1_700_000_100.75,
            renewed_at=1_700_000_100.125,
            replaces=_uid("cred"),
            disabled_at=1_700_000_200.0625,
            last_accepted=41,
            drift=-2,
            version=7,
        )
        minimal = _credential(user, created_at=1_700_000_001.0)
        disabled = _credential(user, status=CredentialState.DISABLED, algorithm=Algorithm.SHA256)
        for credential in (full, minimal, disabled):
            store.add(credential)
        for credential in (full, minimal, disabled):
            got = _stored(store, credential.id, "get() of an added credential")
            _equal(got, credential, "stored credential")
            _equal(got.sealed_key, credential.sealed_key, "stored sealed_key")
            _check(isinstance(got.kind, CredentialKind), "kind must come back as CredentialKind")
            _check(isinstance(got.status, CredentialState), "status must be a CredentialState")
            _check(isinstance(got.algorithm, Algorithm), "algorithm must be an Algorithm")
            _check(type(got.sealed_key) is bytes, "sealed_key must come back as bytes")
            for name in ("created_at", "pending_until", "confirmed_at", "renewed_at"):
                value = getattr(got, name)
                _check(value is None or type(value) is float, f"{name} must be a float")

    def test_credentials_get_missing_returns_none(self) -> None:
        store = self._store()
        _equal(store.get(_uid("missing")), None, "get() of an unknown id")

    def test_credentials_add_existing_id_raises_and_keeps_the_original(self) -> None:
        store = self._store()
        original = _credential(_uid("user"), label="original")
        store.add(original)
        clash = attrs.evolve(original, user_id=_uid("user"), label="clash")
        _raises(StoreError, lambda: store.add(clash), "add() with an existing id")
        _equal(store.get(original.id), original, "credential after a refused add()")
        _equal(list(store.list_for_user(clash.user_id)), [], "the clashing user's list")

    def test_credentials_list_for_user_oldest_first_only_that_user(self) -> None:
        store = self._store()
        user, other = _uid("user"), _uid("user")
        newest = _credential(user, created_at=1_700_000_300.0, status=CredentialState.DISABLED)
        oldest = _credential(user, created_at=1_700_000_100.0)
        middle = _credential(user, created_at=1_700_000_200.0, status=CredentialState.ACTIVE)
        foreign = _credential(other, created_at=1_700_000_150.0)
        for credential in (newest, oldest, foreign, middle):
            store.add(credential)
        listed = list(store.list_for_user(user))
        _equal([c.id for c in listed], [oldest.id, middle.id, newest.id], "list_for_user order")
        _equal(listed, [oldest, middle, newest], "listed credentials")
        _equal([c.id for c in store.list_for_user(other)], [foreign.id], "other user's list")
        _equal(list(store.list_for_user(_uid("nobody"))), [], "list of an unknown user")

    def test_credentials_update_is_a_compare_and_set_on_version(self) -> None:
        store = self._store()
        credential = _credential(_uid("user"))
        store.add(credential)
        _check(store.claim(credential.id, 12, drift=1), "claim() of a fresh credential")
        # The caller's copy is stale on last_accepted/drift and says version=99: the store
        # keeps the claimed values and writes expected_version + 1.
        changed = attrs.evolve(
            credential,
            status=CredentialState.ACTIVE,
            label="renamed",
            confirmed_at=1_700_000_050.0,
            renewed_at=1_700_000_050.0,
            pending_until=None,
            sealed_key=os.urandom(48),
            version=99,
        )
        _check(store.update(changed, expected_version=0), "update() with the current version")
        got = _stored(store, credential.id, "get() after update()")
        _equal(got, attrs.evolve(changed, last_accepted=12, drift=1, version=1), "updated")
        _equal(got.sealed_key, changed.sealed_key, "updated sealed_key")
        again = attrs.evolve(changed, label="second")
        _check(store.update(again, expected_version=1), "update() with the new version")
        _equal(
            store.get(credential.id),
            attrs.evolve(again, last_accepted=12, drift=1, version=2),
            "second update",
        )

    def test_credentials_update_with_stale_version_changes_nothing(self) -> None:
        store = self._store()
        credential = _credential(_uid("user"))
        store.add(credential)
        stale = attrs.evolve(credential, label="stale", status=CredentialState.DISABLED)
        for version in (1, 5, 2**31):
            _check(
                not store.update(stale, expected_version=version),
                f"update() with expected_version={version} must fail when the version is 0",
            )
        _equal(store.get(credential.id), credential, "credential after refused updates")

    def test_credentials_update_of_missing_credential_returns_false(self) -> None:
        store = self._store()
        ghost = _credential(_uid("user"))
        _check(not store.update(ghost, expected_version=0), "update() of an unknown id")
        _equal(store.get(ghost.id), None, "update() must not create a credential")
        _equal(list(store.list_for_user(ghost.user_id)), [], "list after update() of unknown id")

    def test_credentials_claim_accepts_only_greater_values(self) -> None:
        store = self._store()
        credential = _credential(_uid("user"), status=CredentialState.ACTIVE)
        store.add(credential)
        steps = [
            (0, 0, True),  # the first value (HOTP counter 0) beats the initial -1
            (0, 3, False),  # replay of the same value
            (5, 2, True),
            (3, -1, False),  # an earlier value after a later one
            (5, 1, False),
            (2**40 + 1, -3, True),  # beyond 32 bits
            (2**40, 0, False),
        ]
        expected_value, expected_drift = -1, 0
        for value, drift, accepted in steps:
            _equal(
                store.claim(credential.id, value, drift=drift),
                accepted,
                f"claim({value}) after {expected_value}",
            )
            if accepted:
                expected_value, expected_drift = value, drift
            _equal(
                store.get(credential.id),
                attrs.evolve(credential, last_accepted=expected_value, drift=expected_drift),
                f"credential after claim({value})",
            )

    def test_credentials_claim_of_missing_credential_returns_false(self) -> None:
        store = self._store()
        missing = _uid("missing")
        _check(not store.claim(missing, 1, drift=0), "claim() of an unknown id")
        _equal(store.get(missing), None, "claim() must not create a credential")

    def test_credentials_delete(self) -> None:
        store = self._store()
        user = _uid("user")
        gone, kept = _credential(user), _credential(user, created_at=1_700_000_001.0)
        store.add(gone)
        store.add(kept)
        _check(store.delete(gone.id), "delete() of an existing credential")
        _equal(store.get(gone.id), None, "get() after delete()")
        _equal(list(store.list_for_user(user)), [kept], "list after delete()")
        _check(not store.delete(gone.id), "second delete() of the same id")
        _check(not store.claim(gone.id, 1, drift=0), "claim() after delete()")
        _check(not store.update(gone, expected_version=0), "update() after delete()")
        store.add(gone)  # the id is free again
        _equal(store.get(gone.id), gone, "re-added credential")

    def test_credentials_claim_race_has_exactly_one_winner(self) -> None:
        store = self._store()
        credential = _credential(_uid("user"), status=CredentialState.ACTIVE)
        store.add(credential)
        results = _race(
            self.race_threads,
            self.race_rounds,
            lambda round_, thread: store.claim(credential.id, round_, drift=thread),
        )
        for round_, outcomes in enumerate(results):
            _equal(outcomes.count(True), 1, f"winners of concurrent claim({round_})")
        got = _stored(store, credential.id, "get() after the races")
        _equal(got.last_accepted, self.race_rounds - 1, "last_accepted after the races")
        winner = results[-1].index(True)
        _equal(got.drift, winner, "drift is the winning claim's drift")
        _equal(got.version, 0, "claim() must not change the version")

    def test_credentials_claim_race_with_distinct_values_keeps_the_greatest(self) -> None:
        store = self._store()
        credential = _credential(_uid("user"), status=CredentialState.ACTIVE)
        store.add(credential)
        threads = self.race_threads
        results = _race(
            threads,
            self.race_rounds,
            lambda round_, thread: store.claim(credential.id, round_ * threads + thread, drift=0),
        )
        for round_, outcomes in enumerate(results):
            _check(outcomes[-1], f"the greatest value of round {round_} must be accepted")
        got = _stored(store, credential.id, "get() after the races")
        _equal(got.last_accepted, self.race_rounds * threads - 1, "last_accepted after races")

    def test_credentials_update_race_has_exactly_one_winner(self) -> None:
        store = self._store()
        credential = _credential(_uid("user"))
        store.add(credential)

        def update(round_: int, thread: int) -> bool:
            mine = attrs.evolve(credential, label=f"r{round_}-t{thread}")
            return store.update(mine, expected_version=round_)

        results = _race(self.race_threads, self.race_rounds, update)
        winner = 0
        for round_, outcomes in enumerate(results):
            _equal(outcomes.count(True), 1, f"winners of concurrent update() in round {round_}")
            winner = outcomes.index(True)
        got = _stored(store, credential.id, "get() after the races")
        _equal(got.version, self.race_rounds, "version after the update races")
        _equal(got.label, f"r{self.race_rounds - 1}-t{winner}", "label of the last winner")

    def test_credentials_concurrent_claims_and_updates_do_not_undo_each_other(self) -> None:
        store = self._store()
        credential = _credential(_uid("user"), status=CredentialState.ACTIVE)
        store.add(credential)
        threads = max(2, self.race_threads)
        updated = [0] * threads

        def act(round_: int, thread: int) -> bool:
            if thread % 2 == 0:
                return store.claim(credential.id, round_ * threads + thread, drift=thread)
            # compare-and-set retry loop, as the service does for lifecycle changes
            while True:
                current = _stored(store, credential.id, "get() during the race")
                if store.update(
                    attrs.evolve(current, label=f"t{thread}"), expected_version=current.version
                ):
                    updated[thread] += 1
                    return True

        last_claimer = max(t for t in range(threads) if t % 2 == 0)

        def check(round_: int) -> None:
            got = _stored(store, credential.id, f"get() after round {round_}")
            _equal(
                got.last_accepted,
                round_ * threads + last_claimer,
                f"last_accepted after round {round_} (an update() must not undo a claim())",
            )
            _equal(got.drift, last_claimer, "drift of the greatest claim")
            _equal(got.version, sum(updated), "version = number of successful updates")

        _race(threads, self.race_rounds, act, after_round=check)

    def test_credentials_sms_email_and_history_kinds_round_trip(self) -> None:
        store = self._store()
        user = _uid("user")
        phone = _credential(
            user,
            kind=CredentialKind.SMS,
            status=CredentialState.PENDING,
            pending_until=1_700_001_800.0,
            label="mobile",
        )
        email = _credential(
            user, created_at=1_700_000_001.0, kind=CredentialKind.EMAIL, confirmed_at=1.5
        )
        history = _credential(
            user,
            created_at=1_700_000_002.0,
            kind=CredentialKind.HISTORY,
            status=CredentialState.DISABLED,
            disabled_at=1_700_000_002.0,
        )
        for credential in (phone, email, history):
            store.add(credential)
        for credential in (phone, email, history):
            got = _stored(store, credential.id, "get() of an SMS/email factor")
            _equal(got, credential, "stored SMS/email factor")
            _equal(got.kind, credential.kind, "kind of an SMS/email factor")
            _equal(got.sealed_key, credential.sealed_key, "the sealed destination")
        _equal(list(store.list_for_user(user)), [phone, email, history], "list of the new kinds")
        confirmed = attrs.evolve(phone, status=CredentialState.ACTIVE, pending_until=None)
        _check(store.update(confirmed, expected_version=0), "update() of an SMS factor")
        _equal(
            _stored(store, phone.id, "get() after update()").status,
            CredentialState.ACTIVE,
            "status of the confirmed SMS factor",
        )


_T: Final = 1_700_000_000.0
"""The time the failure-counter tests start at."""

_NO_DELAY: Final = ThrottleConfig(max_failures=10, base_delay=0.0, max_delay=0.0, lockout=900.0)
"""10 attempts without delays, then a 15-minute lock: the races' limits."""

_FUSED: Final = ("begin_attempt", "claim_and_reset")
"""The operations :class:`~mfa_core.ports.AttemptStore` adds."""

_STEPS: Final = (-7.0, -0.5, 0.0, 0.0, 0.25, 0.5, 1.0, 1.0, 2.0, 3.0, 4.0, 8.0, 30.0, 61.0, 900.0)
"""Moves of the clock in a walk: backwards, standing still, to (and past) every delay."""

_WALK_LIMITS: Final = (
    ThrottleConfig(),
    ThrottleConfig(max_failures=1),
    ThrottleConfig(max_failures=3, base_delay=0.0, max_delay=0.0, lockout=5.0),
    ThrottleConfig(max_failures=4, base_delay=0.25, max_delay=1.0, lockout=None),
    ThrottleConfig(max_failures=6, base_delay=2.0, max_delay=8.0, lockout=8.0),
    ThrottleConfig(max_failures=2, base_delay=0.0, max_delay=0.0, lockout=None),
    ThrottleConfig(max_failures=100, base_delay=0.5, max_delay=3.0, lockout=3.0),
)
"""The limits the reference walks run under (delays, caps, locks, ``lockout=None``)."""


def _walk_rng(seed: int) -> random.Random:
    """A seeded generator for a reproducible walk (test times, never secrets)."""
    return random.Random(seed)  # noqa: S311 - deterministic on purpose


def _walk(
    counter: FailureCounter, user: str, limits: ThrottleConfig, rng: random.Random, *, steps: int
) -> None:
    """Drive ``admit_attempt`` for ``user`` through ``steps`` calls at times moved by
    :data:`_STEPS` (with an occasional reset) and check each answer, and the stored state,
    against :func:`mfa_core.throttle.admit` on a model of the state."""
    state = FailureState()
    now = _T
    for step in range(steps):
        if rng.random() < 0.08:
            counter.reset(user)
            state = FailureState()
        now = max(0.0, now + rng.choice(_STEPS))
        expected = throttle_admit(state, now, limits)
        got = counter.admit_attempt(user, now, limits)
        _equal(got, expected, f"admit_attempt() step {step} at {now} under {limits!r}")
        _equal(counter.get_failures(user), expected.state, f"get_failures() after step {step}")
        state = expected.state


class FailureCounterContract(StoreContract):
    """The rules every :class:`~mfa_core.ports.FailureCounter` follows, as tests.

    :meth:`~mfa_core.ports.FailureCounter.admit_attempt` must agree exactly with the
    reference :func:`mfa_core.throttle.admit` on long walks over many limits (delays,
    locks, ``lockout=None``, times going backwards), change nothing when it refuses, and
    admit exactly as many concurrent attempts as the limits allow. When the store also
    implements the fused operations of :class:`~mfa_core.ports.AttemptStore`
    (``begin_attempt``, ``claim_and_reset``) they are tested too; set
    :attr:`attempt_store` to ``True`` to require them, ``False`` to skip them.
    """

    attempt_store: bool | None = None
    """``None``: test the fused operations when the store has them; ``True``: require them
    (a store without them fails); ``False``: never test them."""

    def _counter(self) -> FailureCounter:
        counter: FailureCounter = self._new_store()
        return counter

    def _attempts(self) -> AttemptStore:
        store = self._new_store()
        fused = all(callable(getattr(store, name, None)) for name in _FUSED)
        if self.attempt_store is False or (self.attempt_store is None and not fused):
            raise unittest.SkipTest("the store does not implement the AttemptStore operations")
        _check(fused, "the store must implement begin_attempt() and claim_and_reset()")
        attempts: AttemptStore = store
        return attempts

    def test_failures_unknown_user_has_none(self) -> None:
        counter = self._counter()
        _equal(counter.get_failures(_uid("user")), FailureState(), "failures of a new user")

    def test_failures_admit_counts_the_attempt_before_the_check(self) -> None:
        counter = self._counter()
        user = _uid("user")
        limits = ThrottleConfig(max_failures=5, base_delay=0.0, max_delay=0.0, lockout=60.0)
        for count, now in enumerate((1_700_000_000.5, 1_700_000_001.25, 1_700_000_009.0), 1):
            admission = counter.admit_attempt(user, now, limits)
            expected = Admission(admitted=True, state=FailureState(count, now))
            _equal(admission, expected, f"admit_attempt() #{count}")
            _equal(counter.get_failures(user), admission.state, "get_failures() after admit")
            _check(type(admission.state.last_failure_at) is float, "last_failure_at is a float")
            _check(type(admission.state.count) is int, "count is an int")

    def test_failures_admit_agrees_with_the_reference(self) -> None:
        counter = self._counter()
        for index, limits in enumerate(_WALK_LIMITS):
            _walk(counter, _uid(f"walk{index}"), limits, _walk_rng(index), steps=36)

    def test_failures_admit_agrees_for_every_max_failures(self) -> None:
        counter = self._counter()
        for max_failures in range(1, 13):
            for lockout in (30.0, None):
                limits = ThrottleConfig(
                    max_failures=max_failures, base_delay=0.5, max_delay=4.0, lockout=lockout
                )
                rng = _walk_rng(1000 + max_failures)
                _walk(counter, _uid(f"max{max_failures}"), limits, rng, steps=2 * max_failures + 4)

    def test_failures_refusal_changes_nothing(self) -> None:
        counter = self._counter()
        user = _uid("user")
        limits = ThrottleConfig(max_failures=3, base_delay=10.0, max_delay=20.0, lockout=100.0)
        first = counter.admit_attempt(user, _T, limits)
        _equal(first, Admission(True, FailureState(1, _T)), "the first attempt")
        for now in (_T, _T + 9.5, _T - 50.0):  # within the 10 s delay, or behind it
            refused = counter.admit_attempt(user, now, limits)
            _equal(refused, Admission(False, FailureState(1, _T)), f"a delayed attempt at {now}")
            _equal(counter.get_failures(user), FailureState(1, _T), "state after a refusal")
        _equal(counter.admit_attempt(user, _T + 10, limits).state, FailureState(2, _T + 10), "#2")
        _equal(counter.admit_attempt(user, _T + 30, limits).state, FailureState(3, _T + 30), "#3")
        for now in (_T + 30, _T + 129.9, _T + 1.0):  # locked for 100 s from the latest
            refused = counter.admit_attempt(user, now, limits)
            _equal(refused, Admission(False, FailureState(3, _T + 30)), f"locked at {now}")
        _equal(counter.get_failures(user), FailureState(3, _T + 30), "state while locked")
        again = counter.admit_attempt(user, _T + 130, limits)  # the lock ran out
        _equal(again, Admission(True, FailureState(4, _T + 130)), "after the lock")
        _equal(
            counter.admit_attempt(user, _T + 131, limits),
            Admission(False, FailureState(4, _T + 130)),
            "locked again at once",
        )

    def test_failures_lockout_none_locks_until_reset(self) -> None:
        counter = self._counter()
        user = _uid("user")
        limits = ThrottleConfig(max_failures=2, base_delay=0.0, max_delay=0.0, lockout=None)
        for count in (1, 2):
            _check(counter.admit_attempt(user, _T + count, limits).admitted, f"attempt {count}")
        for now in (_T + 3, _T + 86400 * 365 * 5, 0.0):
            _equal(
                counter.admit_attempt(user, now, limits),
                Admission(False, FailureState(2, _T + 2)),
                f"an attempt at {now} while locked for ever",
            )
        counter.reset(user)
        _equal(
            counter.admit_attempt(user, _T + 4, limits),
            Admission(True, FailureState(1, _T + 4)),
            "the first attempt after an unlock",
        )

    def test_failures_time_going_backwards_never_moves_the_time_back(self) -> None:
        # Two app servers with slightly different clocks: a delay or a lock never shrinks.
        counter = self._counter()
        user = _uid("user")
        limits = ThrottleConfig(max_failures=10, base_delay=0.0, max_delay=0.0, lockout=900.0)
        _equal(counter.admit_attempt(user, _T + 10, limits).state, FailureState(1, _T + 10), "1")
        _equal(counter.admit_attempt(user, _T + 4, limits).state, FailureState(2, _T + 10), "2")
        _equal(counter.get_failures(user), FailureState(2, _T + 10), "stored after a late clock")
        _equal(counter.admit_attempt(user, _T + 11, limits).state, FailureState(3, _T + 11), "3")
        _equal(counter.admit_attempt(user, 5, limits).state, FailureState(4, _T + 11), "an int")

    def test_failures_admit_refuses_bad_input_and_changes_nothing(self) -> None:
        counter: Any = self._counter()  # Any: the arguments below are deliberately wrong
        user = _uid("user")
        limits = ThrottleConfig()
        counter.admit_attempt(user, _T, ThrottleConfig(base_delay=0.0))
        before = counter.get_failures(user)
        bad_calls: list[tuple[str, Callable[[], object]]] = [
            ("now=nan", lambda: counter.admit_attempt(user, math.nan, limits)),
            ("now=inf", lambda: counter.admit_attempt(user, math.inf, limits)),
            ("now='1'", lambda: counter.admit_attempt(user, "1", limits)),
            ("now=None", lambda: counter.admit_attempt(user, None, limits)),
            ("limits=None", lambda: counter.admit_attempt(user, _T + 60, None)),
            ("limits=dict", lambda: counter.admit_attempt(user, _T + 60, {"max_failures": 1})),
        ]
        for what, call in bad_calls:
            _raises(InvalidParameter, call, f"admit_attempt() with {what}")
        _equal(counter.get_failures(user), before, "state after refused bad input")

    def test_failures_reset_forgets_and_counting_restarts(self) -> None:
        counter = self._counter()
        user = _uid("user")
        limits = ThrottleConfig(max_failures=3, base_delay=0.0, max_delay=0.0, lockout=900.0)
        for i in range(4):
            counter.admit_attempt(user, _T + i, limits)
        _equal(counter.get_failures(user), FailureState(3, _T + 2), "locked before reset()")
        counter.reset(user)
        _equal(counter.get_failures(user), FailureState(), "failures after reset()")
        _equal(
            counter.admit_attempt(user, _T + 3, limits),
            Admission(True, FailureState(1, _T + 3)),
            "first attempt after reset()",
        )
        counter.reset(_uid("nobody"))  # resetting an unknown user is not an error

    def test_failures_are_counted_per_user(self) -> None:
        counter = self._counter()
        alice, bob = _uid("alice"), _uid("bob")
        limits = ThrottleConfig(max_failures=3, base_delay=0.0, max_delay=0.0, lockout=900.0)
        for i in range(4):
            counter.admit_attempt(alice, _T + i, limits)
        _equal(
            counter.admit_attempt(bob, _T + 5, limits),
            Admission(True, FailureState(1, _T + 5)),
            "bob is not locked by alice's attempts",
        )
        _equal(counter.get_failures(alice), FailureState(3, _T + 2), "alice's failures")
        counter.reset(alice)
        _equal(counter.get_failures(bob), FailureState(1, _T + 5), "bob after alice's reset")
        _equal(counter.get_failures(alice), FailureState(), "alice after her reset")

    def test_failures_admit_race_admits_exactly_max_failures(self) -> None:
        counter = self._counter()
        user = _uid("user")
        limits = _NO_DELAY
        threads = self.race_threads
        expected = min(threads, limits.max_failures)

        def check_round(round_: int) -> None:
            _equal(counter.get_failures(user).count, expected, f"count after round {round_}")
            counter.reset(user)

        results = _race(
            threads,
            self.race_rounds,
            lambda round_, thread: counter.admit_attempt(user, _T + round_, limits),
            after_round=check_round,
        )
        for round_, outcomes in enumerate(results):
            admitted = sorted(a.state.count for a in outcomes if a.admitted)
            _equal(admitted, list(range(1, expected + 1)), f"admitted counts, round {round_}")
            refused = {a.state for a in outcomes if not a.admitted}
            _check(
                refused <= {FailureState(limits.max_failures, _T + round_)},
                f"refusals of round {round_} report the locked state: {refused!r}",
            )

    def test_failures_admit_race_with_delays_admits_one_per_instant(self) -> None:
        counter = self._counter()
        user = _uid("user")
        limits = ThrottleConfig()  # 1, 2, 4 ... 60 s delays, locked after 10
        rounds = min(self.race_rounds, limits.max_failures)
        results = _race(
            self.race_threads,
            rounds,
            lambda round_, thread: counter.admit_attempt(user, _T + 120.0 * round_, limits),
        )
        for round_, outcomes in enumerate(results):
            _equal(sum(a.admitted for a in outcomes), 1, f"admitted at one instant, {round_}")
        _equal(counter.get_failures(user), FailureState(rounds, _T + 120.0 * (rounds - 1)), "end")

    def test_failures_burst_from_threads_is_counted_exactly(self) -> None:
        counter = self._counter()
        user = _uid("user")
        limits = ThrottleConfig(max_failures=100, base_delay=0.0, max_delay=0.0, lockout=900.0)
        per_thread = self.burst_per_thread
        results = _race(
            self.race_threads,
            per_thread,
            lambda round_, thread: counter.admit_attempt(user, _T + round_, limits),
        )
        total = min(self.race_threads * per_thread, limits.max_failures)
        admitted = [a for outcomes in results for a in outcomes if a.admitted]
        counts = sorted(a.state.count for a in admitted)
        _equal(counts, list(range(1, total + 1)), "counts admitted by concurrent attempts")
        _equal(counter.get_failures(user).count, total, "count after the burst")

    # -- the fused operations of AttemptStore (when the store has them) ------------------

    def test_attempts_begin_agrees_with_admit_then_list(self) -> None:
        store = self._attempts()
        user, other = _uid("user"), _uid("user")
        mine = [_credential(user, created_at=1_700_000_000.0 + i) for i in (2, 0, 1)]
        for credential in (*mine, _credential(other)):
            store.add(credential)
        listed = sorted(mine, key=lambda c: c.created_at)
        limits = ThrottleConfig(max_failures=4, base_delay=2.0, max_delay=8.0, lockout=60.0)
        state = FailureState()
        rng = _walk_rng(7)
        now = _T
        for step in range(30):
            now = max(0.0, now + rng.choice(_STEPS))
            expected = throttle_admit(state, now, limits)
            admission, credentials = store.begin_attempt(user, now, limits)
            _equal(admission, expected, f"begin_attempt() step {step} at {now}")
            if admission.admitted:
                _equal(list(credentials), listed, f"credentials of an admitted attempt, {step}")
            else:
                _equal(list(credentials), [], f"credentials of a refused attempt, {step}")
            state = expected.state
            _equal(store.get_failures(user), state, f"state after begin_attempt(), {step}")
            if step % 11 == 10:
                store.reset(user)
                state = FailureState()
        nobody = _uid("nobody")
        admission, credentials = store.begin_attempt(nobody, _T, limits)
        _equal(admission, Admission(True, FailureState(1, _T)), "a user without credentials")
        _equal(list(credentials), [], "credentials of a user without any")
        _equal(store.get_failures(other), FailureState(), "the other user is untouched")

    def test_attempts_claim_and_reset_resets_only_when_the_claim_wins(self) -> None:
        store = self._attempts()
        user, other = _uid("user"), _uid("user")
        credential = _credential(user, status=CredentialState.ACTIVE)
        store.add(credential)
        limits = _NO_DELAY
        for i in range(3):
            store.admit_attempt(user, _T + i, limits)
            store.admit_attempt(other, _T + i, limits)
        _check(store.claim_and_reset(credential.id, 5, drift=1, user_id=user), "a winning claim")
        _equal(store.get_failures(user), FailureState(), "failures after a winning claim")
        _equal(store.get_failures(other), FailureState(3, _T + 2), "the other user's failures")
        _equal(
            store.get(credential.id),
            attrs.evolve(credential, last_accepted=5, drift=1),
            "credential after claim_and_reset()",
        )
        store.admit_attempt(user, _T + 10, limits)
        store.admit_attempt(user, _T + 11, limits)
        for value in (5, 4):
            _check(
                not store.claim_and_reset(credential.id, value, drift=2, user_id=user),
                f"a replayed claim of {value}",
            )
        _check(
            not store.claim_and_reset(_uid("missing"), 9, drift=0, user_id=user),
            "a claim of an unknown credential",
        )
        _equal(store.get_failures(user), FailureState(2, _T + 11), "failures after lost claims")
        _equal(
            store.get(credential.id),
            attrs.evolve(credential, last_accepted=5, drift=1),
            "credential after lost claims",
        )
        _check(
            store.claim_and_reset(credential.id, 6, drift=0, user_id=other),
            "a winning claim that resets another user id",
        )
        _equal(store.get_failures(other), FailureState(), "the named user is reset")
        _equal(store.get_failures(user), FailureState(2, _T + 11), "the owner is not")

    def test_attempts_begin_race_admits_exactly_max_failures(self) -> None:
        store = self._attempts()
        user = _uid("user")
        credential = _credential(user)
        store.add(credential)
        limits = _NO_DELAY
        [outcomes] = _race(
            self.race_threads, 1, lambda round_, thread: store.begin_attempt(user, _T, limits)
        )
        admitted = [listed for admission, listed in outcomes if admission.admitted]
        expected = min(self.race_threads, limits.max_failures)
        _equal(len(admitted), expected, "attempts admitted by concurrent begin_attempt()")
        _check(all(list(c) == [credential] for c in admitted), "admitted ones get the list")
        refused = [listed for admission, listed in outcomes if not admission.admitted]
        _check(all(len(c) == 0 for c in refused), "refused ones get no credentials")
        _equal(store.get_failures(user).count, expected, "count after the race")

    def test_attempts_claim_and_reset_race_has_exactly_one_winner(self) -> None:
        store = self._attempts()
        user = _uid("user")
        credential = _credential(user, status=CredentialState.ACTIVE)
        store.add(credential)

        def fail_twice(round_: int) -> None:
            _equal(store.get_failures(user), FailureState(), f"reset after round {round_}")
            store.admit_attempt(user, _T + round_, _NO_DELAY)
            store.admit_attempt(user, _T + round_, _NO_DELAY)

        fail_twice(-1)
        results = _race(
            self.race_threads,
            self.race_rounds,
            lambda round_, thread: store.claim_and_reset(
                credential.id, round_, drift=thread, user_id=user
            ),
            after_round=fail_twice,
        )
        for round_, outcomes in enumerate(results):
            _equal(outcomes.count(True), 1, f"winners of claim_and_reset({round_})")
        got = _stored(store, credential.id, "get() after the races")
        _equal(got.last_accepted, self.race_rounds - 1, "last_accepted after the races")


# -- recovery codes and out-of-band challenges (issue 4) -----------------------------------

_TEST_ARGON2: Final = Argon2Params.fast_for_testing()


def _recovery_records(count: int) -> tuple[RecoveryRecord, ...]:
    """``count`` records with distinct ids and tags and real (cheap) Argon2id hashes."""
    return tuple(
        RecoveryRecord(
            id=_uid("rc"),
            tag=secrets.token_hex(TAG_BYTES),
            phc=hash_recovery_code(_random_recovery_code(), _TEST_ARGON2),
        )
        for _ in range(count)
    )


def _random_recovery_code() -> str:
    return "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(16))


def _by_id(records: Sequence[RecoveryRecord]) -> dict[str, RecoveryRecord]:
    return {record.id: record for record in records}


def _oob_record(challenge_id: str | None = None, *, user_id: str | None = None) -> OOBRecord:
    """A fresh challenge (the code itself is thrown away) that tolerates 20 attempts."""
    return oob_issue(
        user_id=user_id if user_id is not None else _uid("user"),
        purpose=OOBPurpose.LOGIN,
        channel=OOBChannel.SMS,
        destination="+15550100167",
        now=1_700_000_000.0,
        key=secrets.token_bytes(32),
        config=OOBConfig(max_attempts=MAX_ATTEMPTS_LIMIT),
        challenge_id=challenge_id if challenge_id is not None else _uid("ch"),
    ).record


_WINDOW: Final = 1_800_000_000.0
"""A send window's start used by the contract (a multiple of an hour, in the future of the
time of writing, so a store that expires counters by its own clock keeps them)."""


def _present(record: OOBRecord | None, what: str) -> OOBRecord:
    if record is None:
        raise AssertionError(f"{what}: get_challenge() returned None for a stored challenge")
    return record


def _same_challenge(actual: OOBRecord | None, expected: OOBRecord, what: str) -> OOBRecord:
    # ``code_hash`` is left out of the record's ``==`` (a secret): compare it on its own.
    found = _present(actual, what)
    _equal(found, expected, what)
    _check(hmac.compare_digest(found.code_hash, expected.code_hash), f"{what}: code_hash")
    _equal(found.destination_hash, expected.destination_hash, f"{what}: destination_hash")
    return found


class RecoveryCodeStoreContract(StoreContract):
    """The rules every :class:`~mfa_core.ports.RecoveryCodeStore` follows, as tests.

    Races use :attr:`code_race_threads` threads (16 by default) for
    :attr:`StoreContract.race_rounds` rounds.
    """

    code_race_threads: int = 16
    """Threads released at once in the recovery-code and challenge races."""

    def _codes(self) -> RecoveryCodeStore:
        store: RecoveryCodeStore = self._new_store()
        return store

    def test_recovery_codes_of_an_unknown_user_are_empty(self) -> None:
        store = self._codes()
        _equal(list(store.recovery_codes(_uid("user"))), [], "recovery_codes() of a new user")

    def test_recovery_codes_round_trip_every_field(self) -> None:
        store = self._codes()
        user = _uid("user")
        records = (*_recovery_records(4), attrs.evolve(_recovery_records(1)[0], used_at=12.5))
        store.replace_recovery_codes(user, records)
        stored = list(store.recovery_codes(user))
        _check(all(type(r) is RecoveryRecord for r in stored), "records are RecoveryRecord")
        _equal(_by_id(stored), _by_id(records), "records after replace_recovery_codes()")
        used_at = _by_id(stored)[records[-1].id].used_at
        _check(type(used_at) is float, "used_at comes back as a float")

    def test_recovery_codes_replace_kills_the_old_set(self) -> None:
        store = self._codes()
        user = _uid("user")
        old = _recovery_records(3)
        store.replace_recovery_codes(user, old)
        store.consume_recovery_code(user, old[0].id, 1_700_000_000.0)
        new = _recovery_records(4)
        store.replace_recovery_codes(user, new)
        _equal(_by_id(store.recovery_codes(user)), _by_id(new), "set after a replacement")
        for record in old:
            _equal(
                store.consume_recovery_code(user, record.id, 1_700_000_001.0),
                None,
                "consuming a code of a replaced set",
            )
        store.replace_recovery_codes(user, ())
        _equal(list(store.recovery_codes(user)), [], "set after replacing with nothing")

    def test_recovery_codes_consume_counts_down_once_per_code(self) -> None:
        store = self._codes()
        user = _uid("user")
        records = _recovery_records(3)
        store.replace_recovery_codes(user, records)
        _equal(store.consume_recovery_code(user, records[1].id, 1_700_000_000.5), 2, "left")
        _equal(store.consume_recovery_code(user, records[1].id, 1_700_000_009.0), None, "reuse")
        _equal(store.consume_recovery_code(user, _uid("rc"), 1_700_000_009.0), None, "unknown")
        stored = _by_id(store.recovery_codes(user))
        _equal(stored[records[1].id].used_at, 1_700_000_000.5, "used_at of the consumed code")
        _equal(stored[records[0].id].used_at, None, "used_at of an unconsumed code")
        _equal(store.consume_recovery_code(user, records[0].id, 1_700_000_010.0), 1, "left")
        _equal(store.consume_recovery_code(user, records[2].id, 1_700_000_011.0), 0, "left")

    def test_recovery_codes_are_kept_per_user(self) -> None:
        store = self._codes()
        alice, bob = _uid("alice"), _uid("bob")
        alice_codes, bob_codes = _recovery_records(2), _recovery_records(2)
        store.replace_recovery_codes(alice, alice_codes)
        store.replace_recovery_codes(bob, bob_codes)
        _equal(
            store.consume_recovery_code(bob, alice_codes[0].id, 1_700_000_000.0),
            None,
            "consuming another user's code",
        )
        _equal(
            store.update_recovery_hash(bob, alice_codes[0].id, bob_codes[0].phc),
            False,
            "re-hashing another user's code",
        )
        store.replace_recovery_codes(bob, ())
        _equal(_by_id(store.recovery_codes(alice)), _by_id(alice_codes), "alice's set")

    def test_recovery_codes_update_hash_keeps_everything_else(self) -> None:
        store = self._codes()
        user = _uid("user")
        records = _recovery_records(2)
        store.replace_recovery_codes(user, records)
        store.consume_recovery_code(user, records[0].id, 1_700_000_099.0)
        new_phc = _recovery_records(1)[0].phc
        _equal(store.update_recovery_hash(user, records[0].id, new_phc), True, "re-hash")
        stored = _by_id(store.recovery_codes(user))
        _equal(
            stored[records[0].id],
            attrs.evolve(records[0], phc=new_phc, used_at=1_700_000_099.0),
            "re-hashed record",
        )
        _equal(stored[records[1].id], records[1], "the other record")
        _equal(store.update_recovery_hash(user, _uid("rc"), new_phc), False, "unknown id")

    def test_recovery_codes_race_for_one_code_has_exactly_one_winner(self) -> None:
        store = self._codes()
        user = _uid("user")
        records = _recovery_records(self.race_rounds + 1)
        store.replace_recovery_codes(user, records)
        results = _race(
            self.code_race_threads,
            self.race_rounds,
            lambda round_, thread: store.consume_recovery_code(
                user, records[round_].id, 1_700_000_000.0 + round_
            ),
        )
        for round_, outcomes in enumerate(results):
            winners = [left for left in outcomes if left is not None]
            _equal(winners, [self.race_rounds - round_], f"winners of round {round_}")

    def test_recovery_codes_race_for_distinct_codes_counts_exactly(self) -> None:
        store = self._codes()
        user = _uid("user")
        threads = self.code_race_threads
        records = _recovery_records(threads)
        store.replace_recovery_codes(user, records)
        [outcomes] = _race(
            threads,
            1,
            lambda round_, thread: store.consume_recovery_code(user, records[thread].id, 5.0),
        )
        _equal(sorted(o for o in outcomes if o is not None), list(range(threads)), "codes left")


class OOBChallengeStoreContract(StoreContract):
    """The rules every :class:`~mfa_core.ports.OOBChallengeStore` follows, as tests.

    Races use :attr:`code_race_threads` threads (16 by default); the send-counter race has
    each of them call ``count_send`` :attr:`send_race_per_thread` times (20 by default) and
    expects every count from 1 to 320 exactly once.
    """

    code_race_threads: int = 16
    """Threads released at once in the challenge races."""

    def _challenges(self) -> OOBChallengeStore:
        store: OOBChallengeStore = self._new_store()
        return store

    def test_challenges_round_trip_every_field(self) -> None:
        store = self._challenges()
        record = attrs.evolve(
            _oob_record(),
            channel=OOBChannel.EMAIL,
            purpose=OOBPurpose.PHONE_CONFIRMATION,
            destination_hint="a***@example.com",
            digits=8,
            attempts=3,
            resend_count=2,
            generation=2,
            issued_at=1_700_000_000.25,
            expires_at=1_700_000_180.25,
        )
        store.put_challenge(record)
        stored = _same_challenge(
            store.get_challenge(record.challenge_id), record, "challenge after put_challenge()"
        )
        _check(type(stored.used) is bool, "used comes back as a bool")
        _check(type(stored.purpose) is OOBPurpose, "purpose comes back as an OOBPurpose")
        _check(type(stored.channel) is OOBChannel, "channel comes back as an OOBChannel")
        _check(type(stored.issued_at) is float, "issued_at comes back as a float")
        _equal(store.get_challenge(_uid("ch")), None, "get_challenge() of an unknown id")

    def test_challenges_put_refuses_an_existing_id(self) -> None:
        store = self._challenges()
        record = _oob_record()
        store.put_challenge(record)
        _raises(StoreError, lambda: store.put_challenge(_oob_record(record.challenge_id)), "dup")
        _same_challenge(store.get_challenge(record.challenge_id), record, "after a refused put")

    def test_challenges_replace_is_a_compare_and_set_on_generation(self) -> None:
        store = self._challenges()
        record = _oob_record()
        store.put_challenge(record)
        newer = attrs.evolve(
            _oob_record(record.challenge_id, user_id=record.user_id), generation=1, resend_count=1
        )
        _equal(store.replace_challenge(newer, expected_generation=1), False, "stale generation")
        _same_challenge(store.get_challenge(record.challenge_id), record, "after a lost CAS")
        _equal(store.replace_challenge(newer, expected_generation=0), True, "replace")
        _same_challenge(store.get_challenge(record.challenge_id), newer, "after a resend")
        _equal(
            store.replace_challenge(_oob_record(), expected_generation=0),
            False,
            "replacing an unknown challenge",
        )
        used = attrs.evolve(newer, used=True)
        _equal(store.update_challenge(used, expected=newer), True, "marking it used")
        again = attrs.evolve(newer, generation=2)
        _equal(store.replace_challenge(again, expected_generation=1), False, "resending a used")
        _same_challenge(store.get_challenge(record.challenge_id), used, "a used challenge stays")

    def test_challenges_update_is_a_compare_and_set(self) -> None:
        store = self._challenges()
        record = _oob_record()
        store.put_challenge(record)
        one = attrs.evolve(record, attempts=1)
        _equal(store.update_challenge(one, expected=record), True, "first attempt")
        _equal(store.update_challenge(one, expected=record), False, "stale attempts")
        two = attrs.evolve(one, attempts=2)
        _equal(
            store.update_challenge(two, expected=attrs.evolve(one, generation=5)),
            False,
            "stale generation",
        )
        _equal(
            store.update_challenge(two, expected=attrs.evolve(one, used=True)),
            False,
            "stale used flag",
        )
        _same_challenge(store.get_challenge(record.challenge_id), one, "after lost CASes")
        used = attrs.evolve(one, used=True)
        _equal(store.update_challenge(used, expected=one), True, "marking it used")
        _same_challenge(store.get_challenge(record.challenge_id), used, "after marking used")
        missing = _oob_record()
        _equal(store.update_challenge(missing, expected=missing), False, "unknown challenge")

    def test_challenges_delete(self) -> None:
        store = self._challenges()
        record = _oob_record()
        store.put_challenge(record)
        _equal(store.delete_challenge(record.challenge_id), True, "delete_challenge()")
        _equal(store.get_challenge(record.challenge_id), None, "get after delete")
        _equal(store.delete_challenge(record.challenge_id), False, "second delete_challenge()")

    def test_challenges_race_to_use_a_code_has_exactly_one_winner(self) -> None:
        store = self._challenges()
        records = [_oob_record() for _ in range(self.race_rounds)]
        for record in records:
            store.put_challenge(record)
        results = _race(
            self.code_race_threads,
            self.race_rounds,
            lambda round_, thread: store.update_challenge(
                attrs.evolve(records[round_], used=True), expected=records[round_]
            ),
        )
        for round_, outcomes in enumerate(results):
            _equal(outcomes.count(True), 1, f"winners of round {round_}")

    def test_challenges_concurrent_attempts_are_counted_exactly(self) -> None:
        store = self._challenges()
        record = _oob_record()
        store.put_challenge(record)
        threads = min(self.code_race_threads, MAX_ATTEMPTS_LIMIT)

        def add_attempt(round_: int, thread: int) -> int:
            # read, decide, compare-and-set; on a lost CAS read again (as the service does)
            for tries in range(1, 100 * threads):
                current = _present(store.get_challenge(record.challenge_id), "during the race")
                bumped = attrs.evolve(current, attempts=current.attempts + 1)
                if store.update_challenge(bumped, expected=current):
                    return tries
            raise AssertionError("an attempt was never written")

        _race(threads, 1, add_attempt)
        stored = store.get_challenge(record.challenge_id)
        _equal(None if stored is None else stored.attempts, threads, "attempts after the race")

    def test_challenges_race_to_resend_has_exactly_one_winner(self) -> None:
        store = self._challenges()
        record = _oob_record()
        store.put_challenge(record)
        threads = self.code_race_threads
        resends = [
            [
                attrs.evolve(
                    _oob_record(record.challenge_id, user_id=record.user_id),
                    generation=round_ + 1,
                    resend_count=round_ + 1,
                )
                for _ in range(threads)
            ]
            for round_ in range(self.race_rounds)
        ]
        results = _race(
            threads,
            self.race_rounds,
            lambda round_, thread: store.replace_challenge(
                resends[round_][thread], expected_generation=round_
            ),
        )
        for round_, outcomes in enumerate(results):
            _equal(outcomes.count(True), 1, f"winners of resend round {round_}")
        winner = resends[-1][results[-1].index(True)]
        _same_challenge(store.get_challenge(record.challenge_id), winner, "the last winner")

    # -- send counters -------------------------------------------------------------------

    send_race_per_thread: int = 20
    """``count_send`` calls per thread in the send-counter race."""

    def test_send_counts_go_up_one_by_one(self) -> None:
        store = self._challenges()
        key = _uid("u:user")
        counts = [store.count_send(key, _WINDOW, _WINDOW + 3600) for _ in range(5)]
        _equal(counts, [1, 2, 3, 4, 5], "count_send() in sequence")

    def test_send_counters_are_per_key_and_window(self) -> None:
        store = self._challenges()
        first, second = _uid("u:user"), _uid("d:" + "ab" * 20)
        for _ in range(3):
            store.count_send(first, _WINDOW, _WINDOW + 3600)
        _equal(store.count_send(second, _WINDOW, _WINDOW + 3600), 1, "another key")
        _equal(store.count_send(first, _WINDOW + 3600, _WINDOW + 7200), 1, "the next window")
        _equal(store.count_send(first, _WINDOW, _WINDOW + 3600), 4, "the first counter again")
        _equal(store.count_send(first, _WINDOW + 60, _WINDOW + 120), 1, "a shorter window")
        longest = "k" * 128
        _equal(store.count_send(longest, _WINDOW, _WINDOW + 3600), 1, "a 128-character key")

    def test_send_count_refuses_bad_keys(self) -> None:
        store: Any = self._challenges()  # Any: the keys below are deliberately not all str
        bad_keys: tuple[object, ...] = ("", "k" * 129, None, 7, b"u:bytes")
        for bad in bad_keys:

            def count(key: object = bad) -> object:
                return store.count_send(key, _WINDOW, _WINDOW + 3600)

            _raises(InvalidParameter, count, f"count_send() with the key {bad!r}")

    def test_send_count_race_gives_distinct_counts(self) -> None:
        store = self._challenges()
        key = _uid("d:race")
        per_thread = self.send_race_per_thread
        threads = self.code_race_threads
        results = _race(
            threads,
            per_thread,
            lambda round_, thread: store.count_send(key, _WINDOW, _WINDOW + 3600),
        )
        counts = sorted(count for outcomes in results for count in outcomes)
        total = threads * per_thread
        _equal(counts, list(range(1, total + 1)), "counts returned by concurrent count_send()")
        _equal(store.count_send(key, _WINDOW, _WINDOW + 3600), total + 1, "count after the race")

    def test_challenges_keep_their_destination_hash(self) -> None:
        store = self._challenges()
        record = _oob_record()
        _check(record.destination_hash is not None, "an issued record binds its destination")
        unbound = attrs.evolve(_oob_record(), destination_hash=None)  # an older record
        store.put_challenge(record)
        store.put_challenge(unbound)
        _same_challenge(store.get_challenge(record.challenge_id), record, "a bound challenge")
        _same_challenge(store.get_challenge(unbound.challenge_id), unbound, "an unbound one")
        rebound = attrs.evolve(unbound, generation=1, resend_count=1, destination_hash=b"\x01" * 32)
        _equal(store.replace_challenge(rebound, expected_generation=0), True, "replace")
        _same_challenge(store.get_challenge(unbound.challenge_id), rebound, "after a replace")
        cleared = attrs.evolve(rebound, attempts=1, destination_hash=None)
        _equal(store.update_challenge(cleared, expected=rebound), True, "update")
        _same_challenge(store.get_challenge(unbound.challenge_id), cleared, "after an update")


def _issued_at(now: float, user_id: str) -> OOBRecord:
    return oob_issue(
        user_id=user_id,
        purpose=OOBPurpose.LOGIN,
        channel=OOBChannel.EMAIL,
        destination="someone@example.org",
        now=now,
        key=secrets.token_bytes(32),
        config=OOBConfig(),
        challenge_id=_uid("ch"),
    ).record


class StoreMaintenanceContract(StoreContract):
    """The rules of the optional :class:`~mfa_core.ports.StoreMaintenance` port, as tests
    (the store must also be a :class:`~mfa_core.ports.CredentialStore` and an
    :class:`~mfa_core.ports.OOBChallengeStore`). Other data in a shared database is
    tolerated: each test checks only the ids it made."""

    def _maintained(self) -> Any:
        store = self._new_store()
        _check(isinstance(store, StoreMaintenance), "the store implements StoreMaintenance")
        return store

    def test_maintenance_credential_ids_walks_every_id_once_in_order(self) -> None:
        store = self._maintained()
        user = _uid("user")
        mine = {_uid("cred") for _ in range(7)} | {"cred-\u00e9-" + uuid.uuid4().hex}
        for credential_id in mine:
            store.add(_credential(user, id=credential_id))
        seen: list[str] = []
        after: str | None = None
        while True:
            page = list(store.credential_ids(after, 3))
            _check(len(page) <= 3, "a page holds at most limit ids")
            _check(page == sorted(page), "a page is in ascending order")
            if after is not None:
                _check(all(cid > after for cid in page), "a page starts after 'after'")
            if not page:
                break
            seen += page
            after = page[-1]
        _equal(len(seen), len(set(seen)), "no id is returned twice")
        _check(mine <= set(seen), "every stored id is walked")
        _equal([cid for cid in seen if cid in mine], sorted(mine), "own ids in order")
        deleted = sorted(mine)[0]
        store.delete(deleted)
        _check(deleted not in store.credential_ids(None, 10_000), "a deleted id is gone")

    def test_maintenance_credential_ids_refuses_bad_arguments(self) -> None:
        store = self._maintained()
        bad: tuple[tuple[object, object], ...] = (
            (None, 0),
            (None, 10_001),
            (None, True),
            ("", 5),
            (5, 5),
        )
        for after, limit in bad:

            def page(a: object = after, n: object = limit) -> object:
                return store.credential_ids(a, n)

            _raises(InvalidParameter, page, f"credential_ids({after!r}, {limit!r})")

    def test_maintenance_purge_pending_removes_only_expired_enrolments(self) -> None:
        store = self._maintained()
        user = _uid("user")
        at = _WINDOW
        old = _credential(user, created_at=at, pending_until=at + 600)
        fresh = _credential(user, created_at=at + 1, pending_until=at + 5000)
        active = _credential(
            user,
            created_at=at + 2,
            status=CredentialState.ACTIVE,
            pending_until=at + 600,
            confirmed_at=at + 60,
            renewed_at=at + 60,
        )
        for credential in (old, fresh, active):
            store.add(credential)
        _check(store.purge_pending(at + 1000) >= 1, "the expired enrolment is counted")
        _check(store.get(old.id) is None, "the expired enrolment is removed")
        _equal(
            [c.id for c in store.list_for_user(user)],
            [fresh.id, active.id],
            "the live enrolment and the active credential stay, listed",
        )
        _equal(store.purge_pending(at + 1000), 0, "a second purge removes nothing")
        _raises(InvalidParameter, lambda: store.purge_pending(-1.0), "purge_pending(-1)")

    def test_maintenance_purge_challenges_removes_only_expired_ones(self) -> None:
        store = self._maintained()
        user = _uid("user")
        old = _issued_at(_WINDOW, user)
        live = _issued_at(_WINDOW + 10_000, user)
        store.put_challenge(old)
        store.put_challenge(live)
        _check(store.purge_challenges(old.expires_at + 1) >= 1, "the expired one is counted")
        _check(store.get_challenge(old.challenge_id) is None, "the expired one is removed")
        _check(store.get_challenge(live.challenge_id) is not None, "the live one stays")
        _raises(InvalidParameter, lambda: store.purge_challenges(math.inf), "purge_challenges(inf)")

    def test_maintenance_purge_pending_never_removes_a_confirmed_enrolment(self) -> None:
        # Each round: one expired enrolment per confirming thread, and purging threads
        # racing them. A confirmation (a compare-and-set) that won must leave an ACTIVE
        # credential; one that lost must find it purged. Never both, never neither.
        store = self._maintained()
        user = _uid("user")
        confirmers = max(2, self.race_threads // 4)
        threads = 2 * confirmers
        rounds = 3
        at = _WINDOW
        batches = [
            [_credential(user, created_at=at, pending_until=at + 60) for _ in range(confirmers)]
            for _ in range(rounds)
        ]
        for batch in batches:
            for credential in batch:
                store.add(credential)

        def act(round_: int, thread: int) -> object:
            if thread >= confirmers:
                return store.purge_pending(at + 120)
            pending = batches[round_][thread]
            confirmed = attrs.evolve(
                pending, status=CredentialState.ACTIVE, confirmed_at=at + 30, renewed_at=at + 30
            )
            return store.update(confirmed, expected_version=0)

        results = _race(threads, rounds, act)
        for round_, outcome in enumerate(results):
            _check(all(type(n) is int for n in outcome[confirmers:]), "purge returns counts")
            for thread, credential in enumerate(batches[round_]):
                stored = store.get(credential.id)
                if outcome[thread] is True:
                    _check(
                        stored is not None and stored.status is CredentialState.ACTIVE,
                        "a confirmation that won survives the purge",
                    )
                else:
                    _check(stored is None, "a confirmation that lost found it purged")
