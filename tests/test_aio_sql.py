"""AsyncSQLStore (SQLAlchemy's async engine) on PostgreSQL (psycopg) and SQLite (aiosqlite).

* the async contract suite (all four ports, task races) on both databases;
* the blocking SQLStore's own behaviour, unchanged: same validation, same error classes and
  messages, same statements per call (counted with ``before_cursor_execute`` on the sync
  engine behind the async one), one protocol round trip per call on PostgreSQL (libpq's
  trace), blocking and asyncio workers sharing one database;
* 1,000 tasks submitting one valid TOTP code through AsyncMFAService: exactly one accepted;
* faults for real on PostgreSQL: the store's own backend terminated (``pg_terminate_backend``,
  found by a unique ``application_name``) between calls and while a statement waits on a
  row lock held by another connection;
* cancellation: no connection goes back to the pool with a transaction open, and no later
  call ever reads a stale result;
* the service scenarios of ``test_service.py``, ``test_service_recovery.py`` and
  ``test_service_oob.py`` re-run with AsyncMFAService over AsyncSQLStore.

PostgreSQL tests run in schemas of their own (``servers.py``); see there for the
skip-or-fail rule when the server is missing.
"""

from __future__ import annotations

import asyncio
import gc
import random
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import attrs
import pytest
import sqlalchemy as sa
import test_service
import test_service_oob
import test_service_recovery
from aio_front import Facades, adopt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_tools import (
    async_mariadb_url,
    create_postgres_schema,
    drop_postgres_schema,
    postgres_engine,
    unique,
)
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from test_sql_store import PHC, T0, RoundTrips, _challenge, _credential, _records

import mfa_core.aio
from mfa_core import b32decode_key, totp
from mfa_core.aio import AsyncMFAService, AsyncStoreAdapter
from mfa_core.aio.sql import AsyncSQLStore, create_schema
from mfa_core.aio.testing import (
    AsyncCredentialStoreContract,
    AsyncFailureCounterContract,
    AsyncOOBChallengeStoreContract,
    AsyncRecoveryCodeStoreContract,
)
from mfa_core.errors import InvalidParameter, MFAError, StoreError, StoreUnavailable
from mfa_core.models import Admission, Credential, FailureState
from mfa_core.oob import OOBConfig, OOBRecord
from mfa_core.recovery import RecoveryConfig, RecoveryRecord
from mfa_core.sealing import AESGCMSealer
from mfa_core.service import ServiceConfig, VerifyReason
from mfa_core.stores.sql import SQLStore, credentials_table, recovery_codes_table
from mfa_core.testing import FakeClock, FakeCodeSender, RecordingEventSink
from mfa_core.throttle import ThrottleConfig, admit

pytest_plugins = ("servers",)

OPEN = ThrottleConfig(max_failures=100, base_delay=0, max_delay=0, lockout=900)
"""Limits that admit every attempt up to 100 (for tests of something else)."""

_T = TypeVar("_T")
TABLE_NAMES = [
    "mfa_credentials",
    "mfa_failures",
    "mfa_oob_challenges",
    "mfa_recovery_codes",
    "mfa_schema_version",
    "mfa_send_counters",
    "mfa_webauthn_challenges",
    "mfa_webauthn_credentials",
]


# -- databases ----------------------------------------------------------------------------


def _pg_async(url: str, schema: str, **options: Any) -> AsyncEngine:
    """An async engine (psycopg's async mode) whose tables live in ``schema``."""
    connect_args = dict(options.pop("connect_args", {}))
    connect_args.setdefault("connect_timeout", 5)
    engine = create_async_engine(url, connect_args=connect_args, **options)
    return engine.execution_options(schema_translate_map={None: schema})


def _sqlite_async(path: Path, **options: Any) -> AsyncEngine:
    connect_args = dict(options.pop("connect_args", {}))
    connect_args.setdefault("timeout", 30)
    return create_async_engine(f"sqlite+aiosqlite:///{path}", connect_args=connect_args, **options)


@attrs.define
class Database:
    """One database with the store's tables: a PostgreSQL schema or a SQLite file. Async
    engines are made per event loop (an async engine's connections belong to one loop)."""

    kind: str
    url: str
    target: str  # the schema (PostgreSQL) or the file (SQLite)

    def engine(self, **options: Any) -> AsyncEngine:
        if self.kind == "postgresql":
            return _pg_async(self.url, self.target, **options)
        return _sqlite_async(Path(self.target), **options)

    def blocking_engine(self, **options: Any) -> sa.Engine:
        if self.kind == "postgresql":
            made: sa.Engine = postgres_engine(self.url, self.target, **options)
            return made
        return sa.create_engine(f"sqlite:///{self.target}", connect_args={"timeout": 30})


def _sqlite_database(path: Path) -> Database:
    """A SQLite file with the tables, made by the async ``create_schema``."""

    async def make() -> None:
        engine = _sqlite_async(path)
        try:
            await create_schema(engine)
        finally:
            await engine.dispose()

    asyncio.run(make())
    return Database("sqlite", "", str(path))


