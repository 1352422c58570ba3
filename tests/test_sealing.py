"""Sealed keys: round trips, binding to the credential id, tampering, key ids, rotation,
the plaintext opt-in, and no key material anywhere a host might log."""

from __future__ import annotations

import copy
import logging
import pickle
import traceback
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from mfa_core.errors import ErrorCode, InvalidKey, InvalidParameter, MFAError, SealingError
from mfa_core.ports import Sealer
from mfa_core.sealing import AESGCMSealer, InsecurePlaintextSealer, reseal

K1 = bytes(range(32))
K2 = bytes(range(100, 132))
OTP_KEY = bytes(range(200, 220))
CID = "cred-1"

plaintexts = st.binary(max_size=300)
credential_ids = st.text(min_size=1, max_size=64)


def plain() -> InsecurePlaintextSealer:
    return InsecurePlaintextSealer(i_understand_keys_are_stored_in_plaintext=True)


def sealing_error(call: Callable[[], object], code: ErrorCode) -> SealingError:
    with pytest.raises(SealingError) as info:
        call()
    assert info.value.code == code, info.value
    return info.value


# -- round trips and binding ---------------------------------------------------------------


@settings(max_examples=150)
@given(plaintexts, credential_ids)
def test_round_trip(plaintext: bytes, credential_id: str) -> None:
    sealer = AESGCMSealer({"k1": K1}, current_key_id="k1")
    blob = sealer.seal(plaintext, credential_id=credential_id)
    assert sealer.unseal(blob, credential_id=credential_id) == plaintext
    assert not sealer.needs_reseal(blob)
    assert len(plaintext) < 8 or plaintext not in blob[8:]  # encrypted, not copied


@settings(max_examples=100)
@given(plaintexts, credential_ids)
def test_plaintext_round_trip(plaintext: bytes, credential_id: str) -> None:
    sealer = plain()
    blob = sealer.seal(plaintext, credential_id=credential_id)
    assert sealer.unseal(blob, credential_id=credential_id) == plaintext
    assert not sealer.needs_reseal(blob)


@settings(max_examples=100)
@given(plaintexts, credential_ids, credential_ids)
def test_a_blob_moved_to_another_credential_does_not_unseal(
    plaintext: bytes, credential_id: str, other: str
) -> None:
    if other == credential_id:
        other += "x"
    sealers: list[Sealer] = [AESGCMSealer({"k1": K1}, current_key_id="k1"), plain()]
    for sealer in sealers:
        blob = sealer.seal(plaintext, credential_id=credential_id)
        with pytest.raises(SealingError) as info:
            sealer.unseal(blob, credential_id=other)
        assert info.value.code == ErrorCode.UNSEALING_FAILED


def test_every_seal_uses_a_fresh_nonce() -> None:
    sealer = AESGCMSealer({"k1": K1}, current_key_id="k1")
    blobs = {sealer.seal(OTP_KEY, credential_id=CID) for _ in range(50)}
    assert len(blobs) == 50
    assert len({blob[8:20] for blob in blobs}) == 50  # the nonces differ


def test_the_documented_blob_format() -> None:
    sealer = AESGCMSealer({"k1": K1}, current_key_id="k1")
    blob = sealer.seal(OTP_KEY, credential_id=CID)
    assert blob[:8] == b"MFSA\x01\x02k1"
    assert len(blob) == 8 + 12 + len(OTP_KEY) + 16
    # Built by hand from docs/lifecycle.md, the blob unseals: the format is as documented.
    nonce = bytes(12)
    header = b"MFSA\x01\x02k1"
    aad = b"mfa_core/sealed-key/v1\x00" + header + CID.encode()
    handmade = header + nonce + AESGCM(K1).encrypt(nonce, OTP_KEY, aad)
    assert sealer.unseal(handmade, credential_id=CID) == OTP_KEY
    # Without the credential id in the associated data it would not.
    unbound = header + nonce + AESGCM(K1).encrypt(nonce, OTP_KEY, aad[: -len(CID)])
    sealing_error(lambda: sealer.unseal(unbound, credential_id=CID), ErrorCode.UNSEALING_FAILED)
    assert plain().seal(OTP_KEY, credential_id=CID) == b"MFSP\x01\x00\x06cred-1" + OTP_KEY


