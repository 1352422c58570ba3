"""SQLStore (SQLAlchemy 2 Core) on a real PostgreSQL server and on SQLite files.

* the shipped contract suites on both databases (credentials, failure counters, recovery
  codes, out-of-band challenges; 16- and 32-thread races);
* the schema: created idempotently, in a schema of the host's choice, documented as DDL
  that matches the metadata (``docs/stores.md``);
* one round trip per operation on PostgreSQL, counted in libpq's protocol trace, and one
  statement for each of admit_attempt, begin_attempt and claim_and_reset
  (``before_cursor_execute``), the very statement objects built at import;
* admissions: exactly ``mfa_core.throttle.admit`` over hypothesis-generated sequences of
  calls (times at the double before and after every edge), refusals with the state that
  refused them, damaged rows, the bounded re-run; 32 threads admitted exactly
  ``max_failures`` times, a new user's concurrent first attempts;
* 8 worker processes with their own connections: exactly one winner per claimed value and
  exactly one consumer of each recovery code (at the store and through
  ``MFAService.verify_recovery_code``) over 200 rounds (PostgreSQL; fewer rounds on a
  SQLite file), a burst of attempts admitted exactly up to the limit;
* recovery-code consumptions racing set replacements never deadlock and never mix sets;
* faults for real on PostgreSQL: the store's backend terminated between operations and
  while a statement is running (``pg_terminate_backend``), with and without pre-ping.

PostgreSQL tests run in a schema of their own (dropped afterwards); see ``servers.py`` for
the skip-or-fail rule when the server is missing.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import sqlalchemy as sa
from error_chain import chain
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_tools import (
    create_mariadb_database,
    create_postgres_schema,
    drop_mariadb_database,
    drop_postgres_schema,
    mariadb_admin,
    mariadb_engine,
    postgres_engine,
    unique,
)
from store_race import (
    Crew,
    same_code_from_every_worker,
    same_recovery_code_from_every_worker,
    same_recovery_record_from_every_worker,
)

from mfa_core.errors import ErrorCode, InvalidParameter, StoreError, StoreUnavailable
from mfa_core.models import Admission, Credential, CredentialKind, CredentialState, FailureState
from mfa_core.oob import OOBChannel, OOBPurpose, OOBRecord
from mfa_core.recovery import TAG_BYTES, Argon2Params, RecoveryRecord, hash_recovery_code
from mfa_core.stores import sql
from mfa_core.stores.sql import (
    SQLStore,
    create_schema,
    credentials_table,
    failures_table,
    metadata,
    oob_challenges_table,
    recovery_codes_table,
    schema_ddl,
)
from mfa_core.testing import (
    CredentialStoreContract,
    FailureCounterContract,
    OOBChallengeStoreContract,
    RecoveryCodeStoreContract,
    StoreMaintenanceContract,
)
from mfa_core.throttle import ThrottleConfig, admit, check, delay_after

pytest_plugins = ("servers",)

OPEN = ThrottleConfig(max_failures=100, base_delay=0, max_delay=0, lockout=900)
"""Limits that admit every attempt up to 100 (for tests of something else)."""

INT63 = 2**63 - 1
T0 = 1_700_000_000.0
DOCS = Path(__file__).resolve().parent.parent / "docs" / "stores.md"
TABLES = [
    "mfa_credentials",
    "mfa_failures",
    "mfa_oob_challenges",
    "mfa_recovery_codes",
    "mfa_schema_version",
    "mfa_send_counters",
    "mfa_webauthn_challenges",
    "mfa_webauthn_credentials",
]


def _credential(user_id: str = "alice", **changes: Any) -> Credential:
    base = Credential(
        id=unique("cred-"),
        user_id=user_id,
        kind=CredentialKind.TOTP,
        sealed_key=os.urandom(40),
        created_at=T0,
        status=CredentialState.ACTIVE,
    )
    return attrs.evolve(base, **changes)


PHC = hash_recovery_code("abcd-efgh-jkmn-pqrs", Argon2Params.fast_for_testing())


def _records(count: int) -> list[RecoveryRecord]:
    return [
        RecoveryRecord(id=unique("rc-"), tag=os.urandom(TAG_BYTES).hex(), phc=PHC)
        for _ in range(count)
    ]


def _challenge(issued_at: float = T0, **changes: Any) -> OOBRecord:
    base = OOBRecord(
        challenge_id=unique("ch-"),
        user_id="alice",
        purpose=OOBPurpose.LOGIN,
        channel=OOBChannel.SMS,
        destination_hint="***67",
        code_hash=os.urandom(32),
        digits=6,
        issued_at=issued_at,
        expires_at=issued_at + 180,
    )
    return attrs.evolve(base, **changes)


def _sqlite_engine(path: Path, **options: Any) -> sa.Engine:
    return sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": 30}, **options)


@pytest.fixture(params=["postgresql", "sqlite", "mariadb"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """An engine with the store's tables: a fresh PostgreSQL schema, SQLite file or an
    emptied MariaDB database."""
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        schema = request.getfixturevalue("postgres_schema")
        made = postgres_engine(url, schema, pool_size=2, max_overflow=6)
    elif request.param == "mariadb":
        url = request.getfixturevalue("mariadb_url")
        database = request.getfixturevalue("mariadb_database")
        made = mariadb_engine(url, database, pool_size=2, max_overflow=6)
    else:
        made = _sqlite_engine(tmp_path / "store.db")
        create_schema(made)
    yield made
    made.dispose()


@pytest.fixture
def store(engine: sa.Engine) -> SQLStore:
    return SQLStore(engine)


# -- the contract suite ------------------------------------------------------------------


class TestPostgresContract(
    CredentialStoreContract,
    FailureCounterContract,
    RecoveryCodeStoreContract,
    OOBChallengeStoreContract,
    StoreMaintenanceContract,
):
    """The shipped contract suite (all four ports) on PostgreSQL (one schema per test)."""

    @pytest.fixture(autouse=True)
    def _database(self, postgres_url: str, postgres_schema: str) -> Iterator[None]:
        self.engine = postgres_engine(postgres_url, postgres_schema, pool_size=4, max_overflow=30)
        yield
        self.engine.dispose()

    def make_store(self) -> SQLStore:
        return SQLStore(self.engine)


class TestMariaDBContract(
    CredentialStoreContract,
    FailureCounterContract,
    RecoveryCodeStoreContract,
    OOBChallengeStoreContract,
):
    """The shipped contract suite (all four ports) on MariaDB (the session's database,
    emptied after each test)."""

    @pytest.fixture(autouse=True)
    def _database(self, mariadb_url: str, mariadb_database: str) -> Iterator[None]:
        self.engine = mariadb_engine(mariadb_url, mariadb_database, pool_size=4, max_overflow=30)
        yield
        self.engine.dispose()

    def make_store(self) -> SQLStore:
        return SQLStore(self.engine)


class TestSQLiteContract(
    CredentialStoreContract,
    FailureCounterContract,
    RecoveryCodeStoreContract,
    OOBChallengeStoreContract,
    StoreMaintenanceContract,
):
    """The shipped contract suite (all four ports) on a SQLite file through SQLAlchemy."""

    @pytest.fixture(autouse=True)
    def _database(self, tmp_path: Path) -> Iterator[None]:
        self.engine = _sqlite_engine(tmp_path / "contract.db", pool_size=4, max_overflow=30)
        create_schema(self.engine)
        yield
        self.engine.dispose()

    def make_store(self) -> SQLStore:
        return SQLStore(self.engine)


# -- schema --------------------------------------------------------------------------------


def test_schema_creation_is_idempotent(engine: sa.Engine) -> None:
    store = SQLStore(engine)
    credential = _credential()
    store.add(credential)
    create_schema(engine)  # a second time: nothing to do, nothing lost
    assert store.get(credential.id) == credential
    assert [t.name for t in metadata.sorted_tables] == TABLES
    assert credentials_table.c.id.unique
    assert failures_table.c.user_id.primary_key


def test_tables_live_in_the_hosts_schema(postgres_url: str, postgres_schema: str) -> None:
    admin = sa.create_engine(postgres_url)
    try:
        with admin.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = :schema ORDER BY table_name"
                ),
                {"schema": postgres_schema},
            ).all()
    finally:
        admin.dispose()
    assert [r[0] for r in rows] == TABLES


def test_ddl_runs_on_an_empty_database(tmp_path: Path, postgres_url: str) -> None:
    """The documented DDL creates a schema the store works with (both dialects)."""
    sqlite_engine = _sqlite_engine(tmp_path / "ddl.db")
    raw = sqlite_engine.raw_connection()
    try:
        raw.driver_connection.executescript(schema_ddl("sqlite"))  # type: ignore[union-attr]
    finally:
        raw.close()
    schema = unique("mfa_ddl_")
    admin = sa.create_engine(postgres_url)
    try:
        with admin.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
            connection.execute(sa.text(f'SET LOCAL search_path TO "{schema}"'))
            for statement in schema_ddl("postgresql").split(";\n"):
                if statement.strip():
                    connection.execute(sa.text(statement))
        pg_engine = postgres_engine(postgres_url, schema)
        for made in (sqlite_engine, pg_engine):
            store = SQLStore(made)
            credential = _credential()
            store.add(credential)
            assert store.claim(credential.id, 3, drift=0)
            assert store.list_for_user("alice") == [attrs.evolve(credential, last_accepted=3)]
            assert store.admit_attempt("alice", T0, OPEN).state.count == 1
            records = _records(2)
            store.replace_recovery_codes("alice", records)
            assert store.consume_recovery_code("alice", records[1].id, T0) == 1
            challenge = _challenge()
            store.put_challenge(challenge)
            used = attrs.evolve(challenge, used=True)
            assert store.update_challenge(used, expected=challenge)
            assert store.get_challenge(challenge.challenge_id) == used
            made.dispose()
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
        sqlite_engine.dispose()


def test_docs_show_the_generated_ddl() -> None:
    text = DOCS.read_text(encoding="utf-8")
    blocks = re.findall(r"<!-- sql-ddl:postgresql -->\n```sql\n(.*?)```", text, re.S)
    assert len(blocks) == 1, "docs/stores.md must hold exactly one generated DDL block"
    assert blocks[0] == schema_ddl("postgresql"), (
        "docs/stores.md is out of date: paste the output of "
        "`python -c 'from mfa_core.stores.sql import schema_ddl; print(schema_ddl(), end=\"\")'`"
    )


def test_schema_ddl_rejects_unknown_dialects() -> None:
    with pytest.raises(InvalidParameter):
        schema_ddl("oracle")
    assert "CREATE TABLE mfa_credentials" in schema_ddl("sqlite")
    assert "id VARBINARY(1024) NOT NULL" in schema_ddl("mysql")


# -- behaviour beyond the contract -------------------------------------------------------


def test_list_orders_equal_created_at_by_insertion(store: SQLStore) -> None:
    ids = ["z", "m", "a", "q"]
    for credential_id in ids:
        store.add(_credential(id=credential_id + unique("-")))
    assert [c.id.split("-")[0] for c in store.list_for_user("alice")] == ids


def test_update_moves_a_credential_to_another_user(store: SQLStore) -> None:
    credential = _credential("alice")
    store.add(credential)
    moved = attrs.evolve(credential, user_id="bob", created_at=T0 + 5)
    assert store.update(moved, expected_version=0)
    assert store.list_for_user("alice") == []
    assert store.list_for_user("bob") == [attrs.evolve(moved, version=1)]


def test_claims_at_the_64_bit_edge(store: SQLStore) -> None:
    credential = _credential()
    store.add(credential)
    for value in (0, 2**31, 2**53 + 1, INT63 - 1, INT63):
        assert store.claim(credential.id, value, drift=-(2**40))
        assert not store.claim(credential.id, value, drift=0)
    got = store.get(credential.id)
    assert got is not None and (got.last_accepted, got.drift) == (INT63, -(2**40))
    with pytest.raises(InvalidParameter):
        store.claim(credential.id, INT63 + 1, drift=0)


def test_failure_time_never_goes_back(store: SQLStore) -> None:
    assert store.admit_attempt("alice", T0 + 10, OPEN).state == FailureState(1, T0 + 10)
    assert store.admit_attempt("alice", T0 + 5, OPEN).state == FailureState(2, T0 + 10)
    assert store.admit_attempt("alice", T0 + 20.5, OPEN).state == FailureState(3, T0 + 20.5)
    assert store.get_failures("alice") == FailureState(3, T0 + 20.5)


def test_text_and_bytes_round_trip(store: SQLStore) -> None:
    credential = _credential(
        "us\u00e9r \u2603", sealed_key=bytes(range(256)), label="t\u00e9l\u00e9phone \u2713"
    )
    store.add(credential)
    assert store.get(credential.id) == credential
    got = store.list_for_user("us\u00e9r \u2603")
    assert got == [credential] and got[0].sealed_key == bytes(range(256))


def test_nul_characters_are_refused_on_postgresql(postgres_url: str, postgres_schema: str) -> None:
    made = postgres_engine(postgres_url, postgres_schema)
    try:
        store = SQLStore(made)
        for call in (
            lambda: store.get("a\x00b"),
            lambda: store.admit_attempt("a\x00b", T0, OPEN),
            lambda: store.begin_attempt("a\x00b", T0, OPEN),
            lambda: store.claim_and_reset("c", 1, drift=0, user_id="a\x00b"),
            lambda: store.claim_and_reset("c\x00", 1, drift=0, user_id="alice"),
            lambda: store.add(_credential("a\x00b")),
            lambda: store.add(_credential(label="x\x00")),
            lambda: store.update(_credential(replaces="r\x00"), expected_version=0),
            lambda: store.consume_recovery_code("a\x00", "rc", T0),
            lambda: store.replace_recovery_codes(
                "alice", [attrs.evolve(_records(1)[0], id="\x00")]
            ),
            lambda: store.update_recovery_hash("alice", "rc", PHC + "\x00"),
            lambda: store.put_challenge(_challenge(destination_hint="***6\x00")),
            lambda: store.update_challenge(
                _challenge(user_id="a\x00"), expected=_challenge(user_id="a\x00")
            ),
        ):
            with pytest.raises(InvalidParameter):
                call()
    finally:
        made.dispose()


def test_bad_arguments_raise_typed_errors(store: SQLStore, engine: sa.Engine) -> None:
    with pytest.raises(InvalidParameter):
        SQLStore("postgresql://x")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter):
        create_schema(object())  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter):
        store.claim("x", -1, drift=0)
    with pytest.raises(InvalidParameter):
        store.list_for_user("")
    with pytest.raises(InvalidParameter):
        store.update(_credential(), expected_version=-1)
    with pytest.raises(InvalidParameter):
        store.consume_recovery_code("alice", "rc", -1.0)
    with pytest.raises(InvalidParameter):
        store.replace_recovery_codes("alice", [object()])  # type: ignore[list-item]
    with pytest.raises(InvalidParameter):
        store.update_challenge(_challenge(), expected=_challenge())
    with pytest.raises(InvalidParameter):
        store.replace_challenge(_challenge(), expected_generation=2**63)
    with pytest.raises(InvalidParameter):
        store.purge_challenges(float("nan"))
    assert repr(store) == f"SQLStore(dialect={engine.dialect.name!r})"


def test_other_dialects_are_refused(tmp_path: Path) -> None:
    made = _sqlite_engine(tmp_path / "x.db")
    try:
        made.dialect.name = "oracle"  # what SQLStore sees of an Oracle engine
        with pytest.raises(InvalidParameter, match="PostgreSQL, MariaDB/MySQL and SQLite"):
            SQLStore(made)
    finally:
        made.dispose()


def test_missing_tables_are_a_store_error(tmp_path: Path) -> None:
    made = _sqlite_engine(tmp_path / "empty.db")
    try:
        store = SQLStore(made)
        with pytest.raises(StoreError) as caught:
            store.claim("c", 1, drift=0)
        assert not isinstance(caught.value, StoreUnavailable)
        assert "claim failed" in str(caught.value)
    finally:
        made.dispose()


def test_a_damaged_row_is_a_store_error(store: SQLStore, engine: sa.Engine) -> None:
    credential = _credential()
    store.add(credential)
    with engine.begin() as connection:
        connection.execute(
            credentials_table.update()
            .where(credentials_table.c.id == credential.id)
            .values(algorithm="MD5")
        )
    with pytest.raises(StoreError, match="cannot read"):
        store.get(credential.id)


def test_damaged_recovery_and_challenge_rows_are_store_errors(
    store: SQLStore, engine: sa.Engine
) -> None:
    [record] = _records(1)
    store.replace_recovery_codes("alice", [record])
    challenge = _challenge()
    store.put_challenge(challenge)
    with engine.begin() as connection:
        connection.execute(recovery_codes_table.update().values(tag="not hex"))
        connection.execute(oob_challenges_table.update().values(channel="pigeon"))
    with pytest.raises(StoreError, match="cannot read"):
        store.recovery_codes("alice")
    with pytest.raises(StoreError, match="cannot read"):
        store.get_challenge(challenge.challenge_id)


def test_recovery_codes_keep_the_order_of_the_set(store: SQLStore) -> None:
    records = _records(12)
    store.replace_recovery_codes("alice", records)
    assert store.recovery_codes("alice") == records
    store.replace_recovery_codes("alice", records[::-1])
    assert store.recovery_codes("alice") == records[::-1]


def test_purge_removes_only_challenges_expired_before_the_limit(store: SQLStore) -> None:
    old, recent = _challenge(issued_at=T0), _challenge(issued_at=T0 + 3600)
    store.put_challenge(old)
    store.put_challenge(recent)
    assert store.purge_challenges(T0 + 180) == 0  # expires_at is exclusive: not before
    assert store.purge_challenges(T0 + 181) == 1
    assert store.get_challenge(old.challenge_id) is None
    assert store.get_challenge(recent.challenge_id) == recent
    assert store.purge_challenges(T0 + 181) == 0


def test_purge_also_removes_send_counters_whose_window_ended(store: SQLStore) -> None:
    key = f"u:{uuid.uuid4().hex}"
    for _ in range(3):
        store.count_send(key, T0, T0 + 3600)
    assert store.count_send(key, T0 + 3600, T0 + 7200) == 1
    store.purge_challenges(T0 + 3600)  # the first window ends at T0 + 3600: kept
    assert store.count_send(key, T0, T0 + 3600) == 4
    store.purge_challenges(T0 + 3601)
    assert store.count_send(key, T0, T0 + 3600) == 1  # forgotten: counting restarts
    assert store.count_send(key, T0 + 3600, T0 + 7200) == 2


def test_send_counter_arguments_are_checked(store: SQLStore) -> None:
    for key, start, end in [
        ("", T0, T0 + 60),
        ("k" * 129, T0, T0 + 60),
        ("u:\x00", T0, T0 + 60),
        ("u:alice", float("nan"), T0 + 60),
        ("u:alice", T0, T0),
    ]:
        with pytest.raises(InvalidParameter):
            store.count_send(key, start, end)


def test_a_failed_replacement_keeps_the_old_set(store: SQLStore, engine: sa.Engine) -> None:
    """The replacement is one transaction: when its INSERT fails (here the connection
    breaks just as it is sent), the DELETE of the old set before it is rolled back."""
    old = _records(3)
    store.replace_recovery_codes("alice", old)
    store.consume_recovery_code("alice", old[0].id, T0)

    def break_insert(connection: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("INSERT INTO") and "mfa_recovery_codes" in statement:
            raise ConnectionResetError("the connection broke")

    sa.event.listen(engine, "before_cursor_execute", break_insert)
    try:
        with pytest.raises(StoreUnavailable):
            store.replace_recovery_codes("alice", _records(2))
    finally:
        sa.event.remove(engine, "before_cursor_execute", break_insert)
    stored = store.recovery_codes("alice")
    assert [r.id for r in stored] == [r.id for r in old]
    assert [r.used for r in stored] == [True, False, False]
    store.replace_recovery_codes("alice", [])  # and the next call works
    assert store.recovery_codes("alice") == []


def test_consumption_racing_replacement_never_deadlocks_or_mixes_sets(store: SQLStore) -> None:
    """Threads consume codes of the current set while others replace the set: every call
    returns (no deadlock, no store error), and afterwards the stored set is exactly one of
    the sets written, never a mix."""
    user = unique("mix-")
    first = _records(8)
    store.replace_recovery_codes(user, first)
    written = [first]
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def consumer(index: int) -> None:
        try:
            start.wait(30)
            for _ in range(25):
                current = store.recovery_codes(user)
                if current:
                    store.consume_recovery_code(user, current[index % len(current)].id, T0)
        except BaseException as exc:
            errors.append(exc)

    def replacer() -> None:
        try:
            start.wait(30)
            for _ in range(12):
                records = _records(8)
                with lock:
                    written.append(records)
                store.replace_recovery_codes(user, records)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=consumer, args=(i,)) for i in range(6)]
    threads += [threading.Thread(target=replacer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, [traceback.format_exception(e) for e in errors]
    final = {r.id for r in store.recovery_codes(user)}
    assert any(final == {r.id for r in records} for records in written)


def test_store_errors_do_not_carry_parameters(engine: sa.Engine, tmp_path: Path) -> None:
    """Neither the message nor the chained traceback of a store error shows the
    statement's parameters (the sealed key, ids): the error chains to the driver's
    exception, not to SQLAlchemy's wrapper that lists them."""
    store = SQLStore(engine)
    secret = bytes.fromhex("5ec7e75ec7e75ec7e75ec7e75ec7e75e")
    credential = _credential(sealed_key=secret, label="label-0f-a-user")
    store.add(credential)
    broken = SQLStore(_sqlite_engine(tmp_path / "no-tables.db"))
    failures: list[BaseException] = []
    for call in (lambda: store.add(credential), lambda: broken.add(credential)):
        with pytest.raises(StoreError) as caught:
            call()
        failures.append(caught.value)
    assert str(failures[0]) == "a credential with this id already exists"
    for failure in failures:
        text = "".join(traceback.format_exception(failure))
        assert "[parameters:" not in text
        assert "5ec7e75e" not in text and repr(secret)[2:12] not in text
        assert "label-0f-a-user" not in text


