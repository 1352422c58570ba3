"""``MFAService.decide`` / ``AsyncMFAService.decide``: policy evaluation with the stores'
view of the user's factors and the service clock's time, on both front ends."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from mfa_core import totp
from mfa_core.aio import AsyncMemoryStore, AsyncMFAService
from mfa_core.errors import InvalidParameter, StoreError
from mfa_core.keys import b32decode_key
from mfa_core.models import CredentialState
from mfa_core.policy import (
    Action,
    Decision,
    EnrolledFactor,
    Factor,
    FirstFactor,
    Outcome,
    Policy,
    RequestContext,
    Rule,
    SecondFactorCheck,
)
from mfa_core.recovery import Argon2Params, RecoveryConfig
from mfa_core.sealing import AESGCMSealer
from mfa_core.service import MFAService, ServiceConfig
from mfa_core.stores import MemoryStore
from mfa_core.testing import FakeClock, FaultyStore

T0 = 1_700_000_000.0
USER = "alice"
MANDATE = Policy(mandate_all=True)
CONFIG = ServiceConfig(recovery=RecoveryConfig(count=2, argon2=Argon2Params.fast_for_testing()))


@attrs.define
class Front:
    """One front end over one MemoryStore, with a blocking call for every operation."""

    clock: FakeClock
    call: Callable[..., Any]


def _sync(store: MemoryStore, clock: FakeClock) -> Front:
    service = MFAService(
        store,
        store,
        AESGCMSealer.generate(),
        clock=clock,
        recovery_codes=store,
        secret=b"s" * 32,
        config=CONFIG,
    )
    return Front(clock, lambda name, *a, **k: getattr(service, name)(*a, **k))


def _async(store: MemoryStore, clock: FakeClock) -> Front:
    shared = AsyncMemoryStore(store)
    service = AsyncMFAService(
        shared,
        shared,
        AESGCMSealer.generate(),
        clock=clock,
        recovery_codes=shared,
        secret=b"s" * 32,
        config=CONFIG,
    )
    return Front(clock, lambda name, *a, **k: asyncio.run(getattr(service, name)(*a, **k)))


@pytest.fixture(params=["sync", "async"])
def front(request: pytest.FixtureRequest) -> Front:
    make = _sync if request.param == "sync" else _async
    return make(MemoryStore(), FakeClock(T0))


def _login(**changes: Any) -> RequestContext:
    base = RequestContext(user_id=USER, first_factor=FirstFactor.PASSWORD, authenticated_at=T0)
    return attrs.evolve(base, **changes)


def _enrol_totp(front: Front) -> None:
    enrolment = front.call("begin_enrolment", USER)
    key = b32decode_key(enrolment.secret)
    code = totp(key, front.clock.now())
    assert front.call("confirm_enrolment", USER, enrolment.credential_id, code).accepted


def _rules(decision: Decision) -> set[str]:
    return {reason.rule.value for reason in decision.reasons}


def test_mandated_user_without_factors_must_enrol(front: Front) -> None:
    decision = front.call("decide", MANDATE, _login())
    assert decision.outcome == Outcome.ENROL_REQUIRED
    assert Rule.MANDATE_ALL.value in _rules(decision)


def test_enrolled_totp_from_the_store_is_challenged(front: Front) -> None:
    _enrol_totp(front)
    decision = front.call("decide", MANDATE, _login())
    assert decision.outcome == Outcome.CHALLENGE
    assert Factor.TOTP in decision.factors


def test_pending_enrolment_does_not_count_as_a_factor(front: Front) -> None:
    front.call("begin_enrolment", USER)
    decision = front.call("decide", MANDATE, _login())
    assert decision.outcome == Outcome.ENROL_REQUIRED


def test_stores_view_replaces_the_hosts_claims_for_managed_factors(front: Front) -> None:
    """A host cannot (even by mistake) claim a TOTP the store does not have."""
    claimed = (EnrolledFactor(factor=Factor.TOTP, state=CredentialState.ACTIVE),)
    decision = front.call("decide", MANDATE, _login(factors=claimed))
    assert decision.outcome == Outcome.ENROL_REQUIRED


def test_host_factors_the_service_does_not_manage_are_kept(front: Front) -> None:
    sms = (EnrolledFactor(factor=Factor.SMS_CODE, state=CredentialState.ACTIVE),)
    policy = Policy(mandate_all=True, sms_requires_alternative=False)
    decision = front.call("decide", policy, _login(factors=sms))
    assert decision.outcome == Outcome.CHALLENGE
    assert decision.factors == (Factor.SMS_CODE,)


def test_expired_credential_nudges_renewal_at_the_service_clock(front: Front) -> None:
    _enrol_totp(front)
    front.clock.advance(181 * 86400)
    context = _login(authenticated_at=front.clock.now())
    decision = front.call("decide", MANDATE, context)
    assert Factor.TOTP in decision.renew
    assert Rule.EXPIRED_RENEW.value in _rules(decision)


def test_step_up_freshness_uses_the_service_clock(front: Front) -> None:
    _enrol_totp(front)
    check = SecondFactorCheck(factor=Factor.TOTP, at=T0 + 1)
    context = _login(action=Action.CHANGE_SECURITY_SETTINGS, last_check=check)
    front.clock.advance(10)
    assert front.call("decide", MANDATE, context).outcome == Outcome.ALLOW
    front.clock.advance(600)  # past the 5-minute step-up window
    assert front.call("decide", MANDATE, context).outcome == Outcome.CHALLENGE


def test_recovery_codes_alone_are_not_enough_and_are_seen_from_the_store(front: Front) -> None:
    front.call("generate_recovery_codes", USER)
    decision = front.call("decide", MANDATE, _login())
    assert decision.outcome != Outcome.ALLOW
    assert decision.outcome != Outcome.CHALLENGE or decision.factors != (Factor.RECOVERY_CODE,)


def test_wrong_argument_types_are_typed_errors(front: Front) -> None:
    with pytest.raises(InvalidParameter):
        front.call("decide", {"mandate_all": True}, _login())
    with pytest.raises(InvalidParameter):
        front.call("decide", MANDATE, {"user_id": USER})


def test_store_failure_is_a_store_error_not_a_decision() -> None:
    store = MemoryStore()
    faulty = FaultyStore(store, fail_on={"list_for_user": 1})
    service = MFAService(faulty, faulty, AESGCMSealer.generate(), clock=FakeClock(T0))
    with pytest.raises(StoreError):
        service.decide(MANDATE, _login())
