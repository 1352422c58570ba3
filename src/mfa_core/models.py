"""Typed domain values shared across the library.

Value classes that cross a boundary (between the service, the ports and the host) are
frozen, slotted attrs classes; secret fields are ``repr=False, eq=False``. New versions of a
value are made with :func:`attrs.evolve`.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Mapping
from typing import Final

import attrs

from .otp import DEFAULT_DIGITS, DEFAULT_PERIOD, Algorithm

__all__ = [
    "STORED_STATES",
    "Admission",
    "Credential",
    "CredentialKind",
    "CredentialState",
    "Event",
    "EventType",
    "FailureState",
]


class CredentialKind(enum.StrEnum):
    """What a credential is: a time-based or a counter-based authenticator, or a
    confirmed phone number (SMS codes) or email address (email codes)."""

    TOTP = "totp"
    HOTP = "hotp"
    SMS = "sms"
    """A phone number that receives codes; :attr:`Credential.sealed_key` holds the number,
    sealed like a key."""
    EMAIL = "email"
    """An email address that receives codes; sealed like a key."""
    HISTORY = "history"
    """Not a factor: the service's small per-user history record (last successful check
    per factor kind, the last factor reset, confirmed destinations), sealed JSON in
    :attr:`Credential.sealed_key`, stored DISABLED so that it never authenticates and
    changed only by compare-and-set. Flows and listings leave it out."""


class CredentialState(enum.StrEnum):
    """Lifecycle state of a credential as seen at a given moment.

    ``PENDING``, ``ACTIVE`` and ``DISABLED`` are stored; ``EXPIRED`` is derived at read time
    from the renewal timestamp (an ACTIVE credential older than ``max_age``), and an
    abandoned enrolment (PENDING past its deadline) is ``PENDING_EXPIRED``. A user with no
    credential at all is ``NONE`` (used by policy evaluation, never stored).
    """

    NONE = "none"
    PENDING = "pending"
    PENDING_EXPIRED = "pending_expired"
    ACTIVE = "active"
    EXPIRED = "expired"
    DISABLED = "disabled"


STORED_STATES = frozenset(
    {CredentialState.PENDING, CredentialState.ACTIVE, CredentialState.DISABLED}
)
"""The states a store ever holds in :attr:`Credential.status`; the others are derived."""


@attrs.frozen
class Credential:
    """One OTP credential (an authenticator app or a hardware token) of one user.

    The key is held only sealed (:attr:`sealed_key`, from a :class:`~mfa_core.ports.Sealer`)
    with the credential id bound as associated data. ``last_accepted`` and ``drift`` belong
    to :meth:`~mfa_core.ports.CredentialStore.claim`; every other field changes only through
    :meth:`~mfa_core.ports.CredentialStore.update`, a compare-and-set on ``version``.
    """

    id: str
    """Opaque unique id (made by the service)."""
    user_id: str
    """The host's user id."""
    kind: CredentialKind
    """TOTP or HOTP."""
    sealed_key: bytes = attrs.field(repr=False, eq=False)
    """The key, sealed by the service's sealer; never plaintext unless the host opted in."""
    created_at: float
    """When enrolment started (Unix seconds)."""
    status: CredentialState = CredentialState.PENDING
    """Stored state: PENDING, ACTIVE or DISABLED (see :data:`STORED_STATES`)."""
    algorithm: Algorithm = Algorithm.SHA1
    """HMAC hash function."""
    digits: int = DEFAULT_DIGITS
    """Code length."""
    period: int = DEFAULT_PERIOD
    """TOTP time step in seconds (ignored for HOTP)."""
    label: str = ""
    """A name the user gave the device ("work phone"); not secret."""
    pending_until: float | None = None
    """Deadline for confirming a PENDING enrolment (Unix seconds)."""
    confirmed_at: float | None = None
    """When the enrolment was confirmed with a valid code."""
    renewed_at: float | None = None
    """Start of the current validity period (confirmation or renewal); expiry counts from here."""
    replaces: str | None = None
    """For a renewal: the id of the credential this one replaces once confirmed."""
    disabled_at: float | None = None
    """When the credential was disabled."""
    last_accepted: int = -1
    """Last accepted TOTP step or HOTP counter value (-1: none). HOTP's next counter is this + 1."""
    drift: int = 0
    """Learned clock offset of a TOTP authenticator, in time steps (RFC 6238 §6)."""
    version: int = 0
    """Compare-and-set token: every :meth:`update` stores ``version + 1``."""

    def with_claim(self, last_accepted: int, drift: int) -> Credential:
        """Return a copy with a new ``last_accepted`` and ``drift`` (what a claim stores).

        Equivalent to ``attrs.evolve(self, last_accepted=..., drift=...)`` at a fraction of
        the cost: stores call it on every successful verification. Every field is read in
        one C call and passed by position (the order comes from the class itself, so a
        field added later is carried too).
        """
        values = list(_ALL_FIELDS(self))
        values[_LAST_ACCEPTED] = last_accepted
        values[_DRIFT] = drift
        return Credential(*values)


