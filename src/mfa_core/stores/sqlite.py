"""The embedded default store: :class:`SQLiteStore` (standard library :mod:`sqlite3`).

One database file holds the credentials and the failure counters. The file is in WAL mode
(readers never block the writer), the schema is versioned (table ``mfa_schema_version``
plus the :data:`MIGRATIONS` list, applied in order when a store opens the file), and each
thread gets its own connection. Every race-prone change is one atomic SQL statement:

* ``claim``: ``UPDATE ... SET last_accepted = ? WHERE id = ? AND last_accepted < ?``;
* ``update``: ``UPDATE ... WHERE id = ? AND version = ?``;
* ``admit_attempt`` (and ``begin_attempt``, which also reads the user's credentials): read
  the failure state, apply :func:`mfa_core.throttle.admit`, write the new state, in one
  ``BEGIN IMMEDIATE`` transaction (the write lock is taken before the read);
* ``claim_and_reset``: the ``claim`` ``UPDATE`` and, when it won, the failure reset, in one
  ``BEGIN IMMEDIATE`` transaction;
* ``consume_recovery_code``: ``UPDATE ... SET used_at = ? WHERE ... AND used_at IS NULL``
  and the count of codes left, in one ``BEGIN IMMEDIATE`` transaction;
* ``replace_recovery_codes``: delete the old set and insert the new one in one transaction;
* ``replace_challenge`` / ``update_challenge``: ``UPDATE ... WHERE challenge_id = ? AND
  generation = ? AND ...`` (compare-and-set);
* ``count_send``: ``INSERT ... ON CONFLICT DO UPDATE SET count = count + 1 RETURNING``.

SQLite serialises writers with a file lock, so these are exact across threads *and*
processes that open the same file. A writer that finds the file locked waits up to
``timeout`` seconds (SQLite's busy timeout) and then fails with
:class:`~mfa_core.errors.StoreUnavailable`. Multi-statement changes (migrations, the
fallback for SQLite older than 3.35) run in ``BEGIN IMMEDIATE`` transactions, so nothing is
ever half-written. See ``docs/stores.md`` for the schema as DDL.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Final, Literal, TypeVar

import attrs

from ..errors import ErrorCode, InvalidParameter, MFAError, StoreError, StoreUnavailable
from ..models import Admission, Credential, FailureState
from ..oob import OOBRecord
from ..recovery import RecoveryRecord
from ..throttle import ThrottleConfig, admit
from ._common import (
    challenge_from_row,
    check_claim_value,
    check_credential,
    check_drift,
    check_generation,
    check_id,
    check_limits,
    check_oob_record,
    check_page,
    check_phc,
    check_recovery_records,
    check_send_count,
    check_time,
    check_version,
    credential_from_row,
    opt_float,
    recovery_from_row,
)
from ._webauthn import SQLITE_STATEMENTS as SQLITE_WEBAUTHN_STATEMENTS
from ._webauthn import SQLiteWebAuthn

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Migration", "SQLiteStore"]

_T = TypeVar("_T")


@attrs.frozen
class Migration:
    """One step of the schema: the statements that take the file from ``version - 1`` to
    ``version``, applied in one transaction together with its ``mfa_schema_version`` row."""

    version: int
    """The schema version after this step (1, 2, ...; consecutive)."""
    description: str
    """What the step does, recorded in ``mfa_schema_version``."""
    statements: tuple[str, ...]
    """SQL statements, run in order."""


MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(
        version=1,
        description="credentials and failure counters",
        statements=(
            """
            CREATE TABLE mfa_credentials (
                id            TEXT    PRIMARY KEY,
                user_id       TEXT    NOT NULL,
                kind          TEXT    NOT NULL CHECK (kind IN ('totp', 'hotp')),
                sealed_key    BLOB    NOT NULL,
                created_at    REAL    NOT NULL,
                status        TEXT    NOT NULL CHECK (status IN ('pending', 'active', 'disabled')),
                algorithm     TEXT    NOT NULL,
                digits        INTEGER NOT NULL,
                period        INTEGER NOT NULL,
                label         TEXT    NOT NULL DEFAULT '',
                pending_until REAL,
                confirmed_at  REAL,
                renewed_at    REAL,
                replaces      TEXT,
                disabled_at   REAL,
                last_accepted INTEGER NOT NULL DEFAULT -1,
                drift         INTEGER NOT NULL DEFAULT 0,
                version       INTEGER NOT NULL DEFAULT 0
            )
            """,
            "CREATE INDEX mfa_credentials_by_user ON mfa_credentials (user_id, created_at)",
            """
            CREATE TABLE mfa_failures (
                user_id         TEXT    PRIMARY KEY,
                count           INTEGER NOT NULL,
                last_failure_at REAL
            )
            """,
        ),
    ),
    Migration(
        version=2,
        description="recovery codes and out-of-band challenges",
        statements=(
            """
            CREATE TABLE mfa_recovery_codes (
                user_id   TEXT    NOT NULL,
                id        TEXT    NOT NULL,
                position  INTEGER NOT NULL,
                tag       TEXT    NOT NULL,
                phc       TEXT    NOT NULL,
                used_at   REAL,
                PRIMARY KEY (user_id, id)
            )
            """,
            """
            CREATE TABLE mfa_oob_challenges (
                challenge_id     TEXT    PRIMARY KEY,
                user_id          TEXT    NOT NULL,
                purpose          TEXT    NOT NULL,
                channel          TEXT    NOT NULL,
                destination_hint TEXT    NOT NULL,
                code_hash        BLOB    NOT NULL,
                digits           INTEGER NOT NULL,
                issued_at        REAL    NOT NULL,
                expires_at       REAL    NOT NULL,
                max_attempts     INTEGER NOT NULL,
                attempts         INTEGER NOT NULL,
                resend_count     INTEGER NOT NULL,
                generation       INTEGER NOT NULL,
                used             INTEGER NOT NULL CHECK (used IN (0, 1))
            )
            """,
            "CREATE INDEX mfa_oob_challenges_by_expiry ON mfa_oob_challenges (expires_at)",
        ),
    ),
    Migration(
        version=3,
        description="out-of-band send counters",
        statements=(
            """
            CREATE TABLE mfa_send_counters (
                key          TEXT    NOT NULL,
                window_start REAL    NOT NULL,
                count        INTEGER NOT NULL,
                expires_at   REAL    NOT NULL,
                PRIMARY KEY (key, window_start)
            )
            """,
            "CREATE INDEX mfa_send_counters_by_expiry ON mfa_send_counters (expires_at)",
        ),
    ),
    Migration(
        version=4,
        description="out-of-band challenges bind their destination",
        statements=(
            # NULL for a challenge written before: it matches no destination (fail closed).
            "ALTER TABLE mfa_oob_challenges ADD COLUMN destination_hash BLOB",
        ),
    ),
    Migration(
        version=5,
        description="SMS and email factors and the history record as credentials",
        statements=(
            # SQLite cannot alter a CHECK constraint: the table is rebuilt, rows copied.
            """
            CREATE TABLE mfa_credentials_v5 (
                id            TEXT    PRIMARY KEY,
                user_id       TEXT    NOT NULL,
                kind          TEXT    NOT NULL
                              CHECK (kind IN ('totp', 'hotp', 'sms', 'email', 'history')),
                sealed_key    BLOB    NOT NULL,
                created_at    REAL    NOT NULL,
                status        TEXT    NOT NULL CHECK (status IN ('pending', 'active', 'disabled')),
                algorithm     TEXT    NOT NULL,
                digits        INTEGER NOT NULL,
                period        INTEGER NOT NULL,
                label         TEXT    NOT NULL DEFAULT '',
                pending_until REAL,
                confirmed_at  REAL,
                renewed_at    REAL,
                replaces      TEXT,
                disabled_at   REAL,
                last_accepted INTEGER NOT NULL DEFAULT -1,
                drift         INTEGER NOT NULL DEFAULT 0,
                version       INTEGER NOT NULL DEFAULT 0
            )
            """,
            "INSERT INTO mfa_credentials_v5 SELECT * FROM mfa_credentials",
            "DROP TABLE mfa_credentials",
            "ALTER TABLE mfa_credentials_v5 RENAME TO mfa_credentials",
            "CREATE INDEX mfa_credentials_by_user ON mfa_credentials (user_id, created_at)",
        ),
    ),
    Migration(
        version=6,
        description="WebAuthn credentials and challenges",
        statements=SQLITE_WEBAUTHN_STATEMENTS,
    ),
)
"""The schema, step by step. A new step is appended (never edited) with the next version."""

SCHEMA_VERSION: Final = MIGRATIONS[-1].version
"""The schema version this release writes; a file with a higher version is refused."""

_VERSION_TABLE: Final = """
CREATE TABLE IF NOT EXISTS mfa_schema_version (
    version     INTEGER PRIMARY KEY,
    applied_at  REAL    NOT NULL,
    description TEXT    NOT NULL
)
"""

_COLUMNS: Final = (
    "id, user_id, kind, sealed_key, created_at, status, algorithm, digits, period, label, "
    "pending_until, confirmed_at, renewed_at, replaces, disabled_at, last_accepted, drift, "
    "version"
)
_SELECT: Final = f"SELECT {_COLUMNS} FROM mfa_credentials"  # noqa: S608 - constant text
_INSERT: Final = (
    f"INSERT INTO mfa_credentials ({_COLUMNS}) "  # noqa: S608 - constant text
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPDATE: Final = (
    "UPDATE mfa_credentials SET user_id = ?, kind = ?, sealed_key = ?, created_at = ?, "
    "status = ?, algorithm = ?, digits = ?, period = ?, label = ?, pending_until = ?, "
    "confirmed_at = ?, renewed_at = ?, replaces = ?, disabled_at = ?, version = ? "
    "WHERE id = ? AND version = ?"
)
_CLAIM: Final = (
    "UPDATE mfa_credentials SET last_accepted = ?, drift = ? WHERE id = ? AND last_accepted < ?"
)
_SELECT_FAILURES: Final = "SELECT count, last_failure_at FROM mfa_failures WHERE user_id = ?"
_STORE_FAILURES: Final = (
    "INSERT INTO mfa_failures (user_id, count, last_failure_at) VALUES (?, ?, ?) "
    "ON CONFLICT (user_id) DO UPDATE SET count = excluded.count, "
    "last_failure_at = excluded.last_failure_at"
)

_OOB_COLUMNS: Final = (
    "challenge_id, user_id, purpose, channel, destination_hint, code_hash, digits, "
    "issued_at, expires_at, max_attempts, attempts, resend_count, generation, used, "
    "destination_hash"
)
_OOB_SELECT: Final = f"SELECT {_OOB_COLUMNS} FROM mfa_oob_challenges"  # noqa: S608 - constant
_OOB_INSERT: Final = (
    f"INSERT INTO mfa_oob_challenges ({_OOB_COLUMNS}) "  # noqa: S608 - constant text
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_OOB_SET: Final = (
    "UPDATE mfa_oob_challenges SET user_id = ?, purpose = ?, channel = ?, "
    "destination_hint = ?, code_hash = ?, digits = ?, issued_at = ?, expires_at = ?, "
    "max_attempts = ?, attempts = ?, resend_count = ?, generation = ?, used = ?, "
    "destination_hash = ? "
)
_OOB_REPLACE: Final = _OOB_SET + "WHERE challenge_id = ? AND generation = ? AND used = 0"
_OOB_UPDATE: Final = (
    _OOB_SET + "WHERE challenge_id = ? AND generation = ? AND attempts = ? AND used = ?"
)
_COUNT_SEND: Final = (
    "INSERT INTO mfa_send_counters (key, window_start, count, expires_at) VALUES (?, ?, 1, ?) "
    "ON CONFLICT (key, window_start) DO UPDATE SET count = count + 1, "
    "expires_at = max(expires_at, excluded.expires_at)"
)
_RECOVERY_SELECT: Final = (
    "SELECT id, tag, phc, used_at FROM mfa_recovery_codes WHERE user_id = ? ORDER BY position"
)

_HAS_RETURNING: bool = sqlite3.sqlite_version_info >= (3, 35, 0)
"""``RETURNING`` (SQLite 3.35+) makes ``count_send`` one statement; older libraries use a
``BEGIN IMMEDIATE`` transaction instead (same result, two statements)."""

# Primary SQLite result codes that mean "cannot reach the data right now" rather than "this
# operation is wrong": busy/locked (timeout expired), out of memory, I/O error, disk full,
# cannot open, lock protocol error.
_UNAVAILABLE_CODES: Final = frozenset({5, 6, 7, 10, 13, 14, 15})
_BUSY_CODES: Final = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED
_SYNCHRONOUS: Final = ("FULL", "NORMAL")


_WRITE_LOCKS: weakref.WeakValueDictionary[str, _WriteLock] = weakref.WeakValueDictionary()
_WRITE_LOCKS_GUARD = threading.Lock()


class _WriteLock:
    """One per database file and process: threads of this process queue here for the
    write lock (fair and immediate), instead of polling SQLite's busy handler, which
    sleeps up to 100 ms between attempts. Other processes still meet the file lock."""

    __slots__ = ("__weakref__", "lock")

    def __init__(self) -> None:
        self.lock = threading.Lock()


def _write_lock_for(path: str) -> _WriteLock:
    key = os.path.realpath(path)
    with _WRITE_LOCKS_GUARD:
        found = _WRITE_LOCKS.get(key)
        if found is None:
            found = _WriteLock()
            _WRITE_LOCKS[key] = found
        return found


def _renew_locks_after_fork() -> None:
    # A lock held by another thread at fork() time would stay held in the child forever.
    global _WRITE_LOCKS_GUARD  # noqa: PLW0603 - process-wide registry, renewed in the child
    _WRITE_LOCKS_GUARD = threading.Lock()
    for entry in list(_WRITE_LOCKS.values()):
        entry.lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=_renew_locks_after_fork)


class _Connection(sqlite3.Connection):
    """A connection that can be weakly referenced (for :meth:`SQLiteStore.close`) and
    knows the process that opened it."""

    owner_pid: int = 0


_INHERITED: list[sqlite3.Connection] = []
"""Connections a forked child inherited: kept referenced (never used, never closed) so that
the child does not touch the parent's SQLite state."""


