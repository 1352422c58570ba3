"""The pure lifecycle: every (state, event) pair, derived expiry, authentication, diagram."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mfa_core import lifecycle
from mfa_core.errors import ErrorCode, IllegalTransition, InvalidParameter
from mfa_core.lifecycle import (
    TRANSITIONS,
    LifecycleConfig,
    LifecycleEvent,
    can_authenticate,
    effective_state,
    renewal_due,
    state_diagram,
    transition,
)
from mfa_core.models import STORED_STATES, Credential, CredentialKind, CredentialState

S = CredentialState
E = LifecycleEvent
DAY = 86400.0
T0 = 1_700_000_000.0
DOC = Path(__file__).resolve().parents[1] / "docs" / "lifecycle.md"

# Written out by hand from the rules, so that an accidental edit of the table fails.
EXPECTED: dict[tuple[CredentialState, LifecycleEvent], CredentialState | None] = {
    (S.NONE, E.ENROL): S.PENDING,
    (S.PENDING, E.CONFIRM): S.ACTIVE,
    (S.PENDING, E.ABANDON): None,
    (S.PENDING, E.ADMIN_RESET): None,
    (S.PENDING_EXPIRED, E.ABANDON): None,
    (S.PENDING_EXPIRED, E.ADMIN_RESET): None,
    (S.ACTIVE, E.RENEW): S.ACTIVE,
    (S.ACTIVE, E.SUPERSEDE): S.DISABLED,
    (S.ACTIVE, E.DISABLE): S.DISABLED,
    (S.ACTIVE, E.ADMIN_RESET): None,
    (S.EXPIRED, E.RENEW): S.EXPIRED,
    (S.EXPIRED, E.SUPERSEDE): S.DISABLED,
    (S.EXPIRED, E.DISABLE): S.DISABLED,
    (S.EXPIRED, E.ADMIN_RESET): None,
    (S.DISABLED, E.ADMIN_RESET): None,
}

ALL_PAIRS = [(state, event) for state in CredentialState for event in LifecycleEvent]


def cred(**changes: Any) -> Credential:
    base = Credential(
        id="c1",
        user_id="alice",
        kind=CredentialKind.TOTP,
        sealed_key=b"sealed",
        created_at=T0,
    )
    return attrs.evolve(base, **changes)


def active(renewed_at: float | None = T0, **changes: Any) -> Credential:
    return cred(status=S.ACTIVE, confirmed_at=T0, renewed_at=renewed_at, **changes)


# -- the table -----------------------------------------------------------------------------


@pytest.mark.parametrize(("state", "event"), ALL_PAIRS, ids=str)
def test_every_pair_is_legal_with_its_target_or_illegal(
    state: CredentialState, event: LifecycleEvent
) -> None:
    if (state, event) in EXPECTED:
        assert (state, event) in TRANSITIONS
        assert transition(state, event) == EXPECTED[state, event] == TRANSITIONS[state, event]
    else:
        assert (state, event) not in TRANSITIONS
        with pytest.raises(IllegalTransition) as info:
            transition(state, event)
        assert info.value.code == ErrorCode.ILLEGAL_TRANSITION
        assert repr(state.value) in str(info.value)
        assert repr(event.value) in str(info.value)


def test_the_table_has_exactly_the_expected_pairs() -> None:
    assert dict(TRANSITIONS) == EXPECTED
    assert len(ALL_PAIRS) == len(CredentialState) * len(LifecycleEvent)


def test_the_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        TRANSITIONS[S.DISABLED, E.CONFIRM] = S.ACTIVE  # type: ignore[index]
    with pytest.raises(IllegalTransition):
        transition(S.DISABLED, E.CONFIRM)


def test_table_shape_rules() -> None:
    targets = set(TRANSITIONS.values())
    # Events never produce a state that only time produces, except renewing an expired one.
    assert S.PENDING_EXPIRED not in targets
    assert [k for k, v in TRANSITIONS.items() if v == S.EXPIRED] == [(S.EXPIRED, E.RENEW)]
    # NONE is only ever left by enrolment; only confirmation makes a credential active.
    assert [k for k in TRANSITIONS if k[0] == S.NONE] == [(S.NONE, E.ENROL)]
    assert {k for k, v in TRANSITIONS.items() if v == S.ACTIVE} == {
        (S.PENDING, E.CONFIRM),
        (S.ACTIVE, E.RENEW),
    }
    # An administrator can reset every credential that exists; nothing leaves DISABLED
    # except that reset (no silent re-enabling).
    for state in CredentialState:
        if state != S.NONE:
            assert TRANSITIONS[state, E.ADMIN_RESET] is None
    assert [k for k in TRANSITIONS if k[0] == S.DISABLED] == [(S.DISABLED, E.ADMIN_RESET)]
    # Renewal never changes the old credential's state.
    assert all(v == k[0] for k, v in TRANSITIONS.items() if k[1] == E.RENEW)


def test_transition_accepts_string_values_and_refuses_garbage() -> None:
    assert transition("pending", "confirm") == S.ACTIVE  # type: ignore[arg-type]
    garbage: list[tuple[Any, Any]] = [
        ("bogus", E.CONFIRM),
        (S.PENDING, "bogus"),
        (None, E.CONFIRM),
        (S.PENDING, 3),
        ([], E.CONFIRM),
        (S.PENDING, E.CONFIRM.name),  # the name is not the value
    ]
    for state, event in garbage:
        with pytest.raises(InvalidParameter) as info:
            transition(state, event)
        assert not isinstance(info.value, IllegalTransition)


# -- configuration -------------------------------------------------------------------------


def test_config_defaults() -> None:
    config = LifecycleConfig()
    assert (config.pending_ttl, config.max_age, config.strict_expiry) == (1800, 180 * DAY, False)
    assert LifecycleConfig(max_age=math.inf).max_age == math.inf


@pytest.mark.parametrize(
    "kwargs",
    [
        {"pending_ttl": 0},
        {"pending_ttl": -1},
        {"pending_ttl": math.nan},
        {"pending_ttl": math.inf},
        {"pending_ttl": 8 * DAY},
        {"pending_ttl": "600"},
        {"pending_ttl": True},
        {"pending_ttl": None},
        {"max_age": 0},
        {"max_age": -DAY},
        {"max_age": math.nan},
        {"max_age": "1"},
        {"max_age": False},
        {"strict_expiry": 1},
        {"strict_expiry": "yes"},
        {"strict_expiry": None},
    ],
)
def test_config_refuses_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidParameter):
        LifecycleConfig(**kwargs)


# -- effective state -----------------------------------------------------------------------


def test_pending_boundary_both_sides() -> None:
    config = LifecycleConfig()
    deadline = T0 + 600
    pending = cred(pending_until=deadline)
    assert effective_state(pending, T0, config) == S.PENDING
    assert effective_state(pending, deadline, config) == S.PENDING  # at the deadline: still
    after = math.nextafter(deadline, math.inf)
    assert effective_state(pending, after, config) == S.PENDING_EXPIRED
    assert effective_state(pending, deadline + 1e6, config) == S.PENDING_EXPIRED


def test_pending_without_deadline_uses_created_at_plus_ttl() -> None:
    config = LifecycleConfig(pending_ttl=120)
    pending = cred(pending_until=None)
    assert effective_state(pending, T0 + 120, config) == S.PENDING
    assert effective_state(pending, T0 + 120.001, config) == S.PENDING_EXPIRED
    # An explicit deadline wins over the configured ttl.
    assert effective_state(cred(pending_until=T0 + 10), T0 + 11, config) == S.PENDING_EXPIRED


def test_max_age_boundary_both_sides() -> None:
    config = LifecycleConfig()
    renewed = T0 + 5 * DAY
    credential = active(renewed_at=renewed)
    edge = renewed + config.max_age
    assert effective_state(credential, math.nextafter(edge, -math.inf), config) == S.ACTIVE
    assert effective_state(credential, edge, config) == S.EXPIRED  # exactly max_age: expired
    assert effective_state(credential, edge + 1, config) == S.EXPIRED
    # Counted from renewed_at, not from creation or confirmation.
    assert effective_state(credential, T0 + config.max_age + DAY, config) == S.ACTIVE


def test_expiry_counts_from_confirmation_or_creation_without_renewed_at() -> None:
    config = LifecycleConfig(max_age=100)
    confirmed = cred(status=S.ACTIVE, confirmed_at=T0 + 50, renewed_at=None)
    assert effective_state(confirmed, T0 + 149, config) == S.ACTIVE
    assert effective_state(confirmed, T0 + 150, config) == S.EXPIRED
    bare = cred(status=S.ACTIVE, confirmed_at=None, renewed_at=None)
    assert effective_state(bare, T0 + 99, config) == S.ACTIVE
    assert effective_state(bare, T0 + 100, config) == S.EXPIRED


def test_disabled_stays_disabled_and_infinite_max_age_never_expires() -> None:
    config = LifecycleConfig(max_age=math.inf)
    assert effective_state(active(), T0 + 1e12, config) == S.ACTIVE
    disabled = cred(status=S.DISABLED, renewed_at=T0, pending_until=T0)
    assert effective_state(disabled, T0 + 1e12, LifecycleConfig()) == S.DISABLED


@pytest.mark.parametrize("status", [S.NONE, S.EXPIRED, S.PENDING_EXPIRED])
def test_derived_states_are_refused_as_stored_status(status: CredentialState) -> None:
    with pytest.raises(InvalidParameter):
        effective_state(cred(status=status), T0, LifecycleConfig())


@pytest.mark.parametrize("now", [math.nan, math.inf, -math.inf, "1", None, True])
def test_effective_state_refuses_bad_time(now: Any) -> None:
    with pytest.raises(InvalidParameter) as info:
        effective_state(active(), now, LifecycleConfig())
    assert info.value.code == ErrorCode.INVALID_TIME
    with pytest.raises(InvalidParameter):
        renewal_due(active(), now, LifecycleConfig())


def test_effective_state_refuses_wrong_types() -> None:
    with pytest.raises(InvalidParameter):
        effective_state("c1", T0, LifecycleConfig())  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter):
        effective_state(active(), T0, {"max_age": 1})  # type: ignore[arg-type]


stored = st.sampled_from(sorted(STORED_STATES))
times = st.floats(min_value=0, max_value=4e9, allow_nan=False)
optional_times = st.none() | times
configs = st.builds(
    LifecycleConfig,
    pending_ttl=st.floats(min_value=1, max_value=7 * DAY),
    max_age=st.floats(min_value=1, max_value=400 * DAY) | st.just(math.inf),
    strict_expiry=st.booleans(),
)


@st.composite
def credentials(draw: st.DrawFn) -> Credential:
    return cred(
        status=draw(stored),
        created_at=draw(times),
        pending_until=draw(optional_times),
        confirmed_at=draw(optional_times),
        renewed_at=draw(optional_times),
    )


@settings(max_examples=200)
@given(credentials(), times, times, configs)
def test_time_only_moves_states_forward(
    credential: Credential, t1: float, t2: float, config: LifecycleConfig
) -> None:
    early, late = sorted((t1, t2))
    before = effective_state(credential, early, config)
    after = effective_state(credential, late, config)
    allowed = {
        S.PENDING: {S.PENDING, S.PENDING_EXPIRED},
        S.PENDING_EXPIRED: {S.PENDING_EXPIRED},
        S.ACTIVE: {S.ACTIVE, S.EXPIRED},
        S.EXPIRED: {S.EXPIRED},
        S.DISABLED: {S.DISABLED},
    }
    assert after in allowed[before]
    assert before in {credential.status, S.PENDING_EXPIRED, S.EXPIRED}


@settings(max_examples=200)
@given(credentials(), times, configs)
def test_effective_state_matches_the_rules(
    credential: Credential, now: float, config: LifecycleConfig
) -> None:
    state = effective_state(credential, now, config)
    if credential.status == S.PENDING:
        deadline = (
            credential.pending_until
            if credential.pending_until is not None
            else credential.created_at + config.pending_ttl
        )
        assert (state == S.PENDING_EXPIRED) == (now > deadline)
    elif credential.status == S.ACTIVE:
        start = next(
            t
            for t in (credential.renewed_at, credential.confirmed_at, credential.created_at)
            if t is not None
        )
        assert (state == S.EXPIRED) == (now - start >= config.max_age)
    else:
        assert state == S.DISABLED
    assert renewal_due(credential, now, config) == (state == S.EXPIRED)


# -- authentication and renewal ------------------------------------------------------------


@pytest.mark.parametrize("strict", [False, True])
def test_can_authenticate_per_state(strict: bool) -> None:
    config = LifecycleConfig(strict_expiry=strict)
    expected = {
        S.NONE: False,
        S.PENDING: False,
        S.PENDING_EXPIRED: False,
        S.ACTIVE: True,
        S.EXPIRED: not strict,
        S.DISABLED: False,
    }
    assert {state: can_authenticate(state, config) for state in CredentialState} == expected


def test_can_authenticate_refuses_garbage() -> None:
    with pytest.raises(InvalidParameter):
        can_authenticate("enabled", LifecycleConfig())  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter):
        can_authenticate(S.ACTIVE, None)  # type: ignore[arg-type]


def test_default_expiry_still_authenticates_with_renewal_due() -> None:
    lenient, strict = LifecycleConfig(), LifecycleConfig(strict_expiry=True)
    old = active(renewed_at=T0)
    later = T0 + 181 * DAY
    assert effective_state(old, later, lenient) == S.EXPIRED
    assert can_authenticate(effective_state(old, later, lenient), lenient)
    assert renewal_due(old, later, lenient)
    assert not can_authenticate(effective_state(old, later, strict), strict)
    assert renewal_due(old, later, strict)
    assert not renewal_due(old, T0 + 179 * DAY, lenient)


@settings(max_examples=150)
@given(credentials(), times, configs)
def test_pending_never_authenticates_and_only_expired_is_due(
    credential: Credential, now: float, config: LifecycleConfig
) -> None:
    state = effective_state(credential, now, config)
    if credential.status in (S.PENDING, S.DISABLED):
        assert not can_authenticate(state, config)
        assert not renewal_due(credential, now, config)
    if state == S.EXPIRED:
        assert can_authenticate(state, config) is not config.strict_expiry


# -- the diagram ---------------------------------------------------------------------------


def test_diagram_has_one_edge_per_table_entry() -> None:
    text = state_diagram()
    lines = text.splitlines()
    assert lines[0] == "stateDiagram-v2"
    assert text.endswith("\n")
    for (state, event), target in TRANSITIONS.items():
        source = "[*]" if state == S.NONE else state.name
        end = "[*]" if target is None else target.name
        assert f"    {source} --> {end} : {event.value}" in lines
    edges = [line for line in lines if "-->" in line]
    assert len(edges) == len(TRANSITIONS) + 2  # plus the two changes made by time
    assert "    PENDING --> PENDING_EXPIRED : pending_ttl passes" in lines
    assert "    ACTIVE --> EXPIRED : max_age passes" in lines


def test_diagram_is_generated_from_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    changed = dict(TRANSITIONS)
    changed[S.DISABLED, E.CONFIRM] = S.ACTIVE
    monkeypatch.setattr(lifecycle, "TRANSITIONS", changed)
    assert "    DISABLED --> ACTIVE : confirm" in state_diagram().splitlines()


def test_docs_hold_exactly_the_generated_diagram() -> None:
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```mermaid\n(.*?)```", text, flags=re.DOTALL)
    assert blocks == [state_diagram()], (
        "docs/lifecycle.md is stale: paste lifecycle.state_diagram() into its mermaid block"
    )
