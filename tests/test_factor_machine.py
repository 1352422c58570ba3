"""A state machine for the SMS/email factor lifecycle through the public service API.

Rules: enrol a number (a new one replaces the earlier pending one), confirm it with the
right or a wrong code (wrong ones are counted on the enrolment, which dies at its limit),
an administrator confirms, disables or unpins it, login codes are sent to it, time passes
(pending deadline, code expiry). Invariants: the listing matches the model, login codes
are sent exactly to factors that can authenticate, and the user's own failure count never
moves (confirmations never lock the login).
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from mfa_core.errors import CredentialNotFound, IllegalTransition
from mfa_core.lifecycle import LifecycleConfig
from mfa_core.models import CredentialState
from mfa_core.oob import OOBConfig
from mfa_core.sealing import AESGCMSealer
from mfa_core.service import MFAService, ServiceConfig
from mfa_core.stores import MemoryStore
from mfa_core.testing import FakeClock, FakeCodeSender

T0 = 1_800_000_000.0
USER = "alice"
PENDING_TTL = 1800.0
CODE_TTL = 180
LIMIT = 3
NUMBERS = ("+1 555 010 0101", "+1 555 010 0102", "+44 20 7946 0958")


@attrs.define
class Model:
    status: CredentialState
    pending_until: float
    code: str
    code_until: float
    failures: int = 0


class FactorMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(T0)
        self.sender = FakeCodeSender()
        self.store = MemoryStore()
        self.service = MFAService(
            self.store,
            self.store,
            AESGCMSealer.generate(),
            clock=self.clock,
            config=ServiceConfig(
                lifecycle=LifecycleConfig(pending_ttl=PENDING_TTL, max_confirmation_attempts=LIMIT),
                oob=OOBConfig(
                    ttl=CODE_TTL, max_sends_per_user=None, max_sends_per_destination=None
                ),
            ),
            oob=self.store,
            sender=self.sender,
            secret=b"factor-machine-secret-32-bytes!!",
        )
        self.model: dict[str, Model] = {}

    factors = Bundle("factors")

    @property
    def now(self) -> float:
        return self.clock.now()

    def effective(self, m: Model) -> CredentialState:
        if m.status == CredentialState.PENDING and self.now > m.pending_until:
            return CredentialState.PENDING_EXPIRED
        return m.status

    @rule(target=factors, number=st.sampled_from(NUMBERS))
    def enrol(self, number: str) -> str:
        for cred_id, m in list(self.model.items()):
            if self.effective(m) in (CredentialState.PENDING, CredentialState.PENDING_EXPIRED):
                del self.model[cred_id]  # expired ones dropped, the pending one replaced
        enrolment = self.service.begin_enrolment(USER, kind="sms", destination=number)
        sent = self.sender.sent[-1]
        assert sent.destination == number and sent.purpose == "phone_confirmation"
        self.model[enrolment.credential_id] = Model(
            CredentialState.PENDING, self.now + PENDING_TTL, sent.code, self.now + CODE_TTL
        )
        return enrolment.credential_id

    @rule(cred_id=factors, right=st.booleans())
    def confirm(self, cred_id: str, right: bool) -> None:
        m = self.model.get(cred_id)
        code = m.code if (m is not None and right) else None
        if code is None:
            code = "000000" if m is None or m.code != "000000" else "111111"
        if m is None:
            with pytest.raises(CredentialNotFound):
                self.service.confirm_enrolment(USER, cred_id, code)
            return
        if self.effective(m) != CredentialState.PENDING:
            with pytest.raises(IllegalTransition):
                self.service.confirm_enrolment(USER, cred_id, code)
            return
        result = self.service.confirm_enrolment(USER, cred_id, code)
        if right and self.now < m.code_until:
            assert result.accepted, result
            m.status = CredentialState.ACTIVE
            return
        assert not result.accepted
        m.failures += 1
        if m.failures >= LIMIT:
            del self.model[cred_id]

    @rule(cred_id=factors)
    def admin_confirm(self, cred_id: str) -> None:
        m = self.model.get(cred_id)
        if m is None:
            with pytest.raises(CredentialNotFound):
                self.service.admin_confirm(USER, cred_id, admin_id="root")
        elif self.effective(m) != CredentialState.PENDING:
            with pytest.raises(IllegalTransition):
                self.service.admin_confirm(USER, cred_id, admin_id="root")
        else:
            self.service.admin_confirm(USER, cred_id, admin_id="root")
            m.status = CredentialState.ACTIVE

    @rule(cred_id=factors)
    def disable(self, cred_id: str) -> None:
        m = self.model.get(cred_id)
        if m is None:
            with pytest.raises(CredentialNotFound):
                self.service.disable(USER, cred_id, by_admin="root")
        elif self.effective(m) != CredentialState.ACTIVE:
            with pytest.raises(IllegalTransition):
                self.service.disable(USER, cred_id, by_admin="root")
        else:
            self.service.disable(USER, cred_id, by_admin="root")
            m.status = CredentialState.DISABLED

    @rule(cred_id=factors)
    def unpin(self, cred_id: str) -> None:
        if cred_id not in self.model:
            with pytest.raises(CredentialNotFound):
                self.service.admin_reset(USER, admin_id="root", credential_id=cred_id)
            return
        assert self.service.admin_reset(USER, admin_id="root", credential_id=cred_id) == 1
        del self.model[cred_id]

    @rule(cred_id=factors)
    def login_code(self, cred_id: str) -> None:
        m = self.model.get(cred_id)
        if m is None:
            with pytest.raises(CredentialNotFound):
                self.service.send_factor_code(USER, cred_id, purpose="login")
            return
        if self.effective(m) != CredentialState.ACTIVE:
            with pytest.raises(IllegalTransition):
                self.service.send_factor_code(USER, cred_id, purpose="login")
            return
        challenge = self.service.send_factor_code(USER, cred_id, purpose="login")
        code = self.sender.sent[-1].code
        assert self.service.verify_oob_code(USER, challenge, code, "login").accepted

    @rule(seconds=st.sampled_from([1.0, 60.0, 181.0, 1000.0, 1801.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @invariant()
    def listing_matches_the_model(self) -> None:
        listed = {i.id: i for i in self.service.list_credentials(USER)}
        assert set(listed) == set(self.model)
        for cred_id, m in self.model.items():
            assert listed[cred_id].state == self.effective(m)
            assert listed[cred_id].destination is not None
            assert listed[cred_id].destination.startswith("***")

    @invariant()
    def confirmations_never_lock_the_user(self) -> None:
        assert self.store.get_failures(USER).count == 0


TestFactorMachine: Any = FactorMachine.TestCase
TestFactorMachine.settings = settings(
    max_examples=30,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
