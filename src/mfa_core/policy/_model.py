"""The policy's data: factors, actions, rules, the request context, :class:`Policy` and
:class:`Decision` (import them from :mod:`mfa_core.policy`)."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable
from typing import Any, Final, NoReturn

import attrs

from .._validate import is_finite_number as _is_finite_number
from ..errors import ErrorCode, InvalidParameter, PolicyError
from ..models import CredentialState

POLICY_VERSION: Final = 1
"""Version of the serialised policy format written by :meth:`Policy.to_dict`."""
DEFAULT_STEP_UP_WINDOW: Final = 300.0
"""Seconds a second-factor check stays fresh for a sensitive action (5 minutes)."""
DEFAULT_REMEMBER_DEVICE_MAX_AGE: Final = 30 * 86400.0
"""Longest age of a remembered-device token that may skip the login challenge (30 days)."""
MAX_STEP_UP_WINDOW: Final = 86400.0
"""Largest step-up window a policy may set (one day)."""
MAX_DURATION: Final = 400 * 86400.0
"""Largest remembered-device age or enrolment grace period a policy may set (400 days)."""
MAX_ROLES: Final = 256
"""Most roles a policy may mandate, or a request context may carry."""
MAX_NAME_LENGTH: Final = 256
"""Longest role, organisation or user id accepted."""
MAX_FACTORS: Final = 64
"""Most enrolled-factor entries a request context may carry."""
MAX_POLICY_JSON: Final = 64 * 1024
"""Longest policy JSON text :meth:`Policy.from_json` will parse, in characters."""


# ---------------------------------------------------------------------------------------
# Typed domain values
# ---------------------------------------------------------------------------------------


class Factor(enum.StrEnum):
    """A second factor a user can enrol and be challenged for."""

    SECURITY_KEY = "security_key"
    TOTP = "totp"
    HOTP = "hotp"
    SMS_CODE = "sms_code"
    EMAIL_CODE = "email_code"
    RECOVERY_CODE = "recovery_code"

    @property
    def label(self) -> str:
        """A short human name for the factor, for prompts and explanations."""
        return _FACTOR_LABEL[self]

    @property
    def category(self) -> FactorCategory:
        """What kind of proof the factor is (every second factor here is possession)."""
        return FactorCategory.POSSESSION

    @property
    def phishing_resistant(self) -> bool:
        """Whether the factor is phishing-resistant (NIST SP 800-63B-4 §3.2.5): a security
        key or passkey (WebAuthn), bound to the site's origin. Codes can be relayed."""
        return self in PHISHING_RESISTANT_FACTORS


class FactorCategory(enum.StrEnum):
    """The kinds of authentication factor: two factors count only if their kinds differ."""

    KNOWLEDGE = "knowledge"
    POSSESSION = "possession"


class FirstFactor(enum.StrEnum):
    """How the first factor of this request was satisfied."""

    PASSWORD = "password"  # noqa: S105 (a name, not a secret)
    UNATTENDED_PASSWORD = "unattended_password"  # noqa: S105 (a name, not a secret)
    SAVED_LOGIN_TOKEN = "saved_login_token"  # noqa: S105 (a name, not a secret)
    SHORT_TERM_PASSWORD = "short_term_password"  # noqa: S105 (a name, not a secret)
    API_KEY = "api_key"
    FEDERATED = "federated"
    FEDERATED_MFA = "federated_mfa"
    RECOVERY_CODE = "recovery_code"

    @property
    def category(self) -> FactorCategory:
        """The kind of proof this first factor is.

        Passwords are knowledge. A saved-login token and a short-term (reconnect) password
        stand in for the password the user typed earlier, and a federated sign-in is the
        identity provider's password, so they count as knowledge too. An API key and a
        recovery code used in place of the password are possession.
        """
        return _FIRST_FACTOR_CATEGORY[self]


class Action(enum.StrEnum):
    """What the request wants to do."""

    LOGIN = "login"
    CONNECT = "connect"
    API_CALL = "api_call"
    CHANGE_SECURITY_SETTINGS = "change_security_settings"
    DISABLE_SECOND_FACTOR = "disable_second_factor"
    REGENERATE_RECOVERY_CODES = "regenerate_recovery_codes"
    RESET_MEMBER_FACTOR = "reset_member_factor"


