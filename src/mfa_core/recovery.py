"""Recovery codes and the single recovery key: generation, storage form and checking.

Pure, I/O-free: nothing here reads the clock, the network or a store. Randomness comes from
:mod:`secrets` only where a value is created (codes, salts, record ids).

How a set is stored and checked
-------------------------------
:func:`generate_recovery_codes` draws each code from the CSPRNG (default 80 bits, 16
characters of an unambiguous base32 alphabet, shown as ``XXXX-XXXX-XXXX-XXXX``) and returns
the plain codes once, together with one :class:`RecoveryRecord` per code to store:

* ``id``: a random record id;
* ``tag``: a short *keyed* lookup tag, ``HMAC-SHA256(tag_key, user id, code)`` cut to
  :data:`TAG_BYTES` bytes (hex), where ``tag_key`` is a host-held secret;
* ``phc``: an Argon2id hash of the code as a PHC string
  (``$argon2id$v=19$m=...,t=...,p=...$salt$hash``), made with
  :class:`cryptography.hazmat.primitives.kdf.argon2.Argon2id`, which any Argon2
  implementation (argon2-cffi, libsodium, ...) verifies too.

:func:`check_recovery_code` normalises the attempt, computes its tag, selects the record
with that tag (:func:`select_by_tag`) and only then runs ONE Argon2id verification. A wrong
guess almost never matches a tag and so costs one HMAC, not a slow hash; a right one costs
one slow hash however many codes the user has left. The linear scan that other libraries do
(one slow hash per stored code) costs ``n`` slow hashes per attempt.

Why a truncated keyed tag does not weaken the codes
---------------------------------------------------
* Online, a guess is accepted only if the Argon2id hash verifies, so the chance that a
  random guess succeeds is ``remaining / 2**bits`` with or without the tag. The tag only
  decides *which single* hash is checked.
* Offline, a stolen table is no easier to attack: without ``tag_key`` the tag is a PRF
  output that says nothing about the code. With ``tag_key`` too, an attacker can filter
  candidates with one HMAC each instead of one Argon2id, but has to search ``2**80`` codes
  per user and is left with ``2**(80 - 64) = 65536`` candidates per tag, each of which
  still has to go through Argon2id. That is far beyond any budget, so the slow hash keeps
  protecting whatever the code space leaves over; the tag never has to carry the security.
* Tags of one user's codes collide with probability about ``n**2 / 2**65``; generation
  redraws a code whose tag repeats, so every stored tag of a set is unique.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import math
import re
import secrets
from collections.abc import Iterable
from typing import Final

import attrs
from cryptography.exceptions import InvalidKey as _CryptographyInvalidKey
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from ._validate import check_id as _check_id
from ._validate import int_in as _int_in
from ._validate import is_int as _is_int
from ._validate import is_time as _is_time
from .errors import ErrorCode, InvalidParameter
from .otp import check_key

__all__ = [
    "ALPHABET",
    "BITS_PER_CHAR",
    "DEFAULT_BITS",
    "DEFAULT_COUNT",
    "DEFAULT_KEY_BITS",
    "MAX_BITS",
    "MAX_CODE_CHARS",
    "MAX_COUNT",
    "MIN_BITS",
    "MIN_CODE_CHARS",
    "MIN_KEY_BITS",
    "TAG_BYTES",
    "USER_MESSAGE",
    "Argon2Params",
    "RecoveryCheck",
    "RecoveryCodeSet",
    "RecoveryConfig",
    "RecoveryMode",
    "RecoveryReason",
    "RecoveryRecord",
    "check_recovery_code",
    "count_unused",
    "format_recovery_code",
    "generate_recovery_codes",
    "hash_recovery_code",
    "lookup_tag",
    "needs_rehash",
    "normalize_recovery_code",
    "select_by_tag",
]

ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
"""Crockford's base32 alphabet: digits and upper-case letters without I, L, O and U."""
BITS_PER_CHAR: Final = 5
"""Entropy of one code character (the alphabet has 32 symbols)."""
MIN_BITS: Final = 64
"""Least entropy a recovery code may have (NIST SP 800-63B rev 4, 4.2.1.1)."""
DEFAULT_BITS: Final = 80
"""Default entropy of a recovery code: 16 characters, ``XXXX-XXXX-XXXX-XXXX``."""
MIN_KEY_BITS: Final = 128
"""Least entropy of the single recovery key (:attr:`RecoveryMode.KEY`)."""
DEFAULT_KEY_BITS: Final = 160
"""Default entropy of the single recovery key: 32 characters in 8 groups of 4."""
MAX_BITS: Final = 256
"""Most entropy a code may be configured with."""
MIN_CODE_CHARS: Final = math.ceil(MIN_BITS / BITS_PER_CHAR)
"""Shortest normalised code (13 characters)."""
MAX_CODE_CHARS: Final = math.ceil(MAX_BITS / BITS_PER_CHAR)
"""Longest normalised code (52 characters)."""
DEFAULT_COUNT: Final = 10
"""Codes in a set unless configured otherwise."""
MAX_COUNT: Final = 50
"""Most codes a set may hold."""
TAG_BYTES: Final = 8
"""Length of the keyed lookup tag before hex encoding (64 bits)."""
USER_MESSAGE: Final = "invalid code"
"""The one message a user sees for every failed recovery attempt, whatever the reason."""

