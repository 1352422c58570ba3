"""Out-of-band (email/SMS) codes: issue, check, resend, TTL and cooldown boundaries."""

from __future__ import annotations

import collections
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mfa_core import oob
from mfa_core.errors import (
    CooldownActive,
    ErrorCode,
    IllegalTransition,
    InvalidKey,
    InvalidParameter,
    MFAError,
)
from mfa_core.oob import (
    USER_MESSAGE,
    IssuedCode,
    OOBChannel,
    OOBCheck,
    OOBConfig,
    OOBPurpose,
    OOBReason,
    OOBRecord,
    check,
    code_hash,
    issue,
    mask_destination,
    parse_purpose,
    resend,
    resend_available_at,
)

KEY = bytes(range(100, 132))
OTHER_KEY = bytes(range(32))
T0 = 1_700_000_000.0
CHALLENGE = "chal-1"
FIXED_CODE = "987654"


def _issue(
    *,
    now: float = T0,
    purpose: OOBPurpose = OOBPurpose.LOGIN,
    config: OOBConfig | None = None,
    challenge_id: str = CHALLENGE,
    channel: OOBChannel = OOBChannel.EMAIL,
    destination: str = "alice@example.com",
) -> IssuedCode:
    return issue(
        user_id="alice",
        purpose=purpose,
        channel=channel,
        destination=destination,
        now=now,
        key=KEY,
        config=config,
        challenge_id=challenge_id,
    )


def _check(
    record: OOBRecord,
    attempt: object,
    *,
    now: float = T0 + 1,
    purpose: OOBPurpose | str = OOBPurpose.LOGIN,
    challenge_id: str = CHALLENGE,
    key: bytes = KEY,
) -> OOBCheck:
    return check(record, attempt, purpose=purpose, challenge_id=challenge_id, now=now, key=key)


def _wrong(code: str) -> str:
    return str((int(code) + 1) % 10 ** len(code)).zfill(len(code))


@pytest.fixture
def fixed_code(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(oob, "_new_code", lambda digits: FIXED_CODE[:digits].ljust(digits, "3"))
    return FIXED_CODE


# --- configuration ---------------------------------------------------------------------


def test_defaults() -> None:
    config = OOBConfig()
    assert (config.digits, config.ttl, config.max_attempts) == (6, 180, 5)
    assert [config.cooldown(n) for n in range(4)] == [30, 60, 90, 120]
    assert (config.send_window, config.max_sends_per_user, config.max_sends_per_destination) == (
        3600,
        10,
        10,
    )


def test_send_limit_bounds_and_none() -> None:
    config = OOBConfig(send_window=60, max_sends_per_user=1, max_sends_per_destination=1000)
    assert (config.send_window, config.max_sends_per_user) == (60, 1)
    assert OOBConfig(send_window=86400).send_window == 86400
    unlimited = OOBConfig(max_sends_per_user=None, max_sends_per_destination=None)
    assert unlimited.max_sends_per_user is None and unlimited.max_sends_per_destination is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"digits": 5},
        {"digits": 9},
        {"digits": "6"},
        {"ttl": 0},
        {"ttl": 601},
        {"ttl": 180.5},
        {"ttl": True},
        {"max_attempts": 0},
        {"max_attempts": 21},
        {"resend_cooldown": -1},
        {"resend_cooldown_step": 3601},
        {"send_window": 59},
        {"send_window": 86401},
        {"send_window": 3600.0},
        {"max_sends_per_user": 0},
        {"max_sends_per_user": 1001},
        {"max_sends_per_user": True},
        {"max_sends_per_destination": 0},
        {"max_sends_per_destination": 1001},
        {"max_sends_per_destination": "10"},
    ],
)
def test_bad_config_raises_typed_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidParameter) as info:
        OOBConfig(**kwargs)
    assert info.value.code is ErrorCode.INVALID_PARAMETER


@pytest.mark.standard("ASVS-6.5.5", "a TTL above 10 minutes is refused")
def test_ttl_limits() -> None:
    assert OOBConfig(ttl=600).ttl == 600
    assert OOBConfig(ttl=1).ttl == 1
    with attrs.validators.disabled(), pytest.raises(InvalidParameter):
        OOBConfig(ttl=601)


