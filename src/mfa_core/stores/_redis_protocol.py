"""The Redis protocol of :class:`~mfa_core.stores.RedisStore` and
:class:`~mfa_core.aio.redis.AsyncRedisStore`, without I/O.

This module holds everything the two stores share: the Lua scripts, the key layout, the
encoding of values, the validation of arguments and the decoding of replies. A store
operation is two steps of :class:`RedisProtocol`:

1. a builder method (named after the operation) checks the arguments and returns a
   :class:`Call`: the ONE command to send (``EVALSHA`` of a script, or a plain read command),
   the script it names (so that a loop can send it as ``EVAL`` when the server answers
   ``NOSCRIPT``), and its decoder;
2. the decoder (a ``decode_*`` function of this module) turns the raw reply (bytes, ints,
   lists; RESP2 or RESP3) into the port's result, raising
   :class:`~mfa_core.errors.StoreError` for a reply it cannot read.

A store is then a loop over a connection: build, send once, decode (``Call.decode``). No
function here touches a socket, a clock or redis-py, so the protocol is tested on its own.

Every key a script writes or reads is derived from the operation's arguments and passed in
``KEYS``, except the credential hashes that ``list_for_user`` / ``begin_attempt`` find in the
user's index (and the previous user's index that ``update`` / ``delete`` find in the
credential): those are named by the stored data.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable, Generator, Sequence
from typing import Any, Final, Generic, TypeVar

import attrs

from ..errors import InvalidParameter, MFAError, StoreError, StoreUnavailable
from ..models import Admission, Credential, CredentialKind, CredentialState, FailureState
from ..oob import OOBChannel, OOBPurpose, OOBRecord
from ..otp import Algorithm
from ..recovery import RecoveryRecord
from ..throttle import ThrottleConfig
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

__all__ = [
    "ACKNOWLEDGED",
    "DEFAULT_CHALLENGE_GRACE",
    "DEFAULT_FAILURE_TTL",
    "DEFAULT_PENDING_GRACE",
    "DEFAULT_PREFIX",
    "DEFAULT_REPLICA_ACK_TIMEOUT",
    "SCRIPTS",
    "Call",
    "ClusterKeyLayout",
    "KeyLayout",
    "Operation",
    "Plan",
    "RedisProtocol",
    "Script",
]

_T = TypeVar("_T")

DEFAULT_PREFIX: Final = "mfa:"
"""Key prefix used when none is given."""
DEFAULT_PENDING_GRACE: Final = 86400.0
"""Seconds a PENDING credential is kept after its ``pending_until`` deadline."""
DEFAULT_FAILURE_TTL: Final = 30 * 86400.0
"""Seconds after the latest counted attempt at which a user's failure counter vanishes."""
DEFAULT_CHALLENGE_GRACE: Final = 86400.0
"""Seconds an out-of-band challenge is kept after its code expired."""
DEFAULT_REPLICA_ACK_TIMEOUT: Final = 1.0
"""Seconds a write in :data:`ACKNOWLEDGED` waits for ``min_replicas_ack`` replicas."""

_MAX_PREFIX: Final = 256
_MAX_TTL: Final = 100 * 365 * 86400.0
# PEXPIREAT deadlines are capped here (year 9999) so that Redis never refuses them.
_MAX_EXPIRE_AT_MS: Final = 253402300799000
_UNREADABLE: Final = "the Redis store returned a reply it cannot read"
_BAD_COUNTER: Final = "the Redis store holds a failure counter it cannot read"
# What decoding a stored hash can raise; it becomes a StoreError without a chain (a field's
# value could be anything, a secret included).
_FIELD_ERRORS: Final = (KeyError, ValueError, TypeError, ArithmeticError, MFAError)


@attrs.frozen
class Script:
    """A Lua script: its name (for error messages), its source and its SHA-1 (hex, as
    ``EVALSHA`` takes it)."""

    name: str
    """The store operation (or family) the script serves."""
    source: bytes
    """The Lua source, as sent with ``EVAL``."""
    sha: bytes = attrs.field(init=False)
    """The lowercase hex SHA-1 of ``source``, as sent with ``EVALSHA``."""

    @sha.default
    def _sha(self) -> bytes:
        return hashlib.sha1(self.source, usedforsecurity=False).hexdigest().encode("ascii")


@attrs.frozen
class Call(Generic[_T]):
    """One store operation on the wire: the command to send and how to read its reply.

    ``command`` is sent exactly once. When it is an ``EVALSHA`` and the server answers
    ``NOSCRIPT`` (it does not know the script, so nothing ran), :meth:`fallback` is the
    same script sent as ``EVAL``; nothing else is ever resent.
    """

    operation: str
    """The store operation (for error messages; never holds arguments)."""
    command: tuple[bytes, ...]
    """The command and its arguments, as bytes."""
    script: Script | None
    """The script ``command`` runs by SHA, or ``None`` for a plain command."""
    decode: Callable[[Any], _T] = attrs.field(repr=False)
    """Turns the raw reply into the operation's result (``StoreError`` if unreadable)."""
    wait: tuple[bytes, ...] | None = None
    """``WAIT numreplicas timeout`` to send right after ``command`` on the same connection
    (pipelined: no extra round trip), or ``None``. Set for the writes in
    :data:`ACKNOWLEDGED` when the store was made with ``min_replicas_ack``."""

    @property
    def wait_seconds(self) -> float:
        """How long :attr:`wait` may block the server's reply (0 without it): the store's
        bound for this call grows by as much."""
        return 0.0 if self.wait is None else int(self.wait[2]) / 1000

    @property
    def slot_key(self) -> bytes:
        """The key that decides the cluster slot (every key of a call shares its slot)."""
        return self.command[3] if self.script is not None else self.command[1]

    def check_acknowledged(self, reply: Any) -> None:
        """Read the reply to :attr:`wait` (the replicas that acknowledged the write) and
        raise :class:`~mfa_core.errors.StoreUnavailable` when fewer than asked did."""
        if self.wait is None:
            return
        needed = int(self.wait[1])
        if type(reply) is not int or reply < needed:
            raise StoreUnavailable(
                f"the Redis store is unavailable: {self.operation} was not acknowledged by "
                f"{needed} replica(s) in time"
            )

    def __repr__(self) -> str:
        # Never the arguments: they may hold sealed keys and code hashes.
        return f"Call(operation={self.operation!r})"

    def fallback(self) -> tuple[bytes, ...] | None:
        """The ``EVAL`` command to send after ``NOSCRIPT`` (``None`` for a plain command)."""
        if self.script is None:
            return None
        return (b"EVAL", self.script.source, *self.command[2:])


