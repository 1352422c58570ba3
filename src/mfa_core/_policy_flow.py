"""Policy decisions through the service: :func:`mfa_core.policy.evaluate` with the clock
and the factors the stores know.

The policy engine is pure; this flow only supplies ``now`` (from the service's clock) and
the user's TOTP/HOTP credentials and recovery codes with their states, so a host does not
have to assemble them for every decision.
"""

from __future__ import annotations

from typing import Final

import attrs

from ._admin import AdminFlows
from ._effects import Flow, Port, RecoveryCodes
from ._service_base import checked
from .errors import InvalidParameter
from .models import CredentialState
from .policy import Decision, EnrolledFactor, Factor, Policy, RequestContext, evaluate

__all__ = ["MANAGED_FACTORS", "PolicyFlows"]

MANAGED_FACTORS: Final = frozenset({Factor.TOTP, Factor.HOTP, Factor.RECOVERY_CODE})
"""Factors whose enrolment and state the service reads from its own stores."""


class PolicyFlows(AdminFlows):
    """``decide``: evaluate a policy for a request, with the stores' view of the factors."""

    __slots__ = ()

    def _enrolled_factors_flow(self, user_id: str) -> Flow[tuple[EnrolledFactor, ...]]:
        """The user's TOTP/HOTP credentials (effective states; superseded ones left out)
        and, when a recovery-code store is configured, the recovery codes (ACTIVE while
        unused codes are left, DISABLED once all are used)."""
        infos = yield from self._list_credentials_flow(user_id)
        factors = [
            EnrolledFactor(factor=Factor(info.kind.value), state=info.state) for info in infos
        ]
        if Port.RECOVERY_CODES in self._ports:
            records = yield from checked(RecoveryCodes.recovery_codes(user_id))
            if records:
                left = any(record.used_at is None for record in records)
                state = CredentialState.ACTIVE if left else CredentialState.DISABLED
                factors.append(EnrolledFactor(factor=Factor.RECOVERY_CODE, state=state))
        return tuple(factors)

    def _decide_flow(self, policy: Policy, context: RequestContext) -> Flow[Decision]:
        if not isinstance(policy, Policy):
            raise InvalidParameter("policy must be a mfa_core.policy.Policy")
        if not isinstance(context, RequestContext):
            raise InvalidParameter("context must be a mfa_core.policy.RequestContext")
        now = self._now()
        known = yield from self._enrolled_factors_flow(context.user_id)
        others = tuple(f for f in context.factors if f.factor not in MANAGED_FACTORS)
        return evaluate(policy, attrs.evolve(context, factors=others + known), now)