_FIELD_NAMES: Final = tuple(field.name for field in attrs.fields(Credential))
_ALL_FIELDS: Final = operator.attrgetter(*_FIELD_NAMES)
_LAST_ACCEPTED: Final = _FIELD_NAMES.index("last_accepted")
_DRIFT: Final = _FIELD_NAMES.index("drift")


@attrs.frozen
class FailureState:
    """Consecutive second-factor failures of one user, as the failure counter holds them."""

    count: int = 0
    """Consecutive failures since the last success (or reset)."""
    last_failure_at: float | None = None
    """Time of the most recent counted attempt (Unix seconds). An attempt is counted when it
    is admitted, before its code is checked
    (:meth:`~mfa_core.ports.FailureCounter.admit_attempt`)."""


@attrs.frozen
class Admission:
    """The answer of :meth:`~mfa_core.ports.FailureCounter.admit_attempt`.

    ``admitted``: the attempt may be checked, and it has been counted (``state`` is the state
    after counting it). Not admitted: the user is delayed or locked and nothing changed
    (``state`` is the stored state that refused it, from which
    :func:`mfa_core.throttle.check` gives the refusal and its ``retry_after``).
    """

    admitted: bool
    """Whether the attempt was admitted (and counted)."""
    state: FailureState
    """The failure state after the call."""


class EventType(enum.StrEnum):
    """Kinds of audit events the library emits. Values are stable."""

    ENROLMENT_STARTED = "enrolment_started"
    ENROLMENT_CONFIRMED = "enrolment_confirmed"
    MFA_ENABLED = "mfa_enabled"
    """2FA went from off to on for the user: the host may sign other sessions out."""
    CREDENTIAL_RENEWAL_STARTED = "credential_renewal_started"
    CREDENTIAL_RENEWED = "credential_renewed"
    CREDENTIAL_DISABLED = "credential_disabled"
    CREDENTIAL_RESET = "credential_reset"
    """An administrator removed a user's credential (lost device)."""
    CREDENTIAL_REMOVED = "credential_removed"
    VERIFICATION_SUCCEEDED = "verification_succeeded"
    VERIFICATION_FAILED = "verification_failed"
    USER_LOCKED = "user_locked"
    USER_UNLOCKED = "user_unlocked"
    HOTP_RESYNCED = "hotp_resynced"
    KEY_RESEALED = "key_resealed"
    RECOVERY_CODES_GENERATED = "recovery_codes_generated"
    RECOVERY_CODE_USED = "recovery_code_used"
    RECOVERY_CODES_LOW = "recovery_codes_low"
    RECOVERY_CODE_FAILED = "recovery_code_failed"
    OOB_CODE_SENT = "oob_code_sent"
    OOB_CODE_VERIFIED = "oob_code_verified"
    OOB_CODE_FAILED = "oob_code_failed"
    OOB_SEND_LIMITED = "oob_send_limited"
    """A code was not sent: the user or the destination reached its send limit (the
    event names the user, channel, purpose and which limit; never the destination)."""
    RECOVERY_CODES_REVOKED = "recovery_codes_revoked"
    """The user's recovery codes were deleted because none of their factors is left (an
    administrator's reset of every factor, or disabling the last one); ``data`` says how
    many unused codes went and why."""
    WEBAUTHN_REGISTERED = "webauthn_registered"
    """A security key or passkey was registered (the event names its credential id)."""
    WEBAUTHN_REGISTRATION_FAILED = "webauthn_registration_failed"
    """A WebAuthn registration response was refused (``reason``: a ``WebAuthnReason``)."""
    POSSIBLE_CLONED_AUTHENTICATOR = "possible_cloned_authenticator"
    """A WebAuthn assertion's signature counter did not advance past the stored one
    (W3C WebAuthn §7.2 step 21): the authenticator may have been cloned. Refused."""


EventValue = str | int | float | bool | None


@attrs.frozen
class Event:
    """An audit event. Never holds a key, a code or a recovery code."""

    type: EventType
    """What happened."""
    user_id: str
    """Whose credential or account it concerns."""
    at: float
    """When (Unix seconds, from the service's clock)."""
    credential_id: str | None = None
    """The credential concerned, if any."""
    reason: str | None = None
    """A machine-readable reason (e.g. a ``VerifyReason`` value) for failures."""
    actor: str | None = None
    """Who acted, when not the user (an administrator's id)."""
    data: Mapping[str, EventValue] = attrs.field(factory=dict)
    """Further non-secret details (drift, codes left, retry_after, ...)."""