Plan = Generator[Call[Any], Any, _T]
"""An operation of several commands (Redis Cluster: a credential named only by its id is
found through its owner pointer first): a generator that yields each :class:`Call` in turn,
receives its decoded result, and returns the operation's result."""

Operation = Call[_T] | Plan[_T]
"""What a builder returns: one :class:`Call` (every operation on a plain server, and most on
a cluster) or a :data:`Plan`."""

ACKNOWLEDGED: Final = frozenset(
    {
        "claim",
        "claim_and_reset",
        "admit_attempt",
        "begin_attempt",
        "consume_recovery_code",
        "update_challenge",
    }
)
"""The operations whose write must reach ``min_replicas_ack`` replicas before it counts
(a claimed code, a consumed recovery code or challenge, a counted failure)."""


# -- Lua -------------------------------------------------------------------------------
# Redis' Lua numbers are doubles, and a number returned by a script is truncated to an
# integer, so times travel as the decimal text Python wrote (repr: the shortest string that
# parses back to the same double) and are returned as that text, never as Lua numbers.

# last_accepted (up to 2**63-1) is kept as a canonical decimal string and compared
# digit-exactly.
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

# mfa_core.throttle.admit on the stored state, with the same double arithmetic:
# base * 2^(count-1) is exact (a power-of-two multiple, count < max_failures <= 100) as
# math.ldexp is, and last + delay / last + lockout are the same IEEE additions.
# a: index of the first of 6 ARGV: now, max_failures, base_delay, max_delay,
# lockout|'', ttl_ms|''. Returns {admitted 0/1, count, last_failure_at text or false}.
_LUA_ADMIT: Final = """
local function admit(key, a)
  local stored = redis.call('HMGET', key, 'count', 'last_failure_at')
  local count = 0
  local last = stored[2]
  if stored[1] then
    count = tonumber(stored[1])
    if not count or count < 0 or count ~= math.floor(count) then
      return redis.error_reply('ERR damaged failure counter')
    end
  end
  if last and not tonumber(last) then return redis.error_reply('ERR damaged failure counter') end
  if count > 0 and not last then return redis.error_reply('ERR damaged failure counter') end
  local now = tonumber(ARGV[a])
  if count > 0 then
    local at = tonumber(last)
    if count >= tonumber(ARGV[a + 1]) then
      if ARGV[a + 4] == '' or now < at + tonumber(ARGV[a + 4]) then
        return {0, count, last}
      end
    else
      local base = tonumber(ARGV[a + 2])
      if base > 0 then
        local delay = base * 2 ^ (count - 1)
        local top = tonumber(ARGV[a + 3])
        if delay > top then delay = top end
        if delay > 0 and now < at + delay then return {0, count, last} end
      end
    end
  end
  local latest = ARGV[a]
  if last and not (now > tonumber(last)) then latest = last end
  redis.call('HSET', key, 'count', string.format('%d', count + 1), 'last_failure_at', latest)
  if ARGV[a + 5] ~= '' then redis.call('PEXPIRE', key, ARGV[a + 5]) end
  return {1, count + 1, latest}
end
"""

# The user's credentials from the index; index entries of vanished credentials are dropped.
_LUA_LIST: Final = """
local function list(index, cred_prefix)
  local ids = redis.call('ZRANGE', index, 0, -1)
  local out = {}
  for _, id in ipairs(ids) do
    local fields = redis.call('HGETALL', cred_prefix .. id)
    if #fields == 0 then
      redis.call('ZREM', index, id)
    else
      out[#out + 1] = fields
    end
  end
  return out
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

# KEYS: credential, the user's failure counter. ARGV: value, drift.
# The claim, then (only when it won) the reset of the failure counter.
_CLAIM_AND_RESET: Final = (
    _LUA_GREATER
    + """
local current = redis.call('HGET', KEYS[1], 'last_accepted')
if not current or not greater(ARGV[1], current) then return 0 end
redis.call('HSET', KEYS[1], 'last_accepted', ARGV[1], 'drift', ARGV[2])
redis.call('DEL', KEYS[2])
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
_LIST: Final = (
    _LUA_LIST
    + """
return list(KEYS[1], ARGV[1])
"""
)

# KEYS: failure counter. ARGV: now, max_failures, base_delay, max_delay, lockout|'',
# ttl_ms|''.
_ADMIT: Final = (
    _LUA_ADMIT
    + """
return admit(KEYS[1], 1)
"""
)

# KEYS: failure counter, user index. ARGV: the 6 of admit, then the credential key prefix.
# Returns admit's 3 values and the credentials (an empty list when not admitted).
_BEGIN_ATTEMPT: Final = (
    _LUA_ADMIT
    + _LUA_LIST
    + """
local admission = admit(KEYS[1], 1)
if admission['err'] then return admission end
if admission[1] == 1 then
  admission[4] = list(KEYS[2], ARGV[7])
else
  admission[4] = {}
end
return admission
"""
)

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


# -- scripts of the cluster layout (every key in the user's slot; see ClusterKeyLayout) --

# KEYS: credential, the user's index.
# ARGV: expected version, new version, id, score, expire_at_ms|'', grace_ms,
#       n (fields to delete), n field names, field, value, ...
# Returns -1 when the credential is not in this user's slot, 0 on a version mismatch.
_UPDATE_IN_SLOT: Final = (
    _LUA_SET_TTL
    + """
local stored = redis.call('HGET', KEYS[1], 'version')
if not stored then return -1 end
if stored ~= ARGV[1] then return 0 end
local ndel = tonumber(ARGV[7])
if ndel > 0 then redis.call('HDEL', KEYS[1], unpack(ARGV, 8, 7 + ndel)) end
redis.call('HSET', KEYS[1], 'version', ARGV[2], unpack(ARGV, 8 + ndel))
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
set_ttl(KEYS[1], ARGV[5], ARGV[6])
return 1
"""
)

