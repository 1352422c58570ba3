"""The lean SQL path of :class:`~mfa_core.stores.sql.SQLStore` on PostgreSQL (psycopg): the
prebuilt single statements rendered once and run on the pool's DBAPI connection.

The contract suite, the round-trip counts, the terminated-backend and frozen-server tests
run through it already (tests/test_sql_store.py, tests/test_sql_bounded.py); these attack
what is particular to it: a driver error on that path keeps the store's error rules (no
SQLAlchemy wrapper and no parameter reachable), the host's transactional connections stay
transactional after the path switched one to autocommit, and a host listening to the
engine's execution events still sees every statement (the SQLAlchemy path runs then).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from error_chain import chain
from server_tools import postgres_engine

from mfa_core.errors import StoreError, StoreUnavailable
from mfa_core.models import Credential, CredentialKind, CredentialState, FailureState
from mfa_core.stores import sql
from mfa_core.stores.sql import SQLStore
from mfa_core.throttle import ThrottleConfig

pytest_plugins = ("servers",)

T0 = 1_700_000_000.0
OPEN = ThrottleConfig(max_failures=100, base_delay=0, max_delay=0, lockout=60)


def _credential(user: str) -> Credential:
    return Credential(
        id=f"cred-{user}",
        user_id=user,
        kind=CredentialKind.TOTP,
        sealed_key=b"\x00" * 48,
        created_at=T0,
        status=CredentialState.ACTIVE,
    )


def test_the_lean_path_serves_the_prebuilt_statements(
    postgres_url: str, postgres_schema: str
) -> None:
    made = postgres_engine(postgres_url, postgres_schema, pool_size=1)
    try:
        store = SQLStore(made)
        lean: Any = store._lean
        assert lean is not None
        for statement in sql._LEAN_STATEMENTS:
            assert lean.serves(statement)
        assert not lean.serves(sql._SELECT)  # built per call: the SQLAlchemy path
        store.add(_credential("ivan"))
        assert store.claim("cred-ivan", 5, drift=0)
        assert not store.claim("cred-ivan", 5, drift=0)
        assert store.begin_attempt("ivan", T0, OPEN)[0].admitted
        assert store.get_failures("ivan") == FailureState(1, T0)
        assert store.claim_and_reset("cred-ivan", 6, drift=0, user_id="ivan")
        assert store.get_failures("ivan") == FailureState()
    finally:
        made.dispose()


def test_a_failed_lean_statement_leaves_no_parameter_in_the_error_chain(
    postgres_url: str, postgres_schema: str
) -> None:
    made = postgres_engine(postgres_url, postgres_schema, pool_size=1)
    secret = f"SECRET-USER-{uuid.uuid4().hex}"
    try:
        store = SQLStore(made)
        store.add(_credential(secret))
        with made.begin() as connection:
            connection.exec_driver_sql(f'DROP TABLE "{postgres_schema}".mfa_failures')
        calls = (
            lambda: store.get_failures(secret),
            lambda: store.admit_attempt(secret, T0, OPEN),
            lambda: store.begin_attempt(secret, T0, OPEN),
            lambda: store.claim_and_reset(f"cred-{secret}", 9, drift=0, user_id=secret),
        )
        for call in calls:
            with pytest.raises(StoreError) as caught:
                call()
            assert not isinstance(caught.value, StoreUnavailable)  # a missing table
            assert caught.value.__context__ is None  # raised outside any except block
            reachable = chain(caught.value)
            assert not any(isinstance(item, sa.exc.SQLAlchemyError) for item in reachable)
            text = "".join(str(item) + repr(item.args) for item in reachable)
            assert secret not in text
        # the connection survived the failed statements (nothing was invalidated)
        assert store.claim(f"cred-{secret}", 1, drift=0)
    finally:
        made.dispose()


def test_the_hosts_connections_stay_transactional(postgres_url: str, postgres_schema: str) -> None:
    # one pooled connection: the store's lean calls and the host share it
    made = postgres_engine(postgres_url, postgres_schema, pool_size=1, max_overflow=0)
    try:
        store = SQLStore(made)
        store.add(_credential("judy"))
        assert store.claim("cred-judy", 3, drift=0)
        assert store.get_failures("judy") == FailureState()
        with made.connect() as connection:
            assert connection.connection.dbapi_connection.autocommit is False
            connection.execute(sql.credentials_table.update().values(last_accepted=99))
            connection.rollback()  # the host's transaction: nothing was committed
        assert store.claim("cred-judy", 4, drift=0)  # 3 was stored, not 99
    finally:
        made.dispose()


def test_a_host_watching_execution_events_sees_every_statement(
    postgres_url: str, postgres_schema: str
) -> None:
    made = postgres_engine(postgres_url, postgres_schema, pool_size=1)
    seen: list[str] = []

    def watch(connection: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement.split(None, 1)[0].upper())

    try:
        store = SQLStore(made)
        store.add(_credential("karl"))
        store.get_failures("karl")  # the lean path, its look at the events remembered
        sa.event.listen(made, "before_cursor_execute", watch)  # after the store was made
        store.get_failures("karl")
        store.claim("cred-karl", 1, drift=0)
        store.begin_attempt("karl", T0, OPEN)
        store.claim_and_reset("cred-karl", 2, drift=0, user_id="karl")
        assert seen == ["SELECT", "UPDATE", "WITH", "WITH"]
        sa.event.remove(made, "before_cursor_execute", watch)
        seen.clear()
        store.get_failures("karl")
        assert seen == []  # the lean path again
    finally:
        made.dispose()


def test_a_dialect_hook_added_between_calls_takes_the_sqlalchemy_path(
    postgres_url: str, postgres_schema: str
) -> None:
    """A ``do_execute`` hook (a dialect event) added after lean calls ran sees the next
    statement; removed, the lean path serves again."""
    made = postgres_engine(postgres_url, postgres_schema, pool_size=1)
    seen: list[str] = []

    def hook(cursor: Any, statement: str, parameters: Any, context: Any) -> None:
        seen.append(statement.split(None, 1)[0].upper())

    try:
        store = SQLStore(made)
        store.add(_credential("lena"))
        for _ in range(3):
            assert store.claim("cred-lena", len(seen) + 10 + _, drift=0)
        sa.event.listen(made, "do_execute", hook)
        store.get_failures("lena")
        assert seen == ["SELECT"]
        sa.event.remove(made, "do_execute", hook)
        store.get_failures("lena")
        assert seen == ["SELECT"]
    finally:
        made.dispose()


def test_the_lean_cursor_is_kept_with_its_connection_and_dropped_after_an_error(
    postgres_url: str, postgres_schema: str
) -> None:
    """One cursor per pooled connection serves every lean call on it; a statement that
    fails closes that cursor and the next call opens another, which works."""
    made = postgres_engine(postgres_url, postgres_schema, pool_size=1, max_overflow=0)
    try:
        store = SQLStore(made)
        store.add(_credential("mona"))
        store.get_failures("mona")
        fairy = made.raw_connection()
        try:
            first = fairy.info[sql._LEAN_CURSOR][1]
        finally:
            fairy.close()
        store.get_failures("mona")
        assert store.claim("cred-mona", 1, drift=0)
        fairy = made.raw_connection()
        try:
            assert fairy.info[sql._LEAN_CURSOR][1] is first
        finally:
            fairy.close()
        with made.begin() as connection:
            connection.exec_driver_sql(
                f'ALTER TABLE "{postgres_schema}".mfa_failures RENAME TO mfa_failures_gone'
            )
        with pytest.raises(StoreError):
            store.get_failures("mona")
        assert first.closed
        with made.begin() as connection:
            connection.exec_driver_sql(
                f'ALTER TABLE "{postgres_schema}".mfa_failures_gone RENAME TO mfa_failures'
            )
        assert store.get_failures("mona") == FailureState()
        fairy = made.raw_connection()
        try:
            assert fairy.info[sql._LEAN_CURSOR][1] is not first
        finally:
            fairy.close()
    finally:
        made.dispose()
