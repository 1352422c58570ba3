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

With ``factors`` (the factors a policy counts for the action at hand: a challenge
decision's ``factors``), only those are accepted: a code of any other factor is checked
as none of them (an OTP code with no credential of an allowed kind is NO_CREDENTIAL, a
recovery code is not an OTP code, an SMS/email code of a channel not allowed is refused
with the audit reason CHANNEL_NOT_ALLOWED), after the attempt was counted like any
other. A policy that asks for a security key for the action accepts no code here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from ..errors import (
    ErrorCode,
    InvalidParameter,
    SealingError,
    StepUpRequired,
    StoreError,
    Throttled,
)
from ..models import CredentialKind
from ..oob import OOBChannel, OOBPurpose
from ..policy import Factor
from ..recovery import normalize_recovery_code
from ._context import Context
from ._effects import Flow
from ._oob import verify_oob_code_flow
from ._recovery import verify_recovery_code_flow
from ._verify import verify_at_flow
from .results import VerificationResult, VerifyReason

__all__ = ["allowed_factors", "raise_unless_accepted", "step_up_flow"]

_KIND_OF: Final = {Factor.TOTP: CredentialKind.TOTP, Factor.HOTP: CredentialKind.HOTP}
_CHANNEL_OF: Final = {Factor.SMS_CODE: OOBChannel.SMS, Factor.EMAIL_CODE: OOBChannel.EMAIL}
_OTP: Final = frozenset(_KIND_OF)
_OOB: Final = frozenset(_CHANNEL_OF)


def allowed_factors(factors: object) -> frozenset[Factor] | None:
    """``factors`` as the set a step-up accepts (``None``: every step-up factor); anything
    but an iterable of :class:`~mfa_core.policy.Factor` is an InvalidParameter."""
    if factors is None:
        return None
    refusal = "factors must be None or an iterable of mfa_core.policy.Factor"
    if isinstance(factors, str | bytes) or not isinstance(factors, Iterable):
        raise InvalidParameter(refusal)
    items = tuple(factors)
    if not all(isinstance(factor, Factor) for factor in items):
        raise InvalidParameter(refusal)
    return frozenset(items)


def step_up_flow(
    ctx: Context,
    user_id: str,
    code: object,
    now: float,
    *,
    challenge_id: str | None = None,
    factors: frozenset[Factor] | None = None,
) -> Flow[VerificationResult]:
    """Check one step-up submission (see the module docstring); never raises for a wrong
    code (the result says why, ``factor`` names the factor that was checked)."""
    if challenge_id is not None:
        channels = None if factors is None else frozenset(_CHANNEL_OF[f] for f in factors & _OOB)
        return (
            yield from verify_oob_code_flow(
                ctx, user_id, challenge_id, code, OOBPurpose.STEP_UP, channels=channels
            )
        )
    recovery = factors is None or Factor.RECOVERY_CODE in factors
    if recovery and ctx.has_recovery and normalize_recovery_code(code) is not None:
        return (yield from verify_recovery_code_flow(ctx, user_id, code))
    kinds = None if factors is None else frozenset(_KIND_OF[f] for f in factors & _OTP)
    return (yield from verify_at_flow(ctx, user_id, code, now, kinds=kinds))


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
