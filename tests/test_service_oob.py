"""Out-of-band (email / SMS) codes through MFAService, on both embedded stores.

Time comes from a FakeClock (TTL and cooldown boundaries are tested on both sides), codes
from a FakeCodeSender that records what it would deliver.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from mfa_core import b32decode_key, totp
from mfa_core.errors import (
    CooldownActive,
    ErrorCode,
    IllegalTransition,
    InvalidParameter,
    OutOfBandError,
    SendLimitExceeded,
    StoreError,
    Throttled,
)
from mfa_core.models import EventType
from mfa_core.oob import USER_MESSAGE, OOBChannel, OOBConfig, OOBPurpose, OOBReason
from mfa_core.sealing import AESGCMSealer
from mfa_core.service import (
    UNAVAILABLE_MESSAGE,
    MFAService,
    OOBVerificationResult,
    ServiceConfig,
    VerificationResult,
    VerifyReason,
)
from mfa_core.stores import MemoryStore, SQLiteStore
from mfa_core.testing import FakeClock, FakeCodeSender, RecordingEventSink
from mfa_core.throttle import ThrottleConfig

T0 = 1_800_000_000.0
SECRET = b"host secret for tests, 32 bytes!"
PHONE = "+1 555 010 0167"
EMAIL = "alice@example.com"
NO_DELAY = ThrottleConfig(max_failures=50, base_delay=0.0)


@attrs.define
class Env:
    service: MFAService
    store: Any
    clock: FakeClock
    events: RecordingEventSink
    sender: FakeCodeSender

    def failures(self, user: str = "alice") -> int:
        return int(self.store.get_failures(user).count)

    def send(
        self,
        user: str = "alice",
        *,
        channel: OOBChannel = OOBChannel.SMS,
        purpose: OOBPurpose = OOBPurpose.LOGIN,
        destination: str = PHONE,
    ) -> tuple[str, str]:
        challenge = self.service.send_oob_code(
            user, channel=channel, destination=destination, purpose=purpose
        )
        return challenge, self.sender.last_code(challenge)

    def enable_totp(self, user: str = "alice") -> bytes:
        enrolment = self.service.begin_enrolment(user)
        key = b32decode_key(enrolment.secret)
        now = self.clock.now()
        assert self.service.confirm_enrolment(
            user, enrolment.credential_id, totp(key, now)
        ).accepted
        return key


@pytest.fixture(params=["memory", "sqlite"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Any]]:
    made: list[Any] = []

    def make() -> Any:
        store: Any = (
            MemoryStore()
            if request.param == "memory"
            else SQLiteStore(tmp_path / f"oob-{len(made)}.sqlite3")
        )
        made.append(store)
        return store

    yield make
    for store in made:
        close = getattr(store, "close", None)
        if close is not None:
            close()


@pytest.fixture
def make_env(store_factory: Callable[[], Any]) -> Callable[..., Env]:
    def make(
        *,
        oob: OOBConfig | None = None,
        throttle: ThrottleConfig = NO_DELAY,
        allow_email_login_with_totp: bool = False,
        wrap: Callable[[Any], Any] | None = None,
    ) -> Env:
        store = store_factory()
        challenges = store if wrap is None else wrap(store)
        clock = FakeClock(T0)
        events = RecordingEventSink()
        sender = FakeCodeSender()
        service = MFAService(
            store,
            store,
            AESGCMSealer.generate(),
            clock=clock,
            events=events,
            config=ServiceConfig(
                throttle=throttle,
                oob=oob or OOBConfig(),
                allow_email_login_with_totp=allow_email_login_with_totp,
            ),
            oob=challenges,
            sender=sender,
            secret=SECRET,
        )
        return Env(service, store, clock, events, sender)

    return make


@pytest.fixture
def env(make_env: Callable[..., Env]) -> Env:
    return make_env()


def other_code(code: str) -> str:
    return str((int(code) + 1) % 10 ** len(code)).zfill(len(code))


# -- sending ------------------------------------------------------------------------------


def test_send_delivers_a_code_and_stores_only_a_keyed_hash(env: Env) -> None:
    challenge = env.service.send_oob_code(
        "alice", channel="sms", destination=PHONE, purpose="login"
    )
    [sent] = env.sender.sent
    assert sent.challenge_id == challenge and sent.destination == PHONE
    assert sent.channel is OOBChannel.SMS and sent.purpose is OOBPurpose.LOGIN
    assert len(sent.code) == 6 and sent.code.isdigit()
    assert sent.expires_at == T0 + 180
    record = env.store.get_challenge(challenge)
    assert record.user_id == "alice" and record.destination_hint == "***67"
    assert sent.code.encode() not in record.code_hash and len(record.code_hash) == 32
    assert sent.code not in repr(record) and sent.code not in repr(env.sender)
    assert PHONE not in repr(record)
    [event] = env.events.events
    assert event.type is EventType.OOB_CODE_SENT and sent.code not in repr(event)
    assert event.data["challenge_id"] == challenge and event.data["destination"] == "***67"


def test_send_rejects_bad_arguments(env: Env) -> None:
    with pytest.raises(InvalidParameter):
        env.service.send_oob_code("alice", channel="fax", destination=PHONE, purpose="login")
    with pytest.raises(InvalidParameter):
        env.service.send_oob_code("alice", channel="sms", destination=PHONE, purpose="party")
    with pytest.raises(InvalidParameter):
        env.service.send_oob_code("alice", channel="email", destination="nope", purpose="reset")
    with pytest.raises(InvalidParameter):
        env.service.send_oob_code("", channel="sms", destination=PHONE, purpose="login")
    assert env.sender.sent == [] and env.events.events == []


def test_oob_needs_a_store_a_sender_and_a_secret(store_factory: Callable[[], Any]) -> None:
    store = store_factory()
    plain = MFAService(store, store, AESGCMSealer.generate())
    with pytest.raises(InvalidParameter):
        plain.send_oob_code("alice", channel="sms", destination=PHONE, purpose="login")
    with pytest.raises(InvalidParameter):
        plain.verify_oob_code("alice", "challenge", "123456", "login")
    with pytest.raises(InvalidParameter):
        MFAService(store, store, AESGCMSealer.generate(), oob=store, secret=SECRET)
    with pytest.raises(InvalidParameter):
        MFAService(store, store, AESGCMSealer.generate(), oob=store, sender=FakeCodeSender())


def test_a_failing_sender_leaves_no_challenge(env: Env) -> None:
    env.sender.failing = True
    with pytest.raises(OutOfBandError) as info:
        env.service.send_oob_code("alice", channel="sms", destination=PHONE, purpose="login")
    assert info.value.code is ErrorCode.OOB_DELIVERY_FAILED
    assert env.events.events == []


class QuotingSender:
    """A gateway whose error quotes the code and the number (as real ones do)."""

    def send(self, *, channel: Any, destination: str, code: str, **_: Any) -> None:
        raise RuntimeError(f"gateway refused {code} for {destination}")


@pytest.mark.parametrize("operation", ["send", "resend"])
def test_a_failed_delivery_keeps_no_trace_of_the_senders_exception(
    env: Env, operation: str
) -> None:
    challenge, _ = env.send()
    env.clock.advance(30)
    quoting = MFAService(
        env.store,
        env.store,
        AESGCMSealer.generate(),
        clock=env.clock,
        config=ServiceConfig(throttle=NO_DELAY),
        oob=env.store,
        sender=QuotingSender(),
        secret=SECRET,
    )
    with pytest.raises(OutOfBandError) as info:
        if operation == "send":
            quoting.send_oob_code("alice", channel="sms", destination=PHONE, purpose="login")
        else:
            quoting.resend_oob_code("alice", challenge, PHONE)
    error = info.value
    assert error.code is ErrorCode.OOB_DELIVERY_FAILED
    # Neither the cause nor the context: nothing of the gateway's text is reachable.
    assert error.__cause__ is None and error.__context__ is None
    assert PHONE not in "".join(traceback.format_exception(error))


# -- verification ---------------------------------------------------------------------------


@pytest.mark.standard("ASVS-6.5.1", "an email/SMS code works once")
def test_a_code_works_once(env: Env) -> None:
    challenge, code = env.send()
    result = env.service.verify_oob_code("alice", challenge, code, OOBPurpose.LOGIN)
    assert isinstance(result, VerificationResult) and isinstance(result, OOBVerificationResult)
    assert result.accepted and result.oob_reason is OOBReason.OK
    assert result.challenge_id == challenge
    assert [e.type for e in env.events.events][-1] is EventType.OOB_CODE_VERIFIED
    again = env.service.verify_oob_code("alice", challenge, code, "login")
    assert not again.accepted and again.oob_reason is OOBReason.USED
    assert again.reason is VerifyReason.REPLAYED and again.user_message == USER_MESSAGE
    assert env.failures() == 1


@pytest.mark.parametrize(
    ("attempt", "purpose", "reason"),
    [
        ("wrong", "login", OOBReason.WRONG_CODE),
        ("right", "step_up", OOBReason.WRONG_PURPOSE),
        ("12345", "login", OOBReason.MALFORMED),
        ("١٢٣٤٥٦", "login", OOBReason.MALFORMED),
    ],
)
def test_refusals_have_reasons_and_one_message(
    env: Env, attempt: str, purpose: str, reason: OOBReason
) -> None:
    challenge, code = env.send()
    typed = {"right": code, "wrong": other_code(code)}.get(attempt, attempt)
    result = env.service.verify_oob_code("alice", challenge, typed, purpose)
    assert not result.accepted and result.oob_reason is reason
    assert result.user_message == USER_MESSAGE == "invalid code"
    assert env.failures() == 1
    [failed] = env.events.of_type(EventType.OOB_CODE_FAILED)
    assert code not in repr(failed)
    record = env.store.get_challenge(challenge)
    assert record.attempts == (1 if reason is OOBReason.WRONG_CODE else 0)
    # The challenge still works for the right purpose afterwards.
    assert env.service.verify_oob_code("alice", challenge, code, "login").accepted


def test_a_code_never_works_for_another_challenge_or_user(env: Env) -> None:
    first, first_code = env.send()
    second, second_code = env.send()
    if first_code != second_code:
        crossed = env.service.verify_oob_code("alice", second, first_code, "login")
        assert crossed.oob_reason is OOBReason.WRONG_CODE
    foreign = env.service.verify_oob_code("bob", first, first_code, "login")
    assert foreign.oob_reason is OOBReason.WRONG_CHALLENGE and env.failures("bob") == 1
    unknown = env.service.verify_oob_code("alice", "no-such-challenge", first_code, "login")
    assert unknown.oob_reason is OOBReason.WRONG_CHALLENGE
    junk = env.service.verify_oob_code("alice", "bad id!", first_code, "login")
    assert junk.oob_reason is OOBReason.WRONG_CHALLENGE
    assert env.service.verify_oob_code("alice", first, first_code, "login").accepted
    assert env.service.verify_oob_code("alice", second, second_code, "login").accepted


@pytest.mark.standard("ASVS-6.5.5", "an email/SMS code is refused from the end of its TTL on")
@pytest.mark.parametrize("ttl", [180, 600])
def test_ttl_boundary(make_env: Callable[..., Env], ttl: int) -> None:
    env = make_env(oob=OOBConfig(ttl=ttl))
    before, code_before = env.send()
    at_limit, code_at_limit = env.send()
    env.clock.set(T0 + ttl - 0.001)
    assert env.service.verify_oob_code("alice", before, code_before, "login").accepted
    env.clock.set(T0 + ttl)
    late = env.service.verify_oob_code("alice", at_limit, code_at_limit, "login")
    assert late.oob_reason is OOBReason.EXPIRED and late.user_message == USER_MESSAGE


def test_per_code_attempt_limit(make_env: Callable[..., Env]) -> None:
    env = make_env(oob=OOBConfig(max_attempts=3))
    challenge, code = env.send()
    for _ in range(3):
        wrong = env.service.verify_oob_code("alice", challenge, other_code(code), "login")
        assert wrong.oob_reason is OOBReason.WRONG_CODE
    # Malformed attempts don't use up the code's attempts (the per-user counter counts them).
    blocked = env.service.verify_oob_code("alice", challenge, code, "login")
    assert blocked.oob_reason is OOBReason.TOO_MANY_ATTEMPTS and not blocked.accepted
    assert env.failures() == 4


# -- resending -----------------------------------------------------------------------------------


def test_cooldown_grows_by_30_seconds_both_sides(env: Env) -> None:
    challenge, _ = env.send()
    sent_at = T0
    for n, cooldown in enumerate([30, 60, 90, 120], start=1):
        env.clock.set(sent_at + cooldown - 0.5)
        with pytest.raises(CooldownActive) as info:
            env.service.resend_oob_code("alice", challenge, PHONE)
        assert info.value.retry_after == pytest.approx(0.5)
        env.clock.set(sent_at + cooldown)
        assert env.service.resend_oob_code("alice", challenge, PHONE) == challenge
        sent_at += cooldown
        assert len(env.sender.sent) == n + 1
        assert env.store.get_challenge(challenge).resend_count == n
    assert [e.data["resend_count"] for e in env.events.of_type(EventType.OOB_CODE_SENT)] == [
        0,
        1,
        2,
        3,
        4,
    ]


def test_resend_kills_the_old_code_and_keeps_the_failure_count(env: Env) -> None:
    challenge, old = env.send()
    new_attempt = other_code(old)
    env.service.verify_oob_code("alice", challenge, new_attempt, "login")
    env.service.verify_oob_code("alice", challenge, new_attempt, "login")
    assert env.failures() == 2
    env.clock.advance(30)
    env.service.resend_oob_code("alice", challenge, PHONE)
    new = env.sender.last_code(challenge)
    assert env.failures() == 2
    assert env.store.get_challenge(challenge).attempts == 0
    if new != old:
        dead = env.service.verify_oob_code("alice", challenge, old, "login")
        assert dead.oob_reason is OOBReason.WRONG_CODE and env.failures() == 3
    result = env.service.verify_oob_code("alice", challenge, new, "login")
    assert result.accepted and env.failures() == 0
    # The new code is valid for a full TTL from the resend.
    assert env.sender.sent[-1].expires_at == T0 + 30 + 180


def test_resend_refusals(env: Env) -> None:
    challenge, code = env.send()
    env.clock.advance(30)
    with pytest.raises(OutOfBandError) as elsewhere:
        env.service.resend_oob_code("alice", challenge, "+1 555 010 0199")
    assert elsewhere.value.code is ErrorCode.OOB_DESTINATION_MISMATCH
    with pytest.raises(InvalidParameter):
        env.service.resend_oob_code("alice", challenge, "not a number")
    with pytest.raises(OutOfBandError) as missing:
        env.service.resend_oob_code("alice", "no-such-challenge", PHONE)
    assert missing.value.code is ErrorCode.OOB_CHALLENGE_NOT_FOUND
    with pytest.raises(OutOfBandError):
        env.service.resend_oob_code("bob", challenge, PHONE)
    with pytest.raises(OutOfBandError):
        env.service.resend_oob_code("alice", "bad id!", PHONE)
    assert env.service.verify_oob_code("alice", challenge, code, "login").accepted
    with pytest.raises(IllegalTransition):
        env.service.resend_oob_code("alice", challenge, PHONE)
    assert len(env.sender.sent) == 1


def test_a_failing_resend_restores_the_previous_code(env: Env) -> None:
    challenge, code = env.send()
    env.clock.advance(30)
    env.sender.failing = True
    with pytest.raises(OutOfBandError) as info:
        env.service.resend_oob_code("alice", challenge, PHONE)
    assert info.value.code is ErrorCode.OOB_DELIVERY_FAILED
    env.sender.failing = False
    assert env.service.verify_oob_code("alice", challenge, code, "login").accepted


def test_expired_codes_can_be_resent(env: Env) -> None:
    challenge, _ = env.send()
    env.clock.advance(500)
    env.service.resend_oob_code("alice", challenge, PHONE)
    assert env.service.verify_oob_code(
        "alice", challenge, env.sender.last_code(challenge), "login"
    ).accepted


# -- policy: email login codes once TOTP is on ----------------------------------------------


@pytest.mark.standard("NIST-3.1.3.1", "email codes do not count as a second factor once TOTP is on")
def test_email_login_codes_are_refused_once_totp_is_enabled(env: Env) -> None:
    env.send(channel=OOBChannel.EMAIL, destination=EMAIL)  # no authenticator yet: fine
    env.enable_totp()
    with pytest.raises(OutOfBandError) as info:
        env.send(channel=OOBChannel.EMAIL, destination=EMAIL)
    assert info.value.code is ErrorCode.OOB_CHANNEL_NOT_ALLOWED
    env.send(channel=OOBChannel.SMS)  # other channels and purposes stay available
    env.send(channel=OOBChannel.EMAIL, destination=EMAIL, purpose=OOBPurpose.RESET)
    env.send("bob", channel=OOBChannel.EMAIL, destination=EMAIL)


def test_an_email_login_challenge_started_before_totp_dies_when_totp_is_enabled(
    env: Env,
) -> None:
    challenge, code = env.send(channel=OOBChannel.EMAIL, destination=EMAIL)
    env.enable_totp()
    env.clock.advance(60)
    # No resend (and so no new lifetime) ...
    with pytest.raises(OutOfBandError) as info:
        env.service.resend_oob_code("alice", challenge, EMAIL)
    assert info.value.code is ErrorCode.OOB_CHANNEL_NOT_ALLOWED
    # ... and the code already sent no longer logs in: refused, counted, audited.
    before = env.failures()
    result = env.service.verify_oob_code("alice", challenge, code, "login")
    assert not result.accepted and result.oob_reason is OOBReason.CHANNEL_NOT_ALLOWED
    assert result.reason is VerifyReason.INVALID_CODE and result.user_message == USER_MESSAGE
    assert env.failures() == before + 1
    # An SMS login code started at the same time still works.
    sms, sms_code = env.send(channel=OOBChannel.SMS)
    assert env.service.verify_oob_code("alice", sms, sms_code, "login").accepted


def test_pending_enrolment_does_not_block_email_login(env: Env) -> None:
    env.service.begin_enrolment("alice")
    env.send(channel=OOBChannel.EMAIL, destination=EMAIL)


def test_policy_flag_allows_email_login_with_totp(make_env: Callable[..., Env]) -> None:
    env = make_env(allow_email_login_with_totp=True)
    env.enable_totp()
    challenge, code = env.send(channel=OOBChannel.EMAIL, destination=EMAIL)
    assert env.service.verify_oob_code("alice", challenge, code, "login").accepted


# -- throttling shared with OTP ----------------------------------------------------------------


def test_oob_failures_lock_the_user_for_every_factor(make_env: Callable[..., Env]) -> None:
    env = make_env(throttle=ThrottleConfig(max_failures=3, base_delay=0.0))
    key = env.enable_totp()
    challenge, code = env.send()
    for _ in range(3):
        env.service.verify_oob_code("alice", challenge, other_code(code), "login")
    assert len(env.events.of_type(EventType.USER_LOCKED)) == 1
    locked = env.service.verify_oob_code("alice", challenge, code, "login")
    assert locked.reason is VerifyReason.LOCKED and locked.oob_reason is None
    assert locked.user_message == USER_MESSAGE
    assert env.store.get_challenge(challenge).attempts == 3
    env.clock.advance(30)
    assert env.service.verify("alice", totp(key, env.clock.now())).reason is VerifyReason.LOCKED
    with pytest.raises(Throttled) as info:
        env.send()
    assert info.value.code is ErrorCode.LOCKED
    with pytest.raises(Throttled):
        env.service.resend_oob_code("alice", challenge, PHONE)


def test_throttle_delay_applies_before_reading_the_challenge(make_env: Callable[..., Env]) -> None:
    env = make_env(throttle=ThrottleConfig(max_failures=5, base_delay=2.0))
    challenge, code = env.send()
    env.service.verify_oob_code("alice", challenge, other_code(code), "login")
    early = env.service.verify_oob_code("alice", challenge, code, "login")
    assert early.reason is VerifyReason.THROTTLED and early.retry_after == 2.0
    env.clock.advance(2.0)
    assert env.service.verify_oob_code("alice", challenge, code, "login").accepted
    assert env.failures() == 0


def test_phone_confirmation_neither_counts_nor_clears_failures(env: Env) -> None:
    login, login_code = env.send(purpose=OOBPurpose.LOGIN)
    env.service.verify_oob_code("alice", login, other_code(login_code), "login")
    assert env.failures() == 1
    env.clock.advance(5)
    challenge, code = env.send(purpose=OOBPurpose.PHONE_CONFIRMATION)
    wrong = env.service.verify_oob_code("alice", challenge, other_code(code), "phone_confirmation")
    assert not wrong.accepted and env.failures() == 1  # a mistyped confirmation locks nothing
    ok = env.service.verify_oob_code("alice", challenge, code, "phone_confirmation")
    assert ok.accepted and env.failures() == 1  # nor does a confirmation clear failures


# -- failures of the store ----------------------------------------------------------------------


class FlakyChallenges:
    """Delegates to a store; ``update_challenge`` and ``get_challenge`` fail while
    ``broken`` (a dropped connection)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.broken: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def get_challenge(self, challenge_id: str) -> Any:
        if self.broken == "get":
            raise ConnectionError("dropped")
        return self.inner.get_challenge(challenge_id)

    def update_challenge(self, record: Any, *, expected: Any) -> bool:
        if self.broken == "update":
            raise ConnectionError("dropped")
        return bool(self.inner.update_challenge(record, expected=expected))


