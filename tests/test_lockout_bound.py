"""The lockout holds under any concurrency, through the whole service.

With ``max_failures = 10`` (and no delay between attempts, so only the lock bounds them),
a crowd of concurrent wrong guesses for one user - 32 threads, 8 processes, 500 asyncio
tasks - gets EXACTLY 10 guesses evaluated, and leaves the failure count at exactly 10: an
attempt is admitted and counted by ONE atomic store operation before its code is looked
at. "Evaluated" is measured where it happens: the key of the user's only credential is
unsealed once per evaluated guess (a counting sealer), and every refused attempt is
``locked``.

Every store is tested for real: memory, SQLite, Redis, PostgreSQL and MariaDB (blocking and
async, and SQLite behind ``AsyncStoreAdapter``, the pattern of the async example).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest

from mfa_core import b32decode_key, totp
from mfa_core.aio import AsyncMemoryStore, AsyncMFAService, AsyncStoreAdapter
from mfa_core.sealing import AESGCMSealer
from mfa_core.service import MFAService, ServiceConfig, VerifyReason
from mfa_core.stores import MemoryStore, SQLiteStore
from mfa_core.testing import FakeClock
from mfa_core.throttle import ThrottleConfig

pytest_plugins = ("servers",)

LIMIT = 10
LIMITS = ThrottleConfig(max_failures=LIMIT, base_delay=0.0, max_delay=0.0, lockout=900.0)
CONFIG = ServiceConfig(throttle=LIMITS)
T0 = 1_800_000_005.0
USER = "alice"
SEALING_KEYS = {"k1": bytes(range(32))}
THREADS = 32
PROCESSES = 8
PER_PROCESS = 10
TASKS = 500
TIMEOUT = 120.0


class CountingSealer(AESGCMSealer):
    """Counts unseals: one per evaluated guess (the user has one credential)."""

    def __init__(self) -> None:
        super().__init__(SEALING_KEYS, current_key_id="k1")
        self.unseals = 0
        self._lock = threading.Lock()

    def unseal(self, sealed: bytes, *, credential_id: str) -> bytes:
        with self._lock:
            self.unseals += 1
        return super().unseal(sealed, credential_id=credential_id)


def _enrol(store: Any) -> bytes:
    """Enrol and confirm USER's TOTP at T0 on a blocking store; return the key."""
    service = MFAService(store, store, CountingSealer(), clock=FakeClock(T0), config=CONFIG)
    enrolment = service.begin_enrolment(USER)
    key = b32decode_key(enrolment.secret)
    assert service.confirm_enrolment(USER, enrolment.credential_id, totp(key, T0)).accepted
    return key


def _wrong(key: bytes) -> str:
    """A code that matches no step of the window around T0."""
    taken = {totp(key, T0 + s * 30) for s in range(-12, 13)}
    return next(c for c in (f"{n:06d}" for n in range(1_000_000)) if c not in taken)


def _close(store: Any) -> None:
    close = getattr(store, "close", None)
    if close is not None:
        close()
    engine = getattr(store, "engine", None)
    if engine is not None:
        engine.dispose()


def _assert_bound(reasons: list[str], unseals: int, count: int) -> None:
    tally = Counter(reasons)
    assert tally[VerifyReason.INVALID_CODE.value] == LIMIT, tally
    assert tally[VerifyReason.LOCKED.value] == len(reasons) - LIMIT, tally
    assert unseals == LIMIT
    assert count == LIMIT


def unique_prefix() -> str:
    """A fresh key prefix on the private cluster (discarded with it)."""
    import uuid

    return f"mfa-test:{uuid.uuid4().hex[:12]}:"


# -- blocking stores, 32 threads -----------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite", "redis", "redis-cluster", "postgresql", "mariadb"])
def blocking_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.param == "sqlite":
        store: Any = SQLiteStore(tmp_path / "bound.sqlite3")
    elif request.param == "redis":
        from mfa_core.stores.redis import RedisStore

        prefix = request.getfixturevalue("redis_prefix")
        store = RedisStore.from_url(request.getfixturevalue("redis_url"), prefix=prefix)
    elif request.param == "redis-cluster":
        from mfa_core.stores.redis import RedisStore

        cluster = request.getfixturevalue("redis_cluster")
        store = RedisStore(cluster.client(), prefix=unique_prefix())
        store._owns_client = True
    else:
        import sqlalchemy as sa

        from mfa_core.stores.sql import SQLStore

        if request.param == "mariadb":
            schema = request.getfixturevalue("mariadb_database")
            url = request.getfixturevalue("mariadb_url")
        else:
            schema = request.getfixturevalue("postgres_schema")
            url = request.getfixturevalue("postgres_url")
        engine = sa.create_engine(url, pool_size=THREADS)
        store = SQLStore(engine.execution_options(schema_translate_map={None: schema}))
    try:
        yield store
    finally:
        _close(store)


