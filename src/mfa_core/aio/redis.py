"""An asyncio store on Redis: :class:`AsyncRedisStore` (``redis.asyncio``, the ``redis`` extra).

Same server layout, Lua scripts, encoding, validation and error mapping as
:class:`~mfa_core.stores.RedisStore`, and not a second copy of any of them: every call is
planned and decoded by a private ``RedisStore`` whose wire method never does I/O.

1. The blocking store's method runs up to its one round trip (each of its operations is
   exactly one command or one script) and hands the command over instead of sending it;
2. this store sends the command on a ``redis.asyncio`` connection and awaits the reply
   (``EVALSHA``, then ``EVAL`` on the same connection if the server does not know the
   script; never retried, so a write is applied at most once);
3. the blocking store's method runs again with that reply and decodes it.

Connection problems raise :class:`~mfa_core.errors.StoreUnavailable`, other Redis errors
:class:`~mfa_core.errors.StoreError` (the service refuses the attempt: fail closed). A
task cancelled while waiting for a reply drops its connection, so no later call can read
a stale reply.
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Callable
from typing import Any, Final, ParamSpec, TypeVar, cast

from ..errors import InvalidParameter, MissingDependency, StoreError, StoreUnavailable

try:
    import redis
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import NoScriptError
except ImportError:  # pragma: no cover - the blocking store's test covers the message
    raise MissingDependency(
        "the async Redis store needs redis-py: pip install 'mfa_core[redis]'"
    ) from None

from ..stores.redis import (
    _UNAVAILABLE,
    DEFAULT_CHALLENGE_GRACE,
    DEFAULT_FAILURE_TTL,
    DEFAULT_PENDING_GRACE,
    DEFAULT_PREFIX,
    RedisStore,
    _socket_timeout,
)
from .stores import AsyncStoreAdapter

__all__ = ["AsyncRedisStore"]

_P = ParamSpec("_P")
_R = TypeVar("_R")
_NO_REPLY: Final = object()
# The reply for the decoding pass of the current task (contextvars: task-local).
_REPLY: contextvars.ContextVar[object] = contextvars.ContextVar(
    "mfa_core_async_redis_reply", default=_NO_REPLY
)


class _Planned(BaseException):
    """The blocking store's command, handed over instead of sent (control flow only; a
    BaseException so that no ``except Exception`` on the way can swallow it)."""

    def __init__(
        self, operation: str, command: tuple[bytes, ...], fallback: tuple[bytes, ...] | None
    ) -> None:
        super().__init__(operation)
        self.operation = operation
        self.command = command
        self.fallback = fallback


class _Planner(RedisStore):
    """A RedisStore that plans commands and decodes replies, never touching a socket."""

    __slots__ = ()

    def _execute(
        self,
        operation: str,
        command: tuple[bytes, ...],
        fallback: tuple[bytes, ...] | None = None,
    ) -> Any:
        reply = _REPLY.get()
        if reply is _NO_REPLY:
            raise _Planned(operation, command, fallback)
        _REPLY.set(_NO_REPLY)
        return reply


class AsyncRedisStore(AsyncStoreAdapter):
    """The four async store ports on a Redis server, shared by any number of processes.

    ``client`` is the host's ``redis.asyncio.Redis`` (its connection pool is used, not its
    retry settings). ``prefix``, ``pending_grace``, ``failure_ttl`` and ``challenge_grace``
    mean what they mean for :class:`~mfa_core.stores.RedisStore`, and both stores read and
    write the same keys, so blocking and asyncio workers can share one server.
    """

    __slots__ = ("_client", "_owns_client")

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        pending_grace: float = DEFAULT_PENDING_GRACE,
        failure_ttl: float | None = DEFAULT_FAILURE_TTL,
        challenge_grace: float = DEFAULT_CHALLENGE_GRACE,
    ) -> None:
        if not isinstance(client, aioredis.Redis):
            raise InvalidParameter("client must be a redis.asyncio.Redis client")
        # The planner's own client never connects: only its script registry is used.
        planner = _Planner(
            redis.Redis(),
            prefix=prefix,
            pending_grace=pending_grace,
            failure_ttl=failure_ttl,
            challenge_grace=challenge_grace,
        )
        super().__init__(planner, offload=False)
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
        max_connections: int = 50,
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
                socket_timeout=socket_timeout,
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
        )
        store._owns_client = True
        return store

    def __repr__(self) -> str:
        return f"AsyncRedisStore(prefix={self.prefix!r})"

    @property
    def prefix(self) -> str:
        """The key prefix of this store."""
        return cast(_Planner, self.blocking).prefix

    async def close(self) -> None:
        """Close the client if :meth:`from_url` made it; a client passed in is the host's."""
        if self._owns_client:
            await self._client.aclose(close_connection_pool=True)

    async def _do(self, fn: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            fn(*args, **kwargs)
        except _Planned as planned:
            reply = await self._send(planned)
        else:  # pragma: no cover - every store operation is one round trip
            raise StoreError("the Redis store planned no command")
        token = _REPLY.set(reply)
        try:
            return fn(*args, **kwargs)
        finally:
            _REPLY.reset(token)

    async def _send(self, planned: _Planned) -> Any:
        pool: Any = self._client.connection_pool
        try:
            connection: Any = await pool.get_connection()
            try:
                await connection.send_command(*planned.command)
                try:
                    return await connection.read_response(disable_decoding=True)
                except NoScriptError:
                    if planned.fallback is None:
                        raise
                await connection.send_command(*planned.fallback)
                return await connection.read_response(disable_decoding=True)
            except BaseException as exc:
                if not isinstance(exc, redis.exceptions.ResponseError):
                    await connection.disconnect()  # unknown protocol state: never reuse
                raise
            finally:
                released = pool.release(connection)
                if inspect.isawaitable(released):
                    await released
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(
                f"the Redis store is unavailable: {planned.operation} failed ({type(exc).__name__})"
            ) from exc
        except redis.exceptions.RedisError as exc:
            raise StoreError(
                f"the Redis store failed: {planned.operation} failed ({type(exc).__name__})"
            ) from exc
