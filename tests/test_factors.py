"""Every factor is a credential: step-up parity, one uniform refusal, enrolment ergonomics
(replacing, showing again, its own confirmation limit), resets, SMS/email factors.

Each test runs on the memory and SQLite stores through both front ends (public API only).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from factor_env import COMBOS, World, build, world_fixture
from hypothesis import given
from hypothesis import strategies as st
from test_service import wrong_code

from mfa_core import b32decode_key, totp
from mfa_core.errors import (
    CredentialNotFound,
    IllegalTransition,
    InvalidParameter,
    StepUpRequired,
)
from mfa_core.lifecycle import LifecycleConfig
from mfa_core.models import CredentialState, EventType
from mfa_core.otp import HOTPState
from mfa_core.policy import (
    Action,
    Factor,
    FirstFactor,
    Policy,
    RememberedDevice,
    RequestContext,
    Rule,
    SecondFactorCheck,
)
from mfa_core.service import INVALID_CODE_MESSAGE, VerifyReason
from mfa_core.throttle import ThrottleConfig

Make = Callable[..., World]


@pytest.fixture(params=COMBOS, ids=["-".join(c) for c in COMBOS])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Make]:
    yield from world_fixture(request, tmp_path)


def _count(world: World, user: str = "alice") -> int:
    return int(world.store.get_failures(user).count)


# -- step-up parity and one uniform refusal ----------------------------------------------


def test_disable_accepts_a_recovery_code_as_step_up(make: Make) -> None:
    world = make()
    cred_id, _ = world.enrol_totp()
    codes = world.service.generate_recovery_codes("alice").codes
    with pytest.raises(StepUpRequired):
        world.service.disable("alice", cred_id, step_up_code="ZZZZ-ZZZZ-ZZZZ-ZZZZ")
    assert _count(world) == 1  # one attempt, counted once (not "malformed" twice)
    world.clock.advance(5)
    world.service.disable("alice", cred_id, step_up_code=codes[0], keep_recovery_codes=True)
    [info] = world.service.list_credentials("alice")
    assert info.state == CredentialState.DISABLED
    assert _count(world) == 0
    used = world.service.verify_recovery_code("alice", codes[0])
    assert used.reason == VerifyReason.REPLAYED  # the step-up consumed it


def test_step_up_names_the_factor_and_accepts_an_sms_step_up_code(make: Make) -> None:
    world = make()
    _, key = world.enrol_totp()
    by_app = world.service.step_up("alice", totp(key, world.now))
    assert by_app.accepted and by_app.factor == "totp"
    challenge = world.service.send_oob_code(
        "alice", channel="sms", destination="+15551234567", purpose="step_up"
    )
    by_sms = world.service.step_up("alice", world.last_code(), challenge_id=challenge)
    assert by_sms.accepted and by_sms.factor == "sms_code"
    again = world.service.step_up("alice", world.last_code(), challenge_id=challenge)
    assert not again.accepted and again.reason == VerifyReason.REPLAYED


def test_step_up_accepts_only_the_factors_the_policy_counts_for_the_action(make: Make) -> None:
    world = make(throttle=ThrottleConfig(max_failures=100, base_delay=0.0, max_delay=0.0))
    cred_id, key = world.enrol_totp()
    codes = world.service.generate_recovery_codes("alice").codes
    settings = RequestContext(
        user_id="alice",
        first_factor=FirstFactor.PASSWORD,
        authenticated_at=world.now - 600,
        action=Action.CHANGE_SECURITY_SETTINGS,
    )
    # a policy that asks for a security key for the action: the decision names only that,
    # and a step-up limited to it accepts no code at all
    strict = Policy(
        mandate_all=True, phishing_resistant_actions=frozenset({Action.CHANGE_SECURITY_SETTINGS})
    )
    decision = world.service.decide(strict, settings)
    assert decision.factors == (Factor.SECURITY_KEY,), decision
    app_code = totp(key, world.now)
    refused = world.service.step_up("alice", app_code, factors=decision.factors)
    assert not refused.accepted and refused.reason == VerifyReason.NO_CREDENTIAL
    assert _count(world) == 1  # counted like any refusal
    # refused before it was checked: the code is still fresh for a step-up that allows it
    assert world.service.step_up("alice", app_code).accepted
    world.clock.advance(60)
    assert not world.service.step_up("alice", codes[0], factors=decision.factors).accepted
    assert _count(world) == 1
    # recovery codes only: the app's code matches nothing allowed; a recovery code passes
    world.clock.advance(5)
    only_recovery = [Factor.RECOVERY_CODE]
    app_code = totp(key, world.now)
    refused = world.service.step_up("alice", app_code, factors=only_recovery)
    assert refused.reason == VerifyReason.NO_CREDENTIAL
    world.clock.advance(60)
    assert world.service.step_up("alice", codes[0], factors=only_recovery).accepted
    # a policy that counts the app only: a recovery code is not an app code
    world.clock.advance(60)
    only_app = world.service.step_up("alice", codes[1], factors=[Factor.TOTP])
    assert not only_app.accepted and only_app.reason == VerifyReason.MALFORMED
    assert world.service.step_up("alice", totp(key, world.now), factors={Factor.TOTP}).accepted
    # HOTP allowed, TOTP not: the user's TOTP credential does not count
    world.clock.advance(60)
    hotp_only = world.service.step_up("alice", totp(key, world.now), factors=[Factor.HOTP])
    assert hotp_only.reason == VerifyReason.NO_CREDENTIAL
    # an SMS step-up code where the policy does not count SMS codes
    world.clock.advance(60)
    challenge = world.service.send_oob_code(
        "alice", channel="sms", destination="+15551234567", purpose="step_up"
    )
    by_sms = world.service.step_up(
        "alice", world.last_code(), challenge_id=challenge, factors=[Factor.EMAIL_CODE]
    )
    assert not by_sms.accepted and by_sms.oob_reason == "channel_not_allowed"
    assert world.service.step_up(
        "alice", world.last_code(), challenge_id=challenge, factors=[Factor.SMS_CODE]
    ).accepted
    # disable takes the same limit
    world.clock.advance(60)
    key_only = decision.factors
    with pytest.raises(StepUpRequired):
        world.service.disable(
            "alice", cred_id, step_up_code=totp(key, world.now), step_up_factors=key_only
        )
    assert world.service.list_credentials("alice")[0].state == CredentialState.ACTIVE
    world.service.disable(
        "alice",
        cred_id,
        step_up_code=totp(key, world.now),
        step_up_factors=[Factor.TOTP],
        keep_recovery_codes=True,
    )
    assert world.service.list_credentials("alice")[0].state == CredentialState.DISABLED
    for bad in ("totp", ["totp"], 7, [None], [["totp"]], {"totp": 1}):
        with pytest.raises(InvalidParameter):
            world.service.step_up("alice", codes[3], factors=bad)


def test_one_uniform_refusal_across_factors(make: Make) -> None:
    world = make()
    _, key = world.enrol_totp()
    world.service.generate_recovery_codes("alice")
    challenge = world.service.send_oob_code(
        "alice", channel="email", destination="a@example.com", purpose="step_up"
    )
    refusals = [
        world.service.verify("alice", wrong_code([key], world.now)),
        world.service.verify("alice", "12x"),
    ]
    world.clock.advance(60)
    refusals.append(world.service.verify_recovery_code("alice", "ZZZZ-ZZZZ-ZZZZ-ZZZZ"))
    world.clock.advance(60)
    refusals.append(world.service.verify_oob_code("alice", challenge, "000000", "step_up"))
    world.clock.advance(60)
    refusals.append(world.service.verify_oob_code("alice", "nope", "000000", "login"))
    assert all(not r.accepted for r in refusals)
    assert {r.user_message for r in refusals} == {INVALID_CODE_MESSAGE} == {"invalid code"}


# -- enrolment ergonomics --------------------------------------------------------------------


def test_a_new_enrolment_replaces_the_earlier_pending_one(make: Make) -> None:
    world = make()
    first = world.service.begin_enrolment("alice")
    second = world.service.begin_enrolment("alice")
    hotp_one = world.service.begin_enrolment("alice", kind="hotp")  # another kind stays
    ids = [i.id for i in world.service.list_credentials("alice")]
    assert ids == [second.credential_id, hotp_one.credential_id]
    [removed] = world.of_type(EventType.CREDENTIAL_REMOVED)
    assert removed.credential_id == first.credential_id
    assert removed.reason == "enrolment_restarted"
    with pytest.raises(CredentialNotFound):
        world.service.confirm_enrolment(
            "alice", first.credential_id, totp(b32decode_key(first.secret), world.now)
        )


def test_an_abandoned_enrolment_leaves_no_confirmation_count_behind(make: Make) -> None:
    from mfa_core.service._confirm import confirmation_counter

    world = make()
    first = world.service.begin_enrolment("alice")
    wrong = wrong_code([b32decode_key(first.secret)], world.now)
    assert not world.service.confirm_enrolment("alice", first.credential_id, wrong).accepted
    assert _count(world, confirmation_counter(first.credential_id)) == 1
    second = world.service.begin_enrolment("alice")  # restarted: the first is dropped
    assert _count(world, confirmation_counter(first.credential_id)) == 0
    world.clock.advance(5)
    wrong = wrong_code([b32decode_key(second.secret)], world.now)
    assert not world.service.confirm_enrolment("alice", second.credential_id, wrong).accepted
    world.service.cancel_enrolment("alice", second.credential_id)
    assert _count(world, confirmation_counter(second.credential_id)) == 0
    assert _count(world) == 0  # the user's own count never moved


def test_a_pending_renewal_is_not_replaced_by_a_new_enrolment(make: Make) -> None:
    world = make()
    cred_id, _ = world.enrol_totp()
    renewal = world.service.begin_renewal("alice", cred_id)
    world.service.begin_enrolment("alice")
    assert renewal.credential_id in {i.id for i in world.service.list_credentials("alice")}


def test_the_provisioning_uri_can_be_fetched_again_until_confirmed(make: Make) -> None:
    world = make()
    enrolment = world.service.begin_enrolment("alice", account="alice@example.com")
    again = world.service.enrolment_uri(
        "alice", enrolment.credential_id, account="alice@example.com"
    )
    assert (again.uri, again.secret, again.expires_at) == (
        enrolment.uri,
        enrolment.secret,
        enrolment.expires_at,
    )
    key = b32decode_key(enrolment.secret)
    assert world.service.confirm_enrolment("alice", enrolment.credential_id, totp(key, world.now))
    with pytest.raises(IllegalTransition):
        world.service.enrolment_uri("alice", enrolment.credential_id)
    late = world.service.begin_enrolment("alice")
    world.clock.advance(LifecycleConfig().pending_ttl + 1)
    with pytest.raises(IllegalTransition):
        world.service.enrolment_uri("alice", late.credential_id)


def test_default_pending_ttl_is_one_a_person_can_meet() -> None:
    assert 1800 <= LifecycleConfig().pending_ttl <= 3600


def test_ten_wrong_confirmations_do_not_lock_the_login(make: Make) -> None:
    world = make()
    _, key = world.enrol_totp()
    pending = world.service.begin_enrolment("alice", kind="hotp")
    limit = LifecycleConfig().max_confirmation_attempts
    outcomes = []
    for _ in range(10):
        try:
            result = world.service.confirm_enrolment("alice", pending.credential_id, "000000")
        except CredentialNotFound:
            outcomes.append("gone")
        else:
            outcomes.append(result.reason)
    assert outcomes[:limit] == [VerifyReason.INVALID_CODE] * limit
    assert outcomes[limit:] == ["gone"] * (10 - limit)  # the enrolment died at its limit
    [removed] = world.of_type(EventType.CREDENTIAL_REMOVED)
    assert removed.reason == "too_many_confirmation_attempts"
    assert _count(world) == 0
    assert world.service.verify("alice", totp(key, world.now)).accepted


def test_confirmation_attempt_limit_is_exact_under_32_threads(make: Make) -> None:
    world = make(lifecycle=LifecycleConfig(max_confirmation_attempts=5))
    pending = world.service.begin_enrolment("alice")
    key = b32decode_key(pending.secret)
    bad = wrong_code([key], world.now)
    world.sealer.unseals = 0
    barrier = threading.Barrier(32)
    errors: list[BaseException] = []
    results: list[Any] = []

    def attempt() -> None:
        barrier.wait()
        try:
            results.append(world.service.confirm_enrolment("alice", pending.credential_id, bad))
        except CredentialNotFound:
            results.append("gone")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert world.sealer.unseals == 5  # exactly the limit was checked
    assert all(r == "gone" or not r.accepted for r in results)
    assert world.service.list_credentials("alice") == []
    assert _count(world) == 0


# -- resets ------------------------------------------------------------------------------------


def test_resetting_every_factor_revokes_the_recovery_codes(make: Make) -> None:
    world = make()
    world.enrol_totp()
    codes = world.service.generate_recovery_codes("alice").codes
    assert world.service.admin_reset("alice", admin_id="root") == 1
    assert world.service.recovery_codes_left("alice") == 0
    [revoked] = world.of_type(EventType.RECOVERY_CODES_REVOKED)
    assert (revoked.reason, revoked.actor, revoked.data["unused"]) == ("admin_reset", "root", 10)
    assert not world.service.verify_recovery_code("alice", codes[1]).accepted


def test_an_explicit_option_keeps_the_recovery_codes(make: Make) -> None:
    world = make()
    world.enrol_totp()
    world.service.generate_recovery_codes("alice")
    world.service.admin_reset("alice", admin_id="root", keep_recovery_codes=True)
    assert world.service.recovery_codes_left("alice") == 10
    assert world.of_type(EventType.RECOVERY_CODES_REVOKED) == []


def test_disabling_the_last_factor_revokes_but_not_while_one_is_left(make: Make) -> None:
    world = make()
    first, key = world.enrol_totp()
    second, _ = world.enrol_totp()
    world.service.generate_recovery_codes("alice")
    world.service.disable("alice", first, step_up_code=totp(key, world.now))
    assert world.service.recovery_codes_left("alice") == 10  # the second one is left
    world.service.disable("alice", second, by_admin="root")
    assert world.service.recovery_codes_left("alice") == 0
    [revoked] = world.of_type(EventType.RECOVERY_CODES_REVOKED)
    assert (revoked.reason, revoked.actor) == ("disabled", "root")


# -- SMS and email factors as credentials ----------------------------------------------------

PHONE = "+1 555 010 0167"


def _enrol_sms(world: World, user: str = "alice", destination: str = PHONE) -> Any:
    enrolment = world.service.begin_enrolment(user, kind="sms", destination=destination)
    assert world.sender.sent[-1].destination == destination
    assert world.sender.sent[-1].purpose == "phone_confirmation"
    return enrolment


def test_an_sms_factor_is_sealed_masked_confirmed_and_used_for_login(make: Make) -> None:
    world = make()
    enrolment = _enrol_sms(world)
    assert (enrolment.destination, enrolment.secret, enrolment.uri) == ("***67", "", "")
    stored = world.store.get(enrolment.credential_id)
    assert b"0167" not in stored.sealed_key and b"555" not in stored.sealed_key
    [info] = world.service.list_credentials("alice")
    assert (info.kind, info.state, info.destination) == ("sms", CredentialState.PENDING, "***67")
    result = world.service.confirm_enrolment("alice", enrolment.credential_id, world.last_code())
    assert result.accepted and result.factor == "sms_code"
    assert world.of_type(EventType.MFA_ENABLED)
    [info] = world.service.list_credentials("alice")
    assert info.state == CredentialState.ACTIVE and info.can_authenticate
    # Login: the host names the factor; the code goes to the number the store holds.
    challenge = world.service.send_factor_code("alice", enrolment.credential_id, purpose="login")
    assert world.sender.sent[-1].destination == PHONE
    login = world.service.verify_oob_code("alice", challenge, world.last_code(), "login")
    assert login.accepted and login.factor == "sms_code"
    # An OTP verify does not treat the number as a key.
    assert world.service.verify("alice", "123456").reason == VerifyReason.NO_CREDENTIAL
    text = " ".join(repr(e) for e in world.events.events)
    assert "0100167" not in text and "555 010" not in text


def test_sms_confirmation_code_can_be_sent_again_and_the_old_one_dies(make: Make) -> None:
    world = make()
    enrolment = _enrol_sms(world)
    first = world.last_code()
    world.clock.advance(31)  # the resend cooldown
    world.service.send_factor_code("alice", enrolment.credential_id, purpose="phone_confirmation")
    second = world.last_code()
    if first != second:
        stale = world.service.confirm_enrolment("alice", enrolment.credential_id, first)
        assert not stale.accepted
    assert world.service.confirm_enrolment("alice", enrolment.credential_id, second).accepted


def test_wrong_sms_confirmations_have_their_own_limit_and_never_lock_login(make: Make) -> None:
    world = make()
    _, key = world.enrol_totp()
    enrolment = _enrol_sms(world)
    good = world.last_code()
    bad = "000000" if good != "000000" else "111111"
    gone = 0
    for _ in range(10):
        try:
            world.service.confirm_enrolment("alice", enrolment.credential_id, bad)
        except CredentialNotFound:
            gone += 1
    assert gone == 10 - LifecycleConfig().max_confirmation_attempts
    assert _count(world) == 0
    assert world.service.verify("alice", totp(key, world.now)).accepted


def test_admin_confirms_disables_and_unpins_an_email_factor(make: Make) -> None:
    world = make()
    enrolment = world.service.begin_enrolment(
        "alice", kind="email", destination="alice@example.com"
    )
    assert enrolment.destination == "a***@example.com"
    with pytest.raises(IllegalTransition):  # not confirmed yet: no login codes
        world.service.send_factor_code("alice", enrolment.credential_id, purpose="login")
    world.service.admin_confirm("alice", enrolment.credential_id, admin_id="root")
    [confirmed] = world.of_type(EventType.ENROLMENT_CONFIRMED)
    assert confirmed.actor == "root"
    with pytest.raises(IllegalTransition):
        world.service.admin_confirm("alice", enrolment.credential_id, admin_id="root")
    world.service.disable("alice", enrolment.credential_id, by_admin="root")
    with pytest.raises(IllegalTransition):
        world.service.send_factor_code("alice", enrolment.credential_id, purpose="step_up")
    assert world.service.admin_reset(
        "alice", admin_id="root", credential_id=enrolment.credential_id
    )  # unpinned
    assert world.service.list_credentials("alice") == []


def test_sms_factor_gives_step_up_codes_and_counts_in_decide(make: Make) -> None:
    from mfa_core.policy import Factor

    world = make()
    enrolment = _enrol_sms(world)
    world.service.confirm_enrolment("alice", enrolment.credential_id, world.last_code())
    challenge = world.service.send_factor_code("alice", enrolment.credential_id, purpose="step_up")
    assert world.service.step_up("alice", world.last_code(), challenge_id=challenge).accepted
    policy = Policy(mandate_all=True, allowed_factors=frozenset({Factor.SMS_CODE, Factor.TOTP}))
    context = RequestContext(
        user_id="alice", first_factor=FirstFactor.PASSWORD, authenticated_at=world.now
    )
    # The service remembers the SMS check it just made: this sign-in is done.
    assert world.service.decide(policy, context).allowed
    later = attrs.evolve(context, authenticated_at=world.now + 1)
    world.clock.advance(2)
    decision = world.service.decide(policy, later)  # a new sign-in: asked again
    assert decision.outcome == "challenge" and Factor.SMS_CODE in decision.factors


def test_sms_enrolment_needs_a_destination_and_refuses_a_bad_one(make: Make) -> None:

    world = make()
    with pytest.raises(InvalidParameter):
        world.service.begin_enrolment("alice", kind="sms")
    with pytest.raises(InvalidParameter):
        world.service.begin_enrolment("alice", kind="totp", destination=PHONE)
    with pytest.raises(InvalidParameter) as raised:
        world.service.begin_enrolment("alice", kind="sms", destination="not a number \ud800")
    assert "\ud800" not in str(raised.value)
    assert world.service.list_credentials("alice") == []
    assert world.sender.sent == []


# -- clock-skew diagnosis ----------------------------------------------------------------------


def test_skew_diagnosis_reports_the_offset_but_never_accepts(make: Make) -> None:
    world = make()
    _, key = world.enrol_totp()
    behind = totp(key, world.now - 600)  # the phone's clock is ten minutes behind
    plain = world.service.verify("alice", behind)
    assert plain.reason == VerifyReason.INVALID_CODE and plain.skew_steps is None
    world.clock.advance(5)
    diagnosed = world.service.verify("alice", totp(key, world.now - 600), diagnose_skew=True)
    assert not diagnosed.accepted and diagnosed.reason == VerifyReason.INVALID_CODE
    assert diagnosed.user_message == INVALID_CODE_MESSAGE
    assert (diagnosed.skew_steps, diagnosed.skew_seconds) == (-20, -600.0)
    failed = world.of_type(EventType.VERIFICATION_FAILED)[-1]
    assert (failed.data["skew_steps"], failed.data["skew_seconds"]) == (-20, -600.0)
    assert _count(world) == 2  # both attempts counted; nothing accepted


def test_skew_diagnosis_is_bounded_by_its_search_and_budget(make: Make) -> None:
    world = make(skew_search=300.0)
    _, key = world.enrol_totp()
    far = world.service.verify("alice", totp(key, world.now + 3600), diagnose_skew=True)
    assert far.skew_steps is None  # an hour ahead is beyond 300 s
    world2 = make(skew_max_hmacs=10)
    _, key2 = world2.enrol_totp()
    capped = world2.service.verify("alice", totp(key2, world2.now - 600), diagnose_skew=True)
    assert capped.skew_steps is None  # 20 steps away needs ~40 codes, the budget is 10
    world2.clock.advance(5)
    near = world2.service.verify("alice", totp(key2, world2.now - 120), diagnose_skew=True)
    assert near.skew_steps == -4


@given(
    key=st.binary(min_size=20, max_size=20),
    offset=st.integers(-40, 40).filter(lambda o: abs(o) > 1),
    budget=st.integers(1, 120),
)
def test_skew_search_never_computes_more_than_its_budget(
    key: bytes, offset: int, budget: int
) -> None:
    from mfa_core.service._windows import find_skew

    state = HOTPState(key, "SHA1", 6)
    centre = 1_000_000
    candidate = state.code(centre + offset).encode("ascii")
    step, computed = find_skew(state, candidate, centre - 1, centre + 1, 50, budget)
    assert computed <= budget
    if step is not None:
        assert state.code(step).encode("ascii") == candidate
        assert not centre - 1 <= step <= centre + 1
        assert abs(step - centre) <= abs(offset)  # nearest first
    elif 2 * (abs(offset) - 1) <= budget:
        raise AssertionError("a match within the budget was missed")


# -- decide() from the service's own records ------------------------------------------------


def test_decide_knows_the_last_check_and_step_up_freshness(make: Make) -> None:

    world = make()
    _, key = world.enrol_totp()
    signed_in = world.now
    world.clock.advance(60)
    policy = Policy(mandate_all=True, step_up_window=300.0)
    login = RequestContext(
        user_id="alice", first_factor=FirstFactor.PASSWORD, authenticated_at=signed_in
    )
    assert world.service.decide(policy, login).outcome == "challenge"
    assert world.service.verify("alice", totp(key, world.now)).accepted
    assert world.service.decide(policy, login).allowed  # no last_check from the host
    settings = attrs.evolve(login, action=Action.CHANGE_SECURITY_SETTINGS)
    assert world.service.decide(policy, settings).allowed  # fresh step-up
    world.clock.advance(400)
    assert world.service.decide(policy, settings).outcome == "challenge"  # stale now
    codes = world.service.generate_recovery_codes("alice").codes
    assert world.service.step_up("alice", codes[0]).accepted
    assert world.service.decide(policy, settings).allowed  # the recovery code counts


def test_decide_knows_the_last_factor_reset(make: Make) -> None:

    world = make()
    world.enrol_totp()
    remembered_at = world.now
    world.clock.advance(60)
    world.service.admin_reset("alice", admin_id="root")
    world.enrol_totp()
    world.clock.advance(60)
    context = RequestContext(
        user_id="alice",
        first_factor=FirstFactor.PASSWORD,
        authenticated_at=world.now,
        last_check=SecondFactorCheck(factor=Factor.TOTP, at=remembered_at),
        remembered_device=RememberedDevice(issued_at=remembered_at),
    )
    decision = world.service.decide(Policy(mandate_all=True), context)
    assert decision.outcome == "challenge"  # the device was remembered before the reset
    assert Rule.REMEMBERED_DEVICE_IGNORED in decision.rules
    # The history record is not a factor: never listed, never reset, never disabled.
    assert all(i.kind != "history" for i in world.service.list_credentials("alice"))
    kinds = [c.kind for c in world.store.list_for_user("alice")]
    assert "history" in kinds


def test_history_updates_are_exact_under_concurrent_sms_logins(make: Make) -> None:
    world = make(throttle=ThrottleConfig(max_failures=100, base_delay=0.0, max_delay=0.0))
    phone = world.service.begin_enrolment("alice", kind="sms", destination=PHONE)
    world.service.confirm_enrolment("alice", phone.credential_id, world.last_code())
    challenges = []
    for _ in range(8):
        challenge = world.service.send_factor_code("alice", phone.credential_id, purpose="login")
        challenges.append((challenge, world.last_code()))
    barrier = threading.Barrier(len(challenges))
    accepted: list[Any] = []

    def login(challenge: str, code: str) -> None:
        barrier.wait()
        accepted.append(world.service.verify_oob_code("alice", challenge, code, "login").reason)

    threads = [threading.Thread(target=login, args=pair) for pair in challenges]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert accepted == [VerifyReason.OK] * len(challenges)
    records = [c for c in world.store.list_for_user("alice") if c.kind == "history"]
    assert len(records) == 1  # one record per user, whatever the races


def test_a_destination_never_leaks_into_errors_reprs_or_logs(
    make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    from mfa_core.errors import OutOfBandError

    world = make()
    world.sender.failing = True
    with pytest.raises(OutOfBandError) as raised:
        world.service.begin_enrolment("alice", kind="sms", destination=PHONE)
    error = raised.value
    chain = [error, error.__cause__, error.__context__]
    assert all("0167" not in repr(e) and "0167" not in str(e) for e in chain if e is not None)
    assert world.service.list_credentials("alice") == []  # nothing left behind
    world.sender.failing = False
    enrolment = _enrol_sms(world)
    infos = world.service.list_credentials("alice")
    texts = [repr(enrolment), repr(infos), repr(world.store.get(enrolment.credential_id))]
    texts += [r.getMessage() for r in caplog.records]
    texts += [repr(e) for e in world.events.events]
    assert not any("0167" in t or "555 010" in t for t in texts)


def test_disable_takes_an_sms_step_up_code(make: Make) -> None:
    world = make()
    cred_id, _ = world.enrol_totp()
    phone = _enrol_sms(world)
    world.service.confirm_enrolment("alice", phone.credential_id, world.last_code())
    challenge = world.service.send_factor_code("alice", phone.credential_id, purpose="step_up")
    with pytest.raises(StepUpRequired):
        world.service.disable(
            "alice", cred_id, step_up_code="000000", step_up_challenge_id="not-the-challenge"
        )
    world.clock.advance(5)
    world.service.disable(
        "alice", cred_id, step_up_code=world.last_code(), step_up_challenge_id=challenge
    )
    states = {i.id: i.state for i in world.service.list_credentials("alice")}
    assert states[cred_id] == CredentialState.DISABLED
    assert states[phone.credential_id] == CredentialState.ACTIVE


@given(ahead=st.integers(0, 11), offset=st.integers(0, 29))
def test_the_derived_totp_check_time_is_never_later_than_the_check(ahead: int, offset: int) -> None:
    # A phone that runs ahead, one more step at every login, until its learned drift is
    # clamped at max_drift (10): decide() must never date a check later than it happened
    # (that would let a check from before a sign-in count for it).
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        world, (facades, _store) = build("sync", "memory", Path(tmp))
        enrolment = world.service.begin_enrolment("alice")
        key = b32decode_key(enrolment.secret)
        world.service.confirm_enrolment("alice", enrolment.credential_id, totp(key, world.now))
        world.clock.advance(offset)
        checked_at = world.now
        for lead in range(1, ahead + 1):
            world.clock.advance(30)
            checked_at = world.now
            result = world.service.verify("alice", totp(key, world.now + 30 * lead))
            assert result.accepted, (lead, result)
        login = RequestContext(
            user_id="alice", first_factor=FirstFactor.PASSWORD, authenticated_at=checked_at + 0.001
        )
        world.clock.advance(60)  # the decision comes later in the session
        decision = world.service.decide(Policy(mandate_all=True), login)
        assert decision.outcome == "challenge", "a check before this sign-in counted for it"
        facades.close()


def test_confirmation_attempt_limit_is_exact_under_500_asyncio_tasks() -> None:
    import asyncio

    from factor_env import T0, CountingSealer

    from mfa_core.aio import AsyncMemoryStore, AsyncMFAService
    from mfa_core.testing import FakeClock

    async def attack() -> tuple[int, int]:
        store = AsyncMemoryStore()
        sealer = CountingSealer()
        service = AsyncMFAService(store, store, sealer, clock=FakeClock(T0))
        pending = await service.begin_enrolment("alice")
        bad = wrong_code([b32decode_key(pending.secret)], T0)
        sealer.unseals = 0

        async def one() -> object:
            try:
                return await service.confirm_enrolment("alice", pending.credential_id, bad)
            except CredentialNotFound:
                return "gone"

        results = await asyncio.gather(*(one() for _ in range(500)))
        assert all(r == "gone" or not r.accepted for r in results)  # type: ignore[union-attr]
        return sealer.unseals, len(await service.list_credentials("alice"))

    unseals, left = asyncio.run(attack())
    assert unseals == LifecycleConfig().max_confirmation_attempts
    assert left == 0
