"""Store throughput for fleets: Redis, PostgreSQL and SQLite, with 1 and 8 client processes.

Run from the repository root (the Redis and PostgreSQL servers of the machine)::

    .venv/bin/python benchmarks/bench_stores.py              # about a minute
    .venv/bin/python benchmarks/bench_stores.py --seconds 0.3 --stores redis,sqlite

Stores compared, side by side in one run:

* ``redis``: :class:`~mfa_core.stores.redis.RedisStore` (one Lua script or command per call);
* ``postgresql``: :class:`~mfa_core.stores.sql.SQLStore` on PostgreSQL through psycopg 3
  (one autocommitted statement per call);
* ``sql-sqlite``: the same :class:`~mfa_core.stores.sql.SQLStore` on a SQLite file (WAL);
* ``sqlite``: the embedded default :class:`~mfa_core.stores.SQLiteStore` (WAL,
  ``synchronous=FULL``), for reference.

Workloads, each for ``--seconds`` per process after a common start barrier (every process
has its own connection and its own user and credential, so the figures are throughput, not
contention on one row):

* ``claim``: ``claim(credential, n)`` with a growing ``n`` (a successful replay check);
* ``admit+reset``: ``admit_attempt(user, now, limits)`` then ``reset(user)`` (an attempt
  admitted and counted, then cleared; one cycle counts as one);
* ``store-verify``: the store's side of a successful verify, ``begin_attempt`` then
  ``claim_and_reset`` (no service: no unsealing, no HMAC, no event);
* ``verify``: ``MFAService.verify(user, code)`` with a valid code for a fresh time step
  (admission fused with the credential list, unseal, window, claim fused with the reset of
  the count, event): a whole successful verification - 2 round trips;
* ``wrong+verify``: a verify with a wrong code (refused after the admission counted it: 1
  round trip), then a verify with the valid code (a success after a failure: 2 round trips);
  one cycle counts as one;
* ``recovery``: ``consume_recovery_code(user, id, now)`` on the next unused code of a set of
  ten; every tenth call first replaces the used-up set (``replace_recovery_codes``), so one
  call in ten costs two store calls (the store side of a recovery-code login; the Argon2id
  check happens in the service, not in the store);
* ``oob``: ``put_challenge`` of a new out-of-band challenge, then ``update_challenge``
  marking it used (the store side of sending a code and accepting it; one cycle counts as
  one).

Round trips per call are counted on a single process: for Redis every command sent on the
client's connections (a counting ``redis.Connection``), for PostgreSQL every ``Sync`` /
``Query`` message in libpq's protocol trace; SQLite runs in-process (no round trips).

Prints operations per second per store, workload and process count, the ratio to Redis, and
the round trips; then ``claim`` and ``store-verify`` of Redis, PostgreSQL, MariaDB,
SQLStore on SQLite and SQLiteStore with 1 and 8 processes next to a raw-driver floor doing
the same atomic work in as many processes (``raw-<store>``: the store's own scripts or
statements sent by hand through redis-py, psycopg, PyMySQL or sqlite3, with the servers'
default durability); then, for the SQL stores (PostgreSQL, MariaDB, SQLStore on SQLite), the cost
per call of ``get_failures``, ``claim`` and a verify's store work (``begin_attempt`` then
``claim_and_reset``) against a raw-driver floor running the store's own statements by hand
(raw psycopg with ``synchronous_commit=off`` on both sides, raw PyMySQL, raw sqlite3), and
the store / floor ratio. Keys live under a unique prefix and PostgreSQL tables in a unique schema,
both removed at the end; the servers themselves are left alone.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import math
import multiprocessing
import os
import platform
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import redis
import sqlalchemy as sa

from mfa_core import b32decode_key, totp
from mfa_core.models import Credential, CredentialKind, CredentialState
from mfa_core.oob import OOBChannel, OOBPurpose, OOBRecord
from mfa_core.recovery import TAG_BYTES, Argon2Params, RecoveryRecord, hash_recovery_code
from mfa_core.sealing import AESGCMSealer
from mfa_core.service import MFAService, ServiceConfig
from mfa_core.stores import SQLiteStore
from mfa_core.stores.redis import RedisStore
from mfa_core.stores.sql import SQLStore, create_schema
from mfa_core.testing import FakeClock
from mfa_core.throttle import ThrottleConfig

REDIS_URL = os.environ.get("MFA_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get(
    "MFA_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MARIADB_URL = os.environ.get("MFA_BENCH_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
STORES = ("redis", "postgresql", "sql-sqlite", "sqlite", "mariadb")
WORKLOADS = ("claim", "admit+reset", "store-verify", "verify", "wrong+verify", "recovery", "oob")
LIMITS = ThrottleConfig(max_failures=100, base_delay=0.0, max_delay=0.0, lockout=900.0)
RECOVERY_SET = 10
T0 = 1_700_000_015.0
SEALING_KEY = bytes(range(32))

Spec = tuple[str, str, str]
"""(store, url or path, namespace): what a worker process needs to build its store."""


# -- building stores -----------------------------------------------------------------------


def build(spec: Spec, *, connection_class: type[Any] | None = None) -> Any:
    """Make the store of ``spec`` with connections of this process."""
    kind, where, namespace = spec
    if kind == "redis":
        options: dict[str, Any] = {"socket_timeout": 10}
        if connection_class is not None:
            options["connection_class"] = connection_class
        return RedisStore(redis.Redis.from_url(where, **options), prefix=namespace)
    if kind == "postgresql":
        engine = sa.create_engine(where, pool_size=1)
        return SQLStore(engine.execution_options(schema_translate_map={None: namespace}))
    if kind == "sql-sqlite":
        return SQLStore(sa.create_engine(where, connect_args={"timeout": 30}))
    if kind == "mariadb":
        engine = sa.create_engine(where, pool_size=1)
        return SQLStore(engine.execution_options(schema_translate_map={None: namespace}))
    if kind == "sqlite":
        return SQLiteStore(where, timeout=30)
    if kind == "raw-redis":
        return RawRedisFloor(redis.Redis.from_url(where, socket_timeout=10), namespace)
    if kind == "raw-sqlite":
        return RawSQLiteFloor(where)
    if kind.startswith("raw-"):
        return ThroughputFloor((kind[4:], where, namespace))
    raise ValueError(kind)


@contextlib.contextmanager
def provisioned(kind: str, directory: Path) -> Iterator[Spec]:
    """Create a place for ``kind`` (prefix, schema or file) and remove it afterwards."""
    tag = uuid.uuid4().hex[:10]
    if kind == "redis":
        prefix = f"mfa-bench:{tag}:"
        yield ("redis", REDIS_URL, prefix)
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
        client.close()
    elif kind == "postgresql":
        schema = f"mfa_bench_{tag}"
        admin = sa.create_engine(POSTGRES_URL, poolclass=sa.pool.NullPool)
        with admin.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        engine = sa.create_engine(POSTGRES_URL, poolclass=sa.pool.NullPool)
        create_schema(engine.execution_options(schema_translate_map={None: schema}))
        engine.dispose()
        try:
            yield ("postgresql", POSTGRES_URL, schema)
        finally:
            with admin.begin() as connection:
                connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
    elif kind == "sql-sqlite":
        path = directory / f"sql-{tag}.db"
        engine = sa.create_engine(f"sqlite:///{path}")
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA journal_mode = WAL")
        create_schema(engine)
        engine.dispose()
        yield ("sql-sqlite", f"sqlite:///{path}", "")
    elif kind == "mariadb":
        with _mariadb_database(tag) as database:
            yield ("mariadb", MARIADB_URL, database)
    elif kind == "sqlite":
        path = directory / f"embedded-{tag}.db"
        SQLiteStore(path).close()  # creates the file and its schema
        yield ("sqlite", str(path), "")
    else:
        raise ValueError(kind)


# -- workloads -------------------------------------------------------------------------------


def totp_credential(me: str) -> Credential:
    """An active TOTP credential ``cred-<me>`` of user ``me`` (its key is never read)."""
    return Credential(
        id=f"cred-{me}",
        user_id=me,
        kind=CredentialKind.TOTP,
        sealed_key=b"\x00" * 48,
        created_at=T0,
        status=CredentialState.ACTIVE,
    )


def prepare(store: Any, workload: str, me: str) -> Callable[[], object]:
    """Set up the rows process ``me`` works on; return one call of ``workload``."""
    if isinstance(store, RawRedisFloor | RawSQLiteFloor | ThroughputFloor):
        return store.workload(workload, me)
    if workload == "claim":
        credential = totp_credential(me)
        store.add(credential)
        counter = iter(range(1, 2**62))
        return lambda: store.claim(credential.id, next(counter), drift=0)
    if workload == "admit+reset":

        def admit_and_reset() -> None:
            if not store.admit_attempt(me, T0, LIMITS).admitted:
                raise RuntimeError("an attempt was not admitted")
            store.reset(me)

        return admit_and_reset
    if workload in ("verify", "wrong+verify"):
        clock = FakeClock(T0)
        sealer = AESGCMSealer({"k1": SEALING_KEY}, current_key_id="k1")
        config = ServiceConfig(throttle=LIMITS)
        service = MFAService(store, store, sealer, clock=clock, config=config)
        enrolment = service.begin_enrolment(me)
        key = b32decode_key(enrolment.secret)
        confirmed = service.confirm_enrolment(me, enrolment.credential_id, totp(key, T0))
        if not confirmed.accepted:
            raise RuntimeError("enrolment failed")

        def verify() -> None:
            now = clock.advance(30)
            if not service.verify(me, totp(key, now)).accepted:
                raise RuntimeError("a valid code was refused")

        def wrong_then_verify() -> None:
            now = clock.advance(30)
            code = totp(key, now)
            near = {totp(key, now + 30 * offset) for offset in range(-3, 4)}
            wrong = next(c for c in ("000000", "111111", "222222", "333333") if c not in near)
            if service.verify(me, wrong).accepted:
                raise RuntimeError("a wrong code was accepted")
            if not service.verify(me, code).accepted:
                raise RuntimeError("a valid code was refused")

        return verify if workload == "verify" else wrong_then_verify
    if workload == "store-verify":
        return _store_verify_workload(store, me)
    if workload == "recovery":
        return _recovery_workload(store, me)
    if workload == "oob":
        serial = iter(range(2**62))

        def issue_and_use() -> None:
            issued = OOBRecord(
                challenge_id=f"{me}-ch-{next(serial)}",
                user_id=me,
                purpose=OOBPurpose.LOGIN,
                channel=OOBChannel.EMAIL,
                destination_hint="a***@example.com",
                code_hash=bytes(32),
                digits=6,
                issued_at=T0,
                expires_at=T0 + 180,
            )
            store.put_challenge(issued)
            used = attrs.evolve(issued, attempts=1, used=True)
            if not store.update_challenge(used, expected=issued):
                raise RuntimeError("a fresh challenge could not be marked used")

        return issue_and_use
    raise ValueError(workload)


def _store_verify_workload(store: Any, me: str) -> Callable[[], object]:
    """The store's side of a successful verify: ``begin_attempt`` (admission and the
    credential list), then ``claim_and_reset`` (the claim and the reset of the count)."""
    credential = totp_credential(me)
    store.add(credential)
    counter = iter(range(1, 2**62))

    def store_verify() -> None:
        n = next(counter)
        if not store.begin_attempt(me, T0 + n, LIMITS)[0].admitted:
            raise RuntimeError("an attempt was not admitted")
        if not store.claim_and_reset(credential.id, n, drift=0, user_id=me):
            raise RuntimeError("a claim was lost")

    return store_verify


# One cheap Argon2id PHC string for every record: the store only keeps it (the benchmark
# measures the store, not the hashing).
_PHC = hash_recovery_code("abcd-efgh-jkmn-pqrs", Argon2Params.fast_for_testing())


def _recovery_workload(store: Any, me: str) -> Callable[[], object]:
    serial = iter(range(2**62))
    left: list[RecoveryRecord] = []

    def consume() -> None:
        if not left:
            left.extend(
                RecoveryRecord(id=f"{me}-rc-{next(serial)}", tag=f"{i:0{2 * TAG_BYTES}x}", phc=_PHC)
                for i in range(RECOVERY_SET)
            )
            store.replace_recovery_codes(me, left)
        record = left.pop(0)
        if store.consume_recovery_code(me, record.id, T0) != len(left):
            raise RuntimeError("a recovery code was not consumed exactly once")

    return consume


def worker(spec: Spec, job: tuple[Sequence[str], float, str], barrier: Any, out: Any) -> None:
    """One client process: for each workload, prepare, wait for the others, run for the
    given seconds and report the count."""
    workloads, seconds, me = job
    try:
        store = build(spec)
        for workload in workloads:
            call = prepare(store, workload, f"{me}-{workload}")
            for _ in range(20):
                call()  # warm up: connection, prepared statements, scripts
            barrier.wait(120)
            done = 0
            start = time.perf_counter()
            deadline = start + seconds
            while time.perf_counter() < deadline:
                for _ in range(10):
                    call()
                done += 10
            out.put(("ok", workload, done / (time.perf_counter() - start)))
        close = getattr(store, "close", None)
        if close is not None:
            close()
    except BaseException as exc:
        out.put(("error", repr(exc), 0.0))


def throughput(
    spec: Spec, workloads: Sequence[str], processes: int, seconds: float
) -> dict[str, float]:
    """Operations per second of ``processes`` client processes together, per workload
    (the processes are started once and run the workloads one after the other)."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    out = context.Queue()
    tag = uuid.uuid4().hex[:8]
    crew = [
        context.Process(
            target=worker, args=(spec, (workloads, seconds, f"u{tag}-{i}"), barrier, out)
        )
        for i in range(processes)
    ]
    for process in crew:
        process.start()
    rates = dict.fromkeys(workloads, 0.0)
    try:
        for _ in range(processes * len(workloads)):
            status, detail, rate = out.get(timeout=180)
            if status != "ok":
                raise RuntimeError(f"{spec[0]}: {detail}")
            # every process ran for the same time after the same barrier: rates add up
            rates[detail] += rate
    finally:
        for process in crew:
            process.join(30)
            if process.is_alive():
                process.terminate()
    return rates


