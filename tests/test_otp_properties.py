"""Hypothesis properties of the pure OTP primitives and key encoding.

The reference below is written straight from RFC 4226 section 5.3 with the standard
library's ``hmac`` module; the library's precomputed-pad implementation must agree with it
for any key, counter, digit count and algorithm.
"""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import given, settings
from hypothesis import strategies as st

from mfa_core import b32decode_key, b32encode_key, hotp, totp, verify_hotp, verify_totp
from mfa_core.otp import (
    MAX_COUNTER,
    MAX_DIGITS,
    MAX_KEY_BYTES,
    MAX_PERIOD,
    MIN_DIGITS,
    MIN_KEY_BYTES,
    HOTPState,
    normalize_code,
    time_step,
)

ALGORITHMS = ("SHA1", "SHA256", "SHA512")

keys = st.binary(min_size=MIN_KEY_BYTES, max_size=MAX_KEY_BYTES)
counters = st.integers(min_value=0, max_value=MAX_COUNTER)
digit_counts = st.integers(min_value=MIN_DIGITS, max_value=MAX_DIGITS)
algorithms = st.sampled_from(ALGORITHMS)
periods = st.integers(min_value=1, max_value=MAX_PERIOD)
# Unix times up to year ~5000, as ints and floats.
times = st.one_of(
    st.integers(min_value=0, max_value=100_000_000_000),
    st.floats(min_value=0, max_value=100_000_000_000, allow_nan=False, allow_infinity=False),
)
windows = st.integers(min_value=0, max_value=5)


def reference_hotp(key: bytes, counter: int, digits: int, algorithm: str) -> str:
    mac = hmac.new(key, counter.to_bytes(8, "big"), getattr(hashlib, algorithm.lower())).digest()
    offset = mac[-1] & 0x0F
    value = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


@settings(max_examples=200)
@given(keys, counters, digit_counts, algorithms)
def test_hotp_matches_the_rfc_reference(key: bytes, counter: int, digits: int, algo: str) -> None:
    code = hotp(key, counter, digits=digits, algorithm=algo)
    assert code == reference_hotp(key, counter, digits, algo)
    assert len(code) == digits
    assert code.isascii() and code.isdigit()
    assert hotp(key, counter, digits=digits, algorithm=algo) == code  # deterministic


@settings(max_examples=100)
@given(
    key=keys,
    at=times,
    digits=digit_counts,
    algo=algorithms,
    period=periods,
    t0=st.integers(0, 1_000_000),
)
def test_totp_is_hotp_at_the_time_step(
    *, key: bytes, at: float, digits: int, algo: str, period: int, t0: int
) -> None:
    at = at + t0  # never before t0
    step = time_step(at, period=period, t0=t0)
    assert step == (int(at) - t0) // period
    code = totp(key, at, digits=digits, algorithm=algo, period=period, t0=t0)
    assert code == hotp(key, step, digits=digits, algorithm=algo)
    assert len(code) == digits and code.isdigit()


@settings(max_examples=100)
@given(
    key=keys,
    at=st.integers(0, 10**11),
    behind=windows,
    ahead=windows,
    shift=st.integers(-8, 8),
    algo=algorithms,
)
def test_totp_window_membership(
    *, key: bytes, at: int, behind: int, ahead: int, shift: int, algo: str
) -> None:
    current = time_step(at)
    step = current + shift
    if step < 0:
        return
    code = hotp(key, step, algorithm=algo)
    found = verify_totp(key, code, at, algorithm=algo, look_behind=behind, look_ahead=ahead)
    first, last = max(current - behind, 0), current + ahead
    if first <= step <= last:
        assert found is not None
    if found is not None:
        # Whatever matched lies inside the window and really has this code (6-digit codes
        # can repeat, so an earlier step in the window may be the one reported).
        assert first <= found <= last
        assert hotp(key, found, algorithm=algo) == code
        assert found <= step or not first <= step <= last


@settings(max_examples=100)
@given(keys, st.integers(0, MAX_COUNTER), windows, st.integers(-3, 8))
def test_hotp_look_ahead_membership(key: bytes, counter: int, ahead: int, shift: int) -> None:
    target = counter + shift
    if not 0 <= target <= MAX_COUNTER:
        return
    code = hotp(key, target)
    found = verify_hotp(key, code, counter, look_ahead=ahead)
    last = min(counter + ahead, MAX_COUNTER)
    if counter <= target <= last:
        assert found is not None and found <= target
    if found is not None:
        assert counter <= found <= last
        assert hotp(key, found) == code


@given(keys, counters, digit_counts, st.sampled_from([" ", "-"]), st.data())
def test_grouped_codes_are_accepted(
    key: bytes, counter: int, digits: int, sep: str, data: st.DataObject
) -> None:
    code = hotp(key, counter, digits=digits)
    cut = data.draw(st.integers(1, digits - 1))
    typed = f" {code[:cut]}{sep}{code[cut:]}\n"
    assert normalize_code(typed, digits) == code.encode()
    assert verify_hotp(key, typed, counter, digits=digits) == counter


@given(st.text(max_size=20), digit_counts)
def test_normalized_codes_are_always_ascii_digits_of_the_right_length(
    text: str, digits: int
) -> None:
    result = normalize_code(text, digits)
    if result is not None:
        assert len(result) == digits
        assert result.isdigit() and result.isascii()
        # Only whitespace around, and spaces or dashes between digits, were dropped.
        assert set(text) - set("0123456789 -\t\r\n") == set()


@given(st.text(alphabet=st.characters(min_codepoint=128), min_size=1, max_size=12), counters)
def test_any_non_ascii_character_never_matches(noise: str, counter: int) -> None:
    key = b"k" * 20
    code = hotp(key, counter)
    for tampered in (noise + code, code + noise, code[:3] + noise + code[3:]):
        assert normalize_code(tampered, 6) is None
        assert verify_hotp(key, tampered, counter) is None


@given(keys, st.integers(0, 2**40), st.integers(1, MAX_PERIOD))
def test_time_step_is_monotonic_and_floors(key: bytes, at: int, period: int) -> None:
    step = time_step(at, period=period)
    assert step * period <= at < (step + 1) * period
    assert time_step(at + period, period=period) == step + 1
    assert time_step(at + 0.999, period=period) == time_step(int(at + 0.999), period=period)


@given(st.binary(min_size=1, max_size=MAX_KEY_BYTES))
def test_b32_round_trip(raw: bytes) -> None:
    text = b32encode_key(raw)
    assert "=" not in text and text == text.upper()
    assert b32decode_key(text) == raw
    assert b32decode_key(text.lower()) == raw
    grouped = " ".join(text[i : i + 4] for i in range(0, len(text), 4))
    assert b32decode_key(grouped) == raw
    assert b32decode_key("-".join(text[i : i + 4] for i in range(0, len(text), 4))) == raw
    padded = text + "=" * (-len(text) % 8)
    assert b32decode_key(padded) == raw


@settings(max_examples=50)
@given(keys, counters, digit_counts, algorithms)
def test_hotp_state_reuse_matches_fresh_calls(
    key: bytes, counter: int, digits: int, algo: str
) -> None:
    state = HOTPState(key, algo, digits)
    for c in {counter, max(counter - 1, 0), min(counter + 1, MAX_COUNTER)}:
        assert state.code(c) == hotp(key, c, digits=digits, algorithm=algo)
    assert repr(state) == "HOTPState(<key hidden>)"
