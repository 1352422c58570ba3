"""Bounded calls: every SQLStore / AsyncSQLStore call on a server that stops answering
returns within the store's bound and fails closed with StoreUnavailable.

* a private PostgreSQL (``initdb`` + ``pg_ctl`` on a free port, this module's alone) frozen
  with SIGSTOP (postmaster and every backend, by PID): the kernel keeps the sockets open
  and acknowledges what is sent, so neither ``connect_timeout``, keepalives nor
  ``statement_timeout`` end the wait; pooled connections with and without pre-ping, a new
  connection, a transaction, the pool's checkout; blocking and asyncio (psycopg);
* MariaDB behind a proxy that stops relaying (a black-holed network path), blocking
  (PyMySQL) and asyncio (asyncmy);
* a listener that accepts and never answers, for both drivers' connect;
* after the freeze ends, the same store works again (no connection left broken).

Times are asserted against the bound plus a slack for a loaded machine, never as
performance figures.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from server_tools import BlackHole, FreezableProxy, PrivatePostgres, unique
from sqlalchemy.ext.asyncio import create_async_engine

from mfa_core.aio.sql import AsyncSQLStore
from mfa_core.errors import InvalidParameter, StoreUnavailable
from mfa_core.stores.sql import DEFAULT_TIMEOUT, SQLStore, create_schema
from mfa_core.throttle import ThrottleConfig

pytest_plugins = ("servers",)

BOUND = 2.0
"""The store's bound in these tests (libpq's connect_timeout is whole seconds, >= 2)."""
SLACK = 3.0
"""Allowance for a loaded machine (thread wake-ups, the driver's own clean-up)."""
T0 = 1_700_000_000.0
OPEN = ThrottleConfig(max_failures=100, base_delay=0, max_delay=0, lockout=900)


def _calls(store: Any) -> list[tuple[str, Callable[[], Any]]]:
    """One call of each kind: a read, the fused admission, a multi-statement transaction
    (the first on a pooled connection the watchdog cuts, the others on new connections)."""
    return [
        ("get_failures", lambda: store.get_failures("alice")),
        ("begin_attempt", lambda: store.begin_attempt("alice", T0, OPEN)),
        ("replace_recovery_codes", lambda: store.replace_recovery_codes("alice", [])),
    ]


def _fails_within_bound(call: Callable[[], Any], bound: float = BOUND) -> float:
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        call()
    took = time.monotonic() - started
    assert took < bound + SLACK, took
    return took


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    server.start()
    engine = sa.create_engine(server.url, poolclass=sa.pool.NullPool)
    try:
        create_schema(engine)
        yield server
    finally:
        engine.dispose()
        server.stop()


@pytest.fixture
def frozen(private_postgres: PrivatePostgres) -> Iterator[PrivatePostgres]:
    """The private server, thawed again after the test whatever happens."""
    try:
        yield private_postgres
    finally:
        private_postgres.thaw()


@pytest.mark.parametrize("pre_ping", [False, True])
def test_a_frozen_postgresql_fails_every_blocking_call_within_the_bound(
    frozen: PrivatePostgres, pre_ping: bool
) -> None:
    engine = sa.create_engine(frozen.url, pool_size=2, max_overflow=0, pool_pre_ping=pre_ping)
    try:
        store = SQLStore(engine, timeout=BOUND)
        store.get_failures("warm")  # a pooled connection exists
        frozen.freeze()
        for _name, call in _calls(store):
            _fails_within_bound(call)
        frozen.thaw()
        assert store.admit_attempt("bob", T0, OPEN).admitted  # works again
    finally:
        frozen.thaw()
        engine.dispose()


def test_a_new_connection_to_a_frozen_postgresql_is_bounded(frozen: PrivatePostgres) -> None:
    engine = sa.create_engine(frozen.url, poolclass=sa.pool.NullPool)
    try:
        store = SQLStore(engine, timeout=BOUND)
        frozen.freeze()
        _fails_within_bound(lambda: store.get_failures("alice"))
    finally:
        frozen.thaw()
        engine.dispose()


def test_the_pool_checkout_is_bounded(frozen: PrivatePostgres) -> None:
    """The only connection hangs on the frozen server; a second call waits for the pool,
    and the host's 30 s pool timeout is no longer the bound."""
    engine = sa.create_engine(frozen.url, pool_size=1, max_overflow=0, pool_timeout=30)
    try:
        store = SQLStore(engine, timeout=BOUND)
        store.get_failures("warm")
        frozen.freeze()
        outcome: list[float] = []

        def hold() -> None:
            outcome.append(_fails_within_bound(lambda: store.get_failures("holder")))

        first = threading.Thread(target=hold)
        first.start()
        time.sleep(0.3)
        _fails_within_bound(lambda: store.get_failures("waiter"))
        first.join(BOUND + SLACK + 5)
        assert len(outcome) == 1
    finally:
        frozen.thaw()
        engine.dispose()


def test_a_frozen_postgresql_fails_every_async_call_within_the_bound(
    frozen: PrivatePostgres,
) -> None:
    async def main() -> None:
        engine = create_async_engine(frozen.url, pool_size=2, max_overflow=0)
        try:
            store = AsyncSQLStore(engine, timeout=BOUND)
            await store.get_failures("warm")
            frozen.freeze()
            for _name, call in _calls(store):
                started = time.monotonic()
                with pytest.raises(StoreUnavailable):
                    await call()
                assert time.monotonic() - started < BOUND + SLACK
            # 50 tasks at once: all return, all fail closed
            started = time.monotonic()
            results = await asyncio.gather(
                *(store.get_failures(f"u{n}") for n in range(50)), return_exceptions=True
            )
            assert all(isinstance(r, StoreUnavailable) for r in results)
            assert time.monotonic() - started < 2 * BOUND + SLACK
            frozen.thaw()
            assert (await store.admit_attempt("carol", T0, OPEN)).admitted
        finally:
            frozen.thaw()
            await engine.dispose()

    asyncio.run(main())


@pytest.fixture
def mariadb_proxy(mariadb_url: str) -> Iterator[FreezableProxy]:
    url = sa.make_url(mariadb_url)
    proxy = FreezableProxy(url.host or "127.0.0.1", url.port or 3306)
    try:
        yield proxy
    finally:
        proxy.close()


def _through(mariadb_url: str, port: int) -> sa.URL:
    return sa.make_url(mariadb_url).set(host="127.0.0.1", port=port)


def test_a_black_holed_mariadb_fails_every_blocking_call_within_the_bound(
    mariadb_url: str, mariadb_database: str, mariadb_proxy: FreezableProxy
) -> None:
    engine = sa.create_engine(
        _through(mariadb_url, mariadb_proxy.port), pool_size=2, max_overflow=0
    ).execution_options(schema_translate_map={None: mariadb_database})
    try:
        store = SQLStore(engine, timeout=BOUND)
        store.get_failures("warm")
        mariadb_proxy.freeze()
        for _name, call in _calls(store):
            _fails_within_bound(call)
    finally:
        engine.dispose()


def test_a_black_holed_mariadb_fails_every_async_call_within_the_bound(
    mariadb_url: str, mariadb_database: str, mariadb_proxy: FreezableProxy
) -> None:
    url = _through(mariadb_url, mariadb_proxy.port).set(drivername="mysql+asyncmy")

    async def main() -> None:
        engine = create_async_engine(url, pool_size=2, max_overflow=0)
        try:
            translated = engine.execution_options(schema_translate_map={None: mariadb_database})
            store = AsyncSQLStore(translated, timeout=BOUND)
            await store.get_failures("warm")
            mariadb_proxy.freeze()
            for _name, call in _calls(store):
                started = time.monotonic()
                with pytest.raises(StoreUnavailable):
                    await call()
                assert time.monotonic() - started < BOUND + SLACK
        finally:
            mariadb_proxy.close()
            await engine.dispose()

    asyncio.run(main())


@pytest.mark.parametrize(
    "driver", ["postgresql+psycopg://postgres@", "mysql+pymysql://root@"], ids=["pg", "mariadb"]
)
def test_a_server_that_accepts_and_never_answers_is_bounded(driver: str) -> None:
    hole = BlackHole()
    engine = sa.create_engine(f"{driver}127.0.0.1:{hole.port}/x", poolclass=sa.pool.NullPool)
    try:
        store = SQLStore(engine, timeout=BOUND)
        _fails_within_bound(lambda: store.get_failures("alice"))
    finally:
        engine.dispose()
        hole.close()


def test_the_bound_is_checked_and_documented(tmp_path: Path) -> None:
    assert DEFAULT_TIMEOUT == 5.0
    hole = BlackHole()
    try:
        engine = sa.create_engine(
            f"postgresql+psycopg://postgres@127.0.0.1:{hole.port}/{unique('x')}"
        )
        for bad in (0, -1.0, float("nan"), float("inf"), True, "5"):
            with pytest.raises(InvalidParameter):
                SQLStore(engine, timeout=bad)  # type: ignore[arg-type]
        engine.dispose()
    finally:
        hole.close()
    text = (Path(__file__).resolve().parent.parent / "docs" / "stores.md").read_text()
    assert "DEFAULT_TIMEOUT" in text
