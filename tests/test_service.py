"""MFAService scenarios, each run against both embedded stores (memory and SQLite).

Time comes from a FakeClock, events are recorded, and the sealer counts its unseal calls so
that "refused without any HMAC work" can be checked rather than assumed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mfa_core import b32decode_key, hotp, parse_uri, totp
from mfa_core.errors import (
    CredentialNotFound,
    ErrorCode,
    IllegalTransition,
    InvalidParameter,
    InvalidURI,
    SealingError,
    StepUpRequired,
    StoreError,
    Throttled,
)
from mfa_core.lifecycle import LifecycleConfig
from mfa_core.models import CredentialKind, CredentialState, Event, EventType
from mfa_core.otp import time_step
from mfa_core.sealing import AESGCMSealer
from mfa_core.service import (
    ACCEPTED_MESSAGE,
    EXPIRED_MESSAGE,
    INVALID_CODE_MESSAGE,
    UNAVAILABLE_MESSAGE,
    Enrolment,
    LoggingEventSink,
    MFAService,
    NullEventSink,
    ServiceConfig,
    SystemClock,
    VerificationResult,
    VerifyReason,
)
from mfa_core.stores import MemoryStore, SQLiteStore
from mfa_core.testing import FakeClock, RecordingEventSink
from mfa_core.throttle import ThrottleConfig, delay_after

T0 = 1_800_000_005.0  # 5 s into a 30 s step
DAY = 86_400.0


class CountingSealer:
    """A real AES-GCM sealer that counts unseal calls (each one precedes HMAC work)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.unseals = 0

    def seal(self, plaintext: bytes, *, credential_id: str) -> bytes:
        return bytes(self.inner.seal(plaintext, credential_id=credential_id))

    def unseal(self, sealed: bytes, *, credential_id: str) -> bytes:
        self.unseals += 1
        return bytes(self.inner.unseal(sealed, credential_id=credential_id))

    def needs_reseal(self, sealed: bytes) -> bool:
        return bool(self.inner.needs_reseal(sealed))


@attrs.define
class Env:
    service: MFAService
    store: Any
    clock: FakeClock
    events: RecordingEventSink
    sealer: CountingSealer

    @property
    def now(self) -> float:
        return self.clock.now()

    def enrol(
        self, user: str = "alice", kind: CredentialKind = CredentialKind.TOTP, **kw: Any
    ) -> tuple[Enrolment, bytes]:
        enrolment = self.service.begin_enrolment(user, kind=kind, **kw)
        return enrolment, b32decode_key(enrolment.secret)

    def enrol_confirmed(
        self, user: str = "alice", kind: CredentialKind = CredentialKind.TOTP
    ) -> tuple[str, bytes]:
        enrolment, key = self.enrol(user, kind)
        code = totp(key, self.now) if kind == CredentialKind.TOTP else hotp(key, 0)
        result = self.service.confirm_enrolment(user, enrolment.credential_id, code)
        assert result.accepted, result
        self.clock.advance(30)  # the confirmation code's step is used up
        return enrolment.credential_id, key

    def types(self) -> list[EventType]:
        return [e.type for e in self.events.events]


def _failure_count(store: Any, user: str) -> int:
    return int(store.get_failures(user).count)


def wrong_code(keys: list[bytes], at: float, digits: int = 6) -> str:
    """A code that matches no step near ``at`` (nor any low HOTP counter) of these keys."""
    taken = {totp(k, at + s * 30, digits=digits) for k in keys for s in range(-12, 13)}
    taken |= {hotp(k, c, digits=digits) for k in keys for c in range(0, 120)}
    for n in range(10**digits):
        code = str(n * 7919 % 10**digits).zfill(digits)
        if code not in taken:
            return code
    raise AssertionError("unreachable")


@pytest.fixture(params=["memory", "sqlite"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Any]]:
    made: list[Any] = []

    def make() -> Any:
        if request.param == "memory":
            store: Any = MemoryStore()
        else:
            store = SQLiteStore(tmp_path / f"mfa-{len(made)}.sqlite3")
        made.append(store)
        return store

    yield make
    for store in made:
        close = getattr(store, "close", None)
        if close is not None:
            close()


@pytest.fixture
def make_env(store_factory: Callable[[], Any]) -> Callable[..., Env]:
    def make(**config: Any) -> Env:
        store = store_factory()
        clock = FakeClock(T0)
        events = RecordingEventSink()
        sealer = CountingSealer(AESGCMSealer.generate())
        service = MFAService(
            store,
            store,
            sealer,
            clock=clock,
            events=events,
            config=ServiceConfig(issuer="Example", **config),
        )
        return Env(service, store, clock, events, sealer)

    return make


@pytest.fixture
def env(make_env: Callable[..., Env]) -> Env:
    return make_env()


# -- enrolment ---------------------------------------------------------------------------


