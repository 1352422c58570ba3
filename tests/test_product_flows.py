"""One scenario per product page: the page's whole flow through the PUBLIC API only.

Each test plays what its page describes (``tests/vectors/product_pages/``), first checking
that the page says what the scenario relies on, on the memory and SQLite stores through
the blocking and the asyncio front ends (``factor_env``). Only public modules are imported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from factor_env import COMBOS, FAST, World, world_fixture

from mfa_core import b32decode_key, totp
from mfa_core.errors import CooldownActive, ErrorCode, OutOfBandError
from mfa_core.models import CredentialState, EventType
from mfa_core.policy import (
    Action,
    Factor,
    FirstFactor,
    Outcome,
    Policy,
    RequestContext,
    SecondFactorCheck,
)
from mfa_core.recovery import RecoveryConfig
from mfa_core.service import VerifyReason

PAGES = Path(__file__).parent / "vectors" / "product_pages"
DAY = 86400.0
Make = Callable[..., World]


@pytest.fixture(params=COMBOS, ids=["-".join(c) for c in COMBOS])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Make]:
    yield from world_fixture(request, tmp_path)


def page(name: str, *phrases: str) -> None:
    """The page still says what the scenario relies on."""
    text = " ".join((PAGES / f"{name}.txt").read_text(encoding="utf-8").split())
    for phrase in phrases:
        assert phrase in text, phrase


def signed_in(world: World, first: FirstFactor, **kw: Any) -> RequestContext:
    return RequestContext(user_id="alice", first_factor=first, authenticated_at=world.now, **kw)


def checked(context: RequestContext, factor: str | None, at: float) -> RequestContext:
    assert factor is not None
    return attrs.evolve(context, last_check=SecondFactorCheck(factor=Factor(factor), at=at))


def test_anydesk(make: Make) -> None:
    page(
        "anydesk",
        "scan the QR-Code or paste the key",
        "make sure that the times on both authenticator and AnyDesk device are synchronized",
        "directly after the unattended access password",
        "Enable for saved login information",
        "The recovery key cannot be retrieved or reset.",
        "scanning the same QR code with more than one authenticator",
    )
    world = make()
    service = world.service
    enrolment = service.begin_enrolment("alice", account="office-pc")
    key = b32decode_key(enrolment.secret)  # two apps scan the same QR code: one key
    assert service.confirm_enrolment("alice", enrolment.credential_id, totp(key, world.now))
    world.clock.advance(30)
    recovery = service.generate_recovery_codes(
        "alice", config=RecoveryConfig.recovery_key(argon2=FAST)
    )
    assert len(recovery.codes) == 1  # one recovery key, shown once
    # Connecting: the code is asked right after the unattended-access password.
    policy = Policy()
    connect = signed_in(world, FirstFactor.UNATTENDED_PASSWORD, action=Action.CONNECT)
    decision = service.decide(policy, connect)
    assert decision.outcome is Outcome.CHALLENGE and Factor.TOTP in decision.factors
    # The phone's clock is off: refused, and the host's diagnosis says by how much.
    skewed = service.verify("alice", totp(key, world.now + 300), diagnose_skew=True)
    assert not skewed.accepted and skewed.user_message == "invalid code"
    assert (skewed.skew_steps, skewed.skew_seconds) == (10, 300.0)
    world.clock.advance(5)
    ok = service.verify("alice", totp(key, world.now))  # clocks synchronised
    assert ok.accepted
    assert service.decide(policy, checked(connect, ok.factor, world.now)).allowed
    # The administrator unticks "Enable for saved login information".
    saved = signed_in(world, FirstFactor.SAVED_LOGIN_TOKEN, action=Action.CONNECT)
    assert not service.decide(policy, saved).allowed
    assert service.decide(attrs.evolve(policy, skip_saved_login=True), saved).allowed
    # Device lost: the recovery key still lets the user in, once.
    world.clock.advance(60)
    assert service.verify_recovery_code("alice", recovery.codes[0]).accepted
    assert not service.verify_recovery_code("alice", recovery.codes[0]).accepted


def test_realvnc(make: Make) -> None:
    page(
        "realvnc",
        "A QR code will be displayed which you can scan with your 2FA/TOTP app",
        "Save the backup codes that are displayed once 2-step verification is enabled",
        "Each backup code can only be used once.",
        "requiring everyone includes you",
        "disable and re-enable 2-step verification on your new device",
    )
    world = make()
    service = world.service
    old_id, _ = world.enrol_totp()
    backup = service.generate_recovery_codes("alice").codes
    team = Policy(organisation="acme", mandate_all=True)
    # A team member without 2-step verification must enable it to participate.
    member = RequestContext(
        user_id="bob",
        first_factor=FirstFactor.PASSWORD,
        authenticated_at=world.now,
        organisation="acme",
    )
    assert service.decide(team, member).outcome is Outcome.ENROL_REQUIRED
    # The phone is lost: sign in with a backup code, once.
    sign_in = signed_in(world, FirstFactor.PASSWORD, organisation="acme")
    used = service.verify_recovery_code("alice", backup[0])
    assert used.accepted and used.factor == "recovery_code"
    assert service.decide(team, checked(sign_in, used.factor, world.now)).allowed
    world.clock.advance(5)
    assert service.verify_recovery_code("alice", backup[0]).reason == VerifyReason.REPLAYED
    # Disable (stepped up with another backup code) and re-enable on the new device.
    world.clock.advance(5)
    service.disable("alice", old_id, step_up_code=backup[1])
    assert world.of_type(EventType.RECOVERY_CODES_REVOKED)  # the old codes went with it
    new_id, new_key = world.enrol_totp()
    fresh = service.generate_recovery_codes("alice").codes
    assert service.verify("alice", totp(new_key, world.now)).accepted
    assert service.verify_recovery_code("alice", fresh[0]).accepted
    states = {i.id: i.state for i in service.list_credentials("alice")}
    assert states == {old_id: CredentialState.DISABLED, new_id: CredentialState.ACTIVE}


def test_rustdesk(make: Make) -> None:
    page(
        "rustdesk",
        "Enable email login verification",
        "When 2FA is enabled, email login verification is no longer used.",
        "6 **backup codes**",
        "modifying account settings requires additional 2FA verification",
        "3 states: not enabled, enabled and expired",
        "2FA can still be used normally after it expires",
    )
    world = make()
    service = world.service
    email = service.begin_enrolment("alice", kind="email", destination="alice@example.com")
    assert service.confirm_enrolment("alice", email.credential_id, world.last_code()).accepted
    challenge = service.send_factor_code("alice", email.credential_id, purpose="login")
    assert service.verify_oob_code("alice", challenge, world.last_code(), "login").accepted
    # Enable 2FA (TOTP) and get 6 backup codes.
    _, key = world.enrol_totp()
    backup = service.generate_recovery_codes("alice", config=RecoveryConfig(count=6, argon2=FAST))
    assert len(backup.codes) == 6
    with pytest.raises(OutOfBandError) as raised:  # email login codes are no longer used
        service.send_factor_code("alice", email.credential_id, purpose="login")
    assert raised.value.code is ErrorCode.OOB_CHANNEL_NOT_ALLOWED
    # Modifying settings needs a fresh 2FA check.
    policy = Policy(allowed_factors=Policy().allowed_factors | {Factor.EMAIL_CODE})
    settings = signed_in(world, FirstFactor.PASSWORD, action=Action.CHANGE_SECURITY_SETTINGS)
    assert service.decide(policy, settings).outcome is Outcome.CHALLENGE
    stepped = service.step_up("alice", totp(key, world.now))
    assert stepped.accepted
    assert service.decide(policy, checked(settings, stepped.factor, world.now)).allowed
    # 180 days later the 2FA is expired: it still works, and renewal is asked for.
    world.clock.advance(181 * DAY)
    states = {i.kind: i.state for i in service.list_credentials("alice")}
    assert states["totp"] == CredentialState.EXPIRED
    late = service.verify("alice", totp(key, world.now))
    assert late.accepted and late.renewal_due
    login = signed_in(world, FirstFactor.PASSWORD)
    assert Factor.TOTP in service.decide(policy, login).renew


def test_remoteit(make: Make) -> None:
    page(
        "remoteit",
        'Select "SMS Number", then click "Next"',
        "The SMS text message authorization code is valid for 3 minutes.",
        "Save the generated recovery code",
        "use an access key and secret",
        "Can't access two-factor device",
        "two-factor rules will be applied by Google",
    )
    world = make()
    service = world.service
    assert service.config.oob.ttl == 180  # "valid for 3 minutes"
    phone = service.begin_enrolment("alice", kind="sms", destination="+1 555 010 0167")
    assert phone.destination == "***67"
    assert service.confirm_enrolment("alice", phone.credential_id, world.last_code()).accepted
    recovery = service.generate_recovery_codes(
        "alice", config=RecoveryConfig.recovery_key(argon2=FAST)
    )
    policy = Policy(delegate_federated=True)
    # Sign-in: email and password, then the SMS code (sent to the number on file).
    login = signed_in(world, FirstFactor.PASSWORD)
    decision = service.decide(policy, login)
    assert decision.outcome is Outcome.CHALLENGE and Factor.SMS_CODE in decision.factors
    challenge = service.send_factor_code("alice", phone.credential_id, purpose="login")
    world.clock.advance(181)  # the code is valid for 3 minutes only
    expired = service.verify_oob_code("alice", challenge, world.last_code(), "login")
    assert not expired.accepted and expired.user_message == "invalid code"
    world.clock.advance(60)
    challenge = service.send_factor_code("alice", phone.credential_id, purpose="login")
    sms = service.verify_oob_code("alice", challenge, world.last_code(), "login")
    assert sms.accepted
    assert service.decide(policy, checked(login, sms.factor, world.now)).allowed
    # "Can't access two-factor device": the recovery code.
    assert service.verify_recovery_code("alice", recovery.codes[0]).accepted
    # The CLI and the API use an access key; Google sign-in leaves 2FA to Google.
    assert service.decide(policy, signed_in(world, FirstFactor.API_KEY)).allowed
    assert service.decide(policy, signed_in(world, FirstFactor.FEDERATED)).allowed


def test_usedesk(make: Make) -> None:
    page(
        "usedesk",
        "the code will be available until you activate the code in the application",
        "all users will be deauthorized",
        "Deauthorization occurs only the first time you enable authentication.",
        "administrator can reset any user`s device in Usedesk",
        "The counter for entering the code is set to 30 sec.",
        "Each time you try to Send Again, the counter is incremented by 30 seconds.",
        "By clicking on it, the employee will be able to unpin his phone number.",
        "Contact the administrator",
        "confirm the phone number by clicking on the gray checkmark",
    )
    world = make()
    service = world.service
    before = signed_in(world, FirstFactor.PASSWORD, action=Action.CONNECT)  # an old session
    world.clock.advance(60)
    # The organisation turns Google Authenticator on: everyone is signed out, once.
    app_only = frozenset({Factor.TOTP})
    policy = Policy(allowed_factors=app_only, self_enrol_factors=app_only).with_mandate(
        True, world.now
    )
    world.clock.advance(60)
    assert service.decide(policy, before).reverify_session
    enrolment = service.begin_enrolment("alice")
    shown = service.enrolment_uri("alice", enrolment.credential_id)  # the QR, shown again
    assert shown.uri == enrolment.uri
    key = b32decode_key(shown.secret)
    assert service.confirm_enrolment("alice", enrolment.credential_id, totp(key, world.now))
    world.clock.advance(30)
    session = signed_in(world, FirstFactor.PASSWORD, action=Action.CONNECT)
    ok = service.verify("alice", totp(key, world.now))
    session = checked(session, ok.factor, world.now)
    # Off and on again: nobody is signed out.
    world.clock.advance(60)
    policy = policy.with_mandate(False, world.now).with_mandate(True, world.now + 1)
    world.clock.advance(60)
    assert service.decide(policy, session).allowed
    assert not service.decide(policy, session).reverify_session
    # A changed phone: the administrator resets the device; the user scans a new QR code.
    assert service.admin_reset("alice", admin_id="admin") == 1
    assert service.decide(policy, session).outcome is Outcome.ENROL_REQUIRED
    world.enrol_totp()
    # SMS authenticator: the phone number must be confirmed (or the admin confirms it).
    sms_only = frozenset({Factor.SMS_CODE})
    sms_policy = Policy(
        mandate_all=True,
        allowed_factors=sms_only,
        self_enrol_factors=frozenset(),
        sms_requires_alternative=False,
    )
    phone = service.begin_enrolment("bob", kind="sms", destination="+7 999 123 45 67")
    bob = RequestContext(
        user_id="bob", first_factor=FirstFactor.PASSWORD, authenticated_at=world.now
    )
    denied = service.decide(sms_policy, bob)
    assert (
        denied.outcome is Outcome.DENY
        and "contact your administrator" in denied.reasons[-1].message
    )
    with pytest.raises(CooldownActive) as cooldown:  # "Send again" after 30 s
        service.send_factor_code("bob", phone.credential_id, purpose="phone_confirmation")
    assert cooldown.value.retry_after == pytest.approx(30)
    world.clock.advance(30)
    service.send_factor_code("bob", phone.credential_id, purpose="phone_confirmation")
    with pytest.raises(CooldownActive) as cooldown:  # then 60 s
        service.send_factor_code("bob", phone.credential_id, purpose="phone_confirmation")
    assert cooldown.value.retry_after == pytest.approx(60)
    service.admin_confirm("bob", phone.credential_id, admin_id="admin")  # the gray checkmark
    assert service.decide(sms_policy, bob).outcome is Outcome.CHALLENGE
    challenge = service.send_factor_code("bob", phone.credential_id, purpose="login")
    assert service.verify_oob_code("bob", challenge, world.last_code(), "login").accepted
    # The administrator unpins the number.
    service.admin_reset("bob", admin_id="admin", credential_id=phone.credential_id)
    assert service.decide(sms_policy, bob).outcome is Outcome.DENY
