"""Policy decisions through the service: :func:`mfa_core.policy.evaluate` with the clock
and the factors the stores know.

The policy engine is pure; this flow only supplies ``now`` (from the service's clock) and
the user's TOTP/HOTP credentials and recovery codes with their states, so a host does not
have to assemble them for every decision.
"""

from __future__ import annotations

from typing import Final

import attrs

from ..errors import InvalidParameter
from ..models import CredentialState
from ..policy import Decision, EnrolledFactor, Factor, Policy, RequestContext, evaluate
from ..ports import RecoveryCodeStore, WebAuthnStore
from ._admin import list_credentials_flow
from ._context import Context, checked
from ._effects import Flow, call

__all__ = ["MANAGED_FACTORS", "decide_flow", "enrolled_factors_flow"]

MANAGED_FACTORS: Final = frozenset({Factor.TOTP, Factor.HOTP, Factor.RECOVERY_CODE})
"""Factors whose enrolment and state the service reads from its own stores."""


def enrolled_factors_flow(ctx: Context, user_id: str) -> Flow[tuple[EnrolledFactor, ...]]:
    """The user's TOTP/HOTP credentials (effective states; superseded ones left out),
    when a recovery-code store is configured, the recovery codes (ACTIVE while
    unused codes are left, DISABLED once all are used), and when WebAuthn is configured,
    the user's security keys (``Factor.SECURITY_KEY``, offered first by the policy)."""
    infos = yield from list_credentials_flow(ctx, user_id)
    factors = [EnrolledFactor(factor=Factor(info.kind.value), state=info.state) for info in infos]
    if ctx.has_recovery:
        records = yield from checked(call(RecoveryCodeStore.recovery_codes, user_id))
        if records:
            left = any(record.used_at is None for record in records)
            state = CredentialState.ACTIVE if left else CredentialState.DISABLED
            factors.append(EnrolledFactor(factor=Factor.RECOVERY_CODE, state=state))
    if ctx.webauthn is not None:  # security keys and passkeys: ACTIVE or DISABLED
        keys = yield from checked(call(WebAuthnStore.webauthn_credentials, user_id))
        factors += [EnrolledFactor(factor=Factor.SECURITY_KEY, state=key.status) for key in keys]
    return tuple(factors)


def decide_flow(ctx: Context, policy: Policy, context: RequestContext) -> Flow[Decision]:
    if not isinstance(policy, Policy):
        raise InvalidParameter("policy must be a mfa_core.policy.Policy")
    if not isinstance(context, RequestContext):
        raise InvalidParameter("context must be a mfa_core.policy.RequestContext")
    now = ctx.now()
    known = yield from enrolled_factors_flow(ctx, context.user_id)
    managed = MANAGED_FACTORS | ({Factor.SECURITY_KEY} if ctx.webauthn is not None else set())
    others = tuple(f for f in context.factors if f.factor not in managed)
    return evaluate(policy, attrs.evolve(context, factors=others + known), now)