def test_enrolment_returns_uri_and_secret_and_stores_the_key_sealed(env: Env) -> None:
    enrolment, key = env.enrol(label="phone", account="alice@example.com")
    parsed = parse_uri(enrolment.uri)
    assert parsed.key == key and len(key) == 20
    assert parsed.issuer == "Example" and parsed.account == "alice@example.com"
    assert parsed.kind == CredentialKind.TOTP and parsed.digits == 6 and parsed.period == 30
    assert enrolment.expires_at == T0 + 1800
    assert enrolment.secret not in repr(enrolment) and "secret=" not in repr(enrolment)
    stored = env.store.get(enrolment.credential_id)
    assert stored.status == CredentialState.PENDING and stored.label == "phone"
    assert key not in stored.sealed_key and stored.sealed_key != key
    assert env.types() == [EventType.ENROLMENT_STARTED]
    [info] = env.service.list_credentials("alice")
    assert info.state == CredentialState.PENDING and not info.can_authenticate


def test_hotp_enrolment_uri_has_counter_zero(env: Env) -> None:
    enrolment, key = env.enrol(kind=CredentialKind.HOTP)
    parsed = parse_uri(enrolment.uri)
    assert parsed.kind == CredentialKind.HOTP and parsed.counter == 0 and parsed.key == key


def test_enrolment_rejects_bad_arguments_and_stores_nothing(env: Env) -> None:
    with pytest.raises(InvalidParameter):
        env.service.begin_enrolment("")
    with pytest.raises(InvalidParameter):
        env.service.begin_enrolment("alice", kind="motp")
    with pytest.raises(InvalidParameter):
        env.service.begin_enrolment("alice", label="bad\nlabel")
    with pytest.raises(InvalidURI):
        env.service.begin_enrolment("alice", account="a:b")
    assert env.store.list_for_user("alice") == [] or list(env.store.list_for_user("alice")) == []
    assert env.events.events == []


def test_pending_never_authenticates(env: Env) -> None:
    _, key = env.enrol()
    result = env.service.verify("alice", totp(key, env.now))
    assert not result.accepted and result.reason == VerifyReason.NO_CREDENTIAL
    assert result.user_message == INVALID_CODE_MESSAGE
    assert env.sealer.unseals == 0


def test_confirm_activates_counts_the_code_as_used_and_enables_mfa(env: Env) -> None:
    enrolment, key = env.enrol()
    code = totp(key, env.now)
    result = env.service.confirm_enrolment("alice", enrolment.credential_id, code)
    assert result.accepted and result.reason == VerifyReason.OK
    assert result.matched == time_step(env.now) and result.user_message == ACCEPTED_MESSAGE
    assert env.types() == [
        EventType.ENROLMENT_STARTED,
        EventType.ENROLMENT_CONFIRMED,
        EventType.MFA_ENABLED,
    ]
    [info] = env.service.list_credentials("alice")
    assert info.state == CredentialState.ACTIVE and info.confirmed_at == T0
    assert info.renewed_at == T0 and info.expires_at == T0 + 180 * DAY
    # The confirmation code counts as used.
    replay = env.service.verify("alice", code)
    assert not replay.accepted and replay.reason == VerifyReason.REPLAYED
    # Confirming twice is an illegal transition and changes nothing.
    with pytest.raises(IllegalTransition):
        env.service.confirm_enrolment("alice", enrolment.credential_id, code)


def test_confirm_with_a_wrong_code_counts_on_the_enrolment_and_stays_pending(env: Env) -> None:
    enrolment, key = env.enrol()
    result = env.service.confirm_enrolment(
        "alice", enrolment.credential_id, wrong_code([key], env.now)
    )
    assert not result.accepted and result.reason == VerifyReason.INVALID_CODE
    assert _failure_count(env.store, "alice") == 0  # the user's lockout is not touched
    assert env.store.get(enrolment.credential_id).status == CredentialState.PENDING
    [failed] = env.events.of_type(EventType.VERIFICATION_FAILED)
    assert failed.data["confirmation_failures"] == 1
    malformed = env.service.confirm_enrolment("alice", enrolment.credential_id, "12345x")
    assert malformed.reason == VerifyReason.MALFORMED


def test_second_device_does_not_emit_mfa_enabled_again(env: Env) -> None:
    env.enrol_confirmed()
    env.events.events.clear()
    env.enrol_confirmed()
    assert EventType.MFA_ENABLED not in env.types()
    assert env.types().count(EventType.ENROLMENT_CONFIRMED) == 1


def test_pending_enrolment_expires_and_is_dropped_on_the_next_one(env: Env) -> None:
    enrolment, key = env.enrol()
    env.clock.advance(1801)
    [info] = env.service.list_credentials("alice")
    assert info.state == CredentialState.PENDING_EXPIRED
    with pytest.raises(IllegalTransition):
        env.service.confirm_enrolment("alice", enrolment.credential_id, totp(key, env.now))
    assert env.service.verify("alice", totp(key, env.now)).reason == VerifyReason.NO_CREDENTIAL
    env.enrol()
    assert env.store.get(enrolment.credential_id) is None
    removed = env.events.of_type(EventType.CREDENTIAL_REMOVED)
    assert [e.credential_id for e in removed] == [enrolment.credential_id]
    assert removed[0].reason == "pending_expired"


def test_cancel_enrolment_removes_only_unconfirmed(env: Env) -> None:
    enrolment, _ = env.enrol()
    env.service.cancel_enrolment("alice", enrolment.credential_id)
    assert env.store.get(enrolment.credential_id) is None
    assert env.events.of_type(EventType.CREDENTIAL_REMOVED)[0].reason == "cancelled"
    cred_id, _ = env.enrol_confirmed()
    with pytest.raises(IllegalTransition):
        env.service.cancel_enrolment("alice", cred_id)
    with pytest.raises(CredentialNotFound):
        env.service.cancel_enrolment("bob", cred_id)