class Outcome(enum.StrEnum):
    """The four answers; :attr:`rank` orders them from least to most strict."""

    ALLOW = "allow"
    CHALLENGE = "challenge"
    ENROL_REQUIRED = "enrol_required"
    DENY = "deny"

    @property
    def rank(self) -> int:
        """0 for allow, 1 for challenge, 2 for enrol_required, 3 for deny."""
        return _OUTCOME_RANK[self]


class Rule(enum.StrEnum):
    """Stable ids of the rules that can contribute a :class:`Reason` to a decision."""

    ORGANISATION_MISMATCH = "policy.organisation_mismatch"
    API_KEY_EXEMPT = "skip.api_key"
    SAVED_LOGIN_SKIP = "skip.saved_login"
    SHORT_TERM_PASSWORD_SKIP = "skip.short_term_password"  # noqa: S105 (a name, not a secret)
    UPSTREAM_MFA = "skip.upstream_mfa"
    FEDERATED_DELEGATED = "skip.federated"
    SKIP_NOT_FOR_SENSITIVE = "skip.not_for_sensitive_actions"
    API_KEY_SENSITIVE = "deny.api_key_sensitive_action"
    MANDATE_ALL = "mandate.all_members"
    MANDATE_ROLE = "mandate.role"
    NOT_MANDATED = "mandate.none"
    FACTOR_NOT_ALLOWED = "factors.not_allowed"
    EMAIL_NOT_COUNTED = "factors.email_not_counted"
    EMAIL_SUPERSEDED = "factors.email_superseded"
    SAME_CATEGORY = "factors.same_category"
    NO_DISTINCT_FACTOR = "factors.no_distinct_factor"
    RECOVERY_ONLY = "factors.recovery_code_only"
    SMS_RESTRICTED = "factors.sms_restricted"
    NO_SECOND_FACTOR = "factors.none_enabled"
    EXPIRED_RENEW = "lifecycle.expired"
    ENROL_REQUIRED = "enrol.required"
    ENROL_PENDING = "enrol.pending"
    ENROL_GRACE = "enrol.grace_period"
    ENROL_CONTACT_ADMIN = "enrol.contact_admin"
    LOGIN_DONE = "login.second_factor_done"
    REMEMBERED_DEVICE = "login.remembered_device"
    REMEMBERED_DEVICE_IGNORED = "login.remembered_device_ignored"
    LOGIN_CHALLENGE = "login.second_factor_required"
    STEP_UP_FRESH = "step_up.fresh"
    STEP_UP_REQUIRED = "step_up.required"
    STEP_UP_NO_FACTOR = "step_up.no_factor"
    SESSION_PREDATES_MANDATE = "mandate.session_predates_mandate"
    PHISHING_RESISTANT_REQUIRED = "factors.phishing_resistant_required"


_FACTOR_LABEL: Final = {
    Factor.SECURITY_KEY: "security key",
    Factor.TOTP: "authenticator app",
    Factor.HOTP: "hardware token",
    Factor.SMS_CODE: "phone (SMS)",
    Factor.EMAIL_CODE: "email code",
    Factor.RECOVERY_CODE: "recovery code",
}
_FIRST_FACTOR_CATEGORY: Final = {
    FirstFactor.PASSWORD: FactorCategory.KNOWLEDGE,
    FirstFactor.UNATTENDED_PASSWORD: FactorCategory.KNOWLEDGE,
    FirstFactor.SAVED_LOGIN_TOKEN: FactorCategory.KNOWLEDGE,
    FirstFactor.SHORT_TERM_PASSWORD: FactorCategory.KNOWLEDGE,
    FirstFactor.API_KEY: FactorCategory.POSSESSION,
    FirstFactor.FEDERATED: FactorCategory.KNOWLEDGE,
    FirstFactor.FEDERATED_MFA: FactorCategory.KNOWLEDGE,
    FirstFactor.RECOVERY_CODE: FactorCategory.POSSESSION,
}
_OUTCOME_RANK: Final = {
    Outcome.ALLOW: 0,
    Outcome.CHALLENGE: 1,
    Outcome.ENROL_REQUIRED: 2,
    Outcome.DENY: 3,
}
# Best first: phishing-resistant, then app/token codes, then the restricted SMS channel,
# then email, and the single-use recovery code only as the last fallback.
_STRENGTH: Final[tuple[Factor, ...]] = (
    Factor.SECURITY_KEY,
    Factor.TOTP,
    Factor.HOTP,
    Factor.SMS_CODE,
    Factor.EMAIL_CODE,
    Factor.RECOVERY_CODE,
)
_PRIMARY: Final[tuple[Factor, ...]] = tuple(f for f in _STRENGTH if f is not Factor.RECOVERY_CODE)
_APP_FACTORS: Final[frozenset[Factor]] = frozenset({Factor.SECURITY_KEY, Factor.TOTP, Factor.HOTP})
_UNRESTRICTED: Final = _APP_FACTORS
_USABLE_STATES: Final = frozenset({CredentialState.ACTIVE, CredentialState.EXPIRED})
# Best state first, to merge several entries of the same factor (e.g. two TOTP devices).
_STATE_ORDER: Final = (
    CredentialState.ACTIVE,
    CredentialState.EXPIRED,
    CredentialState.PENDING,
    CredentialState.PENDING_EXPIRED,
    CredentialState.DISABLED,
    CredentialState.NONE,
)

