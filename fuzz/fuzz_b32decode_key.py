"""Fuzz :func:`mfa_core.keys.b32decode_key`.

Oracle: only ``MFAError``; an accepted secret is ASCII and decodes to the same bytes with
``base64.b32decode`` on the ASCII-uppercased input (spaces and dashes removed, padding
completed).
"""

from __future__ import annotations

import base64
import binascii

import atheris

with atheris.instrument_imports():
    from mfa_core.errors import MFAError
    from mfa_core.keys import b32decode_key

from _harness import main, text

_SPACE = " \t\n\r\x0b\x0c"


def reference(secret: str) -> bytes | None:
    """What an independent decoder makes of ``secret``, or ``None`` when it refuses."""
    if not secret.isascii():
        return None
    body = secret.strip(_SPACE).replace(" ", "").replace("-", "").upper()
    stripped = body.rstrip("=")
    if not stripped or body.count("=") not in (0, (-len(stripped)) % 8):
        return None
    try:
        return base64.b32decode(stripped + "=" * ((-len(stripped)) % 8))
    except (binascii.Error, ValueError):
        return None


def one_input(fdp: atheris.FuzzedDataProvider) -> None:
    secret = text(fdp, 80)
    try:
        key = b32decode_key(secret)
    except MFAError:
        return
    expected = reference(secret)
    if expected is None or expected != key:
        raise AssertionError(f"accepted a secret the reference refuses: {secret!r}")


if __name__ == "__main__":
    main(one_input)
