"""Interoperability with pyotp and cryptography's ``twofactor`` module.

For hundreds of random keys, algorithms, digit counts, periods and times, our codes equal
theirs; URIs they write parse here, and URIs written here parse in pyotp with the same
meaning.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import pyotp
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.twofactor.hotp import HOTP as CryptoHOTP
from cryptography.hazmat.primitives.twofactor.totp import TOTP as CryptoTOTP
from hypothesis import given, settings
from hypothesis import strategies as st

from mfa_core import b32encode_key, build_uri, hotp, parse_uri, totp, verify_totp
from mfa_core.models import CredentialKind
from mfa_core.otp import MAX_PERIOD, Algorithm

CRYPTO_HASH: dict[str, Any] = {
    "SHA1": hashes.SHA1,
    "SHA256": hashes.SHA256,
    "SHA512": hashes.SHA512,
}
PYOTP_DIGEST = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}

keys = st.binary(min_size=16, max_size=128)
algorithms = st.sampled_from(["SHA1", "SHA256", "SHA512"])
periods = st.integers(min_value=1, max_value=MAX_PERIOD)
pyotp_periods = st.integers(min_value=1, max_value=120)  # pyotp refuses longer intervals
times = st.integers(min_value=0, max_value=2**33)  # to the year 2242

# Account and issuer names as people write them, colons excepted (the format forbids them).
names = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters=":"),
    min_size=1,
    max_size=30,
).filter(lambda s: s == s.strip())


def _pyotp_at(otp: pyotp.TOTP, at: int) -> str:
    # An aware datetime: pyotp reads naive ones as local time.
    return str(otp.at(dt.datetime.fromtimestamp(at, tz=dt.UTC)))


@settings(max_examples=300, deadline=None)
@given(keys, algorithms, st.integers(6, 8), periods, times)
def test_totp_equals_pyotp_and_cryptography(
    key: bytes, algorithm: str, digits: int, period: int, at: int
) -> None:
    ours = totp(key, at, digits=digits, algorithm=algorithm, period=period)
    if period <= 120:
        theirs = pyotp.TOTP(
            b32encode_key(key), digits=digits, digest=PYOTP_DIGEST[algorithm], interval=period
        )
        assert ours == _pyotp_at(theirs, at)
    crypto = CryptoTOTP(key, digits, CRYPTO_HASH[algorithm](), period)
    assert ours.encode() == crypto.generate(at)
    assert verify_totp(key, ours, at, digits=digits, algorithm=algorithm, period=period) == (
        at // period
    )


@settings(max_examples=200, deadline=None)
@given(keys, algorithms, st.integers(6, 10), st.integers(0, 2**64 - 1))
def test_hotp_equals_pyotp_and_cryptography(
    key: bytes, algorithm: str, digits: int, counter: int
) -> None:
    ours = hotp(key, counter, digits=digits, algorithm=algorithm)
    theirs = pyotp.HOTP(b32encode_key(key), digits=digits, digest=PYOTP_DIGEST[algorithm])
    assert ours == theirs.at(counter)
    if digits <= 8:  # cryptography supports 6..8 digits
        crypto = CryptoHOTP(key, digits, CRYPTO_HASH[algorithm]())
        assert ours.encode() == crypto.generate(counter)


@settings(max_examples=150, deadline=None)
@given(
    key=keys,
    algorithm=algorithms,
    digits=st.integers(6, 8),
    period=pyotp_periods,
    account=names,
    issuer=st.none() | names,
)
def test_pyotp_uris_parse(
    *, key: bytes, algorithm: str, digits: int, period: int, account: str, issuer: str | None
) -> None:
    uri = pyotp.TOTP(
        b32encode_key(key), digits=digits, digest=PYOTP_DIGEST[algorithm], interval=period
    ).provisioning_uri(name=account, issuer_name=issuer)
    parsed = parse_uri(uri)
    assert parsed.key == key
    assert (parsed.account, parsed.issuer) == (account, issuer)
    assert (parsed.algorithm, parsed.digits, parsed.period) == (
        Algorithm(algorithm),
        digits,
        period,
    )


@settings(max_examples=100, deadline=None)
@given(keys, names, st.none() | names, st.integers(0, 2**63))
def test_pyotp_hotp_uris_parse(key: bytes, account: str, issuer: str | None, counter: int) -> None:
    uri = pyotp.HOTP(b32encode_key(key)).provisioning_uri(
        name=account, issuer_name=issuer, initial_count=counter
    )
    parsed = parse_uri(uri)
    assert parsed.kind is CredentialKind.HOTP
    assert (parsed.key, parsed.account, parsed.issuer, parsed.counter) == (
        key,
        account,
        issuer,
        counter,
    )


@settings(max_examples=150, deadline=None)
@given(
    key=keys,
    algorithm=algorithms,
    digits=st.integers(6, 8),
    period=periods,
    account=names,
    issuer=st.none() | names,
)
def test_cryptography_uris_parse(
    *, key: bytes, algorithm: str, digits: int, period: int, account: str, issuer: str | None
) -> None:
    # cryptography pads the secret with "=" and writes spaces in the query as "+".
    uri = CryptoTOTP(key, digits, CRYPTO_HASH[algorithm](), period).get_provisioning_uri(
        account, issuer
    )
    parsed = parse_uri(uri)
    assert parsed.key == key
    assert (parsed.account, parsed.issuer) == (account, issuer)
    assert (parsed.algorithm, parsed.digits, parsed.period) == (
        Algorithm(algorithm),
        digits,
        period,
    )
    hotp_uri = CryptoHOTP(key, digits, CRYPTO_HASH[algorithm]()).get_provisioning_uri(
        account, 7, issuer
    )
    assert parse_uri(hotp_uri).counter == 7


def test_cryptography_uri_with_spaces_uses_plus() -> None:
    key = bytes(range(16))
    uri = CryptoTOTP(key, 6, hashes.SHA1(), 30).get_provisioning_uri("a b", "Big Corp")  # noqa: S303
    assert "issuer=Big+Corp" in uri and "%3D" in uri  # the forms the parser must accept
    parsed = parse_uri(uri)
    assert (parsed.issuer, parsed.account, parsed.key) == ("Big Corp", "a b", key)


@settings(max_examples=150, deadline=None)
@given(
    key=keys,
    algorithm=algorithms,
    digits=st.integers(6, 8),
    period=pyotp_periods,
    account=names,
    issuer=st.none() | names,
    at=times,
)
def test_our_uris_parse_in_pyotp(
    *,
    key: bytes,
    algorithm: str,
    digits: int,
    period: int,
    account: str,
    issuer: str | None,
    at: int,
) -> None:
    uri = build_uri(
        key, account=account, issuer=issuer, digits=digits, algorithm=algorithm, period=period
    )
    otp = pyotp.parse_uri(uri)
    assert isinstance(otp, pyotp.TOTP)
    assert (otp.name, otp.issuer) == (account, issuer)
    assert (otp.digits, otp.interval) == (digits, period)
    assert otp.byte_secret() == key
    assert _pyotp_at(otp, at) == totp(key, at, digits=digits, algorithm=algorithm, period=period)


@settings(max_examples=50, deadline=None)
@given(keys, names, st.integers(0, 2**63))
def test_our_hotp_uris_parse_in_pyotp(key: bytes, account: str, counter: int) -> None:
    uri = build_uri(key, account=account, issuer="Issuer", kind="hotp", counter=counter)
    otp = pyotp.parse_uri(uri)
    assert isinstance(otp, pyotp.HOTP)
    assert otp.initial_count == counter
    assert otp.at(0) == hotp(key, counter)
