"""SMS and email factors as credentials: a confirmed destination with a lifecycle.

A phone number or email address is a :class:`~mfa_core.models.Credential` of kind
``SMS`` or ``EMAIL`` in the credential store, with the destination sealed like a key
(``sealed_key``, bound to the credential id) and shown only masked. It goes through the
same transition table (:mod:`mfa_core.lifecycle`) and events as an authenticator:

* enrolment (``begin_enrolment(kind="sms", destination=...)``) stores a PENDING
  credential and sends a confirmation code to the destination, on the challenge
  ``enrol.<credential id>`` (purpose ``phone_confirmation``);
* ``confirm_enrolment`` checks that code: attempts are counted on the enrolment's own
  counter (:mod:`~mfa_core.service._confirm`), never on the user's lockout; a correct
  code makes it ACTIVE (ENROLMENT_CONFIRMED, MFA_ENABLED for a first factor);
  ``send_factor_code(..., purpose="phone_confirmation")`` sends a new confirmation code
  (resend cooldown and send limits apply);
* ``admin_confirm`` lets an administrator confirm it without a code (Usedesk);
* ``disable``, ``admin_reset`` (unpinning a number) and expiry work as for any credential;
* login and step-up codes go to the destination the store holds:
  ``send_factor_code(user, credential_id, purpose="login")`` - the host names the
  factor, never the number - and are checked by ``verify_oob_code`` or ``step_up``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Final

import attrs

from ..errors import CredentialNotFound, IllegalTransition, InvalidParameter, MFAError
from ..lifecycle import LifecycleEvent, can_authenticate, effective_state, transition
from ..models import Credential, CredentialKind, CredentialState, Event, EventType
from ..oob import OOBChannel, OOBPurpose, check, mask_destination, parse_purpose
from ..ports import CredentialStore, OOBChallengeStore
from ._confirm import (
    admit_confirmation_flow,
    confirmation_failed_flow,
    forget_confirmations_flow,
)
from ._context import (
    Context,
    apply_flow,
    broken,
    check_id,
    checked,
    find,
    new_credential_id,
    refuse,
    usable,
)
from ._effects import Flow, call
from ._history import History, note_flow
from ._oob import REASONS, oob_code_key, resend_oob_code_flow, send_oob_code_flow
from .results import Enrolment, VerificationResult, VerifyReason

__all__ = [
    "DESTINATION_KINDS",
    "admin_confirm_flow",
    "confirm_destination_flow",
    "confirm_write_flow",
    "destination_hint",
    "enrolment_challenge",
    "send_factor_code_flow",
    "start_destination_flow",
]

DESTINATION_KINDS: Final = frozenset({CredentialKind.SMS, CredentialKind.EMAIL})
"""Credential kinds whose "key" is a sealed destination."""
_CHANNELS: Final = {CredentialKind.SMS: OOBChannel.SMS, CredentialKind.EMAIL: OOBChannel.EMAIL}
_CONFIRM: Final = OOBPurpose.PHONE_CONFIRMATION
_CAS_ATTEMPTS: Final = 64


def enrolment_challenge(credential_id: str) -> str:
    """The challenge id of a destination's confirmation code."""
    return "enrol." + credential_id


def channel_of(credential: Credential) -> OOBChannel:
    """The out-of-band channel of an SMS/email credential."""
    return _CHANNELS[credential.kind]


def unseal_destination(ctx: Context, credential: Credential) -> str:
    """The plain destination of an SMS/email credential (typed errors)."""
    raw = ctx.unseal(credential)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidParameter("the sealed destination is not text") from None


def destination_hint(ctx: Context, credential: Credential) -> str | None:
    """The masked destination for display (``None`` for an authenticator; ``"***"`` when
    it cannot be unsealed)."""
    if credential.kind not in DESTINATION_KINDS:
        return None
    try:
        return mask_destination(channel_of(credential), unseal_destination(ctx, credential))
    except Exception:
        return "***"