def test_cooldown_rejects_bad_count() -> None:
    with pytest.raises(InvalidParameter):
        OOBConfig().cooldown(-1)


# --- issuing ---------------------------------------------------------------------------


@pytest.mark.parametrize("digits", [6, 7, 8])
def test_issue_makes_a_numeric_code_and_a_hashed_record(digits: int) -> None:
    issued = _issue(config=OOBConfig(digits=digits, ttl=300, max_attempts=3))
    assert len(issued.code) == digits
    assert issued.code.isdigit()
    assert issued.code.isascii()
    record = issued.record
    assert record.challenge_id == CHALLENGE
    assert record.user_id == "alice"
    assert record.purpose is OOBPurpose.LOGIN
    assert record.channel is OOBChannel.EMAIL
    assert record.destination_hint == "a***@example.com"
    assert record.issued_at == T0
    assert record.expires_at == T0 + 300
    assert (record.attempts, record.resend_count, record.generation, record.used) == (
        0,
        0,
        0,
        False,
    )
    assert record.max_attempts == 3
    assert record.digits == digits
    assert record.code_hash == code_hash(KEY, CHALLENGE, "login", issued.code.encode())


def test_issue_draws_uniformly_with_randbelow(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def fake_randbelow(n: int) -> int:
        calls.append(n)
        return 42

    monkeypatch.setattr("mfa_core.oob.secrets.randbelow", fake_randbelow)
    assert _issue(config=OOBConfig(digits=8)).code == "00000042"
    assert calls == [10**8]


def test_codes_spread_over_all_digits() -> None:
    # 600 codes x 6 digits: every digit value at every position shows up (a code that
    # ignored some digits or positions would not); chance of a false failure ~ 1e-25.
    per_position = [collections.Counter[str]() for _ in range(6)]
    for _ in range(600):
        for position, digit in enumerate(_issue().code):
            per_position[position][digit] += 1
    for counter in per_position:
        assert set(counter) == set("0123456789")
        assert max(counter.values()) < 110  # expected 60 each


def test_random_challenge_ids_differ() -> None:
    first = issue(
        user_id="u", purpose="reset", channel="sms", destination="+15550100167", now=T0, key=KEY
    )
    second = issue(
        user_id="u", purpose="reset", channel="sms", destination="+15550100167", now=T0, key=KEY
    )
    assert first.record.challenge_id != second.record.challenge_id
    assert len(first.record.challenge_id) >= 20
    assert first.record.destination_hint == "***67"
    assert first.record.channel is OOBChannel.SMS
    assert first.record.purpose is OOBPurpose.RESET


@pytest.mark.parametrize(
    "kwargs",
    [
        {"user_id": ""},
        {"user_id": None},
        {"purpose": "signup"},
        {"purpose": None},
        {"channel": "pigeon"},
        {"destination": "not-an-address"},
        {"destination": ""},
        {"now": float("nan")},
        {"now": float("inf")},
        {"now": -1},
        {"now": "now"},
        {"now": True},
        {"challenge_id": ""},
        {"challenge_id": "a b"},
        {"challenge_id": "x" * 129},
        {"challenge_id": "\u0663"},
        {"config": {"ttl": 60}},
    ],
)
def test_issue_rejects_bad_input(kwargs: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {
        "user_id": "alice",
        "purpose": "login",
        "channel": "email",
        "destination": "alice@example.com",
        "now": T0,
        "key": KEY,
        "challenge_id": CHALLENGE,
    }
    arguments.update(kwargs)
    with pytest.raises(InvalidParameter):
        issue(**arguments)


@pytest.mark.parametrize("key", [b"short", "a text key of enough length", None])
def test_issue_rejects_bad_keys(key: object) -> None:
    with pytest.raises(InvalidKey):
        issue(
            user_id="alice",
            purpose="login",
            channel="email",
            destination="alice@example.com",
            now=T0,
            key=key,  # type: ignore[arg-type]
        )


@pytest.mark.parametrize(
    ("channel", "destination", "hint"),
    [
        ("email", "alice@example.com", "a***@example.com"),
        ("email", " bob.smith@mail.example.org ", "b***@mail.example.org"),
        ("sms", "+1 (555) 010-0167", "***67"),
        ("sms", "0049 30 1234567", "***67"),
        ("sms", "555.010.0199", "***99"),
    ],
)
def test_mask_destination(channel: str, destination: str, hint: str) -> None:
    assert mask_destination(channel, destination) == hint


@pytest.mark.parametrize(
    ("channel", "destination"),
    [
        ("email", "alice"),
        ("email", "@example.com"),
        ("email", "alice@"),
        ("email", "al ice@example.com"),
        ("sms", "12345"),
        ("sms", "+1 555 CALL NOW"),
        ("sms", "1" * 16),
        ("sms", ""),
        ("fax", "+15550100167"),
    ],
)
def test_mask_destination_rejects_non_addresses(channel: str, destination: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        mask_destination(channel, destination)
    if destination:
        assert destination not in str(info.value)


def test_parse_purpose() -> None:
    assert parse_purpose("step_up") is OOBPurpose.STEP_UP
    assert parse_purpose(OOBPurpose.PHONE_CONFIRMATION) is OOBPurpose.PHONE_CONFIRMATION
    for bad in ("STEP_UP", "", None, 1):
        with pytest.raises(InvalidParameter):
            parse_purpose(bad)


# --- checking --------------------------------------------------------------------------


def test_the_right_code_is_accepted_once() -> None:
    issued = _issue()
    result = _check(issued.record, issued.code)
    assert result.reason is OOBReason.OK
    assert result.ok
    assert result.message == ""
    assert result.changed
    assert result.record.used
    assert result.record == attrs.evolve(issued.record, used=True)
    again = _check(result.record, issued.code)
    assert again.reason is OOBReason.USED
    assert not again.changed


@pytest.mark.parametrize("shape", ["{a} {b}", "{a}-{b}", " {a}{b}\n"])
def test_typed_shapes_are_accepted(shape: str) -> None:
    issued = _issue()
    typed = shape.format(a=issued.code[:3], b=issued.code[3:])
    assert _check(issued.record, typed).ok


def test_a_wrong_code_counts_an_attempt_until_the_limit() -> None:
    issued = _issue(config=OOBConfig(max_attempts=3))
    record = issued.record
    wrong = _wrong(issued.code)
    for attempt in range(1, 4):
        result = _check(record, wrong)
        assert result.reason is OOBReason.WRONG_CODE
        assert result.changed
        assert result.record.attempts == attempt
        record = result.record
    blocked = _check(record, issued.code)
    assert blocked.reason is OOBReason.TOO_MANY_ATTEMPTS
    assert not blocked.changed
    assert not blocked.ok
    # One attempt short of the limit the right code still works.
    assert _check(attrs.evolve(record, attempts=2), issued.code).ok


def test_expiry_boundary_on_both_sides() -> None:
    issued = _issue(config=OOBConfig(ttl=180))
    assert _check(issued.record, issued.code, now=T0).ok
    assert _check(issued.record, issued.code, now=T0 + 179.999).ok
    at_end = _check(issued.record, issued.code, now=T0 + 180)
    assert at_end.reason is OOBReason.EXPIRED
    assert not at_end.changed
    assert _check(issued.record, issued.code, now=T0 + 10_000).reason is OOBReason.EXPIRED


@given(
    issued_at=st.integers(min_value=0, max_value=2**40),
    ttl=st.integers(min_value=1, max_value=600),
    elapsed=st.floats(min_value=0, max_value=1300, allow_nan=False),
)
@settings(max_examples=100)
def test_a_code_works_exactly_while_its_ttl_runs(issued_at: int, ttl: int, elapsed: float) -> None:
    issued = _issue(now=issued_at, config=OOBConfig(ttl=ttl))
    now = issued_at + elapsed
    result = _check(issued.record, issued.code, now=now)
    assert result.ok == (now < issued_at + ttl)
    if not result.ok:
        assert result.reason is OOBReason.EXPIRED


@pytest.mark.parametrize(
    "purpose", [OOBPurpose.STEP_UP, OOBPurpose.RESET, OOBPurpose.PHONE_CONFIRMATION]
)
def test_a_code_never_works_for_another_purpose(purpose: OOBPurpose) -> None:
    issued = _issue(purpose=OOBPurpose.LOGIN)
    result = _check(issued.record, issued.code, purpose=purpose)
    assert result.reason is OOBReason.WRONG_PURPOSE
    assert not result.changed


def test_a_code_never_works_for_another_challenge() -> None:
    issued = _issue(challenge_id="chal-1")
    result = _check(issued.record, issued.code, challenge_id="chal-2")
    assert result.reason is OOBReason.WRONG_CHALLENGE
    assert not result.changed


def test_the_hash_binds_challenge_and_purpose(fixed_code: str) -> None:
    # The same code issued for another challenge or purpose has another hash, so moving
    # a hash between records (or a store mixing them up) does not make a code work.
    login = _issue(challenge_id="chal-1", purpose=OOBPurpose.LOGIN)
    reset = _issue(challenge_id="chal-1", purpose=OOBPurpose.RESET)
    other = _issue(challenge_id="chal-2", purpose=OOBPurpose.LOGIN)
    assert login.code == reset.code == other.code == fixed_code
    assert len({login.record.code_hash, reset.record.code_hash, other.record.code_hash}) == 3
    swapped = attrs.evolve(login.record, code_hash=other.record.code_hash)
    assert _check(swapped, fixed_code).reason is OOBReason.WRONG_CODE
    swapped = attrs.evolve(login.record, code_hash=reset.record.code_hash)
    assert _check(swapped, fixed_code).reason is OOBReason.WRONG_CODE


def test_another_key_does_not_verify() -> None:
    issued = _issue()
    assert _check(issued.record, issued.code, key=OTHER_KEY).reason is OOBReason.WRONG_CODE


@pytest.mark.parametrize(
    "attempt",
    ["12345", "1234567", "abcdef", "\u0661\u0662\u0663\u0664\u0665\u0666", "+12345", None, 123456],
)
def test_malformed_attempts_do_not_count(attempt: object) -> None:
    issued = _issue()
    result = _check(issued.record, attempt)
    assert result.reason is OOBReason.MALFORMED
    assert not result.changed
    assert result.record.attempts == 0


def test_checks_come_in_a_fixed_order() -> None:
    issued = _issue()
    spent = attrs.evolve(issued.record, used=True, attempts=5)
    # A used and exhausted code, checked late, for the wrong purpose and challenge:
    # the challenge decides first, then the purpose, then used, then expiry.
    late = T0 + 1000
    assert _check(spent, "x", now=late, challenge_id="c9").reason is OOBReason.WRONG_CHALLENGE
    assert _check(spent, "x", now=late, purpose="reset").reason is OOBReason.WRONG_PURPOSE
    assert _check(spent, "x", now=late).reason is OOBReason.USED
    exhausted = attrs.evolve(spent, used=False)
    assert _check(exhausted, "x", now=late).reason is OOBReason.EXPIRED
    assert _check(exhausted, "x").reason is OOBReason.TOO_MANY_ATTEMPTS
    assert _check(issued.record, "x").reason is OOBReason.MALFORMED


def test_every_refusal_shows_one_message() -> None:
    issued = _issue(config=OOBConfig(max_attempts=1))
    record = issued.record
    results = [
        _check(record, issued.code, challenge_id="other"),
        _check(record, issued.code, purpose="reset"),
        _check(attrs.evolve(record, used=True), issued.code),
        _check(record, issued.code, now=T0 + 999),
        _check(attrs.evolve(record, attempts=1), issued.code),
        _check(record, "x"),
        _check(record, _wrong(issued.code)),
    ]
    # Every refusal the pure check makes (CHANNEL_NOT_ALLOWED and WRONG_DESTINATION are the
    # service's: they need the user's authenticators or the destination; test_service_oob.py
    # and test_oob_destination.py check them).
    service_only = {OOBReason.CHANNEL_NOT_ALLOWED, OOBReason.WRONG_DESTINATION}
    decided_here = set(OOBReason) - {OOBReason.OK} - service_only
    assert {r.reason for r in results} == decided_here
    assert {r.message for r in results} == {USER_MESSAGE} == {"invalid code"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"record": "a record"},
        {"purpose": "signup"},
        {"challenge_id": None},
        {"now": float("nan")},
        {"now": -5.0},
    ],
)
def test_check_rejects_bad_input(kwargs: dict[str, Any]) -> None:
    issued = _issue()
    arguments: dict[str, Any] = {
        "record": issued.record,
        "attempt": issued.code,
        "purpose": "login",
        "challenge_id": CHALLENGE,
        "now": T0,
        "key": KEY,
    }
    arguments.update(kwargs)
    record = arguments.pop("record")
    attempt = arguments.pop("attempt")
    with pytest.raises(InvalidParameter):
        check(record, attempt, **arguments)


def test_check_rejects_a_bad_key() -> None:
    issued = _issue()
    with pytest.raises(InvalidKey):
        _check(issued.record, issued.code, key=b"short")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"challenge_id": "bad id"},
        {"purpose": "login"},
        {"channel": "sms"},
        {"code_hash": b"\x00" * 31},
        {"digits": 9},
        {"issued_at": -1.0},
        {"expires_at": T0},
        {"expires_at": T0 + 601},
        {"attempts": -1},
        {"max_attempts": 0},
        {"generation": -1},
        {"used": 1},
        {"destination_hint": None},
    ],
)
def test_record_rejects_bad_fields(kwargs: dict[str, Any]) -> None:
    record = _issue().record
    with pytest.raises(InvalidParameter):
        attrs.evolve(record, **kwargs)


