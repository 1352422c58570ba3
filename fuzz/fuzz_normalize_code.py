"""Fuzz :func:`mfa_core.otp.normalize_code`.

Oracle: only ``MFAError`` (the function returns ``None`` for anything unusable); an
accepted code matches an independent ASCII regex (optional ASCII whitespace around up to
three digit groups joined by one space or dash) and is exactly its ``digits`` digits.
"""

from __future__ import annotations

import re

import atheris

with atheris.instrument_imports():
    from mfa_core.errors import MFAError
    from mfa_core.otp import normalize_code

from _harness import main, text

_REFERENCE = re.compile(r"[ \t\r\n]*([0-9]+)(?:[ -]([0-9]+))?(?:[ -]([0-9]+))?[ \t\r\n]*")


def one_input(fdp: atheris.FuzzedDataProvider) -> None:
    digits = fdp.ConsumeIntInRange(4, 12)
    code = text(fdp, 70)
    try:
        result = normalize_code(code, digits)
    except MFAError:
        return
    if result is None:
        return
    match = _REFERENCE.fullmatch(code) if code.isascii() and len(code) <= 64 else None
    if match is None:
        raise AssertionError(f"accepted a code the reference refuses: {code!r}")
    expected = "".join(group or "" for group in match.groups())
    if len(expected) != digits or result != expected.encode("ascii"):
        raise AssertionError(f"normalised {code!r} to {result!r}, expected {expected!r}")


if __name__ == "__main__":
    main(one_input)