_MAX_INPUT: Final = 256
_MAX_USER_ID: Final = 256
_SEPARATORS: Final = " \t\r\n\u00a0\u202f-\u2010\u2011\u2012\u2013\u2014\u2212"
_DROP_SEPARATORS: Final = str.maketrans(dict.fromkeys(_SEPARATORS))
_LOOK_ALIKES: Final = str.maketrans({"O": "0", "I": "1", "L": "1"})
_CODE_RE: Final = re.compile(f"[{ALPHABET}]{{{MIN_CODE_CHARS},{MAX_CODE_CHARS}}}", re.ASCII)
_TAG_LABEL: Final = b"mfa_core/recovery-tag/v1\x00"
_PHC_RE: Final = re.compile(
    r"\$argon2id\$v=19\$m=([0-9]{1,10}),t=([0-9]{1,10}),p=([0-9]{1,10})"
    r"\$([A-Za-z0-9+/]{11,128})\$([A-Za-z0-9+/]{6,128})",
    re.ASCII,
)
_TAG_RE: Final = re.compile(f"[0-9a-f]{{{2 * TAG_BYTES}}}", re.ASCII)

# Bounds of the Argon2id parameters; stored PHC strings outside them are refused, so a
# tampered row cannot make a check allocate gigabytes or run for minutes.
_MIN_MEMORY_KIB: Final = 8
_MAX_MEMORY_KIB: Final = 1024 * 1024
_MAX_ITERATIONS: Final = 32
_MAX_LANES: Final = 16
_MIN_SALT: Final = 8
_MAX_SALT: Final = 64
_MIN_HASH: Final = 16
_MAX_HASH: Final = 64


def _check_user_id(user_id: object) -> str:
    return _check_id(user_id, "user_id", max_length=_MAX_USER_ID)


class RecoveryMode(enum.StrEnum):
    """What a generated set is: several single-use codes, or one long recovery key."""

    CODES = "codes"
    KEY = "key"


class RecoveryReason(enum.StrEnum):
    """Why a recovery attempt was accepted or refused (for audit; users see one message)."""

    OK = "ok"
    MALFORMED = "malformed"
    """The attempt has characters outside the alphabet or an impossible length."""
    NO_MATCH = "no_match"
    """No stored record has the attempt's lookup tag (no slow hash was computed)."""
    WRONG_CODE = "wrong_code"
    """A tag matched but the Argon2id hash did not verify (a tag collision)."""
    ALREADY_USED = "already_used"
    """The attempt is a real code of the set that was consumed before."""


