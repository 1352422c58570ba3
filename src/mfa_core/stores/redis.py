"""A store for fleets of workers on Redis: :class:`RedisStore` (the ``redis`` extra).

Needs redis-py (``pip install 'mfa_core[redis]'``); importing this module without it
raises :class:`~mfa_core.errors.MissingDependency`. One :class:`RedisStore` is a
:class:`~mfa_core.ports.CredentialStore`, a :class:`~mfa_core.ports.FailureCounter`, a
:class:`~mfa_core.ports.RecoveryCodeStore` and an :class:`~mfa_core.ports.OOBChallengeStore`.

Every operation is ONE round trip to the server: either a plain read command or a Lua
script (sent by SHA with ``EVALSHA``; the server runs a script as one atomic step). The
race-prone operations are scripts:

* ``claim`` - compare ``value`` with the stored ``last_accepted`` and set it (and the drift)
  only if it is greater;
* ``update`` - compare the stored ``version`` and replace the credential only if it matches;
* ``record_failure`` - ``HINCRBY`` the count, keep the later failure time, refresh the TTL
  and return the new state;
* ``consume_recovery_code`` - ``HSETNX`` the code's ``used_at`` only if the code is in the
  user's set, and return the number of unused codes left;
* ``replace_recovery_codes`` - delete the user's set and write the new one in one script;
* ``replace_challenge`` / ``update_challenge`` - compare ``generation`` (and ``used``; or
  ``generation``, ``attempts`` and ``used``) and replace the challenge only if they match;
* ``count_send`` - ``INCR`` a send counter and set its expiry, returning the new count.

Key layout (``prefix`` defaults to ``"mfa:"``; one prefix per application)::

    {prefix}cred:{credential id}    hash: the credential's fields
    {prefix}creds-of:{user id}      sorted set: the user's credential ids, scored by created_at
    {prefix}seq                     counter: insertion order, breaks created_at ties
    {prefix}fail:{user id}          hash: count, last_failure_at (TTL: failure_ttl)
    {prefix}rc:{user id}            hash: record id -> "position:tag:phc"
    {prefix}rc-used:{user id}       hash: record id -> used_at (only used codes)
    {prefix}oob:{challenge id}      hash: the challenge's fields (TTL: expires_at + grace)
    {prefix}send:{window}:{key}     counter: codes sent in one window (expires at its end)

Each concern has its own key family. The unused codes left are ``HLEN rc - HLEN rc-used``
(every id in ``rc-used`` is in ``rc``: only the scripts write these keys).

A PENDING credential gets a TTL: it disappears ``pending_grace`` seconds after its
``pending_until`` deadline (and never sooner than ``pending_grace`` after it was written),
so abandoned enrolments do not pile up; the TTL is removed when the credential leaves
PENDING. Index entries of expired credentials are dropped by :meth:`RedisStore.list_for_user`.
An out-of-band challenge likewise disappears ``challenge_grace`` seconds after its code
expired (and never sooner than ``challenge_grace`` after it was written); until then a used
or expired code is reported as such rather than as unknown.

Failure semantics: no command is ever retried by this store (redis-py's automatic retry is
bypassed), so a write is applied at most once. Connection problems raise
:class:`~mfa_core.errors.StoreUnavailable`, every other Redis error
:class:`~mfa_core.errors.StoreError`; the caller refuses the attempt (fail closed), and the
next call takes a fresh connection from the pool. This store is synchronous; a
``redis.asyncio`` variant can follow once the service has an async API.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final

from ..errors import InvalidParameter, MFAError, MissingDependency, StoreError, StoreUnavailable
from ..models import Credential, CredentialKind, CredentialState, FailureState
from ..oob import OOBChannel, OOBPurpose, OOBRecord
from ..otp import Algorithm
from ..recovery import RecoveryRecord
from ._common import (
    check_claim_value,
    check_credential,
    check_drift,
    check_generation,
    check_id,
    check_oob_record,
    check_phc,
    check_recovery_records,
    check_send_count,
    check_time,
    check_version,
)

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.commands.core import Script
    from redis.exceptions import NoScriptError
    from redis.retry import Retry
except ImportError:  # pragma: no cover - exercised in a subprocess by the tests
    raise MissingDependency(
        "the Redis store needs redis-py: pip install 'mfa_core[redis]'"
    ) from None

__all__ = [
    "DEFAULT_CHALLENGE_GRACE",
    "DEFAULT_FAILURE_TTL",
    "DEFAULT_PENDING_GRACE",
    "DEFAULT_PREFIX",
    "RedisStore",
]

DEFAULT_PREFIX: Final = "mfa:"
"""Key prefix used when none is given."""
DEFAULT_PENDING_GRACE: Final = 86400.0
"""Seconds a PENDING credential is kept after its ``pending_until`` deadline."""
DEFAULT_FAILURE_TTL: Final = 30 * 86400.0
"""Seconds after the latest failure at which a user's failure counter vanishes."""
DEFAULT_CHALLENGE_GRACE: Final = 86400.0
"""Seconds an out-of-band challenge is kept after its code expired."""