def test_code_hash_rejects_non_digits() -> None:
    with pytest.raises(InvalidParameter) as info:
        code_hash(KEY, CHALLENGE, "login", b"12a456")
    assert info.value.code is ErrorCode.INVALID_CODE
    with pytest.raises(InvalidParameter):
        code_hash(KEY, CHALLENGE, "login", "123456")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter):
        code_hash(KEY, CHALLENGE, "login", "\u0661\u0662".encode())


# --- resending and its cooldown --------------------------------------------------------


def test_resend_replaces_the_code_and_kills_the_old_one() -> None:
    first = _issue()
    wrong_once = _check(first.record, _wrong(first.code)).record
    second = resend(wrong_once, now=T0 + 30, key=KEY)
    record = second.record
    assert record.generation == 1
    assert record.resend_count == 1
    assert record.attempts == 0
    assert record.issued_at == T0 + 30
    assert record.expires_at == T0 + 30 + 180
    assert (record.challenge_id, record.purpose, record.user_id) == (
        CHALLENGE,
        OOBPurpose.LOGIN,
        "alice",
    )
    assert record.destination_hint == first.record.destination_hint
    assert record.code_hash != first.record.code_hash
    if first.code != second.code:
        assert _check(record, first.code, now=T0 + 31).reason is OOBReason.WRONG_CODE
    assert _check(record, second.code, now=T0 + 31).ok


