"""The service's settings: :class:`ServiceConfig`."""

from __future__ import annotations

from typing import Final

import attrs

from .._validate import check_duration as _check_duration
from .._validate import int_in as _int_in
from ..errors import InvalidParameter, MFAError
from ..keys import DEFAULT_KEY_BYTES
from ..lifecycle import LifecycleConfig
from ..oob import OOBConfig
from ..otp import (
    DEFAULT_DIGITS,
    DEFAULT_PERIOD,
    MAX_KEY_BYTES,
    MAX_PERIOD,
    MAX_WINDOW,
    MIN_KEY_BYTES,
    Algorithm,
    parse_algorithm,
)
from ..recovery import RecoveryConfig
from ..throttle import ThrottleConfig
from ..uri import MAX_URI_DIGITS, MIN_URI_DIGITS, build_uri

__all__ = ["MAX_RESYNC_WINDOW", "ServiceConfig"]

_MAX_SKEW_SEARCH: Final = 7 * 86400.0
_MAX_SKEW_HMACS: Final = 100_000

MAX_RESYNC_WINDOW: Final = 1000
"""Largest HOTP resynchronisation window that may be configured."""


@attrs.frozen(kw_only=True)
class ServiceConfig:
    """Settings of :class:`~mfa_core.service.MFAService`; every value is checked on creation.

    Windows and new-credential parameters at the top level, and one part per concern:
    ``lifecycle`` (pending deadline, maximum age, strict expiry), ``throttle`` (growing delay
    and hard lock), ``recovery`` (recovery codes) and ``oob`` (email/SMS codes).

    Out-of-range values raise :class:`~mfa_core.errors.InvalidParameter` (also when attrs
    validators are switched off process-wide: the checks live in ``__attrs_post_init__``).
    """

    issuer: str | None = None
    """Issuer shown by authenticator apps (your product's name); ``None`` leaves it out."""
    look_behind: int = 1
    """TOTP steps accepted before the window centre (0 to 200)."""
    look_ahead: int = 1
    """TOTP steps accepted after the window centre (0 to 200)."""
    max_drift: int = 10
    """Bound on the learned clock drift of a TOTP authenticator, in steps (0 to 200)."""
    hotp_look_ahead: int = 10
    """HOTP counter values accepted after the expected one (0 to 200; RFC 4226 §7.2)."""
    hotp_resync_window: int = 100
    """Counter values searched by :meth:`resync_hotp` (1 to 1000; RFC 4226 §7.4)."""
    lifecycle: LifecycleConfig = attrs.field(factory=LifecycleConfig)
    """Pending deadline, maximum age and strict expiry."""
    throttle: ThrottleConfig = attrs.field(factory=ThrottleConfig)
    """Growing delay and hard lock after consecutive failures."""
    digits: int = DEFAULT_DIGITS
    """Digits of codes for new credentials (6 to 8: what authenticator apps support)."""
    algorithm: Algorithm = attrs.field(default=Algorithm.SHA1, converter=parse_algorithm)
    """HMAC hash of new credentials (SHA1 is what every app supports)."""
    period: int = DEFAULT_PERIOD
    """TOTP time step of new credentials, in seconds (1 to 600)."""
    key_bytes: int = DEFAULT_KEY_BYTES
    """Size of new keys in bytes (16 to 256; 20 = 160 bits, RFC 4226's recommendation)."""
    recovery: RecoveryConfig = attrs.field(factory=RecoveryConfig)
    """How recovery codes are generated and hashed (size, entropy, grouping, Argon2id cost)
    and the "running low" threshold."""
    oob: OOBConfig = attrs.field(factory=OOBConfig)
    """How out-of-band codes are issued, resent and checked: digits, TTL, per-code attempts,
    growing resend cooldown, per-user / per-destination send limits."""
    allow_email_login_with_totp: bool = False
    """Offer email login codes to users who have a usable TOTP/HOTP credential (off by
    default: once an authenticator is on, email login codes are not offered)."""
    skew_search: float = 86400.0
    """Clock-skew diagnosis (``verify(..., diagnose_skew=True)``): how far outside the
    window, in seconds on each side, a refused TOTP code is looked for (default a day;
    0 to 7 days)."""
    skew_max_hmacs: int = 6000
    """Clock-skew diagnosis: at most this many codes are computed per attempt, over all of
    the user's TOTP credentials (default 6000: a day on each side at 30-second steps for
    one credential; 1 to 100000)."""

    def __attrs_post_init__(self) -> None:
        if self.issuer is not None:
            try:
                build_uri(bytes(MIN_KEY_BYTES), account="check", issuer=self.issuer)
            except MFAError:
                raise InvalidParameter(
                    "issuer must be non-empty text without a colon or control characters"
                ) from None
        _int_in(self.look_behind, 0, MAX_WINDOW, "look_behind")
        _int_in(self.look_ahead, 0, MAX_WINDOW, "look_ahead")
        _int_in(self.max_drift, 0, MAX_WINDOW, "max_drift")
        _int_in(self.hotp_look_ahead, 0, MAX_WINDOW, "hotp_look_ahead")
        _int_in(self.hotp_resync_window, 1, MAX_RESYNC_WINDOW, "hotp_resync_window")
        _int_in(self.digits, MIN_URI_DIGITS, MAX_URI_DIGITS, "digits")
        _int_in(self.period, 1, MAX_PERIOD, "period")
        _int_in(self.key_bytes, MIN_KEY_BYTES, MAX_KEY_BYTES, "key_bytes")
        if not isinstance(self.lifecycle, LifecycleConfig):
            raise InvalidParameter("lifecycle must be a LifecycleConfig")
        if not isinstance(self.throttle, ThrottleConfig):
            raise InvalidParameter("throttle must be a ThrottleConfig")
        if not isinstance(self.recovery, RecoveryConfig):
            raise InvalidParameter("recovery must be a RecoveryConfig")
        if not isinstance(self.oob, OOBConfig):
            raise InvalidParameter("oob must be an OOBConfig")
        if type(self.allow_email_login_with_totp) is not bool:
            raise InvalidParameter("allow_email_login_with_totp must be a bool")
        _check_duration(self.skew_search, "skew_search", low=0.0, high=_MAX_SKEW_SEARCH)
        _int_in(self.skew_max_hmacs, 1, _MAX_SKEW_HMACS, "skew_max_hmacs")