_MAX_PREFIX: Final = 256
_MAX_TTL: Final = 100 * 365 * 86400.0
# PEXPIREAT deadlines are capped here (year 9999) so that Redis never refuses them.
_MAX_EXPIRE_AT_MS: Final = 253402300799000

# Lua helpers shared by the scripts. Redis' Lua numbers are doubles, so last_accepted (up
# to 2**63-1) is kept as a canonical decimal string and compared digit-exactly.
_LUA_GREATER: Final = """
local function greater(a, b)
  if b == '-1' then return a ~= '-1' end
  if a == '-1' then return false end
  if #a ~= #b then return #a > #b end
  local cut = #a - 9
  if cut > 0 then
    local ha, hb = tonumber(string.sub(a, 1, cut)), tonumber(string.sub(b, 1, cut))
    if ha ~= hb then return ha > hb end
    return tonumber(string.sub(a, cut + 1)) > tonumber(string.sub(b, cut + 1))
  end
  return tonumber(a) > tonumber(b)
end
"""

_LUA_SET_TTL: Final = """
local function set_ttl(key, at_ms, floor_ms)
  if at_ms == '' then
    redis.call('PERSIST', key)
    return
  end
  local t = redis.call('TIME')
  local low = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(floor_ms)
  local at = tonumber(at_ms)
  if at < low then at = low end
  redis.call('PEXPIREAT', key, string.format('%d', at))
end
"""

# KEYS: credential, user index, sequence counter.
# ARGV: id, score, expire_at_ms|'', grace_ms, field, value, field, value, ...
_ADD: Final = (
    _LUA_SET_TTL
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local seq = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], 'seq', seq, unpack(ARGV, 5))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
set_ttl(KEYS[1], ARGV[3], ARGV[4])
return 1
"""
)

# KEYS: credential, new user index.
# ARGV: expected version, new version, id, score, expire_at_ms|'', grace_ms,
#       user index prefix, n (fields to delete), n field names, field, value, ...
_UPDATE: Final = (
    _LUA_SET_TTL
    + """
local stored = redis.call('HMGET', KEYS[1], 'version', 'user_id')
if not stored[1] or stored[1] ~= ARGV[1] then return 0 end
local ndel = tonumber(ARGV[8])
if ndel > 0 then redis.call('HDEL', KEYS[1], unpack(ARGV, 9, 8 + ndel)) end
redis.call('HSET', KEYS[1], 'version', ARGV[2], unpack(ARGV, 9 + ndel))
local old_index = ARGV[7] .. stored[2]
if old_index ~= KEYS[2] then redis.call('ZREM', old_index, ARGV[3]) end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
set_ttl(KEYS[1], ARGV[5], ARGV[6])
return 1
"""
)

# KEYS: credential. ARGV: value, drift.
_CLAIM: Final = (
    _LUA_GREATER
    + """
local current = redis.call('HGET', KEYS[1], 'last_accepted')
if not current or not greater(ARGV[1], current) then return 0 end
redis.call('HSET', KEYS[1], 'last_accepted', ARGV[1], 'drift', ARGV[2])
return 1
"""
)

# KEYS: credential. ARGV: user index prefix, id.
_DELETE: Final = """
local user = redis.call('HGET', KEYS[1], 'user_id')
if not user then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', ARGV[1] .. user, ARGV[2])
return 1
"""

# KEYS: user index. ARGV: credential key prefix.
_LIST: Final = """
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
local out = {}
for _, id in ipairs(ids) do
  local fields = redis.call('HGETALL', ARGV[1] .. id)
  if #fields == 0 then
    redis.call('ZREM', KEYS[1], id)
  else
    out[#out + 1] = fields
  end
end
return out
"""

# KEYS: failure counter. ARGV: now, ttl_ms|''.
_RECORD_FAILURE: Final = """
local count = redis.call('HINCRBY', KEYS[1], 'count', 1)
local last = redis.call('HGET', KEYS[1], 'last_failure_at')
local at = ARGV[1]
if last and tonumber(last) > tonumber(at) then
  at = last
else
  redis.call('HSET', KEYS[1], 'last_failure_at', at)
end
if ARGV[2] ~= '' then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return {count, at}
"""

# KEYS: the user's codes, the user's used codes.
# ARGV: n, then n pairs (id, "position:tag:phc"), then pairs (id, used_at) of used records.
_REPLACE_RECOVERY: Final = """
redis.call('DEL', KEYS[1], KEYS[2])
local n = tonumber(ARGV[1])
if n > 0 then redis.call('HSET', KEYS[1], unpack(ARGV, 2, 1 + 2 * n)) end
if #ARGV > 1 + 2 * n then redis.call('HSET', KEYS[2], unpack(ARGV, 2 + 2 * n)) end
return n
"""

# KEYS: the user's codes, the user's used codes. A consistent snapshot of both.
_RECOVERY_CODES: Final = """
return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2])}
"""

# KEYS: the user's codes, the user's used codes. ARGV: record id, now.
# Returns the unused codes left, or nil if the code is not in the set or already used.
_CONSUME_RECOVERY: Final = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return false end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return false end
return redis.call('HLEN', KEYS[1]) - redis.call('HLEN', KEYS[2])
"""