@pytest.mark.parametrize("failing", ["get", "update"])
def test_a_failing_store_refuses(make_env: Callable[..., Env], failing: str) -> None:
    flaky: list[FlakyChallenges] = []

    def wrap(store: Any) -> FlakyChallenges:
        flaky.append(FlakyChallenges(store))
        return flaky[0]

    env = make_env(wrap=wrap)
    challenge, code = env.send()
    flaky[0].broken = failing
    result = env.service.verify_oob_code("alice", challenge, code, "login")
    assert not result.accepted and result.reason is VerifyReason.STORE_ERROR
    # The attempt was admitted (counted) before the challenge store failed.
    assert result.user_message == UNAVAILABLE_MESSAGE and env.failures() == 1
    assert env.events.of_type(EventType.OOB_CODE_FAILED)[-1].reason == "store_error"
    flaky[0].broken = None
    assert env.service.verify_oob_code("alice", challenge, code, "login").accepted
    assert env.failures() == 0


# -- send limits --------------------------------------------------------------------------------


class CountingChallenges:
    """Delegates to a store and records what reaches it; ``count_send`` fails while
    ``broken``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.broken = False
        self.answer: object = None  # what count_send returns instead of the real count
        self.puts = 0
        self.counted: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put_challenge(self, record: Any) -> None:
        self.puts += 1
        self.inner.put_challenge(record)

    def count_send(self, key: str, window_start: float, expires_at: float) -> Any:
        if self.broken:
            raise ConnectionError("dropped")
        self.counted.append(key)
        if self.answer is not None:
            return self.answer
        return int(self.inner.count_send(key, window_start, expires_at))


def counting_env(make_env: Callable[..., Env], **config: Any) -> tuple[Env, CountingChallenges]:
    made: list[CountingChallenges] = []

    def wrap(store: Any) -> CountingChallenges:
        made.append(CountingChallenges(store))
        return made[0]

    env = make_env(oob=OOBConfig(**config), wrap=wrap)
    return env, made[0]


def test_the_eleventh_send_in_a_window_is_refused(make_env: Callable[..., Env]) -> None:
    env, challenges = counting_env(make_env)
    for i in range(10):
        env.clock.set(T0 + i)
        env.send(destination=f"+1 555 010 01{i:02d}")  # ten numbers: only the user limit
    env.clock.set(T0 + 100)
    with pytest.raises(SendLimitExceeded) as info:
        env.send(destination="+1 555 010 0199")
    assert isinstance(info.value, OutOfBandError) and info.value.code is ErrorCode.OOB_SEND_LIMIT
    assert info.value.retry_after == 3600 - 100
    assert "555" not in str(info.value) and "0199" not in repr(info.value)
    assert len(env.sender.sent) == 10 and challenges.puts == 10
    assert len(env.events.of_type(EventType.OOB_CODE_SENT)) == 10
    # the next window allows again, to the second
    env.clock.set(T0 + 3600 - 0.001)
    with pytest.raises(SendLimitExceeded):
        env.send(destination="+1 555 010 0199")
    env.clock.set(T0 + 3600)
    env.send(destination="+1 555 010 0199")
    assert len(env.sender.sent) == 11 and challenges.puts == 11


def test_the_refusal_is_audited_without_the_destination(make_env: Callable[..., Env]) -> None:
    env = make_env(oob=OOBConfig(max_sends_per_user=1))
    env.send()
    with pytest.raises(SendLimitExceeded):
        env.send()
    [event] = env.events.of_type(EventType.OOB_SEND_LIMITED)
    assert event.user_id == "alice" and event.reason == "user" and event.at == T0
    assert event.data["limit"] == "user" and event.data["max_sends"] == 1
    assert event.data["channel"] == "sms" and event.data["purpose"] == "login"
    assert event.data["resend"] is False and event.data["window_ends_at"] == T0 + 3600
    text = repr(event)
    assert "555" not in text and "0167" not in text and "***67" not in text


def test_the_destination_limit_holds_across_users(make_env: Callable[..., Env]) -> None:
    env, challenges = counting_env(make_env, max_sends_per_user=None, max_sends_per_destination=3)
    env.send("alice")
    env.send("bob", destination="+15550100167")  # the same number, written differently
    env.send("carol", destination="1 (555) 010-0167")
    with pytest.raises(SendLimitExceeded) as info:
        env.send("dave")
    assert info.value.retry_after == 3600
    [event] = env.events.of_type(EventType.OOB_SEND_LIMITED)
    assert event.user_id == "dave" and event.data["limit"] == "destination"
    assert "555" not in repr(event) and "0167" not in repr(event)
    env.send("dave", destination="+1 555 010 0168")  # another number is fine
    assert [sent.destination for sent in env.sender.sent][-1] == "+1 555 010 0168"
    # the store only ever sees keyed hashes of destinations
    assert all(key.startswith("d:") and "555" not in key for key in challenges.counted)
    assert len(set(challenges.counted)) == 2 and challenges.puts == 4


def test_email_destinations_are_counted_case_insensitively(make_env: Callable[..., Env]) -> None:
    env = make_env(oob=OOBConfig(max_sends_per_user=None, max_sends_per_destination=2))
    env.send("alice", channel=OOBChannel.EMAIL, destination=EMAIL, purpose=OOBPurpose.RESET)
    env.send("bob", channel=OOBChannel.EMAIL, destination=" Alice@Example.COM ")
    with pytest.raises(SendLimitExceeded):
        env.send("carol", channel=OOBChannel.EMAIL, destination=EMAIL)
    # SMS and email counters are apart even for look-alike destinations
    env.send("carol", destination=PHONE)


def test_a_user_over_the_limit_does_not_use_up_the_destination(
    make_env: Callable[..., Env],
) -> None:
    env = make_env(oob=OOBConfig(max_sends_per_user=1, max_sends_per_destination=2))
    env.send("alice")
    for _ in range(3):
        with pytest.raises(SendLimitExceeded):
            env.send("alice")
    env.send("bob")  # the destination's second send
    with pytest.raises(SendLimitExceeded):
        env.send("carol")
    assert len(env.sender.sent) == 2


def test_resends_count_towards_the_limits(make_env: Callable[..., Env]) -> None:
    env = make_env(oob=OOBConfig(max_sends_per_user=3))
    challenge, _ = env.send()
    env.clock.advance(30)
    env.service.resend_oob_code("alice", challenge, PHONE)
    env.clock.advance(60)
    env.service.resend_oob_code("alice", challenge, PHONE)
    env.clock.advance(90)
    with pytest.raises(SendLimitExceeded) as info:
        env.service.resend_oob_code("alice", challenge, PHONE)
    assert info.value.retry_after == pytest.approx(3600 - 180)
    [event] = env.events.of_type(EventType.OOB_SEND_LIMITED)
    assert event.data["resend"] is True and event.data["limit"] == "user"
    assert len(env.sender.sent) == 3
    record = env.store.get_challenge(challenge)
    assert record.generation == 2 and record.resend_count == 2
    # the last code delivered still works
    last = env.sender.last_code(challenge)
    assert env.service.verify_oob_code("alice", challenge, last, "login").accepted
    # a resend refused by its cooldown is not counted
    env2 = make_env(oob=OOBConfig(max_sends_per_user=2))
    challenge2, _ = env2.send()
    for _ in range(3):
        with pytest.raises(CooldownActive):
            env2.service.resend_oob_code("alice", challenge2, PHONE)
    env2.clock.advance(30)
    assert env2.service.resend_oob_code("alice", challenge2, PHONE) == challenge2


def test_failed_deliveries_still_count(env: Env) -> None:
    env.sender.failing = True
    for _ in range(10):
        with pytest.raises(OutOfBandError) as failed:
            env.send()
        assert failed.value.code is ErrorCode.OOB_DELIVERY_FAILED
    env.sender.failing = False
    with pytest.raises(SendLimitExceeded):
        env.send()
    assert env.sender.sent == []


def test_none_disables_the_limits(make_env: Callable[..., Env]) -> None:
    env, challenges = counting_env(
        make_env, max_sends_per_user=None, max_sends_per_destination=None
    )
    for _ in range(15):
        env.send()
    assert len(env.sender.sent) == 15 and challenges.counted == []
    only_users, user_counter = counting_env(make_env, max_sends_per_destination=None)
    only_users.send()
    assert [key[:2] for key in user_counter.counted] == ["u:"]


def test_refused_sends_are_not_counted(make_env: Callable[..., Env]) -> None:
    env, challenges = counting_env(make_env, max_sends_per_user=1, max_sends_per_destination=1)
    with pytest.raises(InvalidParameter):
        env.send(destination="not a number")
    env.enable_totp()
    with pytest.raises(OutOfBandError):
        env.send(channel=OOBChannel.EMAIL, destination=EMAIL)
    assert challenges.counted == []
    env.send()  # the one send allowed


def test_a_failing_counter_fails_closed(make_env: Callable[..., Env]) -> None:
    env, challenges = counting_env(make_env)
    challenge, code = env.send()
    challenges.broken = True
    with pytest.raises(StoreError):
        env.send()
    env.clock.advance(30)
    with pytest.raises(StoreError):
        env.service.resend_oob_code("alice", challenge, PHONE)
    assert len(env.sender.sent) == 1 and challenges.puts == 1
    assert env.store.get_challenge(challenge).generation == 0
    assert env.events.of_type(EventType.OOB_SEND_LIMITED) == []
    challenges.broken = False
    assert env.service.verify_oob_code("alice", challenge, code, "login").accepted


@pytest.mark.parametrize("answer", ["1", 1.0, True, [1]])
def test_a_count_that_is_not_an_integer_fails_closed(
    make_env: Callable[..., Env], answer: object
) -> None:
    env, challenges = counting_env(make_env)
    challenges.answer = answer
    with pytest.raises(StoreError, match="not an integer"):
        env.send()
    assert env.sender.sent == [] and challenges.puts == 0


# -- concurrency -------------------------------------------------------------------------------


def _race(count: int, fn: Callable[[], Any]) -> list[Any]:
    barrier = threading.Barrier(count)
    results: list[Any] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait(timeout=30)
        try:
            outcome: Any = fn()
        except Exception as exc:
            outcome = exc
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == count
    return results


def test_sixteen_threads_one_code_exactly_one_accepted(env: Env) -> None:
    challenge, code = env.send()
    results = _race(16, lambda: env.service.verify_oob_code("alice", challenge, code, "login"))
    assert sum(r.accepted for r in results) == 1
    assert {r.oob_reason for r in results if not r.accepted} <= {OOBReason.USED}
    # Every attempt was counted when admitted; the success reset the count, so what is
    # left are the failures admitted after that reset (none to all 15, by the timing).
    assert 0 <= env.failures() <= 15


def test_concurrent_wrong_attempts_are_counted_exactly(make_env: Callable[..., Env]) -> None:
    env = make_env(oob=OOBConfig(max_attempts=20))
    challenge, code = env.send()
    wrong = other_code(code)
    results = _race(16, lambda: env.service.verify_oob_code("alice", challenge, wrong, "login"))
    assert all(r.oob_reason is OOBReason.WRONG_CODE for r in results)
    assert env.store.get_challenge(challenge).attempts == 16
    assert env.failures() == 16


def test_concurrent_resends_send_one_code(make_env: Callable[..., Env]) -> None:
    # Limits above the 17 sends counted here: every loser meets the cooldown.
    env = make_env(oob=OOBConfig(max_sends_per_user=50, max_sends_per_destination=50))
    challenge, _ = env.send()
    env.clock.advance(30)
    results = _race(16, lambda: env.service.resend_oob_code("alice", challenge, PHONE))
    assert results.count(challenge) == 1
    assert all(isinstance(r, CooldownActive) for r in results if r != challenge)
    assert len(env.sender.sent) == 2
    assert env.store.get_challenge(challenge).generation == 1


def test_concurrent_resends_under_the_default_limits_still_send_one_code(env: Env) -> None:
    # Each resend that passed the cooldown check is counted before its compare-and-set,
    # so a lost race still uses up a send (never fewer counted than sent); a loser gets
    # CooldownActive or, once the count is over 10, SendLimitExceeded.
    challenge, _ = env.send()
    env.clock.advance(30)
    results = _race(16, lambda: env.service.resend_oob_code("alice", challenge, PHONE))
    assert results.count(challenge) == 1
    assert all(isinstance(r, CooldownActive | SendLimitExceeded) for r in results if r != challenge)
    assert len(env.sender.sent) == 2
    assert env.store.get_challenge(challenge).generation == 1