# KEYS: credential, the user's failure counter. ARGV: value, drift.
# As claim_and_reset, but -1 when the credential is not in this user's slot.
_CLAIM_AND_RESET_IN_SLOT: Final = (
    _LUA_GREATER
    + """
local current = redis.call('HGET', KEYS[1], 'last_accepted')
if not current then return -1 end
if not greater(ARGV[1], current) then return 0 end
redis.call('HSET', KEYS[1], 'last_accepted', ARGV[1], 'drift', ARGV[2])
redis.call('DEL', KEYS[2])
return 1
"""
)

# KEYS: credential, the user's index. ARGV: id.
_DELETE_IN_SLOT: Final = """
local existed = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return existed
"""


def _script(name: str, source: str) -> Script:
    return Script(name=name, source=source.encode("utf-8"))


SCRIPTS: Final = {
    script.name: script
    for script in (
        _script("add", _ADD),
        _script("update", _UPDATE),
        _script("claim", _CLAIM),
        _script("claim_and_reset", _CLAIM_AND_RESET),
        _script("delete", _DELETE),
        _script("list_for_user", _LIST),
        _script("admit_attempt", _ADMIT),
        _script("begin_attempt", _BEGIN_ATTEMPT),
        _script("replace_recovery_codes", _REPLACE_RECOVERY),
        _script("recovery_codes", _RECOVERY_CODES),
        _script("consume_recovery_code", _CONSUME_RECOVERY),
        _script("update_recovery_hash", _UPDATE_RECOVERY_HASH),
        _script("put_challenge", _PUT_CHALLENGE),
        _script("replace_challenge", _REPLACE_CHALLENGE),
        _script("update_challenge", _UPDATE_CHALLENGE),
        _script("count_send", _COUNT_SEND),
        _script("update_in_slot", _UPDATE_IN_SLOT),
        _script("claim_and_reset_in_slot", _CLAIM_AND_RESET_IN_SLOT),
        _script("delete_in_slot", _DELETE_IN_SLOT),
    )
}
"""Every script of the store, by the operation it serves."""


# -- encoding --------------------------------------------------------------------------

_OPTIONAL_TIMES: Final = ("pending_until", "confirmed_at", "renewed_at", "disabled_at")


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


def _wait_command(replicas: object, timeout: object) -> tuple[bytes, ...] | None:
    """The ``WAIT`` sent after each acknowledged write, or ``None`` for ``replicas == 0``."""
    if type(replicas) is not int or not 0 <= replicas <= 100:
        raise InvalidParameter("min_replicas_ack must be an integer from 0 to 100")
    if (
        type(timeout) not in (int, float)
        or not math.isfinite(timeout)  # type: ignore[arg-type]
        or not 0 < timeout <= 3600  # type: ignore[operator]
    ):
        raise InvalidParameter("replica_ack_timeout must be a number of seconds from 0 to 3600")
    if replicas == 0:
        return None
    return (b"WAIT", b"%d" % replicas, b"%d" % max(1, math.ceil(timeout * 1000)))  # type: ignore[operator]


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


def _recovery_value(position: int, record: RecoveryRecord) -> bytes:
    """The hash value of one code: position (order of the set), tag and PHC string."""
    return b"%d:%s:%s" % (position, record.tag.encode("ascii"), record.phc.encode("ascii"))


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
        b"destination_hash",  # empty for a record without one (HSET overwrites it)
        record.destination_hash or b"",
    ]


def _limits(limits: object) -> list[bytes]:
    """The 4 ARGV of a ThrottleConfig the admit script reads (lockout None: b'')."""
    if not isinstance(limits, ThrottleConfig):
        raise InvalidParameter("limits must be a mfa_core.throttle.ThrottleConfig")
    return [
        b"%d" % limits.max_failures,
        _number(limits.base_delay),
        _number(limits.max_delay),
        b"" if limits.lockout is None else _number(limits.lockout),
    ]


# -- decoding --------------------------------------------------------------------------


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise StoreError(_UNREADABLE)


def _as_dict(reply: Any) -> dict[bytes, bytes]:
    """A hash reply (flat list in RESP2, map in RESP3) as a dict of bytes."""
    if isinstance(reply, dict):
        return {_bytes(k): _bytes(v) for k, v in reply.items()}
    if not isinstance(reply, list) or len(reply) % 2:
        raise StoreError(_UNREADABLE)
    return {_bytes(reply[i]): _bytes(reply[i + 1]) for i in range(0, len(reply), 2)}


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
        # By the rules the store writes with: a hash it would never write is unreadable.
        return check_credential(credential), int(fields.get(b"seq", b"0"))
    except _FIELD_ERRORS:
        pass
    raise StoreError("the Redis store holds a credential hash it cannot read")


def _credentials(reply: Any) -> list[Credential]:
    """Decode a list of credential hashes, oldest first (created_at, then insertion)."""
    if not isinstance(reply, list):
        raise StoreError(_UNREADABLE)
    entries = [_credential(_as_dict(item)) for item in reply]
    entries.sort(key=lambda entry: (entry[0].created_at, entry[1]))
    return [credential for credential, _ in entries]


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
            destination_hash=fields.get(b"destination_hash") or None,
        )
    except _FIELD_ERRORS:
        pass
    raise StoreError("the Redis store holds a challenge it cannot read")


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
                        phc=check_phc(phc),
                        used_at=None if used_at is None else float(used_at),
                    ),
                )
            )
    except _FIELD_ERRORS:
        pass
    else:
        entries.sort(key=lambda entry: entry[0])
        return [record for _, record in entries]
    raise StoreError("the Redis store holds a recovery code it cannot read")


def _one(reply: Any) -> bool:
    """A script's 0/1 answer."""
    if type(reply) is not int or reply not in (0, 1):
        raise StoreError(_UNREADABLE)
    return reply == 1


