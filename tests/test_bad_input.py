"""A table of bad inputs: each is refused with ``None`` or an ``MFAError`` of an exact code.

A refusal is never acceptance and never a ValueError, TypeError or binascii.Error from
the standard library (those would escape the ``pytest.raises(MFAError)`` below). The
malformed codes are spellings of the *right* code (287082 is the RFC 4226 code for
counter 1, and the TOTP code at t=59), so refusing them is meaningful.
"""

# ruff: noqa: RUF001 - the look-alike characters are the point of this table
from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from mfa_core import (
    b32decode_key,
    build_uri,
    generate_key,
    hotp,
    parse_uri,
    totp,
    verify_hotp,
    verify_totp,
)
from mfa_core.errors import ErrorCode, MFAError
from mfa_core.otp import HOTPState, check_key, normalize_code, parse_algorithm, time_step

KEY = b"12345678901234567890"
RIGHT = "287082"  # hotp(KEY, 1) and totp(KEY, 59)

Case = tuple[str, Callable[[], object], ErrorCode | None]


def _codes() -> list[Case]:
    spellings: dict[str, object] = {
        "arabic-indic": "٢٨٧٠٨٢",
        "extended-arabic-indic": "۲۸۷۰۸۲",
        "devanagari": "२८७०८२",
        "full-width": "２８７０８２",
        "superscripts": "²⁸⁷⁰⁸²",
        "subscripts": "₂₈₇₀₈₂",
        "mixed-full-width": "28708２",
        "plus-sign": "+287082",
        "plus-five-digits": "+12345",
        "underscore-five-digits": "12_345",
        "minus-sign": "-287082",
        "underscore": "287_082",
        "underscores": "2_8_7_0_8_2",
        "dot": "287.082",
        "comma": "287,082",
        "inner-tab": "287\t082",
        "two-spaces": "287  082",
        "two-dashes": "287--082",
        "en-dash": "287–082",
        "nbsp": "287\u00a0082",
        "leading-dash": "-287082",
        "trailing-dash": "287082-",
        "every-digit-spaced": "2 8 7 0 8 2",
        "too-short": "28708",
        "too-long": "2870820",
        "leading-zero-padded": "0287082",
        "empty": "",
        "spaces-only": "      ",
        "huge": "2" * 1_000_000,
        "huge-whitespace": " " * 100_000 + RIGHT,
        "letters": "28708a",
        "hex": "0x4616a",
        "zero-width-space": "287\u200b082",
        "nul": "287082\x00",
        "int": 287082,
        "float": 287082.0,
        "bytes": b"287082",
        "bytearray": bytearray(b"287082"),
        "none": None,
        "list": ["287082"],
        "bool": True,
    }
    cases: list[Case] = []
    for name, value in spellings.items():
        cases.append((f"verify_hotp-{name}", lambda v=value: verify_hotp(KEY, v, 1), None))  # type: ignore[misc]
        cases.append((f"verify_totp-{name}", lambda v=value: verify_totp(KEY, v, 59), None))  # type: ignore[misc]
        cases.append((f"normalize-{name}", lambda v=value: normalize_code(v, 6), None))
    return cases


def _accepted() -> list[tuple[str, object]]:
    return [
        ("plain", RIGHT),
        ("space", "287 082"),
        ("dash", "287-082"),
        ("around", "  287082\n"),
        ("tab-around", "\t287 082\r\n"),
        ("three-groups", "28 70 82"),
    ]


