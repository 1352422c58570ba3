"""Hypothesis properties of mfa_core.policy.

Strictness order used for monotonicity: ``allow < challenge < enrol_required < deny``.
Two challenges compare by their acceptable factors: offering fewer (a subset) is at least
as strict, offering a factor the other did not is a relaxation. Two enrol_required
decisions compare by the grace period: losing the right to postpone is stricter, gaining it
is a relaxation.
"""

from __future__ import annotations

import json
import math
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from mfa_core.errors import ErrorCode, InvalidParameter, MFAError, PolicyError
from mfa_core.models import CredentialState
from mfa_core.policy import (
    DEFAULT_ALLOWED_FACTORS,
    Action,
    Decision,
    EnrolledFactor,
    Factor,
    FirstFactor,
    Outcome,
    Policy,
    RememberedDevice,
    RequestContext,
    Rule,
    SecondFactorCheck,
    evaluate,
    explain,
)

NOW = 1_700_000_000.0
DAY = 86400.0
ROLES = ("admin", "technician", "viewer")
ORGS = (None, "acme", "other")
STRENGTH = (
    Factor.SECURITY_KEY,
    Factor.TOTP,
    Factor.HOTP,
    Factor.SMS_CODE,
    Factor.EMAIL_CODE,
    Factor.RECOVERY_CODE,
)
SKIP_FIELDS = (
    "skip_saved_login",
    "skip_short_term_password",
    "skip_api_keys",
    "trust_upstream_mfa",
    "delegate_federated",
)

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Times near NOW, so that windows, grace periods and device ages are all exercised.
offsets = st.sampled_from([0.0, 1.0, 59.0, 240.0, 301.0, 3600.0, DAY, 29 * DAY, 31 * DAY])
near = st.builds(lambda sign, off: NOW + sign * off, st.sampled_from([-1.0, 1.0]), offsets)
durations = st.sampled_from([0.0, 60.0, 300.0, 600.0, DAY, 14 * DAY, 30 * DAY])


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    """Valid policies (invalid combinations are redrawn)."""
    grace = draw(durations)
    fields: dict[str, Any] = {
        "organisation": draw(st.sampled_from(ORGS)),
        "mandate_all": draw(st.booleans()),
        "mandated_roles": draw(st.frozensets(st.sampled_from(ROLES))),
        "allowed_factors": draw(
            st.sampled_from([DEFAULT_ALLOWED_FACTORS, frozenset(Factor)])
            | st.frozensets(st.sampled_from(list(Factor)))
        ),
        "self_enrol_factors": draw(
            st.frozensets(st.sampled_from([f for f in Factor if f is not Factor.RECOVERY_CODE]))
        ),
        "remember_device_max_age": draw(durations),
        "step_up_window": draw(st.sampled_from([60.0, 300.0, 600.0, 3600.0])),
        "sensitive_actions": draw(st.frozensets(st.sampled_from(list(Action)))),
        "enrolment_grace_period": grace,
        "mandate_effective_at": draw(near) if grace > 0 else draw(st.none() | near),
    }
    for name in (
        *SKIP_FIELDS,
        "require_distinct_categories",
        "email_superseded_by_app",
        "sms_requires_alternative",
        "nudge_expired",
    ):
        fields[name] = draw(st.booleans())
    try:
        return Policy(**fields)
    except PolicyError:
        reject()


ages = st.sampled_from([0.0, 1.0, 59.0, 61.0, 240.0, 301.0, 3600.0, DAY, 29 * DAY, 31 * DAY])
# Mostly in the past, sometimes in the future (clock skew between servers).
moments = st.builds(
    lambda sign, age: NOW - sign * age, st.sampled_from([1.0, 1.0, 1.0, -1.0]), ages
)
usable_states = st.sampled_from(
    [CredentialState.ACTIVE, CredentialState.ACTIVE, CredentialState.EXPIRED, *CredentialState]
)


