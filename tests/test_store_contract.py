"""The shipped contract suite run against every store in the package, the suite's own
teeth (deliberately broken stores must fail it), store-specific rules, and the fakes.
"""

from __future__ import annotations

import importlib.util
import inspect
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mfa_core import throttle
from mfa_core.errors import ErrorCode, InvalidParameter, StoreError, StoreUnavailable
from mfa_core.models import (
    Admission,
    Credential,
    CredentialKind,
    CredentialState,
    Event,
    EventType,
    FailureState,
)
from mfa_core.otp import Algorithm
from mfa_core.ports import (
    AttemptStore,
    CodeSender,
    CredentialStore,
    FailureCounter,
    OOBChallengeStore,
    RecoveryCodeStore,
)
from mfa_core.stores import MemoryStore, SQLiteStore
from mfa_core.testing import (
    CombinedStore,
    CredentialStoreContract,
    FailureCounterContract,
    FakeClock,
    FaultyStore,
    OOBChallengeStoreContract,
    RecordingEventSink,
    RecoveryCodeStoreContract,
    StoreMaintenanceContract,
)
from mfa_core.throttle import ThrottleConfig

T0 = 1_800_000_000.0
NO_DELAY = ThrottleConfig(max_failures=100, base_delay=0.0, max_delay=0.0, lockout=900.0)


