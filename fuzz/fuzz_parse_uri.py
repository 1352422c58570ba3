"""Fuzz :func:`mfa_core.uri.parse_uri`, strict and lenient (``allow_issuer_mismatch``,
``allow_short_key``).

Inputs are either raw text or URIs assembled from fuzzed parts (type, label, parameter
names and values, with Unicode look-alikes mixed in). Oracle: only ``MFAError``; an
accepted URI has an ASCII ``otpauth://`` scheme, its ``secret=`` decodes to the same key
with ``base64.b32decode`` on the ASCII-uppercased value, its algorithm is an ASCII
spelling of SHA1/SHA256/SHA512, its digits are 6..8 ASCII digits, a strict parse has no
issuer mismatch, an ``encoder`` is absent or ``base32``, and the result survives
``to_uri`` / ``parse_uri`` again unchanged when it can be rebuilt.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

import atheris

with atheris.instrument_imports():
    from mfa_core.errors import MFAError
    from mfa_core.uri import parse_uri

from _harness import main, text
from fuzz_b32decode_key import reference as b32_reference

_NAMES = ["secret", "issuer", "algorithm", "digits", "period", "counter", "encoder", "image"]
_SECRETS = ["GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "JBSWY3DPEHPK3PXP", "gezdgnbvgy3tqojq"]
_LOOK_ALIKES = ["\u017f", "\u0131", "\ufb06", "\u00a0", "\u3000", "\u212a", "\u0130", "%C5%BF"]
_ALGORITHMS = ["SHA1", "sha256", "Sha512", "MD5", "\u017fha1", "SHA1\u00a0", ""]
_UINT = re.compile(r"[0-9]{1,20}", re.ASCII)


def _mutate(fdp: atheris.FuzzedDataProvider, value: str) -> str:
    if not value or not fdp.ConsumeBool():
        return value
    where = fdp.ConsumeIntInRange(0, len(value))
    return value[:where] + fdp.PickValueInList(_LOOK_ALIKES) + value[where:]


def assemble(fdp: atheris.FuzzedDataProvider) -> str:
    if fdp.ConsumeIntInRange(0, 4) == 0:
        return text(fdp, 300)
    kind = fdp.PickValueInList(["totp", "hotp", "TOTP", "hotp\u0131", text(fdp, 6)])
    label = fdp.PickValueInList(["Example:alice", "alice", "A%3A%20b", text(fdp, 40)])
    params = []
    for _ in range(fdp.ConsumeIntInRange(0, 7)):
        name = fdp.PickValueInList([*_NAMES, text(fdp, 8)])
        if name == "secret":
            value = _mutate(fdp, fdp.PickValueInList([*_SECRETS, text(fdp, 40)]))
        elif name == "algorithm":
            value = _mutate(fdp, fdp.PickValueInList(_ALGORITHMS))
        elif name == "encoder":
            value = fdp.PickValueInList(["steam", "base32", "", text(fdp, 8)])
        elif name in ("digits", "period", "counter"):
            value = fdp.PickValueInList(["6", "8", "30", "0", "10" * 15, text(fdp, 6)])
        else:
            value = text(fdp, 30)
        params.append(f"{_mutate(fdp, name)}={value}")
    scheme = fdp.PickValueInList(["otpauth://", "OTPAUTH://", "\u2003otpauth://", "otpauth:/"])
    return f"{scheme}{kind}/{label}?{'&'.join(params)}"


def _params(uri: str) -> dict[str, list[str]]:
    """The query of ``uri`` split independently (names lower-cased when ASCII)."""
    query = uri.strip(" \t\n\r\x0b\x0c").partition("#")[0].partition("?")[2]
    found: dict[str, list[str]] = {}
    for part in query.split("&"):
        if part:
            name, _, value = part.partition("=")
            name = unquote_plus(name)
            if name.isascii():
                found.setdefault(name.lower(), []).append(unquote_plus(value))
    return found


def check_accepted(uri: str, parsed: object, strict: bool) -> None:
    from mfa_core.uri import OTPAuthURI

    assert isinstance(parsed, OTPAuthURI)
    if not uri.lstrip(" \t\n\r\x0b\x0c")[:10].lower() == "otpauth://":
        raise AssertionError(f"accepted a URI without an ASCII otpauth:// scheme: {uri!r}")
    params = _params(uri)
    secrets = params.get("secret", [])
    if len(secrets) != 1 or b32_reference(secrets[0]) != parsed.key:
        raise AssertionError(f"accepted a secret the reference refuses: {uri!r}")
    for algorithm in params.get("algorithm", []):
        if not algorithm.isascii() or algorithm.upper() not in ("SHA1", "SHA256", "SHA512"):
            raise AssertionError(f"accepted algorithm {algorithm!r}")
    for digits in params.get("digits", []):
        if _UINT.fullmatch(digits) is None or not 6 <= int(digits) <= 8:
            raise AssertionError(f"accepted digits {digits!r}")
    for encoder in params.get("encoder", []):
        if encoder and encoder.lower() != "base32":
            raise AssertionError(f"accepted encoder {encoder!r}")
    issuers = [value for value in params.get("issuer", []) if value]
    if strict and issuers and parsed.issuer != issuers[0]:
        raise AssertionError(f"strict parse kept a mismatched issuer: {uri!r}")
    try:
        rebuilt = parsed.to_uri(allow_short_key=True)
    except MFAError:
        return  # e.g. an account with trailing spaces: parsed leniently, never built
    again = parse_uri(rebuilt, allow_short_key=True)
    if again != parsed or again.key != parsed.key:
        raise AssertionError(f"round trip changed {uri!r}")


def one_input(fdp: atheris.FuzzedDataProvider) -> None:
    mismatch, short = fdp.ConsumeBool(), fdp.ConsumeBool()
    uri = assemble(fdp)
    try:
        parsed = parse_uri(uri, allow_issuer_mismatch=mismatch, allow_short_key=short)
    except MFAError:
        return
    check_accepted(uri, parsed, strict=not mismatch)


if __name__ == "__main__":
    main(one_input)