@st.composite
def contexts(draw: st.DrawFn) -> RequestContext:
    """Valid request contexts with every kind of first factor, action and factor state.

    ``now`` is NOW; times are drawn as ages around it, across every window boundary, and
    the last check usually uses one of the user's own factors.
    """
    entries = draw(
        st.lists(
            st.builds(EnrolledFactor, factor=st.sampled_from(list(Factor)), state=usable_states),
            max_size=5,
        )
    )
    own = [e.factor for e in entries]
    check_factor = (
        st.sampled_from(own) if own and draw(st.booleans()) else st.sampled_from(list(Factor))
    )
    check = draw(st.none() | st.builds(SecondFactorCheck, factor=check_factor, at=moments))
    device = draw(st.none() | st.builds(RememberedDevice, issued_at=moments))
    return RequestContext(
        user_id=draw(st.sampled_from(["alice", "bob"])),
        first_factor=draw(st.sampled_from(list(FirstFactor))),
        authenticated_at=draw(moments),
        action=draw(st.sampled_from(list(Action))),
        roles=draw(st.frozensets(st.sampled_from(ROLES))),
        organisation=draw(st.sampled_from(ORGS)),
        member_since=draw(st.none() | moments),
        factors=tuple(entries),
        last_check=check,
        remembered_device=device,
        factors_reset_at=draw(st.none() | moments),
    )


@st.composite
def with_totp(draw: st.DrawFn) -> tuple[Policy, RequestContext]:
    """A policy that accepts TOTP and a user who has it and recently used it: the cases
    where freshness, sessions and remembered devices decide."""
    policy = draw(policies())
    policy = attrs.evolve(policy, allowed_factors=policy.allowed_factors | {Factor.TOTP})
    context = draw(contexts())
    context = attrs.evolve(
        context,
        first_factor=draw(
            st.sampled_from(
                [
                    FirstFactor.PASSWORD,
                    FirstFactor.SAVED_LOGIN_TOKEN,
                    FirstFactor.SHORT_TERM_PASSWORD,
                    FirstFactor.FEDERATED_MFA,
                ]
            )
        ),
        factors=(
            *context.factors,
            EnrolledFactor(factor=Factor.TOTP, state=CredentialState.ACTIVE),
        ),
        last_check=SecondFactorCheck(factor=Factor.TOTP, at=draw(moments)),
    )
    return policy, context


cases = st.tuples(policies(), contexts()) | with_totp()
nows = st.sampled_from([NOW, NOW, NOW, NOW, NOW + 61.0, NOW + 301.0, NOW + 31 * DAY, NOW - DAY])


def not_relaxed(before: Decision, after: Decision) -> bool:
    """True when ``after`` is at least as strict as ``before``."""
    if after.outcome.rank != before.outcome.rank:
        return after.outcome.rank > before.outcome.rank
    if after.outcome is Outcome.CHALLENGE:
        return set(after.factors) <= set(before.factors)
    if after.outcome is Outcome.ENROL_REQUIRED:
        return not (after.deferrable and not before.deferrable)
    return True


def test_not_relaxed_order() -> None:
    def d(outcome: Outcome, *factors: Factor, deferrable: bool = False) -> Decision:
        return Decision(outcome=outcome, reasons=(), factors=factors, deferrable=deferrable)

    allow, deny = d(Outcome.ALLOW), d(Outcome.DENY)
    both = d(Outcome.CHALLENGE, Factor.TOTP, Factor.RECOVERY_CODE)
    totp = d(Outcome.CHALLENGE, Factor.TOTP)
    sms = d(Outcome.CHALLENGE, Factor.SMS_CODE)
    assert not_relaxed(allow, both) and not not_relaxed(both, allow)
    assert not_relaxed(both, deny) and not not_relaxed(deny, both)
    assert not_relaxed(both, totp) and not not_relaxed(totp, both)
    assert not not_relaxed(totp, sms) and not not_relaxed(sms, totp)
    later = d(Outcome.ENROL_REQUIRED, Factor.TOTP, deferrable=True)
    now = d(Outcome.ENROL_REQUIRED, Factor.TOTP)
    assert not_relaxed(later, now) and not not_relaxed(now, later)