def _load_host_adapters() -> ModuleType:
    path = Path(__file__).parent / "typing" / "host_adapters.py"
    spec = importlib.util.spec_from_file_location("host_adapters", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the contract suite against each store ------------------------------------------------


class TestMemoryStoreContract(
    CredentialStoreContract,
    FailureCounterContract,
    RecoveryCodeStoreContract,
    OOBChallengeStoreContract,
    StoreMaintenanceContract,
):
    attempt_store = True

    def make_store(self) -> MemoryStore:
        return MemoryStore()


class TestSQLiteStoreContract(
    CredentialStoreContract,
    FailureCounterContract,
    RecoveryCodeStoreContract,
    OOBChallengeStoreContract,
    StoreMaintenanceContract,
):
    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self.directory = tmp_path

    attempt_store = True

    def make_store(self) -> SQLiteStore:
        return SQLiteStore(self.directory / "contract.sqlite3")


class TestHostAdapterContract(CredentialStoreContract, FailureCounterContract):
    """The host-style store of tests/typing passes too (hosts can do what we ask)."""

    def make_store(self) -> Any:
        return _load_host_adapters().HostStore()


class TestHostRecoveryCodesContract(RecoveryCodeStoreContract):
    """The host-style recovery-code store of tests/typing passes the contract."""

    def make_store(self) -> Any:
        return _load_host_adapters().HostRecoveryCodes()


class TestHostChallengesContract(OOBChallengeStoreContract):
    """The host-style challenge store of tests/typing passes the contract."""

    def make_store(self) -> Any:
        return _load_host_adapters().HostChallenges()


# -- the suite has teeth: broken stores fail it ----------------------------------------------


class _ReadThenWriteClaim(MemoryStore):
    """A claim done as read, then write, in Python: the race the ports forbid."""

    def claim(self, credential_id: str, value: int, *, drift: int) -> bool:
        current = self.get(credential_id)
        if current is None or value <= current.last_accepted:
            return False
        time.sleep(0.002)  # widen the window between the read and the write
        self._credentials[credential_id] = (0, attrs.evolve(current, last_accepted=value))
        return True


class _UpdateOverwritesClaims(MemoryStore):
    """An update that writes the caller's whole credential, claimed values included."""

    def update(self, credential: Credential, *, expected_version: int) -> bool:
        current = self.get(credential.id)
        if current is None or current.version != expected_version:
            return False
        time.sleep(0.002)
        self._credentials[credential.id] = (
            0,
            attrs.evolve(credential, version=expected_version + 1),
        )
        return True


class _UnversionedUpdate(MemoryStore):
    """An update that ignores ``expected_version`` (last writer wins)."""

    def update(self, credential: Credential, *, expected_version: int) -> bool:
        current = self.get(credential.id)
        if current is None:
            return False
        time.sleep(0.002)
        self._credentials[credential.id] = (
            0,
            attrs.evolve(credential, version=current.version + 1),
        )
        return True


class _ReadThenWriteAdmit(MemoryStore):
    """Admission as get, decide, then set: concurrent attempts get lost (or over-admitted)."""

    def admit_attempt(self, user_id: str, now: float, limits: ThrottleConfig) -> Admission:
        old = self.get_failures(user_id)
        time.sleep(0.002)
        admission = throttle.admit(old, now, limits)
        if admission.admitted:
            self._failures[user_id] = admission.state
        return admission


class _ClockRewinds(MemoryStore):
    """Stores ``now`` as the latest failure even when it is earlier (a lock can shrink)."""

    def admit_attempt(self, user_id: str, now: float, limits: ThrottleConfig) -> Admission:
        admission = super().admit_attempt(user_id, now, limits)
        if admission.admitted:
            rewound = FailureState(admission.state.count, float(now))
            self._failures[user_id] = rewound
            return Admission(True, rewound)
        return admission


class _CountsRefusals(MemoryStore):
    """Counts a refused attempt too (a delay would never end)."""

    def admit_attempt(self, user_id: str, now: float, limits: ThrottleConfig) -> Admission:
        admission = super().admit_attempt(user_id, now, limits)
        if not admission.admitted:
            old = admission.state
            self._failures[user_id] = FailureState(old.count + 1, old.last_failure_at)
        return admission


class _LocksOneLate(MemoryStore):
    """Locks after ``max_failures + 1`` failures (one guess too many)."""

    def admit_attempt(self, user_id: str, now: float, limits: ThrottleConfig) -> Admission:
        late = attrs.evolve(limits, max_failures=min(100, limits.max_failures + 1))
        return super().admit_attempt(user_id, now, late)


class _ListsWhenRefused(MemoryStore):
    """``begin_attempt`` hands out the credentials even when the attempt is refused."""

    def begin_attempt(
        self, user_id: str, now: float, limits: ThrottleConfig
    ) -> tuple[Admission, Sequence[Credential]]:
        admission, _ = super().begin_attempt(user_id, now, limits)
        return admission, self.list_for_user(user_id)


class _ResetsOnALostClaim(MemoryStore):
    """``claim_and_reset`` resets the failures whether or not the claim won."""

    def claim_and_reset(self, credential_id: str, value: int, *, drift: int, user_id: str) -> bool:
        won = self.claim(credential_id, value, drift=drift)
        self.reset(user_id)
        return won


def _run_contract_test(contract: type[Any], store: Any, name: str) -> None:
    class Probe(contract):  # type: ignore[misc]
        race_threads = 8
        race_rounds = 4

        def make_store(self) -> Any:
            return store

    probe = Probe()
    try:
        getattr(probe, name)()
    finally:
        probe.teardown_method(None)


class _PurgeReadsThenDeletes(MemoryStore):
    """Finds the expired enrolments, then deletes them by id: a confirmation in between
    is lost."""

    def purge_pending(self, before: float) -> int:
        with self._lock:
            old = [
                c.id
                for _, c in self._credentials.values()
                if c.status is CredentialState.PENDING
                and c.pending_until is not None
                and c.pending_until < before
            ]
        time.sleep(0.002)
        return sum(1 for credential_id in old if self.delete(credential_id))


class _PurgeIgnoresTheDeadline(MemoryStore):
    """Removes every PENDING credential, expired or not."""

    def purge_pending(self, before: float) -> int:
        return super().purge_pending(float(2**62))  # the latest time a store accepts


@pytest.mark.parametrize(
    ("broken", "contract", "test"),
    [
        (
            _ReadThenWriteClaim,
            CredentialStoreContract,
            "test_credentials_claim_race_has_exactly_one_winner",
        ),
        (
            _UpdateOverwritesClaims,
            CredentialStoreContract,
            "test_credentials_update_is_a_compare_and_set_on_version",
        ),
        (
            _UpdateOverwritesClaims,
            CredentialStoreContract,
            "test_credentials_concurrent_claims_and_updates_do_not_undo_each_other",
        ),
        (
            _UnversionedUpdate,
            CredentialStoreContract,
            "test_credentials_update_race_has_exactly_one_winner",
        ),
        (
            _UnversionedUpdate,
            CredentialStoreContract,
            "test_credentials_update_with_stale_version_changes_nothing",
        ),
        (
            _ReadThenWriteAdmit,
            FailureCounterContract,
            "test_failures_burst_from_threads_is_counted_exactly",
        ),
        (
            _ReadThenWriteAdmit,
            FailureCounterContract,
            "test_failures_admit_race_admits_exactly_max_failures",
        ),
        (
            _ReadThenWriteAdmit,
            FailureCounterContract,
            "test_failures_admit_race_with_delays_admits_one_per_instant",
        ),
        (
            _ClockRewinds,
            FailureCounterContract,
            "test_failures_time_going_backwards_never_moves_the_time_back",
        ),
        (_ClockRewinds, FailureCounterContract, "test_failures_admit_agrees_with_the_reference"),
        (_CountsRefusals, FailureCounterContract, "test_failures_refusal_changes_nothing"),
        (_CountsRefusals, FailureCounterContract, "test_failures_admit_agrees_with_the_reference"),
        (
            _LocksOneLate,
            FailureCounterContract,
            "test_failures_admit_agrees_for_every_max_failures",
        ),
        (_LocksOneLate, FailureCounterContract, "test_failures_lockout_none_locks_until_reset"),
        (
            _ListsWhenRefused,
            FailureCounterContract,
            "test_attempts_begin_agrees_with_admit_then_list",
        ),
        (
            _ResetsOnALostClaim,
            FailureCounterContract,
            "test_attempts_claim_and_reset_resets_only_when_the_claim_wins",
        ),
        (
            _PurgeReadsThenDeletes,
            StoreMaintenanceContract,
            "test_maintenance_purge_pending_never_removes_a_confirmed_enrolment",
        ),
        (
            _PurgeIgnoresTheDeadline,
            StoreMaintenanceContract,
            "test_maintenance_purge_pending_removes_only_expired_enrolments",
        ),
    ],
)
def test_contract_suite_catches_a_broken_store(
    broken: type[MemoryStore], contract: type[Any], test: str
) -> None:
    with pytest.raises(AssertionError):
        _run_contract_test(contract, broken(), test)
    # ...while the same test passes on the correct store.
    _run_contract_test(contract, MemoryStore(), test)


def test_contract_suite_requires_make_store() -> None:
    class Forgotten(CredentialStoreContract):
        pass

    with pytest.raises(NotImplementedError):
        Forgotten().test_credentials_get_missing_returns_none()


def test_contract_suite_closes_the_stores_it_made(tmp_path: Path) -> None:
    made: list[SQLiteStore] = []

    class Probe(CredentialStoreContract):
        def make_store(self) -> SQLiteStore:
            made.append(SQLiteStore(tmp_path / "closed.sqlite3"))
            return made[-1]

    probe = Probe()
    probe.test_credentials_get_missing_returns_none()
    probe.teardown_method(None)
    with pytest.raises(StoreError):
        made[0].get("anything")


# -- rules of the shipped stores beyond the contract -------------------------------------------


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CombinedStore]:
    if request.param == "memory":
        yield MemoryStore()
    else:
        sqlite_store = SQLiteStore(tmp_path / "rules.sqlite3")
        yield sqlite_store
        sqlite_store.close()