def test_no_server_is_store_unavailable() -> None:
    made = sa.create_engine(
        "postgresql+psycopg://postgres@127.0.0.1:1/test", connect_args={"connect_timeout": 2}
    )
    try:
        store = SQLStore(made)
        for call in (
            lambda: store.claim("c", 1, drift=0),
            lambda: store.admit_attempt("alice", T0, OPEN),
            lambda: store.begin_attempt("alice", T0, OPEN),
            lambda: store.claim_and_reset("c", 1, drift=0, user_id="alice"),
            lambda: store.get("c"),
        ):
            with pytest.raises(StoreUnavailable) as caught:
                call()
            assert caught.value.code.value == "store_unavailable"
        with pytest.raises(StoreUnavailable):
            create_schema(made)
    finally:
        made.dispose()


def test_a_locked_sqlite_file_is_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    made = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.1})
    create_schema(made)
    store = SQLStore(made)
    credential = _credential()
    store.add(credential)
    holder = sa.create_engine(f"sqlite:///{path}").raw_connection()
    try:
        holder.driver_connection.execute("BEGIN EXCLUSIVE")  # type: ignore[union-attr]
        with pytest.raises(StoreUnavailable):
            store.claim(credential.id, 1, drift=0)
        holder.driver_connection.execute("ROLLBACK")  # type: ignore[union-attr]
        assert store.claim(credential.id, 1, drift=0)
    finally:
        holder.close()
        made.dispose()


