"""Scenario table for mfa_core.policy: each product behaviour from issue 5, as data.

Every row names the product, the behaviour, the policy, the request and what the
decision must be: the outcome, the exact ordered rule ids, and (where it matters) the
acceptable or enrolable factors, the renewal nudge and the grace-period deadline.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest

from mfa_core.errors import ErrorCode, PolicyError
from mfa_core.models import CredentialState
from mfa_core.policy import (
    DEFAULT_ALLOWED_FACTORS,
    Action,
    Decision,
    EnrolledFactor,
    Factor,
    FirstFactor,
    Outcome,
    Policy,
    RememberedDevice,
    RequestContext,
    Rule,
    SecondFactorCheck,
    evaluate,
    explain,
)

NOW = 1_700_000_000.0
DAY = 86400.0
SESSION = NOW - 3600  # a sign-in an hour ago, for step-up rows
ACTIVE = CredentialState.ACTIVE
EXPIRED = CredentialState.EXPIRED
PENDING = CredentialState.PENDING
PENDING_EXPIRED = CredentialState.PENDING_EXPIRED
DISABLED = CredentialState.DISABLED
NONE = CredentialState.NONE
T, H, SMS, EMAIL, REC, KEY = (
    Factor.TOTP,
    Factor.HOTP,
    Factor.SMS_CODE,
    Factor.EMAIL_CODE,
    Factor.RECOVERY_CODE,
    Factor.SECURITY_KEY,
)


def ctx(
    first: FirstFactor = FirstFactor.PASSWORD,
    *,
    factors: dict[Factor, CredentialState] | None = None,
    roles: tuple[str, ...] = (),
    check: tuple[Factor, float] | None = None,
    device_issued: float | None = None,
    authenticated_at: float = NOW - 10,
    **extra: Any,
) -> RequestContext:
    """A request context; by default the sign-in happened 10 s before NOW."""
    return RequestContext(
        user_id="user-1",
        first_factor=first,
        authenticated_at=authenticated_at,
        roles=frozenset(roles),
        factors=tuple(EnrolledFactor(factor=f, state=s) for f, s in (factors or {}).items()),
        last_check=None if check is None else SecondFactorCheck(factor=check[0], at=check[1]),
        remembered_device=None
        if device_issued is None
        else RememberedDevice(issued_at=device_issued),
        **extra,
    )


APP = {T: ACTIVE, REC: ACTIVE}  # authenticator app plus backup/recovery codes

# Product policies -----------------------------------------------------------------------
ANYDESK = Policy()  # 2FA asked after the unattended password; both skips off by default
ANYDESK_SKIPS = Policy(skip_saved_login=True, skip_short_term_password=True)
REALVNC_ALL = Policy(organisation="acme", mandate_all=True)
REALVNC_TECH = Policy(organisation="acme", mandated_roles=frozenset({"technician"}))
REALVNC_GRACE = Policy(
    mandate_all=True, enrolment_grace_period=14 * DAY, mandate_effective_at=NOW - 3 * DAY
)
REMOTEIT = Policy(delegate_federated=True)
REMOTEIT_NO_API_SKIP = Policy(skip_api_keys=False)
RUSTDESK = Policy(allowed_factors=DEFAULT_ALLOWED_FACTORS | {EMAIL})
USEDESK_APP = Policy(
    mandate_all=True, allowed_factors=frozenset({T}), self_enrol_factors=frozenset({T})
)
USEDESK_SMS = Policy(
    mandate_all=True,
    allowed_factors=frozenset({SMS}),
    self_enrol_factors=frozenset(),
    sms_requires_alternative=False,
)


@attrs.frozen
class Row:
    """One scenario: what goes in and what the decision must be."""

    id: str
    policy: Policy
    context: RequestContext
    outcome: Outcome
    rules: tuple[str, ...]
    factors: tuple[Factor, ...] = ()
    renew: tuple[Factor, ...] = ()
    enrol_by: float | None = None
    deferrable: bool = False
    now: float = NOW


CHALLENGE_APP = (T, REC)
L = Rule  # short alias for the table

ROWS = [
    # AnyDesk ----------------------------------------------------------------------------
    Row(
        "anydesk/2fa-after-unattended-password",
        ANYDESK,
        ctx(FirstFactor.UNATTENDED_PASSWORD, factors=APP, action=Action.CONNECT),
        Outcome.CHALLENGE,
        (L.NOT_MANDATED, L.LOGIN_CHALLENGE),
        factors=CHALLENGE_APP,
    ),
    Row(
        "anydesk/code-given-in-this-connection",
        ANYDESK,
        ctx(FirstFactor.UNATTENDED_PASSWORD, factors=APP, action=Action.CONNECT, check=(T, NOW)),
        Outcome.ALLOW,
        (L.NOT_MANDATED, L.LOGIN_DONE),
    ),
    Row(
        "anydesk/check-from-an-earlier-sign-in-does-not-count",
        ANYDESK,
        ctx(FirstFactor.UNATTENDED_PASSWORD, factors=APP, check=(T, NOW - 3600)),
        Outcome.CHALLENGE,
        (L.NOT_MANDATED, L.LOGIN_CHALLENGE),
        factors=CHALLENGE_APP,
    ),
    Row(
        "anydesk/saved-login-token-asked-by-default",
        ANYDESK,
        ctx(FirstFactor.SAVED_LOGIN_TOKEN, factors=APP, action=Action.CONNECT),
        Outcome.CHALLENGE,
        (L.NOT_MANDATED, L.LOGIN_CHALLENGE),
        factors=CHALLENGE_APP,
    ),
    Row(
        "anydesk/saved-login-token-skips-when-allowed",
        ANYDESK_SKIPS,
        ctx(FirstFactor.SAVED_LOGIN_TOKEN, factors=APP, action=Action.CONNECT),
        Outcome.ALLOW,
        (L.SAVED_LOGIN_SKIP, L.NOT_MANDATED),
    ),
    Row(
        "anydesk/short-term-password-asked-by-default",
        ANYDESK,
        ctx(FirstFactor.SHORT_TERM_PASSWORD, factors=APP, action=Action.CONNECT),
        Outcome.CHALLENGE,
        (L.NOT_MANDATED, L.LOGIN_CHALLENGE),
        factors=CHALLENGE_APP,
    ),
    Row(
        "anydesk/reconnect-after-restart-skips-when-allowed",
        ANYDESK_SKIPS,
        ctx(FirstFactor.SHORT_TERM_PASSWORD, factors=APP, action=Action.CONNECT),
        Outcome.ALLOW,
        (L.SHORT_TERM_PASSWORD_SKIP, L.NOT_MANDATED),
    ),
    Row(
        "anydesk/skip-never-covers-a-sensitive-action",
        ANYDESK_SKIPS,
        ctx(FirstFactor.SAVED_LOGIN_TOKEN, factors=APP, action=Action.DISABLE_SECOND_FACTOR),
        Outcome.CHALLENGE,
        (L.SKIP_NOT_FOR_SENSITIVE, L.NOT_MANDATED, L.STEP_UP_REQUIRED),
        factors=CHALLENGE_APP,
    ),
    Row(
        "anydesk/skip-does-not-lift-a-mandate",
        attrs.evolve(ANYDESK_SKIPS, mandate_all=True),
        ctx(FirstFactor.SAVED_LOGIN_TOKEN),
        Outcome.ENROL_REQUIRED,
        (L.SAVED_LOGIN_SKIP, L.MANDATE_ALL, L.ENROL_REQUIRED),
        factors=(KEY, T, H, SMS),
    ),
    Row(
        "anydesk/no-2fa-enabled-nothing-asked",
        ANYDESK,
        ctx(FirstFactor.UNATTENDED_PASSWORD, action=Action.CONNECT),
        Outcome.ALLOW,
        (L.NOT_MANDATED, L.NO_SECOND_FACTOR),
    ),
    Row(
        "anydesk/recovery-key-plus-totp-is-not-two-factors",
        ANYDESK,
        ctx(FirstFactor.RECOVERY_CODE, factors=APP),
        Outcome.DENY,
        (L.NOT_MANDATED, L.SAME_CATEGORY, L.NO_DISTINCT_FACTOR),
    ),
    Row(
        "anydesk/recovery-key-plus-totp-when-overridden",
        attrs.evolve(ANYDESK, require_distinct_categories=False),
        ctx(FirstFactor.RECOVERY_CODE, factors=APP),
        Outcome.CHALLENGE,
        (L.NOT_MANDATED, L.LOGIN_CHALLENGE),
        factors=CHALLENGE_APP,
    ),
    # RealVNC ----------------------------------------------------------------------------
    Row(
        "realvnc/mandate-everyone-includes-the-admin",
        REALVNC_ALL,
        ctx(roles=("admin",), organisation="acme"),
        Outcome.ENROL_REQUIRED,
        (L.MANDATE_ALL, L.ENROL_REQUIRED),
        factors=(KEY, T, H, SMS),
    ),
    Row(
        "realvnc/technicians-only-leaves-others-alone",
        REALVNC_TECH,
        ctx(roles=("viewer",), organisation="acme"),
        Outcome.ALLOW,
        (L.NOT_MANDATED, L.NO_SECOND_FACTOR),
    ),
    Row(
        "realvnc/technician-without-2fa-must-enrol",
        REALVNC_TECH,
        ctx(roles=("technician", "viewer"), organisation="acme"),
        Outcome.ENROL_REQUIRED,
        (L.MANDATE_ROLE, L.ENROL_REQUIRED),
        factors=(KEY, T, H, SMS),
    ),
    Row(
        "realvnc/technician-with-totp-and-backup-codes",
        REALVNC_TECH,
        ctx(roles=("technician",), organisation="acme", factors=APP),
        Outcome.CHALLENGE,
        (L.MANDATE_ROLE, L.LOGIN_CHALLENGE),
        factors=CHALLENGE_APP,
    ),
    Row(
        "realvnc/backup-code-used-in-this-sign-in",
        REALVNC_TECH,
        ctx(roles=("technician",), organisation="acme", factors=APP, check=(REC, NOW - 1)),
        Outcome.ALLOW,
        (L.MANDATE_ROLE, L.LOGIN_DONE),
    ),
    Row(
        "realvnc/unfinished-enrolment",
        REALVNC_ALL,
        ctx(organisation="acme", factors={T: PENDING}),
        Outcome.ENROL_REQUIRED,
        (L.MANDATE_ALL, L.ENROL_PENDING),
        factors=(KEY, T, H, SMS),
    ),
    Row(
        "realvnc/abandoned-enrolment-starts-again",
        REALVNC_ALL,
        ctx(organisation="acme", factors={T: PENDING_EXPIRED}),
        Outcome.ENROL_REQUIRED,
        (L.MANDATE_ALL, L.ENROL_REQUIRED),
        factors=(KEY, T, H, SMS),
    ),
    Row(
        "realvnc/unfinished-enrolment-not-mandated",
        REALVNC_TECH,
        ctx(organisation="acme", factors={T: PENDING}),
        Outcome.ALLOW,
        (L.NOT_MANDATED, L.ENROL_PENDING, L.NO_SECOND_FACTOR),
    ),
    Row(
        "realvnc/backup-codes-alone-are-not-2fa",
        REALVNC_ALL,
        ctx(organisation="acme", factors={T: DISABLED, REC: ACTIVE}),
        Outcome.ENROL_REQUIRED,
        (L.MANDATE_ALL, L.RECOVERY_ONLY, L.ENROL_REQUIRED),
        factors=(KEY, T, H, SMS),
    ),
    Row(
        "realvnc/grace-period-open",
        REALVNC_GRACE,
        ctx(),
        Outcome.ENROL_REQUIRED,
        (L.MANDATE_ALL, L.ENROL_REQUIRED, L.ENROL_GRACE),
        factors=(KEY, T, H, SMS),
        enrol_by=NOW + 11 * DAY,
        deferrable=True,
    ),
    Row(
        "realvnc/grace-period-over",
        REALVNC_GRACE,
        ctx(),
        Outcome.ENROL_REQUIRED,
        (L.MANDATE_ALL, L.ENROL_REQUIRED, L.ENROL_GRACE),
        factors=(KEY, T, H, SMS),
        enrol_by=NOW + 11 * DAY,
        deferrable=False,
        now=NOW + 12 * DAY,
    ),
    Row(
        "realvnc/grace-period-counts-from-joining",
        REALVNC_GRACE,
        ctx(member_since=NOW - DAY),
        Outcome.ENROL_REQUIRED,
        (L.MANDATE_ALL, L.ENROL_REQUIRED, L.ENROL_GRACE),
        factors=(KEY, T, H, SMS),
        enrol_by=NOW + 13 * DAY,
        deferrable=True,
    ),
    Row(
        "realvnc/deny-wins-over-allow-for-another-organisation",
        REALVNC_TECH,
        ctx(roles=("technician",), organisation="other", factors=APP, check=(T, NOW)),
        Outcome.DENY,
        (L.ORGANISATION_MISMATCH, L.MANDATE_ROLE, L.LOGIN_DONE),
    ),
    # remote.it --------------------------------------------------------------------------
    Row(
        "remoteit/api-access-key-never-asked",
        Policy(mandate_all=True),
        ctx(FirstFactor.API_KEY, factors=APP, action=Action.API_CALL),
        Outcome.ALLOW,
        (L.API_KEY_EXEMPT,),
    ),
    Row(
        "remoteit/api-key-cannot-change-security-settings",
        REMOTEIT,
        ctx(FirstFactor.API_KEY, factors=APP, action=Action.CHANGE_SECURITY_SETTINGS),
        Outcome.DENY,
        (L.API_KEY_SENSITIVE,),
    ),
    Row(
        "remoteit/api-key-without-exemption-is-refused",
        REMOTEIT_NO_API_SKIP,
        ctx(FirstFactor.API_KEY, factors=APP, action=Action.API_CALL),
        Outcome.DENY,
        (L.NOT_MANDATED, L.SAME_CATEGORY, L.NO_DISTINCT_FACTOR),
    ),
    Row(
        "remoteit/api-key-without-exemption-mandated-no-factor",
        attrs.evolve(REMOTEIT_NO_API_SKIP, mandate_all=True),
        ctx(FirstFactor.API_KEY, action=Action.API_CALL),
        Outcome.DENY,
        (L.MANDATE_ALL, L.NO_DISTINCT_FACTOR),
    ),
    Row(
        "remoteit/google-sign-in-delegates-2fa",
        attrs.evolve(REMOTEIT, mandate_all=True),
        ctx(FirstFactor.FEDERATED),
        Outcome.ALLOW,
        (L.FEDERATED_DELEGATED,),
    ),
    Row(
        "remoteit/upstream-mfa-trusted-by-default",
        Policy(mandate_all=True),
        ctx(FirstFactor.FEDERATED_MFA),
        Outcome.ALLOW,
        (L.UPSTREAM_MFA,),
    ),
    Row(
        "remoteit/federated-without-upstream-mfa-asked-locally",
        Policy(),
        ctx(FirstFactor.FEDERATED, factors=APP),
        Outcome.CHALLENGE,
        (L.NOT_MANDATED, L.LOGIN_CHALLENGE),
        factors=CHALLENGE_APP,
    ),
    Row(
        "remoteit/upstream-mfa-not-trusted-when-overridden",
        Policy(trust_upstream_mfa=False, mandate_all=True),
        ctx(FirstFactor.FEDERATED_MFA),
        Outcome.ENROL_REQUIRED,
        (L.MANDATE_ALL, L.ENROL_REQUIRED),
        factors=(KEY, T, H, SMS),
    ),
    Row(
        "remoteit/delegation-does-not-cover-sensitive-actions",
        attrs.evolve(REMOTEIT, mandate_all=True),
        ctx(FirstFactor.FEDERATED, action=Action.DISABLE_SECOND_FACTOR),
        Outcome.ENROL_REQUIRED,
        (L.SKIP_NOT_FOR_SENSITIVE, L.MANDATE_ALL, L.ENROL_REQUIRED),
        factors=(KEY, T, H, SMS),
    ),
    Row(
        "remoteit/sms-is-restricted-and-an-app-is-offered",
        REMOTEIT,
        ctx(factors={SMS: ACTIVE, REC: ACTIVE}),
        Outcome.CHALLENGE,
        (L.NOT_MANDATED, L.SMS_RESTRICTED, L.LOGIN_CHALLENGE),
        factors=(SMS, REC),
    ),
    Row(
        "remoteit/app-ranked-before-sms",
        REMOTEIT,
        ctx(factors={SMS: ACTIVE, T: ACTIVE, REC: ACTIVE, KEY: ACTIVE}),
        Outcome.CHALLENGE,
        (L.NOT_MANDATED, L.LOGIN_CHALLENGE),
        factors=(KEY, T, SMS, REC),
    ),
    Row(
        "remoteit/remembered-device-skips-login",
        REMOTEIT,
        ctx(factors=APP, check=(T, NOW - 5 * DAY), device_issued=NOW - 5 * DAY),
        Outcome.ALLOW,
        (L.NOT_MANDATED, L.REMEMBERED_DEVICE),
    ),
    Row(
        "remoteit/remembered-device-too-old",
        REMOTEIT,
        ctx(factors=APP, check=(T, NOW - 40 * DAY), device_issued=NOW - 40 * DAY),
        Outcome.CHALLENGE,
        (L.NOT_MANDATED, L.REMEMBERED_DEVICE_IGNORED, L.LOGIN_CHALLENGE),
        factors=CHALLENGE_APP,
    ),
    Row(
        "remoteit/remembered-device-never-replaces-first-second-factor",
        REMOTEIT,
        ctx(factors=APP, device_issued=NOW - DAY),
        Outcome.CHALLENGE,
        (L.NOT_MANDATED, L.REMEMBERED_DEVICE_IGNORED, L.LOGIN_CHALLENGE),
        factors=CHALLENGE_APP,
    ),
    Row(
        "remoteit/remembered-device-turned-off",
        attrs.evolve(REMOTEIT, remember_device_max_age=0.0),
        ctx(factors=APP, check=(T, NOW - DAY), device_issued=NOW - DAY),
        Outcome.CHALLENGE,
        (L.NOT_MANDATED, L.REMEMBERED_DEVICE_IGNORED, L.LOGIN_CHALLENGE),
        factors=CHALLENGE_APP,
    ),
    Row(
        "remoteit/remembered-device-dated-in-the-future",
        REMOTEIT,
        ctx(factors=APP, check=(T, NOW - DAY), device_issued=NOW + 60),
        Outcome.CHALLENGE,
        (L.NOT_MANDATED, L.REMEMBERED_DEVICE_IGNORED, L.LOGIN_CHALLENGE),
        factors=CHALLENGE_APP,
    ),
    Row(
        "remoteit/remembered-device-not-for-sensitive-actions",
        REMOTEIT,
        ctx(
            factors=APP,
            check=(T, NOW - DAY),
            device_issued=NOW - DAY,
            action=Action.REGENERATE_RECOVERY_CODES,
        ),
        Outcome.CHALLENGE,
        (L.NOT_MANDATED, L.STEP_UP_REQUIRED),
        factors=CHALLENGE_APP,
    ),
    # RustDesk ---------------------------------------------------------------------------
    Row(
        "rustdesk/email-verification-before-totp",
        RUSTDESK,
        ctx(factors={EMAIL: ACTIVE}),
        Outcome.CHALLENGE,
        (L.NOT_MANDATED, L.LOGIN_CHALLENGE),
        factors=(EMAIL,),
    ),
    Row(
        "rustdesk/email-no-longer-used-once-totp-is-on",
        RUSTDESK,
        ctx(factors={EMAIL: ACTIVE, T: ACTIVE, REC: ACTIVE}),
        Outcome.CHALLENGE,
        (L.NOT_MANDATED, L.EMAIL_SUPERSEDED, L.LOGIN_CHALLENGE),
        factors=CHALLENGE_APP,
    ),
    Row(
        "rustdesk/email-still-offered-when-supersession-is-off",
        attrs.evolve(RUSTDESK, email_superseded_by_app=False),
        ctx(factors={EMAIL: ACTIVE, T: ACTIVE}),
        Outcome.CHALLENGE,
        (L.NOT_MANDATED, L.LOGIN_CHALLENGE),
        factors=(T, EMAIL),
    ),
    Row(
        "rustdesk/email-code-after-totp-on-does-not-count",
        RUSTDESK,
        ctx(factors={EMAIL: ACTIVE, T: ACTIVE}, check=(EMAIL, NOW)),
        Outcome.CHALLENGE,
        (L.NOT_MANDATED, L.EMAIL_SUPERSEDED, L.LOGIN_CHALLENGE),
        factors=(T,),
    ),
    Row(
        "rustdesk/email-is-not-a-second-factor-by-default",
        Policy(),
        ctx(factors={EMAIL: ACTIVE}),
        Outcome.ALLOW,
        (L.NOT_MANDATED, L.EMAIL_NOT_COUNTED, L.NO_SECOND_FACTOR),
    ),
    Row(
        "rustdesk/email-only-user-must-enrol-when-mandated",
        Policy(mandate_all=True),
        ctx(factors={EMAIL: ACTIVE}),
        Outcome.ENROL_REQUIRED,
        (L.MANDATE_ALL, L.EMAIL_NOT_COUNTED, L.ENROL_REQUIRED),
        factors=(KEY, T, H, SMS),
    ),
    Row(
        "rustdesk/settings-change-with-fresh-check",
        RUSTDESK,
        ctx(
            factors=APP,
            check=(T, NOW - 240),
            action=Action.CHANGE_SECURITY_SETTINGS,
            authenticated_at=SESSION,
        ),
        Outcome.ALLOW,
        (L.NOT_MANDATED, L.STEP_UP_FRESH),
    ),
    Row(
        "rustdesk/settings-change-needs-step-up-after-5-minutes",
        RUSTDESK,
        ctx(
            factors=APP,
            check=(T, NOW - 360),
            action=Action.CHANGE_SECURITY_SETTINGS,
            authenticated_at=SESSION,
        ),
        Outcome.CHALLENGE,
        (L.NOT_MANDATED, L.STEP_UP_REQUIRED),
        factors=CHALLENGE_APP,
    ),
    Row(
        "rustdesk/step-up-check-from-before-this-session-does-not-count",
        RUSTDESK,
        ctx(factors=APP, check=(T, NOW - 60), action=Action.CHANGE_SECURITY_SETTINGS),
        Outcome.CHALLENGE,
        (L.NOT_MANDATED, L.STEP_UP_REQUIRED),
        factors=CHALLENGE_APP,
    ),
    Row(
        "rustdesk/step-up-window-overridden",
        attrs.evolve(RUSTDESK, step_up_window=600.0),
        ctx(
            factors=APP,
            check=(T, NOW - 360),
            action=Action.CHANGE_SECURITY_SETTINGS,
            authenticated_at=SESSION,
        ),
        Outcome.ALLOW,
        (L.NOT_MANDATED, L.STEP_UP_FRESH),
    ),
    Row(
        "rustdesk/step-up-check-from-the-future-is-not-fresh",
        RUSTDESK,
        ctx(
            factors=APP,
            check=(T, NOW + 30),
            action=Action.CHANGE_SECURITY_SETTINGS,
            authenticated_at=SESSION,
        ),
        Outcome.CHALLENGE,
        (L.NOT_MANDATED, L.STEP_UP_REQUIRED),
        factors=CHALLENGE_APP,
    ),
    Row(
        "rustdesk/login-is-not-sensitive-unless-configured",
        attrs.evolve(RUSTDESK, sensitive_actions=frozenset({Action.LOGIN})),
        ctx(factors=APP, check=(T, NOW - 400), device_issued=NOW - DAY),
        Outcome.CHALLENGE,
        (L.NOT_MANDATED, L.STEP_UP_REQUIRED),
        factors=CHALLENGE_APP,
    ),
    Row(
        "rustdesk/no-2fa-no-step-up",
        RUSTDESK,
        ctx(action=Action.CHANGE_SECURITY_SETTINGS),
        Outcome.ALLOW,
        (L.NOT_MANDATED, L.STEP_UP_NO_FACTOR),
    ),
    Row(
        "rustdesk/expired-2fa-still-works-but-nudges-renewal",
        RUSTDESK,
        ctx(factors={T: EXPIRED, REC: ACTIVE}),
        Outcome.CHALLENGE,
        (L.NOT_MANDATED, L.EXPIRED_RENEW, L.LOGIN_CHALLENGE),
        factors=CHALLENGE_APP,
        renew=(T,),
    ),
    Row(
        "rustdesk/expired-2fa-nudge-also-after-success",
        RUSTDESK,
        ctx(factors={T: EXPIRED}, check=(T, NOW)),
        Outcome.ALLOW,
        (L.NOT_MANDATED, L.EXPIRED_RENEW, L.LOGIN_DONE),
        renew=(T,),
    ),
    Row(
        "rustdesk/expired-nudge-turned-off",
        attrs.evolve(RUSTDESK, nudge_expired=False),
        ctx(factors={T: EXPIRED}),
        Outcome.CHALLENGE,
        (L.NOT_MANDATED, L.LOGIN_CHALLENGE),
        factors=(T,),
    ),
    # Usedesk ----------------------------------------------------------------------------
    Row(
        "usedesk/authenticator-after-admin-reset-rescan",
        USEDESK_APP,
        ctx(factors={T: NONE}, factors_reset_at=NOW - 60),
        Outcome.ENROL_REQUIRED,
        (L.MANDATE_ALL, L.ENROL_REQUIRED),
        factors=(T,),
    ),
    Row(
        "usedesk/remembered-device-from-before-reset-ignored",
        USEDESK_APP,
        ctx(
            factors={T: ACTIVE},
            check=(T, NOW - 2 * DAY),
            device_issued=NOW - 2 * DAY,
            factors_reset_at=NOW - DAY,
        ),
        Outcome.CHALLENGE,
        (L.MANDATE_ALL, L.REMEMBERED_DEVICE_IGNORED, L.LOGIN_CHALLENGE),
        factors=(T,),
    ),
    Row(
        "usedesk/sms-method-user-not-allowed-in-app-organisation",
        USEDESK_APP,
        ctx(factors={SMS: ACTIVE}),
        Outcome.ENROL_REQUIRED,
        (L.MANDATE_ALL, L.FACTOR_NOT_ALLOWED, L.ENROL_REQUIRED),
        factors=(T,),
    ),
    Row(
        "usedesk/phone-not-confirmed-contact-administrator",
        USEDESK_SMS,
        ctx(factors={SMS: PENDING}),
        Outcome.DENY,
        (L.MANDATE_ALL, L.ENROL_CONTACT_ADMIN),
    ),
    Row(
        "usedesk/no-phone-contact-administrator",
        USEDESK_SMS,
        ctx(),
        Outcome.DENY,
        (L.MANDATE_ALL, L.ENROL_CONTACT_ADMIN),
    ),
    Row(
        "usedesk/session-from-before-the-mandate-must-re-verify",
        attrs.evolve(USEDESK_APP, mandate_first_effective_at=NOW - 3600),
        ctx(factors={T: ACTIVE}, authenticated_at=NOW - DAY, action=Action.CONNECT),
        Outcome.CHALLENGE,
        (L.MANDATE_ALL, L.SESSION_PREDATES_MANDATE, L.LOGIN_CHALLENGE),
        factors=(T,),
    ),
    Row(
        "usedesk/session-after-the-first-mandate-is-not-signed-out-again",
        attrs.evolve(USEDESK_APP, mandate_first_effective_at=NOW - 2 * DAY),
        ctx(factors={T: ACTIVE}, authenticated_at=NOW - DAY, check=(T, NOW - DAY + 5)),
        Outcome.ALLOW,
        (L.MANDATE_ALL, L.LOGIN_DONE),
    ),
    Row(
        "usedesk/phone-confirmed-sms-code-asked",
        USEDESK_SMS,
        ctx(factors={SMS: ACTIVE}),
        Outcome.CHALLENGE,
        (L.MANDATE_ALL, L.SMS_RESTRICTED, L.LOGIN_CHALLENGE),
        factors=(SMS,),
    ),
    Row(
        "usedesk/admin-resetting-a-device-needs-step-up",
        USEDESK_APP,
        ctx(
            factors={T: ACTIVE},
            roles=("admin",),
            check=(T, NOW - 900),
            action=Action.RESET_MEMBER_FACTOR,
            authenticated_at=SESSION,
        ),
        Outcome.CHALLENGE,
        (L.MANDATE_ALL, L.STEP_UP_REQUIRED),
        factors=(T,),
    ),
    Row(
        "usedesk/admin-resetting-a-device-after-fresh-check",
        USEDESK_APP,
        ctx(
            factors={T: ACTIVE},
            roles=("admin",),
            check=(T, NOW - 60),
            action=Action.RESET_MEMBER_FACTOR,
            authenticated_at=SESSION,
        ),
        Outcome.ALLOW,
        (L.MANDATE_ALL, L.STEP_UP_FRESH),
    ),
]


# Phishing-resistant factors (security keys, passkeys): required for chosen roles or actions.
REALVNC_KEYS_FOR_ADMINS = Policy(
    organisation="acme", mandate_all=True, phishing_resistant_roles=frozenset({"admin"})
)
REALVNC_KEYS_FOR_RESETS = Policy(
    organisation="acme",
    mandate_all=True,
    phishing_resistant_actions=frozenset({Action.RESET_MEMBER_FACTOR}),
)
ROWS += [
    Row(
        "realvnc/security-key-offered-first",
        REALVNC_ALL,
        ctx(factors={T: ACTIVE, KEY: ACTIVE, REC: ACTIVE}, organisation="acme"),
        Outcome.CHALLENGE,
        (L.MANDATE_ALL, L.LOGIN_CHALLENGE),
        factors=(KEY, T, REC),
    ),
    Row(
        "realvnc/admin-with-an-app-only-must-enrol-a-security-key",
        REALVNC_KEYS_FOR_ADMINS,
        ctx(factors={T: ACTIVE}, roles=("admin",), organisation="acme"),
        Outcome.ENROL_REQUIRED,
        (
            L.MANDATE_ALL,
            L.PHISHING_RESISTANT_REQUIRED,
            L.PHISHING_RESISTANT_REQUIRED,
            L.ENROL_REQUIRED,
        ),
        factors=(KEY,),
    ),
    Row(
        "realvnc/admin-challenged-for-the-security-key-only",
        REALVNC_KEYS_FOR_ADMINS,
        ctx(factors={T: ACTIVE, KEY: ACTIVE}, roles=("admin",), organisation="acme"),
        Outcome.CHALLENGE,
        (
            L.MANDATE_ALL,
            L.PHISHING_RESISTANT_REQUIRED,
            L.PHISHING_RESISTANT_REQUIRED,
            L.LOGIN_CHALLENGE,
        ),
        factors=(KEY,),
    ),
    Row(
        "realvnc/member-without-the-role-may-use-the-app",
        REALVNC_KEYS_FOR_ADMINS,
        ctx(factors={T: ACTIVE}, roles=("technician",), organisation="acme"),
        Outcome.CHALLENGE,
        (L.MANDATE_ALL, L.LOGIN_CHALLENGE),
        factors=(T,),
    ),
    Row(
        "realvnc/reset-after-an-app-check-needs-the-security-key",
        REALVNC_KEYS_FOR_RESETS,
        ctx(
            factors={T: ACTIVE, KEY: ACTIVE},
            check=(T, NOW - 60),
            action=Action.RESET_MEMBER_FACTOR,
            authenticated_at=SESSION,
            organisation="acme",
        ),
        Outcome.CHALLENGE,
        (
            L.MANDATE_ALL,
            L.PHISHING_RESISTANT_REQUIRED,
            L.PHISHING_RESISTANT_REQUIRED,
            L.STEP_UP_REQUIRED,
        ),
        factors=(KEY,),
    ),
    Row(
        "realvnc/reset-after-a-security-key-check-allowed",
        REALVNC_KEYS_FOR_RESETS,
        ctx(
            factors={T: ACTIVE, KEY: ACTIVE},
            check=(KEY, NOW - 60),
            action=Action.RESET_MEMBER_FACTOR,
            authenticated_at=SESSION,
            organisation="acme",
        ),
        Outcome.ALLOW,
        (
            L.MANDATE_ALL,
            L.PHISHING_RESISTANT_REQUIRED,
            L.PHISHING_RESISTANT_REQUIRED,
            L.STEP_UP_FRESH,
        ),
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_scenario(row: Row) -> None:
    decision = evaluate(row.policy, row.context, row.now)
    assert decision.outcome is row.outcome, explain(decision)
    assert decision.rules == tuple(Rule(r) for r in row.rules), explain(decision)
    assert decision.factors == row.factors
    assert decision.renew == row.renew
    assert decision.enrol_by == row.enrol_by
    assert decision.deferrable is row.deferrable


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_scenario_explained_and_outcome_is_strictest_effect(row: Row) -> None:
    decision = evaluate(row.policy, row.context, row.now)
    effects = [r.effect for r in decision.reasons if r.effect is not None]
    assert effects, "every decision has at least one rule that decided it"
    assert decision.outcome is max(effects, key=lambda o: o.rank)
    text = explain(decision)
    assert text.splitlines()[0].startswith(decision.outcome.value.upper().replace("_", " "))
    for reason in decision.reasons:
        assert reason.rule.value in text
        assert reason.message in text
    # The policy as stored JSON decides the same.
    again = evaluate(Policy.from_json(row.policy.to_json()), row.context, row.now)
    assert again == decision


def test_turning_the_mandate_off_and_on_again_signs_no_one_out() -> None:
    off = Policy(allowed_factors=frozenset({T}), self_enrol_factors=frozenset({T}))
    first_on = off.with_mandate(True, NOW - 10 * DAY)
    assert first_on.mandate_first_effective_at == first_on.mandate_effective_at == NOW - 10 * DAY
    again = first_on.with_mandate(False, NOW - 5 * DAY).with_mandate(True, NOW - DAY)
    assert again.mandate_first_effective_at == NOW - 10 * DAY
    assert again.mandate_effective_at == NOW - DAY
    assert Policy.from_json(again.to_json()) == again
    # Signed in while the mandate was off (after it FIRST took effect): not signed out.
    between = ctx(factors={T: ACTIVE}, authenticated_at=NOW - 3 * DAY, action=Action.CONNECT)
    assert not evaluate(again, between, NOW).reverify_session
    # Signed in before the mandate first took effect, no second factor since: re-verify.
    before = ctx(factors={T: ACTIVE}, authenticated_at=NOW - 11 * DAY, action=Action.CONNECT)
    decision = evaluate(again, before, NOW)
    assert decision.reverify_session and decision.outcome is Outcome.CHALLENGE
    assert decision.to_dict()["reverify_session"] is True
    # ... unless a second factor was checked in that session.
    checked = attrs.evolve(before, last_check=SecondFactorCheck(factor=T, at=NOW - 11 * DAY + 5))
    assert not evaluate(again, checked, NOW).reverify_session


def test_every_rule_is_exercised_by_the_table() -> None:
    seen = {rule for row in ROWS for rule in evaluate(row.policy, row.context, row.now).rules}
    assert seen == set(Rule)


def test_products_each_have_scenarios() -> None:
    products = {row.id.split("/")[0] for row in ROWS}
    assert products == {"anydesk", "realvnc", "remoteit", "rustdesk", "usedesk"}


def test_two_entries_of_one_factor_use_the_best_state() -> None:
    context = RequestContext(
        user_id="u",
        first_factor=FirstFactor.PASSWORD,
        authenticated_at=NOW,
        factors=(
            EnrolledFactor(factor=T, state=EXPIRED),
            EnrolledFactor(factor=T, state=ACTIVE),
        ),
    )
    assert context.state_of(T) is ACTIVE
    assert context.state_of(SMS) is NONE
    decision = evaluate(RUSTDESK, context, NOW)
    assert decision.renew == ()
    assert decision.factors == (T,)


def test_is_mandated() -> None:
    assert REALVNC_ALL.is_mandated(())
    assert REALVNC_TECH.is_mandated({"technician", "viewer"})
    assert not REALVNC_TECH.is_mandated(["viewer"])
    assert not Policy().is_mandated(["technician"])


def test_sms_only_policy_needs_explicit_override() -> None:
    with pytest.raises(PolicyError) as info:
        Policy(allowed_factors=frozenset({SMS, REC}))
    assert info.value.code is ErrorCode.INVALID_POLICY
    assert "allowed_factors" in str(info.value)


def test_contact_admin_message_names_the_unconfirmed_phone() -> None:
    decision = evaluate(USEDESK_SMS, ctx(factors={SMS: PENDING}), NOW)
    text = explain(decision)
    assert "contact your administrator" in text
    assert "phone (SMS) is not confirmed" in text


def test_challenge_lists_factors_best_first() -> None:
    every = dict.fromkeys(Factor, ACTIVE)
    policy = Policy(allowed_factors=frozenset(Factor), email_superseded_by_app=False)
    decision = evaluate(policy, ctx(factors=every), NOW)
    assert decision.factors == (KEY, T, H, SMS, EMAIL, REC)


def test_decision_to_dict_is_plain_data() -> None:
    decision = evaluate(REALVNC_GRACE, ctx(), NOW)
    data = decision.to_dict()
    assert data["outcome"] == "enrol_required"
    assert data["factors"] == ["security_key", "totp", "hotp", "sms_code"]
    assert data["enrol_by"] == NOW + 11 * DAY
    assert data["deferrable"] is True
    assert [r["rule"] for r in data["reasons"]] == [r.value for r in decision.rules]
    assert data["reasons"][1]["effect"] == "enrol_required"
    assert isinstance(decision, Decision)


def test_explain_mentions_grace_deadline_and_renewal() -> None:
    text = explain(evaluate(REALVNC_GRACE, ctx(), NOW))
    assert "grace period until 2023-11-" in text
    text = explain(evaluate(RUSTDESK, ctx(factors={T: EXPIRED}), NOW))
    assert "Renew: authenticator app." in text
    over = explain(evaluate(REALVNC_GRACE, ctx(), NOW + 30 * DAY))
    assert "(grace period over)" in over


ROOT = Path(__file__).resolve().parent.parent


def test_policy_tour_runs_and_exits_zero() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "policy_tour.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "contact your administrator" in result.stdout
    assert "[skip.api_key -> allow]" in result.stdout


def test_json_example_in_docs_loads() -> None:
    text = (ROOT / "docs" / "policy.md").read_text(encoding="utf-8")
    block = text.split("```json\n", 1)[1].split("```", 1)[0]
    policy = Policy.from_json(block)
    assert policy.mandated_roles == {"technician"}
    assert policy.organisation == "acme"
    decision = evaluate(policy, ctx(roles=("technician",), organisation="acme"), NOW)
    assert decision.outcome is Outcome.ENROL_REQUIRED
    assert decision.deferrable
