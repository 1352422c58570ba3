"""The one exception tree of mfa_core.

Every error the library raises for bad input or a refused operation derives from
:class:`MFAError` and carries a stable, machine-readable :class:`ErrorCode` that a host
can map to a user-facing message or an HTTP status. Messages never contain a secret, a
key or a submitted code.

::

    MFAError                         (code: ErrorCode)
    ├── InvalidParameter             digits, period, window, counter, time out of range
    │   └── UnsupportedAlgorithm     MD5, SHA-3 names, unknown algorithms
    ├── InvalidKey                   key too short, too long, wrong type
    │   └── InvalidBase32            a base32 secret that does not decode
    ├── InvalidURI                   otpauth:// URIs that cannot be built or parsed
    ├── MissingDependency            an optional extra (qr, redis, sql) is not installed
    ├── StoreError                   a store failed; the operation was refused (fail closed)
    │   └── StoreUnavailable         the store could not be reached
    ├── SealingError                 a sealed secret could not be sealed or unsealed
    ├── CredentialNotFound           no such credential for this user
    ├── IllegalTransition            a lifecycle transition not allowed from this state
    ├── StepUpRequired               a fresh second-factor check is needed first
    ├── Throttled                    too many failures (``retry_after`` seconds)
    ├── CooldownActive               an out-of-band resend is too early (``retry_after``)
    ├── OutOfBandError               an out-of-band code cannot be sent (policy, delivery, id)
    │   └── SendLimitExceeded        too many codes sent to a user or destination (``retry_after``)
    ├── PolicyError                  a policy document that is not valid
    └── WebAuthnError                a WebAuthn response or option that is malformed or refused
"""

from __future__ import annotations

import enum

__all__ = [
    "CooldownActive",
    "CredentialNotFound",
    "ErrorCode",
    "IllegalTransition",
    "InvalidBase32",
    "InvalidKey",
    "InvalidParameter",
    "InvalidURI",
    "MFAError",
    "MissingDependency",
    "OutOfBandError",
    "PolicyError",
    "SealingError",
    "SendLimitExceeded",
    "StepUpRequired",
    "StoreError",
    "StoreUnavailable",
    "Throttled",
    "UnsupportedAlgorithm",
    "WebAuthnError",
]


class ErrorCode(enum.StrEnum):
    """Stable machine-readable error codes; the values never change between releases."""

    INVALID_PARAMETER = "invalid_parameter"
    INVALID_DIGITS = "invalid_digits"
    INVALID_PERIOD = "invalid_period"
    INVALID_WINDOW = "invalid_window"
    INVALID_COUNTER = "invalid_counter"
    INVALID_TIME = "invalid_time"
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
    INVALID_KEY = "invalid_key"
    KEY_TOO_SHORT = "key_too_short"
    INVALID_BASE32 = "invalid_base32"
    INVALID_URI = "invalid_uri"
    URI_TOO_LONG = "uri_too_long"
    URI_BAD_SCHEME = "uri_bad_scheme"
    URI_BAD_TYPE = "uri_bad_type"
    URI_MISSING_SECRET = "uri_missing_secret"  # noqa: S105 - an error code, not a secret
    URI_MISSING_COUNTER = "uri_missing_counter"
    URI_ISSUER_MISMATCH = "uri_issuer_mismatch"
    URI_INVALID_LABEL = "uri_invalid_label"
    URI_UNSUPPORTED_ENCODER = "uri_unsupported_encoder"
    INVALID_CODE = "invalid_code"
    MISSING_DEPENDENCY = "missing_dependency"
    STORE_ERROR = "store_error"
    STORE_UNAVAILABLE = "store_unavailable"
    STORE_SCHEMA_TOO_NEW = "store_schema_too_new"
    SEALING_FAILED = "sealing_failed"
    UNSEALING_FAILED = "unsealing_failed"
    UNKNOWN_SEALING_KEY = "unknown_sealing_key"
    PLAINTEXT_NOT_ALLOWED = "plaintext_not_allowed"
    CREDENTIAL_NOT_FOUND = "credential_not_found"
    ILLEGAL_TRANSITION = "illegal_transition"
    STEP_UP_REQUIRED = "step_up_required"
    THROTTLED = "throttled"
    LOCKED = "locked"
    COOLDOWN_ACTIVE = "cooldown_active"
    INVALID_POLICY = "invalid_policy"
    OOB_CHANNEL_NOT_ALLOWED = "oob_channel_not_allowed"
    OOB_CHALLENGE_NOT_FOUND = "oob_challenge_not_found"
    OOB_DELIVERY_FAILED = "oob_delivery_failed"
    OOB_SEND_LIMIT = "oob_send_limit"
    OOB_DESTINATION_MISMATCH = "oob_destination_mismatch"
    WEBAUTHN_MALFORMED = "webauthn_malformed"
    WEBAUTHN_TOO_LARGE = "webauthn_too_large"
    WEBAUTHN_REFUSED = "webauthn_refused"
    WEBAUTHN_NOT_CONFIGURED = "webauthn_not_configured"


