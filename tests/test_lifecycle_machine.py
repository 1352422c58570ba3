"""A hypothesis state machine over the PURE lifecycle module, against a simple model.

The system under test keeps real :class:`~mfa_core.models.Credential` values and changes
them only through :func:`~mfa_core.lifecycle.transition` on the effective state (as the
service does), writing derived targets as their stored state. The model is written
independently, straight from the issue's rules, with plain strings and if/else: no table.
(The service-level state machine is in ``tests/test_service_machine.py``.)
"""

from __future__ import annotations

import math
from typing import Any

import attrs
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from mfa_core.errors import IllegalTransition
from mfa_core.lifecycle import (
    LifecycleConfig,
    LifecycleEvent,
    can_authenticate,
    effective_state,
    renewal_due,
    transition,
)
from mfa_core.models import Credential, CredentialKind, CredentialState

S = CredentialState
E = LifecycleEvent
T0 = 1_700_000_000.0
PENDING_TTL = 600.0
MAX_AGE = 3 * 86400.0

_STORED = {S.EXPIRED: S.ACTIVE, S.PENDING_EXPIRED: S.PENDING}


@attrs.define
class Model:
    """What the issue says about one credential, in plain terms."""

    status: str  # "pending", "active" or "disabled"
    deadline: float
    renewed: float | None = None
    replaces: str | None = None

    def state(self, now: float, max_age: float) -> str:
        if self.status == "pending" and now > self.deadline:
            return "pending_expired"
        if self.status == "active" and self.renewed is not None and now - self.renewed >= max_age:
            return "expired"
        return self.status


