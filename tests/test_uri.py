"""``otpauth://`` provisioning URIs: canonical building, tolerant-but-strict parsing."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mfa_core import OTPAuthURI, build_uri, parse_uri
from mfa_core.errors import ErrorCode, InvalidURI
from mfa_core.keys import b32encode_key
from mfa_core.models import CredentialKind
from mfa_core.otp import MAX_COUNTER, MAX_KEY_BYTES, MAX_PERIOD, MIN_KEY_BYTES, Algorithm
from mfa_core.uri import MAX_LABEL_LENGTH, MAX_URI_LENGTH

KEY = b"12345678901234567890"
B32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
KEY16 = bytes(range(16))
B32_16 = b32encode_key(KEY16)  # 26 characters: needs "======" when padded


def _uri(label: str = "Example:alice", query: str = f"secret={B32}&issuer=Example") -> str:
    return f"otpauth://totp/{label}?{query}"


# --- building -----------------------------------------------------------------------------


def test_build_canonical_totp() -> None:
    assert build_uri(KEY, account="alice@example.com", issuer="Example") == (
        f"otpauth://totp/Example:alice@example.com?secret={B32}&issuer=Example"
        "&algorithm=SHA1&digits=6&period=30"
    )


def test_build_without_issuer_and_with_every_parameter() -> None:
    assert build_uri(KEY, account="bob", digits=8, algorithm="sha512", period=60) == (
        f"otpauth://totp/bob?secret={B32}&algorithm=SHA512&digits=8&period=60"
    )


def test_build_hotp() -> None:
    uri = build_uri(KEY, account="bob", issuer="X", kind="hotp", counter=MAX_COUNTER)
    assert uri == (
        f"otpauth://hotp/X:bob?secret={B32}&issuer=X&algorithm=SHA1&digits=6&counter={MAX_COUNTER}"
    )
    assert build_uri(KEY, account="b", kind=CredentialKind.HOTP, counter=0).endswith("counter=0")


def test_build_encodes_spaces_as_percent_20_never_plus() -> None:
    uri = build_uri(KEY, account="Alice Smith+1", issuer="ACME Co & Sons")
    assert "+" not in uri.replace("%2B", "")
    assert uri.startswith("otpauth://totp/ACME%20Co%20%26%20Sons:Alice%20Smith%2B1?")
    assert "&issuer=ACME%20Co%20%26%20Sons&" in uri


def test_build_encodes_unicode_and_reserved_characters() -> None:
    uri = build_uri(KEY, account="jürgen/ö?#%", issuer="Bäck")
    assert uri.isascii()
    assert uri.startswith("otpauth://totp/B%C3%A4ck:j%C3%BCrgen%2F%C3%B6%3F%23%25?")
    parsed = parse_uri(uri)
    assert (parsed.account, parsed.issuer) == ("jürgen/ö?#%", "Bäck")


def test_build_short_key_only_with_opt_in() -> None:
    with pytest.raises(InvalidURI) as info:
        build_uri(KEY[:10], account="a")
    assert info.value.code is ErrorCode.KEY_TOO_SHORT
    assert "secret=GEZDGNBVGY3TQOJQ&" in build_uri(KEY[:10], account="a", allow_short_key=True)


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"account": "a:b"}, ErrorCode.URI_INVALID_LABEL),
        ({"account": "a", "issuer": "I:J"}, ErrorCode.URI_INVALID_LABEL),
        ({"account": ""}, ErrorCode.URI_INVALID_LABEL),
        ({"account": "a", "issuer": ""}, ErrorCode.URI_INVALID_LABEL),
        ({"account": " alice"}, ErrorCode.URI_INVALID_LABEL),
        ({"account": "alice\t"}, ErrorCode.URI_INVALID_LABEL),
        ({"account": "a\nb"}, ErrorCode.URI_INVALID_LABEL),
        ({"account": "a\x00b"}, ErrorCode.URI_INVALID_LABEL),
        ({"account": "a\ud800b"}, ErrorCode.URI_INVALID_LABEL),
        ({"account": 5}, ErrorCode.URI_INVALID_LABEL),
        ({"account": b"alice"}, ErrorCode.URI_INVALID_LABEL),
        ({"account": "x" * (MAX_LABEL_LENGTH + 1)}, ErrorCode.URI_TOO_LONG),
        ({"account": "語" * 200, "issuer": "語" * 200}, ErrorCode.URI_TOO_LONG),
        ({"account": "a", "kind": "motp"}, ErrorCode.URI_BAD_TYPE),
        ({"account": "a", "kind": None}, ErrorCode.URI_BAD_TYPE),
        ({"account": "a", "kind": "hotp"}, ErrorCode.URI_MISSING_COUNTER),
        ({"account": "a", "counter": 3}, ErrorCode.INVALID_COUNTER),
        ({"account": "a", "kind": "hotp", "counter": -1}, ErrorCode.INVALID_COUNTER),
        ({"account": "a", "kind": "hotp", "counter": 2**64}, ErrorCode.INVALID_COUNTER),
        ({"account": "a", "kind": "hotp", "counter": True}, ErrorCode.INVALID_COUNTER),
        ({"account": "a", "kind": "hotp", "counter": 1, "period": 60}, ErrorCode.INVALID_PERIOD),
        ({"account": "a", "digits": 5}, ErrorCode.INVALID_DIGITS),
        ({"account": "a", "digits": 9}, ErrorCode.INVALID_DIGITS),
        ({"account": "a", "digits": 10}, ErrorCode.INVALID_DIGITS),
        ({"account": "a", "digits": True}, ErrorCode.INVALID_DIGITS),
        ({"account": "a", "digits": 6.0}, ErrorCode.INVALID_DIGITS),
        ({"account": "a", "algorithm": "MD5"}, ErrorCode.UNSUPPORTED_ALGORITHM),
        ({"account": "a", "algorithm": "SHA3-256"}, ErrorCode.UNSUPPORTED_ALGORITHM),
        ({"account": "a", "period": 0}, ErrorCode.INVALID_PERIOD),
        ({"account": "a", "period": MAX_PERIOD + 1}, ErrorCode.INVALID_PERIOD),
        ({"account": "a", "period": 30.0}, ErrorCode.INVALID_PERIOD),
    ],
)
def test_build_refuses(kwargs: dict[str, object], code: ErrorCode) -> None:
    with pytest.raises(InvalidURI) as info:
        build_uri(KEY, **kwargs)  # type: ignore[arg-type]
    assert info.value.code is code


@pytest.mark.parametrize(
    ("key", "code"),
    [
        (KEY[:15], ErrorCode.KEY_TOO_SHORT),
        (b"", ErrorCode.KEY_TOO_SHORT),
        (b"x" * (MAX_KEY_BYTES + 1), ErrorCode.INVALID_KEY),
        (B32, ErrorCode.INVALID_KEY),
        (None, ErrorCode.INVALID_KEY),
    ],
)
def test_build_refuses_bad_keys(key: object, code: ErrorCode) -> None:
    with pytest.raises(InvalidURI) as info:
        build_uri(key, account="a")  # type: ignore[arg-type]
    assert info.value.code is code


# --- parsing ------------------------------------------------------------------------------


def test_parse_canonical() -> None:
    parsed = parse_uri(build_uri(KEY, account="alice@example.com", issuer="Example"))
    assert parsed == OTPAuthURI(
        kind=CredentialKind.TOTP,
        key=KEY,
        account="alice@example.com",
        issuer="Example",
        digits=6,
        algorithm=Algorithm.SHA1,
        period=30,
        counter=None,
    )
    assert parsed.key == KEY
    assert parsed.kind == "totp"  # a StrEnum: compares equal to the plain string


def test_parse_defaults_when_parameters_are_absent() -> None:
    parsed = parse_uri(f"otpauth://totp/alice?secret={B32}")
    assert (parsed.issuer, parsed.digits, parsed.algorithm, parsed.period) == (
        None,
        6,
        Algorithm.SHA1,
        30,
    )


@pytest.mark.parametrize(
    ("uri", "issuer", "account"),
    [
        (_uri("Example%3Aalice"), "Example", "alice"),
        (_uri("Example%3aalice"), "Example", "alice"),
        (_uri("Example:%20%20alice"), "Example", "alice"),
        (_uri("Example: alice"), "Example", "alice"),
        (_uri("Example:alice", f"secret={B32}"), "Example", "alice"),  # label only
        (_uri("alice", f"secret={B32}&issuer=Example"), "Example", "alice"),  # param only
        (_uri("ACME%20Co:alice", f"secret={B32}&issuer=ACME+Co"), "ACME Co", "alice"),
        (_uri("ACME%20Co:a+b", f"secret={B32}&issuer=ACME%20Co"), "ACME Co", "a+b"),
        (_uri("Example:alice", f"secret={B32}&issuer="), "Example", "alice"),
        (_uri("Example:dir/alice"), "Example", "dir/alice"),  # pyotp leaves "/" as is
        (_uri("Example:alice") + "#fragment", "Example", "alice"),
        ("  " + _uri() + "\n", "Example", "alice"),
        (_uri().replace("otpauth://totp", "OTPAuth://TOTP"), "Example", "alice"),
        (_uri("Example:alice", f"SECRET={B32}&Issuer=Example"), "Example", "alice"),
        (_uri("Example:alice", f"secret={B32.lower()}&issuer=Example"), "Example", "alice"),
        (
            _uri(
                "Example:alice",
                f"secret={B32}&issuer=Example&image=https%3A%2F%2Fx%2Fy.png"
                "&color=red&encoder=base32",
            ),
            "Example",
            "alice",
        ),
        (_uri("Example:alice", f"&&secret={B32}&&issuer=Example&"), "Example", "alice"),
    ],
)
def test_parse_accepts_real_world_variants(uri: str, issuer: str, account: str) -> None:
    parsed = parse_uri(uri)
    assert parsed.key == KEY
    assert (parsed.issuer, parsed.account) == (issuer, account)


@pytest.mark.parametrize("secret", [B32_16, B32_16 + "======", B32_16 + "%3D%3D%3D%3D%3D%3D"])
def test_parse_padded_and_unpadded_secrets(secret: str) -> None:
    assert parse_uri(f"otpauth://totp/a?secret={secret}").key == KEY16


def test_parse_parameters() -> None:
    parsed = parse_uri(_uri("a", f"secret={B32}&algorithm=sha256&digits=8&period=60"))
    assert (parsed.algorithm, parsed.digits, parsed.period) == (Algorithm.SHA256, 8, 60)
    hotp = parse_uri(f"otpauth://hotp/a?secret={B32}&counter={MAX_COUNTER}&period=7")
    assert hotp.kind is CredentialKind.HOTP
    assert (hotp.counter, hotp.period) == (MAX_COUNTER, 30)  # period means nothing for hotp
    totp = parse_uri(f"otpauth://totp/a?secret={B32}&counter=5")
    assert totp.counter is None


def test_parse_short_key_only_with_opt_in() -> None:
    uri = "otpauth://totp/a?secret=JBSWY3DPEHPK3PXP"  # 80 bits, as many older sites use
    with pytest.raises(InvalidURI) as info:
        parse_uri(uri)
    assert info.value.code is ErrorCode.KEY_TOO_SHORT
    assert parse_uri(uri, allow_short_key=True).key == b"Hello!\xde\xad\xbe\xef"
    with pytest.raises(InvalidURI) as info:
        parse_uri("otpauth://totp/a?secret=JBSWY3DPEHPK3PI", allow_short_key=True)  # 72 bits
    assert info.value.code is ErrorCode.KEY_TOO_SHORT


def test_issuer_mismatch_is_refused_unless_lenient() -> None:
    uri = _uri("Bank:alice", f"secret={B32}&issuer=Evil")
    with pytest.raises(InvalidURI) as info:
        parse_uri(uri)
    assert info.value.code is ErrorCode.URI_ISSUER_MISMATCH
    lenient = parse_uri(uri, allow_issuer_mismatch=True)
    assert (lenient.issuer, lenient.account) == ("Evil", "alice")
    # Case matters: "bank" and "Bank" are different names to a person reading the app.
    with pytest.raises(InvalidURI):
        parse_uri(_uri("bank:alice", f"secret={B32}&issuer=Bank"))


PARSE_REJECTS = [
    (None, ErrorCode.INVALID_URI),
    (b"otpauth://totp/a?secret=" + B32.encode(), ErrorCode.INVALID_URI),
    (12345, ErrorCode.INVALID_URI),
    ("", ErrorCode.URI_BAD_SCHEME),
    ("http://totp/a?secret=" + B32, ErrorCode.URI_BAD_SCHEME),
    ("otpauth:/totp/a?secret=" + B32, ErrorCode.URI_BAD_SCHEME),
    ("otpauth-migration://offline?data=abc", ErrorCode.URI_BAD_SCHEME),
    (" otpauth ://totp/a?secret=" + B32, ErrorCode.URI_BAD_SCHEME),
    ("otpauth://motp/a?secret=" + B32, ErrorCode.URI_BAD_TYPE),
    ("otpauth://?secret=" + B32, ErrorCode.URI_BAD_TYPE),
    ("otpauth://totpx/a?secret=" + B32, ErrorCode.URI_BAD_TYPE),
    ("otpauth://totp?secret=" + B32, ErrorCode.URI_INVALID_LABEL),
    ("otpauth://totp/?secret=" + B32, ErrorCode.URI_INVALID_LABEL),
    (_uri("a:b:c"), ErrorCode.URI_INVALID_LABEL),
    (_uri("a%3Ab%3Ac"), ErrorCode.URI_INVALID_LABEL),
    (_uri("Example:"), ErrorCode.URI_INVALID_LABEL),
    (_uri("Example:%20%20"), ErrorCode.URI_INVALID_LABEL),
    (_uri(":alice"), ErrorCode.URI_INVALID_LABEL),
    (_uri("Example:al%ZZice"), ErrorCode.URI_INVALID_LABEL),
    (_uri("Example:al%4"), ErrorCode.URI_INVALID_LABEL),
    (_uri("Example:al%FFice"), ErrorCode.URI_INVALID_LABEL),
    (_uri("Example:al%0Aice"), ErrorCode.URI_INVALID_LABEL),
    (_uri("Example:al%00ice"), ErrorCode.URI_INVALID_LABEL),
    (_uri("Example:" + "x" * (MAX_LABEL_LENGTH + 1)), ErrorCode.URI_TOO_LONG),
    (_uri("alice", f"secret={B32}&issuer=a%3Ab"), ErrorCode.URI_INVALID_LABEL),
    (_uri("alice", f"secret={B32}&issuer=%FF"), ErrorCode.URI_INVALID_LABEL),
    (_uri("alice", f"secret={B32}&issuer=a%0Db"), ErrorCode.URI_INVALID_LABEL),
    (_uri("Example:alice", "issuer=Example"), ErrorCode.URI_MISSING_SECRET),
    (_uri("Example:alice", "secret=&issuer=Example"), ErrorCode.URI_MISSING_SECRET),
    (_uri("Example:alice", "secret=%20%20&issuer=Example"), ErrorCode.URI_MISSING_SECRET),
    (_uri("Example:alice", "secret"), ErrorCode.URI_MISSING_SECRET),
    (f"otpauth://totp/Example:alice#?secret={B32}", ErrorCode.URI_MISSING_SECRET),
    (_uri("a", "secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ1"), ErrorCode.INVALID_BASE32),
    (_uri("a", "secret=GEZDGNBVGY3TQOJQ!EZDGNBVGY3TQOJQ"), ErrorCode.INVALID_BASE32),
    (_uri("a", "secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ="), ErrorCode.INVALID_BASE32),
    (_uri("a", "secret=%FF%FE"), ErrorCode.INVALID_URI),
    (_uri("a", "secret=JBSWY3DPEHPK3PXP"), ErrorCode.KEY_TOO_SHORT),
    (_uri("a", "secret=" + "A" * 420), ErrorCode.INVALID_KEY),
    (_uri("a", f"secret={B32}&secret={B32}"), ErrorCode.INVALID_URI),
    (_uri("a", f"secret={B32}&SECRET={B32}"), ErrorCode.INVALID_URI),
    (_uri("a", f"secret={B32}&digits=6&digits=8"), ErrorCode.INVALID_URI),
    (_uri("a", f"secret={B32}&issuer=A&issuer=B"), ErrorCode.INVALID_URI),
    (f"otpauth://hotp/a?secret={B32}", ErrorCode.URI_MISSING_COUNTER),
    (f"otpauth://hotp/a?secret={B32}&counter=", ErrorCode.URI_MISSING_COUNTER),
    (f"otpauth://hotp/a?secret={B32}&counter=-1", ErrorCode.INVALID_COUNTER),
    (f"otpauth://hotp/a?secret={B32}&counter=%2B1", ErrorCode.INVALID_COUNTER),
    (f"otpauth://hotp/a?secret={B32}&counter=1_0", ErrorCode.INVALID_COUNTER),
    (f"otpauth://hotp/a?secret={B32}&counter=%D9%A1", ErrorCode.INVALID_COUNTER),  # Arabic 1
    (f"otpauth://hotp/a?secret={B32}&counter=1.0", ErrorCode.INVALID_COUNTER),
    (f"otpauth://hotp/a?secret={B32}&counter={2**64}", ErrorCode.INVALID_COUNTER),
    (f"otpauth://hotp/a?secret={B32}&counter=" + "9" * 30, ErrorCode.INVALID_COUNTER),
    (_uri("a", f"secret={B32}&digits=5"), ErrorCode.INVALID_DIGITS),
    (_uri("a", f"secret={B32}&digits=9"), ErrorCode.INVALID_DIGITS),
    (_uri("a", f"secret={B32}&digits=10"), ErrorCode.INVALID_DIGITS),
    (_uri("a", f"secret={B32}&digits="), ErrorCode.INVALID_DIGITS),
    (_uri("a", f"secret={B32}&digits=6.0"), ErrorCode.INVALID_DIGITS),
    (_uri("a", f"secret={B32}&digits=%EF%BC%96"), ErrorCode.INVALID_DIGITS),  # full-width 6
    (_uri("a", f"secret={B32}&digits=+6"), ErrorCode.INVALID_DIGITS),  # "+" is a space here
    (_uri("a", f"secret={B32}&period=0"), ErrorCode.INVALID_PERIOD),
    (_uri("a", f"secret={B32}&period=-30"), ErrorCode.INVALID_PERIOD),
    (_uri("a", f"secret={B32}&period=601"), ErrorCode.INVALID_PERIOD),
    (_uri("a", f"secret={B32}&period=30s"), ErrorCode.INVALID_PERIOD),
    (_uri("a", f"secret={B32}&algorithm=MD5"), ErrorCode.UNSUPPORTED_ALGORITHM),
    (_uri("a", f"secret={B32}&algorithm=SHA3-256"), ErrorCode.UNSUPPORTED_ALGORITHM),
    (_uri("a", f"secret={B32}&algorithm=SHA224"), ErrorCode.UNSUPPORTED_ALGORITHM),
    (_uri("a", f"secret={B32}&algorithm="), ErrorCode.UNSUPPORTED_ALGORITHM),
    (_uri("a", f"secret={B32}&image=" + "x" * MAX_URI_LENGTH), ErrorCode.URI_TOO_LONG),
    ("otpauth://totp/" + "a" * 10**6, ErrorCode.URI_TOO_LONG),
]


@pytest.mark.parametrize(("uri", "code"), PARSE_REJECTS)
def test_parse_refuses(uri: object, code: ErrorCode) -> None:
    with pytest.raises(InvalidURI) as info:
        parse_uri(uri)  # type: ignore[arg-type]
    assert info.value.code is code


def test_parse_limit_is_inclusive() -> None:
    base = _uri("a", f"secret={B32}&image=")
    at_limit = base + "x" * (MAX_URI_LENGTH - len(base))
    assert len(at_limit) == MAX_URI_LENGTH
    assert parse_uri(at_limit).key == KEY
    with pytest.raises(InvalidURI):
        parse_uri(at_limit + "x")


# --- the value class ----------------------------------------------------------------------


def test_key_is_hidden_from_repr_and_equality() -> None:
    parsed = parse_uri(build_uri(KEY, account="alice", issuer="Ex"))
    text = repr(parsed) + str(parsed)
    assert B32 not in text and repr(KEY) not in text and "key=" not in text
    other = parse_uri(build_uri(bytes(20), account="alice", issuer="Ex"))
    assert parsed == other  # documented: == ignores the key (attrs' == is not constant-time)
    assert hash(parsed) == hash(other)


def test_value_class_is_frozen() -> None:
    parsed = parse_uri(build_uri(KEY, account="alice"))
    with pytest.raises(AttributeError):
        parsed.account = "mallory"  # type: ignore[misc]


def test_to_uri_is_canonical() -> None:
    foreign = _uri("ACME%3A%20alice", f"issuer=ACME&secret={B32.lower()}&image=x")
    parsed = parse_uri(foreign)
    assert parsed.to_uri() == build_uri(KEY, account="alice", issuer="ACME")
    hotp = parse_uri(f"otpauth://hotp/a?secret={B32}&counter=9")
    assert parse_uri(hotp.to_uri()).counter == 9


# --- properties ---------------------------------------------------------------------------

label_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters=":"),
    min_size=1,
    max_size=40,
).filter(lambda s: s == s.strip())


@settings(max_examples=200)
@given(
    key=st.binary(min_size=MIN_KEY_BYTES, max_size=64),
    account=label_text,
    issuer=st.none() | label_text,
    digits=st.integers(6, 8),
    algorithm=st.sampled_from(list(Algorithm)),
    period=st.integers(1, MAX_PERIOD),
    counter=st.none() | st.integers(0, MAX_COUNTER),
)
def test_build_parse_round_trip(
    *,
    key: bytes,
    account: str,
    issuer: str | None,
    digits: int,
    algorithm: Algorithm,
    period: int,
    counter: int | None,
) -> None:
    kind = CredentialKind.TOTP if counter is None else CredentialKind.HOTP
    if kind is CredentialKind.HOTP:
        period = 30
    uri = build_uri(
        key,
        account=account,
        issuer=issuer,
        kind=kind,
        digits=digits,
        algorithm=algorithm,
        period=period,
        counter=counter,
    )
    assert uri.isascii() and "+" not in uri and " " not in uri
    assert len(uri) <= MAX_URI_LENGTH
    parsed = parse_uri(uri)
    assert parsed == OTPAuthURI(
        kind=kind,
        key=key,
        account=account,
        issuer=issuer,
        digits=digits,
        algorithm=algorithm,
        period=period,
        counter=counter,
    )
    assert parsed.key == key
    assert parsed.to_uri() == uri


@given(st.text(max_size=200))
def test_parse_never_raises_anything_but_invalid_uri(text: str) -> None:
    for candidate in (text, "otpauth://totp/" + text, f"otpauth://totp/a?secret={B32}&" + text):
        with contextlib.suppress(InvalidURI):
            parse_uri(candidate)
