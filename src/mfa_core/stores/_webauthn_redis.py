"""The :class:`~mfa_core.ports.WebAuthnStore` part of the Redis stores, sans-I/O.

Key families (under the store's prefix; ``{user}`` is a Redis Cluster hash tag, so every
per-user key of one user is in one slot and each per-user script is atomic there too)::

    {prefix}wa:{<user id>}:cred:<credential id>   hash: the credential's fields
    {prefix}wa:{<user id>}:ids                    sorted set: the user's credential ids
                                                   (score created_at; ties by the seq field)
    {prefix}wa:{<user id>}:seq                    counter: insertion order
    {prefix}wa-cid:<credential id>                string: the owner's user id (the index a
                                                   passkey sign-in finds the key by)
    {prefix}wa-ch:<challenge key>                 hash: one challenge (TTL: expiry + grace)

The credential-id index is its own slot: ``add_webauthn_credential`` claims the id with
``SET NX`` first (a second registration of the id, by anyone, fails there), then writes
the user's keys in one script; reading by id is ``GET`` then ``HGETALL``. A crash between
the two steps leaves an index entry without a record: the id stays taken and reads as
missing (ids are random; nothing is lost). The counter compare-and-set and the challenge
consume are each one script on one key.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final

from ..errors import StoreError
from ..webauthn.records import WebAuthnChallenge, WebAuthnCredential
from ._common import check_id, check_version
from ._redis_protocol import Call, Script
from ._webauthn import (
    CHALLENGE_COLUMNS,
    CREDENTIAL_COLUMNS,
    challenge_from_row,
    challenge_row,
    check_advance,
    check_consume,
    check_credential_id,
    check_webauthn_challenge,
    check_webauthn_credential,
    credential_row,
    webauthn_from_row,
)

__all__ = ["AsyncRedisWebAuthn", "RedisWebAuthn", "WebAuthnRedisProtocol"]

_MAX_AT_MS: Final = 253402300799000

_ADD: Final = Script(
    "add_webauthn_credential",
    b"""
-- KEYS: credential hash, user ids, user seq. ARGV: id, created_at, field, value, ...
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local seq = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], 'seq', seq, unpack(ARGV, 3))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
""",
)
_LIST: Final = Script(
    "webauthn_credentials",
    b"""
-- KEYS: user ids. ARGV: credential key prefix (ends with ':cred:').
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local fields = redis.call('HGETALL', ARGV[1] .. id)
  if #fields > 0 then out[#out + 1] = fields else redis.call('ZREM', KEYS[1], id) end
end
return out
""",
)
_UPDATE: Final = Script(
    "update_webauthn_credential",
    b"""
-- KEYS: credential hash. ARGV: expected version, new version, nclear, clear..., field, value...
local stored = redis.call('HGET', KEYS[1], 'version')
if not stored or stored ~= ARGV[1] then return 0 end
local n = tonumber(ARGV[3])
if n > 0 then redis.call('HDEL', KEYS[1], unpack(ARGV, 4, 3 + n)) end
redis.call('HSET', KEYS[1], 'version', ARGV[2], unpack(ARGV, 4 + n))
return 1
""",
)
_ADVANCE: Final = Script(
    "advance_sign_count",
    b"""
-- KEYS: credential hash. ARGV: sign count, backed_up, now.
local stored = redis.call('HGET', KEYS[1], 'sign_count')
if not stored then return 0 end
local old, new = tonumber(stored), tonumber(ARGV[1])
if not (new > old or (new == 0 and old == 0)) then return 0 end
redis.call('HSET', KEYS[1], 'sign_count', ARGV[1], 'backed_up', ARGV[2], 'last_used_at', ARGV[3])
return 1
""",
)
_DELETE: Final = Script(
    "delete_webauthn_credential",
    b"""
-- KEYS: credential hash, user ids. ARGV: id.
local n = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return n
""",
)
_PUT_CHALLENGE: Final = Script(
    "put_webauthn_challenge",
    b"""