# -- verification ------------------------------------------------------------------------


@pytest.mark.standard("ASVS-6.5.1", "a TOTP code works once")
@pytest.mark.standard(
    "RFC6238-5.2", "a code is accepted once, and no earlier step after a later one"
)
def test_verify_accepts_once_and_never_an_earlier_step(env: Env) -> None:
    cred_id, key = env.enrol_confirmed()
    code = totp(key, env.now)
    result = env.service.verify("alice", code)
    assert result.accepted and result.credential_id == cred_id
    assert result.matched == time_step(env.now) and result.offset == 0 and result.drift == 0
    assert not result.renewal_due and result.retry_after is None
    again = env.service.verify("alice", code)
    assert again.reason == VerifyReason.REPLAYED and not again.accepted
    assert again.user_message == INVALID_CODE_MESSAGE
    # A code one step ahead is accepted; then the current step's code, although inside
    # the window, is older than the one accepted: refused (RFC 6238 §5.2).
    env.clock.advance(60)
    later = totp(key, env.now + 30)
    assert env.service.verify("alice", later).accepted
    earlier = totp(key, env.now)
    assert env.service.verify("alice", earlier).reason == VerifyReason.REPLAYED


def test_verify_accepts_spaces_and_refuses_malformed_without_hmac(env: Env) -> None:
    _, key = env.enrol_confirmed()
    before = env.sealer.unseals
    for bad in [
        "12345",
        "1234567",
        "\u0661\u0662\u0663\u0664\u0665\u0666",
        "+12345",
        "\uff11\uff12\uff13\uff14\uff15\uff16",
        "",
        None,
        123456,
    ]:
        env.service.admin_unlock("alice", admin_id="root")
        result = env.service.verify("alice", bad)  # type: ignore[arg-type]
        assert result.reason == VerifyReason.MALFORMED and not result.accepted
    assert env.sealer.unseals == before
    env.service.admin_unlock("alice", admin_id="root")
    code = totp(key, env.now)
    assert env.service.verify("alice", f" {code[:3]} {code[3:]} ").accepted


@pytest.mark.standard("RFC6238-6", "the drift of a match is learned and the next window follows it")
def test_drift_is_learned_and_the_window_follows_it(env: Env) -> None:
    _, key = env.enrol_confirmed()
    # The authenticator runs one step ahead: accepted at the window edge, drift learned.
    first = env.service.verify("alice", totp(key, env.now + 30))
    assert first.accepted and first.offset == 1 and first.drift == 1
    env.clock.advance(30)
    # Now two steps ahead: the window is centred on now + 1, so +2 is inside.
    second = env.service.verify("alice", totp(key, env.now + 60))
    assert second.accepted and second.offset == 1 and second.drift == 2
    env.clock.advance(30)
    # A code of the server's own step is now outside the window (centred on now + 2).
    stale_clock = env.service.verify("alice", totp(key, env.now))
    assert stale_clock.reason == VerifyReason.INVALID_CODE
    env.clock.advance(60)
    assert env.service.verify("alice", totp(key, env.now + 60)).offset == 0


@pytest.mark.standard("RFC6238-6", "the learned drift never exceeds max_drift")
def test_learned_drift_is_bounded(make_env: Callable[..., Env]) -> None:
    env = make_env(max_drift=1)
    _, key = env.enrol_confirmed()
    assert env.service.verify("alice", totp(key, env.now + 30)).drift == 1
    env.clock.advance(30)
    result = env.service.verify("alice", totp(key, env.now + 60))
    assert result.accepted and result.drift == 1  # matched 2 ahead, drift capped at 1
    env.clock.advance(30)
    assert env.service.verify("alice", totp(key, env.now + 90)).reason == VerifyReason.INVALID_CODE


def test_several_credentials_per_user(env: Env) -> None:
    first_id, first_key = env.enrol_confirmed()
    second_id, second_key = env.enrol_confirmed()
    assert env.service.verify("alice", totp(second_key, env.now)).credential_id == second_id
    assert env.service.verify("alice", totp(first_key, env.now)).credential_id == first_id
    # Steps are per credential: using the second device's code does not burn the first's.
    assert env.service.verify("bob", totp(first_key, env.now)).reason == VerifyReason.NO_CREDENTIAL