def _translate(exc: BaseException, operation: str) -> StoreError:
    """Turn a driver exception into a typed store error without any data in the message."""
    code = getattr(exc, "sqlite_errorcode", None)
    name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
    if isinstance(code, int) and code & 0xFF in _UNAVAILABLE_CODES:
        return StoreUnavailable(f"the SQLite store is unavailable: {operation} failed ({name})")
    return StoreError(f"the SQLite store failed: {operation} failed ({name})")


def _to_row(credential: Credential) -> tuple[Any, ...]:
    return (
        credential.id,
        credential.user_id,
        credential.kind.value,
        credential.sealed_key,
        float(credential.created_at),
        credential.status.value,
        credential.algorithm.value,
        credential.digits,
        credential.period,
        credential.label,
        opt_float(credential.pending_until),
        opt_float(credential.confirmed_at),
        opt_float(credential.renewed_at),
        credential.replaces,
        opt_float(credential.disabled_at),
        credential.last_accepted,
        credential.drift,
        credential.version,
    )


def _failure_state(row: Sequence[Any]) -> FailureState:
    # REAL values that are whole numbers can come back from SQLite as int: normalise.
    return FailureState(count=int(row[0]), last_failure_at=opt_float(row[1]))


def _oob_row(record: OOBRecord) -> tuple[Any, ...]:
    return (
        record.challenge_id,
        record.user_id,
        record.purpose.value,
        record.channel.value,
        record.destination_hint,
        record.code_hash,
        record.digits,
        float(record.issued_at),
        float(record.expires_at),
        record.max_attempts,
        record.attempts,
        record.resend_count,
        record.generation,
        1 if record.used else 0,
        record.destination_hash,
    )