def make_credential(
    user_id: str = "alice", credential_id: str = "c1", **changes: Any
) -> Credential:
    base = Credential(
        id=credential_id,
        user_id=user_id,
        kind=CredentialKind.TOTP,
        sealed_key=b"\x01sealed-key-bytes",
        created_at=T0,
    )
    return attrs.evolve(base, **changes)


BAD_IDS: list[Any] = ["", "x" * 1025, "\ud800", None, 7, b"bytes"]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_bad_ids_raise_invalid_parameter(store: CombinedStore, bad: Any) -> None:
    calls: list[Callable[[], object]] = [
        lambda: store.get(bad),
        lambda: store.list_for_user(bad),
        lambda: store.claim(bad, 1, drift=0),
        lambda: store.delete(bad),
        lambda: store.admit_attempt(bad, T0, NO_DELAY),
        lambda: store.begin_attempt(bad, T0, NO_DELAY),
        lambda: store.claim_and_reset("c1", 1, drift=0, user_id=bad),
        lambda: store.claim_and_reset(bad, 1, drift=0, user_id="alice"),
        lambda: store.get_failures(bad),
        lambda: store.reset(bad),
        lambda: store.add(make_credential(credential_id=bad)),
        lambda: store.add(make_credential(user_id=bad)),
    ]
    if bad is not None:  # replaces=None means "replaces nothing"
        calls.append(lambda: store.add(make_credential(replaces=bad)))
    for call in calls:
        with pytest.raises(InvalidParameter):
            call()
    assert store.list_for_user("alice") == []