@pytest.fixture(params=["postgresql", "sqlite"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        return Database("postgresql", url, request.getfixturevalue("postgres_schema"))
    return _sqlite_database(tmp_path / "store.db")


def _run(database: Database, test: Callable[[AsyncSQLStore], Awaitable[None]], **opts: Any) -> None:
    """Run ``test(store)`` on a new loop with a fresh engine, disposed afterwards."""

    async def main() -> None:
        engine = database.engine(**opts)
        try:
            await test(AsyncSQLStore(engine))
        finally:
            await engine.dispose()

    asyncio.run(main())


class _OwnedStore(AsyncSQLStore):
    """An AsyncSQLStore that disposes of its engine on close (the contract suite closes
    every store it makes; a host's store leaves the host's engine alone)."""

    __slots__ = ()

    async def close(self) -> None:
        await self.engine.dispose()


# -- the contract suite --------------------------------------------------------------------


class TestAsyncSQLStorePostgresContract(
    AsyncCredentialStoreContract,
    AsyncFailureCounterContract,
    AsyncRecoveryCodeStoreContract,
    AsyncOOBChallengeStoreContract,
):
    """The async contract suite on PostgreSQL (psycopg's async mode, one schema per test)."""

    race_threads = 16
    gather_tasks = 100

    @pytest.fixture(autouse=True)
    def _database(self, postgres_url: str, postgres_schema: str) -> None:
        self.database = Database("postgresql", postgres_url, postgres_schema)

    def make_async_store(self) -> AsyncSQLStore:
        return _OwnedStore(self.database.engine(pool_size=4, max_overflow=30))


class TestAsyncSQLStoreMariaDBContract(
    AsyncCredentialStoreContract,
    AsyncFailureCounterContract,
    AsyncRecoveryCodeStoreContract,
    AsyncOOBChallengeStoreContract,
):
    """The async contract suite on MariaDB (asyncmy; the session's database, emptied after
    each test)."""

    race_threads = 16
    gather_tasks = 100

    @pytest.fixture(autouse=True)
    def _database(self, mariadb_url: str, mariadb_database: str) -> None:
        self.url = async_mariadb_url(mariadb_url)
        self.target = mariadb_database

    def make_async_store(self) -> AsyncSQLStore:
        engine = create_async_engine(self.url, pool_size=4, max_overflow=30)
        return _OwnedStore(engine.execution_options(schema_translate_map={None: self.target}))


class TestAsyncSQLStoreSQLiteContract(
    AsyncCredentialStoreContract,
    AsyncFailureCounterContract,
    AsyncRecoveryCodeStoreContract,
    AsyncOOBChallengeStoreContract,
):
    """The async contract suite on a SQLite file through aiosqlite."""

    race_threads = 16
    gather_tasks = 40

    @pytest.fixture(autouse=True)
    def _database(self, tmp_path: Path) -> None:
        self.database = _sqlite_database(tmp_path / "contract.db")

    def make_async_store(self) -> AsyncSQLStore:
        return _OwnedStore(self.database.engine(pool_size=4, max_overflow=30))


# -- construction, schema, typed errors ----------------------------------------------------


def test_the_store_is_exported_lazily_and_shows_its_dialect(database: Database) -> None:
    assert mfa_core.aio.AsyncSQLStore is AsyncSQLStore
    assert "AsyncSQLStore" in dir(mfa_core.aio)
    assert "AsyncSQLStore" not in mfa_core.aio.__all__  # a star import needs no extra
    with pytest.raises(AttributeError):
        _ = mfa_core.aio.NoSuchStore  # type: ignore[attr-defined]

    async def test(store: AsyncSQLStore) -> None:
        assert repr(store) == f"AsyncSQLStore(dialect={database.kind!r})"
        assert isinstance(store.blocking, SQLStore)
        with warnings.catch_warnings():  # the driver's connect coroutine is never awaited
            warnings.simplefilter("ignore", RuntimeWarning)
            with pytest.raises(StoreError, match="MissingGreenlet"):  # only through the bridge
                store.blocking.get_failures("alice")
        assert isinstance(store.engine, AsyncEngine)
        await store.close()  # the host's engine stays usable
        assert (await store.get_failures("alice")) == FailureState()

    _run(database, test)


def test_bad_arguments_raise_typed_errors(database: Database, tmp_path: Path) -> None:
    blocking = database.blocking_engine()
    try:
        for engine in (blocking, "postgresql+psycopg://x", None):
            with pytest.raises(InvalidParameter, match="AsyncEngine"):
                AsyncSQLStore(engine)  # type: ignore[arg-type]
            with pytest.raises(InvalidParameter, match="AsyncEngine"):
                asyncio.run(create_schema(engine))  # type: ignore[arg-type]
    finally:
        blocking.dispose()

    other = _sqlite_async(tmp_path / "x.db")
    other.sync_engine.dialect.name = "oracle"  # what the store sees of an Oracle engine
    with pytest.raises(
        InvalidParameter, match="AsyncSQLStore supports PostgreSQL, MariaDB/MySQL and SQLite"
    ):
        AsyncSQLStore(other)

    async def test(store: AsyncSQLStore) -> None:
        for call in (
            lambda: store.claim("x", -1, drift=0),
            lambda: store.list_for_user(""),
            lambda: store.update(_credential(), expected_version=-1),
            lambda: store.consume_recovery_code("alice", "rc", -1.0),
            lambda: store.replace_recovery_codes("alice", [object()]),  # type: ignore[list-item]
            lambda: store.update_challenge(_challenge(), expected=_challenge()),
            lambda: store.replace_challenge(_challenge(), expected_generation=2**63),
            lambda: store.purge_challenges(float("nan")),
            lambda: store.add(object()),  # type: ignore[arg-type]
        ):
            with pytest.raises(InvalidParameter):
                await call()
        if database.kind == "postgresql":
            with pytest.raises(InvalidParameter, match="NUL"):
                await store.get("a\x00b")
        assert store.engine.sync_engine.pool.checkedout() == 0

    _run(database, test)


def test_arguments_are_checked_before_any_io() -> None:
    """Against a server that does not exist: bad input is InvalidParameter (checked before
    a connection is asked for), good input is StoreUnavailable."""

    async def main() -> None:
        engine = create_async_engine(
            "postgresql+psycopg://postgres@127.0.0.1:1/test", connect_args={"connect_timeout": 2}
        )
        try:
            store = AsyncSQLStore(engine)
            with pytest.raises(InvalidParameter):
                await store.get_failures("")
            for call in (
                lambda: store.claim("c", 1, drift=0),
                lambda: store.admit_attempt("alice", T0, OPEN),
                lambda: store.begin_attempt("alice", T0, OPEN),
                lambda: store.claim_and_reset("c", 1, drift=0, user_id="alice"),
                lambda: store.get("c"),
            ):
                with pytest.raises(StoreUnavailable) as caught:
                    await call()
                assert caught.value.code.value == "store_unavailable"
            with pytest.raises(StoreUnavailable):
                await create_schema(engine)
        finally:
            await engine.dispose()

    asyncio.run(main())


def test_create_schema_is_idempotent_and_honours_the_hosts_schema(
    postgres_url: str, tmp_path: Path
) -> None:
    schema = unique("mfa_async_ddl_")
    admin = sa.create_engine(postgres_url)
    try:
        with admin.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))

        async def main() -> None:
            engine = _pg_async(postgres_url, schema)
            try:
                await create_schema(engine)
                store = AsyncSQLStore(engine)
                credential = _credential()
                await store.add(credential)
                await create_schema(engine)  # a second time: nothing to do, nothing lost
                assert await store.get(credential.id) == credential
            finally:
                await engine.dispose()

        asyncio.run(main())
        with admin.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = :schema ORDER BY table_name"
                ),
                {"schema": schema},
            ).all()
        assert [r[0] for r in rows] == TABLE_NAMES
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def test_blocking_and_async_stores_share_one_database(database: Database) -> None:
    blocking_engine = database.blocking_engine()
    blocking = SQLStore(blocking_engine)

    async def test(store: AsyncSQLStore) -> None:
        credential = _credential()
        await store.add(credential)
        assert blocking.claim(credential.id, 7, drift=1)
        assert not await store.claim(credential.id, 7, drift=0)
        stored = await store.get(credential.id)
        assert stored is not None and (stored.last_accepted, stored.drift) == (7, 1)
        blocking.admit_attempt("alice", T0, OPEN)
        assert await store.admit_attempt("alice", T0 + 1, OPEN) == Admission(
            admitted=True, state=FailureState(2, T0 + 1)
        )
        assert await store.claim_and_reset(credential.id, 8, drift=2, user_id="alice")
        assert blocking.get_failures("alice") == FailureState()
        records = _records(3)
        await store.replace_recovery_codes("alice", records)
        assert blocking.consume_recovery_code("alice", records[0].id, T0) == 2
        assert await store.consume_recovery_code("alice", records[0].id, T0) is None
        assert await store.consume_recovery_code("alice", records[1].id, T0) == 1
        assert [r.used for r in blocking.recovery_codes("alice")] == [True, True, False]
        old, recent = _challenge(), _challenge(issued_at=T0 + 3600, expires_at=T0 + 3780)
        blocking.put_challenge(old)
        await store.put_challenge(recent)
        assert await store.purge_challenges(T0 + 181) == 1
        assert blocking.get_challenge(old.challenge_id) is None
        assert await store.get_challenge(recent.challenge_id) == recent

    try:
        _run(database, test)
    finally:
        blocking_engine.dispose()