def start_destination_flow(
    ctx: Context,
    user_id: str,
    kind: CredentialKind,
    destination: object,
    label: str,
    now: float,
) -> Flow[Enrolment]:
    """Store a PENDING SMS/email credential and send its confirmation code."""
    oob_code_key(ctx)  # out-of-band codes must be configured
    channel = _CHANNELS[kind]
    if type(destination) is not str:
        raise InvalidParameter("an SMS or email enrolment needs a destination")
    hint = mask_destination(channel, destination)  # refuses a non-address
    transition(CredentialState.NONE, LifecycleEvent.ENROL)
    credential_id = new_credential_id()
    pending_until = now + ctx.config.lifecycle.pending_ttl
    credential = Credential(
        id=credential_id,
        user_id=user_id,
        kind=kind,
        sealed_key=ctx.seal(destination.encode("utf-8"), credential_id),
        created_at=now,
        status=CredentialState.PENDING,
        digits=ctx.config.oob.digits,
        label=label,
        pending_until=pending_until,
    )
    yield from checked(call(CredentialStore.add, credential))
    challenge = enrolment_challenge(credential_id)
    try:
        yield from send_oob_code_flow(
            ctx,
            user_id,
            channel=channel,
            destination=destination,
            purpose=_CONFIRM,
            challenge_id=challenge,
        )
    except MFAError:
        # Nothing was delivered (limit, lock, gateway): the enrolment is not left behind.
        with contextlib.suppress(Exception):  # else it stays pending and expires
            yield from call(CredentialStore.delete, credential_id)
        raise
    ctx.emit(
        Event(
            type=EventType.ENROLMENT_STARTED,
            user_id=user_id,
            at=now,
            credential_id=credential_id,
            data={"kind": kind.value, "replaces": None, "destination": hint},
        )
    )
    return Enrolment(
        credential_id=credential_id,
        user_id=user_id,
        kind=kind,
        expires_at=pending_until,
        secret="",
        uri="",
        challenge_id=challenge,
        destination=hint,
    )


def confirm_destination_flow(
    ctx: Context,
    credentials: Sequence[Credential],
    pending: Credential,
    code: object,
    now: float,
) -> Flow[VerificationResult]:
    """Check the confirmation code of a pending SMS/email credential (the caller checked
    the transition and the user's throttle)."""
    user_id = pending.user_id
    key = oob_code_key(ctx)
    had_usable = bool(usable(ctx, credentials, now)[0])
    after = yield from admit_confirmation_flow(ctx, pending, now)
    if isinstance(after, VerificationResult):
        return after
    challenge = enrolment_challenge(pending.id)
    for _ in range(_CAS_ATTEMPTS):
        try:
            record = yield from call(OOBChallengeStore.get_challenge, challenge)
        except Exception as exc:
            return broken(ctx, user_id, now, VerifyReason.STORE_ERROR, exc, pending.id)
        if record is None or record.user_id != user_id:
            wrong = VerifyReason.INVALID_CODE
            return (yield from confirmation_failed_flow(ctx, pending, now, after, wrong))
        decided = check(record, code, purpose=_CONFIRM, challenge_id=challenge, now=now, key=key)
        if decided.changed:
            try:
                written = yield from call(
                    OOBChallengeStore.update_challenge, decided.record, expected=record
                )
            except Exception as exc:
                return broken(ctx, user_id, now, VerifyReason.STORE_ERROR, exc, pending.id)
            if not written:
                continue
        if not decided.ok:
            reason = REASONS[decided.reason]
            return (yield from confirmation_failed_flow(ctx, pending, now, after, reason))
        break
    else:
        return refuse(ctx, user_id, now, VerifyReason.CONFLICT, credential_id=pending.id)
    return (yield from _activate_flow(ctx, pending, now, had_usable, actor=None))