-- KEYS: challenge hash. ARGV: expire_at_ms, floor_ms, field, value, ...
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
local t = redis.call('TIME')
local low = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[2])
local at = tonumber(ARGV[1])
if at < low then at = low end
redis.call('PEXPIREAT', KEYS[1], string.format('%d', at))
return 1
""",
)
_CONSUME: Final = Script(
    "consume_webauthn_challenge",
    b"""
-- KEYS: challenge hash. ARGV: fingerprint. Returns the fields as they were.
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then return false end
if redis.call('HEXISTS', KEYS[1], 'used_by') == 0 then
  redis.call('HSET', KEYS[1], 'used_by', ARGV[1])
end
return fields
""",
)
_COUNTER_FIELDS: Final = frozenset({"sign_count", "backed_up", "last_used_at"})


def _encode(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    if isinstance(value, float):
        return repr(value).encode("ascii")
    if isinstance(value, int):
        return b"%d" % value
    return str(value).encode("utf-8")


def _pairs(
    names: Sequence[str], row: Sequence[Any], skip: frozenset[str] = frozenset()
) -> list[bytes]:
    out: list[bytes] = []
    for name, value in zip(names, row, strict=True):
        encoded = _encode(value)
        if encoded is not None and name not in skip:
            out += [name.encode("ascii"), encoded]
    return out


def _fields(reply: Any) -> dict[str, bytes]:
    if isinstance(reply, dict):
        items = list(reply.items())
    elif isinstance(reply, list) and len(reply) % 2 == 0:
        items = [(reply[i], reply[i + 1]) for i in range(0, len(reply), 2)]
    else:
        raise StoreError("the Redis store returned a reply it cannot read")
    try:
        return {bytes(k).decode("ascii"): bytes(v) for k, v in items}
    except (TypeError, UnicodeDecodeError):
        raise StoreError("the Redis store returned a reply it cannot read") from None


def _text_row(fields: dict[str, bytes], names: Sequence[str], binary: str = "") -> list[Any]:
    row: list[Any] = []
    for name in names:
        raw = fields.get(name)
        if raw is None or name == binary:
            row.append(raw)
            continue
        try:
            row.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise StoreError("the Redis store holds a WebAuthn record it cannot read") from None
    return row


def _credential(reply: Any) -> WebAuthnCredential:
    row = _text_row(_fields(reply), CREDENTIAL_COLUMNS, binary="public_key")
    if row[CREDENTIAL_COLUMNS.index("transports")] is None:
        row[CREDENTIAL_COLUMNS.index("transports")] = ""
    return webauthn_from_row(row, "Redis")


def _decode_flag(reply: Any) -> bool:
    if reply not in (0, 1):
        raise StoreError("the Redis store returned a reply it cannot read")
    return bool(reply)


def _decode_added(reply: Any) -> None:
    if reply != 1:
        raise StoreError("a WebAuthn credential with this id already exists")


def _decode_index(reply: Any) -> str | None:
    if reply is None:
        return None
    try:
        return bytes(reply).decode("utf-8")
    except (TypeError, UnicodeDecodeError):
        raise StoreError("the Redis store returned a reply it cannot read") from None


def _decode_claimed(reply: Any) -> None:
    if reply is None:
        raise StoreError("a WebAuthn credential with this id already exists")


def _decode_optional(reply: Any) -> WebAuthnCredential | None:
    fields = _fields(reply)
    return _credential(reply) if fields else None


def _decode_list(reply: Any) -> list[WebAuthnCredential]:
    if not isinstance(reply, list):
        raise StoreError("the Redis store returned a reply it cannot read")
    decoded = []
    for item in reply:
        fields = _fields(item)
        seq = int(fields.get("seq", b"0"))
        decoded.append((seq, _credential(item)))
    decoded.sort(key=lambda entry: (entry[1].created_at, entry[0]))
    return [credential for _, credential in decoded]


def _decode_challenge(reply: Any) -> WebAuthnChallenge | None:
    if reply is None or reply is False:
        return None
    return challenge_from_row(_text_row(_fields(reply), CHALLENGE_COLUMNS), "Redis")


def _decode_put(reply: Any) -> None:
    if reply != 1:
        raise StoreError("a WebAuthn challenge with this key already exists")


def _decode_nothing(reply: Any) -> None:
    return None


def _evalsha(
    script: Script, keys: Sequence[bytes], args: Sequence[bytes], decode: Any
) -> Call[Any]:
    command = (b"EVALSHA", script.sha, b"%d" % len(keys), *keys, *args)
    return Call(operation=script.name, command=command, script=script, decode=decode)


def _plain(operation: str, command: tuple[bytes, ...], decode: Any) -> Call[Any]:
    return Call(operation=operation, command=command, script=None, decode=decode)


class WebAuthnRedisProtocol:
    """The :class:`Call` of each WebAuthn store step, for one prefix and challenge grace."""

    __slots__ = ("_grace_ms", "_prefix")

    def __init__(self, prefix: bytes, challenge_grace: float) -> None:
        self._prefix = prefix
        self._grace_ms = math.ceil(challenge_grace * 1000)

    def _user(self, user_id: str) -> bytes:
        return self._prefix + b"wa:{" + user_id.encode("utf-8") + b"}:"

    def credential_key(self, user_id: str, credential_id: str) -> bytes:
        """The hash of one credential."""
        return self._user(user_id) + b"cred:" + credential_id.encode("ascii")

    def index_key(self, credential_id: str) -> bytes:
        """The owner of a credential id."""
        return self._prefix + b"wa-cid:" + credential_id.encode("ascii")

    def challenge_key(self, key: str) -> bytes:
        """The hash of one challenge."""
        return self._prefix + b"wa-ch:" + key.encode("ascii")

    def claim_id(self, credential: WebAuthnCredential) -> Call[None]:
        """Step 1 of ``add``: ``SET NX`` the id's owner."""
        check_webauthn_credential(credential)
        command = (
            b"SET",
            self.index_key(credential.credential_id),
            credential.user_id.encode(),
            b"NX",
        )
        return _plain("add_webauthn_credential", command, _decode_claimed)

    def add(self, credential: WebAuthnCredential) -> Call[None]:
        """Step 2 of ``add``: the user's keys, in one script."""
        user, cid = credential.user_id, credential.credential_id
        keys = (
            self.credential_key(user, cid),
            self._user(user) + b"ids",
            self._user(user) + b"seq",
        )
        args = (cid.encode("ascii"), repr(float(credential.created_at)).encode("ascii"))
        pairs = _pairs(CREDENTIAL_COLUMNS, credential_row(credential))
        return _evalsha(_ADD, keys, (*args, *pairs), _decode_added)

    def owner(self, credential_id: str) -> Call[str | None]:
        """``GET`` the owner of a credential id."""
        check_credential_id(credential_id)
        return _plain(
            "get_webauthn_credential", (b"GET", self.index_key(credential_id)), _decode_index
        )

    def get(self, user_id: str, credential_id: str) -> Call[WebAuthnCredential | None]:
        """``HGETALL`` one credential."""
        command = (b"HGETALL", self.credential_key(user_id, credential_id))
        return _plain("get_webauthn_credential", command, _decode_optional)

    def list(self, user_id: str) -> Call[list[WebAuthnCredential]]:
        """The user's credentials, one script."""
        check_id(user_id, "user_id")
        return _evalsha(
            _LIST, (self._user(user_id) + b"ids",), (self._user(user_id) + b"cred:",), _decode_list
        )

    def update(self, credential: WebAuthnCredential, expected_version: int) -> Call[bool]:
        """Compare-and-set on the version, the counter fields left as stored."""
        check_webauthn_credential(credential)
        check_version(expected_version)
        row = credential_row(credential)
        skip = _COUNTER_FIELDS | {"version"}
        clear = [
            name.encode("ascii")
            for name, value in zip(CREDENTIAL_COLUMNS, row, strict=True)
            if value is None and name not in skip
        ]
        pairs = _pairs(CREDENTIAL_COLUMNS, row, skip)
        args = (
            b"%d" % expected_version,
            b"%d" % (expected_version + 1),
            b"%d" % len(clear),
            *clear,
            *pairs,
        )
        key = self.credential_key(credential.user_id, credential.credential_id)
        return _evalsha(_UPDATE, (key,), args, _decode_flag)

    def advance(
        self, user_id: str, credential_id: str, sign_count: int, backed_up: bool, now: float
    ) -> Call[bool]:
        """The counter compare-and-set, one script."""
        args = (b"%d" % sign_count, b"1" if backed_up else b"0", repr(float(now)).encode("ascii"))
        return _evalsha(
            _ADVANCE, (self.credential_key(user_id, credential_id),), args, _decode_flag
        )

    def delete(self, user_id: str, credential_id: str) -> Call[bool]:
        """Remove the user's record and index entry of one credential."""
        keys = (self.credential_key(user_id, credential_id), self._user(user_id) + b"ids")
        return _evalsha(_DELETE, keys, (credential_id.encode("ascii"),), _decode_flag)

    def unindex(self, credential_id: str) -> Call[None]:
        """Drop the id's owner entry (after the record is gone)."""
        return _plain(
            "delete_webauthn_credential", (b"DEL", self.index_key(credential_id)), _decode_nothing
        )

    def put_challenge(self, challenge: WebAuthnChallenge) -> Call[None]:
        """Store a challenge with a TTL (its expiry plus the grace)."""
        check_webauthn_challenge(challenge)
        at = min(math.ceil(challenge.expires_at * 1000) + self._grace_ms, _MAX_AT_MS)
        pairs = _pairs(CHALLENGE_COLUMNS, challenge_row(challenge))
        args = (b"%d" % at, b"%d" % self._grace_ms, *pairs)
        return _evalsha(_PUT_CHALLENGE, (self.challenge_key(challenge.key),), args, _decode_put)

    def consume(self, key: str, fingerprint: str, now: float) -> Call[WebAuthnChallenge | None]:
        """Read and mark used, one script."""
        check_consume(key, fingerprint, now)
        return _evalsha(
            _CONSUME, (self.challenge_key(key),), (fingerprint.encode("ascii"),), _decode_challenge
        )


