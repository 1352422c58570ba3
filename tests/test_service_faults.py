"""Fault injection: a store (or sealer) that fails mid-operation never yields acceptance,
and never leaves a credential half-written.

``testing.FaultyStore`` raises ``StoreUnavailable`` on the N-th call of a chosen method,
either before the call reaches the real store or after it (the write happened, the answer
was lost: a connection dropped mid-operation). Every test heals the store afterwards and
checks what was actually stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mfa_core import b32decode_key, totp
from mfa_core.errors import SealingError, StoreError
from mfa_core.models import CredentialState, Event, EventType
from mfa_core.sealing import AESGCMSealer
from mfa_core.service import MFAService, ServiceConfig, VerifyReason
from mfa_core.stores import MemoryStore, SQLiteStore
from mfa_core.testing import FakeClock, FaultyStore, RecordingEventSink
from mfa_core.throttle import ThrottleConfig

T0 = 1_800_000_005.0
USER = "alice"
SEALING_KEY = bytes(range(32))
CONFIG = ServiceConfig(throttle=ThrottleConfig(max_failures=50, base_delay=0.0))
# The store calls of a verify: fused on an AttemptStore (every reference store), and the
# separate port methods when the failure counter is another object.
FUSED_METHODS = ["begin_attempt", "claim_and_reset"]
SEPARATE_METHODS = ["admit_attempt", "list_for_user", "claim", "reset"]
ALL_METHODS = [
    "add",
    "get",
    "list_for_user",
    "update",
    "claim",
    "delete",
    "admit_attempt",
    "begin_attempt",
    "claim_and_reset",
    "get_failures",
    "reset",
]


class FailuresOf:
    """The failure-counter methods of a (faulty) store as a separate object: a service
    given it as ``failures`` cannot fuse, so it calls the separate port methods."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def admit_attempt(self, user_id: str, now: float, limits: ThrottleConfig) -> Any:
        return self._inner.admit_attempt(user_id, now, limits)

    def get_failures(self, user_id: str) -> Any:
        return self._inner.get_failures(user_id)

    def reset(self, user_id: str) -> None:
        self._inner.reset(user_id)


@attrs.define
class World:
    """A real store with one confirmed credential, and a way to wrap it in faults."""

    store: Any
    clock: FakeClock
    events: RecordingEventSink
    key: bytes
    credential_id: str

    def service(self, store: Any = None, *, fused: bool = True) -> MFAService:
        sealer = AESGCMSealer({"k1": SEALING_KEY}, current_key_id="k1")
        store = self.store if store is None else store
        return MFAService(
            store,
            store if fused else FailuresOf(store),
            sealer,
            clock=self.clock,
            events=self.events,
            config=CONFIG,
        )

    def faulty(self, method: str, nth: int = 1, *, after_write: bool = False) -> FaultyStore:
        return FaultyStore(self.store, fail_on={method: nth}, after_write=after_write)

    def code(self, shift: int = 0) -> str:
        return totp(self.key, self.clock.now() + 30 * shift)

    def wrong(self) -> str:
        window = {self.code(s) for s in range(-3, 4)}
        return next(c for c in (f"{n:06d}" for n in range(10**6)) if c not in window)

    def stored(self, credential_id: str | None = None) -> Any:
        return self.store.get(self.credential_id if credential_id is None else credential_id)

    def failures(self) -> int:
        return int(self.store.get_failures(USER).count)