@attrs.frozen
class Argon2Params:
    """Argon2id cost parameters for hashing recovery codes.

    The defaults are OWASP's first recommendation for Argon2id (m = 19 MiB, t = 2, p = 1),
    with a 16-byte salt and a 32-byte hash: about 50 ms per hash on a server core. Use
    :meth:`fast_for_testing` in test suites only.
    """

    memory_kib: int = 19 * 1024
    """Memory cost in KiB (``m``), from ``8 * lanes`` to 1 GiB."""
    iterations: int = 2
    """Passes over memory (``t``), 1 to 32."""
    lanes: int = 1
    """Parallelism (``p``), 1 to 16."""
    salt_bytes: int = 16
    """Random salt length, 8 to 64 bytes."""
    hash_bytes: int = 32
    """Hash output length, 16 to 64 bytes."""

    def __attrs_post_init__(self) -> None:
        lanes = _int_in(self.lanes, 1, _MAX_LANES, "lanes")
        _int_in(self.memory_kib, max(_MIN_MEMORY_KIB, 8 * lanes), _MAX_MEMORY_KIB, "memory_kib")
        _int_in(self.iterations, 1, _MAX_ITERATIONS, "iterations")
        _int_in(self.salt_bytes, _MIN_SALT, _MAX_SALT, "salt_bytes")
        _int_in(self.hash_bytes, _MIN_HASH, _MAX_HASH, "hash_bytes")

    @classmethod
    def fast_for_testing(cls) -> Argon2Params:
        """Return the cheapest valid parameters (m = 8 KiB, t = 1): for tests only, never
        for production, where they make stolen hashes cheap to attack."""
        return cls(memory_kib=8, iterations=1, salt_bytes=8, hash_bytes=16)  # one lane


@attrs.frozen
class RecoveryConfig:
    """How recovery codes are generated and hashed.

    ``count`` codes (1 to 50; exactly 1 in :attr:`RecoveryMode.KEY` mode) of ``bits``
    entropy each (at least 64; at least 128 for a key), written as groups of
    ``group_size`` characters joined by ``-`` (0 for no grouping). ``low_threshold`` is the
    number of unused codes at or below which :meth:`running_low` is true.
    """

    count: int = DEFAULT_COUNT
    """Number of codes in a set."""
    bits: int = DEFAULT_BITS
    """Entropy of each code in bits; the code has ``ceil(bits / 5)`` characters."""
    group_size: int = 4
    """Characters per group in the display form; 0 shows the code in one piece."""
    mode: RecoveryMode = RecoveryMode.CODES
    """A set of codes, or one long recovery key."""
    low_threshold: int = 3
    """``running_low`` is true when this many unused codes or fewer are left."""
    argon2: Argon2Params = attrs.field(factory=Argon2Params)
    """Argon2id parameters used for new hashes."""

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.mode, RecoveryMode):
            raise InvalidParameter("mode must be a RecoveryMode")
        if self.mode is RecoveryMode.KEY:
            _int_in(self.count, 1, 1, "count of a recovery key")
            _int_in(self.bits, MIN_KEY_BITS, MAX_BITS, "bits of a recovery key")
        else:
            _int_in(self.count, 1, MAX_COUNT, "count")
            _int_in(self.bits, MIN_BITS, MAX_BITS, "bits")
        if not _is_int(self.group_size) or not (self.group_size == 0 or 2 <= self.group_size <= 8):
            raise InvalidParameter("group_size must be 0 or an integer from 2 to 8")
        _int_in(self.low_threshold, 0, MAX_COUNT, "low_threshold")
        if not isinstance(self.argon2, Argon2Params):
            raise InvalidParameter("argon2 must be Argon2Params")

    @classmethod
    def recovery_key(
        cls, *, bits: int = DEFAULT_KEY_BITS, argon2: Argon2Params | None = None
    ) -> RecoveryConfig:
        """Return the configuration of a single long recovery key (default 160 bits)."""
        return cls(
            count=1,
            bits=bits,
            mode=RecoveryMode.KEY,
            low_threshold=0,
            argon2=argon2 if argon2 is not None else Argon2Params(),
        )

    @property
    def length(self) -> int:
        """Characters in one normalised code."""
        return math.ceil(self.bits / BITS_PER_CHAR)

    def running_low(self, unused: int) -> bool:
        """True when ``unused`` codes left is at or below ``low_threshold``."""
        return unused <= self.low_threshold


