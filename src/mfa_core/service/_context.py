"""The one explicit context every flow runs in, and the helpers the flows share.

:class:`Context` holds what a service was built with - its settings, the in-process ports
(sealer, clock, event sink), the keys derived from the host secret, and which optional
ports are configured - and is passed as the first argument of every flow. Nothing in it
changes after construction, so one context serves any number of concurrent operations.

The helpers here turn throttling decisions, store failures and lifecycle transitions into
results and events, the same way for every factor:

* :func:`begin_flow` / :func:`admit_flow` - ONE store operation admits and counts the
  attempt before any key is touched (fused with the read of the user's credentials when
  the store is an :class:`~mfa_core.ports.AttemptStore`);
* :func:`fail` - a refused attempt (already counted): events, USER_LOCKED, the result;
* :func:`succeed_flow` - the claim of the matched value, fused with the reset of the
  failure count (ONE store operation on an AttemptStore).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Final, TypeVar

import attrs
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .._validate import MAX_TIME, is_time
from .._validate import check_id as _check_text_id
from ..errors import (
    CredentialNotFound,
    ErrorCode,
    InvalidParameter,
    MFAError,
    SealingError,
    StoreError,
)
from ..keys import random_id
from ..lifecycle import (
    LifecycleEvent,
    can_authenticate,
    effective_state,
    stored_state,
    transition,
)
from ..models import (
    Admission,
    Credential,
    CredentialKind,
    CredentialState,
    Event,
    EventType,
    FailureState,
)
from ..otp import HOTPState, check_key, time_step
from ..ports import (
    AttemptStore,
    Clock,
    CodeSender,
    CredentialStore,
    EventSink,
    FailureCounter,
    OOBChallengeStore,
    RecoveryCodeStore,
    Sealer,
    WebAuthnStore,
)
from ..throttle import ThrottleDecision
from ..throttle import check as throttle_check
from ..webauthn.config import WebAuthnConfig
from ._effects import Flow, PortTable, bind_ports, call
from ._windows import clamp_drift, hotp_window, scan_window_values, totp_window
from .config import ServiceConfig
from .defaults import NullEventSink, SystemClock
from .results import VerificationResult, VerifyReason

__all__ = [
    "OTP_KINDS",
    "Context",
    "Match",
    "admit_flow",
    "apply_flow",
    "begin_flow",
    "broken",
    "check_id",
    "check_label",
    "checked",
    "configure",
    "count_failure_flow",
    "derive_key",
    "factors_of",
    "fail",
    "find",
    "gate_flow",
    "new_credential_id",
    "parse_kind",
    "refuse",
    "scan",
    "succeed_flow",
    "superseded",
    "usable",
    "usable_states",
    "valid_admission",
]

_logger = logging.getLogger("mfa_core.service")
_MAX_ID: Final = 256
_MAX_LABEL: Final = 64
_CAS_ATTEMPTS: Final = 3
_R = TypeVar("_R")

_TOTP: Final = CredentialKind.TOTP
_HISTORY: Final = CredentialKind.HISTORY
OTP_KINDS: Final = frozenset({CredentialKind.TOTP, CredentialKind.HOTP})
"""Credential kinds whose key computes codes (the others hold a sealed destination)."""
_EXPIRED: Final = CredentialState.EXPIRED
_OK: Final = VerifyReason.OK
_OK_VALUE: Final = VerifyReason.OK.value
_FAILED: Final = EventType.VERIFICATION_FAILED


def derive_key(secret: bytes, info: bytes) -> bytes:
    """HKDF-SHA256 (RFC 5869) of the host secret under a distinct ``info`` label."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