def test_import_without_sqlalchemy_raises_missing_dependency() -> None:
    program = (
        "import sys\n"
        "sys.modules['sqlalchemy'] = None\n"
        "from mfa_core.errors import MissingDependency\n"
        "import mfa_core, mfa_core.stores\n"
        "try:\n"
        "    import mfa_core.stores.sql\n"
        "except MissingDependency as exc:\n"
        "    print(exc.code.value, exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == (
        "missing_dependency the SQL store needs SQLAlchemy 2: pip install 'mfa_core[sql]'"
    )


# -- one round trip per operation on PostgreSQL --------------------------------------------


class RoundTrips:
    """Counts protocol round trips of an engine's connections from libpq's trace: one per
    ``Sync`` (extended query) or ``Query`` (simple query) message the client sends."""

    def __init__(self, made: sa.Engine) -> None:
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        sa.event.listen(made, "checkout", self._trace)

    def _trace(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        import psycopg

        pgconn = dbapi_connection.pgconn
        pgconn.trace(self._file.fileno())
        pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)

    def take(self) -> int:
        """Round trips since the last call."""
        self._file.seek(0)
        lines = self._file.read().decode("utf-8", "replace").splitlines()
        self._file.seek(0)
        self._file.truncate()
        return sum(1 for line in lines if re.match(r"F\t\d+\t(Sync|Query)\b", line))

    def close(self) -> None:
        self._file.close()


