"""Rows a store would never write are StoreErrors, and the service refuses with STORE_ERROR.

Issue 11: the row decoders applied weaker rules than the stores write by, so a corrupt or
tampered row (an id NULL, period 0, digits 99, a NaN, infinite or ``10**400`` time, text
where a number belongs, bytes that are not UTF-8) decoded into a credential or challenge
that the service then tripped over (an InvalidParameter, an OverflowError) or used. Each
case here is written straight into the real database (SQLite, PostgreSQL, Redis), bypassing
the store's write checks, and then read through ``MFAService``. The error carries no chain:
the column's value could be anything, a secret included.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from mfa_core import b32decode_key, totp
from mfa_core.errors import ErrorCode, StoreError
from mfa_core.recovery import Argon2Params, RecoveryConfig
from mfa_core.sealing import AESGCMSealer
from mfa_core.service import MFAService, ServiceConfig, VerifyReason
from mfa_core.stores import SQLiteStore
from mfa_core.stores._common import challenge_from_row, credential_from_row, recovery_from_row
from mfa_core.testing import FakeClock, FakeCodeSender
from mfa_core.throttle import ThrottleConfig

pytest_plugins = ("servers",)

T0 = 1_800_000_000.0
SECRET = b"host secret for tests, 32 bytes!"
HUGE = 10**400
NAN = float("nan")
INF = float("inf")

GOOD_CREDENTIAL: tuple[Any, ...] = (
    "c1", "u1", "totp", b"sealed", 1.0, "active", "SHA1", 6, 30, "phone",
    None, 2.0, 2.0, None, None, 7, 0, 3,
)  # fmt: skip
PHC = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
GOOD_RECOVERY: tuple[Any, ...] = ("r1", "0" * 16, PHC, None)
GOOD_CHALLENGE: tuple[Any, ...] = (
    "ch1", "u1", "login", "email", "a***@example.com", b"h" * 32, 6,
    10.0, 190.0, 5, 0, 0, 0, 0, b"d" * 32,
)  # fmt: skip


def _with(row: tuple[Any, ...], index: int, value: object) -> tuple[Any, ...]:
    return (*row[:index], value, *row[index + 1 :])


def _unreadable(decode: Callable[[], object]) -> None:
    with pytest.raises(StoreError) as info:
        decode()
    assert info.value.code is ErrorCode.STORE_ERROR
    assert info.value.__cause__ is None and info.value.__context__ is None


# -- the decoders on their own ----------------------------------------------------------


def test_good_rows_still_decode() -> None:
    assert credential_from_row(GOOD_CREDENTIAL, "SQLite").period == 30
    assert credential_from_row(_with(GOOD_CREDENTIAL, 4, 1), "SQLite").created_at == 1.0
    assert recovery_from_row(GOOD_RECOVERY, "SQL").used_at is None
    assert challenge_from_row(GOOD_CHALLENGE, "SQL").destination_hash == b"d" * 32
    assert challenge_from_row(GOOD_CHALLENGE[:14], "SQL").destination_hash is None
    assert challenge_from_row(_with(GOOD_CHALLENGE, 14, None), "SQL").destination_hash is None


@pytest.mark.parametrize(
    ("index", "value"),
    [
        (0, None),  # id NULL
        (0, ""),
        (1, None),
        (1, "u\ud800"),
        (3, b""),  # empty sealed key
        (3, "text"),
        (4, NAN),
        (4, INF),
        (4, -1.0),
        (4, HUGE),
        (4, "1.0"),  # a time stored as text
        (5, "expired"),  # a derived state is never stored
        (7, 99),
        (7, 0),
        (8, 0),  # period 0
        (8, -30),
        (8, 2**40),
        (9, None),
        (9, b"phone"),
        (10, NAN),
        (11, INF),
        (12, HUGE),
        (13, 7),
        (14, "yesterday"),
        (15, -2),
        (15, 2**64),
        (16, HUGE),
        (17, -1),
        (17, 1.5),
    ],
)
def test_credential_rows_the_store_would_not_write_are_store_errors(
    index: int, value: object
) -> None:
    _unreadable(lambda: credential_from_row(_with(GOOD_CREDENTIAL, index, value), "SQLite"))


@pytest.mark.parametrize(
    ("index", "value"),
    [(0, None), (1, 5), (2, "x" * 600), (2, "not a phc"), (3, NAN), (3, INF), (3, HUGE), (3, "x")],
)
def test_recovery_rows_the_store_would_not_write_are_store_errors(
    index: int, value: object
) -> None:
    _unreadable(lambda: recovery_from_row(_with(GOOD_RECOVERY, index, value), "SQL"))


@pytest.mark.parametrize(
    ("index", "value"),
    [
        (0, None),
        (0, "bad id!"),
        (4, None),
        (5, b"short"),
        (6, 99),
        (7, NAN),
        (8, INF),
        (7, HUGE),
        (8, "190"),
        (9, 0),
        (12, -1),
        (13, 2),
        (13, 1.0),
        (14, b"short"),
        (14, "d" * 32),
    ],
)
def test_challenge_rows_the_store_would_not_write_are_store_errors(
    index: int, value: object
) -> None:
    _unreadable(lambda: challenge_from_row(_with(GOOD_CHALLENGE, index, value), "SQL"))


def test_a_short_row_is_a_store_error() -> None:
    _unreadable(lambda: credential_from_row(GOOD_CREDENTIAL[:10], "SQLite"))
    _unreadable(lambda: recovery_from_row(GOOD_RECOVERY[:2], "SQLite"))


# -- written straight into each database, read through the service -----------------------


@attrs.define
class Backend:
    """A store and a way to write a column of a user's row behind its back."""

    store: Any
    corrupt: Callable[[str, str, object], None]
    """(table, column, SQL literal or raw value) -> None: set that column in every row."""