@attrs.define(slots=True)
class Context:
    """What every flow of one service reads (internal; built once by the front end)."""

    config: ServiceConfig
    sealer: Sealer
    clock: Clock
    events: EventSink
    fused: bool
    """``credentials`` and ``failures`` are one :class:`~mfa_core.ports.AttemptStore`."""
    has_recovery: bool
    has_oob: bool
    tag_key: bytes | None = attrs.field(default=None, repr=False)
    oob_key: bytes | None = attrs.field(default=None, repr=False)
    send_key: bytes | None = attrs.field(default=None, repr=False)
    destination_key: bytes | None = attrs.field(default=None, repr=False)
    """Keys the hash that binds an out-of-band challenge to its destination."""
    webauthn: WebAuthnConfig | None = None
    """The relying party's settings when a :class:`~mfa_core.ports.WebAuthnStore` is given."""

    def now(self) -> float:
        """The clock's time, checked by the validation layer's rule for a time (finite,
        non-negative, at most ``MAX_TIME``, 2**62; an int range-checked
        before it is converted): a bad clock is an InvalidParameter, never used."""
        now = self.clock.now()
        if type(now) is float and 0.0 <= now <= MAX_TIME:
            return now  # the common case, checked by the same rule as below; NaN fails
        if not is_time(now):
            raise InvalidParameter(
                "the clock returned an invalid time", code=ErrorCode.INVALID_TIME
            )
        return float(now)

    def emit(self, event: Event) -> None:
        """Hand ``event`` to the sink; a failing sink is logged and ignored."""
        try:
            self.events.emit(event)
        except Exception:
            _logger.exception("event sink failed for a %s event; ignored", event.type.value)

    def unseal(self, credential: Credential) -> bytes:
        """Unseal a key for a lifecycle operation (typed errors)."""
        try:
            return self.sealer.unseal(credential.sealed_key, credential_id=credential.id)
        except MFAError:
            raise
        except Exception as exc:
            raise SealingError("the sealer failed to unseal a key") from exc

    def seal(self, key: bytes, credential_id: str) -> bytes:
        """Seal a new key (typed errors)."""
        try:
            return self.sealer.seal(key, credential_id=credential_id)
        except MFAError:
            raise
        except Exception as exc:
            raise SealingError(
                "the sealer failed to seal a key", code=ErrorCode.SEALING_FAILED
            ) from exc


# -- argument checks ---------------------------------------------------------------------------


def check_id(value: object, name: str) -> str:
    """Return ``value`` if it is a non-empty string of at most 256 characters that can be
    encoded as UTF-8 (:func:`mfa_core._validate.check_id`: no lone surrogates)."""
    if type(value) is str and 1 <= len(value) <= _MAX_ID and value.isascii():
        return value  # the common case
    return _check_text_id(value, name, max_length=_MAX_ID)


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
    raise InvalidParameter("kind must be 'totp', 'hotp', 'sms' or 'email'")


def new_credential_id() -> str:
    """Return a fresh random credential id (128 bits, URL-safe text) that does not start
    with ``-``: one in 64 would, and a command line (``mfa-core admin disable USER ID``)
    then takes it for an option."""
    return random_id()


def find(credentials: Sequence[Credential], credential_id: str) -> Credential:
    """Return the credential with this id from a user's list, or raise CredentialNotFound."""
    for credential in credentials:
        if credential.id == credential_id and credential.kind is not _HISTORY:
            return credential
    raise CredentialNotFound("no such credential for this user")


def factors_of(credentials: Sequence[Credential]) -> list[Credential]:
    """The user's factors: every credential but the history record."""
    return [c for c in credentials if c.kind is not _HISTORY]


def checked(flow: Flow[_R]) -> Flow[_R]:
    """Run a store effect; anything but an MFAError becomes StoreError (fail closed)."""
    try:
        return (yield from flow)
    except MFAError:
        raise
    except Exception as exc:
        raise StoreError("the store failed; the operation was refused") from exc


# -- credential classification -----------------------------------------------------------------


def superseded(credentials: Sequence[Credential]) -> frozenset[str]:
    """Ids replaced by a confirmed renewal (they never authenticate, even before the
    superseding write has been made)."""
    return frozenset(
        c.replaces
        for c in credentials
        if c.replaces is not None and c.status != CredentialState.PENDING
    )