def _admission(reply: Any) -> Admission:
    """Decode the admit script's ``{admitted, count, last_failure_at | nil}``."""
    if not isinstance(reply, list) or len(reply) != 3:
        raise StoreError(_BAD_COUNTER)
    admitted, count, last = reply
    if type(admitted) is not int or admitted not in (0, 1) or type(count) is not int:
        raise StoreError(_BAD_COUNTER)
    try:
        at = None if last is None else float(_bytes(last))
        state = FailureState(count=count, last_failure_at=at)
    except (ValueError, StoreError, MFAError) as exc:
        raise StoreError(_BAD_COUNTER) from exc
    if count < 0 or (count > 0 and (at is None or not math.isfinite(at))):
        raise StoreError(_BAD_COUNTER)
    if count == 0:  # an attempt with no failures is always admitted, and then counted
        raise StoreError(_BAD_COUNTER)
    return Admission(admitted=admitted == 1, state=state)


def decode_add(reply: Any) -> None:
    """``add``: 1, or 0 when the id exists (``StoreError``)."""
    if not _one(reply):
        raise StoreError("a credential with this id already exists")


def decode_get(reply: Any) -> Credential | None:
    """``get``: the credential hash (empty: ``None``)."""
    fields = _as_dict(reply)
    return _credential(fields)[0] if fields else None


def decode_list_for_user(reply: Any) -> list[Credential]:
    """``list_for_user``: the user's credential hashes, oldest first."""
    return _credentials(reply)


def decode_update(reply: Any) -> bool:
    """``update``: whether the version matched."""
    return _one(reply)


def decode_claim(reply: Any) -> bool:
    """``claim``: whether the value was stored."""
    return _one(reply)


def decode_claim_and_reset(reply: Any) -> bool:
    """``claim_and_reset``: whether the claim won (and the failures were reset)."""
    return _one(reply)


def decode_delete(reply: Any) -> bool:
    """``delete``: whether the credential existed."""
    return _one(reply)


def decode_admit_attempt(reply: Any) -> Admission:
    """``admit_attempt``: the admission and the state after it."""
    return _admission(reply)


def decode_begin_attempt(reply: Any) -> tuple[Admission, list[Credential]]:
    """``begin_attempt``: the admission and (when admitted) the user's credentials."""
    if not isinstance(reply, list) or len(reply) != 4:
        raise StoreError(_UNREADABLE)
    admission = _admission(reply[:3])
    credentials = _credentials(reply[3])
    if credentials and not admission.admitted:
        raise StoreError(_UNREADABLE)
    return admission, credentials


def decode_get_failures(reply: Any) -> FailureState:
    """``get_failures``: ``HMGET count last_failure_at``."""
    if not isinstance(reply, list) or len(reply) != 2:
        raise StoreError(_BAD_COUNTER)
    count, last = reply
    if count is None:
        return FailureState()
    try:
        return FailureState(
            count=int(_bytes(count)), last_failure_at=None if last is None else float(_bytes(last))
        )
    except (ValueError, StoreError) as exc:
        raise StoreError(_BAD_COUNTER) from exc


def decode_reset(reply: Any) -> None:
    """``reset``: ``DEL``'s count of deleted keys (0 or 1)."""
    if type(reply) is not int or reply not in (0, 1):
        raise StoreError(_UNREADABLE)


def decode_replace_recovery_codes(reply: Any) -> None:
    """``replace_recovery_codes``: the number of records written."""
    if type(reply) is not int or reply < 0:
        raise StoreError(_UNREADABLE)


def decode_recovery_codes(reply: Any) -> list[RecoveryRecord]:
    """``recovery_codes``: both hashes of the user's set."""
    if not isinstance(reply, list) or len(reply) != 2:
        raise StoreError(_UNREADABLE)
    return _recovery_records(_as_dict(reply[0]), _as_dict(reply[1]))


def decode_consume_recovery_code(reply: Any) -> int | None:
    """``consume_recovery_code``: the unused codes left, or nil (not consumed)."""
    if reply is None:
        return None
    if type(reply) is not int or reply < 0:
        raise StoreError(_UNREADABLE)
    return reply


def decode_update_recovery_hash(reply: Any) -> bool:
    """``update_recovery_hash``: whether the record exists."""
    return _one(reply)


def decode_put_challenge(reply: Any) -> None:
    """``put_challenge``: 1, or 0 when the id exists (``StoreError``)."""
    if not _one(reply):
        raise StoreError("a challenge with this id already exists")


def decode_get_challenge(challenge_id: str, reply: Any) -> OOBRecord | None:
    """``get_challenge``: the challenge hash (empty: ``None``)."""
    fields = _as_dict(reply)
    return _challenge(challenge_id, fields) if fields else None


def decode_replace_challenge(reply: Any) -> bool:
    """``replace_challenge``: whether the resend was stored."""
    return _one(reply)


def decode_update_challenge(reply: Any) -> bool:
    """``update_challenge``: whether the attempt was stored."""
    return _one(reply)


def decode_delete_challenge(reply: Any) -> bool:
    """``delete_challenge``: whether the challenge existed."""
    return _one(reply)


def decode_count_send(reply: Any) -> int:
    """``count_send``: the new count (at least 1)."""
    if type(reply) is not int or reply < 1:
        raise StoreError(_UNREADABLE)
    return reply


_ABSENT: Final = -1


def decode_in_slot(reply: Any) -> int:
    """A cluster-layout script's ``-1`` (not in this slot), ``0`` or ``1``."""
    if type(reply) is not int or reply not in (-1, 0, 1):
        raise StoreError(_UNREADABLE)
    return reply


def decode_owner(reply: Any) -> bytes | None:
    """``GET`` (or ``SET ... GET``) of a credential's owner: the user id, or nil."""
    return None if reply is None else _bytes(reply)


def decode_deleted(reply: Any) -> bool:
    """``DEL`` of one key: whether it existed."""
    if type(reply) is not int or reply not in (0, 1):
        raise StoreError(_UNREADABLE)
    return reply == 1


# -- keys ------------------------------------------------------------------------------


