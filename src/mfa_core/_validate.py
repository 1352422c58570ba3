"""The one validation layer (private): times, durations, ids, integers and ASCII text.

Every module checks untrusted values through these functions, so the rules cannot drift
apart between modules. The rules:

* ``bool`` is an ``int`` subclass in Python; no integer or numeric parameter accepts it.
* An ``int`` is range-checked *before* any conversion to ``float``: ``10**400`` is an
  out-of-range value (:class:`~mfa_core.errors.InvalidParameter`), never an
  ``OverflowError``.
* A time is a finite, non-negative number of Unix seconds (int or float) of at most
  :data:`MAX_TIME`.
* An id is a non-empty ``str`` of bounded length that can be encoded as UTF-8 (a lone
  surrogate is refused, so no later ``.encode("utf-8")`` can fail).
* ASCII text is checked for ASCII *before* any case mapping or stripping: ``str.upper``
  maps U+017F (long s) to ``'S'`` and U+0131 (dotless i) to ``'I'``, and ``str.strip``
  removes non-ASCII whitespace, so checking afterwards lets non-ASCII input through.

Each check raises the given :class:`~mfa_core.errors.MFAError` subclass (by default
:class:`~mfa_core.errors.InvalidParameter`) with the given :class:`~mfa_core.errors.ErrorCode`;
no message repeats the value.
"""

from __future__ import annotations

import math
from typing import Final, NoReturn, TypeGuard

from .errors import ErrorCode, InvalidParameter, MFAError

__all__ = [
    "MAX_ID_LENGTH",
    "MAX_TIME",
    "check_ascii",
    "check_duration",
    "check_id",
    "check_optional_time",
    "check_time",
    "finite_float",
    "int_in",
    "is_ascii_text",
    "is_finite_number",
    "is_int",
    "is_number",
    "is_time",
    "is_utf8",
]

MAX_ID_LENGTH: Final = 256
"""Longest user id (characters) unless a caller passes another bound."""
MAX_TIME: Final = 2**62
"""Latest Unix time accepted (seconds): far beyond any clock, exactly representable as a
float, and small enough that adding any duration stays finite."""
_FLOAT_MAX_INT: Final = int(2.0**1023)  # every int up to here converts to a finite float


def _raise(error: type[MFAError], message: str, code: ErrorCode | None) -> NoReturn:
    raise error(message, code=code)


def is_int(value: object) -> TypeGuard[int]:
    """True for an ``int`` (or subclass) that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> TypeGuard[int | float]:
    """True for an ``int`` or ``float`` (or subclass) that is not a ``bool``."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def finite_float(value: object) -> float | None:
    """``value`` as a finite ``float``, or ``None`` when it is not a finite number.

    An ``int`` too large for a ``float`` gives ``None`` (checked before converting).
    """
    if type(value) is float:
        return value if math.isfinite(value) else None
    if is_int(value):
        return float(value) if -_FLOAT_MAX_INT <= value <= _FLOAT_MAX_INT else None
    if isinstance(value, float) and math.isfinite(value):
        return float(value)
    return None


def is_finite_number(value: object) -> bool:
    """True for an int or float (not a bool) that converts to a finite ``float``."""
    return finite_float(value) is not None


def is_time(value: object, *, allow_negative: bool = False) -> bool:
    """True for a finite, non-negative Unix time of at most :data:`MAX_TIME` (from
    ``-MAX_TIME`` with ``allow_negative``, for the pure decision functions that are total
    over every finite clock reading)."""
    seconds = finite_float(value)
    low = -MAX_TIME if allow_negative else 0
    return seconds is not None and low <= seconds <= MAX_TIME


