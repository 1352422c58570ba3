"""mfa_core: a framework-free, storage-agnostic two-factor authentication core.

What a login flow needs is here: :class:`MFAService` with its :class:`ServiceConfig`, the
results it returns (:class:`VerificationResult`, :class:`RecoveryVerificationResult`,
:class:`OOBVerificationResult`, :class:`Enrolment`, :class:`VerifyReason`),
:class:`AESGCMSealer` for the keys at rest, and the errors (:class:`MFAError` and its
subclasses). The stores live in :mod:`mfa_core.stores` (``MemoryStore``,
``SQLiteStore``; Redis and SQL in their own modules), the asyncio front end in
:mod:`mfa_core.aio`::

    from mfa_core import AESGCMSealer, MFAService, ServiceConfig
    from mfa_core.stores import SQLiteStore

    store = SQLiteStore("mfa.sqlite3")
    sealer = AESGCMSealer.generate()  # keep the key: AESGCMSealer(keys, current_key_id=...)
    service = MFAService(store, store, sealer, config=ServiceConfig(issuer="Example"))

The primitives (RFC 4226 HOTP, RFC 6238 TOTP, keys, ``otpauth://`` URIs) and the policy
engine's main names are re-exported too, from :mod:`mfa_core.otp`, :mod:`mfa_core.keys`,
:mod:`mfa_core.uri` and :mod:`mfa_core.policy`. The primitives carry NO replay
protection, throttling or lifecycle: a code that :func:`verify_totp` accepts is accepted
again on the next call. Use them to build or test, and the service to log users in.
"""

from __future__ import annotations

from .errors import (
    CredentialNotFound,
    ErrorCode,
    IllegalTransition,
    InvalidParameter,
    MFAError,
    MissingDependency,
    OutOfBandError,
    SealingError,
    StepUpRequired,
    StoreError,
    StoreUnavailable,
    Throttled,
)
from .keys import b32decode_key, b32encode_key, generate_key
from .otp import Algorithm, hotp, totp, verify_hotp, verify_totp
from .policy import Decision, Policy, RequestContext, evaluate, explain
from .sealing import AESGCMSealer
from .service import (
    Enrolment,
    MFAService,
    OOBVerificationResult,
    RecoveryVerificationResult,
    ServiceConfig,
    VerificationResult,
    VerifyReason,
)
from .uri import OTPAuthURI, build_uri, parse_uri

__version__ = "0.1.0"

__all__ = [
    "AESGCMSealer",
    "Algorithm",
    "CredentialNotFound",
    "Decision",
    "Enrolment",
    "ErrorCode",
    "IllegalTransition",
    "InvalidParameter",
    "MFAError",
    "MFAService",
    "MissingDependency",
    "OOBVerificationResult",
    "OTPAuthURI",
    "OutOfBandError",
    "Policy",
    "RecoveryVerificationResult",
    "RequestContext",
    "SealingError",
    "ServiceConfig",
    "StepUpRequired",
    "StoreError",
    "StoreUnavailable",
    "Throttled",
    "VerificationResult",
    "VerifyReason",
    "__version__",
    "b32decode_key",
    "b32encode_key",
    "build_uri",
    "evaluate",
    "explain",
    "generate_key",
    "hotp",
    "parse_uri",
    "totp",
    "verify_hotp",
    "verify_totp",
]
