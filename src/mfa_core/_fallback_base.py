"""Shared machinery of the recovery-code and out-of-band flows of
:class:`~mfa_core.service.MFAService`.

Import the public names from :mod:`mfa_core.service`. This private module holds the
settings (:class:`FallbackConfig`), the result types of the two flows (subclasses of
:class:`~mfa_core.service.VerificationResult`, so a host handles every second factor the
same way), and :class:`FallbackBase`: the constructor logic of both front ends (the
optional ports: recovery-code store, out-of-band challenge store, code sender) and the two
keys derived from one host secret.

Keys: the recovery lookup-tag key, the out-of-band code key and the send-counter key (the
keyed hash that names a destination's send counter) are derived from the host's
``secret`` with HKDF-SHA256 (RFC 5869) under distinct ``info`` labels, so one secret serves
all three and none can be computed from another. The secret must stay the same
for the life of the stored data: a different secret makes every stored recovery code and
every pending out-of-band code fail (nothing is accepted by mistake).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Final

import attrs
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ._effects import Credentials, Flow, Port
from ._service_base import (
    ACCEPTED_MESSAGE,
    UNAVAILABLE_MESSAGE,
    ServiceConfig,
    ServiceCore,
    VerificationResult,
    VerifyReason,
    checked,
)
from .errors import InvalidParameter
from .oob import USER_MESSAGE as OOB_USER_MESSAGE
from .oob import OOBConfig, OOBReason
from .otp import check_key
from .ports import Clock, EventSink, Sealer
from .recovery import USER_MESSAGE as RECOVERY_USER_MESSAGE
from .recovery import RecoveryConfig, RecoveryReason

__all__ = [
    "FallbackBase",
    "FallbackConfig",
    "OOBVerificationResult",
    "RecoveryVerificationResult",
]

_TAG_KEY_INFO: Final = b"mfa_core/service/recovery-tag-key/v1"
_OOB_KEY_INFO: Final = b"mfa_core/service/oob-code-key/v1"
_SEND_KEY_INFO: Final = b"mfa_core/service/oob-send-key/v1"


def _message(accepted: bool, reason: VerifyReason, refusal: str) -> str:
    if accepted:
        return ACCEPTED_MESSAGE
    if reason in (VerifyReason.STORE_ERROR, VerifyReason.SEALING_ERROR):
        return UNAVAILABLE_MESSAGE
    return refusal


def _derive(secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


@attrs.frozen(kw_only=True)
class FallbackConfig:
    """Settings of the recovery-code and out-of-band flows of the service.

    ``recovery`` fixes the size, entropy, grouping and Argon2id cost of new recovery-code
    sets and the "running low" threshold (``low_threshold``, default 3). ``oob`` fixes
    the digits, TTL (default 3 minutes, at most 10), per-code attempt limit, growing
    resend cooldown and per-user / per-destination send limits of out-of-band codes.
    ``allow_email_login_with_totp`` lets a user who has a usable authenticator still
    receive login codes by email (off by default: once TOTP is on, email login codes are
    not offered).
    """

    recovery: RecoveryConfig = attrs.field(factory=RecoveryConfig)
    """How recovery codes are generated and hashed."""
    oob: OOBConfig = attrs.field(factory=OOBConfig)
    """How out-of-band codes are issued, resent and checked."""
    allow_email_login_with_totp: bool = False
    """Offer email login codes to users who have a usable TOTP/HOTP credential."""

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.recovery, RecoveryConfig):
            raise InvalidParameter("recovery must be a RecoveryConfig")
        if not isinstance(self.oob, OOBConfig):
            raise InvalidParameter("oob must be an OOBConfig")
        if type(self.allow_email_login_with_totp) is not bool:
            raise InvalidParameter("allow_email_login_with_totp must be a bool")


@attrs.frozen(kw_only=True)
class RecoveryVerificationResult(VerificationResult):
    """The outcome of :meth:`~mfa_core.service.MFAService.verify_recovery_code`.

    ``reason`` is the shared :class:`~mfa_core.service.VerifyReason` (``ok``,
    ``invalid_code``, ``malformed``, ``replayed`` for a code used before, ``throttled``,
    ``locked``, ``no_credential`` when the user has no codes, ``store_error``);
    ``recovery_reason`` is the finer :class:`~mfa_core.recovery.RecoveryReason` when the
    attempt got that far. Users see one message for every refusal about the code.
    """

    recovery_reason: RecoveryReason | None = None
    """Why the recovery check decided as it did (``None`` when it did not run)."""
    codes_left: int | None = None
    """Unused codes left after a successful use."""
    running_low: bool = False
    """``codes_left`` is at or below the configured threshold: offer a new set."""
    regenerate_recommended: bool = False
    """The set was hashed with outdated Argon2id parameters (or is running low): offer
    (or, by policy, require) a new set."""

    @property
    def user_message(self) -> str:
        """ "code accepted"; "invalid recovery code" for every refusal about the code; the
        "unavailable" text when a store failed."""
        return _message(self.accepted, self.reason, RECOVERY_USER_MESSAGE)


@attrs.frozen(kw_only=True)
class OOBVerificationResult(VerificationResult):
    """The outcome of :meth:`~mfa_core.service.MFAService.verify_oob_code`.

    ``reason`` is the shared :class:`~mfa_core.service.VerifyReason`; ``oob_reason`` is
    the audit reason of :class:`~mfa_core.oob.OOBReason` (``expired``, ``used``,
    ``wrong_purpose``, ``wrong_challenge``, ``wrong_code``, ``too_many_attempts``,
    ``malformed``) when the attempt got that far. Users see one message,
    "invalid or expired code", for every refusal about the code.
    """

    oob_reason: OOBReason | None = None
    """Why the out-of-band check decided as it did (``None`` when it did not run)."""
    challenge_id: str | None = None
    """The challenge the attempt was for."""

    @property
    def user_message(self) -> str:
        """ "code accepted"; "invalid or expired code" for every refusal about the code;
        the "unavailable" text when a store failed."""
        return _message(self.accepted, self.reason, OOB_USER_MESSAGE)


class FallbackBase(ServiceCore):
    """The keys and settings of the recovery-code and out-of-band flows, and the one
    constructor logic both front ends share (port checks, keys derived from the secret)."""

    __slots__ = ("_fallback", "_oob_key", "_send_key", "_tag_key")

    def _configure(
        self,
        ports: Sequence[tuple[Port, object, type]],
        check: Callable[[Iterable[tuple[object, type, str]]], None],
        sealer: Sealer,
        *,
        clock: Clock | None,
        events: EventSink | None,
        config: ServiceConfig | None,
        secret: bytes | None,
        fallback: FallbackConfig | None,
    ) -> None:
        """Check and keep the ports (``check`` knows blocking from async Protocols; the
        credential store and failure counter are required, the others optional), the
        in-process ports, the settings, and derive the keys from ``secret``."""
        required = (Port.CREDENTIALS, Port.FAILURES)
        check(
            (value, protocol, port.value)
            for port, value, protocol in ports
            if value is not None or port in required
        )
        given = {port: value for port, value, _ in ports}
        self._setup(given, sealer, clock=clock, events=events, config=config)
        fallback = FallbackConfig() if fallback is None else fallback
        if not isinstance(fallback, FallbackConfig):
            raise InvalidParameter("fallback must be a FallbackConfig")
        if given.get(Port.OOB) is not None and given.get(Port.SENDER) is None:
            raise InvalidParameter("out-of-band codes need a sender (a CodeSender)")
        if secret is None and (
            given.get(Port.RECOVERY_CODES) is not None or given.get(Port.OOB) is not None
        ):
            raise InvalidParameter("recovery and out-of-band codes need a host secret")
        raw = None if secret is None else check_key(secret)
        self._fallback = fallback
        self._tag_key = None if raw is None else _derive(raw, _TAG_KEY_INFO)
        self._oob_key = None if raw is None else _derive(raw, _OOB_KEY_INFO)
        self._send_key = None if raw is None else _derive(raw, _SEND_KEY_INFO)

    @property
    def fallback_config(self) -> FallbackConfig:
        """The settings of the recovery-code and out-of-band flows."""
        return self._fallback

    def _has_usable_otp_flow(self, user_id: str, now: float) -> Flow[bool]:
        """Whether the user has a TOTP/HOTP credential that can authenticate now."""
        credentials = yield from checked(Credentials.list_for_user(user_id))
        usable, _ = self._usable(credentials, now)
        return bool(usable)
