"""The out-of-band (email / SMS) code flows of the service front ends.

* ``send_oob_code`` issues a numeric code for one purpose bound to a new
  challenge id, stores only its keyed hash, and hands the code to the host's
  :class:`~mfa_core.ports.CodeSender`. Email login codes are refused to a user with a
  usable authenticator unless ``allow_email_login_with_totp`` is set.
* Both count every code they are about to send (after the lock check and the email rule,
  before anything is stored): ONE atomic ``count_send`` per limit on the challenge store,
  under the user's key and under a keyed hash of the destination, in the fixed window of
  ``OOBConfig.send_window`` seconds. Over ``max_sends_per_user`` or
  ``max_sends_per_destination``, nothing is stored or sent and
  :class:`~mfa_core.errors.SendLimitExceeded` is raised (``retry_after``: the window's
  end), with an ``OOB_SEND_LIMITED`` event. A send that then fails to deliver still counts.
* ``resend_oob_code`` issues a new code for the same challenge after a
  cooldown that grows by 30 s per resend; ONE compare-and-set on the record's generation
  replaces the old code (dead at once), so of concurrent resends exactly one sends.
* ``verify_oob_code`` checks an attempt: throttle check first (the per-user
  counter shared with OTP and recovery codes), then the pure decision
  (:func:`mfa_core.oob.check`: challenge, purpose, used, expiry, per-code attempt limit,
  format, constant-time hash comparison), then ONE compare-and-set on the record's
  ``(generation, attempts, used)``; a lost compare-and-set re-reads and decides again, so
  a code is accepted at most once and wrong attempts are counted exactly. Every refusal
  feeds the per-user counter; a resend never resets it.

Store failures refuse an attempt (fail closed); sending and resending raise typed errors.
"""

from __future__ import annotations

import logging
import re
from typing import Final

from ..errors import (
    ErrorCode,
    InvalidParameter,
    OutOfBandError,
    SendLimitExceeded,
    StoreError,
    Throttled,
)
from ..models import Event, EventType, FailureState
from ..oob import (
    IssuedCode,
    OOBChannel,
    OOBPurpose,
    OOBReason,
    OOBRecord,
    check,
    destination_matches,
    destination_send_key,
    issue,
    mask_destination,
    parse_purpose,
    resend,
    send_window_for,
    user_send_key,
)
from ..ports import CodeSender, CredentialStore, FailureCounter, OOBChallengeStore
from ..throttle import check as throttle_check
from ._context import (
    OTP_KINDS,
    Context,
    admit_flow,
    broken,
    check_id,
    checked,
    count_failure_flow,
    fail,
    gate_flow,
    usable,
)
from ._effects import Flow, call
from ._history import History, note_flow
from .results import OOBVerificationResult, VerificationResult, VerifyReason

__all__ = [
    "REASONS",
    "oob_code_key",
    "resend_oob_code_flow",
    "send_oob_code_flow",
    "verify_oob_code_flow",
]

_logger = logging.getLogger("mfa_core.service")

# Enough for every compare-and-set a challenge can see: each one that wins changes the
# record, and a record takes at most max_attempts + 1 changes per generation.
_CAS_ATTEMPTS: Final = 64
_CHALLENGE_RE: Final = re.compile(r"[A-Za-z0-9_.:-]{1,128}", re.ASCII)

_RESETS_FAILURES: Final = frozenset({OOBPurpose.LOGIN, OOBPurpose.STEP_UP, OOBPurpose.RESET})

REASONS: Final = {
    OOBReason.EXPIRED: VerifyReason.EXPIRED,
    OOBReason.USED: VerifyReason.REPLAYED,
    OOBReason.WRONG_PURPOSE: VerifyReason.INVALID_CODE,
    OOBReason.WRONG_CHALLENGE: VerifyReason.INVALID_CODE,
    OOBReason.WRONG_CODE: VerifyReason.INVALID_CODE,
    OOBReason.TOO_MANY_ATTEMPTS: VerifyReason.INVALID_CODE,
    OOBReason.MALFORMED: VerifyReason.MALFORMED,
    OOBReason.CHANNEL_NOT_ALLOWED: VerifyReason.INVALID_CODE,
    OOBReason.WRONG_DESTINATION: VerifyReason.INVALID_CODE,
}