async def _outcome(call: Callable[[], Awaitable[_T]]) -> tuple[str, str]:
    try:
        await call()
    except MFAError as exc:
        return type(exc).__name__, str(exc)
    return "ok", ""


def test_errors_are_those_of_the_blocking_store(database: Database, tmp_path: Path) -> None:
    """The same faults give the same error classes and messages from both stores: a
    duplicate id, missing tables, rows that do not decode."""
    blocking_engine = database.blocking_engine()
    blocking = SQLStore(blocking_engine)
    empty = tmp_path / "no-tables.db"
    empty_blocking = sa.create_engine(f"sqlite:///{empty}")
    credential, challenge = _credential(), _challenge()
    blocking.add(credential)
    blocking.put_challenge(challenge)
    blocking.replace_recovery_codes("alice", _records(1))
    with blocking_engine.begin() as connection:
        connection.execute(
            credentials_table.update()
            .where(credentials_table.c.id == credential.id)
            .values(algorithm="MD5")
        )
        connection.execute(recovery_codes_table.update().values(tag="not hex"))

    def calls(store: Any) -> list[Callable[[], Any]]:
        return [
            lambda: store.add(credential),
            lambda: store.put_challenge(challenge),
            lambda: store.get(credential.id),
            lambda: store.list_for_user("alice"),
            lambda: store.recovery_codes("alice"),
        ]

    expected = []
    for call in calls(blocking):
        try:
            call()
        except MFAError as exc:
            expected.append((type(exc).__name__, str(exc)))
    missing = []
    for call in calls(SQLStore(empty_blocking)):
        try:
            call()
        except MFAError as exc:
            missing.append((type(exc).__name__, str(exc)))
    assert len(expected) == len(missing) == 5
    assert expected[0] == ("StoreError", "a credential with this id already exists")
    assert all(name == "StoreError" for name, _ in missing)

    async def test(store: AsyncSQLStore) -> None:
        got = [await _outcome(call) for call in calls(store)]
        assert got == expected
        engine = _sqlite_async(empty)
        try:
            no_tables = AsyncSQLStore(engine)
            got = [await _outcome(call) for call in calls(no_tables)]
            assert got == missing
            claimed = await _outcome(lambda: no_tables.claim("c", 1, drift=0))
            assert claimed == (
                "StoreError",
                "the SQL store failed: claim failed (OperationalError)",
            )
        finally:
            await engine.dispose()

    try:
        _run(database, test)
    finally:
        blocking_engine.dispose()
        empty_blocking.dispose()


def test_store_errors_do_not_carry_parameters(database: Database) -> None:
    secret = bytes.fromhex("5ec7e75ec7e75ec7e75ec7e75ec7e75e")
    credential = _credential(sealed_key=secret, label="label-0f-a-user")

    async def test(store: AsyncSQLStore) -> None:
        await store.add(credential)
        with pytest.raises(StoreError) as caught:
            await store.add(credential)
        text = "".join(traceback.format_exception(caught.value))
        assert "[parameters:" not in text
        assert "5ec7e75e" not in text and repr(secret)[2:12] not in text
        assert "label-0f-a-user" not in text

    _run(database, test)


def test_a_locked_sqlite_file_is_store_unavailable(tmp_path: Path) -> None:
    database = _sqlite_database(tmp_path / "locked.db")
    holder = sa.create_engine(f"sqlite:///{database.target}").raw_connection()

    async def test(store: AsyncSQLStore) -> None:
        credential = _credential()
        await store.add(credential)
        holder.driver_connection.execute("BEGIN EXCLUSIVE")  # type: ignore[union-attr]
        with pytest.raises(StoreUnavailable):
            await store.claim(credential.id, 1, drift=0)
        holder.driver_connection.execute("ROLLBACK")  # type: ignore[union-attr]
        assert await store.claim(credential.id, 1, drift=0)

    try:
        _run(database, test, connect_args={"timeout": 0.1})
    finally:
        holder.close()