def _sqlite_backend(path: Path) -> Iterator[Backend]:
    store = SQLiteStore(path)

    def corrupt(table: str, column: str, value: object) -> None:
        raw = sqlite3.connect(path)
        try:
            raw.execute("PRAGMA ignore_check_constraints = ON")  # write what CHECK refuses
            with raw:
                raw.execute(f"UPDATE {table} SET {column} = {value}")  # noqa: S608 - test
        except sqlite3.IntegrityError:
            pytest.skip("SQLite itself refuses this value (NOT NULL)")
        finally:
            raw.close()

    yield Backend(store, corrupt)
    store.close()


def _postgres_backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    import sqlalchemy as sa
    from server_tools import postgres_engine

    from mfa_core.stores.sql import SQLStore

    url = request.getfixturevalue("postgres_url")
    schema = request.getfixturevalue("postgres_schema")
    engine = postgres_engine(url, schema)

    def corrupt(table: str, column: str, value: object) -> None:
        # The store never writes such values; drop the constraints to be able to (in this
        # test's own schema).
        qualified = f'"{schema}".{table}'
        try:
            with engine.begin() as connection:
                connection.execute(
                    sa.text(f"ALTER TABLE {qualified} ALTER COLUMN {column} DROP NOT NULL")
                )
                connection.execute(
                    sa.text(
                        f"ALTER TABLE {qualified} DROP CONSTRAINT IF EXISTS {table}_status_check"
                    )
                )
                update = f"UPDATE {qualified} SET {column} = {value}"  # noqa: S608 - test
                connection.execute(sa.text(update))
        except sa.exc.DataError:
            pytest.skip("PostgreSQL cannot hold this value in the column's type")

    yield Backend(SQLStore(engine), corrupt)
    engine.dispose()


def _redis_backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    from server_tools import redis_client

    from mfa_core.stores.redis import RedisStore

    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    store = RedisStore.from_url(url, prefix=prefix)
    client = redis_client(url)

    def corrupt(table: str, column: str, value: object) -> None:
        # table: a key family ("cred:", "oob:", "rc:"); every key of it gets the field
        # (column "*": every field of the key).
        pattern = prefix.encode("utf-8") + b"*" + table.encode("ascii") + b"*"
        keys = list(client.scan_iter(match=pattern))
        assert keys, f"no {table} key to corrupt"
        for key in keys:
            fields = list(client.hkeys(key)) if column == "*" else [column]
            for field in fields:
                if value is None:
                    client.hdel(key, field)
                else:
                    client.hset(key, field, value)

    yield Backend(store, corrupt)
    client.close()
    store.close()


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield from _sqlite_backend(tmp_path / "rows.sqlite3")
    elif request.param == "postgresql":
        yield from _postgres_backend(request)
    else:
        yield from _redis_backend(request)


def _service(store: Any, clock: FakeClock, sender: FakeCodeSender) -> MFAService:
    return MFAService(
        store,
        store,
        AESGCMSealer.generate(),
        clock=clock,
        config=ServiceConfig(
            throttle=ThrottleConfig(max_failures=50, base_delay=0.0),
            recovery=RecoveryConfig(count=2, argon2=Argon2Params.fast_for_testing()),
        ),
        recovery_codes=store,
        oob=store,
        sender=sender,
        secret=SECRET,
    )


# (column, SQL literal for SQLite / PostgreSQL, raw Redis value); None: not expressible.
CREDENTIAL_DAMAGE = [
    ("id", "NULL", None),
    ("period", "0", b"0"),
    ("digits", "99", b"99"),
    ("digits", "'six'", b"six"),
    ("created_at", "'NaN'", b"nan"),
    ("created_at", "'Infinity'", b"inf"),
    ("created_at", "'1e400'", b"1" + b"0" * 400),  # 10**400
    ("confirmed_at", "-1", b"-1"),
    ("last_accepted", "-5", b"-5"),
    ("status", "'expired'", b"expired"),
    ("label", "CAST(X'FF' AS TEXT)", b"\xff"),  # not UTF-8
    ("sealed_key", "'not bytes'", b""),
]