@pytest.fixture(params=["memory", "sqlite"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    store: Any = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "f.db")
    clock = FakeClock(T0)
    events = RecordingEventSink()
    made = World(store, clock, events, b"", "")
    service = made.service()
    enrolment = service.begin_enrolment(USER)
    made.key = b32decode_key(enrolment.secret)
    made.credential_id = enrolment.credential_id
    assert service.confirm_enrolment(USER, enrolment.credential_id, made.code()).accepted
    clock.advance(30)
    events.clear()
    yield made
    if hasattr(store, "close"):
        store.close()


# -- verify ------------------------------------------------------------------------------


@pytest.mark.parametrize("after_write", [False, True])
@pytest.mark.parametrize(
    ("method", "fused"),
    [(m, True) for m in FUSED_METHODS] + [(m, False) for m in SEPARATE_METHODS],
)
def test_a_store_fault_during_a_valid_verify_never_accepts(
    world: World, method: str, fused: bool, after_write: bool
) -> None:
    service = world.service()
    # One earlier failure, so that the count is not zero before the success.
    assert service.verify(USER, world.wrong()).reason == VerifyReason.INVALID_CODE
    faulty = world.faulty(method, after_write=after_write)
    code = world.code()
    result = world.service(faulty, fused=fused).verify(USER, code)
    assert faulty.faults, "every one of these methods is on the path of a success"
    assert not result.accepted and result.reason == VerifyReason.STORE_ERROR
    assert result.user_message != "code accepted"
    [event] = world.events.of_type(EventType.VERIFICATION_FAILED)[-1:]
    assert event.reason == "store_error"
    # Healed: the step was claimed only if the claim really reached the store.
    claims = ("claim", "claim_and_reset")
    claimed = method == "reset" or (method in claims and after_write)
    again = service.verify(USER, code)
    assert again.accepted is not claimed
    assert again.reason == (VerifyReason.REPLAYED if claimed else VerifyReason.OK)


@pytest.mark.parametrize("after_write", [False, True])
@pytest.mark.parametrize(("method", "fused"), [("begin_attempt", True), ("admit_attempt", False)])
def test_a_fault_while_admitting_refuses_and_counts_at_most_once(
    world: World, method: str, fused: bool, after_write: bool
) -> None:
    faulty = world.faulty(method, after_write=after_write)
    result = world.service(faulty, fused=fused).verify(USER, world.wrong())
    assert not result.accepted and result.reason == VerifyReason.STORE_ERROR
    assert world.failures() == (1 if after_write else 0)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    plan=st.lists(
        st.tuples(st.sampled_from(ALL_METHODS), st.integers(1, 3), st.booleans(), st.booleans()),
        min_size=1,
        max_size=6,
    ),
    kinds=st.lists(st.sampled_from(["valid", "wrong", "replay", "ahead"]), min_size=1, max_size=8),
)
def test_no_acceptance_from_a_call_that_saw_a_fault(
    world: World, plan: list[tuple[str, int, bool, bool]], kinds: list[str]
) -> None:
    service = world.service()
    service.admin_unlock(USER, admin_id="test")
    world.clock.advance(300)
    fail_on = {method: nth for method, nth, _, _ in plan}
    after_write = plan[0][2]
    faulty = FaultyStore(
        world.store, fail_on=fail_on, after_write=after_write, persistent=plan[0][3]
    )
    flaky = world.service(faulty)
    accepted_steps: list[int] = []
    for kind in kinds:
        world.clock.advance(31)
        if kind == "valid":
            code = world.code()
        elif kind == "ahead":
            code = world.code(1)
        elif kind == "replay" and accepted_steps:
            code = totp(world.key, accepted_steps[-1] * 30)
        else:
            code = world.wrong()
        faults_before = len(faulty.faults)
        result = flaky.verify(USER, code)
        if len(faulty.faults) > faults_before:
            assert not result.accepted, (kind, faulty.faults)
        if result.accepted:
            assert kind in ("valid", "ahead")
            assert result.matched is not None and result.matched not in accepted_steps
            accepted_steps.append(result.matched)
    # Whatever happened, the stored credential is whole: the last accepted step is one
    # that some call claimed, and nothing else changed.
    stored = world.stored()
    assert stored.status == CredentialState.ACTIVE and stored.sealed_key
    assert stored.last_accepted >= max(accepted_steps, default=-1)