def test_cooldown_grows_by_thirty_seconds_on_both_sides() -> None:
    record = _issue().record
    sent_at = T0
    for n, cooldown in enumerate([30, 60, 90, 120], start=1):
        assert resend_available_at(record) == sent_at + cooldown
        with pytest.raises(CooldownActive) as info:
            resend(record, now=sent_at + cooldown - 0.001, key=KEY)
        assert info.value.code is ErrorCode.COOLDOWN_ACTIVE
        assert info.value.retry_after == pytest.approx(0.001, abs=1e-6)
        with pytest.raises(CooldownActive) as info:
            resend(record, now=sent_at, key=KEY)
        assert info.value.retry_after == cooldown
        sent_at += cooldown
        record = resend(record, now=sent_at, key=KEY).record
        assert record.resend_count == n
        assert record.generation == n


@given(
    resends=st.integers(min_value=0, max_value=50),
    elapsed=st.floats(min_value=0, max_value=3000, allow_nan=False),
    base=st.integers(min_value=0, max_value=120),
    step=st.integers(min_value=0, max_value=120),
)
@settings(max_examples=100)
def test_resend_is_allowed_exactly_after_the_cooldown(
    resends: int, elapsed: float, base: int, step: int
) -> None:
    config = OOBConfig(resend_cooldown=base, resend_cooldown_step=step)
    record = attrs.evolve(_issue().record, resend_count=resends, generation=resends)
    wait = base + resends * step
    if elapsed >= wait:
        assert resend(record, now=T0 + elapsed, key=KEY, config=config).record.resend_count == (
            resends + 1
        )
    else:
        with pytest.raises(CooldownActive) as info:
            resend(record, now=T0 + elapsed, key=KEY, config=config)
        assert info.value.retry_after == pytest.approx(wait - elapsed)