DEFAULT_ALLOWED_FACTORS: Final = frozenset(
    {Factor.SECURITY_KEY, Factor.TOTP, Factor.HOTP, Factor.SMS_CODE, Factor.RECOVERY_CODE}
)
"""Second factors that count by default: everything but email (NIST SP 800-63B-4 §3.1.3.1)."""
DEFAULT_SELF_ENROL_FACTORS: Final = frozenset(_PRIMARY)
"""Factors a user may set up alone when asked to enrol (recovery codes come with them)."""
DEFAULT_SENSITIVE_ACTIONS: Final = frozenset(
    {
        Action.CHANGE_SECURITY_SETTINGS,
        Action.DISABLE_SECOND_FACTOR,
        Action.REGENERATE_RECOVERY_CODES,
        Action.RESET_MEMBER_FACTOR,
    }
)
"""Actions that need a fresh second-factor check (step-up) by default."""
PHISHING_RESISTANT_FACTORS: Final = frozenset({Factor.SECURITY_KEY})
"""The phishing-resistant factors: security keys and passkeys (WebAuthn)."""


# ---------------------------------------------------------------------------------------
# Validation helpers
# ---------------------------------------------------------------------------------------


def _policy_error(name: str, problem: str) -> NoReturn:
    raise PolicyError(f"policy field {name!r}: {problem}", code=ErrorCode.INVALID_POLICY)


def _context_error(name: str, problem: str, *, time: bool = False) -> NoReturn:
    code = ErrorCode.INVALID_TIME if time else ErrorCode.INVALID_PARAMETER
    raise InvalidParameter(f"request context field {name!r}: {problem}", code=code)


def _finite(value: object) -> bool:
    return _is_finite_number(value)  # an int too large for a float is not finite


def _check_time(value: object, name: str) -> None:
    if not _finite(value):
        _context_error(name, "must be a finite number of Unix seconds", time=True)


def _check_name(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_NAME_LENGTH


def _check_now(now: object) -> float:
    if not _finite(now):
        raise InvalidParameter(
            "now must be a finite number of Unix seconds", code=ErrorCode.INVALID_TIME
        )
    return float(now)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------
# The request context
# ---------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class EnrolledFactor:
    """One second factor of the user and its lifecycle state.

    ``state`` uses :class:`~mfa_core.models.CredentialState` for every factor: for a phone
    (SMS) ``PENDING`` means "number not confirmed yet"; for recovery codes ``ACTIVE`` means
    "unused codes are left". ``ACTIVE`` and ``EXPIRED`` factors can be used; ``EXPIRED``
    ones still work but the user is nudged to renew them.
    """

    factor: Factor
    state: CredentialState

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.factor, Factor):
            _context_error("factors", "each entry's factor must be a Factor")
        if not isinstance(self.state, CredentialState):
            _context_error("factors", "each entry's state must be a CredentialState")


@attrs.frozen(kw_only=True)
class SecondFactorCheck:
    """The user's last successful second-factor check: which factor, and when."""

    factor: Factor
    at: float

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.factor, Factor):
            _context_error("last_check", "factor must be a Factor")
        _check_time(self.at, "last_check.at")


