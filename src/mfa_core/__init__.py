"""mfa_core: a framework-free, storage-agnostic two-factor authentication core.

The primitives (RFC 4226 HOTP, RFC 6238 TOTP, keys, ``otpauth://`` URIs), the policy
engine's main names (``evaluate``, ``explain``, ``Policy``, ``RequestContext``, ``Decision``)
and the service's (``MFAService``, ``ServiceConfig``, ``Enrolment``, ``VerificationResult``,
``VerifyReason``) are re-exported here; the stores live in :mod:`mfa_core.stores`.
"""

from __future__ import annotations

from .errors import ErrorCode, MFAError
from .keys import b32decode_key, b32encode_key, generate_key
from .otp import Algorithm, hotp, totp, verify_hotp, verify_totp
from .policy import Decision, Policy, RequestContext, evaluate, explain
from .service import Enrolment, MFAService, ServiceConfig, VerificationResult, VerifyReason
from .uri import OTPAuthURI, build_uri, parse_uri

__version__ = "0.1.0"

__all__ = [
    "Algorithm",
    "Decision",
    "Enrolment",
    "ErrorCode",
    "MFAError",
    "MFAService",
    "OTPAuthURI",
    "Policy",
    "RequestContext",
    "ServiceConfig",
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
