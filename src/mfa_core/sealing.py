"""Sealed OTP keys: AES-256-GCM with key ids for rotation, bound to the credential id.

Pure apart from the CSPRNG (a fresh nonce per seal, :func:`os.urandom`). Both sealers here
implement the :class:`~mfa_core.ports.Sealer` port; a host may plug in its own (a KMS).

:class:`AESGCMSealer` blob (all lengths in bytes)::

    "MFSA" | version 0x01 | n (1) | key id (n, ASCII) | nonce (12, random) | ciphertext + tag (16)

The associated data is ``b"mfa_core/sealed-key/v1\\x00" || header || credential id (UTF-8)``
where ``header`` is everything before the nonce: the format, the version and the key id
are authenticated, and a blob copied to another credential does not unseal. A random
96-bit nonce per seal keeps one key safe for far more seals than a credential store holds
(NIST SP 800-38D allows 2**32 random-nonce seals per key); rotate keys well before that.

Rotation: build the sealer with the old and the new key, ``current_key_id`` the new one;
:meth:`AESGCMSealer.needs_reseal` tells which blobs still use an old key and :func:`reseal`
moves one over (checking that the new blob unseals before it is returned). Once nothing
needs re-sealing, drop the old key.

:class:`InsecurePlaintextSealer` stores keys in the clear (tests, or a host whose storage
is encrypted some other way), only with the loudly named opt-in. Its blobs carry their own
marker (``"MFSP"``); each sealer refuses the other's blobs.

Failures raise :class:`~mfa_core.errors.SealingError` with a stable code:
``UNSEALING_FAILED`` (tampered, truncated, foreign or misplaced blob), ``UNKNOWN_SEALING_KEY``
(the blob's key id is not configured), ``SEALING_FAILED``, ``PLAINTEXT_NOT_ALLOWED``.
Messages never hold a key or a plaintext.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Final, NoReturn, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ._validate import is_utf8
from .errors import ErrorCode, InvalidKey, InvalidParameter, MFAError, SealingError
from .ports import Sealer

__all__ = ["AESGCMSealer", "InsecurePlaintextSealer", "reseal"]

_logger = logging.getLogger("mfa_core.sealing")

_AES_MAGIC: Final = b"MFSA"
_PLAIN_MAGIC: Final = b"MFSP"
_VERSION: Final = 1
_AAD_LABEL: Final = b"mfa_core/sealed-key/v1\x00"
_KEY_BYTES: Final = 32
_NONCE_BYTES: Final = 12
_TAG_BYTES: Final = 16
_MAX_PLAINTEXT: Final = 64 * 1024
_MAX_CREDENTIAL_ID: Final = 0xFFFF
_KEY_ID_RE: Final = re.compile(r"[A-Za-z0-9._:-]{1,64}", re.ASCII)
_KEY_ID_RULE: Final = "sealing key ids must be 1 to 64 ASCII letters, digits or '.', '_', ':', '-'"

_T = TypeVar("_T")


# -- argument checks -----------------------------------------------------------------------


def _key_id(value: object) -> str:
    if type(value) is not str or _KEY_ID_RE.fullmatch(value) is None:
        raise InvalidParameter(_KEY_ID_RULE)
    return value


def _credential_id(value: object) -> bytes:
    if not isinstance(value, str) or not value:
        raise InvalidParameter("credential_id must be a non-empty str")
    if not is_utf8(value):  # the rule of _validate.check_id: a lone surrogate is refused
        raise InvalidParameter("credential_id must be valid Unicode text (no lone surrogates)")
    encoded = value.encode("utf-8")
    if len(encoded) > _MAX_CREDENTIAL_ID:
        raise InvalidParameter("credential_id is too long")
    return encoded


def _plaintext(value: object) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise InvalidParameter("the plaintext to seal must be bytes")
    data = bytes(value)
    if len(data) > _MAX_PLAINTEXT:
        raise InvalidParameter("the plaintext to seal is too long")
    return data


def _blob(value: object) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise InvalidParameter("a sealed key must be bytes")
    return bytes(value)


def _fail(message: str, code: ErrorCode = ErrorCode.UNSEALING_FAILED) -> NoReturn:
    raise SealingError(message, code=code)


# -- blob formats --------------------------------------------------------------------------


def _aes_header(key_id: str) -> bytes:
    raw = key_id.encode("ascii")
    return _AES_MAGIC + bytes((_VERSION, len(raw))) + raw


def _split_aes(blob: bytes) -> tuple[str, bytes, bytes, bytes]:
    """Return ``(key id, header, nonce, ciphertext)`` of an AES-GCM blob, or raise."""
    magic = blob[:4]
    if magic == _PLAIN_MAGIC:
        _fail(
            "this sealed key is stored in plaintext; AESGCMSealer refuses it "
            "(re-seal it with mfa_core.sealing.reseal)",
            ErrorCode.PLAINTEXT_NOT_ALLOWED,
        )
    if magic != _AES_MAGIC or len(blob) < 6:
        _fail("not an AES-GCM sealed key")
    if blob[4] != _VERSION:
        _fail("unsupported sealed-key format version")
    end = 6 + blob[5]
    if len(blob) < end + _NONCE_BYTES + _TAG_BYTES:
        _fail("the sealed key is truncated")
    raw_id = blob[6:end]
    if not raw_id.isascii() or _KEY_ID_RE.fullmatch(raw_id.decode("ascii")) is None:
        _fail("the sealed key has a malformed key id")
    return (
        raw_id.decode("ascii"),
        blob[:end],
        blob[end : end + _NONCE_BYTES],
        blob[end + _NONCE_BYTES :],
    )


def _split_plain(blob: bytes) -> tuple[bytes, bytes]:
    """Return ``(credential id, plaintext)`` of a plaintext blob, or raise."""
    magic = blob[:4]
    if magic == _AES_MAGIC:
        _fail("this key is sealed with AES-GCM; the plaintext sealer cannot unseal it")
    if magic != _PLAIN_MAGIC or len(blob) < 7:
        _fail("not a plaintext sealed key")
    if blob[4] != _VERSION:
        _fail("unsupported sealed-key format version")
    end = 7 + int.from_bytes(blob[5:7], "big")
    if len(blob) < end:
        _fail("the sealed key is truncated")
    return blob[7:end], blob[end:]


def _aad(header: bytes, credential_id: bytes) -> bytes:
    return _AAD_LABEL + header + credential_id


# -- sealers -------------------------------------------------------------------------------


class AESGCMSealer:
    """Seals keys with AES-256-GCM (``cryptography``), implementing :class:`~mfa_core.ports.Sealer`.

    ``keys`` maps key ids (1 to 64 ASCII letters, digits, ``.``, ``_``, ``:``, ``-``) to
    32-byte keys; new blobs use ``current_key_id``, and any configured key unseals. Bad
    ids raise :class:`~mfa_core.errors.InvalidParameter`, keys of the wrong type or size
    :class:`~mfa_core.errors.InvalidKey`, and a ``current_key_id`` that is not in ``keys``
    :class:`~mfa_core.errors.SealingError` (``UNKNOWN_SEALING_KEY``). The keys never show
    in ``repr``/``str`` or errors, and the sealer cannot be pickled.
    """

    __slots__ = ("_aeads", "_by_header", "_current", "_header", "_keys")

    def __init__(self, keys: Mapping[str, bytes], current_key_id: str) -> None:
        if not isinstance(keys, Mapping) or not keys:
            raise InvalidParameter("keys must be a non-empty mapping of key id to key")
        checked: dict[str, bytes] = {}
        for key_id, key in keys.items():
            _key_id(key_id)
            if not isinstance(key, bytes | bytearray):
                raise InvalidKey("a sealing key must be bytes")
            if len(key) != _KEY_BYTES:
                raise InvalidKey("a sealing key must be 32 bytes (AES-256)")
            checked[key_id] = bytes(key)
        current = _key_id(current_key_id)
        if current not in checked:
            _fail("current_key_id is not one of the keys", ErrorCode.UNKNOWN_SEALING_KEY)
        self._keys: Mapping[str, bytes] = MappingProxyType(checked)
        self._aeads: Mapping[str, AESGCM] = MappingProxyType(
            {key_id: AESGCM(key) for key_id, key in checked.items()}
        )
        self._by_header: Mapping[bytes, AESGCM] = MappingProxyType(
            {_aes_header(key_id): aead for key_id, aead in self._aeads.items()}
        )
        self._current = current
        self._header = _aes_header(current)

    @classmethod
    def generate(cls, key_id: str = "k1") -> AESGCMSealer:
        """Return a sealer with one fresh random 256-bit key under ``key_id``.

        The key exists only inside this object: right for tests and demos. In production,
        keep the key in a secret manager and pass it to the constructor.
        """
        return cls({_key_id(key_id): AESGCM.generate_key(bit_length=256)}, current_key_id=key_id)

    @property
    def current_key_id(self) -> str:
        """The id of the key new blobs are sealed with."""
        return self._current

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The ids of every configured key (any of them unseals)."""
        return tuple(self._keys)

    def seal(self, plaintext: bytes, *, credential_id: str) -> bytes:
        """Encrypt ``plaintext`` under the current key, bound to ``credential_id``.

        Returns the blob described in the module docstring (a fresh random nonce each
        time). Raises :class:`~mfa_core.errors.InvalidParameter` for a non-bytes
        plaintext (or over 64 KiB) or an empty/non-str credential id.
        """
        data = _plaintext(plaintext)
        aad = _aad(self._header, _credential_id(credential_id))
        nonce = os.urandom(_NONCE_BYTES)
        try:
            sealed = self._aeads[self._current].encrypt(nonce, data, aad)
        except Exception:
            _fail("the key could not be sealed", ErrorCode.SEALING_FAILED)
        return self._header + nonce + sealed

    def unseal(self, sealed: bytes, *, credential_id: str) -> bytes:
        """Decrypt a blob made by :meth:`seal` for the same ``credential_id``.

        Raises :class:`~mfa_core.errors.SealingError`: ``UNKNOWN_SEALING_KEY`` if the blob's
        key id is not configured, ``PLAINTEXT_NOT_ALLOWED`` for a plaintext blob, and
        ``UNSEALING_FAILED`` for anything else (another credential's blob, a changed byte,
        a truncated or foreign blob); the message does not say which byte or why.
        """
        blob = sealed if type(sealed) is bytes else _blob(sealed)
        cid = _credential_id(credential_id)
        # Fast path: the header of a configured key, recognised by one dict lookup.
        end = 6 + blob[5] if len(blob) > 5 else 0
        aead = self._by_header.get(blob[:end])
        if aead is None or len(blob) < end + _NONCE_BYTES + _TAG_BYTES:
            # Slow path, only to say precisely what is wrong.
            key_id, _, _, _ = _split_aes(blob)
            _fail(
                f"the sealed key uses sealing key id {key_id!r}, which is not configured",
                ErrorCode.UNKNOWN_SEALING_KEY,
            )
        nonce_end = end + _NONCE_BYTES
        try:
            return aead.decrypt(
                blob[end:nonce_end], blob[nonce_end:], _AAD_LABEL + blob[:end] + cid
            )
        except InvalidTag:
            _fail("the sealed key did not unseal (wrong credential, wrong key or altered data)")

    def needs_reseal(self, sealed: bytes) -> bool:
        """True when ``sealed`` is not under the current key (an older key id, or a plaintext
        blob). Raises :class:`~mfa_core.errors.SealingError` for a blob of no known format."""
        blob = _blob(sealed)
        if blob[:4] == _PLAIN_MAGIC:
            _split_plain(blob)
            return True
        key_id, _, _, _ = _split_aes(blob)
        return key_id != self._current

    def __repr__(self) -> str:
        return f"AESGCMSealer(current_key_id={self._current!r}, key_ids={self.key_ids!r})"

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise SealingError("a sealer holds keys and cannot be pickled or copied")