def _parse_channel(channel: object) -> OOBChannel:
    if isinstance(channel, OOBChannel):
        return channel
    if type(channel) is str:
        for member in OOBChannel:
            if member.value == channel:
                return member
    raise InvalidParameter("channel must be one of " + ", ".join(c.value for c in OOBChannel))


def oob_code_key(ctx: Context) -> bytes:
    if not ctx.has_oob or ctx.oob_key is None:
        raise InvalidParameter(
            "out-of-band codes are not configured: pass oob=, sender= and secret="
        )
    return ctx.oob_key


def count_sends_flow(
    ctx: Context,
    user_id: str,
    channel: OOBChannel,
    purpose: OOBPurpose,
    destination: str,
    now: float,
    *,
    resend: bool,
) -> Flow[None]:
    """Count one send for the user, then one for the destination (each ONE atomic
    ``count_send``); raise SendLimitExceeded at the first count over its limit (the
    destination is then not counted). A failing store raises StoreError."""
    config = ctx.config.oob
    key = ctx.send_key
    if key is None:  # pragma: no cover - _oob_code_key() checked the configuration
        raise InvalidParameter("out-of-band codes are not configured")
    limits: list[tuple[str, int, str]] = []
    if config.max_sends_per_user is not None:
        limits.append(("user", config.max_sends_per_user, user_send_key(key, user_id)))
    if config.max_sends_per_destination is not None:
        counter = destination_send_key(key, channel, destination)
        limits.append(("destination", config.max_sends_per_destination, counter))
    if not limits:
        return
    window_start, expires_at = send_window_for(now, config)
    for which, limit, counter in limits:
        count = yield from checked(
            call(OOBChallengeStore.count_send, counter, window_start, expires_at)
        )
        if type(count) is not int:  # never compared as a limit
            raise StoreError("the challenge store returned a send count that is not an integer")
        if count > limit:
            retry_after = expires_at - now
            ctx.emit(
                Event(
                    type=EventType.OOB_SEND_LIMITED,
                    user_id=user_id,
                    at=now,
                    reason=which,
                    data={
                        "limit": which,
                        "max_sends": limit,
                        "channel": channel.value,
                        "purpose": purpose.value,
                        "resend": resend,
                        "window_ends_at": expires_at,
                    },
                )
            )
            raise SendLimitExceeded(
                f"too many codes were sent to this {which}; try again later",
                retry_after=retry_after,
            )


def refuse_locked_flow(ctx: Context, user_id: str, now: float) -> Flow[None]:
    state = yield from checked(call(FailureCounter.get_failures, user_id))
    decision = throttle_check(state, now, ctx.config.throttle)
    if decision.locked:
        raise Throttled(
            "too many failed attempts; try again later",
            retry_after=decision.retry_after,
            code=ErrorCode.LOCKED,
        )


def send_oob_code_flow(
    ctx: Context,
    user_id: str,
    *,
    channel: OOBChannel | str,
    destination: str,
    purpose: OOBPurpose | str,
    challenge_id: str | None = None,
) -> Flow[str]:
    check_id(user_id, "user_id")
    via = _parse_channel(channel)
    kind = parse_purpose(purpose)
    key = oob_code_key(ctx)
    now = ctx.now()
    if _email_login_refused(ctx, kind, via) and (yield from has_usable_otp_flow(ctx, user_id, now)):
        raise _channel_not_allowed()
    yield from refuse_locked_flow(ctx, user_id, now)
    mask_destination(via, destination)  # a bad destination is refused before counting
    yield from count_sends_flow(ctx, user_id, via, kind, destination, now, resend=False)
    issued = issue(
        user_id=user_id,
        purpose=kind,
        channel=via,
        destination=destination,
        now=now,
        key=key,
        config=ctx.config.oob,
        destination_key=destination_key(ctx),
        challenge_id=challenge_id,
    )
    record = issued.record
    yield from checked(call(OOBChallengeStore.put_challenge, record))
    try:
        yield from _deliver_flow(issued, destination)
    except OutOfBandError:
        try:
            yield from call(OOBChallengeStore.delete_challenge, record.challenge_id)
        except Exception:
            _logger.warning("undelivered challenge not removed", exc_info=True)
        raise
    emit_sent(ctx, record, now)
    return record.challenge_id