@attrs.frozen
class RecoveryRecord:
    """What is stored for one code: an id, the keyed lookup tag and the Argon2id PHC hash.

    ``used_at`` is the Unix time the code was consumed, or ``None`` while it is usable.
    Nothing in a record lets anyone recover the code.
    """

    id: str
    """Random record id (hex), unique within the set."""
    tag: str = attrs.field(repr=False)
    """Hex keyed lookup tag (:func:`lookup_tag`)."""
    phc: str = attrs.field(repr=False)
    """Argon2id hash as a PHC string."""
    used_at: float | None = None
    """When the code was consumed, or ``None``."""

    def __attrs_post_init__(self) -> None:
        _check_id(self.id, "record id", max_length=128)
        if type(self.tag) is not str or _TAG_RE.fullmatch(self.tag) is None:
            raise InvalidParameter(f"tag must be {2 * TAG_BYTES} lower-case hex characters")
        if type(self.phc) is not str or not self.phc.startswith("$argon2id$"):
            raise InvalidParameter("phc must be an Argon2id PHC string")
        if self.used_at is not None and not _is_time(self.used_at):
            raise InvalidParameter(
                "used_at must be None or a finite, non-negative Unix time",
                code=ErrorCode.INVALID_TIME,
            )

    @property
    def used(self) -> bool:
        """True once the code was consumed."""
        return self.used_at is not None


@attrs.frozen
class RecoveryCodeSet:
    """A freshly generated set: plain codes to show the user exactly once, and the records
    to store. ``repr``/``str`` never show the codes; do not keep this object around."""

    user_id: str
    """The user the set belongs to (it is bound into every lookup tag)."""
    codes: tuple[str, ...] = attrs.field(repr=False, eq=False)
    """Plain codes in display form (grouped), in the same order as ``records``."""
    records: tuple[RecoveryRecord, ...]
    """Records to store; the plain codes cannot be derived from them."""

    def __str__(self) -> str:
        return f"RecoveryCodeSet(user_id={self.user_id!r}, {len(self.records)} codes hidden)"


@attrs.frozen
class RecoveryCheck:
    """Outcome of :func:`check_recovery_code`.

    ``record_id`` names the matched record for ``OK`` and ``ALREADY_USED``; the service
    then consumes it atomically. ``rehash_due`` is true on ``OK`` when the record's hash
    was made with other parameters than the current ones. ``slow_hash`` says whether an
    Argon2id verification ran (never more than one per check).
    """

    reason: RecoveryReason
    """Why the attempt was accepted or refused."""
    record_id: str | None = None
    """The matched record, if any."""
    rehash_due: bool = False
    """The matched record's hash parameters are outdated."""
    slow_hash: bool = False
    """Whether an Argon2id verification was computed."""

    @property
    def ok(self) -> bool:
        """True when the attempt is an unused code of the set."""
        return self.reason is RecoveryReason.OK

    @property
    def message(self) -> str:
        """The user-facing message: empty on success, one uniform text otherwise."""
        return "" if self.ok else USER_MESSAGE