def test_every_operation_is_one_round_trip_on_postgresql(
    postgres_url: str, postgres_schema: str
) -> None:
    made = postgres_engine(postgres_url, postgres_schema, pool_size=1)
    counter = RoundTrips(made)
    try:
        store = SQLStore(made)
        credential = _credential()
        store.add(credential)
        records = _records(3)
        store.replace_recovery_codes("alice", records)
        challenge = _challenge()
        store.put_challenge(challenge)
        calls = {
            "get": lambda: store.get(credential.id),
            "list_for_user": lambda: store.list_for_user("alice"),
            "claim": lambda: store.claim(credential.id, 7, drift=0),
            "update": lambda: store.update(credential, expected_version=0),
            "admit_attempt": lambda: store.admit_attempt("alice", T0, OPEN),
            "begin_attempt": lambda: store.begin_attempt("alice", T0, OPEN),
            "claim_and_reset": lambda: store.claim_and_reset(
                credential.id, 7, drift=0, user_id="alice"
            ),
            "get_failures": lambda: store.get_failures("alice"),
            "reset": lambda: store.reset("alice"),
            "recovery_codes": lambda: store.recovery_codes("alice"),
            "consume_recovery_code": lambda: store.consume_recovery_code(
                "alice", records[0].id, T0
            ),
            "update_recovery_hash": lambda: store.update_recovery_hash("alice", records[1].id, PHC),
            "get_challenge": lambda: store.get_challenge(challenge.challenge_id),
            "replace_challenge": lambda: store.replace_challenge(
                attrs.evolve(challenge, generation=1), expected_generation=0
            ),
            "update_challenge": lambda: store.update_challenge(challenge, expected=challenge),
            "delete_challenge": lambda: store.delete_challenge(challenge.challenge_id),
            "count_send": lambda: store.count_send("u:alice", T0, T0 + 3600),
        }
        # psycopg prepares a statement on its 5th execution (one extra round trip, once
        # per connection), so warm every statement up first.
        for _ in range(6):
            for call in calls.values():
                call()
        counter.take()
        for name, call in calls.items():
            call()
            assert counter.take() == 1, name
    finally:
        made.dispose()
        counter.close()


# -- 8 processes ---------------------------------------------------------------------------

PROCESSES = 8
ROUNDS = {"postgresql": 200, "sqlite": 20, "mariadb": 40}
"""Rounds per race: the issue's 200 on PostgreSQL; SQLite (one machine) gets a few, and
MariaDB (an fsync per commit) fewer than PostgreSQL."""


@pytest.fixture(scope="module", params=["postgresql", "sqlite", "mariadb"])
def crew(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Crew, SQLStore]]:
    """8 worker processes (started once per database for this module) on one database,
    and a store of this process on the same database to set up and check."""
    backend = request.param
    if backend == "postgresql":
        url = request.getfixturevalue("postgres_url")
        schema = unique("mfa_test_")
        create_postgres_schema(url, schema)
        spec = ("postgresql", url, schema)
        made = postgres_engine(url, schema)
    elif backend == "mariadb":
        url = request.getfixturevalue("mariadb_url")
        database = unique("mfa_crew_")
        create_mariadb_database(url, database)
        spec = ("mariadb", url, database)
        made = mariadb_engine(url, database)
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('crew') / 'shared.db'}"
        made = sa.create_engine(url, connect_args={"timeout": 30})
        create_schema(made)
        spec = ("sqlite", url, "")
    try:
        with Crew(spec, PROCESSES) as workers:
            yield backend, workers, SQLStore(made)
    finally:
        made.dispose()
        if backend == "postgresql":
            drop_postgres_schema(url, spec[2])
        elif backend == "mariadb":
            drop_mariadb_database(url, spec[2])


def test_eight_processes_claim_the_same_value_exactly_once(
    crew: tuple[str, Crew, SQLStore],
) -> None:
    backend, workers, store = crew
    rounds = ROUNDS[backend]
    credential = _credential()
    store.add(credential)
    for round_ in range(rounds):
        results = workers.run(("claim", credential.id, 1000 + round_, 0))
        assert results.count(True) == 1, f"round {round_}: {results}"
    assert workers.run(("claim", credential.id, 1000 + rounds - 1, 0)).count(True) == 0
    got = store.get(credential.id)
    assert got is not None and got.last_accepted == 1000 + rounds - 1


def test_eight_processes_submit_the_same_totp_code_exactly_one_succeeds(
    crew: tuple[str, Crew, SQLStore],
) -> None:
    backend, workers, store = crew
    same_code_from_every_worker(
        workers, store, ROUNDS[backend] // 2 if backend == "sqlite" else ROUNDS[backend]
    )


def test_eight_processes_consume_the_same_recovery_code_exactly_once(
    crew: tuple[str, Crew, SQLStore],
) -> None:
    backend, workers, store = crew
    same_recovery_record_from_every_worker(workers, store, ROUNDS[backend])


def test_eight_processes_submit_the_same_recovery_code_exactly_one_succeeds(
    crew: tuple[str, Crew, SQLStore],
) -> None:
    backend, workers, store = crew
    same_recovery_code_from_every_worker(
        workers, store, ROUNDS[backend] // 2 if backend == "sqlite" else ROUNDS[backend]
    )


def test_a_burst_of_attempts_from_eight_processes_admits_exactly_the_limit(
    crew: tuple[str, Crew, SQLStore],
) -> None:
    backend, workers, store = crew
    user = unique("burst-")
    per_process = 25 if backend == "postgresql" else 10
    limit = PROCESSES * per_process // 2
    limits = ThrottleConfig(max_failures=limit, base_delay=0, max_delay=0, lockout=900)
    results = workers.run(("admit", user, per_process, T0, limits))
    assert sum(admitted for result in results for admitted, _ in result) == limit
    assert store.get_failures(user) == FailureState(limit, T0)
    # locked: a second burst admits nothing, and changes nothing
    results = workers.run(("admit", user, per_process, T0 + 899, limits))
    assert not any(admitted for result in results for admitted, _ in result)
    assert store.get_failures(user) == FailureState(limit, T0)


# -- faults on PostgreSQL, for real ----------------------------------------------------------


def _terminate(admin: sa.Engine, application: str) -> int:
    with admin.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = :name"
            ),
            {"name": application},
        ).all()
    return sum(1 for row in rows if row[0])


@pytest.fixture
def admin(postgres_url: str) -> Iterator[sa.Engine]:
    made = sa.create_engine(postgres_url, poolclass=sa.pool.NullPool)
    yield made
    made.dispose()


def test_backend_terminated_between_operations(
    postgres_url: str, postgres_schema: str, admin: sa.Engine
) -> None:
    application = unique("mfa-kill-")
    made = postgres_engine(
        postgres_url, postgres_schema, pool_size=1, connect_args={"application_name": application}
    )
    try:
        store = SQLStore(made)
        credential = _credential()
        store.add(credential)
        assert store.claim(credential.id, 10, drift=0)
        store.admit_attempt("alice", T0, OPEN)
        for call in (
            lambda: store.claim(credential.id, 11, drift=0),
            lambda: store.admit_attempt("alice", T0 + 1, OPEN),
            lambda: store.begin_attempt("alice", T0 + 1, OPEN),
            lambda: store.claim_and_reset(credential.id, 11, drift=0, user_id="alice"),
            lambda: store.get(credential.id),
        ):
            store.get_failures("warm-up")  # the pool holds a live connection again
            assert _terminate(admin, application) == 1
            with pytest.raises(StoreUnavailable):  # the pooled connection is dead
                call()
        got = store.get(credential.id)
        assert got is not None and got.last_accepted == 10  # nothing was accepted
        assert store.get_failures("alice") == FailureState(1, T0)  # nothing counted
        assert store.claim(credential.id, 11, drift=0)
        assert store.admit_attempt("alice", T0 + 2, OPEN).state.count == 2
    finally:
        made.dispose()


def test_backend_terminated_while_consuming_a_recovery_code_or_using_a_challenge(
    postgres_url: str, postgres_schema: str, admin: sa.Engine
) -> None:
    application = unique("mfa-inflight-fallback-")
    made = postgres_engine(
        postgres_url, postgres_schema, pool_size=1, connect_args={"application_name": application}
    )
    try:
        store = SQLStore(made)
        records = _records(3)
        store.replace_recovery_codes("alice", records)
        challenge = _challenge()
        store.put_challenge(challenge)
        schema = postgres_schema

        outcome = _terminated_while_waiting(
            admin,
            application,
            f'SELECT 1 FROM "{schema}".mfa_recovery_codes WHERE user_id = :u FOR UPDATE',  # noqa: S608
            {"u": "alice"},
            lambda: store.consume_recovery_code("alice", records[0].id, T0),
        )
        assert isinstance(outcome, StoreUnavailable), outcome
        # Not consumed: every code is still unused, and the next call consumes it once.
        assert [r.used_at for r in store.recovery_codes("alice")] == [None, None, None]
        assert store.consume_recovery_code("alice", records[0].id, T0 + 1) == 2
        assert store.consume_recovery_code("alice", records[0].id, T0 + 2) is None

        used = attrs.evolve(challenge, attempts=1, used=True)
        outcome = _terminated_while_waiting(
            admin,
            application,
            f'SELECT 1 FROM "{schema}".mfa_oob_challenges WHERE challenge_id = :c FOR UPDATE',  # noqa: S608
            {"c": challenge.challenge_id},
            lambda: store.update_challenge(used, expected=challenge),
        )
        assert isinstance(outcome, StoreUnavailable), outcome
        assert store.get_challenge(challenge.challenge_id) == challenge  # unchanged
        assert store.update_challenge(used, expected=challenge)
        assert not store.update_challenge(used, expected=challenge)  # used exactly once
    finally:
        made.dispose()