@pytest.mark.parametrize(
    "changes",
    [
        {"status": CredentialState.EXPIRED},
        {"status": CredentialState.PENDING_EXPIRED},
        {"status": CredentialState.NONE},
        {"status": "active"},
        {"kind": "totp"},
        {"algorithm": "SHA1"},
        {"sealed_key": b""},
        {"sealed_key": bytearray(b"abc")},
        {"sealed_key": "text"},
        {"created_at": math.nan},
        {"created_at": -1.0},
        {"created_at": True},
        {"pending_until": math.inf},
        {"digits": 0},
        {"digits": 6.0},
        {"period": 0},
        {"last_accepted": -2},
        {"last_accepted": 2**63},
        {"drift": 2**63},
        {"version": -1},
        {"label": "\udcff"},
        {"label": None},
    ],
)
def test_bad_credentials_raise_invalid_parameter_and_store_nothing(
    store: CombinedStore, changes: dict[str, Any]
) -> None:
    bad = make_credential(**changes)
    with pytest.raises(InvalidParameter):
        store.add(bad)
    assert store.get("c1") is None
    good = make_credential()
    store.add(good)
    with pytest.raises(InvalidParameter):
        store.update(bad, expected_version=0)
    assert store.get("c1") == good


def test_non_credentials_are_refused(store: CombinedStore) -> None:
    with pytest.raises(InvalidParameter):
        store.add(object())  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter):
        store.update({"id": "c1"}, expected_version=0)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [-1, 2**63, True, 1.0, "5", None])
def test_claim_values_outside_what_a_store_holds_are_refused(
    store: CombinedStore, value: Any
) -> None:
    store.add(make_credential())
    with pytest.raises(InvalidParameter) as raised:
        store.claim("c1", value, drift=0)
    assert raised.value.code in {ErrorCode.INVALID_COUNTER}
    assert store.get("c1") == make_credential()


def test_largest_claim_value_is_held_exactly(store: CombinedStore) -> None:
    store.add(make_credential())
    assert store.claim("c1", 2**63 - 1, drift=-(2**63))
    got = store.get("c1")
    assert got is not None
    assert (got.last_accepted, got.drift) == (2**63 - 1, -(2**63))
    assert not store.claim("c1", 2**63 - 1, drift=0)


@pytest.mark.parametrize("drift", [2**63, -(2**63) - 1, 1.5, None, True])
def test_bad_drift_is_refused(store: CombinedStore, drift: Any) -> None:
    store.add(make_credential())
    with pytest.raises(InvalidParameter):
        store.claim("c1", 3, drift=drift)
    assert store.get("c1") == make_credential()


@pytest.mark.parametrize("version", [-1, 2**63 - 1, 1.0, None, False])
def test_bad_expected_version_is_refused(store: CombinedStore, version: Any) -> None:
    store.add(make_credential())
    with pytest.raises(InvalidParameter):
        store.update(make_credential(label="x"), expected_version=version)
    assert store.get("c1") == make_credential()


@pytest.mark.parametrize("now", [math.nan, math.inf, -1.0, True, "1", None])
def test_bad_attempt_times_are_refused(store: CombinedStore, now: Any) -> None:
    for call in (
        lambda: store.admit_attempt("alice", now, NO_DELAY),
        lambda: store.begin_attempt("alice", now, NO_DELAY),
    ):
        with pytest.raises(InvalidParameter) as raised:
            call()
        assert raised.value.code is ErrorCode.INVALID_TIME
    assert store.get_failures("alice") == FailureState()