@attrs.frozen
class KeyLayout:
    """The key families under one prefix (see ``docs/stores.md``)::

    {prefix}cred:{credential id}    hash: the credential's fields
    {prefix}creds-of:{user id}      sorted set: the user's credential ids (by created_at)
    {prefix}seq                     counter: insertion order, breaks created_at ties
    {prefix}fail:{user id}          hash: count, last_failure_at (TTL: failure_ttl)
    {prefix}rc:{user id}            hash: record id -> "position:tag:phc"
    {prefix}rc-used:{user id}       hash: record id -> used_at (only used codes)
    {prefix}oob:{challenge id}      hash: the challenge's fields (TTL)
    {prefix}send:{window}:{key}     counter: codes sent in one window (TTL)
    """

    prefix: bytes
    """The prefix of every key (UTF-8)."""

    def credential_prefix(self) -> bytes:
        """The start of every credential key (the scripts append an id from an index)."""
        return self.prefix + b"cred:"

    def credential(self, credential_id: str) -> bytes:
        """The hash of one credential."""
        return self.credential_prefix() + _text(credential_id)

    def index_prefix(self) -> bytes:
        """The start of every user index key."""
        return self.prefix + b"creds-of:"

    def index(self, user_id: str) -> bytes:
        """The sorted set of a user's credential ids."""
        return self.index_prefix() + _text(user_id)

    def sequence(self) -> bytes:
        """The insertion counter."""
        return self.prefix + b"seq"

    def failures(self, user_id: str) -> bytes:
        """The failure counter hash of a user."""
        return self.prefix + b"fail:" + _text(user_id)

    def recovery(self, user_id: str) -> tuple[bytes, bytes]:
        """The user's codes hash and used-codes hash."""
        user = _text(user_id)
        return self.prefix + b"rc:" + user, self.prefix + b"rc-used:" + user

    def challenge(self, challenge_id: str) -> bytes:
        """The hash of one out-of-band challenge."""
        return self.prefix + b"oob:" + _text(challenge_id)

    def send_counter(self, key: str, window_start: float) -> bytes:
        """The send counter of ``key`` in the window starting at ``window_start``."""
        return self.prefix + b"send:" + _number(window_start) + b":" + _text(key)


def _tag(text: bytes) -> bytes:
    """A user id inside a hash tag: ``%`` and ``}`` escaped, so the tag is the whole id
    (never cut short, never empty) and distinct ids stay distinct."""
    return text.replace(b"%", b"%25").replace(b"}", b"%7D")


@attrs.frozen
class ClusterKeyLayout:
    """The key families of a store on Redis Cluster (see ``docs/stores.md``)::

    {prefix}{{user}}:cred:{credential id}   hash: the credential's fields
    {prefix}{{user}}:creds                  sorted set: the user's credential ids
    {prefix}{{user}}:seq                    counter: insertion order of the user's credentials
    {prefix}{{user}}:fail                   hash: count, last_failure_at (TTL)
    {prefix}{{user}}:rc                     hash: record id -> "position:tag:phc"
    {prefix}{{user}}:rc-used                hash: record id -> used_at
    {prefix}owner:{credential id}           string: the user id owning the credential
    {prefix}oob:{challenge id}              hash: the challenge's fields (TTL)
    {prefix}send:{window}:{key}             counter: codes sent in one window (TTL)

    ``{{user}}`` is the user id in a hash tag (``%`` and ``}`` escaped as ``%25`` and
    ``%7D``), so every key of one user is in one hash slot and every script touches one
    slot. The owner pointer, the challenge and the send counter are single keys, each
    read or written alone. The prefix may not hold ``{`` or ``}``.
    """

    prefix: bytes
    """The prefix of every key (UTF-8)."""

    def user(self, user_id: bytes) -> bytes:
        """The start of every key of one user: the prefix and the user's hash tag."""
        return self.prefix + b"{" + _tag(user_id) + b"}:"

    def credential_prefix(self, user_id: bytes) -> bytes:
        """The start of the user's credential keys (scripts append ids from the index)."""
        return self.user(user_id) + b"cred:"

    def credential(self, user_id: bytes, credential_id: bytes) -> bytes:
        """The hash of one credential of the user."""
        return self.credential_prefix(user_id) + credential_id

    def index(self, user_id: bytes) -> bytes:
        """The sorted set of the user's credential ids."""
        return self.user(user_id) + b"creds"

    def sequence(self, user_id: bytes) -> bytes:
        """The user's insertion counter."""
        return self.user(user_id) + b"seq"

    def failures(self, user_id: bytes) -> bytes:
        """The user's failure counter hash."""
        return self.user(user_id) + b"fail"

    def recovery(self, user_id: bytes) -> tuple[bytes, bytes]:
        """The user's codes hash and used-codes hash."""
        head = self.user(user_id)
        return head + b"rc", head + b"rc-used"

    def owner(self, credential_id: bytes) -> bytes:
        """The pointer from a credential id to its user (for the calls that name only the
        credential)."""
        return self.prefix + b"owner:" + credential_id


# -- the protocol ----------------------------------------------------------------------


def _evalsha(
    operation: str,
    keys: Sequence[bytes],
    args: Sequence[bytes],
    decode: Callable[[Any], _T],
    script_name: str | None = None,
) -> Call[_T]:
    script = SCRIPTS[operation if script_name is None else script_name]
    command = (b"EVALSHA", script.sha, b"%d" % len(keys), *keys, *args)
    return Call(operation=operation, command=command, script=script, decode=decode)


def _plain(operation: str, command: tuple[bytes, ...], decode: Callable[[Any], _T]) -> Call[_T]:
    return Call(operation=operation, command=command, script=None, decode=decode)


