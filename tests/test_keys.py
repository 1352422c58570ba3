"""Key generation and the base32 text form."""

from __future__ import annotations

import string

import pytest

from mfa_core import AESGCMSealer, b32decode_key, b32encode_key, generate_key
from mfa_core.errors import ErrorCode, InvalidBase32, InvalidKey
from mfa_core.keys import DEFAULT_KEY_BYTES


def test_generate_key_sizes() -> None:
    assert len(generate_key()) == DEFAULT_KEY_BYTES == 20
    assert len(generate_key(16)) == 16
    assert len(generate_key(64)) == 64
    assert len(generate_key(256)) == 256


def test_generate_key_is_random() -> None:
    keys = {generate_key() for _ in range(50)}
    assert len(keys) == 50
    # A CSPRNG key of 20 bytes is practically never all one byte value.
    assert all(len(set(key)) > 1 for key in keys)


@pytest.mark.parametrize(
    ("nbytes", "code"),
    [
        (15, ErrorCode.KEY_TOO_SHORT),
        (10, ErrorCode.KEY_TOO_SHORT),
        (0, ErrorCode.KEY_TOO_SHORT),
        (-1, ErrorCode.KEY_TOO_SHORT),
        (257, ErrorCode.INVALID_KEY),
        (True, ErrorCode.INVALID_KEY),
        (20.0, ErrorCode.INVALID_KEY),
        ("20", ErrorCode.INVALID_KEY),
    ],
)
def test_generate_key_refuses(nbytes: object, code: ErrorCode) -> None:
    with pytest.raises(InvalidKey) as info:
        generate_key(nbytes)  # type: ignore[arg-type]
    assert info.value.code is code


def test_b32encode_is_upper_case_without_padding() -> None:
    assert b32encode_key(b"12345678901234567890") == "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
    assert b32encode_key(b"\x00" * 16) == "A" * 26
    assert b32encode_key(bytearray(b"\xff" * 16)) == "77777777777777777777777774"


@pytest.mark.parametrize("bad", [b"", "text", None, 123])
def test_b32encode_refuses(bad: object) -> None:
    with pytest.raises(InvalidKey):
        b32encode_key(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "typed",
    [
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
        "gezdgnbvgy3tqojqgezdgnbvgy3tqojq",
        "gezd gnbv gy3t qojq gezd gnbv gy3t qojq",
        "GEZD-GNBV-GY3T-QOJQ-GEZD-GNBV-GY3T-QOJQ",
        "  GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n",
    ],
)
def test_b32decode_accepts_what_people_type(typed: str) -> None:
    assert b32decode_key(typed) == b"12345678901234567890"


def test_b32decode_padding_optional_but_must_be_right() -> None:
    assert b32decode_key("MFRGG") == b"abc"
    assert b32decode_key("MFRGG===") == b"abc"
    with pytest.raises(InvalidBase32):
        b32decode_key("MFRGG=")
    with pytest.raises(InvalidBase32):
        b32decode_key("MFRGG====")


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "====",
        "GEZDGNBVGY3TQOJ1",  # 1 is not base32
        "GEZDGNBVGY3TQOJ0",  # nor is 0
        "GEZDGNBV_GY3TQOJQ",
        "GEZDGNBV.GY3TQOJQ",
        "A",  # impossible lengths
        "AAA",
        "AAAAAA",
        "\uff27\uff25\uff3a\uff24\uff27\uff2e\uff22\uff36",  # full-width letters
        "GEZDGNBVGY3TQOJQ\x00",
        "A" * 1025,
    ],
)
def test_b32decode_refuses(bad: str) -> None:
    with pytest.raises(InvalidBase32) as info:
        b32decode_key(bad)
    assert info.value.code is ErrorCode.INVALID_BASE32


@pytest.mark.parametrize("bad", [None, b"GEZDGNBV", 12345, ["GEZDGNBV"]])
def test_b32decode_refuses_non_text(bad: object) -> None:
    with pytest.raises(InvalidBase32):
        b32decode_key(bad)  # type: ignore[arg-type]


def test_random_ids_never_start_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # One token in 64 starts with '-', which a command line takes for an option
    # (mfa-core admin disable USER -AiGa... failed in CI): such a draw is drawn again.
    import secrets

    from mfa_core import MFAService
    from mfa_core.keys import random_id
    from mfa_core.stores import MemoryStore
    from mfa_core.testing import FakeClock

    ids = {random_id() for _ in range(5000)}
    assert len(ids) == 5000
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
    assert all(set(i) <= set(string.ascii_letters + string.digits + "-_") for i in ids)
    real = secrets.token_urlsafe
    draws = iter(["-" + "A" * 21, "-" + "B" * 21])
    monkeypatch.setattr(secrets, "token_urlsafe", lambda n: next(draws, None) or real(n))
    store = MemoryStore()
    service = MFAService(store, store, AESGCMSealer.generate(), clock=FakeClock(1.8e9))
    assert not service.begin_enrolment("alice").credential_id.startswith("-")
