"""The enrolment flows of the service front ends: enrol, confirm, renew, cancel.

* ``begin_enrolment`` makes a key, seals it, stores a PENDING
  credential and returns the provisioning URI and the base32 secret (shown once).
* ``confirm_enrolment`` proves possession: the code's step/counter is
  claimed (it counts as used), the credential becomes ACTIVE, and MFA_ENABLED is emitted
  when the user had no usable credential before (the host may sign other sessions out).
* ``begin_renewal`` starts a new PENDING credential that ``replaces`` an
  active or expired one; the old one keeps working until the new one is confirmed, then it
  is superseded. Until that write is made, the confirmed replacement already keeps the old
  credential from authenticating (derived at read time), so no failure leaves two working.
* ``cancel_enrolment`` drops a pending enrolment; expired pending ones
  are dropped on the user's next enrolment.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence

import attrs

from ..errors import CredentialNotFound, IllegalTransition, InvalidParameter, MFAError
from ..keys import b32encode_key, generate_key
from ..lifecycle import LifecycleEvent, effective_state, transition
from ..models import Credential, CredentialKind, CredentialState, Event, EventType
from ..otp import DEFAULT_PERIOD, normalize_code
from ..ports import CredentialStore
from ..uri import build_uri
from ._confirm import (
    admit_confirmation_flow,
    confirmation_failed_flow,
    forget_confirmations_flow,
)
from ._context import (
    OTP_KINDS,
    Context,
    apply_flow,
    broken,
    check_id,
    check_label,
    checked,
    find,
    gate_flow,
    new_credential_id,
    parse_kind,
    scan,
    superseded,
    usable,
)
from ._effects import Flow, call
from ._factors import (
    DESTINATION_KINDS,
    confirm_destination_flow,
    confirm_write_flow,
    start_destination_flow,
)
from .results import Enrolment, VerificationResult, VerifyReason

__all__ = [
    "begin_enrolment_flow",
    "begin_renewal_flow",
    "cancel_enrolment_flow",
    "confirm_enrolment_flow",
    "enrolment_uri_flow",
]

_logger = logging.getLogger("mfa_core.service")


def begin_enrolment_flow(
    ctx: Context,
    user_id: str,
    *,
    kind: CredentialKind | str = CredentialKind.TOTP,
    label: str = "",
    account: str | None = None,
    destination: str | None = None,
) -> Flow[Enrolment]:
    check_id(user_id, "user_id")
    otp_kind = parse_kind(kind)
    check_label(label)
    if (otp_kind in DESTINATION_KINDS) != (destination is not None):
        raise InvalidParameter("a destination is given for SMS and email factors only")
    now = ctx.now()
    credentials = yield from checked(call(CredentialStore.list_for_user, user_id))
    yield from drop_abandoned_flow(ctx, credentials, now)
    yield from drop_earlier_pending_flow(ctx, credentials, otp_kind, now)
    if otp_kind in DESTINATION_KINDS:
        return (yield from start_destination_flow(ctx, user_id, otp_kind, destination, label, now))
    return (yield from start_flow(ctx, user_id, otp_kind, label, account, now, replaces=None))


def begin_renewal_flow(
    ctx: Context,
    user_id: str,
    credential_id: str,
    *,
    label: str | None = None,
    account: str | None = None,
) -> Flow[Enrolment]:
    check_id(user_id, "user_id")
    check_id(credential_id, "credential_id")
    if label is not None:
        check_label(label)
    now = ctx.now()
    credentials = yield from checked(call(CredentialStore.list_for_user, user_id))
    old = find(credentials, credential_id)
    if old.kind in DESTINATION_KINDS:
        raise InvalidParameter(
            "an SMS or email factor is renewed by enrolling the destination again"
        )
    state = effective_state(old, now, ctx.config.lifecycle)
    if old.id in superseded(credentials):
        raise IllegalTransition(
            "credential was already replaced by a confirmed renewal; event renew refused"
        )
    transition(state, LifecycleEvent.RENEW)
    for credential in credentials:
        if credential.replaces == old.id and credential.status == CredentialState.PENDING:
            yield from abandon_flow(ctx, credential, now, "renewal_restarted")
    return (
        yield from start_flow(
            ctx,
            user_id,
            old.kind,
            old.label if label is None else label,
            account,
            now,
            replaces=old.id,
        )
    )


def cancel_enrolment_flow(ctx: Context, user_id: str, credential_id: str) -> Flow[None]:
    check_id(user_id, "user_id")
    check_id(credential_id, "credential_id")
    now = ctx.now()
    credentials = yield from checked(call(CredentialStore.list_for_user, user_id))
    yield from abandon_flow(ctx, find(credentials, credential_id), now, "cancelled")


def confirm_enrolment_flow(
    ctx: Context, user_id: str, credential_id: str, code: object
) -> Flow[VerificationResult]:
    check_id(user_id, "user_id")
    check_id(credential_id, "credential_id")
    now = ctx.now()
    try:
        credentials = yield from call(CredentialStore.list_for_user, user_id)
    except Exception as exc:
        return broken(ctx, user_id, now, VerifyReason.STORE_ERROR, exc)
    pending = find(credentials, credential_id)
    transition(effective_state(pending, now, ctx.config.lifecycle), LifecycleEvent.CONFIRM)
    # A confirmation is not a guess at an established factor: the user's throttle is
    # checked without counting, and the attempt is counted on the enrolment's own counter
    # (its own limit; it never locks the user's other factors).
    refusal = yield from gate_flow(ctx, user_id, now)
    if refusal is not None:
        return refusal
    if pending.kind in DESTINATION_KINDS:
        return (yield from confirm_destination_flow(ctx, credentials, pending, code, now))
    had_usable = bool(usable(ctx, credentials, now)[0])
    after = yield from admit_confirmation_flow(ctx, pending, now)
    if isinstance(after, VerificationResult):
        return after
    candidate = normalize_code(code, pending.digits)
    if candidate is None:
        malformed = VerifyReason.MALFORMED
        return (yield from confirmation_failed_flow(ctx, pending, now, after, malformed))
    try:
        key = ctx.sealer.unseal(pending.sealed_key, credential_id=pending.id)
    except Exception as exc:
        return broken(ctx, user_id, now, VerifyReason.SEALING_ERROR, exc, pending.id)
    match, replayed = scan(ctx, pending, key, candidate, now, learned=False)
    if match is None:
        reason = VerifyReason.REPLAYED if replayed else VerifyReason.INVALID_CODE
        return (yield from confirmation_failed_flow(ctx, pending, now, after, reason))
    # Claim first: exactly one of concurrent confirmations with the same code wins.
    drift = pending.drift if match.drift is None else match.drift
    try:
        claimed = yield from call(CredentialStore.claim, pending.id, match.value, drift=drift)
    except Exception as exc:
        return broken(ctx, user_id, now, VerifyReason.STORE_ERROR, exc, pending.id)
    if claimed is not True:
        replay = VerifyReason.REPLAYED
        return (yield from confirmation_failed_flow(ctx, pending, now, after, replay))
    result = VerificationResult(
        accepted=True,
        reason=VerifyReason.OK,
        credential_id=pending.id,
        matched=match.value,
        offset=match.offset,
        drift=match.drift,
        factor=pending.kind.value,
    )
    refusal = yield from confirm_write_flow(ctx, pending, now)
    if refusal is not None:
        return refusal
    ctx.emit(
        Event(
            type=EventType.ENROLMENT_CONFIRMED,
            user_id=user_id,
            at=now,
            credential_id=pending.id,
            reason=VerifyReason.OK.value,
            data={"offset": match.offset, "drift": match.drift},
        )
    )
    yield from forget_confirmations_flow(ctx, pending)
    if pending.replaces is not None:
        yield from supersede_flow(ctx, credentials, pending, now)
    if not had_usable:
        ctx.emit(
            Event(
                type=EventType.MFA_ENABLED,
                user_id=user_id,
                at=now,
                credential_id=pending.id,
            )
        )
    return result


# -- helpers -----------------------------------------------------------------------------


def start_flow(
    ctx: Context,
    user_id: str,
    kind: CredentialKind,
    label: str,
    account: str | None,
    now: float,
    *,
    replaces: str | None,
) -> Flow[Enrolment]:
    config = ctx.config
    status = transition(CredentialState.NONE, LifecycleEvent.ENROL)  # PENDING
    key = generate_key(config.key_bytes)
    credential_id = new_credential_id()
    is_totp = kind == CredentialKind.TOTP
    uri = build_uri(
        key,
        account=user_id if account is None else account,
        issuer=config.issuer,
        kind=kind,
        digits=config.digits,
        algorithm=config.algorithm,
        period=config.period if is_totp else DEFAULT_PERIOD,
        counter=None if is_totp else 0,
    )
    sealed = ctx.seal(key, credential_id)
    pending_until = now + config.lifecycle.pending_ttl
    credential = Credential(
        id=credential_id,
        user_id=user_id,
        kind=kind,
        sealed_key=sealed,
        created_at=now,
        status=CredentialState.PENDING if status is None else status,
        algorithm=config.algorithm,
        digits=config.digits,
        period=config.period if is_totp else DEFAULT_PERIOD,
        label=label,
        pending_until=pending_until,
        replaces=replaces,
    )
    yield from checked(call(CredentialStore.add, credential))
    ctx.emit(
        Event(
            type=(
                EventType.ENROLMENT_STARTED
                if replaces is None
                else EventType.CREDENTIAL_RENEWAL_STARTED
            ),
            user_id=user_id,
            at=now,
            credential_id=credential_id,
            data={"kind": kind.value, "replaces": replaces},
        )
    )
    return Enrolment(
        credential_id=credential_id,
        user_id=user_id,
        kind=kind,
        expires_at=pending_until,
        replaces=replaces,
        secret=b32encode_key(key),
        uri=uri,
    )


def abandon_flow(ctx: Context, credential: Credential, now: float, reason: str) -> Flow[None]:
    """Drop a pending enrolment (restarted, cancelled, expired) and forget its confirmation
    attempts: a request that read it before is refused at the compare-and-set of its
    confirmation (the credential is gone), so the count protects nothing any more."""
    yield from apply_flow(ctx, credential, LifecycleEvent.ABANDON, now)
    yield from forget_confirmations_flow(ctx, credential)
    ctx.emit(
        Event(
            type=EventType.CREDENTIAL_REMOVED,
            user_id=credential.user_id,
            at=now,
            credential_id=credential.id,
            reason=reason,
        )
    )


def drop_earlier_pending_flow(
    ctx: Context, credentials: Sequence[Credential], kind: CredentialKind, now: float
) -> Flow[None]:
    """A new enrolment replaces the user's earlier unconfirmed one of the same kind (not a
    pending renewal: that one belongs to its credential)."""
    lifecycle = ctx.config.lifecycle
    for credential in credentials:
        if (
            credential.kind == kind
            and credential.replaces is None
            and effective_state(credential, now, lifecycle) == CredentialState.PENDING
        ):
            with contextlib.suppress(CredentialNotFound, IllegalTransition):
                yield from abandon_flow(ctx, credential, now, "enrolment_restarted")


def enrolment_uri_flow(
    ctx: Context, user_id: str, credential_id: str, *, account: str | None = None
) -> Flow[Enrolment]:
    """The provisioning URI and secret of a PENDING TOTP/HOTP enrolment, again (until it
    is confirmed or expires): rebuilt from the sealed key, nothing changes."""
    check_id(user_id, "user_id")
    check_id(credential_id, "credential_id")
    now = ctx.now()
    credentials = yield from checked(call(CredentialStore.list_for_user, user_id))
    pending = find(credentials, credential_id)
    state = effective_state(pending, now, ctx.config.lifecycle)
    if state != CredentialState.PENDING or pending.kind not in OTP_KINDS:
        raise IllegalTransition(
            f"the provisioning URI is shown only for a pending authenticator (state {state.value})"
        )
    key = ctx.unseal(pending)
    is_totp = pending.kind == CredentialKind.TOTP
    uri = build_uri(
        key,
        account=user_id if account is None else account,
        issuer=ctx.config.issuer,
        kind=pending.kind,
        digits=pending.digits,
        algorithm=pending.algorithm,
        period=pending.period if is_totp else DEFAULT_PERIOD,
        counter=None if is_totp else pending.last_accepted + 1,
    )
    deadline = pending.pending_until
    return Enrolment(
        credential_id=pending.id,
        user_id=user_id,
        kind=pending.kind,
        expires_at=(
            pending.created_at + ctx.config.lifecycle.pending_ttl if deadline is None else deadline
        ),
        replaces=pending.replaces,
        secret=b32encode_key(key),
        uri=uri,
    )


def drop_abandoned_flow(ctx: Context, credentials: Sequence[Credential], now: float) -> Flow[None]:
    lifecycle = ctx.config.lifecycle
    for credential in credentials:
        if effective_state(credential, now, lifecycle) == CredentialState.PENDING_EXPIRED:
            with contextlib.suppress(CredentialNotFound):  # dropped concurrently
                yield from abandon_flow(ctx, credential, now, "pending_expired")


def supersede_flow(
    ctx: Context, credentials: Sequence[Credential], new: Credential, now: float
) -> Flow[None]:
    """Retire the credential a confirmed renewal replaces, and say so.

    Best effort: the confirmed replacement already keeps the old credential from
    authenticating, so a failure here is logged, not raised.
    """
    replaced = new.replaces
    if replaced is None:
        return
    ctx.emit(
        Event(
            type=EventType.CREDENTIAL_RENEWED,
            user_id=new.user_id,
            at=now,
            credential_id=new.id,
            data={"replaces": replaced},
        )
    )
    try:
        old = find(credentials, replaced)
        target = yield from apply_flow(ctx, old, LifecycleEvent.SUPERSEDE, now, _disabled_at(now))
    except CredentialNotFound:
        return
    except MFAError as exc:
        _logger.warning(
            "could not retire a superseded credential (%s); it no longer authenticates",
            type(exc).__name__,
            exc_info=exc,
        )
        return
    ctx.emit(
        Event(
            type=(
                EventType.CREDENTIAL_REMOVED if target is None else EventType.CREDENTIAL_DISABLED
            ),
            user_id=new.user_id,
            at=now,
            credential_id=replaced,
            reason="superseded",
            data={"replaced_by": new.id},
        )
    )


def _disabled_at(now: float) -> Callable[[Credential], Credential]:
    """Stamp for a transition to DISABLED."""
    return lambda credential: attrs.evolve(credential, disabled_at=now)