@pytest.mark.parametrize("limits", [None, {"max_failures": 3}, 10, "ThrottleConfig()"])
def test_bad_limits_are_refused(store: CombinedStore, limits: Any) -> None:
    for call in (
        lambda: store.admit_attempt("alice", T0, limits),
        lambda: store.begin_attempt("alice", T0, limits),
    ):
        with pytest.raises(InvalidParameter):
            call()
    assert store.get_failures("alice") == FailureState()


def test_a_late_attempt_with_an_earlier_clock_keeps_the_later_time(store: CombinedStore) -> None:
    # Two app servers with slightly different clocks: the lock must not get shorter.
    assert store.admit_attempt("alice", T0 + 10, NO_DELAY).state == FailureState(1, T0 + 10)
    assert store.admit_attempt("alice", T0 + 4, NO_DELAY).state == FailureState(2, T0 + 10)
    assert store.get_failures("alice") == FailureState(2, T0 + 10)
    assert store.admit_attempt("alice", T0 + 11, NO_DELAY).state == FailureState(3, T0 + 11)


def test_failure_times_come_back_as_floats(store: CombinedStore) -> None:
    state = store.admit_attempt("alice", 1_800_000_000, NO_DELAY).state
    assert type(state.last_failure_at) is float
    assert type(store.get_failures("alice").last_failure_at) is float


@given(
    st.lists(
        st.tuples(st.sampled_from([-3.0, 0.0, 0.5, 1.0, 2.0, 7.5, 60.0, 901.0]), st.booleans()),
        max_size=30,
    ),
    st.integers(1, 6),
    st.sampled_from([0.0, 0.5, 2.0]),
    st.sampled_from([None, 10.0, 900.0]),
)
def test_memory_and_sqlite_admissions_follow_the_reference(
    tmp_path_factory: pytest.TempPathFactory,
    moves: list[tuple[float, bool]],
    max_failures: int,
    base_delay: float,
    lockout: float | None,
) -> None:
    limits = ThrottleConfig(
        max_failures=max_failures, base_delay=base_delay, max_delay=8.0, lockout=lockout
    )
    path = tmp_path_factory.mktemp("walk") / "walk.sqlite3"
    with SQLiteStore(path) as sqlite_store:
        stores: list[Any] = [MemoryStore(), sqlite_store]
        state, now = FailureState(), T0
        for move, reset in moves:
            now += move
            if reset:
                state = FailureState()
                for store in stores:
                    store.reset("alice")
            expected = throttle.admit(state, now, limits)
            for store in stores:
                assert store.admit_attempt("alice", now, limits) == expected
                assert store.get_failures("alice") == expected.state
            state = expected.state


def test_credentials_created_at_the_same_time_list_in_insertion_order(
    store: CombinedStore,
) -> None:
    ids = ["z", "a", "m", "b"]
    for credential_id in ids:
        store.add(make_credential(credential_id=credential_id))
    assert [c.id for c in store.list_for_user("alice")] == ids


def test_update_may_move_a_credential_to_another_user(store: CombinedStore) -> None:
    store.add(make_credential())
    assert store.update(make_credential(user_id="bob"), expected_version=0)
    assert store.list_for_user("alice") == []
    assert [c.id for c in store.list_for_user("bob")] == ["c1"]


def test_store_repr_shows_no_key_material(store: CombinedStore) -> None:
    store.add(make_credential())
    assert "sealed-key-bytes" not in repr(store)
    assert "sealed-key-bytes" not in repr(store.list_for_user("alice"))


def test_store_satisfies_both_ports(store: CombinedStore) -> None:
    assert isinstance(store, CredentialStore)
    assert isinstance(store, FailureCounter)


# -- FakeClock ------------------------------------------------------------------------------


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(T0)
    assert clock.now() == T0
    assert clock.now() == T0
    assert clock.advance(30) == T0 + 30
    assert clock.now() == T0 + 30
    clock.set(T0 - 100)  # a corrected clock may go back
    assert clock.now() == T0 - 100
    assert type(clock.now()) is float
    assert repr(FakeClock(5)) == "FakeClock(5.0)"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1, True, "3", None])
def test_fake_clock_refuses_nonsense(bad: Any) -> None:
    with pytest.raises(InvalidParameter):
        FakeClock(bad)
    clock = FakeClock(T0)
    with pytest.raises(InvalidParameter):
        clock.advance(bad)
    with pytest.raises(InvalidParameter):
        clock.set(bad)
    assert clock.now() == T0