def test_a_non_ascii_credential_id_is_bound_too() -> None:
    sealer = AESGCMSealer.generate()
    blob = sealer.seal(OTP_KEY, credential_id="ключ-\U0001f511")
    assert sealer.unseal(blob, credential_id="ключ-\U0001f511") == OTP_KEY
    sealing_error(
        lambda: sealer.unseal(blob, credential_id="ключ-\U0001f512"), ErrorCode.UNSEALING_FAILED
    )


# -- tampering -----------------------------------------------------------------------------


@pytest.mark.parametrize("make", [lambda: AESGCMSealer({"k1": K1, "k2": K2}, "k1"), plain])
def test_a_changed_byte_anywhere_fails(make: Callable[[], Sealer]) -> None:
    sealer = make()
    blob = sealer.seal(OTP_KEY, credential_id=CID)
    for index in range(len(blob)):
        for mask in (0x01, 0x80, 0xFF):
            changed = bytearray(blob)
            changed[index] ^= mask
            if isinstance(sealer, InsecurePlaintextSealer) and index >= len(blob) - len(OTP_KEY):
                continue  # the key itself: nothing protects plaintext storage (documented)
            with pytest.raises(SealingError):
                sealer.unseal(bytes(changed), credential_id=CID)


@settings(max_examples=200)
@given(st.data())
def test_random_tampering_fails(data: st.DataObject) -> None:
    sealer = AESGCMSealer({"k1": K1, "k2": K2}, current_key_id="k2")
    blob = sealer.seal(data.draw(plaintexts), credential_id=CID)
    index = data.draw(st.integers(0, len(blob) - 1))
    mask = data.draw(st.integers(1, 255))
    changed = bytearray(blob)
    changed[index] ^= mask
    with pytest.raises(SealingError):
        sealer.unseal(bytes(changed), credential_id=CID)


def test_truncated_or_extended_blobs_fail() -> None:
    sealer = AESGCMSealer({"k1": K1}, current_key_id="k1")
    blob = sealer.seal(OTP_KEY, credential_id=CID)
    for end in range(len(blob)):
        with pytest.raises(SealingError):
            sealer.unseal(blob[:end], credential_id=CID)
    with pytest.raises(SealingError):
        sealer.unseal(blob + b"\x00", credential_id=CID)
    pblob = plain().seal(OTP_KEY, credential_id=CID)
    for end in range(len(pblob) - len(OTP_KEY)):
        with pytest.raises(SealingError):
            plain().unseal(pblob[:end], credential_id=CID)


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"MFS",
        b"MFSA",
        b"MFSA\x01",
        b"MFSA\x02\x02k1" + bytes(40),
        b"XXXX\x01\x02k1" + bytes(40),
    ],
)
def test_garbage_is_refused_everywhere(blob: bytes) -> None:
    sealer = AESGCMSealer({"k1": K1}, current_key_id="k1")
    sealing_error(lambda: sealer.unseal(blob, credential_id=CID), ErrorCode.UNSEALING_FAILED)
    sealing_error(lambda: sealer.needs_reseal(blob), ErrorCode.UNSEALING_FAILED)
    sealing_error(lambda: plain().unseal(blob, credential_id=CID), ErrorCode.UNSEALING_FAILED)
    sealing_error(lambda: plain().needs_reseal(blob), ErrorCode.UNSEALING_FAILED)


def test_a_malformed_key_id_in_a_blob_is_refused() -> None:
    sealer = AESGCMSealer({"k1": K1}, current_key_id="k1")
    blob = b"MFSA\x01\x02k\xff" + bytes(40)
    sealing_error(lambda: sealer.unseal(blob, credential_id=CID), ErrorCode.UNSEALING_FAILED)
    blob = b"MFSA\x01\x02k " + bytes(40)
    sealing_error(lambda: sealer.needs_reseal(blob), ErrorCode.UNSEALING_FAILED)


# -- key ids and rotation ------------------------------------------------------------------


def test_an_unknown_key_id_is_reported_as_such() -> None:
    blob = AESGCMSealer({"k1": K1}, current_key_id="k1").seal(OTP_KEY, credential_id=CID)
    other = AESGCMSealer({"k2": K2}, current_key_id="k2")
    error = sealing_error(
        lambda: other.unseal(blob, credential_id=CID), ErrorCode.UNKNOWN_SEALING_KEY
    )
    assert "'k1'" in str(error)
    assert other.needs_reseal(blob)