# --- totality and the shape of every decision -----------------------------------------


@PROPS
@given(cases, nows)
def test_total_and_well_formed(case: tuple[Policy, RequestContext], now: float) -> None:
    policy, context = case
    decision = evaluate(policy, context, now)
    effects = [r.effect for r in decision.reasons if r.effect is not None]
    # Deny wins over allow: the outcome is the strictest effect any rule asked for.
    assert effects
    assert decision.outcome is max(effects, key=lambda o: o.rank)
    order = {f: i for i, f in enumerate(STRENGTH)}
    ranks = [order[f] for f in decision.factors]
    assert ranks == sorted(set(ranks)), "factors are unique and best first"
    if decision.outcome is Outcome.CHALLENGE:
        assert decision.factors
        assert decision.factors[0] is not Factor.RECOVERY_CODE
        for factor in decision.factors:
            assert factor in policy.allowed_factors
            assert context.state_of(factor) in (CredentialState.ACTIVE, CredentialState.EXPIRED)
    elif decision.outcome is Outcome.ENROL_REQUIRED:
        assert decision.factors
        assert set(decision.factors) <= policy.self_enrol_factors & policy.allowed_factors
    else:
        assert decision.factors == ()
    if decision.deferrable:
        assert decision.enrol_by is not None and now < decision.enrol_by
    for factor in decision.renew:
        assert context.state_of(factor) is CredentialState.EXPIRED
    if not policy.nudge_expired:
        assert decision.renew == ()
    assert isinstance(explain(decision), str)
    json.dumps(decision.to_dict())


@PROPS
@given(cases, nows)
def test_deterministic_and_order_of_factors_irrelevant(
    case: tuple[Policy, RequestContext], now: float
) -> None:
    policy, context = case
    first = evaluate(policy, context, now)
    assert evaluate(policy, context, now) == first
    rebuilt = attrs.evolve(context, factors=tuple(reversed(context.factors)))
    assert evaluate(policy, rebuilt, now) == first
    assert explain(evaluate(policy, context, now)) == explain(first)