def test_pre_ping_replaces_a_terminated_connection_silently(
    postgres_url: str, postgres_schema: str, admin: sa.Engine
) -> None:
    application = unique("mfa-ping-")
    made = postgres_engine(
        postgres_url,
        postgres_schema,
        pool_size=1,
        pool_pre_ping=True,
        connect_args={"application_name": application},
    )
    try:
        store = SQLStore(made)
        credential = _credential()
        store.add(credential)
        assert _terminate(admin, application) == 1
        assert store.claim(credential.id, 1, drift=0)  # the ping found it dead first
    finally:
        made.dispose()


def _terminated_while_waiting(
    admin: sa.Engine, application: str, lock_sql: str, params: dict[str, Any], call: Any
) -> object:
    """Hold a row lock so that ``call``'s statement waits on it, terminate the store's
    backend while it waits, release the lock; return what ``call`` returned or raised."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:
            outcome.append(exc)

    with admin.connect() as holder:
        holder.execute(sa.text(lock_sql), params)  # in a transaction: the lock is held
        worker = threading.Thread(target=run)
        worker.start()
        deadline = time.monotonic() + 10
        while True:
            with admin.connect() as probe:
                waiting = probe.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE application_name = :name AND wait_event_type = 'Lock'"
                    ),
                    {"name": application},
                ).scalar_one()
            if waiting:
                break
            assert time.monotonic() < deadline, "the store's statement never waited"
            time.sleep(0.02)
        assert _terminate(admin, application) == 1
        worker.join(10)
        assert not worker.is_alive()
        holder.rollback()
    return outcome[0]


def test_backend_terminated_while_a_statement_runs(
    postgres_url: str, postgres_schema: str, admin: sa.Engine
) -> None:
    application = unique("mfa-inflight-")
    made = postgres_engine(
        postgres_url, postgres_schema, pool_size=1, connect_args={"application_name": application}
    )
    try:
        store = SQLStore(made)
        credential = _credential()
        store.add(credential)
        assert store.claim(credential.id, 10, drift=0)
        store.admit_attempt("alice", T0, OPEN)
        schema = postgres_schema

        outcome = _terminated_while_waiting(
            admin,
            application,
            f'SELECT 1 FROM "{schema}".mfa_credentials WHERE id = :id FOR UPDATE',  # noqa: S608
            {"id": credential.id},
            lambda: store.claim(credential.id, 11, drift=0),
        )
        assert isinstance(outcome, StoreUnavailable), outcome
        got = store.get(credential.id)  # the next call works
        assert got is not None and got.last_accepted == 10  # the claim was not applied

        outcome = _terminated_while_waiting(
            admin,
            application,
            f'SELECT 1 FROM "{schema}".mfa_failures WHERE user_id = :u FOR UPDATE',  # noqa: S608
            {"u": "alice"},
            lambda: store.admit_attempt("alice", T0 + 1, OPEN),
        )
        assert isinstance(outcome, StoreUnavailable), outcome
        assert store.get_failures("alice") == FailureState(1, T0)  # not counted

        outcome = _terminated_while_waiting(
            admin,
            application,
            f'SELECT 1 FROM "{schema}".mfa_credentials WHERE id = :id FOR UPDATE',  # noqa: S608
            {"id": credential.id},
            lambda: store.claim_and_reset(credential.id, 11, drift=0, user_id="alice"),
        )
        assert isinstance(outcome, StoreUnavailable), outcome
        assert store.get_failures("alice") == FailureState(1, T0)  # not reset

        assert store.claim(credential.id, 11, drift=0)
        assert store.admit_attempt("alice", T0 + 2, OPEN).state.count == 2
    finally:
        made.dispose()


# -- admissions: exactly throttle.admit, atomically ------------------------------------------

_YEAR = 365 * 86400.0


@st.composite
def _limits(draw: st.DrawFn) -> ThrottleConfig:
    """Any valid ThrottleConfig, with the edges (zero delays, equal bounds, no lockout)
    drawn often."""
    max_delay = draw(st.sampled_from([0.0, 1.0, 60.0, 86400.0]) | st.floats(0, 86400))
    base = draw(st.sampled_from([0.0, max_delay, max_delay / 3]) | st.floats(0, max_delay))
    floor = max(max_delay, 1e-6)
    lockout = draw(
        st.none() | st.sampled_from([floor, max(900.0, floor)]) | st.floats(floor, _YEAR)
    )
    failures = draw(st.integers(1, 12) | st.just(100))
    return ThrottleConfig(
        max_failures=failures, base_delay=base, max_delay=max_delay, lockout=lockout
    )


# A step: reset, or an attempt (through admit_attempt or begin_attempt) at a time either
# moved by a delta from the previous one (negative: a worker whose clock is behind) or set
# at an edge of the current state (the end of its delay or lock, or the double just
# before or after it), where Python's and SQL's arithmetic must agree to the last bit.
_STEP = st.one_of(
    st.tuples(st.just("reset"), st.just(""), st.just(0.0)),
    st.tuples(
        st.sampled_from(["admit", "begin"]),
        st.just("delta"),
        st.sampled_from([0.0, 0.5, 1.0, -1.0]) | st.floats(-100, 2 * 86400),
    ),
    st.tuples(
        st.sampled_from(["admit", "begin"]),
        st.sampled_from(["delay", "lockout"]),
        st.sampled_from([-1.0, 0.0, 1.0]),
    ),
)


def _when(state: FailureState, previous: float, how: str, amount: float, limits: Any) -> float:
    if how == "delta" or state.last_failure_at is None:
        return max(0.0, previous + amount)
    wait = delay_after(state.count, limits) if how == "delay" else (limits.lockout or _YEAR)
    edge = state.last_failure_at + wait
    if amount:
        edge = math.nextafter(edge, math.copysign(math.inf, amount))
    return max(0.0, edge)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    limits=_limits(),
    start=st.sampled_from([T0, 0.0, 0.1]) | st.floats(0, 4e9),
    steps=st.lists(_STEP, min_size=1, max_size=30),
)
def test_admissions_agree_with_throttle_admit(
    store: SQLStore, limits: ThrottleConfig, start: float, steps: list[tuple[str, str, float]]
) -> None:
    """Over any sequence of calls, admit_attempt and begin_attempt return exactly what
    mfa_core.throttle.admit returns on the state they store (which matches too), to the
    last bit of every double: the throttle's decision is made in SQL."""
    user = unique("h-")
    credential = _credential(user)
    store.add(credential)
    state, now = FailureState(), start
    for operation, how, amount in steps:
        if operation == "reset":
            store.reset(user)
            state = FailureState()
            continue
        now = _when(state, now, how, amount, limits)
        expected = admit(state, now, limits)
        if operation == "admit":
            assert store.admit_attempt(user, now, limits) == expected, (state, now)
        else:
            admission, credentials = store.begin_attempt(user, now, limits)
            assert admission == expected, (state, now)
            assert list(credentials) == ([credential] if expected.admitted else [])
        state = expected.state
        assert store.get_failures(user) == state
    assert store.get_failures(user) == state


def test_a_refusal_reports_the_state_that_refused_it(store: SQLStore) -> None:
    limits = ThrottleConfig(max_failures=3, base_delay=10, max_delay=40, lockout=900)
    assert store.admit_attempt("bob", T0, limits) == Admission(True, FailureState(1, T0))
    refused = store.admit_attempt("bob", T0 + 9.5, limits)
    assert refused == Admission(False, FailureState(1, T0))
    assert check(refused.state, T0 + 9.5, limits).retry_after == 0.5
    assert store.begin_attempt("bob", T0 + 9.5, limits) == (refused, ())
    assert store.admit_attempt("bob", T0 + 10, limits).state == FailureState(2, T0 + 10)
    assert store.admit_attempt("bob", T0 + 30, limits).state == FailureState(3, T0 + 30)
    locked = store.admit_attempt("bob", T0 + 929, limits)  # 899 s into the lock
    assert locked == Admission(False, FailureState(3, T0 + 30))
    assert check(locked.state, T0 + 929, limits).locked
    forever = ThrottleConfig(max_failures=3, base_delay=10, max_delay=40, lockout=None)
    assert not store.admit_attempt("bob", T0 + 10**7, forever).admitted
    assert store.admit_attempt("bob", T0 + 930, limits) == Admission(
        True, FailureState(4, T0 + 930)
    )  # the lock ran out: admitted, and locked again at once
    assert not store.admit_attempt("bob", T0 + 930, limits).admitted
    assert store.get_failures("bob") == FailureState(4, T0 + 930)


