"""SQLiteStore's file: versioned schema and migrations, reopening, WAL, durability across
reopen, refusing files it does not understand, and turning every sqlite3 failure into a
typed store error."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mfa_core.stores.sqlite as sqlite_module
from mfa_core.errors import ErrorCode, InvalidParameter, StoreError, StoreUnavailable
from mfa_core.models import Credential, CredentialKind, CredentialState, FailureState
from mfa_core.otp import Algorithm
from mfa_core.stores.sqlite import MIGRATIONS, SCHEMA_VERSION, Migration, SQLiteStore
from mfa_core.throttle import ThrottleConfig

T0 = 1_800_000_000.0
NO_DELAY = ThrottleConfig(max_failures=100, base_delay=0.0, max_delay=0.0, lockout=900.0)


def _credential(credential_id: str = "c1", **changes: Any) -> Credential:
    fields: dict[str, Any] = {
        "id": credential_id,
        "user_id": "alice",
        "kind": CredentialKind.HOTP,
        "sealed_key": b"\x00\xffsealed",
        "created_at": T0 + 0.5,
        "status": CredentialState.ACTIVE,
        "algorithm": Algorithm.SHA256,
        "digits": 8,
        "label": "token",
        "confirmed_at": T0 + 60.25,
        "renewed_at": T0 + 60.25,
    }
    fields.update(changes)
    return Credential(**fields)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "mfa.sqlite3"


@pytest.fixture
def raw(path: Path) -> Iterator[Any]:
    """Open a plain sqlite3 connection to the file (after the store has created it)."""
    opened: list[sqlite3.Connection] = []

    def connect() -> sqlite3.Connection:
        connection = sqlite3.connect(path, isolation_level=None)
        opened.append(connection)
        return connection

    yield connect
    for connection in opened:
        connection.close()


def _schema(connection: sqlite3.Connection) -> list[tuple[str, str]]:
    rows = connection.execute(
        "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name"
    ).fetchall()
    return [(name, sql) for name, sql in rows]


def test_migrations_are_numbered_one_by_one() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert MIGRATIONS[-1].version == SCHEMA_VERSION
    assert all(m.description and m.statements for m in MIGRATIONS)


def test_a_new_file_records_its_schema_version(path: Path, raw: Any) -> None:
    with SQLiteStore(path) as store:
        assert store.schema_version() == SCHEMA_VERSION
        rows = (
            raw()
            .execute(
                "SELECT version, description, applied_at FROM mfa_schema_version ORDER BY version"
            )
            .fetchall()
        )
    assert [(v, d) for v, d, _ in rows] == [(m.version, m.description) for m in MIGRATIONS]
    assert all(isinstance(at, float) and at > 1.6e9 for _, _, at in rows)
    tables = {name for name, _ in _schema(raw())}
    assert {"mfa_credentials", "mfa_failures", "mfa_schema_version"} <= tables


def test_reopening_is_idempotent(path: Path, raw: Any) -> None:
    SQLiteStore(path).close()
    before = _schema(raw())
    versions = raw().execute("SELECT count(*) FROM mfa_schema_version").fetchone()[0]
    for _ in range(3):
        SQLiteStore(path).close()
    assert _schema(raw()) == before
    assert raw().execute("SELECT count(*) FROM mfa_schema_version").fetchone()[0] == versions


def test_many_threads_opening_a_new_file_at_once_create_the_schema_once(path: Path) -> None:
    barrier = threading.Barrier(12)
    stores: list[SQLiteStore] = []
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            barrier.wait(30)
            stores.append(SQLiteStore(path))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert len(stores) == 12
    stores[0].add(_credential())
    assert all(store.get("c1") == _credential() for store in stores)
    for store in stores:
        store.close()
    with sqlite3.connect(path) as connection:
        versions = connection.execute("SELECT version FROM mfa_schema_version").fetchall()
    connection.close()
    assert versions == [(m.version,) for m in MIGRATIONS]


def test_a_file_from_a_newer_release_is_refused_untouched(path: Path, raw: Any) -> None:
    SQLiteStore(path).close()
    raw().execute(
        "INSERT INTO mfa_schema_version (version, applied_at, description) VALUES (?, 0, 'x')",
        (SCHEMA_VERSION + 1,),
    )
    before = _schema(raw())
    with pytest.raises(StoreError) as raised:
        SQLiteStore(path)
    assert raised.value.code is ErrorCode.STORE_SCHEMA_TOO_NEW
    assert str(SCHEMA_VERSION + 1) in str(raised.value)
    assert _schema(raw()) == before
    rows = raw().execute("SELECT max(version) FROM mfa_schema_version").fetchone()
    assert rows == (SCHEMA_VERSION + 1,)


def test_an_older_file_is_migrated_step_by_step(
    path: Path, raw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SQLiteStore(path) as store:
        store.add(_credential())
    step = Migration(
        version=SCHEMA_VERSION + 1,
        description="test step",
        statements=("CREATE TABLE mfa_test_extra (id TEXT PRIMARY KEY)",),
    )
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", (*MIGRATIONS, step))
    monkeypatch.setattr(sqlite_module, "SCHEMA_VERSION", step.version)
    with SQLiteStore(path) as store:
        assert store.schema_version() == step.version
        assert store.get("c1") == _credential()  # data kept through the migration
    versions = [v for (v,) in raw().execute("SELECT version FROM mfa_schema_version")]
    assert versions == [*(m.version for m in MIGRATIONS), step.version]
    assert "mfa_test_extra" in {name for name, _ in _schema(raw())}


def test_a_failing_migration_changes_nothing(
    path: Path, raw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    SQLiteStore(path).close()
    before = _schema(raw())
    broken = Migration(
        version=SCHEMA_VERSION + 1,
        description="broken step",
        statements=(
            "CREATE TABLE mfa_half_done (id TEXT)",
            "THIS IS NOT SQL",
        ),
    )
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", (*MIGRATIONS, broken))
    monkeypatch.setattr(sqlite_module, "SCHEMA_VERSION", broken.version)
    with pytest.raises(StoreError) as raised:
        SQLiteStore(path)
    assert raised.value.code is ErrorCode.STORE_ERROR
    assert _schema(raw()) == before  # the first statement of the step was rolled back
    monkeypatch.undo()
    with SQLiteStore(path) as store:
        assert store.schema_version() == SCHEMA_VERSION


def test_data_survives_closing_and_reopening(path: Path) -> None:
    credential = _credential()
    with SQLiteStore(path) as store:
        store.add(credential)
        assert store.claim("c1", 17, drift=-1)
        assert store.update(_credential(label="renamed"), expected_version=0)
        store.admit_attempt("alice", T0 + 1.5, NO_DELAY)
        store.admit_attempt("alice", T0 + 2.5, NO_DELAY)
    with SQLiteStore(path) as store:
        got = store.get("c1")
        assert got == _credential(label="renamed", last_accepted=17, drift=-1, version=1)
        assert got is not None and got.sealed_key == credential.sealed_key
        assert store.get_failures("alice") == FailureState(2, T0 + 2.5)
        assert not store.claim("c1", 17, drift=0)  # a replay stays a replay after restart


def test_the_file_is_in_wal_mode(path: Path, raw: Any) -> None:
    with SQLiteStore(path) as store:
        store.add(_credential())
        assert raw().execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert path.with_name(path.name + "-wal").exists()


def _busy_wal_switch(monkeypatch: pytest.MonkeyPatch, failures: int) -> list[str]:
    """Make ``PRAGMA journal_mode = WAL`` fail with an immediate ``SQLITE_BUSY`` (as it does
    while another process is switching a new file) for the first ``failures`` attempts."""
    attempts: list[str] = []
    execute = sqlite_module._Connection.execute

    def flaky(self: sqlite3.Connection, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "PRAGMA journal_mode = WAL":
            attempts.append(sql)
            if len(attempts) <= failures:
                error = sqlite3.OperationalError("database is locked")
                error.sqlite_errorcode = 5  # type: ignore[attr-defined]
                error.sqlite_errorname = "SQLITE_BUSY"  # type: ignore[attr-defined]
                raise error
        return execute(self, sql, *args)

    monkeypatch.setattr(sqlite_module._Connection, "execute", flaky)
    return attempts


def test_opening_retries_a_busy_switch_to_wal(
    path: Path, raw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts = _busy_wal_switch(monkeypatch, failures=3)
    with SQLiteStore(path) as store:
        store.add(_credential())
    assert len(attempts) == 4
    assert raw().execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_opening_gives_up_on_a_busy_switch_to_wal_after_the_timeout(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts = _busy_wal_switch(monkeypatch, failures=10**6)
    with pytest.raises(StoreUnavailable) as raised:
        SQLiteStore(path, timeout=0.1)
    assert "open failed (SQLITE_BUSY)" in str(raised.value)
    assert 2 <= len(attempts) < 1000  # retried, with pauses, then stopped


def test_opening_does_not_retry_other_errors_of_the_switch(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    execute = sqlite_module._Connection.execute
    attempts: list[str] = []

    def broken(self: sqlite3.Connection, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "PRAGMA journal_mode = WAL":
            attempts.append(sql)
            error = sqlite3.OperationalError("disk I/O error")
            error.sqlite_errorcode = 10  # type: ignore[attr-defined]
            error.sqlite_errorname = "SQLITE_IOERR"  # type: ignore[attr-defined]
            raise error
        return execute(self, sql, *args)

    monkeypatch.setattr(sqlite_module._Connection, "execute", broken)
    with pytest.raises(StoreUnavailable, match="SQLITE_IOERR"):
        SQLiteStore(path)
    assert len(attempts) == 1


def test_readers_are_not_blocked_by_a_writer_and_writers_time_out_typed(
    path: Path, raw: Any
) -> None:
    with SQLiteStore(path, timeout=0.2) as store:
        store.add(_credential())
        blocker = raw()
        blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            assert store.get("c1") == _credential()  # WAL: reads go on
            with pytest.raises(StoreUnavailable) as raised:
                store.claim("c1", 5, drift=0)
            assert raised.value.code is ErrorCode.STORE_UNAVAILABLE
            assert "SQLITE_BUSY" in str(raised.value)
            with pytest.raises(StoreUnavailable):
                store.admit_attempt("alice", T0, NO_DELAY)
        finally:
            blocker.execute("ROLLBACK")
        assert store.claim("c1", 5, drift=0)  # works again once the lock is gone
        assert store.get_failures("alice") == FailureState()


def test_synchronous_setting_is_applied(path: Path) -> None:
    for setting, level in (("FULL", 2), ("NORMAL", 1)):
        with SQLiteStore(path, synchronous=setting) as store:  # type: ignore[arg-type]
            # PRAGMA synchronous is per connection: read it from the store's own one.
            value = store._run("test", lambda c: c.execute("PRAGMA synchronous").fetchone()[0])
            assert value == level


def test_a_file_that_is_not_a_database_is_refused_typed(path: Path) -> None:
    path.write_bytes(b"this is not an SQLite database, just some bytes " * 100)
    with pytest.raises(StoreError) as raised:
        SQLiteStore(path)
    assert not isinstance(raised.value, StoreUnavailable)
    assert "NOTADB" in str(raised.value)


def test_a_missing_directory_is_reported_as_unavailable(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable) as raised:
        SQLiteStore(tmp_path / "no" / "such" / "dir.sqlite3")
    assert "CANTOPEN" in str(raised.value)


def test_an_unreadable_row_is_a_store_error_not_a_value_error(path: Path, raw: Any) -> None:
    with SQLiteStore(path) as store:
        store.add(_credential())
        raw().execute("UPDATE mfa_credentials SET algorithm = 'MD5' WHERE id = 'c1'")
        with pytest.raises(StoreError):
            store.get("c1")
        with pytest.raises(StoreError):
            store.list_for_user("alice")


def test_a_transaction_that_fails_midway_leaves_nothing(path: Path) -> None:
    with SQLiteStore(path) as store:

        def half_write(connection: sqlite3.Connection) -> None:
            connection.execute(
                "INSERT INTO mfa_failures (user_id, count, last_failure_at) VALUES ('alice', 1, 0)"
            )
            raise sqlite3.OperationalError("disk I/O error")

        with pytest.raises(StoreError):
            store._run("test", lambda c: sqlite_module._transaction(c, half_write), write=True)
        assert store.get_failures("alice") == FailureState()
        assert store.admit_attempt("alice", T0, NO_DELAY).state.count == 1  # the store still works


def test_memory_database_is_bound_to_its_thread() -> None:
    store = SQLiteStore(":memory:")
    store.add(_credential())
    assert store.get("c1") == _credential()
    errors: list[BaseException] = []

    def elsewhere() -> None:
        try:
            store.get("c1")
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join(10)
    assert len(errors) == 1 and isinstance(errors[0], StoreError)
    assert ":memory:" in str(errors[0])
    store.close()


def test_each_thread_gets_its_own_connection_and_close_closes_them_all(path: Path) -> None:
    store = SQLiteStore(path)
    seen: list[int] = []

    def use() -> None:
        seen.append(id(store._connection()))
        store.get("c1")

    threads = [threading.Thread(target=use) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(set(seen)) == 4
    store.close()
    for call in (lambda: store.get("c1"), lambda: store.admit_attempt("a", T0, NO_DELAY)):
        with pytest.raises(StoreError, match="closed"):
            call()
    store.close()  # closing twice is harmless


@pytest.mark.parametrize(
    "kwargs",
    [
        {"path": ""},
        {"path": None},
        {"path": 3},
        {"path": "bad\x00name"},
        {"timeout": -1},
        {"timeout": float("nan")},
        {"timeout": "5"},
        {"timeout": True},
        {"synchronous": "OFF"},
        {"synchronous": "full"},
    ],
)
def test_bad_constructor_arguments_raise_invalid_parameter(
    path: Path, kwargs: dict[str, Any]
) -> None:
    arguments: dict[str, Any] = {"path": path, **kwargs}
    with pytest.raises(InvalidParameter):
        SQLiteStore(**arguments)


def test_repr_names_the_file_only(path: Path) -> None:
    with SQLiteStore(path) as store:
        store.add(_credential())
        assert repr(store) == f"SQLiteStore(path={str(path)!r})"
        assert store.path == str(path)


def test_the_documented_ddl_matches_the_migrations() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "stores.md").read_text(encoding="utf-8")

    def squash(text: str) -> str:
        return " ".join(text.split())

    flat = squash(doc)
    for statement in (sqlite_module._VERSION_TABLE, *(s for m in MIGRATIONS for s in m.statements)):
        assert squash(statement) + ";" in flat, squash(statement)[:60]


def _claim_after_fork(store: SQLiteStore) -> None:  # pragma: no cover - child process
    ok = (
        store.claim("c1", 9, drift=0)
        and store.admit_attempt("alice", T0, NO_DELAY).state.count == 1
    )
    store.close()  # closes only the child's own connection
    raise SystemExit(0 if ok else 1)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_opens_its_own_connection_and_leaves_the_parents_alone(
    path: Path,
) -> None:
    with SQLiteStore(path) as store:
        store.add(_credential())
        assert store.claim("c1", 3, drift=0)  # the parent's connection is open and used
        child = multiprocessing.get_context("fork").Process(target=_claim_after_fork, args=(store,))
        child.start()
        child.join(30)
        assert child.exitcode == 0
        got = store.get("c1")  # the parent's connection still works
        assert got is not None and got.last_accepted == 9
        assert store.get_failures("alice").count == 1
        assert not store.claim("c1", 9, drift=0)


def test_a_version_3_file_migrates_to_sms_and_email_kinds_keeping_its_rows(
    path: Path, raw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mfa_core.stores.sqlite as sqlite_module

    monkeypatch.setattr(sqlite_module, "MIGRATIONS", MIGRATIONS[:3])
    monkeypatch.setattr(sqlite_module, "SCHEMA_VERSION", 3)
    with SQLiteStore(path) as old:
        old.add(_credential())
        with pytest.raises(Exception):  # noqa: B017 - the v3 CHECK refuses the kind
            old.add(_credential("c2", kind=CredentialKind.SMS))
    monkeypatch.undo()
    with SQLiteStore(path) as store:
        assert store.schema_version() == SCHEMA_VERSION >= 4
        assert store.get("c1") == _credential()
        store.add(_credential("c2", kind=CredentialKind.SMS))
        store.add(_credential("c3", kind=CredentialKind.EMAIL))
        assert [c.kind for c in store.list_for_user("alice")] == [
            CredentialKind.HOTP,
            CredentialKind.SMS,
            CredentialKind.EMAIL,
        ]
    index = raw().execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'mfa_credentials'"
    )
    assert ("mfa_credentials_by_user",) in index.fetchall()