def test_fake_clock_advances_exactly_under_threads() -> None:
    clock = FakeClock(0)
    threads = [
        threading.Thread(target=lambda: [clock.advance(1) for _ in range(500)]) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert clock.now() == 4000.0


# -- RecordingEventSink ----------------------------------------------------------------------


def test_recording_sink_keeps_events_in_order_and_filters_by_type() -> None:
    sink = RecordingEventSink()
    first = Event(type=EventType.ENROLMENT_STARTED, user_id="alice", at=T0)
    second = Event(type=EventType.VERIFICATION_FAILED, user_id="alice", at=T0 + 1)
    third = Event(type=EventType.ENROLMENT_STARTED, user_id="bob", at=T0 + 2)
    for event in (first, second, third):
        sink.emit(event)
    assert sink.events == [first, second, third]
    assert sink.of_type(EventType.ENROLMENT_STARTED) == [first, third]
    assert sink.of_type(EventType.USER_LOCKED) == []
    assert repr(sink) == "RecordingEventSink(events=3)"
    sink.clear()
    assert sink.events == []


# -- FaultyStore ------------------------------------------------------------------------------


def test_faulty_store_fails_the_nth_call_before_the_write(store: CombinedStore) -> None:
    store.add(make_credential())
    faulty = FaultyStore(store, fail_on={"claim": 2})
    assert faulty.claim("c1", 1, drift=0)
    with pytest.raises(StoreUnavailable) as raised:
        faulty.claim("c1", 2, drift=0)
    assert raised.value.code is ErrorCode.STORE_UNAVAILABLE
    got = store.get("c1")
    assert got is not None and got.last_accepted == 1  # the failed claim never happened
    assert faulty.claim("c1", 3, drift=0)  # the third call goes through again
    assert faulty.calls == {"claim": 3}
    assert faulty.faults == ["claim"]


def test_faulty_store_can_fail_after_the_write(store: CombinedStore) -> None:
    store.add(make_credential())
    faulty = FaultyStore(store, fail_on={"claim": 1, "admit_attempt": 1}, after_write=True)
    with pytest.raises(StoreUnavailable):
        faulty.claim("c1", 7, drift=0)
    got = store.get("c1")
    assert got is not None and got.last_accepted == 7  # written, but the caller never heard
    with pytest.raises(StoreUnavailable):
        faulty.admit_attempt("alice", T0, NO_DELAY)
    assert store.get_failures("alice").count == 1
    assert faulty.faults == ["claim", "admit_attempt"]


def test_faulty_store_persistent_outage_until_healed(store: CombinedStore) -> None:
    faulty = FaultyStore(store, fail_on={"get_failures": 1, "list_for_user": 2}, persistent=True)
    assert faulty.list_for_user("alice") == []
    for _ in range(3):
        with pytest.raises(StoreUnavailable):
            faulty.get_failures("alice")
        with pytest.raises(StoreUnavailable):
            faulty.list_for_user("alice")
    faulty.heal()
    assert faulty.get_failures("alice") == FailureState()
    assert faulty.list_for_user("alice") == []
    assert faulty.faults.count("get_failures") == 3


def test_faulty_store_delegates_every_port_method(store: CombinedStore) -> None:
    faulty = FaultyStore(store, fail_on={})
    assert isinstance(faulty, CredentialStore) and isinstance(faulty, FailureCounter)
    credential = make_credential()
    faulty.add(credential)
    assert faulty.get("c1") == credential
    assert faulty.list_for_user("alice") == [credential]
    assert faulty.update(make_credential(label="x"), expected_version=0)
    assert faulty.claim("c1", 4, drift=1)
    assert faulty.admit_attempt("alice", T0, NO_DELAY) == Admission(True, FailureState(1, T0))
    assert faulty.get_failures("alice") == FailureState(1, T0)
    faulty.reset("alice")
    assert faulty.delete("c1")
    assert store.get("c1") is None
    assert store.get_failures("alice") == FailureState()
    assert faulty.faults == []
    assert sum(faulty.calls.values()) == 9


def test_faulty_store_has_exactly_the_wrapped_port_methods(store: CombinedStore) -> None:
    faulty = FaultyStore(store, fail_on={"begin_attempt": 2, "claim_and_reset": 1})
    assert isinstance(faulty, AttemptStore)
    assert isinstance(faulty, RecoveryCodeStore) and isinstance(faulty, OOBChallengeStore)
    assert not hasattr(faulty, "record_failure") and not hasattr(faulty, "close")
    assert not isinstance(faulty, CodeSender)
    assert inspect.signature(faulty.begin_attempt) == inspect.signature(store.begin_attempt)
    credential = make_credential(status=CredentialState.ACTIVE)
    faulty.add(credential)
    admission, listed = faulty.begin_attempt("alice", T0, NO_DELAY)
    assert admission.admitted and list(listed) == [credential]
    with pytest.raises(StoreUnavailable):
        faulty.begin_attempt("alice", T0, NO_DELAY)
    with pytest.raises(StoreUnavailable):
        faulty.claim_and_reset("c1", 3, drift=0, user_id="alice")
    assert store.get_failures("alice").count == 1  # the failed call never reached the store
    assert faulty.claim_and_reset("c1", 3, drift=0, user_id="alice")
    assert store.get_failures("alice") == FailureState()
    assert faulty.faults == ["begin_attempt", "claim_and_reset"]

    class OnlyCounter:
        def __init__(self) -> None:
            self.inner = MemoryStore()

        def admit_attempt(self, user_id: str, now: float, limits: ThrottleConfig) -> Admission:
            return self.inner.admit_attempt(user_id, now, limits)

        def get_failures(self, user_id: str) -> FailureState:
            return self.inner.get_failures(user_id)

        def reset(self, user_id: str) -> None:
            self.inner.reset(user_id)

    narrow = FaultyStore(OnlyCounter(), fail_on={"reset": 1})  # type: ignore[arg-type]
    assert isinstance(narrow, FailureCounter)
    assert not isinstance(narrow, CredentialStore) and not hasattr(narrow, "claim")
    assert not isinstance(narrow, AttemptStore)
    with pytest.raises(InvalidParameter):
        FaultyStore(OnlyCounter(), fail_on={"claim": 1})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "plan",
    [
        {"claims": 1},
        {"claim": 0},
        {"claim": -1},
        {"claim": 1.0},
        {"__init__": 1},
        {"record_failure": 1},
        {"purge_challenges": 1},
    ],
)
def test_faulty_store_refuses_a_bad_plan(plan: dict[str, Any]) -> None:
    with pytest.raises(InvalidParameter):
        FaultyStore(MemoryStore(), fail_on=plan)


