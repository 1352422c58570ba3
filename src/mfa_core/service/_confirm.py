"""Confirmation attempts of a pending enrolment: their own limit, never the user's lockout.

A confirmation proves possession of a NEW factor, not the user's identity, so it must not
lock the factors the user already has: wrong confirmation codes are counted per pending
enrolment, under a key of their own on the failure counter (ONE atomic
``admit_attempt`` with the limit ``LifecycleConfig.max_confirmation_attempts`` and no
delay, before the code is checked: under any concurrency at most that many codes are
checked per enrolment). The wrong code that reaches the limit drops the enrolment
(CREDENTIAL_REMOVED, reason ``too_many_confirmation_attempts``); the user starts again.
The user's own lock is still honoured (checked without counting): a locked user confirms
nothing.
"""

from __future__ import annotations

import logging
from typing import Final

from ..errors import CredentialNotFound, IllegalTransition, MFAError
from ..lifecycle import LifecycleEvent
from ..models import Credential, Event, EventType, FailureState
from ..ports import FailureCounter
from ..throttle import ThrottleConfig
from ._context import Context, apply_flow, broken, valid_admission
from ._effects import Flow, call
from .results import VerificationResult, VerifyReason

__all__ = ["admit_confirmation_flow", "confirmation_counter", "confirmation_failed_flow"]

_logger = logging.getLogger("mfa_core.service")
_SUFFIX: Final = "#mfa_core.confirmation"
_KILLED: Final = "too_many_confirmation_attempts"


def confirmation_counter(credential_id: str) -> str:
    """The failure-counter key of one pending enrolment's confirmation attempts (the
    credential id is 128 random bits, so no host user id can be made to collide)."""
    return credential_id + _SUFFIX


def _limits(ctx: Context) -> ThrottleConfig:
    return ThrottleConfig(
        max_failures=ctx.config.lifecycle.max_confirmation_attempts,
        base_delay=0.0,
        max_delay=0.0,
        lockout=None,
    )


def admit_confirmation_flow(
    ctx: Context, pending: Credential, now: float
) -> Flow[FailureState | VerificationResult]:
    """Admit and count one confirmation attempt of ``pending``: the state after counting
    it, or the refusal (the enrolment used up its attempts; it is dropped)."""
    user_id = pending.user_id
    key = confirmation_counter(pending.id)
    try:
        admission = valid_admission(
            (yield from call(FailureCounter.admit_attempt, key, now, _limits(ctx)))
        )
    except Exception as exc:
        return broken(ctx, user_id, now, VerifyReason.STORE_ERROR, exc, pending.id)
    if admission.admitted:
        return admission.state
    yield from _drop_flow(ctx, pending, now)
    return _refusal(ctx, pending, now, VerifyReason.INVALID_CODE, admission.state.count)


def confirmation_failed_flow(
    ctx: Context, pending: Credential, now: float, after: FailureState, reason: VerifyReason
) -> Flow[VerificationResult]:
    """A wrong confirmation code (already counted): refuse it, and drop the enrolment when
    this was its last allowed attempt."""
    result = _refusal(ctx, pending, now, reason, after.count)
    if after.count >= ctx.config.lifecycle.max_confirmation_attempts:
        yield from _drop_flow(ctx, pending, now)
    return result


def forget_confirmations_flow(ctx: Context, pending: Credential) -> Flow[None]:
    """Forget the enrolment's attempt count once it is confirmed or abandoned (best effort:
    the key is never used again, and a leftover row only takes space)."""
    try:
        yield from call(FailureCounter.reset, confirmation_counter(pending.id))
    except Exception:
        _logger.warning("confirmation attempt count not cleared", exc_info=True)


def _refusal(
    ctx: Context, pending: Credential, now: float, reason: VerifyReason, count: int
) -> VerificationResult:
    ctx.emit(
        Event(
            type=EventType.VERIFICATION_FAILED,
            user_id=pending.user_id,
            at=now,
            credential_id=pending.id,
            reason=reason.value,
            data={
                "detail": "confirmation",
                "confirmation_failures": count,
                "max_confirmation_attempts": ctx.config.lifecycle.max_confirmation_attempts,
            },
        )
    )
    return VerificationResult(accepted=False, reason=reason, credential_id=pending.id)


def _drop_flow(ctx: Context, pending: Credential, now: float) -> Flow[None]:
    try:
        yield from apply_flow(ctx, pending, LifecycleEvent.ABANDON, now)
    except (CredentialNotFound, IllegalTransition):
        return  # dropped (or confirmed) concurrently: nothing to say
    except MFAError:
        _logger.warning("exhausted enrolment not dropped; it stays pending", exc_info=True)
        return
    ctx.emit(
        Event(
            type=EventType.CREDENTIAL_REMOVED,
            user_id=pending.user_id,
            at=now,
            credential_id=pending.id,
            reason=_KILLED,
        )
    )
    # The exhausted counter is left locked (no lockout end): a request that read the
    # enrolment before it was dropped is refused by it, never admitted afresh.
