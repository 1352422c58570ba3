"""Policy evaluation: when to ask for a second factor, which ones count, and step-up.

A pure engine, no I/O and no clock: a host calls :func:`evaluate` at each decision point
(web login, unattended access, API call, reconnect, a change of security settings) with
the organisation's :class:`Policy`, a :class:`RequestContext` describing the request and
the current time ``now``, and gets back a :class:`Decision`:

- ``allow`` - go on;
- ``challenge`` - ask for one of ``decision.factors`` (best first), then call again with
  the successful check recorded in ``context.last_check``;
- ``enrol_required`` - the user must set up one of ``decision.factors`` first, by
  ``decision.enrol_by`` if the policy grants a grace period;
- ``deny`` - stop (for example "contact your administrator").

Every decision carries the ordered list of :class:`Reason` objects (a stable
:class:`Rule` id, a human sentence and the outcome the rule asked for) that led to it.
The result is the strictest outcome any rule asked for (``allow < challenge <
enrol_required < deny``), so a deny always wins over an allow. Evaluation is
deterministic and total: it never raises for a valid context.

The policy is plain data (``to_dict``/``from_dict``, ``to_json``/``from_json``) so hosts
can store one per organisation; loading is strict and raises :class:`PolicyError`
(``ErrorCode.INVALID_POLICY``) with a message naming the offending field. The defaults
encode the standards listed in ``docs/policy.md``; each one can be overridden.
"""

from __future__ import annotations

import datetime
import enum
import json
from collections.abc import Iterable, Mapping
from typing import Any, Final, NoReturn, TypeVar

import attrs

from ._validate import is_finite_number as _is_finite_number
from .errors import ErrorCode, InvalidParameter, PolicyError
from .models import CredentialState