@settings(max_examples=100, deadline=None)
@given(
    policies(),
    contexts(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(min_value=-(10**300), max_value=10**300),
    st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(min_value=-(10**300), max_value=10**300),
)
def test_total_for_extreme_times(
    policy: Policy, context: RequestContext, now: float, signed_in: float, checked: float
) -> None:
    context = attrs.evolve(
        context,
        authenticated_at=signed_in,
        last_check=SecondFactorCheck(factor=Factor.TOTP, at=checked),
        remembered_device=RememberedDevice(issued_at=checked),
    )
    decision = evaluate(policy, context, now)
    assert decision.outcome in set(Outcome)
    explain(decision)


@PROPS
@given(cases, nows)
def test_sensitive_actions_are_allowed_only_by_a_fresh_check(
    case: tuple[Policy, RequestContext], now: float
) -> None:
    policy, context = case
    context = attrs.evolve(context, action=Action.CHANGE_SECURITY_SETTINGS)
    decision = evaluate(policy, context, now)
    skips = {
        Rule.API_KEY_EXEMPT,
        Rule.SAVED_LOGIN_SKIP,
        Rule.SHORT_TERM_PASSWORD_SKIP,
        Rule.UPSTREAM_MFA,
        Rule.FEDERATED_DELEGATED,
        Rule.REMEMBERED_DEVICE,
        Rule.LOGIN_DONE,
    }
    if Action.CHANGE_SECURITY_SETTINGS in policy.sensitive_actions:
        assert not skips & set(decision.rules)
        if decision.outcome is Outcome.ALLOW:
            fresh = Rule.STEP_UP_FRESH in decision.rules
            assert fresh or Rule.STEP_UP_NO_FACTOR in decision.rules
            if fresh:
                assert context.last_check is not None
                assert 0 <= now - context.last_check.at <= policy.step_up_window
                assert context.last_check.at >= context.authenticated_at


@PROPS
@given(cases, nows)
def test_another_organisation_is_always_denied(
    case: tuple[Policy, RequestContext], now: float
) -> None:
    policy, context = case
    policy = attrs.evolve(policy, organisation="acme")
    context = attrs.evolve(context, organisation="other")
    decision = evaluate(policy, context, now)
    assert decision.outcome is Outcome.DENY
    assert decision.rules[0] is Rule.ORGANISATION_MISMATCH


# --- monotonicity ---------------------------------------------------------------------


def _evolve_or_none(policy: Policy, **changes: Any) -> Policy | None:
    try:
        return attrs.evolve(policy, **changes)
    except PolicyError:
        return None  # e.g. a mandate on a policy that allows no factor at all


@PROPS
@given(cases, nows, st.sampled_from(ROLES))
def test_adding_a_mandate_never_relaxes(
    case: tuple[Policy, RequestContext], now: float, role: str
) -> None:
    policy, context = case
    before = evaluate(policy, context, now)
    for stricter in (
        _evolve_or_none(policy, mandate_all=True),
        _evolve_or_none(policy, mandated_roles=policy.mandated_roles | {role}),
    ):
        if stricter is not None:
            after = evaluate(stricter, context, now)
            assert not_relaxed(before, after), (explain(before), explain(after))


@PROPS
@given(cases, nows, st.sampled_from(SKIP_FIELDS))
def test_removing_a_skip_never_relaxes(
    case: tuple[Policy, RequestContext], now: float, skip: str
) -> None:
    policy, context = case
    before = evaluate(policy, context, now)
    after = evaluate(attrs.evolve(policy, **{skip: False}), context, now)
    assert not_relaxed(before, after), (explain(before), explain(after))


@PROPS
@given(cases, nows, durations)
def test_shorter_remembered_device_age_never_relaxes(
    case: tuple[Policy, RequestContext], now: float, max_age: float
) -> None:
    policy, context = case
    shorter = min(max_age, policy.remember_device_max_age)
    before = evaluate(policy, context, now)
    after = evaluate(attrs.evolve(policy, remember_device_max_age=shorter), context, now)
    assert not_relaxed(before, after), (explain(before), explain(after))


@PROPS
@given(cases, nows, st.sampled_from(list(Action)), st.sampled_from([60.0, 1.0]))
def test_more_sensitive_actions_or_shorter_step_up_never_relax(
    case: tuple[Policy, RequestContext], now: float, action: Action, window: float
) -> None:
    policy, context = case
    before = evaluate(policy, context, now)
    more = attrs.evolve(policy, sensitive_actions=policy.sensitive_actions | {action})
    after = evaluate(more, context, now)
    assert not_relaxed(before, after), (explain(before), explain(after))
    shorter = attrs.evolve(policy, step_up_window=min(window, policy.step_up_window))
    after = evaluate(shorter, context, now)
    assert not_relaxed(before, after), (explain(before), explain(after))


@PROPS
@given(cases, nows, st.sampled_from(list(Factor)))
def test_adding_a_factor_to_the_user_changes_only_the_challenge_list(
    case: tuple[Policy, RequestContext], now: float, factor: Factor
) -> None:
    policy, context = case
    # A sanity property of the challenge comparison: giving the user one more usable
    # factor never removes an acceptable factor from a challenge that stays a challenge.
    before = evaluate(policy, context, now)
    more = attrs.evolve(
        context,
        factors=(*context.factors, EnrolledFactor(factor=factor, state=CredentialState.ACTIVE)),
    )
    after = evaluate(policy, more, now)
    if (
        before.outcome is after.outcome is Outcome.CHALLENGE
        and Factor.EMAIL_CODE not in before.factors
    ):
        assert set(before.factors) <= set(after.factors)


# --- serialisation --------------------------------------------------------------------


@PROPS
@given(policies())
def test_json_round_trip(policy: Policy) -> None:
    text = policy.to_json()
    assert Policy.from_json(text) == policy
    assert Policy.from_json(text.encode("utf-8")) == policy
    assert Policy.from_dict(policy.to_dict()) == policy
    assert Policy.from_dict(json.loads(text)) == policy
    assert Policy.from_json(text).to_json() == text


def test_empty_dict_is_the_default_policy() -> None:
    assert Policy.from_dict({}) == Policy()
    assert Policy.from_dict({"version": 1}) == Policy()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from([f.value for f in Factor] + [a.value for a in Action]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(policies(), st.sampled_from([*Policy().to_dict(), "bogus", ""]), json_values)
def test_from_dict_only_raises_policy_error(policy: Policy, key: str, value: object) -> None:
    data = policy.to_dict()
    data[key] = value
    try:
        loaded = Policy.from_dict(data)
    except PolicyError as error:
        assert error.code is ErrorCode.INVALID_POLICY
        names = [*Policy().to_dict(), key]
        assert any(repr(name) in str(error) for name in names), str(error)
    else:
        assert isinstance(loaded, Policy)
        assert Policy.from_dict(loaded.to_dict()) == loaded


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200) | st.binary(max_size=200) | json_values.map(json.dumps))
def test_from_json_only_raises_policy_error(text: str | bytes) -> None:
    try:
        Policy.from_json(text)
    except PolicyError as error:
        assert error.code is ErrorCode.INVALID_POLICY