def test_faulty_store_errors_are_store_errors() -> None:
    faulty = FaultyStore(MemoryStore(), fail_on={"get": 1})
    with pytest.raises(StoreError, match="injected fault"):
        faulty.get("c1")


@given(
    last_accepted=st.integers(min_value=-1, max_value=2**63 - 1),
    drift=st.integers(min_value=-200, max_value=200),
    version=st.integers(min_value=0, max_value=10**6),
    label=st.text(max_size=20),
)
def test_with_claim_equals_evolve(last_accepted: int, drift: int, version: int, label: str) -> None:
    """``Credential.with_claim`` (the stores' fast path) changes exactly the claim fields."""
    base = Credential(
        id="c1",
        user_id="u1",
        kind=CredentialKind.HOTP,
        sealed_key=b"sealed",
        created_at=1.5,
        status=CredentialState.ACTIVE,
        algorithm=Algorithm.SHA512,
        digits=8,
        period=60,
        label=label,
        pending_until=2.5,
        confirmed_at=3.5,
        renewed_at=4.5,
        replaces="c0",
        disabled_at=5.5,
        version=version,
    )
    # Every field differs from its default, so a field the fast path dropped would show.
    assert all(
        getattr(base, field.name) != field.default
        for field in attrs.fields(Credential)
        if field.name not in ("last_accepted", "drift", "version", "label")
    )
    fast = base.with_claim(last_accepted, drift)
    slow = attrs.evolve(base, last_accepted=last_accepted, drift=drift)
    assert type(fast) is Credential
    assert attrs.asdict(fast) == attrs.asdict(slow)