def usable_states(
    ctx: Context, credentials: Sequence[Credential], now: float
) -> tuple[list[tuple[Credential, CredentialState]], bool]:
    """Return the credentials that can authenticate now with their effective states, and
    whether any is EXPIRED without being usable (strict expiry)."""
    lifecycle = ctx.config.lifecycle
    replaced: frozenset[str] = frozenset()
    for credential in credentials:
        if credential.replaces is not None:  # only then can any be superseded
            replaced = superseded(credentials)
            break
    found: list[tuple[Credential, CredentialState]] = []
    expired = False
    for credential in credentials:
        if replaced and credential.id in replaced:
            continue
        state = effective_state(credential, now, lifecycle)
        if can_authenticate(state, lifecycle):
            found.append((credential, state))
        elif state == _EXPIRED:
            expired = True
    return found, expired


def usable(
    ctx: Context, credentials: Sequence[Credential], now: float
) -> tuple[list[Credential], bool]:
    """:func:`usable_states` without the states."""
    found, expired = usable_states(ctx, credentials, now)
    return [credential for credential, _ in found], expired


# -- lifecycle writes --------------------------------------------------------------------------


def apply_flow(
    ctx: Context,
    credential: Credential,
    event: LifecycleEvent,
    now: float,
    stamp: Callable[[Credential], Credential] | None = None,
) -> Flow[CredentialState | None]:
    """Apply ``event`` to ``credential`` through the transition table.

    A removal deletes the credential; any other target is written in its stored form
    (:func:`mfa_core.lifecycle.stored_state`, with the timestamps ``stamp`` sets) by a
    compare-and-set on the version, re-reading and re-checking on a concurrent change.
    Raises IllegalTransition (nothing changed), CredentialNotFound (removed meanwhile) or
    StoreError.
    """
    lifecycle = ctx.config.lifecycle
    for _ in range(_CAS_ATTEMPTS):
        state = effective_state(credential, now, lifecycle)
        target = transition(state, event)
        if target is None:
            if not (yield from checked(call(CredentialStore.delete, credential.id))):
                raise CredentialNotFound("the credential was removed concurrently")
            return None
        updated = attrs.evolve(credential, status=stored_state(target))
        if stamp is not None:
            updated = stamp(updated)
        version = credential.version
        if (yield from checked(call(CredentialStore.update, updated, expected_version=version))):
            return target
        fresh = yield from checked(call(CredentialStore.get, credential.id))
        if fresh is None or fresh.user_id != credential.user_id:
            raise CredentialNotFound("the credential was removed concurrently")
        credential = fresh
    raise StoreError("the credential kept changing concurrently; nothing was changed")


# -- verification outcomes ---------------------------------------------------------------------


@attrs.define
class Match:
    """A fresh match found in one credential's window (internal).

    Made on every successful verification, so a plain slotted class; nothing mutates a
    ``Match`` once made.
    """

    credential: Credential
    value: int
    offset: int
    drift: int | None
    renewal_due: bool = False