# KEYS: the user's codes. ARGV: record id, new PHC string.
_UPDATE_RECOVERY_HASH: Final = """
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if not stored then return 0 end
local head = string.match(stored, '^%d+:%x+:')
if not head then return redis.error_reply('ERR damaged recovery record') end
redis.call('HSET', KEYS[1], ARGV[1], head .. ARGV[2])
return 1
"""

# KEYS: challenge. ARGV: expire_at_ms, grace_ms, field, value, ...
_PUT_CHALLENGE: Final = (
    _LUA_SET_TTL
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
set_ttl(KEYS[1], ARGV[1], ARGV[2])
return 1
"""
)

# KEYS: challenge. ARGV: expected generation, expire_at_ms, grace_ms, field, value, ...
_REPLACE_CHALLENGE: Final = (
    _LUA_SET_TTL
    + """
local stored = redis.call('HMGET', KEYS[1], 'generation', 'used')
if not stored[1] or stored[1] ~= ARGV[1] or stored[2] ~= '0' then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
set_ttl(KEYS[1], ARGV[2], ARGV[3])
return 1
"""
)

# KEYS: challenge. ARGV: expected generation, attempts, used, expire_at_ms, grace_ms,
#       field, value, ...
_UPDATE_CHALLENGE: Final = (
    _LUA_SET_TTL
    + """
local stored = redis.call('HMGET', KEYS[1], 'generation', 'attempts', 'used')
if not stored[1] or stored[1] ~= ARGV[1] or stored[2] ~= ARGV[2] or stored[3] ~= ARGV[3] then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
set_ttl(KEYS[1], ARGV[4], ARGV[5])
return 1
"""
)

# KEYS: send counter. ARGV: expire_at_ms, floor_ms (the window's length).
_COUNT_SEND: Final = (
    _LUA_SET_TTL
    + """
local count = redis.call('INCR', KEYS[1])
set_ttl(KEYS[1], ARGV[1], ARGV[2])
return count
"""
)

_OPTIONAL_TIMES: Final = ("pending_until", "confirmed_at", "renewed_at", "disabled_at")
_UNAVAILABLE: Final = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
    OSError,
)


def _text(value: str) -> bytes:
    return value.encode("utf-8")


def _number(value: float) -> bytes:
    # repr() of a float is the shortest string that parses back to the same double.
    return repr(float(value)).encode("ascii")


def _seconds(value: object, name: str) -> float:
    if (
        type(value) not in (int, float)
        or not math.isfinite(value)  # type: ignore[arg-type]
        or not 0 < value <= _MAX_TTL  # type: ignore[operator]
    ):
        raise InvalidParameter(f"{name} must be a number of seconds from 0 to 100 years")
    return float(value)  # type: ignore[arg-type]


MAX_SOCKET_TIMEOUT: Final = 3600.0
"""The largest ``socket_timeout`` ``from_url`` accepts (an hour), for the blocking and the
async store alike: a store call must fail closed in bounded time."""


def _socket_timeout(value: object) -> float | None:
    """Check a ``socket_timeout`` argument: ``None`` (no timeout) or 0 < seconds <= an hour."""
    if value is None:
        return None
    if (
        type(value) not in (int, float)
        or not math.isfinite(value)  # type: ignore[arg-type]
        or not 0 < value <= MAX_SOCKET_TIMEOUT  # type: ignore[operator]
    ):
        raise InvalidParameter("socket_timeout must be a number of seconds from 0 to 3600")
    return float(value)  # type: ignore[arg-type]


def _credential_fields(credential: Credential) -> tuple[list[bytes], list[bytes]]:
    """The hash fields ``update`` writes (flat field/value list) and the optional fields it
    deletes because they are ``None``. ``last_accepted``, ``drift``, ``version`` and
    ``seq`` are not among them."""
    pairs: list[bytes] = [
        b"user_id",
        _text(credential.user_id),
        b"kind",
        _text(credential.kind.value),
        b"sealed_key",
        credential.sealed_key,
        b"created_at",
        _number(credential.created_at),
        b"status",
        _text(credential.status.value),
        b"algorithm",
        _text(credential.algorithm.value),
        b"digits",
        b"%d" % credential.digits,
        b"period",
        b"%d" % credential.period,
        b"label",
        _text(credential.label),
    ]
    absent: list[bytes] = []
    for name in _OPTIONAL_TIMES:
        value = getattr(credential, name)
        if value is None:
            absent.append(_text(name))
        else:
            pairs += [_text(name), _number(value)]
    if credential.replaces is None:
        absent.append(b"replaces")
    else:
        pairs += [b"replaces", _text(credential.replaces)]
    return pairs, absent


def _as_dict(reply: Any) -> dict[bytes, bytes]:
    """A hash reply (flat list in RESP2, map in RESP3) as a dict of bytes."""
    if isinstance(reply, dict):
        return {bytes(k): bytes(v) for k, v in reply.items()}
    if not isinstance(reply, list) or len(reply) % 2:
        raise StoreError("the Redis store returned a reply it cannot read")
    return {bytes(reply[i]): bytes(reply[i + 1]) for i in range(0, len(reply), 2)}


def _optional_time(fields: dict[bytes, bytes], name: bytes) -> float | None:
    raw = fields.get(name)
    return None if raw is None else float(raw)


def _credential(fields: dict[bytes, bytes]) -> tuple[Credential, int]:
    """Decode a credential hash; returns it with its insertion sequence number."""
    try:
        replaces = fields.get(b"replaces")
        credential = Credential(
            id=fields[b"id"].decode("utf-8"),
            user_id=fields[b"user_id"].decode("utf-8"),
            kind=CredentialKind(fields[b"kind"].decode("ascii")),
            sealed_key=bytes(fields[b"sealed_key"]),
            created_at=float(fields[b"created_at"]),
            status=CredentialState(fields[b"status"].decode("ascii")),
            algorithm=Algorithm(fields[b"algorithm"].decode("ascii")),
            digits=int(fields[b"digits"]),
            period=int(fields[b"period"]),
            label=fields[b"label"].decode("utf-8"),
            pending_until=_optional_time(fields, b"pending_until"),
            confirmed_at=_optional_time(fields, b"confirmed_at"),
            renewed_at=_optional_time(fields, b"renewed_at"),
            replaces=None if replaces is None else replaces.decode("utf-8"),
            disabled_at=_optional_time(fields, b"disabled_at"),
            last_accepted=int(fields[b"last_accepted"]),
            drift=int(fields[b"drift"]),
            version=int(fields[b"version"]),
        )
        return credential, int(fields.get(b"seq", b"0"))
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        raise StoreError("the Redis store holds a credential hash it cannot read") from exc


def _recovery_value(position: int, record: RecoveryRecord) -> bytes:
    """The hash value of one code: position (order of the set), tag and PHC string."""
    return b"%d:%s:%s" % (position, record.tag.encode("ascii"), record.phc.encode("ascii"))


def _recovery_records(codes: dict[bytes, bytes], used: dict[bytes, bytes]) -> list[RecoveryRecord]:
    """Decode a user's set (in the order it was given) from its two hashes."""
    try:
        entries: list[tuple[int, RecoveryRecord]] = []
        for raw_id, value in codes.items():
            position, tag, phc = value.decode("ascii").split(":", 2)
            used_at = used.get(raw_id)
            entries.append(
                (
                    int(position),
                    RecoveryRecord(
                        id=raw_id.decode("utf-8"),
                        tag=tag,
                        phc=phc,
                        used_at=None if used_at is None else float(used_at),
                    ),
                )
            )
    except (ValueError, UnicodeDecodeError, MFAError) as exc:
        raise StoreError("the Redis store holds a recovery code it cannot read") from exc
    entries.sort(key=lambda entry: entry[0])
    return [record for _, record in entries]


def _challenge_fields(record: OOBRecord) -> list[bytes]:
    """The hash fields of a challenge (flat field/value list); the id is in the key."""
    return [
        b"user_id",
        _text(record.user_id),
        b"purpose",
        _text(record.purpose.value),
        b"channel",
        _text(record.channel.value),
        b"destination_hint",
        _text(record.destination_hint),
        b"code_hash",
        record.code_hash,
        b"digits",
        b"%d" % record.digits,
        b"issued_at",
        _number(record.issued_at),
        b"expires_at",
        _number(record.expires_at),
        b"max_attempts",
        b"%d" % record.max_attempts,
        b"attempts",
        b"%d" % record.attempts,
        b"resend_count",
        b"%d" % record.resend_count,
        b"generation",
        b"%d" % record.generation,
        b"used",
        b"1" if record.used else b"0",
    ]


def _flag(raw: bytes) -> bool:
    if raw not in (b"0", b"1"):
        raise ValueError("used must be 0 or 1")
    return raw == b"1"


def _challenge(challenge_id: str, fields: dict[bytes, bytes]) -> OOBRecord:
    """Decode a challenge hash (the record's constructor checks every field)."""
    try:
        return OOBRecord(
            challenge_id=challenge_id,
            user_id=fields[b"user_id"].decode("utf-8"),
            purpose=OOBPurpose(fields[b"purpose"].decode("ascii")),
            channel=OOBChannel(fields[b"channel"].decode("ascii")),
            destination_hint=fields[b"destination_hint"].decode("utf-8"),
            code_hash=bytes(fields[b"code_hash"]),
            digits=int(fields[b"digits"]),
            issued_at=float(fields[b"issued_at"]),
            expires_at=float(fields[b"expires_at"]),
            max_attempts=int(fields[b"max_attempts"]),
            attempts=int(fields[b"attempts"]),
            resend_count=int(fields[b"resend_count"]),
            generation=int(fields[b"generation"]),
            used=_flag(fields[b"used"]),
        )
    except (KeyError, ValueError, UnicodeDecodeError, MFAError) as exc:
        raise StoreError("the Redis store holds a challenge it cannot read") from exc


class RedisStore:
    """A :class:`~mfa_core.ports.CredentialStore`, :class:`~mfa_core.ports.FailureCounter`,
    :class:`~mfa_core.ports.RecoveryCodeStore` and :class:`~mfa_core.ports.OOBChallengeStore`
    on a Redis server, shared by any number of worker processes.

    ``client`` is the host's ``redis.Redis`` (its connection pool is used; its retry
    settings are not, since this store never repeats a command). ``prefix`` starts every
    key (one per application sharing a server). ``pending_grace`` is how long a PENDING
    credential outlives its ``pending_until`` deadline; ``failure_ttl`` is how long a
    failure counter outlives its latest failure (``None``: for ever). Keep ``failure_ttl``
    well above the throttle's ``lockout``, and use ``None`` when locks last until an
    administrator unlocks (``ThrottleConfig(lockout=None)``). ``challenge_grace`` is how
    long an out-of-band challenge outlives the expiry of its code.

    Redis Cluster is not supported (the scripts touch several keys of one user).
    """

    __slots__ = (
        "_add",
        "_challenge_grace",
        "_claim",
        "_client",
        "_consume_recovery",
        "_count_send",
        "_delete",
        "_failure_ttl_ms",
        "_list",
        "_owns_client",
        "_pending_grace",
        "_prefix",
        "_put_challenge",
        "_record_failure",
        "_recovery_codes",
        "_replace_challenge",
        "_replace_recovery",
        "_update",
        "_update_challenge",
        "_update_recovery_hash",
    )

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        pending_grace: float = DEFAULT_PENDING_GRACE,
        failure_ttl: float | None = DEFAULT_FAILURE_TTL,
        challenge_grace: float = DEFAULT_CHALLENGE_GRACE,
    ) -> None:
        if not isinstance(client, redis.Redis):
            raise InvalidParameter("client must be a redis.Redis client (not a cluster client)")
        if type(prefix) is not str or len(prefix) > _MAX_PREFIX:
            raise InvalidParameter(f"prefix must be a string of at most {_MAX_PREFIX} characters")
        try:
            self._prefix = _text(prefix)
        except UnicodeEncodeError:
            raise InvalidParameter("prefix must be valid Unicode text") from None
        self._pending_grace = _seconds(pending_grace, "pending_grace")
        self._challenge_grace = _seconds(challenge_grace, "challenge_grace")
        self._failure_ttl_ms = (
            b""
            if failure_ttl is None
            else b"%d" % math.ceil(_seconds(failure_ttl, "failure_ttl") * 1000)
        )
        self._client = client
        self._owns_client = False
        # register_script only computes the SHA locally; the server learns a script the
        # first time it runs (EVALSHA, then EVAL once if the server does not know it).
        self._add: Script = client.register_script(_ADD)
        self._update: Script = client.register_script(_UPDATE)
        self._claim: Script = client.register_script(_CLAIM)
        self._delete: Script = client.register_script(_DELETE)
        self._list: Script = client.register_script(_LIST)
        self._record_failure: Script = client.register_script(_RECORD_FAILURE)
        self._replace_recovery: Script = client.register_script(_REPLACE_RECOVERY)
        self._recovery_codes: Script = client.register_script(_RECOVERY_CODES)
        self._consume_recovery: Script = client.register_script(_CONSUME_RECOVERY)
        self._update_recovery_hash: Script = client.register_script(_UPDATE_RECOVERY_HASH)
        self._put_challenge: Script = client.register_script(_PUT_CHALLENGE)
        self._replace_challenge: Script = client.register_script(_REPLACE_CHALLENGE)
        self._update_challenge: Script = client.register_script(_UPDATE_CHALLENGE)
        self._count_send: Script = client.register_script(_COUNT_SEND)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        pending_grace: float = DEFAULT_PENDING_GRACE,
        failure_ttl: float | None = DEFAULT_FAILURE_TTL,
        challenge_grace: float = DEFAULT_CHALLENGE_GRACE,
        socket_timeout: float | None = 5.0,
    ) -> RedisStore:
        """Make a store with its own client for ``url`` (``redis://host:port/db``,
        ``rediss://...``, ``unix://...``); :meth:`close` closes that client.

        ``socket_timeout`` bounds every command and connection attempt, and a failed
        connection attempt is repeated only once, so an unreachable server makes calls fail
        (closed) within about two timeouts instead of hanging.
        """
        if type(url) is not str:
            raise InvalidParameter("url must be a string")
        socket_timeout = _socket_timeout(socket_timeout)
        try:
            client = redis.Redis.from_url(
                url,
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_timeout,
                # Connecting is retried once at once (commands are never retried here):
                # a server that is down fails the call quickly, closed.
                retry=Retry(NoBackoff(), 1),
            )
        except ValueError as exc:
            raise InvalidParameter("url is not a valid Redis URL") from exc
        store = cls(
            client,
            prefix=prefix,
            pending_grace=pending_grace,
            failure_ttl=failure_ttl,
            challenge_grace=challenge_grace,
        )
        store._owns_client = True
        return store

    def __repr__(self) -> str:
        return f"RedisStore(prefix={self._prefix.decode('utf-8')!r})"

    def __enter__(self) -> RedisStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def prefix(self) -> str:
        """The key prefix of this store."""
        return self._prefix.decode("utf-8")

    def close(self) -> None:
        """Close the client if :meth:`from_url` made it; a client passed in is the host's."""
        if self._owns_client:
            self._client.close()

    # -- keys ----------------------------------------------------------------------------

    def _credential_key(self, credential_id: str) -> bytes:
        return self._prefix + b"cred:" + _text(credential_id)

    def _index_prefix(self) -> bytes:
        return self._prefix + b"creds-of:"

    def _index_key(self, user_id: str) -> bytes:
        return self._index_prefix() + _text(user_id)

    def _failure_key(self, user_id: str) -> bytes:
        return self._prefix + b"fail:" + _text(user_id)

    def _recovery_keys(self, user_id: str) -> tuple[bytes, bytes]:
        user = _text(user_id)
        return self._prefix + b"rc:" + user, self._prefix + b"rc-used:" + user

    def _challenge_key(self, challenge_id: str) -> bytes:
        return self._prefix + b"oob:" + _text(challenge_id)

    # -- the wire ------------------------------------------------------------------------

    def _execute(
        self,
        operation: str,
        command: tuple[bytes, ...],
        fallback: tuple[bytes, ...] | None = None,
    ) -> Any:
        """Send ``command`` on one pooled connection and return its raw reply.

        If the server answers NOSCRIPT (it does not know the script's SHA, so nothing ran),
        ``fallback`` (the same script sent as ``EVAL``) is sent on the same connection.
        Exactly one attempt: connection errors raise StoreUnavailable (and the connection is
        dropped, so the pool reconnects next time), other Redis errors StoreError.
        """
        pool = self._client.connection_pool
        try:
            connection: Any = pool.get_connection()
            try:
                connection.send_command(*command)
                try:
                    return connection.read_response(disable_decoding=True)
                except NoScriptError:
                    if fallback is None:
                        raise
                connection.send_command(*fallback)
                return connection.read_response(disable_decoding=True)
            except _UNAVAILABLE:
                connection.disconnect()
                raise
            finally:
                pool.release(connection)
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(
                f"the Redis store is unavailable: {operation} failed ({type(exc).__name__})"
            ) from exc
        except redis.exceptions.RedisError as exc:
            raise StoreError(
                f"the Redis store failed: {operation} failed ({type(exc).__name__})"
            ) from exc

    def _run(
        self, operation: str, script: Script, keys: Sequence[bytes], args: Sequence[bytes]
    ) -> Any:
        """Run a registered Lua script in one round trip (EVALSHA; EVAL if unknown)."""
        tail = (b"%d" % len(keys), *keys, *args)
        text = script.script
        return self._execute(
            operation,
            (b"EVALSHA", script.sha.encode("ascii"), *tail),
            (b"EVAL", _text(text) if isinstance(text, str) else bytes(text), *tail),
        )

    def _expire_at_ms(self, credential: Credential) -> bytes:
        """The PEXPIREAT deadline for a PENDING credential, or b'' (no TTL)."""
        if credential.status is not CredentialState.PENDING or credential.pending_until is None:
            return b""
        at = (credential.pending_until + self._pending_grace) * 1000
        return b"%d" % min(math.ceil(at), _MAX_EXPIRE_AT_MS)

    def _grace_ms(self) -> bytes:
        return b"%d" % math.ceil(self._pending_grace * 1000)

    def _challenge_ttl(self, record: OOBRecord) -> tuple[bytes, bytes]:
        """The PEXPIREAT deadline of a challenge (its code's expiry plus the grace) and the
        grace in ms (the least TTL a write leaves, whatever the caller's clock says)."""
        at = min(math.ceil((record.expires_at + self._challenge_grace) * 1000), _MAX_EXPIRE_AT_MS)
        return b"%d" % at, b"%d" % math.ceil(self._challenge_grace * 1000)

    # -- CredentialStore -----------------------------------------------------------------

    def add(self, credential: Credential) -> None:
        """Insert a new credential (one script); raise :class:`~mfa_core.errors.StoreError`
        if its id is already stored."""
        check_credential(credential)
        pairs, _ = _credential_fields(credential)
        pairs += [
            b"id",
            _text(credential.id),
            b"last_accepted",
            b"%d" % credential.last_accepted,
            b"drift",
            b"%d" % credential.drift,
            b"version",
            b"%d" % credential.version,
        ]
        added = self._run(
            "add",
            self._add,
            (
                self._credential_key(credential.id),
                self._index_key(credential.user_id),
                self._prefix + b"seq",
            ),
            (
                _text(credential.id),
                _number(credential.created_at),
                self._expire_at_ms(credential),
                self._grace_ms(),
                *pairs,
            ),
        )
        if added != 1:
            raise StoreError("a credential with this id already exists")

    def get(self, credential_id: str) -> Credential | None:
        """Return the credential with this id, or ``None`` (one ``HGETALL``)."""
        check_id(credential_id, "credential_id")
        fields = _as_dict(self._execute("get", (b"HGETALL", self._credential_key(credential_id))))
        return _credential(fields)[0] if fields else None

    def list_for_user(self, user_id: str) -> Sequence[Credential]:
        """Return all credentials of a user (any state), oldest first (by ``created_at``,
        then by insertion order); one script."""
        check_id(user_id, "user_id")
        reply = self._run(
            "list_for_user",
            self._list,
            (self._index_key(user_id),),
            (self._prefix + b"cred:",),
        )
        if not isinstance(reply, list):
            raise StoreError("the Redis store returned a reply it cannot read")
        entries = [_credential(_as_dict(item)) for item in reply]
        entries.sort(key=lambda entry: (entry[0].created_at, entry[1]))
        return [credential for credential, _ in entries]

    def update(self, credential: Credential, *, expected_version: int) -> bool:
        """Replace the stored credential if its version is ``expected_version`` (one
        script). The stored version becomes ``expected_version + 1``; ``last_accepted`` and
        ``drift`` keep their stored values. Returns ``False`` (changing nothing) if the
        credential is missing or its version differs. Leaving PENDING removes the TTL.
        """
        check_credential(credential)
        check_version(expected_version)
        pairs, absent = _credential_fields(credential)
        updated = self._run(
            "update",
            self._update,
            (self._credential_key(credential.id), self._index_key(credential.user_id)),
            (
                b"%d" % expected_version,
                b"%d" % (expected_version + 1),
                _text(credential.id),
                _number(credential.created_at),
                self._expire_at_ms(credential),
                self._grace_ms(),
                self._index_prefix(),
                b"%d" % len(absent),
                *absent,
                *pairs,
            ),
        )
        return bool(updated == 1)

    def claim(self, credential_id: str, value: int, *, drift: int) -> bool:
        """Store ``value`` and ``drift`` if ``value`` is greater than ``last_accepted`` (one
        script); return whether it was stored. Of concurrent calls with one value, from any
        process, exactly one wins. ``value``: 0..2**63-1.
        """
        check_id(credential_id, "credential_id")
        check_claim_value(value)
        check_drift(drift)
        claimed = self._run(
            "claim",
            self._claim,
            (self._credential_key(credential_id),),
            (b"%d" % value, b"%d" % drift),
        )
        return bool(claimed == 1)

    def delete(self, credential_id: str) -> bool:
        """Remove a credential and its index entry (one script); return whether it existed."""
        check_id(credential_id, "credential_id")
        deleted = self._run(
            "delete",
            self._delete,
            (self._credential_key(credential_id),),
            (self._index_prefix(), _text(credential_id)),
        )
        return bool(deleted == 1)

    # -- FailureCounter ------------------------------------------------------------------

    def record_failure(self, user_id: str, now: float) -> FailureState:
        """Add one failure and return the new state (one script).

        ``last_failure_at`` becomes the later of ``now`` and the stored time, so a caller
        with a lagging clock never shortens a delay or a lock. The counter's TTL restarts
        at ``failure_ttl``.
        """
        check_id(user_id, "user_id")
        at = check_time(now)
        reply = self._run(
            "record_failure",
            self._record_failure,
            (self._failure_key(user_id),),
            (_number(at), self._failure_ttl_ms),
        )
        try:
            count, last = reply
            return FailureState(count=int(count), last_failure_at=float(last))
        except (TypeError, ValueError) as exc:
            raise StoreError("the Redis store holds a failure counter it cannot read") from exc

    def get_failures(self, user_id: str) -> FailureState:
        """Return the user's failure state (``FailureState()`` if none); one ``HMGET``."""
        check_id(user_id, "user_id")
        reply = self._execute(
            "get_failures",
            (b"HMGET", self._failure_key(user_id), b"count", b"last_failure_at"),
        )
        try:
            count, last = reply
            if count is None:
                return FailureState()
            return FailureState(
                count=int(count), last_failure_at=None if last is None else float(last)
            )
        except (TypeError, ValueError) as exc:
            raise StoreError("the Redis store holds a failure counter it cannot read") from exc

    def reset(self, user_id: str) -> None:
        """Forget the user's failures (one ``DEL``)."""
        check_id(user_id, "user_id")
        self._execute("reset", (b"DEL", self._failure_key(user_id)))

    # -- RecoveryCodeStore ---------------------------------------------------------------

    def replace_recovery_codes(self, user_id: str, records: Sequence[RecoveryRecord]) -> None:
        """Replace the user's whole set with ``records`` (empty: delete it) in one script:
        no reader sees old and new codes mixed, and no old code is consumable afterwards."""
        check_id(user_id, "user_id")
        checked = check_recovery_records(records)
        codes: list[bytes] = []
        used: list[bytes] = []
        for position, record in enumerate(checked):
            codes += [_text(record.id), _recovery_value(position, record)]
            if record.used_at is not None:
                used += [_text(record.id), _number(record.used_at)]
        self._run(
            "replace_recovery_codes",
            self._replace_recovery,
            self._recovery_keys(user_id),
            (b"%d" % len(checked), *codes, *used),
        )

    def recovery_codes(self, user_id: str) -> Sequence[RecoveryRecord]:
        """Return the user's records, used ones included, in the order they were given
        (one script reading both hashes at one moment)."""
        check_id(user_id, "user_id")
        reply = self._run("recovery_codes", self._recovery_codes, self._recovery_keys(user_id), ())
        if not isinstance(reply, list) or len(reply) != 2:
            raise StoreError("the Redis store returned a reply it cannot read")
        return _recovery_records(_as_dict(reply[0]), _as_dict(reply[1]))

    def consume_recovery_code(self, user_id: str, record_id: str, now: float) -> int | None:
        """Mark the code used at ``now`` if it is in the user's set and unused, and return
        the unused codes left; ``None`` (changing nothing) otherwise. One script: of
        concurrent calls from any process exactly one returns a number."""
        check_id(user_id, "user_id")
        check_id(record_id, "record_id")
        at = check_time(now)
        left = self._run(
            "consume_recovery_code",
            self._consume_recovery,
            self._recovery_keys(user_id),
            (_text(record_id), _number(at)),
        )
        if left is None:
            return None
        if not isinstance(left, int) or left < 0:
            raise StoreError("the Redis store returned a reply it cannot read")
        return left

    def update_recovery_hash(self, user_id: str, record_id: str, phc: str) -> bool:
        """Replace one record's PHC hash (``used_at`` is kept); return whether it exists
        (one script)."""
        check_id(user_id, "user_id")
        check_id(record_id, "record_id")
        check_phc(phc)
        codes_key, _ = self._recovery_keys(user_id)
        updated = self._run(
            "update_recovery_hash",
            self._update_recovery_hash,
            (codes_key,),
            (_text(record_id), phc.encode("ascii")),
        )
        return bool(updated == 1)

    # -- OOBChallengeStore ---------------------------------------------------------------

    def put_challenge(self, record: OOBRecord) -> None:
        """Insert a new challenge with its TTL (one script); raise
        :class:`~mfa_core.errors.StoreError` if its id is already stored."""
        check_oob_record(record)
        expire_at, grace = self._challenge_ttl(record)
        added = self._run(
            "put_challenge",
            self._put_challenge,
            (self._challenge_key(record.challenge_id),),
            (expire_at, grace, *_challenge_fields(record)),
        )
        if added != 1:
            raise StoreError("a challenge with this id already exists")

    def get_challenge(self, challenge_id: str) -> OOBRecord | None:
        """Return the challenge with this id, or ``None`` (one ``HGETALL``)."""
        check_id(challenge_id, "challenge_id")
        reply = self._execute("get_challenge", (b"HGETALL", self._challenge_key(challenge_id)))
        fields = _as_dict(reply)
        return _challenge(challenge_id, fields) if fields else None

    def replace_challenge(self, record: OOBRecord, *, expected_generation: int) -> bool:
        """Store ``record`` if the stored challenge has ``expected_generation`` and is not
        used (one script); return whether it was stored. The TTL follows the new expiry."""
        check_oob_record(record)
        check_generation(expected_generation)
        expire_at, grace = self._challenge_ttl(record)
        replaced = self._run(
            "replace_challenge",
            self._replace_challenge,
            (self._challenge_key(record.challenge_id),),
            (b"%d" % expected_generation, expire_at, grace, *_challenge_fields(record)),
        )
        return bool(replaced == 1)

    def update_challenge(self, record: OOBRecord, *, expected: OOBRecord) -> bool:
        """Store ``record`` if the stored challenge still has ``expected``'s generation,
        attempts and used flag (one script); return whether it was stored."""
        check_oob_record(record)
        check_oob_record(expected)
        if record.challenge_id != expected.challenge_id:
            raise InvalidParameter("record and expected must be the same challenge")
        expire_at, grace = self._challenge_ttl(record)
        updated = self._run(
            "update_challenge",
            self._update_challenge,
            (self._challenge_key(record.challenge_id),),
            (
                b"%d" % expected.generation,
                b"%d" % expected.attempts,
                b"1" if expected.used else b"0",
                expire_at,
                grace,
                *_challenge_fields(record),
            ),
        )
        return bool(updated == 1)

    def delete_challenge(self, challenge_id: str) -> bool:
        """Remove a challenge; return whether it existed (one ``DEL``)."""
        check_id(challenge_id, "challenge_id")
        deleted = self._execute("delete_challenge", (b"DEL", self._challenge_key(challenge_id)))
        return bool(deleted == 1)

    def count_send(self, key: str, window_start: float, expires_at: float) -> int:
        """Add one to the send counter ``(key, window_start)`` and return the new count
        (one script: ``INCR``, then ``PEXPIREAT`` at ``expires_at``). The counter lives at
        least one window length after each call whatever the caller's clock says, so a
        clock behind the server's cannot make it vanish at once."""
        name, start, end = check_send_count(key, window_start, expires_at)
        at = min(math.ceil(end * 1000), _MAX_EXPIRE_AT_MS)
        count = self._run(
            "count_send",
            self._count_send,
            (self._prefix + b"send:" + _number(start) + b":" + _text(name),),
            (b"%d" % at, b"%d" % math.ceil((end - start) * 1000)),
        )
        if type(count) is not int or count < 1:
            raise StoreError("the Redis store returned a reply it cannot read")
        return count