def test_import_without_greenlet_or_sqlalchemy_raises_missing_dependency() -> None:
    program = (
        "import sys\n"
        "sys.modules[sys.argv[1]] = None\n"
        "from mfa_core.errors import MissingDependency\n"
        "import mfa_core.aio\n"
        "for load in (lambda: __import__('mfa_core.aio.sql'),\n"
        "             lambda: mfa_core.aio.AsyncSQLStore):\n"
        "    try:\n"
        "        load()\n"
        "    except MissingDependency as exc:\n"
        "        print(exc.code.value, exc)\n"
    )
    message = (
        "missing_dependency the async SQL store needs SQLAlchemy 2 with greenlet: "
        "pip install 'mfa_core[sql]'"
    )
    for module in ("greenlet", "sqlalchemy"):
        result = subprocess.run(
            [sys.executable, "-c", program, module],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert result.stdout.splitlines() == [message, message], (module, result.stderr)


# -- statements and round trips --------------------------------------------------------------


def _fixtures() -> tuple[str, Credential, list[RecoveryRecord], OOBRecord]:
    """A new user with one credential, three recovery codes and one challenge."""
    user = unique("user-")
    return user, _credential(user), _records(3), _challenge(user_id=user)


def _operations(
    user: str, credential: Credential, records: list[RecoveryRecord], challenge: OOBRecord
) -> list[tuple[str, tuple[str, tuple[Any, ...], dict[str, Any]]]]:
    """Every operation as (name, (method, args, kwargs)), for either store, repeatable."""
    return [
        ("get", ("get", (credential.id,), {})),
        ("list_for_user", ("list_for_user", (user,), {})),
        ("claim", ("claim", (credential.id, 7), {"drift": 0})),
        ("update", ("update", (credential,), {"expected_version": 0})),
        ("delete", ("delete", ("no-such-credential",), {})),
        ("admit_attempt", ("admit_attempt", (user, T0, OPEN), {})),
        ("begin_attempt", ("begin_attempt", (user, T0, OPEN), {})),
        (
            "claim_and_reset",
            ("claim_and_reset", (credential.id, 8), {"drift": 0, "user_id": user}),
        ),
        ("get_failures", ("get_failures", (user,), {})),
        ("reset", ("reset", (user,), {})),
        ("replace_recovery_codes", ("replace_recovery_codes", (user + "-b", records), {})),
        ("recovery_codes", ("recovery_codes", (user,), {})),
        ("consume_recovery_code", ("consume_recovery_code", (user, records[0].id, T0), {})),
        ("update_recovery_hash", ("update_recovery_hash", (user, records[1].id, PHC), {})),
        ("get_challenge", ("get_challenge", (challenge.challenge_id,), {})),
        (
            "replace_challenge",
            (
                "replace_challenge",
                (attrs.evolve(challenge, generation=1),),
                {"expected_generation": 0},
            ),
        ),
        ("update_challenge", ("update_challenge", (challenge,), {"expected": challenge})),
        ("delete_challenge", ("delete_challenge", ("no-such-challenge",), {})),
        ("count_send", ("count_send", ("u:" + user, T0, T0 + 3600), {})),
        ("purge_challenges", ("purge_challenges", (0.0,), {})),
    ]


class Statements:
    """Statements an engine's connections execute (``before_cursor_execute``)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.seen: list[str] = []
        self.engine = engine
        sa.event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, connection: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.seen.append(statement.split(None, 1)[0].upper())

    def take(self) -> list[str]:
        taken, self.seen = self.seen, []
        return taken

    def close(self) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._count)


def test_each_call_executes_the_statements_of_the_blocking_store(database: Database) -> None:
    """Per operation, from the same state, the async store executes exactly the statements
    SQLStore executes: one for every operation on PostgreSQL (``admit_attempt``,
    ``begin_attempt`` and ``claim_and_reset`` included) but ``replace_recovery_codes`` and
    ``purge_challenges`` (their transactions), and on SQLite also the two of
    ``consume_recovery_code``, ``begin_attempt`` (admitted) and ``claim_and_reset`` (won)."""
    blocking_engine = database.blocking_engine()
    blocking = SQLStore(blocking_engine)
    user, credential, records, challenge = _fixtures()
    blocking.add(credential)
    blocking.replace_recovery_codes(user, records)
    blocking.put_challenge(challenge)
    counter = Statements(blocking_engine)
    expected: dict[str, list[str]] = {}
    try:
        for name, (method, args, kwargs) in _operations(user, credential, records, challenge):
            getattr(blocking, method)(*args, **kwargs)
            expected[name] = counter.take()
    finally:
        counter.close()
        blocking_engine.dispose()
    multi = {"replace_recovery_codes", "purge_challenges"} | (
        {"consume_recovery_code", "begin_attempt", "claim_and_reset"}
        if database.kind == "sqlite"
        else set()
    )
    assert all(len(seen) == 1 for name, seen in expected.items() if name not in multi), expected
    assert all(len(expected[name]) > 1 for name in multi), expected

    async def test(store: AsyncSQLStore) -> None:
        user, credential, records, challenge = _fixtures()
        await store.add(credential)
        await store.replace_recovery_codes(user, records)
        await store.put_challenge(challenge)
        counter = Statements(store.engine.sync_engine)
        try:
            for name, (method, args, kwargs) in _operations(user, credential, records, challenge):
                await getattr(store, method)(*args, **kwargs)
                assert counter.take() == expected[name], name
        finally:
            counter.close()

    _run(database, test, pool_size=1)


class AsyncRoundTrips(RoundTrips):
    """``test_sql_store``'s libpq-trace counter on an async engine's psycopg connections
    (SQLAlchemy's adapter wraps them: the trace is set on the driver's connection)."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine.sync_engine)

    def _trace(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        super()._trace(dbapi_connection.driver_connection, record, proxy)


def test_every_single_statement_call_is_one_round_trip_on_postgresql(
    postgres_url: str, postgres_schema: str
) -> None:
    """No ``BEGIN``, ``COMMIT`` or isolation-level round trips: autocommit, as SQLStore."""
    database = Database("postgresql", postgres_url, postgres_schema)
    user, credential, records, challenge = _fixtures()
    operations = [
        operation
        for name, operation in _operations(user, credential, records, challenge)
        # transactions: four statements; two deletes (housekeeping)
        if name not in {"replace_recovery_codes", "purge_challenges"}
    ]

    async def main() -> None:
        engine = database.engine(pool_size=1)
        counter = AsyncRoundTrips(engine)
        try:
            store = AsyncSQLStore(engine)
            await store.add(credential)
            await store.replace_recovery_codes(user, records)
            await store.put_challenge(challenge)
            # psycopg prepares a statement on its 5th execution (one extra round trip,
            # once per connection), so warm every statement up first.
            for _ in range(6):
                for method, args, kwargs in operations:
                    await getattr(store, method)(*args, **kwargs)
            counter.take()
            for method, args, kwargs in operations:
                await getattr(store, method)(*args, **kwargs)
                assert counter.take() == 1, method
        finally:
            await engine.dispose()
            counter.close()

    asyncio.run(main())


# -- 1,000 tasks, one code ------------------------------------------------------------------


class _GatedClaims(AsyncSQLStore):
    """Holds every ``claim`` until ``tasks`` claims are waiting, so that all the tasks
    pass the throttle gate and scan their window first, then race to claim at once."""

    __slots__ = ("_arrived", "_gate", "_tasks", "armed")

    def __init__(self, engine: AsyncEngine, tasks: int) -> None:
        super().__init__(engine)
        self._tasks = tasks
        self._arrived = 0
        self._gate = asyncio.Event()
        self.armed = False

    async def claim(self, credential_id: str, value: int, *, drift: int) -> bool:
        if not self.armed:
            return await super().claim(credential_id, value, drift=drift)
        self._arrived += 1
        if self._arrived == self._tasks:
            self._gate.set()
        await self._gate.wait()
        return await super().claim(credential_id, value, drift=drift)


@pytest.mark.parametrize("gated", [False, True], ids=["free", "all-claim-at-once"])
def test_a_thousand_tasks_one_code_on_postgresql(
    postgres_url: str, postgres_schema: str, gated: bool
) -> None:
    """1,000 tasks submit one valid TOTP code through AsyncMFAService over a pool of 10
    connections: exactly one is accepted. ``free``: with the default 1 s delay, the first
    admitted attempt makes every other one at that instant wait (throttled); the success
    resets the count, so at most one more is admitted (a replay). ``all-claim-at-once``:
    no delay, so exactly ``max_failures`` (100) attempts are admitted before the lock, and
    those 100 claim the step together: one wins, 99 are replays; attempts admitted after
    the winner's reset are replays too, each counted once."""
    database = Database("postgresql", postgres_url, postgres_schema)
    delay = 0.0 if gated else 1.0
    throttle = ThrottleConfig(max_failures=100, base_delay=delay, max_delay=4.0, lockout=60.0)
    clock = FakeClock(T0)
    tasks = 1000

    async def main() -> tuple[list[VerifyReason], float, int]:
        engine = database.engine(pool_size=10, max_overflow=0)
        store = AsyncSQLStore(engine)
        claims = _GatedClaims(engine, throttle.max_failures)
        service = AsyncMFAService(
            claims,
            store,
            AESGCMSealer.generate(),
            clock=clock,
            config=ServiceConfig(throttle=throttle),
        )
        try:
            enrolment = await service.begin_enrolment("alice")
            key = b32decode_key(enrolment.secret)
            confirmed = await service.confirm_enrolment(
                "alice", enrolment.credential_id, totp(key, T0)
            )
            assert confirmed.accepted
            claims.armed = gated
            clock.set(T0 + 30)
            code = totp(key, clock.now())
            started = time.perf_counter()
            results = await asyncio.gather(*(service.verify("alice", code) for _ in range(tasks)))
            elapsed = time.perf_counter() - started
            reasons = [result.reason for result in results]
            failures = await store.get_failures("alice")
            assert engine.sync_engine.pool.checkedout() == 0
            return reasons, elapsed, failures.count
        finally:
            await engine.dispose()

    reasons, elapsed, left = asyncio.run(main())
    counts = {reason.name: reasons.count(reason) for reason in set(reasons)}
    print(f"{tasks} verify tasks on AsyncSQLStore (pool of 10, {gated=}): {elapsed:.2f} s {counts}")
    assert reasons.count(VerifyReason.OK) == 1
    replays = reasons.count(VerifyReason.REPLAYED)
    if gated:
        assert replays >= throttle.max_failures - 1
        assert left == replays - (throttle.max_failures - 1)  # admitted after the reset
        assert set(reasons) - {VerifyReason.OK} <= {VerifyReason.REPLAYED, VerifyReason.LOCKED}
    else:
        assert replays <= 1 and left == replays
        assert reasons.count(VerifyReason.THROTTLED) == tasks - 1 - replays


# -- admissions -----------------------------------------------------------------------------


@pytest.mark.parametrize("fused", [False, True], ids=["admit_attempt", "begin_attempt"])
def test_500_tasks_are_admitted_exactly_max_failures_times(database: Database, fused: bool) -> None:
    """500 tasks (100 on SQLite) attempt at once for one user: exactly ``max_failures``
    are admitted, each with its own count, every other one refused with the locked state."""
    limits = ThrottleConfig(max_failures=10, base_delay=0, max_delay=0, lockout=900)
    tasks = 500 if database.kind == "postgresql" else 100

    async def test(store: AsyncSQLStore) -> None:
        credential = _credential("alice")
        await store.add(credential)

        async def attempt() -> Admission:
            if not fused:
                return await store.admit_attempt("alice", T0, limits)
            admission, credentials = await store.begin_attempt("alice", T0, limits)
            assert list(credentials) == ([credential] if admission.admitted else [])
            return admission

        admissions = await asyncio.gather(*(attempt() for _ in range(tasks)))
        admitted = sorted(a.state.count for a in admissions if a.admitted)
        assert admitted == list(range(1, 11))
        assert all(a.state == FailureState(10, T0) for a in admissions if not a.admitted)
        assert await store.get_failures("alice") == FailureState(10, T0)
        assert store.engine.sync_engine.pool.checkedout() == 0

    _run(database, test, pool_size=10, max_overflow=0, pool_timeout=60)


def test_claim_and_reset_from_100_tasks_wins_once(database: Database) -> None:
    async def test(store: AsyncSQLStore) -> None:
        credential = _credential("bob")
        await store.add(credential)
        for value in range(1, 4):
            await store.admit_attempt("bob", T0, OPEN)
            won = await asyncio.gather(
                *(
                    store.claim_and_reset(credential.id, value, drift=0, user_id="bob")
                    for _ in range(100)
                )
            )
            assert won.count(True) == 1, value
            assert await store.get_failures("bob") == FailureState()
        got = await store.get(credential.id)
        assert got is not None and got.last_accepted == 3

    _run(database, test, pool_size=5, max_overflow=0, pool_timeout=60)


_ASYNC_STEP = st.tuples(
    st.sampled_from(["admit", "begin", "reset"]),
    st.sampled_from([0.0, 0.5, 1.0, 2.0, -1.0]) | st.floats(-10, 4000),
)


@pytest.fixture(scope="module", params=["postgresql", "sqlite"])
def shared_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    """One PostgreSQL schema or SQLite file for all the examples of a property test of
    this module (each example uses its own user)."""
    if request.param == "sqlite":
        yield _sqlite_database(tmp_path_factory.mktemp("prop") / "prop.db")
        return
    url = request.getfixturevalue("postgres_url")
    schema = unique("mfa_test_")
    create_postgres_schema(url, schema)
    try:
        yield Database("postgresql", url, schema)
    finally:
        drop_postgres_schema(url, schema)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    limits=st.builds(
        ThrottleConfig,
        max_failures=st.integers(1, 6),
        base_delay=st.sampled_from([0.0, 0.25, 1.0, 1.5]),
        max_delay=st.just(2.0),
        lockout=st.sampled_from([None, 2.0, 30.0, 900.0]),
    ),
    steps=st.lists(_ASYNC_STEP, min_size=1, max_size=20),
)
def test_async_admissions_agree_with_throttle_admit(
    shared_database: Database,
    limits: ThrottleConfig,
    steps: list[tuple[str, float]],
) -> None:
    """Through the async store (SQLStore's methods over the greenlet bridge), every
    admission is the one mfa_core.throttle.admit gives on the stored state."""
    user = unique("p-")

    async def test(store: AsyncSQLStore) -> None:
        credential = _credential(user)
        await store.add(credential)
        state, now = FailureState(), T0
        for operation, delta in steps:
            if operation == "reset":
                await store.reset(user)
                state = FailureState()
                continue
            now = max(0.0, now + delta)
            expected = admit(state, now, limits)
            if operation == "admit":
                assert await store.admit_attempt(user, now, limits) == expected
            else:
                admission, credentials = await store.begin_attempt(user, now, limits)
                assert admission == expected
                assert list(credentials) == ([credential] if expected.admitted else [])
            state = expected.state
        assert await store.get_failures(user) == state

    _run(shared_database, test, pool_size=1)


# -- faults on PostgreSQL, for real -----------------------------------------------------------


def _locking(table: str, column: str, database: Database) -> str:
    """A statement that locks one row of a table of the database's schema."""
    return f'SELECT 1 FROM "{database.target}".{table} WHERE {column} = :key FOR UPDATE'  # noqa: S608


class Faults:
    """For one event loop: the store's engine (one pooled connection, with a unique
    ``application_name``) and an admin engine without a pool, and helpers that watch and
    terminate the store's backends - only those."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.application = unique("mfa-async-")

    def run(self, test: Callable[[AsyncSQLStore], Awaitable[None]]) -> None:
        async def main() -> None:
            self.engine = self.database.engine(
                pool_size=1, connect_args={"application_name": self.application}
            )
            self.admin = self.database.engine(poolclass=sa.pool.NullPool)
            try:
                await test(AsyncSQLStore(self.engine))
            finally:
                await self.engine.dispose()
                await self.admin.dispose()

        asyncio.run(main())

    async def _query(self, sql: str) -> list[Any]:
        async with self.admin.connect() as connection:
            result = await connection.execute(sa.text(sql), {"name": self.application})
            return list(result.all())

    async def terminate(self) -> int:
        """Terminate the store's backends; return how many were."""
        rows = await self._query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :name"
        )
        return sum(1 for row in rows if row[0])

    async def backends(self) -> list[tuple[str, str | None]]:
        """(state, wait_event_type) of each of the store's backends."""
        rows = await self._query(
            "SELECT state, wait_event_type FROM pg_stat_activity WHERE application_name = :name"
        )
        return [(row[0], row[1]) for row in rows]

    async def until_gone(self) -> None:
        """Wait until the store has no backend left (its connection was closed)."""
        deadline = time.monotonic() + 10
        while backends := await self.backends():
            assert time.monotonic() < deadline, backends
            await asyncio.sleep(0.02)

    async def while_waiting(
        self,
        table: str,
        column: str,
        key: str,
        call: Callable[[], Awaitable[Any]],
        interrupt: Callable[[asyncio.Task[Any]], Awaitable[Any]],
    ) -> object:
        """Lock one row from another connection, start ``call()``, and once its statement
        waits on that lock run ``interrupt(task)``; then release the lock and return what
        the call returned or raised."""
        async with self.admin.connect() as holder:  # a transaction: the lock is held
            await holder.execute(sa.text(_locking(table, column, self.database)), {"key": key})
            task = asyncio.create_task(call())
            deadline = time.monotonic() + 10
            while ("active", "Lock") not in await self.backends():
                assert time.monotonic() < deadline, "the store's statement never waited"
                await asyncio.sleep(0.02)
            await interrupt(task)
            [outcome] = await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 10)
            await holder.rollback()
        return outcome