def test_admission_arguments_are_checked(store: SQLStore) -> None:
    for call in (
        lambda: store.admit_attempt("", T0, OPEN),
        lambda: store.admit_attempt("alice", float("nan"), OPEN),
        lambda: store.admit_attempt("alice", -1.0, OPEN),
        lambda: store.admit_attempt("alice", "1", OPEN),  # type: ignore[arg-type]
        lambda: store.admit_attempt("alice", T0, None),  # type: ignore[arg-type]
        lambda: store.begin_attempt("alice", T0, {"max_failures": 3}),  # type: ignore[arg-type]
        lambda: store.begin_attempt(7, T0, OPEN),  # type: ignore[arg-type]
        lambda: store.claim_and_reset("c", -1, drift=0, user_id="alice"),
        lambda: store.claim_and_reset("c", 2**63, drift=0, user_id="alice"),
        lambda: store.claim_and_reset("c", 1, drift=2**63, user_id="alice"),
        lambda: store.claim_and_reset("c", 1, drift=0, user_id=""),
        lambda: store.claim_and_reset("", 1, drift=0, user_id="alice"),
    ):
        with pytest.raises(InvalidParameter):
            call()
    assert store.get_failures("alice") == FailureState()


def _damaged_rows(dialect: str) -> list[tuple[int, float | None]]:
    rows: list[tuple[int, float | None]] = [(-1, T0), (2, None)]
    if dialect == "postgresql":  # SQLite stores a NaN as NULL
        rows += [(2, math.nan), (2, math.inf), (0, -math.inf)]
    elif dialect == "sqlite":
        rows += [(2, math.inf)]
    # MariaDB/MySQL cannot store a non-finite double at all
    return rows


def test_a_damaged_failure_row_is_a_store_error_and_stays_as_it_was(
    store: SQLStore, engine: sa.Engine
) -> None:
    for count, last in _damaged_rows(engine.dialect.name):
        user = unique("dmg-")
        with engine.begin() as connection:
            connection.execute(
                failures_table.insert().values(user_id=user, count=count, last_failure_at=last)
            )
        for method in (store.admit_attempt, store.begin_attempt):
            with pytest.raises(StoreError, match="cannot read"):
                method(user, T0, OPEN)
        with engine.connect() as connection:
            stored = connection.execute(
                sa.select(failures_table.c.count, failures_table.c.last_failure_at).where(
                    failures_table.c.user_id == user
                )
            ).one()
        assert stored[0] == count, (count, last)
        assert (stored[1] is None and last is None) or (
            stored[1] == last or (math.isnan(stored[1]) and math.isnan(last))  # type: ignore[arg-type]
        )


def test_begin_attempt_returns_the_users_credentials_only_when_admitted(store: SQLStore) -> None:
    limits = ThrottleConfig(max_failures=2, base_delay=0, max_delay=0, lockout=60)
    first = _credential("carol", created_at=T0 + 5)
    second = _credential("carol", created_at=T0)
    third = _credential("carol", created_at=T0 + 5)
    for credential in (first, second, third):
        store.add(credential)
    store.add(_credential("dave"))
    admission, credentials = store.begin_attempt("carol", T0, limits)
    assert admission == Admission(True, FailureState(1, T0))
    assert list(credentials) == [second, first, third] == list(store.list_for_user("carol"))
    assert store.begin_attempt("erin", T0, limits) == (Admission(True, FailureState(1, T0)), [])
    assert store.begin_attempt("carol", T0, limits)[0].state.count == 2
    assert store.begin_attempt("carol", T0 + 1, limits) == (
        Admission(False, FailureState(2, T0)),
        (),
    )


def test_claim_and_reset_resets_only_when_the_claim_wins(store: SQLStore) -> None:
    credential = _credential("frank")
    store.add(credential)
    for user in ("frank", "grace"):
        store.admit_attempt(user, T0, OPEN)
    assert store.claim_and_reset(credential.id, 5, drift=-1, user_id="frank")
    assert store.get_failures("frank") == FailureState()
    assert store.get_failures("grace") == FailureState(1, T0)  # another user: untouched
    got = store.get(credential.id)
    assert got is not None and (got.last_accepted, got.drift) == (5, -1)
    store.admit_attempt("frank", T0, OPEN)
    assert not store.claim_and_reset(credential.id, 5, drift=3, user_id="frank")  # a replay
    assert not store.claim_and_reset("no-such-credential", 9, drift=0, user_id="frank")
    assert store.get_failures("frank") == FailureState(1, T0)  # kept: no claim won
    got = store.get(credential.id)
    assert got is not None and (got.last_accepted, got.drift) == (5, -1)
    # the claim's user is whichever the caller names (the port: claim, then reset user_id)
    assert store.claim_and_reset(credential.id, 6, drift=0, user_id="grace")
    assert store.get_failures("grace") == FailureState()
    assert store.claim_and_reset(credential.id, 7, drift=0, user_id="nobody")  # no row


# -- statements per operation ----------------------------------------------------------------


class Statements:
    """What an engine's connections execute: every statement sent to the driver's cursor
    (``before_cursor_execute``), and the SQLAlchemy statement object behind it
    (``before_execute``). pysqlite's implicit ``BEGIN`` and the ``COMMIT`` of a
    transaction are driver calls, not cursor statements, so they are not counted here."""

    def __init__(self, made: sa.Engine) -> None:
        self.sent: list[str] = []
        self.objects: list[object] = []
        self.engine = made
        sa.event.listen(made, "before_cursor_execute", self._sent)
        sa.event.listen(made, "before_execute", self._object)

    def _sent(self, connection: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.sent.append(statement.split(None, 1)[0].upper())

    def _object(self, connection: Any, clause: object, *args: Any) -> None:
        self.objects.append(clause)

    def take(self) -> list[str]:
        taken, self.sent, self.objects = self.sent, [], []
        return taken

    def close(self) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._sent)
        sa.event.remove(self.engine, "before_execute", self._object)


@pytest.mark.parametrize("engine", ["postgresql", "sqlite"], indirect=True)
def test_statements_per_attempt_operation(engine: sa.Engine) -> None:
    """PostgreSQL: admit_attempt, begin_attempt and claim_and_reset are each ONE statement
    (a ``WITH`` query), admitted or refused, won or lost, and the very statement object
    built once at import. SQLite: the upsert, then the row (refused) or the credentials
    (begin_attempt, admitted); the claim, then the reset (won)."""
    store = SQLStore(engine)
    limits = ThrottleConfig(max_failures=2, base_delay=0, max_delay=0, lockout=60)
    credential = _credential("heidi")
    store.add(credential)
    postgres = engine.dialect.name == "postgresql"
    counter = Statements(engine)
    try:
        calls = [
            ("admit, admitted", lambda: store.admit_attempt("heidi", T0, limits), 1),
            ("begin, admitted", lambda: store.begin_attempt("heidi", T0, limits), 2),
            ("admit, refused", lambda: store.admit_attempt("heidi", T0, limits), 2),
            ("begin, refused", lambda: store.begin_attempt("heidi", T0, limits), 2),
            (
                "claim_and_reset, won",
                lambda: store.claim_and_reset(credential.id, 1, drift=0, user_id="heidi"),
                2,
            ),
            (
                "claim_and_reset, lost",
                lambda: store.claim_and_reset(credential.id, 1, drift=0, user_id="heidi"),
                1,
            ),
        ]
        built = {
            "admit": sql._PG_ADMIT if postgres else sql._SQLITE_ADMIT,
            "begin": sql._PG_BEGIN if postgres else sql._SQLITE_ADMIT,
            "claim_and_reset": sql._PG_CLAIM_AND_RESET if postgres else sql._CLAIM,
        }
        for name, call, on_sqlite in calls:
            counter.take()
            call()
            first = counter.objects[0]
            sent = counter.take()
            assert len(sent) == (1 if postgres else on_sqlite), (name, sent)
            if postgres:
                assert sent == ["WITH"], name
            assert first is built[name.split(",")[0]], name
        assert store.get_failures("heidi") == FailureState()
    finally:
        counter.close()