class RedisProtocol:
    """Builds the :class:`Call` of every store operation for one configuration.

    ``prefix``, ``pending_grace``, ``failure_ttl`` (``None``: for ever),
    ``challenge_grace``, ``min_replicas_ack`` and ``replica_ack_timeout`` are
    :class:`~mfa_core.stores.RedisStore`'s arguments, checked here
    (:class:`~mfa_core.errors.InvalidParameter`). ``cluster`` selects the Redis Cluster key
    layout (:class:`ClusterKeyLayout`). Each builder checks the operation's arguments before
    building anything, as every store does before any I/O.
    """

    __slots__ = (
        "_challenge_grace",
        "_failure_ttl_ms",
        "_pending_grace",
        "_wait",
        "cluster_keys",
        "keys",
    )

    def __init__(
        self,
        *,
        prefix: str = DEFAULT_PREFIX,
        pending_grace: float = DEFAULT_PENDING_GRACE,
        failure_ttl: float | None = DEFAULT_FAILURE_TTL,
        challenge_grace: float = DEFAULT_CHALLENGE_GRACE,
        cluster: bool = False,
        min_replicas_ack: int = 0,
        replica_ack_timeout: float = DEFAULT_REPLICA_ACK_TIMEOUT,
    ) -> None:
        if type(prefix) is not str or len(prefix) > _MAX_PREFIX:
            raise InvalidParameter(f"prefix must be a string of at most {_MAX_PREFIX} characters")
        try:
            raw = _text(prefix)
        except UnicodeEncodeError:
            raise InvalidParameter("prefix must be valid Unicode text") from None
        self.keys: KeyLayout = KeyLayout(raw)
        self.cluster_keys: ClusterKeyLayout | None = None
        if cluster:
            if b"{" in raw or b"}" in raw:
                raise InvalidParameter("on Redis Cluster the prefix may not hold '{' or '}'")
            self.cluster_keys = ClusterKeyLayout(raw)
        self._wait = _wait_command(min_replicas_ack, replica_ack_timeout)
        self._pending_grace = _seconds(pending_grace, "pending_grace")
        self._challenge_grace = _seconds(challenge_grace, "challenge_grace")
        self._failure_ttl_ms = (
            b""
            if failure_ttl is None
            else b"%d" % math.ceil(_seconds(failure_ttl, "failure_ttl") * 1000)
        )

    def __repr__(self) -> str:
        return f"RedisProtocol(prefix={self.prefix!r})"

    @property
    def prefix(self) -> str:
        """The key prefix."""
        return self.keys.prefix.decode("utf-8")

    # -- TTLs ----------------------------------------------------------------------------

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

    def _admit_args(self, now: object, limits: object) -> list[bytes]:
        at = check_time(now)
        return [_number(at), *_limits(limits), self._failure_ttl_ms]

    # -- keys of one user, in either layout ------------------------------------------------

    def _index(self, user_id: str) -> bytes:
        ck = self.cluster_keys
        return self.keys.index(user_id) if ck is None else ck.index(_text(user_id))

    def _credential_prefix(self, user_id: str) -> bytes:
        ck = self.cluster_keys
        return self.keys.credential_prefix() if ck is None else ck.credential_prefix(_text(user_id))

    def _failures(self, user_id: str) -> bytes:
        ck = self.cluster_keys
        return self.keys.failures(user_id) if ck is None else ck.failures(_text(user_id))

    def _recovery(self, user_id: str) -> tuple[bytes, bytes]:
        ck = self.cluster_keys
        return self.keys.recovery(user_id) if ck is None else ck.recovery(_text(user_id))

    def _acked(self, call: Call[_T]) -> Call[_T]:
        """``call`` with the ``WAIT`` of ``min_replicas_ack`` (when one was asked for)."""
        return call if self._wait is None else attrs.evolve(call, wait=self._wait)

    @staticmethod
    def _owner(ck: ClusterKeyLayout, operation: str, credential_id: str) -> Call[bytes | None]:
        return _plain(operation, (b"GET", ck.owner(_text(credential_id))), decode_owner)

    # -- CredentialStore -----------------------------------------------------------------

    def add(self, credential: Credential) -> Operation[None]:
        """``add``: one script (refuses an existing id)."""
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
        args = (
            _text(credential.id),
            _number(credential.created_at),
            self._expire_at_ms(credential),
            self._grace_ms(),
            *pairs,
        )
        ck = self.cluster_keys
        if ck is None:
            keys = (
                self.keys.credential(credential.id),
                self.keys.index(credential.user_id),
                self.keys.sequence(),
            )
            return _evalsha("add", keys, args, decode_add)
        user, cid = _text(credential.user_id), _text(credential.id)
        keys = (ck.credential(user, cid), ck.index(user), ck.sequence(user))
        # Take the id first (SET NX; GET says who holds it): a pointer left to the same
        # user by an add that stopped half-way is taken over, any other holder refuses.
        take = (b"SET", ck.owner(cid), user, b"NX", b"GET")
        return self._cluster_add(_plain("add", take, decode_owner), user, keys, args)

    @staticmethod
    def _cluster_add(
        take: Call[bytes | None], user: bytes, keys: tuple[bytes, ...], args: tuple[bytes, ...]
    ) -> Plan[None]:
        holder = yield take
        if holder is not None and holder != user:
            raise StoreError("a credential with this id already exists")
        yield _evalsha("add", keys, args, decode_add)

    def get(self, credential_id: str) -> Operation[Credential | None]:
        """``get``: one ``HGETALL``."""
        check_id(credential_id, "credential_id")
        if self.cluster_keys is None:
            return _plain("get", (b"HGETALL", self.keys.credential(credential_id)), decode_get)
        return self._cluster_get(self.cluster_keys, credential_id)

    def _cluster_get(self, ck: ClusterKeyLayout, credential_id: str) -> Plan[Credential | None]:
        owner = yield self._owner(ck, "get", credential_id)
        if owner is None:
            return None
        key = ck.credential(owner, _text(credential_id))
        credential: Credential | None = yield _plain("get", (b"HGETALL", key), decode_get)
        return credential

    def list_for_user(self, user_id: str) -> Call[list[Credential]]:
        """``list_for_user``: one script (drops index entries of vanished credentials)."""
        check_id(user_id, "user_id")
        return _evalsha(
            "list_for_user",
            (self._index(user_id),),
            (self._credential_prefix(user_id),),
            decode_list_for_user,
        )

    def update(self, credential: Credential, *, expected_version: int) -> Operation[bool]:
        """``update``: one compare-and-set script on ``version``."""
        check_credential(credential)
        check_version(expected_version)
        pairs, absent = _credential_fields(credential)
        ck = self.cluster_keys
        if ck is not None:
            user = _text(credential.user_id)
            return self._cluster_update(
                ck,
                credential.id,
                (ck.credential(user, _text(credential.id)), ck.index(user)),
                (
                    b"%d" % expected_version,
                    b"%d" % (expected_version + 1),
                    _text(credential.id),
                    _number(credential.created_at),
                    self._expire_at_ms(credential),
                    self._grace_ms(),
                    b"%d" % len(absent),
                    *absent,
                    *pairs,
                ),
                user,
            )
        args = (
            b"%d" % expected_version,
            b"%d" % (expected_version + 1),
            _text(credential.id),
            _number(credential.created_at),
            self._expire_at_ms(credential),
            self._grace_ms(),
            self.keys.index_prefix(),
            b"%d" % len(absent),
            *absent,
            *pairs,
        )
        keys = (self.keys.credential(credential.id), self.keys.index(credential.user_id))
        return _evalsha("update", keys, args, decode_update)

    def _cluster_update(
        self,
        ck: ClusterKeyLayout,
        credential_id: str,
        keys: tuple[bytes, ...],
        args: tuple[bytes, ...],
        user: bytes,
    ) -> Plan[bool]:
        outcome: int = yield _evalsha("update", keys, args, decode_in_slot, "update_in_slot")
        if outcome != _ABSENT:
            return outcome == 1
        # Not in this user's slot: unknown, or (refused) a move to another user.
        owner = yield self._owner(ck, "update", credential_id)
        if owner is not None and owner != user:
            raise InvalidParameter(
                "on Redis Cluster a credential cannot move to another user (its keys live in "
                "its user's hash slot)"
            )
        return False

    def claim(self, credential_id: str, value: int, *, drift: int) -> Operation[bool]:
        """``claim``: one script comparing the decimal text of ``last_accepted``."""
        check_id(credential_id, "credential_id")
        check_claim_value(value)
        check_drift(drift)
        args = (b"%d" % value, b"%d" % drift)
        if self.cluster_keys is None:
            key = self.keys.credential(credential_id)
            return self._acked(_evalsha("claim", (key,), args, decode_claim))
        return self._cluster_claim(self.cluster_keys, credential_id, args)

    def _cluster_claim(
        self, ck: ClusterKeyLayout, credential_id: str, args: tuple[bytes, bytes]
    ) -> Plan[bool]:
        owner = yield self._owner(ck, "claim", credential_id)
        if owner is None:
            return False
        key = ck.credential(owner, _text(credential_id))
        won: bool = yield self._acked(_evalsha("claim", (key,), args, decode_claim))
        return won

    def delete(self, credential_id: str) -> Operation[bool]:
        """``delete``: one script (the hash and its index entry)."""
        check_id(credential_id, "credential_id")
        if self.cluster_keys is None:
            return _evalsha(
                "delete",
                (self.keys.credential(credential_id),),
                (self.keys.index_prefix(), _text(credential_id)),
                decode_delete,
            )
        return self._cluster_delete(self.cluster_keys, credential_id)

    def _cluster_delete(self, ck: ClusterKeyLayout, credential_id: str) -> Plan[bool]:
        cid = _text(credential_id)
        owner = yield self._owner(ck, "delete", credential_id)
        if owner is None:
            return False
        keys = (ck.credential(owner, cid), ck.index(owner))
        existed = yield _evalsha("delete", keys, (cid,), decode_deleted, "delete_in_slot")
        # The pointer goes last: a delete stopped half-way leaves a pointer to nothing
        # (get() answers None; an add() of the same id for the same user takes it over).
        yield _plain("delete", (b"DEL", ck.owner(cid)), decode_deleted)
        return bool(existed)

    # -- FailureCounter ------------------------------------------------------------------

    def admit_attempt(self, user_id: str, now: float, limits: ThrottleConfig) -> Call[Admission]:
        """``admit_attempt``: one script applying :func:`mfa_core.throttle.admit`."""
        check_id(user_id, "user_id")
        args = self._admit_args(now, limits)
        call = _evalsha("admit_attempt", (self._failures(user_id),), args, decode_admit_attempt)
        return self._acked(call)

    def get_failures(self, user_id: str) -> Call[FailureState]:
        """``get_failures``: one ``HMGET``."""
        check_id(user_id, "user_id")
        command = (b"HMGET", self._failures(user_id), b"count", b"last_failure_at")
        return _plain("get_failures", command, decode_get_failures)

    def reset(self, user_id: str) -> Call[None]:
        """``reset``: one ``DEL``."""
        check_id(user_id, "user_id")
        return _plain("reset", (b"DEL", self._failures(user_id)), decode_reset)

    # -- AttemptStore --------------------------------------------------------------------

    def begin_attempt(
        self, user_id: str, now: float, limits: ThrottleConfig
    ) -> Call[tuple[Admission, list[Credential]]]:
        """``begin_attempt``: one script, the admission then (when admitted) the list."""
        check_id(user_id, "user_id")
        args = [*self._admit_args(now, limits), self._credential_prefix(user_id)]
        keys = (self._failures(user_id), self._index(user_id))
        return self._acked(_evalsha("begin_attempt", keys, args, decode_begin_attempt))

    def claim_and_reset(
        self, credential_id: str, value: int, *, drift: int, user_id: str
    ) -> Operation[bool]:
        """``claim_and_reset``: one script, the claim then (when it won) the reset."""
        check_id(credential_id, "credential_id")
        check_claim_value(value)
        check_drift(drift)
        check_id(user_id, "user_id")
        args = (b"%d" % value, b"%d" % drift)
        ck = self.cluster_keys
        if ck is None:
            keys = (self.keys.credential(credential_id), self.keys.failures(user_id))
            call = _evalsha("claim_and_reset", keys, args, decode_claim_and_reset)
            return self._acked(call)
        return self._cluster_claim_and_reset(ck, credential_id, user_id, args)

    def _cluster_claim_and_reset(
        self, ck: ClusterKeyLayout, credential_id: str, user_id: str, args: tuple[bytes, bytes]
    ) -> Plan[bool]:
        user, cid = _text(user_id), _text(credential_id)
        keys = (ck.credential(user, cid), ck.failures(user))
        outcome: int = yield self._acked(
            _evalsha("claim_and_reset", keys, args, decode_in_slot, "claim_and_reset_in_slot")
        )
        if outcome != _ABSENT:
            return outcome == 1  # the usual case: the named user owns the credential
        # Another user's credential (never done by the service): the claim in its owner's
        # slot, then the reset in the named user's slot (a separate step; if it is lost
        # the failures stay counted, which refuses more, never less).
        owner = yield self._owner(ck, "claim_and_reset", credential_id)
        if owner is None or owner == user:
            return False
        claim = _evalsha(
            "claim_and_reset", (ck.credential(owner, cid),), args, decode_claim, "claim"
        )
        won: bool = yield self._acked(claim)
        if won:
            yield _plain("claim_and_reset", (b"DEL", ck.failures(user)), decode_reset)
        return won

    # -- RecoveryCodeStore ---------------------------------------------------------------

    def replace_recovery_codes(self, user_id: str, records: Sequence[RecoveryRecord]) -> Call[None]:
        """``replace_recovery_codes``: one script deleting and writing both hashes."""
        check_id(user_id, "user_id")
        checked = check_recovery_records(records)
        codes: list[bytes] = []
        used: list[bytes] = []
        for position, record in enumerate(checked):
            codes += [_text(record.id), _recovery_value(position, record)]
            if record.used_at is not None:
                used += [_text(record.id), _number(record.used_at)]
        return _evalsha(
            "replace_recovery_codes",
            self._recovery(user_id),
            (b"%d" % len(checked), *codes, *used),
            decode_replace_recovery_codes,
        )

    def recovery_codes(self, user_id: str) -> Call[list[RecoveryRecord]]:
        """``recovery_codes``: one script reading both hashes at one moment."""
        check_id(user_id, "user_id")
        return _evalsha("recovery_codes", self._recovery(user_id), (), decode_recovery_codes)

    def consume_recovery_code(self, user_id: str, record_id: str, now: float) -> Call[int | None]:
        """``consume_recovery_code``: one script (``HSETNX`` of ``used_at``)."""
        check_id(user_id, "user_id")
        check_id(record_id, "record_id")
        at = check_time(now)
        call = _evalsha(
            "consume_recovery_code",
            self._recovery(user_id),
            (_text(record_id), _number(at)),
            decode_consume_recovery_code,
        )
        return self._acked(call)

    def update_recovery_hash(self, user_id: str, record_id: str, phc: str) -> Call[bool]:
        """``update_recovery_hash``: one script keeping position and tag."""
        check_id(user_id, "user_id")
        check_id(record_id, "record_id")
        check_phc(phc)
        codes_key, _ = self._recovery(user_id)
        return _evalsha(
            "update_recovery_hash",
            (codes_key,),
            (_text(record_id), phc.encode("ascii")),
            decode_update_recovery_hash,
        )

    # -- OOBChallengeStore ---------------------------------------------------------------

    def put_challenge(self, record: OOBRecord) -> Call[None]:
        """``put_challenge``: one script (refuses an existing id)."""
        check_oob_record(record)
        expire_at, grace = self._challenge_ttl(record)
        return _evalsha(
            "put_challenge",
            (self.keys.challenge(record.challenge_id),),
            (expire_at, grace, *_challenge_fields(record)),
            decode_put_challenge,
        )

    def get_challenge(self, challenge_id: str) -> Call[OOBRecord | None]:
        """``get_challenge``: one ``HGETALL``."""
        check_id(challenge_id, "challenge_id")
        return _plain(
            "get_challenge",
            (b"HGETALL", self.keys.challenge(challenge_id)),
            functools.partial(decode_get_challenge, challenge_id),
        )

    def replace_challenge(self, record: OOBRecord, *, expected_generation: int) -> Call[bool]:
        """``replace_challenge``: one compare-and-set script on ``generation``."""
        check_oob_record(record)
        check_generation(expected_generation)
        expire_at, grace = self._challenge_ttl(record)
        return _evalsha(
            "replace_challenge",
            (self.keys.challenge(record.challenge_id),),
            (b"%d" % expected_generation, expire_at, grace, *_challenge_fields(record)),
            decode_replace_challenge,
        )

    def update_challenge(self, record: OOBRecord, *, expected: OOBRecord) -> Call[bool]:
        """``update_challenge``: one compare-and-set script on generation, attempts, used."""
        check_oob_record(record)
        check_oob_record(expected)
        if record.challenge_id != expected.challenge_id:
            raise InvalidParameter("record and expected must be the same challenge")
        expire_at, grace = self._challenge_ttl(record)
        args = (
            b"%d" % expected.generation,
            b"%d" % expected.attempts,
            b"1" if expected.used else b"0",
            expire_at,
            grace,
            *_challenge_fields(record),
        )
        call = _evalsha(
            "update_challenge",
            (self.keys.challenge(record.challenge_id),),
            args,
            decode_update_challenge,
        )
        return self._acked(call)

    def delete_challenge(self, challenge_id: str) -> Call[bool]:
        """``delete_challenge``: one ``DEL``."""
        check_id(challenge_id, "challenge_id")
        return _plain(
            "delete_challenge",
            (b"DEL", self.keys.challenge(challenge_id)),
            decode_delete_challenge,
        )

    def count_send(self, key: str, window_start: float, expires_at: float) -> Call[int]:
        """``count_send``: one script (``INCR``, then ``PEXPIREAT``, never sooner than one
        window length after the call)."""
        name, start, end = check_send_count(key, window_start, expires_at)
        at = min(math.ceil(end * 1000), _MAX_EXPIRE_AT_MS)
        return _evalsha(
            "count_send",
            (self.keys.send_counter(name, start),),
            (b"%d" % at, b"%d" % math.ceil((end - start) * 1000)),
            decode_count_send,
        )
