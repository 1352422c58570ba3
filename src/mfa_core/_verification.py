"""The verification flows of the service front ends: verify, HOTP resync.

Order of work for every attempt (the cheap refusals come first, and never touch a key):

1. throttle check on the user's failure state: throttled or locked -> refused, no unseal,
   no HMAC, not counted;
2. the user's usable credentials (effective state, superseded ones left out); none ->
   ``no_credential`` (or ``expired`` under strict expiry), not counted;
3. code normalisation: malformed -> a counted failure, no HMAC;
4. for each usable credential: unseal, compute every value of its window;
5. ONE atomic ``claim`` of the fresh match; a lost claim or a match at or below the last
   accepted value is a replay (a counted failure); success resets the failure count.

Any store or sealer exception refuses the attempt (fail closed) and is logged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from ._effects import Credentials, Failures, Flow
from ._service_base import (
    Match,
    ServiceCore,
    VerificationResult,
    VerifyReason,
    check_id,
    checked,
    find,
)
from ._windows import find_consecutive
from .errors import IllegalTransition, InvalidParameter
from .lifecycle import effective_state, renewal_due
from .models import Credential, CredentialKind, CredentialState, EventType
from .otp import HOTPState, normalize_code
from .throttle import ThrottleDecision
from .throttle import check as throttle_check

__all__ = ["VerificationFlows"]

_EXPIRED: Final = CredentialState.EXPIRED
_SUCCEEDED: Final = EventType.VERIFICATION_SUCCEEDED


class VerificationFlows(ServiceCore):
    """Second-factor checks as flows: verify, HOTP resync, throttle status."""

    __slots__ = ()

    def _verify_flow(self, user_id: str, code: object) -> Flow[VerificationResult]:
        # Not a generator itself: it hands back the flow, so the hot path has one
        # generator layer less. ``check_id`` raises when the front end builds the flow.
        check_id(user_id, "user_id")
        return self._verify_at_flow(user_id, code, self._now())

    def _verify_at_flow(self, user_id: str, code: object, now: float) -> Flow[VerificationResult]:
        gate = yield from self._gate_flow(user_id, now)
        if isinstance(gate, VerificationResult):
            return gate
        before = gate
        try:
            credentials = yield from Credentials.list_for_user(user_id)
        except Exception as exc:
            return self._broken(user_id, now, VerifyReason.STORE_ERROR, exc)
        usable, expired = self._usable_states(credentials, now)
        if not usable:
            reason = VerifyReason.EXPIRED if expired else VerifyReason.NO_CREDENTIAL
            return self._refuse(user_id, now, reason)
        candidates: dict[int, bytes | None] = {}
        well_formed = False
        for credential, _ in usable:
            digits = credential.digits
            if digits not in candidates:
                candidate = normalize_code(code, digits)
                candidates[digits] = candidate
                well_formed = well_formed or candidate is not None
        if not well_formed:
            return (yield from self._fail_flow(user_id, now, before, VerifyReason.MALFORMED))

        found: Match | None = None
        stale: str | None = None
        for credential, state in usable:
            candidate = candidates[credential.digits]
            if candidate is None:
                continue
            try:
                key = self._sealer.unseal(credential.sealed_key, credential_id=credential.id)
            except Exception as exc:
                return self._broken(user_id, now, VerifyReason.SEALING_ERROR, exc, credential.id)
            due = state == _EXPIRED
            match, replayed = self._scan(credential, key, candidate, now, learned=True, due=due)
            if match is not None and found is None:
                found = match
            if replayed and stale is None:
                stale = credential.id
        if found is None:
            reason = VerifyReason.REPLAYED if stale is not None else VerifyReason.INVALID_CODE
            return (yield from self._fail_flow(user_id, now, before, reason, stale))
        return (yield from self._succeed_flow(user_id, now, before, found, _SUCCEEDED))

    def _resync_hotp_flow(
        self, user_id: str, credential_id: str, first_code: object, second_code: object
    ) -> Flow[VerificationResult]:
        check_id(user_id, "user_id")
        check_id(credential_id, "credential_id")
        now = self._now()
        gate = yield from self._gate_flow(user_id, now)
        if isinstance(gate, VerificationResult):
            return gate
        before = gate
        try:
            credentials = yield from Credentials.list_for_user(user_id)
        except Exception as exc:
            return self._broken(user_id, now, VerifyReason.STORE_ERROR, exc)
        credential = find(credentials, credential_id)
        if credential.kind != CredentialKind.HOTP:
            raise InvalidParameter("only HOTP credentials can be resynchronised")
        refusal = self._check_usable(credentials, credential, now)
        if refusal is not None:
            return refusal
        first = normalize_code(first_code, credential.digits)
        second = normalize_code(second_code, credential.digits)
        if first is None or second is None:
            malformed = VerifyReason.MALFORMED
            return (yield from self._fail_flow(user_id, now, before, malformed, credential.id))
        try:
            key = self._sealer.unseal(credential.sealed_key, credential_id=credential.id)
        except Exception as exc:
            return self._broken(user_id, now, VerifyReason.SEALING_ERROR, exc, credential.id)
        state = HOTPState(key, credential.algorithm, credential.digits)
        expected = credential.last_accepted + 1
        last = expected + self._config.hotp_resync_window - 1
        found = find_consecutive(state, first, second, expected, last)
        if found is None:
            invalid = VerifyReason.INVALID_CODE
            return (yield from self._fail_flow(user_id, now, before, invalid, credential.id))
        due = renewal_due(credential, now, self._config.lifecycle)
        match = Match(credential, found, found - expected, None, due)
        return (yield from self._succeed_flow(user_id, now, before, match, EventType.HOTP_RESYNCED))

    def _check_usable(
        self,
        credentials: Sequence[Credential],
        credential: Credential,
        now: float,
    ) -> VerificationResult | None:
        usable, _ = self._usable(credentials, now)
        if any(c.id == credential.id for c in usable):
            return None
        state = effective_state(credential, now, self._config.lifecycle)
        if state == CredentialState.EXPIRED and credential.id not in self._superseded(credentials):
            return self._refuse(
                credential.user_id, now, VerifyReason.EXPIRED, credential_id=credential.id
            )
        raise IllegalTransition(f"a credential in state {state.value} cannot authenticate")

    def _throttle_status_flow(self, user_id: str) -> Flow[ThrottleDecision]:
        check_id(user_id, "user_id")
        now = self._now()
        state = yield from checked(Failures.get_failures(user_id))
        return throttle_check(state, now, self._config.throttle)