class SQLiteStore(SQLiteWebAuthn):
    """A :class:`~mfa_core.ports.CredentialStore`, :class:`~mfa_core.ports.FailureCounter`,
    :class:`~mfa_core.ports.RecoveryCodeStore` and
    :class:`~mfa_core.ports.OOBChallengeStore` in one SQLite file, safe across threads and
    processes.

    ``path`` is the database file (created if missing, with its parent directory required
    to exist). ``timeout`` is how long a write waits for another writer's lock before
    failing with :class:`~mfa_core.errors.StoreUnavailable`. ``synchronous`` is SQLite's
    durability setting: ``"FULL"`` (default) syncs every commit to disk, so an accepted
    code stays claimed even after a power cut; ``"NORMAL"`` is faster in WAL mode but may
    forget the last commits on power loss (never corrupts the file).

    Opening applies pending schema migrations and refuses a file written by a newer release
    (:class:`~mfa_core.errors.StoreError` with code ``STORE_SCHEMA_TOO_NEW``). Each thread
    uses its own connection; :meth:`close` closes them all.

    ``":memory:"`` gives a private in-memory database bound to the creating thread (a second
    thread would see an empty database, so it is refused with a ``StoreError``); use
    :class:`~mfa_core.stores.MemoryStore` for a thread-safe in-memory store.
    """

    __slots__ = (
        "__weakref__",
        "_closed",
        "_connections",
        "_local",
        "_lock",
        "_memory",
        "_owner",
        "_path",
        "_synchronous",
        "_timeout",
        "_write_lock",
    )

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = 5.0,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
    ) -> None:
        if isinstance(path, os.PathLike):
            path = os.fspath(path)
        if type(path) is not str or not path or "\x00" in path:
            raise InvalidParameter("path must be a non-empty file path or ':memory:'")
        if (
            type(timeout) not in (int, float)
            or not math.isfinite(timeout)
            or not 0 <= timeout <= 3600
        ):
            raise InvalidParameter("timeout must be a number of seconds from 0 to 3600")
        if synchronous not in _SYNCHRONOUS:
            raise InvalidParameter("synchronous must be 'FULL' or 'NORMAL'")
        self._path: str = path
        self._timeout = float(timeout)
        self._synchronous = synchronous
        self._memory = path == ":memory:"
        self._owner = threading.get_ident()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._closed = False
        self._write_lock = _write_lock_for(path) if not self._memory else _WriteLock()
        try:
            self._run("open", self._initialise, write=True)
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"SQLiteStore(path={self._path!r})"

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def path(self) -> str:
        """The database file (or ``":memory:"``)."""
        return self._path

    def schema_version(self) -> int:
        """Return the schema version recorded in the file."""
        return self._run("schema_version", _read_version)

    def close(self) -> None:
        """Close every connection this store opened; later calls raise ``StoreError``."""
        with self._lock:
            self._closed = True
            connections = list(self._connections)
            self._connections.clear()
        pid = os.getpid()
        for connection in connections:
            if connection.owner_pid == pid:  # never close a parent's connection after fork
                with contextlib.suppress(sqlite3.Error):  # closing is best effort
                    connection.close()
        self._local = threading.local()

    # -- connections -------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        held = getattr(self._local, "held", None)
        pid = os.getpid()
        if held is not None:
            if held[1] == pid:
                connection: sqlite3.Connection = held[0]
                return connection
            _INHERITED.append(held[0])
            self._local.held = None
        if self._closed:
            raise StoreError("the SQLite store is closed")
        if self._memory and threading.get_ident() != self._owner:
            raise StoreError(
                "a ':memory:' SQLite store can only be used by the thread that created it"
            )
        # A connection inherited through fork() is left alone (never used or closed here):
        # SQLite connections must not cross a fork.
        connection = sqlite3.connect(
            self._path,
            timeout=self._timeout,
            isolation_level=None,  # autocommit; transactions are explicit
            check_same_thread=False,  # so that close() may close it from another thread
            factory=_Connection,
        )
        connection.owner_pid = pid
        try:
            connection.execute(f"PRAGMA synchronous = {self._synchronous}")
        except BaseException:
            connection.close()
            raise
        with self._lock:
            if self._closed:
                connection.close()
                raise StoreError("the SQLite store is closed")
            self._connections.add(connection)
        self._local.held = (connection, pid)
        return connection

    def _discard_connection(self) -> None:
        held = getattr(self._local, "held", None)
        self._local.held = None
        if held is not None and held[1] == os.getpid():
            with contextlib.suppress(sqlite3.Error):  # closing is best effort
                held[0].close()

    def _run(
        self, operation: str, body: Callable[[sqlite3.Connection], _T], *, write: bool = False
    ) -> _T:
        """Run ``body`` on this thread's connection; driver errors become store errors.

        Writes first take this process's write lock for the file (waiting at most
        ``timeout``), then SQLite's own lock (busy timeout) against other processes.
        """
        try:
            connection = self._connection()
            if write and not self._write_lock.lock.acquire(timeout=self._timeout):
                raise StoreUnavailable(
                    f"the SQLite store is unavailable: {operation} timed out waiting "
                    "for the write lock"
                )
            try:
                return body(connection)
            finally:
                if write:
                    self._write_lock.lock.release()
                if connection.in_transaction:
                    # Only reachable if ROLLBACK itself failed: do not reuse the connection.
                    self._discard_connection()
        except MFAError:
            raise
        except (sqlite3.Error, UnicodeError, OverflowError, ValueError) as exc:
            failure = _translate(exc, operation)
        # Raised outside the except block, with no chain: a driver's message can quote a
        # column's text ("Could not decode to UTF-8 column 'label' with text ...").
        raise failure

    def _initialise(self, connection: sqlite3.Connection) -> None:
        if not self._memory:
            self._switch_to_wal(connection)
        if _read_version(connection) != SCHEMA_VERSION:
            _transaction(connection, _migrate)

    def _switch_to_wal(self, connection: sqlite3.Connection) -> None:
        """Put the file in WAL mode, retrying while other openers hold it (until ``timeout``).

        When several processes open a new file at the same moment, ``PRAGMA journal_mode =
        WAL`` can fail with ``SQLITE_BUSY`` at once, without SQLite's busy handler waiting,
        while another connection is switching the file itself. The switch is retried with a
        short growing pause until the mode is WAL (possibly set by the other opener) or
        ``timeout`` has passed; then the busy error propagates as ``StoreUnavailable``.
        """
        deadline = time.monotonic() + self._timeout
        pause = 0.001
        while True:
            try:
                mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
                if str(mode).lower() != "wal":
                    mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            except sqlite3.OperationalError as exc:
                code = getattr(exc, "sqlite_errorcode", None)
                busy = isinstance(code, int) and code & 0xFF in _BUSY_CODES
                if not busy or time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 0.05)
                continue
            if str(mode).lower() != "wal":
                raise StoreError("the SQLite store could not switch the file to WAL mode")
            return

    # -- CredentialStore ---------------------------------------------------------------

    def add(self, credential: Credential) -> None:
        """Insert a new credential; raise :class:`~mfa_core.errors.StoreError` if its id
        is already stored."""
        check_credential(credential)
        row = _to_row(credential)

        def insert(connection: sqlite3.Connection) -> None:
            try:
                connection.execute(_INSERT, row)
            except sqlite3.IntegrityError as exc:
                raise StoreError("a credential with this id already exists") from exc

        self._run("add", insert, write=True)

    def get(self, credential_id: str) -> Credential | None:
        """Return the credential with this id, or ``None``."""
        check_id(credential_id, "credential_id")

        def select(connection: sqlite3.Connection) -> Credential | None:
            row = connection.execute(f"{_SELECT} WHERE id = ?", (credential_id,)).fetchone()
            return None if row is None else credential_from_row(row, "SQLite")

        return self._run("get", select)

    def list_for_user(self, user_id: str) -> Sequence[Credential]:
        """Return all credentials of a user (any state), oldest first (by ``created_at``,
        then by insertion order)."""
        check_id(user_id, "user_id")

        def select(connection: sqlite3.Connection) -> list[Credential]:
            rows = connection.execute(
                f"{_SELECT} WHERE user_id = ? ORDER BY created_at, rowid", (user_id,)
            ).fetchall()
            return [credential_from_row(row, "SQLite") for row in rows]

        return self._run("list_for_user", select)

    def update(self, credential: Credential, *, expected_version: int) -> bool:
        """Replace the stored credential if its version is ``expected_version`` (one
        conditional ``UPDATE``). The stored version becomes ``expected_version + 1``;
        ``last_accepted`` and ``drift`` keep their stored values. Returns ``False``
        (changing nothing) if the credential is missing or its version differs.
        """
        check_credential(credential)
        check_version(expected_version)
        row = _to_row(credential)
        params = (*row[1:15], expected_version + 1, credential.id, expected_version)

        def conditional_update(connection: sqlite3.Connection) -> bool:
            return connection.execute(_UPDATE, params).rowcount == 1

        return self._run("update", conditional_update, write=True)

    def claim(self, credential_id: str, value: int, *, drift: int) -> bool:
        """Store ``value`` and ``drift`` if ``value`` is greater than ``last_accepted`` (one
        conditional ``UPDATE``); return whether it was stored. Of concurrent calls with one
        value, from any thread or process, exactly one wins. ``value``: 0..2**63-1.
        """
        check_id(credential_id, "credential_id")
        check_claim_value(value)
        check_drift(drift)
        params = (value, drift, credential_id, value)

        def conditional_update(connection: sqlite3.Connection) -> bool:
            return connection.execute(_CLAIM, params).rowcount == 1

        return self._run("claim", conditional_update, write=True)

    def delete(self, credential_id: str) -> bool:
        """Remove a credential; return whether it existed."""
        check_id(credential_id, "credential_id")

        def remove(connection: sqlite3.Connection) -> bool:
            return (
                connection.execute(
                    "DELETE FROM mfa_credentials WHERE id = ?", (credential_id,)
                ).rowcount
                == 1
            )

        return self._run("delete", remove, write=True)

    # -- FailureCounter ----------------------------------------------------------------

    def admit_attempt(self, user_id: str, now: float, limits: ThrottleConfig) -> Admission:
        """Admit and count one attempt at ``now``, or refuse it: read the user's state,
        apply :func:`mfa_core.throttle.admit` and write the new state, all in one ``BEGIN
        IMMEDIATE`` transaction (the file's write lock is held throughout), so it is exact
        across threads and processes. ``last_failure_at`` becomes the later of ``now`` and
        the stored time. A refusal writes nothing."""
        check_id(user_id, "user_id")
        at = check_time(now)
        config = check_limits(limits)

        def admit_in_transaction(connection: sqlite3.Connection) -> Admission:
            return self._admission(connection, lambda inner: _admit(inner, user_id, at, config))

        return self._run("admit_attempt", admit_in_transaction, write=True)

    def get_failures(self, user_id: str) -> FailureState:
        """Return the user's failure state (``FailureState()`` if none)."""
        check_id(user_id, "user_id")

        def select(connection: sqlite3.Connection) -> FailureState:
            row = connection.execute(
                "SELECT count, last_failure_at FROM mfa_failures WHERE user_id = ?", (user_id,)
            ).fetchone()
            return FailureState() if row is None else _failure_state(row)

        return self._run("get_failures", select)

    def reset(self, user_id: str) -> None:
        """Forget the user's failures."""
        check_id(user_id, "user_id")
        self._run(
            "reset",
            lambda connection: connection.execute(
                "DELETE FROM mfa_failures WHERE user_id = ?", (user_id,)
            ),
            write=True,
        )

    # -- AttemptStore ------------------------------------------------------------------

    def begin_attempt(
        self, user_id: str, now: float, limits: ThrottleConfig
    ) -> tuple[Admission, Sequence[Credential]]:
        """:meth:`admit_attempt`, then (only when admitted) :meth:`list_for_user`, in one
        ``BEGIN IMMEDIATE`` transaction; a refused attempt gets an empty list."""
        check_id(user_id, "user_id")
        at = check_time(now)
        config = check_limits(limits)

        def admit_then_list(connection: sqlite3.Connection) -> tuple[Admission, list[Credential]]:
            admission = _admit(connection, user_id, at, config)
            if not admission.admitted:
                return admission, []
            rows = connection.execute(
                f"{_SELECT} WHERE user_id = ? ORDER BY created_at, rowid", (user_id,)
            ).fetchall()
            return admission, [credential_from_row(row, "SQLite") for row in rows]

        return self._run("begin_attempt", lambda c: self._admission(c, admit_then_list), write=True)

    def _admission(
        self, connection: sqlite3.Connection, body: Callable[[sqlite3.Connection], _T]
    ) -> _T:
        """Run an admission in its transaction without waiting for the disk.

        With ``synchronous="FULL"`` every commit waits for an fsync; an admission's commit
        does not need to (``synchronous=NORMAL`` for it, in WAL mode: atomic and isolated
        as ever, and made durable by the next commit that waits, such as the claim of a
        successful attempt). Only a power loss (never a crash of the process) can forget
        the latest admitted attempts; a claim is never forgotten. This keeps a verify at
        one fsync, as before attempts were counted on admission.
        """
        if self._synchronous != "FULL":
            return _transaction(connection, body)
        connection.execute("PRAGMA synchronous = NORMAL")
        try:
            return _transaction(connection, body)
        finally:
            connection.execute("PRAGMA synchronous = FULL")

    def claim_and_reset(self, credential_id: str, value: int, *, drift: int, user_id: str) -> bool:
        """:meth:`claim`, then (only when the claim won) :meth:`reset` of ``user_id``, in
        one ``BEGIN IMMEDIATE`` transaction. Returns whether the claim won."""
        check_id(credential_id, "credential_id")
        check_claim_value(value)
        check_drift(drift)
        check_id(user_id, "user_id")
        params = (value, drift, credential_id, value)

        def claim_then_reset(connection: sqlite3.Connection) -> bool:
            if connection.execute(_CLAIM, params).rowcount != 1:
                return False
            connection.execute("DELETE FROM mfa_failures WHERE user_id = ?", (user_id,))
            return True

        return self._run("claim_and_reset", lambda c: _transaction(c, claim_then_reset), write=True)

    # -- RecoveryCodeStore -------------------------------------------------------------

    def replace_recovery_codes(self, user_id: str, records: Sequence[RecoveryRecord]) -> None:
        """Replace the user's whole set with ``records`` (empty: delete it), in one
        ``BEGIN IMMEDIATE`` transaction: no reader ever sees a mix of old and new."""
        check_id(user_id, "user_id")
        rows = [
            (user_id, record.id, position, record.tag, record.phc, opt_float(record.used_at))
            for position, record in enumerate(check_recovery_records(records))
        ]

        def swap(connection: sqlite3.Connection) -> None:
            connection.execute("DELETE FROM mfa_recovery_codes WHERE user_id = ?", (user_id,))
            connection.executemany(
                "INSERT INTO mfa_recovery_codes (user_id, id, position, tag, phc, used_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )

        self._run("replace_recovery_codes", lambda c: _transaction(c, swap), write=True)

    def recovery_codes(self, user_id: str) -> Sequence[RecoveryRecord]:
        """Return the user's records, used ones included, in the order they were given."""
        check_id(user_id, "user_id")

        def select(connection: sqlite3.Connection) -> list[RecoveryRecord]:
            rows = connection.execute(_RECOVERY_SELECT, (user_id,)).fetchall()
            return [recovery_from_row(row, "SQLite") for row in rows]

        return self._run("recovery_codes", select)

    def consume_recovery_code(self, user_id: str, record_id: str, now: float) -> int | None:
        """Mark the code used at ``now`` if it exists and is unused (a conditional
        ``UPDATE``) and count the unused codes left, in one ``BEGIN IMMEDIATE``
        transaction. Returns the count, or ``None`` (changing nothing). Of concurrent calls
        from any thread or process exactly one returns a count."""
        check_id(user_id, "user_id")
        check_id(record_id, "record_id")
        params = (check_time(now), user_id, record_id)

        def consume(connection: sqlite3.Connection) -> int | None:
            marked = connection.execute(
                "UPDATE mfa_recovery_codes SET used_at = ? "
                "WHERE user_id = ? AND id = ? AND used_at IS NULL",
                params,
            ).rowcount
            if marked != 1:
                return None
            row = connection.execute(
                "SELECT count(*) FROM mfa_recovery_codes WHERE user_id = ? AND used_at IS NULL",
                (user_id,),
            ).fetchone()
            return int(row[0])

        return self._run("consume_recovery_code", lambda c: _transaction(c, consume), write=True)

    def update_recovery_hash(self, user_id: str, record_id: str, phc: str) -> bool:
        """Replace one record's PHC hash (``used_at`` is kept); return whether it exists."""
        check_id(user_id, "user_id")
        check_id(record_id, "record_id")
        params = (check_phc(phc), user_id, record_id)

        def update(connection: sqlite3.Connection) -> bool:
            return (
                connection.execute(
                    "UPDATE mfa_recovery_codes SET phc = ? WHERE user_id = ? AND id = ?", params
                ).rowcount
                == 1
            )

        return self._run("update_recovery_hash", update, write=True)

    # -- OOBChallengeStore -------------------------------------------------------------

    def put_challenge(self, record: OOBRecord) -> None:
        """Insert a new challenge; raise :class:`~mfa_core.errors.StoreError` if its id is
        already stored."""
        row = _oob_row(check_oob_record(record))

        def insert(connection: sqlite3.Connection) -> None:
            try:
                connection.execute(_OOB_INSERT, row)
            except sqlite3.IntegrityError as exc:
                raise StoreError("a challenge with this id already exists") from exc

        self._run("put_challenge", insert, write=True)

    def get_challenge(self, challenge_id: str) -> OOBRecord | None:
        """Return the challenge with this id, or ``None``."""
        check_id(challenge_id, "challenge_id")

        def select(connection: sqlite3.Connection) -> OOBRecord | None:
            row = connection.execute(
                f"{_OOB_SELECT} WHERE challenge_id = ?", (challenge_id,)
            ).fetchone()
            return None if row is None else challenge_from_row(row, "SQLite")

        return self._run("get_challenge", select)

    def replace_challenge(self, record: OOBRecord, *, expected_generation: int) -> bool:
        """Store ``record`` if the stored challenge has ``expected_generation`` and is not
        used (one conditional ``UPDATE``); return whether it was stored."""
        row = _oob_row(check_oob_record(record))
        params = (*row[1:], record.challenge_id, check_generation(expected_generation))

        def conditional_update(connection: sqlite3.Connection) -> bool:
            return connection.execute(_OOB_REPLACE, params).rowcount == 1

        return self._run("replace_challenge", conditional_update, write=True)

    def update_challenge(self, record: OOBRecord, *, expected: OOBRecord) -> bool:
        """Store ``record`` if the stored challenge still has ``expected``'s generation,
        attempts and used flag (one conditional ``UPDATE``); return whether it was stored."""
        row = _oob_row(check_oob_record(record))
        check_oob_record(expected)
        if record.challenge_id != expected.challenge_id:
            raise InvalidParameter("record and expected must be the same challenge")
        params = (
            *row[1:],
            record.challenge_id,
            expected.generation,
            expected.attempts,
            1 if expected.used else 0,
        )

        def conditional_update(connection: sqlite3.Connection) -> bool:
            return connection.execute(_OOB_UPDATE, params).rowcount == 1

        return self._run("update_challenge", conditional_update, write=True)

    def delete_challenge(self, challenge_id: str) -> bool:
        """Remove a challenge; return whether it existed."""
        check_id(challenge_id, "challenge_id")

        def remove(connection: sqlite3.Connection) -> bool:
            return (
                connection.execute(
                    "DELETE FROM mfa_oob_challenges WHERE challenge_id = ?", (challenge_id,)
                ).rowcount
                == 1
            )

        return self._run("delete_challenge", remove, write=True)

    def count_send(self, key: str, window_start: float, expires_at: float) -> int:
        """Add one to the send counter ``(key, window_start)`` and return the new count
        (one upsert ``... RETURNING``; a ``BEGIN IMMEDIATE`` transaction before SQLite
        3.35). Of concurrent calls from any thread or process each gets its own count."""
        params = check_send_count(key, window_start, expires_at)

        def increment(connection: sqlite3.Connection) -> int:
            if _HAS_RETURNING:
                rows = connection.execute(f"{_COUNT_SEND} RETURNING count", params).fetchall()
                return int(rows[0][0])

            def upsert_then_read(inner: sqlite3.Connection) -> int:
                inner.execute(_COUNT_SEND, params)
                row = inner.execute(
                    "SELECT count FROM mfa_send_counters WHERE key = ? AND window_start = ?",
                    params[:2],
                ).fetchone()
                return int(row[0])

            return _transaction(connection, upsert_then_read)

        return self._run("count_send", increment, write=True)

    def purge_challenges(self, before: float) -> int:
        """Remove every challenge whose code expired before ``before`` (Unix seconds),
        and every send counter that expired before it, in one transaction; return how
        many challenges. Housekeeping for hosts (not part of the port): call it now and
        then with, e.g., ``now - 86400`` to keep used and expired challenges a day."""
        limit = check_time(before, "before")

        def remove(connection: sqlite3.Connection) -> int:
            removed = connection.execute(
                "DELETE FROM mfa_oob_challenges WHERE expires_at < ?", (limit,)
            ).rowcount
            connection.execute("DELETE FROM mfa_send_counters WHERE expires_at < ?", (limit,))
            return int(removed)

        return self._run("purge_challenges", lambda c: _transaction(c, remove), write=True)

    # -- StoreMaintenance --------------------------------------------------------------

    def credential_ids(self, after: str | None, limit: int) -> Sequence[str]:
        """Up to ``limit`` stored credential ids greater than ``after``, ascending (SQLite
        compares TEXT as UTF-8 bytes: code-point order)."""
        start, count = check_page(after, limit)

        def select(connection: sqlite3.Connection) -> list[str]:
            if start is None:
                rows = connection.execute(
                    "SELECT id FROM mfa_credentials ORDER BY id LIMIT ?", (count,)
                ).fetchall()
            else:
                rows = connection.execute(
                    "SELECT id FROM mfa_credentials WHERE id > ? ORDER BY id LIMIT ?",
                    (start, count),
                ).fetchall()
            return [str(row[0]) for row in rows]

        return self._run("credential_ids", select)

    def purge_pending(self, before: float) -> int:
        """Remove every PENDING credential whose ``pending_until`` is before ``before``
        (one ``DELETE`` whose condition is its test); return how many."""
        limit = check_time(before, "before")

        def remove(connection: sqlite3.Connection) -> int:
            return int(
                connection.execute(
                    "DELETE FROM mfa_credentials WHERE status = 'pending' "
                    "AND pending_until IS NOT NULL AND pending_until < ?",
                    (limit,),
                ).rowcount
            )

        return self._run("purge_pending", lambda c: _transaction(c, remove), write=True)


def _admit(
    connection: sqlite3.Connection, user_id: str, now: float, limits: ThrottleConfig
) -> Admission:
    """The body of an admission, inside a ``BEGIN IMMEDIATE`` transaction: read the
    stored state, apply :func:`mfa_core.throttle.admit`, write the new state if admitted."""
    row = connection.execute(_SELECT_FAILURES, (user_id,)).fetchone()
    admission = admit(FailureState() if row is None else _failure_state(row), now, limits)
    if admission.admitted:
        state = admission.state
        connection.execute(_STORE_FAILURES, (user_id, state.count, state.last_failure_at))
    return admission


def _transaction(connection: sqlite3.Connection, body: Callable[[sqlite3.Connection], _T]) -> _T:
    """Run ``body`` in a ``BEGIN IMMEDIATE`` transaction (the write lock is taken first, so
    concurrent writers queue on the busy timeout instead of failing on a lock upgrade);
    any failure rolls everything back."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        result = body(connection)
        connection.execute("COMMIT")
    except BaseException:
        # If even ROLLBACK fails, the caller discards the connection (still in a transaction).
        with contextlib.suppress(sqlite3.Error):
            connection.execute("ROLLBACK")
        raise
    return result


def _read_version(connection: sqlite3.Connection) -> int:
    exists = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'mfa_schema_version'"
    ).fetchone()
    if exists is None:
        return 0
    row = connection.execute("SELECT max(version) FROM mfa_schema_version").fetchone()
    return 0 if row is None or row[0] is None else int(row[0])


def _migrate(connection: sqlite3.Connection) -> None:
    """Bring the schema to :data:`SCHEMA_VERSION` (inside the caller's transaction, so a
    concurrent opener waits and then finds nothing left to do)."""
    connection.execute(_VERSION_TABLE)
    current = _read_version(connection)
    if current > SCHEMA_VERSION:
        raise StoreError(
            f"the SQLite file has schema version {current}, newer than the "
            f"{SCHEMA_VERSION} this release of mfa_core understands; upgrade mfa_core",
            code=ErrorCode.STORE_SCHEMA_TOO_NEW,
        )
    for migration in MIGRATIONS[current:]:
        for statement in migration.statements:
            connection.execute(statement)
        connection.execute(
            "INSERT INTO mfa_schema_version (version, applied_at, description) VALUES (?, ?, ?)",
            (migration.version, time.time(), migration.description),
        )
