"""Pins of ``mfa_core.otp`` that the property tests leave loose (issue 17).

Every security-relevant default, every refusal (its error type, its ``ErrorCode`` and its
message, which names the parameter), the boundaries of every range, and the general
(checked) paths with non-default ``period`` and ``t0``. Mutation testing
(``tools/mutation.py``) runs this file against ``src/mfa_core/otp.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mfa_core.errors import ErrorCode, InvalidKey, InvalidParameter, MFAError, UnsupportedAlgorithm
from mfa_core.otp import (
    DEFAULT_DIGITS,
    DEFAULT_PERIOD,
    LEGACY_MIN_KEY_BYTES,
    MAX_COUNTER,
    MAX_DIGITS,
    MAX_KEY_BYTES,
    MAX_PERIOD,
    MAX_WINDOW,
    MIN_DIGITS,
    MIN_KEY_BYTES,
    Algorithm,
    HOTPState,
    check_key,
    hotp,
    normalize_code,
    parse_algorithm,
    time_step,
    totp,
    verify_hotp,
    verify_totp,
)

KEY = b"12345678901234567890"  # RFC 4226 Appendix D
SHORT = b"0123456789"  # 80 bits: the legacy minimum
T0 = 1_000_000
AT = 1_700_000_015


def refuses(
    call: Callable[[], object], error: type[MFAError], code: ErrorCode, message: str
) -> None:
    """``call`` raises exactly ``error`` with ``code`` and the message ``message``."""
    with pytest.raises(error) as caught:
        call()
    assert type(caught.value) is error
    assert caught.value.code is code
    assert str(caught.value) == message
    assert caught.value.__cause__ is None


def distinct_steps(key: bytes, low: int, high: int) -> None:
    """The codes of ``low .. high`` differ, so a window test cannot pass by a repeat."""
    codes = [hotp(key, c) for c in range(low, high + 1)]
    assert len(set(codes)) == len(codes)


# -- the constants and defaults ------------------------------------------------------------


def test_the_published_bounds() -> None:
    assert (MIN_DIGITS, MAX_DIGITS, DEFAULT_DIGITS) == (6, 10, 6)
    assert (DEFAULT_PERIOD, MAX_PERIOD) == (30, 600)
    assert MAX_COUNTER == 2**64 - 1
    assert MAX_WINDOW == 200
    assert (MIN_KEY_BYTES, LEGACY_MIN_KEY_BYTES, MAX_KEY_BYTES) == (16, 10, 256)
    assert [a.digest_size for a in Algorithm] == [20, 32, 64]


def test_verify_hotp_looks_ahead_by_nothing_by_default() -> None:
    distinct_steps(KEY, 5, 7)
    assert verify_hotp(KEY, hotp(KEY, 5), 5) == 5
    assert verify_hotp(KEY, hotp(KEY, 6), 5) is None
    assert verify_hotp(KEY, hotp(KEY, 6), 5, look_ahead=1) == 6
    assert verify_hotp(KEY, hotp(KEY, 4), 5, look_ahead=3) is None  # never behind


@pytest.mark.parametrize("key", [KEY, bytearray(KEY)], ids=["fast", "general"])
def test_verify_totp_window_is_one_step_either_side_by_default(key: bytes) -> None:
    step = time_step(AT)
    distinct_steps(KEY, step - 3, step + 3)
    for shift in (-1, 0, 1):
        assert verify_totp(key, hotp(KEY, step + shift), AT) == step + shift
    for shift in (-3, -2, 2, 3):
        assert verify_totp(key, hotp(KEY, step + shift), AT) is None
    assert verify_totp(key, hotp(KEY, step - 2), AT, look_behind=2) == step - 2
    assert verify_totp(key, hotp(KEY, step + 2), AT, look_ahead=2) == step + 2
    assert verify_totp(key, hotp(KEY, step - 1), AT, look_behind=0) is None
    assert verify_totp(key, hotp(KEY, step + 1), AT, look_ahead=0) is None


@pytest.mark.parametrize(
    "call",
    [
        lambda k: hotp(k, 0),
        lambda k: totp(k, AT),
        lambda k: verify_hotp(k, "000000", 0),
        lambda k: verify_totp(k, "000000", AT),
        check_key,
    ],
    ids=["hotp", "totp", "verify_hotp", "verify_totp", "check_key"],
)
def test_short_keys_are_refused_unless_allowed(call: Callable[[bytes], object]) -> None:
    refuses(
        lambda: call(SHORT),
        InvalidKey,
        ErrorCode.KEY_TOO_SHORT,
        "key must be at least 16 bytes (128 bits)",
    )
    refuses(
        lambda: call(KEY[:15]),
        InvalidKey,
        ErrorCode.KEY_TOO_SHORT,
        "key must be at least 16 bytes (128 bits)",
    )
    call(KEY[:16])


def test_allow_short_key_accepts_80_bits_and_not_less() -> None:
    assert check_key(SHORT, allow_short_key=True) == SHORT
    assert hotp(SHORT, 1, allow_short_key=True) == _reference_code(SHORT, 1)
    step = time_step(AT)
    assert totp(SHORT, AT, allow_short_key=True) == _reference_code(SHORT, step)
    assert verify_hotp(SHORT, _reference_code(SHORT, 3), 3, allow_short_key=True) == 3
    assert verify_totp(SHORT, _reference_code(SHORT, step), AT, allow_short_key=True) == step
    refuses(
        lambda: check_key(SHORT[:9], allow_short_key=True),
        InvalidKey,
        ErrorCode.KEY_TOO_SHORT,
        "key must be at least 10 bytes (80 bits)",
    )


def _reference_code(key: bytes, counter: int, digits: int = 6, algorithm: str = "sha1") -> str:
    import hashlib
    import hmac

    mac = hmac.new(key, counter.to_bytes(8, "big"), getattr(hashlib, algorithm)).digest()
    offset = mac[-1] & 0x0F
    value = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


# -- keys ----------------------------------------------------------------------------------


def test_check_key_bounds_and_types() -> None:
    assert check_key(KEY[:16]) == KEY[:16]
    assert check_key(KEY) is KEY  # never a copy of a bytes key
    longest = bytes(range(256))
    assert check_key(longest) == longest
    assert check_key(bytearray(KEY)) == KEY and type(check_key(bytearray(KEY))) is bytes
    assert check_key(memoryview(KEY)) == KEY
    refuses(
        lambda: check_key(longest + b"x"),
        InvalidKey,
        ErrorCode.INVALID_KEY,
        "key must be at most 256 bytes",
    )
    refuses(
        lambda: check_key(bytearray(longest + b"x")),
        InvalidKey,
        ErrorCode.INVALID_KEY,
        "key must be at most 256 bytes",
    )
    refuses(
        lambda: check_key(bytearray(KEY[:15])),
        InvalidKey,
        ErrorCode.KEY_TOO_SHORT,
        "key must be at least 16 bytes (128 bits)",
    )
    for bad in ("x" * 20, None, 12345678901234567890, [1] * 20):
        refuses(
            lambda bad=bad: check_key(bad), InvalidKey, ErrorCode.INVALID_KEY, "key must be bytes"
        )


def test_a_key_longer_than_the_hash_block_is_hashed_first() -> None:
    for algorithm, block in (("sha1", 64), ("sha256", 64), ("sha512", 128)):
        for size in (block - 1, block, block + 1):
            key = bytes(range(size))
            assert hotp(key, 7, algorithm=algorithm) == _reference_code(key, 7, 6, algorithm)


# -- algorithms ----------------------------------------------------------------------------


def test_parse_algorithm() -> None:
    assert parse_algorithm(Algorithm.SHA256) is Algorithm.SHA256
    assert parse_algorithm("sha512") is Algorithm.SHA512
    assert parse_algorithm("Sha1") is Algorithm.SHA1
    message = "algorithm must be one of SHA1, SHA256 or SHA512"
    for bad in ("MD5", "\u017fha1", "SHA3", "", "SHA1 ", "x" * 17, None, b"SHA1"):
        refuses(
            lambda bad=bad: parse_algorithm(bad),  # type: ignore[arg-type]
            UnsupportedAlgorithm,
            ErrorCode.UNSUPPORTED_ALGORITHM,
            message,
        )
    refuses(
        lambda: hotp(KEY, 0, algorithm="MD5"),
        UnsupportedAlgorithm,
        ErrorCode.UNSUPPORTED_ALGORITHM,
        message,
    )


def test_algorithms_and_digits_through_the_general_paths() -> None:
    key = bytearray(KEY * 2)
    step = (AT - T0) // 60
    for algorithm in ("sha1", "sha256", "sha512"):
        for digits in (6, 8, 10):
            expected = _reference_code(bytes(key), step, digits, algorithm)
            kwargs: dict[str, Any] = {"digits": digits, "algorithm": algorithm}
            assert totp(key, AT, period=60, t0=T0, **kwargs) == expected  # type: ignore[arg-type]
            found = verify_totp(key, expected, AT, period=60, t0=T0, **kwargs)  # type: ignore[arg-type]
            assert found == step
            state = HOTPState(key, algorithm, digits)  # type: ignore[arg-type]
            assert state.code(step) == expected
            assert state.match(expected.encode(), step - 1, step + 1) == step


# -- digits, counters, windows -------------------------------------------------------------


def test_digits_bounds() -> None:
    assert len(hotp(KEY, 0, digits=6)) == 6
    assert len(hotp(KEY, 0, digits=10)) == 10
    message = "digits must be an integer from 6 to 10"
    for bad in (5, 11, 0, -6, True, 6.0, "6", None):
        for call in (
            lambda bad=bad: hotp(KEY, 0, digits=bad),
            lambda bad=bad: totp(KEY, AT, digits=bad),
            lambda bad=bad: verify_hotp(KEY, "123456", 0, digits=bad),
            lambda bad=bad: verify_totp(KEY, "123456", AT, digits=bad),
            lambda bad=bad: HOTPState(KEY, "SHA1", bad),
        ):
            refuses(call, InvalidParameter, ErrorCode.INVALID_DIGITS, message)


def test_counter_bounds() -> None:
    assert hotp(KEY, MAX_COUNTER) == _reference_code(KEY, MAX_COUNTER)
    assert HOTPState(KEY, "SHA1", 6).value(MAX_COUNTER) >= 0
    message = "counter must be an integer from 0 to 2**64-1"
    state = HOTPState(KEY, "SHA1", 6)
    for bad in (-1, MAX_COUNTER + 1, True, 1.0, "1", None, 10**400):
        for call in (
            lambda bad=bad: hotp(KEY, bad),
            lambda bad=bad: verify_hotp(KEY, "123456", bad),
            lambda bad=bad: state.value(bad),
            lambda bad=bad: state.code(bad),
            lambda bad=bad: state.match(b"123456", bad, 5),
            lambda bad=bad: state.match(b"123456", 0, bad),
        ):
            refuses(call, InvalidParameter, ErrorCode.INVALID_COUNTER, message)


@pytest.mark.parametrize("name", ["look_behind", "look_ahead"])
def test_window_bounds_name_the_parameter(name: str) -> None:
    message = f"{name} must be an integer from 0 to 200"
    for good in (0, 200):
        verify_totp(KEY, "123456", AT, **{name: good})
    for bad in (-1, 201, 1.0, 1.5, True, "1", None):
        refuses(
            lambda bad=bad: verify_totp(KEY, "123456", AT, **{name: bad}),
            InvalidParameter,
            ErrorCode.INVALID_WINDOW,
            message,
        )


def test_hotp_window_bounds() -> None:
    message = "look_ahead must be an integer from 0 to 200"
    assert verify_hotp(KEY, hotp(KEY, 205), 5, look_ahead=200) == 205
    for bad in (-1, 201, 2.0, True, "1"):
        refuses(
            lambda bad=bad: verify_hotp(KEY, "123456", 0, look_ahead=bad),
            InvalidParameter,
            ErrorCode.INVALID_WINDOW,
            message,
        )


class _Int(int):
    """An int subclass: accepted everywhere, through the checked paths."""


def test_int_subclasses_take_the_checked_paths() -> None:
    step = time_step(AT)
    code = hotp(KEY, step + 1)
    assert verify_totp(KEY, code, AT, look_ahead=_Int(1)) == step + 1
    assert verify_totp(KEY, code, AT, look_behind=_Int(0), look_ahead=_Int(1)) == step + 1
    assert verify_hotp(KEY, hotp(KEY, 9), _Int(7), look_ahead=_Int(2)) == 9
    assert hotp(KEY, _Int(3), digits=_Int(8)) == _reference_code(KEY, 3, 8)
    assert time_step(_Int(AT), period=_Int(60), t0=_Int(T0)) == (AT - T0) // 60


def test_the_window_is_cut_at_both_ends_of_the_counter_range() -> None:
    top = hotp(KEY, MAX_COUNTER)
    assert verify_hotp(KEY, top, MAX_COUNTER, look_ahead=5) == MAX_COUNTER
    assert verify_hotp(KEY, top, MAX_COUNTER - 2, look_ahead=200) == MAX_COUNTER
    # The last time step (period 1): the window's far end is cut at 2**64-1.
    assert verify_totp(KEY, top, MAX_COUNTER, period=1) == MAX_COUNTER
    assert verify_totp(KEY, top, MAX_COUNTER, period=1, look_ahead=200) == MAX_COUNTER
    # The first time step: the window's near end is cut at 0.
    for key in (KEY, bytearray(KEY)):
        assert verify_totp(key, hotp(KEY, 0), 0) == 0
        assert verify_totp(key, hotp(KEY, 0), 29, look_behind=200) == 0
        assert verify_totp(key, hotp(KEY, 1), 0) == 1


# -- time ----------------------------------------------------------------------------------


def test_time_step_general_and_fast_paths_agree() -> None:
    assert time_step(AT) == AT // 30
    assert time_step(AT, period=60, t0=T0) == (AT - T0) // 60
    assert time_step(float(AT) + 0.9, period=60, t0=T0) == (AT - T0) // 60
    assert time_step(T0, t0=T0) == 0
    assert time_step(T0 + 29.999, t0=T0) == 0
    assert time_step(T0 + 30, t0=T0) == 1
    # Beyond the fast path's float range, the general path floors in the same way.
    assert time_step(2.0**62) == 2**62 // 30
    assert time_step(2.0**62, period=7, t0=5) == (2**62 - 5) // 7
    assert time_step(2**62 + 45) == (2**62 + 45) // 30
    assert time_step(_Int(T0 + 61), period=_Int(30), t0=_Int(T0)) == 2
    assert time_step(MAX_COUNTER, period=1) == MAX_COUNTER
    assert time_step(MAX_PERIOD * 3, period=MAX_PERIOD) == 3
    assert time_step(5, period=1) == 5
    # The checked path at the edges of every range (an int subclass takes it).
    assert time_step(_Int(0)) == 0
    assert time_step(_Int(T0), t0=T0) == 0
    assert time_step(_Int(MAX_PERIOD * 3), period=MAX_PERIOD) == 3
    assert time_step(_Int(7), period=1) == 7
    assert time_step(0.5, period=_Int(1)) == 0


def test_time_refusals() -> None:
    finite = "time must be a finite number"
    for bad in ("1700000000", None, float("nan"), float("inf"), -float("inf"), True, b"1"):
        for call in (
            lambda bad=bad: time_step(bad),
            lambda bad=bad: totp(KEY, bad),
            lambda bad=bad: verify_totp(KEY, "123456", bad),
            lambda bad=bad: verify_totp(bytearray(KEY), "123456", bad),
        ):
            refuses(call, InvalidParameter, ErrorCode.INVALID_TIME, finite)
    before = "time must not be negative or before t0"
    for at, t0 in ((-1, 0), (-0.5, 0), (T0 - 1, T0), (T0 - 0.5, T0), (0, 1)):
        for call in (
            lambda at=at, t0=t0: time_step(at, t0=t0),
            lambda at=at, t0=t0: totp(KEY, at, t0=t0),
            lambda at=at, t0=t0: verify_totp(KEY, "123456", at, t0=t0),
        ):
            refuses(call, InvalidParameter, ErrorCode.INVALID_TIME, before)
    for call in (
        lambda: time_step(MAX_COUNTER + 1, period=1),
        lambda: time_step(2.0**70),
        lambda: totp(KEY, 2**70, period=1),
    ):
        refuses(call, InvalidParameter, ErrorCode.INVALID_TIME, "time is out of range")
    t0_message = "t0 must be a non-negative integer"
    for bad in (-1, 1.0, "0", None, True):
        for call in (
            lambda bad=bad: time_step(AT, t0=bad),
            lambda bad=bad: totp(KEY, AT, t0=bad),
            lambda bad=bad: verify_totp(KEY, "123456", AT, t0=bad),
        ):
            refuses(call, InvalidParameter, ErrorCode.INVALID_TIME, t0_message)


def test_period_refusals() -> None:
    message = "period must be an integer from 1 to 600 seconds"
    for bad in (0, -30, 601, 30.0, "30", None, True):
        for call in (
            lambda bad=bad: time_step(AT, period=bad),
            lambda bad=bad: totp(KEY, AT, period=bad),
            lambda bad=bad: verify_totp(KEY, "123456", AT, period=bad),
        ):
            refuses(call, InvalidParameter, ErrorCode.INVALID_PERIOD, message)


@pytest.mark.parametrize("key", [KEY, bytearray(KEY)], ids=["fast", "general"])
@pytest.mark.parametrize("at", [AT, float(AT) + 0.75])
def test_totp_with_a_period_and_t0(key: bytes, at: float) -> None:
    # The step counts from t0, in periods: (at - t0) // period, never (at + t0) // period.
    step = (AT - T0) // 45
    distinct_steps(KEY, step - 2, step + 2)
    expected = _reference_code(KEY, step)
    assert totp(key, at, period=45, t0=T0) == expected
    assert totp(key, at, period=45) != expected
    assert totp(key, at, t0=T0) != expected
    assert verify_totp(key, expected, at, period=45, t0=T0) == step
    assert verify_totp(key, _reference_code(KEY, step - 1), at, period=45, t0=T0) == step - 1
    assert verify_totp(key, _reference_code(KEY, step + 1), at, period=45, t0=T0) == step + 1
    assert verify_totp(key, _reference_code(KEY, step + 2), at, period=45, t0=T0) is None
    assert verify_totp(key, expected, at, period=45) is None
    assert verify_totp(key, expected, at, t0=T0) is None


def test_totp_default_period_is_30_seconds() -> None:
    for key in (KEY, bytearray(KEY)):
        assert totp(key, 59) == _reference_code(KEY, 1)
        assert totp(key, 60) == _reference_code(KEY, 2)
        assert verify_totp(key, _reference_code(KEY, 2), 60, look_behind=0, look_ahead=0) == 2


# -- codes ---------------------------------------------------------------------------------


def test_normalize_code_forms() -> None:
    assert normalize_code("123456", 6) == b"123456"
    assert normalize_code(" 123 456 ", 6) == b"123456"
    assert normalize_code("\t123-456\r\n", 6) == b"123456"
    assert normalize_code("12 34 56", 6) == b"123456"
    assert normalize_code("12-34 56", 6) == b"123456"
    assert normalize_code("1234567890", 10) == b"1234567890"
    assert normalize_code(" " * 29 + "123456" + " " * 29, 6) == b"123456"  # 64 characters
    for bad in (
        "1 2 3 456",  # four groups
        "123  456",  # two separators in a row
        "123\t456",  # a tab between digits
        "-123456",
        "123456-",
        "12345",
        "1234567",
        "12345a",
        "١٢٣٤٥٦",  # Arabic-Indic digits
        "\uff11\uff12\uff13\uff14\uff15\uff16",  # full-width digits
        "\x0b123456",  # only space, tab, CR and LF are stripped
        "\x0c123456",
        "\u00a0123456",  # no-break space
        "123456\u2003",  # em space
        " " * 30 + "123456" + " " * 29,  # 65 characters
        "",
        123456,
        b"123456",
        None,
    ):
        assert normalize_code(bad, 6) is None, bad
    assert normalize_code("123456", 8) is None


def test_verify_refuses_malformed_codes_without_raising() -> None:
    step = time_step(AT)
    code = hotp(KEY, step)
    for key in (KEY, bytearray(KEY)):
        assert verify_totp(key, f" {code[:3]} {code[3:]} ", AT) == step
        assert verify_totp(key, code + "0", AT) is None
        assert verify_totp(key, None, AT) is None  # type: ignore[arg-type]
        assert verify_totp(key, int(code), AT) is None  # type: ignore[arg-type]
    assert verify_hotp(KEY, f"{code[:3]}-{code[3:]}", step) == step
    assert verify_hotp(KEY, code + " x", step) is None


def test_match_refuses_a_candidate_that_is_not_bytes() -> None:
    state = HOTPState(KEY, Algorithm.SHA1, 6)
    code = state.code(3)
    assert state.match(code.encode(), 0, 5) == 3
    assert state.match(code.encode(), 4, 5) is None
    assert state.match(code.encode(), 3, 3) == 3
    for bad in (code, bytearray(code.encode()), None):
        refuses(
            lambda bad=bad: state.match(bad, 0, 5),  # type: ignore[arg-type]
            InvalidParameter,
            ErrorCode.INVALID_CODE,
            "candidate must be bytes",
        )


def test_match_reports_the_first_of_two_equal_codes() -> None:
    # Counters 2386 and 2394 of the RFC 4226 key share the code 709847: every counter is
    # compared, the first match is reported, and a window that starts after it finds the
    # second.
    state = HOTPState(KEY, Algorithm.SHA1, 6)
    assert state.code(2386) == state.code(2394) == "709847"
    assert len({state.code(c) for c in range(2386, 2394)}) == 8
    assert state.match(b"709847", 2380, 2400) == 2386
    assert state.match(b"709847", 2387, 2400) == 2394
    assert state.match(b"709847", 2387, 2393) is None
    assert verify_hotp(KEY, "709847", 2386, look_ahead=8) == 2386
    assert verify_hotp(KEY, "709847", 2387, look_ahead=7) == 2394
    assert verify_hotp(KEY, "709847", 2387, look_ahead=6) is None


def test_hotp_state_hides_the_key_and_keeps_its_digits() -> None:
    state = HOTPState(KEY, "SHA256", 8)
    assert repr(state) == "HOTPState(<key hidden>)"
    assert len(state.code(0)) == 8
    assert state.code(1) == _reference_code(KEY, 1, 8, "sha256")
    assert state.value(1) % 10**8 == int(state.code(1))
    short = HOTPState(SHORT, "SHA1", 6)  # a state accepts the legacy 80-bit keys
    assert short.code(2) == _reference_code(SHORT, 2)
    refuses(
        lambda: HOTPState(SHORT[:9], "SHA1", 6),
        InvalidKey,
        ErrorCode.KEY_TOO_SHORT,
        "key must be at least 10 bytes (80 bits)",
    )


# -- the fast paths that benchmarks/bench_fast_paths.py keeps --------------------------------


def _forbid(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    def checked(*args: object, **kwargs: object) -> object:
        raise AssertionError(f"{name} was called")

    monkeypatch.setattr(f"mfa_core.otp.{name}", checked)


USUAL_CALLS: list[Callable[[], object]] = [
    lambda: verify_totp(KEY, hotp(KEY, time_step(AT)), AT),
    lambda: verify_totp(KEY[:16], "000000", AT),
    lambda: verify_totp(bytes(256), "000000", AT),
    lambda: verify_totp(KEY, "0" * 10, float(AT), digits=10, algorithm="SHA512"),
    lambda: verify_totp(KEY, "000000", AT, algorithm=Algorithm.SHA256, period=1),
    lambda: verify_totp(KEY, "000000", AT, period=MAX_PERIOD, t0=AT),
    lambda: verify_totp(KEY, "000000", 0, look_behind=0, look_ahead=0),
    lambda: verify_totp(KEY, "000000", AT, look_behind=MAX_WINDOW, look_ahead=MAX_WINDOW),
    lambda: verify_totp(KEY, "000000", 2.0**62 - 1024),
    lambda: time_step(AT),
    lambda: time_step(0),
    lambda: time_step(float(AT) + 0.5, period=1, t0=AT),
    lambda: time_step(AT, period=MAX_PERIOD, t0=AT),
    lambda: time_step(2.0**62 - 1024, period=1),
    lambda: normalize_code("123456", 6),
    lambda: normalize_code("1234567890", 10),
]


def test_every_valid_usual_call_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # The fast paths exist for speed only: a valid call with the usual types must not fall
    # through to the checked path (which would be correct, but slow), at every boundary.
    expected = [call() for call in USUAL_CALLS]
    assert expected[0] == time_step(AT)
    assert expected[9:14] == [AT // 30, 0, 0, 0, 2**62 - 1024]
    assert expected[14:] == [b"123456", b"1234567890"]
    for name in ("_verify_totp_checked", "_time_step_checked", "_normalize_checked"):
        _forbid(monkeypatch, name)
    assert [call() for call in USUAL_CALLS] == expected


@pytest.mark.parametrize(
    "call",
    [
        lambda: verify_totp(bytearray(KEY), "000000", AT),
        lambda: verify_totp(KEY[:15], "000000", AT),
        lambda: verify_totp(bytes(257), "000000", AT),
        lambda: verify_totp(KEY, "000000", AT, digits=5),
        lambda: verify_totp(KEY, "000000", AT, digits=11),
        lambda: verify_totp(KEY, "000000", AT, algorithm="sha1"),
        lambda: verify_totp(KEY, "000000", AT, algorithm=None),
        lambda: verify_totp(KEY, "000000", AT, period=0),
        lambda: verify_totp(KEY, "000000", AT, period=MAX_PERIOD + 1),
        lambda: verify_totp(KEY, "000000", AT, period=30.0),
        lambda: verify_totp(KEY, "000000", AT, t0=-1),
        lambda: verify_totp(KEY, "000000", AT, t0=AT + 1),
        lambda: verify_totp(KEY, "000000", AT, t0=_Int(0)),
        lambda: verify_totp(KEY, "000000", _Int(AT)),
        lambda: verify_totp(KEY, "000000", -1),
        lambda: verify_totp(KEY, "000000", 2.0**62),
        lambda: verify_totp(KEY, "000000", AT, look_behind=-1),
        lambda: verify_totp(KEY, "000000", AT, look_behind=MAX_WINDOW + 1),
        lambda: verify_totp(KEY, "000000", AT, look_behind=_Int(1)),
        lambda: verify_totp(KEY, "000000", AT, look_ahead=-1),
        lambda: verify_totp(KEY, "000000", AT, look_ahead=MAX_WINDOW + 1),
        lambda: verify_totp(KEY, "000000", AT, look_ahead=_Int(1)),
        lambda: time_step(_Int(AT)),
        lambda: time_step(AT, period=_Int(30)),
        lambda: time_step(AT, t0=_Int(0)),
        lambda: time_step(AT, period=0),
        lambda: time_step(AT, period=MAX_PERIOD + 1),
        lambda: time_step(AT, t0=-1),
        lambda: time_step(AT, t0=AT + 1),
        lambda: time_step(2.0**62),
        lambda: time_step(-1),
    ],
)
def test_anything_unusual_takes_the_checked_path(
    monkeypatch: pytest.MonkeyPatch, call: Callable[[], object]
) -> None:
    _forbid(monkeypatch, "_verify_totp_checked")
    _forbid(monkeypatch, "_time_step_checked")
    with pytest.raises(AssertionError, match="_checked was called"):
        call()


def test_unusual_codes_take_the_checked_normalisation(monkeypatch: pytest.MonkeyPatch) -> None:
    _forbid(monkeypatch, "_normalize_checked")
    for code in ("12345", "1234567", "١٢٣٤٥٦", "12345a", " 123456", None):
        with pytest.raises(AssertionError):
            normalize_code(code, 6)