class LifecycleMachine(RuleBasedStateMachine):
    ids = Bundle("ids")

    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.config = LifecycleConfig(pending_ttl=PENDING_TTL, max_age=MAX_AGE)
        self.creds: dict[str, Credential] = {}
        self.model: dict[str, Model] = {}
        self.serial = 0

    # -- helpers ---------------------------------------------------------------------------

    def sut_state(self, cid: str) -> CredentialState:
        credential = self.creds.get(cid)
        return S.NONE if credential is None else effective_state(credential, self.now, self.config)

    def model_state(self, cid: str) -> str:
        m = self.model.get(cid)
        return "none" if m is None else m.state(self.now, self.config.max_age)

    def apply(self, cid: str, event: LifecycleEvent, **changes: Any) -> bool:
        """Apply ``event`` as the service would; return whether it was legal."""
        snapshot = dict(self.creds)
        try:
            target = transition(self.sut_state(cid), event)
        except IllegalTransition:
            assert self.creds == snapshot  # nothing changed
            return False
        if target is None:
            del self.creds[cid]
        elif cid in self.creds:
            status = _STORED.get(target, target)
            self.creds[cid] = attrs.evolve(self.creds[cid], status=status, **changes)
        return True

    def new_pending(self, replaces: str | None) -> str:
        self.serial += 1
        cid = f"c{self.serial}"
        assert transition(S.NONE, E.ENROL) == S.PENDING
        self.creds[cid] = Credential(
            id=cid,
            user_id="alice",
            kind=CredentialKind.TOTP,
            sealed_key=b"sealed",
            created_at=self.now,
            pending_until=self.now + self.config.pending_ttl,
            replaces=replaces,
        )
        self.model[cid] = Model("pending", self.now + self.config.pending_ttl, replaces=replaces)
        return cid

    # -- rules -----------------------------------------------------------------------------

    @initialize(strict=st.booleans())
    def configure(self, strict: bool) -> None:
        self.config = LifecycleConfig(
            pending_ttl=PENDING_TTL, max_age=MAX_AGE, strict_expiry=strict
        )

    @rule(target=ids)
    def enrol(self) -> str:
        return self.new_pending(None)

    def _confirm(self, cid: str) -> None:
        m = self.model.get(cid)
        legal = m is not None and self.model_state(cid) == "pending"
        done = self.apply(
            cid, E.CONFIRM, confirmed_at=self.now, renewed_at=self.now, pending_until=None
        )
        assert done == legal
        if not done or m is None:
            return
        m.status, m.renewed = "active", self.now
        # Confirming a renewal supersedes the credential it replaces (if still in use).
        old_id = m.replaces
        if old_id is None:
            return
        old_legal = self.model_state(old_id) in ("active", "expired")
        assert self.apply(old_id, E.SUPERSEDE, disabled_at=self.now) == old_legal
        if old_legal:
            self.model[old_id].status = "disabled"

    @rule(cid=ids)
    def confirm(self, cid: str) -> None:
        self._confirm(cid)

    def pending_renewals(self) -> list[str]:
        return sorted(
            cid for cid, m in self.model.items() if m.replaces is not None and m.status == "pending"
        )

    @precondition(lambda self: bool(self.pending_renewals()))
    @rule(data=st.data())
    def confirm_renewal(self, data: st.DataObject) -> None:
        self._confirm(data.draw(st.sampled_from(self.pending_renewals())))

    @rule(cid=ids, target=ids)
    def renew(self, cid: str) -> str:
        legal = self.model_state(cid) in ("active", "expired")
        before = self.sut_state(cid)
        assert self.apply(cid, E.RENEW) == legal
        assert self.sut_state(cid) == before  # renewing never changes the old credential
        if not legal:
            return cid
        assert transition(before, E.RENEW) == before  # the table keeps it as it is
        return self.new_pending(cid)

    @rule(cid=ids)
    def disable(self, cid: str) -> None:
        legal = self.model_state(cid) in ("active", "expired")
        assert self.apply(cid, E.DISABLE, disabled_at=self.now) == legal
        if legal:
            self.model[cid].status = "disabled"

    @rule(cid=ids)
    def admin_reset(self, cid: str) -> None:
        legal = cid in self.model
        assert self.apply(cid, E.ADMIN_RESET) == legal
        if legal:
            del self.model[cid]

    @rule(cid=ids)
    def abandon(self, cid: str) -> None:
        legal = self.model_state(cid) in ("pending", "pending_expired")
        assert self.apply(cid, E.ABANDON) == legal
        if legal:
            del self.model[cid]

    @rule(cid=ids)
    def supersede_out_of_turn(self, cid: str) -> None:
        # SUPERSEDE is legal on its own only for a confirmed, not disabled credential.
        legal = self.model_state(cid) in ("active", "expired")
        assert self.apply(cid, E.SUPERSEDE, disabled_at=self.now) == legal
        if legal:
            self.model[cid].status = "disabled"

    @rule(cid=ids)
    def enrol_over_existing(self, cid: str) -> None:
        # ENROL is only legal from "no credential": an existing one cannot be re-enrolled.
        legal = cid not in self.model
        assert self.apply(cid, E.ENROL) == legal

    @rule(seconds=st.sampled_from([1.0, 29.0, PENDING_TTL / 2, PENDING_TTL, 86400.0, MAX_AGE]))
    def advance(self, seconds: float) -> None:
        self.now += seconds

    @rule(cid=ids, side=st.sampled_from([-1, 0, 1]))
    def advance_to_a_boundary(self, cid: str, side: int) -> None:
        m = self.model.get(cid)
        if m is None:
            return
        edge = m.deadline if m.status == "pending" else m.renewed
        if edge is None:
            return
        if m.status == "active":
            edge += self.config.max_age
        at = edge if side == 0 else math.nextafter(edge, side * math.inf)
        self.now = max(at, self.now)

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def states_match_the_model(self) -> None:
        assert set(self.creds) == set(self.model)
        for cid in self.creds:
            assert self.sut_state(cid).value == self.model_state(cid)
            assert self.creds[cid].status.value == self.model[cid].status

    @invariant()
    def authentication_follows_the_rules(self) -> None:
        strict = self.config.strict_expiry
        for cid, credential in self.creds.items():
            state = self.sut_state(cid)
            allowed = can_authenticate(state, self.config)
            if state in (S.PENDING, S.PENDING_EXPIRED, S.DISABLED):
                assert not allowed  # a pending credential never authenticates
            if state == S.EXPIRED:
                assert allowed is not strict  # expired authenticates iff not strict
            if state == S.ACTIVE:
                assert allowed
            assert renewal_due(credential, self.now, self.config) == (state == S.EXPIRED)

    @invariant()
    def renewal_never_locks_out_nor_leaves_two_keys(self) -> None:
        for credential in self.creds.values():
            old_id = credential.replaces
            if old_id is None or old_id not in self.creds:
                continue
            old_state = self.sut_state(old_id)
            new_state = self.sut_state(credential.id)
            if new_state in (S.PENDING, S.PENDING_EXPIRED):
                # A pending renewal does not lock anyone out: an active old key still works.
                if self.model_state(old_id) == "active":
                    assert can_authenticate(old_state, self.config)
            else:
                # Once the renewal is confirmed, the old key no longer authenticates.
                assert not can_authenticate(old_state, self.config)


LifecycleMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
TestLifecycleMachine = LifecycleMachine.TestCase