def test_resend_after_expiry_or_lockout_is_allowed() -> None:
    issued = _issue()
    locked = attrs.evolve(issued.record, attempts=5)
    fresh = resend(locked, now=T0 + 1000, key=KEY)
    assert _check(fresh.record, fresh.code, now=T0 + 1001).ok


def test_resend_of_a_used_code_is_refused() -> None:
    issued = _issue()
    used = _check(issued.record, issued.code).record
    with pytest.raises(IllegalTransition):
        resend(used, now=T0 + 1000, key=KEY)


def test_resend_uses_the_new_config() -> None:
    issued = _issue()
    new = resend(issued.record, now=T0 + 30, key=KEY, config=OOBConfig(digits=8, ttl=60))
    assert len(new.code) == 8
    assert new.record.digits == 8
    assert new.record.expires_at == T0 + 90
    assert _check(new.record, new.code, now=T0 + 89.9).ok
    assert _check(new.record, new.code, now=T0 + 90).reason is OOBReason.EXPIRED


def test_resend_rejects_bad_input() -> None:
    record = _issue().record
    with pytest.raises(InvalidParameter):
        resend("record", now=T0 + 100, key=KEY)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter):
        resend(record, now=float("nan"), key=KEY)
    with pytest.raises(InvalidKey):
        resend(record, now=T0 + 100, key=b"")
    with pytest.raises(InvalidParameter):
        resend(record, now=T0 + 100, key=KEY, config={"ttl": 1})  # type: ignore[arg-type]


