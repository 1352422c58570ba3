"""Out-of-band one-time codes (email / SMS): issue, resend and check.

Pure, I/O-free: time is the ``now`` argument (Unix seconds); randomness comes from
:mod:`secrets` only when a code or challenge id is created. Delivery goes through the
host's ``CodeSender`` port; storage through the service's store. This module only makes
codes and decisions.

* :func:`issue` draws a uniform numeric code (6 to 8 digits, :func:`secrets.randbelow`,
  no modulo bias) bound to one challenge id and one :class:`OOBPurpose`, and returns the
  plain code (for the sender) with an :class:`OOBRecord` to store. The record holds only
  a keyed hash: ``HMAC-SHA256(key, label || challenge id || purpose || code)``, so a
  stolen table without the host key does not reveal codes, and a code issued for one
  challenge or purpose never matches another.
* :func:`resend` issues a new code for the same challenge and kills the old one (the new
  record, ``generation + 1``, replaces it). Resends have a growing cooldown (Usedesk):
  the ``n``-th resend (``n = 1, 2, ...``) is allowed ``resend_cooldown +
  (n - 1) * resend_cooldown_step`` seconds after the previous send, i.e. 30 s, then 60 s,
  then 90 s, ... with the defaults. Earlier, :class:`~mfa_core.errors.CooldownActive` is
  raised with ``retry_after``. A resend gives the new code fresh per-code attempts; the
  per-user failure counter (kept by the service) is never reset by a resend.
* :func:`send_window_for` gives the fixed window a send falls in, and
  :func:`user_send_key` / :func:`destination_send_key` the opaque counter keys the service
  counts sends under (``OOBConfig.max_sends_per_user`` / ``max_sends_per_destination`` per
  ``send_window``): the destination key is a keyed hash of the normalised address or
  number (:func:`normalize_destination`), so a store never sees it.
* :func:`check` decides an attempt and returns the record to write back (attempts + 1
  on a wrong code, ``used`` on success). Every refusal has an :class:`OOBReason` for
  audit; the user sees one :data:`USER_MESSAGE`.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from typing import Final

import attrs

from ._validate import check_id as _check_text_id
from ._validate import check_time as _check_time
from ._validate import int_in as _int_in
from ._validate import is_utf8 as _is_utf8
from .errors import CooldownActive, ErrorCode, IllegalTransition, InvalidParameter
from .keys import random_id
from .otp import check_key, normalize_code

__all__ = [
    "DEFAULT_DIGITS",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_RESEND_COOLDOWN",
    "DEFAULT_RESEND_COOLDOWN_STEP",
    "DEFAULT_SEND_LIMIT",
    "DEFAULT_SEND_WINDOW",
    "DEFAULT_TTL",
    "MAX_ATTEMPTS_LIMIT",
    "MAX_DIGITS",
    "MAX_SEND_KEY",
    "MAX_SEND_LIMIT",
    "MAX_SEND_WINDOW",
    "MAX_TTL",
    "MIN_DIGITS",
    "MIN_SEND_WINDOW",
    "USER_MESSAGE",
    "IssuedCode",
    "OOBChannel",
    "OOBCheck",
    "OOBConfig",
    "OOBPurpose",
    "OOBReason",
    "OOBRecord",
    "check",
    "code_hash",
    "destination_hash",
    "destination_matches",
    "destination_send_key",
    "issue",
    "mask_destination",
    "normalize_destination",
    "parse_purpose",
    "resend",
    "resend_available_at",
    "send_window_for",
    "user_send_key",
]

MIN_DIGITS: Final = 6
"""Fewest digits of an out-of-band code."""
MAX_DIGITS: Final = 8
"""Most digits of an out-of-band code."""
DEFAULT_DIGITS: Final = 6
"""Digits of a code unless configured otherwise."""
DEFAULT_TTL: Final = 180
"""Seconds a code stays valid unless configured otherwise (3 minutes)."""
MAX_TTL: Final = 600
"""Longest validity a code may be configured with (10 minutes)."""
DEFAULT_MAX_ATTEMPTS: Final = 5
"""Wrong attempts one code tolerates before it is refused even when right."""
MAX_ATTEMPTS_LIMIT: Final = 20
"""Highest per-code attempt limit that may be configured."""
DEFAULT_RESEND_COOLDOWN: Final = 30
"""Seconds before the first resend is allowed."""
DEFAULT_RESEND_COOLDOWN_STEP: Final = 30
"""Seconds the cooldown grows by with each further resend."""
DEFAULT_SEND_WINDOW: Final = 3600
"""Seconds of the fixed window in which sends are counted (one hour)."""
MIN_SEND_WINDOW: Final = 60
"""Shortest send window that may be configured."""
MAX_SEND_WINDOW: Final = 86400
"""Longest send window that may be configured (one day)."""
DEFAULT_SEND_LIMIT: Final = 10
"""Codes sent per user, and per destination, in one window unless configured otherwise."""
MAX_SEND_LIMIT: Final = 1000
"""Highest per-window send limit that may be configured."""
MAX_SEND_KEY: Final = 128
"""Longest send-counter key (characters) a store must accept."""
USER_MESSAGE: Final = "invalid code"
"""The one message a user sees for every refused attempt, whatever the reason."""

_MAX_COOLDOWN: Final = 3600
_MAX_ID: Final = 128
_MAX_USER_ID: Final = 256
_ASCII_SPACE: Final = " \t\n\r\x0b\x0c"
_MAX_DESTINATION: Final = 320
_HASH_LABEL: Final = b"mfa_core/oob-code/v1\x00"
_SEND_USER_LABEL: Final = b"mfa_core/oob-send-user/v1\x00"
_SEND_DESTINATION_LABEL: Final = b"mfa_core/oob-send-destination/v1\x00"
_DESTINATION_LABEL: Final = b"mfa_core/oob-destination/v1\x00"
_CHALLENGE_RE: Final = re.compile(r"[A-Za-z0-9_.:-]{1,128}", re.ASCII)
_PHONE_RE: Final = re.compile(r"\+?[0-9]{6,15}", re.ASCII)
_PHONE_PUNCTUATION: Final = str.maketrans(dict.fromkeys(" -.()"))
_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


class OOBChannel(enum.StrEnum):
    """How a code is delivered."""

    EMAIL = "email"
    SMS = "sms"


class OOBPurpose(enum.StrEnum):
    """What a code is for; a code issued for one purpose never works for another."""

    LOGIN = "login"
    STEP_UP = "step_up"
    RESET = "reset"
    PHONE_CONFIRMATION = "phone_confirmation"


class OOBReason(enum.StrEnum):
    """Why an attempt was accepted or refused (for audit; users see :data:`USER_MESSAGE`)."""

    OK = "ok"
    EXPIRED = "expired"
    USED = "used"
    WRONG_PURPOSE = "wrong_purpose"
    WRONG_CHALLENGE = "wrong_challenge"
    WRONG_CODE = "wrong_code"
    TOO_MANY_ATTEMPTS = "too_many_attempts"
    MALFORMED = "malformed"
    CHANNEL_NOT_ALLOWED = "channel_not_allowed"
    """The channel is no longer offered for the purpose (an email login code once the user
    has an authenticator), whenever the challenge was started."""
    WRONG_DESTINATION = "wrong_destination"
    """The address or number given is not the one the challenge was started for (its
    keyed hash differs, however alike the masked hints look)."""


def _check_now(now: object, name: str = "now") -> float:
    return _check_time(now, name)


def _check_id(value: object, name: str) -> str:
    if type(value) is not str or _CHALLENGE_RE.fullmatch(value) is None:
        raise InvalidParameter(f"{name} must be 1 to {_MAX_ID} characters of A-Z a-z 0-9 _ . : -")
    return value


def _check_user_id(user_id: object) -> str:
    return _check_text_id(user_id, "user_id", max_length=_MAX_USER_ID)


def parse_purpose(purpose: object) -> OOBPurpose:
    """Return the :class:`OOBPurpose` for a member or its string value.

    Raises :class:`InvalidParameter` for anything else.
    """
    if isinstance(purpose, OOBPurpose):
        return purpose
    if type(purpose) is str:
        try:
            return OOBPurpose(purpose)
        except ValueError:
            pass
    raise InvalidParameter("purpose must be one of " + ", ".join(p.value for p in OOBPurpose))


def _parse_channel(channel: object) -> OOBChannel:
    if isinstance(channel, OOBChannel):
        return channel
    if type(channel) is str:
        try:
            return OOBChannel(channel)
        except ValueError:
            pass
    raise InvalidParameter("channel must be one of " + ", ".join(c.value for c in OOBChannel))


@attrs.frozen
class OOBConfig:
    """Out-of-band code settings.

    ``digits`` 6 to 8; ``ttl`` 1 to 600 seconds; ``max_attempts`` wrong attempts per code
    (1 to 20); the resend cooldown starts at ``resend_cooldown`` seconds and grows by
    ``resend_cooldown_step`` with each resend (both 0 to 3600). At most
    ``max_sends_per_user`` codes (sends and resends) go to one user, and at most
    ``max_sends_per_destination`` to one address or number, in each fixed window of
    ``send_window`` seconds (60 to 86400); the limits are 1 to 1000, or ``None`` for no
    limit of that kind (for hosts that run their own limiter in front of the service).
    Out-of-range values raise :class:`InvalidParameter`.
    """

    digits: int = DEFAULT_DIGITS
    """Digits of a code."""
    ttl: int = DEFAULT_TTL
    """Seconds a code stays valid."""
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    """Wrong attempts a code tolerates; after that even the right code is refused."""
    resend_cooldown: int = DEFAULT_RESEND_COOLDOWN
    """Seconds from the first send until the first resend is allowed."""
    resend_cooldown_step: int = DEFAULT_RESEND_COOLDOWN_STEP
    """Seconds added to the cooldown by each resend."""
    send_window: int = DEFAULT_SEND_WINDOW
    """Seconds of the fixed windows in which sends are counted."""
    max_sends_per_user: int | None = DEFAULT_SEND_LIMIT
    """Codes sent to one user per window (sends and resends); ``None``: no limit."""
    max_sends_per_destination: int | None = DEFAULT_SEND_LIMIT
    """Codes sent to one email address or phone number per window, whichever users they
    were for; ``None``: no limit."""

    def __attrs_post_init__(self) -> None:
        _int_in(self.digits, MIN_DIGITS, MAX_DIGITS, "digits")
        _int_in(self.ttl, 1, MAX_TTL, "ttl")
        _int_in(self.max_attempts, 1, MAX_ATTEMPTS_LIMIT, "max_attempts")
        _int_in(self.resend_cooldown, 0, _MAX_COOLDOWN, "resend_cooldown")
        _int_in(self.resend_cooldown_step, 0, _MAX_COOLDOWN, "resend_cooldown_step")
        _int_in(self.send_window, MIN_SEND_WINDOW, MAX_SEND_WINDOW, "send_window")
        if self.max_sends_per_user is not None:
            _int_in(self.max_sends_per_user, 1, MAX_SEND_LIMIT, "max_sends_per_user")
        if self.max_sends_per_destination is not None:
            _int_in(self.max_sends_per_destination, 1, MAX_SEND_LIMIT, "max_sends_per_destination")

    def cooldown(self, resend_count: int) -> int:
        """Seconds after the latest send before the next resend is allowed, when
        ``resend_count`` resends have been made so far (0 for the first resend)."""
        count = _int_in(resend_count, 0, 2**31, "resend_count")
        return self.resend_cooldown + count * self.resend_cooldown_step


@attrs.frozen
class OOBRecord:
    """What is stored for one out-of-band challenge; never the code itself.

    ``code_hash`` is the keyed hash of the current code; ``generation`` grows by one with
    each resend, so a store can replace the record with a compare-and-set. ``attempts``
    counts wrong attempts at the current code; ``used`` is set once it was accepted.
    """

    challenge_id: str
    """The challenge the code is bound to."""
    user_id: str
    """Whose code it is."""
    purpose: OOBPurpose
    """What the code is for."""
    channel: OOBChannel
    """Email or SMS."""
    destination_hint: str
    """Masked destination for display (``a***@example.com``, ``***67``)."""
    code_hash: bytes = attrs.field(repr=False, eq=False)
    """``HMAC-SHA256(key, label || challenge id || purpose || code)``."""
    digits: int
    """Digits of the code."""
    issued_at: float
    """When the current code was sent (Unix seconds)."""
    expires_at: float
    """When the current code stops working (exclusive)."""
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    """Wrong attempts the code tolerates (fixed when issued)."""
    attempts: int = 0
    """Wrong attempts so far at the current code."""
    resend_count: int = 0
    """Resends made for this challenge so far."""
    generation: int = 0
    """Version of the record: 0 when issued, +1 per resend."""
    used: bool = False
    """True once the current code was accepted."""
    destination_hash: bytes | None = attrs.field(default=None, repr=False, eq=False)
    """:func:`destination_hash` of the address or number the challenge was started for
    (32 bytes), which resends and confirmations must match; ``None`` only for a record
    written before destinations were bound, which matches no destination."""

    def __attrs_post_init__(self) -> None:
        _check_id(self.challenge_id, "challenge_id")
        _check_user_id(self.user_id)
        if not isinstance(self.purpose, OOBPurpose):
            raise InvalidParameter("purpose must be an OOBPurpose")
        if not isinstance(self.channel, OOBChannel):
            raise InvalidParameter("channel must be an OOBChannel")
        if type(self.destination_hint) is not str or len(self.destination_hint) > _MAX_DESTINATION:
            raise InvalidParameter("destination_hint must be a short string")
        if type(self.code_hash) is not bytes or len(self.code_hash) != 32:
            raise InvalidParameter("code_hash must be 32 bytes")
        _int_in(self.digits, MIN_DIGITS, MAX_DIGITS, "digits")
        issued = _check_now(self.issued_at, "issued_at")
        expires = _check_now(self.expires_at, "expires_at")
        if not issued < expires <= issued + MAX_TTL:
            raise InvalidParameter(
                "expires_at must be after issued_at and at most 600 s later",
                code=ErrorCode.INVALID_TIME,
            )
        _int_in(self.max_attempts, 1, MAX_ATTEMPTS_LIMIT, "max_attempts")
        _int_in(self.attempts, 0, MAX_ATTEMPTS_LIMIT, "attempts")
        _int_in(self.resend_count, 0, 2**31, "resend_count")
        _int_in(self.generation, 0, 2**31, "generation")
        if type(self.used) is not bool:
            raise InvalidParameter("used must be a bool")
        if self.destination_hash is not None and (
            type(self.destination_hash) is not bytes or len(self.destination_hash) != 32
        ):
            raise InvalidParameter("destination_hash must be None or 32 bytes")


@attrs.frozen
class IssuedCode:
    """A new code: ``code`` goes to the ``CodeSender`` once, ``record`` to the store.

    ``repr``/``str`` never show the code.
    """

    code: str = attrs.field(repr=False, eq=False)
    """The plain numeric code, to be delivered and then forgotten."""
    record: OOBRecord
    """The record to store (replacing any earlier one of the same challenge)."""


@attrs.frozen
class OOBCheck:
    """Outcome of :func:`check`.

    ``record`` is the record to write back (the input unchanged when nothing changed);
    ``changed`` says whether it differs, so the store can skip a write or do a
    compare-and-set on ``(challenge_id, generation, attempts)``.
    """

    reason: OOBReason
    """Why the attempt was accepted or refused."""
    record: OOBRecord
    """The record after this attempt."""
    changed: bool
    """Whether ``record`` differs from the one checked."""

    @property
    def ok(self) -> bool:
        """True when the code was accepted."""
        return self.reason is OOBReason.OK

    @property
    def message(self) -> str:
        """The user-facing message: empty on success, one uniform text otherwise."""
        return "" if self.ok else USER_MESSAGE


def mask_destination(channel: OOBChannel | str, destination: str) -> str:
    """Return a display hint for an email address or phone number.

    ``alice@example.com`` becomes ``a***@example.com``; ``+1 555 010 0167`` becomes
    ``***67``. Raises :class:`InvalidParameter` for something that is not an address
    (the message never repeats it).
    """
    kind = _parse_channel(channel)
    if type(destination) is not str or not 1 <= len(destination) <= _MAX_DESTINATION:
        raise InvalidParameter("destination must be a non-empty string")
    if not _is_utf8(destination):
        raise InvalidParameter("destination must be valid Unicode text (no lone surrogates)")
    text = destination.strip(_ASCII_SPACE)  # ASCII only: other spaces are refused below
    if kind is OOBChannel.EMAIL:
        local, at, domain = text.rpartition("@")
        if (
            not at
            or not local
            or not domain
            or any(ch.isspace() or not ch.isprintable() for ch in text)
            or "@" in local  # one "@": "a@evil.example@bank.example" is two addresses
            or "@" in domain
        ):
            raise InvalidParameter("destination is not an email address")
        return f"{local[0]}***@{domain}"
    number = text.translate(_PHONE_PUNCTUATION)
    if _PHONE_RE.fullmatch(number) is None:
        raise InvalidParameter("destination is not a phone number")
    return "***" + number[-2:]


def normalize_destination(channel: OOBChannel | str, destination: str) -> str:
    """Return the form of an address or number that send limits are counted under.

    An email address loses surrounding ASCII whitespace and has its ASCII letters
    lower-cased (``Alice@Example.COM`` and ``alice@example.com`` share one limit); no other
    letter is case-mapped, so a look-alike such as U+212A KELVIN SIGN (which
    ``str.lower`` maps to ``k``) stays a different address. A phone number loses spaces,
    ``-``, ``.``, brackets and a leading ``+`` (``+1 (555) 010-0167`` becomes
    ``15550100167``). Raises :class:`InvalidParameter` for something that is not an
    address or number, as :func:`mask_destination` does (the message never repeats it).
    """
    kind = _parse_channel(channel)
    mask_destination(kind, destination)  # the same checks, the same errors
    text = destination.strip(_ASCII_SPACE)
    if kind is OOBChannel.EMAIL:
        return text.translate(_ASCII_LOWER)
    return text.translate(_PHONE_PUNCTUATION).removeprefix("+")


def destination_hash(
    key: bytes, challenge_id: str, channel: OOBChannel | str, destination: str
) -> bytes:
    """Return the keyed hash that binds a challenge to its destination.

    ``HMAC-SHA256(key, label || len || challenge_id || len || channel || len ||
    normalised destination)`` with :func:`normalize_destination`'s form, so variants that
    normalise equal (ASCII case, surrounding whitespace, phone punctuation) match and
    nothing else does. The challenge id is bound in, so equal destinations of two
    challenges have unrelated hashes (a store reader cannot link them). ``key`` must be
    16 to 256 bytes (:class:`~mfa_core.errors.InvalidKey`); the service derives a key of
    its own for this from the host secret.
    """
    raw_key = check_key(key)
    challenge = _check_id(challenge_id, "challenge_id").encode("ascii")
    kind = _parse_channel(channel)
    normal = normalize_destination(kind, destination).encode("utf-8")
    message = _DESTINATION_LABEL + b"".join(
        len(part).to_bytes(4, "big") + part
        for part in (challenge, kind.value.encode("ascii"), normal)
    )
    return hmac.new(raw_key, message, hashlib.sha256).digest()


def destination_matches(record: OOBRecord, destination: str, *, key: bytes) -> bool:
    """Whether ``destination`` is the address or number ``record`` was issued for.

    Compares :func:`destination_hash` with the stored one in constant time. A record
    without one (written before destinations were bound) matches nothing: fail closed.
    Raises :class:`InvalidParameter` for a destination that is not an address or number
    of the record's channel (the message never repeats it).
    """
    if not isinstance(record, OOBRecord):
        raise InvalidParameter("record must be an OOBRecord")
    given = destination_hash(key, record.challenge_id, record.channel, destination)
    stored = record.destination_hash
    return stored is not None and hmac.compare_digest(given, stored)


def _keyed_hex(key: bytes, label: bytes, *parts: bytes) -> str:
    message = label + b"".join(len(part).to_bytes(4, "big") + part for part in parts)
    return hmac.new(check_key(key), message, hashlib.sha256).hexdigest()


def user_send_key(key: bytes, user_id: str) -> str:
    """Return the send-counter key of a user: ``"u:" + user_id`` when that is at most
    :data:`MAX_SEND_KEY` characters of printable ASCII, else ``"uh:"`` and the hex
    ``HMAC-SHA256`` of the id under ``key`` (16 to 256 bytes)."""
    user = _check_user_id(user_id)
    plain = "u:" + user
    if len(plain) <= MAX_SEND_KEY and plain.isascii() and plain.isprintable():
        return plain
    return "uh:" + _keyed_hex(key, _SEND_USER_LABEL, user.encode("utf-8"))


def destination_send_key(key: bytes, channel: OOBChannel | str, destination: str) -> str:
    """Return the send-counter key of a destination: ``"d:"`` and the hex
    ``HMAC-SHA256`` under ``key`` of the channel and :func:`normalize_destination`'s form,
    so a store holding the counters never sees an address or a number."""
    kind = _parse_channel(channel)
    normal = normalize_destination(kind, destination)
    return "d:" + _keyed_hex(
        key, _SEND_DESTINATION_LABEL, kind.value.encode("ascii"), normal.encode("utf-8")
    )


def send_window_for(now: float, config: OOBConfig | None = None) -> tuple[float, float]:
    """Return ``(window_start, expires_at)`` of the fixed send window holding ``now``:
    ``window_start`` is the largest multiple of ``send_window`` not after ``now`` and
    ``expires_at = window_start + send_window``, so ``window_start <= now < expires_at``."""
    cfg = config if config is not None else OOBConfig()
    if not isinstance(cfg, OOBConfig):
        raise InvalidParameter("config must be an OOBConfig")
    at = _check_now(now)
    width = float(cfg.send_window)
    start = (at // width) * width  # float floor division is exact (fmod based)
    if start > at:  # pragma: no cover - guards against rounding; never seen
        start -= width
    elif start + width <= at:  # pragma: no cover - likewise
        start += width
    return start, start + width


def code_hash(key: bytes, challenge_id: str, purpose: OOBPurpose | str, code: bytes) -> bytes:
    """Return the keyed hash stored for ``code`` (ASCII digits) of a challenge and purpose.

    ``HMAC-SHA256(key, label || len || challenge_id || len || purpose || code)``; ``key``
    must be 16 to 256 bytes (:class:`~mfa_core.errors.InvalidKey`).
    """
    raw_key = check_key(key)
    challenge = _check_id(challenge_id, "challenge_id").encode("ascii")
    kind = parse_purpose(purpose).value.encode("ascii")
    if type(code) is not bytes or not code.isdigit() or not code.isascii():
        raise InvalidParameter("code must be ASCII digits", code=ErrorCode.INVALID_CODE)
    message = (
        _HASH_LABEL
        + len(challenge).to_bytes(2, "big")
        + challenge
        + len(kind).to_bytes(2, "big")
        + kind
        + code
    )
    return hmac.new(raw_key, message, hashlib.sha256).digest()


def _new_code(digits: int) -> str:
    # randbelow is uniform over [0, 10**digits): no modulo bias.
    return str(secrets.randbelow(10**digits)).zfill(digits)


def issue(
    *,
    user_id: str,
    purpose: OOBPurpose | str,
    channel: OOBChannel | str,
    destination: str,
    now: float,
    key: bytes,
    config: OOBConfig | None = None,
    challenge_id: str | None = None,
    destination_key: bytes | None = None,
) -> IssuedCode:
    """Issue a new code for ``purpose`` bound to ``challenge_id`` (a random one if ``None``).

    The record stores a masked ``destination`` hint, the keyed hash of the code,
    ``expires_at = now + ttl`` and :func:`destination_hash` of ``destination`` under
    ``destination_key`` (``key`` when ``None``; the hash is domain-separated from the
    code's either way). Deliver ``code`` with the host's ``CodeSender``.
    """
    cfg = config if config is not None else OOBConfig()
    if not isinstance(cfg, OOBConfig):
        raise InvalidParameter("config must be an OOBConfig")
    kind = parse_purpose(purpose)
    via = _parse_channel(channel)
    hint = mask_destination(via, destination)
    issued = _check_now(now)
    challenge = random_id() if challenge_id is None else _check_id(challenge_id, "challenge_id")
    code = _new_code(cfg.digits)
    record = OOBRecord(
        challenge_id=challenge,
        user_id=_check_user_id(user_id),
        purpose=kind,
        channel=via,
        destination_hint=hint,
        code_hash=code_hash(key, challenge, kind, code.encode("ascii")),
        digits=cfg.digits,
        issued_at=issued,
        expires_at=issued + cfg.ttl,
        max_attempts=cfg.max_attempts,
        destination_hash=destination_hash(
            key if destination_key is None else destination_key, challenge, via, destination
        ),
    )
    return IssuedCode(code=code, record=record)


def resend_available_at(record: OOBRecord, config: OOBConfig | None = None) -> float:
    """Unix time from which :func:`resend` accepts ``record`` (its cooldown's end)."""
    cfg = config if config is not None else OOBConfig()
    if not isinstance(record, OOBRecord) or not isinstance(cfg, OOBConfig):
        raise InvalidParameter("record must be an OOBRecord and config an OOBConfig")
    return record.issued_at + cfg.cooldown(record.resend_count)


def resend(
    record: OOBRecord, *, now: float, key: bytes, config: OOBConfig | None = None
) -> IssuedCode:
    """Issue a new code for the same challenge, purpose, user and destination.

    The returned record (``generation + 1``, ``resend_count + 1``, fresh TTL and attempts)
    replaces the old one, so the old code is dead. Raises
    :class:`~mfa_core.errors.CooldownActive` (with ``retry_after`` in seconds) when called
    before :func:`resend_available_at`, and :class:`~mfa_core.errors.IllegalTransition`
    when the code was already used (the challenge is complete).
    """
    cfg = config if config is not None else OOBConfig()
    available = resend_available_at(record, cfg)
    at = _check_now(now)
    if record.used:
        raise IllegalTransition("this challenge was completed; start a new one")
    if at < available:
        raise CooldownActive("a new code cannot be sent yet", retry_after=available - at)
    code = _new_code(cfg.digits)
    new = attrs.evolve(
        record,
        code_hash=code_hash(key, record.challenge_id, record.purpose, code.encode("ascii")),
        digits=cfg.digits,
        issued_at=at,
        expires_at=at + cfg.ttl,
        max_attempts=cfg.max_attempts,
        attempts=0,
        resend_count=record.resend_count + 1,
        generation=record.generation + 1,
        used=False,
    )
    return IssuedCode(code=code, record=new)


def check(
    record: OOBRecord,
    attempt: object,
    *,
    purpose: OOBPurpose | str,
    challenge_id: str,
    now: float,
    key: bytes,
) -> OOBCheck:
    """Decide one attempt at an out-of-band code.

    Checked in this order: challenge, purpose, used, expiry (valid while
    ``now < expires_at``), attempt limit, format (:func:`mfa_core.otp.normalize_code`),
    then the code, compared in constant time. Only a wrong code counts as an attempt
    (``attempts + 1``); a malformed one cannot match and is refused before any hashing.
    On success the returned record is marked ``used``; the caller writes it back with one
    atomic compare-and-set so a code is accepted once.
    """
    if not isinstance(record, OOBRecord):
        raise InvalidParameter("record must be an OOBRecord")
    wanted = parse_purpose(purpose)
    challenge = _check_id(challenge_id, "challenge_id")
    at = _check_now(now)
    raw_key = check_key(key)

    def refuse(reason: OOBReason) -> OOBCheck:
        return OOBCheck(reason=reason, record=record, changed=False)

    if not hmac.compare_digest(challenge.encode("ascii"), record.challenge_id.encode("ascii")):
        return refuse(OOBReason.WRONG_CHALLENGE)
    if wanted is not record.purpose:
        return refuse(OOBReason.WRONG_PURPOSE)
    if record.used:
        return refuse(OOBReason.USED)
    if at >= record.expires_at:
        return refuse(OOBReason.EXPIRED)
    if record.attempts >= record.max_attempts:
        return refuse(OOBReason.TOO_MANY_ATTEMPTS)
    candidate = normalize_code(attempt, record.digits)
    if candidate is None:
        return refuse(OOBReason.MALFORMED)
    expected = code_hash(raw_key, record.challenge_id, record.purpose, candidate)
    if hmac.compare_digest(expected, record.code_hash):
        return OOBCheck(reason=OOBReason.OK, record=attrs.evolve(record, used=True), changed=True)
    return OOBCheck(
        reason=OOBReason.WRONG_CODE,
        record=attrs.evolve(record, attempts=record.attempts + 1),
        changed=True,
    )