def test_the_same_key_id_with_another_key_fails() -> None:
    blob = AESGCMSealer({"k1": K1}, current_key_id="k1").seal(OTP_KEY, credential_id=CID)
    impostor = AESGCMSealer({"k1": K2}, current_key_id="k1")
    sealing_error(lambda: impostor.unseal(blob, credential_id=CID), ErrorCode.UNSEALING_FAILED)


def test_rotation_with_needs_reseal_and_reseal() -> None:
    old = AESGCMSealer({"k1": K1}, current_key_id="k1")
    blob = old.seal(OTP_KEY, credential_id=CID)
    rotated = AESGCMSealer({"k1": K1, "k2": K2}, current_key_id="k2")
    assert rotated.needs_reseal(blob)
    assert rotated.unseal(blob, credential_id=CID) == OTP_KEY  # old blobs keep working
    fresh = reseal(blob, credential_id=CID, old=rotated, new=rotated)
    assert fresh[:8] == b"MFSA\x01\x02k2"
    assert not rotated.needs_reseal(fresh)
    only_new = AESGCMSealer({"k2": K2}, current_key_id="k2")
    assert only_new.unseal(fresh, credential_id=CID) == OTP_KEY
    sealing_error(lambda: only_new.unseal(blob, credential_id=CID), ErrorCode.UNKNOWN_SEALING_KEY)
    # Re-sealing keeps the binding: the new blob is still the credential's own.
    sealing_error(
        lambda: only_new.unseal(fresh, credential_id="cred-2"), ErrorCode.UNSEALING_FAILED
    )
    assert (rotated.current_key_id, rotated.key_ids) == ("k2", ("k1", "k2"))


def test_leaving_plaintext_storage() -> None:
    blob = plain().seal(OTP_KEY, credential_id=CID)
    target = AESGCMSealer({"k1": K1}, current_key_id="k1")
    assert target.needs_reseal(blob)
    sealed = reseal(blob, credential_id=CID, old=plain(), new=target)
    assert target.unseal(sealed, credential_id=CID) == OTP_KEY
    assert OTP_KEY not in sealed
    assert plain().needs_reseal(sealed)  # the plaintext sealer sees a foreign (encrypted) blob


def test_reseal_refuses_what_old_cannot_unseal() -> None:
    blob = AESGCMSealer({"k1": K1}, current_key_id="k1").seal(OTP_KEY, credential_id=CID)
    new = AESGCMSealer({"k2": K2}, current_key_id="k2")
    sealing_error(
        lambda: reseal(blob, credential_id=CID, old=new, new=new), ErrorCode.UNKNOWN_SEALING_KEY
    )
    sealing_error(
        lambda: reseal(blob, credential_id="cred-2", old=AESGCMSealer({"k1": K1}, "k1"), new=new),
        ErrorCode.UNSEALING_FAILED,
    )


class _ForgetfulSealer:
    """A broken host sealer: seals to something it cannot give back."""

    def __init__(self, unseal_result: Any = b"not the key", seal_result: Any = b"blob") -> None:
        self.unseal_result = unseal_result
        self.seal_result = seal_result

    def seal(self, plaintext: bytes, *, credential_id: str) -> bytes:
        if isinstance(self.seal_result, Exception):
            raise self.seal_result
        return self.seal_result  # type: ignore[no-any-return]

    def unseal(self, sealed: bytes, *, credential_id: str) -> bytes:
        if isinstance(self.unseal_result, Exception):
            raise self.unseal_result
        return self.unseal_result  # type: ignore[no-any-return]

    def needs_reseal(self, sealed: bytes) -> bool:
        return True


@pytest.mark.parametrize(
    "broken",
    [
        _ForgetfulSealer(),
        _ForgetfulSealer(unseal_result=RuntimeError("kms down")),
        _ForgetfulSealer(unseal_result="a str"),
        _ForgetfulSealer(seal_result=RuntimeError("kms down")),
        _ForgetfulSealer(seal_result="not bytes"),
    ],
)
def test_reseal_never_returns_a_blob_the_new_sealer_cannot_give_back(
    broken: _ForgetfulSealer,
) -> None:
    good = AESGCMSealer({"k1": K1}, current_key_id="k1")
    blob = good.seal(OTP_KEY, credential_id=CID)
    sealing_error(
        lambda: reseal(blob, credential_id=CID, old=good, new=broken), ErrorCode.SEALING_FAILED
    )


