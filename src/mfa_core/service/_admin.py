"""The administrative and listing flows of the service front ends.

Disable (with a step-up code or by an administrator), administrative reset and unlock,
listing with effective states, and re-sealing keys under the current sealing key; each is
a flow (:mod:`mfa_core.service._effects`) that :class:`~mfa_core.service.MFAService` and
:class:`~mfa_core.aio.AsyncMFAService` run with their own driver.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Final

import attrs

from ..errors import (
    CredentialNotFound,
    IllegalTransition,
    InvalidParameter,
    StepUpRequired,
    StoreError,
)
from ..lifecycle import LifecycleEvent, can_authenticate, effective_state, renewal_due, transition
from ..models import Credential, CredentialState, Event, EventType
from ..policy import Factor
from ..ports import CredentialStore, FailureCounter, RecoveryCodeStore
from ._context import (
    Context,
    apply_flow,
    check_id,
    checked,
    factors_of,
    find,
    superseded,
    usable,
)
from ._effects import Flow, call
from ._factors import destination_hint
from ._history import History, note_flow
from ._stepup import raise_unless_accepted, step_up_flow
from .results import CredentialInfo

__all__ = [
    "admin_reset_flow",
    "admin_unlock_flow",
    "disable_flow",
    "list_credentials_flow",
    "reseal_flow",
]

_RESEAL_ATTEMPTS: Final = 3


def disable_flow(
    ctx: Context,
    user_id: str,
    credential_id: str,
    *,
    step_up_code: object = None,
    by_admin: str | None = None,
    step_up_challenge_id: str | None = None,
    keep_recovery_codes: bool = False,
    step_up_factors: frozenset[Factor] | None = None,
) -> Flow[None]:
    check_id(user_id, "user_id")
    check_id(credential_id, "credential_id")
    if by_admin is not None:
        check_id(by_admin, "by_admin")
    now = ctx.now()
    credentials = yield from checked(call(CredentialStore.list_for_user, user_id))
    credential = find(credentials, credential_id)
    # Refuse an illegal transition before spending the user's step-up code.
    transition(effective_state(credential, now, ctx.config.lifecycle), LifecycleEvent.DISABLE)
    if by_admin is None:
        if step_up_code is None:
            raise StepUpRequired("disabling a credential needs a fresh second-factor code")
        checked_up = yield from step_up_flow(
            ctx,
            user_id,
            step_up_code,
            now,
            challenge_id=step_up_challenge_id,
            factors=step_up_factors,
        )
        raise_unless_accepted(checked_up)
    target = yield from apply_flow(
        ctx,
        credential,
        LifecycleEvent.DISABLE,
        now,
        lambda c: attrs.evolve(c, disabled_at=now),
    )
    ctx.emit(
        Event(
            type=(
                EventType.CREDENTIAL_DISABLED
                if target is not None
                else EventType.CREDENTIAL_REMOVED
            ),
            user_id=user_id,
            at=now,
            credential_id=credential_id,
            reason="disabled",
            actor=by_admin,
        )
    )
    if not keep_recovery_codes:
        yield from revoke_if_bare_flow(ctx, user_id, now, "disabled", by_admin)


def admin_reset_flow(
    ctx: Context,
    user_id: str,
    *,
    admin_id: str,
    credential_id: str | None = None,
    keep_recovery_codes: bool = False,
) -> Flow[int]:
    check_id(user_id, "user_id")
    check_id(admin_id, "admin_id")
    if credential_id is not None:
        check_id(credential_id, "credential_id")
    now = ctx.now()
    credentials = yield from checked(call(CredentialStore.list_for_user, user_id))
    targets = (
        factors_of(credentials) if credential_id is None else [find(credentials, credential_id)]
    )
    lifecycle = ctx.config.lifecycle
    for credential in targets:  # check every transition before changing anything
        transition(effective_state(credential, now, lifecycle), LifecycleEvent.ADMIN_RESET)
    removed = 0
    for credential in targets:
        try:
            yield from apply_flow(ctx, credential, LifecycleEvent.ADMIN_RESET, now)
        except CredentialNotFound:
            continue
        removed += 1
        ctx.emit(
            Event(
                type=EventType.CREDENTIAL_RESET,
                user_id=user_id,
                at=now,
                credential_id=credential.id,
                reason="admin_reset",
                actor=admin_id,
            )
        )
    if removed:
        yield from note_flow(ctx, user_id, now, History(reset=now))
    if not keep_recovery_codes:
        yield from revoke_if_bare_flow(ctx, user_id, now, "admin_reset", admin_id)
    return removed


def revoke_if_bare_flow(
    ctx: Context, user_id: str, now: float, why: str, actor: str | None
) -> Flow[None]:
    """Delete the user's recovery codes when none of their factors can authenticate any
    more (recovery codes are a fallback FOR a factor): ONE atomic replacement of the set
    by nothing, then RECOVERY_CODES_REVOKED. Nothing happens without a recovery-code
    store, with a usable factor left, or when the user has no codes."""
    if not ctx.has_recovery:
        return
    credentials = yield from checked(call(CredentialStore.list_for_user, user_id))
    if usable(ctx, credentials, now)[0]:
        return
    records = yield from checked(call(RecoveryCodeStore.recovery_codes, user_id))
    if not records:
        return
    yield from checked(call(RecoveryCodeStore.replace_recovery_codes, user_id, ()))
    ctx.emit(
        Event(
            type=EventType.RECOVERY_CODES_REVOKED,
            user_id=user_id,
            at=now,
            reason=why,
            actor=actor,
            data={"unused": sum(1 for r in records if r.used_at is None)},
        )
    )


def admin_unlock_flow(ctx: Context, user_id: str, *, admin_id: str) -> Flow[None]:
    check_id(user_id, "user_id")
    check_id(admin_id, "admin_id")
    now = ctx.now()
    yield from checked(call(FailureCounter.reset, user_id))
    ctx.emit(Event(type=EventType.USER_UNLOCKED, user_id=user_id, at=now, actor=admin_id))


def list_credentials_flow(ctx: Context, user_id: str) -> Flow[list[CredentialInfo]]:
    check_id(user_id, "user_id")
    now = ctx.now()
    credentials = yield from checked(call(CredentialStore.list_for_user, user_id))
    return infos_of(ctx, credentials, now)


def infos_of(ctx: Context, credentials: Sequence[Credential], now: float) -> list[CredentialInfo]:
    """The listing of a user's credentials (the history record left out)."""
    lifecycle = ctx.config.lifecycle
    replaced = superseded(credentials)
    infos: list[CredentialInfo] = []
    for credential in factors_of(credentials):
        state: CredentialState | None = effective_state(credential, now, lifecycle)
        if credential.id in replaced and state is not None:
            # Disabled meanwhile (no SUPERSEDE from there): shown as it is.
            with contextlib.suppress(IllegalTransition):
                state = transition(state, LifecycleEvent.SUPERSEDE)
        if state is None:
            continue
        infos.append(info(ctx, credential, state, now))
    return infos