def normalize_recovery_code(code: object) -> str | None:
    """Return a typed or pasted recovery code in canonical form, or ``None``.

    Case is folded; spaces, tabs, no-break spaces and dashes (ASCII and Unicode) anywhere
    are dropped; the look-alikes the alphabet leaves out are mapped (``O`` to ``0``, ``I``
    and ``L`` to ``1``). The result must be 13 to 52 characters of :data:`ALPHABET`.
    Anything else (non-``str``, other characters, non-ASCII letters, oversized input)
    gives ``None``. The function is idempotent.
    """
    if type(code) is not str or len(code) > _MAX_INPUT:
        return None
    text = code.translate(_DROP_SEPARATORS)
    # Check ASCII before folding case: str.upper maps some non-ASCII letters to ASCII
    # ones (dotless i to "I", long s to "S").
    if not text.isascii():
        return None
    text = text.upper().translate(_LOOK_ALIKES)
    if _CODE_RE.fullmatch(text) is None:
        return None
    return text


def format_recovery_code(code: str, group_size: int = 4) -> str:
    """Return a normalised code in display form: groups of ``group_size`` joined by ``-``.

    Raises :class:`InvalidParameter` if ``code`` is not a valid recovery code.
    """
    canonical = normalize_recovery_code(code)
    if canonical is None:
        raise InvalidParameter("not a valid recovery code", code=ErrorCode.INVALID_CODE)
    if not _is_int(group_size) or group_size < 0:
        raise InvalidParameter("group_size must be a non-negative integer")
    if group_size == 0:
        return canonical
    return "-".join(canonical[i : i + group_size] for i in range(0, len(canonical), group_size))


def lookup_tag(tag_key: bytes, user_id: str, code: str) -> str:
    """Return the hex keyed lookup tag of a normalised ``code`` for ``user_id``.

    ``HMAC-SHA256(tag_key, label || len(user_id) || user_id || code)`` cut to
    :data:`TAG_BYTES` bytes. ``tag_key`` must be 16 to 256 bytes (:class:`InvalidKey`).
    """
    key = check_key(tag_key)
    user = _check_user_id(user_id).encode()
    canonical = normalize_recovery_code(code)
    if canonical is None:
        raise InvalidParameter("not a valid recovery code", code=ErrorCode.INVALID_CODE)
    return _tag(key, user, canonical)


def _tag(key: bytes, user: bytes, canonical: str) -> str:
    message = _TAG_LABEL + len(user).to_bytes(4, "big") + user + canonical.encode()
    return hmac.new(key, message, hashlib.sha256).digest()[:TAG_BYTES].hex()


def hash_recovery_code(code: str, params: Argon2Params | None = None) -> str:
    """Return the Argon2id PHC string of a recovery code (normalised first), fresh salt."""
    canonical = normalize_recovery_code(code)
    if canonical is None:
        raise InvalidParameter("not a valid recovery code", code=ErrorCode.INVALID_CODE)
    return _hash(canonical, params if params is not None else Argon2Params())


def _hash(canonical: str, params: Argon2Params) -> str:
    if not isinstance(params, Argon2Params):
        raise InvalidParameter("params must be Argon2Params")
    kdf = Argon2id(
        salt=secrets.token_bytes(params.salt_bytes),
        length=params.hash_bytes,
        iterations=params.iterations,
        lanes=params.lanes,
        memory_cost=params.memory_kib,
    )
    return kdf.derive_phc_encoded(canonical.encode())


def _b64_length(text: str) -> int:
    """Length of unpadded standard base64 ``text``, refusing non-canonical encodings."""
    # _PHC_RE admits only the base64 alphabet: the padding and the canonical form are what
    # is left to check (the text padded to a multiple of four encodes back to itself).
    padded = text + "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(padded)
    except (binascii.Error, ValueError):
        raise InvalidParameter("stored recovery hash is not a valid PHC string") from None
    if base64.b64encode(raw).decode() != padded:
        raise InvalidParameter("stored recovery hash is not a valid PHC string")
    return len(raw)