@attrs.frozen(kw_only=True)
class RememberedDevice:
    """A remembered-device token the host has verified; ``issued_at`` gives its age."""

    issued_at: float

    def __attrs_post_init__(self) -> None:
        _check_time(self.issued_at, "remembered_device.issued_at")


@attrs.frozen(kw_only=True)
class RequestContext:
    """Everything the policy needs to know about one request. Holds no secrets.

    Who: ``user_id``, ``roles``, ``organisation`` (and ``member_since``, when the user
    joined it, used for an enrolment grace period). How the first factor was satisfied:
    ``first_factor`` at ``authenticated_at``. What: ``action``. The user's second factors
    and their lifecycle states: ``factors``. The last successful second-factor check:
    ``last_check`` (a check at or after ``authenticated_at`` belongs to this sign-in). A
    verified remembered-device token: ``remembered_device``. When an administrator last
    reset the user's factors: ``factors_reset_at`` (older remembered devices stop counting).

    Invalid values raise :class:`~mfa_core.errors.InvalidParameter`.
    """

    user_id: str
    first_factor: FirstFactor
    authenticated_at: float
    action: Action = Action.LOGIN
    roles: frozenset[str] = frozenset()
    organisation: str | None = None
    member_since: float | None = None
    factors: tuple[EnrolledFactor, ...] = ()
    last_check: SecondFactorCheck | None = None
    remembered_device: RememberedDevice | None = None
    factors_reset_at: float | None = None

    def __attrs_post_init__(self) -> None:
        if not _check_name(self.user_id):
            _context_error("user_id", f"must be a non-empty string of at most {MAX_NAME_LENGTH}")
        if not isinstance(self.first_factor, FirstFactor):
            _context_error("first_factor", "must be a FirstFactor")
        _check_time(self.authenticated_at, "authenticated_at")
        if not isinstance(self.action, Action):
            _context_error("action", "must be an Action")
        if not isinstance(self.roles, frozenset) or len(self.roles) > MAX_ROLES:
            _context_error("roles", f"must be a frozenset of at most {MAX_ROLES} role names")
        if not all(_check_name(role) for role in self.roles):
            _context_error("roles", "each role must be a non-empty string")
        if self.organisation is not None and not _check_name(self.organisation):
            _context_error("organisation", "must be None or a non-empty string")
        if self.member_since is not None:
            _check_time(self.member_since, "member_since")
        if not isinstance(self.factors, tuple) or len(self.factors) > MAX_FACTORS:
            _context_error("factors", f"must be a tuple of at most {MAX_FACTORS} entries")
        if not all(isinstance(entry, EnrolledFactor) for entry in self.factors):
            _context_error("factors", "each entry must be an EnrolledFactor")
        if self.last_check is not None and not isinstance(self.last_check, SecondFactorCheck):
            _context_error("last_check", "must be None or a SecondFactorCheck")
        if self.remembered_device is not None and not isinstance(
            self.remembered_device, RememberedDevice
        ):
            _context_error("remembered_device", "must be None or a RememberedDevice")
        if self.factors_reset_at is not None:
            _check_time(self.factors_reset_at, "factors_reset_at")

    def state_of(self, factor: Factor) -> CredentialState:
        """The best lifecycle state among the user's entries for ``factor`` (NONE if absent)."""
        states = {entry.state for entry in self.factors if entry.factor is factor}
        for state in _STATE_ORDER:
            if state in states:
                return state
        return CredentialState.NONE


# ---------------------------------------------------------------------------------------
# The policy
# ---------------------------------------------------------------------------------------


def _check_factor_set(value: object, name: str) -> frozenset[Factor]:
    if not isinstance(value, frozenset) or not all(isinstance(f, Factor) for f in value):
        _policy_error(name, "must be a frozenset of Factor values")
    return value


def _check_duration(value: object, name: str, *, low: float, high: float) -> None:
    if not _finite(value):
        _policy_error(name, "must be a finite number of seconds")
    if not low <= value <= high:  # type: ignore[operator]
        _policy_error(name, f"must be from {low:g} to {high:g} seconds")


_BOOL_FIELDS: Final = (  # the boolean fields of Policy
    "mandate_all",
    "require_distinct_categories",
    "email_superseded_by_app",
    "sms_requires_alternative",
    "skip_saved_login",
    "skip_short_term_password",
    "skip_api_keys",
    "trust_upstream_mfa",
    "delegate_federated",
    "nudge_expired",
)


