"""The results of the service's operations, and the texts a user is shown.

Every operation that decides on a code returns a :class:`VerificationResult` (or a subclass
with the finer reason of its factor): accepted, or refused with a machine-readable
:class:`VerifyReason` for the host and the audit log, and one uniform
:attr:`~VerificationResult.user_message` for the user.
"""

from __future__ import annotations

import enum
from typing import Final

import attrs

from ..models import CredentialKind, CredentialState
from ..oob import USER_MESSAGE as OOB_USER_MESSAGE
from ..oob import OOBReason
from ..otp import Algorithm
from ..recovery import USER_MESSAGE as RECOVERY_USER_MESSAGE
from ..recovery import RecoveryReason
from ..webauthn.ceremony import WebAuthnReason

__all__ = [
    "ACCEPTED_MESSAGE",
    "EXPIRED_MESSAGE",
    "INVALID_CODE_MESSAGE",
    "UNAVAILABLE_MESSAGE",
    "WEBAUTHN_USER_MESSAGE",
    "CredentialInfo",
    "Enrolment",
    "OOBVerificationResult",
    "RecoveryVerificationResult",
    "VerificationResult",
    "VerifyReason",
    "WebAuthnResult",
]

INVALID_CODE_MESSAGE: Final = "invalid code"
"""What a user is told for a wrong, replayed, malformed, throttled or locked-out attempt."""
EXPIRED_MESSAGE: Final = "this authenticator has expired; please set it up again"
"""What a user is told when strict expiry refuses an expired credential."""
UNAVAILABLE_MESSAGE: Final = "verification is unavailable right now; please try again later"
"""What a user is told when a store or the sealer failed (the attempt was refused)."""
ACCEPTED_MESSAGE: Final = "code accepted"
"""What a user is told when the code was accepted."""


class VerifyReason(enum.StrEnum):
    """Why a code was accepted or refused: for the host and the audit log, not for users.

    Users see :attr:`VerificationResult.user_message`, the same text for every refusal that
    concerns the code itself.
    """

    OK = "ok"
    """Accepted."""
    INVALID_CODE = "invalid_code"
    """The code matches no usable credential's window."""
    MALFORMED = "malformed"
    """Not a code at all (wrong length, non-ASCII digits, ...); no HMAC was computed."""
    REPLAYED = "replayed"
    """The code's step/counter was accepted before, or a later one was."""
    THROTTLED = "throttled"
    """Too soon after the last failure; refused without looking at the code."""
    LOCKED = "locked"
    """Too many consecutive failures; refused without looking at the code."""
    EXPIRED = "expired"
    """Strict expiry: the user's only credentials have expired and must be renewed."""
    NO_CREDENTIAL = "no_credential"
    """The user has no credential that can authenticate (none, pending or disabled)."""
    STORE_ERROR = "store_error"
    """A store failed; the attempt was refused (fail closed)."""
    SEALING_ERROR = "sealing_error"
    """A sealed key could not be unsealed; the attempt was refused (fail closed)."""
    CONFLICT = "conflict"
    """The credential changed concurrently (e.g. reset while being confirmed)."""


_FAILURE_MESSAGES: Final = {
    VerifyReason.OK: ACCEPTED_MESSAGE,
    VerifyReason.EXPIRED: EXPIRED_MESSAGE,
    VerifyReason.STORE_ERROR: UNAVAILABLE_MESSAGE,
    VerifyReason.SEALING_ERROR: UNAVAILABLE_MESSAGE,
}


