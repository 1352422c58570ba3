"""A verify is at most two round trips to the store, counted where they happen.

On Redis every command sent on the client's connections is counted (a counting
``redis.Connection``: nothing is pipelined, so a command is a round trip); on PostgreSQL
every ``Sync`` or ``Query`` message in libpq's protocol trace (one per round trip). Three
cases: a success, a failure (a wrong code), and a success after failures - 2, 1 and 2
round trips. The async Redis store is counted the same way.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from mfa_core import AESGCMSealer, MFAService, ServiceConfig, b32decode_key, totp
from mfa_core.testing import FakeClock
from mfa_core.throttle import ThrottleConfig

pytest_plugins = ("servers",)

T0 = 1_800_000_005.0
USER = "alice"
CONFIG = ServiceConfig(throttle=ThrottleConfig(max_failures=100, base_delay=0.0, max_delay=0.0))


def _wrong(key: bytes, now: float) -> str:
    near = {totp(key, now + 30 * offset) for offset in range(-3, 4)}
    return next(code for code in ("000000", "111111", "222222") if code not in near)


class Counted:
    """The round trips of each case, from a counter the test reads and resets."""

    def __init__(self, service: Any, clock: FakeClock, key: bytes, take: Any) -> None:
        self.service, self.clock, self.key, self.take = service, clock, key, take

    def cases(self, run: Any) -> dict[str, int]:
        # Warm up: a fresh connection's handshake is not part of a verify.
        assert run(self.service.verify(USER, totp(self.key, self.clock.advance(30)))).accepted
        now = self.clock.advance(30)
        self.take()
        assert run(self.service.verify(USER, totp(self.key, now))).accepted
        success = self.take()
        now = self.clock.advance(30)
        assert not run(self.service.verify(USER, _wrong(self.key, now))).accepted
        failure = self.take()
        assert run(self.service.verify(USER, totp(self.key, now))).accepted
        after = self.take()
        return {"success": success, "failure": failure, "success after failures": after}


EXPECTED = {"success": 2, "failure": 1, "success after failures": 2}
SEALER = AESGCMSealer({"k1": bytes(range(32))}, current_key_id="k1")


async def async_cases(service: Any, clock: FakeClock, key: bytes, take: Any) -> dict[str, int]:
    """:meth:`Counted.cases` for an async service."""
    # Warm up: a fresh connection's handshake is not part of a verify.
    assert (await service.verify(USER, totp(key, clock.advance(30)))).accepted
    now = clock.advance(30)
    take()
    assert (await service.verify(USER, totp(key, now))).accepted
    success = take()
    now = clock.advance(30)
    assert not (await service.verify(USER, _wrong(key, now))).accepted
    failure = take()
    assert (await service.verify(USER, totp(key, now))).accepted
    return {"success": success, "failure": failure, "success after failures": take()}


def _enrolled(store: Any, clock: FakeClock) -> tuple[MFAService, bytes]:
    service = MFAService(store, store, SEALER, clock=clock, config=CONFIG)
    enrolment = service.begin_enrolment(USER)
    key = b32decode_key(enrolment.secret)
    assert service.confirm_enrolment(USER, enrolment.credential_id, totp(key, T0)).accepted
    return service, key


# -- Redis --------------------------------------------------------------------------------------


@pytest.fixture
def redis_counter(redis_url: str) -> Iterator[Any]:
    import redis

    class CountingConnection(redis.Connection):
        sent = 0

        def send_command(self, *args: Any, **kwargs: Any) -> None:
            CountingConnection.sent += 1
            super().send_command(*args, **kwargs)

    yield CountingConnection


def _take(counter: Any) -> Any:
    def take() -> int:
        sent, counter.sent = counter.sent, 0
        return int(sent)

    return take


def test_a_verify_is_at_most_two_round_trips_on_redis(
    redis_url: str, redis_prefix: str, redis_counter: Any
) -> None:
    import redis

    from mfa_core.stores.redis import RedisStore

    pool = redis.ConnectionPool.from_url(redis_url, connection_class=redis_counter)
    store = RedisStore(redis.Redis(connection_pool=pool), prefix=redis_prefix)
    try:
        _two_round_trips_at_most(store, redis_counter)
    finally:
        store.close()
        pool.disconnect()


def _two_round_trips_at_most(store: Any, counter: Any) -> None:
    clock = FakeClock(T0)
    service, key = _enrolled(store, clock)
    counted = Counted(service, clock, key, _take(counter))
    assert counted.cases(lambda result: result) == EXPECTED


def test_an_async_verify_is_at_most_two_round_trips_on_redis(
    redis_url: str, redis_prefix: str
) -> None:
    import redis.asyncio as aioredis

    from mfa_core.aio import AsyncMFAService
    from mfa_core.aio.redis import AsyncRedisStore
    from mfa_core.stores.redis import RedisStore

    class AsyncCounting(aioredis.Connection):
        sent = 0

        async def send_command(self, *args: Any, **kwargs: Any) -> None:
            AsyncCounting.sent += 1
            await super().send_command(*args, **kwargs)

    blocking = RedisStore.from_url(redis_url, prefix=redis_prefix)
    clock = FakeClock(T0)
    _, key = _enrolled(blocking, clock)

    async def main() -> dict[str, int]:
        pool = aioredis.ConnectionPool.from_url(redis_url, connection_class=AsyncCounting)
        store = AsyncRedisStore(aioredis.Redis(connection_pool=pool), prefix=redis_prefix)
        service = AsyncMFAService(store, store, SEALER, clock=clock, config=CONFIG)
        try:
            return await async_cases(service, clock, key, _take(AsyncCounting))
        finally:
            await store.close()
            await pool.disconnect()

    try:
        assert asyncio.run(main()) == EXPECTED
    finally:
        blocking.close()


# -- PostgreSQL ---------------------------------------------------------------------------------


class LibpqTrace:
    """Counts the protocol round trips of an engine's connections in libpq's trace: one per
    ``Sync`` (extended protocol) or ``Query`` (simple protocol) message sent."""

    def __init__(self, engine: Any) -> None:
        import sqlalchemy as sa

        self._file = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        sa.event.listen(engine, "checkout", self._trace)

    def _trace(self, dbapi_connection: Any, *_: Any) -> None:
        import psycopg

        dbapi_connection.pgconn.trace(self._file.fileno())
        dbapi_connection.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)

    def take(self) -> int:
        self._file.seek(0)
        text = self._file.read().decode("utf-8", "replace")
        self._file.seek(0)
        self._file.truncate()
        return len(re.findall(r"^F\t\d+\t(?:Sync|Query)\b", text, re.M))

    def close(self) -> None:
        self._file.close()


def test_a_verify_is_at_most_two_round_trips_on_postgresql(
    postgres_url: str, postgres_schema: str
) -> None:
    import sqlalchemy as sa

    from mfa_core.stores.sql import SQLStore

    engine = sa.create_engine(postgres_url, pool_size=1)
    trace = LibpqTrace(engine)
    store = SQLStore(engine.execution_options(schema_translate_map={None: postgres_schema}))
    try:
        clock = FakeClock(T0)
        service, key = _enrolled(store, clock)
        counted = Counted(service, clock, key, trace.take)
        for _ in range(6):  # psycopg prepares a statement on its 5th run: a one-off trip
            counted.cases(lambda result: result)
        assert counted.cases(lambda result: result) == EXPECTED
    finally:
        engine.dispose()
        trace.close()


def test_a_verify_is_at_most_two_round_trips_on_redis_cluster(
    redis_cluster: Any, redis_counter: Any
) -> None:
    import uuid

    from redis.cluster import RedisCluster

    from mfa_core.stores.redis import RedisStore

    # The store's own pools copy the cluster's connection class: every command is counted.
    url = f"redis://127.0.0.1:{redis_cluster.ports[0]}"
    client = RedisCluster.from_url(url, connection_class=redis_counter)
    store = RedisStore(client, prefix=f"mfa-test:{uuid.uuid4().hex[:12]}:")
    try:
        _two_round_trips_at_most(store, redis_counter)
    finally:
        store.close()
        client.close()
