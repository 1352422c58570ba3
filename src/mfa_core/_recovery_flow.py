"""The recovery-code flows of the service front ends.

* ``generate_recovery_codes`` makes a new set (or one recovery key),
  stores only its records (keyed lookup tag + Argon2id PHC hash) with ONE atomic
  replacement of the user's whole set, and returns the plain codes to show once.
* ``verify_recovery_code`` checks one attempt. Order of work:

  1. throttle check on the user's failure state (the same counter as OTP attempts):
     throttled or locked -> refused, no hash computed, not counted;
  2. the user's records; none -> ``no_credential`` (not counted);
  3. :func:`decide_recovery`, the only CPU-heavy step: normalise, keyed
     lookup tag, at most ONE Argon2id verification (a wrong guess almost never reaches
     it), and the re-hash of the matched code when its parameters are outdated;
  4. success: ONE atomic ``consume_recovery_code`` (a lost race is a replay), the new hash
     stored, the failure count reset, RECOVERY_CODE_USED (and RECOVERY_CODES_LOW) emitted;
     every refusal is counted and emits RECOVERY_CODE_FAILED.

Store failures refuse the attempt (fail closed). Steps 3 and the hashing of a new set are
:class:`~mfa_core._effects.Cpu` effects: the async front end runs them off the event loop.
"""

from __future__ import annotations

import logging
from typing import Final

import attrs

from ._effects import Failures, Flow, Port, RecoveryCodes, cpu
from ._fallback_base import FallbackBase, RecoveryVerificationResult
from ._service_base import VerificationResult, VerifyReason, check_id, checked
from .errors import InvalidParameter
from .models import Event, EventType, FailureState
from .recovery import (
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

__all__ = ["RecoveryFlows"]

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


class RecoveryFlows(FallbackBase):
    """Recovery codes as flows: generate a set, check and consume one code, count them."""

    __slots__ = ()

    def _recovery_tag_key(self) -> bytes:
        if Port.RECOVERY_CODES not in self._ports or self._tag_key is None:
            raise InvalidParameter(
                "recovery codes are not configured: pass recovery_codes= and secret="
            )
        return self._tag_key

    def _generate_recovery_codes_flow(
        self, user_id: str, *, config: RecoveryConfig | None = None
    ) -> Flow[RecoveryCodeSet]:
        check_id(user_id, "user_id")
        tag_key = self._recovery_tag_key()
        settings = self._fallback.recovery if config is None else config
        if not isinstance(settings, RecoveryConfig):
            raise InvalidParameter("config must be a RecoveryConfig")
        now = self._now()
        generated = yield from cpu(generate_recovery_codes, user_id, tag_key, settings)
        yield from checked(RecoveryCodes.replace_recovery_codes(user_id, generated.records))
        self._emit(
            Event(
                type=EventType.RECOVERY_CODES_GENERATED,
                user_id=user_id,
                at=now,
                data={"count": len(generated.records), "mode": settings.mode.value},
            )
        )
        return generated

    def _recovery_codes_left_flow(self, user_id: str) -> Flow[int]:
        check_id(user_id, "user_id")
        self._recovery_tag_key()
        return count_unused((yield from checked(RecoveryCodes.recovery_codes(user_id))))

    def _verify_recovery_code_flow(
        self, user_id: str, code: object
    ) -> Flow[RecoveryVerificationResult]:
        check_id(user_id, "user_id")
        tag_key = self._recovery_tag_key()
        now = self._now()
        failed = EventType.RECOVERY_CODE_FAILED
        gate = yield from self._gate_flow(user_id, now, event_type=failed)
        if isinstance(gate, VerificationResult):
            return _as_recovery(gate)
        before = gate
        try:
            records = tuple((yield from RecoveryCodes.recovery_codes(user_id)))
        except Exception as exc:
            return self._recovery_broken(user_id, now, exc)
        if not records:
            refusal = self._refuse(user_id, now, VerifyReason.NO_CREDENTIAL, event_type=failed)
            return _as_recovery(refusal)
        attempt = code if isinstance(code, str) else None  # anything else is malformed
        params = self._fallback.recovery.argon2
        try:
            decision = yield from cpu(decide_recovery, attempt, user_id, records, tag_key, params)
        except Exception as exc:  # e.g. a stored hash that is not a valid PHC string
            return self._recovery_broken(user_id, now, exc)
        check = decision.check
        if not check.ok or check.record_id is None:
            return (yield from self._recovery_failed_flow(user_id, now, before, check.reason))
        try:
            left = yield from RecoveryCodes.consume_recovery_code(user_id, check.record_id, now)
        except Exception as exc:
            return self._recovery_broken(user_id, now, exc)
        if left is None:  # lost the race: another request consumed it first
            used = RecoveryReason.ALREADY_USED
            return (yield from self._recovery_failed_flow(user_id, now, before, used))
        rehashed = False
        if decision.new_phc is not None:
            try:
                rehashed = yield from RecoveryCodes.update_recovery_hash(
                    user_id, check.record_id, decision.new_phc
                )
            except Exception:
                # The code was consumed and the user let in; the old hash stays (valid).
                _logger.warning("re-hashed recovery code not stored", exc_info=True)
        if before.count:
            try:
                yield from Failures.reset(user_id)
            except Exception:
                # The code is consumed: refusing now would burn it without letting the user
                # in. The second factor was proven; the stale count only delays later tries.
                _logger.warning("failure count not reset after a recovery code", exc_info=True)
        return self._recovery_succeeded(user_id, now, left, check.rehash_due, rehashed)

    def _recovery_succeeded(
        self, user_id: str, now: float, left: int, rehash_due: bool, rehashed: bool
    ) -> RecoveryVerificationResult:
        settings = self._fallback.recovery
        low = settings.running_low(left)
        self._emit(
            Event(
                type=EventType.RECOVERY_CODE_USED,
                user_id=user_id,
                at=now,
                reason=RecoveryReason.OK.value,
                data={"codes_left": left, "rehash_due": rehash_due, "rehashed": rehashed},
            )
        )
        if low:
            self._emit(
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
        )

    def _recovery_broken(
        self, user_id: str, now: float, exc: BaseException
    ) -> RecoveryVerificationResult:
        result = self._broken(
            user_id, now, VerifyReason.STORE_ERROR, exc, event_type=EventType.RECOVERY_CODE_FAILED
        )
        return _as_recovery(result)

    def _recovery_failed_flow(
        self, user_id: str, now: float, before: FailureState, reason: RecoveryReason
    ) -> Flow[RecoveryVerificationResult]:
        result = yield from self._fail_flow(
            user_id,
            now,
            before,
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