# --- secrets never leak ----------------------------------------------------------------


def test_no_code_in_repr_str_or_errors(fixed_code: str) -> None:
    issued = _issue(now=1000.0)
    texts = [repr(issued), str(issued), repr(issued.record), str(issued.record)]
    texts += [repr(OOBConfig())]
    for attempt in (fixed_code, _wrong(fixed_code), "x"):
        result = _check(issued.record, attempt, now=1001.0)
        texts += [repr(result), str(result), result.message]
    with pytest.raises(CooldownActive) as info:
        resend(issued.record, now=1001.0, key=KEY)
    texts += [repr(info.value), str(info.value)]
    joined = "\n".join(texts)
    assert fixed_code not in joined
    assert issued.record.code_hash.hex() not in joined
    assert "alice@example.com" not in joined


def test_issued_code_equality_ignores_the_code() -> None:
    issued = _issue()
    assert attrs.evolve(issued, code="000000") == issued


@given(st.text(min_size=1, max_size=20))
@settings(max_examples=60)
def test_errors_never_repeat_destinations(destination: str) -> None:
    text = f"QZ{destination}"
    for channel in ("email", "sms"):
        try:
            mask_destination(channel, text)
        except MFAError as error:
            assert text not in str(error)
            assert "QZ" not in repr(error)


# --- send limits: windows and counter keys ---------------------------------------------


def test_send_window_examples() -> None:
    assert oob.send_window_for(1_800_000_000.0) == (1_800_000_000.0, 1_800_003_600.0)
    assert oob.send_window_for(1_800_003_599.999) == (1_800_000_000.0, 1_800_003_600.0)
    assert oob.send_window_for(1_800_003_600) == (1_800_003_600.0, 1_800_007_200.0)
    assert oob.send_window_for(0) == (0.0, 3600.0)
    assert oob.send_window_for(125.5, OOBConfig(send_window=60)) == (120.0, 180.0)