@attrs.frozen(kw_only=True)
class VerificationResult:
    """The outcome of one verification (also of a confirmation or an HOTP resync).

    Never holds a key or the submitted code.
    """

    accepted: bool
    """Whether the second factor succeeded."""
    reason: VerifyReason
    """Machine-readable reason (for the host and the audit log)."""
    credential_id: str | None = None
    """The credential that matched (or that a replay or failure concerned), if known."""
    matched: int | None = None
    """The accepted TOTP time step or HOTP counter value."""
    offset: int | None = None
    """Distance of the match from the window centre: from ``now + learned drift`` for TOTP
    (in steps), from the expected next counter for HOTP."""
    drift: int | None = None
    """TOTP: the authenticator's clock offset in steps as now learned (bounded by
    ``max_drift``); ``None`` for HOTP."""
    renewal_due: bool = False
    """The matched credential is past ``max_age``: ask the user to re-enrol."""
    retry_after: float | None = None
    """Seconds until the next attempt is allowed, when throttled or locked (``None``: no
    wait, or locked until an administrator unlocks)."""
    factor: str | None = None
    """The kind of factor that was checked, as a :class:`~mfa_core.policy.Factor` value
    (``"totp"``, ``"hotp"``, ``"recovery_code"``, ``"sms_code"``, ``"email_code"``), when
    known: what a host records as the last check for :func:`~mfa_core.policy.evaluate`."""
    skew_steps: int | None = None
    """Clock-skew diagnosis (audit only, never shown to the user): a refused TOTP code
    matched this many time steps away from the authenticator's expected step (``None``:
    no diagnosis asked for, or nothing matched)."""
    skew_seconds: float | None = None
    """:attr:`skew_steps` in seconds (steps times the credential's period)."""

    @property
    def user_message(self) -> str:
        """The text to show the user: one uniform "invalid code" for every refusal about the
        code (wrong, malformed, replayed, throttled, locked), a distinct one for strict
        expiry and for a store outage."""
        return _FAILURE_MESSAGES.get(self.reason, INVALID_CODE_MESSAGE)


@attrs.frozen(kw_only=True)
class Enrolment:
    """A started enrolment or renewal: show :attr:`uri` (as a QR code) or :attr:`secret` once.

    The key itself is kept only sealed; neither the secret nor the URI (which contains it)
    appears in ``repr`` or takes part in ``==``.
    """

    credential_id: str
    """Id of the new PENDING credential: pass it to ``confirm_enrolment``."""
    user_id: str
    """The user enrolling."""
    kind: CredentialKind
    """TOTP or HOTP."""
    expires_at: float
    """Deadline for confirming (Unix seconds); later the enrolment can only be abandoned."""
    replaces: str | None = None
    """For a renewal: the credential that keeps working until this one is confirmed."""
    secret: str = attrs.field(repr=False, eq=False)
    """The key in base32, for typing into an app. Show once; never store or log it."""
    uri: str = attrs.field(repr=False, eq=False)
    """The ``otpauth://`` provisioning URI (contains the secret). Show once as a QR code."""
    challenge_id: str | None = None
    """SMS/email enrolment: the challenge of the confirmation code sent to the destination
    (``secret`` and ``uri`` are then empty)."""
    destination: str | None = None
    """SMS/email enrolment: the masked destination (``***67``, ``a***@example.com``)."""


@attrs.frozen(kw_only=True)
class CredentialInfo:
    """A credential as a host shows it: effective state, due dates, no key material."""

    id: str
    """Credential id."""
    user_id: str
    """Owner."""
    kind: CredentialKind
    """TOTP or HOTP."""
    label: str
    """The name the user gave the device."""
    state: CredentialState
    """Effective state now (expiry derived from timestamps)."""
    can_authenticate: bool
    """Whether a code of this credential would be accepted now."""
    renewal_due: bool
    """Past ``max_age``: the user should renew."""
    created_at: float
    """When enrolment started."""
    confirmed_at: float | None
    """When the enrolment was confirmed."""
    renewed_at: float | None
    """Start of the current validity period."""
    expires_at: float | None
    """When it becomes (or became) EXPIRED; ``None`` until confirmed."""
    pending_until: float | None
    """Deadline of a pending enrolment."""
    disabled_at: float | None
    """When it was disabled."""
    replaces: str | None
    """For a pending renewal: the credential it will replace."""
    digits: int
    """Code length."""
    algorithm: Algorithm
    """HMAC hash."""
    period: int
    """TOTP time step in seconds."""
    needs_reseal: bool
    """The sealed key was made with a sealing key other than the current one."""
    destination: str | None = None
    """SMS/email factors: the masked destination (``***67``); ``None`` for authenticators
    (or ``"***"`` when the sealed destination could not be unsealed)."""


