"""A verify is at most two round trips to the store, counted where they happen.

On Redis every command sent on the client's connections is counted (a counting
``redis.Connection``: nothing is pipelined, so a command is a round trip); on PostgreSQL
every statement the engine sends (SQLAlchemy's ``before_cursor_execute``), with
psycopg's autocommit, so a statement is a round trip. Three cases: a success, a failure
(a wrong code), and a success after failures - 2, 1 and 2 round trips. Async stores are
counted the same way.
"""

from __future__ import annotations

import asyncio
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
        clock = FakeClock(T0)
        service, key = _enrolled(store, clock)
        counted = Counted(service, clock, key, _take(redis_counter))
        assert counted.cases(lambda result: result) == EXPECTED
    finally:
        store.close()
        pool.disconnect()


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
