"""A tour of mfa_core.policy: product scenarios evaluated and explained.

Run with ``python examples/policy_tour.py``. No I/O beyond printing: the policy engine
is pure, so ``now`` is a fixed timestamp here. Each scenario shows a policy an
organisation could store (as JSON), a request, and the explained decision.
"""

from __future__ import annotations

from typing import Any

from mfa_core.models import CredentialState
from mfa_core.policy import (
    Action,
    EnrolledFactor,
    Factor,
    FirstFactor,
    Outcome,
    Policy,
    RememberedDevice,
    RequestContext,
    SecondFactorCheck,
    evaluate,
    explain,
)

NOW = 1_700_000_000.0
DAY = 86400.0
ACTIVE = CredentialState.ACTIVE


def request(first: FirstFactor, **fields: Any) -> RequestContext:
    """A request by user 'sam' whose first factor was checked a few seconds ago."""
    return RequestContext(user_id="sam", first_factor=first, authenticated_at=NOW - 5, **fields)


def totp_and_codes(state: CredentialState = ACTIVE) -> tuple[EnrolledFactor, ...]:
    """An authenticator app plus a set of recovery codes."""
    return (
        EnrolledFactor(factor=Factor.TOTP, state=state),
        EnrolledFactor(factor=Factor.RECOVERY_CODE, state=ACTIVE),
    )


def show(title: str, policy: Policy, context: RequestContext, now: float = NOW) -> Outcome:
    """Evaluate one scenario and print its explanation."""
    decision = evaluate(policy, context, now)
    print(f"== {title}")
    print(explain(decision))
    print()
    return decision.outcome


def main() -> int:
    """Walk through one or two scenarios per product and check the outcomes."""
    anydesk = Policy(skip_saved_login=True, skip_short_term_password=False)
    realvnc = Policy(
        organisation="acme",
        mandated_roles=frozenset({"technician"}),
        enrolment_grace_period=14 * DAY,
        mandate_effective_at=NOW - 2 * DAY,
    )
    remoteit = Policy(delegate_federated=True)
    rustdesk = Policy.from_json(
        '{"allowed_factors": ["email_code", "totp", "recovery_code"], "step_up_window": 300}'
    )
    usedesk_sms = Policy(
        mandate_all=True,
        allowed_factors=frozenset({Factor.SMS_CODE}),
        self_enrol_factors=frozenset(),
        sms_requires_alternative=False,
    )
    print("RealVNC's policy as an organisation would store it:")
    print(realvnc.to_json())
    print()

    outcomes = [
        show(
            "AnyDesk: unattended access, code asked right after the password",
            anydesk,
            request(
                FirstFactor.UNATTENDED_PASSWORD, action=Action.CONNECT, factors=totp_and_codes()
            ),
        ),
        show(
            "AnyDesk: automatic login with a saved-login token (admin allowed the skip)",
            anydesk,
            request(FirstFactor.SAVED_LOGIN_TOKEN, action=Action.CONNECT, factors=totp_and_codes()),
        ),
        show(
            "RealVNC: a technician without 2-step verification, inside the grace period",
            realvnc,
            request(FirstFactor.PASSWORD, organisation="acme", roles=frozenset({"technician"})),
        ),
        show(
            "remote.it: the API with an access key",
            remoteit,
            request(FirstFactor.API_KEY, action=Action.API_CALL, factors=totp_and_codes()),
        ),
        show(
            "remote.it: a remembered browser, 3 days after its last code",
            remoteit,
            request(
                FirstFactor.PASSWORD,
                factors=totp_and_codes(),
                last_check=SecondFactorCheck(factor=Factor.TOTP, at=NOW - 3 * DAY),
                remembered_device=RememberedDevice(issued_at=NOW - 3 * DAY),
            ),
        ),
        show(
            "RustDesk: TOTP is on (email no longer used), changing settings 10 minutes in",
            rustdesk,
            RequestContext(
                user_id="sam",
                first_factor=FirstFactor.PASSWORD,
                authenticated_at=NOW - 3600,
                action=Action.CHANGE_SECURITY_SETTINGS,
                factors=(
                    *totp_and_codes(CredentialState.EXPIRED),
                    EnrolledFactor(factor=Factor.EMAIL_CODE, state=ACTIVE),
                ),
                last_check=SecondFactorCheck(factor=Factor.TOTP, at=NOW - 600),
            ),
        ),
        show(
            "Usedesk: SMS method, phone number not confirmed",
            usedesk_sms,
            request(
                FirstFactor.PASSWORD,
                factors=(EnrolledFactor(factor=Factor.SMS_CODE, state=CredentialState.PENDING),),
            ),
        ),
    ]
    expected = [
        Outcome.CHALLENGE,
        Outcome.ALLOW,
        Outcome.ENROL_REQUIRED,
        Outcome.ALLOW,
        Outcome.ALLOW,
        Outcome.CHALLENGE,
        Outcome.DENY,
    ]
    if outcomes != expected:
        print("unexpected outcomes:", [o.value for o in outcomes])
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
