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

Redis Cluster: given a ``redis.cluster.RedisCluster`` the store uses the cluster key layout
of :class:`~mfa_core.stores._redis_protocol.ClusterKeyLayout` (every key of a user in one
hash slot, so every script touches one slot; an owner pointer per credential id for the
calls that name only a credential, which then take two or three round trips), routes each
command to its slot's primary and follows ``MOVED`` / ``ASK`` (nothing ran); a verify stays
two round trips.

Bounds: every call returns within ``timeout`` (connecting, the handshake and each wait on
the socket are bounded by what is left of it) and fails closed when the server stops
answering; with ``min_replicas_ack`` the writes that decide an attempt are followed by
``WAIT`` in the same write, and fail closed unless enough replicas acknowledged them.

Failure semantics: no command is ever retried by this store (redis-py's automatic retry is
bypassed), so a write is applied at most once. Connection problems raise
:class:`~mfa_core.errors.StoreUnavailable`, every other Redis error
:class:`~mfa_core.errors.StoreError`; the caller refuses the attempt (fail closed), and the
next call takes a fresh connection from the pool.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from typing import Any, Final, TypeVar

from ..errors import InvalidParameter, MissingDependency, StoreError, StoreUnavailable
from ..models import Admission, Credential, FailureState
from ..oob import OOBRecord
from ..recovery import RecoveryRecord
from ..throttle import ThrottleConfig
from ._common import check_page, check_time
from ._redis_protocol import (
    DEFAULT_CHALLENGE_GRACE,
    DEFAULT_FAILURE_TTL,
    DEFAULT_PENDING_GRACE,
    DEFAULT_PREFIX,
    DEFAULT_REPLICA_ACK_TIMEOUT,
    Call,
    Operation,
    RedisProtocol,
    Script,
)
from ._webauthn_redis import RedisWebAuthn

try:
    import redis
    import redis.cluster
    from redis.backoff import NoBackoff
    from redis.exceptions import AskError, MovedError, NoScriptError, ResponseError
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
    "DEFAULT_REPLICA_ACK_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "MAX_SOCKET_TIMEOUT",
    "RedisStore",
]

_T = TypeVar("_T")

_UNAVAILABLE: Final = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
    # Redis Cluster in the middle of a failover (nothing ran; fail closed).
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    redis.exceptions.SlotNotCoveredError,
    # Any other cluster-client failure (no node reachable to learn the slots from).
    redis.exceptions.RedisClusterException,
    OSError,
)

DEFAULT_TIMEOUT: Final = 5.0
"""The default bound (seconds) of every store call: connecting, sending and waiting for
the reply each get at most what is left of it, so a server that stops answering fails the
call closed (:class:`~mfa_core.errors.StoreUnavailable`) instead of hanging it."""

# Redirections followed within one call (MOVED/ASK mean that nothing ran).
_MAX_REDIRECTS: Final = 5

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


def _first_node(client: Any, slot: int, suspects: set[str]) -> Any:
    """The node to send a command for ``slot`` to first, on a blocking or an asyncio
    ``RedisCluster``: the slot's primary by the client's table, unless that node failed
    lately (in ``suspects``); then another primary, picked by the slot so that the slots
    of a failed node spread, which redirects (MOVED) to the slot's current owner."""
    node = client.nodes_manager.get_node_from_slot(slot)
    if node.name in suspects:
        others = [n for n in client.get_primaries() if n.name not in suspects]
        if others:
            node = others[slot % len(others)]
    return node


def _left(deadline: float) -> float:
    """Seconds left until ``deadline`` (a wait of zero would be a non-blocking poll)."""
    return max(deadline - time.monotonic(), 0.001)