class InsecurePlaintextSealer:
    """Stores keys UNENCRYPTED, implementing :class:`~mfa_core.ports.Sealer`.

    Only with the explicit opt-in
    ``InsecurePlaintextSealer(i_understand_keys_are_stored_in_plaintext=True)``; anything
    else raises :class:`~mfa_core.errors.SealingError` (``PLAINTEXT_NOT_ALLOWED``), and each
    instance logs a warning. Blobs are ``"MFSP" | 0x01 | n (2, big-endian) | credential id
    (n, UTF-8) | key``; unsealing checks the credential id, so a blob copied to another
    credential is refused here too (without cryptographic protection). AES-GCM blobs are
    refused, and :class:`AESGCMSealer` refuses these.
    """

    __slots__ = ()

    def __init__(self, *, i_understand_keys_are_stored_in_plaintext: bool = False) -> None:
        if i_understand_keys_are_stored_in_plaintext is not True:
            _fail(
                "storing keys in plaintext needs "
                "InsecurePlaintextSealer(i_understand_keys_are_stored_in_plaintext=True)",
                ErrorCode.PLAINTEXT_NOT_ALLOWED,
            )
        _logger.warning("InsecurePlaintextSealer in use: OTP keys are stored UNENCRYPTED")

    def seal(self, plaintext: bytes, *, credential_id: str) -> bytes:
        """Return ``plaintext`` with a marker and ``credential_id`` in front (no encryption)."""
        data = _plaintext(plaintext)
        cid = _credential_id(credential_id)
        return _PLAIN_MAGIC + bytes((_VERSION,)) + len(cid).to_bytes(2, "big") + cid + data

    def unseal(self, sealed: bytes, *, credential_id: str) -> bytes:
        """Return the key of a blob made by :meth:`seal` for the same ``credential_id``.

        Raises :class:`~mfa_core.errors.SealingError` (``UNSEALING_FAILED``) for another
        credential's blob, an AES-GCM blob or anything malformed.
        """
        blob = _blob(sealed)
        cid = _credential_id(credential_id)
        stored_id, data = _split_plain(blob)
        if not hmac.compare_digest(stored_id, cid):
            _fail("the sealed key belongs to another credential")
        return data

    def needs_reseal(self, sealed: bytes) -> bool:
        """False for this sealer's own blobs, True for AES-GCM ones; raises
        :class:`~mfa_core.errors.SealingError` for a blob of no known format."""
        blob = _blob(sealed)
        if blob[:4] == _AES_MAGIC:
            _split_aes(blob)
            return True
        _split_plain(blob)
        return False

    def __repr__(self) -> str:
        return "InsecurePlaintextSealer(i_understand_keys_are_stored_in_plaintext=True)"