@pytest.mark.standard("RFC4226-7.4", "two consecutive codes far ahead resynchronise the counter")
@pytest.mark.standard(
    "RFC4226-7.2", "a code up to the look-ahead is accepted and moves the counter on"
)
def test_hotp_look_ahead_replay_and_resync(env: Env) -> None:
    cred_id, key = env.enrol_confirmed(kind=CredentialKind.HOTP)  # counter 0 used
    assert env.service.verify("alice", hotp(key, 1)).matched == 1
    skipped = env.service.verify("alice", hotp(key, 6))  # 4 presses lost
    assert skipped.accepted and skipped.offset == 4 and skipped.drift is None
    assert env.service.verify("alice", hotp(key, 6)).reason == VerifyReason.REPLAYED
    env.service.admin_unlock("alice", admin_id="root")
    assert env.service.verify("alice", hotp(key, 5)).reason == VerifyReason.INVALID_CODE
    env.service.admin_unlock("alice", admin_id="root")
    assert env.service.verify("alice", hotp(key, 7 + 10)).matched == 17  # edge of look-ahead
    assert env.service.verify("alice", hotp(key, 18 + 11)).reason == VerifyReason.INVALID_CODE
    env.service.admin_unlock("alice", admin_id="root")
    # Resynchronisation from two consecutive codes far ahead (RFC 4226 §7.4).
    env.events.events.clear()
    resync = env.service.resync_hotp("alice", cred_id, hotp(key, 80), hotp(key, 81))
    assert resync.accepted and resync.matched == 81 and resync.offset == 81 - 18
    assert env.types() == [EventType.HOTP_RESYNCED]
    assert env.service.verify("alice", hotp(key, 81)).reason == VerifyReason.REPLAYED
    env.service.admin_unlock("alice", admin_id="root")
    assert env.service.verify("alice", hotp(key, 82)).accepted
    # Not consecutive, or beyond the window: refused and counted.
    bad = env.service.resync_hotp("alice", cred_id, hotp(key, 90), hotp(key, 92))
    assert bad.reason == VerifyReason.INVALID_CODE
    env.service.admin_unlock("alice", admin_id="root")
    far = env.service.resync_hotp("alice", cred_id, hotp(key, 83 + 100), hotp(key, 84 + 100))
    assert far.reason == VerifyReason.INVALID_CODE
    env.service.admin_unlock("alice", admin_id="root")
    assert env.service.resync_hotp("alice", cred_id, "1", "2").reason == VerifyReason.MALFORMED


def test_resync_refuses_totp_and_unknown_credentials(env: Env) -> None:
    cred_id, _ = env.enrol_confirmed()
    with pytest.raises(InvalidParameter):
        env.service.resync_hotp("alice", cred_id, "123456", "234567")
    with pytest.raises(CredentialNotFound):
        env.service.resync_hotp("alice", "nope", "123456", "234567")
    pending, _ = env.enrol(kind=CredentialKind.HOTP)
    with pytest.raises(IllegalTransition):
        env.service.resync_hotp("alice", pending.credential_id, "123456", "234567")


# -- throttling --------------------------------------------------------------------------


@pytest.mark.standard("ASVS-6.3.1", "growing delay, then a lock that refuses even the right code")
@pytest.mark.standard(
    "RFC4226-7.3", "failures grow a delay, then lock; a locked user's right code is refused"
)
def test_growing_delay_then_lock_refuses_even_a_correct_code_without_hmac(
    make_env: Callable[..., Env],
) -> None:
    limits = ThrottleConfig(max_failures=4, base_delay=1.0, max_delay=8.0, lockout=300.0)
    env = make_env(throttle=limits)
    _, key = env.enrol_confirmed()
    bad = wrong_code([key], env.now)
    first = env.service.verify("alice", bad)
    assert first.reason == VerifyReason.INVALID_CODE and first.retry_after == delay_after(1, limits)
    # Inside the delay even the right code is refused, without unsealing the key.
    unseals = env.sealer.unseals
    throttled = env.service.verify("alice", totp(key, env.now))
    assert throttled.reason == VerifyReason.THROTTLED and throttled.retry_after is not None
    assert throttled.user_message == INVALID_CODE_MESSAGE and env.sealer.unseals == unseals
    assert _failure_count(env.store, "alice") == 1  # a throttled attempt is not counted
    for n in range(2, 5):
        env.clock.advance(delay_after(n - 1, limits))
        result = env.service.verify("alice", bad)
        assert result.reason == VerifyReason.INVALID_CODE
    assert env.types().count(EventType.USER_LOCKED) == 1
    locked = env.service.verify("alice", totp(key, env.now))
    assert locked.reason == VerifyReason.LOCKED and locked.user_message == INVALID_CODE_MESSAGE
    unseals = env.sealer.unseals
    env.clock.advance(200)
    assert env.service.verify("alice", totp(key, env.now)).reason == VerifyReason.LOCKED
    assert env.sealer.unseals == unseals
    assert not env.service.throttle_status("alice").allowed
    env.clock.advance(101)  # lockout over
    ok = env.service.verify("alice", totp(key, env.now))
    assert ok.accepted and _failure_count(env.store, "alice") == 0


def test_replay_counts_as_failure_and_success_resets(env: Env) -> None:
    _, key = env.enrol_confirmed()
    code = totp(key, env.now)
    assert env.service.verify("alice", code).accepted
    assert env.service.verify("alice", code).reason == VerifyReason.REPLAYED
    assert _failure_count(env.store, "alice") == 1
    env.clock.advance(30)
    assert env.service.verify("alice", totp(key, env.now)).accepted
    assert _failure_count(env.store, "alice") == 0