def _check_phishing_resistance(policy: Policy) -> None:
    roles, actions = policy.phishing_resistant_roles, policy.phishing_resistant_actions
    if not isinstance(roles, frozenset) or len(roles) > MAX_ROLES:
        _policy_error("phishing_resistant_roles", f"must be a set of at most {MAX_ROLES} roles")
    if not all(_check_name(role) for role in roles):
        _policy_error("phishing_resistant_roles", "each role must be a non-empty string")
    if not isinstance(actions, frozenset) or not all(isinstance(a, Action) for a in actions):
        _policy_error("phishing_resistant_actions", "must be a frozenset of Action values")
    if (roles or actions) and not (policy.allowed_factors & PHISHING_RESISTANT_FACTORS):
        _policy_error(
            "allowed_factors",
            "requiring a phishing-resistant factor needs security_key among the allowed factors",
        )


@attrs.frozen(kw_only=True)
class Policy:
    """An organisation's second-factor policy: plain, serialisable data.

    Mandate: ``mandate_all`` (every member, the administrator included) or
    ``mandated_roles`` (e.g. only technicians). Which factors count: ``allowed_factors``
    (email codes only when listed, NIST SP 800-63B-4 §3.1.3.1); ``require_distinct_categories``
    (a possession first factor plus a possession second factor, such as a recovery code
    followed by an authenticator code, is not two factors); ``email_superseded_by_app``
    (email codes are not offered once an app factor is on); ``sms_requires_alternative``
    (SMS is restricted, §3.1.3.3, so an unrestricted factor must be allowed too).
    Enrolment: ``self_enrol_factors`` (others need an administrator: "contact your
    administrator"), ``enrolment_grace_period`` counted from ``mandate_effective_at``.
    Skips (sign-in only, never for sensitive actions): ``skip_saved_login``,
    ``skip_short_term_password``, ``skip_api_keys``, ``trust_upstream_mfa``,
    ``delegate_federated``, ``remember_device_max_age`` (0 turns remembered devices off).
    Step-up: ``sensitive_actions`` need a check no older than ``step_up_window`` seconds.
    ``nudge_expired``: expired credentials still work but the decision asks for renewal.
    ``organisation``: when set, the policy refuses requests for another organisation.
    ``mandate_first_effective_at``: when the mandate FIRST took effect (kept by
    :meth:`with_mandate` when it is turned off and on again); a session established before
    it without a second factor gets a decision with ``reverify_session``.

    Phishing resistance: members with one of ``phishing_resistant_roles``, and every
    request for one of ``phishing_resistant_actions``, need a phishing-resistant factor (a
    security key or passkey, :attr:`Factor.phishing_resistant`); other factors do not count
    for them (such a member is mandated and asked to enrol a key when they have none).

    Invalid values raise :class:`~mfa_core.errors.PolicyError` naming the field.
    """

    organisation: str | None = None
    mandate_all: bool = False
    mandated_roles: frozenset[str] = frozenset()
    allowed_factors: frozenset[Factor] = DEFAULT_ALLOWED_FACTORS
    self_enrol_factors: frozenset[Factor] = DEFAULT_SELF_ENROL_FACTORS
    require_distinct_categories: bool = True
    email_superseded_by_app: bool = True
    sms_requires_alternative: bool = True
    skip_saved_login: bool = False
    skip_short_term_password: bool = False
    skip_api_keys: bool = True
    trust_upstream_mfa: bool = True
    delegate_federated: bool = False
    remember_device_max_age: float = DEFAULT_REMEMBER_DEVICE_MAX_AGE
    step_up_window: float = DEFAULT_STEP_UP_WINDOW
    sensitive_actions: frozenset[Action] = DEFAULT_SENSITIVE_ACTIONS
    enrolment_grace_period: float = 0.0
    mandate_effective_at: float | None = None
    nudge_expired: bool = True
    mandate_first_effective_at: float | None = None
    phishing_resistant_roles: frozenset[str] = frozenset()
    phishing_resistant_actions: frozenset[Action] = frozenset()

    def __attrs_post_init__(self) -> None:
        # Validation lives here (not in attrs validators) so that it cannot be switched off.
        if self.organisation is not None and not _check_name(self.organisation):
            _policy_error("organisation", f"must be null or 1 to {MAX_NAME_LENGTH} characters")
        for name in _BOOL_FIELDS:
            if not isinstance(getattr(self, name), bool):
                _policy_error(name, "must be true or false")
        roles = self.mandated_roles
        if not isinstance(roles, frozenset) or len(roles) > MAX_ROLES:
            _policy_error("mandated_roles", f"must be a set of at most {MAX_ROLES} role names")
        if not all(_check_name(role) for role in roles):
            _policy_error("mandated_roles", "each role must be a non-empty string")
        allowed = _check_factor_set(self.allowed_factors, "allowed_factors")
        enrol = _check_factor_set(self.self_enrol_factors, "self_enrol_factors")
        if Factor.RECOVERY_CODE in enrol:
            _policy_error(
                "self_enrol_factors",
                "must not list recovery_code: recovery codes are issued with another factor",
            )
        if not isinstance(self.sensitive_actions, frozenset) or not all(
            isinstance(a, Action) for a in self.sensitive_actions
        ):
            _policy_error("sensitive_actions", "must be a frozenset of Action values")
        _check_duration(
            self.remember_device_max_age, "remember_device_max_age", low=0.0, high=MAX_DURATION
        )
        _check_duration(self.step_up_window, "step_up_window", low=1.0, high=MAX_STEP_UP_WINDOW)
        _check_duration(
            self.enrolment_grace_period, "enrolment_grace_period", low=0.0, high=MAX_DURATION
        )
        if self.mandate_effective_at is not None and not _finite(self.mandate_effective_at):
            _policy_error("mandate_effective_at", "must be null or finite Unix seconds")
        first = self.mandate_first_effective_at
        if first is not None and not _finite(first):
            _policy_error("mandate_first_effective_at", "must be null or finite Unix seconds")
        if self.enrolment_grace_period > 0 and self.mandate_effective_at is None:
            _policy_error(
                "mandate_effective_at",
                "is required when enrolment_grace_period is set (the grace period starts there)",
            )
        if (
            self.sms_requires_alternative
            and Factor.SMS_CODE in allowed
            and not (allowed & _UNRESTRICTED)
        ):
            _policy_error(
                "allowed_factors",
                "SMS is a restricted authenticator: allow security_key, totp or hotp as well, "
                "or set sms_requires_alternative to false",
            )
        if (self.mandate_all or roles) and not any(f in allowed for f in _PRIMARY):
            _policy_error(
                "allowed_factors",
                "a mandate needs at least one allowed factor other than recovery_code",
            )
        _check_phishing_resistance(self)

    def requires_phishing_resistant(self, roles: Iterable[str], action: Action) -> bool:
        """Whether a request with these roles and this action needs a phishing-resistant
        factor."""
        return action in self.phishing_resistant_actions or not (
            self.phishing_resistant_roles.isdisjoint(roles)
        )

    def with_mandate(self, enabled: bool, now: float) -> Policy:
        """Turn the every-member mandate (``mandate_all``) on or off at ``now``.

        Turning it on sets ``mandate_effective_at`` to ``now`` and, the FIRST time only,
        ``mandate_first_effective_at``: sessions established before that moment without a
        second factor are asked to re-verify (or end), once. Turning it off keeps both
        times, so turning it on again signs no one out. Returns a new policy.
        """
        if not isinstance(enabled, bool):
            _policy_error("mandate_all", "must be true or false")
        at = _check_now(now)
        if not enabled:
            return attrs.evolve(self, mandate_all=False)
        if self.mandate_all:
            return self  # already on: nothing took effect now
        first = self.mandate_first_effective_at
        return attrs.evolve(
            self,
            mandate_all=True,
            mandate_effective_at=at,
            mandate_first_effective_at=at if first is None else first,
        )

    def is_mandated(self, roles: Iterable[str]) -> bool:
        """Whether a member with these roles must have a second factor."""
        return self.mandate_all or not self.mandated_roles.isdisjoint(roles)

    def to_dict(self) -> dict[str, Any]:
        """Return the policy as JSON-compatible plain data (sets as sorted lists)."""
        return {
            "version": POLICY_VERSION,
            "organisation": self.organisation,
            "mandate_all": self.mandate_all,
            "mandated_roles": sorted(self.mandated_roles),
            "allowed_factors": sorted(f.value for f in self.allowed_factors),
            "self_enrol_factors": sorted(f.value for f in self.self_enrol_factors),
            "require_distinct_categories": self.require_distinct_categories,
            "email_superseded_by_app": self.email_superseded_by_app,
            "sms_requires_alternative": self.sms_requires_alternative,
            "skip_saved_login": self.skip_saved_login,
            "skip_short_term_password": self.skip_short_term_password,
            "skip_api_keys": self.skip_api_keys,
            "trust_upstream_mfa": self.trust_upstream_mfa,
            "delegate_federated": self.delegate_federated,
            "remember_device_max_age": self.remember_device_max_age,
            "step_up_window": self.step_up_window,
            "sensitive_actions": sorted(a.value for a in self.sensitive_actions),
            "enrolment_grace_period": self.enrolment_grace_period,
            "mandate_effective_at": self.mandate_effective_at,
            "nudge_expired": self.nudge_expired,
            "mandate_first_effective_at": self.mandate_first_effective_at,
            "phishing_resistant_roles": sorted(self.phishing_resistant_roles),
            "phishing_resistant_actions": sorted(a.value for a in self.phishing_resistant_actions),
        }

    @classmethod
    def from_dict(cls, data: object) -> Policy:
        """Build a policy from :meth:`to_dict` output; missing fields take their defaults.

        Strict: unknown fields, wrong types (``1`` is not a boolean, ``"300"`` is not a
        number), unknown factor or action names and out-of-range values all raise
        :class:`~mfa_core.errors.PolicyError` naming the field, never ``KeyError`` or
        ``TypeError``.
        """
        from ._serialize import policy_from_dict  # noqa: PLC0415 - they import each other

        return policy_from_dict(data)

    def to_json(self) -> str:
        """Return the policy as a JSON object text with sorted keys."""
        return json.dumps(self.to_dict(), sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> Policy:
        """Parse :meth:`to_json` output; malformed JSON raises :class:`PolicyError`.

        Rejects texts over :data:`MAX_POLICY_JSON` characters, ``NaN``/``Infinity`` and
        duplicate keys.
        """
        from ._serialize import policy_from_json  # noqa: PLC0415 - they import each other

        return policy_from_json(text)


# ---------------------------------------------------------------------------------------
# The decision
# ---------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Reason:
    """One step of an explanation: the rule, a sentence for people, what the rule asked.

    ``effect`` is the outcome the rule asked for, or ``None`` for a notice that only
    explains (for example "SMS is a restricted authenticator").
    """

    rule: Rule
    message: str
    effect: Outcome | None = None


@attrs.frozen(kw_only=True)
class Decision:
    """The answer of :func:`evaluate`.

    ``factors``: for ``challenge`` the acceptable factors, best first; for
    ``enrol_required`` the factors the user may set up, best first; empty otherwise.
    ``enrol_by``: the end of the enrolment grace period when the policy has one (it may
    already be past); ``deferrable``: whether ``now`` was still inside it. ``renew``:
    expired factors the user should re-enrol. ``reasons``: every rule that fired, in
    evaluation order.
    """

    outcome: Outcome
    reasons: tuple[Reason, ...]
    factors: tuple[Factor, ...] = ()
    enrol_by: float | None = None
    deferrable: bool = False
    renew: tuple[Factor, ...] = ()
    reverify_session: bool = False
    """The request's session was established before the mandate first took effect,
    without a second factor: the host should end it or have the user re-verify now."""

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The ids of the rules in :attr:`reasons`, in order."""
        return tuple(reason.rule for reason in self.reasons)

    @property
    def allowed(self) -> bool:
        """True only for an ``allow`` outcome."""
        return self.outcome is Outcome.ALLOW

    def to_dict(self) -> dict[str, Any]:
        """Return the decision as JSON-compatible plain data, e.g. for an audit log."""
        return {
            "outcome": self.outcome.value,
            "factors": [f.value for f in self.factors],
            "enrol_by": self.enrol_by,
            "deferrable": self.deferrable,
            "renew": [f.value for f in self.renew],
            "reverify_session": self.reverify_session,
            "reasons": [
                {
                    "rule": r.rule.value,
                    "message": r.message,
                    "effect": None if r.effect is None else r.effect.value,
                }
                for r in self.reasons
            ],
        }