# -- round trips -----------------------------------------------------------------------------


class CountingConnection(redis.Connection):
    """Counts the commands (= round trips, nothing is pipelined) sent to Redis."""

    sent = 0

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        CountingConnection.sent += 1
        super().send_command(*args, **kwargs)


class LibpqTrace:
    """Counts PostgreSQL round trips (``Sync``/``Query`` messages) in libpq's trace."""

    def __init__(self, engine: sa.Engine) -> None:
        self.file = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        sa.event.listen(engine, "checkout", self._trace)

    def _trace(self, dbapi_connection: Any, *_: Any) -> None:
        import psycopg

        dbapi_connection.pgconn.trace(self.file.fileno())
        dbapi_connection.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)

    def take(self) -> int:
        self.file.seek(0)
        text = self.file.read().decode("utf-8", "replace")
        self.file.seek(0)
        self.file.truncate()
        return len(re.findall(r"^F\t\d+\t(?:Sync|Query)\b", text, re.M))

    def close(self) -> None:
        self.file.close()


def round_trips(spec: Spec, workload: str, calls: int = 50) -> float | None:
    """Average round trips per call of ``workload`` in this process (None: in-process)."""
    kind = spec[0]
    if kind == "redis":
        store = build(spec, connection_class=CountingConnection)
        call = prepare(store, workload, f"rt-{uuid.uuid4().hex[:8]}")
        for _ in range(10):
            call()
        CountingConnection.sent = 0
        for _ in range(calls):
            call()
        store.close()
        return CountingConnection.sent / calls
    if kind == "postgresql":
        engine = sa.create_engine(spec[1], pool_size=1)
        trace = LibpqTrace(engine)
        store = SQLStore(engine.execution_options(schema_translate_map={None: spec[2]}))
        call = prepare(store, workload, f"rt-{uuid.uuid4().hex[:8]}")
        for _ in range(10):
            call()  # psycopg prepares statements on their 5th run (a one-off round trip)
        trace.take()
        for _ in range(calls):
            call()
        count = trace.take()
        engine.dispose()
        trace.close()
        return count / calls
    if kind == "mariadb":
        return _mariadb_round_trips(spec, workload, calls)
    return None