@pytest.mark.standard("ASVS-6.3.1", "failures count per user across all of the user's credentials")
def test_throttling_is_per_user_across_credentials(make_env: Callable[..., Env]) -> None:
    env = make_env(throttle=ThrottleConfig(max_failures=2, lockout=None))
    _, key_a = env.enrol_confirmed()
    _, key_b = env.enrol_confirmed()
    _, key_bob = env.enrol_confirmed("bob")
    for _ in range(2):
        env.clock.advance(60)
        env.service.verify("alice", wrong_code([key_a, key_b], env.now))
    for key in (key_a, key_b):
        assert env.service.verify("alice", totp(key, env.now)).reason == VerifyReason.LOCKED
    env.clock.advance(30 * DAY)  # lockout=None: until an administrator unlocks
    assert env.service.verify("alice", totp(key_a, env.now)).reason == VerifyReason.LOCKED
    assert env.service.verify("bob", totp(key_bob, env.now)).accepted
    env.service.admin_unlock("alice", admin_id="root")
    unlocked = env.events.of_type(EventType.USER_UNLOCKED)
    assert [(e.user_id, e.actor) for e in unlocked] == [("alice", "root")]
    assert env.service.verify("alice", totp(key_b, env.now)).accepted


# -- expiry and renewal ------------------------------------------------------------------


def test_expired_still_verifies_by_default_with_renewal_due(env: Env) -> None:
    _, key = env.enrol_confirmed()
    env.clock.advance(180 * DAY)
    result = env.service.verify("alice", totp(key, env.now))
    assert result.accepted and result.renewal_due
    [info] = env.service.list_credentials("alice")
    assert info.state == CredentialState.EXPIRED and info.renewal_due and info.can_authenticate
    assert env.events.of_type(EventType.VERIFICATION_SUCCEEDED)[-1].data["renewal_due"] is True


@pytest.mark.standard(
    "NIST-4.4", "with strict expiry an expired credential is refused, reason expired"
)
def test_strict_expiry_refuses_with_a_distinct_outcome(make_env: Callable[..., Env]) -> None:
    env = make_env(lifecycle=LifecycleConfig(strict_expiry=True))
    _, key = env.enrol_confirmed()
    env.clock.advance(180 * DAY + 1)
    unseals = env.sealer.unseals
    result = env.service.verify("alice", totp(key, env.now))
    assert not result.accepted and result.reason == VerifyReason.EXPIRED
    assert result.user_message == EXPIRED_MESSAGE != INVALID_CODE_MESSAGE
    # No key touched; the attempt was counted when it was admitted, before its outcome.
    assert env.sealer.unseals == unseals and _failure_count(env.store, "alice") == 1


def test_renewal_keeps_the_old_credential_until_the_new_one_is_confirmed(env: Env) -> None:
    old_id, old_key = env.enrol_confirmed()
    env.clock.advance(170 * DAY)
    env.events.events.clear()
    renewal = env.service.begin_renewal("alice", old_id, label="new phone")
    new_key = b32decode_key(renewal.secret)
    assert renewal.replaces == old_id and new_key != old_key
    assert env.types() == [EventType.CREDENTIAL_RENEWAL_STARTED]
    # The old one still works; the pending one does not authenticate.
    assert env.service.verify("alice", totp(old_key, env.now)).credential_id == old_id
    env.clock.advance(30)
    pending = env.service.verify("alice", totp(new_key, env.now))
    assert pending.reason == VerifyReason.INVALID_CODE
    env.clock.advance(60)
    confirmed = env.service.confirm_enrolment(
        "alice", renewal.credential_id, totp(new_key, env.now)
    )
    assert confirmed.accepted
    assert EventType.CREDENTIAL_RENEWED in env.types()
    assert EventType.MFA_ENABLED not in env.types()
    env.clock.advance(30)
    old = env.service.verify("alice", totp(old_key, env.now))
    assert old.reason == VerifyReason.INVALID_CODE
    env.clock.advance(5)  # past the delay after a failure; still the same step
    new = env.service.verify("alice", totp(new_key, env.now))
    assert new.accepted and not new.renewal_due
    infos = {i.id: i for i in env.service.list_credentials("alice")}
    assert infos[renewal.credential_id].state == CredentialState.ACTIVE
    assert old_id not in infos or not infos[old_id].can_authenticate


def test_renewal_of_an_expired_credential_and_restart(env: Env) -> None:
    old_id, _ = env.enrol_confirmed()
    env.clock.advance(200 * DAY)
    first = env.service.begin_renewal("alice", old_id)
    second = env.service.begin_renewal("alice", old_id)
    assert env.store.get(first.credential_id) is None  # restarted: the first one dropped
    assert env.store.get(second.credential_id).replaces == old_id
    with pytest.raises(IllegalTransition):
        env.service.begin_renewal("alice", second.credential_id)  # pending: cannot renew
    key = b32decode_key(second.secret)
    assert env.service.confirm_enrolment("alice", second.credential_id, totp(key, env.now)).accepted
    with pytest.raises((IllegalTransition, CredentialNotFound)):
        env.service.begin_renewal("alice", old_id)  # already superseded (or removed)


def test_pending_renewal_expires_without_touching_the_old_one(env: Env) -> None:
    old_id, old_key = env.enrol_confirmed()
    renewal = env.service.begin_renewal("alice", old_id)
    env.clock.advance(1900)
    key = b32decode_key(renewal.secret)
    with pytest.raises(IllegalTransition):
        env.service.confirm_enrolment("alice", renewal.credential_id, totp(key, env.now))
    assert env.service.verify("alice", totp(old_key, env.now)).accepted


# -- disable and administration ----------------------------------------------------------


