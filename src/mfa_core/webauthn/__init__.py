"""Security keys and passkeys (W3C WebAuthn Level 3) as a second factor, or a sign-in.

The ceremonies are checked by Duo's py_webauthn (the ``webauthn`` extra:
``pip install 'mfa_core[webauthn]'``, imported lazily; :class:`~mfa_core.errors.MissingDependency`
without it) plus mfa_core's own checks (:mod:`mfa_core.webauthn.ceremony`); the state (keys,
sign counts, single-use challenges) lives behind :class:`~mfa_core.ports.WebAuthnStore`;
:class:`~mfa_core.service.MFAService` runs the flows. See ``docs/webauthn.md``.
"""

from __future__ import annotations

from .ceremony import (
    MAX_RESPONSE,
    AssertionOutcome,
    AuthenticationResponse,
    RegisteredKey,
    RegistrationResponse,
    WebAuthnReason,
    authentication_options,
    challenge_key,
    check_authentication,
    check_challenge,
    check_registration,
    check_sign_count,
    new_challenge,
    parse_authentication_response,
    parse_registration_response,
    registration_options,
)
from .config import ATTESTATION_FORMATS, DEFAULT_ALGORITHMS, WebAuthnConfig
from .records import (
    MAX_CREDENTIAL_ID,
    MAX_NICKNAME,
    MAX_PUBLIC_KEY,
    Ceremony,
    WebAuthnChallenge,
    WebAuthnCredential,
)

__all__ = [
    "ATTESTATION_FORMATS",
    "DEFAULT_ALGORITHMS",
    "MAX_CREDENTIAL_ID",
    "MAX_NICKNAME",
    "MAX_PUBLIC_KEY",
    "MAX_RESPONSE",
    "AssertionOutcome",
    "AuthenticationResponse",
    "Ceremony",
    "RegisteredKey",
    "RegistrationResponse",
    "WebAuthnChallenge",
    "WebAuthnConfig",
    "WebAuthnCredential",
    "WebAuthnReason",
    "authentication_options",
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