def _email_login_refused(ctx: Context, purpose: OOBPurpose, channel: OOBChannel) -> bool:
    """Whether the channel rule may refuse this purpose and channel (an email login code
    while ``allow_email_login_with_totp`` is off): then the user's authenticators decide."""
    return (
        purpose is OOBPurpose.LOGIN
        and channel is OOBChannel.EMAIL
        and not ctx.config.allow_email_login_with_totp
    )


def _channel_not_allowed() -> OutOfBandError:
    return OutOfBandError(
        "email login codes are not offered once an authenticator is enabled",
        code=ErrorCode.OOB_CHANNEL_NOT_ALLOWED,
    )


def resend_oob_code_flow(
    ctx: Context, user_id: str, challenge_id: str, destination: str
) -> Flow[str]:
    check_id(user_id, "user_id")
    key = oob_code_key(ctx)
    if type(challenge_id) is not str or _CHALLENGE_RE.fullmatch(challenge_id) is None:
        raise _not_found()
    now = ctx.now()
    yield from refuse_locked_flow(ctx, user_id, now)
    counted = False
    for _ in range(_CAS_ATTEMPTS):
        record = yield from checked(call(OOBChallengeStore.get_challenge, challenge_id))
        if record is None or record.user_id != user_id:
            raise _not_found()
        if not destination_matches(record, destination, key=destination_key(ctx)):
            # Compared as keyed hashes in constant time, never as masked hints (which
            # another address or number can share). Counted as a failed attempt, so the
            # bound number cannot be found by trying candidates.
            yield from count_failure_flow(
                ctx,
                user_id,
                now,
                VerifyReason.INVALID_CODE,
                event_type=EventType.OOB_CODE_FAILED,
                detail=OOBReason.WRONG_DESTINATION.value,
            )
            raise OutOfBandError(
                "the destination does not match the challenge",
                code=ErrorCode.OOB_DESTINATION_MISMATCH,
            )
        # The channel rule holds on a resend too: a challenge started before the user
        # enabled an authenticator gets no new email login code (nor a new lifetime).
        if _email_login_refused(ctx, record.purpose, record.channel) and (
            yield from has_usable_otp_flow(ctx, user_id, now)
        ):
            raise _channel_not_allowed()
        issued = resend(record, now=now, key=key, config=ctx.config.oob)
        if not counted:
            # Once per call, after the cooldown check and before the compare-and-set.
            yield from count_sends_flow(
                ctx, user_id, record.channel, record.purpose, destination, now, resend=True
            )
            counted = True
        generation = record.generation
        replace = call(
            OOBChallengeStore.replace_challenge, issued.record, expected_generation=generation
        )
        if (yield from checked(replace)):
            break
    else:
        raise StoreError("the challenge kept changing concurrently; no code was sent")
    try:
        yield from _deliver_flow(issued, destination)
    except OutOfBandError:
        try:
            new_generation = issued.record.generation
            yield from call(
                OOBChallengeStore.replace_challenge, record, expected_generation=new_generation
            )
        except Exception:
            _logger.warning("previous out-of-band code not restored", exc_info=True)
        raise
    emit_sent(ctx, issued.record, now)
    return challenge_id


