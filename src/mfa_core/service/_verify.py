"""The verification flows: verify, HOTP resync, throttle status.

Order of work for every attempt (the cheap refusals come first, and never touch a key):

1. ONE store operation admits and counts the attempt, and reads the user's credentials
   (:func:`~mfa_core.service._context.begin_flow`): a delayed or locked user is refused
   there, with no unseal and no HMAC; otherwise the count has risen BEFORE the code is
   looked at, so concurrent guesses cannot all pass a gate that is read first;
2. the user's usable credentials (effective state, superseded ones left out); none ->
   ``no_credential`` (or ``expired`` under strict expiry);
3. code normalisation: malformed -> refused, no HMAC;
4. for each usable credential: unseal, compute every value of its window;
5. ONE atomic claim of the fresh match, fused with the reset of the failure count; a lost
   claim or a match at or below the last accepted value is a replay.

A refusal after step 1 needs no further write: the attempt was counted when admitted. So
a failed verify is one round trip to the store, a successful one two. Any store or sealer
exception refuses the attempt (fail closed) and is logged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from ..errors import IllegalTransition, InvalidParameter
from ..lifecycle import effective_state, renewal_due
from ..models import Credential, CredentialKind, CredentialState, EventType
from ..otp import HOTPState, normalize_code, time_step
from ..ports import CredentialStore, FailureCounter
from ..throttle import ThrottleDecision
from ..throttle import check as throttle_check
from ._context import (
    OTP_KINDS,
    Context,
    Match,
    admit_flow,
    begin_flow,
    broken,
    check_id,
    checked,
    fail,
    find,
    refuse,
    scan,
    succeed_flow,
    superseded,
    usable,
    usable_states,
)
from ._effects import Flow, call, cpu
from ._windows import find_consecutive, find_skew, totp_window
from .results import VerificationResult, VerifyReason

__all__ = [
    "clock_skew",
    "resync_hotp_flow",
    "throttle_status_flow",
    "verify_at_flow",
    "verify_flow",
]

_EXPIRED: Final = CredentialState.EXPIRED
_SUCCEEDED: Final = EventType.VERIFICATION_SUCCEEDED
_TOTP: Final[CredentialKind] = CredentialKind.TOTP  # typed wide: no narrowing
_HOTP: Final[CredentialKind] = CredentialKind.HOTP


def verify_flow(
    ctx: Context, user_id: str, code: object, *, diagnose_skew: bool = False
) -> Flow[VerificationResult]:
    """``verify``. Not a generator itself: it hands back the flow (one generator layer less
    on the hot path), and ``check_id`` raises when the front end builds the flow."""
    check_id(user_id, "user_id")
    if type(diagnose_skew) is not bool:
        raise InvalidParameter("diagnose_skew must be a bool")
    return verify_at_flow(ctx, user_id, code, ctx.now(), diagnose_skew=diagnose_skew)


def clock_skew(
    suspects: tuple[tuple[bytes, str, int, int, int, int, bytes], ...],
    now: float,
    search: float,
    budget: int,
) -> tuple[int, float] | None:
    """The clock-skew diagnosis of a refused TOTP code (pure, CPU-bound, picklable).

    ``suspects``: per usable TOTP credential ``(key, algorithm, digits, period, window
    first, window last, candidate)``. Steps outside each window are searched nearest
    first, up to ``search`` seconds on each side, with at most ``budget`` codes computed
    over all of them. Returns the authenticator's offset from the server's clock as
    ``(steps, seconds)`` for the nearest match, or ``None``.
    """
    best: tuple[int, float] | None = None
    left = budget
    for key, algorithm, digits, period, first, last, candidate in suspects:
        state = HOTPState(key, algorithm, digits)
        reach = int(search // period)
        step, computed = find_skew(state, candidate, first, last, reach, left)
        left -= computed
        if step is not None:
            offset = step - time_step(now, period=period)
            if best is None or abs(offset * period) < abs(best[1]):
                best = (offset, float(offset * period))
        if left <= 0:
            break
    return best


def verify_at_flow(
    ctx: Context,
    user_id: str,
    code: object,
    now: float,
    *,
    diagnose_skew: bool = False,
    kinds: frozenset[CredentialKind] | None = None,
) -> Flow[VerificationResult]:
    """Verify ``code`` for ``user_id`` at ``now`` (also the step-up check of ``disable``);
    ``kinds``: only credentials of these kinds count (default: TOTP and HOTP)."""
    begun = yield from begin_flow(ctx, user_id, now)
    if isinstance(begun, VerificationResult):
        return begun
    after, credentials = begun
    if kinds is not None:  # a step-up restricted by a policy: only its kinds count
        credentials = [c for c in credentials if c.kind in kinds]
    found_usable, expired = usable_states(ctx, credentials, now)
    for credential, _ in found_usable:  # identity checks: this is the hot path
        kind = credential.kind
        if kind is not _TOTP and kind is not _HOTP:
            # SMS/email factors hold a destination, not a key: their codes are out-of-band.
            found_usable = [(c, st) for c, st in found_usable if c.kind in OTP_KINDS]
            break
    if not found_usable:
        reason = VerifyReason.EXPIRED if expired else VerifyReason.NO_CREDENTIAL
        return fail(ctx, user_id, now, after, reason)
    candidates: dict[int, bytes | None] = {}
    well_formed = False
    for credential, _ in found_usable:
        digits = credential.digits
        if digits not in candidates:
            candidate = normalize_code(code, digits)
            candidates[digits] = candidate
            well_formed = well_formed or candidate is not None
    if not well_formed:
        return fail(ctx, user_id, now, after, VerifyReason.MALFORMED)

    found: Match | None = None
    stale: str | None = None
    suspects: list[tuple[bytes, str, int, int, int, int, bytes]] | None = (
        [] if diagnose_skew else None
    )
    unseal = ctx.sealer.unseal
    for credential, state in found_usable:
        candidate = candidates[credential.digits]
        if candidate is None:
            continue
        try:
            key = unseal(credential.sealed_key, credential_id=credential.id)
        except Exception as exc:
            return broken(ctx, user_id, now, VerifyReason.SEALING_ERROR, exc, credential.id)
        due = state == _EXPIRED
        match, replayed = scan(ctx, credential, key, candidate, now, learned=True, due=due)
        if match is not None and found is None:
            found = match
        if replayed and stale is None:
            stale = credential.id
        if suspects is not None and credential.kind is _TOTP:
            suspects.append(_suspect(ctx, credential, key, candidate, now))
    if found is None:
        reason = VerifyReason.REPLAYED if stale is not None else VerifyReason.INVALID_CODE
        skew = None
        if suspects and reason == VerifyReason.INVALID_CODE:
            config = ctx.config
            skew = yield from cpu(
                clock_skew,
                tuple(suspects),
                now,
                config.skew_search,
                config.skew_max_hmacs,
            )
        return fail(ctx, user_id, now, after, reason, stale, skew=skew)
    return (yield from succeed_flow(ctx, user_id, now, after, found, _SUCCEEDED))


def resync_hotp_flow(
    ctx: Context, user_id: str, credential_id: str, first_code: object, second_code: object
) -> Flow[VerificationResult]:
    """``resync_hotp``: two consecutive codes in the resync window (RFC 4226 §7.4)."""
    check_id(user_id, "user_id")
    check_id(credential_id, "credential_id")
    now = ctx.now()
    # The credential is looked up and checked before the attempt is admitted: a call for
    # an unknown or unusable credential raises (or is refused) without being counted.
    try:
        credentials = yield from call(CredentialStore.list_for_user, user_id)
    except Exception as exc:
        return broken(ctx, user_id, now, VerifyReason.STORE_ERROR, exc)
    credential = find(credentials, credential_id)
    if credential.kind != CredentialKind.HOTP:
        raise InvalidParameter("only HOTP credentials can be resynchronised")
    refusal = _check_usable(ctx, credentials, credential, now)
    if refusal is not None:
        return refusal
    after = yield from admit_flow(ctx, user_id, now)
    if isinstance(after, VerificationResult):
        return after
    first = normalize_code(first_code, credential.digits)
    second = normalize_code(second_code, credential.digits)
    if first is None or second is None:
        return fail(ctx, user_id, now, after, VerifyReason.MALFORMED, credential.id)
    try:
        key = ctx.sealer.unseal(credential.sealed_key, credential_id=credential.id)
    except Exception as exc:
        return broken(ctx, user_id, now, VerifyReason.SEALING_ERROR, exc, credential.id)
    state = HOTPState(key, credential.algorithm, credential.digits)
    expected = credential.last_accepted + 1
    last = expected + ctx.config.hotp_resync_window - 1
    found = find_consecutive(state, first, second, expected, last)
    if found is None:
        return fail(ctx, user_id, now, after, VerifyReason.INVALID_CODE, credential.id)
    due = renewal_due(credential, now, ctx.config.lifecycle)
    match = Match(credential, found, found - expected, None, due)
    return (yield from succeed_flow(ctx, user_id, now, after, match, EventType.HOTP_RESYNCED))


def _check_usable(
    ctx: Context,
    credentials: Sequence[Credential],
    credential: Credential,
    now: float,
) -> VerificationResult | None:
    found, _ = usable(ctx, credentials, now)
    if any(c.id == credential.id for c in found):
        return None
    state = effective_state(credential, now, ctx.config.lifecycle)
    if state == CredentialState.EXPIRED and credential.id not in superseded(credentials):
        return refuse(
            ctx, credential.user_id, now, VerifyReason.EXPIRED, credential_id=credential.id
        )
    raise IllegalTransition(f"a credential in state {state.value} cannot authenticate")


def throttle_status_flow(ctx: Context, user_id: str) -> Flow[ThrottleDecision]:
    """``throttle_status``: whether an attempt may go ahead now (counts nothing)."""
    check_id(user_id, "user_id")
    now = ctx.now()
    state = yield from checked(call(FailureCounter.get_failures, user_id))
    return throttle_check(state, now, ctx.config.throttle)


def _suspect(
    ctx: Context, credential: Credential, key: bytes, candidate: bytes, now: float
) -> tuple[bytes, str, int, int, int, int, bytes]:
    """What the skew diagnosis needs of one TOTP credential: key, HMAC, digits, period,
    and the window that was searched."""
    config = ctx.config
    _, first, last = totp_window(
        time_step(now, period=credential.period),
        credential.drift,
        look_behind=config.look_behind,
        look_ahead=config.look_ahead,
        max_drift=config.max_drift,
    )
    algorithm = credential.algorithm.value
    return (key, algorithm, credential.digits, credential.period, first, last, candidate)
