"""The two WebAuthn ceremonies, pure: options out, responses in, typed refusals.

At the boundary are the W3C WebAuthn Level 3 JSON forms: the options are
``PublicKeyCredentialCreationOptionsJSON`` / ``PublicKeyCredentialRequestOptionsJSON``
(plain dicts, for ``PublicKeyCredential.parseCreationOptionsFromJSON()`` /
``parseRequestOptionsFromJSON()``), and the responses are what ``credential.toJSON()``
gives (``RegistrationResponseJSON`` / ``AuthenticationResponseJSON``) as a dict or JSON text.

Every response is untrusted: :func:`parse_registration_response` and
:func:`parse_authentication_response` check sizes, types and base64url before anything
else (:class:`~mfa_core.errors.WebAuthnError`, ``WEBAUTHN_MALFORMED`` or
``WEBAUTHN_TOO_LARGE``). The checks then run in two layers:

* mfa_core's own, each with its :class:`WebAuthnReason`: the challenge (known, unused,
  unexpired, this ceremony, this user), ``type``, the origin (exact match against
  :attr:`WebAuthnConfig.origins`), ``crossOrigin`` / ``topOrigin`` (which the library does
  not check), the RP ID hash, the UP and UV flags, the signature counter, the credential's
  owner and state;
* the ``webauthn`` extra (Duo's py_webauthn), which checks the ceremony again and verifies
  what needs cryptography: the attestation statement (:func:`check_registration`) and the
  assertion signature (:func:`check_authentication`).
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Any, Final, NoReturn

import attrs

from ..errors import ErrorCode, MissingDependency, WebAuthnError
from .config import WebAuthnConfig
from .records import (
    MAX_CREDENTIAL_ID,
    MAX_PUBLIC_KEY,
    Ceremony,
    WebAuthnChallenge,
    WebAuthnCredential,
)

__all__ = [
    "MAX_RESPONSE",
    "AssertionOutcome",
    "AuthenticationResponse",
    "RegisteredKey",
    "RegistrationResponse",
    "WebAuthnReason",
    "authentication_options",
    "b64url",
    "challenge_key",
    "check_authentication",
    "check_challenge",
    "check_registration",
    "check_sign_count",
    "new_challenge",
    "parse_authentication_response",
    "parse_registration_response",
    "registration_options",
]

MAX_RESPONSE: Final = 65536
"""Largest response accepted, in characters of JSON (an attestation with certificates is a
few KiB)."""
_MAX_CLIENT_DATA: Final = 4096
_MAX_ATTESTATION: Final = 32768
_MAX_AUTH_DATA: Final = 4096
_MAX_SIGNATURE: Final = 1024
_MAX_USER_HANDLE: Final = 64
_MAX_TRANSPORTS: Final = 8
_CHALLENGE_BYTES: Final = 32
_B64URL: Final = re.compile(r"[A-Za-z0-9_-]*\Z")
_TRANSPORT: Final = re.compile(r"[a-z-]{1,16}\Z")
_UNREADABLE: Final = object()


class WebAuthnReason(enum.StrEnum):
    """Why a WebAuthn response was accepted or refused (for the host and the audit log)."""

    OK = "ok"
    """Accepted."""
    MALFORMED = "malformed"
    """Not a well-formed response (JSON, types, base64url, CBOR, sizes)."""
    UNKNOWN_CHALLENGE = "unknown_challenge"
    """The challenge was never issued, or was forgotten after it expired."""
    CHALLENGE_EXPIRED = "challenge_expired"
    """The challenge's TTL has passed."""
    CHALLENGE_REUSED = "challenge_reused"
    """The challenge was used already, by another response."""
    REPLAYED = "replayed"
    """This very response was presented before."""
    WRONG_CEREMONY = "wrong_ceremony"
    """A registration challenge used to sign in, or the other way round (or a ``type``
    that is not this ceremony's)."""
    WRONG_USER = "wrong_user"
    """The challenge was issued to another user."""
    WRONG_ORIGIN = "wrong_origin"
    """``clientDataJSON.origin`` is not exactly one of the configured origins."""
    CROSS_ORIGIN = "cross_origin"
    """``crossOrigin: true`` (an iframe ceremony) where the relying party does not allow it,
    or from a top-level origin it does not allow."""
    WRONG_RP_ID = "wrong_rp_id"
    """The authenticator data's RP ID hash is not SHA-256 of the configured RP ID."""
    USER_NOT_PRESENT = "user_not_present"
    """The UP flag is missing."""
    USER_NOT_VERIFIED = "user_not_verified"
    """The UV flag is missing and user verification is required."""
    BAD_ATTESTATION = "bad_attestation"
    """The attestation statement does not verify, or its format is not accepted."""
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
    """The new key's algorithm is not one the relying party accepts."""
    BAD_SIGNATURE = "bad_signature"
    """The assertion signature does not verify with the stored public key."""
    UNKNOWN_CREDENTIAL = "unknown_credential"
    """No registered credential has this id."""
    CREDENTIAL_OF_ANOTHER_USER = "credential_of_another_user"
    """The credential is registered, to another user (or the user handle names another)."""
    CREDENTIAL_DISABLED = "credential_disabled"
    """The credential is disabled."""
    CREDENTIAL_EXISTS = "credential_exists"
    """Registration: this credential id is registered already."""
    CLONED_AUTHENTICATOR = "cloned_authenticator"
    """The signature counter did not advance past the stored one (a possible clone)."""
    THROTTLED = "throttled"
    """Too soon after the last failure; refused without looking at the response."""
    LOCKED = "locked"
    """Too many consecutive failures; refused without looking at the response."""
    STORE_ERROR = "store_error"
    """A store failed; refused (fail closed)."""