def test_attempt_operations_are_one_round_trip_on_postgresql(
    postgres_url: str, postgres_schema: str
) -> None:
    """libpq's protocol trace: one round trip (one ``Sync``) per call, admitted or
    refused, won or lost. The store's PostgreSQL connections are in autocommit mode, so
    no ``BEGIN`` or ``COMMIT`` is ever sent: the statement is its own transaction."""
    made = postgres_engine(postgres_url, postgres_schema, pool_size=1)
    counter = RoundTrips(made)
    try:
        store = SQLStore(made)
        limits = ThrottleConfig(max_failures=1, base_delay=0, max_delay=0, lockout=60)
        credential = _credential("ivan")
        store.add(credential)
        values = iter(range(1, 1000))
        rounds = [
            ("admit, admitted", lambda: store.admit_attempt("ivan", T0, limits).admitted),
            ("admit, refused", lambda: not store.admit_attempt("ivan", T0, limits).admitted),
            (
                "claim_and_reset, won",
                lambda: store.claim_and_reset(credential.id, next(values), drift=0, user_id="ivan"),
            ),
            ("begin, admitted", lambda: store.begin_attempt("ivan", T0, limits)[1] != ()),
            ("begin, refused", lambda: store.begin_attempt("ivan", T0, limits)[1] == ()),
            (
                "claim_and_reset, lost",
                lambda: not store.claim_and_reset(credential.id, 1, drift=0, user_id="ivan"),
            ),
            ("reset", lambda: store.reset("ivan") is None),
        ]
        for _ in range(6):  # psycopg prepares on the 5th execution: warm up first
            for _, call in rounds:
                assert call()
        counter.take()
        for name, call in rounds:
            assert call(), name
            assert counter.take() == 1, name
    finally:
        made.dispose()
        counter.close()