def _protocol(store: Any) -> WebAuthnRedisProtocol:
    inner = store._protocol
    return WebAuthnRedisProtocol(inner.keys.prefix, getattr(inner, "_challenge_grace", 3600.0))


class RedisWebAuthn:
    """The :class:`~mfa_core.ports.WebAuthnStore` methods of
    :class:`~mfa_core.stores.RedisStore` (see this module's key layout)."""

    __slots__ = ()

    def _call(self, call: Call[Any]) -> Any:  # pragma: no cover - the host class provides it
        raise NotImplementedError

    def add_webauthn_credential(self, credential: WebAuthnCredential) -> None:
        """Claim the id (``SET NX``), then write the user's keys (one script)."""
        protocol = _protocol(self)
        self._call(protocol.claim_id(credential))
        self._call(protocol.add(credential))

    def get_webauthn_credential(self, credential_id: str) -> WebAuthnCredential | None:
        """The owner from the index, then the record."""
        protocol = _protocol(self)
        owner = self._call(protocol.owner(credential_id))
        if owner is None:
            return None
        found: WebAuthnCredential | None = self._call(protocol.get(owner, credential_id))
        return found

    def webauthn_credentials(self, user_id: str) -> Sequence[WebAuthnCredential]:
        """The user's credentials, oldest first (one script)."""
        found: list[WebAuthnCredential] = self._call(_protocol(self).list(user_id))
        return found

    def update_webauthn_credential(
        self, credential: WebAuthnCredential, *, expected_version: int
    ) -> bool:
        """Compare-and-set on ``version`` (one script)."""
        return bool(self._call(_protocol(self).update(credential, expected_version)))

    def advance_sign_count(
        self, credential_id: str, sign_count: int, *, backed_up: bool, now: float
    ) -> bool:
        """The owner from the index, then the counter compare-and-set (one script)."""
        at = check_advance(credential_id, sign_count, backed_up, now)
        protocol = _protocol(self)
        owner = self._call(protocol.owner(credential_id))
        if owner is None:
            return False
        return bool(self._call(protocol.advance(owner, credential_id, sign_count, backed_up, at)))

    def delete_webauthn_credential(self, credential_id: str) -> bool:
        """The owner from the index, the record (one script), then the index entry."""
        protocol = _protocol(self)
        owner = self._call(protocol.owner(credential_id))
        if owner is None:
            return False
        removed = bool(self._call(protocol.delete(owner, credential_id)))
        self._call(protocol.unindex(credential_id))
        return removed

    def put_webauthn_challenge(self, challenge: WebAuthnChallenge) -> None:
        """Store a challenge with a TTL (one script)."""
        self._call(_protocol(self).put_challenge(challenge))

    def consume_webauthn_challenge(
        self, key: str, fingerprint: str, now: float
    ) -> WebAuthnChallenge | None:
        """Read and mark used (one script)."""
        found: WebAuthnChallenge | None = self._call(_protocol(self).consume(key, fingerprint, now))
        return found