@pytest.fixture
def faults(postgres_url: str, postgres_schema: str) -> Faults:
    return Faults(Database("postgresql", postgres_url, postgres_schema))


def test_backend_terminated_between_calls(faults: Faults) -> None:
    async def test(store: AsyncSQLStore) -> None:
        credential = _credential()
        await store.add(credential)
        assert await store.claim(credential.id, 10, drift=0)
        await store.admit_attempt("alice", T0, OPEN)
        for call in (
            lambda: store.claim(credential.id, 11, drift=0),
            lambda: store.admit_attempt("alice", T0 + 1, OPEN),
            lambda: store.begin_attempt("alice", T0 + 1, OPEN),
            lambda: store.claim_and_reset(credential.id, 11, drift=0, user_id="alice"),
            lambda: store.get(credential.id),
            lambda: store.replace_recovery_codes("alice", _records(2)),
        ):
            await store.get_failures("warm-up")  # the pool holds a live connection again
            assert await faults.terminate() == 1
            with pytest.raises(StoreUnavailable):  # the pooled connection is dead
                await call()
        got = await store.get(credential.id)
        assert got is not None and got.last_accepted == 10  # nothing was accepted
        assert await store.get_failures("alice") == FailureState(1, T0)  # nothing counted
        assert await store.recovery_codes("alice") == []
        assert await store.claim(credential.id, 11, drift=0)
        assert (await store.admit_attempt("alice", T0 + 2, OPEN)).state.count == 2

    faults.run(test)