@given(
    now=st.one_of(
        st.floats(min_value=0, max_value=4e9, allow_nan=False, allow_infinity=False),
        st.integers(min_value=0, max_value=4_000_000_000),
    ),
    window=st.integers(min_value=60, max_value=86400),
)
def test_send_window_holds_now_and_starts_on_a_multiple(now: float, window: int) -> None:
    start, end = oob.send_window_for(now, OOBConfig(send_window=window))
    assert start <= now < end
    assert end == start + window
    assert start % window == 0 and start == int(start)


@given(
    now=st.floats(min_value=0, max_value=4e9, allow_nan=False, allow_infinity=False),
    later=st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False),
)
def test_send_windows_never_go_back(now: float, later: float) -> None:
    first = oob.send_window_for(now)
    second = oob.send_window_for(now + later)
    assert second[0] >= first[0]
    assert (second == first) == (now + later < first[1])


@pytest.mark.parametrize("now", [-1, float("nan"), float("inf"), "0", None, True])
def test_send_window_rejects_bad_times(now: object) -> None:
    with pytest.raises(InvalidParameter) as info:
        oob.send_window_for(now)  # type: ignore[arg-type]
    assert info.value.code is ErrorCode.INVALID_TIME
    with pytest.raises(InvalidParameter):
        oob.send_window_for(0, config="hourly")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("channel", "destination", "normal"),
    [
        ("sms", "+1 555 010 0167", "15550100167"),
        ("sms", "1 (555) 010-0167", "15550100167"),
        ("sms", " +15550100167 ", "15550100167"),
        ("sms", "555.010.0167", "5550100167"),
        ("email", "Alice@Example.COM", "alice@example.com"),
        ("email", " alice@example.com\t", "alice@example.com"),
    ],
)
def test_normalize_destination(channel: str, destination: str, normal: str) -> None:
    assert oob.normalize_destination(channel, destination) == normal


@pytest.mark.parametrize(
    ("channel", "destination"), [("sms", "call me"), ("email", "nobody"), ("fax", "123456")]
)
def test_normalize_destination_refuses_what_mask_refuses(channel: str, destination: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        oob.normalize_destination(channel, destination)
    assert destination not in str(info.value)


def test_user_send_keys() -> None:
    assert oob.user_send_key(KEY, "alice") == "u:alice"
    assert oob.user_send_key(KEY, "a" * 126) == "u:" + "a" * 126
    long = oob.user_send_key(KEY, "a" * 127)
    assert long.startswith("uh:") and len(long) == 67 and "aaaa" not in long
    odd = oob.user_send_key(KEY, "ålice")
    assert odd.startswith("uh:") and odd != oob.user_send_key(OTHER_KEY, "ålice")
    assert oob.user_send_key(KEY, "tab\tuser").startswith("uh:")
    with pytest.raises(InvalidParameter):
        oob.user_send_key(KEY, "")
    with pytest.raises(InvalidKey):
        oob.user_send_key(b"short", "a" * 200)


def test_destination_send_keys_are_keyed_hashes_of_the_normal_form() -> None:
    key = oob.destination_send_key(KEY, "sms", "+1 555 010 0167")
    assert key.startswith("d:") and len(key) == 66 and "555" not in key
    assert key == oob.destination_send_key(KEY, OOBChannel.SMS, "1 (555) 010-0167")
    assert key != oob.destination_send_key(KEY, "sms", "+1 555 010 0168")
    assert key != oob.destination_send_key(OTHER_KEY, "sms", "+1 555 010 0167")
    email = oob.destination_send_key(KEY, "email", "Alice@Example.com")
    assert email == oob.destination_send_key(KEY, "email", "alice@example.com")
    # the channel is part of the hash
    assert oob.destination_send_key(KEY, "email", "15550100167@x.io") != oob.destination_send_key(
        KEY, "sms", "15550100167"
    )


@given(st.text(min_size=1, max_size=256))
@settings(max_examples=100)
def test_user_send_keys_always_fit_a_store(user_id: str) -> None:
    key = oob.user_send_key(KEY, user_id)
    assert 1 <= len(key) <= oob.MAX_SEND_KEY
    assert key == oob.user_send_key(KEY, user_id)
    assert key.startswith(("u:", "uh:"))