def verify_oob_code_flow(
    ctx: Context,
    user_id: str,
    challenge_id: str,
    code: object,
    purpose: OOBPurpose | str,
    destination: str | None = None,
    channels: frozenset[OOBChannel] | None = None,
) -> Flow[OOBVerificationResult]:
    check_id(user_id, "user_id")
    kind = parse_purpose(purpose)
    key = oob_code_key(ctx)
    if destination is not None and type(destination) is not str:
        raise InvalidParameter("destination must be a string or None")
    now = ctx.now()
    failed = EventType.OOB_CODE_FAILED
    after: FailureState | None = None
    if kind in _RESETS_FAILURES:
        # A code that proves the user's identity: admitted and counted before it is read.
        admitted = yield from admit_flow(ctx, user_id, now, event_type=failed)
        if isinstance(admitted, VerificationResult):
            return _as_oob(admitted, None, None)
        after = admitted
    else:
        # A phone confirmation proves control of a number, not the user's identity (a
        # confirmation, like an enrolment's): checked without counting, a wrong code is
        # limited by the code's own attempts, and a success must not clear failures
        # piled up against the account.
        refusal = yield from gate_flow(ctx, user_id, now, event_type=failed)
        if refusal is not None:
            return _as_oob(refusal, None, None)
    if type(challenge_id) is not str or _CHALLENGE_RE.fullmatch(challenge_id) is None:
        wrong = OOBReason.WRONG_CHALLENGE
        return oob_failed(ctx, user_id, now, after, wrong, None)
    for _ in range(_CAS_ATTEMPTS):
        try:
            record = yield from call(OOBChallengeStore.get_challenge, challenge_id)
        except Exception as exc:
            return oob_broken(ctx, user_id, now, exc, challenge_id)
        if record is None or record.user_id != user_id:
            wrong = OOBReason.WRONG_CHALLENGE
            return oob_failed(ctx, user_id, now, after, wrong, challenge_id)
        if channels is not None and record.channel not in channels:
            # a step-up whose policy does not count this channel's codes for the action
            banned = OOBReason.CHANNEL_NOT_ALLOWED
            return oob_failed(ctx, user_id, now, after, banned, challenge_id)
        if _email_login_refused(ctx, record.purpose, record.channel):
            # The channel rule holds on a verify too: an email login code stops working
            # once the user has an authenticator, whenever the challenge was started.
            try:
                refused = yield from has_usable_otp_flow(ctx, user_id, now)
            except Exception as exc:
                return oob_broken(ctx, user_id, now, exc, challenge_id)
            if refused:
                banned = OOBReason.CHANNEL_NOT_ALLOWED
                return oob_failed(ctx, user_id, now, after, banned, challenge_id)
        if destination is not None and not _bound_to(ctx, record, destination):
            wrong = OOBReason.WRONG_DESTINATION
            return oob_failed(ctx, user_id, now, after, wrong, challenge_id)
        decided = check(record, code, purpose=kind, challenge_id=challenge_id, now=now, key=key)
        if decided.changed:
            try:
                written = yield from call(
                    OOBChallengeStore.update_challenge, decided.record, expected=record
                )
            except Exception as exc:
                return oob_broken(ctx, user_id, now, exc, challenge_id)
            if not written:
                continue  # changed concurrently: read again and decide again
        if not decided.ok:
            reason = decided.reason
            return oob_failed(ctx, user_id, now, after, reason, challenge_id)
        return (yield from oob_succeeded_flow(ctx, user_id, now, after, record, challenge_id))
    return oob_broken(
        ctx, user_id, now, StoreError("the challenge kept changing concurrently"), challenge_id
    )


# -- helpers -------------------------------------------------------------------------


def emit_sent(ctx: Context, record: OOBRecord, now: float) -> None:
    ctx.emit(
        Event(
            type=EventType.OOB_CODE_SENT,
            user_id=record.user_id,
            at=now,
            data={
                "challenge_id": record.challenge_id,
                "channel": record.channel.value,
                "purpose": record.purpose.value,
                "destination": record.destination_hint,
                "expires_at": record.expires_at,
                "resend_count": record.resend_count,
            },
        )
    )


def oob_broken(
    ctx: Context, user_id: str, now: float, exc: BaseException, challenge_id: str | None
) -> OOBVerificationResult:
    result = broken(
        ctx, user_id, now, VerifyReason.STORE_ERROR, exc, event_type=EventType.OOB_CODE_FAILED
    )
    return _as_oob(result, None, challenge_id)


