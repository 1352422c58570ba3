"""Pins of ``mfa_core.throttle`` (issue 17): defaults, boundaries, every refusal with its
``ErrorCode`` and message, and :func:`~mfa_core.throttle.admit`'s exact results.

Mutation testing (``tools/mutation.py``) runs this file against ``src/mfa_core/throttle.py``.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from test_otp_pins import refuses

from mfa_core.errors import ErrorCode, InvalidParameter
from mfa_core.models import Admission, FailureState
from mfa_core.throttle import ThrottleConfig, ThrottleDecision, admit, check, delay_after

DEFAULT = ThrottleConfig()
LOCKOUT_RANGE = "lockout must be a number of seconds from 0 to 3.1536e+07"
ALLOWED = ThrottleDecision(allowed=True, locked=False, retry_after=None)
NOW = 1_700_000_000.0


def test_the_defaults() -> None:
    assert (DEFAULT.max_failures, DEFAULT.base_delay, DEFAULT.max_delay, DEFAULT.lockout) == (
        10,
        1.0,
        60.0,
        900.0,
    )
    assert [delay_after(n, DEFAULT) for n in range(9)] == [0, 1, 2, 4, 8, 16, 32, 60, 60]


def test_config_boundaries_are_accepted() -> None:
    ThrottleConfig(max_failures=1)
    ThrottleConfig(max_failures=100)
    ThrottleConfig(base_delay=0.0, max_delay=0.0, lockout=0.5)
    ThrottleConfig(base_delay=60.0, max_delay=60.0)
    ThrottleConfig(max_delay=86400.0, base_delay=1.0, lockout=86400.0)
    ThrottleConfig(lockout=365 * 86400.0)
    ThrottleConfig(lockout=None)
    ThrottleConfig(max_delay=60.0, lockout=60.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_failures": 0}, "max_failures must be an integer from 1 to 100"),
        ({"max_failures": 101}, "max_failures must be an integer from 1 to 100"),
        ({"max_failures": True}, "max_failures must be an integer from 1 to 100"),
        ({"max_failures": 5.0}, "max_failures must be an integer from 1 to 100"),
        ({"max_delay": -1.0}, "max_delay must be a number of seconds from 0 to 86400"),
        ({"max_delay": 86400.5}, "max_delay must be a number of seconds from 0 to 86400"),
        ({"max_delay": math.nan}, "max_delay must be a finite number of seconds"),
        ({"max_delay": math.inf}, "max_delay must be a finite number of seconds"),
        ({"max_delay": "60"}, "max_delay must be a finite number of seconds"),
        ({"base_delay": -0.5}, "base_delay must be a number of seconds from 0 to 60"),
        ({"base_delay": 60.5}, "base_delay must be a number of seconds from 0 to 60"),
        ({"base_delay": None}, "base_delay must be a finite number of seconds"),
        (
            {"lockout": 0.0, "max_delay": 0.0, "base_delay": 0.0},
            "lockout must be a number of seconds from 0 to 3.1536e+07",
        ),
        (
            {"lockout": 365 * 86400.0 + 1},
            "lockout must be a number of seconds from 0 to 3.1536e+07",
        ),
        ({"lockout": math.inf}, "lockout must be a finite number of seconds"),
        ({"lockout": 59.0}, "lockout must be at least max_delay"),
    ],
)
def test_config_refusals(kwargs: dict[str, Any], message: str) -> None:
    refuses(
        lambda: ThrottleConfig(**kwargs),
        InvalidParameter,
        ErrorCode.INVALID_PARAMETER,
        message,
    )


def test_delay_after_refusals() -> None:
    for bad in (-1, True, 1.0, "1", None):
        refuses(
            lambda bad=bad: delay_after(bad, DEFAULT),
            InvalidParameter,
            ErrorCode.INVALID_PARAMETER,
            "count must be an int >= 0",
        )
    refuses(
        lambda: delay_after(1, None),  # type: ignore[arg-type]
        InvalidParameter,
        ErrorCode.INVALID_PARAMETER,
        "config must be a ThrottleConfig",
    )


def test_delay_after_edges() -> None:
    assert delay_after(0, DEFAULT) == 0.0
    assert delay_after(1, DEFAULT) == 1.0
    assert type(delay_after(3, DEFAULT)) is float
    assert delay_after(5, ThrottleConfig(base_delay=0.0)) == 0.0
    assert delay_after(3, ThrottleConfig(base_delay=0.25)) == 1.0
    assert delay_after(1, ThrottleConfig(base_delay=2.5, max_delay=3.0)) == 2.5
    assert delay_after(2, ThrottleConfig(base_delay=2.5, max_delay=3.0)) == 3.0
    tiny = ThrottleConfig(base_delay=5e-324, max_delay=86400.0, lockout=86400.0)
    # The smallest float doubled 1099 times is 2**25: capped. A doubling past the float
    # range is the cap too, never an OverflowError.
    assert delay_after(1080, tiny) == 2.0**5
    assert delay_after(1100, tiny) == 86400.0
    assert delay_after(1030, DEFAULT) == 60.0
    assert delay_after(1025, ThrottleConfig(base_delay=0.5, max_delay=1.0, lockout=1.0)) == 1.0
    assert delay_after(10**6, DEFAULT) == 60.0
    assert type(delay_after(10**6, ThrottleConfig(max_delay=60))) is float
    assert (
        delay_after(2000, ThrottleConfig(base_delay=1.0, max_delay=86400.0, lockout=None))
        == 86400.0
    )


def test_check_refusals() -> None:
    for bad in (math.nan, math.inf, -math.inf, "1", None, True, 2.0**63):
        refuses(
            lambda bad=bad: check(FailureState(2, NOW), bad, DEFAULT),
            InvalidParameter,
            ErrorCode.INVALID_TIME,
            "now must be a finite, Unix time",
        )
    for bad in (math.nan, 2.0**63, 1e300):  # no failures yet: the same checks
        refuses(
            lambda bad=bad: check(FailureState(), bad, DEFAULT),
            InvalidParameter,
            ErrorCode.INVALID_TIME,
            "now must be a finite, Unix time",
        )
        refuses(
            lambda bad=bad: admit(FailureState(), bad, DEFAULT),
            InvalidParameter,
            ErrorCode.INVALID_TIME,
            "now must be a finite, Unix time",
        )
    refuses(
        lambda: check(FailureState(), math.nan, DEFAULT),
        InvalidParameter,
        ErrorCode.INVALID_TIME,
        "now must be a finite, Unix time",
    )
    refuses(
        lambda: check(None, NOW, DEFAULT),  # type: ignore[arg-type]
        InvalidParameter,
        ErrorCode.INVALID_PARAMETER,
        "state must be a FailureState",
    )
    refuses(
        lambda: check(FailureState(), NOW, None),  # type: ignore[arg-type]
        InvalidParameter,
        ErrorCode.INVALID_PARAMETER,
        "config must be a ThrottleConfig",
    )
    for count in (-1, True, 1.0, "1", None):
        refuses(
            lambda count=count: check(FailureState(count, NOW), NOW, DEFAULT),
            InvalidParameter,
            ErrorCode.INVALID_PARAMETER,
            "a failure count must be an int >= 0",
        )
    for last in (None, math.nan, math.inf, "1", 2.0**63):
        refuses(
            lambda last=last: check(FailureState(3, last), NOW, DEFAULT),
            InvalidParameter,
            ErrorCode.INVALID_TIME,
            "a failure state with failures needs the time of the latest one",
        )


def test_check_accepts_any_finite_clock_reading() -> None:
    # The pure decision is total over finite clock readings, negative ones included.
    assert check(FailureState(), -5.0, DEFAULT) == ALLOWED
    assert check(FailureState(), 7, DEFAULT) == ALLOWED
    assert check(FailureState(2, -10.0), -9.5, DEFAULT) == ThrottleDecision(False, False, 1.5)
    assert check(FailureState(0, None), NOW, DEFAULT) == ALLOWED


def test_delay_decisions_exactly() -> None:
    state = FailureState(3, NOW)  # 4 s delay
    assert check(state, NOW, DEFAULT) == ThrottleDecision(False, False, 4.0)
    assert check(state, NOW + 1, DEFAULT) == ThrottleDecision(False, False, 3.0)
    assert check(state, NOW + 3.5, DEFAULT) == ThrottleDecision(False, False, 0.5)
    assert check(state, NOW + 4, DEFAULT) == ALLOWED
    assert check(state, NOW - 2, DEFAULT) == ThrottleDecision(False, False, 6.0)
    assert check(FailureState(3, int(NOW)), int(NOW) + 1, DEFAULT) == ThrottleDecision(
        False, False, 3.0
    )
    no_delay = ThrottleConfig(base_delay=0.0, max_delay=0.0, lockout=10.0)
    assert check(FailureState(5, NOW), NOW, no_delay) == ALLOWED
    assert check(FailureState(5, NOW), NOW - 1.0, no_delay) == ALLOWED


def test_lock_decisions_exactly() -> None:
    config = ThrottleConfig(max_failures=3, lockout=100.0)
    assert check(FailureState(2, NOW), NOW, config) == ThrottleDecision(False, False, 2.0)
    assert check(FailureState(3, NOW), NOW, config) == ThrottleDecision(False, True, 100.0)
    assert check(FailureState(4, NOW), NOW + 99, config) == ThrottleDecision(False, True, 1.0)
    assert check(FailureState(3, NOW), NOW + 100, config) == ALLOWED
    assert check(FailureState(3, NOW), NOW - 5, config) == ThrottleDecision(False, True, 105.0)
    forever = ThrottleConfig(max_failures=3, lockout=None)
    assert check(FailureState(3, NOW), NOW + 10**9, forever) == ThrottleDecision(False, True, None)
    assert check(FailureState(2, NOW), NOW + 2, forever) == ALLOWED


def test_admit_counts_and_keeps_the_latest_time() -> None:
    assert admit(FailureState(), NOW, DEFAULT) == Admission(True, FailureState(1, NOW))
    assert admit(FailureState(), 5, DEFAULT) == Admission(True, FailureState(1, 5.0))
    assert type(admit(FailureState(), 5, DEFAULT).state.last_failure_at) is float
    assert admit(FailureState(1, NOW), NOW + 1, DEFAULT) == Admission(
        True, FailureState(2, NOW + 1)
    )
    assert admit(FailureState(1, NOW), NOW + 0.5, DEFAULT) == Admission(False, FailureState(1, NOW))
    # A worker whose clock is behind never moves the time back.
    no_delay = ThrottleConfig(base_delay=0.0, max_delay=0.0, lockout=10.0)
    assert admit(FailureState(2, NOW), NOW - 3, no_delay) == Admission(True, FailureState(3, NOW))
    later = admit(FailureState(2, int(NOW)), int(NOW) - 3, no_delay)
    assert later == Admission(True, FailureState(3, NOW))
    assert type(later.state.last_failure_at) is float
    assert admit(FailureState(2, NOW), NOW, no_delay) == Admission(True, FailureState(3, NOW))
    config = ThrottleConfig(max_failures=2, max_delay=30.0, lockout=30.0)
    assert admit(FailureState(2, NOW), NOW + 29, config) == Admission(False, FailureState(2, NOW))
    assert admit(FailureState(2, NOW), NOW + 30, config) == Admission(
        True, FailureState(3, NOW + 30)
    )


def test_admit_refuses_as_check_does() -> None:
    refuses(
        lambda: admit(FailureState(), math.nan, DEFAULT),
        InvalidParameter,
        ErrorCode.INVALID_TIME,
        "now must be a finite, Unix time",
    )
    refuses(
        lambda: admit(FailureState(), NOW, None),  # type: ignore[arg-type]
        InvalidParameter,
        ErrorCode.INVALID_PARAMETER,
        "config must be a ThrottleConfig",
    )
    refuses(
        lambda: admit(FailureState(2, None), NOW, DEFAULT),
        InvalidParameter,
        ErrorCode.INVALID_TIME,
        "a failure state with failures needs the time of the latest one",
    )
