"""A store on a SQL database through SQLAlchemy 2 Core: :class:`SQLStore` (the ``sql`` extra).

Needs SQLAlchemy 2 (``pip install 'mfa_core[sql]'``, which also brings psycopg 3 for
PostgreSQL); importing this module without SQLAlchemy raises
:class:`~mfa_core.errors.MissingDependency`. Supported databases: PostgreSQL and SQLite
(3.35 or later, for ``RETURNING``).

The schema is SQLAlchemy Core :data:`metadata` (tables named ``mfa_*``, one table per
concern, so further ports add tables without touching these); :func:`create_schema`
creates what is missing, and :func:`schema_ddl` prints it as plain DDL for hosts that run
their own migrations. There is no ORM session: every operation is ONE SQL statement in a
transaction of its own, on a connection borrowed from the host's engine (on PostgreSQL in
autocommit mode, so one round trip), and every race-prone change is atomic in that
statement:

* ``claim``: ``UPDATE ... SET last_accepted = :v, drift = :d WHERE id = :id AND
  last_accepted < :v`` (``rowcount`` says who won);
* ``update``: ``UPDATE ... WHERE id = :id AND version = :expected``;
* ``admit_attempt``: ``INSERT ... ON CONFLICT (user_id) DO UPDATE SET count = count + 1
  ... WHERE <the throttle allows it> RETURNING count, last_failure_at``, the throttle's
  decision (:func:`mfa_core.throttle.check`) computed in SQL on double precision exactly
  as in Python. On PostgreSQL one statement that also returns the row that refused a
  refused attempt (``WITH prior AS (SELECT ... FOR UPDATE)``); on SQLite the upsert then,
  when refused, a read of the row, in one transaction;
* the fused :class:`~mfa_core.ports.AttemptStore` operations: ``begin_attempt`` (the
  admission, and the user's credentials only when admitted) and ``claim_and_reset`` (the
  claim, and the deletion of the user's failure row only when the claim won), each ONE
  statement on PostgreSQL (a join with the admission; data-modifying ``WITH`` clauses)
  and one transaction on SQLite;
* ``consume_recovery_code``: ``UPDATE ... SET used_at = :now WHERE ... AND used_at IS NULL``
  and the count of unused codes left. On PostgreSQL one statement: a ``WITH`` clause first
  locks the user's codes (``SELECT ... ORDER BY id FOR UPDATE``, so consumptions of one
  user's codes queue on the same first row and each sees the others' results), then the
  conditional ``UPDATE``; on SQLite the two statements in one transaction (SQLite
  serialises writers);
* ``replace_recovery_codes``: one transaction that deletes the old set and inserts the new;
* ``replace_challenge`` / ``update_challenge``: ``UPDATE ... WHERE challenge_id = :id AND
  generation = :g AND ...`` (compare-and-set, ``rowcount`` says who won);
* ``count_send``: ``INSERT ... ON CONFLICT (key, window_start) DO UPDATE SET count =
  count + 1 ... RETURNING count``.

A few operations need more than one statement (``replace_recovery_codes`` and the
``purge_challenges`` housekeeping everywhere; ``consume_recovery_code``, ``admit_attempt``,
``begin_attempt`` and ``claim_and_reset`` on SQLite): they
run in one transaction on a connection in the engine's own (transactional) mode, and
either commit whole or roll back.

On PostgreSQL through psycopg the prebuilt single statements (``get``, ``list_for_user``,
``claim``, ``delete``, ``get_failures``, ``reset``, ``admit_attempt``, ``begin_attempt``,
``claim_and_reset``, ``get_challenge``, ``delete_challenge``) skip SQLAlchemy's per-call
execution work: rendered once per store, they run on the pool's DBAPI connection (see
``_LeanPath``), unless the engine has execution event listeners.

Driver errors become :class:`~mfa_core.errors.StoreUnavailable` (the database cannot be
reached: operational and interface errors of the driver, dropped connections, pool
timeouts; on SQLite a busy/locked file or an I/O error) or
:class:`~mfa_core.errors.StoreError` (anything else, e.g. a missing table); nothing is
retried, so the caller refuses the attempt (fail closed). SQLAlchemy invalidates a
connection that dropped, so the next call gets a fresh one; ``pool_pre_ping=True`` on the
engine also catches connections that died while idle in the pool.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

from .._validate import MAX_ID_LENGTH
from ..errors import (
    ErrorCode,
    InvalidParameter,
    MFAError,
    MissingDependency,
    StoreError,
    StoreUnavailable,
)
from ..models import Admission, Credential, CredentialState, FailureState
from ..oob import MAX_SEND_KEY, OOBRecord
from ..recovery import RecoveryRecord
from ..throttle import ThrottleConfig, admit, check
from ._common import (
    challenge_from_row,
    check_claim_value,
    check_credential,
    check_drift,
    check_generation,
    check_id,
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
from ._deadline import WATCHDOG

try:
    import sqlalchemy as sa
    from sqlalchemy import exc as sa_exc
    from sqlalchemy.dialects import mysql, postgresql, sqlite
    from sqlalchemy.event import registry as _event_registry
    from sqlalchemy.schema import CreateIndex, CreateTable
except ImportError:  # pragma: no cover - exercised in a subprocess by the tests
    raise MissingDependency(
        "the SQL store needs SQLAlchemy 2: pip install 'mfa_core[sql]'"
    ) from None

from ._webauthn_sql import SQLWebAuthn  # after the SQLAlchemy check: it imports SQLAlchemy
from ._webauthn_sql import define_tables as define_webauthn_tables

__all__ = [
    "DEFAULT_TIMEOUT",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SUPPORTED_DIALECTS",
    "Key",
    "SQLStore",
    "bound_engine",
    "check_schema",
    "create_schema",
    "credentials_table",
    "failures_table",
    "metadata",
    "oob_challenges_table",
    "recovery_codes_table",
    "schema_ddl",
    "schema_version_table",
    "send_counters_table",
    "webauthn_challenges_table",
    "webauthn_credentials_table",
]

_T = TypeVar("_T")

SUPPORTED_DIALECTS: Final = frozenset({"postgresql", "sqlite", "mysql", "mariadb"})
"""Database dialects :class:`SQLStore` is tested on: PostgreSQL and SQLite (``ON CONFLICT
... RETURNING``), MariaDB and MySQL (``mysql`` or ``mariadb`` URLs; row locks in
transactions where ``RETURNING`` is missing)."""
_MYSQL: Final = frozenset({"mysql", "mariadb"})
DEFAULT_TIMEOUT: Final = 5.0
"""The default bound, in seconds, on every :class:`SQLStore` call on a database server
(connecting, the pool's checkout and pre-ping, statements, commit): past it the call fails
with :class:`~mfa_core.errors.StoreUnavailable` (see :func:`bound_engine`)."""


class Key(sa.types.TypeDecorator[str]):
    """The column type of every identifier the store compares (credential, user, code,
    challenge ids, send-counter keys): ``TEXT`` on PostgreSQL and SQLite; on MySQL and
    MariaDB ``VARBINARY`` of ``4 * length`` bytes (an index key needs a length; UTF-8 bytes
    compare byte-exactly, whatever the server's default collation: no case folding, no
    trailing-space padding, so ``'alice'``, ``'ALICE'`` and ``'alice '`` are three users),
    decoded back to text when read. Tables other ports add use it for their ids too."""

    impl = sa.Text
    """The generic type: ``TEXT``."""
    cache_ok = True
    """Safe in SQLAlchemy's statement cache (the only state is the length)."""

    def __init__(self, length: int = MAX_ID_LENGTH) -> None:
        super().__init__()
        self.key_length = length
        """The longest id in characters (``4 * key_length`` bytes on MySQL/MariaDB)."""

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        """``VARBINARY(4 * key_length)`` on MySQL/MariaDB, ``TEXT`` elsewhere."""
        if dialect.name in _MYSQL:
            return mysql.VARBINARY(4 * self.key_length)
        return sa.Text()

    def bind_processor(self, dialect: sa.Dialect) -> Any:
        """MySQL/MariaDB: text to its UTF-8 bytes; elsewhere none (no cost per value)."""
        return _encode_key if dialect.name in _MYSQL else None

    def result_processor(self, dialect: sa.Dialect, coltype: object) -> Any:
        """MySQL/MariaDB: the stored bytes back to text; elsewhere none."""
        return _decode_key if dialect.name in _MYSQL else None


def _encode_key(value: object) -> object:
    """An id as the UTF-8 bytes of its MySQL ``VARBINARY`` column."""
    return value.encode("utf-8") if isinstance(value, str) else value


def _decode_key(value: object) -> object:
    """A MySQL ``VARBINARY`` id as text (anything else as is: the row decoders refuse it)."""
    if isinstance(value, bytes | bytearray):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    return value


metadata: Final = sa.MetaData(
    naming_convention={
        "ix": "%(table_name)s_%(column_0_name)s_idx",
        "uq": "%(table_name)s_%(column_0_name)s_key",
        "ck": "%(table_name)s_%(constraint_name)s_check",
        "pk": "%(table_name)s_pkey",
    }
)
"""Every table of the SQL store (further ports add their own ``mfa_*`` tables here)."""

credentials_table: Final = sa.Table(
    "mfa_credentials",
    metadata,
    # Insertion order: breaks created_at ties in list_for_user (an INTEGER PRIMARY KEY is
    # SQLite's rowid; PostgreSQL gets an identity column).
    sa.Column(
        "seq",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        sa.Identity(),
        primary_key=True,
    ),
    sa.Column("id", Key(), nullable=False, unique=True),
    sa.Column("user_id", Key(), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("sealed_key", sa.LargeBinary(), nullable=False),
    sa.Column("created_at", sa.Double(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("algorithm", sa.String(16), nullable=False),
    sa.Column("digits", sa.Integer(), nullable=False),
    sa.Column("period", sa.Integer(), nullable=False),
    sa.Column("label", sa.Text(), nullable=False, server_default=""),
    sa.Column("pending_until", sa.Double()),
    sa.Column("confirmed_at", sa.Double()),
    sa.Column("renewed_at", sa.Double()),
    sa.Column("replaces", sa.Text()),
    sa.Column("disabled_at", sa.Double()),
    sa.Column("last_accepted", sa.BigInteger(), nullable=False, server_default=sa.text("-1")),
    sa.Column("drift", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
    sa.Column("version", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
    sa.CheckConstraint("kind IN ('totp', 'hotp', 'sms', 'email', 'history')", name="kind"),
    sa.CheckConstraint("status IN ('pending', 'active', 'disabled')", name="status"),
    sa.Index(None, "user_id", "created_at"),
)
"""``mfa_credentials``: one row per credential."""

failures_table: Final = sa.Table(
    "mfa_failures",
    metadata,
    sa.Column("user_id", Key(), primary_key=True),
    sa.Column("count", sa.BigInteger(), nullable=False),
    sa.Column("last_failure_at", sa.Double()),
)
"""``mfa_failures``: consecutive failures per user (a row exists only while count > 0)."""

recovery_codes_table: Final = sa.Table(
    "mfa_recovery_codes",
    metadata,
    sa.Column("user_id", Key(), primary_key=True),
    sa.Column("id", Key(), primary_key=True),
    sa.Column("position", sa.Integer(), nullable=False),
    sa.Column("tag", sa.Text(), nullable=False),
    sa.Column("phc", sa.Text(), nullable=False),
    sa.Column("used_at", sa.Double()),
)
"""``mfa_recovery_codes``: one row per recovery code (lookup tag and Argon2id PHC hash,
never the code); ``position`` keeps the order of the set, ``used_at`` is NULL while the
code is usable."""

oob_challenges_table: Final = sa.Table(
    "mfa_oob_challenges",
    metadata,
    sa.Column("challenge_id", Key(), primary_key=True),
    sa.Column("user_id", Key(), nullable=False),
    sa.Column("purpose", sa.String(32), nullable=False),
    sa.Column("channel", sa.String(8), nullable=False),
    sa.Column("destination_hint", sa.Text(), nullable=False),
    sa.Column("code_hash", sa.LargeBinary(), nullable=False),
    sa.Column("digits", sa.Integer(), nullable=False),
    sa.Column("issued_at", sa.Double(), nullable=False),
    sa.Column("expires_at", sa.Double(), nullable=False),
    sa.Column("max_attempts", sa.Integer(), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("resend_count", sa.BigInteger(), nullable=False),
    sa.Column("generation", sa.BigInteger(), nullable=False),
    sa.Column("used", sa.Boolean(), nullable=False),
    # Keyed hash of the normalised destination; NULL only for rows written before it
    # existed (``ALTER TABLE mfa_oob_challenges ADD COLUMN destination_hash BYTEA``).
    sa.Column("destination_hash", sa.LargeBinary()),
    sa.Index(None, "expires_at"),
)
"""``mfa_oob_challenges``: one row per out-of-band challenge (the keyed hash of its code and
a masked destination, never the code or the address)."""

send_counters_table: Final = sa.Table(
    "mfa_send_counters",
    metadata,
    sa.Column("key", Key(MAX_SEND_KEY), primary_key=True),
    sa.Column("window_start", sa.Double(), primary_key=True),
    sa.Column("count", sa.BigInteger(), nullable=False),
    sa.Column("expires_at", sa.Double(), nullable=False),
    sa.Index(None, "expires_at"),
)
"""``mfa_send_counters``: out-of-band codes sent per key (a user, or a keyed hash of a
destination) and fixed window; a row may be deleted once ``expires_at`` has passed."""

webauthn_credentials_table, webauthn_challenges_table = define_webauthn_tables(metadata, Key)
"""``mfa_webauthn_credentials`` and ``mfa_webauthn_challenges``: security keys and
passkeys, and their single-use challenges (see ``docs/webauthn.md``)."""

schema_version_table: Final = sa.Table(
    "mfa_schema_version",
    metadata,
    sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("applied_at", sa.Double(), nullable=False),
    sa.Column("description", sa.Text(), nullable=False),
)
"""``mfa_schema_version``: one row per schema step applied (:data:`MIGRATIONS`)."""

_C = credentials_table.c
_F = failures_table.c
_R = recovery_codes_table.c
_O = oob_challenges_table.c
_S = send_counters_table.c
_RECOVERY_SELECT: Final = sa.select(_R.id, _R.tag, _R.phc, _R.used_at)
_OOB_COLUMNS: Final = (
    _O.challenge_id,
    _O.user_id,
    _O.purpose,
    _O.channel,
    _O.destination_hint,
    _O.code_hash,
    _O.digits,
    _O.issued_at,
    _O.expires_at,
    _O.max_attempts,
    _O.attempts,
    _O.resend_count,
    _O.generation,
    _O.used,
    _O.destination_hash,
)
_OOB_SELECT: Final = sa.select(*_OOB_COLUMNS)
_COLUMNS: Final = (
    _C.id,
    _C.user_id,
    _C.kind,
    _C.sealed_key,
    _C.created_at,
    _C.status,
    _C.algorithm,
    _C.digits,
    _C.period,
    _C.label,
    _C.pending_until,
    _C.confirmed_at,
    _C.renewed_at,
    _C.replaces,
    _C.disabled_at,
    _C.last_accepted,
    _C.drift,
    _C.version,
)
_SELECT: Final = sa.select(*_COLUMNS)
_DIALECTS: Final = {
    "postgresql": postgresql.dialect,
    "sqlite": sqlite.dialect,
    "mysql": mysql.dialect,
}
# SQLite primary result codes meaning "cannot reach the data now": BUSY, LOCKED, NOMEM,
# IOERR, FULL, CANTOPEN, PROTOCOL.
_SQLITE_UNAVAILABLE: Final = frozenset({5, 6, 7, 10, 13, 14, 15})


# -- the fused attempt operations, built once ---------------------------------------------
# Every parameter is a bindparam, so each statement is made (and compiled, per dialect and
# schema_translate_map) once, not per call. The names start with ``p_`` so that none
# collides with the column names SQLAlchemy reserves for VALUES / SET.

_P_USER: Final = sa.bindparam("p_user", type_=sa.Text())
_P_NOW: Final[sa.BindParameter[float]] = sa.bindparam("p_now", type_=sa.Double())
_P_MAX_FAILURES: Final = sa.bindparam("p_max_failures", type_=sa.BigInteger())
_P_BASE_DELAY: Final[sa.BindParameter[float]] = sa.bindparam("p_base_delay", type_=sa.Double())
_P_MAX_DELAY: Final[sa.BindParameter[float]] = sa.bindparam("p_max_delay", type_=sa.Double())
_P_LOCKOUT: Final[sa.BindParameter[float]] = sa.bindparam(
    "p_lockout", type_=sa.Double()
)  # NULL: until an unlock
_P_CREDENTIAL: Final = sa.bindparam("p_credential", type_=sa.Text())
_P_VALUE: Final = sa.bindparam("p_value", type_=sa.BigInteger())
_P_DRIFT: Final = sa.bindparam("p_drift", type_=sa.BigInteger())
_INFINITY: Final[sa.BindParameter[float]] = sa.bindparam("p_infinity", math.inf, type_=sa.Double())
# In expressions the doubles are cast explicitly (a NULL lockout has no type of its own).
_NOW: Final[sa.Cast[float]] = sa.cast(_P_NOW, sa.Double())
_BASE_DELAY: Final[sa.Cast[float]] = sa.cast(_P_BASE_DELAY, sa.Double())
_MAX_DELAY: Final[sa.Cast[float]] = sa.cast(_P_MAX_DELAY, sa.Double())
_LOCKOUT: Final[sa.Cast[float]] = sa.cast(_P_LOCKOUT, sa.Double())
_INF: Final[sa.Cast[float]] = sa.cast(_INFINITY, sa.Double())
_ZERO: Final = sa.literal_column("0", sa.BigInteger())
_ONE: Final = sa.literal_column("1", sa.BigInteger())
_POWER_SHIFT: Final = 62  # 1 << 62: the largest power of two a signed 64-bit shift makes


def _power_of_two(exponent: Any, dialect: str) -> Any:
    """``2 ** exponent`` as a double (0 <= exponent <= 124), exactly: PostgreSQL's
    ``power(2.0, n)`` (C ``pow``, exact for powers of two), SQLite (whose ``power`` is an
    optional build feature) two integer shifts, exact when converted to doubles."""
    if dialect == "postgresql":
        return sa.func.power(sa.cast(sa.literal_column("2"), sa.Double()), exponent)
    shift = sa.literal_column(str(_POWER_SHIFT), sa.BigInteger())
    low = sa.case((exponent < shift, exponent), else_=shift)
    high = sa.case((exponent < shift, _ZERO), else_=exponent - shift)
    return _ONE.op("<<")(low) * _ONE.op("<<")(high)


def _allowed(count: Any, last: Any, dialect: str) -> Any:
    """:func:`mfa_core.throttle.check`'s ``allowed`` for a stored ``(count, last)``, in SQL,
    on IEEE doubles as in Python (``now``, the times and delays are double precision;
    ``last + delay`` cannot overflow: ``last`` is finite and a delay at most a year).

    * a row :func:`~mfa_core.throttle.check` would refuse to read (a negative count, a
      count without a time, a non-finite time) is never admitted, and decodes to a
      :class:`~mfa_core.errors.StoreError`;
    * ``count = 0``: allowed;
    * ``count >= max_failures``: allowed once ``now >= last + lockout`` (never when
      ``lockout`` is NULL);
    * else allowed when the delay ``min(base_delay * 2**(count-1), max_delay)`` is 0 or
      ``now >= last + delay`` (``count - 1 < max_failures <= 100``: the power is exact,
      as ``math.ldexp`` is).
    """
    finite = sa.and_(last > -_INF, last < _INF)
    valid = sa.and_(count >= _ZERO, sa.or_(sa.and_(last.is_(None), count == _ZERO), finite))
    raw = _BASE_DELAY * _power_of_two(count - _ONE, dialect)
    delay = sa.case((raw < _MAX_DELAY, raw), else_=_MAX_DELAY)
    decision = sa.case(
        (count == _ZERO, sa.true()),
        (
            count >= _P_MAX_FAILURES,
            sa.and_(_LOCKOUT.is_not(None), last + _LOCKOUT <= _NOW),
        ),
        else_=sa.or_(delay <= _ZERO, last + delay <= _NOW),
    )
    return sa.and_(valid, decision)


def _counted(insert: Any, dialect: str) -> Any:
    """``insert ... ON CONFLICT (user_id) DO UPDATE SET count = count + 1, last_failure_at
    = max(last_failure_at, now) WHERE <allowed> RETURNING count, last_failure_at``: the
    admission (no row returned when refused)."""
    excluded = insert.excluded.last_failure_at
    return insert.on_conflict_do_update(
        index_elements=[_F.user_id],
        set_={
            "count": _F.count + _ONE,
            "last_failure_at": sa.case(
                (_F.last_failure_at > excluded, _F.last_failure_at), else_=excluded
            ),
        },
        where=_allowed(_F.count, _F.last_failure_at, dialect),
    ).returning(_F.count, _F.last_failure_at)


def _pg_admission() -> Any:
    """PostgreSQL's admission as a CTE ``admission(admitted, count, last_failure_at)`` of
    one row (none only in the rare case below)::

        WITH prior AS MATERIALIZED (SELECT count, last_failure_at FROM mfa_failures
                                    WHERE user_id = :user FOR UPDATE),
             admitted AS (INSERT INTO mfa_failures (user_id, count, last_failure_at)
                          SELECT :user, 1, :now FROM (SELECT count(*) FROM prior) AS first
                          ON CONFLICT (user_id) DO UPDATE SET ... WHERE <allowed>
                          RETURNING count, last_failure_at),
             admission AS (SELECT true, count, last_failure_at FROM admitted
                           UNION ALL
                           SELECT false, count, last_failure_at FROM prior
                           WHERE NOT EXISTS (SELECT 1 FROM admitted))

    ``prior`` locks the user's row first (the insert's source reads it, so it runs
    first). Under READ COMMITTED ``FOR UPDATE`` waits for a concurrent writer and returns
    the row as that writer left it, not the statement's older snapshot; since the lock is
    then held, the upsert sees that same row: a refused attempt reports the very state
    that refused it. The one exception: no row when the statement began, and a concurrent
    first attempt inserted it meanwhile; if that row refuses, ``prior`` is empty and the
    result has no row. The caller then runs the statement again (nothing was written).
    """
    prior = (
        sa.select(_F.count, _F.last_failure_at)
        .where(_F.user_id == _P_USER)
        .with_for_update()
        .cte("prior")
        .prefix_with("MATERIALIZED")
    )
    first = sa.select(sa.func.count().label("n")).select_from(prior).subquery("first")
    source = sa.select(_P_USER, _ONE, _NOW).select_from(first)
    insert = postgresql.insert(failures_table).from_select(
        ["user_id", "count", "last_failure_at"], source
    )
    admitted = _counted(insert, "postgresql").cte("admitted")
    return sa.union_all(
        sa.select(
            sa.true().label("admitted"),
            admitted.c.count,
            admitted.c.last_failure_at,
        ),
        sa.select(sa.false(), prior.c.count, prior.c.last_failure_at).where(
            ~sa.exists().select_from(admitted)
        ),
    ).cte("admission")


_PG_ADMISSION: Final = _pg_admission()
_PG_ADMIT: Final = sa.select(
    _PG_ADMISSION.c.admitted, _PG_ADMISSION.c.count, _PG_ADMISSION.c.last_failure_at
)
"""PostgreSQL ``admit_attempt``: the admission, one statement."""
_PG_BEGIN: Final = (
    sa.select(
        _PG_ADMISSION.c.admitted,
        _PG_ADMISSION.c.count,
        _PG_ADMISSION.c.last_failure_at,
        *_COLUMNS,
    )
    .select_from(
        _PG_ADMISSION.outerjoin(
            credentials_table, sa.and_(_PG_ADMISSION.c.admitted, _C.user_id == _P_USER)
        )
    )
    .order_by(_C.created_at, _C.seq)
)
"""PostgreSQL ``begin_attempt``: the admission joined with the user's credentials (only
when admitted; one row with NULL credential columns when there are none), one statement
(so one snapshot for the credentials)."""


def _pg_claim_and_reset() -> Any:
    """PostgreSQL ``claim_and_reset``, one statement::

    WITH claimed AS (UPDATE mfa_credentials SET last_accepted = :v, drift = :d
                     WHERE id = :id AND last_accepted < :v RETURNING id),
         cleared AS (DELETE FROM mfa_failures WHERE user_id = :user
                     AND EXISTS (SELECT 1 FROM claimed) RETURNING user_id)
    SELECT (SELECT count(*) FROM claimed), (SELECT count(*) FROM cleared)
    """
    claimed = (
        credentials_table.update()
        .where(_C.id == _P_CREDENTIAL, _C.last_accepted < _P_VALUE)
        .values(last_accepted=_P_VALUE, drift=_P_DRIFT)
        .returning(_C.id)
        .cte("claimed")
    )
    cleared = (
        failures_table.delete()
        .where(_F.user_id == _P_USER, sa.exists().select_from(claimed))
        .returning(_F.user_id)
        .cte("cleared")
    )
    return sa.select(
        sa.select(sa.func.count()).select_from(claimed).scalar_subquery(),
        sa.select(sa.func.count()).select_from(cleared).scalar_subquery(),
    )


_PG_CLAIM_AND_RESET: Final = _pg_claim_and_reset()
_SQLITE_ADMIT: Final = _counted(
    sqlite.insert(failures_table).values(user_id=_P_USER, count=1, last_failure_at=_P_NOW),
    "sqlite",
)
"""SQLite's admission: the upsert (no row when refused), first statement of its
transaction, so the transaction holds SQLite's write lock from its first statement."""
_FAILURES_OF_USER: Final = sa.select(_F.count, _F.last_failure_at).where(_F.user_id == _P_USER)
_CREDENTIALS_OF_USER: Final = _SELECT.where(_C.user_id == _P_USER).order_by(_C.created_at, _C.seq)
_CLAIM: Final = (
    credentials_table.update()
    .where(_C.id == _P_CREDENTIAL, _C.last_accepted < _P_VALUE)
    .values(last_accepted=_P_VALUE, drift=_P_DRIFT)
)
_RESET: Final = failures_table.delete().where(_F.user_id == _P_USER)
_GET: Final = _SELECT.where(_C.id == _P_CREDENTIAL)
_DELETE: Final = credentials_table.delete().where(_C.id == _P_CREDENTIAL)
_P_CHALLENGE: Final = sa.bindparam("p_challenge", type_=sa.Text())
_GET_CHALLENGE: Final = _OOB_SELECT.where(_O.challenge_id == _P_CHALLENGE)
_DELETE_CHALLENGE: Final = oob_challenges_table.delete().where(_O.challenge_id == _P_CHALLENGE)
_ADMISSION_TRIES: Final = 3
"""Runs of an admission whose refusal did not come with the state that refused it (a
concurrent first attempt, see :func:`_pg_admission`) before it is a StoreError."""

# -- MySQL / MariaDB: row locks in a transaction where RETURNING is missing -----------------
_P_COUNT: Final = sa.bindparam("p_count", type_=sa.BigInteger())
_P_LAST: Final[sa.BindParameter[float]] = sa.bindparam("p_last", type_=sa.Double())
_MYSQL_FAILURES_LOCKED: Final = _FAILURES_OF_USER.with_for_update()
_MYSQL_FAILURES_UPDATE: Final = (
    failures_table.update()
    .where(_F.user_id == _P_USER)
    .values(count=_P_COUNT, last_failure_at=_P_LAST)
)
_MYSQL_FAILURES_INSERT: Final = failures_table.insert().values(
    user_id=_P_USER, count=_P_COUNT, last_failure_at=_P_LAST
)
_MYSQL_CODES_LOCKED: Final = (
    sa.select(_R.id, _R.used_at).where(_R.user_id == _P_USER).order_by(_R.id).with_for_update()
)
_MYSQL_RETRIED: Final = frozenset({1213, 1020})
"""MySQL/MariaDB errors after which InnoDB rolled the transaction back and it may simply run
again: ER_LOCK_DEADLOCK (REPEATABLE READ's gap locks make two first inserts of one key
deadlock) and ER_CHECKREAD (a snapshot-isolation conflict)."""
_MYSQL_TRIES: Final = 64
"""Runs of a MySQL/MariaDB transaction that deadlocked before it is StoreUnavailable. Each
deadlock has a winner, but one caller can lose many in a row: 32 threads racing for a new
user's first attempt exhausted 10 runs under load; the call's deadline bounds the total."""
_MYSQL_BACKOFF: Final = (0.001, 0.05)
"""The pause before a deadlocked transaction runs again: a random time up to
``first * 2 ** (losses - 1)`` seconds, capped at ``cap``. Without it, callers that just lost
start again in step and meet in the same gap lock; a fully loaded CI machine saw four of
eight processes lose every one of their runs of a new user's first admission."""


def _mysql_pause(losses: int, draw: Callable[[], float] = random.random) -> float:
    """The seconds to wait after a transaction's ``losses``-th deadlock in a row (≥ 1):
    full jitter under an exponential ceiling (:data:`_MYSQL_BACKOFF`)."""
    first, cap = _MYSQL_BACKOFF
    return draw() * min(cap, first * 2.0 ** min(losses - 1, 32))


def _mysql_retryable(exc: sa_exc.DBAPIError) -> bool:
    args: tuple[Any, ...] = getattr(exc.orig, "args", ())
    return len(args) > 0 and args[0] in _MYSQL_RETRIED


def _mysql_table_options() -> None:
    """Give every table of :data:`metadata` (those other ports add too) InnoDB, utf8mb4 and
    a binary collation on MySQL/MariaDB, whatever the database's defaults."""
    for table in metadata.tables.values():
        for option, value in (
            ("mysql_engine", "InnoDB"),
            ("mysql_charset", "utf8mb4"),
            ("mysql_collate", "utf8mb4_bin"),
        ):
            if option not in table.dialect_kwargs:
                table.dialect_kwargs[option] = value


def _create_missing_tables(connection: sa.Connection) -> None:
    metadata.create_all(connection)


MIGRATIONS: Final[tuple[tuple[int, str, Callable[[sa.Connection], None]], ...]] = (
    (
        1,
        "credentials, failures, recovery codes, out-of-band challenges, send counters",
        _create_missing_tables,
    ),
)
"""The SQL schema, step by step: ``(version, description, apply)``. A release that changes
the schema appends a step with the next version (a new table: ``_create_missing_tables``
again; a new column: its ``ALTER TABLE``), never edits one."""

SCHEMA_VERSION: Final = MIGRATIONS[-1][0]
"""The schema version this release writes; a database with a higher one is refused."""


def create_schema(engine: sa.Engine) -> None:
    """Create the store's tables and indexes that do not exist yet, or migrate an older
    schema to :data:`SCHEMA_VERSION` (idempotent; each step applied is recorded in
    ``mfa_schema_version``). A database created before the version table existed is
    version 0: its missing tables are added.

    Honours the engine's ``schema_translate_map`` execution option, so a host can put the
    tables in a schema of its choice. Raises :class:`~mfa_core.errors.StoreError` with
    code ``STORE_SCHEMA_TOO_NEW`` for a schema newer than this release, otherwise
    :class:`~mfa_core.errors.StoreError` (or :class:`~mfa_core.errors.StoreUnavailable`)
    if the database refuses.
    """
    _check_engine(engine)
    _mysql_table_options()

    def migrate() -> None:
        with engine.begin() as connection:
            metadata.create_all(connection, tables=[schema_version_table])
            current = _stored_version(connection)
            for version, description, apply in MIGRATIONS[current:]:
                apply(connection)
                connection.execute(
                    schema_version_table.insert().values(
                        version=version, applied_at=time.time(), description=description
                    )
                )

    _guard("create_schema", migrate)


def check_schema(engine: sa.Engine) -> None:
    """Check, before the first request, that the database holds this release's schema;
    raise :class:`~mfa_core.errors.StoreError` (code ``STORE_SCHEMA_TOO_NEW`` for a newer
    one; a message naming :func:`create_schema` for a missing or older one)."""
    _check_engine(engine)

    def read() -> None:
        with engine.connect() as connection:
            translate = connection.get_execution_options().get("schema_translate_map") or {}
            schema = translate.get(None)
            if not sa.inspect(connection).has_table(schema_version_table.name, schema=schema):
                current = 0
            else:
                current = _stored_version(connection)
        if current < SCHEMA_VERSION:
            raise StoreError(
                f"the SQL database has schema version {current}, older than the "
                f"{SCHEMA_VERSION} this release needs: run create_schema (it migrates)"
            )

    _guard("check_schema", read)


def _stored_version(connection: sa.Connection) -> int:
    """The highest version in ``mfa_schema_version`` (0 when empty); a newer one than
    :data:`SCHEMA_VERSION` is refused."""
    stored = connection.execute(sa.select(sa.func.max(schema_version_table.c.version))).scalar()
    current = 0 if stored is None else int(stored)
    if current > SCHEMA_VERSION:
        raise StoreError(
            f"the SQL database has schema version {current}, newer than the "
            f"{SCHEMA_VERSION} this release of mfa_core understands; upgrade mfa_core",
            code=ErrorCode.STORE_SCHEMA_TOO_NEW,
        )
    return current


def schema_ddl(dialect: str = "postgresql") -> str:
    """The schema as plain DDL statements for ``dialect`` (``"postgresql"``, ``"sqlite"``
    or ``"mysql"``, which serves MariaDB too), for hosts that manage migrations themselves."""
    if dialect not in _DIALECTS:
        raise InvalidParameter("dialect must be 'postgresql', 'sqlite' or 'mysql'")
    _mysql_table_options()
    compiled = _DIALECTS[dialect]()
    statements: list[str] = []
    for table in metadata.sorted_tables:
        statements.append(_tidy(CreateTable(table).compile(dialect=compiled)))
        for index in sorted(table.indexes, key=lambda ix: str(ix.name)):
            statements.append(_tidy(CreateIndex(index).compile(dialect=compiled)))
    return "\n\n".join(statements) + "\n"


def _tidy(compiled: object) -> str:
    """One statement as SQLAlchemy compiles it, without tabs and trailing blanks, with a
    closing semicolon."""
    lines = str(compiled).strip().expandtabs(4).splitlines()
    return "\n".join(line.rstrip() for line in lines) + ";"


def _check_engine(engine: object, store: str = "SQLStore") -> None:
    """Refuse anything but an ``Engine`` on a supported database (``store`` names the
    store in the message; :mod:`mfa_core.aio.sql` checks its async engine's side)."""
    if not isinstance(engine, sa.Engine):
        raise InvalidParameter("engine must be a sqlalchemy.Engine")
    if engine.dialect.name not in SUPPORTED_DIALECTS:
        raise InvalidParameter(
            f"{store} supports PostgreSQL, MariaDB/MySQL and SQLite, not {engine.dialect.name!r}"
        )


def _guard(operation: str, body: Callable[[], _T], *, conflict: str | None = None) -> _T:
    """Run ``body``; SQLAlchemy and driver errors become typed store errors whose message
    names the operation and the error class, never a parameter.

    The store error is chained to the driver's exception (``exc.orig``), not to
    SQLAlchemy's wrapper, whose text lists the statement's parameters (a sealed key among
    them) and would put them in any logged traceback. ``conflict`` is the message for an
    integrity error (a duplicate key).
    """
    error: StoreError
    cause: BaseException | None
    try:
        return body()
    except MFAError:
        raise
    except sa_exc.DBAPIError as exc:
        cause = exc.orig if isinstance(exc.orig, BaseException) else None
        if _unreachable(exc):
            error = StoreUnavailable(
                f"the SQL store is unavailable: {operation} failed ({_name(exc)})"
            )
        elif conflict is not None and isinstance(exc, sa_exc.IntegrityError):
            error = StoreError(conflict)
        else:
            error = StoreError(f"the SQL store failed: {operation} failed ({_name(exc)})")
    except (sa_exc.TimeoutError, sa_exc.DisconnectionError, OSError) as exc:
        error = StoreUnavailable(
            f"the SQL store is unavailable: {operation} failed ({type(exc).__name__})"
        )
        cause = exc
    except sa_exc.SQLAlchemyError as exc:
        # a StatementError's text holds the parameters: keep only the class name
        error = StoreError(f"the SQL store failed: {operation} failed ({type(exc).__name__})")
        cause = None
    # Raised here, outside the except blocks, so that SQLAlchemy's wrapper (whose text
    # lists the parameters) is not even the error's hidden ``__context__``.
    raise error from cause


def _unreachable(exc: sa_exc.DBAPIError) -> bool:
    """Whether a driver error means "the database cannot be reached right now"."""
    if exc.connection_invalidated:
        return True
    code = getattr(exc.orig, "sqlite_errorcode", None)
    if isinstance(code, int):
        # sqlite3 raises OperationalError for nearly everything (a missing table too):
        # decide by SQLite's primary result code instead.
        return code & 0xFF in _SQLITE_UNAVAILABLE
    return isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)


def _name(exc: sa_exc.DBAPIError) -> str:
    return type(exc.orig).__name__ if exc.orig is not None else type(exc).__name__


def _values(credential: Credential) -> dict[str, Any]:
    """The columns ``update`` writes (not last_accepted, drift, version, seq, id)."""
    return {
        "user_id": credential.user_id,
        "kind": credential.kind.value,
        "sealed_key": credential.sealed_key,
        "created_at": float(credential.created_at),
        "status": credential.status.value,
        "algorithm": credential.algorithm.value,
        "digits": credential.digits,
        "period": credential.period,
        "label": credential.label,
        "pending_until": opt_float(credential.pending_until),
        "confirmed_at": opt_float(credential.confirmed_at),
        "renewed_at": opt_float(credential.renewed_at),
        "replaces": credential.replaces,
        "disabled_at": opt_float(credential.disabled_at),
    }


def _all(result: sa.CursorResult[Any]) -> Sequence[Sequence[Any]]:
    return result.all()


def _one_row_changed(result: sa.CursorResult[Any]) -> bool:
    return result.rowcount == 1


_LEAN_STATEMENTS: Final[tuple[Any, ...]] = (
    _FAILURES_OF_USER,
    _CLAIM,
    _PG_ADMIT,
    _PG_BEGIN,
    _PG_CLAIM_AND_RESET,
    _GET,
    _CREDENTIALS_OF_USER,
    _DELETE,
    _RESET,
    _GET_CHALLENGE,
    _DELETE_CHALLENGE,
)
"""The prebuilt single statements :class:`_LeanPath` runs (PostgreSQL, psycopg)."""
# What a DBAPI cursor gives for the readers of a SQLAlchemy result (their types agree:
# psycopg returns the same Python values; no SQLAlchemy result processor applies).
_RAW_READERS: Final[dict[Callable[..., Any], Callable[[Any], Any]]] = {
    _all: lambda cursor: cursor.fetchall(),
    _one_row_changed: lambda cursor: cursor.rowcount == 1,
}


_LEAN_ENGINE_EVENTS: Final = (
    "before_execute",
    "after_execute",
    "before_cursor_execute",
    "after_cursor_execute",
    "begin",
    "commit",
    "rollback",
)
_LEAN_DIALECT_EVENTS: Final = (
    "handle_error",
    "do_execute",
    "do_execute_no_params",
    "do_setinputsizes",
)


_LEAN_CURSOR: Final = "mfa_core.lean_cursor"
"""The key of the lean path's ``(DBAPI connection, cursor)`` in a pooled connection's
``info`` (which the pool empties when it closes or invalidates the connection)."""


def _listener_count() -> int:
    """How many listeners SQLAlchemy's event registry holds now (-1: unknown, look every
    time): a change means some listener was added or removed somewhere."""
    try:
        return len(_event_registry._key_to_collection)
    except (AttributeError, TypeError):  # pragma: no cover - another SQLAlchemy's layout
        return -1


class _LeanPath:
    """The store's prebuilt single statements on PostgreSQL through psycopg without
    SQLAlchemy's per-call execution work: each rendered once for the engine's dialect and
    schema translation, then run on the pool's own DBAPI connection (checked out through
    the pool, so its ``checkout`` event, pre-ping and the call's deadline still apply) in
    autocommit mode, as the SQLAlchemy path runs them.

    Driver errors are wrapped as SQLAlchemy does (:meth:`sqlalchemy.exc.DBAPIError.instance`,
    the connection invalidated when the dialect says it dropped), so the store's error
    rules hold unchanged. Not used while the engine has execution events (a host's
    instrumentation listening to ``before_cursor_execute`` and the like still sees every
    statement): then the SQLAlchemy path runs.
    """

    __slots__ = ("_dbapi_error", "_dialect", "_engine", "_host", "_seen", "_serves", "_sql")

    def __init__(self, engine: sa.Engine, host: sa.Engine) -> None:
        self._engine = engine
        # the host's own engine: its ``engine_connect`` listeners (the autocommit engine
        # has SQLAlchemy's own, which sets the isolation level, done here by hand)
        self._host = host
        self._dialect: Any = engine.dialect
        self._dbapi_error: type[Exception] = self._dialect.loaded_dbapi.Error
        translate = engine.get_execution_options().get("schema_translate_map")
        self._sql: dict[int, tuple[str, dict[str, Any]]] = {}
        for statement in _LEAN_STATEMENTS:
            compiled = statement.compile(
                dialect=engine.dialect,
                schema_translate_map=translate,
                render_schema_translate=translate is not None,
            )
            constants = {n: b.value for n, b in compiled.binds.items() if not b.required}
            self._sql[id(statement)] = (str(compiled), constants)
        self._seen = -1
        self._serves = False

    def serves(self, statement: object) -> bool:
        """Whether ``statement`` runs here now (one of its statements; no execution
        events on the engine or the dialect's execution hooks).

        The events are looked at again only when SQLAlchemy's registry of listeners has
        grown or shrunk since the last look (a listener added or removed anywhere): that
        look costs more than a third of the lean call's own work."""
        if id(statement) not in self._sql:
            return False
        seen = _listener_count()
        if seen != self._seen or seen < 0:
            events = self._engine.dispatch
            hooks = self._dialect.dispatch
            self._serves = not (
                any(getattr(events, name, True) for name in _LEAN_ENGINE_EVENTS)
                or getattr(self._host.dispatch, "engine_connect", True)
                or any(getattr(hooks, name, True) for name in _LEAN_DIALECT_EVENTS)
            )
            self._seen = seen
        return self._serves

    def runner(
        self,
        statement: object,
        params: dict[str, Any],
        read: Callable[[sa.CursorResult[Any]], _T],
    ) -> Callable[[], _T]:
        """One call of ``statement`` with ``params``, read as ``read`` reads a result."""
        text, constants = self._sql[id(statement)]
        values = {**constants, **params} if constants else params
        raw_read = _RAW_READERS[read]

        def run() -> _T:
            error: sa_exc.DBAPIError | None = None
            try:
                fairy = self._engine.raw_connection()
            except self._dbapi_error as exc:
                error = self._wrapped(exc, invalidated=False)
            if error is not None:
                raise error
            try:
                connection: Any = fairy.dbapi_connection
                restore = not connection.autocommit
                if restore:
                    connection.autocommit = True
                try:
                    # one cursor per pooled connection, kept with it (a new cursor each call
                    # costs a tenth of the call); dropped on any error
                    kept = fairy.info.get(_LEAN_CURSOR)
                    if kept is not None and kept[0] is connection:
                        cursor = kept[1]
                    else:
                        cursor = connection.cursor()
                        fairy.info[_LEAN_CURSOR] = (connection, cursor)
                    try:
                        cursor.execute(text, values)
                        result: _T = raw_read(cursor)
                    except BaseException:
                        fairy.info.pop(_LEAN_CURSOR, None)
                        cursor.close()
                        raise
                finally:
                    if restore and not connection.closed:
                        connection.autocommit = False
                return result
            except self._dbapi_error as exc:
                dropped = bool(self._dialect.is_disconnect(exc, fairy.dbapi_connection, None))
                if dropped:
                    fairy.invalidate(exc)
                error = self._wrapped(exc, invalidated=dropped)
            finally:
                fairy.close()
            raise error

        return run

    def _wrapped(self, exc: Exception, *, invalidated: bool) -> sa_exc.DBAPIError:
        """The driver error as SQLAlchemy's wrapper of it (no statement, no parameters)."""
        wrapped = sa_exc.DBAPIError.instance(
            None,
            None,
            exc,
            self._dbapi_error,
            connection_invalidated=invalidated,
            dialect=self._dialect,
        )
        if not isinstance(wrapped, sa_exc.DBAPIError):  # pragma: no cover - a DBAPI error is
            raise TypeError("not a DBAPI error")
        return wrapped


def _challenge_values(record: OOBRecord) -> dict[str, Any]:
    """Every column of a challenge but its id."""
    return {
        "user_id": record.user_id,
        "purpose": record.purpose.value,
        "channel": record.channel.value,
        "destination_hint": record.destination_hint,
        "code_hash": record.code_hash,
        "digits": record.digits,
        "issued_at": float(record.issued_at),
        "expires_at": float(record.expires_at),
        "max_attempts": record.max_attempts,
        "attempts": record.attempts,
        "resend_count": record.resend_count,
        "generation": record.generation,
        "used": record.used,
        "destination_hash": record.destination_hash,
    }


def _lock_key(user_id: str) -> int:
    """A signed 64-bit advisory-lock key for one user's recovery-code set (PostgreSQL)."""
    digest = hashlib.sha256(b"mfa_core:recovery:" + user_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _failure_state(row: Sequence[Any]) -> FailureState:
    try:
        return FailureState(count=int(row[0]), last_failure_at=opt_float(row[1]))
    except (ValueError, TypeError) as exc:
        raise StoreError("the SQL store holds a failure row it cannot read") from exc


def _admission(row: Sequence[Any], now: float, limits: ThrottleConfig) -> Admission | None:
    """Decode an admission row ``(admitted, count, last_failure_at)``. A refusal must come
    with a state :func:`mfa_core.throttle.check` refuses; ``None`` when it does not (a
    stale read: the caller asks again). A row that does not decode, or a state ``check``
    cannot read, is a :class:`~mfa_core.errors.StoreError`."""
    state = _failure_state(row[1:3])
    last = state.last_failure_at
    if last is not None and not math.isfinite(last):
        raise StoreError("the SQL store holds a failure row it cannot read")
    if row[0]:
        if state.count < 1 or last is None:
            raise StoreError("the SQL store holds a failure row it cannot read")
        return Admission(admitted=True, state=state)
    try:
        allowed = check(state, now, limits).allowed
    except MFAError as exc:
        raise StoreError("the SQL store holds a failure row it cannot read") from exc
    return None if allowed else Admission(admitted=False, state=state)


class SQLStore(SQLWebAuthn):
    """A :class:`~mfa_core.ports.CredentialStore`, :class:`~mfa_core.ports.FailureCounter`
    (with the fused :class:`~mfa_core.ports.AttemptStore` operations),
    :class:`~mfa_core.ports.RecoveryCodeStore` and :class:`~mfa_core.ports.OOBChallengeStore`
    on PostgreSQL or SQLite through a SQLAlchemy 2 ``Engine`` the host owns.

    The engine's pool is used as configured (size, timeouts, ``pool_pre_ping``); each
    operation borrows one connection for one statement, committed on its own. The tables must
    exist (:func:`create_schema`, or the DDL from :func:`schema_ddl`). Safe to share
    between threads, and any number of processes may use the same database.
    """

    __slots__ = (
        "_engine",
        "_insert",
        "_lean",
        "_mysql",
        "_pause",
        "_postgres",
        "_refuse_nul",
        "_timeout",
        "_tx_engine",
    )

    def __init__(self, engine: sa.Engine, *, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        _check_engine(engine)
        self._timeout = bound_engine(engine, timeout)
        postgres = engine.dialect.name == "postgresql"
        # PostgreSQL: autocommit, so a statement is its own transaction without BEGIN and
        # COMMIT round trips. SQLite (in-process): switching the isolation level on every
        # checkout costs more than the implicit BEGIN ... COMMIT around one statement.
        self._engine = (
            engine.execution_options(isolation_level="AUTOCOMMIT") if postgres else engine
        )
        # Multi-statement operations run in real transactions: on PostgreSQL explicitly
        # READ COMMITTED (the host's engine could be in autocommit mode), on SQLite as is.
        self._tx_engine = (
            engine.execution_options(isolation_level="READ COMMITTED") if postgres else engine
        )
        self._postgres = postgres
        # MySQL/MariaDB: the host's engine as is (transactions in its isolation level,
        # REPEATABLE READ by default; every race-prone change locks its rows first).
        self._mysql = engine.dialect.name in _MYSQL
        # How a deadlock's backoff waits: AsyncSQLStore, whose calls run in SQLAlchemy's
        # greenlet bridge, swaps in a pause that yields to the event loop.
        self._pause: Callable[[float], None] = time.sleep
        self._insert: Any = postgresql.insert if postgres else sqlite.insert
        # PostgreSQL text cannot hold U+0000: refuse it up front as bad input.
        self._refuse_nul = postgres
        # psycopg: the prebuilt single statements pre-rendered once, run on the pool's
        # DBAPI connection (see _LeanPath).
        self._lean = (
            _LeanPath(self._engine, engine)
            if postgres and engine.dialect.driver == "psycopg"
            else None
        )

    def __repr__(self) -> str:
        return f"SQLStore(dialect={self._engine.dialect.name!r})"

    @property
    def engine(self) -> sa.Engine:
        """The engine this store runs on (on PostgreSQL with autocommit execution options)."""
        return self._engine

    def _id(self, value: object, name: str) -> str:
        checked = check_id(value, name)
        if self._refuse_nul and "\x00" in checked:
            raise InvalidParameter(f"{name} must not contain NUL characters on PostgreSQL")
        return checked

    def _no_nul(self, value: str, name: str) -> None:
        if self._refuse_nul and "\x00" in value:
            raise InvalidParameter(f"{name} must not contain NUL characters on PostgreSQL")

    def _challenge_checked(self, record: object) -> OOBRecord:
        checked = check_oob_record(record)
        for name in ("challenge_id", "user_id", "destination_hint"):
            self._no_nul(getattr(checked, name), name)
        return checked

    def _checked(self, credential: object) -> Credential:
        checked = check_credential(credential)
        if self._refuse_nul:
            for name in ("id", "user_id", "label", "replaces"):
                value = getattr(checked, name)
                if value is not None and "\x00" in value:
                    raise InvalidParameter(f"{name} must not contain NUL characters on PostgreSQL")
        return checked

    def _execute(
        self,
        operation: str,
        statement: sa.Executable,
        read: Callable[[sa.CursorResult[Any]], _T],
        *,
        conflict: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> _T:
        """Execute one statement as one transaction and ``read`` its result (rows or
        rowcount) before the commit; the connection then goes back to the pool.
        ``params``: the values of a prebuilt statement's bind parameters."""
        lean = self._lean
        if params is not None and lean is not None and lean.serves(statement):
            lean_run = lean.runner(statement, params, read)
            return _guard(operation, self._bounded(operation, lean_run), conflict=conflict)

        def run() -> _T:
            with self._engine.connect() as connection:
                result = read(connection.execute(statement, params))
                # Nothing to commit in autocommit mode (PostgreSQL: no round trip); on
                # SQLite this ends the implicit transaction of a write.
                connection.commit()
                return result

        return _guard(operation, self._bounded(operation, self._retried(run)), conflict=conflict)

    def _transaction(self, operation: str, body: Callable[[sa.Connection], _T]) -> _T:
        """Run ``body``'s statements in one transaction: committed if it returns, rolled
        back if anything raises."""

        def run() -> _T:
            with self._tx_engine.begin() as connection:
                return body(connection)

        return _guard(operation, self._bounded(operation, self._retried(run)))

    def _bounded(self, operation: str, run: Callable[[], _T]) -> Callable[[], _T]:
        """``run`` under the store's deadline (:mod:`mfa_core.stores._deadline`): past it
        the connection in use is cut and the call raises StoreUnavailable."""
        timeout = self._timeout
        if timeout is None:
            return run

        def bounded() -> _T:
            with WATCHDOG.call(timeout) as call:
                try:
                    return run()
                except (MFAError, sa_exc.SQLAlchemyError, OSError):
                    if not call.expired:
                        raise
            raise StoreUnavailable(
                f"the SQL store is unavailable: {operation} got no answer within {timeout:g} s"
            )

        return bounded

    def _retried(self, run: Callable[[], _T]) -> Callable[[], _T]:
        """``run``, on MySQL/MariaDB run again (at most :data:`_MYSQL_TRIES` times in all)
        when InnoDB rolled it back for a deadlock, after a jittered pause
        (:func:`_mysql_pause`); unchanged elsewhere."""
        if not self._mysql:
            return run
        pause = self._pause

        def again() -> _T:
            for attempt in range(1, _MYSQL_TRIES + 1):
                try:
                    return run()
                except sa_exc.DBAPIError as exc:
                    if attempt == _MYSQL_TRIES or not _mysql_retryable(exc):
                        raise
                pause(_mysql_pause(attempt))
            raise AssertionError("unreachable")  # pragma: no cover

        return again

    # -- CredentialStore -----------------------------------------------------------------

    def add(self, credential: Credential) -> None:
        """Insert a new credential (one ``INSERT``); raise
        :class:`~mfa_core.errors.StoreError` if its id is already stored."""
        self._checked(credential)
        statement = credentials_table.insert().values(
            id=credential.id,
            last_accepted=credential.last_accepted,
            drift=credential.drift,
            version=credential.version,
            **_values(credential),
        )
        self._execute(
            "add", statement, _one_row_changed, conflict="a credential with this id already exists"
        )

    def get(self, credential_id: str) -> Credential | None:
        """Return the credential with this id, or ``None``."""
        params = {"p_credential": self._id(credential_id, "credential_id")}
        rows = self._execute("get", _GET, _all, params=params)
        return credential_from_row(rows[0], "SQL") if rows else None

    def list_for_user(self, user_id: str) -> Sequence[Credential]:
        """Return all credentials of a user (any state), oldest first (by ``created_at``,
        then by insertion order)."""
        params = {"p_user": self._id(user_id, "user_id")}
        return [
            credential_from_row(row, "SQL")
            for row in self._execute("list_for_user", _CREDENTIALS_OF_USER, _all, params=params)
        ]

    def update(self, credential: Credential, *, expected_version: int) -> bool:
        """Replace the stored credential if its version is ``expected_version`` (one
        conditional ``UPDATE``). The stored version becomes ``expected_version + 1``;
        ``last_accepted`` and ``drift`` keep their stored values. Returns ``False``
        (changing nothing) if the credential is missing or its version differs.
        """
        self._checked(credential)
        check_version(expected_version)
        statement = (
            credentials_table.update()
            .where(_C.id == credential.id, _C.version == expected_version)
            .values(version=expected_version + 1, **_values(credential))
        )
        return self._execute("update", statement, _one_row_changed)

    def claim(self, credential_id: str, value: int, *, drift: int) -> bool:
        """Store ``value`` and ``drift`` if ``value`` is greater than ``last_accepted`` (one
        conditional ``UPDATE``); return whether it was stored. Of concurrent calls with one
        value, from any process, exactly one wins. ``value``: 0..2**63-1.
        """
        params = {
            "p_credential": self._id(credential_id, "credential_id"),
            "p_value": check_claim_value(value),
            "p_drift": check_drift(drift),
        }
        return self._execute("claim", _CLAIM, _one_row_changed, params=params)

    def delete(self, credential_id: str) -> bool:
        """Remove a credential; return whether it existed."""
        params = {"p_credential": self._id(credential_id, "credential_id")}
        return self._execute("delete", _DELETE, _one_row_changed, params=params)

    # -- FailureCounter ------------------------------------------------------------------

    def admit_attempt(self, user_id: str, now: float, limits: ThrottleConfig) -> Admission:
        """Admit and count one attempt at ``now``, or refuse it, as
        :func:`mfa_core.throttle.admit` does on the stored state, atomically.

        PostgreSQL: one statement, the upsert ``... ON CONFLICT (user_id) DO UPDATE SET
        count = count + 1, last_failure_at = max(last_failure_at, now) WHERE <allowed>``
        with the throttle's decision computed in SQL on double precision as in Python
        (delay ``min(base_delay * power(2, count - 1), max_delay)``, lockout NULL for
        ever), and, when refused, the row that refused it, from the same statement
        (:func:`_pg_admission`). SQLite: the same upsert then, when refused, a read of the
        row, in one transaction that holds the write lock from its first statement.

        A refusal always comes with a state :func:`mfa_core.throttle.check` refuses; in the
        rare race where the statement cannot report it (see :func:`_pg_admission`) the
        statement runs again, at most three times in all, then
        :class:`~mfa_core.errors.StoreError`. A stored row ``check`` would refuse to read
        (negative count, failures without a finite time) is never admitted and raises
        :class:`~mfa_core.errors.StoreError`.
        """
        params = self._admission_params(user_id, now, limits)
        if self._postgres:
            return self._pg_admit("admit_attempt", _PG_ADMIT, params, limits)[0]
        if self._mysql:
            return self._mysql_admit("admit_attempt", params, limits, with_credentials=False)[0]

        def admit(connection: sa.Connection) -> tuple[Admission | None, Sequence[Credential]]:
            return self._sqlite_admit(connection, params, limits), ()

        return self._sqlite_attempt("admit_attempt", admit)[0]

    def begin_attempt(
        self, user_id: str, now: float, limits: ThrottleConfig
    ) -> tuple[Admission, Sequence[Credential]]:
        """:meth:`admit_attempt`, then (only when admitted) :meth:`list_for_user`, in one
        round trip: the admission and the user's credentials; an empty sequence when the
        attempt is not admitted.

        PostgreSQL: one statement (the admission of :meth:`admit_attempt` joined with the
        user's credentials, which it reads only when admitted, in the statement's
        snapshot). SQLite: the admission and the credentials read in one transaction.
        """
        params = self._admission_params(user_id, now, limits)
        if self._postgres:
            return self._pg_admit("begin_attempt", _PG_BEGIN, params, limits)
        if self._mysql:
            return self._mysql_admit("begin_attempt", params, limits, with_credentials=True)

        def begin(connection: sa.Connection) -> tuple[Admission | None, Sequence[Credential]]:
            admission = self._sqlite_admit(connection, params, limits)
            if admission is None or not admission.admitted:
                return admission, ()
            rows = connection.execute(_CREDENTIALS_OF_USER, {"p_user": params["p_user"]}).all()
            return admission, [credential_from_row(row, "SQL") for row in rows]

        return self._sqlite_attempt("begin_attempt", begin)

    def claim_and_reset(self, credential_id: str, value: int, *, drift: int, user_id: str) -> bool:
        """:meth:`claim`, then (only when the claim won) :meth:`reset` of ``user_id``;
        return whether the claim won.

        PostgreSQL: one statement (the conditional ``UPDATE`` and a ``DELETE`` of the
        failure row that runs only when the update returned a row, as data-modifying
        ``WITH`` clauses). SQLite: the two in one transaction.
        """
        params = {
            "p_credential": self._id(credential_id, "credential_id"),
            "p_value": check_claim_value(value),
            "p_drift": check_drift(drift),
            "p_user": self._id(user_id, "user_id"),
        }
        if self._postgres:
            rows = self._execute("claim_and_reset", _PG_CLAIM_AND_RESET, _all, params=params)
            if len(rows) != 1:
                raise StoreError("the SQL store returned no result for claim_and_reset")
            return bool(rows[0][0] == 1)

        def claim(connection: sa.Connection) -> bool:
            if connection.execute(_CLAIM, params).rowcount != 1:
                return False
            connection.execute(_RESET, params)
            return True

        return self._transaction("claim_and_reset", claim)

    def _admission_params(self, user_id: str, now: float, limits: ThrottleConfig) -> dict[str, Any]:
        """The checked arguments of an admission as the values of its bind parameters."""
        self._id(user_id, "user_id")
        at = check_time(now)
        if not isinstance(limits, ThrottleConfig):
            raise InvalidParameter("limits must be a ThrottleConfig")
        return {
            "p_user": user_id,
            "p_now": at,
            "p_max_failures": limits.max_failures,
            "p_base_delay": float(limits.base_delay),
            "p_max_delay": float(limits.max_delay),
            "p_lockout": None if limits.lockout is None else float(limits.lockout),
        }

    def _pg_admit(
        self,
        operation: str,
        statement: sa.Executable,
        params: dict[str, Any],
        limits: ThrottleConfig,
    ) -> tuple[Admission, Sequence[Credential]]:
        """Run PostgreSQL's admission ``statement`` (with or without the credentials);
        again, at most :data:`_ADMISSION_TRIES` times in all, when it came back without
        the state that refused the attempt (nothing was written then)."""
        for _ in range(_ADMISSION_TRIES):
            rows = self._execute(operation, statement, _all, params=params)
            admission = _admission(rows[0], params["p_now"], limits) if rows else None
            if admission is None:
                continue
            if not admission.admitted:
                return admission, ()
            # begin_attempt's rows carry the credentials after the admission's 3 columns
            # (one row of NULLs for a user without credentials); admit_attempt's have none.
            # A row with only its id NULL is a corrupt credential, not "none" (StoreError).
            credentials = [
                credential_from_row(row[3:], "SQL")
                for row in rows
                if any(value is not None for value in row[3:])
            ]
            return admission, credentials
        raise StoreError(f"the SQL store could not read the failure state ({operation})")

    def _sqlite_admit(
        self, connection: sa.Connection, params: dict[str, Any], limits: ThrottleConfig
    ) -> Admission | None:
        """SQLite's admission inside a transaction: the upsert, then (refused) the row;
        ``None`` if that row does not refuse the attempt (only possible when the host's
        engine runs SQLite without transactions)."""
        rows = connection.execute(_SQLITE_ADMIT, params).all()
        if rows:
            return _admission((True, *rows[0]), params["p_now"], limits)
        stored = connection.execute(_FAILURES_OF_USER, {"p_user": params["p_user"]}).all()
        return _admission((False, *stored[0]), params["p_now"], limits) if stored else None

    def _mysql_admit(
        self,
        operation: str,
        params: dict[str, Any],
        limits: ThrottleConfig,
        *,
        with_credentials: bool,
    ) -> tuple[Admission, Sequence[Credential]]:
        """MySQL/MariaDB's admission, one transaction: the user's failure row read and
        locked (``SELECT ... FOR UPDATE``: the latest committed row, whatever the
        isolation level), :func:`mfa_core.throttle.admit` on it, the new state written
        only when admitted, then (``with_credentials``, admitted) the user's credentials.
        Two first attempts of one user deadlock on the gap lock; InnoDB rolls one back and
        it runs again (:meth:`_retried`)."""
        user = params["p_user"]

        def body(connection: sa.Connection) -> tuple[Admission, Sequence[Credential]]:
            rows = connection.execute(_MYSQL_FAILURES_LOCKED, {"p_user": user}).all()
            state = _failure_state(rows[0]) if rows else FailureState()
            last = state.last_failure_at
            if last is not None and not math.isfinite(last):
                raise StoreError("the SQL store holds a failure row it cannot read")
            try:
                admission = admit(state, params["p_now"], limits)
            except MFAError:
                raise StoreError("the SQL store holds a failure row it cannot read") from None
            if not admission.admitted:
                return admission, ()
            written = {
                "p_user": user,
                "p_count": admission.state.count,
                "p_last": admission.state.last_failure_at,
            }
            connection.execute(_MYSQL_FAILURES_UPDATE if rows else _MYSQL_FAILURES_INSERT, written)
            if not with_credentials:
                return admission, ()
            found = connection.execute(_CREDENTIALS_OF_USER, {"p_user": user}).all()
            return admission, [credential_from_row(row, "SQL") for row in found]

        return self._transaction(operation, body)

    def _sqlite_attempt(
        self,
        operation: str,
        body: Callable[[sa.Connection], tuple[Admission | None, Sequence[Credential]]],
    ) -> tuple[Admission, Sequence[Credential]]:
        """Run a SQLite admission transaction, again (bounded) if it could not report the
        state that refused the attempt."""
        for _ in range(_ADMISSION_TRIES):
            admission, credentials = self._transaction(operation, body)
            if admission is not None:
                return admission, credentials
        raise StoreError(f"the SQL store could not read the failure state ({operation})")

    def get_failures(self, user_id: str) -> FailureState:
        """Return the user's failure state (``FailureState()`` if none)."""
        self._id(user_id, "user_id")
        rows = self._execute("get_failures", _FAILURES_OF_USER, _all, params={"p_user": user_id})
        return _failure_state(rows[0]) if rows else FailureState()

    def reset(self, user_id: str) -> None:
        """Forget the user's failures (one ``DELETE``)."""
        params = {"p_user": self._id(user_id, "user_id")}
        self._execute("reset", _RESET, _one_row_changed, params=params)

    # -- RecoveryCodeStore ---------------------------------------------------------------

    def replace_recovery_codes(self, user_id: str, records: Sequence[RecoveryRecord]) -> None:
        """Replace the user's whole set with ``records`` (empty: delete it) in one
        transaction: no reader sees old and new codes mixed, and no old code is consumable
        afterwards.

        On PostgreSQL the transaction first takes a per-user advisory lock (two concurrent
        replacements of a new user's set cannot both insert) and locks the old codes in
        the order ``consume_recovery_code`` does (so the two never deadlock).
        """
        self._id(user_id, "user_id")
        checked = check_recovery_records(records)
        for record in checked:
            self._no_nul(record.id, "record id")
            self._no_nul(record.phc, "phc")
        rows = [
            {
                "user_id": user_id,
                "id": record.id,
                "position": position,
                "tag": record.tag,
                "phc": record.phc,
                "used_at": opt_float(record.used_at),
            }
            for position, record in enumerate(checked)
        ]

        def swap(connection: sa.Connection) -> None:
            if self._postgres:
                connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_lock_key(user_id))))
            if self._postgres or self._mysql:
                connection.execute(
                    sa.select(_R.id).where(_R.user_id == user_id).order_by(_R.id).with_for_update()
                )
            connection.execute(recovery_codes_table.delete().where(_R.user_id == user_id))
            if rows:
                connection.execute(recovery_codes_table.insert(), rows)

        self._transaction("replace_recovery_codes", swap)

    def recovery_codes(self, user_id: str) -> Sequence[RecoveryRecord]:
        """Return the user's records, used ones included, in the order they were given."""
        self._id(user_id, "user_id")
        statement = _RECOVERY_SELECT.where(_R.user_id == user_id).order_by(_R.position)
        return [
            recovery_from_row(row, "SQL")
            for row in self._execute("recovery_codes", statement, _all)
        ]

    def consume_recovery_code(self, user_id: str, record_id: str, now: float) -> int | None:
        """Mark the code used at ``now`` if it exists and is unused, and return the unused
        codes left; ``None`` (changing nothing) otherwise. Of concurrent calls from any
        process exactly one returns a number, and concurrent consumptions of different
        codes of one user return different counts.

        PostgreSQL: one statement (lock the user's codes in ``id`` order, conditional
        ``UPDATE``, count). SQLite: the conditional ``UPDATE`` and the count in one
        transaction.
        """
        self._id(user_id, "user_id")
        self._id(record_id, "record_id")
        at = check_time(now)
        if self._postgres:
            rows = self._execute(
                "consume_recovery_code", _consume_statement(user_id, record_id, at), _all
            )
            if len(rows) != 1:
                raise StoreError("the SQL store returned no result for consume_recovery_code")
            won, unused = rows[0]
            return int(unused) - 1 if won == 1 else None
        if self._mysql:
            return self._transaction(
                "consume_recovery_code", lambda c: _mysql_consume(c, user_id, record_id, at)
            )

        def consume(connection: sa.Connection) -> int | None:
            marked = connection.execute(
                recovery_codes_table.update()
                .where(_R.user_id == user_id, _R.id == record_id, _R.used_at.is_(None))
                .values(used_at=at)
            )
            if marked.rowcount != 1:
                return None
            left = connection.execute(
                sa.select(sa.func.count())
                .select_from(recovery_codes_table)
                .where(_R.user_id == user_id, _R.used_at.is_(None))
            ).scalar_one()
            return int(left)

        return self._transaction("consume_recovery_code", consume)

    def update_recovery_hash(self, user_id: str, record_id: str, phc: str) -> bool:
        """Replace one record's PHC hash (``used_at`` is kept); return whether it exists."""
        self._id(user_id, "user_id")
        self._id(record_id, "record_id")
        self._no_nul(check_phc(phc), "phc")
        statement = (
            recovery_codes_table.update()
            .where(_R.user_id == user_id, _R.id == record_id)
            .values(phc=phc)
        )
        return self._execute("update_recovery_hash", statement, _one_row_changed)

    # -- OOBChallengeStore ---------------------------------------------------------------

    def put_challenge(self, record: OOBRecord) -> None:
        """Insert a new challenge (one ``INSERT``); raise
        :class:`~mfa_core.errors.StoreError` if its id is already stored."""
        self._challenge_checked(record)
        statement = oob_challenges_table.insert().values(
            challenge_id=record.challenge_id, **_challenge_values(record)
        )
        self._execute(
            "put_challenge",
            statement,
            _one_row_changed,
            conflict="a challenge with this id already exists",
        )

    def get_challenge(self, challenge_id: str) -> OOBRecord | None:
        """Return the challenge with this id, or ``None``."""
        params = {"p_challenge": self._id(challenge_id, "challenge_id")}
        rows = self._execute("get_challenge", _GET_CHALLENGE, _all, params=params)
        return challenge_from_row(rows[0], "SQL") if rows else None

    def replace_challenge(self, record: OOBRecord, *, expected_generation: int) -> bool:
        """Store ``record`` if the stored challenge has ``expected_generation`` and is not
        used (one conditional ``UPDATE``); return whether it was stored."""
        self._challenge_checked(record)
        check_generation(expected_generation)
        statement = (
            oob_challenges_table.update()
            .where(
                _O.challenge_id == record.challenge_id,
                _O.generation == expected_generation,
                _O.used.is_(False),
            )
            .values(**_challenge_values(record))
        )
        return self._execute("replace_challenge", statement, _one_row_changed)

    def update_challenge(self, record: OOBRecord, *, expected: OOBRecord) -> bool:
        """Store ``record`` if the stored challenge still has ``expected``'s generation,
        attempts and used flag (one conditional ``UPDATE``); return whether it was stored."""
        self._challenge_checked(record)
        self._challenge_checked(expected)
        if record.challenge_id != expected.challenge_id:
            raise InvalidParameter("record and expected must be the same challenge")
        statement = (
            oob_challenges_table.update()
            .where(
                _O.challenge_id == record.challenge_id,
                _O.generation == expected.generation,
                _O.attempts == expected.attempts,
                _O.used.is_(expected.used),
            )
            .values(**_challenge_values(record))
        )
        return self._execute("update_challenge", statement, _one_row_changed)

    def delete_challenge(self, challenge_id: str) -> bool:
        """Remove a challenge; return whether it existed."""
        params = {"p_challenge": self._id(challenge_id, "challenge_id")}
        return self._execute("delete_challenge", _DELETE_CHALLENGE, _one_row_changed, params=params)

    def count_send(self, key: str, window_start: float, expires_at: float) -> int:
        """Add one to the send counter ``(key, window_start)`` and return the new count
        (one upsert ``... RETURNING count``). Of concurrent calls from any process each
        gets its own count."""
        name, start, end = check_send_count(key, window_start, expires_at)
        self._no_nul(name, "key")
        if self._mysql:
            return self._transaction("count_send", lambda c: _mysql_count_send(c, name, start, end))
        insert = self._insert(send_counters_table).values(
            key=name, window_start=start, count=1, expires_at=end
        )
        excluded = insert.excluded.expires_at
        statement = insert.on_conflict_do_update(
            index_elements=[_S.key, _S.window_start],
            set_={
                "count": _S.count + 1,
                "expires_at": sa.case((_S.expires_at > excluded, _S.expires_at), else_=excluded),
            },
        ).returning(_S.count)
        return _send_count(self._execute("count_send", statement, _all))

    def purge_challenges(self, before: float) -> int:
        """Remove every challenge whose code expired before ``before`` (Unix seconds),
        and every send counter whose window ended before it, in one transaction; return
        how many challenges were removed. Housekeeping for hosts (not part of the port):
        call it now and then with, e.g., ``now - 86400`` to keep used and expired
        challenges a day."""
        limit = check_time(before, "before")

        def remove(connection: sa.Connection) -> int:
            removed = connection.execute(
                oob_challenges_table.delete().where(_O.expires_at < limit)
            ).rowcount
            connection.execute(send_counters_table.delete().where(_S.expires_at < limit))
            return int(removed)

        return self._transaction("purge_challenges", remove)

    # -- StoreMaintenance ----------------------------------------------------------------

    def credential_ids(self, after: str | None, limit: int) -> Sequence[str]:
        """Up to ``limit`` stored credential ids greater than ``after``, ascending in
        code-point order (on PostgreSQL compared under the ``"C"`` collation, whatever the
        database's)."""
        start, count = check_page(after, limit)
        if start is not None:
            self._id(start, "after")
        column: Any = _C.id.collate("C") if self._postgres else _C.id
        statement = sa.select(_C.id).order_by(column).limit(count)
        if start is not None:
            statement = statement.where(column > start)
        return [str(row[0]) for row in self._execute("credential_ids", statement, _all)]

    def purge_pending(self, before: float) -> int:
        """Remove every PENDING credential whose ``pending_until`` is before ``before``
        (one ``DELETE`` whose condition is its test); return how many."""
        limit = check_time(before, "before")
        statement = credentials_table.delete().where(
            _C.status == CredentialState.PENDING.value,
            _C.pending_until.is_not(None),
            _C.pending_until < limit,
        )
        return self._execute("purge_pending", statement, lambda result: int(result.rowcount))


def _consume_statement(user_id: str, record_id: str, at: float) -> sa.Select[Any]:
    """PostgreSQL's one-statement ``consume_recovery_code``::

        WITH locked AS MATERIALIZED (SELECT id, used_at FROM mfa_recovery_codes
                                     WHERE user_id = :user ORDER BY id FOR UPDATE),
             marked AS (UPDATE mfa_recovery_codes SET used_at = :now
                        WHERE user_id = :user AND id = :id AND used_at IS NULL
                          AND EXISTS (SELECT 1 FROM locked
                                      WHERE id = :id AND used_at IS NULL)
                        RETURNING id)
        SELECT (SELECT count(*) FROM marked),
               (SELECT count(*) FROM locked WHERE used_at IS NULL)

    Every consumption of one user's codes locks the user's rows in ``id`` order, so they
    queue on the first row; a waiting one then reads the rows as the one before it left
    them (``FOR UPDATE`` returns the latest committed version). ``locked`` holds the
    values before this statement's own update: the codes left are its unused count minus
    one.
    """
    locked = (
        sa.select(_R.id, _R.used_at)
        .where(_R.user_id == user_id)
        .order_by(_R.id)
        .with_for_update()
        .cte("locked")
        .prefix_with("MATERIALIZED")
    )
    marked = (
        recovery_codes_table.update()
        .where(
            _R.user_id == user_id,
            _R.id == record_id,
            _R.used_at.is_(None),
            sa.exists().where(locked.c.id == record_id, locked.c.used_at.is_(None)),
        )
        .values(used_at=at)
        .returning(_R.id)
        .cte("marked")
    )
    return sa.select(
        sa.select(sa.func.count()).select_from(marked).scalar_subquery(),
        sa.select(sa.func.count())
        .select_from(locked)
        .where(locked.c.used_at.is_(None))
        .scalar_subquery(),
    )


def _mysql_consume(
    connection: sa.Connection, user_id: str, record_id: str, at: float
) -> int | None:
    """MySQL/MariaDB's ``consume_recovery_code`` in a transaction: lock the user's codes in
    ``id`` order (``SELECT ... FOR UPDATE`` reads the latest committed rows; concurrent
    consumptions queue on the first), mark the code if it is unused, count the rest."""
    rows = connection.execute(_MYSQL_CODES_LOCKED, {"p_user": user_id}).all()
    unused = [row[0] for row in rows if row[1] is None]
    if record_id not in unused:
        return None
    connection.execute(
        recovery_codes_table.update()
        .where(_R.user_id == user_id, _R.id == record_id, _R.used_at.is_(None))
        .values(used_at=at)
    )
    return len(unused) - 1


def _mysql_count_send(connection: sa.Connection, key: str, start: float, end: float) -> int:
    """MySQL/MariaDB's ``count_send`` in a transaction: ``INSERT ... ON DUPLICATE KEY
    UPDATE count = count + 1``, then the row this transaction holds locked."""
    insert = mysql.insert(send_counters_table).values(
        key=key, window_start=start, count=1, expires_at=end
    )
    connection.execute(
        insert.on_duplicate_key_update(
            count=_S.count + 1,
            expires_at=sa.func.greatest(_S.expires_at, insert.inserted.expires_at),
        )
    )
    rows = connection.execute(
        sa.select(_S.count).where(_S.key == key, _S.window_start == start).with_for_update()
    ).all()
    return _send_count(rows)


def _send_count(rows: Sequence[Sequence[Any]]) -> int:
    """The count of the one send-counter row ``rows`` must hold."""
    if len(rows) != 1:
        raise StoreError("the SQL store returned no send counter")
    try:
        return int(rows[0][0])
    except (ValueError, TypeError) as exc:
        raise StoreError("the SQL store holds a send counter it cannot read") from exc


def bound_engine(engine: sa.Engine, timeout: float | None) -> float | None:
    """Bound every call a store makes on ``engine``'s database server to ``timeout``
    seconds (``None``: no bound; SQLite files are never bound) and return the bound.
    :class:`SQLStore` calls it; hosts need not. On the engine's dialect and pool, once:

    * connection defaults the host did not set: ``connect_timeout`` (libpq: whole
      seconds, at least 2; PyMySQL, asyncmy, aiomysql), and PyMySQL's ``read_timeout`` and
      ``write_timeout`` (``timeout + 1``: they also bound a new connection's handshake);
    * the pool's checkout wait (``pool_timeout``) at most ``timeout``;
    * the deadline of each call, enforced by a watchdog thread that shuts the call's
      socket down when it passes (:mod:`mfa_core.stores._deadline`): the only bound that
      holds when the server says nothing at all (stopped, or the network path black-holed:
      keepalives, ``tcp_user_timeout`` and ``statement_timeout`` do not fire then).
    """
    if timeout is None or engine.dialect.name == "sqlite":
        return None
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 < timeout <= 86400
        or math.isnan(timeout)
    ):
        raise InvalidParameter("timeout must be a number of seconds in (0, 86400], or None")
    bound = float(timeout)
    dialect: Any = engine.dialect
    if getattr(dialect, "_mfa_core_bound", None) is None:
        dialect._mfa_core_bound = bound
        sa.event.listen(engine, "do_connect", _connect_defaults(bound))
        ping = dialect.do_ping

        def do_ping(dbapi_connection: Any) -> bool:
            WATCHDOG.attach(dbapi_connection)
            return bool(ping(dbapi_connection))

        dialect.do_ping = do_ping
    pool: Any = engine.pool
    if getattr(pool, "_mfa_core_bound", None) is None:
        pool._mfa_core_bound = bound
        sa.event.listen(pool, "checkout", lambda dbapi, record, proxy: WATCHDOG.attach(dbapi))
        if isinstance(getattr(pool, "_timeout", None), int | float) and pool._timeout > bound:
            pool._timeout = bound
    return bound


def _connect_defaults(bound: float) -> Callable[..., None]:
    def defaults(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
        driver = dialect.driver
        if driver in ("psycopg", "psycopg2", "psycopg_async"):
            cparams.setdefault("connect_timeout", max(2, math.ceil(bound)))
        elif driver in ("pymysql", "asyncmy", "aiomysql"):
            cparams.setdefault("connect_timeout", bound)
        if driver == "pymysql":
            # PyMySQL's connect_timeout covers the TCP connect only; its read timeout also
            # bounds the handshake of a new connection (a second after the watchdog, which
            # cuts the established ones)
            for name in ("read_timeout", "write_timeout"):
                cparams.setdefault(name, bound + 1.0)

    return defaults