class AsyncRedisWebAuthn:
    """The async :class:`~mfa_core.aio.ports.AsyncWebAuthnStore` methods of
    :class:`~mfa_core.aio.redis.AsyncRedisStore` (the same calls as :class:`RedisWebAuthn`)."""

    __slots__ = ()

    async def _call(self, call: Call[Any]) -> Any:  # pragma: no cover - the host class
        raise NotImplementedError

    async def add_webauthn_credential(self, credential: WebAuthnCredential) -> None:
        """See :meth:`RedisWebAuthn.add_webauthn_credential`."""
        protocol = _protocol(self)
        await self._call(protocol.claim_id(credential))
        await self._call(protocol.add(credential))

    async def get_webauthn_credential(self, credential_id: str) -> WebAuthnCredential | None:
        """See :meth:`RedisWebAuthn.get_webauthn_credential`."""
        protocol = _protocol(self)
        owner = await self._call(protocol.owner(credential_id))
        if owner is None:
            return None
        found: WebAuthnCredential | None = await self._call(protocol.get(owner, credential_id))
        return found

    async def webauthn_credentials(self, user_id: str) -> Sequence[WebAuthnCredential]:
        """See :meth:`RedisWebAuthn.webauthn_credentials`."""
        found: list[WebAuthnCredential] = await self._call(_protocol(self).list(user_id))
        return found

    async def update_webauthn_credential(
        self, credential: WebAuthnCredential, *, expected_version: int
    ) -> bool:
        """See :meth:`RedisWebAuthn.update_webauthn_credential`."""
        return bool(await self._call(_protocol(self).update(credential, expected_version)))

    async def advance_sign_count(
        self, credential_id: str, sign_count: int, *, backed_up: bool, now: float
    ) -> bool:
        """See :meth:`RedisWebAuthn.advance_sign_count`."""
        at = check_advance(credential_id, sign_count, backed_up, now)
        protocol = _protocol(self)
        owner = await self._call(protocol.owner(credential_id))
        if owner is None:
            return False
        call = protocol.advance(owner, credential_id, sign_count, backed_up, at)
        return bool(await self._call(call))

    async def delete_webauthn_credential(self, credential_id: str) -> bool:
        """See :meth:`RedisWebAuthn.delete_webauthn_credential`."""
        protocol = _protocol(self)
        owner = await self._call(protocol.owner(credential_id))
        if owner is None:
            return False
        removed = bool(await self._call(protocol.delete(owner, credential_id)))
        await self._call(protocol.unindex(credential_id))
        return removed

    async def put_webauthn_challenge(self, challenge: WebAuthnChallenge) -> None:
        """See :meth:`RedisWebAuthn.put_webauthn_challenge`."""
        await self._call(_protocol(self).put_challenge(challenge))

    async def consume_webauthn_challenge(
        self, key: str, fingerprint: str, now: float
    ) -> WebAuthnChallenge | None:
        """See :meth:`RedisWebAuthn.consume_webauthn_challenge`."""
        call = _protocol(self).consume(key, fingerprint, now)
        found: WebAuthnChallenge | None = await self._call(call)
        return found