# -- lifecycle operations ----------------------------------------------------------------


@pytest.mark.parametrize("after_write", [False, True])
def test_begin_enrolment_fault_raises_and_leaves_nothing_or_a_whole_pending(
    world: World, after_write: bool
) -> None:
    faulty = world.faulty("add", after_write=after_write)
    with pytest.raises(StoreError):
        world.service(faulty).begin_enrolment(USER)
    assert world.events.of_type(EventType.ENROLMENT_STARTED) == []
    others = [c for c in world.store.list_for_user(USER) if c.id != world.credential_id]
    if after_write:  # written, but the caller never heard: an unconfirmable pending one
        [pending] = others
        assert pending.status == CredentialState.PENDING and pending.pending_until is not None
    else:
        assert others == []


@pytest.mark.parametrize("after_write", [False, True])
def test_confirm_fault_at_activation_refuses_and_stays_whole(
    world: World, after_write: bool
) -> None:
    service = world.service()
    enrolment = service.begin_enrolment(USER)
    key = b32decode_key(enrolment.secret)
    world.events.clear()
    faulty = world.faulty("update", after_write=after_write)
    result = world.service(faulty).confirm_enrolment(
        USER, enrolment.credential_id, totp(key, world.clock.now())
    )
    assert not result.accepted and result.reason == VerifyReason.STORE_ERROR
    assert world.events.of_type(EventType.ENROLMENT_CONFIRMED) == []
    stored = world.stored(enrolment.credential_id)
    if after_write:
        assert stored.status == CredentialState.ACTIVE and stored.confirmed_at is not None
        assert stored.renewed_at is not None and stored.pending_until is None
    else:
        assert stored.status == CredentialState.PENDING and stored.confirmed_at is None
        # The claimed step is used; the next code confirms.
        world.clock.advance(30)
        code = totp(key, world.clock.now())
        assert service.confirm_enrolment(USER, enrolment.credential_id, code).accepted


@pytest.mark.parametrize("method", ["claim", "list_for_user", "get_failures"])
def test_confirm_fault_before_activation_refuses(world: World, method: str) -> None:
    service = world.service()
    enrolment = service.begin_enrolment(USER)
    key = b32decode_key(enrolment.secret)
    faulty = world.faulty(method)
    result = world.service(faulty).confirm_enrolment(
        USER, enrolment.credential_id, totp(key, world.clock.now())
    )
    assert not result.accepted and result.reason == VerifyReason.STORE_ERROR
    assert world.stored(enrolment.credential_id).status == CredentialState.PENDING
    assert service.confirm_enrolment(
        USER, enrolment.credential_id, totp(key, world.clock.now())
    ).accepted


def test_renewal_whose_superseding_write_fails_still_retires_the_old_key(world: World) -> None:
    service = world.service()
    renewal = service.begin_renewal(USER, world.credential_id)
    new_key = b32decode_key(renewal.secret)
    # The first update activates the new credential; the second (superseding the old
    # one) fails. The confirmation stands, and the old key stops working anyway.
    faulty = world.faulty("update", nth=2)
    result = world.service(faulty).confirm_enrolment(
        USER, renewal.credential_id, totp(new_key, world.clock.now())
    )
    assert result.accepted and faulty.faults == ["update"]
    assert world.stored().status == CredentialState.ACTIVE  # the write that failed
    world.clock.advance(30)
    assert service.verify(USER, world.code()).reason == VerifyReason.INVALID_CODE
    infos = {i.id: i for i in service.list_credentials(USER)}
    assert infos[world.credential_id].state == CredentialState.DISABLED
    assert not infos[world.credential_id].can_authenticate
    world.clock.advance(5)
    assert service.verify(USER, totp(new_key, world.clock.now())).accepted