def test_32_threads_get_exactly_the_limit_of_guesses_evaluated(blocking_store: Any) -> None:
    key = _enrol(blocking_store)
    sealer = CountingSealer()
    service = MFAService(
        blocking_store, blocking_store, sealer, clock=FakeClock(T0 + 1), config=CONFIG
    )
    barrier = threading.Barrier(THREADS)
    code = _wrong(key)

    def guess(_: int) -> str:
        barrier.wait(timeout=TIMEOUT)
        return service.verify(USER, code).reason.value

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        reasons = list(pool.map(guess, range(THREADS), timeout=TIMEOUT))
    _assert_bound(reasons, sealer.unseals, blocking_store.get_failures(USER).count)


# -- 8 processes ---------------------------------------------------------------------------


def _build(spec: tuple[str, str, str]) -> Any:
    backend, where, namespace = spec
    if backend == "sqlite":
        return SQLiteStore(where)
    if backend == "redis":
        from mfa_core.stores.redis import RedisStore

        return RedisStore.from_url(where, prefix=namespace)
    import sqlalchemy as sa

    from mfa_core.stores.sql import SQLStore

    engine = sa.create_engine(where, pool_size=1)
    return SQLStore(engine.execution_options(schema_translate_map={None: namespace}))


def _guesser(spec: tuple[str, str, str], code: str, barrier: Any, pipe: Connection) -> None:
    try:
        store = _build(spec)
        sealer = CountingSealer()
        service = MFAService(store, store, sealer, clock=FakeClock(T0 + 1), config=CONFIG)
        store.get_failures("warm-up")  # connect before the race
        barrier.wait(TIMEOUT)
        reasons = [service.verify(USER, code).reason.value for _ in range(PER_PROCESS)]
        _close(store)
        pipe.send(("ok", reasons, sealer.unseals))
    except BaseException as exc:
        pipe.send(("error", repr(exc), 0))


@pytest.fixture(params=["sqlite", "redis", "postgresql", "mariadb"])
def process_spec(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str, str]:
    # Redis Cluster across 8 processes: tests/test_redis_cluster.py (one crew of workers for
    # the exactly-once races and the exact bound, so the processes are spawned once).
    if request.param == "sqlite":
        return ("sqlite", str(tmp_path / "bound-processes.sqlite3"), "")
    if request.param == "redis":
        return (
            "redis",
            request.getfixturevalue("redis_url"),
            request.getfixturevalue("redis_prefix"),
        )
    if request.param == "mariadb":
        url = request.getfixturevalue("mariadb_url")
        return ("mariadb", url, request.getfixturevalue("mariadb_database"))
    url = request.getfixturevalue("postgres_url")
    return ("postgresql", url, request.getfixturevalue("postgres_schema"))


@pytest.mark.slow
def test_8_processes_get_exactly_the_limit_of_guesses_evaluated(
    process_spec: tuple[str, str, str],
) -> None:
    store = _build(process_spec)
    try:
        key = _enrol(store)
        code = _wrong(key)
        context = multiprocessing.get_context("spawn")
        barrier = context.Barrier(PROCESSES)
        pipes = []
        workers = []
        for _ in range(PROCESSES):
            mine, theirs = context.Pipe()
            worker = context.Process(target=_guesser, args=(process_spec, code, barrier, theirs))
            worker.start()
            pipes.append(mine)
            workers.append(worker)
        reasons: list[str] = []
        unseals = 0
        for pipe in pipes:
            assert pipe.poll(TIMEOUT), "a worker did not answer"
            status, value, seen = pipe.recv()
            assert status == "ok", value
            reasons.extend(value)
            unseals += seen
        for worker in workers:
            worker.join(TIMEOUT)
        _assert_bound(reasons, unseals, store.get_failures(USER).count)
    finally:
        _close(store)


# -- async stores, 500 tasks ---------------------------------------------------------------