def admin_confirm_flow(
    ctx: Context, user_id: str, credential_id: str, *, admin_id: str
) -> Flow[None]:
    """An administrator confirms a pending SMS/email factor without a code."""
    check_id(user_id, "user_id")
    check_id(credential_id, "credential_id")
    check_id(admin_id, "admin_id")
    now = ctx.now()
    credentials = yield from checked(call(CredentialStore.list_for_user, user_id))
    pending = find(credentials, credential_id)
    if pending.kind not in DESTINATION_KINDS:
        raise InvalidParameter("only SMS and email factors can be confirmed by an administrator")
    transition(effective_state(pending, now, ctx.config.lifecycle), LifecycleEvent.CONFIRM)
    had_usable = bool(usable(ctx, credentials, now)[0])
    result = yield from _activate_flow(ctx, pending, now, had_usable, actor=admin_id)
    if not result.accepted:
        raise IllegalTransition("the factor changed concurrently; it was not confirmed")


def confirm_write_flow(
    ctx: Context, pending: Credential, now: float
) -> Flow[VerificationResult | None]:
    """Apply CONFIRM to a pending credential (ACTIVE, validity from ``now``): ``None``
    when written, else the refusal (changed concurrently, or a store failure)."""
    try:
        yield from apply_flow(
            ctx,
            pending,
            LifecycleEvent.CONFIRM,
            now,
            lambda c: attrs.evolve(c, confirmed_at=now, renewed_at=now, pending_until=None),
        )
    except (IllegalTransition, CredentialNotFound):
        return refuse(ctx, pending.user_id, now, VerifyReason.CONFLICT, credential_id=pending.id)
    except MFAError as exc:
        return broken(ctx, pending.user_id, now, VerifyReason.STORE_ERROR, exc, pending.id)
    return None


def _activate_flow(
    ctx: Context, pending: Credential, now: float, had_usable: bool, *, actor: str | None
) -> Flow[VerificationResult]:
    user_id = pending.user_id
    refusal = yield from confirm_write_flow(ctx, pending, now)
    if refusal is not None:
        return refusal
    yield from forget_confirmations_flow(ctx, pending)
    yield from note_flow(ctx, user_id, now, History(confirmed={pending.kind.value: now}))
    ctx.emit(
        Event(
            type=EventType.ENROLMENT_CONFIRMED,
            user_id=user_id,
            at=now,
            credential_id=pending.id,
            reason=VerifyReason.OK.value,
            actor=actor,
            data={"kind": pending.kind.value},
        )
    )
    if not had_usable:
        ctx.emit(
            Event(type=EventType.MFA_ENABLED, user_id=user_id, at=now, credential_id=pending.id)
        )
    return VerificationResult(
        accepted=True,
        reason=VerifyReason.OK,
        credential_id=pending.id,
        factor=f"{channel_of(pending).value}_code",
    )


def send_factor_code_flow(
    ctx: Context, user_id: str, credential_id: str, purpose: OOBPurpose | str
) -> Flow[str]:
    """Send a code to the destination an SMS/email credential holds; return the challenge.

    ``login``, ``step_up`` or ``reset``: the credential must be able to authenticate (a new
    challenge each time). ``phone_confirmation``: the credential must be PENDING; the
    enrolment's confirmation code is sent again (resend cooldown applies).
    """
    check_id(user_id, "user_id")
    check_id(credential_id, "credential_id")
    kind = parse_purpose(purpose)
    oob_code_key(ctx)
    now = ctx.now()
    credentials = yield from checked(call(CredentialStore.list_for_user, user_id))
    credential = find(credentials, credential_id)
    if credential.kind not in DESTINATION_KINDS:
        raise InvalidParameter("codes are sent only to SMS and email factors")
    state = effective_state(credential, now, ctx.config.lifecycle)
    destination = unseal_destination(ctx, credential)
    if kind is _CONFIRM:
        if state != CredentialState.PENDING:
            raise IllegalTransition(f"the factor is {state.value}, not pending confirmation")
        challenge = enrolment_challenge(credential.id)
        return (yield from resend_oob_code_flow(ctx, user_id, challenge, destination))
    if not can_authenticate(state, ctx.config.lifecycle):
        raise IllegalTransition(f"a factor in state {state.value} cannot receive login codes")
    return (
        yield from send_oob_code_flow(
            ctx,
            user_id,
            channel=channel_of(credential),
            destination=destination,
            purpose=kind,
        )
    )
