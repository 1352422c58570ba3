"""Policy decisions through the service: :func:`mfa_core.policy.evaluate` with the clock
and the factors the stores know.

The policy engine is pure; this flow only supplies ``now`` (from the service's clock), the
user's factors with their states (TOTP/HOTP/SMS/email credentials, recovery codes,
security keys), the last successful check and the last factor reset from the service's own records
(:mod:`~mfa_core.service._history`), so a host does not have to assemble them for every
decision.
"""

from __future__ import annotations

from typing import Final

import attrs

from ..errors import InvalidParameter
from ..models import CredentialKind, CredentialState
from ..policy import (
    Decision,
    EnrolledFactor,
    Factor,
    Policy,
    RequestContext,
    SecondFactorCheck,
    evaluate,
)
from ..ports import CredentialStore, RecoveryCodeStore, WebAuthnStore
from ._admin import infos_of
from ._context import Context, checked
from ._effects import Flow, call
from ._history import history_of

__all__ = ["MANAGED_FACTORS", "decide_flow", "enrolled_factors_flow"]

_DESTINATION_FACTORS: Final = frozenset({Factor.SMS_CODE, Factor.EMAIL_CODE})
_NAMES: Final = frozenset(f.value for f in Factor)
_FACTOR_OF: Final = {
    CredentialKind.TOTP: Factor.TOTP,
    CredentialKind.HOTP: Factor.HOTP,
    CredentialKind.SMS: Factor.SMS_CODE,
    CredentialKind.EMAIL: Factor.EMAIL_CODE,
}

MANAGED_FACTORS: Final = frozenset(
    {Factor.TOTP, Factor.HOTP, Factor.RECOVERY_CODE, Factor.SMS_CODE, Factor.EMAIL_CODE}
)
"""Factors whose enrolment and state the service reads from its own stores."""


def enrolled_factors_flow(ctx: Context, user_id: str) -> Flow[tuple[EnrolledFactor, ...]]:
    """The user's factors as :func:`known_flow` reads them (the factors alone)."""
    factors, _, _ = yield from known_flow(ctx, user_id)
    return factors


def known_flow(
    ctx: Context, user_id: str
) -> Flow[tuple[tuple[EnrolledFactor, ...], SecondFactorCheck | None, float | None]]:
    """What the service knows of a user: their factors (TOTP/HOTP/SMS/email credentials
    with effective states, superseded ones left out, and the recovery codes: ACTIVE while
    unused codes are left, DISABLED once all are used), the last successful check it
    can vouch for, and when an administrator last reset their factors."""
    now = ctx.now()
    credentials = yield from checked(call(CredentialStore.list_for_user, user_id))
    infos = infos_of(ctx, credentials, now)
    factors = [EnrolledFactor(factor=_FACTOR_OF[info.kind], state=info.state) for info in infos]
    history = history_of(ctx, credentials)
    checks: dict[Factor, float] = {Factor(k): v for k, v in history.checks.items() if k in _NAMES}
    for credential in credentials:
        if credential.kind is CredentialKind.TOTP and credential.last_accepted >= 0:
            # The start of the step the server was in when the code was accepted: the
            # accepted step less the learned drift. A drift clamped at +max_drift may hide
            # up to look_ahead more steps: then those are taken off too, so the time is
            # never later than the check itself.
            lag = ctx.config.look_ahead if credential.drift >= ctx.config.max_drift else 0
            step = credential.last_accepted - credential.drift - lag
            at = float(step * credential.period)
            checks[Factor.TOTP] = max(checks.get(Factor.TOTP, at), at)
    if ctx.has_recovery:
        records = yield from checked(call(RecoveryCodeStore.recovery_codes, user_id))
        if records:
            left = any(record.used_at is None for record in records)
            state = CredentialState.ACTIVE if left else CredentialState.DISABLED
            factors.append(EnrolledFactor(factor=Factor.RECOVERY_CODE, state=state))
            used = [r.used_at for r in records if r.used_at is not None]
            if used:
                checks[Factor.RECOVERY_CODE] = max(used)
    if ctx.webauthn is not None:  # security keys and passkeys: ACTIVE or DISABLED
        keys = yield from checked(call(WebAuthnStore.webauthn_credentials, user_id))
        factors += [EnrolledFactor(factor=Factor.SECURITY_KEY, state=key.status) for key in keys]
        # a sign-in with a key stamps its last_used_at (with the sign count, in one
        # compare-and-set): the latest is the last security-key check
        used_keys = [key.last_used_at for key in keys if key.last_used_at is not None]
        if used_keys:
            checks[Factor.SECURITY_KEY] = max(used_keys)
    last = None
    if checks:
        factor, at = max(checks.items(), key=lambda item: item[1])
        if at <= now:
            last = SecondFactorCheck(factor=factor, at=at)
    return tuple(factors), last, history.reset


def decide_flow(ctx: Context, policy: Policy, context: RequestContext) -> Flow[Decision]:
    if not isinstance(policy, Policy):
        raise InvalidParameter("policy must be a mfa_core.policy.Policy")
    if not isinstance(context, RequestContext):
        raise InvalidParameter("context must be a mfa_core.policy.RequestContext")
    now = ctx.now()
    known, last, reset = yield from known_flow(ctx, context.user_id)
    # SMS/email factors are the service's own when it can send codes; otherwise the
    # host's entries for them are taken as given.
    managed = MANAGED_FACTORS if ctx.has_oob else MANAGED_FACTORS - _DESTINATION_FACTORS
    if ctx.webauthn is not None:
        managed |= {Factor.SECURITY_KEY}
    others = tuple(f for f in context.factors if f.factor not in managed)
    # The later of what the host knows and what the service recorded.
    host_check = context.last_check
    if host_check is not None and (last is None or host_check.at >= last.at):
        last = host_check
    if context.factors_reset_at is not None:
        reset = context.factors_reset_at if reset is None else max(reset, context.factors_reset_at)
    merged = attrs.evolve(context, factors=others + known, last_check=last, factors_reset_at=reset)
    return evaluate(policy, merged, now)