@pytest.fixture(
    params=["memory", "sqlite-adapter", "redis", "redis-cluster", "postgresql", "mariadb"]
)
def async_pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """(the blocking view used to enrol and read the count, an async context manager that
    opens the async store inside the test's event loop and closes it there)."""
    if request.param == "memory":
        blocking = MemoryStore()
        yield blocking, _opened(lambda: AsyncMemoryStore(blocking), None)
        return
    if request.param == "sqlite-adapter":
        sqlite = SQLiteStore(tmp_path / "bound-async.sqlite3")
        try:
            yield sqlite, _opened(lambda: AsyncStoreAdapter(sqlite), None)
        finally:
            sqlite.close()
        return
    if request.param == "redis-cluster":
        yield from _cluster_pair(request.getfixturevalue("redis_cluster"))
        return
    if request.param == "redis":
        from mfa_core.aio.redis import AsyncRedisStore
        from mfa_core.stores.redis import RedisStore

        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
        blocking_redis = RedisStore.from_url(url, prefix=prefix)

        async def close_redis(store: Any) -> None:
            await store.close()

        try:
            yield (
                blocking_redis,
                _opened(
                    lambda: AsyncRedisStore.from_url(url, prefix=prefix, max_connections=TASKS),
                    close_redis,
                ),
            )
        finally:
            blocking_redis.close()
        return
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    from mfa_core.aio.sql import AsyncSQLStore
    from mfa_core.stores.sql import SQLStore

    if request.param == "mariadb":
        from server_tools import async_mariadb_url

        url = request.getfixturevalue("mariadb_url")
        schema = request.getfixturevalue("mariadb_database")
        async_url = async_mariadb_url(url)
    else:
        url = request.getfixturevalue("postgres_url")
        schema = request.getfixturevalue("postgres_schema")
        async_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    translate = {None: schema}
    engine = sa.create_engine(url).execution_options(schema_translate_map=translate)

    def open_sql() -> Any:
        made = create_async_engine(async_url, pool_size=20, max_overflow=0)
        return AsyncSQLStore(made.execution_options(schema_translate_map=translate))

    async def close_sql(store: Any) -> None:
        await store.engine.dispose()

    try:
        yield SQLStore(engine), _opened(open_sql, close_sql)
    finally:
        engine.dispose()


def _cluster_pair(cluster: Any) -> Iterator[tuple[Any, Any]]:
    from mfa_core.aio.redis import AsyncRedisStore
    from mfa_core.stores.redis import RedisStore

    prefix = unique_prefix()
    blocking = RedisStore(cluster.client(), prefix=prefix)
    blocking._owns_client = True

    def open_cluster() -> Any:
        return AsyncRedisStore(cluster.async_client(), prefix=prefix)

    async def close_cluster(store: Any) -> None:
        await store.close()
        await store._client.aclose()

    try:
        yield blocking, _opened(open_cluster, close_cluster)
    finally:
        blocking.close()


def _opened(make: Any, close: Any) -> Any:
    @contextlib.asynccontextmanager
    async def opened() -> AsyncIterator[Any]:
        store = make()
        try:
            yield store
        finally:
            if close is not None:
                await close(store)

    return opened


def test_500_tasks_get_exactly_the_limit_of_guesses_evaluated(async_pair: tuple[Any, Any]) -> None:
    blocking, opened = async_pair
    key = _enrol(blocking)
    code = _wrong(key)
    sealer = CountingSealer()

    async def crowd() -> list[str]:
        async with opened() as native:
            service = AsyncMFAService(
                native, native, sealer, clock=FakeClock(T0 + 1), config=CONFIG
            )
            results = await asyncio.wait_for(
                asyncio.gather(*(service.verify(USER, code) for _ in range(TASKS))), TIMEOUT
            )
        return [result.reason.value for result in results]

    reasons = asyncio.run(crowd())
    _assert_bound(reasons, sealer.unseals, blocking.get_failures(USER).count)


def test_the_bound_is_per_lock_period_and_a_success_resets_it() -> None:
    store = MemoryStore()
    key = _enrol(store)
    clock = FakeClock(T0 + 1)
    sealer = CountingSealer()
    service = MFAService(store, store, sealer, clock=clock, config=CONFIG)
    code = _wrong(key)
    reasons = [service.verify(USER, code).reason.value for _ in range(LIMIT + 5)]
    _assert_bound(reasons, sealer.unseals, store.get_failures(USER).count)
    assert service.verify(USER, totp(key, clock.now())).reason is VerifyReason.LOCKED
    clock.advance(900)  # the lock ran out: ONE more guess, which locks again at once
    assert service.verify(USER, code).reason is VerifyReason.INVALID_CODE
    assert service.verify(USER, totp(key, clock.now())).reason is VerifyReason.LOCKED
    clock.advance(900)
    assert service.verify(USER, totp(key, clock.now())).accepted
    assert store.get_failures(USER).count == 0
