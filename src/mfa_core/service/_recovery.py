"""The recovery-code flows of the service front ends.

* ``generate_recovery_codes`` makes a new set (or one recovery key),
  stores only its records (keyed lookup tag + Argon2id PHC hash) with ONE atomic
  replacement of the user's whole set, and returns the plain codes to show once.
* ``verify_recovery_code`` checks one attempt. Order of work:

  1. ONE atomic admission on the user's failure counter (the same counter as OTP
     attempts): throttled or locked -> refused, no hash computed; otherwise the attempt
     is counted before the code is looked at;
  2. the user's records; none -> ``no_credential``;
  3. :func:`decide_recovery`, the only CPU-heavy step: normalise, keyed
     lookup tag, at most ONE Argon2id verification (a wrong guess almost never reaches
     it), and the re-hash of the matched code when its parameters are outdated;
  4. success: ONE atomic ``consume_recovery_code`` (a lost race is a replay), the new hash
     stored, the failure count reset, RECOVERY_CODE_USED (and RECOVERY_CODES_LOW) emitted;
     every refusal after the admission emits RECOVERY_CODE_FAILED.

Store failures refuse the attempt (fail closed). Steps 3 and the hashing of a new set are
:class:`~mfa_core.service._effects.Cpu` effects: the async front end runs them off the event loop.
"""

from __future__ import annotations

import logging
from typing import Final

import attrs

from ..errors import InvalidParameter
from ..models import Event, EventType, FailureState
from ..ports import FailureCounter, RecoveryCodeStore
from ..recovery import (
    Argon2Params,
    RecoveryCheck,
    RecoveryCodeSet,
    RecoveryConfig,
    RecoveryReason,
    RecoveryRecord,
    check_recovery_code,
    count_unused,
    generate_recovery_codes,
    hash_recovery_code,
)
from ._context import Context, admit_flow, broken, check_id, checked, fail
from ._effects import Flow, call, cpu
from .results import RecoveryVerificationResult, VerificationResult, VerifyReason

__all__ = [
    "decide_recovery",
    "generate_recovery_codes_flow",
    "recovery_codes_left_flow",
    "recovery_tag_key",
    "verify_recovery_code_flow",
]

_logger = logging.getLogger("mfa_core.service")

_REASONS: Final = {
    RecoveryReason.MALFORMED: VerifyReason.MALFORMED,
    RecoveryReason.NO_MATCH: VerifyReason.INVALID_CODE,
    RecoveryReason.WRONG_CODE: VerifyReason.INVALID_CODE,
    RecoveryReason.ALREADY_USED: VerifyReason.REPLAYED,
}


@attrs.frozen
class RecoveryDecision:
    """What the CPU-heavy step decided (internal): the check, and a new PHC hash of the
    matched code when its parameters were outdated."""

    check: RecoveryCheck
    new_phc: str | None = attrs.field(default=None, repr=False)


def decide_recovery(
    code: object,
    user_id: str,
    records: tuple[RecoveryRecord, ...],
    tag_key: bytes,
    params: Argon2Params,
) -> RecoveryDecision:
    """The CPU-heavy step, pure and free of I/O: at most one Argon2id verification, plus
    one Argon2id hash when the matched code's parameters are outdated. A module-level
    function of picklable arguments, so an async host may run it in a process pool."""
    check = check_recovery_code(code, user_id, records, tag_key, params)
    if check.ok and check.rehash_due and isinstance(code, str):
        return RecoveryDecision(check, hash_recovery_code(code, params))
    return RecoveryDecision(check)


def recovery_tag_key(ctx: Context) -> bytes:
    if not ctx.has_recovery or ctx.tag_key is None:
        raise InvalidParameter(
            "recovery codes are not configured: pass recovery_codes= and secret="
        )
    return ctx.tag_key


def generate_recovery_codes_flow(
    ctx: Context, user_id: str, *, config: RecoveryConfig | None = None
) -> Flow[RecoveryCodeSet]:
    check_id(user_id, "user_id")
    tag_key = recovery_tag_key(ctx)
    settings = ctx.config.recovery if config is None else config
    if not isinstance(settings, RecoveryConfig):
        raise InvalidParameter("config must be a RecoveryConfig")
    now = ctx.now()
    generated = yield from cpu(generate_recovery_codes, user_id, tag_key, settings)
    yield from checked(call(RecoveryCodeStore.replace_recovery_codes, user_id, generated.records))
    ctx.emit(
        Event(
            type=EventType.RECOVERY_CODES_GENERATED,
            user_id=user_id,
            at=now,
            data={"count": len(generated.records), "mode": settings.mode.value},
        )
    )
    return generated