def check_time(
    value: object,
    name: str = "now",
    *,
    allow_negative: bool = False,
    error: type[MFAError] = InvalidParameter,
    code: ErrorCode | None = ErrorCode.INVALID_TIME,
) -> float:
    """Return ``value`` as a float if it is a finite, non-negative Unix time (at most
    :data:`MAX_TIME`; see :func:`is_time` for ``allow_negative``); otherwise raise
    ``error`` with ``code``."""
    if type(value) is float and 0.0 <= value <= MAX_TIME:  # the common case; NaN fails
        return value
    if not is_time(value, allow_negative=allow_negative):
        sign = "" if allow_negative else "non-negative "
        _raise(error, f"{name} must be a finite, {sign}Unix time", code)
    return float(value)  # type: ignore[arg-type]


def check_optional_time(
    value: object,
    name: str,
    *,
    allow_negative: bool = False,
    error: type[MFAError] = InvalidParameter,
    code: ErrorCode | None = ErrorCode.INVALID_TIME,
) -> float | None:
    """``None``, or ``value`` checked by :func:`check_time`."""
    if value is None:
        return None
    return check_time(value, name, allow_negative=allow_negative, error=error, code=code)


def check_duration(
    value: object,
    name: str,
    *,
    low: float,
    high: float,
    low_open: bool = False,
    error: type[MFAError] = InvalidParameter,
    code: ErrorCode | None = None,
) -> float:
    """Return ``value`` as a float if it is a number of seconds from ``low`` to ``high``
    (``high`` may be ``math.inf``; ``low`` excluded when ``low_open``)."""
    if high == math.inf and is_number(value) and value == math.inf:
        return math.inf
    seconds = finite_float(value)
    if seconds is None:
        _raise(error, f"{name} must be a finite number of seconds", code)
    if not low <= seconds <= high or (low_open and seconds == low):
        _raise(error, f"{name} must be a number of seconds from {low:g} to {high:g}", code)
    return seconds


def int_in(
    value: object,
    low: int,
    high: int,
    name: str,
    *,
    error: type[MFAError] = InvalidParameter,
    code: ErrorCode | None = None,
) -> int:
    """Return ``value`` as an ``int`` if it is an integer from ``low`` to ``high``;
    otherwise raise ``error`` (default :class:`~mfa_core.errors.InvalidParameter`)."""
    if type(value) is int and low <= value <= high:
        return value
    if not is_int(value) or not low <= value <= high:
        _raise(error, f"{name} must be an integer from {low} to {high}", code)
    return int(value)


def is_utf8(value: str) -> bool:
    """True when ``value`` can be encoded as UTF-8 (it has no lone surrogate)."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_id(
    value: object,
    name: str,
    *,
    max_length: int = MAX_ID_LENGTH,
    error: type[MFAError] = InvalidParameter,
    code: ErrorCode | None = None,
) -> str:
    """Return ``value`` if it is a non-empty ``str`` of at most ``max_length`` characters
    that can be encoded as UTF-8; otherwise raise ``error``."""
    if type(value) is not str or not 1 <= len(value) <= max_length:
        _raise(error, f"{name} must be a non-empty string of at most {max_length}", code)
    if not is_utf8(value):
        _raise(error, f"{name} must be valid Unicode text (no lone surrogates)", code)
    return value


def is_ascii_text(value: object, max_length: int) -> TypeGuard[str]:
    """True for a ``str`` (or subclass) of at most ``max_length`` characters, all ASCII."""
    return isinstance(value, str) and len(value) <= max_length and value.isascii()


def check_ascii(
    value: object,
    name: str,
    *,
    max_length: int,
    error: type[MFAError] = InvalidParameter,
    code: ErrorCode | None = None,
) -> str:
    """Return ``value`` if it is a ``str`` of at most ``max_length`` ASCII characters.

    Call it *before* upper- or lower-casing or stripping the text.
    """
    if not isinstance(value, str):
        _raise(error, f"{name} must be a string", code)
    if len(value) > max_length:
        _raise(error, f"{name} is longer than {max_length} characters", code)
    if not value.isascii():
        _raise(error, f"{name} must be ASCII text", code)
    return value