# -- rotation ------------------------------------------------------------------------------


def _guarded(call: Callable[[], _T], code: ErrorCode, message: str) -> _T:
    """Run a port call; typed errors pass, anything else becomes SealingError(code)."""
    try:
        return call()
    except MFAError:
        raise
    except Exception as exc:
        raise SealingError(message, code=code) from exc


def reseal(sealed: bytes, *, credential_id: str, old: Sealer, new: Sealer) -> bytes:
    """Move a sealed key from sealer ``old`` to sealer ``new`` (key rotation, or leaving
    plaintext storage): unseal with ``old``, seal with ``new`` for the same credential.

    The new blob is unsealed once more and compared with the key before it is returned, so
    a faulty new sealer cannot make the caller overwrite a good blob with a bad one.
    Raises :class:`~mfa_core.errors.SealingError` (``UNSEALING_FAILED`` when ``old`` cannot
    unseal, ``SEALING_FAILED`` when ``new`` fails or its blob does not unseal to the key)
    and :class:`~mfa_core.errors.InvalidParameter` for bad arguments. Exceptions other than
    :class:`~mfa_core.errors.MFAError` raised by a host's sealer become ``SealingError``.
    """
    for sealer, name in ((old, "old"), (new, "new")):
        if not isinstance(sealer, Sealer):
            raise InvalidParameter(f"{name} must implement the Sealer port")
    blob = _blob(sealed)
    _credential_id(credential_id)
    key = _guarded(
        lambda: old.unseal(blob, credential_id=credential_id),
        ErrorCode.UNSEALING_FAILED,
        "the old sealer failed to unseal the key",
    )
    if not isinstance(key, bytes):
        _fail("the old sealer returned something other than bytes")
    fresh = _guarded(
        lambda: new.seal(key, credential_id=credential_id),
        ErrorCode.SEALING_FAILED,
        "the new sealer failed to seal the key",
    )
    if not isinstance(fresh, bytes):
        _fail("the new sealer returned something other than bytes", ErrorCode.SEALING_FAILED)
    try:
        check = new.unseal(fresh, credential_id=credential_id)
    except Exception as exc:
        raise SealingError(
            "the new sealer cannot unseal what it sealed; nothing was changed",
            code=ErrorCode.SEALING_FAILED,
        ) from exc
    if not isinstance(check, bytes) or not hmac.compare_digest(check, key):
        _fail(
            "the new sealer does not give the key back; nothing was changed",
            ErrorCode.SEALING_FAILED,
        )
    return fresh