def _parse_phc(phc: object) -> Argon2Params:
    """Return the parameters of an Argon2id v19 PHC string within our bounds, or raise."""
    if type(phc) is not str:
        raise InvalidParameter("stored recovery hash is not a valid PHC string")
    # The pattern's quantifiers are bounded (at most 311 characters match): a long string
    # fails it after that many, so its length needs no check of its own.
    match = _PHC_RE.fullmatch(phc)
    if match is None:
        raise InvalidParameter("stored recovery hash is not an Argon2id (v=19) PHC string")
    memory, iterations, lanes, salt, digest = match.groups()
    return Argon2Params(
        memory_kib=int(memory),
        iterations=int(iterations),
        lanes=int(lanes),
        salt_bytes=_b64_length(salt),
        hash_bytes=_b64_length(digest),
    )


def needs_rehash(phc: str, params: Argon2Params) -> bool:
    """True when ``phc`` was made with other Argon2id parameters than ``params``.

    Memory, iterations, lanes, salt length and hash length are compared. Raises
    :class:`InvalidParameter` if ``phc`` is not an Argon2id v19 PHC string.
    """
    if not isinstance(params, Argon2Params):
        raise InvalidParameter("params must be Argon2Params")
    return _parse_phc(phc) != params


def _verify_cap(params: Argon2Params | None) -> Argon2Params:
    """The most costly stored parameters a check computes: the configured ones, or the
    library's defaults where those cost more (so raising the cost never locks out
    hashes made with the defaults)."""
    default = Argon2Params()
    if params is None:
        return default
    # Each of the two holds memory_kib >= 8 * lanes, so their larger memory covers their
    # larger lane count: the result is valid Argon2id parameters.
    return Argon2Params(
        memory_kib=max(params.memory_kib, default.memory_kib),
        iterations=max(params.iterations, default.iterations),
        lanes=max(params.lanes, default.lanes),
    )


def _verify(canonical: str, phc: str, cap: Argon2Params) -> bool:
    stored = _parse_phc(phc)
    # A stored hash is data: its cost is capped at what the configuration allows before any
    # hashing, so a tampered row cannot make one check cost seconds and a gigabyte.
    if (
        stored.memory_kib > cap.memory_kib
        or stored.iterations > cap.iterations
        or stored.lanes > cap.lanes
    ):
        raise InvalidParameter(
            "stored recovery hash asks for more Argon2id cost than the configuration allows"
        )
    try:
        Argon2id.verify_phc_encoded(canonical.encode(), phc)
    except _CryptographyInvalidKey:
        return False
    return True


def _random_code(length: int) -> str:
    value = secrets.randbits(BITS_PER_CHAR * length)
    chars = []
    for _ in range(length):
        chars.append(ALPHABET[value & 0x1F])
        value >>= BITS_PER_CHAR
    return "".join(chars)


def generate_recovery_codes(
    user_id: str, tag_key: bytes, config: RecoveryConfig | None = None
) -> RecoveryCodeSet:
    """Generate a new set of recovery codes (or one recovery key) for ``user_id``.

    Codes come from :mod:`secrets`; codes and tags within the set are unique (a repeat is
    redrawn). Each code is hashed with Argon2id using ``config.argon2`` (``count`` slow
    hashes in all). The plain codes are only in the returned object; store its
    ``records`` and show its ``codes`` once. Storing a new set must replace the old one.
    """
    cfg = config if config is not None else RecoveryConfig()
    if not isinstance(cfg, RecoveryConfig):
        raise InvalidParameter("config must be a RecoveryConfig")
    key = check_key(tag_key)
    user = _check_user_id(user_id).encode()
    codes: list[str] = []
    records: list[RecoveryRecord] = []
    tags: set[str] = set()
    ids: set[str] = set()
    while len(codes) < cfg.count:
        canonical = _random_code(cfg.length)
        tag = _tag(key, user, canonical)
        if tag in tags:
            continue
        record_id = secrets.token_hex(8)
        if record_id in ids:
            continue
        tags.add(tag)
        ids.add(record_id)
        codes.append(format_recovery_code(canonical, cfg.group_size))
        records.append(RecoveryRecord(id=record_id, tag=tag, phc=_hash(canonical, cfg.argon2)))
    return RecoveryCodeSet(user_id=user_id, codes=tuple(codes), records=tuple(records))


