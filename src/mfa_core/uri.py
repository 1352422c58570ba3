"""``otpauth://`` provisioning URIs in Google's Key URI format, built and parsed.

A provisioning URI carries everything an authenticator app needs to enrol a credential::

    otpauth://totp/Example:alice@example.com?secret=JBSWY3DPEHPK3PXP&issuer=Example
        &algorithm=SHA1&digits=6&period=30

:func:`build_uri` writes the canonical form: base32 secret without padding, spaces as
``%20`` (never ``+``), the issuer both as label prefix and as ``issuer=`` parameter, and
the defaults (SHA1, 6 digits, 30 s) spelled out so every app reads the same parameters.

:func:`parse_uri` is the one named parser for URIs that come from elsewhere (other
libraries, exports, pasted text). It accepts what real generators emit: ``:`` or ``%3A`` as
the label separator with optional spaces before the account, lower-case or padded secrets,
``+`` as a space in the query (cryptography writes it), parameter names in any ASCII case,
and extra parameters it does not know (``image=``, ``color=``...), which are ignored. It
rejects everything else with :class:`~mfa_core.errors.InvalidURI`, whose ``code`` names
the problem:

=============================  =========================================================
``URI_TOO_LONG``               more than :data:`MAX_URI_LENGTH` characters, or an issuer
                               or account longer than :data:`MAX_LABEL_LENGTH`
``URI_BAD_SCHEME``             not ``otpauth://``
``URI_BAD_TYPE``               neither ``totp`` nor ``hotp``
``URI_INVALID_LABEL``          empty account, more than one colon, control characters,
                               bad percent-escapes or UTF-8, a colon when building
``URI_ISSUER_MISMATCH``        the label's issuer differs from ``issuer=`` (a phishing
                               signal; ``allow_issuer_mismatch=True`` accepts it and keeps
                               the ``issuer=`` value)
``URI_MISSING_SECRET``         no ``secret=`` or an empty one
``INVALID_BASE32``             a secret that is not base32
``KEY_TOO_SHORT``              a key under 128 bits (80 bits with ``allow_short_key``)
``INVALID_KEY``                a key over :data:`~mfa_core.otp.MAX_KEY_BYTES`, or not bytes
``URI_MISSING_COUNTER``        an ``hotp`` URI without ``counter=``
``INVALID_COUNTER``            a counter that is not 0..2**64-1 in ASCII digits
``INVALID_DIGITS``             digits other than 6, 7 or 8
``INVALID_PERIOD``             a period that is not 1..:data:`~mfa_core.otp.MAX_PERIOD`
``UNSUPPORTED_ALGORITHM``      anything but SHA1, SHA256, SHA512 (ASCII, any case)
``URI_UNSUPPORTED_ENCODER``    an ``encoder=`` other than ``base32`` (``encoder=steam``:
                               Steam Guard codes are not RFC 6238 digits, and reading such
                               a URI as plain TOTP enrols a credential that never matches)
``INVALID_URI``                not a string, a repeated parameter, other malformed input
=============================  =========================================================

Both functions raise only :class:`~mfa_core.errors.InvalidURI`; no message ever contains
the secret. Pure module: no clock, no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final
from urllib.parse import quote, unquote

import attrs

from ._validate import is_ascii_text as _is_ascii_text
from ._validate import is_int as _is_int
from .errors import ErrorCode, InvalidURI, MFAError
from .keys import b32decode_key, b32encode_key
from .models import CredentialKind
from .otp import (
    DEFAULT_DIGITS,
    DEFAULT_PERIOD,
    MAX_COUNTER,
    MAX_PERIOD,
    Algorithm,
    check_key,
    parse_algorithm,
)

__all__ = [
    "MAX_LABEL_LENGTH",
    "MAX_URI_DIGITS",
    "MAX_URI_LENGTH",
    "MIN_URI_DIGITS",
    "OTPAuthURI",
    "build_uri",
    "parse_uri",
]

MAX_URI_LENGTH: Final = 2048
"""Longest URI accepted or produced, in characters (fits a QR code at error level M)."""
MAX_LABEL_LENGTH: Final = 256
"""Longest issuer or account name, in characters after percent-decoding."""
MIN_URI_DIGITS: Final = 6
"""Fewest digits a provisioning URI may ask for."""
MAX_URI_DIGITS: Final = 8
"""Most digits a provisioning URI may ask for (what authenticator apps support)."""

_SCHEME: Final = "otpauth://"
_BAD_ESCAPE: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ASCII_UINT: Final = re.compile(r"[0-9]{1,20}", re.ASCII)
_KNOWN_PARAMS: Final = frozenset(
    {"secret", "issuer", "algorithm", "digits", "period", "counter", "encoder"}
)
_ASCII_SPACE: Final = " \t\n\r\x0b\x0c"
# Characters kept literally in the label and issuer: unreserved ones plus "@", so e-mail
# addresses stay readable. Everything else, space and ":" included, is percent-encoded.
_SAFE: Final = "@"


@attrs.frozen
class OTPAuthURI:
    """The parsed content of an ``otpauth://`` provisioning URI.

    ``key`` is the raw secret; it is left out of ``repr`` and of ``==``/``hash`` (attrs'
    generated comparison is not constant-time). ``counter`` is the initial HOTP counter
    (``None`` for TOTP); ``period`` matters for TOTP only and is the default for HOTP.
    """

    kind: CredentialKind
    key: bytes = attrs.field(repr=False, eq=False)
    account: str
    issuer: str | None
    digits: int = DEFAULT_DIGITS
    algorithm: Algorithm = Algorithm.SHA1
    period: int = DEFAULT_PERIOD
    counter: int | None = None

    def to_uri(self, *, allow_short_key: bool = False) -> str:
        """Return this credential as a canonical URI (see :func:`build_uri`)."""
        return build_uri(
            self.key,
            account=self.account,
            issuer=self.issuer,
            kind=self.kind,
            digits=self.digits,
            algorithm=self.algorithm,
            period=self.period,
            counter=self.counter,
            allow_short_key=allow_short_key,
        )


def _fail(message: str, code: ErrorCode) -> InvalidURI:
    return InvalidURI(message, code=code)


def _parse_kind(kind: object) -> CredentialKind:
    if _is_ascii_text(kind, 8):  # ASCII before lower-casing
        lowered = kind.lower()
        for member in CredentialKind:
            if member.value == lowered:
                return member
    raise _fail("the OTP type must be 'totp' or 'hotp'", ErrorCode.URI_BAD_TYPE)


def _check_digits(digits: object) -> int:
    if not _is_int(digits) or not MIN_URI_DIGITS <= digits <= MAX_URI_DIGITS:
        raise _fail(
            f"digits must be an integer from {MIN_URI_DIGITS} to {MAX_URI_DIGITS}",
            ErrorCode.INVALID_DIGITS,
        )
    return int(digits)


def _check_period(period: object) -> int:
    if not _is_int(period) or not 1 <= period <= MAX_PERIOD:
        raise _fail(
            f"period must be an integer from 1 to {MAX_PERIOD} seconds", ErrorCode.INVALID_PERIOD
        )
    return int(period)


def _check_counter(counter: object) -> int:
    if not _is_int(counter) or not 0 <= counter <= MAX_COUNTER:
        raise _fail("counter must be an integer from 0 to 2**64-1", ErrorCode.INVALID_COUNTER)
    return int(counter)


def _check_algorithm(algorithm: object) -> Algorithm:
    try:
        return parse_algorithm(algorithm)  # type: ignore[arg-type]
    except MFAError as exc:
        raise _fail(exc.message, exc.code) from None


def _check_key(key: object, allow_short_key: bool) -> bytes:
    try:
        return check_key(key, allow_short_key=allow_short_key)
    except MFAError as exc:
        raise _fail(exc.message, exc.code) from None


def _check_label_text(value: str, what: str) -> None:
    """Rules shared by building and parsing for an issuer or account name."""
    if not value:
        raise _fail(f"the {what} must not be empty", ErrorCode.URI_INVALID_LABEL)
    if len(value) > MAX_LABEL_LENGTH:
        raise _fail(
            f"the {what} is longer than {MAX_LABEL_LENGTH} characters", ErrorCode.URI_TOO_LONG
        )
    if ":" in value:
        raise _fail(f"the {what} must not contain a colon", ErrorCode.URI_INVALID_LABEL)
    for char in value:
        category = unicodedata.category(char)
        if category == "Cc":
            raise _fail(
                f"the {what} must not contain control characters", ErrorCode.URI_INVALID_LABEL
            )
        if category == "Cs":
            raise _fail(f"the {what} is not valid Unicode text", ErrorCode.URI_INVALID_LABEL)


def _check_build_text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise _fail(f"the {what} must be a string", ErrorCode.URI_INVALID_LABEL)
    _check_label_text(value, what)
    if value != value.strip():
        raise _fail(
            f"the {what} must not begin or end with whitespace", ErrorCode.URI_INVALID_LABEL
        )
    return value


def build_uri(
    key: bytes,
    *,
    account: str,
    issuer: str | None = None,
    kind: CredentialKind | str = "totp",
    digits: int = DEFAULT_DIGITS,
    algorithm: Algorithm | str = "SHA1",
    period: int = DEFAULT_PERIOD,
    counter: int | None = None,
    allow_short_key: bool = False,
) -> str:
    """Return the canonical ``otpauth://`` provisioning URI for a credential.

    ``account`` (and ``issuer``, when given) must be non-empty text without a colon,
    control characters or surrounding whitespace. ``kind`` is ``"totp"`` or ``"hotp"``;
    an HOTP URI needs the initial ``counter``, a TOTP URI must not have one, and ``period``
    applies to TOTP only. ``digits`` is 6..8. Keys under 128 bits are refused unless
    ``allow_short_key`` (80 bits minimum). Raises :class:`~mfa_core.errors.InvalidURI`
    (the ``code`` names the problem); the message never contains the key.
    """
    raw = _check_key(key, allow_short_key)
    otp_kind = _parse_kind(kind)
    name = _check_build_text(account, "account")
    issuer_name = None if issuer is None else _check_build_text(issuer, "issuer")
    n_digits = _check_digits(digits)
    algo = _check_algorithm(algorithm)
    seconds = _check_period(period)
    if otp_kind is CredentialKind.HOTP:
        if counter is None:
            raise _fail("an hotp URI needs the initial counter", ErrorCode.URI_MISSING_COUNTER)
        start = _check_counter(counter)
        if seconds != DEFAULT_PERIOD:
            raise _fail("period applies to totp URIs only", ErrorCode.INVALID_PERIOD)
    elif counter is not None:
        raise _fail("counter applies to hotp URIs only", ErrorCode.INVALID_COUNTER)

    label = quote(name, safe=_SAFE)
    params = [f"secret={b32encode_key(raw)}"]
    if issuer_name is not None:
        encoded_issuer = quote(issuer_name, safe=_SAFE)
        label = f"{encoded_issuer}:{label}"
        params.append(f"issuer={encoded_issuer}")
    params.append(f"algorithm={algo.value}")
    params.append(f"digits={n_digits}")
    if otp_kind is CredentialKind.HOTP:
        params.append(f"counter={start}")
    else:
        params.append(f"period={seconds}")
    uri = f"{_SCHEME}{otp_kind.value}/{label}?{'&'.join(params)}"
    if len(uri) > MAX_URI_LENGTH:
        raise _fail(
            f"the URI would be longer than {MAX_URI_LENGTH} characters", ErrorCode.URI_TOO_LONG
        )
    return uri


def _decode(text: str, *, plus_is_space: bool, code: ErrorCode, what: str) -> str:
    if _BAD_ESCAPE.search(text) is not None:
        raise _fail(f"the {what} has a malformed percent-escape", code)
    if plus_is_space:
        text = text.replace("+", " ")
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise _fail(f"the {what} is not valid UTF-8", code) from None


def _parse_query(query: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for part in query.split("&"):
        if not part:
            continue
        raw_name, _, raw_value = part.partition("=")
        decoded = _decode(raw_name, plus_is_space=True, code=ErrorCode.INVALID_URI, what="query")
        # ASCII before lower-casing: a non-ASCII name is never one of ours.
        name = decoded.lower() if decoded.isascii() else ""
        if name not in _KNOWN_PARAMS:
            continue  # image=, color= ... are not ours to judge
        if name in params:
            raise _fail(f"the {name} parameter is given more than once", ErrorCode.INVALID_URI)
        code = ErrorCode.URI_INVALID_LABEL if name == "issuer" else ErrorCode.INVALID_URI
        params[name] = _decode(raw_value, plus_is_space=True, code=code, what=f"{name} parameter")
    return params


def _parse_uint(text: str) -> int:
    """Strict ASCII decimal, or -1 (which every range check refuses)."""
    return int(text) if _ASCII_UINT.fullmatch(text) is not None else -1


def _split_label(raw_label: str) -> tuple[str | None, str]:
    """Return ``(issuer prefix or None, account)`` from the still-encoded label."""
    label = _decode(raw_label, plus_is_space=False, code=ErrorCode.URI_INVALID_LABEL, what="label")
    if label.count(":") > 1:
        raise _fail("the label has more than one colon", ErrorCode.URI_INVALID_LABEL)
    if ":" not in label:
        _check_label_text(label, "account")
        return None, label
    prefix, _, account = label.partition(":")
    account = account.lstrip(" ")  # Google's format allows spaces before the account
    _check_label_text(prefix, "issuer")
    _check_label_text(account, "account")
    return prefix, account


def _pick_issuer(label_issuer: str | None, param: str | None, allow_mismatch: bool) -> str | None:
    param_issuer = param or None  # cryptography writes "issuer=" for an empty issuer
    if param_issuer is None:
        return label_issuer
    _check_label_text(param_issuer, "issuer")
    if label_issuer is not None and label_issuer != param_issuer and not allow_mismatch:
        raise _fail(
            "the issuer in the label differs from the issuer parameter",
            ErrorCode.URI_ISSUER_MISMATCH,
        )
    return param_issuer


def _parse_secret(secret: str, allow_short_key: bool) -> bytes:
    if not secret.strip(_ASCII_SPACE):
        raise _fail("the URI has no secret", ErrorCode.URI_MISSING_SECRET)
    try:
        decoded = b32decode_key(secret)
    except MFAError as exc:
        raise _fail(exc.message, exc.code) from None
    return _check_key(decoded, allow_short_key)


def parse_uri(
    uri: str, *, allow_issuer_mismatch: bool = False, allow_short_key: bool = False
) -> OTPAuthURI:
    """Parse an ``otpauth://`` provisioning URI from any source into an :class:`OTPAuthURI`.

    Strict by default. ``allow_issuer_mismatch=True`` is the documented lenient mode for
    URIs whose label prefix differs from the ``issuer=`` parameter: it accepts them and
    keeps the ``issuer=`` value (Google's format says the parameter wins). Without it such a
    URI raises ``URI_ISSUER_MISMATCH``, since a label that shows one company while the
    parameter names another is how phishing enrolments look. ``allow_short_key=True``
    accepts legacy 80..127-bit secrets. Every other problem raises
    :class:`~mfa_core.errors.InvalidURI` with the code listed in the module docstring.
    """
    if not isinstance(uri, str):
        raise _fail("the URI must be a string", ErrorCode.INVALID_URI)
    if len(uri) > MAX_URI_LENGTH:
        raise _fail(f"the URI is longer than {MAX_URI_LENGTH} characters", ErrorCode.URI_TOO_LONG)
    text = uri.strip(_ASCII_SPACE)  # ASCII whitespace only, and ASCII before lower-casing
    scheme = text[: len(_SCHEME)]
    if not scheme.isascii() or scheme.lower() != _SCHEME:
        raise _fail("the URI must start with otpauth://", ErrorCode.URI_BAD_SCHEME)
    path, _, query = text[len(_SCHEME) :].partition("#")[0].partition("?")
    type_name, slash, raw_label = path.partition("/")
    kind = _parse_kind(type_name)
    if not slash or not raw_label:
        raise _fail("the URI has no account label", ErrorCode.URI_INVALID_LABEL)
    label_issuer, account = _split_label(raw_label)
    params = _parse_query(query)
    encoder = params.get("encoder", "")
    if encoder and not (encoder.isascii() and encoder.lower() == "base32"):
        raise _fail(
            "the encoder parameter (e.g. encoder=steam) is not supported",
            ErrorCode.URI_UNSUPPORTED_ENCODER,
        )
    issuer = _pick_issuer(label_issuer, params.get("issuer"), allow_issuer_mismatch)
    key = _parse_secret(params.get("secret", ""), allow_short_key)
    digits = DEFAULT_DIGITS
    if "digits" in params:
        digits = _check_digits(_parse_uint(params["digits"]))
    algorithm = _check_algorithm(params.get("algorithm", Algorithm.SHA1.value))
    period = DEFAULT_PERIOD
    counter: int | None = None
    if kind is CredentialKind.HOTP:
        if not params.get("counter"):
            raise _fail("an hotp URI needs a counter", ErrorCode.URI_MISSING_COUNTER)
        counter = _check_counter(_parse_uint(params["counter"]))
    elif "period" in params:
        period = _check_period(_parse_uint(params["period"]))
    return OTPAuthURI(
        kind=kind,
        key=key,
        account=account,
        issuer=issuer,
        digits=digits,
        algorithm=algorithm,
        period=period,
        counter=counter,
    )