def refuse(
    ctx: Context,
    user_id: str,
    now: float,
    reason: VerifyReason,
    *,
    credential_id: str | None = None,
    retry_after: float | None = None,
    event_type: EventType = _FAILED,
) -> VerificationResult:
    """A refusal that counts nothing (throttled, locked, a store error, ...).

    ``event_type`` is the failure event of the flow (recovery and out-of-band flows have
    their own).
    """
    ctx.emit(
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


def broken(
    ctx: Context,
    user_id: str,
    now: float,
    reason: VerifyReason,
    exc: BaseException,
    credential_id: str | None = None,
    *,
    event_type: EventType = _FAILED,
) -> VerificationResult:
    """A store or sealer failure during verification: logged, refused (fail closed)."""
    _logger.warning(
        "verification refused for a %s (%s)", reason.value, type(exc).__name__, exc_info=exc
    )
    return refuse(ctx, user_id, now, reason, credential_id=credential_id, event_type=event_type)


def _refused(
    ctx: Context, user_id: str, now: float, decision: ThrottleDecision, event_type: EventType
) -> VerificationResult:
    """The refusal of a delayed or locked user (``decision`` does not allow the attempt)."""
    reason = VerifyReason.LOCKED if decision.locked else VerifyReason.THROTTLED
    return refuse(
        ctx, user_id, now, reason, retry_after=decision.retry_after, event_type=event_type
    )


def _throttled(
    ctx: Context, user_id: str, now: float, state: FailureState, event_type: EventType
) -> VerificationResult:
    """The refusal of an attempt the failure counter did not admit."""
    decision = throttle_check(state, now, ctx.config.throttle)
    if decision.allowed:  # a store that refuses what its own state allows: fail closed
        error = StoreError("the failure counter refused an attempt that its state allows")
        return broken(ctx, user_id, now, VerifyReason.STORE_ERROR, error, event_type=event_type)
    return _refused(ctx, user_id, now, decision, event_type)


def valid_admission(admission: object) -> Admission:
    if (
        type(admission) is not Admission
        or type(admission.admitted) is not bool
        or type(admission.state) is not FailureState
    ):
        raise StoreError("the failure counter returned something that is not an Admission")
    return admission


def _admission_flow(ctx: Context, user_id: str, now: float) -> Flow[Admission]:
    """``FailureCounter.admit_attempt`` under the service's limits, its answer checked
    (anything but an :class:`Admission` is a StoreError)."""
    limits = ctx.config.throttle
    return valid_admission((yield from call(FailureCounter.admit_attempt, user_id, now, limits)))


def admit_flow(
    ctx: Context, user_id: str, now: float, *, event_type: EventType = _FAILED
) -> Flow[FailureState | VerificationResult]:
    """Admit and count one attempt (ONE atomic store operation) before any other work:
    the state after counting it, or the refusal (emitted as ``event_type``)."""
    try:
        admission = yield from _admission_flow(ctx, user_id, now)
    except Exception as exc:
        return broken(ctx, user_id, now, VerifyReason.STORE_ERROR, exc, event_type=event_type)
    if admission.admitted:
        return admission.state
    return _throttled(ctx, user_id, now, admission.state, event_type)


def begin_flow(
    ctx: Context, user_id: str, now: float
) -> Flow[tuple[FailureState, Sequence[Credential]] | VerificationResult]:
    """Admit and count an OTP attempt, and read the user's credentials: ONE store call on
    an :class:`~mfa_core.ports.AttemptStore`, else the admission then the list."""
    if ctx.fused:
        limits = ctx.config.throttle
        try:
            admission, credentials = yield from call(
                AttemptStore.begin_attempt, user_id, now, limits
            )
            admission = valid_admission(admission)
        except Exception as exc:
            return broken(ctx, user_id, now, VerifyReason.STORE_ERROR, exc)
        if not admission.admitted:
            return _throttled(ctx, user_id, now, admission.state, _FAILED)
        return admission.state, credentials
    after = yield from admit_flow(ctx, user_id, now)
    if isinstance(after, VerificationResult):
        return after
    try:
        credentials = yield from call(CredentialStore.list_for_user, user_id)
    except Exception as exc:
        return broken(ctx, user_id, now, VerifyReason.STORE_ERROR, exc)
    return after, credentials


def fail(
    ctx: Context,
    user_id: str,
    now: float,
    after: FailureState,
    reason: VerifyReason,
    credential_id: str | None = None,
    *,
    event_type: EventType = _FAILED,
    detail: str | None = None,
    locks: bool = True,
    skew: tuple[int, float] | None = None,
) -> VerificationResult:
    """A failed attempt that was counted (``after``: the failure state counting it): emit
    the flow's failure event (``detail``: a finer, flow-specific reason in its data) and
    USER_LOCKED when this attempt locks the user, and refuse.

    Every admitted attempt at or past ``max_failures`` locks (the one that reaches the
    limit, or the first one after an earlier lock ran out): exactly one USER_LOCKED per
    lock, since the counter admits no other attempt while locked. ``locks=False``: the
    attempt was not admitted by this flow (nothing new locked).
    """
    limits = ctx.config.throttle
    decision = throttle_check(after, now, limits)
    data: dict[str, str | int | float | None] = {
        "failures": after.count,
        "retry_after": decision.retry_after,
    }
    if detail is not None:
        data["detail"] = detail
    if skew is not None:  # a diagnosis for the audit log: the code was still refused
        data["skew_steps"], data["skew_seconds"] = skew
    ctx.emit(
        Event(
            type=event_type,
            user_id=user_id,
            at=now,
            credential_id=credential_id,
            reason=reason.value,
            data=data,
        )
    )
    if locks and decision.locked and after.count >= limits.max_failures:
        ctx.emit(
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
        skew_steps=None if skew is None else skew[0],
        skew_seconds=None if skew is None else skew[1],
    )


def count_failure_flow(
    ctx: Context,
    user_id: str,
    now: float,
    reason: VerifyReason,
    credential_id: str | None = None,
    *,
    event_type: EventType = _FAILED,
    detail: str | None = None,
) -> Flow[VerificationResult]:
    """Count a failed attempt that was checked without being admitted first (a
    confirmation: not a guess at an established factor) and refuse it, as :func:`fail`."""
    try:
        admission = yield from _admission_flow(ctx, user_id, now)
    except Exception as exc:
        return broken(
            ctx, user_id, now, VerifyReason.STORE_ERROR, exc, credential_id, event_type=event_type
        )
    return fail(
        ctx,
        user_id,
        now,
        admission.state,
        reason,
        credential_id,
        event_type=event_type,
        detail=detail,
        locks=admission.admitted,
    )


def gate_flow(
    ctx: Context, user_id: str, now: float, *, event_type: EventType = _FAILED
) -> Flow[VerificationResult | None]:
    """A throttle check that counts nothing (for confirmations): the refusal, or ``None``."""
    try:
        state = yield from call(FailureCounter.get_failures, user_id)
    except Exception as exc:
        return broken(ctx, user_id, now, VerifyReason.STORE_ERROR, exc, event_type=event_type)
    if type(state) is not FailureState:
        error = StoreError("the failure counter returned something that is not a FailureState")
        return broken(ctx, user_id, now, VerifyReason.STORE_ERROR, error, event_type=event_type)
    decision = throttle_check(state, now, ctx.config.throttle)
    if decision.allowed:
        return None
    return _refused(ctx, user_id, now, decision, event_type)


def succeed_flow(
    ctx: Context,
    user_id: str,
    now: float,
    after: FailureState | None,
    match: Match,
    event_type: EventType | None,
) -> Flow[VerificationResult]:
    """Claim the matched value and build the success result.

    ``after`` is the failure state counting this attempt: the claim then also resets the
    count (ONE store call on an AttemptStore). ``None`` (a confirmation, which was not
    counted): the claim alone. A lost claim is a replay (a counted failure); a store error
    refuses. ``event_type`` is the success event (``None``: the caller emits it).
    """
    credential = match.credential
    drift = credential.drift if match.drift is None else match.drift
    try:
        if after is None:
            claimed = yield from call(
                CredentialStore.claim, credential.id, match.value, drift=drift
            )
        elif ctx.fused:
            claimed = yield from call(
                AttemptStore.claim_and_reset,
                credential.id,
                match.value,
                drift=drift,
                user_id=user_id,
            )
        else:
            claimed = yield from call(
                CredentialStore.claim, credential.id, match.value, drift=drift
            )
            if claimed is True:
                yield from call(FailureCounter.reset, user_id)
    except Exception as exc:
        return broken(ctx, user_id, now, VerifyReason.STORE_ERROR, exc, credential.id)
    if claimed is not True:
        if after is None:
            return (
                yield from count_failure_flow(
                    ctx, user_id, now, VerifyReason.REPLAYED, credential.id
                )
            )
        return fail(ctx, user_id, now, after, VerifyReason.REPLAYED, credential.id)
    due = match.renewal_due
    if event_type is not None:
        ctx.emit(
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
        factor=credential.kind._value_,  # the attribute itself: .value is a slow property
    )


def scan(
    ctx: Context,
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
    config = ctx.config
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


# -- construction ------------------------------------------------------------------------------

_TAG_KEY_INFO: Final = b"mfa_core/service/recovery-tag-key/v1"
_OOB_KEY_INFO: Final = b"mfa_core/service/oob-code-key/v1"
_SEND_KEY_INFO: Final = b"mfa_core/service/oob-send-key/v1"
_DESTINATION_KEY_INFO: Final = b"mfa_core/service/oob-destination-key/v1"


def configure(
    ports: Sequence[tuple[type, type, object, str]],
    fused_protocol: type,
    check: Callable[[object, type, str], None],
    sealer: Sealer,
    *,
    clock: Clock | None,
    events: EventSink | None,
    config: ServiceConfig | None,
    secret: bytes | None,
    webauthn_config: WebAuthnConfig | None = None,
) -> tuple[Context, PortTable]:
    """The constructor logic of both front ends: check the ports and settings, derive the
    keys, and build the :class:`Context` and the :class:`PortTable`.

    ``ports`` holds ``(blocking Protocol, Protocol to implement, value, argument name)``
    for the credential store and failure counter (required, in that order) and the
    optional recovery-code store, challenge store and sender (``None`` when not given).
    ``check(value, protocol, name)`` raises InvalidParameter for a value that does not
    implement its Protocol (the async front end also asks for coroutine methods).
    ``fused_protocol`` is the AttemptStore Protocol of the front end: when the credential
    store and the failure counter are one object implementing it, the fused operations
    are used. ``webauthn_config`` is required with a WebAuthn store (and only then).
    """
    for index, (_, protocol, value, name) in enumerate(ports):
        if value is not None or index < 2:
            check(value, protocol, name)
    clock = SystemClock() if clock is None else clock
    events = NullEventSink() if events is None else events
    config = ServiceConfig() if config is None else config
    for value, protocol, name in (
        (sealer, Sealer, "sealer"),
        (clock, Clock, "clock"),
        (events, EventSink, "events"),
    ):
        if not isinstance(value, protocol):
            raise InvalidParameter(f"{name} must implement {protocol.__name__}")
    if not isinstance(config, ServiceConfig):
        raise InvalidParameter("config must be a ServiceConfig")
    given = [
        (blocking, protocol, value) for blocking, protocol, value, _ in ports if value is not None
    ]
    by_port = {blocking: value for blocking, _, value in given}
    has_recovery = RecoveryCodeStore in by_port
    has_oob = OOBChallengeStore in by_port
    if has_oob and CodeSender not in by_port:
        raise InvalidParameter("out-of-band codes need a sender (a CodeSender)")
    if secret is None and (has_recovery or has_oob):
        raise InvalidParameter("recovery and out-of-band codes need a host secret")
    raw = None if secret is None else check_key(secret)
    has_webauthn = WebAuthnStore in by_port
    if has_webauthn != (webauthn_config is not None):
        raise InvalidParameter("a WebAuthn store and webauthn_config go together")
    if webauthn_config is not None and not isinstance(webauthn_config, WebAuthnConfig):
        raise InvalidParameter("webauthn_config must be a WebAuthnConfig")
    credentials = by_port[CredentialStore]
    fused = credentials is by_port[FailureCounter] and isinstance(credentials, fused_protocol)
    if fused:
        given.append((AttemptStore, fused_protocol, credentials))
    ctx = Context(
        config=config,
        sealer=sealer,
        clock=clock,
        events=events,
        fused=fused,
        has_recovery=has_recovery,
        has_oob=has_oob and CodeSender in by_port,
        tag_key=None if raw is None else derive_key(raw, _TAG_KEY_INFO),
        oob_key=None if raw is None else derive_key(raw, _OOB_KEY_INFO),
        send_key=None if raw is None else derive_key(raw, _SEND_KEY_INFO),
        destination_key=None if raw is None else derive_key(raw, _DESTINATION_KEY_INFO),
        webauthn=webauthn_config,
    )
    return ctx, bind_ports(given)