# -- MariaDB (the sqlx rows) -----------------------------------------------------------------


@contextlib.contextmanager
def _mariadb_database(tag: str) -> Iterator[str]:
    """A database of this run with the store's tables, dropped afterwards."""
    database = f"mfa_bench_{tag}"
    admin = sa.create_engine(MARIADB_URL, poolclass=sa.pool.NullPool)
    with admin.begin() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
    engine = sa.create_engine(MARIADB_URL, poolclass=sa.pool.NullPool)
    create_schema(engine.execution_options(schema_translate_map={None: database}))
    engine.dispose()
    try:
        yield database
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS `{database}`")
        admin.dispose()


def _mariadb_round_trips(spec: Spec, workload: str, calls: int) -> float:
    """Round trips per call on MariaDB: statements sent plus commits (PyMySQL sends each
    as one request and waits for its answer)."""
    engine = sa.create_engine(spec[1], pool_size=1)
    sent = [0]

    def count(*_: Any) -> None:
        sent[0] += 1

    sa.event.listen(engine, "before_cursor_execute", count)
    sa.event.listen(engine, "commit", count)
    store = SQLStore(engine.execution_options(schema_translate_map={None: spec[2]}))
    call = prepare(store, workload, f"rt-{uuid.uuid4().hex[:8]}")
    for _ in range(5):
        call()
    sent[0] = 0
    for _ in range(calls):
        call()
    engine.dispose()
    return sent[0] / calls


