"""What a :class:`~mfa_core.ports.WebAuthnStore` holds: credentials and challenges.

Pure values (attrs, frozen); nothing here imports the ``webauthn`` extra, so
:mod:`mfa_core.ports` can name them without it.
"""

from __future__ import annotations

import enum
from typing import Final

import attrs

from ..models import CredentialState

__all__ = [
    "MAX_CREDENTIAL_ID",
    "MAX_NICKNAME",
    "MAX_PUBLIC_KEY",
    "Ceremony",
    "WebAuthnChallenge",
    "WebAuthnCredential",
]

MAX_CREDENTIAL_ID: Final = 1023
"""Longest credential id in bytes (W3C WebAuthn Level 3: at most 1023 bytes)."""
MAX_PUBLIC_KEY: Final = 2048
"""Longest COSE public key a store accepts, in bytes (an RSA-4096 key is about 550)."""
MAX_NICKNAME: Final = 64
"""Longest nickname a user may give a key."""


class Ceremony(enum.StrEnum):
    """Which WebAuthn ceremony a challenge was issued for."""

    REGISTRATION = "registration"
    """``navigator.credentials.create()``: a new key."""
    AUTHENTICATION = "authentication"
    """``navigator.credentials.get()``: an assertion with a registered key."""


@attrs.frozen(kw_only=True)
class WebAuthnCredential:
    """One registered security key or passkey of one user.

    ``credential_id`` (base64url of the raw id, unique across all users) is the key. Only
    the sign count, ``backed_up`` and ``last_used_at`` change on use, through ONE
    compare-and-set (:meth:`~mfa_core.ports.WebAuthnStore.advance_sign_count`); the other
    fields change through :meth:`~mfa_core.ports.WebAuthnStore.update_webauthn_credential`
    (compare-and-set on ``version``). Nothing here is secret: the public key is public.
    """

    credential_id: str
    """base64url (no padding) of the credential's raw id."""
    user_id: str
    """The host's user id."""
    user_handle: str
    """base64url of the WebAuthn ``user.id`` given at registration (random, never the user
    id); a passkey sign-in names the user by it."""
    public_key: bytes = attrs.field(repr=False)
    """The credential public key, COSE_Key encoded (RFC 9052)."""
    sign_count: int = 0
    """The last signature counter accepted (0: the authenticator keeps none, or never used)."""
    created_at: float
    """When it was registered (Unix seconds)."""
    status: CredentialState = CredentialState.ACTIVE
    """ACTIVE or DISABLED (the stored states a WebAuthn credential has)."""
    transports: tuple[str, ...] = ()
    """What the browser reported (``usb``, ``nfc``, ``ble``, ``internal``, ``hybrid``...)."""
    aaguid: str = "00000000-0000-0000-0000-000000000000"
    """The authenticator model's AAGUID (all zero for "none" attestation)."""
    backup_eligible: bool = False
    """BE flag at registration: a multi-device credential (a synced passkey)."""
    backed_up: bool = False
    """BS flag as last seen: the credential is backed up."""
    discoverable: bool = False
    """Registered as a discoverable credential (a passkey: sign-in without a user name)."""
    attestation_format: str = "none"
    """The attestation statement format verified at registration."""
    nickname: str = ""
    """A name the user gave the key ("blue YubiKey")."""
    last_used_at: float | None = None
    """When it last signed in (Unix seconds)."""
    disabled_at: float | None = None
    """When it was disabled."""
    version: int = 0
    """Compare-and-set token of :meth:`~mfa_core.ports.WebAuthnStore.update_webauthn_credential`."""


@attrs.frozen(kw_only=True)
class WebAuthnChallenge:
    """One issued WebAuthn challenge: single use, bound to a user and a ceremony.

    ``key`` is the base64url SHA-256 of the challenge bytes (the store never holds the
    challenge itself; the response's ``clientDataJSON`` names it). ``used_by`` is set, once,
    by :meth:`~mfa_core.ports.WebAuthnStore.consume_webauthn_challenge` to the fingerprint
    of the response that consumed it: a later response is a replay of the same one
    (``used_by`` matches) or another response over a reused challenge.
    """

    key: str
    """base64url of SHA-256(challenge)."""
    ceremony: Ceremony
    """Registration or authentication."""
    user_id: str | None
    """The user it was issued to; ``None`` for a passkey sign-in (no user named yet)."""
    user_handle: str | None = None
    """Registration: the ``user.id`` (base64url) the options carried."""
    created_at: float
    """When it was issued (Unix seconds)."""
    expires_at: float
    """When it stops being accepted (Unix seconds)."""
    user_verification: str = "preferred"
    """What the options asked: ``required``, ``preferred`` or ``discouraged``."""
    used_by: str | None = None
    """Fingerprint (base64url SHA-256) of the response that consumed it, or ``None``."""