def _check_records(records: object) -> tuple[RecoveryRecord, ...]:
    if isinstance(records, str | bytes) or not isinstance(records, Iterable):
        raise InvalidParameter("records must be an iterable of RecoveryRecord")
    result = tuple(records)
    if not all(isinstance(r, RecoveryRecord) for r in result):
        raise InvalidParameter("records must be an iterable of RecoveryRecord")
    return result


def select_by_tag(tag: str, records: Iterable[RecoveryRecord]) -> RecoveryRecord | None:
    """Return the record to verify for ``tag``: an unused one if any has that tag, else a
    used one, else ``None``. Tags are compared in constant time; every record is looked at
    (a tag that is not ASCII matches none: stored tags are lower-case hex).
    """
    if type(tag) is not str:
        raise InvalidParameter("tag must be a string")
    checked = _check_records(records)
    if not tag.isascii():
        return None  # every stored tag is lower-case hex
    unused: RecoveryRecord | None = None
    used: RecoveryRecord | None = None
    for record in checked:
        if hmac.compare_digest(record.tag, tag):
            if not record.used and unused is None:
                unused = record
            elif record.used and used is None:
                used = record
    return unused if unused is not None else used


def count_unused(records: Iterable[RecoveryRecord]) -> int:
    """Return how many of ``records`` have not been consumed."""
    return sum(1 for record in _check_records(records) if not record.used)


def check_recovery_code(
    attempt: object,
    user_id: str,
    records: Iterable[RecoveryRecord],
    tag_key: bytes,
    params: Argon2Params | None = None,
) -> RecoveryCheck:
    """Check one recovery attempt against a user's stored records.

    Normalise, compute the keyed tag, select the record with that tag, and only then run
    one Argon2id verification. An attempt that is malformed or matches no tag costs no
    slow hash. ``params`` are the current Argon2id parameters: on ``OK``, ``rehash_due``
    tells whether the matched hash was made with other ones (``None`` skips the test).

    This function does not consume anything: on ``OK`` the caller consumes
    ``record_id`` with one atomic store operation (and treats a lost race as used).
    Raises :class:`InvalidParameter`/:class:`InvalidKey` for bad ``user_id``,
    ``records``, ``tag_key`` or ``params``, for a stored hash that is not a valid
    Argon2id PHC string, and for one whose memory, iterations or lanes exceed both
    ``params`` (the library's defaults when ``None``) and the defaults, before any hashing
    (fail closed).
    """
    key = check_key(tag_key)
    user = _check_user_id(user_id).encode()
    stored = _check_records(records)
    if params is not None and not isinstance(params, Argon2Params):
        raise InvalidParameter("params must be Argon2Params")
    canonical = normalize_recovery_code(attempt)
    if canonical is None:
        return RecoveryCheck(RecoveryReason.MALFORMED)
    candidate = select_by_tag(_tag(key, user, canonical), stored)
    if candidate is None:
        return RecoveryCheck(RecoveryReason.NO_MATCH)
    if not _verify(canonical, candidate.phc, _verify_cap(params)):
        return RecoveryCheck(RecoveryReason.WRONG_CODE, slow_hash=True)
    if candidate.used:
        return RecoveryCheck(RecoveryReason.ALREADY_USED, record_id=candidate.id, slow_hash=True)
    rehash = params is not None and needs_rehash(candidate.phc, params)
    return RecoveryCheck(
        RecoveryReason.OK, record_id=candidate.id, rehash_due=rehash, slow_hash=True
    )