# -- per-call cost against a raw-driver floor ------------------------------------------------
#
# One process, one connection, per call (microseconds): the store's call against the same
# atomic statements run by hand on the raw driver (psycopg, PyMySQL, sqlite3): the store's
# own SQL, rendered once for the dialect, with prebuilt parameters, no validation, no
# decoding, no SQLAlchemy, no deadline. PostgreSQL runs with ``synchronous_commit=off`` on
# both sides (the commit's WAL flush would otherwise dwarf what is measured).
#
# * ``get_failures``: the user's failure row (one SELECT);
# * ``claim``: the conditional UPDATE;
# * ``store-verify``: the store's side of a verify: ``begin_attempt`` then
#   ``claim_and_reset`` (PostgreSQL: two statements; MariaDB: the locked read, the write,
#   the credentials and COMMIT, then the claim, the reset and COMMIT; SQLite: the upsert and
#   the credentials in a transaction, then the claim and the reset in another).

FLOOR_STORES = ("postgresql", "mariadb", "sql-sqlite")
FLOOR_OPERATIONS = ("get_failures", "claim", "store-verify")


def _rendered(statement: Any, dialect: Any) -> tuple[str, dict[str, Any]]:
    """``statement`` as its SQL text for ``dialect`` and the constant parameters it binds."""
    compiled = statement.compile(dialect=dialect)
    constants = {name: bind.value for name, bind in compiled.binds.items() if not bind.required}
    return str(compiled), constants


_MYSQL_DEADLOCK = 1213
"""The InnoDB error of a transaction chosen as a deadlock's victim."""


def _deadlock_retried(connection: Any, run: Callable[[], None], tries: int = 20) -> None:
    """``run`` a MariaDB transaction, rolled back and run again when InnoDB picks it as a
    deadlock's victim (the gap locks of concurrent first inserts), as the store does."""
    import pymysql

    for _ in range(tries):
        try:
            run()
            return
        except pymysql.err.OperationalError as error:
            if error.args[0] != _MYSQL_DEADLOCK:
                raise
            connection.rollback()
    raise RuntimeError(f"a transaction deadlocked {tries} times in a row")


class RawFloor:
    """The raw-driver floor for one SQL database: its connection and the store's statements
    rendered once."""

    def __init__(self, spec: Spec, *, synchronous_commit: str = "off") -> None:
        from mfa_core.stores import sql

        kind, where, namespace = spec
        self.kind = kind
        if kind == "postgresql":
            import psycopg
            from sqlalchemy.dialects.postgresql import psycopg as pg_dialect

            url = sa.engine.make_url(where).set(drivername="postgresql")
            self.connection: Any = psycopg.connect(
                url.render_as_string(hide_password=False),
                autocommit=True,
                options=f"-c synchronous_commit={synchronous_commit} -c search_path={namespace}",
            )
            dialect: Any = pg_dialect.dialect()
            self.begin = _rendered(sql._PG_BEGIN, dialect)
            self.claim_reset = _rendered(sql._PG_CLAIM_AND_RESET, dialect)
        elif kind == "mariadb":
            import pymysql
            from sqlalchemy.dialects.mysql import pymysql as my_dialect

            url = sa.engine.make_url(where)
            self.connection = pymysql.connect(
                host=url.host,
                port=url.port or 3306,
                user=url.username,
                password=url.password or "",
                database=namespace,
                autocommit=False,
            )
            dialect = my_dialect.dialect(paramstyle="pyformat")
            self.locked = _rendered(sql._MYSQL_FAILURES_LOCKED, dialect)
            self.insert = _rendered(sql._MYSQL_FAILURES_INSERT, dialect)
            self.update = _rendered(sql._MYSQL_FAILURES_UPDATE, dialect)
            self.credentials = _rendered(sql._CREDENTIALS_OF_USER, dialect)
            self.reset = _rendered(sql._RESET, dialect)
        else:
            import sqlite3

            from sqlalchemy.dialects.sqlite import pysqlite

            self.connection = sqlite3.connect(sa.engine.make_url(where).database, timeout=30)
            dialect = pysqlite.dialect(paramstyle="named")
            self.admit = _rendered(sql._SQLITE_ADMIT, dialect)
            self.credentials = _rendered(sql._CREDENTIALS_OF_USER, dialect)
            self.reset = _rendered(sql._RESET, dialect)
        self.failures = _rendered(sql._FAILURES_OF_USER, dialect)
        self.claim_sql = _rendered(sql._CLAIM, dialect)
        self.cursor = self.connection.cursor()

    def _key(self, value: str) -> Any:
        """An id as the driver gets it from the store (UTF-8 bytes on MariaDB)."""
        return value.encode() if self.kind == "mariadb" else value

    def operation(self, operation: str, me: str, credential_id: str) -> Callable[[], object]:
        """One call of ``operation`` on the rows the store's side set up."""
        cursor, connection = self.cursor, self.connection
        user, cid = self._key(me), self._key(credential_id)
        counter = iter(range(1 << 40, 2**62))
        failures_sql, failures_params = self.failures
        claim_sql, claim_params = self.claim_sql
        autocommit = self.kind == "postgresql"
        if operation == "get_failures":
            params = {**failures_params, "p_user": user}

            def get_failures() -> object:
                cursor.execute(failures_sql, params)
                rows = cursor.fetchall()
                if not autocommit:
                    connection.commit()
                return rows

            return get_failures
        if operation == "claim":

            def claim() -> object:
                cursor.execute(
                    claim_sql,
                    {**claim_params, "p_credential": cid, "p_value": next(counter), "p_drift": 0},
                )
                won = cursor.rowcount == 1
                if not autocommit:
                    connection.commit()
                return won

            return claim
        return self._verify(user, cid, counter)

    def _admission(self, user: Any) -> dict[str, Any]:
        """The parameters of an admission of ``user`` under the benchmark's limits."""
        return {
            "p_user": user,
            "p_max_failures": LIMITS.max_failures,
            "p_base_delay": LIMITS.base_delay,
            "p_max_delay": LIMITS.max_delay,
            "p_lockout": LIMITS.lockout,
        }

    def _pg_verify(self, user: Any, cid: Any, counter: Iterator[int]) -> Callable[[], object]:
        """PostgreSQL's floor of ``store-verify``: the two fused statements."""
        cursor, admission = self.cursor, self._admission(user)
        begin_sql, begin_params = self.begin
        reset_sql, reset_params = self.claim_reset

        def pg_verify() -> None:
            n = next(counter)
            cursor.execute(begin_sql, {**begin_params, **admission, "p_now": T0 + n})
            if not cursor.fetchall()[0][0]:
                raise RuntimeError("an attempt was not admitted")
            claimed = {"p_credential": cid, "p_value": n, "p_drift": 0, "p_user": user}
            cursor.execute(reset_sql, {**reset_params, **claimed})
            if cursor.fetchall()[0][0] != 1:
                raise RuntimeError("a claim was lost")

        return pg_verify

    def _verify(self, user: Any, cid: Any, counter: Iterator[int]) -> Callable[[], object]:
        """The floor of ``store-verify`` for this database."""
        if self.kind == "postgresql":
            return self._pg_verify(user, cid, counter)
        cursor, connection = self.cursor, self.connection
        claim_sql, claim_params = self.claim_sql
        credentials_sql, credentials_params = self.credentials
        drop_sql, drop_params = self.reset

        def admitted() -> None:
            """The end of an admission transaction: the credentials read, COMMIT."""
            cursor.execute(credentials_sql, {**credentials_params, "p_user": user})
            cursor.fetchall()
            connection.commit()

        def claimed(n: int) -> None:
            """The claim and the reset in a transaction of their own."""
            cursor.execute(
                claim_sql, {**claim_params, "p_credential": cid, "p_value": n, "p_drift": 0}
            )
            if cursor.rowcount != 1:
                raise RuntimeError("a claim was lost")
            cursor.execute(drop_sql, {**drop_params, "p_user": user})
            connection.commit()

        if self.kind == "mariadb":
            locked_sql, locked_params = self.locked

            def locked_admission(n: int) -> None:
                cursor.execute(locked_sql, {**locked_params, "p_user": user})
                rows = cursor.fetchall()
                count = int(rows[0][0]) + 1 if rows else 1
                write_sql, write_params = self.update if rows else self.insert
                cursor.execute(
                    write_sql, {**write_params, "p_user": user, "p_count": count, "p_last": T0 + n}
                )
                admitted()

            def mariadb_verify() -> None:
                n = next(counter)
                _deadlock_retried(connection, lambda: locked_admission(n))
                _deadlock_retried(connection, lambda: claimed(n))

            return mariadb_verify
        admit_sql, admit_params = self.admit
        admission = self._admission(user)

        def sqlite_verify() -> None:
            n = next(counter)
            cursor.execute(admit_sql, {**admit_params, **admission, "p_now": T0 + n})
            if not cursor.fetchall():
                raise RuntimeError("an attempt was not admitted")
            admitted()
            claimed(n)

        return sqlite_verify

    def close(self) -> None:
        self.connection.close()


