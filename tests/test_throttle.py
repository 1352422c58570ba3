"""Throttling: the growing delay, the hard lock, their boundaries and their properties."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mfa_core.errors import ErrorCode, InvalidParameter
from mfa_core.models import FailureState
from mfa_core.throttle import ThrottleConfig, ThrottleDecision, check, delay_after

T0 = 1_700_000_000.0
DEFAULT = ThrottleConfig()


@st.composite
def configs(draw: st.DrawFn) -> ThrottleConfig:
    max_delay = draw(st.floats(min_value=0, max_value=86400))
    base = draw(st.floats(min_value=0, max_value=max_delay))
    lockout = draw(st.none() | st.floats(min_value=max(max_delay, 1e-3), max_value=365 * 86400))
    return ThrottleConfig(
        max_failures=draw(st.integers(1, 100)),
        base_delay=base,
        max_delay=max_delay,
        lockout=lockout,
    )


counts = st.integers(min_value=0, max_value=10_000)
offsets = st.floats(min_value=-1e6, max_value=1e7, allow_nan=False)


def wait(decision: ThrottleDecision) -> float:
    """How long the decision makes the user wait (infinite for a lock with no end)."""
    if decision.allowed:
        return 0.0
    return math.inf if decision.retry_after is None else decision.retry_after


# -- configuration -------------------------------------------------------------------------


def test_defaults() -> None:
    expected = ThrottleConfig(max_failures=10, base_delay=1.0, max_delay=60.0, lockout=900.0)
    assert expected == DEFAULT
    assert ThrottleConfig(max_failures=100).max_failures == 100  # NIST SP 800-63B §3.2.2
    assert ThrottleConfig(max_failures=1, lockout=None).lockout is None
    assert ThrottleConfig(base_delay=0, max_delay=0, lockout=0.5).max_delay == 0


@pytest.mark.standard("NIST-3.2.2", "a limit above 100 failures is refused")
@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_failures": 0},
        {"max_failures": 101},
        {"max_failures": -1},
        {"max_failures": 10.0},
        {"max_failures": True},
        {"max_failures": "10"},
        {"base_delay": -1},
        {"base_delay": math.nan},
        {"base_delay": 61},  # above max_delay
        {"base_delay": None},
        {"max_delay": math.inf},
        {"max_delay": -1},
        {"max_delay": 86401, "lockout": None},
        {"max_delay": True},
        {"lockout": 0},
        {"lockout": -5},
        {"lockout": math.nan},
        {"lockout": math.inf},
        {"lockout": 366 * 86400},
        {"lockout": 59},  # shorter than max_delay
        {"lockout": "900"},
    ],
)
def test_config_refuses_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidParameter):
        ThrottleConfig(**kwargs)


# -- delay_after ---------------------------------------------------------------------------


def test_default_delays() -> None:
    assert [delay_after(n, DEFAULT) for n in range(12)] == [
        0,
        1,
        2,
        4,
        8,
        16,
        32,
        60,
        60,
        60,
        60,
        60,
    ]
    assert delay_after(10**9, DEFAULT) == 60.0
    assert delay_after(3, ThrottleConfig(base_delay=0)) == 0.0


@pytest.mark.parametrize("count", [-1, 1.0, True, "3", None])
def test_delay_after_refuses_bad_counts(count: Any) -> None:
    with pytest.raises(InvalidParameter):
        delay_after(count, DEFAULT)


def test_delay_after_refuses_a_bad_config() -> None:
    with pytest.raises(InvalidParameter):
        delay_after(1, {"base_delay": 1})  # type: ignore[arg-type]


@settings(max_examples=200)
@given(configs(), counts)
def test_delay_is_non_decreasing_and_capped(config: ThrottleConfig, n: int) -> None:
    this, following = delay_after(n, config), delay_after(n + 1, config)
    assert 0 <= this <= following <= config.max_delay
    if n == 0:
        assert this == 0
    if n == 1:
        assert this == config.base_delay
    if 1 <= n <= 1000 and config.base_delay * 2.0**n <= config.max_delay:
        assert following == config.base_delay * 2.0**n  # exact doubling below the cap


@settings(max_examples=100)
@given(configs(), st.integers(min_value=1000, max_value=10**12))
def test_huge_counts_do_not_overflow(config: ThrottleConfig, n: int) -> None:
    delay = delay_after(n, config)
    if config.base_delay == 0:
        assert delay == 0.0
    elif config.base_delay * 2.0**999 >= config.max_delay:
        assert delay == config.max_delay  # doubling reaches the cap long before n = 1000
    else:
        assert 0 < delay <= config.max_delay  # a denormal-sized base: no overflow, no error


# -- check: boundaries ---------------------------------------------------------------------


def test_no_failures_is_allowed() -> None:
    decision = check(FailureState(), T0, DEFAULT)
    assert decision == ThrottleDecision(allowed=True, locked=False, retry_after=None)


def test_delay_boundary_both_sides() -> None:
    state = FailureState(count=3, last_failure_at=T0)  # 4 s delay
    early = check(state, T0 + 1, DEFAULT)
    assert (early.allowed, early.locked, early.retry_after) == (False, False, 3.0)
    just_before = check(state, math.nextafter(T0 + 4, 0), DEFAULT)
    assert not just_before.allowed and not just_before.locked
    assert just_before.retry_after is not None and 0 < just_before.retry_after < 1e-3
    assert check(state, T0 + 4, DEFAULT).allowed  # exactly at the end: allowed
    assert check(state, T0 + 10, DEFAULT).allowed


@pytest.mark.standard("NIST-3.2.2", "the lock starts exactly at max_failures")
def test_lock_boundary_both_sides() -> None:
    limits = ThrottleConfig(max_failures=4, base_delay=1, max_delay=8, lockout=300)
    three = FailureState(count=3, last_failure_at=T0)
    assert not check(three, T0 + 1, limits).locked  # below the limit: only a delay
    four = FailureState(count=4, last_failure_at=T0)
    locked = check(four, T0, limits)
    assert (locked.allowed, locked.locked, locked.retry_after) == (False, True, 300.0)
    late = check(four, math.nextafter(T0 + 300, 0), limits)
    assert late.locked and late.retry_after is not None and late.retry_after > 0
    assert check(four, T0 + 300, limits) == ThrottleDecision(True, False, None)
    # Beyond the limit (failures after a lock ran out) the lock applies again.
    assert check(FailureState(count=9, last_failure_at=T0 + 400), T0 + 401, limits).locked


def test_lock_without_end_needs_an_administrator() -> None:
    limits = ThrottleConfig(max_failures=2, lockout=None)
    state = FailureState(count=2, last_failure_at=T0)
    for later in (0, 3600, 10 * 365 * 86400):
        assert check(state, T0 + later, limits) == ThrottleDecision(False, True, None)
    assert check(FailureState(count=1, last_failure_at=T0), T0 + 1, limits).allowed


def test_a_failure_time_in_the_future_still_throttles() -> None:
    # Another process's clock ran ahead: the wait is honest, counted from its timestamp.
    decision = check(FailureState(count=1, last_failure_at=T0 + 10), T0, DEFAULT)
    assert not decision.allowed and decision.retry_after == 11.0
    no_delay = ThrottleConfig(base_delay=0)
    assert check(FailureState(count=1, last_failure_at=T0 + 10), T0, no_delay).allowed


# -- check: bad input ----------------------------------------------------------------------


@pytest.mark.parametrize("now", [math.nan, math.inf, "1", None, True])
def test_check_refuses_bad_time(now: Any) -> None:
    with pytest.raises(InvalidParameter) as info:
        check(FailureState(count=1, last_failure_at=T0), now, DEFAULT)
    assert info.value.code == ErrorCode.INVALID_TIME


@pytest.mark.parametrize(
    "state",
    [
        FailureState(count=1, last_failure_at=None),
        FailureState(count=10, last_failure_at=None),
        FailureState(count=-1, last_failure_at=T0),
        FailureState(count=True, last_failure_at=T0),
        FailureState(count=2, last_failure_at=math.nan),
        FailureState(count=2.0, last_failure_at=T0),  # type: ignore[arg-type]
    ],
)
def test_check_refuses_inconsistent_states(state: FailureState) -> None:
    with pytest.raises(InvalidParameter):
        check(state, T0, DEFAULT)


def test_check_refuses_wrong_types() -> None:
    with pytest.raises(InvalidParameter):
        check((1, T0), T0, DEFAULT)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter):
        check(FailureState(), T0, None)  # type: ignore[arg-type]


# -- check: properties ---------------------------------------------------------------------


@settings(max_examples=200)
@given(configs(), counts, offsets)
def test_locked_iff_limit_reached_within_lockout(
    config: ThrottleConfig, n: int, offset: float
) -> None:
    state = FailureState(count=n, last_failure_at=T0)
    decision = check(state, T0 + offset, config)
    within = config.lockout is None or T0 + offset < T0 + config.lockout
    assert decision.locked == (n >= config.max_failures and within)
    if decision.allowed:
        assert not decision.locked and decision.retry_after is None
    elif decision.locked:
        if config.lockout is None:
            assert decision.retry_after is None
        else:
            assert decision.retry_after == pytest.approx(T0 + config.lockout - (T0 + offset))
    else:
        assert decision.retry_after is not None and decision.retry_after > 0
        delay = delay_after(n, config)
        assert decision.retry_after == pytest.approx(T0 + delay - (T0 + offset))
        if offset >= 0:
            # retry_after is (T0 + delay) - now in floats: allow the rounding of adding at T0.
            assert decision.retry_after <= delay + 2 * math.ulp(T0 + delay)


@settings(max_examples=200)
@given(configs(), counts, offsets, st.floats(min_value=0, max_value=1e7))
def test_waiting_never_makes_it_worse(
    config: ThrottleConfig, n: int, offset: float, more: float
) -> None:
    state = FailureState(count=n, last_failure_at=T0)
    earlier, later = check(state, T0 + offset, config), check(state, T0 + offset + more, config)
    assert wait(later) <= wait(earlier)
    if earlier.allowed:
        assert later.allowed


@settings(max_examples=200)
@given(configs(), counts, offsets)
def test_one_more_failure_never_makes_it_easier(
    config: ThrottleConfig, n: int, offset: float
) -> None:
    assume(offset >= 0)
    now = T0 + offset
    fewer = check(FailureState(count=n, last_failure_at=T0), now, config)
    more = check(FailureState(count=n + 1, last_failure_at=T0), now, config)
    assert wait(more) >= wait(fewer) - 1e-9
    if fewer.locked:
        assert more.locked


@settings(max_examples=100)
@given(configs(), st.floats(min_value=0, max_value=1e6))
def test_a_locked_user_is_refused_even_right_after_the_lock_starts(
    config: ThrottleConfig, offset: float
) -> None:
    state = FailureState(count=config.max_failures, last_failure_at=T0)
    decision = check(state, T0 + offset, config)
    # The documented rule is on absolute times (now < last_failure_at + lockout): comparing
    # the offsets instead disagrees where T0 + offset rounds onto T0 + lockout.
    if config.lockout is None or T0 + offset < T0 + config.lockout:
        assert decision.locked and not decision.allowed
    else:
        assert decision.allowed