PARAMETER_CASES: list[Case] = [
    # digits
    ("digits-5", lambda: hotp(KEY, 0, digits=5), ErrorCode.INVALID_DIGITS),
    ("digits-11", lambda: hotp(KEY, 0, digits=11), ErrorCode.INVALID_DIGITS),
    ("digits-0", lambda: totp(KEY, 0, digits=0), ErrorCode.INVALID_DIGITS),
    ("digits-bool", lambda: hotp(KEY, 0, digits=True), ErrorCode.INVALID_DIGITS),
    ("digits-float", lambda: hotp(KEY, 0, digits=6.0), ErrorCode.INVALID_DIGITS),  # type: ignore[arg-type]
    ("digits-str", lambda: hotp(KEY, 0, digits="6"), ErrorCode.INVALID_DIGITS),  # type: ignore[arg-type]
    ("verify-digits-5", lambda: verify_totp(KEY, "12345", 59, digits=5), ErrorCode.INVALID_DIGITS),
    ("uri-digits-9", lambda: build_uri(KEY, account="a", digits=9), ErrorCode.INVALID_DIGITS),
    # algorithms
    ("md5", lambda: hotp(KEY, 0, algorithm="MD5"), ErrorCode.UNSUPPORTED_ALGORITHM),
    ("sha3-256", lambda: hotp(KEY, 0, algorithm="SHA3-256"), ErrorCode.UNSUPPORTED_ALGORITHM),
    ("sha3_256", lambda: hotp(KEY, 0, algorithm="sha3_256"), ErrorCode.UNSUPPORTED_ALGORITHM),
    ("sha224", lambda: hotp(KEY, 0, algorithm="SHA224"), ErrorCode.UNSUPPORTED_ALGORITHM),
    ("sha-1", lambda: hotp(KEY, 0, algorithm="SHA-1"), ErrorCode.UNSUPPORTED_ALGORITHM),
    ("blank-alg", lambda: hotp(KEY, 0, algorithm=""), ErrorCode.UNSUPPORTED_ALGORITHM),
    ("none-alg", lambda: hotp(KEY, 0, algorithm=None), ErrorCode.UNSUPPORTED_ALGORITHM),  # type: ignore[arg-type]
    ("long-alg", lambda: parse_algorithm("SHA1" * 1000), ErrorCode.UNSUPPORTED_ALGORITHM),
    (
        "verify-md5",
        lambda: verify_totp(KEY, RIGHT, 59, algorithm="md5"),
        ErrorCode.UNSUPPORTED_ALGORITHM,
    ),
    # periods and times
    ("period-0", lambda: totp(KEY, 59, period=0), ErrorCode.INVALID_PERIOD),
    ("period-negative", lambda: totp(KEY, 59, period=-30), ErrorCode.INVALID_PERIOD),
    ("period-too-big", lambda: totp(KEY, 59, period=601), ErrorCode.INVALID_PERIOD),
    ("period-float", lambda: totp(KEY, 59, period=30.0), ErrorCode.INVALID_PERIOD),  # type: ignore[arg-type]
    ("period-bool", lambda: totp(KEY, 59, period=True), ErrorCode.INVALID_PERIOD),
    ("time-negative", lambda: totp(KEY, -1), ErrorCode.INVALID_TIME),
    ("time-negative-float", lambda: totp(KEY, -0.5), ErrorCode.INVALID_TIME),
    ("time-nan", lambda: totp(KEY, math.nan), ErrorCode.INVALID_TIME),
    ("time-inf", lambda: totp(KEY, math.inf), ErrorCode.INVALID_TIME),
    ("time-str", lambda: totp(KEY, "59"), ErrorCode.INVALID_TIME),  # type: ignore[arg-type]
    ("time-none", lambda: totp(KEY, None), ErrorCode.INVALID_TIME),  # type: ignore[arg-type]
    ("time-bool", lambda: time_step(True), ErrorCode.INVALID_TIME),
    ("time-before-t0", lambda: totp(KEY, 50, t0=100), ErrorCode.INVALID_TIME),
    ("verify-before-t0", lambda: verify_totp(KEY, RIGHT, 50, t0=100), ErrorCode.INVALID_TIME),
    ("t0-negative", lambda: totp(KEY, 59, t0=-1), ErrorCode.INVALID_TIME),
    ("time-too-far", lambda: totp(KEY, 30 * 2**64, period=30), ErrorCode.INVALID_TIME),
    # counters
    ("counter-negative", lambda: hotp(KEY, -1), ErrorCode.INVALID_COUNTER),
    ("counter-2**64", lambda: hotp(KEY, 2**64), ErrorCode.INVALID_COUNTER),
    ("counter-bool", lambda: hotp(KEY, True), ErrorCode.INVALID_COUNTER),
    ("counter-float", lambda: hotp(KEY, 1.0), ErrorCode.INVALID_COUNTER),  # type: ignore[arg-type]
    ("counter-str", lambda: hotp(KEY, "1"), ErrorCode.INVALID_COUNTER),  # type: ignore[arg-type]
    ("verify-counter-bool", lambda: verify_hotp(KEY, RIGHT, False), ErrorCode.INVALID_COUNTER),
    ("verify-counter-float", lambda: verify_hotp(KEY, RIGHT, 1.0), ErrorCode.INVALID_COUNTER),  # type: ignore[arg-type]
    # windows
    (
        "look-behind-negative",
        lambda: verify_totp(KEY, RIGHT, 59, look_behind=-1),
        ErrorCode.INVALID_WINDOW,
    ),
    (
        "look-ahead-huge",
        lambda: verify_totp(KEY, RIGHT, 59, look_ahead=201),
        ErrorCode.INVALID_WINDOW,
    ),
    (
        "look-ahead-bool",
        lambda: verify_hotp(KEY, RIGHT, 1, look_ahead=True),
        ErrorCode.INVALID_WINDOW,
    ),
    (
        "look-ahead-float",
        lambda: verify_hotp(KEY, RIGHT, 1, look_ahead=1.0),
        ErrorCode.INVALID_WINDOW,
    ),  # type: ignore[arg-type]
    # keys
    ("key-empty", lambda: hotp(b"", 0), ErrorCode.KEY_TOO_SHORT),
    ("key-15", lambda: hotp(KEY[:15], 0), ErrorCode.KEY_TOO_SHORT),
    ("key-10-strict", lambda: verify_hotp(KEY[:10], RIGHT, 1), ErrorCode.KEY_TOO_SHORT),
    ("key-9-legacy", lambda: hotp(KEY[:9], 0, allow_short_key=True), ErrorCode.KEY_TOO_SHORT),
    ("key-257", lambda: hotp(b"k" * 257, 0), ErrorCode.INVALID_KEY),
    ("key-str", lambda: hotp("12345678901234567890", 0), ErrorCode.INVALID_KEY),  # type: ignore[arg-type]
    ("key-none", lambda: totp(None, 59), ErrorCode.INVALID_KEY),  # type: ignore[arg-type]
    ("key-int", lambda: check_key(12345678901234567890), ErrorCode.INVALID_KEY),
    ("state-bad-digits", lambda: HOTPState(KEY, "SHA1", 4), ErrorCode.INVALID_DIGITS),
    ("generate-15", lambda: generate_key(15), ErrorCode.KEY_TOO_SHORT),
    ("generate-bool", lambda: generate_key(True), ErrorCode.INVALID_KEY),
    # base32 and URIs
    ("b32-bad-char", lambda: b32decode_key("GEZDGNBVGY3TQOJ1"), ErrorCode.INVALID_BASE32),
    ("b32-arabic", lambda: b32decode_key("GEZD٢NBV"), ErrorCode.INVALID_BASE32),
    ("b32-bytes", lambda: b32decode_key(b"GEZDGNBV"), ErrorCode.INVALID_BASE32),  # type: ignore[arg-type]
    (
        "uri-huge",
        lambda: parse_uri("otpauth://totp/a?secret=" + "A" * 10**6),
        ErrorCode.URI_TOO_LONG,
    ),
    ("uri-scheme", lambda: parse_uri("https://example.com/"), ErrorCode.URI_BAD_SCHEME),
    ("uri-non-str", lambda: parse_uri(b"otpauth://totp/a"), ErrorCode.INVALID_URI),  # type: ignore[arg-type]
    ("uri-colon", lambda: build_uri(KEY, account="a:b"), ErrorCode.URI_INVALID_LABEL),
]

CASES = _codes() + PARAMETER_CASES


@pytest.mark.parametrize(("name", "call", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused(
    name: str, call: Callable[[], object], expected: ErrorCode | None
) -> None:
    if expected is None:
        assert call() is None, name
    else:
        with pytest.raises(MFAError) as info:
            call()
        assert info.value.code is expected, name


@pytest.mark.parametrize(("name", "typed"), _accepted(), ids=[c[0] for c in _accepted()])
def test_the_forms_people_type_are_accepted(name: str, typed: str) -> None:
    assert verify_hotp(KEY, typed, 1) == 1, name
    assert verify_totp(KEY, typed, 59) == 1, name


def test_short_keys_work_with_the_legacy_opt_in() -> None:
    short = KEY[:10]
    code = hotp(short, 1, allow_short_key=True)
    assert verify_hotp(short, code, 1, allow_short_key=True) == 1
    assert verify_totp(short, code, 59, allow_short_key=True) == 1