@settings(max_examples=100, deadline=None)
@given(json_values)
def test_from_dict_rejects_non_mappings(value: object) -> None:
    if isinstance(value, dict):
        return
    with pytest.raises(PolicyError):
        Policy.from_dict(value)


MALFORMED = [
    ({"mandate_all": 1}, "mandate_all"),
    ({"skip_api_keys": "false"}, "skip_api_keys"),
    ({"step_up_window": "300"}, "step_up_window"),
    ({"step_up_window": True}, "step_up_window"),
    ({"step_up_window": 0}, "step_up_window"),
    ({"step_up_window": 10 * DAY}, "step_up_window"),
    ({"remember_device_max_age": -1}, "remember_device_max_age"),
    ({"remember_device_max_age": 1e300}, "remember_device_max_age"),
    ({"allowed_factors": "totp"}, "allowed_factors"),
    ({"allowed_factors": ["totp", "fax"]}, "allowed_factors"),
    ({"allowed_factors": [7]}, "allowed_factors"),
    ({"allowed_factors": ["sms_code"]}, "allowed_factors"),
    ({"mandate_all": True, "allowed_factors": ["recovery_code"]}, "allowed_factors"),
    ({"self_enrol_factors": ["recovery_code"]}, "self_enrol_factors"),
    ({"sensitive_actions": ["reboot"]}, "sensitive_actions"),
    ({"mandated_roles": ["ok", ""]}, "mandated_roles"),
    ({"mandated_roles": {"a": 1}}, "mandated_roles"),
    ({"mandated_roles": ["r"] * 1000}, "mandated_roles"),
    ({"organisation": ""}, "organisation"),
    ({"organisation": 5}, "organisation"),
    ({"enrolment_grace_period": 86400}, "mandate_effective_at"),
    ({"mandate_effective_at": "yesterday"}, "mandate_effective_at"),
    ({"mandate_effective_at": 10**400}, "mandate_effective_at"),
    ({"step_up_window": -(10**400)}, "step_up_window"),
    ({"version": 2}, "version"),
    ({"version": True}, "version"),
    ({"mandate": True}, "mandate"),
    ({1: True}, "field names"),
]


@pytest.mark.parametrize(("data", "field"), MALFORMED, ids=[f for _, f in MALFORMED])
def test_from_dict_names_the_bad_field(data: dict[Any, Any], field: str) -> None:
    with pytest.raises(PolicyError) as info:
        Policy.from_dict(data)
    assert info.value.code is ErrorCode.INVALID_POLICY
    assert field in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[]",
        "{",
        '{"step_up_window": NaN}',
        '{"step_up_window": Infinity}',
        '{"mandate_all": true, "mandate_all": false}',
        b"\xff\xfe",
        "[" * 100_000,
        " " * 70_000,
    ],
)
def test_from_json_rejects_malformed_text(text: str | bytes) -> None:
    with pytest.raises(PolicyError) as info:
        Policy.from_json(text)
    assert info.value.code is ErrorCode.INVALID_POLICY