def test_disable_needs_a_fresh_step_up_code(env: Env) -> None:
    cred_id, key = env.enrol_confirmed()
    with pytest.raises(StepUpRequired):
        env.service.disable("alice", cred_id)
    with pytest.raises(StepUpRequired):
        env.service.disable("alice", cred_id, step_up_code=wrong_code([key], env.now))
    assert _failure_count(env.store, "alice") == 1  # the wrong step-up counted
    assert env.store.get(cred_id).status == CredentialState.ACTIVE
    env.clock.advance(60)
    code = totp(key, env.now)
    env.service.disable("alice", cred_id, step_up_code=code)
    assert env.store.get(cred_id).status == CredentialState.DISABLED
    [event] = env.events.of_type(EventType.CREDENTIAL_DISABLED)
    assert event.credential_id == cred_id and event.actor is None
    assert env.service.verify("alice", totp(key, env.now + 30)).reason == VerifyReason.NO_CREDENTIAL
    with pytest.raises(IllegalTransition):
        env.service.disable("alice", cred_id, by_admin="root")


def test_disable_step_up_refusals_are_typed(make_env: Callable[..., Env]) -> None:
    env = make_env(throttle=ThrottleConfig(max_failures=1, lockout=60.0))
    cred_id, key = env.enrol_confirmed()
    env.service.verify("alice", wrong_code([key], env.now))
    with pytest.raises(Throttled) as locked:
        env.service.disable("alice", cred_id, step_up_code=totp(key, env.now))
    assert locked.value.code == ErrorCode.LOCKED
    env.clock.advance(61)
    code = totp(key, env.now)
    assert env.service.verify("alice", code).accepted
    with pytest.raises(StepUpRequired):  # replayed step-up code
        env.service.disable("alice", cred_id, step_up_code=code)


def test_disable_by_admin_and_illegal_disable_of_pending(env: Env) -> None:
    cred_id, _ = env.enrol_confirmed()
    pending, _ = env.enrol()
    with pytest.raises(IllegalTransition):
        env.service.disable("alice", pending.credential_id, by_admin="root")
    unseals = env.sealer.unseals
    env.service.disable("alice", cred_id, by_admin="root")
    assert env.sealer.unseals == unseals
    [event] = env.events.of_type(EventType.CREDENTIAL_DISABLED)
    assert event.actor == "root"
    [info, _pending] = env.service.list_credentials("alice")
    assert info.state == CredentialState.DISABLED and info.disabled_at == env.now


def test_admin_reset_removes_credentials_and_the_user_can_enrol_again(env: Env) -> None:
    first, key = env.enrol_confirmed()
    second, _ = env.enrol_confirmed()
    assert env.service.admin_reset("alice", admin_id="root", credential_id=first) == 1
    assert env.store.get(first) is None and env.store.get(second) is not None
    assert env.service.admin_reset("alice", admin_id="root") == 1
    resets = env.events.of_type(EventType.CREDENTIAL_RESET)
    assert [(e.credential_id, e.actor) for e in resets] == [(first, "root"), (second, "root")]
    assert env.service.verify("alice", totp(key, env.now)).reason == VerifyReason.NO_CREDENTIAL
    env.clock.advance(60)  # that attempt was counted: let its delay pass
    env.events.events.clear()
    env.enrol_confirmed()
    assert EventType.MFA_ENABLED in env.types()
    with pytest.raises(CredentialNotFound):
        env.service.admin_reset("alice", admin_id="root", credential_id=first)


# -- sealing -----------------------------------------------------------------------------


def test_reseal_moves_keys_to_the_current_sealing_key(env: Env) -> None:
    old_key, new_key = bytes(range(32)), bytes(range(32, 64))
    before = MFAService(
        env.store,
        env.store,
        AESGCMSealer({"k1": old_key}, current_key_id="k1"),
        clock=env.clock,
        events=env.events,
    )
    keys = []
    for _ in range(2):
        enrolment = before.begin_enrolment("alice")
        key = b32decode_key(enrolment.secret)
        assert before.confirm_enrolment(
            "alice", enrolment.credential_id, totp(key, env.now)
        ).accepted
        keys.append(key)
    env.clock.advance(30)
    rotated = AESGCMSealer({"k1": old_key, "k2": new_key}, current_key_id="k2")
    service = MFAService(env.store, env.store, rotated, clock=env.clock, events=env.events)
    assert all(i.needs_reseal for i in service.list_credentials("alice"))
    assert service.reseal("alice") == 2
    assert service.reseal("alice") == 0
    assert len(env.events.of_type(EventType.KEY_RESEALED)) == 2
    assert not any(i.needs_reseal for i in service.list_credentials("alice"))
    # The old sealing key can now be dropped: every key unseals with the new one alone.
    only_new = MFAService(
        env.store,
        env.store,
        AESGCMSealer({"k2": new_key}, current_key_id="k2"),
        clock=env.clock,
    )
    assert only_new.verify("alice", totp(keys[0], env.now)).accepted
    env.clock.advance(30)
    assert only_new.verify("alice", totp(keys[1], env.now)).accepted
    ids = [c.id for c in env.store.list_for_user("alice")]
    assert service.reseal(credential_ids=ids) == 0
    with pytest.raises(InvalidParameter):
        service.reseal()
    with pytest.raises(CredentialNotFound):
        service.reseal(credential_ids=["nope"])