FLOOR_WORKLOADS = ("claim", "store-verify")
"""The workloads of the throughput table that have a raw-driver floor (``raw-<store>``)."""
RAW_FLOORS = {
    kind: f"raw-{kind}" for kind in ("redis", "postgresql", "mariadb", "sql-sqlite", "sqlite")
}


class ThroughputFloor:
    """A SQL database's raw-driver floor in the throughput table: :class:`RawFloor` on
    this process's own connection, with the server's default durability (as the stores
    in that table run); the rows are set up through the store."""

    def __init__(self, spec: Spec) -> None:
        self.store = build(spec)
        self.floor = RawFloor(spec, synchronous_commit="on")

    def workload(self, workload: str, me: str) -> Callable[[], object]:
        if workload not in FLOOR_WORKLOADS:
            raise ValueError(workload)
        credential = totp_credential(me)
        self.store.add(credential)
        return self.floor.operation(workload, me, credential.id)

    def close(self) -> None:
        self.floor.close()
        self.store.engine.dispose()


class RawSQLiteFloor:
    """SQLiteStore's floor: its own statements run by hand through ``sqlite3`` on one
    connection to the store's file, with the store's durability (``synchronous=FULL``; the
    admission's transaction at ``NORMAL``, as the store runs it): no validation, no
    decoding, no row objects. The rows are set up through the store."""

    def __init__(self, path: str) -> None:
        import sqlite3

        self.store = SQLiteStore(path, timeout=30)
        self.connection = sqlite3.connect(path, timeout=30, isolation_level=None)
        self.connection.execute("PRAGMA synchronous = FULL")

    def workload(self, workload: str, me: str) -> Callable[[], object]:
        from mfa_core.stores import sqlite as raw

        credential = totp_credential(me)
        self.store.add(credential)
        cid, run = credential.id, self.connection.execute
        counter = iter(range(1, 2**62))
        if workload == "claim":

            def claim() -> None:
                n = next(counter)
                if run(raw._CLAIM, (n, 0, cid, n)).rowcount != 1:
                    raise RuntimeError("a claim was lost")

            return claim
        if workload != "store-verify":
            raise ValueError(workload)
        listing = f"{raw._SELECT} WHERE user_id = ? ORDER BY created_at, rowid"
        reset = "DELETE FROM mfa_failures WHERE user_id = ?"

        def store_verify() -> None:
            n = next(counter)
            run("PRAGMA synchronous = NORMAL")
            run("BEGIN IMMEDIATE")
            row = run(raw._SELECT_FAILURES, (me,)).fetchone()
            run(raw._STORE_FAILURES, (me, 1 if row is None else row[0] + 1, T0 + n))
            run(listing, (me,)).fetchall()
            run("COMMIT")
            run("PRAGMA synchronous = FULL")
            run("BEGIN IMMEDIATE")
            if run(raw._CLAIM, (n, 0, cid, n)).rowcount != 1:
                raise RuntimeError("a claim was lost")
            run(reset, (me,))
            run("COMMIT")

        return store_verify

    def close(self) -> None:
        self.connection.close()
        self.store.close()


