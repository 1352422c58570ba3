"""Value types of the service and the shared machinery of :class:`~mfa_core.service.MFAService`.

Import the public names from :mod:`mfa_core.service`; this private module holds what every
flow (verification, enrolment, administration) shares: the configuration, the result
types, the default clock and event sinks, and :class:`ServiceCore` with the helpers that
turn throttling decisions, store failures and lifecycle transitions into results and
events.
"""

from __future__ import annotations

import enum
import logging
import math
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final, TypeVar

import attrs

from ._effects import Credentials, Failures, Flow, Port
from ._validate import int_in as _int_in
from ._validate import is_int as _is_int
from ._windows import clamp_drift, hotp_window, scan_window_values, totp_window
from .errors import (
    CredentialNotFound,
    ErrorCode,
    InvalidParameter,
    MFAError,
    SealingError,
    StoreError,
)
from .keys import DEFAULT_KEY_BYTES
from .lifecycle import (
    LifecycleConfig,
    LifecycleEvent,
    can_authenticate,
    effective_state,
    transition,
)
from .models import Credential, CredentialKind, CredentialState, Event, EventType, FailureState
from .otp import (
    DEFAULT_DIGITS,
    DEFAULT_PERIOD,
    MAX_KEY_BYTES,
    MAX_PERIOD,
    MAX_WINDOW,
    MIN_KEY_BYTES,
    Algorithm,
    HOTPState,
    parse_algorithm,
    time_step,
)
from .ports import Clock, EventSink, Sealer
from .throttle import ThrottleConfig
from .throttle import check as throttle_check
from .uri import MAX_URI_DIGITS, MIN_URI_DIGITS, build_uri

__all__ = [
    "ACCEPTED_MESSAGE",
    "EXPIRED_MESSAGE",
    "INVALID_CODE_MESSAGE",
    "MAX_RESYNC_WINDOW",
    "UNAVAILABLE_MESSAGE",
    "CredentialInfo",
    "Enrolment",
    "LoggingEventSink",
    "NullEventSink",
    "ServiceConfig",
    "ServiceCore",
    "SystemClock",
    "VerificationResult",
    "VerifyReason",
]

INVALID_CODE_MESSAGE: Final = "invalid code"
"""What a user is told for a wrong, replayed, malformed, throttled or locked-out attempt."""
EXPIRED_MESSAGE: Final = "this authenticator has expired; please set it up again"
"""What a user is told when strict expiry refuses an expired credential."""
UNAVAILABLE_MESSAGE: Final = "verification is unavailable right now; please try again later"
"""What a user is told when a store or the sealer failed (the attempt was refused)."""
ACCEPTED_MESSAGE: Final = "code accepted"
"""What a user is told when the code was accepted."""
MAX_RESYNC_WINDOW: Final = 1000
"""Largest HOTP resynchronisation window that may be configured."""

_logger = logging.getLogger("mfa_core.service")
_MAX_ID: Final = 256
_MAX_LABEL: Final = 64
_CAS_ATTEMPTS: Final = 3
_R = TypeVar("_R")


class SystemClock:
    """The real clock: :func:`time.time`, Unix seconds (UTC, never local time)."""

    __slots__ = ()

    def now(self) -> float:
        """Return the current Unix time in seconds."""
        return time.time()


class NullEventSink:
    """An event sink that drops every event (the default when the host wires none)."""

    __slots__ = ()

    def emit(self, event: Event) -> None:
        """Discard ``event``."""


class LoggingEventSink:
    """An event sink that writes each event as one line to a :mod:`logging` logger.

    Events never hold a key or a code, so the line is safe to keep; it names the user id,
    which a host may treat as personal data.
    """

    __slots__ = ("_level", "_logger")

    def __init__(self, logger: logging.Logger | None = None, *, level: int = logging.INFO) -> None:
        self._logger = logger if logger is not None else logging.getLogger("mfa_core.events")
        self._level = level

    def emit(self, event: Event) -> None:
        """Log ``event`` at the configured level."""
        self._logger.log(
            self._level,
            "mfa event %s user=%s credential=%s reason=%s actor=%s data=%s",
            event.type.value,
            event.user_id,
            event.credential_id,
            event.reason,
            event.actor,
            dict(event.data),
        )


