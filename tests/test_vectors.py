"""Every RFC 4226 Appendix D and RFC 6238 Appendix B vector, through the public API."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from vectors import rfc_vectors, vector_id

from mfa_core import b32decode_key, b32encode_key, hotp, totp, verify_hotp, verify_totp
from mfa_core.otp import Algorithm, HOTPState, time_step

HOTP_VECTORS = rfc_vectors("hotp")
TOTP_VECTORS = rfc_vectors("totp")


def _key(entry: dict[str, Any]) -> bytes:
    return bytes.fromhex(entry["secret_hex"])


def test_the_vector_file_has_every_rfc_vector() -> None:
    # RFC 4226 App. D: counters 0-9; RFC 6238 App. B: 6 times x 3 algorithms.
    assert [e["counter"] for e in HOTP_VECTORS] == list(range(10))
    assert len(TOTP_VECTORS) == 18
    assert {e["algorithm"] for e in TOTP_VECTORS} == {"SHA1", "SHA256", "SHA512"}
    assert max(e["time"] for e in TOTP_VECTORS) == 20_000_000_000  # past 2038


@pytest.mark.standard(
    "RFC4226-5.3", "every RFC 4226 Appendix D value, HMAC and truncation included"
)
@pytest.mark.parametrize("entry", HOTP_VECTORS, ids=vector_id)
def test_hotp_vectors(entry: dict[str, Any]) -> None:
    key = _key(entry)
    assert hotp(key, entry["counter"], digits=entry["digits"]) == entry["expected"]
    assert verify_hotp(key, entry["expected"], entry["counter"]) == entry["counter"]
    # The intermediate truncated value printed in the RFC.
    state = HOTPState(key, Algorithm.SHA1, entry["digits"])
    assert state.value(entry["counter"]) == entry["truncated_decimal"]


@pytest.mark.standard("RFC6238-4", "every RFC 6238 Appendix B vector, SHA-1, SHA-256 and SHA-512")
@pytest.mark.parametrize("entry", TOTP_VECTORS, ids=vector_id)
def test_totp_vectors(entry: dict[str, Any]) -> None:
    key = _key(entry)
    assert len(key) == entry["secret_length_bytes"]  # used as given: never padded or repeated
    kwargs: dict[str, Any] = {
        "digits": entry["digits"],
        "algorithm": entry["algorithm"],
        "period": entry["period"],
        "t0": entry["t0"],
    }
    assert time_step(entry["time"], period=entry["period"], t0=entry["t0"]) == entry["time_step"]
    assert totp(key, entry["time"], **kwargs) == entry["expected"]
    assert totp(key, float(entry["time"]), **kwargs) == entry["expected"]
    assert verify_totp(key, entry["expected"], entry["time"], **kwargs) == entry["time_step"]
    # The algorithm name in any case, and the enum member, give the same code.
    lower = {**kwargs, "algorithm": entry["algorithm"].lower()}
    assert totp(key, entry["time"], **lower) == entry["expected"]
    member = {**kwargs, "algorithm": Algorithm(entry["algorithm"])}
    assert totp(key, entry["time"], **member) == entry["expected"]


@pytest.mark.parametrize("entry", TOTP_VECTORS, ids=vector_id)
def test_totp_vectors_in_7_and_6_digits(entry: dict[str, Any]) -> None:
    # Fewer digits are the low-order digits of the same truncated value (RFC 4226 5.3).
    key = _key(entry)
    for digits in (7, 6):
        code = totp(key, entry["time"], digits=digits, algorithm=entry["algorithm"])
        assert code == entry["expected"][-digits:]
        assert verify_totp(key, code, entry["time"], digits=digits, algorithm=entry["algorithm"])


@pytest.mark.parametrize("entry", rfc_vectors(), ids=vector_id)
def test_vector_secrets_in_base32(entry: dict[str, Any]) -> None:
    key = _key(entry)
    assert key == entry["secret_ascii"].encode("ascii")
    assert b32decode_key(entry["secret_base32"]) == key
    assert b32decode_key(entry["secret_base32"].lower()) == key
    assert b32encode_key(key) == base64.b32encode(key).decode().rstrip("=")


def test_leading_zeros_are_kept() -> None:
    codes = [e["expected"] for e in rfc_vectors()]
    assert any(code.startswith("0") for code in codes)  # e.g. RFC 6238 "07081804"
    for entry in TOTP_VECTORS:
        code = totp(
            _key(entry), entry["time"], digits=entry["digits"], algorithm=entry["algorithm"]
        )
        assert len(code) == entry["digits"]