def _malformed(what: str) -> NoReturn:
    raise WebAuthnError(
        f"malformed WebAuthn response: {what}",
        code=ErrorCode.WEBAUTHN_MALFORMED,
        reason=WebAuthnReason.MALFORMED.value,
    )


def _refuse(reason: WebAuthnReason, message: str) -> NoReturn:
    raise WebAuthnError(message, code=ErrorCode.WEBAUTHN_REFUSED, reason=reason.value)


def b64url(data: bytes) -> str:
    """base64url without padding (the encoding of the JSON forms)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(value: object, name: str, limit: int, *, empty: bool = False) -> bytes:
    """Strict base64url (no padding, canonical) of at most ``limit`` decoded bytes."""
    if type(value) is not str:
        _malformed(f"{name} must be a base64url string")
    if len(value) > (limit * 4 + 2) // 3 or not _B64URL.match(value) or len(value) % 4 == 1:
        _malformed(f"{name} is not base64url of at most {limit} bytes")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raw = None
    if raw is None:
        _malformed(f"{name} is not base64url")
    if not raw and not empty:
        _malformed(f"{name} is empty")
    if b64url(raw) != value:  # non-canonical trailing bits
        _malformed(f"{name} is not canonical base64url")
    return raw


def _no_constant(name: str) -> NoReturn:
    _malformed(f"JSON constant {name} is not allowed")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            _malformed("duplicate JSON member")
        result[key] = value
    return result


def _load_json(text: str | bytes, limit: int, name: str) -> object:
    if len(text) > limit:
        raise WebAuthnError(
            f"{name} is too large",
            code=ErrorCode.WEBAUTHN_TOO_LARGE,
            reason=WebAuthnReason.MALFORMED.value,
        )
    loaded: object = _UNREADABLE
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        loaded = json.loads(text, parse_constant=_no_constant, object_pairs_hook=_unique)
    except WebAuthnError:
        raise
    except (ValueError, RecursionError, UnicodeDecodeError):
        pass
    if loaded is _UNREADABLE:
        _malformed(f"{name} is not JSON")
    return loaded


def _as_object(response: object) -> Mapping[str, Any]:
    if isinstance(response, (str, bytes)):
        response = _load_json(response, MAX_RESPONSE, "the response")
    if not isinstance(response, Mapping):
        _malformed("the response must be a JSON object")
    return response


def _text(value: object, name: str, limit: int) -> str:
    if type(value) is not str or len(value) > limit:
        _malformed(f"{name} must be a string of at most {limit} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        _malformed(f"{name} is not valid Unicode")
    return value


def _credential_fields(response: Mapping[str, Any]) -> tuple[str, bytes, Mapping[str, Any]]:
    if response.get("type") != "public-key":
        _malformed("type must be 'public-key'")
    raw_id = _unb64url(response.get("rawId"), "rawId", MAX_CREDENTIAL_ID)
    if response.get("id") != b64url(raw_id):
        _malformed("id must be the base64url of rawId")
    inner = response.get("response")
    if not isinstance(inner, Mapping):
        _malformed("response.response must be an object")
    extensions = response.get("clientExtensionResults", {})
    if not isinstance(extensions, Mapping):
        _malformed("clientExtensionResults must be an object")
    attachment = response.get("authenticatorAttachment")
    if attachment is not None:
        _text(attachment, "authenticatorAttachment", 32)
    return b64url(raw_id), raw_id, inner


@attrs.frozen
class ClientData:
    """The parts of ``clientDataJSON`` the checks read (internal)."""

    type: str
    challenge: bytes
    origin: str
    cross_origin: bool
    top_origin: str | None


def _client_data(raw: bytes) -> ClientData:
    data = _load_json(raw, _MAX_CLIENT_DATA, "clientDataJSON")
    if not isinstance(data, Mapping):
        _malformed("clientDataJSON must be an object")
    cross = data.get("crossOrigin", False)
    if type(cross) is not bool:
        _malformed("crossOrigin must be a boolean")
    top = data.get("topOrigin")
    return ClientData(
        type=_text(data.get("type"), "clientDataJSON.type", 32),
        challenge=_unb64url(data.get("challenge"), "challenge", 1024),
        origin=_text(data.get("origin"), "clientDataJSON.origin", 512),
        cross_origin=cross,
        top_origin=None if top is None else _text(top, "topOrigin", 512),
    )


@attrs.frozen
class _AuthData:
    rp_id_hash: bytes
    up: bool
    uv: bool
    be: bool
    bs: bool
    at: bool
    sign_count: int


def _auth_data(raw: bytes) -> _AuthData:
    if len(raw) < 37:
        _malformed("authenticator data is shorter than 37 bytes")
    flags = raw[32]
    return _AuthData(
        rp_id_hash=raw[:32],
        up=bool(flags & 0x01),
        uv=bool(flags & 0x04),
        be=bool(flags & 0x08),
        bs=bool(flags & 0x10),
        at=bool(flags & 0x40),
        sign_count=int.from_bytes(raw[33:37], "big"),
    )


@attrs.frozen
class RegistrationResponse:
    """A checked ``RegistrationResponseJSON`` (its sizes, types and encodings)."""

    credential_id: str
    raw_id: bytes = attrs.field(repr=False)
    client_data_json: bytes = attrs.field(repr=False)
    attestation_object: bytes = attrs.field(repr=False)
    transports: tuple[str, ...]
    discoverable: bool | None
    client_data: ClientData = attrs.field(repr=False)
    auth_data: bytes = attrs.field(repr=False)
    fmt: str
    fingerprint: str


@attrs.frozen
class AuthenticationResponse:
    """A checked ``AuthenticationResponseJSON`` (its sizes, types and encodings)."""

    credential_id: str
    raw_id: bytes = attrs.field(repr=False)
    client_data_json: bytes = attrs.field(repr=False)
    authenticator_data: bytes = attrs.field(repr=False)
    signature: bytes = attrs.field(repr=False)
    user_handle: str | None
    client_data: ClientData = attrs.field(repr=False)
    fingerprint: str


def _fingerprint(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(4, "big"))
        digest.update(part)
    return b64url(digest.digest())


def _cbor_attestation(raw: bytes) -> tuple[str, bytes]:
    """The ``fmt`` and ``authData`` of an attestation object (CBOR, via the extra's cbor2)."""
    cbor2 = _cbor2()
    decoded: object = None
    try:
        decoded = cbor2.loads(raw)
    except Exception:  # cbor2 raises many kinds for hostile input; all are malformed
        decoded = _UNREADABLE
    if decoded is _UNREADABLE:
        _malformed("attestationObject is not CBOR")
    if not isinstance(decoded, dict):
        _malformed("attestationObject must be a CBOR map")
    fmt, auth_data, statement = decoded.get("fmt"), decoded.get("authData"), decoded.get("attStmt")
    if type(fmt) is not str or len(fmt) > 32 or type(auth_data) is not bytes:
        _malformed("attestationObject lacks fmt or authData")
    if not isinstance(statement, dict):
        _malformed("attestationObject lacks attStmt")
    return fmt, auth_data


def parse_registration_response(response: object) -> RegistrationResponse:
    """Check a ``RegistrationResponseJSON`` (dict or JSON text) and return its parts.

    Raises :class:`~mfa_core.errors.WebAuthnError` (``WEBAUTHN_MALFORMED`` /
    ``WEBAUTHN_TOO_LARGE``) for anything that is not a well-formed response."""
    obj = _as_object(response)
    credential_id, raw_id, inner = _credential_fields(obj)
    client_data_json = _unb64url(inner.get("clientDataJSON"), "clientDataJSON", _MAX_CLIENT_DATA)
    attestation = _unb64url(inner.get("attestationObject"), "attestationObject", _MAX_ATTESTATION)
    transports_value = inner.get("transports", [])
    if not isinstance(transports_value, list) or len(transports_value) > _MAX_TRANSPORTS:
        _malformed("transports must be a short list")
    transports = []
    for transport in transports_value:
        if type(transport) is not str or not _TRANSPORT.match(transport):
            _malformed("a transport must be a short lowercase name")
        if transport not in transports:
            transports.append(transport)
    extensions = obj.get("clientExtensionResults", {})
    cred_props = extensions.get("credProps") if isinstance(extensions, Mapping) else None
    rk = cred_props.get("rk") if isinstance(cred_props, Mapping) else None
    fmt, auth_data = _cbor_attestation(attestation)
    return RegistrationResponse(
        credential_id=credential_id,
        raw_id=raw_id,
        client_data_json=client_data_json,
        attestation_object=attestation,
        transports=tuple(transports),
        discoverable=rk if type(rk) is bool else None,
        client_data=_client_data(client_data_json),
        auth_data=auth_data,
        fmt=fmt,
        fingerprint=_fingerprint(raw_id, client_data_json, attestation),
    )


def parse_authentication_response(response: object) -> AuthenticationResponse:
    """Check an ``AuthenticationResponseJSON`` (dict or JSON text) and return its parts.

    Raises :class:`~mfa_core.errors.WebAuthnError` (``WEBAUTHN_MALFORMED`` /
    ``WEBAUTHN_TOO_LARGE``) for anything that is not a well-formed response."""
    obj = _as_object(response)
    credential_id, raw_id, inner = _credential_fields(obj)
    client_data_json = _unb64url(inner.get("clientDataJSON"), "clientDataJSON", _MAX_CLIENT_DATA)
    auth_data = _unb64url(inner.get("authenticatorData"), "authenticatorData", _MAX_AUTH_DATA)
    signature = _unb64url(inner.get("signature"), "signature", _MAX_SIGNATURE)
    handle_value = inner.get("userHandle")
    user_handle = None
    if handle_value is not None:
        raw_handle = _unb64url(handle_value, "userHandle", _MAX_USER_HANDLE, empty=True)
        user_handle = b64url(raw_handle) if raw_handle else None
    _auth_data(auth_data)  # length check up front
    return AuthenticationResponse(
        credential_id=credential_id,
        raw_id=raw_id,
        client_data_json=client_data_json,
        authenticator_data=auth_data,
        signature=signature,
        user_handle=user_handle,
        client_data=_client_data(client_data_json),
        fingerprint=_fingerprint(raw_id, client_data_json, auth_data, signature),
    )


# -- challenges ----------------------------------------------------------------------------


def challenge_key(challenge: bytes) -> str:
    """The store key of a challenge: base64url SHA-256 (the store never holds the challenge)."""
    return b64url(hashlib.sha256(challenge).digest())


def new_challenge(
    config: WebAuthnConfig,
    ceremony: Ceremony,
    user_id: str | None,
    now: float,
    *,
    user_handle: str | None = None,
) -> tuple[bytes, WebAuthnChallenge]:
    """A fresh 32-byte challenge (CSPRNG) and the record to store for it."""
    challenge = secrets.token_bytes(_CHALLENGE_BYTES)
    record = WebAuthnChallenge(
        key=challenge_key(challenge),
        ceremony=ceremony,
        user_id=user_id,
        user_handle=user_handle,
        created_at=now,
        expires_at=now + float(config.challenge_ttl),
        user_verification=config.user_verification,
    )
    return challenge, record


def check_challenge(
    record: WebAuthnChallenge | None,
    fingerprint: str,
    ceremony: Ceremony,
    user_id: str | None,
    now: float,
) -> None:
    """Refuse (:class:`~mfa_core.errors.WebAuthnError`, ``WEBAUTHN_REFUSED``) unless
    ``record`` - what :meth:`~mfa_core.ports.WebAuthnStore.consume_webauthn_challenge`
    returned - was unused, unexpired, issued for ``ceremony`` and to ``user_id`` (``None``:
    a passkey sign-in, whose challenge names no user)."""
    if record is None:
        _refuse(WebAuthnReason.UNKNOWN_CHALLENGE, "the challenge is unknown or has expired")
    if record.used_by is not None:
        if record.used_by == fingerprint:
            _refuse(WebAuthnReason.REPLAYED, "this response was presented before")
        _refuse(WebAuthnReason.CHALLENGE_REUSED, "the challenge was used already")
    if now >= record.expires_at:
        _refuse(WebAuthnReason.CHALLENGE_EXPIRED, "the challenge has expired")
    if record.ceremony is not ceremony:
        _refuse(WebAuthnReason.WRONG_CEREMONY, "the challenge was issued for another ceremony")
    if record.user_id != user_id:
        _refuse(WebAuthnReason.WRONG_USER, "the challenge was issued to another user")


# -- options ------------------------------------------------------------------------------


def _lib() -> Any:
    try:
        import webauthn  # noqa: PLC0415 - optional extra, imported on use
        from webauthn.helpers import options_to_json, structs  # noqa: PLC0415
    except ImportError:
        raise MissingDependency(
            "security keys and passkeys need py_webauthn: pip install 'mfa_core[webauthn]'"
        ) from None
    return webauthn, structs, options_to_json


def _cbor2() -> Any:
    try:
        import cbor2  # noqa: PLC0415 - optional extra, imported on use
    except ImportError:
        raise MissingDependency(
            "security keys and passkeys need py_webauthn: pip install 'mfa_core[webauthn]'"
        ) from None
    return cbor2


def _descriptors(structs: Any, credentials: Sequence[WebAuthnCredential]) -> list[Any]:
    known = {t.value for t in structs.AuthenticatorTransport}
    return [
        structs.PublicKeyCredentialDescriptor(
            id=_unb64url(c.credential_id, "credential_id", MAX_CREDENTIAL_ID),
            transports=[structs.AuthenticatorTransport(t) for t in c.transports if t in known]
            or None,
        )
        for c in credentials
    ]


def registration_options(
    config: WebAuthnConfig,
    *,
    challenge: bytes,
    user_handle: str,
    user_name: str,
    display_name: str,
    exclude: Sequence[WebAuthnCredential] = (),
) -> dict[str, Any]:
    """``PublicKeyCredentialCreationOptionsJSON`` (a dict) for ``navigator.credentials.create``.

    ``exclude`` are the user's registered keys (``excludeCredentials``: the browser refuses to
    register one of them again)."""
    webauthn, structs, options_to_json = _lib()
    options = webauthn.generate_registration_options(
        rp_id=config.rp_id,
        rp_name=config.rp_name,
        user_name=user_name,
        user_id=_unb64url(user_handle, "user_handle", _MAX_USER_HANDLE),
        user_display_name=display_name,
        challenge=challenge,
        timeout=int(config.challenge_ttl * 1000),
        attestation=structs.AttestationConveyancePreference(config.attestation),
        authenticator_selection=structs.AuthenticatorSelectionCriteria(
            resident_key=structs.ResidentKeyRequirement(config.resident_key),
            user_verification=structs.UserVerificationRequirement(config.user_verification),
        ),
        exclude_credentials=_descriptors(structs, exclude),
        supported_pub_key_algs=[structs.COSEAlgorithmIdentifier(a) for a in config.algorithms],
    )
    result: dict[str, Any] = json.loads(options_to_json(options))
    result["extensions"] = {"credProps": True}
    return result


def authentication_options(
    config: WebAuthnConfig, *, challenge: bytes, allow: Sequence[WebAuthnCredential] = ()
) -> dict[str, Any]:
    """``PublicKeyCredentialRequestOptionsJSON`` (a dict) for ``navigator.credentials.get``;
    an empty ``allow`` asks for a discoverable credential (passkey sign-in)."""
    webauthn, structs, options_to_json = _lib()
    options = webauthn.generate_authentication_options(
        rp_id=config.rp_id,
        challenge=challenge,
        timeout=int(config.challenge_ttl * 1000),
        allow_credentials=_descriptors(structs, allow),
        user_verification=structs.UserVerificationRequirement(config.user_verification),
    )
    result: dict[str, Any] = json.loads(options_to_json(options))
    return result


# -- the checks -----------------------------------------------------------------------------


def _check_client_data(config: WebAuthnConfig, client: ClientData, expected_type: str) -> None:
    if client.type != expected_type:
        _refuse(WebAuthnReason.WRONG_CEREMONY, "clientDataJSON.type is not this ceremony's")
    if client.origin not in config.origins:
        _refuse(WebAuthnReason.WRONG_ORIGIN, "the origin is not one of the relying party's")
    if client.cross_origin:
        if not config.allow_cross_origin:
            _refuse(WebAuthnReason.CROSS_ORIGIN, "cross-origin ceremonies are not allowed")
        if client.top_origin is None or client.top_origin not in config.top_origins:
            _refuse(WebAuthnReason.CROSS_ORIGIN, "the top-level origin is not allowed")
    elif client.top_origin is not None and client.top_origin != client.origin:
        _refuse(WebAuthnReason.CROSS_ORIGIN, "a top-level origin without crossOrigin")


def _check_flags(config: WebAuthnConfig, auth: _AuthData, user_verification: str) -> None:
    if auth.rp_id_hash != hashlib.sha256(config.rp_id.encode("ascii")).digest():
        _refuse(WebAuthnReason.WRONG_RP_ID, "the RP ID hash is not the relying party's")
    if not auth.up:
        _refuse(WebAuthnReason.USER_NOT_PRESENT, "the user was not present (UP flag)")
    if not auth.uv and (config.requires_user_verification or user_verification == "required"):
        _refuse(WebAuthnReason.USER_NOT_VERIFIED, "user verification is required (UV flag)")


@attrs.frozen
class RegisteredKey:
    """What a successful registration yields (the fields of the new record)."""

    public_key: bytes = attrs.field(repr=False)
    sign_count: int
    aaguid: str
    attestation_format: str
    backup_eligible: bool
    backed_up: bool
    user_verified: bool


def check_registration(
    config: WebAuthnConfig, response: RegistrationResponse, challenge: WebAuthnChallenge
) -> RegisteredKey:
    """Check a registration response whose challenge record ``challenge`` was consumed for
    it (see :func:`check_challenge`); refuse with a :class:`WebAuthnReason`
    (:class:`~mfa_core.errors.WebAuthnError`, ``WEBAUTHN_REFUSED``)."""
    _check_client_data(config, response.client_data, "webauthn.create")
    auth = _auth_data(response.auth_data)
    _check_flags(config, auth, challenge.user_verification)
    if not auth.at:
        _malformed("no attested credential data")
    if response.fmt not in config.attestation_formats:
        _refuse(WebAuthnReason.BAD_ATTESTATION, "this attestation format is not accepted")
    webauthn, structs, _ = _lib()
    credential = structs.RegistrationCredential(
        id=response.credential_id,
        raw_id=response.raw_id,
        response=structs.AuthenticatorAttestationResponse(
            client_data_json=response.client_data_json,
            attestation_object=response.attestation_object,
        ),
    )
    algorithms = [structs.COSEAlgorithmIdentifier(a) for a in config.algorithms]
    certs = {
        structs.AttestationFormat(k): list(v) for k, v in config.attestation_root_certs.items()
    }
    failure: WebAuthnReason | None = None
    try:
        verified = webauthn.verify_registration_response(
            credential=credential,
            expected_challenge=response.client_data.challenge,
            expected_rp_id=config.rp_id,
            expected_origin=response.client_data.origin,
            require_user_verification=config.requires_user_verification,
            supported_pub_key_algs=algorithms,
            pem_root_certs_bytes_by_fmt=certs or None,
        )
    except webauthn.helpers.exceptions.InvalidRegistrationResponse as exc:
        unsupported = "Unsupported credential public key alg" in str(exc)
        failure = (
            WebAuthnReason.UNSUPPORTED_ALGORITHM if unsupported else WebAuthnReason.BAD_ATTESTATION
        )
    except Exception:  # the library's parsers raise many kinds on hostile CBOR
        failure = WebAuthnReason.MALFORMED
    # raised outside the handlers: no library exception (quoting the response) in the chain
    if failure is WebAuthnReason.MALFORMED:
        _malformed("the attestation object could not be read")
    if failure is not None:
        _refuse(failure, "the attestation or the key is not accepted")
    if bytes(verified.credential_id) != response.raw_id:
        _refuse(WebAuthnReason.BAD_ATTESTATION, "the attested credential id is not rawId")
    public_key = bytes(verified.credential_public_key)
    if len(public_key) > MAX_PUBLIC_KEY:
        _malformed("the public key is too large")
    return RegisteredKey(
        public_key=public_key,
        sign_count=int(verified.sign_count),
        aaguid=str(verified.aaguid),
        attestation_format=str(getattr(verified.fmt, "value", verified.fmt)),
        backup_eligible=auth.be,
        backed_up=auth.bs,
        user_verified=auth.uv,
    )


@attrs.frozen
class AssertionOutcome:
    """What a verified assertion says (for the counter's compare-and-set)."""

    sign_count: int
    backed_up: bool
    user_verified: bool


def check_sign_count(stored: int, presented: int) -> None:
    """Refuse ``CLONED_AUTHENTICATOR`` unless the counter advances (W3C WebAuthn §7.2 step
    21); an authenticator that keeps no counter (both 0) passes."""
    if (presented != 0 or stored != 0) and presented <= stored:
        _refuse(WebAuthnReason.CLONED_AUTHENTICATOR, "the signature counter did not advance")


def check_authentication(
    config: WebAuthnConfig,
    response: AuthenticationResponse,
    challenge: WebAuthnChallenge,
    credential: WebAuthnCredential,
) -> AssertionOutcome:
    """Check an assertion with the stored ``credential`` (its owner and state checked by
    the caller); refuse with a :class:`WebAuthnReason`
    (:class:`~mfa_core.errors.WebAuthnError`, ``WEBAUTHN_REFUSED``). The counter is compared
    here; the store's compare-and-set decides concurrent uses."""
    if response.user_handle is not None and response.user_handle != credential.user_handle:
        _refuse(WebAuthnReason.CREDENTIAL_OF_ANOTHER_USER, "the user handle names another user")
    _check_client_data(config, response.client_data, "webauthn.get")
    auth = _auth_data(response.authenticator_data)
    _check_flags(config, auth, challenge.user_verification)
    webauthn, structs, _ = _lib()
    assertion = structs.AuthenticationCredential(
        id=response.credential_id,
        raw_id=response.raw_id,
        response=structs.AuthenticatorAssertionResponse(
            client_data_json=response.client_data_json,
            authenticator_data=response.authenticator_data,
            signature=response.signature,
        ),
    )
    verified = True
    try:
        webauthn.verify_authentication_response(
            credential=assertion,
            expected_challenge=response.client_data.challenge,
            expected_rp_id=config.rp_id,
            expected_origin=response.client_data.origin,
            credential_public_key=credential.public_key,
            credential_current_sign_count=0,  # compared below, by mfa_core, with its reason
            require_user_verification=config.requires_user_verification,
        )
    except Exception:  # InvalidAuthenticationResponse, or a key or signature it cannot read
        verified = False
    if not verified:  # raised outside the handler: the library's exception is not chained
        _refuse(WebAuthnReason.BAD_SIGNATURE, "the assertion signature does not verify")
    check_sign_count(credential.sign_count, auth.sign_count)
    return AssertionOutcome(sign_count=auth.sign_count, backed_up=auth.bs, user_verified=auth.uv)