def reseal_flow(
    ctx: Context, user_id: str | None = None, *, credential_ids: Iterable[str] | None = None
) -> Flow[int]:
    if (user_id is None) == (credential_ids is None):
        raise InvalidParameter("give either user_id or credential_ids")
    now = ctx.now()
    if credential_ids is None:
        user = check_id(user_id, "user_id")
        credentials = list((yield from checked(call(CredentialStore.list_for_user, user))))
    else:
        credentials = []
        for credential_id in credential_ids:
            check_id(credential_id, "credential_id")
            found = yield from checked(call(CredentialStore.get, credential_id))
            if found is None:
                raise CredentialNotFound("no such credential")
            credentials.append(found)
    count = 0
    for credential in credentials:
        if (yield from reseal_one_flow(ctx, credential)):
            count += 1
            ctx.emit(
                Event(
                    type=EventType.KEY_RESEALED,
                    user_id=credential.user_id,
                    at=now,
                    credential_id=credential.id,
                )
            )
    return count


def reseal_one_flow(ctx: Context, credential: Credential | None) -> Flow[bool]:
    for _ in range(_RESEAL_ATTEMPTS):
        if credential is None or not ctx.sealer.needs_reseal(credential.sealed_key):
            return False
        key = ctx.unseal(credential)
        updated = attrs.evolve(credential, sealed_key=ctx.seal(key, credential.id))
        del key
        version = credential.version
        if (yield from checked(call(CredentialStore.update, updated, expected_version=version))):
            return True
        credential = yield from checked(call(CredentialStore.get, credential.id))
    raise StoreError("the credential kept changing concurrently; it was not re-sealed")


def info(
    ctx: Context, credential: Credential, state: CredentialState, now: float
) -> CredentialInfo:
    lifecycle = ctx.config.lifecycle
    expires_at = (
        None if credential.renewed_at is None else credential.renewed_at + lifecycle.max_age
    )
    try:
        needs = ctx.sealer.needs_reseal(credential.sealed_key)
    except Exception:
        needs = True
    return CredentialInfo(
        id=credential.id,
        user_id=credential.user_id,
        kind=credential.kind,
        label=credential.label,
        state=state,
        can_authenticate=can_authenticate(state, lifecycle),
        renewal_due=renewal_due(credential, now, lifecycle),
        created_at=credential.created_at,
        confirmed_at=credential.confirmed_at,
        renewed_at=credential.renewed_at,
        expires_at=expires_at,
        pending_until=credential.pending_until,
        disabled_at=credential.disabled_at,
        replaces=credential.replaces,
        digits=credential.digits,
        algorithm=credential.algorithm,
        period=credential.period,
        needs_reseal=needs,
        destination=destination_hint(ctx, credential),
    )