def _bounded_pool(pool: Any, timeout: float) -> Any:
    """A pool like the host's ``pool`` whose connections are bounded by ``timeout`` and
    never retried; the host's own pool for a pool class this store cannot copy (Sentinel,
    a custom class), whose timeouts then bound only connecting."""
    if type(pool) not in (redis.ConnectionPool, redis.BlockingConnectionPool):
        return pool
    kwargs = dict(pool.connection_kwargs)
    own = kwargs.get("socket_timeout")
    kwargs["socket_timeout"] = timeout if own is None else min(own, timeout)
    own = kwargs.get("socket_connect_timeout")
    kwargs["socket_connect_timeout"] = timeout if own is None else min(own, timeout)
    kwargs["retry"] = Retry(NoBackoff(), 0)
    if type(pool) is redis.BlockingConnectionPool:
        kwargs["timeout"] = timeout if pool.timeout is None else min(pool.timeout, timeout)
    return type(pool)(
        connection_class=pool.connection_class, max_connections=pool.max_connections, **kwargs
    )


_NOSCRIPT: Final = object()


def _read(connection: Any, deadline: float) -> Any:
    """One reply, waiting at most until ``deadline``; an error reply is returned (so that a
    pipelined exchange stays in step), not raised."""
    try:
        return connection.read_response(disable_decoding=True, timeout=_left(deadline))
    except ResponseError as exc:
        return exc


def _pipeline(call: Call[Any], command: tuple[bytes, ...], asking: bool) -> list[tuple[bytes, ...]]:
    """The commands of one write: ``command``, after ``ASKING`` when redirected by ASK, and
    followed by ``call.wait`` when the write must be acknowledged by replicas."""
    commands = [command]
    if asking:
        commands.insert(0, (b"ASKING",))
    if call.wait is not None:
        commands.append(call.wait)
    return commands


def _interpret(call: Call[Any], replies: list[Any], asking: bool) -> Any:
    """The main reply among the replies of :func:`_pipeline`'s commands (error replies
    raised), after checking the replicas' acknowledgement; :data:`_NOSCRIPT` when the
    server did not know the script (then nothing ran, and WAIT had nothing to wait for)."""
    if asking and isinstance(replies[0], BaseException):
        raise replies[0]
    reply = replies[1] if asking else replies[0]
    if isinstance(reply, NoScriptError) and call.script is not None:
        return _NOSCRIPT
    if isinstance(reply, BaseException):
        raise reply
    if call.wait is not None:
        acks = replies[-1]
        if isinstance(acks, BaseException):
            raise acks
        call.check_acknowledged(acks)
    return reply


def _send_once(
    connection: Any, call: Call[Any], command: tuple[bytes, ...], deadline: float, asking: bool
) -> Any:
    """Send ``command`` (see :func:`_pipeline`) in one write, read every reply and
    :func:`_interpret` them."""
    commands = _pipeline(call, command, asking)
    if len(commands) == 1:
        connection.send_command(*command)
    else:
        connection.send_packed_command(connection.pack_commands(commands))
    return _interpret(call, [_read(connection, deadline) for _ in commands], asking)


def _exchange(connection: Any, call: Call[Any], deadline: float, asking: bool = False) -> Any:
    """``call`` on ``connection``: its command, then (after NOSCRIPT, when nothing ran) the
    same script as ``EVAL``; nothing else is ever resent."""
    reply = _send_once(connection, call, call.command, deadline, asking)
    if reply is _NOSCRIPT:
        fallback = call.fallback()
        if fallback is None:  # pragma: no cover - a plain command never answers NOSCRIPT
            raise StoreError(f"the Redis store failed: {call.operation} failed")
        reply = _send_once(connection, call, fallback, deadline, asking)
        if reply is _NOSCRIPT:
            raise NoScriptError("NOSCRIPT after EVAL")
    return reply


def _on_pool(pool: Any, call: Call[Any], deadline: float, asking: bool = False) -> Any:
    """One exchange on a connection of ``pool``: a connection problem drops the connection
    (the pool reconnects next time), anything else hands it back in step."""
    connection: Any = pool.get_connection()
    try:
        return _exchange(connection, call, deadline, asking)
    except _UNAVAILABLE:
        connection.disconnect()
        raise
    finally:
        pool.release(connection)