def oob_failed(
    ctx: Context,
    user_id: str,
    now: float,
    after: FailureState | None,
    reason: OOBReason,
    challenge_id: str | None,
) -> OOBVerificationResult:
    failed = EventType.OOB_CODE_FAILED
    verify_reason = REASONS[reason]
    if after is None:
        # A phone confirmation: limited by its code's own attempts, never by (or on) the
        # user's lockout, so mistyping it cannot lock the login.
        ctx.emit(
            Event(
                type=failed,
                user_id=user_id,
                at=now,
                reason=verify_reason.value,
                data={"detail": reason.value, "counted": False},
            )
        )
        result = VerificationResult(accepted=False, reason=verify_reason)
    else:
        result = fail(
            ctx, user_id, now, after, verify_reason, event_type=failed, detail=reason.value
        )
    return _as_oob(result, reason, challenge_id)


def oob_succeeded_flow(
    ctx: Context,
    user_id: str,
    now: float,
    after: FailureState | None,
    record: OOBRecord,
    challenge_id: str,
) -> Flow[OOBVerificationResult]:
    # Only an admitted (counted) attempt resets: a phone confirmation never does.
    if after is not None and record.purpose in _RESETS_FAILURES:
        try:
            yield from call(FailureCounter.reset, user_id)
        except Exception:
            # The code is used up; refusing now would not give it back.
            _logger.warning("failure count not reset after an out-of-band code", exc_info=True)
    if record.purpose in _RESETS_FAILURES:  # a check of the user's SMS/email factor
        factor = f"{record.channel.value}_code"
        yield from note_flow(ctx, user_id, now, History(checks={factor: now}))
    ctx.emit(
        Event(
            type=EventType.OOB_CODE_VERIFIED,
            user_id=user_id,
            at=now,
            reason=OOBReason.OK.value,
            data={
                "challenge_id": challenge_id,
                "channel": record.channel.value,
                "purpose": record.purpose.value,
            },
        )
    )
    return OOBVerificationResult(
        accepted=True,
        reason=VerifyReason.OK,
        oob_reason=OOBReason.OK,
        challenge_id=challenge_id,
        factor=f"{record.channel.value}_code",
    )


def _deliver_flow(issued: IssuedCode, destination: str) -> Flow[None]:
    record = issued.record
    failed: str | None = None
    try:
        yield from call(
            CodeSender.send,
            channel=record.channel,
            destination=destination,
            code=issued.code,
            purpose=record.purpose,
            challenge_id=record.challenge_id,
            expires_at=record.expires_at,
        )
    except Exception as exc:
        failed = type(exc).__name__
        del exc
    if failed is not None:
        # Raised outside the except block, so the sender's exception (whose text may
        # quote the code or the number) is neither its __cause__ nor its __context__.
        _logger.warning("code sender failed (%s)", failed)
        raise OutOfBandError("the code could not be delivered", code=ErrorCode.OOB_DELIVERY_FAILED)


def destination_key(ctx: Context) -> bytes:
    if ctx.destination_key is None:  # pragma: no cover - oob_code_key() checked the secret
        raise InvalidParameter("out-of-band codes are not configured")
    return ctx.destination_key


def _bound_to(ctx: Context, record: OOBRecord, destination: str) -> bool:
    """Whether ``destination`` is the one ``record`` was issued for (an address that is
    not one of the record's channel is not)."""
    try:
        return destination_matches(record, destination, key=destination_key(ctx))
    except InvalidParameter:
        return False


def _not_found() -> OutOfBandError:
    return OutOfBandError("no such challenge", code=ErrorCode.OOB_CHALLENGE_NOT_FOUND)


def _as_oob(
    result: VerificationResult, reason: OOBReason | None, challenge_id: str | None
) -> OOBVerificationResult:
    return OOBVerificationResult(
        accepted=result.accepted,
        reason=result.reason,
        credential_id=result.credential_id,
        retry_after=result.retry_after,
        oob_reason=reason,
        challenge_id=challenge_id,
    )


def has_usable_otp_flow(ctx: Context, user_id: str, now: float) -> Flow[bool]:
    """Whether the user has a TOTP/HOTP credential that can authenticate now."""
    credentials = yield from checked(call(CredentialStore.list_for_user, user_id))
    found, _ = usable(ctx, credentials, now)
    return any(c.kind in OTP_KINDS for c in found)
