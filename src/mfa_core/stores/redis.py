"""A store for fleets of workers on Redis: :class:`RedisStore` (the ``redis`` extra).

Needs redis-py (``pip install 'mfa_core[redis]'``); importing this module without it
raises :class:`~mfa_core.errors.MissingDependency`. One :class:`RedisStore` is a
:class:`~mfa_core.ports.CredentialStore`, a :class:`~mfa_core.ports.FailureCounter` (and
the fused :class:`~mfa_core.ports.AttemptStore`), a
:class:`~mfa_core.ports.RecoveryCodeStore` and an :class:`~mfa_core.ports.OOBChallengeStore`.

Every operation is ONE round trip to the server: either a plain read command or a Lua
script (sent by SHA with ``EVALSHA``; the server runs a script as one atomic step). The
commands, scripts, key layout and the decoding of replies live in
:mod:`mfa_core.stores._redis_protocol`, shared with
:class:`~mfa_core.aio.redis.AsyncRedisStore`; this module is the blocking I/O loop over it
(build the command, send it once, decode the reply). The race-prone operations are scripts:

* ``claim`` - compare ``value`` with the stored ``last_accepted`` and set it (and the drift)
  only if it is greater;
* ``update`` - compare the stored ``version`` and replace the credential only if it matches;
* ``admit_attempt`` - :func:`mfa_core.throttle.admit` on the stored count and time: check
  the delay or lock, and when the attempt is allowed store ``count + 1`` and the later time
  and refresh the TTL;
* ``begin_attempt`` - ``admit_attempt``, then (only when admitted) the user's credentials;
* ``claim_and_reset`` - ``claim``, then (only when it won) delete the failure counter;
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
PENDING. Index entries of expired credentials are dropped by :meth:`RedisStore.list_for_user`
(and :meth:`RedisStore.begin_attempt`). An out-of-band challenge likewise disappears
``challenge_grace`` seconds after its code expired (and never sooner than
``challenge_grace`` after it was written); until then a used or expired code is reported as
such rather than as unknown.

Failure semantics: no command is ever retried by this store (redis-py's automatic retry is
bypassed), so a write is applied at most once. Connection problems raise
:class:`~mfa_core.errors.StoreUnavailable`, every other Redis error
:class:`~mfa_core.errors.StoreError`; the caller refuses the attempt (fail closed), and the
next call takes a fresh connection from the pool.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final, TypeVar

from ..errors import InvalidParameter, MissingDependency, StoreError, StoreUnavailable
from ..models import Admission, Credential, FailureState
from ..oob import OOBRecord
from ..recovery import RecoveryRecord
from ..throttle import ThrottleConfig
from ._redis_protocol import (
    DEFAULT_CHALLENGE_GRACE,
    DEFAULT_FAILURE_TTL,
    DEFAULT_PENDING_GRACE,
    DEFAULT_PREFIX,
    Call,
    RedisProtocol,
)
from ._webauthn_redis import RedisWebAuthn

try:
    import redis
    from redis.backoff import NoBackoff
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
    "MAX_SOCKET_TIMEOUT",
    "RedisStore",
]

_T = TypeVar("_T")

_UNAVAILABLE: Final = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
    OSError,
)

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


def _store_error(call: Call[Any], exc: BaseException) -> StoreError:
    """The typed error for a redis-py exception raised while ``call`` was on the wire (its
    message names the operation and the exception type, never an argument or a reply)."""
    if isinstance(exc, _UNAVAILABLE):
        return StoreUnavailable(
            f"the Redis store is unavailable: {call.operation} failed ({type(exc).__name__})"
        )
    return StoreError(f"the Redis store failed: {call.operation} failed ({type(exc).__name__})")


class RedisStore(RedisWebAuthn):
    """A :class:`~mfa_core.ports.CredentialStore`, :class:`~mfa_core.ports.FailureCounter`
    (with :class:`~mfa_core.ports.AttemptStore`'s fused operations),
    :class:`~mfa_core.ports.RecoveryCodeStore` and :class:`~mfa_core.ports.OOBChallengeStore`
    on a Redis server, shared by any number of worker processes.

    ``client`` is the host's ``redis.Redis`` (its connection pool is used; its retry
    settings are not, since this store never repeats a command). ``prefix`` starts every
    key (one per application sharing a server). ``pending_grace`` is how long a PENDING
    credential outlives its ``pending_until`` deadline; ``failure_ttl`` is how long a
    failure counter outlives its latest counted attempt (``None``: for ever). Keep
    ``failure_ttl`` well above the throttle's ``lockout``, and use ``None`` when locks last
    until an administrator unlocks (``ThrottleConfig(lockout=None)``). ``challenge_grace``
    is how long an out-of-band challenge outlives the expiry of its code.

    Redis Cluster is not supported (the scripts touch several keys of one user).
    """

    __slots__ = ("_client", "_owns_client", "_protocol")

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
        self._protocol = RedisProtocol(
            prefix=prefix,
            pending_grace=pending_grace,
            failure_ttl=failure_ttl,
            challenge_grace=challenge_grace,
        )
        self._client = client
        self._owns_client = False

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
        return f"RedisStore(prefix={self.prefix!r})"

    def __enter__(self) -> RedisStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def prefix(self) -> str:
        """The key prefix of this store."""
        return self._protocol.prefix

    def close(self) -> None:
        """Close the client if :meth:`from_url` made it; a client passed in is the host's."""
        if self._owns_client:
            self._client.close()

    # -- the wire ------------------------------------------------------------------------

    def _call(self, call: Call[_T]) -> _T:
        """Send ``call``'s command on one pooled connection and decode its reply.

        If the server answers NOSCRIPT (it does not know the script's SHA, so nothing ran),
        the same script is sent as ``EVAL`` on the same connection. Exactly one attempt:
        connection errors raise StoreUnavailable (and the connection is dropped, so the
        pool reconnects next time), other Redis errors StoreError.
        """
        pool = self._client.connection_pool
        try:
            connection: Any = pool.get_connection()
            try:
                connection.send_command(*call.command)
                try:
                    reply = connection.read_response(disable_decoding=True)
                except NoScriptError:
                    fallback = call.fallback()
                    if fallback is None:
                        raise
                    connection.send_command(*fallback)
                    reply = connection.read_response(disable_decoding=True)
            except _UNAVAILABLE:
                connection.disconnect()
                raise
            finally:
                pool.release(connection)
        except (*_UNAVAILABLE, redis.exceptions.RedisError) as exc:
            raise _store_error(call, exc) from exc
        return call.decode(reply)

    # -- CredentialStore -----------------------------------------------------------------

    def add(self, credential: Credential) -> None:
        """Insert a new credential (one script); raise :class:`~mfa_core.errors.StoreError`
        if its id is already stored."""
        self._call(self._protocol.add(credential))

    def get(self, credential_id: str) -> Credential | None:
        """Return the credential with this id, or ``None`` (one ``HGETALL``)."""
        return self._call(self._protocol.get(credential_id))

    def list_for_user(self, user_id: str) -> Sequence[Credential]:
        """Return all credentials of a user (any state), oldest first (by ``created_at``,
        then by insertion order); one script."""
        return self._call(self._protocol.list_for_user(user_id))

    def update(self, credential: Credential, *, expected_version: int) -> bool:
        """Replace the stored credential if its version is ``expected_version`` (one
        script). The stored version becomes ``expected_version + 1``; ``last_accepted`` and
        ``drift`` keep their stored values. Returns ``False`` (changing nothing) if the
        credential is missing or its version differs. Leaving PENDING removes the TTL.
        """
        return self._call(self._protocol.update(credential, expected_version=expected_version))

    def claim(self, credential_id: str, value: int, *, drift: int) -> bool:
        """Store ``value`` and ``drift`` if ``value`` is greater than ``last_accepted`` (one
        script); return whether it was stored. Of concurrent calls with one value, from any
        process, exactly one wins. ``value``: 0..2**63-1.
        """
        return self._call(self._protocol.claim(credential_id, value, drift=drift))

    def delete(self, credential_id: str) -> bool:
        """Remove a credential and its index entry (one script); return whether it existed."""
        return self._call(self._protocol.delete(credential_id))

    # -- FailureCounter ------------------------------------------------------------------

    def admit_attempt(self, user_id: str, now: float, limits: ThrottleConfig) -> Admission:
        """Admit and count one attempt at ``now`` under ``limits``, or refuse it (one
        script applying :func:`mfa_core.throttle.admit` to the stored state).

        ``last_failure_at`` becomes the later of ``now`` and the stored time, so a caller
        with a lagging clock never shortens a delay or a lock; an admission restarts the
        counter's TTL at ``failure_ttl``. Of concurrent calls for one user, from any
        process, at most ``max_failures - count`` are admitted before the lock.
        """
        return self._call(self._protocol.admit_attempt(user_id, now, limits))

    def get_failures(self, user_id: str) -> FailureState:
        """Return the user's failure state (``FailureState()`` if none); one ``HMGET``."""
        return self._call(self._protocol.get_failures(user_id))

    def reset(self, user_id: str) -> None:
        """Forget the user's failures (one ``DEL``)."""
        self._call(self._protocol.reset(user_id))

    # -- AttemptStore --------------------------------------------------------------------

    def begin_attempt(
        self, user_id: str, now: float, limits: ThrottleConfig
    ) -> tuple[Admission, Sequence[Credential]]:
        """:meth:`admit_attempt`, then (only when admitted) :meth:`list_for_user`, in ONE
        script; an attempt that is not admitted gets an empty list."""
        return self._call(self._protocol.begin_attempt(user_id, now, limits))

    def claim_and_reset(self, credential_id: str, value: int, *, drift: int, user_id: str) -> bool:
        """:meth:`claim`, then (only when the claim won) :meth:`reset` of ``user_id``, in
        ONE script; returns whether the claim won."""
        call = self._protocol.claim_and_reset(credential_id, value, drift=drift, user_id=user_id)
        return self._call(call)

    # -- RecoveryCodeStore ---------------------------------------------------------------

    def replace_recovery_codes(self, user_id: str, records: Sequence[RecoveryRecord]) -> None:
        """Replace the user's whole set with ``records`` (empty: delete it) in one script:
        no reader sees old and new codes mixed, and no old code is consumable afterwards."""
        self._call(self._protocol.replace_recovery_codes(user_id, records))

    def recovery_codes(self, user_id: str) -> Sequence[RecoveryRecord]:
        """Return the user's records, used ones included, in the order they were given
        (one script reading both hashes at one moment)."""
        return self._call(self._protocol.recovery_codes(user_id))

    def consume_recovery_code(self, user_id: str, record_id: str, now: float) -> int | None:
        """Mark the code used at ``now`` if it is in the user's set and unused, and return
        the unused codes left; ``None`` (changing nothing) otherwise. One script: of
        concurrent calls from any process exactly one returns a number."""
        return self._call(self._protocol.consume_recovery_code(user_id, record_id, now))

    def update_recovery_hash(self, user_id: str, record_id: str, phc: str) -> bool:
        """Replace one record's PHC hash (``used_at`` is kept); return whether it exists
        (one script)."""
        return self._call(self._protocol.update_recovery_hash(user_id, record_id, phc))

    # -- OOBChallengeStore ---------------------------------------------------------------

    def put_challenge(self, record: OOBRecord) -> None:
        """Insert a new challenge with its TTL (one script); raise
        :class:`~mfa_core.errors.StoreError` if its id is already stored."""
        self._call(self._protocol.put_challenge(record))

    def get_challenge(self, challenge_id: str) -> OOBRecord | None:
        """Return the challenge with this id, or ``None`` (one ``HGETALL``)."""
        return self._call(self._protocol.get_challenge(challenge_id))

    def replace_challenge(self, record: OOBRecord, *, expected_generation: int) -> bool:
        """Store ``record`` if the stored challenge has ``expected_generation`` and is not
        used (one script); return whether it was stored. The TTL follows the new expiry."""
        call = self._protocol.replace_challenge(record, expected_generation=expected_generation)
        return self._call(call)

    def update_challenge(self, record: OOBRecord, *, expected: OOBRecord) -> bool:
        """Store ``record`` if the stored challenge still has ``expected``'s generation,
        attempts and used flag (one script); return whether it was stored."""
        return self._call(self._protocol.update_challenge(record, expected=expected))

    def delete_challenge(self, challenge_id: str) -> bool:
        """Remove a challenge; return whether it existed (one ``DEL``)."""
        return self._call(self._protocol.delete_challenge(challenge_id))

    def count_send(self, key: str, window_start: float, expires_at: float) -> int:
        """Add one to the send counter ``(key, window_start)`` and return the new count
        (one script: ``INCR``, then ``PEXPIREAT`` at ``expires_at``). The counter lives at
        least one window length after each call whatever the caller's clock says, so a
        clock behind the server's cannot make it vanish at once."""
        return self._call(self._protocol.count_send(key, window_start, expires_at))