def recovery_codes_left_flow(ctx: Context, user_id: str) -> Flow[int]:
    check_id(user_id, "user_id")
    recovery_tag_key(ctx)
    return count_unused((yield from checked(call(RecoveryCodeStore.recovery_codes, user_id))))


def verify_recovery_code_flow(
    ctx: Context, user_id: str, code: object
) -> Flow[RecoveryVerificationResult]:
    check_id(user_id, "user_id")
    tag_key = recovery_tag_key(ctx)
    now = ctx.now()
    failed = EventType.RECOVERY_CODE_FAILED
    after = yield from admit_flow(ctx, user_id, now, event_type=failed)
    if isinstance(after, VerificationResult):
        return _as_recovery(after)
    try:
        records = tuple((yield from call(RecoveryCodeStore.recovery_codes, user_id)))
    except Exception as exc:
        return recovery_broken(ctx, user_id, now, exc)
    if not records:
        refusal = fail(ctx, user_id, now, after, VerifyReason.NO_CREDENTIAL, event_type=failed)
        return _as_recovery(refusal)
    attempt = code if isinstance(code, str) else None  # anything else is malformed
    params = ctx.config.recovery.argon2
    try:
        decision = yield from cpu(decide_recovery, attempt, user_id, records, tag_key, params)
    except Exception as exc:  # e.g. a stored hash that is not a valid PHC string
        return recovery_broken(ctx, user_id, now, exc)
    check = decision.check
    if not check.ok or check.record_id is None:
        return recovery_failed(ctx, user_id, now, after, check.reason)
    try:
        left = yield from call(
            RecoveryCodeStore.consume_recovery_code, user_id, check.record_id, now
        )
    except Exception as exc:
        return recovery_broken(ctx, user_id, now, exc)
    if left is None:  # lost the race: another request consumed it first
        used = RecoveryReason.ALREADY_USED
        return recovery_failed(ctx, user_id, now, after, used)
    rehashed = False
    if decision.new_phc is not None:
        try:
            rehashed = yield from call(
                RecoveryCodeStore.update_recovery_hash, user_id, check.record_id, decision.new_phc
            )
        except Exception:
            # The code was consumed and the user let in; the old hash stays (valid).
            _logger.warning("re-hashed recovery code not stored", exc_info=True)
    try:  # the attempt was counted when admitted: a success resets the count
        yield from call(FailureCounter.reset, user_id)
    except Exception:
        # The code is consumed: refusing now would burn it without letting the user in.
        # The second factor was proven; the stale count only delays later tries.
        _logger.warning("failure count not reset after a recovery code", exc_info=True)
    return recovery_succeeded(ctx, user_id, now, left, check.rehash_due, rehashed)


def recovery_succeeded(
    ctx: Context, user_id: str, now: float, left: int, rehash_due: bool, rehashed: bool
) -> RecoveryVerificationResult:
    settings = ctx.config.recovery
    low = settings.running_low(left)
    ctx.emit(
        Event(
            type=EventType.RECOVERY_CODE_USED,
            user_id=user_id,
            at=now,
            reason=RecoveryReason.OK.value,
            data={"codes_left": left, "rehash_due": rehash_due, "rehashed": rehashed},
        )
    )
    if low:
        ctx.emit(
            Event(
                type=EventType.RECOVERY_CODES_LOW,
                user_id=user_id,
                at=now,
                data={"codes_left": left, "threshold": settings.low_threshold},
            )
        )
    return RecoveryVerificationResult(
        accepted=True,
        reason=VerifyReason.OK,
        recovery_reason=RecoveryReason.OK,
        codes_left=left,
        running_low=low,
        regenerate_recommended=rehash_due or low,
        factor="recovery_code",
    )


def recovery_broken(
    ctx: Context, user_id: str, now: float, exc: BaseException
) -> RecoveryVerificationResult:
    result = broken(
        ctx, user_id, now, VerifyReason.STORE_ERROR, exc, event_type=EventType.RECOVERY_CODE_FAILED
    )
    return _as_recovery(result)


def recovery_failed(
    ctx: Context, user_id: str, now: float, after: FailureState, reason: RecoveryReason
) -> RecoveryVerificationResult:
    result = fail(
        ctx,
        user_id,
        now,
        after,
        _REASONS[reason],
        event_type=EventType.RECOVERY_CODE_FAILED,
        detail=reason.value,
    )
    return _as_recovery(result, reason)


def _as_recovery(
    result: VerificationResult, reason: RecoveryReason | None = None
) -> RecoveryVerificationResult:
    return RecoveryVerificationResult(
        accepted=result.accepted,
        reason=result.reason,
        credential_id=result.credential_id,
        retry_after=result.retry_after,
        recovery_reason=reason,
    )
