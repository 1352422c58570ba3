"""Fuzz :func:`mfa_core.otp.verify_totp` and :func:`mfa_core.otp.verify_hotp`.

Every argument is fuzzed (key, code, time or counter, digits, algorithm, period, t0,
windows, with huge ints, NaN, bools and strings mixed in); half of the inputs submit the
code pyotp (or a by-the-book HMAC) computes for the step, so matches are exercised too. Oracle: only ``MFAError``;
a match is a step inside the window whose pyotp code is the submitted one; pyotp's own
code for the current step, submitted with valid parameters, always matches.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import atheris
import pyotp

with atheris.instrument_imports():
    from mfa_core.errors import MFAError
    from mfa_core.otp import normalize_code, verify_hotp, verify_totp

from _harness import main, number, text

_HASHES = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}


def _reference_code(key: bytes, counter: int, digits: int, algorithm: str) -> str | None:
    """RFC 4226 by the book with :mod:`hmac` (pyotp where it takes the key), or ``None``
    for parameters the RFCs or the library's bounds refuse."""
    digest = _HASHES.get(algorithm.upper()) if algorithm.isascii() else None
    if digest is None or not 6 <= digits <= 10 or not 0 <= counter < 2**64:
        return None
    if not 10 <= len(key) <= 256:
        return None
    if len(key) >= 14 and digits <= 8:
        secret = base64.b32encode(key).decode("ascii")
        return str(pyotp.HOTP(secret, digits=digits, digest=digest).at(counter))
    mac = hmac.new(key, counter.to_bytes(8, "big"), digest).digest()
    offset = mac[-1] & 0x0F
    value = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def _small(fdp: atheris.FuzzedDataProvider, low: int, high: int) -> object:
    return fdp.ConsumeIntInRange(low, high) if fdp.ConsumeIntInRange(0, 7) else number(fdp)


def one_input(fdp: atheris.FuzzedDataProvider) -> None:
    key = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 300)) if fdp.ConsumeBool() else b"k" * 20
    digits = _small(fdp, 5, 11)
    algorithm = fdp.PickValueInList(["SHA1", "sha256", "SHA512", "MD5", "\u017fha1", None, 1])
    honest = fdp.ConsumeBool()
    if fdp.ConsumeBool():
        counter = _small(fdp, 0, 2**64)
        look_ahead = _small(fdp, 0, 201)
        code: object = text(fdp, 12)
        if honest and isinstance(counter, int) and isinstance(digits, int):
            code = _reference_code(key, counter, digits, str(algorithm)) or code
        try:
            matched = verify_hotp(
                key,
                code,
                counter,
                digits=digits,
                algorithm=algorithm,  # type: ignore[arg-type]
                look_ahead=look_ahead,
                allow_short_key=True,  # type: ignore[arg-type]
            )
        except MFAError:
            return
        first, window = counter, look_ahead
    else:
        at = number(fdp) if fdp.ConsumeIntInRange(0, 3) == 0 else fdp.ConsumeIntInRange(0, 2**40)
        period = _small(fdp, 1, 601)
        behind, window = _small(fdp, 0, 201), _small(fdp, 0, 201)
        code = text(fdp, 12)
        step = None
        if isinstance(at, int) and not isinstance(at, bool) and isinstance(period, int):
            step = at // period if period > 0 and at >= 0 else None
        if honest and step is not None and isinstance(digits, int):
            code = _reference_code(key, step, digits, str(algorithm)) or code
        try:
            matched = verify_totp(
                key,
                code,
                at,
                digits=digits,
                algorithm=algorithm,
                period=period,  # type: ignore[arg-type]
                look_behind=behind,
                look_ahead=window,
                allow_short_key=True,  # type: ignore[arg-type]
            )
        except MFAError:
            return
        if step is None:
            return  # a float time: checked below only through the match itself
        assert isinstance(behind, int)
        first = max(step - behind, 0)
        window = step + window - first  # type: ignore[operator]
        current = _reference_code(key, step, digits, str(algorithm))  # type: ignore[arg-type]
        if honest and matched is None and current is not None and code == current:
            raise AssertionError("pyotp's code for the current step was refused")
    if matched is None:
        return
    assert isinstance(first, int) and isinstance(window, int) and isinstance(digits, int)
    if not first <= matched <= first + window:
        raise AssertionError(f"matched step {matched} outside {first}..{first + window}")
    candidate = normalize_code(code, digits)
    expected = _reference_code(key, matched, digits, str(algorithm))
    if candidate is None or expected is None or candidate.decode("ascii") != expected:
        raise AssertionError("a match that pyotp does not compute")


if __name__ == "__main__":
    main(one_input)