class RedisStore(RedisWebAuthn):
    """A :class:`~mfa_core.ports.CredentialStore`, :class:`~mfa_core.ports.FailureCounter`
    (with :class:`~mfa_core.ports.AttemptStore`'s fused operations),
    :class:`~mfa_core.ports.RecoveryCodeStore` and :class:`~mfa_core.ports.OOBChallengeStore`
    on a Redis server or a Redis Cluster, shared by any number of worker processes.

    ``client`` is the host's ``redis.Redis`` or ``redis.cluster.RedisCluster``. For a
    ``redis.Redis`` with an ordinary pool the store keeps a pool of its own with the same
    connection settings, except that every wait on a socket is bounded by ``timeout`` and
    connecting is never retried (a pool it cannot copy, such as Sentinel's, is used as it
    is). ``prefix`` starts every key (one per application sharing a server; on a cluster it
    may not hold ``{`` or ``}``). ``pending_grace`` is how long a PENDING credential
    outlives its ``pending_until`` deadline; ``failure_ttl`` is how long a failure counter
    outlives its latest counted attempt (``None``: for ever). Keep ``failure_ttl`` well
    above the throttle's ``lockout``, and use ``None`` when locks last until an
    administrator unlocks (``ThrottleConfig(lockout=None)``). ``challenge_grace`` is how
    long an out-of-band challenge outlives the expiry of its code.

    ``timeout`` (seconds, default :data:`DEFAULT_TIMEOUT`) bounds every call: a server that
    stops answering fails it with :class:`~mfa_core.errors.StoreUnavailable` after about
    that long. ``min_replicas_ack`` > 0 makes every write that decides an attempt (a claim,
    a consumed recovery code or challenge, a counted failure) wait, in the same exchange,
    until that many replicas acknowledged it (``WAIT``, at most ``replica_ack_timeout``
    seconds); fewer acknowledgements fail the call closed with ``StoreUnavailable`` (see
    ``docs/stores.md``: the write may have applied on the primary, and the attempt is
    refused).

    On Redis Cluster the keys of one user share a hash slot (``docs/stores.md``, the
    cluster key layout); a credential cannot move to another user there.
    """

    __slots__ = (
        "_client",
        "_cluster",
        "_owns_client",
        "_pool",
        "_pools",
        "_protocol",
        "_suspects",
        "_timeout",
    )

    def __init__(
        self,
        client: redis.Redis | redis.cluster.RedisCluster,
        *,
        prefix: str = DEFAULT_PREFIX,
        pending_grace: float = DEFAULT_PENDING_GRACE,
        failure_ttl: float | None = DEFAULT_FAILURE_TTL,
        challenge_grace: float = DEFAULT_CHALLENGE_GRACE,
        timeout: float = DEFAULT_TIMEOUT,
        min_replicas_ack: int = 0,
        replica_ack_timeout: float = DEFAULT_REPLICA_ACK_TIMEOUT,
    ) -> None:
        cluster = isinstance(client, redis.cluster.RedisCluster)
        if not cluster and not isinstance(client, redis.Redis):
            raise InvalidParameter("client must be a redis.Redis or redis.cluster.RedisCluster")
        bound = _socket_timeout(timeout)
        if bound is None:
            raise InvalidParameter("timeout must be a number of seconds from 0 to 3600")
        self._protocol = RedisProtocol(
            prefix=prefix,
            pending_grace=pending_grace,
            failure_ttl=failure_ttl,
            challenge_grace=challenge_grace,
            cluster=cluster,
            min_replicas_ack=min_replicas_ack,
            replica_ack_timeout=replica_ack_timeout,
        )
        self._timeout = bound
        self._client = client
        self._owns_client = False
        self._cluster: Any = client if cluster else None
        host_pool: Any = getattr(client, "connection_pool", None)
        self._pool: Any = None if cluster else _bounded_pool(host_pool, bound)
        self._pools: dict[str, Any] = {}  # cluster: node name -> bounded pool
        self._suspects: set[str] = set()  # cluster: nodes whose last exchange failed

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
        min_replicas_ack: int = 0,
        replica_ack_timeout: float = DEFAULT_REPLICA_ACK_TIMEOUT,
    ) -> RedisStore:
        """Make a store with its own client for ``url`` (``redis://host:port/db``,
        ``rediss://...``, ``unix://...``); :meth:`close` closes that client.

        ``socket_timeout`` is the store's ``timeout`` (``None``: :data:`DEFAULT_TIMEOUT`):
        it bounds every command and connection attempt, so an unreachable server makes
        calls fail (closed) instead of hanging.
        """
        if type(url) is not str:
            raise InvalidParameter("url must be a string")
        socket_timeout = _socket_timeout(socket_timeout)
        try:
            client = redis.Redis.from_url(
                url,
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_timeout,
                retry=Retry(NoBackoff(), 0),
            )
        except ValueError as exc:
            raise InvalidParameter("url is not a valid Redis URL") from exc
        store = cls(
            client,
            prefix=prefix,
            pending_grace=pending_grace,
            failure_ttl=failure_ttl,
            challenge_grace=challenge_grace,
            timeout=DEFAULT_TIMEOUT if socket_timeout is None else socket_timeout,
            min_replicas_ack=min_replicas_ack,
            replica_ack_timeout=replica_ack_timeout,
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
        """Close the connections of this store's own pools, and the client if
        :meth:`from_url` made it (a client passed in is the host's)."""
        pools = list(self._pools.values())
        self._pools.clear()
        if self._pool is not None and self._pool is not getattr(
            self._client, "connection_pool", None
        ):
            pools.append(self._pool)
        for pool in pools:
            pool.disconnect()
        if self._owns_client:
            self._client.close()

    # -- the wire ------------------------------------------------------------------------

    def _call(self, operation: Operation[_T]) -> _T:
        """Run ``operation``: its one :class:`Call`, or each call of its plan in turn."""
        if isinstance(operation, Call):
            return self._send(operation)
        try:
            call = next(operation)
            while True:
                call = operation.send(self._send(call))
        except StopIteration as done:
            result: _T = done.value
            return result

    def _send(self, call: Call[_T]) -> _T:
        """Send ``call``'s command once (EVAL after NOSCRIPT on the same connection; with
        its WAIT in the same write) within the store's bound, and decode its reply.

        Connection errors and timeouts raise StoreUnavailable (the connection is dropped,
        so the pool reconnects next time), other Redis errors StoreError.
        """
        deadline = time.monotonic() + self._timeout + call.wait_seconds
        try:
            if self._cluster is None:
                reply = _on_pool(self._pool, call, deadline)
            else:
                reply = self._on_cluster(call, deadline)
        except (*_UNAVAILABLE, redis.exceptions.RedisError) as exc:
            raise _store_error(call, exc) from exc
        return call.decode(reply)

    def _node_pool(self, node: Any) -> Any:
        pool = self._pools.get(node.name)
        if pool is None:  # threads racing here make pools without connections; one is kept
            host_pool = self._cluster.get_redis_connection(node).connection_pool
            pool = self._pools.setdefault(node.name, _bounded_pool(host_pool, self._timeout))
        return pool

    def _on_cluster(self, call: Call[Any], deadline: float) -> Any:
        """Route ``call`` to the primary of its slot and follow MOVED / ASK (which mean
        that nothing ran). The topology is learnt from redirections: after a node failed,
        its slots are first asked of another primary, which redirects to the slot's
        current owner (a promoted replica after a failover)."""
        client = self._cluster
        manager = client.nodes_manager
        slot = client.keyslot(call.slot_key)
        node = _first_node(client, slot, self._suspects)
        asking = False
        for _ in range(_MAX_REDIRECTS):
            try:
                reply = _on_pool(self._node_pool(node), call, deadline, asking)
            except MovedError as moved:
                manager.move_slot(moved)
                node, asking = manager.get_node_from_slot(slot), False
                continue
            except AskError as ask:
                target = manager.get_node(host=ask.host, port=ask.port)
                if target is None:
                    raise redis.exceptions.TryAgainError() from None
                node, asking = target, True
                continue
            except _UNAVAILABLE:
                self._suspects.add(node.name)
                raise
            self._suspects.discard(node.name)
            return reply
        raise redis.exceptions.TryAgainError()

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

    # -- StoreMaintenance ----------------------------------------------------------------
    # Walks of the whole key space (SCAN of the server, or of every primary of a cluster),
    # for the operator's commands: O(keys) each, never on a request path. Every round trip
    # goes through the store's own bounded pools (each is bounded by ``timeout`` and fails
    # closed); each removal is one script that tests and deletes atomically in one slot.

    def _scan(self, operation: str, pattern: bytes) -> list[bytes]:
        """Every key matching ``pattern``, on the server or on every primary of the
        cluster (each SCAN page one bounded round trip); a failure raises StoreError /
        StoreUnavailable naming ``operation``."""
        if self._cluster is None:
            pools = [self._pool]
        else:
            try:
                primaries = self._cluster.get_primaries()
            except (*_UNAVAILABLE, redis.exceptions.RedisError) as exc:
                raise _maintenance_error(operation, exc) from exc
            if not primaries:
                raise StoreUnavailable(f"the Redis store is unavailable: {operation} failed")
            pools = [self._node_pool(node) for node in primaries]
        keys: dict[bytes, None] = {}  # a key met twice (a slot migrating) is walked once
        for pool in pools:
            cursor = b"0"
            while True:
                command = (b"SCAN", cursor, b"MATCH", pattern, b"COUNT", b"1000")
                call = Call(operation=operation, command=command, script=None, decode=_scanned)
                deadline = time.monotonic() + self._timeout
                try:
                    reply = _on_pool(pool, call, deadline)
                except (*_UNAVAILABLE, redis.exceptions.RedisError) as exc:
                    raise _store_error(call, exc) from exc
                cursor, page = call.decode(reply)
                keys.update(dict.fromkeys(page))
                if cursor == b"0":
                    break
        return list(keys)

    def _credential_keys(self, operation: str) -> list[tuple[bytes, bytes, str]]:
        """``(credential key, user index key, credential id)`` of every stored credential
        (keys this store did not write are skipped)."""
        found: list[tuple[bytes, bytes, str]] = []
        ck = self._protocol.cluster_keys
        if ck is None:
            stem = self._protocol.keys.credential_prefix()
            for key in self._scan(operation, _glob(stem) + b"*"):
                raw = key[len(stem) :]
                try:
                    found.append((key, b"", raw.decode("utf-8")))
                except UnicodeDecodeError:
                    continue  # not a key this store wrote
            return found
        # {prefix}{<tag>}:cred:<id>: the tag holds no '}', so its first '}' ends it.
        head = ck.prefix + b"{"
        for key in self._scan(operation, _glob(head) + b"*}:cred:*"):
            close = key.find(b"}", len(head))
            if close < 0 or not key.startswith(b"}:cred:", close):
                continue
            user_head = key[: close + 2]
            raw = key[close + len(b"}:cred:") :]
            try:
                found.append((key, user_head + b"creds", raw.decode("utf-8")))
            except UnicodeDecodeError:
                continue
        return found

    def _remove(
        self, operation: str, script: Script, keys: Sequence[bytes], args: Sequence[bytes]
    ) -> bool:
        """One atomic test-and-remove script on the slot of ``keys`` (routed like every
        other call); whether it removed."""
        command = (b"EVALSHA", script.sha, b"%d" % len(keys), *keys, *args)
        return self._send(
            Call(operation=operation, command=command, script=script, decode=_removed)
        )

    def credential_ids(self, after: str | None, limit: int) -> Sequence[str]:
        """Up to ``limit`` stored credential ids greater than ``after``, ascending in
        code-point order (one SCAN over the credential keys, of every primary on a
        cluster, per call)."""
        start, count = check_page(after, limit)
        ids = {cid for _, _, cid in self._credential_keys("credential_ids")}
        return sorted(cid for cid in ids if start is None or cid > start)[:count]

    def purge_challenges(self, before: float) -> int:
        """Remove every challenge whose code expired before ``before``; return how many.
        (Send counters and challenges also vanish by themselves: each key has a TTL.)"""
        limit = check_time(before, "before")
        stem = self._protocol.keys.prefix + b"oob:"  # a single key in both layouts
        keys = self._scan("purge_challenges", _glob(stem) + b"*")
        return sum(
            self._remove("purge_challenges", _PURGE_CHALLENGE, (key,), (b"%r" % limit,))
            for key in keys
        )

    def purge_pending(self, before: float) -> int:
        """Remove every PENDING credential whose ``pending_until`` is before ``before``
        (and its entry in the user's index; on a cluster then its owner pointer, last, as
        :meth:`delete` does); return how many."""
        limit = check_time(before, "before")
        layout, ck = self._protocol.keys, self._protocol.cluster_keys
        removed = 0
        for key, index, cid in self._credential_keys("purge_pending"):
            if ck is None:
                args = (b"%r" % limit, layout.index_prefix(), layout.credential_prefix())
                removed += self._remove("purge_pending", _PURGE_PENDING, (key,), args)
                continue
            raw = cid.encode("utf-8")
            if self._remove(
                "purge_pending", _PURGE_PENDING_IN_SLOT, (key, index), (b"%r" % limit, raw)
            ):
                removed += 1
                # The pointer goes last, as in delete(): a purge stopped here leaves a
                # pointer to nothing (get() answers None; the same user may re-add).
                drop = (b"DEL", ck.owner(raw))
                self._send(
                    Call(operation="purge_pending", command=drop, script=None, decode=_removed)
                )
        return removed


def _glob(stem: bytes) -> bytes:
    """``stem`` with SCAN's glob characters escaped (it then matches only itself)."""
    return re.sub(rb"([*?\[\]\\])", rb"\\\1", stem)


def _scanned(reply: Any) -> tuple[bytes, list[bytes]]:
    """A SCAN reply: the next cursor and the page's keys."""
    if not isinstance(reply, list) or len(reply) != 2 or not isinstance(reply[1], list):
        raise StoreError("the Redis store returned a reply it cannot read")
    if not all(isinstance(item, bytes) for item in (reply[0], *reply[1])):
        raise StoreError("the Redis store returned a reply it cannot read")
    return bytes(reply[0]), [bytes(key) for key in reply[1]]


def _removed(reply: Any) -> bool:
    """A maintenance script's 0 or 1."""
    if type(reply) is not int or reply not in (0, 1):
        raise StoreError("the Redis store returned a reply it cannot read")
    return reply == 1


def _script(name: str, source: str) -> Script:
    return Script(name=name, source=source.encode("utf-8"))


# KEYS: one challenge. ARGV: before.
_PURGE_CHALLENGE: Final = _script(
    "purge_challenges",
    """
local at = tonumber(redis.call('HGET', KEYS[1], 'expires_at'))
if at and at < tonumber(ARGV[1]) then return redis.call('DEL', KEYS[1]) end
return 0
""",
)

# KEYS: one credential. ARGV: before, user index prefix, credential key prefix.
_PURGE_PENDING: Final = _script(
    "purge_pending",
    """
local f = redis.call('HMGET', KEYS[1], 'status', 'pending_until', 'user_id')
local until_ = tonumber(f[2])
if f[1] ~= 'pending' or not until_ or not (until_ < tonumber(ARGV[1])) then return 0 end
redis.call('DEL', KEYS[1])
if f[3] then redis.call('ZREM', ARGV[2] .. f[3], string.sub(KEYS[1], #ARGV[3] + 1)) end
return 1
""",
)

# Cluster layout. KEYS: one credential, its user's index (one slot). ARGV: before, id.
_PURGE_PENDING_IN_SLOT: Final = _script(
    "purge_pending_in_slot",
    """
local f = redis.call('HMGET', KEYS[1], 'status', 'pending_until')
local until_ = tonumber(f[2])
if f[1] ~= 'pending' or not until_ or not (until_ < tonumber(ARGV[1])) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
""",
)


def _maintenance_error(operation: str, exc: BaseException) -> StoreError:
    if isinstance(exc, _UNAVAILABLE):
        return StoreUnavailable(
            f"the Redis store is unavailable: {operation} failed ({type(exc).__name__})"
        )
    return StoreError(f"the Redis store failed: {operation} failed ({type(exc).__name__})")