def test_backend_terminated_while_a_statement_waits_on_a_row_lock(faults: Faults) -> None:
    async def terminate(task: asyncio.Task[Any]) -> None:
        assert await faults.terminate() == 1

    async def test(store: AsyncSQLStore) -> None:
        credential = _credential()
        await store.add(credential)
        assert await store.claim(credential.id, 10, drift=0)
        await store.admit_attempt("alice", T0, OPEN)

        outcome = await faults.while_waiting(
            "mfa_credentials",
            "id",
            credential.id,
            lambda: store.claim(credential.id, 11, drift=0),
            terminate,
        )
        assert isinstance(outcome, StoreUnavailable), outcome
        got = await store.get(credential.id)  # the next call works
        assert got is not None and got.last_accepted == 10  # the claim was not applied

        outcome = await faults.while_waiting(
            "mfa_failures",
            "user_id",
            "alice",
            lambda: store.admit_attempt("alice", T0 + 1, OPEN),
            terminate,
        )
        assert isinstance(outcome, StoreUnavailable), outcome
        assert await store.get_failures("alice") == FailureState(1, T0)  # not counted

        assert await store.claim(credential.id, 11, drift=0)
        assert (await store.admit_attempt("alice", T0 + 2, OPEN)).state.count == 2

    faults.run(test)


# -- cancellation --------------------------------------------------------------------------------


def test_a_call_cancelled_while_waiting_on_a_lock_finishes_in_the_background(
    faults: Faults,
) -> None:
    """A claim and a recovery-set replacement (a transaction that already holds the
    user's advisory lock when it waits) are cancelled while they wait on row locks: the
    task gets CancelledError at once, with the lock still held, while the shielded call
    keeps its connection and goes on waiting; once the lock is released it completes,
    its connection goes back to the pool idle (no transaction of the store left open),
    and the next calls see its whole effect, never half of it."""

    async def cancel(task: asyncio.Task[Any]) -> None:
        task.cancel()
        async with asyncio.timeout(2):  # at once, although the row is still locked
            await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled()
        pool = faults.engine.sync_engine.pool
        assert pool.checkedout() == 1  # the shielded call still waits on the lock
        assert ("active", "Lock") in await faults.backends()

    async def settled() -> None:
        pool = faults.engine.sync_engine.pool
        async with asyncio.timeout(5):
            while pool.checkedout():
                await asyncio.sleep(0.01)

    async def test(store: AsyncSQLStore) -> None:
        credential = _credential()
        await store.add(credential)
        old = _records(3)
        await store.replace_recovery_codes("alice", old)

        outcome = await faults.while_waiting(
            "mfa_credentials",
            "id",
            credential.id,
            lambda: store.claim(credential.id, 11, drift=0),
            cancel,
        )
        assert isinstance(outcome, asyncio.CancelledError), outcome
        await settled()
        got = await store.get(credential.id)
        assert got is not None and got.last_accepted == 11  # applied after the lock went
        assert not await store.claim(credential.id, 11, drift=0)  # and never twice

        outcome = await faults.while_waiting(
            "mfa_recovery_codes",
            "id",
            old[0].id,
            lambda: store.replace_recovery_codes("alice", []),
            cancel,
        )
        assert isinstance(outcome, asyncio.CancelledError), outcome
        await settled()
        assert await store.recovery_codes("alice") == []  # the whole replacement
        states = await faults.backends()
        assert states and all(state == "idle" for state, _ in states), states
        async with asyncio.timeout(5):  # no advisory or row lock left behind
            new = _records(2)
            await store.replace_recovery_codes("alice", new)
            assert await store.recovery_codes("alice") == new

    faults.run(test)


