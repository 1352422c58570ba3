"""The one step-up check: a fresh second factor before a sensitive operation.

:func:`step_up_flow` accepts exactly the factors :func:`mfa_core.policy.evaluate` counts
for a step-up (its ``acceptable`` factors): a TOTP or HOTP code of a usable credential, a
recovery code (when a recovery-code store is configured), or an SMS/email code of a
``step_up`` challenge (``challenge_id`` given). Every path is the factor's own verify
flow, so throttling, counting (one attempt per call, on the user's one counter) and
replay protection are the same as at sign-in. The route is chosen by the shape of the
submission before anything is counted: a recovery code is 13 to 52 characters of its
alphabet, an OTP code 6 to 10 digits, so no submission is checked (or counted) twice.
``disable`` (and any other sensitive operation) uses it.
"""

from __future__ import annotations

from ..errors import ErrorCode, SealingError, StepUpRequired, StoreError, Throttled
from ..oob import OOBPurpose
from ..recovery import normalize_recovery_code
from ._context import Context
from ._effects import Flow
from ._oob import verify_oob_code_flow
from ._recovery import verify_recovery_code_flow
from ._verify import verify_at_flow
from .results import VerificationResult, VerifyReason

__all__ = ["raise_unless_accepted", "step_up_flow"]


def step_up_flow(
    ctx: Context, user_id: str, code: object, now: float, *, challenge_id: str | None = None
) -> Flow[VerificationResult]:
    """Check one step-up submission (see the module docstring); never raises for a wrong
    code (the result says why, ``factor`` names the factor that was checked)."""
    if challenge_id is not None:
        return (
            yield from verify_oob_code_flow(ctx, user_id, challenge_id, code, OOBPurpose.STEP_UP)
        )
    if ctx.has_recovery and normalize_recovery_code(code) is not None:
        return (yield from verify_recovery_code_flow(ctx, user_id, code))
    return (yield from verify_at_flow(ctx, user_id, code, now))


def raise_unless_accepted(result: VerificationResult) -> None:
    """Turn a refused step-up check into the matching typed error (nothing changes)."""
    if result.accepted:
        return
    reason = result.reason
    if reason == VerifyReason.STORE_ERROR:
        raise StoreError("the store failed during the step-up check; nothing was changed")
    if reason == VerifyReason.SEALING_ERROR:
        raise SealingError("a key could not be unsealed for the step-up check")
    if reason in (VerifyReason.THROTTLED, VerifyReason.LOCKED):
        code = ErrorCode.LOCKED if reason == VerifyReason.LOCKED else ErrorCode.THROTTLED
        raise Throttled(
            "too many failed attempts; try again later", retry_after=result.retry_after, code=code
        )
    raise StepUpRequired(f"the step-up code was refused ({reason.value})")
