"""A hypothesis state machine over MFAService against a small model of one user.

The model keeps, per credential, its stored status, deadlines, replaced credential and last
accepted step, plus the user's failure count; it predicts the outcome of every operation
(accepted or not, and the reason, or the error raised) and the effective states that
``list_credentials`` must report. Time comes from a FakeClock moved by the machine. Which
lifecycle pairs are legal, and where they lead, comes from the one table
(``lifecycle.TRANSITIONS``); which attempts are throttled comes from ``throttle.check`` on the
model's own failure state. Everything else (windows, replay, superseding, pending expiry,
strict expiry, step-up) is modelled here independently.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from mfa_core import b32decode_key, totp
from mfa_core.errors import CredentialNotFound, IllegalTransition, StepUpRequired, Throttled
from mfa_core.lifecycle import TRANSITIONS, LifecycleConfig, LifecycleEvent
from mfa_core.models import CredentialState, FailureState
from mfa_core.sealing import AESGCMSealer
from mfa_core.service import MFAService, ServiceConfig, VerifyReason
from mfa_core.stores import MemoryStore
from mfa_core.testing import FakeClock
from mfa_core.throttle import ThrottleConfig
from mfa_core.throttle import check as throttle_check

USER = "u"
DIGITS = 8  # 8-digit codes make accidental matches (1e-8 per comparison) negligible
PERIOD = 30
T0 = 1_800_000_000.5
DAY = 86_400.0
THROTTLE = ThrottleConfig(max_failures=5, base_delay=1.0, max_delay=8.0, lockout=120.0)
PENDING_TTL = 600.0
MAX_AGE = 20 * DAY
# How long a user takes before the next attempt (0: at once, as a script would).
PAUSES = st.sampled_from([0.0, 3.0, 10.0, 31.0])


@attrs.define
class ModelCredential:
    id: str
    key: bytes
    status: CredentialState  # stored: PENDING, ACTIVE or DISABLED
    pending_until: float
    renewed_at: float | None = None
    replaces: str | None = None
    last_step: int = -1
    drift: int = 0
    confirm_failures: int = 0


class ServiceMachine(RuleBasedStateMachine):
    strict = False

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(T0)
        self.lifecycle = LifecycleConfig(
            pending_ttl=PENDING_TTL, max_age=MAX_AGE, strict_expiry=self.strict
        )
        store = MemoryStore()
        self.service = MFAService(
            store,
            store,
            AESGCMSealer.generate(),
            clock=self.clock,
            config=ServiceConfig(digits=DIGITS, throttle=THROTTLE, lifecycle=self.lifecycle),
        )
        self.store: Any = store
        self.creds: dict[str, ModelCredential] = {}
        self.failures = FailureState()

    credentials = Bundle("credentials")

    # -- model helpers ---------------------------------------------------------------------

    @property
    def now(self) -> float:
        return self.clock.now()

    @property
    def step(self) -> int:
        return math.floor(self.now) // PERIOD

    def effective(self, c: ModelCredential) -> CredentialState:
        if c.status == CredentialState.PENDING and self.now > c.pending_until:
            return CredentialState.PENDING_EXPIRED
        if (
            c.status == CredentialState.ACTIVE
            and c.renewed_at is not None
            and self.now - c.renewed_at >= MAX_AGE
        ):
            return CredentialState.EXPIRED
        return c.status

    def superseded(self) -> set[str]:
        return {
            c.replaces
            for c in self.creds.values()
            if c.replaces is not None and c.status != CredentialState.PENDING
        }

    def usable(self, c: ModelCredential) -> bool:
        state = self.effective(c)
        if c.id in self.superseded():
            return False
        return state == CredentialState.ACTIVE or (
            state == CredentialState.EXPIRED and not self.strict
        )

    def gate(self) -> VerifyReason | None:
        decision = throttle_check(self.failures, self.now, THROTTLE)
        if decision.allowed:
            return None
        return VerifyReason.LOCKED if decision.locked else VerifyReason.THROTTLED

    def fail(self) -> None:
        self.failures = FailureState(self.failures.count + 1, self.now)

    def apply(self, c: ModelCredential, what: LifecycleEvent) -> None:
        target = TRANSITIONS[(self.effective(c), what)]
        if target is None:
            del self.creds[c.id]
        elif target == CredentialState.EXPIRED:
            c.status = CredentialState.ACTIVE
        elif target == CredentialState.PENDING_EXPIRED:
            c.status = CredentialState.PENDING
        else:
            c.status = target

    def code(self, c: ModelCredential, step: int | None = None) -> str:
        at = self.now if step is None else step * PERIOD
        return totp(c.key, at, digits=DIGITS)

    def wrong(self) -> str:
        taken = {
            self.code(c, s)
            for c in self.creds.values()
            for s in range(max(self.step - 12, 0), self.step + 13)
        }
        return next(
            str(n).zfill(DIGITS)
            for n in range(10**6, 10**6 + 1000)
            if str(n).zfill(DIGITS) not in taken
        )

    def expect_verify(self, code_of: ModelCredential | None, step: int | None) -> VerifyReason:
        """Predict a verify outcome and update the model accordingly."""
        gated = self.gate()
        if gated is not None:
            return gated
        self.fail()  # admitted: counted before anything about the attempt is looked at
        usable = [c for c in self.creds.values() if self.usable(c)]
        if not usable:
            expired = any(
                self.effective(c) == CredentialState.EXPIRED and c.id not in self.superseded()
                for c in self.creds.values()
            )
            return VerifyReason.EXPIRED if expired else VerifyReason.NO_CREDENTIAL
        if code_of is None or code_of not in usable or step is None:
            return VerifyReason.INVALID_CODE
        # The window: one step either side of now + the learned drift.
        in_window = abs(step - (self.step + code_of.drift)) <= 1
        if in_window and step > code_of.last_step:
            code_of.last_step = step
            code_of.drift = step - self.step
            self.failures = FailureState()
            return VerifyReason.OK
        return VerifyReason.REPLAYED if in_window else VerifyReason.INVALID_CODE

    # -- rules -----------------------------------------------------------------------------

    @initialize(target=credentials)
    def enrolled_user(self) -> str:
        """Start from a user with one confirmed authenticator (most logins look like this)."""
        cred_id = self.enrol()
        self.confirm(cred_id, correct=True)
        return cred_id

    @precondition(lambda self: len(self.creds) < 6)
    @rule(target=credentials)
    def enrol(self) -> str:
        for c in list(self.creds.values()):
            if self.effective(c) == CredentialState.PENDING_EXPIRED:
                del self.creds[c.id]
            elif self.effective(c) == CredentialState.PENDING and c.replaces is None:
                del self.creds[c.id]  # a new enrolment replaces the earlier pending one
        enrolment = self.service.begin_enrolment(USER)
        self.creds[enrolment.credential_id] = ModelCredential(
            id=enrolment.credential_id,
            key=b32decode_key(enrolment.secret),
            status=CredentialState.PENDING,
            pending_until=self.now + PENDING_TTL,
        )
        return enrolment.credential_id

    @rule(cred_id=credentials, correct=st.booleans(), pause=PAUSES)
    def confirm(self, cred_id: str, correct: bool, pause: float = 0.0) -> None:
        self.advance(pause)
        c = self.creds.get(cred_id)
        code = self.code(c) if (c is not None and correct) else self.wrong()
        if c is None:
            with pytest.raises(CredentialNotFound):
                self.service.confirm_enrolment(USER, cred_id, code)
            return
        if (self.effective(c), LifecycleEvent.CONFIRM) not in TRANSITIONS:
            with pytest.raises(IllegalTransition):
                self.service.confirm_enrolment(USER, cred_id, code)
            return
        gated = self.gate()
        result = self.service.confirm_enrolment(USER, cred_id, code)
        if gated is not None:
            assert result.reason == gated and not result.accepted
            return
        if not correct:
            # Counted on the enrolment, never on the user: the pending one dies at the limit.
            c.confirm_failures += 1
            if c.confirm_failures >= self.lifecycle.max_confirmation_attempts:
                del self.creds[cred_id]
            assert result.reason == VerifyReason.INVALID_CODE
            return
        assert result.accepted, result
        self.apply(c, LifecycleEvent.CONFIRM)
        c.renewed_at = self.now
        c.last_step = self.step
        c.drift = 0
        old = self.creds.get(c.replaces) if c.replaces is not None else None
        if old is not None and (self.effective(old), LifecycleEvent.SUPERSEDE) in TRANSITIONS:
            self.apply(old, LifecycleEvent.SUPERSEDE)

    def check_verify(self, c: ModelCredential | None, step: int | None, label: str) -> None:
        code = self.wrong() if c is None or step is None else self.code(c, step)
        expected = self.expect_verify(c, step)
        result = self.service.verify(USER, code)
        assert result.reason == expected, (result, expected)
        assert result.accepted == (expected == VerifyReason.OK)
        if result.accepted:
            assert c is not None and result.credential_id == c.id and result.matched == step
            assert result.drift == c.drift
        event(f"verify {label}: {expected.value}")

    def pick(self, data: st.DataObject) -> ModelCredential | None:
        # Enrolment order, not the (random) ids: the same choices pick the same credential
        # on every replay, so hypothesis can shrink and replay a failure deterministically.
        creds = list(self.creds.values())
        return data.draw(st.sampled_from(creds)) if creds else None

    @rule(data=st.data(), pause=PAUSES)
    def verify_current(self, data: st.DataObject, pause: float) -> None:
        """The code an authenticator with the right time shows now."""
        self.advance(pause)
        self.check_verify(self.pick(data), self.step, "current")

    @rule(data=st.data(), shift=st.sampled_from([-2, -1, 1, 2]), pause=PAUSES)
    def verify_shifted(self, data: st.DataObject, shift: int, pause: float) -> None:
        """The code of an authenticator whose clock is ``shift`` steps off."""
        self.advance(pause)
        self.check_verify(self.pick(data), self.step + shift, f"shift {shift:+d}")

    @rule(data=st.data(), pause=PAUSES)
    def verify_replay(self, data: st.DataObject, pause: float) -> None:
        """The last accepted code of a credential, once more."""
        self.advance(pause)
        c = self.pick(data)
        if c is not None and c.last_step >= 0:
            self.check_verify(c, c.last_step, "replay")

    @rule(pause=PAUSES)
    def verify_wrong(self, pause: float) -> None:
        """A code that belongs to no credential."""
        self.advance(pause)
        self.check_verify(None, None, "wrong")

    @rule(cred_id=credentials)
    def renew(self, cred_id: str) -> None:
        c = self.creds.get(cred_id)
        if c is None:
            with pytest.raises(CredentialNotFound):
                self.service.begin_renewal(USER, cred_id)
            return
        legal = (self.effective(c), LifecycleEvent.RENEW) in TRANSITIONS
        if not legal or c.id in self.superseded() or len(self.creds) >= 8:
            if not legal or c.id in self.superseded():
                with pytest.raises(IllegalTransition):
                    self.service.begin_renewal(USER, cred_id)
            return
        enrolment = self.service.begin_renewal(USER, cred_id)
        for other in list(self.creds.values()):
            if other.replaces == c.id and other.status == CredentialState.PENDING:
                del self.creds[other.id]
        self.creds[enrolment.credential_id] = ModelCredential(
            id=enrolment.credential_id,
            key=b32decode_key(enrolment.secret),
            status=CredentialState.PENDING,
            pending_until=self.now + PENDING_TTL,
            replaces=c.id,
        )

    @rule(cred_id=credentials, data=st.data(), mode=st.sampled_from(["admin", "right", "wrong"]))
    def disable(self, cred_id: str, data: st.DataObject, mode: str) -> None:
        c = self.creds.get(cred_id)
        if c is None:
            with pytest.raises(CredentialNotFound):
                self.service.disable(USER, cred_id, by_admin="root")
            return
        if (self.effective(c), LifecycleEvent.DISABLE) not in TRANSITIONS:
            with pytest.raises(IllegalTransition):
                self.service.disable(USER, cred_id, by_admin="root")
            return
        if mode == "admin":
            self.service.disable(USER, cred_id, by_admin="admin")
            self.apply(c, LifecycleEvent.DISABLE)
            return
        usable = [u for u in self.creds.values() if self.usable(u)]  # enrolment order
        prover = data.draw(st.sampled_from(usable)) if usable and mode == "right" else None
        code = self.code(prover) if prover is not None else self.wrong()
        expected = self.expect_verify(prover, self.step if prover is not None else None)
        if expected == VerifyReason.OK:
            self.service.disable(USER, cred_id, step_up_code=code)
            self.apply(c, LifecycleEvent.DISABLE)
        elif expected in (VerifyReason.THROTTLED, VerifyReason.LOCKED):
            with pytest.raises(Throttled):
                self.service.disable(USER, cred_id, step_up_code=code)
        else:
            with pytest.raises(StepUpRequired):
                self.service.disable(USER, cred_id, step_up_code=code)

    @rule(dice=st.integers(0, 3))
    def admin_reset(self, dice: int) -> None:
        if dice:  # a lost device is rare: keep most runs about logging in
            return
        assert self.service.admin_reset(USER, admin_id="root") == len(self.creds)
        self.creds.clear()

    @rule()
    def unlock(self) -> None:
        self.service.admin_unlock(USER, admin_id="root")
        self.failures = FailureState()

    @rule(seconds=st.sampled_from([1.0, 14.0, 30.0, 31.0, 61.0, 121.0, 601.0, DAY, 5 * DAY]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        # Keep clear of exact deadlines, where "past" and "at" would need the same rounding.
        boundaries = {c.pending_until for c in self.creds.values()}
        boundaries |= {c.renewed_at + MAX_AGE for c in self.creds.values() if c.renewed_at}
        if self.failures.last_failure_at is not None:
            boundaries.add(self.failures.last_failure_at + THROTTLE.lockout)  # type: ignore[operator]
        while self.now in boundaries:
            self.clock.advance(0.25)

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def listing_matches_the_model(self) -> None:
        infos = {i.id: i for i in self.service.list_credentials(USER)}
        assert set(infos) == set(self.creds)
        for c in self.creds.values():
            info = infos[c.id]
            assert info.state == self.effective(c), (info, c)
            assert info.can_authenticate == self.usable(c)

    @invariant()
    def failure_count_matches_the_model(self) -> None:
        assert self.store.get_failures(USER).count == self.failures.count


class StrictServiceMachine(ServiceMachine):
    strict = True


_settings = settings(
    max_examples=100,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestServiceMachine = ServiceMachine.TestCase
TestServiceMachine.settings = _settings
TestStrictServiceMachine = StrictServiceMachine.TestCase
TestStrictServiceMachine.settings = _settings
