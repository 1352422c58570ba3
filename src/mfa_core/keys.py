"""Key creation and the base32 text form that authenticator apps use.

:func:`b32decode_key` is the one named parser through which a typed or pasted secret
enters the library.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from typing import Final

from ._validate import check_ascii as _check_ascii
from .errors import ErrorCode, InvalidBase32, InvalidKey
from .otp import MAX_KEY_BYTES, MIN_KEY_BYTES

__all__ = ["DEFAULT_KEY_BYTES", "b32decode_key", "b32encode_key", "generate_key", "random_id"]

DEFAULT_KEY_BYTES: Final = 20
"""Default key size: 160 bits, the length RFC 4226 recommends for HMAC-SHA1."""

_MAX_B32_INPUT: Final = 1024
_B32_RE: Final = re.compile(r"[A-Z2-7]*=*", re.ASCII)
# Lengths of unpadded base32 that can come from whole bytes (len % 8).
_VALID_REMAINDERS: Final = frozenset({0, 2, 4, 5, 7})
_ASCII_SPACE: Final = " \t\n\r\x0b\x0c"


def random_id() -> str:
    """A random identifier of 128 bits as URL-safe text (22 characters), for credential and
    challenge ids. It never starts with ``-``: one in 64 would, and a command line
    (``mfa-core admin disable USER ID``) would then take it for an option."""
    while True:
        made = secrets.token_urlsafe(16)
        if not made.startswith("-"):
            return made


def generate_key(nbytes: int = DEFAULT_KEY_BYTES) -> bytes:
    """Return ``nbytes`` random bytes from the operating system's CSPRNG.

    Refuses fewer than 16 bytes (128 bits) and more than 256, with :class:`InvalidKey`.
    """
    if isinstance(nbytes, bool) or not isinstance(nbytes, int):
        raise InvalidKey("nbytes must be an integer")
    if nbytes < MIN_KEY_BYTES:
        raise InvalidKey(
            f"keys must be at least {MIN_KEY_BYTES} bytes ({MIN_KEY_BYTES * 8} bits)",
            code=ErrorCode.KEY_TOO_SHORT,
        )
    if nbytes > MAX_KEY_BYTES:
        raise InvalidKey(f"keys must be at most {MAX_KEY_BYTES} bytes")
    return secrets.token_bytes(nbytes)


def b32encode_key(key: bytes) -> str:
    """Return ``key`` as upper-case RFC 4648 base32 without ``=`` padding."""
    if not isinstance(key, bytes | bytearray | memoryview):
        raise InvalidKey("key must be bytes")
    if len(key) == 0:
        raise InvalidKey("key must not be empty")
    return base64.b32encode(bytes(key)).decode("ascii").rstrip("=")


def b32decode_key(text: str) -> bytes:
    """Decode a base32 secret as people type or paste it.

    Accepts lower case, spaces and dashes between groups, and missing or present ``=``
    padding. Anything else (other characters, impossible lengths, empty or oversized
    input, non-``str``) raises :class:`InvalidBase32`. The message never repeats the input.
    """
    # ASCII is checked before stripping and upper-casing: str.upper maps U+017F (long s)
    # to 'S' and U+0131 (dotless i) to 'I', and str.strip removes non-ASCII whitespace.
    _check_ascii(text, "secret", max_length=_MAX_B32_INPUT, error=InvalidBase32)
    cleaned = text.strip(_ASCII_SPACE).replace(" ", "").replace("-", "").upper()
    if _B32_RE.fullmatch(cleaned) is None:
        raise InvalidBase32("secret contains characters that are not base32 (A-Z, 2-7)")
    body = cleaned.rstrip("=")
    padding = len(cleaned) - len(body)
    if not body:
        raise InvalidBase32("secret is empty")
    if len(body) % 8 not in _VALID_REMAINDERS:
        raise InvalidBase32("secret has an impossible base32 length")
    expected_padding = (-len(body)) % 8
    if padding not in (0, expected_padding):
        raise InvalidBase32("secret has wrong base32 padding")
    try:
        raw = base64.b32decode(body + "=" * expected_padding)
    except (binascii.Error, ValueError):
        raise InvalidBase32("secret is not valid base32") from None
    # Trailing bits that do not fill a byte are dropped, as every decoder does, so secrets
    # made by tools that pick random base32 characters of any length still work.
    return raw