__all__ = [
    "DEFAULT_REMEMBER_DEVICE_MAX_AGE",
    "DEFAULT_SENSITIVE_ACTIONS",
    "DEFAULT_STEP_UP_WINDOW",
    "POLICY_VERSION",
    "Action",
    "Decision",
    "EnrolledFactor",
    "Factor",
    "FactorCategory",
    "FirstFactor",
    "Outcome",
    "Policy",
    "Reason",
    "RememberedDevice",
    "RequestContext",
    "Rule",
    "SecondFactorCheck",
    "evaluate",
    "explain",
]

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
        }

    @classmethod
    def from_dict(cls, data: object) -> Policy:
        """Build a policy from :meth:`to_dict` output; missing fields take their defaults.

        Strict: unknown fields, wrong types (``1`` is not a boolean, ``"300"`` is not a
        number), unknown factor or action names and out-of-range values all raise
        :class:`~mfa_core.errors.PolicyError` naming the field, never ``KeyError`` or
        ``TypeError``.
        """
        if not isinstance(data, Mapping):
            raise PolicyError("a policy must be a JSON object (a mapping of field names)")
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if not isinstance(key, str):
                raise PolicyError("policy field names must be strings")
            if key == "version":
                if type(value) is not int or value != POLICY_VERSION:
                    _policy_error("version", f"must be {POLICY_VERSION}")
                continue
            parse = _FIELD_PARSERS.get(key)
            if parse is None:
                shown = key if len(key) <= 64 else key[:64] + "..."
                raise PolicyError(f"unknown policy field {shown!r}")
            kwargs[key] = parse(value, key)
        return cls(**kwargs)

    def to_json(self) -> str:
        """Return the policy as a JSON object text with sorted keys."""
        return json.dumps(self.to_dict(), sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> Policy:
        """Parse :meth:`to_json` output; malformed JSON raises :class:`PolicyError`.

        Rejects texts over :data:`MAX_POLICY_JSON` characters, ``NaN``/``Infinity`` and
        duplicate keys.
        """
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError:
                raise PolicyError("policy JSON must be UTF-8") from None
        if not isinstance(text, str):
            raise PolicyError("policy JSON must be str or bytes")
        if len(text) > MAX_POLICY_JSON:
            raise PolicyError(f"policy JSON is longer than {MAX_POLICY_JSON} characters")
        try:
            data = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
        except PolicyError:
            raise
        except (ValueError, RecursionError):
            raise PolicyError("policy is not valid JSON") from None
        return cls.from_dict(data)


_BOOL_FIELDS: Final = (
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


def _reject_constant(name: str) -> NoReturn:
    raise PolicyError(f"policy JSON must not contain {name}")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            shown = key if len(key) <= 64 else key[:64] + "..."
            raise PolicyError(f"policy JSON repeats the key {shown!r}")
        result[key] = value
    return result


def _parse_bool(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        _policy_error(name, "must be true or false")
    return value


def _parse_number(value: object, name: str) -> float:
    if not _finite(value):
        _policy_error(name, "must be a finite number")
    return float(value)  # type: ignore[arg-type]


def _parse_optional_number(value: object, name: str) -> float | None:
    return None if value is None else _parse_number(value, name)


def _parse_optional_name(value: object, name: str) -> str | None:
    if value is None:
        return None
    if not _check_name(value):
        _policy_error(name, f"must be null or 1 to {MAX_NAME_LENGTH} characters")
    return value  # type: ignore[return-value]


def _parse_list(value: object, name: str) -> list[object]:
    if not isinstance(value, list | tuple):
        _policy_error(name, "must be a list")
    if len(value) > MAX_ROLES:
        _policy_error(name, f"must have at most {MAX_ROLES} entries")
    return list(value)


def _parse_roles(value: object, name: str) -> frozenset[str]:
    roles = _parse_list(value, name)
    if not all(_check_name(role) for role in roles):
        _policy_error(name, f"each entry must be a string of 1 to {MAX_NAME_LENGTH} characters")
    return frozenset(roles)  # type: ignore[arg-type]


_E = TypeVar("_E", Factor, Action)


def _parse_enum_set(value: object, name: str, kind: type[_E]) -> frozenset[_E]:
    result: set[_E] = set()
    for item in _parse_list(value, name):
        if not isinstance(item, str):
            _policy_error(name, "each entry must be a string")
        try:
            result.add(kind(item))
        except ValueError:
            known = ", ".join(member.value for member in kind)
            shown = item if len(item) <= 32 else item[:32] + "..."
            _policy_error(name, f"unknown value {shown!r} (known: {known})")
    return frozenset(result)


def _parse_factors(value: object, name: str) -> frozenset[Factor]:
    return _parse_enum_set(value, name, Factor)


def _parse_actions(value: object, name: str) -> frozenset[Action]:
    return _parse_enum_set(value, name, Action)


_FIELD_PARSERS: Final[dict[str, Any]] = {
    "organisation": _parse_optional_name,
    "mandated_roles": _parse_roles,
    "allowed_factors": _parse_factors,
    "self_enrol_factors": _parse_factors,
    "remember_device_max_age": _parse_number,
    "step_up_window": _parse_number,
    "sensitive_actions": _parse_actions,
    "enrolment_grace_period": _parse_number,
    "mandate_effective_at": _parse_optional_number,
    **dict.fromkeys(_BOOL_FIELDS, _parse_bool),
}


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
            "reasons": [
                {
                    "rule": r.rule.value,
                    "message": r.message,
                    "effect": None if r.effect is None else r.effect.value,
                }
                for r in self.reasons
            ],
        }


# ---------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------


class _Trace:
    """Collects reasons; the outcome is the strictest effect asked for."""

    __slots__ = ("reasons",)

    def __init__(self) -> None:
        self.reasons: list[Reason] = []

    def add(self, rule: Rule, message: str, effect: Outcome | None = None) -> None:
        self.reasons.append(Reason(rule=rule, message=message, effect=effect))

    def decide(
        self,
        *,
        factors: tuple[Factor, ...] = (),
        enrol_by: float | None = None,
        deferrable: bool = False,
        renew: tuple[Factor, ...] = (),
    ) -> Decision:
        outcome = Outcome.ALLOW
        for reason in self.reasons:
            if reason.effect is not None and reason.effect.rank > outcome.rank:
                outcome = reason.effect
        return Decision(
            outcome=outcome,
            reasons=tuple(self.reasons),
            factors=factors if outcome in (Outcome.CHALLENGE, Outcome.ENROL_REQUIRED) else (),
            enrol_by=enrol_by if outcome is Outcome.ENROL_REQUIRED else None,
            deferrable=deferrable and outcome is Outcome.ENROL_REQUIRED,
            renew=renew,
        )


def _labels(factors: Iterable[Factor]) -> str:
    return ", ".join(f.label for f in factors)


def _duration(seconds: float) -> str:
    if seconds >= 86400 and seconds % 86400 == 0:
        days = int(seconds // 86400)
        return f"{days} day{'s' if days != 1 else ''}"
    if seconds >= 60 and seconds % 60 == 0:
        minutes = int(seconds // 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds:g} seconds"


def _skip_rule(policy: Policy, first: FirstFactor) -> tuple[Rule, str, bool] | None:
    """The sign-in skip the policy grants this first factor: (rule, sentence, exempt).

    ``exempt`` skips also lift the enrolment mandate, because the second factor is
    handled elsewhere (by the identity provider) or cannot exist (API keys).
    """
    if first is FirstFactor.API_KEY and policy.skip_api_keys:
        return (
            Rule.API_KEY_EXEMPT,
            "API and CLI access keys do not go through a second-factor check.",
            True,
        )
    if first is FirstFactor.FEDERATED_MFA and policy.trust_upstream_mfa:
        return (
            Rule.UPSTREAM_MFA,
            "The identity provider confirmed a second factor at sign-in; it counts here.",
            True,
        )
    if first in (FirstFactor.FEDERATED, FirstFactor.FEDERATED_MFA) and policy.delegate_federated:
        return (
            Rule.FEDERATED_DELEGATED,
            "Second factors for federated sign-in are managed by the identity provider.",
            True,
        )
    if first is FirstFactor.SAVED_LOGIN_TOKEN and policy.skip_saved_login:
        return (
            Rule.SAVED_LOGIN_SKIP,
            "The administrator lets saved-login (automatic login) tokens skip the code.",
            False,
        )
    if first is FirstFactor.SHORT_TERM_PASSWORD and policy.skip_short_term_password:
        return (
            Rule.SHORT_TERM_PASSWORD_SKIP,
            "The administrator lets short-term passwords (e.g. reconnect after a remote "
            "restart) skip the code.",
            False,
        )
    return None


def evaluate(policy: Policy, context: RequestContext, now: float) -> Decision:
    """Decide what this request needs: allow, challenge, enrol_required or deny.

    Pure and deterministic: the same arguments always give the same decision, and no
    clock, store or network is read. Raises only for arguments of the wrong type or a
    non-finite ``now`` (:class:`~mfa_core.errors.InvalidParameter`); every valid context
    gets a decision.
    """
    if not isinstance(policy, Policy):
        raise InvalidParameter("policy must be a Policy")
    if not isinstance(context, RequestContext):
        raise InvalidParameter("context must be a RequestContext")
    return _Evaluation(policy, context, _check_now(now)).run()


class _Evaluation:
    """One evaluation, split into the phases documented in ``docs/policy.md``."""

    __slots__ = (
        "acceptable",
        "context",
        "first",
        "now",
        "policy",
        "primary",
        "renew",
        "sensitive",
        "state",
        "trace",
    )

    def __init__(self, policy: Policy, context: RequestContext, now: float) -> None:
        self.policy = policy
        self.context = context
        self.now = now
        self.trace = _Trace()
        self.first = context.first_factor
        self.sensitive = context.action in policy.sensitive_actions
        self.state = {f: context.state_of(f) for f in _STRENGTH}
        self.primary: tuple[Factor, ...] = ()
        self.acceptable: tuple[Factor, ...] = ()
        self.renew: tuple[Factor, ...] = ()

    def counts(self, factor: Factor) -> bool:
        """Whether ``factor`` counts as a second factor after this first factor."""
        if factor not in self.policy.allowed_factors:
            return False
        return not (
            self.policy.require_distinct_categories and factor.category is self.first.category
        )

    def usable(self, factor: Factor) -> bool:
        """Whether the user has ``factor`` in a state that can be used (active or expired)."""
        return self.state[factor] in _USABLE_STATES

    def run(self) -> Decision:
        """Apply the phases in order; a phase that settles the request returns early."""
        policy, context, trace = self.policy, self.context, self.trace
        if policy.organisation is not None and context.organisation != policy.organisation:
            trace.add(
                Rule.ORGANISATION_MISMATCH,
                "This policy belongs to another organisation; contact your administrator.",
                Outcome.DENY,
            )
        if self.first is FirstFactor.API_KEY and self.sensitive:
            trace.add(
                Rule.API_KEY_SENSITIVE,
                f"'{context.action.value}' needs a fresh second-factor check, which an API "
                "access key cannot give; sign in interactively.",
                Outcome.DENY,
            )
            return trace.decide()
        skip = self.apply_skip()
        if skip is not None and skip[1]:
            return trace.decide()
        mandated = self.apply_mandate()
        if self.inventory():
            return trace.decide()
        if not self.primary:
            return self.without_factor(mandated)
        self.sms_notice()
        if skip is not None:
            # A continuation skip (saved login, short-term password): no challenge.
            return trace.decide(renew=self.renew)
        if self.sensitive:
            return self.step_up()
        return self.sign_in()

    def apply_skip(self) -> tuple[Rule, bool] | None:
        """Record the sign-in skip this first factor gets: (rule, exempt) or None."""
        skip = _skip_rule(self.policy, self.first)
        if skip is None:
            return None
        rule, message, exempt = skip
        if self.sensitive:
            self.trace.add(
                Rule.SKIP_NOT_FOR_SENSITIVE,
                f"Sign-in skips ({rule.value}) do not apply to "
                f"'{self.context.action.value}', which needs a fresh second-factor check.",
            )
            return None
        self.trace.add(rule, message, Outcome.ALLOW)
        return rule, exempt

    def apply_mandate(self) -> bool:
        """Record whether this member must have a second factor, and why."""
        policy = self.policy
        if policy.mandate_all:
            self.trace.add(
                Rule.MANDATE_ALL,
                "This organisation requires a second factor for every member, "
                "administrators included.",
            )
            return True
        matched = sorted(policy.mandated_roles & self.context.roles)
        if matched:
            self.trace.add(
                Rule.MANDATE_ROLE,
                f"This organisation requires a second factor for the role '{matched[0]}'.",
            )
            return True
        self.trace.add(
            Rule.NOT_MANDATED, "This organisation does not require a second factor for you."
        )
        return False

    def inventory(self) -> bool:
        """Work out which of the user's factors count; True if that alone denies."""
        policy, trace = self.policy, self.trace
        superseded = policy.email_superseded_by_app and any(
            self.usable(f) and self.counts(f) for f in _APP_FACTORS
        )
        for factor in _PRIMARY:
            if not self.usable(factor):
                continue
            if factor is Factor.EMAIL_CODE and factor not in policy.allowed_factors:
                trace.add(
                    Rule.EMAIL_NOT_COUNTED,
                    "Email codes do not prove possession of a specific device and do not "
                    "count as a second factor under this policy (NIST SP 800-63B-4 "
                    "§3.1.3.1).",
                )
            elif factor not in policy.allowed_factors:
                trace.add(
                    Rule.FACTOR_NOT_ALLOWED,
                    f"Your {factor.label} is not one of the methods this organisation accepts.",
                )
            elif not self.counts(factor):
                trace.add(
                    Rule.SAME_CATEGORY,
                    f"Your {factor.label} and the {_name(self.first)} you signed in with "
                    "are both something you have, so together they are not two factors.",
                )
            elif factor is Factor.EMAIL_CODE and superseded:
                trace.add(
                    Rule.EMAIL_SUPERSEDED,
                    "Email codes are no longer used once an authenticator is on.",
                )
        self.primary = tuple(
            f
            for f in _PRIMARY
            if self.usable(f) and self.counts(f) and not (f is Factor.EMAIL_CODE and superseded)
        )
        self.acceptable = self.primary
        recovery = Factor.RECOVERY_CODE
        if self.usable(recovery) and self.counts(recovery):
            if self.primary:
                self.acceptable = (*self.primary, recovery)
            else:
                trace.add(
                    Rule.RECOVERY_ONLY,
                    "Recovery codes are a fallback for another factor; on their own they "
                    "do not turn the second factor on.",
                )
        enabled = any(self.usable(f) and f in policy.allowed_factors for f in _PRIMARY)
        if enabled and not self.primary:
            trace.add(
                Rule.NO_DISTINCT_FACTOR,
                f"None of your second factors can be combined with a {_name(self.first)}; "
                "sign in with your password instead.",
                Outcome.DENY,
            )
            return True
        if policy.nudge_expired:
            self.renew = tuple(
                f for f in self.acceptable if self.state[f] is CredentialState.EXPIRED
            )
        for factor in self.renew:
            trace.add(
                Rule.EXPIRED_RENEW,
                f"Your {factor.label} has not been renewed for a long time; it still works, "
                "but please set it up again.",
            )
        return False

    def sms_notice(self) -> None:
        """SMS is restricted: say so when it is the user's only primary factor."""
        if Factor.SMS_CODE not in self.primary or any(f in _UNRESTRICTED for f in self.primary):
            return
        alternatives = [f for f in _PRIMARY if f in _UNRESTRICTED and self.counts(f)]
        if alternatives:
            message = (
                "SMS is a restricted authenticator (NIST SP 800-63B-4 §3.1.3.3); please "
                f"also set up one of: {_labels(alternatives)}."
            )
        else:
            message = (
                "SMS is a restricted authenticator (NIST SP 800-63B-4 §3.1.3.3); this "
                "organisation offers no alternative."
            )
        self.trace.add(Rule.SMS_RESTRICTED, message)

    def check_counts(self) -> SecondFactorCheck | None:
        """The last check, if it was made with a factor that counts now."""
        check = self.context.last_check
        if check is not None and check.factor in self.acceptable:
            return check
        return None

    def step_up(self) -> Decision:
        """A sensitive action: allow only with a check of this session inside the window.

        The check must belong to this session (not before ``authenticated_at``), as for
        sign-in, and be at most ``step_up_window`` seconds old: so marking an action
        sensitive can only make its decision stricter.
        """
        window = self.policy.step_up_window
        action = self.context.action.value
        check = self.check_counts()
        if (
            check is not None
            and self.context.authenticated_at <= check.at <= self.now
            and check.at >= self.now - window
        ):
            self.trace.add(
                Rule.STEP_UP_FRESH,
                f"A second-factor check within the last {_duration(window)} covers '{action}'.",
                Outcome.ALLOW,
            )
        else:
            self.trace.add(
                Rule.STEP_UP_REQUIRED,
                f"'{action}' needs a second-factor check from the last {_duration(window)}.",
                Outcome.CHALLENGE,
            )
        return self.trace.decide(factors=self.acceptable, renew=self.renew)

    def sign_in(self) -> Decision:
        """Sign-in: a check in this sign-in or a remembered device, else challenge."""
        check = self.check_counts()
        if check is not None and self.context.authenticated_at <= check.at <= self.now:
            self.trace.add(
                Rule.LOGIN_DONE,
                "A second factor has been checked in this sign-in.",
                Outcome.ALLOW,
            )
            return self.trace.decide(renew=self.renew)
        if self.context.remembered_device is not None:
            problem = self.remembered_device_problem(self.context.remembered_device)
            if problem is None:
                self.trace.add(
                    Rule.REMEMBERED_DEVICE,
                    "This device was remembered after an earlier second-factor check.",
                    Outcome.ALLOW,
                )
                return self.trace.decide(renew=self.renew)
            self.trace.add(Rule.REMEMBERED_DEVICE_IGNORED, problem)
        self.trace.add(
            Rule.LOGIN_CHALLENGE,
            f"Second factor required: {_labels(self.acceptable)}.",
            Outcome.CHALLENGE,
        )
        return self.trace.decide(factors=self.acceptable, renew=self.renew)

    def remembered_device_problem(self, device: RememberedDevice) -> str | None:
        """Why the remembered device cannot skip the challenge, or None when it can."""
        policy, context = self.policy, self.context
        if policy.remember_device_max_age <= 0:
            return "This organisation does not let devices be remembered."
        if context.last_check is None:
            return (
                "A remembered device never replaces the second factor of a first sign-in; "
                "no second-factor check has been recorded yet."
            )
        if context.factors_reset_at is not None and device.issued_at < context.factors_reset_at:
            return "This device was remembered before your second factor was reset."
        age = self.now - device.issued_at
        if age < 0:
            return "The remembered-device token is dated in the future."
        if age > policy.remember_device_max_age:
            return (
                "This device was remembered more than "
                f"{_duration(policy.remember_device_max_age)} ago."
            )
        return None

    def without_factor(self, mandated: bool) -> Decision:
        """No second factor counts: allow if not mandated, else enrol or deny."""
        policy, trace = self.policy, self.trace
        countable = tuple(f for f in _PRIMARY if self.counts(f))
        enrolable = tuple(f for f in countable if f in policy.self_enrol_factors)
        pending = [f for f in countable if self.state[f] is CredentialState.PENDING]
        if not mandated:
            for factor in pending:
                trace.add(
                    Rule.ENROL_PENDING,
                    f"Setting up your {factor.label} is not finished, so it is not on yet.",
                )
            if self.sensitive:
                trace.add(
                    Rule.STEP_UP_NO_FACTOR,
                    "You have no second factor to confirm this with; consider setting one up.",
                    Outcome.ALLOW,
                )
            else:
                trace.add(
                    Rule.NO_SECOND_FACTOR,
                    "You have no second factor on, and none is required.",
                    Outcome.ALLOW,
                )
            return trace.decide()
        if not countable:
            trace.add(
                Rule.NO_DISTINCT_FACTOR,
                "No second factor this organisation accepts can be combined with a "
                f"{_name(self.first)}; sign in with your password.",
                Outcome.DENY,
            )
            return trace.decide()
        if not enrolable:
            waiting = [f for f in pending if f not in policy.self_enrol_factors]
            detail = (
                f"your {waiting[0].label} is not confirmed yet"
                if waiting
                else "you have no second factor set up"
            )
            trace.add(
                Rule.ENROL_CONTACT_ADMIN,
                f"A second factor is required, {detail}, and only an administrator can set "
                "it up: contact your administrator.",
                Outcome.DENY,
            )
            return trace.decide()
        finishing = [f for f in pending if f in enrolable]
        if finishing:
            trace.add(
                Rule.ENROL_PENDING,
                f"Finish setting up your {finishing[0].label} to continue.",
                Outcome.ENROL_REQUIRED,
            )
        else:
            trace.add(
                Rule.ENROL_REQUIRED,
                f"A second factor is required; set up one of: {_labels(enrolable)}.",
                Outcome.ENROL_REQUIRED,
            )
        enrol_by, deferrable = self.grace_period()
        return trace.decide(factors=enrolable, enrol_by=enrol_by, deferrable=deferrable)

    def grace_period(self) -> tuple[float | None, bool]:
        """The enrolment deadline, if the policy grants a grace period, and whether it is open."""
        policy = self.policy
        if policy.enrolment_grace_period <= 0 or policy.mandate_effective_at is None:
            return None, False
        start = policy.mandate_effective_at
        if self.context.member_since is not None:
            start = max(start, self.context.member_since)
        enrol_by = start + policy.enrolment_grace_period
        if self.now < enrol_by:
            self.trace.add(
                Rule.ENROL_GRACE,
                f"You may postpone this until {_utc(enrol_by)} (enrolment grace period).",
            )
            return enrol_by, True
        self.trace.add(Rule.ENROL_GRACE, "The enrolment grace period has ended.")
        return enrol_by, False


def _name(first: FirstFactor) -> str:
    return first.value.replace("_", " ")


def _utc(seconds: float) -> str:
    try:
        moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return f"{seconds:.0f} Unix seconds"
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def explain(decision: Decision) -> str:
    """Render a decision for people: the outcome, what to do, and the numbered reasons."""
    if not isinstance(decision, Decision):
        raise InvalidParameter("decision must be a Decision")
    outcome = decision.outcome
    if outcome is Outcome.ALLOW:
        head = "ALLOW: go ahead."
    elif outcome is Outcome.CHALLENGE:
        head = f"CHALLENGE: ask for one of: {_labels(decision.factors)}."
    elif outcome is Outcome.ENROL_REQUIRED:
        head = f"ENROL REQUIRED: set up one of: {_labels(decision.factors)}"
        if decision.enrol_by is not None:
            head += (
                f" (grace period until {_utc(decision.enrol_by)})"
                if decision.deferrable
                else " (grace period over)"
            )
        head += "."
    else:
        head = "DENY: access refused."
    lines = [head]
    for number, reason in enumerate(decision.reasons, start=1):
        effect = "" if reason.effect is None else f" -> {reason.effect.value}"
        lines.append(f"  {number}. [{reason.rule.value}{effect}] {reason.message}")
    if decision.renew:
        lines.append(f"  Renew: {_labels(decision.renew)}.")
    return "\n".join(lines)
