"""Evaluating a policy for a request: :func:`evaluate` and :func:`explain`."""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from ..errors import InvalidParameter
from ..models import CredentialState
from ._model import (
    _APP_FACTORS,
    _PRIMARY,
    _STRENGTH,
    _UNRESTRICTED,
    _USABLE_STATES,
    Decision,
    Factor,
    FirstFactor,
    Outcome,
    Policy,
    Reason,
    RememberedDevice,
    RequestContext,
    Rule,
    SecondFactorCheck,
    _check_now,
)

# ---------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------


class _Trace:
    """Collects reasons; the outcome is the strictest effect asked for."""

    __slots__ = ("reasons", "reverify")

    def __init__(self) -> None:
        self.reasons: list[Reason] = []
        self.reverify = False

    def add(self, rule: Rule, message: str, effect: Outcome | None = None) -> None:
        self.reasons.append(Reason(rule=rule, message=message, effect=effect))

    def decide(
        self,
        *,
        factors: tuple[Factor, ...] = (),
        enrol_by: float | None = None,
        deferrable: bool = False,
        renew: tuple[Factor, ...] = (),
    ) -> Decision:
        outcome = Outcome.ALLOW
        for reason in self.reasons:
            if reason.effect is not None and reason.effect.rank > outcome.rank:
                outcome = reason.effect
        return Decision(
            outcome=outcome,
            reasons=tuple(self.reasons),
            factors=factors if outcome in (Outcome.CHALLENGE, Outcome.ENROL_REQUIRED) else (),
            enrol_by=enrol_by if outcome is Outcome.ENROL_REQUIRED else None,
            deferrable=deferrable and outcome is Outcome.ENROL_REQUIRED,
            renew=renew,
            reverify_session=self.reverify,
        )


def _labels(factors: Iterable[Factor]) -> str:
    return ", ".join(f.label for f in factors)