@pytest.mark.parametrize(("column", "literal", "raw"), CREDENTIAL_DAMAGE)
def test_a_corrupt_credential_row_refuses_a_verify_with_store_error(
    backend: Backend, request: pytest.FixtureRequest, column: str, literal: str, raw: bytes | None
) -> None:
    kind = request.node.callspec.params["backend"]
    if kind == "postgresql" and column == "label":
        pytest.skip("PostgreSQL text is always valid UTF-8")
    if kind == "postgresql" and column == "sealed_key":
        literal = "''::bytea"  # empty: the store never writes it
    clock = FakeClock(T0)
    service = _service(backend.store, clock, FakeCodeSender())
    enrolment = service.begin_enrolment("alice")
    key = b32decode_key(enrolment.secret)
    assert service.confirm_enrolment("alice", enrolment.credential_id, totp(key, T0)).accepted
    clock.advance(30)
    if kind == "redis":
        backend.corrupt("cred:", column, raw)
    else:
        backend.corrupt("mfa_credentials", column, literal)
    result = service.verify("alice", totp(key, clock.now()))
    assert not result.accepted
    assert result.reason is VerifyReason.STORE_ERROR
    with pytest.raises(StoreError) as info:
        service.list_credentials("alice")
    assert info.value.__cause__ is None and info.value.__context__ is None


CHALLENGE_DAMAGE = [
    ("digits", "99", b"99"),
    ("expires_at", "'Infinity'", b"inf"),
    ("issued_at", "'NaN'", b"nan"),
    ("issued_at", "'1e400'", b"1" + b"0" * 400),
    ("max_attempts", "0", b"0"),
    ("code_hash", "X'00'", b"\x00"),
    ("destination_hash", "X'00'", b"\x00"),
    ("user_id", "NULL", None),
]


@pytest.mark.parametrize(("column", "literal", "raw"), CHALLENGE_DAMAGE)
def test_a_corrupt_challenge_row_refuses_a_verify_with_store_error(
    backend: Backend, request: pytest.FixtureRequest, column: str, literal: str, raw: bytes | None
) -> None:
    kind = request.node.callspec.params["backend"]
    if kind == "postgresql" and literal.startswith("X'"):
        literal = "'\\x00'::bytea"
    clock = FakeClock(T0)
    sender = FakeCodeSender()
    service = _service(backend.store, clock, sender)
    challenge = service.send_oob_code(
        "alice", channel="sms", destination="+1 555 010 0167", purpose="login"
    )
    code = sender.last_code(challenge)
    if kind == "redis":
        backend.corrupt("oob:", column, raw)
    else:
        backend.corrupt("mfa_oob_challenges", column, literal)
    result = service.verify_oob_code("alice", challenge, code, "login")
    assert not result.accepted
    assert result.reason is VerifyReason.STORE_ERROR
    clock.advance(3600)
    with pytest.raises(StoreError) as info:
        service.resend_oob_code("alice", challenge, "+1 555 010 0167")
    assert info.value.__cause__ is None and info.value.__context__ is None
    assert len(sender.sent) == 1


RECOVERY_DAMAGE = [
    # column, SQL literal, Redis value of the codes hash ("position:tag:phc")
    ("used_at", "'Infinity'", None),
    ("phc", "'$argon2id$v=19$m=8,t=1,p=1$!!!!!!!!!!!$????????'", b"0:%s:$argon2id$v=19$m=8$!!"),
    ("tag", "'XYZ'", b"0:XYZ:$argon2id$v=19"),
    ("position", "1", b"zero:%s:$argon2id$"),
]


@pytest.mark.parametrize(("column", "literal", "raw"), RECOVERY_DAMAGE)
def test_a_corrupt_recovery_row_refuses_a_verify_with_store_error(
    backend: Backend, request: pytest.FixtureRequest, column: str, literal: str, raw: bytes | None
) -> None:
    kind = request.node.callspec.params["backend"]
    if column == "position" and kind != "redis":
        pytest.skip("any integer position is readable in SQL")
    clock = FakeClock(T0)
    service = _service(backend.store, clock, FakeCodeSender())
    generated = service.generate_recovery_codes("alice")
    if kind == "redis" and raw is None:
        # a used_at that is not a finite time, in the used-codes hash
        service.verify_recovery_code("alice", generated.codes[0])
        backend.corrupt("rc-used:", "*", b"inf")
    elif kind == "redis":
        assert raw is not None
        tag = generated.records[1].tag.encode("ascii")  # the code verified below
        backend.corrupt("rc:", "*", raw.replace(b"%s", tag))
    else:
        backend.corrupt("mfa_recovery_codes", column, literal)
    result = service.verify_recovery_code("alice", generated.codes[1])
    assert not result.accepted
    assert result.reason is VerifyReason.STORE_ERROR