@pytest.mark.parametrize("after_write", [False, True])
def test_disable_fault_raises_and_leaves_the_credential_whole(
    world: World, after_write: bool
) -> None:
    faulty = world.faulty("update", after_write=after_write)
    with pytest.raises(StoreError):
        world.service(faulty).disable(USER, world.credential_id, by_admin="root")
    stored = world.stored()
    if after_write:
        assert stored.status == CredentialState.DISABLED and stored.disabled_at is not None
    else:
        assert stored.status == CredentialState.ACTIVE and stored.disabled_at is None
    assert world.events.of_type(EventType.CREDENTIAL_DISABLED) == []


def test_disable_step_up_under_a_store_fault_raises_and_changes_nothing(world: World) -> None:
    faulty = world.faulty("claim_and_reset")  # the fused claim of the step-up code
    with pytest.raises(StoreError):
        world.service(faulty).disable(USER, world.credential_id, step_up_code=world.code())
    assert world.stored().status == CredentialState.ACTIVE


@pytest.mark.parametrize("method", ["delete", "list_for_user"])
def test_admin_reset_fault_raises(world: World, method: str) -> None:
    faulty = world.faulty(method)
    with pytest.raises(StoreError):
        world.service(faulty).admin_reset(USER, admin_id="root")
    assert world.stored() is not None
    assert world.events.of_type(EventType.CREDENTIAL_RESET) == []
    assert world.service().admin_reset(USER, admin_id="root") == 1


def test_an_outage_refuses_everything(world: World) -> None:
    down = FaultyStore(world.store, fail_on=dict.fromkeys(ALL_METHODS, 1), persistent=True)
    service = world.service(down)
    assert service.verify(USER, world.code()).reason == VerifyReason.STORE_ERROR
    for operation in (
        lambda: service.begin_enrolment(USER),
        lambda: service.admin_unlock(USER, admin_id="root"),
        lambda: service.list_credentials(USER),
        lambda: service.throttle_status(USER),
        lambda: service.reseal(USER),
    ):
        with pytest.raises(StoreError):
            operation()
    down.heal()
    assert service.verify(USER, world.code()).accepted


# -- sealer faults -------------------------------------------------------------------------


class BrokenSealer:
    """Seals and unseals like the real one until told to fail, then raises anything."""

    def __init__(self) -> None:
        self.inner = AESGCMSealer({"k1": SEALING_KEY}, current_key_id="k1")
        self.broken = False

    def seal(self, plaintext: bytes, *, credential_id: str) -> bytes:
        if self.broken:
            raise RuntimeError("KMS unreachable")
        return self.inner.seal(plaintext, credential_id=credential_id)

    def unseal(self, sealed: bytes, *, credential_id: str) -> bytes:
        if self.broken:
            raise RuntimeError("KMS unreachable")
        return self.inner.unseal(sealed, credential_id=credential_id)

    def needs_reseal(self, sealed: bytes) -> bool:
        return self.inner.needs_reseal(sealed)


def test_a_failing_sealer_refuses_and_stores_nothing(world: World) -> None:
    sealer = BrokenSealer()
    service = MFAService(world.store, world.store, sealer, clock=world.clock, events=world.events)
    sealer.broken = True
    result = service.verify(USER, world.code())
    assert not result.accepted and result.reason == VerifyReason.SEALING_ERROR
    assert world.failures() == 1  # admitted (counted) before the key was unsealed
    world.clock.advance(60)
    with pytest.raises(SealingError):
        service.begin_enrolment(USER)
    assert [c.id for c in world.store.list_for_user(USER)] == [world.credential_id]
    sealer.broken = False
    assert service.verify(USER, world.code()).accepted


def test_event_sink_is_not_a_store(world: World) -> None:
    class Exploding:
        def emit(self, event: Event) -> None:
            raise StoreError("audit table down")

    service = MFAService(
        world.store,
        world.store,
        AESGCMSealer({"k1": SEALING_KEY}, current_key_id="k1"),
        clock=world.clock,
        events=Exploding(),
    )
    assert service.verify(USER, world.code()).accepted
