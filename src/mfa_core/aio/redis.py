"""An asyncio store on Redis: :class:`AsyncRedisStore` (``redis.asyncio``, the ``redis`` extra).

Same server layout, Lua scripts, encoding, validation and error mapping as
:class:`~mfa_core.stores.RedisStore`, and not a second copy of any of them: both stores are
I/O loops over :mod:`mfa_core.stores._redis_protocol`. Each call builds its one command
there (checking the arguments first), sends it once on a ``redis.asyncio`` connection
(``EVALSHA``, then ``EVAL`` on the same connection if the server does not know the script;
never retried, so a write is applied at most once) and decodes the reply there.

It accepts ``redis.asyncio.cluster.RedisCluster`` too (the cluster key layout and routing
of the blocking store), bounds every whole call with :func:`asyncio.timeout` (the store's
``timeout``, whatever the client's settings) and takes ``min_replicas_ack``.

Connection problems raise :class:`~mfa_core.errors.StoreUnavailable`, other Redis errors
:class:`~mfa_core.errors.StoreError` (the service refuses the attempt: fail closed). A
task cancelled while waiting for a reply drops its connection, so no later call can read
a stale reply.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Sequence
from typing import Any, TypeVar

from ..errors import InvalidParameter, MissingDependency

try:
    import redis
    import redis.asyncio as aioredis
    import redis.asyncio.cluster
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import AskError, MovedError, ResponseError
except ImportError:  # pragma: no cover - the blocking store's test covers the message
    raise MissingDependency(
        "the async Redis store needs redis-py: pip install 'mfa_core[redis]'"
    ) from None

from ..models import Admission, Credential, FailureState
from ..oob import OOBRecord
from ..recovery import RecoveryRecord
from ..stores._redis_protocol import Call, Operation, RedisProtocol
from ..stores._webauthn_redis import AsyncRedisWebAuthn
from ..stores.redis import (
    _MAX_REDIRECTS,
    _NOSCRIPT,
    _UNAVAILABLE,
    DEFAULT_CHALLENGE_GRACE,
    DEFAULT_FAILURE_TTL,
    DEFAULT_PENDING_GRACE,
    DEFAULT_PREFIX,
    DEFAULT_REPLICA_ACK_TIMEOUT,
    DEFAULT_TIMEOUT,
    _first_node,
    _interpret,
    _pipeline,
    _socket_timeout,
    _store_error,
)
from ..throttle import ThrottleConfig

__all__ = ["AsyncRedisStore"]

_T = TypeVar("_T")


class AsyncRedisStore(AsyncRedisWebAuthn):
    """The four async store ports (and :class:`~mfa_core.aio.ports.AsyncAttemptStore`'s
    fused operations) on a Redis server, shared by any number of processes.

    ``client`` is the host's ``redis.asyncio.Redis`` (its connection pool is used, not its
    retry settings) or ``redis.asyncio.cluster.RedisCluster``. ``prefix``,
    ``pending_grace``, ``failure_ttl``, ``challenge_grace``, ``timeout``,
    ``min_replicas_ack`` and ``replica_ack_timeout`` mean what they mean for
    :class:`~mfa_core.stores.RedisStore`, and both stores read and write the same keys, so
    blocking and asyncio workers can share one server (or one cluster). ``timeout`` bounds
    each whole call (waiting for a connection, connecting, the exchange) with
    :func:`asyncio.timeout`, whatever the client's own settings.
    """

    __slots__ = (
        "_client",
        "_cluster",
        "_idle",
        "_node_slots",
        "_owns_client",
        "_protocol",
        "_slots",
        "_suspects",
        "_timeout",
    )

    def __init__(
        self,
        client: aioredis.Redis | redis.asyncio.cluster.RedisCluster,
        *,
        prefix: str = DEFAULT_PREFIX,
        pending_grace: float = DEFAULT_PENDING_GRACE,
        failure_ttl: float | None = DEFAULT_FAILURE_TTL,
        challenge_grace: float = DEFAULT_CHALLENGE_GRACE,
        timeout: float = DEFAULT_TIMEOUT,
        min_replicas_ack: int = 0,
        replica_ack_timeout: float = DEFAULT_REPLICA_ACK_TIMEOUT,
    ) -> None:
        cluster = isinstance(client, redis.asyncio.cluster.RedisCluster)
        if not cluster and not isinstance(client, aioredis.Redis):
            raise InvalidParameter(
                "client must be a redis.asyncio.Redis or redis.asyncio.cluster.RedisCluster"
            )
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
        self._client: Any = client
        self._cluster: Any = client if cluster else None
        self._owns_client = False
        self._idle: list[Any] = []
        self._slots: asyncio.Semaphore | None = None  # made on first use, in the loop
        self._timeout: float = bound
        self._suspects: set[str] = set()  # cluster: nodes whose last exchange failed
        self._node_slots: dict[str, asyncio.Semaphore] = {}  # cluster: made in the loop

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
        max_connections: int = 50,
        min_replicas_ack: int = 0,
        replica_ack_timeout: float = DEFAULT_REPLICA_ACK_TIMEOUT,
    ) -> AsyncRedisStore:
        """Make a store with its own client for ``url`` (as
        :meth:`~mfa_core.stores.RedisStore.from_url`); :meth:`close` closes that client.

        The client's pool holds at most ``max_connections`` connections; a call that finds
        them all busy waits for one (up to ``socket_timeout``), so a burst of concurrent
        tasks queues up instead of failing."""
        if type(url) is not str:
            raise InvalidParameter("url must be a string")
        socket_timeout = _socket_timeout(socket_timeout)
        if type(max_connections) is not int or not 1 <= max_connections <= 10_000:
            raise InvalidParameter("max_connections must be an integer from 1 to 10000")
        try:
            pool = aioredis.BlockingConnectionPool.from_url(
                url,
                max_connections=max_connections,
                timeout=socket_timeout,
                # The store bounds each whole exchange itself (one asyncio.timeout per
                # call); a per-read/per-write socket timeout would cost redis-py a task per
                # send (asyncio.wait_for) on every command.
                socket_timeout=None,
                socket_connect_timeout=socket_timeout,
                retry=Retry(NoBackoff(), 1),
            )
            client = aioredis.Redis(connection_pool=pool)
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
        return f"AsyncRedisStore(prefix={self.prefix!r})"

    @property
    def prefix(self) -> str:
        """The key prefix of this store."""
        return self._protocol.prefix

    async def close(self) -> None:
        """Hand the connections this store keeps back to the pool, and close the client if
        :meth:`from_url` made it (a client passed in is the host's)."""
        pool: Any = getattr(self._client, "connection_pool", None)
        while self._idle:
            released = pool.release(self._idle.pop())
            if inspect.isawaitable(released):
                await released
        if self._owns_client:
            await self._client.aclose(close_connection_pool=True)

    # -- the wire ------------------------------------------------------------------------

    async def _call(self, operation: Operation[_T]) -> _T:
        """Run ``operation``: its one :class:`Call`, or each call of its plan in turn."""
        if isinstance(operation, Call):
            return await self._send(operation)
        try:
            call = next(operation)
            while True:
                call = operation.send(await self._send(call))
        except StopIteration as done:
            result: _T = done.value
            return result

    async def _send(self, call: Call[_T]) -> _T:
        """Send ``call``'s command on one connection and decode its reply (EVAL after
        NOSCRIPT on the same connection; never anything else resent).

        Connections that completed their last exchange cleanly are kept by this store and
        reused at once, without the pool's per-checkout readiness probe (a round of the
        event loop per call); any other outcome (a connection error, a timeout, a
        cancellation) disconnects the connection and hands it back to the pool, so no
        call can read a stale reply. A semaphore of the pool's size lets at most that many
        calls hold a connection; the others wait their turn (first come, first served).
        """
        if self._cluster is not None:
            try:
                async with asyncio.timeout(self._timeout + call.wait_seconds):
                    reply = await self._on_cluster(call)
            except (*_UNAVAILABLE, redis.exceptions.RedisError) as exc:
                raise _store_error(call, exc) from exc
            return call.decode(reply)
        slots = self._slots
        if slots is None:
            limit = getattr(self._client.connection_pool, "max_connections", 2**31)
            slots = self._slots = asyncio.Semaphore(limit)
        try:
            if slots.locked():
                async with asyncio.timeout(self._timeout):  # waiting for a free connection
                    await slots.acquire()
            else:
                await slots.acquire()
        except TimeoutError as exc:
            raise _store_error(call, redis.exceptions.ConnectionError()) from exc
        try:
            return await self._on_a_connection(call)
        finally:
            slots.release()

    async def _on_a_connection(self, call: Call[_T]) -> _T:
        pool: Any = self._client.connection_pool
        idle = self._idle
        try:
            connection: Any = idle.pop() if idle else None
            if connection is None:
                async with asyncio.timeout(self._timeout):
                    connection = await pool.get_connection()
            try:
                async with asyncio.timeout(self._timeout + call.wait_seconds):
                    reply = await self._exchange(connection, call)
            except BaseException as exc:
                if isinstance(exc, redis.exceptions.ResponseError):
                    idle.append(connection)  # a whole reply was read: still in step
                else:
                    await connection.disconnect()  # unknown protocol state: never reuse
                    released = pool.release(connection)
                    if inspect.isawaitable(released):
                        await released
                raise
            idle.append(connection)
        except (*_UNAVAILABLE, redis.exceptions.RedisError) as exc:
            raise _store_error(call, exc) from exc
        return call.decode(reply)

    @staticmethod
    async def _send_once(
        connection: Any, call: Call[Any], command: tuple[bytes, ...], asking: bool
    ) -> Any:
        commands = _pipeline(call, command, asking)
        if len(commands) == 1:
            await connection.send_command(*command)
        else:
            await connection.send_packed_command(connection.pack_commands(commands))
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(await connection.read_response(disable_decoding=True))
            except ResponseError as exc:  # a whole error reply: still in step
                replies.append(exc)
        return _interpret(call, replies, asking)

    @classmethod
    async def _exchange(cls, connection: Any, call: Call[Any], asking: bool = False) -> Any:
        """One command and its reply (with its WAIT; and the EVAL fallback after
        NOSCRIPT, when nothing ran)."""
        reply = await cls._send_once(connection, call, call.command, asking)
        if reply is _NOSCRIPT:
            fallback = call.fallback()
            if fallback is not None:
                reply = await cls._send_once(connection, call, fallback, asking)
            if reply is _NOSCRIPT:
                raise redis.exceptions.NoScriptError("NOSCRIPT after EVAL")
        return reply

    async def _on_node(self, node: Any, call: Call[Any], asking: bool) -> Any:
        """One exchange on a connection of a cluster node (dropped unless it ended in
        step). At most the node's ``max_connections`` calls hold one at a time; the others
        wait their turn (within the call's bound) instead of failing."""
        slots = self._node_slots.get(node.name)
        if slots is None:
            slots = self._node_slots[node.name] = asyncio.Semaphore(node.max_connections)
        async with slots:
            return await self._on_node_connection(node, call, asking)

    async def _on_node_connection(self, node: Any, call: Call[Any], asking: bool) -> Any:
        connection: Any = node.acquire_connection()
        try:
            if not connection.is_connected:
                await connection.connect()
            reply = await self._exchange(connection, call, asking)
        except BaseException as exc:
            if not isinstance(exc, ResponseError):
                await connection.disconnect()
            node.release(connection)
            raise
        node.release(connection)
        return reply

    async def _on_cluster(self, call: Call[Any]) -> Any:
        """As :meth:`mfa_core.stores.RedisStore._on_cluster`: route to the slot's primary,
        follow MOVED / ASK, ask another primary first for the slots of a failed node."""
        client = self._cluster
        await client.initialize()  # once; a no-op afterwards
        manager = client.nodes_manager
        slot = client.keyslot(call.slot_key)
        node = _first_node(client, slot, self._suspects)
        asking = False
        for _ in range(_MAX_REDIRECTS):
            try:
                reply = await self._on_node(node, call, asking)
            except MovedError as moved:
                await manager.move_slot(moved)
                node, asking = manager.get_node_from_slot(slot), False
                continue
            except AskError as ask:
                target = client.get_node(host=ask.host, port=ask.port)
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

    # -- AsyncCredentialStore ------------------------------------------------------------

    async def add(self, credential: Credential) -> None:
        """See :meth:`mfa_core.stores.RedisStore.add`."""
        await self._call(self._protocol.add(credential))

    async def get(self, credential_id: str) -> Credential | None:
        """See :meth:`mfa_core.stores.RedisStore.get`."""
        return await self._call(self._protocol.get(credential_id))

    async def list_for_user(self, user_id: str) -> Sequence[Credential]:
        """See :meth:`mfa_core.stores.RedisStore.list_for_user`."""
        return await self._call(self._protocol.list_for_user(user_id))

    async def update(self, credential: Credential, *, expected_version: int) -> bool:
        """See :meth:`mfa_core.stores.RedisStore.update`."""
        call = self._protocol.update(credential, expected_version=expected_version)
        return await self._call(call)

    async def claim(self, credential_id: str, value: int, *, drift: int) -> bool:
        """See :meth:`mfa_core.stores.RedisStore.claim`."""
        return await self._call(self._protocol.claim(credential_id, value, drift=drift))

    async def delete(self, credential_id: str) -> bool:
        """See :meth:`mfa_core.stores.RedisStore.delete`."""
        return await self._call(self._protocol.delete(credential_id))

    # -- AsyncFailureCounter -------------------------------------------------------------

    async def admit_attempt(self, user_id: str, now: float, limits: ThrottleConfig) -> Admission:
        """See :meth:`mfa_core.stores.RedisStore.admit_attempt`."""
        return await self._call(self._protocol.admit_attempt(user_id, now, limits))

    async def get_failures(self, user_id: str) -> FailureState:
        """See :meth:`mfa_core.stores.RedisStore.get_failures`."""
        return await self._call(self._protocol.get_failures(user_id))

    async def reset(self, user_id: str) -> None:
        """See :meth:`mfa_core.stores.RedisStore.reset`."""
        await self._call(self._protocol.reset(user_id))

    # -- AsyncAttemptStore ---------------------------------------------------------------

    async def begin_attempt(
        self, user_id: str, now: float, limits: ThrottleConfig
    ) -> tuple[Admission, Sequence[Credential]]:
        """See :meth:`mfa_core.stores.RedisStore.begin_attempt`."""
        return await self._call(self._protocol.begin_attempt(user_id, now, limits))

    async def claim_and_reset(
        self, credential_id: str, value: int, *, drift: int, user_id: str
    ) -> bool:
        """See :meth:`mfa_core.stores.RedisStore.claim_and_reset`."""
        call = self._protocol.claim_and_reset(credential_id, value, drift=drift, user_id=user_id)
        return await self._call(call)

    # -- AsyncRecoveryCodeStore ----------------------------------------------------------

    async def replace_recovery_codes(self, user_id: str, records: Sequence[RecoveryRecord]) -> None:
        """See :meth:`mfa_core.stores.RedisStore.replace_recovery_codes`."""
        await self._call(self._protocol.replace_recovery_codes(user_id, records))

    async def recovery_codes(self, user_id: str) -> Sequence[RecoveryRecord]:
        """See :meth:`mfa_core.stores.RedisStore.recovery_codes`."""
        return await self._call(self._protocol.recovery_codes(user_id))

    async def consume_recovery_code(self, user_id: str, record_id: str, now: float) -> int | None:
        """See :meth:`mfa_core.stores.RedisStore.consume_recovery_code`."""
        return await self._call(self._protocol.consume_recovery_code(user_id, record_id, now))

    async def update_recovery_hash(self, user_id: str, record_id: str, phc: str) -> bool:
        """See :meth:`mfa_core.stores.RedisStore.update_recovery_hash`."""
        return await self._call(self._protocol.update_recovery_hash(user_id, record_id, phc))

    # -- AsyncOOBChallengeStore ----------------------------------------------------------

    async def put_challenge(self, record: OOBRecord) -> None:
        """See :meth:`mfa_core.stores.RedisStore.put_challenge`."""
        await self._call(self._protocol.put_challenge(record))

    async def get_challenge(self, challenge_id: str) -> OOBRecord | None:
        """See :meth:`mfa_core.stores.RedisStore.get_challenge`."""
        return await self._call(self._protocol.get_challenge(challenge_id))

    async def replace_challenge(self, record: OOBRecord, *, expected_generation: int) -> bool:
        """See :meth:`mfa_core.stores.RedisStore.replace_challenge`."""
        call = self._protocol.replace_challenge(record, expected_generation=expected_generation)
        return await self._call(call)

    async def update_challenge(self, record: OOBRecord, *, expected: OOBRecord) -> bool:
        """See :meth:`mfa_core.stores.RedisStore.update_challenge`."""
        return await self._call(self._protocol.update_challenge(record, expected=expected))

    async def delete_challenge(self, challenge_id: str) -> bool:
        """See :meth:`mfa_core.stores.RedisStore.delete_challenge`."""
        return await self._call(self._protocol.delete_challenge(challenge_id))

    async def count_send(self, key: str, window_start: float, expires_at: float) -> int:
        """See :meth:`mfa_core.stores.RedisStore.count_send`."""
        return await self._call(self._protocol.count_send(key, window_start, expires_at))