def test_reseal_turns_host_sealer_exceptions_into_sealing_errors() -> None:
    good = AESGCMSealer({"k1": K1}, current_key_id="k1")
    error = sealing_error(
        lambda: reseal(
            b"x", credential_id=CID, old=_ForgetfulSealer(RuntimeError("down")), new=good
        ),
        ErrorCode.UNSEALING_FAILED,
    )
    assert isinstance(error.__cause__, RuntimeError)
    sealing_error(
        lambda: reseal(b"x", credential_id=CID, old=_ForgetfulSealer(42), new=good),
        ErrorCode.UNSEALING_FAILED,
    )


def test_reseal_checks_its_arguments() -> None:
    good = AESGCMSealer({"k1": K1}, current_key_id="k1")
    blob = good.seal(OTP_KEY, credential_id=CID)
    with pytest.raises(InvalidParameter):
        reseal(blob, credential_id=CID, old=object(), new=good)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter):
        reseal(blob, credential_id=CID, old=good, new=None)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter):
        reseal("blob", credential_id=CID, old=good, new=good)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter):
        reseal(blob, credential_id="", old=good, new=good)


# -- the plaintext opt-in ------------------------------------------------------------------


@pytest.mark.parametrize("value", [False, 1, "yes", None, "True"])
def test_plaintext_needs_the_loud_opt_in(value: Any) -> None:
    sealing_error(
        lambda: InsecurePlaintextSealer(i_understand_keys_are_stored_in_plaintext=value),
        ErrorCode.PLAINTEXT_NOT_ALLOWED,
    )
    sealing_error(InsecurePlaintextSealer, ErrorCode.PLAINTEXT_NOT_ALLOWED)


def test_plaintext_sealer_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="mfa_core.sealing"):
        plain()
    assert any("UNENCRYPTED" in record.getMessage() for record in caplog.records)


def test_each_sealer_refuses_the_others_blobs() -> None:
    aes = AESGCMSealer({"k1": K1}, current_key_id="k1")
    pblob = plain().seal(OTP_KEY, credential_id=CID)
    ablob = aes.seal(OTP_KEY, credential_id=CID)
    sealing_error(lambda: aes.unseal(pblob, credential_id=CID), ErrorCode.PLAINTEXT_NOT_ALLOWED)
    sealing_error(lambda: plain().unseal(ablob, credential_id=CID), ErrorCode.UNSEALING_FAILED)
    assert aes.needs_reseal(pblob) and plain().needs_reseal(ablob)


def test_both_implement_the_port() -> None:
    assert isinstance(AESGCMSealer.generate(), Sealer)
    assert isinstance(plain(), Sealer)


# -- construction and arguments ------------------------------------------------------------


def test_generate() -> None:
    first, second = AESGCMSealer.generate(), AESGCMSealer.generate("2025-01")
    assert first.current_key_id == "k1" and second.key_ids == ("2025-01",)
    blob = first.seal(OTP_KEY, credential_id=CID)
    assert first.unseal(blob, credential_id=CID) == OTP_KEY
    with pytest.raises(SealingError):
        AESGCMSealer.generate().unseal(blob, credential_id=CID)  # a different random key
    with pytest.raises(InvalidParameter):
        AESGCMSealer.generate("bad id")


@pytest.mark.parametrize(
    ("keys", "current", "error"),
    [
        ({}, "k1", InvalidParameter),
        ([("k1", K1)], "k1", InvalidParameter),
        (None, "k1", InvalidParameter),
        ({"k1": K1[:16]}, "k1", InvalidKey),
        ({"k1": K1 + b"\x00"}, "k1", InvalidKey),
        ({"k1": K1.hex()}, "k1", InvalidKey),
        ({"k1": None}, "k1", InvalidKey),
        ({"": K1}, "", InvalidParameter),
        ({"a b": K1}, "a b", InvalidParameter),
        ({"clé": K1}, "clé", InvalidParameter),
        ({"k" * 65: K1}, "k" * 65, InvalidParameter),
        ({1: K1}, 1, InvalidParameter),
        ({"k1": K1}, None, InvalidParameter),
    ],
)
def test_constructor_refuses_bad_keys(keys: Any, current: Any, error: type[MFAError]) -> None:
    with pytest.raises(error):
        AESGCMSealer(keys, current_key_id=current)


def test_current_key_must_be_configured() -> None:
    sealing_error(lambda: AESGCMSealer({"k1": K1}, "k2"), ErrorCode.UNKNOWN_SEALING_KEY)