def test_a_key_that_does_not_unseal_refuses_and_stays_counted(env: Env) -> None:
    _, key = env.enrol_confirmed()
    stranger = MFAService(env.store, env.store, AESGCMSealer.generate(), clock=env.clock)
    result = stranger.verify("alice", totp(key, env.now))
    assert not result.accepted and result.reason == VerifyReason.SEALING_ERROR
    assert result.user_message == UNAVAILABLE_MESSAGE
    # Admitted (and counted) before the key was unsealed: an attempt is never free.
    assert _failure_count(env.store, "alice") == 1
    env.clock.advance(60)
    with pytest.raises(SealingError):
        stranger.disable("alice", env.store.list_for_user("alice")[0].id, step_up_code="123456")


# -- events, secrets, ports ----------------------------------------------------------------


def test_every_transition_emits_an_event(env: Env) -> None:
    cred_id, _ = env.enrol_confirmed()
    renewal = env.service.begin_renewal("alice", cred_id)
    env.service.confirm_enrolment(
        "alice", renewal.credential_id, totp(b32decode_key(renewal.secret), env.now)
    )
    pending, _ = env.enrol()
    env.service.cancel_enrolment("alice", pending.credential_id)
    env.service.disable("alice", renewal.credential_id, by_admin="root")
    env.service.admin_reset("alice", admin_id="root")
    types = set(env.types())
    assert {
        EventType.ENROLMENT_STARTED,
        EventType.ENROLMENT_CONFIRMED,
        EventType.MFA_ENABLED,
        EventType.CREDENTIAL_RENEWAL_STARTED,
        EventType.CREDENTIAL_RENEWED,
        EventType.CREDENTIAL_REMOVED,
        EventType.CREDENTIAL_DISABLED,
        EventType.CREDENTIAL_RESET,
    } <= types
    assert all(e.at >= T0 and e.user_id == "alice" for e in env.events.events)