class MFAError(Exception):
    """Base class of every error mfa_core raises.

    ``code`` is a stable :class:`ErrorCode`; ``str(error)`` is a human sentence that never
    contains a secret or a submitted code.
    """

    default_code: ErrorCode = ErrorCode.INVALID_PARAMETER

    def __init__(self, message: str, *, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        self.code: ErrorCode = code if code is not None else self.default_code
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code.value!r}, message={self.message!r})"


class InvalidParameter(MFAError):
    """A parameter (digits, period, window, counter, time, ...) is out of range."""

    default_code = ErrorCode.INVALID_PARAMETER


class UnsupportedAlgorithm(InvalidParameter):
    """The hash algorithm is unknown or too weak (only SHA1, SHA256, SHA512 are allowed)."""

    default_code = ErrorCode.UNSUPPORTED_ALGORITHM


class InvalidKey(MFAError):
    """A key is of the wrong type, too short or too long."""

    default_code = ErrorCode.INVALID_KEY


class InvalidBase32(InvalidKey):
    """A base32 secret does not decode."""

    default_code = ErrorCode.INVALID_BASE32


class InvalidURI(MFAError):
    """An ``otpauth://`` URI cannot be built or parsed; ``code`` names the problem."""

    default_code = ErrorCode.INVALID_URI


class MissingDependency(MFAError, ImportError):
    """An optional extra is needed for this feature; the message says which to install.

    It is also an :class:`ImportError`, so the usual feature check works unchanged::

        try:
            from mfa_core.stores.redis import RedisStore
        except ImportError:
            RedisStore = None
    """

    default_code = ErrorCode.MISSING_DEPENDENCY


class StoreError(MFAError):
    """A store operation failed; the attempt was refused and nothing was half-written."""

    default_code = ErrorCode.STORE_ERROR


class StoreUnavailable(StoreError):
    """The store could not be reached (connection refused, dropped or timed out)."""

    default_code = ErrorCode.STORE_UNAVAILABLE


class SealingError(MFAError):
    """A secret could not be sealed or unsealed (wrong key, tampered or misplaced data)."""

    default_code = ErrorCode.UNSEALING_FAILED


class CredentialNotFound(MFAError):
    """No credential with this id exists for this user."""

    default_code = ErrorCode.CREDENTIAL_NOT_FOUND


class IllegalTransition(MFAError):
    """A lifecycle transition is not allowed from the credential's current state."""

    default_code = ErrorCode.ILLEGAL_TRANSITION


class StepUpRequired(MFAError):
    """A fresh successful second-factor verification is required before this operation."""

    default_code = ErrorCode.STEP_UP_REQUIRED


class Throttled(MFAError):
    """Too many failures: the operation is refused for ``retry_after`` seconds (or locked)."""

    default_code = ErrorCode.THROTTLED

    def __init__(
        self, message: str, *, retry_after: float | None, code: ErrorCode | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class CooldownActive(MFAError):
    """An out-of-band code was resent too early; retry after ``retry_after`` seconds."""

    default_code = ErrorCode.COOLDOWN_ACTIVE

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OutOfBandError(MFAError):
    """An out-of-band code cannot be sent or resent; ``code`` says why:
    ``OOB_CHANNEL_NOT_ALLOWED`` (refused by policy, e.g. email login codes once an
    authenticator is enabled), ``OOB_CHALLENGE_NOT_FOUND`` (no such challenge for this
    user), ``OOB_DELIVERY_FAILED`` (the host's code sender failed), ``OOB_SEND_LIMIT``
    (:class:`SendLimitExceeded`) or ``OOB_DESTINATION_MISMATCH`` (a resend to an address or
    number other than the one the challenge was started for)."""

    default_code = ErrorCode.OOB_CHALLENGE_NOT_FOUND


class SendLimitExceeded(OutOfBandError):
    """Too many out-of-band codes were sent to this user or to this destination in the
    current window (code ``OOB_SEND_LIMIT``); nothing was sent. Retry after
    ``retry_after`` seconds (when the window ends)."""

    default_code = ErrorCode.OOB_SEND_LIMIT

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PolicyError(MFAError):
    """A policy document is malformed or has values out of range."""

    default_code = ErrorCode.INVALID_POLICY


class WebAuthnError(MFAError):
    """A WebAuthn response is malformed (``WEBAUTHN_MALFORMED``: wrong JSON, types, base64url
    or CBOR; ``WEBAUTHN_TOO_LARGE``: over the size limits) or a ceremony check refused it
    (``WEBAUTHN_REFUSED``; ``reason`` is the finer
    :class:`~mfa_core.webauthn.WebAuthnReason` value), or WebAuthn is not configured
    (``WEBAUTHN_NOT_CONFIGURED``). The message never quotes the response."""

    default_code = ErrorCode.WEBAUTHN_MALFORMED

    def __init__(self, message: str, *, code: ErrorCode | None = None, reason: str = "") -> None:
        super().__init__(message, code=code)
        self.reason = reason
