"""Pins of ``mfa_core.lifecycle`` (issue 17): defaults, deadlines to the second, every
refusal with its ``ErrorCode`` and message, and the stored form of every state.

Mutation testing (``tools/mutation.py``) runs this file against ``src/mfa_core/lifecycle.py``.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import pytest
from test_otp_pins import refuses

from mfa_core.errors import ErrorCode, IllegalTransition, InvalidParameter
from mfa_core.lifecycle import (
    STORED_FORM,
    LifecycleConfig,
    LifecycleEvent,
    can_authenticate,
    effective_state,
    renewal_due,
    stored_state,
    transition,
)
from mfa_core.models import Credential, CredentialKind, CredentialState

S = CredentialState
E = LifecycleEvent
DAY = 86400.0
T = 1_700_000_000.0
DEFAULT = LifecycleConfig()


def cred(**changes: Any) -> Credential:
    base = Credential(
        id="c1", user_id="alice", kind=CredentialKind.TOTP, sealed_key=b"sealed", created_at=T
    )
    return attrs.evolve(base, **changes)


def test_the_defaults() -> None:
    assert DEFAULT.pending_ttl == 1800.0  # time to install an authenticator app
    assert DEFAULT.max_age == 180 * DAY
    assert DEFAULT.strict_expiry is False
    assert DEFAULT.max_confirmation_attempts == 5


def test_config_boundaries() -> None:
    LifecycleConfig(pending_ttl=7 * DAY)
    LifecycleConfig(pending_ttl=0.001, max_age=0.001)
    LifecycleConfig(max_age=math.inf)
    LifecycleConfig(strict_expiry=True)
    assert LifecycleConfig(max_confirmation_attempts=1).max_confirmation_attempts == 1
    assert LifecycleConfig(max_confirmation_attempts=100).max_confirmation_attempts == 100


_ATTEMPTS = "max_confirmation_attempts must be an integer from 1 to 100"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pending_ttl": 0.0}, "pending_ttl must be a number of seconds from 0 to 604800"),
        ({"pending_ttl": -1.0}, "pending_ttl must be a number of seconds from 0 to 604800"),
        ({"pending_ttl": 7 * DAY + 1}, "pending_ttl must be a number of seconds from 0 to 604800"),
        ({"pending_ttl": math.inf}, "pending_ttl must be a finite number of seconds"),
        ({"pending_ttl": "600"}, "pending_ttl must be a finite number of seconds"),
        ({"max_age": 0.0}, "max_age must be a number of seconds from 0 to inf"),
        ({"max_age": -1.0}, "max_age must be a number of seconds from 0 to inf"),
        ({"max_age": math.nan}, "max_age must be a finite number of seconds"),
        ({"max_age": None}, "max_age must be a finite number of seconds"),
        ({"strict_expiry": 1}, "strict_expiry must be a bool"),
        ({"strict_expiry": None}, "strict_expiry must be a bool"),
        *(
            ({"max_confirmation_attempts": bad}, _ATTEMPTS)
            for bad in (0, 101, True, "5", 2.0, None)
        ),
    ],
)
def test_config_refusals(kwargs: dict[str, Any], message: str) -> None:
    refuses(
        lambda: LifecycleConfig(**kwargs), InvalidParameter, ErrorCode.INVALID_PARAMETER, message
    )


def test_transition_takes_values_and_refuses_others() -> None:
    assert transition("pending", "confirm") is S.ACTIVE  # type: ignore[arg-type]
    assert transition(S.ACTIVE, "renew") is S.ACTIVE  # type: ignore[arg-type]
    assert transition("expired", E.RENEW) is S.EXPIRED  # type: ignore[arg-type]
    assert transition(S.DISABLED, E.ADMIN_RESET) is None
    for bad in ("ACTIVE", "gone", None, 1):
        refuses(
            lambda bad=bad: transition(bad, E.DISABLE),
            InvalidParameter,
            ErrorCode.INVALID_PARAMETER,
            "state must be a CredentialState",
        )
    for bad in ("CONFIRM", "explode", None, E):
        refuses(
            lambda bad=bad: transition(S.ACTIVE, bad),
            InvalidParameter,
            ErrorCode.INVALID_PARAMETER,
            "event must be a LifecycleEvent",
        )
    refuses(
        lambda: transition(S.ACTIVE, E.CONFIRM),
        IllegalTransition,
        ErrorCode.ILLEGAL_TRANSITION,
        "illegal lifecycle transition: event 'confirm' is not allowed in state 'active'",
    )
    refuses(
        lambda: transition("disabled", "enrol"),  # type: ignore[arg-type]
        IllegalTransition,
        ErrorCode.ILLEGAL_TRANSITION,
        "illegal lifecycle transition: event 'enrol' is not allowed in state 'disabled'",
    )


def test_pending_deadline_to_the_second() -> None:
    pending = cred()
    assert effective_state(pending, T + 1800, DEFAULT) is S.PENDING
    assert effective_state(pending, T + 1800.5, DEFAULT) is S.PENDING_EXPIRED
    assert effective_state(pending, T - 5, DEFAULT) is S.PENDING
    short = LifecycleConfig(pending_ttl=60.0)
    assert effective_state(pending, T + 60, short) is S.PENDING
    assert effective_state(pending, T + 61, short) is S.PENDING_EXPIRED
    # pending_until, when stored, wins over created_at + pending_ttl.
    until = cred(pending_until=T + 30)
    assert effective_state(until, T + 30, DEFAULT) is S.PENDING
    assert effective_state(until, T + 31, DEFAULT) is S.PENDING_EXPIRED
    later = cred(pending_until=T + 5000)
    assert effective_state(later, T + 4000, DEFAULT) is S.PENDING


def test_expiry_counts_from_renewal_then_confirmation_then_creation() -> None:
    config = LifecycleConfig(max_age=100.0)
    active = cred(status=S.ACTIVE)
    assert effective_state(active, T + 99.5, config) is S.ACTIVE
    assert effective_state(active, T + 100, config) is S.EXPIRED
    confirmed = cred(status=S.ACTIVE, confirmed_at=T + 50)
    assert effective_state(confirmed, T + 149, config) is S.ACTIVE
    assert effective_state(confirmed, T + 150, config) is S.EXPIRED
    renewed = cred(status=S.ACTIVE, confirmed_at=T + 50, renewed_at=T + 500)
    assert effective_state(renewed, T + 599, config) is S.ACTIVE
    assert effective_state(renewed, T + 600, config) is S.EXPIRED
    assert effective_state(renewed, T + 200, config) is S.ACTIVE
    assert effective_state(cred(status=S.ACTIVE), T + 10**9, LifecycleConfig(max_age=math.inf)) is (
        S.ACTIVE
    )
    assert effective_state(cred(status=S.ACTIVE), T + 180 * DAY - 1, DEFAULT) is S.ACTIVE
    assert effective_state(cred(status=S.ACTIVE), T + 180 * DAY, DEFAULT) is S.EXPIRED


def test_disabled_stays_disabled() -> None:
    disabled = cred(status=S.DISABLED, confirmed_at=T, disabled_at=T + 1)
    assert effective_state(disabled, T + 10**8, DEFAULT) is S.DISABLED
    assert effective_state(disabled, T, DEFAULT) is S.DISABLED


def test_a_status_given_as_its_string_value() -> None:
    # A store may hand back the plain value; the rules are the same.
    config = LifecycleConfig(max_age=100.0)
    assert effective_state(cred(status="active"), T + 99, config) is S.ACTIVE  # type: ignore[arg-type]
    assert effective_state(cred(status="active"), T + 100, config) is S.EXPIRED  # type: ignore[arg-type]
    assert effective_state(cred(status="pending"), T + 1801, DEFAULT) is S.PENDING_EXPIRED  # type: ignore[arg-type]
    assert effective_state(cred(status="disabled"), T, DEFAULT) is S.DISABLED  # type: ignore[arg-type]


def test_effective_state_refusals() -> None:
    refuses(
        lambda: effective_state(None, T, DEFAULT),  # type: ignore[arg-type]
        InvalidParameter,
        ErrorCode.INVALID_PARAMETER,
        "credential must be a Credential",
    )
    refuses(
        lambda: effective_state(cred(), T, None),  # type: ignore[arg-type]
        InvalidParameter,
        ErrorCode.INVALID_PARAMETER,
        "config must be a LifecycleConfig",
    )
    for bad in (math.nan, math.inf, "1", None, True, 2.0**63):
        refuses(
            lambda bad=bad: effective_state(cred(status=S.ACTIVE), bad, DEFAULT),
            InvalidParameter,
            ErrorCode.INVALID_TIME,
            "now must be a finite, Unix time",
        )
    for status in (S.EXPIRED, S.PENDING_EXPIRED, S.NONE):
        refuses(
            lambda status=status: effective_state(cred(status=status), T, DEFAULT),
            InvalidParameter,
            ErrorCode.INVALID_PARAMETER,
            f"a stored credential status must be pending, active or disabled, not {status.value}",
        )
    for field in ("renewed_at", "confirmed_at", "created_at"):
        refuses(
            lambda field=field: effective_state(
                cred(status=S.ACTIVE, **{field: math.nan}), T, DEFAULT
            ),
            InvalidParameter,
            ErrorCode.INVALID_TIME,
            f"{field} must be a finite, Unix time",
        )
    for field in ("pending_until", "created_at"):
        refuses(
            lambda field=field: effective_state(cred(**{field: 10**400}), T, DEFAULT),
            InvalidParameter,
            ErrorCode.INVALID_TIME,
            f"{field} must be a finite, Unix time",
        )


def test_effective_state_takes_int_and_negative_times() -> None:
    assert effective_state(cred(status=S.ACTIVE, created_at=0.0), -5, DEFAULT) is S.ACTIVE
    assert effective_state(cred(created_at=0.0), 1801, DEFAULT) is S.PENDING_EXPIRED
    assert effective_state(cred(created_at=0), 1800, DEFAULT) is S.PENDING


def test_can_authenticate() -> None:
    strict = LifecycleConfig(strict_expiry=True)
    assert can_authenticate(S.ACTIVE, DEFAULT) is True
    assert can_authenticate(S.ACTIVE, strict) is True
    assert can_authenticate("active", strict) is True  # type: ignore[arg-type]
    assert can_authenticate(S.EXPIRED, DEFAULT) is True
    assert can_authenticate("expired", DEFAULT) is True  # type: ignore[arg-type]
    assert can_authenticate(S.EXPIRED, strict) is False
    for state in (S.NONE, S.PENDING, S.PENDING_EXPIRED, S.DISABLED):
        assert can_authenticate(state, DEFAULT) is False
    refuses(
        lambda: can_authenticate(S.ACTIVE, None),  # type: ignore[arg-type]
        InvalidParameter,
        ErrorCode.INVALID_PARAMETER,
        "config must be a LifecycleConfig",
    )
    refuses(
        lambda: can_authenticate(S.EXPIRED, None),  # type: ignore[arg-type]
        InvalidParameter,
        ErrorCode.INVALID_PARAMETER,
        "config must be a LifecycleConfig",
    )
    refuses(
        lambda: can_authenticate("gone", DEFAULT),  # type: ignore[arg-type]
        InvalidParameter,
        ErrorCode.INVALID_PARAMETER,
        "state must be a CredentialState",
    )


def test_renewal_due() -> None:
    config = LifecycleConfig(max_age=100.0)
    assert renewal_due(cred(status=S.ACTIVE), T + 100, config) is True
    assert renewal_due(cred(status=S.ACTIVE), T + 99, config) is False
    assert renewal_due(cred(), T + 10**6, config) is False
    assert renewal_due(cred(status=S.DISABLED), T + 10**6, config) is False


def test_stored_form() -> None:
    assert dict(STORED_FORM) == {S.EXPIRED: S.ACTIVE, S.PENDING_EXPIRED: S.PENDING}
    assert {state: stored_state(state) for state in S} == {
        S.NONE: S.NONE,
        S.PENDING: S.PENDING,
        S.PENDING_EXPIRED: S.PENDING,
        S.ACTIVE: S.ACTIVE,
        S.EXPIRED: S.ACTIVE,
        S.DISABLED: S.DISABLED,
    }