def test_to_json_is_stable_and_sorted() -> None:
    policy = Policy(mandated_roles=frozenset({"zeta", "alpha"}))
    data = json.loads(policy.to_json())
    assert data["mandated_roles"] == ["alpha", "zeta"]
    assert list(data) == sorted(data)
    assert data["version"] == 1


# --- construction-time validation -----------------------------------------------------


def test_policy_constructor_validates_with_policy_error() -> None:
    bad: list[dict[str, Any]] = [
        {"mandate_all": "yes"},
        {"allowed_factors": {"totp"}},
        {"allowed_factors": frozenset({"totp"})},
        {"sensitive_actions": ["login"]},
        {"step_up_window": math.nan},
        {"mandate_effective_at": math.inf},
    ]
    for kwargs in bad:
        with pytest.raises(PolicyError):
            Policy(**kwargs)


def test_policy_validation_survives_disabled_attrs_validators() -> None:
    attrs.validators.set_disabled(True)
    try:
        with pytest.raises(PolicyError):
            Policy(step_up_window=-5.0)
        with pytest.raises(InvalidParameter):
            RequestContext(user_id="", first_factor=FirstFactor.PASSWORD, authenticated_at=NOW)
    finally:
        attrs.validators.set_disabled(False)


@pytest.mark.parametrize(
    "changes",
    [
        {"user_id": ""},
        {"user_id": 7},
        {"first_factor": "password"},
        {"authenticated_at": math.nan},
        {"authenticated_at": "now"},
        {"action": "login"},
        {"roles": ["admin"]},
        {"roles": frozenset({""})},
        {"organisation": ""},
        {"member_since": math.inf},
        {"factors": [EnrolledFactor(factor=Factor.TOTP, state=CredentialState.ACTIVE)]},
        {"factors": ("totp",)},
        {"last_check": (Factor.TOTP, NOW)},
        {"remembered_device": NOW},
        {"factors_reset_at": True},
    ],
)
def test_request_context_rejects_bad_values(changes: dict[str, Any]) -> None:
    base: dict[str, Any] = {
        "user_id": "u",
        "first_factor": FirstFactor.PASSWORD,
        "authenticated_at": NOW,
    }
    with pytest.raises(InvalidParameter):
        RequestContext(**{**base, **changes})


@pytest.mark.parametrize(
    "build",
    [
        lambda: EnrolledFactor(factor="totp", state=CredentialState.ACTIVE),  # type: ignore[arg-type]
        lambda: EnrolledFactor(factor=Factor.TOTP, state="active"),  # type: ignore[arg-type]
        lambda: SecondFactorCheck(factor=Factor.TOTP, at=math.nan),
        lambda: SecondFactorCheck(factor="totp", at=NOW),  # type: ignore[arg-type]
        lambda: RememberedDevice(issued_at=math.inf),
    ],
)
def test_context_parts_reject_bad_values(build: Any) -> None:
    with pytest.raises(InvalidParameter):
        build()


def test_evaluate_rejects_bad_arguments() -> None:
    context = RequestContext(user_id="u", first_factor=FirstFactor.PASSWORD, authenticated_at=NOW)
    for now in (math.nan, math.inf, "now", None, True):
        with pytest.raises(InvalidParameter) as info:
            evaluate(Policy(), context, now)  # type: ignore[arg-type]
        assert info.value.code is ErrorCode.INVALID_TIME
    with pytest.raises(MFAError):
        evaluate({}, context, NOW)  # type: ignore[arg-type]
    with pytest.raises(MFAError):
        evaluate(Policy(), {}, NOW)  # type: ignore[arg-type]
    with pytest.raises(MFAError):
        explain("allow")  # type: ignore[arg-type]