class RawRedisFloor:
    """Redis's floor: the store's own scripts sent by hand through redis-py (``EVALSHA``
    with prebuilt keys and constant arguments; no validation, no decoding, no bound) on a
    single server or, given a ``RedisCluster``, on the cluster's key layout."""

    def __init__(self, client: Any, prefix: str) -> None:
        from mfa_core.stores._redis_protocol import SCRIPTS

        self.client = client
        self.store = RedisStore(client, prefix=prefix)  # only to set up rows and keys
        for name in ("begin_attempt", "claim_and_reset", "claim_and_reset_in_slot", "claim"):
            client.script_load(SCRIPTS[name].source)
        self.scripts = {name: script.sha for name, script in SCRIPTS.items()}
        self.ttl = b"%d" % (30 * 86400 * 1000)

    def _keys(self, me: str, cid: str) -> tuple[bytes, bytes, bytes, bytes, bytes]:
        """(credential, failures, index, credential prefix, claim_and_reset's script)."""
        protocol = self.store._protocol
        cluster = protocol.cluster_keys
        if cluster is None:
            keys = protocol.keys
            return (
                keys.credential(cid),
                keys.failures(me),
                keys.index(me),
                keys.credential_prefix(),
                self.scripts["claim_and_reset"],
            )
        user = me.encode()
        return (
            cluster.credential(user, cid.encode()),
            cluster.failures(user),
            cluster.index(user),
            cluster.credential_prefix(user),
            self.scripts["claim_and_reset_in_slot"],
        )

    def workload(self, workload: str, me: str) -> Callable[[], object]:
        credential = totp_credential(me)
        self.store.add(credential)
        cred, fail, index, prefix, claim_reset = self._keys(me, credential.id)
        run = self.client.execute_command
        begin = self.scripts["begin_attempt"]
        counter = iter(range(1, 2**62))
        if workload == "claim":
            sha = self.scripts["claim"]
            return lambda: run("EVALSHA", sha, 1, cred, next(counter), 0)
        if workload != "store-verify":
            raise ValueError(workload)
        ttl = self.ttl

        def store_verify() -> None:
            n = next(counter)
            run(
                "EVALSHA",
                begin,
                2,
                fail,
                index,
                repr(T0 + n),
                100,
                "0.0",
                "0.0",
                "900.0",
                ttl,
                prefix,
            )
            run("EVALSHA", claim_reset, 2, cred, fail, n, 0)

        return store_verify

    def close(self) -> None:
        self.client.close()


def print_throughput_floors(
    rates: dict[tuple[str, str, int], float], stores: Sequence[str], counts: Sequence[int]
) -> None:
    """The throughput of each store next to its raw-driver floor's, per process count."""
    rows = [
        (kind, workload)
        for kind in stores
        for workload in FLOOR_WORKLOADS
        if (RAW_FLOORS.get(kind, ""), workload, counts[0]) in rates
        and (kind, workload, counts[0]) in rates
    ]
    if not rows:
        return
    print("\nThroughput against a raw-driver floor doing the same atomic work\n")
    header = "| store | workload |"
    for p in counts:
        header += f" {p}p store ops/s | {p}p floor ops/s | {p}p floor / store |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for kind, workload in rows:
        cells = []
        for p in counts:
            mine, floor = rates[kind, workload, p], rates[RAW_FLOORS[kind], workload, p]
            cells += [f"{mine:,.0f}", f"{floor:,.0f}", f"{floor / mine:.2f}x"]
        print(f"| {kind} | {workload} | " + " | ".join(cells) + " |")


def build_lean(spec: Spec) -> Any:
    """The store of ``spec`` for the per-call table (PostgreSQL: ``synchronous_commit=off``,
    as its floor)."""
    if spec[0] != "postgresql":
        return build(spec)
    engine = sa.create_engine(
        spec[1], pool_size=1, connect_args={"options": "-c synchronous_commit=off"}
    )
    return SQLStore(engine.execution_options(schema_translate_map={None: spec[2]}))


def store_operation(
    store: Any, operation: str, me: str, credential_id: str
) -> Callable[[], object]:
    """One call of ``operation`` through the store."""
    counter = iter(range(1, 1 << 40))
    if operation == "get_failures":
        return lambda: store.get_failures(me)
    if operation == "claim":
        return lambda: store.claim(credential_id, next(counter), drift=0)

    def store_verify() -> None:
        n = next(counter)
        if not store.begin_attempt(me, T0 + n, LIMITS)[0].admitted:
            raise RuntimeError("an attempt was not admitted")
        if not store.claim_and_reset(credential_id, n, drift=0, user_id=me):
            raise RuntimeError("a claim was lost")

    return store_verify


def per_call(call: Callable[[], object], seconds: float) -> float:
    """Microseconds per call of ``call``: the best of three runs of ``seconds / 3``."""
    for _ in range(20):
        call()
    best = math.inf
    for _ in range(3):
        done, start = 0, time.perf_counter()
        while time.perf_counter() < start + seconds / 3:
            for _ in range(10):
                call()
            done += 10
        best = min(best, (time.perf_counter() - start) / done * 1e6)
    return best