def test_results_events_and_logs_never_contain_secrets(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sink = LoggingEventSink()
    enrolment, key = env.enrol()
    logged = MFAService(env.store, env.store, env.sealer, clock=env.clock, events=sink)
    code = totp(key, env.now)
    outputs: list[object] = [enrolment, env.service.list_credentials("alice")]
    outputs.append(env.service.confirm_enrolment("alice", enrolment.credential_id, code))
    outputs.append(logged.verify("alice", code))
    env.clock.advance(30)
    code2 = totp(key, env.now)
    outputs.append(logged.verify("alice", code2))
    outputs.append(logged.verify("alice", code2))
    outputs.append(env.service.verify("alice", wrong_code([key], env.now)))
    text = " ".join(repr(o) + str(o) for o in outputs)
    text += " ".join(repr(e) for e in env.events.events) + caplog.text
    secret = enrolment.secret
    for needle in (secret, secret.lower(), secret[:16], key.hex(), repr(key)[2:-1], code, code2):
        assert needle not in text
    for result in outputs:
        if isinstance(result, VerificationResult):
            assert all(code not in str(v) for v in attrs.asdict(result).values())


def test_event_sink_failures_never_change_an_outcome(
    store_factory: Callable[[], Any], caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenSink:
        def emit(self, event: Event) -> None:
            raise RuntimeError("audit log down")

    store = store_factory()
    clock = FakeClock(T0)
    service = MFAService(store, store, AESGCMSealer.generate(), clock=clock, events=BrokenSink())
    enrolment = service.begin_enrolment("alice")
    key = b32decode_key(enrolment.secret)
    assert service.confirm_enrolment("alice", enrolment.credential_id, totp(key, T0)).accepted
    clock.advance(30)
    assert service.verify("alice", totp(key, clock.now())).accepted
    assert "event sink failed" in caplog.text


def test_the_clock_is_read_once_per_operation(store_factory: Callable[[], Any]) -> None:
    class CountingClock:
        def __init__(self) -> None:
            self.reads = 0

        def now(self) -> float:
            self.reads += 1
            return T0

    store = store_factory()
    clock = CountingClock()
    service = MFAService(store, store, AESGCMSealer.generate(), clock=clock)
    enrolment = service.begin_enrolment("alice")
    key = b32decode_key(enrolment.secret)
    service.confirm_enrolment("alice", enrolment.credential_id, totp(key, T0))
    assert service.verify("alice", totp(key, T0 + 30)).accepted  # next step: drift +1
    service.disable("alice", enrolment.credential_id, step_up_code=totp(key, T0 + 60))
    service.list_credentials("alice")
    assert clock.reads == 5


def test_bad_clock_and_bad_ports_are_typed_errors(store_factory: Callable[[], Any]) -> None:
    store = store_factory()
    sealer = AESGCMSealer.generate()
    with pytest.raises(InvalidParameter):
        MFAService(object(), store, sealer)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter):
        MFAService(store, store, sealer, config=object())  # type: ignore[arg-type]

    class NaNClock:
        def now(self) -> float:
            return float("nan")

    with pytest.raises(InvalidParameter):
        MFAService(store, store, sealer, clock=NaNClock()).verify("alice", "123456")
    with pytest.raises(InvalidParameter):
        MFAService(store, store, sealer).verify("", "123456")


@pytest.mark.parametrize(
    "reading", [10**400, 2**63, 1e300, -1, float("inf"), True, "1800000000", None]
)
def test_a_clock_reading_beyond_the_time_rule_is_the_clocks_error(
    store_factory: Callable[[], Any], reading: object
) -> None:
    """Beyond float range, past MAX_TIME (2**62), negative or not a number: the service
    names the clock (INVALID_TIME) before any store sees the time, whatever the flow."""
    store = store_factory()

    class BadClock:
        def now(self) -> Any:
            return reading

    service = MFAService(store, store, AESGCMSealer.generate(), clock=BadClock())
    flows: list[Callable[[], object]] = [
        lambda: service.verify("alice", "123456"),
        lambda: service.begin_enrolment("alice"),
        lambda: service.list_credentials("alice"),
        lambda: service.admin_unlock("alice", admin_id="root"),
        lambda: service.throttle_status("alice"),
    ]
    for flow in flows:
        with pytest.raises(InvalidParameter) as caught:
            flow()
        assert caught.value.code == ErrorCode.INVALID_TIME
        assert "clock" in str(caught.value)
    assert store.list_for_user("alice") == []


def test_the_latest_time_a_clock_may_read_is_used() -> None:
    store = MemoryStore()

    class LateClock:
        def now(self) -> int:
            return 2**62

    service = MFAService(store, store, AESGCMSealer.generate(), clock=LateClock())
    assert service.throttle_status("alice").allowed


def test_default_ports(store_factory: Callable[[], Any]) -> None:
    store = store_factory()
    service = MFAService(store, store, AESGCMSealer.generate())
    assert isinstance(service.config, ServiceConfig)
    assert abs(SystemClock().now() - __import__("time").time()) < 5
    NullEventSink().emit(Event(type=EventType.MFA_ENABLED, user_id="a", at=0.0))
    enrolment = service.begin_enrolment("alice")
    assert enrolment.expires_at > T0 - 10**9


@pytest.mark.parametrize(
    "field, value",
    [
        ("look_behind", -1),
        ("look_ahead", 201),
        ("max_drift", 1.5),
        ("hotp_look_ahead", True),
        ("hotp_resync_window", 0),
        ("hotp_resync_window", 1001),
        ("digits", 5),
        ("digits", 9),
        ("period", 0),
        ("key_bytes", 15),
        ("issuer", "a:b"),
        ("issuer", ""),
        ("lifecycle", None),
        ("throttle", {}),
        ("algorithm", "MD5"),
    ],
)
def test_service_config_rejects_nonsense(field: str, value: object) -> None:
    with pytest.raises(InvalidParameter):
        ServiceConfig(**{field: value})


_BOUNDS = {
    "look_behind": (0, 200),
    "look_ahead": (0, 200),
    "max_drift": (0, 200),
    "hotp_look_ahead": (0, 200),
    "hotp_resync_window": (1, 1000),
    "digits": (6, 8),
    "period": (1, 600),
    "key_bytes": (16, 256),
}


@settings(max_examples=150)
@given(st.sampled_from(sorted(_BOUNDS)), st.integers(-2000, 2000))
def test_service_config_accepts_exactly_its_ranges(field: str, value: int) -> None:
    low, high = _BOUNDS[field]
    if low <= value <= high:
        assert getattr(ServiceConfig(**{field: value}), field) == value
    else:
        with pytest.raises(InvalidParameter):
            ServiceConfig(**{field: value})


def test_user_message_is_uniform() -> None:
    uniform = {
        VerifyReason.INVALID_CODE,
        VerifyReason.MALFORMED,
        VerifyReason.REPLAYED,
        VerifyReason.THROTTLED,
        VerifyReason.LOCKED,
        VerifyReason.NO_CREDENTIAL,
        VerifyReason.CONFLICT,
    }
    for reason in VerifyReason:
        message = VerificationResult(accepted=reason == VerifyReason.OK, reason=reason).user_message
        if reason in uniform:
            assert message == INVALID_CODE_MESSAGE
        else:
            assert message != INVALID_CODE_MESSAGE


def test_store_error_in_lifecycle_operations_is_typed(env: Env) -> None:
    class DownStore:
        def __getattr__(self, name: str) -> Any:
            def fail(*args: Any, **kwargs: Any) -> Any:
                raise OSError("connection reset")

            return fail

    down: Any = DownStore()
    service = MFAService(down, down, env.sealer, clock=env.clock)
    with pytest.raises(StoreError):
        service.begin_enrolment("alice")
    with pytest.raises(StoreError):
        service.admin_unlock("alice", admin_id="root")
    result = service.verify("alice", "123456")
    assert result.reason == VerifyReason.STORE_ERROR and not result.accepted
    assert result.user_message == UNAVAILABLE_MESSAGE


def test_credential_ids_are_per_user(env: Env) -> None:
    cred_id, key = env.enrol_confirmed()
    with pytest.raises(CredentialNotFound):
        env.service.disable("bob", cred_id, by_admin="root")
    with pytest.raises(CredentialNotFound):
        env.service.begin_renewal("bob", cred_id)
    with pytest.raises(CredentialNotFound):
        env.service.confirm_enrolment("bob", cred_id, totp(key, env.now))