@attrs.frozen(kw_only=True)
class ServiceConfig:
    """Settings of :class:`~mfa_core.service.MFAService`; every value is checked on creation.

    Out-of-range values raise :class:`~mfa_core.errors.InvalidParameter` (also when attrs
    validators are switched off process-wide: the checks live in ``__attrs_post_init__``).
    """

    issuer: str | None = None
    """Issuer shown by authenticator apps (your product's name); ``None`` leaves it out."""
    look_behind: int = 1
    """TOTP steps accepted before the window centre (0 to 200)."""
    look_ahead: int = 1
    """TOTP steps accepted after the window centre (0 to 200)."""
    max_drift: int = 10
    """Bound on the learned clock drift of a TOTP authenticator, in steps (0 to 200)."""
    hotp_look_ahead: int = 10
    """HOTP counter values accepted after the expected one (0 to 200; RFC 4226 §7.2)."""
    hotp_resync_window: int = 100
    """Counter values searched by :meth:`resync_hotp` (1 to 1000; RFC 4226 §7.4)."""
    lifecycle: LifecycleConfig = attrs.field(factory=LifecycleConfig)
    """Pending deadline, maximum age and strict expiry."""
    throttle: ThrottleConfig = attrs.field(factory=ThrottleConfig)
    """Growing delay and hard lock after consecutive failures."""
    digits: int = DEFAULT_DIGITS
    """Digits of codes for new credentials (6 to 8: what authenticator apps support)."""
    algorithm: Algorithm = attrs.field(default=Algorithm.SHA1, converter=parse_algorithm)
    """HMAC hash of new credentials (SHA1 is what every app supports)."""
    period: int = DEFAULT_PERIOD
    """TOTP time step of new credentials, in seconds (1 to 600)."""
    key_bytes: int = DEFAULT_KEY_BYTES
    """Size of new keys in bytes (16 to 256; 20 = 160 bits, RFC 4226's recommendation)."""

    def __attrs_post_init__(self) -> None:
        if self.issuer is not None:
            try:
                build_uri(bytes(MIN_KEY_BYTES), account="check", issuer=self.issuer)
            except MFAError:
                raise InvalidParameter(
                    "issuer must be non-empty text without a colon or control characters"
                ) from None
        _int_in(self.look_behind, 0, MAX_WINDOW, "look_behind")
        _int_in(self.look_ahead, 0, MAX_WINDOW, "look_ahead")
        _int_in(self.max_drift, 0, MAX_WINDOW, "max_drift")
        _int_in(self.hotp_look_ahead, 0, MAX_WINDOW, "hotp_look_ahead")
        _int_in(self.hotp_resync_window, 1, MAX_RESYNC_WINDOW, "hotp_resync_window")
        _int_in(self.digits, MIN_URI_DIGITS, MAX_URI_DIGITS, "digits")
        _int_in(self.period, 1, MAX_PERIOD, "period")
        _int_in(self.key_bytes, MIN_KEY_BYTES, MAX_KEY_BYTES, "key_bytes")
        if not isinstance(self.lifecycle, LifecycleConfig):
            raise InvalidParameter("lifecycle must be a LifecycleConfig")
        if not isinstance(self.throttle, ThrottleConfig):
            raise InvalidParameter("throttle must be a ThrottleConfig")


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


@attrs.define
class Match:
    """A fresh match found in one credential's window (internal).

    Made on every successful verification, so a plain slotted class (a frozen attrs init
    costs twice as much); nothing mutates a ``Match`` once made.
    """

    credential: Credential
    value: int
    offset: int
    drift: int | None
    renewal_due: bool = False


_TOTP: Final = CredentialKind.TOTP
_EXPIRED: Final = CredentialState.EXPIRED
_OK: Final = VerifyReason.OK
_OK_VALUE: Final = VerifyReason.OK.value

# Stored form of an effective state: expiry is derived, never written.
_STORED: Final = {
    CredentialState.EXPIRED: CredentialState.ACTIVE,
    CredentialState.PENDING_EXPIRED: CredentialState.PENDING,
}


def check_id(value: object, name: str) -> str:
    """Return ``value`` if it is a non-empty string of at most 256 characters."""
    if type(value) is not str or not 1 <= len(value) <= _MAX_ID:
        raise InvalidParameter(f"{name} must be a non-empty string of at most {_MAX_ID}")
    return value


def check_label(value: object) -> str:
    """Return ``value`` if it is printable text of at most 64 characters."""
    if type(value) is not str or len(value) > _MAX_LABEL or not value.isprintable():
        raise InvalidParameter(f"label must be printable text of at most {_MAX_LABEL}")
    return value


def parse_kind(kind: object) -> CredentialKind:
    """Return the :class:`CredentialKind` for a member or its string value."""
    if isinstance(kind, CredentialKind):
        return kind
    if type(kind) is str:
        for member in CredentialKind:
            if member.value == kind.lower():
                return member
    raise InvalidParameter("kind must be 'totp' or 'hotp'")


