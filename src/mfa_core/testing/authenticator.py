"""A software WebAuthn authenticator and client, for tests without hardware.

:class:`SoftwareAuthenticator` makes real credentials (P-256 / ES256 or Ed25519 / EdDSA keys
from ``cryptography``), real attestation objects ("none", or "packed" self-attestation) and
real assertions, and plays the browser's part: it reads the Level 3 JSON options and
returns what ``credential.toJSON()`` gives. Every field a test wants to break can be
overridden (origin, RP ID, flags, counter, crossOrigin, type, challenge). Needs ``cbor2``
(the ``webauthn`` extra).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Mapping
from typing import Any

import attrs
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

__all__ = ["SoftwareAuthenticator", "SoftwareCredential"]

_AAGUID = bytes.fromhex("6d66615f636f72655f736f6674776172")  # "mfa_core_softwar"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _cbor(value: object) -> bytes:
    import cbor2  # noqa: PLC0415 - the webauthn extra, imported on use

    return bytes(cbor2.dumps(value))


@attrs.define
class SoftwareCredential:
    """One credential the software authenticator holds (its private key stays here)."""

    credential_id: bytes
    rp_id: str
    user_handle: bytes
    algorithm: int
    private_key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey = attrs.field(repr=False)
    sign_count: int = 0

    def cose_public_key(self) -> bytes:
        """The public key as a COSE_Key (RFC 9052 / RFC 9053)."""
        if isinstance(self.private_key, ed25519.Ed25519PrivateKey):
            from cryptography.hazmat.primitives.serialization import (  # noqa: PLC0415
                Encoding,
                PublicFormat,
            )

            raw = self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            return _cbor({1: 1, 3: -8, -1: 6, -2: raw})
        numbers = self.private_key.public_key().public_numbers()
        return _cbor(
            {
                1: 2,
                3: -7,
                -1: 1,
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )

    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` as the authenticator does (ECDSA DER over SHA-256, or Ed25519)."""
        if isinstance(self.private_key, ed25519.Ed25519PrivateKey):
            return self.private_key.sign(data)
        return self.private_key.sign(data, ec.ECDSA(hashes.SHA256()))


class SoftwareAuthenticator:
    """A roaming authenticator plus the browser around it (see the module docstring).

    ``counter``: ``"increment"`` (a security key's counter, +1 per signature) or ``"zero"``
    (a passkey provider that keeps none).
    """

    def __init__(self, *, counter: str = "increment", backup: bool = False) -> None:
        self.credentials: dict[bytes, SoftwareCredential] = {}
        self.counter = counter
        self.backup = backup

    def _client_data(self, kind: str, challenge: str, origin: str, **overrides: Any) -> bytes:
        data: dict[str, Any] = {"type": kind, "challenge": challenge, "origin": origin}
        data["crossOrigin"] = False
        data.update(overrides)
        return json.dumps(data, separators=(",", ":")).encode("utf-8")

    def _flags(self, *, up: bool, uv: bool, at: bool) -> int:
        flags = (0x01 if up else 0) | (0x04 if uv else 0) | (0x40 if at else 0)
        if self.backup:
            flags |= 0x08 | 0x10
        return flags

    def _next_count(self, credential: SoftwareCredential) -> int:
        if self.counter == "increment":
            credential.sign_count += 1
        return credential.sign_count

    def create(
        self,
        options: Mapping[str, Any],
        origin: str,
        *,
        algorithm: int = -7,
        attestation: str = "none",
        rp_id: str | None = None,
        up: bool = True,
        uv: bool = True,
        client_data: Mapping[str, Any] | None = None,
        credential_id: bytes | None = None,
    ) -> dict[str, Any]:
        """``navigator.credentials.create()`` with ``options`` (the creation options JSON)
        at ``origin``: a new credential and its ``RegistrationResponseJSON``."""
        rp = rp_id if rp_id is not None else options["rp"]["id"]
        key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
        key = (
            ed25519.Ed25519PrivateKey.generate()
            if algorithm == -8
            else ec.generate_private_key(ec.SECP256R1())
        )
        credential = SoftwareCredential(
            credential_id=secrets.token_bytes(32),
            rp_id=rp,
            user_handle=_unb64(options["user"]["id"]),
            algorithm=algorithm,
            private_key=key,
        )
        if credential_id is not None:  # a key registered again (a hostile or confused client)
            credential = self.credentials[credential_id]
        self.credentials[credential.credential_id] = credential
        cdj = self._client_data(
            "webauthn.create", options["challenge"], origin, **dict(client_data or {})
        )
        count = credential.sign_count
        auth_data = (
            hashlib.sha256(rp.encode("utf-8")).digest()
            + bytes([self._flags(up=up, uv=uv, at=True)])
            + count.to_bytes(4, "big")
            + _AAGUID
            + len(credential.credential_id).to_bytes(2, "big")
            + credential.credential_id
            + credential.cose_public_key()
        )
        statement: dict[str, Any] = {}
        if attestation == "packed":
            signed = auth_data + hashlib.sha256(cdj).digest()
            statement = {"alg": algorithm, "sig": credential.sign(signed)}
        att_obj = _cbor({"fmt": attestation, "attStmt": statement, "authData": auth_data})
        return {
            "id": _b64(credential.credential_id),
            "rawId": _b64(credential.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "cross-platform",
            "clientExtensionResults": {"credProps": {"rk": True}},
            "response": {
                "clientDataJSON": _b64(cdj),
                "attestationObject": _b64(att_obj),
                "transports": ["usb"],
            },
        }

    def get(
        self,
        options: Mapping[str, Any],
        origin: str,
        *,
        credential_id: bytes | None = None,
        rp_id: str | None = None,
        up: bool = True,
        uv: bool = True,
        sign_count: int | None = None,
        client_data: Mapping[str, Any] | None = None,
        user_handle: bool = True,
    ) -> dict[str, Any]:
        """``navigator.credentials.get()`` with ``options`` (the request options JSON) at
        ``origin``: an ``AuthenticationResponseJSON`` signed by the chosen credential (the
        first allowed one this authenticator holds, or any for an empty allow list)."""
        if credential_id is None:
            allowed = [_unb64(c["id"]) for c in options.get("allowCredentials", [])]
            candidates = [c for c in self.credentials if not allowed or c in allowed]
            credential_id = candidates[0]
        credential = self.credentials[credential_id]
        rp = rp_id if rp_id is not None else options.get("rpId", credential.rp_id)
        count = self._next_count(credential) if sign_count is None else sign_count
        cdj = self._client_data(
            "webauthn.get", options["challenge"], origin, **dict(client_data or {})
        )
        auth_data = (
            hashlib.sha256(rp.encode("utf-8")).digest()
            + bytes([self._flags(up=up, uv=uv, at=False)])
            + count.to_bytes(4, "big")
        )
        signature = credential.sign(auth_data + hashlib.sha256(cdj).digest())
        response: dict[str, Any] = {
            "clientDataJSON": _b64(cdj),
            "authenticatorData": _b64(auth_data),
            "signature": _b64(signature),
        }
        if user_handle:
            response["userHandle"] = _b64(credential.user_handle)
        return {
            "id": _b64(credential_id),
            "rawId": _b64(credential_id),
            "type": "public-key",
            "authenticatorAttachment": "cross-platform",
            "clientExtensionResults": {},
            "response": response,
        }