def _duration(seconds: float) -> str:
    if seconds >= 86400 and seconds % 86400 == 0:
        days = int(seconds // 86400)
        return f"{days} day{'s' if days != 1 else ''}"
    if seconds >= 60 and seconds % 60 == 0:
        minutes = int(seconds // 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds:g} seconds"


def _skip_rule(policy: Policy, first: FirstFactor) -> tuple[Rule, str, bool] | None:
    """The sign-in skip the policy grants this first factor: (rule, sentence, exempt).

    ``exempt`` skips also lift the enrolment mandate, because the second factor is
    handled elsewhere (by the identity provider) or cannot exist (API keys).
    """
    if first is FirstFactor.API_KEY and policy.skip_api_keys:
        return (
            Rule.API_KEY_EXEMPT,
            "API and CLI access keys do not go through a second-factor check.",
            True,
        )
    if first is FirstFactor.FEDERATED_MFA and policy.trust_upstream_mfa:
        return (
            Rule.UPSTREAM_MFA,
            "The identity provider confirmed a second factor at sign-in; it counts here.",
            True,
        )
    if first in (FirstFactor.FEDERATED, FirstFactor.FEDERATED_MFA) and policy.delegate_federated:
        return (
            Rule.FEDERATED_DELEGATED,
            "Second factors for federated sign-in are managed by the identity provider.",
            True,
        )
    if first is FirstFactor.SAVED_LOGIN_TOKEN and policy.skip_saved_login:
        return (
            Rule.SAVED_LOGIN_SKIP,
            "The administrator lets saved-login (automatic login) tokens skip the code.",
            False,
        )
    if first is FirstFactor.SHORT_TERM_PASSWORD and policy.skip_short_term_password:
        return (
            Rule.SHORT_TERM_PASSWORD_SKIP,
            "The administrator lets short-term passwords (e.g. reconnect after a remote "
            "restart) skip the code.",
            False,
        )
    return None


def evaluate(policy: Policy, context: RequestContext, now: float) -> Decision:
    """Decide what this request needs: allow, challenge, enrol_required or deny.

    Pure and deterministic: the same arguments always give the same decision, and no
    clock, store or network is read. Raises only for arguments of the wrong type or a
    non-finite ``now`` (:class:`~mfa_core.errors.InvalidParameter`); every valid context
    gets a decision.
    """
    if not isinstance(policy, Policy):
        raise InvalidParameter("policy must be a Policy")
    if not isinstance(context, RequestContext):
        raise InvalidParameter("context must be a RequestContext")
    return _Evaluation(policy, context, _check_now(now)).run()


class _Evaluation:
    """One evaluation, split into the phases documented in ``docs/policy.md``."""

    __slots__ = (
        "acceptable",
        "context",
        "first",
        "now",
        "phishing",
        "policy",
        "primary",
        "renew",
        "sensitive",
        "state",
        "trace",
    )

    def __init__(self, policy: Policy, context: RequestContext, now: float) -> None:
        self.policy = policy
        self.context = context
        self.now = now
        self.trace = _Trace()
        self.first = context.first_factor
        self.sensitive = context.action in policy.sensitive_actions
        self.state = {f: context.state_of(f) for f in _STRENGTH}
        self.primary: tuple[Factor, ...] = ()
        self.acceptable: tuple[Factor, ...] = ()
        self.renew: tuple[Factor, ...] = ()
        self.phishing = policy.requires_phishing_resistant(context.roles, context.action)

    def counts(self, factor: Factor) -> bool:
        """Whether ``factor`` counts as a second factor after this first factor."""
        if factor not in self.policy.allowed_factors:
            return False
        if self.phishing and not factor.phishing_resistant:
            return False
        return not (
            self.policy.require_distinct_categories and factor.category is self.first.category
        )

    def usable(self, factor: Factor) -> bool:
        """Whether the user has ``factor`` in a state that can be used (active or expired)."""
        return self.state[factor] in _USABLE_STATES

    def run(self) -> Decision:
        """Apply the phases in order; a phase that settles the request returns early."""
        policy, context, trace = self.policy, self.context, self.trace
        if policy.organisation is not None and context.organisation != policy.organisation:
            trace.add(
                Rule.ORGANISATION_MISMATCH,
                "This policy belongs to another organisation; contact your administrator.",
                Outcome.DENY,
            )
        if self.first is FirstFactor.API_KEY and self.sensitive:
            trace.add(
                Rule.API_KEY_SENSITIVE,
                f"'{context.action.value}' needs a fresh second-factor check, which an API "
                "access key cannot give; sign in interactively.",
                Outcome.DENY,
            )
            return trace.decide()
        skip = self.apply_skip()
        if skip is not None and skip[1]:
            return trace.decide()
        mandated = self.apply_mandate()
        if mandated:
            self.session_predates_mandate()
        if self.phishing:
            self.trace.add(
                Rule.PHISHING_RESISTANT_REQUIRED,
                "Your role or this action needs a phishing-resistant factor: a security key "
                "or passkey.",
            )
            mandated = True
        if self.inventory():
            return trace.decide()
        if not self.primary:
            return self.without_factor(mandated)
        self.sms_notice()
        if skip is not None:
            # A continuation skip (saved login, short-term password): no challenge.
            return trace.decide(renew=self.renew)
        if self.sensitive:
            return self.step_up()
        return self.sign_in()

    def apply_skip(self) -> tuple[Rule, bool] | None:
        """Record the sign-in skip this first factor gets: (rule, exempt) or None."""
        skip = _skip_rule(self.policy, self.first)
        if skip is None:
            return None
        rule, message, exempt = skip
        if self.sensitive:
            self.trace.add(
                Rule.SKIP_NOT_FOR_SENSITIVE,
                f"Sign-in skips ({rule.value}) do not apply to "
                f"'{self.context.action.value}', which needs a fresh second-factor check.",
            )
            return None
        self.trace.add(rule, message, Outcome.ALLOW)
        return rule, exempt

    def apply_mandate(self) -> bool:
        """Record whether this member must have a second factor, and why."""
        policy = self.policy
        if policy.mandate_all:
            self.trace.add(
                Rule.MANDATE_ALL,
                "This organisation requires a second factor for every member, "
                "administrators included.",
            )
            return True
        matched = sorted(policy.mandated_roles & self.context.roles)
        if matched:
            self.trace.add(
                Rule.MANDATE_ROLE,
                f"This organisation requires a second factor for the role '{matched[0]}'.",
            )
            return True
        self.trace.add(
            Rule.NOT_MANDATED, "This organisation does not require a second factor for you."
        )
        return False

    def session_predates_mandate(self) -> None:
        """A session established before the mandate FIRST took effect, without a second
        factor in it, is asked to re-verify (or be ended by the host), once: a session
        that started later, e.g. while the mandate was briefly off, is left alone."""
        first = self.policy.mandate_first_effective_at
        context = self.context
        if first is None or context.authenticated_at >= first or first > self.now:
            return
        check = context.last_check
        if check is not None and context.authenticated_at <= check.at <= self.now:
            return  # a second factor was checked in this session
        self.trace.reverify = True
        self.trace.add(
            Rule.SESSION_PREDATES_MANDATE,
            "This session began before your organisation required a second factor; "
            "sign in again with your second factor.",
            Outcome.CHALLENGE,
        )

    def inventory(self) -> bool:
        """Work out which of the user's factors count; True if that alone denies."""
        policy, trace = self.policy, self.trace
        superseded = policy.email_superseded_by_app and any(
            self.usable(f) and self.counts(f) for f in _APP_FACTORS
        )
        for factor in _PRIMARY:
            if not self.usable(factor):
                continue
            if factor is Factor.EMAIL_CODE and factor not in policy.allowed_factors:
                trace.add(
                    Rule.EMAIL_NOT_COUNTED,
                    "Email codes do not prove possession of a specific device and do not "
                    "count as a second factor under this policy (NIST SP 800-63B-4 "
                    "§3.1.3.1).",
                )
            elif factor not in policy.allowed_factors:
                trace.add(
                    Rule.FACTOR_NOT_ALLOWED,
                    f"Your {factor.label} is not one of the methods this organisation accepts.",
                )
            elif self.phishing and not factor.phishing_resistant:
                trace.add(
                    Rule.PHISHING_RESISTANT_REQUIRED,
                    f"Your {factor.label} can be phished; this needs a security key or passkey.",
                )
            elif not self.counts(factor):
                trace.add(
                    Rule.SAME_CATEGORY,
                    f"Your {factor.label} and the {_name(self.first)} you signed in with "
                    "are both something you have, so together they are not two factors.",
                )
            elif factor is Factor.EMAIL_CODE and superseded:
                trace.add(
                    Rule.EMAIL_SUPERSEDED,
                    "Email codes are no longer used once an authenticator is on.",
                )
        self.primary = tuple(
            f
            for f in _PRIMARY
            if self.usable(f) and self.counts(f) and not (f is Factor.EMAIL_CODE and superseded)
        )
        self.acceptable = self.primary
        recovery = Factor.RECOVERY_CODE
        if self.usable(recovery) and self.counts(recovery):
            if self.primary:
                self.acceptable = (*self.primary, recovery)
            else:
                trace.add(
                    Rule.RECOVERY_ONLY,
                    "Recovery codes are a fallback for another factor; on their own they "
                    "do not turn the second factor on.",
                )
        enabled = any(
            self.usable(f)
            and f in policy.allowed_factors
            and (f.phishing_resistant or not self.phishing)  # others are asked to enrol a key
            for f in _PRIMARY
        )
        if enabled and not self.primary:
            trace.add(
                Rule.NO_DISTINCT_FACTOR,
                f"None of your second factors can be combined with a {_name(self.first)}; "
                "sign in with your password instead.",
                Outcome.DENY,
            )
            return True
        if policy.nudge_expired:
            self.renew = tuple(
                f for f in self.acceptable if self.state[f] is CredentialState.EXPIRED
            )
        for factor in self.renew:
            trace.add(
                Rule.EXPIRED_RENEW,
                f"Your {factor.label} has not been renewed for a long time; it still works, "
                "but please set it up again.",
            )
        return False

    def sms_notice(self) -> None:
        """SMS is restricted: say so when it is the user's only primary factor."""
        if Factor.SMS_CODE not in self.primary or any(f in _UNRESTRICTED for f in self.primary):
            return
        alternatives = [f for f in _PRIMARY if f in _UNRESTRICTED and self.counts(f)]
        if alternatives:
            message = (
                "SMS is a restricted authenticator (NIST SP 800-63B-4 §3.1.3.3); please "
                f"also set up one of: {_labels(alternatives)}."
            )
        else:
            message = (
                "SMS is a restricted authenticator (NIST SP 800-63B-4 §3.1.3.3); this "
                "organisation offers no alternative."
            )
        self.trace.add(Rule.SMS_RESTRICTED, message)

    def check_counts(self) -> SecondFactorCheck | None:
        """The last check, if it was made with a factor that counts now."""
        check = self.context.last_check
        if check is not None and check.factor in self.acceptable:
            return check
        return None

    def step_up(self) -> Decision:
        """A sensitive action: allow only with a check of this session inside the window.

        The check must belong to this session (not before ``authenticated_at``), as for
        sign-in, and be at most ``step_up_window`` seconds old: so marking an action
        sensitive can only make its decision stricter.
        """
        window = self.policy.step_up_window
        action = self.context.action.value
        check = self.check_counts()
        if (
            check is not None
            and self.context.authenticated_at <= check.at <= self.now
            and check.at >= self.now - window
        ):
            self.trace.add(
                Rule.STEP_UP_FRESH,
                f"A second-factor check within the last {_duration(window)} covers '{action}'.",
                Outcome.ALLOW,
            )
        else:
            self.trace.add(
                Rule.STEP_UP_REQUIRED,
                f"'{action}' needs a second-factor check from the last {_duration(window)}.",
                Outcome.CHALLENGE,
            )
        return self.trace.decide(factors=self.acceptable, renew=self.renew)

    def sign_in(self) -> Decision:
        """Sign-in: a check in this sign-in or a remembered device, else challenge."""
        check = self.check_counts()
        if check is not None and self.context.authenticated_at <= check.at <= self.now:
            self.trace.add(
                Rule.LOGIN_DONE,
                "A second factor has been checked in this sign-in.",
                Outcome.ALLOW,
            )
            return self.trace.decide(renew=self.renew)
        if self.context.remembered_device is not None:
            problem = self.remembered_device_problem(self.context.remembered_device)
            if problem is None:
                self.trace.add(
                    Rule.REMEMBERED_DEVICE,
                    "This device was remembered after an earlier second-factor check.",
                    Outcome.ALLOW,
                )
                return self.trace.decide(renew=self.renew)
            self.trace.add(Rule.REMEMBERED_DEVICE_IGNORED, problem)
        self.trace.add(
            Rule.LOGIN_CHALLENGE,
            f"Second factor required: {_labels(self.acceptable)}.",
            Outcome.CHALLENGE,
        )
        return self.trace.decide(factors=self.acceptable, renew=self.renew)

    def remembered_device_problem(self, device: RememberedDevice) -> str | None:
        """Why the remembered device cannot skip the challenge, or None when it can."""
        policy, context = self.policy, self.context
        if policy.remember_device_max_age <= 0:
            return "This organisation does not let devices be remembered."
        if context.last_check is None:
            return (
                "A remembered device never replaces the second factor of a first sign-in; "
                "no second-factor check has been recorded yet."
            )
        if context.factors_reset_at is not None and device.issued_at < context.factors_reset_at:
            return "This device was remembered before your second factor was reset."
        age = self.now - device.issued_at
        if age < 0:
            return "The remembered-device token is dated in the future."
        if age > policy.remember_device_max_age:
            return (
                "This device was remembered more than "
                f"{_duration(policy.remember_device_max_age)} ago."
            )
        return None

    def without_factor(self, mandated: bool) -> Decision:
        """No second factor counts: allow if not mandated, else enrol or deny."""
        policy, trace = self.policy, self.trace
        countable = tuple(f for f in _PRIMARY if self.counts(f))
        enrolable = tuple(f for f in countable if f in policy.self_enrol_factors)
        pending = [f for f in countable if self.state[f] is CredentialState.PENDING]
        if not mandated:
            for factor in pending:
                trace.add(
                    Rule.ENROL_PENDING,
                    f"Setting up your {factor.label} is not finished, so it is not on yet.",
                )
            if self.sensitive:
                trace.add(
                    Rule.STEP_UP_NO_FACTOR,
                    "You have no second factor to confirm this with; consider setting one up.",
                    Outcome.ALLOW,
                )
            else:
                trace.add(
                    Rule.NO_SECOND_FACTOR,
                    "You have no second factor on, and none is required.",
                    Outcome.ALLOW,
                )
            return trace.decide()
        if not countable:
            trace.add(
                Rule.NO_DISTINCT_FACTOR,
                "No second factor this organisation accepts can be combined with a "
                f"{_name(self.first)}; sign in with your password.",
                Outcome.DENY,
            )
            return trace.decide()
        if not enrolable:
            waiting = [f for f in pending if f not in policy.self_enrol_factors]
            detail = (
                f"your {waiting[0].label} is not confirmed yet"
                if waiting
                else "you have no second factor set up"
            )
            trace.add(
                Rule.ENROL_CONTACT_ADMIN,
                f"A second factor is required, {detail}, and only an administrator can set "
                "it up: contact your administrator.",
                Outcome.DENY,
            )
            return trace.decide()
        finishing = [f for f in pending if f in enrolable]
        if finishing:
            trace.add(
                Rule.ENROL_PENDING,
                f"Finish setting up your {finishing[0].label} to continue.",
                Outcome.ENROL_REQUIRED,
            )
        else:
            trace.add(
                Rule.ENROL_REQUIRED,
                f"A second factor is required; set up one of: {_labels(enrolable)}.",
                Outcome.ENROL_REQUIRED,
            )
        enrol_by, deferrable = self.grace_period()
        return trace.decide(factors=enrolable, enrol_by=enrol_by, deferrable=deferrable)

    def grace_period(self) -> tuple[float | None, bool]:
        """The enrolment deadline, if the policy grants a grace period, and whether it is open."""
        policy = self.policy
        if policy.enrolment_grace_period <= 0 or policy.mandate_effective_at is None:
            return None, False
        start = policy.mandate_effective_at
        if self.context.member_since is not None:
            start = max(start, self.context.member_since)
        enrol_by = start + policy.enrolment_grace_period
        if self.now < enrol_by:
            self.trace.add(
                Rule.ENROL_GRACE,
                f"You may postpone this until {_utc(enrol_by)} (enrolment grace period).",
            )
            return enrol_by, True
        self.trace.add(Rule.ENROL_GRACE, "The enrolment grace period has ended.")
        return enrol_by, False


def _name(first: FirstFactor) -> str:
    return first.value.replace("_", " ")


def _utc(seconds: float) -> str:
    try:
        moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return f"{seconds:.0f} Unix seconds"
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def explain(decision: Decision) -> str:
    """Render a decision for people: the outcome, what to do, and the numbered reasons."""
    if not isinstance(decision, Decision):
        raise InvalidParameter("decision must be a Decision")
    outcome = decision.outcome
    if outcome is Outcome.ALLOW:
        head = "ALLOW: go ahead."
    elif outcome is Outcome.CHALLENGE:
        head = f"CHALLENGE: ask for one of: {_labels(decision.factors)}."
    elif outcome is Outcome.ENROL_REQUIRED:
        head = f"ENROL REQUIRED: set up one of: {_labels(decision.factors)}"
        if decision.enrol_by is not None:
            head += (
                f" (grace period until {_utc(decision.enrol_by)})"
                if decision.deferrable
                else " (grace period over)"
            )
        head += "."
    else:
        head = "DENY: access refused."
    lines = [head]
    for number, reason in enumerate(decision.reasons, start=1):
        effect = "" if reason.effect is None else f" -> {reason.effect.value}"
        lines.append(f"  {number}. [{reason.rule.value}{effect}] {reason.message}")
    if decision.renew:
        lines.append(f"  Renew: {_labels(decision.renew)}.")
    return "\n".join(lines)