def floor_costs(spec: Spec, seconds: float) -> dict[str, tuple[float, float]]:
    """``{operation: (store µs, floor µs)}`` per call, on one connection each."""
    store, floor = build_lean(spec), RawFloor(spec)
    costs: dict[str, tuple[float, float]] = {}
    try:
        for operation in FLOOR_OPERATIONS:
            me = f"fl-{uuid.uuid4().hex[:8]}"
            credential = totp_credential(me)
            store.add(credential)
            mine = per_call(store_operation(store, operation, me, credential.id), seconds)
            raw = per_call(floor.operation(operation, me, credential.id), seconds)
            costs[operation] = (mine, raw)
    finally:
        floor.close()
        store.engine.dispose()
    return costs


def print_floors(costs: dict[tuple[str, str], tuple[float, float]]) -> None:
    """The per-call table."""
    print("\nPer call, one process and connection, against a raw-driver floor\n")
    print("| sql store | operation | store us/call | raw floor us/call | store / floor |")
    print("|---|---|---|---|---|")
    for (kind, operation), (mine, raw) in costs.items():
        print(f"| {kind} | {operation} | {mine:,.1f} | {raw:,.1f} | {mine / raw:.2f}x |")


# -- report ------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the tables; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="run time per measurement")
    parser.add_argument("--processes", default="1,8", help="client process counts")
    parser.add_argument("--stores", default=",".join(STORES), help="stores to run")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="workloads to run")
    parser.add_argument(
        "--redis-scaleout",
        action="store_true",
        help="also measure Redis Cluster and min_replicas_ack on servers started here",
    )
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= 30:
        parser.error("--seconds must be in (0, 30]")
    stores = [s for s in args.stores.split(",") if s]
    workloads = [w for w in args.workloads.split(",") if w]
    counts = [int(p) for p in args.processes.split(",") if p]
    if not set(stores) <= set(STORES) or not set(workloads) <= set(WORKLOADS):
        parser.error(f"stores: {', '.join(STORES)}; workloads: {', '.join(WORKLOADS)}")
    if not counts or not all(1 <= p <= 64 for p in counts):
        parser.error("--processes must be counts from 1 to 64")

    versions = ", ".join(
        f"{name} {importlib.metadata.version(name)}" for name in ("redis", "sqlalchemy", "psycopg")
    )
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs, {versions}")
    print(f"{args.seconds} s per measurement; every process has its own connection and rows\n")

    rates: dict[tuple[str, str, int], float] = {}
    trips: dict[tuple[str, str], float | None] = {}
    floors: dict[tuple[str, str], tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as directory:
        for kind in stores:
            with provisioned(kind, Path(directory)) as spec:
                for workload in workloads:
                    trips[kind, workload] = round_trips(spec, workload)
                for processes in counts:
                    for workload, rate in throughput(
                        spec, workloads, processes, args.seconds
                    ).items():
                        rates[kind, workload, processes] = rate
                floored = [w for w in workloads if w in FLOOR_WORKLOADS]
                if kind in RAW_FLOORS and floored:
                    raw_spec = (RAW_FLOORS[kind], spec[1], spec[2])
                    for processes in counts:
                        for workload, rate in throughput(
                            raw_spec, floored, processes, args.seconds
                        ).items():
                            rates[raw_spec[0], workload, processes] = rate
                if kind in FLOOR_STORES:
                    for operation, cost in floor_costs(spec, args.seconds).items():
                        floors[kind, operation] = cost

    header = "| store | workload | " + " | ".join(f"{p} proc ops/s" for p in counts)
    header += " | vs redis (" + ", ".join(f"{p}p" for p in counts) + ") | round trips/call |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for kind in stores:
        for workload in workloads:
            cells = [f"{rates[kind, workload, p]:,.0f}" for p in counts]
            if "redis" in stores:
                ratio = ", ".join(
                    f"{rates[kind, workload, p] / rates['redis', workload, p]:.2f}x" for p in counts
                )
            else:
                ratio = "-"
            rt = trips[kind, workload]
            rt_cell = "in-process" if rt is None else f"{rt:.2f}"
            print(f"| {kind} | {workload} | " + " | ".join(cells) + f" | {ratio} | {rt_cell} |")
    print_throughput_floors(rates, stores, counts)
    if floors:
        print_floors(floors)
    if args.redis_scaleout:
        redis_scaleout(args.seconds, counts)
    return 0


# -- Redis scale-out: Redis Cluster and replica acknowledgements (--redis-scaleout) ---------
#
# A separate table, on servers this script starts itself in a temporary directory (a
# 3-primary Redis Cluster; a primary with one replica), stopped by PID at the end:
#
# * ``redis-cluster``: RedisStore on redis-py's RedisCluster; ``raw-cluster``: the floor -
#   redis-py's RedisCluster sending the same scripts by hand (EVALSHA with prebuilt keys,
#   no validation, no decoding): the same atomic work, nothing of the store around it;
# * ``redis-primary`` / ``redis-wait1``: RedisStore on the private primary, without and with
#   ``min_replicas_ack=1`` (every claim and counted failure waits for the replica's WAIT).
#
# Workloads: ``claim``, ``verify`` (the whole service verify) and ``store-verify`` (the two
# store calls of a verify: begin_attempt, then claim_and_reset).

SCALEOUT_WORKLOADS = ("claim", "store-verify", "verify")


def build_scaleout(spec: Spec) -> Any:
    """The store (or floor) of a scale-out ``spec``: ``(kind, url, prefix)``."""
    from redis.cluster import RedisCluster

    kind, where, namespace = spec
    if kind == "redis-cluster":
        return RedisStore(RedisCluster.from_url(where, socket_timeout=10), prefix=namespace)
    if kind == "raw-cluster":
        return RawRedisFloor(RedisCluster.from_url(where, socket_timeout=10), namespace)
    if kind == "redis-primary":
        return RedisStore.from_url(where, prefix=namespace)
    if kind == "redis-wait1":
        return RedisStore.from_url(where, prefix=namespace, min_replicas_ack=1)
    raise ValueError(kind)


def prepare_scaleout(store: Any, workload: str, me: str) -> Callable[[], object]:
    """One call of a scale-out workload (the floor prepares its own)."""
    if isinstance(store, RawRedisFloor) and workload == "verify":
        return lambda: None  # no service on the floor: the row shows "-"
    return prepare(store, workload, me)


def scaleout_worker(
    spec: Spec, job: tuple[Sequence[str], float, str], barrier: Any, out: Any
) -> None:
    """As :func:`worker`, on a scale-out store."""
    workloads, seconds, me = job
    try:
        store = build_scaleout(spec)
        for workload in workloads:
            call = prepare_scaleout(store, workload, f"{me}-{workload}")
            for _ in range(20):
                call()
            barrier.wait(120)
            done, start = 0, time.perf_counter()
            while time.perf_counter() < start + seconds:
                for _ in range(10):
                    call()
                done += 10
            out.put(("ok", workload, done / (time.perf_counter() - start)))
    except BaseException as exc:
        out.put(("error", repr(exc), 0.0))


def scaleout_throughput(spec: Spec, processes: int, seconds: float) -> dict[str, float]:
    """Operations per second of ``processes`` processes together, per scale-out workload."""
    context = multiprocessing.get_context("spawn")
    barrier, out = context.Barrier(processes), context.Queue()
    tag = uuid.uuid4().hex[:8]
    job = (SCALEOUT_WORKLOADS, seconds)
    crew = [
        context.Process(target=scaleout_worker, args=(spec, (*job, f"s{tag}-{i}"), barrier, out))
        for i in range(processes)
    ]
    for process in crew:
        process.start()
    rates = dict.fromkeys(SCALEOUT_WORKLOADS, 0.0)
    try:
        for _ in range(processes * len(SCALEOUT_WORKLOADS)):
            status, detail, rate = out.get(timeout=180)
            if status != "ok":
                raise RuntimeError(f"{spec[0]}: {detail}")
            rates[detail] += rate
    finally:
        for process in crew:
            process.join(30)
            if process.is_alive():
                process.terminate()
    return rates


class CountingWrites(redis.Connection):
    """Counts the writes to the socket: one per round trip (a WAIT pipelined with its
    command goes in the same write and is not a round trip of its own)."""

    sent = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingWrites.sent += 1
        super().send_packed_command(command, check_health)


def scaleout_round_trips(spec: Spec, workload: str, calls: int = 30) -> float:
    """Round trips per call (writes to the socket, counted on the connections)."""
    from redis.cluster import RedisCluster

    CountingConnection = CountingWrites

    kind, where, namespace = spec
    if kind == "redis-cluster":
        client = RedisCluster.from_url(where, connection_class=CountingConnection)
        store: Any = RedisStore(client, prefix=namespace)
    elif kind == "raw-cluster":
        store = RawRedisFloor(
            RedisCluster.from_url(where, connection_class=CountingConnection), namespace
        )
    else:
        client = redis.Redis.from_url(where, connection_class=CountingConnection)
        store = RedisStore(client, prefix=namespace, min_replicas_ack=int(kind == "redis-wait1"))
    call = prepare_scaleout(store, workload, f"rt-{uuid.uuid4().hex[:8]}")
    for _ in range(10):
        call()
    CountingConnection.sent = 0
    for _ in range(calls):
        call()
    return CountingConnection.sent / calls


def redis_scaleout(seconds: float, counts: Sequence[int]) -> None:
    """Start the private servers, measure, print the scale-out table, stop the servers."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from server_tools import PrivateRedis, PrivateRedisCluster

    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        cluster = PrivateRedisCluster(root / "cluster")
        (root / "primary").mkdir()
        (root / "replica").mkdir()
        primary = PrivateRedis(
            root / "primary", "--repl-diskless-sync-delay", "0", "--appendonly", "no"
        )
        try:
            cluster.start()
            primary.start()
            replica = PrivateRedis(
                root / "replica",
                "--replicaof",
                "127.0.0.1",
                str(primary.port),
                "--appendonly",
                "no",
            )
            replica.start()
            redis.Redis.from_url(primary.url).execute_command("WAIT", 1, 10000)
            cluster_url = f"redis://127.0.0.1:{cluster.ports[0]}"
            specs = [
                ("redis-cluster", cluster_url, "bench-c:"),
                ("raw-cluster", cluster_url, "bench-r:"),
                ("redis-primary", primary.url, "bench-p:"),
                ("redis-wait1", primary.url, "bench-w:"),
            ]
            rates: dict[tuple[str, str, int], float] = {}
            trips: dict[tuple[str, str], float] = {}
            for spec in specs:
                for workload in SCALEOUT_WORKLOADS:
                    trips[spec[0], workload] = scaleout_round_trips(spec, workload)
                for processes in counts:
                    for workload, rate in scaleout_throughput(spec, processes, seconds).items():
                        rates[spec[0], workload, processes] = rate
        finally:
            cluster.stop()
            primary.kill()
            with contextlib.suppress(NameError):
                replica.kill()
    floors = {"redis-cluster": "raw-cluster", "redis-wait1": "redis-primary"}
    header = "| scale-out store | workload | " + " | ".join(f"{p} proc ops/s" for p in counts)
    header += " | vs floor (" + ", ".join(f"{p}p" for p in counts) + ") | round trips/call |"
    print("\nRedis scale-out (private servers started by this script)\n")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for kind, *_ in specs:
        for workload in SCALEOUT_WORKLOADS:
            if kind == "raw-cluster" and workload == "verify":
                continue
            cells = [f"{rates[kind, workload, p]:,.0f}" for p in counts]
            floor = floors.get(kind)
            ratio = "-"
            if floor is not None and not (floor == "raw-cluster" and workload == "verify"):
                ratio = ", ".join(
                    f"{rates[kind, workload, p] / rates[floor, workload, p]:.2f}x" for p in counts
                )
            print(
                f"| {kind} | {workload} | "
                + " | ".join(cells)
                + f" | {ratio} | {trips[kind, workload]:.2f} |"
            )


if __name__ == "__main__":
    sys.exit(main())