def new_credential_id() -> str:
    """Return a fresh random credential id (128 bits, URL-safe text)."""
    return secrets.token_urlsafe(16)


def find(credentials: Sequence[Credential], credential_id: str) -> Credential:
    """Return the credential with this id from a user's list, or raise CredentialNotFound."""
    for credential in credentials:
        if credential.id == credential_id:
            return credential
    raise CredentialNotFound("no such credential for this user")


def check_ports(ports: Iterable[tuple[object, type, str]]) -> None:
    """Raise InvalidParameter for a port that does not implement its Protocol."""
    for value, port, name in ports:
        if not isinstance(value, port):
            raise InvalidParameter(f"{name} must implement {port.__name__}")


def checked(flow: Flow[_R]) -> Flow[_R]:
    """Run a store effect; anything but an MFAError becomes StoreError (fail closed)."""
    try:
        return (yield from flow)
    except MFAError:
        raise
    except Exception as exc:
        raise StoreError("the store failed; the operation was refused") from exc


class ServiceCore:
    """Configuration, in-process ports and the flows every front end shares.

    Flows (methods ending in ``_flow``) are generators over :mod:`~mfa_core._effects`: they
    yield store operations instead of calling a store, so the blocking
    (:class:`~mfa_core.service.MFAService`) and the asyncio
    (:class:`~mfa_core.aio.AsyncMFAService`) front ends run the very same decisions. The
    sealer, clock and event sink are in-process and called directly.
    """

    __slots__ = ("_clock", "_config", "_events", "_ports", "_sealer")

    def _setup(
        self,
        ports: Mapping[Port, object],
        sealer: Sealer,
        *,
        clock: Clock | None,
        events: EventSink | None,
        config: ServiceConfig | None,
    ) -> None:
        clock = SystemClock() if clock is None else clock
        events = NullEventSink() if events is None else events
        config = ServiceConfig() if config is None else config
        check_ports(
            (
                (sealer, Sealer, "sealer"),
                (clock, Clock, "clock"),
                (events, EventSink, "events"),
                (config, ServiceConfig, "config"),
            )
        )
        self._ports = {port: value for port, value in ports.items() if value is not None}
        self._sealer = sealer
        self._clock = clock
        self._events = events
        self._config = config

    @property
    def config(self) -> ServiceConfig:
        """The service's settings."""
        return self._config

    def _port(self, port: Port) -> object:
        """The object behind ``port`` (drivers resolve every :class:`Op` through this)."""
        try:
            return self._ports[port]
        except KeyError:
            raise InvalidParameter(f"no {port.value} port is configured") from None

    def _now(self) -> float:
        now = self._clock.now()
        if type(now) is float and now >= 0.0 and math.isfinite(now):
            return now  # the common case, checked by the same rules as below
        if not (_is_int(now) or isinstance(now, float)) or not math.isfinite(now) or now < 0:
            raise InvalidParameter(
                "the clock returned an invalid time", code=ErrorCode.INVALID_TIME
            )
        return float(now)

    # -- events ---------------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        try:
            self._events.emit(event)
        except Exception:
            _logger.exception("event sink failed for a %s event; ignored", event.type.value)

    # -- sealer calls for lifecycle operations (raise typed errors) -------------------------

    def _unseal(self, credential: Credential) -> bytes:
        try:
            return self._sealer.unseal(credential.sealed_key, credential_id=credential.id)
        except MFAError:
            raise
        except Exception as exc:
            raise SealingError("the sealer failed to unseal a key") from exc

    def _seal(self, key: bytes, credential_id: str) -> bytes:
        try:
            return self._sealer.seal(key, credential_id=credential_id)
        except MFAError:
            raise
        except Exception as exc:
            raise SealingError(
                "the sealer failed to seal a key", code=ErrorCode.SEALING_FAILED
            ) from exc

    # -- credential classification ---------------------------------------------------------

    def _superseded(self, credentials: Sequence[Credential]) -> frozenset[str]:
        """Ids replaced by a confirmed renewal (they never authenticate, even before the
        superseding write has been made)."""
        return frozenset(
            c.replaces
            for c in credentials
            if c.replaces is not None and c.status != CredentialState.PENDING
        )

    def _usable_states(
        self, credentials: Sequence[Credential], now: float
    ) -> tuple[list[tuple[Credential, CredentialState]], bool]:
        """Return the credentials that can authenticate now with their effective states,
        and whether any is EXPIRED without being usable (strict expiry)."""
        lifecycle = self._config.lifecycle
        superseded: frozenset[str] = frozenset()
        for credential in credentials:
            if credential.replaces is not None:  # only then can any be superseded
                superseded = self._superseded(credentials)
                break
        usable: list[tuple[Credential, CredentialState]] = []
        expired = False
        for credential in credentials:
            if superseded and credential.id in superseded:
                continue
            state = effective_state(credential, now, lifecycle)
            if can_authenticate(state, lifecycle):
                usable.append((credential, state))
            elif state == _EXPIRED:
                expired = True
        return usable, expired

    def _usable(
        self, credentials: Sequence[Credential], now: float
    ) -> tuple[list[Credential], bool]:
        """Return the credentials that can authenticate now, and whether any is EXPIRED
        without being usable (strict expiry)."""
        usable, expired = self._usable_states(credentials, now)
        return [credential for credential, _ in usable], expired

    # -- lifecycle -------------------------------------------------------------------------

    def _apply_flow(
        self,
        credential: Credential,
        event: LifecycleEvent,
        now: float,
        stamp: Callable[[Credential], Credential] | None = None,
    ) -> Flow[CredentialState | None]:
        """Apply ``event`` to ``credential`` through the transition table.

        A removal deletes the credential; any other target is written (with the
        timestamps ``stamp`` sets) by a compare-and-set on the version, re-reading and
        re-checking on a concurrent change. Raises IllegalTransition (nothing changed),
        CredentialNotFound (removed meanwhile) or StoreError.
        """
        lifecycle = self._config.lifecycle
        for _ in range(_CAS_ATTEMPTS):
            state = effective_state(credential, now, lifecycle)
            target = transition(state, event)
            if target is None:
                if not (yield from checked(Credentials.delete(credential.id))):
                    raise CredentialNotFound("the credential was removed concurrently")
                return None
            updated = attrs.evolve(credential, status=_STORED.get(target, target))
            if stamp is not None:
                updated = stamp(updated)
            if (
                yield from checked(Credentials.update(updated, expected_version=credential.version))
            ):
                return target
            fresh = yield from checked(Credentials.get(credential.id))
            if fresh is None or fresh.user_id != credential.user_id:
                raise CredentialNotFound("the credential was removed concurrently")
            credential = fresh
        raise StoreError("the credential kept changing concurrently; nothing was changed")

    # -- verification outcomes ---------------------------------------------------------------

    def _refuse(
        self,
        user_id: str,
        now: float,
        reason: VerifyReason,
        *,
        credential_id: str | None = None,
        retry_after: float | None = None,
        event_type: EventType = EventType.VERIFICATION_FAILED,
    ) -> VerificationResult:
        """A refusal that is not counted as a failure (throttled, locked, expired, ...).

        ``event_type`` is the failure event of the flow (recovery and out-of-band flows
        have their own).
        """
        self._emit(
            Event(
                type=event_type,
                user_id=user_id,
                at=now,
                credential_id=credential_id,
                reason=reason.value,
                data={"retry_after": retry_after},
            )
        )
        return VerificationResult(
            accepted=False, reason=reason, credential_id=credential_id, retry_after=retry_after
        )

    def _broken(
        self,
        user_id: str,
        now: float,
        reason: VerifyReason,
        exc: BaseException,
        credential_id: str | None = None,
        *,
        event_type: EventType = EventType.VERIFICATION_FAILED,
    ) -> VerificationResult:
        """A store or sealer failure during verification: logged, refused (fail closed)."""
        _logger.warning(
            "verification refused for a %s (%s)", reason.value, type(exc).__name__, exc_info=exc
        )
        return self._refuse(
            user_id, now, reason, credential_id=credential_id, event_type=event_type
        )

    def _gate_flow(
        self,
        user_id: str,
        now: float,
        *,
        event_type: EventType = EventType.VERIFICATION_FAILED,
    ) -> Flow[FailureState | VerificationResult]:
        """Throttle check before any other work: the user's failure state, or a refusal
        (emitted as ``event_type``)."""
        try:
            before = yield from Failures.get_failures(user_id)
        except Exception as exc:
            return self._broken(user_id, now, VerifyReason.STORE_ERROR, exc, event_type=event_type)
        decision = throttle_check(before, now, self._config.throttle)
        if decision.allowed:
            return before
        reason = VerifyReason.LOCKED if decision.locked else VerifyReason.THROTTLED
        return self._refuse(
            user_id, now, reason, retry_after=decision.retry_after, event_type=event_type
        )

    def _fail_flow(
        self,
        user_id: str,
        now: float,
        before: FailureState,
        reason: VerifyReason,
        credential_id: str | None = None,
        *,
        event_type: EventType = EventType.VERIFICATION_FAILED,
        detail: str | None = None,
    ) -> Flow[VerificationResult]:
        """A failed attempt: count it, emit events (USER_LOCKED when it locks), refuse.

        ``event_type`` is the flow's failure event; ``detail`` a finer, flow-specific
        reason added to its data.
        """
        try:
            after = yield from Failures.record_failure(user_id, now)
        except Exception as exc:
            return self._broken(
                user_id, now, VerifyReason.STORE_ERROR, exc, credential_id, event_type=event_type
            )
        limits = self._config.throttle
        decision = throttle_check(after, now, limits)
        data: dict[str, str | int | float | None] = {
            "failures": after.count,
            "retry_after": decision.retry_after,
        }
        if detail is not None:
            data["detail"] = detail
        self._emit(
            Event(
                type=event_type,
                user_id=user_id,
                at=now,
                credential_id=credential_id,
                reason=reason.value,
                data=data,
            )
        )
        # Exactly one USER_LOCKED per lock: the failure that reaches the limit, or the first
        # one after an earlier lock ran out (the gate let it through with count >= limit).
        if decision.locked and (
            after.count == limits.max_failures or before.count >= limits.max_failures
        ):
            self._emit(
                Event(
                    type=EventType.USER_LOCKED,
                    user_id=user_id,
                    at=now,
                    reason=reason.value,
                    data={"failures": after.count, "retry_after": decision.retry_after},
                )
            )
        return VerificationResult(
            accepted=False,
            reason=reason,
            credential_id=credential_id,
            retry_after=decision.retry_after,
        )

    def _succeed_flow(
        self,
        user_id: str,
        now: float,
        before: FailureState,
        match: Match,
        event_type: EventType | None,
        *,
        reset: bool = True,
    ) -> Flow[VerificationResult]:
        """Claim the matched value (ONE atomic store call) and build the success result.

        A lost claim is a replay (counted as a failure); a store error refuses. The success
        event (``event_type``; ``None``: the caller emits it) and the failure-count reset
        (``reset``) follow the claim.
        """
        credential = match.credential
        drift = credential.drift if match.drift is None else match.drift
        try:
            claimed = yield from Credentials.claim(credential.id, match.value, drift=drift)
        except Exception as exc:
            return self._broken(user_id, now, VerifyReason.STORE_ERROR, exc, credential.id)
        if not claimed:
            return (
                yield from self._fail_flow(
                    user_id, now, before, VerifyReason.REPLAYED, credential.id
                )
            )
        if reset and before.count:
            try:
                yield from Failures.reset(user_id)
            except Exception as exc:
                return self._broken(user_id, now, VerifyReason.STORE_ERROR, exc, credential.id)
        due = match.renewal_due
        if event_type is not None:
            self._emit(
                Event(
                    type=event_type,
                    user_id=user_id,
                    at=now,
                    credential_id=credential.id,
                    reason=_OK_VALUE,
                    data={"offset": match.offset, "drift": match.drift, "renewal_due": due},
                )
            )
        return VerificationResult(
            accepted=True,
            reason=_OK,
            credential_id=credential.id,
            matched=match.value,
            offset=match.offset,
            drift=match.drift,
            renewal_due=due,
        )

    def _scan(
        self,
        credential: Credential,
        key: bytes,
        candidate: bytes,
        now: float,
        *,
        learned: bool,
        due: bool = False,
    ) -> tuple[Match | None, bool]:
        """Scan one credential's whole window for ``candidate``.

        Returns the fresh match (if any) and whether an already used value matched. TOTP
        windows are centred on the current step plus the learned drift (``learned=False``
        centres on the current step: enrolment has nothing learned yet). ``due`` (the
        credential is EXPIRED) is carried into the match for the result.
        """
        config = self._config
        state = HOTPState(key, credential.algorithm, credential.digits)
        last_accepted = credential.last_accepted
        if credential.kind == _TOTP:
            step = time_step(now, period=credential.period)
            centre, first, last = totp_window(
                step,
                credential.drift if learned else 0,
                look_behind=config.look_behind,
                look_ahead=config.look_ahead,
                max_drift=config.max_drift,
            )
            fresh, stale = scan_window_values(state, candidate, first, last, last_accepted)
            if fresh is None:
                return None, stale
            drift = clamp_drift(fresh - step, config.max_drift)
            return Match(credential, fresh, fresh - centre, drift, due), stale
        expected, first, last = hotp_window(last_accepted, config.hotp_look_ahead)
        fresh, stale = scan_window_values(state, candidate, first, last, last_accepted)
        if fresh is None:
            return None, stale
        return Match(credential, fresh, fresh - expected, None, due), stale