def _message(accepted: bool, reason: VerifyReason, refusal: str) -> str:
    if accepted:
        return ACCEPTED_MESSAGE
    if reason in (VerifyReason.STORE_ERROR, VerifyReason.SEALING_ERROR):
        return UNAVAILABLE_MESSAGE
    return refusal


@attrs.frozen(kw_only=True)
class RecoveryVerificationResult(VerificationResult):
    """The outcome of :meth:`~mfa_core.service.MFAService.verify_recovery_code`.

    ``reason`` is the shared :class:`~mfa_core.service.VerifyReason` (``ok``,
    ``invalid_code``, ``malformed``, ``replayed`` for a code used before, ``throttled``,
    ``locked``, ``no_credential`` when the user has no codes, ``store_error``);
    ``recovery_reason`` is the finer :class:`~mfa_core.recovery.RecoveryReason` when the
    attempt got that far. Users see one message for every refusal about the code.
    """

    recovery_reason: RecoveryReason | None = None
    """Why the recovery check decided as it did (``None`` when it did not run)."""
    codes_left: int | None = None
    """Unused codes left after a successful use."""
    running_low: bool = False
    """``codes_left`` is at or below the configured threshold: offer a new set."""
    regenerate_recommended: bool = False
    """The set was hashed with outdated Argon2id parameters (or is running low): offer
    (or, by policy, require) a new set."""

    @property
    def user_message(self) -> str:
        """ "code accepted"; "invalid code" for every refusal about the code; the
        "unavailable" text when a store failed."""
        return _message(self.accepted, self.reason, RECOVERY_USER_MESSAGE)


@attrs.frozen(kw_only=True)
class OOBVerificationResult(VerificationResult):
    """The outcome of :meth:`~mfa_core.service.MFAService.verify_oob_code`.

    ``reason`` is the shared :class:`~mfa_core.service.VerifyReason`; ``oob_reason`` is
    the audit reason of :class:`~mfa_core.oob.OOBReason` (``expired``, ``used``,
    ``wrong_purpose``, ``wrong_challenge``, ``wrong_code``, ``too_many_attempts``,
    ``malformed``) when the attempt got that far. Users see one message,
    "invalid code", for every refusal about the code.
    """

    oob_reason: OOBReason | None = None
    """Why the out-of-band check decided as it did (``None`` when it did not run)."""
    challenge_id: str | None = None
    """The challenge the attempt was for."""

    @property
    def user_message(self) -> str:
        """ "code accepted"; "invalid code" for every refusal about the code;
        the "unavailable" text when a store failed."""
        return _message(self.accepted, self.reason, OOB_USER_MESSAGE)


WEBAUTHN_USER_MESSAGE: Final = "the security key or passkey was not accepted"
"""What a user is told for every refused WebAuthn response."""


@attrs.frozen(kw_only=True)
class WebAuthnResult(VerificationResult):
    """The outcome of finishing a WebAuthn registration or authentication.

    ``reason`` is the shared :class:`~mfa_core.service.VerifyReason` (``ok``, ``malformed``,
    ``replayed`` for a replayed response or a reused challenge, ``throttled``, ``locked``,
    ``store_error``, ``invalid_code`` for every other refusal); ``webauthn_reason`` is the
    audit reason (:class:`~mfa_core.webauthn.WebAuthnReason`: wrong origin, wrong RP ID,
    cross-origin, user not present or not verified, cloned authenticator, ...), also in
    the failure event's ``data["detail"]``. Users see one message for every refusal.
    """

    webauthn_reason: WebAuthnReason | None = None
    """Why the WebAuthn check decided as it did."""
    user_id: str | None = None
    """Whose key it was (a passkey sign-in learns the user from the key)."""
    user_verified: bool = False
    """The authenticator verified the user (PIN, biometrics): the UV flag."""

    @property
    def user_message(self) -> str:
        """ "code accepted" wording is not used: "security key accepted", or one refusal
        text; the "unavailable" text when a store failed."""
        if self.accepted:
            return "security key accepted"
        return _message(self.accepted, self.reason, WEBAUTHN_USER_MESSAGE)