@pytest.mark.parametrize("engine", ["postgresql", "sqlite"], indirect=True)
def test_a_refusal_without_its_state_is_retried_then_a_store_error(
    store: SQLStore, engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The admission runs again when its answer is a refusal without the state that
    refused it (the race of ``_pg_admission``), three times in all, then StoreError;
    nothing is written. Simulated by statements that always answer so."""
    if engine.dialect.name == "postgresql":
        # a "refusal" with a state that allows the attempt, then one with no row at all
        stale: Any = sa.select(sa.false(), sa.literal(0), sa.null())
        monkeypatch.setattr(sql, "_PG_ADMIT", stale)
        monkeypatch.setattr(sql, "_PG_BEGIN", stale.where(sa.false()))
    else:
        monkeypatch.setattr(sql, "_SQLITE_ADMIT", sa.select(sa.literal(1)).where(sa.false()))
    counter = Statements(engine)
    try:
        for call in (
            lambda: store.admit_attempt("judy", T0, OPEN),
            lambda: store.begin_attempt("judy", T0, OPEN),
        ):
            with pytest.raises(StoreError, match="could not read the failure state"):
                call()
            per_try = 1 if engine.dialect.name == "postgresql" else 2
            assert len(counter.take()) == 3 * per_try
    finally:
        counter.close()
    assert store.get_failures("judy") == FailureState()


# -- admissions under concurrency --------------------------------------------------------------


def _race(threads: int, body: Any) -> list[Any]:
    """Run ``body(index)`` in ``threads`` threads released at once; their results."""
    barrier = threading.Barrier(threads)
    results: list[Any] = [None] * threads
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait(30)
            results[index] = body(index)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert not errors, errors[:3]
    return results


@pytest.fixture
def wide_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """An engine with a pool for 32 threads, on PostgreSQL."""
    url = request.getfixturevalue("postgres_url")
    schema = request.getfixturevalue("postgres_schema")
    made = postgres_engine(url, schema, pool_size=16, max_overflow=16, pool_timeout=60)
    yield made
    made.dispose()


def test_32_threads_are_admitted_exactly_max_failures_times(wide_engine: sa.Engine) -> None:
    store = SQLStore(wide_engine)
    limits = ThrottleConfig(max_failures=10, base_delay=0, max_delay=0, lockout=900)
    for round_ in range(5):
        user = unique("t32-")
        results = _race(
            32, lambda _, user=user: [store.admit_attempt(user, T0, limits) for _ in range(3)]
        )
        admissions = [admission for result in results for admission in result]
        assert sum(admission.admitted for admission in admissions) == 10, round_
        assert sorted(a.state.count for a in admissions if a.admitted) == list(range(1, 11))
        assert all(a.state == FailureState(10, T0) for a in admissions if not a.admitted)
        assert store.get_failures(user) == FailureState(10, T0)


def test_concurrent_first_attempts_each_report_the_state_that_refused_them(
    wide_engine: sa.Engine,
) -> None:
    """A new user's first attempts, 32 at once, with a delay after one failure: one is
    admitted, and every refusal comes with the state that refused it - also those whose
    statement began before the first row existed (their ``prior`` read is empty: the
    statement runs again)."""
    store = SQLStore(wide_engine)
    limits = ThrottleConfig(max_failures=10, base_delay=5, max_delay=60, lockout=900)
    counter = Statements(wide_engine)
    try:
        for round_ in range(5):
            user = unique("first-")

            def attempt(index: int, user: str = user) -> Admission:
                if index % 2:
                    return store.admit_attempt(user, T0, limits)
                return store.begin_attempt(user, T0, limits)[0]

            admissions = _race(32, attempt)
            assert sum(admission.admitted for admission in admissions) == 1, round_
            assert all(admission.state == FailureState(1, T0) for admission in admissions)
        assert len(counter.take()) >= 5 * 32
    finally:
        counter.close()


def test_claim_and_reset_from_16_threads_wins_once(wide_engine: sa.Engine) -> None:
    store = SQLStore(wide_engine)
    credential = _credential("kim")
    store.add(credential)
    for value in range(1, 6):
        store.admit_attempt("kim", T0, OPEN)
        won = _race(
            16,
            lambda _, value=value: store.claim_and_reset(
                credential.id, value, drift=0, user_id="kim"
            ),
        )
        assert won.count(True) == 1, value
        assert store.get_failures("kim") == FailureState()


# -- MariaDB / MySQL ------------------------------------------------------------------------

LOOKALIKE_IDS = ["alice", "ALICE", "alice ", "alice  ", " alice", "Alice", "alic\u00e9", "alice\t"]
"""Ids a case-insensitive or PAD SPACE collation would take for one: all distinct users."""


@pytest.fixture
def latin1_database(mariadb_url: str) -> Iterator[str]:
    """An empty MariaDB database whose defaults are the worst for ids: latin1 with its
    case-insensitive, PAD SPACE collation."""
    database = unique("mfa_latin1_")
    create_mariadb_database(mariadb_url, database, tables=False)
    mariadb_admin(
        mariadb_url, f"ALTER DATABASE `{database}` CHARACTER SET latin1 COLLATE latin1_swedish_ci"
    )
    try:
        yield database
    finally:
        drop_mariadb_database(mariadb_url, database)


@pytest.mark.parametrize("how", ["create_schema", "ddl"])
def test_mariadb_ids_compare_byte_exactly_whatever_the_database_default(
    mariadb_url: str, latin1_database: str, how: str
) -> None:
    made = mariadb_engine(mariadb_url, latin1_database)
    try:
        if how == "create_schema":
            create_schema(made)
        else:
            with made.begin() as connection:
                connection.exec_driver_sql(f"USE `{latin1_database}`")
                for statement in schema_ddl("mysql").split(";\n"):
                    if statement.strip():
                        connection.exec_driver_sql(statement)
        store = SQLStore(made)
        for user in LOOKALIKE_IDS:
            store.add(_credential(user, label=f"\U0001f510 {user!r}"))
            assert store.admit_attempt(user, T0, OPEN).state.count == 1
            store.replace_recovery_codes(user, _records(1))
            store.put_challenge(_challenge(user_id=user))
            assert store.count_send(user, T0, T0 + 60) == 1
        for user in LOOKALIKE_IDS:
            (credential,) = store.list_for_user(user)
            assert credential.user_id == user and credential.label == f"\U0001f510 {user!r}"
            assert store.get_failures(user) == FailureState(1, T0)
            (record,) = store.recovery_codes(user)
            assert store.consume_recovery_code(user, record.id, T0) == 0
        # one id, padded or re-cased, is another credential: not found, not claimable
        credential = _credential("bob", id="cred-x")
        store.add(credential)
        for other in ("CRED-X", "cred-x ", "cred-\u0445"):
            assert store.get(other) is None
            assert not store.claim(other, 5, drift=0)
        store.add(attrs.evolve(_credential("bob"), id="cred-x "))  # no duplicate-key clash
        assert store.claim("cred-x", 5, drift=0)
        assert store.get("cred-x ").last_accepted == -1  # type: ignore[union-attr]
    finally:
        made.dispose()


def test_mariadb_a_deadlocked_admission_runs_again(mariadb_url: str, mariadb_database: str) -> None:
    """A real InnoDB deadlock on REPEATABLE READ gap locks: another transaction and the
    store's admission both lock the gap between two failure rows, then both insert into
    it. InnoDB rolls back the lighter one (the store's); the store runs it again and the
    attempt is counted exactly once."""
    made = mariadb_engine(mariadb_url, mariadb_database, pool_size=2, max_overflow=2)
    deadlocks: list[int] = []

    @sa.event.listens_for(made, "handle_error")
    def seen(context: Any) -> None:
        if getattr(context.original_exception, "args", (None,))[0] == 1213:
            deadlocks.append(1)

    try:
        store = SQLStore(made)
        pauses: list[float] = []
        store._pause = lambda seconds: (pauses.append(seconds), time.sleep(seconds))[1]
        for user in ("a", "z"):
            store.admit_attempt(user, T0, OPEN)
        outcome: list[Any] = []
        other = made.connect()
        try:
            other.begin()
            for n in range(50):  # weight: InnoDB picks the transaction with less undo
                other.execute(
                    sql.send_counters_table.insert().values(
                        key=f"w{n}", window_start=T0, count=1, expires_at=T0 + 1
                    )
                )
            other.execute(
                sa.select(failures_table.c.count)
                .where(failures_table.c.user_id == "m")
                .with_for_update()
            )
            worker = threading.Thread(
                target=lambda: outcome.append(store.admit_attempt("n", T0, OPEN))
            )
            worker.start()
            time.sleep(1.0)  # the store's INSERT now waits for our gap lock
            other.execute(failures_table.insert().values(user_id="o", count=1, last_failure_at=T0))
            other.commit()
        finally:
            other.close()
        worker.join(60)
        assert deadlocks, "no deadlock happened: the test tested nothing"
        # one pause per deadlock lost, within the first ceiling (1 ms)
        assert len(pauses) == len(deadlocks) and all(0 <= p <= 0.001 for p in pauses)
        assert outcome == [Admission(True, FailureState(1, T0))]
        assert store.get_failures("n") == FailureState(1, T0)
        assert store.get_failures("o") == FailureState(1, T0)
    finally:
        made.dispose()


def test_mariadb_concurrent_first_attempts_are_each_counted(
    mariadb_url: str, mariadb_database: str
) -> None:
    """16 threads make the first attempts of 12 new users at once (gap locks, inserts of
    one key racing): every call is admitted and counted exactly once."""
    made = mariadb_engine(mariadb_url, mariadb_database, pool_size=16, max_overflow=0)
    try:
        store = SQLStore(made)
        users = [unique("new-") for _ in range(12)]
        barrier = threading.Barrier(16)
        errors: list[BaseException] = []

        def hammer() -> None:
            try:
                barrier.wait(timeout=60)
                for user in users:
                    store.admit_attempt(user, T0, OPEN)
            except BaseException as exc:
                errors.append(exc)

        workers = [threading.Thread(target=hammer) for _ in range(16)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(120)
        assert errors == []
        assert [store.get_failures(user).count for user in users] == [16] * len(users)
    finally:
        made.dispose()


# -- schema versions -----------------------------------------------------------------------


def _versions(engine: sa.Engine) -> list[int]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(sql.schema_version_table.c.version).order_by(
                sql.schema_version_table.c.version
            )
        ).all()
    return [row[0] for row in rows]


def test_a_database_of_an_older_release_is_migrated(engine: sa.Engine) -> None:
    """A database made before the version table existed (version 0) and missing a table a
    later release added: create_schema adds what is missing, keeps the data, records the
    version; check_schema refuses the old one and accepts the migrated one."""
    store = SQLStore(engine)
    credential = _credential()
    store.add(credential)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE " + _qualified(engine, "mfa_schema_version")))
        connection.execute(sa.text("DROP TABLE " + _qualified(engine, "mfa_send_counters")))
    with pytest.raises(StoreError, match=r"schema version 0, older .* run create_schema"):
        sql.check_schema(engine)
    create_schema(engine)
    assert _versions(engine) == [sql.SCHEMA_VERSION]
    sql.check_schema(engine)
    assert store.get(credential.id) == credential
    assert store.count_send("k", T0, T0 + 60) == 1  # the added table works
    create_schema(engine)  # again: nothing to do
    assert _versions(engine) == [sql.SCHEMA_VERSION]


def test_a_database_of_a_newer_release_is_refused(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        connection.execute(
            sql.schema_version_table.insert().values(
                version=sql.SCHEMA_VERSION + 1, applied_at=T0, description="from the future"
            )
        )
    for checker in (create_schema, sql.check_schema):
        with pytest.raises(StoreError, match=r"newer than the .* upgrade mfa_core") as caught:
            checker(engine)
        assert caught.value.code is ErrorCode.STORE_SCHEMA_TOO_NEW
    assert _versions(engine) == [sql.SCHEMA_VERSION, sql.SCHEMA_VERSION + 1]


def _qualified(engine: sa.Engine, table: str) -> str:
    """``table`` in the schema the engine's schema_translate_map puts it in."""
    schema = (engine.get_execution_options().get("schema_translate_map") or {}).get(None)
    if schema is None:
        return table
    quote = "`" if engine.dialect.name in ("mysql", "mariadb") else '"'
    return f"{quote}{schema}{quote}.{table}"


def test_a_failed_statement_leaves_no_parameter_in_the_error_chain(store: SQLStore) -> None:
    # A duplicate id is refused by the database; SQLAlchemy's wrapper of that refusal
    # quotes the statement's parameters (the sealed key among them): it must not be
    # reachable from the store's error, not even as the hidden __context__.
    credential = _credential()
    store.add(credential)
    twin = attrs.evolve(credential, sealed_key=b"SEALED-KEY-BYTES-" + os.urandom(8))
    with pytest.raises(StoreError) as caught:
        store.add(twin)
    reachable = chain(caught.value)
    assert not any(isinstance(item, sa.exc.SQLAlchemyError) for item in reachable)
    text = "".join(str(item) + repr(item.args) for item in reachable)
    assert "SEALED-KEY-BYTES" not in text and twin.sealed_key.hex() not in text


@given(st.integers(min_value=1, max_value=10_000), st.floats(min_value=0.0, max_value=1.0))
def test_a_deadlock_backoff_is_jittered_under_a_doubling_capped_ceiling(
    losses: int, draw: float
) -> None:
    """The pause after the ``losses``-th deadlock in a row is ``draw`` of a ceiling that
    starts at 1 ms, doubles with each loss and stops at 50 ms (no overflow however many)."""
    ceiling = min(0.05, 0.001 * 2 ** min(losses - 1, 32))
    assert sql._mysql_pause(losses, lambda: draw) == pytest.approx(draw * ceiling)
    assert 0.0 <= sql._mysql_pause(losses) <= ceiling


def test_deadlocked_runs_pause_between_tries_and_give_up_after_the_last(
    mariadb_url: str, mariadb_database: str
) -> None:
    """A transaction InnoDB keeps rolling back (error 1213 every time, here injected) runs
    :data:`~mfa_core.stores.sql._MYSQL_TRIES` times with a pause between two runs, then is
    a StoreUnavailable; any other error is not run again."""
    made = mariadb_engine(mariadb_url, mariadb_database, pool_size=1, max_overflow=0)
    try:
        store = SQLStore(made)
        pauses: list[float] = []
        store._pause = pauses.append
        runs: list[int] = []

        def deadlocking(connection: sa.Connection) -> None:
            runs.append(1)
            connection.exec_driver_sql(
                "SIGNAL SQLSTATE '40001' SET MYSQL_ERRNO = 1213, MESSAGE_TEXT = 'deadlock'"
            )

        with pytest.raises(StoreUnavailable):
            store._transaction("admit_attempt", deadlocking)
        assert len(runs) == sql._MYSQL_TRIES and len(pauses) == sql._MYSQL_TRIES - 1
        assert all(0 <= p <= min(0.05, 0.001 * 2**n) for n, p in enumerate(pauses))
        runs.clear()
        pauses.clear()

        def failing(connection: sa.Connection) -> None:
            runs.append(1)
            connection.exec_driver_sql("SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 1644")

        with pytest.raises(StoreError):
            store._transaction("admit_attempt", failing)
        assert runs == [1] and pauses == []
    finally:
        made.dispose()
