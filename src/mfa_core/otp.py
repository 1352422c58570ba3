"""RFC 4226 (HOTP) and RFC 6238 (TOTP): generation and constant-work verification.

Pure functions, no I/O, no clock: time is always an argument. Every parameter is checked
here (not only by callers), and untrusted codes enter through :func:`normalize_code`.

Speed comes from building the HMAC's inner and outer hash states once per call (key XOR
ipad/opad, RFC 2104) and copying them for each counter value, instead of a fresh HMAC per
step; the work done for a window does not depend on where, or whether, the code matched.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import math
import re
import struct
from collections.abc import Callable
from typing import Any, Final

from ._validate import is_ascii_text as _is_ascii_text
from ._validate import is_int as _is_int
from .errors import ErrorCode, InvalidKey, InvalidParameter, UnsupportedAlgorithm

__all__ = [
    "DEFAULT_DIGITS",
    "DEFAULT_PERIOD",
    "LEGACY_MIN_KEY_BYTES",
    "MAX_COUNTER",
    "MAX_DIGITS",
    "MAX_KEY_BYTES",
    "MAX_PERIOD",
    "MAX_WINDOW",
    "MIN_DIGITS",
    "MIN_KEY_BYTES",
    "Algorithm",
    "HOTPState",
    "check_key",
    "hotp",
    "normalize_code",
    "parse_algorithm",
    "time_step",
    "totp",
    "verify_hotp",
    "verify_totp",
]

MIN_DIGITS: Final = 6
"""Fewest digits a code may have."""
MAX_DIGITS: Final = 10
"""Most digits a code may have (the 31-bit truncated value has at most 10 digits)."""
DEFAULT_DIGITS: Final = 6
"""Digits of a code unless told otherwise (what every authenticator app assumes)."""
DEFAULT_PERIOD: Final = 30
"""TOTP time step in seconds (RFC 6238 §5.2 recommends 30)."""
MAX_PERIOD: Final = 600
"""Longest TOTP time step accepted, in seconds (10 minutes)."""
MAX_COUNTER: Final = 2**64 - 1
"""Largest HOTP counter / TOTP step: the counter is an 8-byte unsigned integer."""
MAX_WINDOW: Final = 200
"""Hard upper bound for ``look_behind`` and ``look_ahead`` in verification."""
MIN_KEY_BYTES: Final = 16
"""Shortest key accepted by default: 128 bits (RFC 4226 §4 R6)."""
LEGACY_MIN_KEY_BYTES: Final = 10
"""Shortest key accepted with ``allow_short_key=True`` (80-bit keys of older apps)."""
MAX_KEY_BYTES: Final = 256
"""Longest key accepted."""
MAX_CODE_INPUT: Final = 64
"""Submitted codes longer than this are rejected without further parsing."""


class Algorithm(enum.StrEnum):
    """The HMAC hash functions that RFC 6238 allows and authenticator apps support."""

    SHA1 = "SHA1"
    SHA256 = "SHA256"
    SHA512 = "SHA512"

    @property
    def digest_size(self) -> int:
        """Output size of the hash in bytes."""
        return _DIGEST_SIZE[self]


_DIGEST_SIZE: Final = {Algorithm.SHA1: 20, Algorithm.SHA256: 32, Algorithm.SHA512: 64}
_BLOCK_SIZE: Final = {Algorithm.SHA1: 64, Algorithm.SHA256: 64, Algorithm.SHA512: 128}
_CONSTRUCTOR: Final[dict[Algorithm, Callable[..., Any]]] = {
    Algorithm.SHA1: hashlib.sha1,
    Algorithm.SHA256: hashlib.sha256,
    Algorithm.SHA512: hashlib.sha512,
}
_BY_NAME: Final = {a.value: a for a in Algorithm}
_LONGEST_NAME: Final = max(len(name) for name in _BY_NAME)
# (constructor, block size) by the algorithm's plain string value: dict lookups with plain
# str keys avoid Enum.__hash__, which is Python code, on the hot path.
_HashParams = tuple[Callable[..., Any], int]  # (hashlib constructor, block size)
_Copy = Callable[[], Any]  # the bound copy() of a hash state
_HASH_PARAMS: Final[dict[str, _HashParams]] = {
    a.value: (_CONSTRUCTOR[a], _BLOCK_SIZE[a]) for a in Algorithm
}
_IPAD: Final = bytes.maketrans(bytes(range(256)), bytes(x ^ 0x36 for x in range(256)))
_OPAD: Final = bytes.maketrans(bytes(range(256)), bytes(x ^ 0x5C for x in range(256)))
_POW10: Final[tuple[int, ...]] = tuple(10**d for d in range(MAX_DIGITS + 1))
# b"%06d" ... b"%010d": the zero-padded code as bytes in one formatting step.
_CODE_FORMAT: Final[tuple[bytes, ...]] = tuple(b"%%0%dd" % d for d in range(MAX_DIGITS + 1))
_PACK_COUNTER: Final = struct.Struct(">Q").pack
_UNPACK_U32: Final = struct.Struct(">I").unpack_from
_CODE_RE: Final = re.compile(r"[0-9]+(?:[ -][0-9]+){0,2}", re.ASCII)
_STRIP: Final = " \t\r\n"
_MAX_FLOAT_TIME: Final = 2.0**62  # far beyond any real clock; larger floats take the slow path


def parse_algorithm(algorithm: Algorithm | str) -> Algorithm:
    """Return the :class:`Algorithm` for ``"SHA1"``/``"SHA256"``/``"SHA512"`` in any ASCII case.

    Raises :class:`UnsupportedAlgorithm` for anything else (MD5, SHA-3, unknown names).
    """
    # ASCII first: str.upper maps U+017F (long s) to 'S' ("\u017fha1" must not name SHA1).
    # A member is a str too, and takes the same path.
    if _is_ascii_text(algorithm, _LONGEST_NAME):
        found = _BY_NAME.get(algorithm.upper())
        if found is not None:
            return found
    raise UnsupportedAlgorithm("algorithm must be one of SHA1, SHA256 or SHA512")


def _check_digits(digits: object) -> int:
    if not _is_int(digits) or not MIN_DIGITS <= digits <= MAX_DIGITS:
        raise InvalidParameter(
            f"digits must be an integer from {MIN_DIGITS} to {MAX_DIGITS}",
            code=ErrorCode.INVALID_DIGITS,
        )
    return int(digits)


def _check_counter(counter: object) -> int:
    if not _is_int(counter) or not 0 <= counter <= MAX_COUNTER:
        raise InvalidParameter(
            "counter must be an integer from 0 to 2**64-1", code=ErrorCode.INVALID_COUNTER
        )
    return int(counter)


def _check_window(value: object, name: str) -> int:
    if not _is_int(value) or not 0 <= value <= MAX_WINDOW:
        raise InvalidParameter(
            f"{name} must be an integer from 0 to {MAX_WINDOW}", code=ErrorCode.INVALID_WINDOW
        )
    return int(value)


def check_key(key: object, *, allow_short_key: bool = False) -> bytes:
    """Validate a raw key and return it as ``bytes``; keys are used exactly as given.

    Raises :class:`InvalidKey` for non-bytes, keys over :data:`MAX_KEY_BYTES`, and keys
    under 128 bits (under 80 bits with ``allow_short_key``).
    """
    minimum = LEGACY_MIN_KEY_BYTES if allow_short_key else MIN_KEY_BYTES
    if not isinstance(key, bytes | bytearray | memoryview):
        raise InvalidKey("key must be bytes")
    raw = bytes(key)  # a bytes object itself, not a copy
    if len(raw) < minimum:
        raise InvalidKey(
            f"key must be at least {minimum} bytes ({minimum * 8} bits)",
            code=ErrorCode.KEY_TOO_SHORT,
        )
    if len(raw) > MAX_KEY_BYTES:
        raise InvalidKey(f"key must be at most {MAX_KEY_BYTES} bytes")
    return raw


def time_step(at: object, *, period: object = DEFAULT_PERIOD, t0: object = 0) -> int:
    """Return the RFC 6238 time-step number ``floor((at - t0) / period)``.

    ``at`` is Unix time in seconds (int or float, never naive local time). Raises
    :class:`InvalidParameter` for a negative or non-finite time, a time before ``t0`` and a
    period outside 1..:data:`MAX_PERIOD`.
    """
    if (
        (type(at) is float or type(at) is int)
        and type(period) is int
        and type(t0) is int
        and 1 <= period <= MAX_PERIOD
        and 0 <= t0 <= at < _MAX_FLOAT_TIME
    ):
        # The usual call, valid by the same rules as _time_step_checked (int() is floor()
        # here, since at >= 0; NaN fails the comparison). benchmarks/bench_fast_paths.py
        # shows what it saves; tests/test_otp_pins.py checks every valid usual call lands here.
        return (int(at) - t0) // period
    return _time_step_checked(at, period, t0)


def _time_step_checked(at: object, period: object, t0: object) -> int:
    """:func:`time_step` for any input: every check, then the step (or the error)."""
    if not _is_int(period) or not 1 <= period <= MAX_PERIOD:
        raise InvalidParameter(
            f"period must be an integer from 1 to {MAX_PERIOD} seconds",
            code=ErrorCode.INVALID_PERIOD,
        )
    if not _is_int(t0) or t0 < 0:
        raise InvalidParameter("t0 must be a non-negative integer", code=ErrorCode.INVALID_TIME)
    if _is_int(at):
        seconds = int(at)
    elif isinstance(at, float) and math.isfinite(at):
        seconds = math.floor(at)
    else:
        raise InvalidParameter("time must be a finite number", code=ErrorCode.INVALID_TIME)
    if seconds < 0 or seconds < t0:
        raise InvalidParameter(
            "time must not be negative or before t0", code=ErrorCode.INVALID_TIME
        )
    step = (seconds - int(t0)) // int(period)
    if step > MAX_COUNTER:
        raise InvalidParameter("time is out of range", code=ErrorCode.INVALID_TIME)
    return step


def _fast_params(key: object, digits: object, algorithm: object) -> _HashParams | None:
    """Hash parameters when key, digits and algorithm are valid and of the usual types.

    ``None`` sends the caller to the general path, which validates (and raises) in full.
    Dict lookups use the plain string value: ``Enum.__hash__`` is Python code.
    """
    if type(algorithm) is str:
        params = _HASH_PARAMS.get(algorithm)
    elif type(algorithm) is Algorithm:
        params = _HASH_PARAMS.get(algorithm._value_)
    else:
        return None
    if (
        params is not None
        and type(key) is bytes
        and MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES
        and type(digits) is int
        and MIN_DIGITS <= digits <= MAX_DIGITS
    ):
        return params
    return None


def _pad_copies(key: bytes, params: _HashParams) -> tuple[_Copy, _Copy]:
    """The bound ``copy`` methods of the HMAC inner and outer states (RFC 2104).

    The states have absorbed ``key XOR ipad`` and ``key XOR opad``; the key itself is not
    kept anywhere.
    """
    ctor, block = params
    if len(key) > block:
        key = ctor(key).digest()
    key = key.ljust(block, b"\0")
    return ctor(key.translate(_IPAD)).copy, ctor(key.translate(_OPAD)).copy


def _truncated(inner_copy: _Copy, outer_copy: _Copy, counter: int) -> int:
    inner = inner_copy()
    inner.update(_PACK_COUNTER(counter))
    outer = outer_copy()
    outer.update(inner.digest())
    mac: bytes = outer.digest()
    return int(_UNPACK_U32(mac, mac[-1] & 0x0F)[0]) & 0x7FFFFFFF


def _match_window(
    copies: tuple[_Copy, _Copy], digits: int, candidate: bytes, first: int, last: int
) -> int | None:
    """Compare ``candidate`` with the code of every counter in ``first..last`` (validated).

    Every counter is computed and compared with :func:`hmac.compare_digest` on bytes,
    whatever matches, so the work does not depend on where or whether the code matched.
    This is :func:`_truncated` inlined: on the hot path each attribute lookup and call shows.
    """
    inner_copy, outer_copy = copies
    fmt, modulus = _CODE_FORMAT[digits], _POW10[digits]
    pack, unpack, compare = _PACK_COUNTER, _UNPACK_U32, hmac.compare_digest
    found: int | None = None
    for counter in range(first, last + 1):
        inner = inner_copy()
        inner.update(pack(counter))
        outer = outer_copy()
        outer.update(inner.digest())
        mac = outer.digest()
        code = fmt % ((unpack(mac, mac[-1] & 0x0F)[0] & 0x7FFFFFFF) % modulus)
        if compare(code, candidate) and found is None:
            found = counter
    return found


class HOTPState:
    """Precomputed HMAC state for one key and algorithm (RFC 2104 inner/outer pads).

    Build once, then :meth:`code` any number of counter values; each costs two hash copies
    and two small updates. The key is not kept; the object never shows it.
    """

    __slots__ = ("_digits", "_inner_copy", "_outer_copy")

    def __init__(self, key: bytes, algorithm: Algorithm | str, digits: int) -> None:
        self._digits: int = _check_digits(digits)
        params = _HASH_PARAMS[parse_algorithm(algorithm).value]
        self._inner_copy, self._outer_copy = _pad_copies(
            check_key(key, allow_short_key=True), params
        )

    def __repr__(self) -> str:
        return "HOTPState(<key hidden>)"

    def value(self, counter: int) -> int:
        """Return the RFC 4226 truncated value (before the decimal modulus) for ``counter``."""
        return _truncated(self._inner_copy, self._outer_copy, _check_counter(counter))

    def code(self, counter: int) -> str:
        """Return the zero-padded decimal code for ``counter``."""
        digits = self._digits
        return (_CODE_FORMAT[digits] % (self.value(counter) % _POW10[digits])).decode()

    def match(self, candidate: bytes, first: int, last: int) -> int | None:
        """Compare ``candidate`` with the code of every counter in ``first..last``.

        Every counter in the range is computed and compared with
        :func:`hmac.compare_digest`, whatever matches; returns the first matching counter.
        ``candidate`` is a normalised code (see :func:`normalize_code`).
        """
        if type(candidate) is not bytes:
            raise InvalidParameter("candidate must be bytes", code=ErrorCode.INVALID_CODE)
        first, last = _check_counter(first), _check_counter(last)
        return _match_window(
            (self._inner_copy, self._outer_copy), self._digits, candidate, first, last
        )


def normalize_code(code: object, digits: int) -> bytes | None:
    """Return a submitted code as ASCII digit bytes, or ``None`` if it can never match.

    Accepts surrounding whitespace and the space or dash people type between digit groups
    (``"287 082"``, ``"287-082"``). Everything else is refused: non-``str`` values,
    non-ASCII digits (Arabic-Indic, full-width, superscripts), signs, underscores, wrong
    length and oversized input.
    """
    if type(code) is str and len(code) == digits and code.isascii() and code.isdigit():
        # The usual form, exactly the digits (benchmarks/bench_fast_paths.py).
        return code.encode()
    return _normalize_checked(code, digits)


def _normalize_checked(code: object, digits: int) -> bytes | None:
    """:func:`normalize_code` for any input: groups, whitespace, and every refusal."""
    if type(code) is not str or len(code) > MAX_CODE_INPUT:
        return None
    text = code.strip(_STRIP)
    if _CODE_RE.fullmatch(text) is None:
        return None
    text = text.replace(" ", "").replace("-", "")
    if len(text) != digits:
        return None
    return text.encode()


def _prepare(
    key: object, digits: int, algorithm: Algorithm | str, allow_short_key: bool
) -> HOTPState:
    return HOTPState(check_key(key, allow_short_key=allow_short_key), algorithm, digits)


def hotp(
    key: bytes,
    counter: int,
    *,
    digits: int = DEFAULT_DIGITS,
    algorithm: Algorithm | str = Algorithm.SHA1,
    allow_short_key: bool = False,
) -> str:
    """Return the RFC 4226 HOTP code for ``key`` at ``counter`` (0..2**64-1)."""
    state = _prepare(key, digits, algorithm, allow_short_key)
    return state.code(_check_counter(counter))


def totp(
    key: bytes,
    at: float,
    *,
    digits: int = DEFAULT_DIGITS,
    algorithm: Algorithm | str = Algorithm.SHA1,
    period: int = DEFAULT_PERIOD,
    t0: int = 0,
    allow_short_key: bool = False,
) -> str:
    """Return the RFC 6238 TOTP code for ``key`` at Unix time ``at`` (seconds)."""
    state = _prepare(key, digits, algorithm, allow_short_key)
    return state.code(time_step(at, period=period, t0=t0))


def verify_hotp(
    key: bytes,
    code: str,
    counter: int,
    *,
    digits: int = DEFAULT_DIGITS,
    algorithm: Algorithm | str = Algorithm.SHA1,
    look_ahead: int = 0,
    allow_short_key: bool = False,
) -> int | None:
    """Check ``code`` against counters ``counter .. counter + look_ahead``.

    Returns the matched counter value, or ``None``. The caller must store ``matched + 1``
    as the next counter. Every counter in the window is computed and compared in constant
    time; a malformed code returns ``None`` before any HMAC work.
    """
    state = _prepare(key, digits, algorithm, allow_short_key)
    first = _check_counter(counter)
    last = min(first + _check_window(look_ahead, "look_ahead"), MAX_COUNTER)
    candidate = normalize_code(code, state._digits)
    if candidate is None:
        return None
    return state.match(candidate, first, last)


def verify_totp(
    key: bytes,
    code: str,
    at: float,
    *,
    digits: int = DEFAULT_DIGITS,
    algorithm: Algorithm | str = Algorithm.SHA1,
    period: int = DEFAULT_PERIOD,
    t0: int = 0,
    look_behind: int = 1,
    look_ahead: int = 1,
    allow_short_key: bool = False,
) -> int | None:
    """Check ``code`` against the time steps around ``at``.

    The window is asymmetric: ``look_behind`` steps before and ``look_ahead`` steps after
    the current one (each at most :data:`MAX_WINDOW`). Returns the matched time-step number
    (compare it with :func:`time_step` for the drift), or ``None``. Every step in the window
    is computed and compared in constant time.
    """
    params = _fast_params(key, digits, algorithm)
    if (
        params is not None
        and (type(at) is int or type(at) is float)
        and type(period) is int
        and type(t0) is int
        and 1 <= period <= MAX_PERIOD
        and 0 <= t0 <= at < _MAX_FLOAT_TIME
        and type(look_behind) is int
        and type(look_ahead) is int
        and 0 <= look_behind <= MAX_WINDOW
        and 0 <= look_ahead <= MAX_WINDOW
    ):
        # Everything valid and of the usual types, by the same rules as
        # _verify_totp_checked: the per-login hot path skips the repeated checks
        # (benchmarks/bench_fast_paths.py; tests/test_otp_pins.py checks every valid usual
        # call lands here).
        candidate = normalize_code(code, digits)
        if candidate is None:
            return None
        current = (int(at) - t0) // period
        return _match_window(
            _pad_copies(key, params),
            digits,
            candidate,
            max(current - look_behind, 0),
            current + look_ahead,
        )
    return _verify_totp_checked(
        key, code, at, digits, algorithm, period, t0, look_behind, look_ahead, allow_short_key
    )


def _verify_totp_checked(
    key: object,
    code: object,
    at: object,
    digits: int,
    algorithm: Algorithm | str,
    period: object,
    t0: object,
    look_behind: object,
    look_ahead: object,
    allow_short_key: bool,
) -> int | None:
    """:func:`verify_totp` for any input: every parameter checked, then the window."""
    state = _prepare(key, digits, algorithm, allow_short_key)
    current = time_step(at, period=period, t0=t0)
    first = max(current - _check_window(look_behind, "look_behind"), 0)
    last = min(current + _check_window(look_ahead, "look_ahead"), MAX_COUNTER)
    checked = normalize_code(code, state._digits)
    if checked is None:
        return None
    return state.match(checked, first, last)