def test_key_ids_may_use_the_documented_characters() -> None:
    key_id = "Prod_2025-01.v2:a" + "x" * 47
    sealer = AESGCMSealer({key_id: bytearray(K1)}, current_key_id=key_id)  # type: ignore[dict-item]
    assert sealer.unseal(sealer.seal(OTP_KEY, credential_id=CID), credential_id=CID) == OTP_KEY


def test_keys_are_copied_not_referenced() -> None:
    key = bytearray(K1)
    sealer = AESGCMSealer({"k1": key}, current_key_id="k1")  # type: ignore[dict-item]
    blob = sealer.seal(OTP_KEY, credential_id=CID)
    key[:] = bytes(32)
    assert sealer.unseal(blob, credential_id=CID) == OTP_KEY


@pytest.mark.parametrize("make", [AESGCMSealer.generate, plain])
def test_arguments_are_checked(make: Callable[[], Sealer]) -> None:
    sealer = make()
    for bad_plaintext in ("text", None, 5, bytes(64 * 1024 + 1)):
        with pytest.raises(InvalidParameter):
            sealer.seal(bad_plaintext, credential_id=CID)  # type: ignore[arg-type]
    for bad_id in ("", None, 5, b"cred-1", "x" * 70000):
        with pytest.raises(InvalidParameter):
            sealer.seal(OTP_KEY, credential_id=bad_id)  # type: ignore[arg-type]
        with pytest.raises(InvalidParameter):
            sealer.unseal(sealer.seal(OTP_KEY, credential_id=CID), credential_id=bad_id)  # type: ignore[arg-type]
    for bad_blob in ("MFSA", None, 3):
        with pytest.raises(InvalidParameter):
            sealer.unseal(bad_blob, credential_id=CID)  # type: ignore[arg-type]
        with pytest.raises(InvalidParameter):
            sealer.needs_reseal(bad_blob)  # type: ignore[arg-type]
    # bytearray and memoryview are fine for the data.
    blob = sealer.seal(memoryview(OTP_KEY), credential_id=CID)  # type: ignore[arg-type]
    assert sealer.unseal(bytearray(blob), credential_id=CID) == OTP_KEY  # type: ignore[arg-type]


# -- no key material anywhere --------------------------------------------------------------


def _forms(secret: bytes) -> list[str]:
    return [secret.hex(), secret.hex().upper(), repr(secret), repr(secret)[2:-1][:24]]


def _everything_said(error: BaseException) -> str:
    return "\n".join(
        [str(error), repr(error), "".join(traceback.format_exception(error)), str(error.args)]
    )


def test_no_key_material_in_repr_str_or_errors() -> None:
    sealer = AESGCMSealer({"k1": K1, "k2": K2}, current_key_id="k2")
    blob = sealer.seal(OTP_KEY, credential_id=CID)
    texts = [repr(sealer), str(sealer), repr(plain()), str(plain())]
    assert repr(sealer) == "AESGCMSealer(current_key_id='k2', key_ids=('k1', 'k2'))"
    failing: list[Callable[[], object]] = [
        lambda: sealer.unseal(blob, credential_id="cred-2"),
        lambda: sealer.unseal(blob[:-1], credential_id=CID),
        lambda: AESGCMSealer({"k3": K1}, "k3").unseal(blob, credential_id=CID),
        lambda: sealer.unseal(plain().seal(OTP_KEY, credential_id=CID), credential_id=CID),
        lambda: plain().unseal(blob, credential_id=CID),
        lambda: plain().unseal(plain().seal(OTP_KEY, credential_id=CID), credential_id="x"),
        lambda: AESGCMSealer({"k1": K1[:31]}, "k1"),
        lambda: AESGCMSealer({"k1": K1}, "k9"),
        lambda: reseal(blob, credential_id=CID, old=sealer, new=_ForgetfulSealer(OTP_KEY[:5])),
        lambda: reseal(blob, credential_id=CID, old=sealer, new=_ForgetfulSealer(K1)),
        lambda: pickle.dumps(sealer),
    ]
    for call in failing:
        with pytest.raises(MFAError) as info:
            call()
        texts.append(_everything_said(info.value))
    joined = "\n".join(texts)
    for secret in (K1, K2, OTP_KEY):
        for form in _forms(secret):
            assert form not in joined


def test_a_sealer_cannot_be_pickled_or_copied() -> None:
    sealer = AESGCMSealer.generate()
    for call in (
        lambda: pickle.dumps(sealer),
        lambda: copy.copy(sealer),
        lambda: copy.deepcopy(sealer),
    ):
        with pytest.raises(SealingError):
            call()