def test_mass_cancellation_leaves_no_connection_to_the_garbage_collector(
    database: Database,
) -> None:
    """Rounds of concurrent calls with a third of them cancelled at varying points: no
    connection is ever left for the garbage collector to drop (SQLAlchemy's
    "non-checked-in connection" warning, psycopg's "deleted while still open"). Before
    calls were shielded, cancellations landing while PostgreSQL connections were opened
    or handed back did that a few times per 200 rounds under load."""
    users = [f"user{index}" for index in range(12)]

    async def test(store: AsyncSQLStore) -> None:
        rng = random.Random(11)
        for round_ in range(120):
            tasks = [
                asyncio.create_task(store.admit_attempt(users[i % 12], T0 + round_, OPEN))
                for i in range(24)
            ]
            for _ in range(rng.randrange(6)):
                await asyncio.sleep(0)
            if round_ % 5 == 4:
                await asyncio.sleep(rng.random() / 100)
            for task in tasks[rng.randrange(3) :: 3]:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await _nothing_checked_out(store)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _run(database, test, pool_size=3, max_overflow=2)
        gc.collect()
    dropped = [
        str(w.message)
        for w in caught
        if "non-checked-in" in str(w.message) or "deleted while still open" in str(w.message)
    ]
    assert dropped == []


async def _nothing_checked_out(store: AsyncSQLStore) -> None:
    """A cancelled call finishes in the background (shielded) a moment after its task
    ended; then no connection stays out of the pool."""
    pool = store.engine.sync_engine.pool
    deadline = time.monotonic() + 5
    while pool.checkedout():
        assert time.monotonic() < deadline, pool.status()
        await asyncio.sleep(0.01)


def test_cancelled_calls_never_leave_a_stale_result_behind(database: Database) -> None:
    """Rounds of concurrent reads and writes, a third of them cancelled at varying points
    (before, during or after their statement): every call that completes returns its own
    result (never another call's), nothing is left checked out of the pool, and each
    counter holds at least the completed increments and at most the started ones."""
    users = [f"user{index}" for index in range(12)]

    async def test(store: AsyncSQLStore) -> None:
        for user in users:
            await store.add(_credential(user, id=f"{user}-c0", label=user))
        rng = random.Random(7)
        counted = dict.fromkeys(users, 0)
        for round_ in range(25):
            tasks: list[tuple[str, str, asyncio.Task[Any]]] = []
            for user in users:
                tasks.append((user, "get", asyncio.create_task(store.get(f"{user}-c0"))))
                tasks.append(
                    (
                        user,
                        "fail",
                        asyncio.create_task(store.admit_attempt(user, T0 + round_, OPEN)),
                    )
                )
            for _ in range(rng.randrange(6)):
                await asyncio.sleep(0)
            if round_ % 5 == 4:
                await asyncio.sleep(rng.random() / 100)
            for _, _, task in tasks[rng.randrange(3) :: 3]:
                task.cancel()
            for user, kind, task in tasks:
                try:
                    result = await task
                except asyncio.CancelledError:
                    continue
                if kind == "get":
                    assert result is not None and result.label == user
                else:
                    assert isinstance(result, Admission) and result.admitted
                    assert result.state.count >= 1
                    counted[user] += 1
            # Every later call reads its own result.
            found = await store.get("user5-c0")
            assert found is not None and found.label == "user5"
        await _nothing_checked_out(store)
        for user in users:
            # A cancelled increment may have committed before the cancellation arrived:
            # never fewer than the completed ones, never more than were started.
            stored = (await store.get_failures(user)).count
            assert counted[user] <= stored <= 25, (user, counted[user], stored)

    _run(database, test, pool_size=3, max_overflow=2)


def test_a_cancelled_sqlite_write_never_blocks_the_next_one(tmp_path: Path) -> None:
    """Writes cancelled at every point of their run (before, during and after their
    statement, between it and the reading of its ``RETURNING`` rows): the next write
    from another connection goes through at once, never waiting on a lock that a
    cancelled call left behind (a 2 s busy timeout would turn that into an error)."""
    database = _sqlite_database(tmp_path / "cancelled.db")

    async def test(store: AsyncSQLStore) -> None:
        await store.admit_attempt("warm-up", T0, OPEN)
        for step in range(60):
            task = asyncio.create_task(store.admit_attempt("a", T0, OPEN))
            await asyncio.sleep(step * 0.0001)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            started = time.monotonic()
            assert (await store.admit_attempt("b", T0, OPEN)).state.count == step + 1
            assert time.monotonic() - started < 1.0, f"step {step}: the write waited"
        assert (await store.get_failures("a")).count <= 60
        await _nothing_checked_out(store)

    _run(database, test, pool_size=2, connect_args={"timeout": 2})


# -- the service scenarios over AsyncSQLStore ----------------------------------------------------


class Schemas:
    """PostgreSQL schemas with the store's tables, made once per module and emptied
    (``TRUNCATE``) when a test takes one: the n-th store of each test uses the n-th."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.names: list[str] = []

    def take(self, index: int) -> str:
        while len(self.names) <= index:
            name = unique("mfa_scenario_")
            create_postgres_schema(self.url, name)
            self.names.append(name)
        name = self.names[index]
        admin = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
        try:
            with admin.begin() as connection:
                tables = ", ".join(f'"{name}".{table}' for table in TABLE_NAMES)
                connection.execute(sa.text(f"TRUNCATE {tables}"))
        finally:
            admin.dispose()
        return name

    def drop(self) -> None:
        for name in self.names:
            drop_postgres_schema(self.url, name)


@pytest.fixture(scope="module")
def schemas(postgres_url: str) -> Iterator[Schemas]:
    made = Schemas(postgres_url)
    yield made
    made.drop()


class Backing:
    """Fresh databases for the scenario tests' services: each :meth:`make` gives a blocking
    SQLStore (what the scenarios inspect) and an AsyncSQLStore (what the service uses) on
    one new database; :meth:`facade` puts the service behind a blocking facade, whose loop
    is the one the async store's engine is used and disposed on."""

    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        self.request = request
        self.tmp_path = tmp_path
        self.facades = Facades()
        self.blocking_engines: list[sa.Engine] = []
        self.loops: list[tuple[Any, AsyncEngine]] = []

    def make(self) -> tuple[SQLStore, AsyncSQLStore]:
        index = len(self.blocking_engines)
        if self.request.param == "postgresql":
            schemas: Schemas = self.request.getfixturevalue("schemas")
            url = self.request.getfixturevalue("postgres_url")
            database = Database("postgresql", url, schemas.take(index))
        else:
            database = _sqlite_database(self.tmp_path / f"scenario-{index}.db")
        blocking_engine = database.blocking_engine()
        self.blocking_engines.append(blocking_engine)
        return SQLStore(blocking_engine), AsyncSQLStore(database.engine(pool_size=2))

    def facade(self, service: AsyncMFAService, store: AsyncSQLStore) -> Any:
        facade = self.facades(service)
        self.loops.append((facade, store.engine))
        return facade

    def close(self) -> None:
        try:
            for facade, engine in self.loops:
                facade.run(engine.dispose())
        finally:
            self.facades.close()
            for engine in self.blocking_engines:
                engine.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
def backing(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backing]:
    made = Backing(request, tmp_path)
    yield made
    made.close()


def _adopt(scenarios: Any, into: type) -> list[str]:
    """Copy the env-based tests of ``scenarios`` into the class ``into`` (as static
    methods, so that the class's ``env``/``make_env`` fixtures serve them)."""
    found: dict[str, Any] = {}
    names = adopt(scenarios, found)
    for name in names:
        setattr(into, name, staticmethod(found[name]))
    return names


class TestServiceScenarios:
    """``test_service.py``'s scenarios: AsyncMFAService over AsyncSQLStore."""

    @pytest.fixture
    def make_env(self, backing: Backing) -> Callable[..., test_service.Env]:
        def make(**config: Any) -> test_service.Env:
            blocking, store = backing.make()
            clock = FakeClock(test_service.T0)
            events = RecordingEventSink()
            sealer = test_service.CountingSealer(AESGCMSealer.generate())
            service = AsyncMFAService(
                store,
                store,
                sealer,
                clock=clock,
                events=events,
                config=ServiceConfig(issuer="Example", **config),
            )
            return test_service.Env(backing.facade(service, store), blocking, clock, events, sealer)

        return make

    @pytest.fixture
    def env(self, make_env: Callable[..., test_service.Env]) -> test_service.Env:
        return make_env()


class TestRecoveryScenarios:
    """``test_service_recovery.py``'s scenarios: AsyncMFAService over AsyncSQLStore (a
    scenario's fault-injecting wrapper wraps the blocking store, adapted in a thread)."""

    @pytest.fixture
    def make_env(self, backing: Backing) -> Callable[..., test_service_recovery.Env]:
        scenarios = test_service_recovery

        def make(
            *,
            recovery: RecoveryConfig | None = None,
            throttle: ThrottleConfig | None = None,
            store: Any = None,
        ) -> scenarios.Env:
            blocking, native = backing.make()
            codes = native if store is None else AsyncStoreAdapter(store(blocking))
            clock = FakeClock(scenarios.T0)
            events = RecordingEventSink()
            service = AsyncMFAService(
                native,
                native,
                AESGCMSealer.generate(),
                clock=clock,
                events=events,
                config=ServiceConfig(
                    throttle=throttle or ThrottleConfig(),
                    recovery=recovery or RecoveryConfig(argon2=scenarios.FAST),
                ),
                recovery_codes=codes,
                secret=scenarios.SECRET,
            )
            return scenarios.Env(backing.facade(service, native), blocking, clock, events)

        return make

    @pytest.fixture
    def env(self, make_env: Callable[..., test_service_recovery.Env]) -> Any:
        return make_env()

    @pytest.fixture
    def slow_hashes(self, monkeypatch: pytest.MonkeyPatch) -> Any:
        return test_service_recovery.SlowHashSpy(monkeypatch)


class TestOOBScenarios:
    """``test_service_oob.py``'s scenarios: AsyncMFAService over AsyncSQLStore (a
    scenario's fault-injecting wrapper wraps the blocking store, adapted in a thread)."""

    @pytest.fixture
    def make_env(self, backing: Backing) -> Callable[..., test_service_oob.Env]:
        scenarios = test_service_oob

        def make(
            *,
            oob: OOBConfig | None = None,
            throttle: ThrottleConfig = scenarios.NO_DELAY,
            allow_email_login_with_totp: bool = False,
            wrap: Callable[[Any], Any] | None = None,
        ) -> scenarios.Env:
            blocking, native = backing.make()
            challenges = native if wrap is None else AsyncStoreAdapter(wrap(blocking))
            sender = FakeCodeSender()
            clock = FakeClock(scenarios.T0)
            events = RecordingEventSink()
            service = AsyncMFAService(
                native,
                native,
                AESGCMSealer.generate(),
                clock=clock,
                events=events,
                config=ServiceConfig(
                    throttle=throttle,
                    oob=oob or OOBConfig(),
                    allow_email_login_with_totp=allow_email_login_with_totp,
                ),
                oob=challenges,
                sender=AsyncStoreAdapter(sender, offload=False),
                secret=scenarios.SECRET,
            )
            return scenarios.Env(backing.facade(service, native), blocking, clock, events, sender)

        return make

    @pytest.fixture
    def env(self, make_env: Callable[..., test_service_oob.Env]) -> Any:
        return make_env()


ADOPTED = {
    "service": _adopt(test_service, TestServiceScenarios),
    "recovery": _adopt(test_service_recovery, TestRecoveryScenarios),
    "oob": _adopt(test_service_oob, TestOOBScenarios),
}


def test_the_scenarios_are_adopted() -> None:
    assert len(ADOPTED["service"]) > 30
    assert len(ADOPTED["recovery"]) > 10 and len(ADOPTED["oob"]) > 10
    assert "test_verify_accepts_once_and_never_an_earlier_step" in ADOPTED["service"]


def test_a_deadlock_backoff_lets_the_event_loop_run(tmp_path: Path) -> None:
    """The blocking store's deadlock backoff, inside the greenlet bridge every async call
    runs in, waits on the event loop: another task keeps ticking during a 0.2 s pause (a
    ``time.sleep`` there would freeze every task of the loop)."""
    from sqlalchemy.util import greenlet_spawn

    database = _sqlite_database(tmp_path / "store.db")

    async def test(store: AsyncSQLStore) -> None:
        ticks: list[float] = []

        async def ticker() -> None:
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.01)

        ticking = asyncio.ensure_future(ticker())
        await asyncio.sleep(0)
        before = len(ticks)
        await greenlet_spawn(store.blocking._pause, 0.2)
        during = len(ticks) - before
        ticking.cancel()
        assert during >= 5, f"the loop ran {during} times during the pause"

    _run(database, test)
