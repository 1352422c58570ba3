"""Import throughput: django-otp TOTP rows read from SQLite, written to each store.

Run from the repository root (the Redis and PostgreSQL servers of the machine)::

    .venv/bin/python benchmarks/bench_import.py                 # a few seconds
    .venv/bin/python benchmarks/bench_import.py --rows 5000 --stores memory,sqlite

The source is a SQLite file with django-otp's ``otp_totp_totpdevice`` table (the columns
django-otp's migrations create, filled with plain ``sqlite3``: random 20-byte keys,
confirmed, with a last accepted step), read by :func:`mfa_core.importers.import_django_otp`:
per row one ``get`` (the idempotence check), one AES-256-GCM seal and one ``add``. Stores:
``memory`` (:class:`~mfa_core.stores.MemoryStore`), ``sqlite``
(:class:`~mfa_core.stores.SQLiteStore`, ``synchronous=FULL``: one fsync'd transaction per
row), ``postgresql`` (:class:`~mfa_core.stores.sql.SQLStore`, one autocommitted statement
per call), ``mariadb`` (the same store on MariaDB: a statement and its ``COMMIT``) and
``redis`` (:class:`~mfa_core.stores.redis.RedisStore`). Recovery codes are
left out: their cost is one Argon2id hash each (about 50 ms), see ``bench_recovery.py``.

Prints rows imported per second per store and the ratio to the memory store. Redis keys
live under a unique prefix, PostgreSQL tables in a unique schema and MariaDB tables in a
unique database, all removed at the end; the servers are left alone.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mfa_core.importers import Importer, import_django_otp
from mfa_core.sealing import AESGCMSealer
from mfa_core.stores import MemoryStore, SQLiteStore

REDIS_URL = os.environ.get("MFA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get(
    "MFA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MARIADB_URL = os.environ.get("MFA_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
STORES = ("memory", "sqlite", "postgresql", "mariadb", "redis")

_DJANGO_OTP_TABLE = """
CREATE TABLE otp_totp_totpdevice (
    id integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    name varchar(64) NOT NULL,
    confirmed bool NOT NULL,
    key varchar(80) NOT NULL,
    step smallint unsigned NOT NULL,
    t0 bigint NOT NULL,
    digits smallint unsigned NOT NULL,
    tolerance smallint unsigned NOT NULL,
    drift smallint NOT NULL,
    last_t bigint NOT NULL,
    user_id integer NOT NULL,
    throttling_failure_count integer unsigned NOT NULL,
    throttling_failure_timestamp datetime NULL,
    created_at datetime NULL,
    last_used_at datetime NULL
)
"""


def write_source(path: Path, rows: int) -> None:
    """A django-otp database of ``rows`` confirmed TOTP devices, one user each."""
    now_step = int(time.time()) // 30
    with sqlite3.connect(path) as connection:
        connection.execute(_DJANGO_OTP_TABLE)
        connection.executemany(
            "INSERT INTO otp_totp_totpdevice (name, confirmed, key, step, t0, digits, "
            "tolerance, drift, last_t, user_id, throttling_failure_count) "
            "VALUES ('phone', 1, ?, 30, 0, 6, 1, 0, ?, ?, 0)",
            [(os.urandom(20).hex(), now_step - n % 100, n + 1) for n in range(rows)],
        )


@contextlib.contextmanager
def _sql_store(url: str, name: str, kind: str, quote: str, cascade: str) -> Iterator[Any]:
    """A SQLStore on ``url`` with its tables in a new schema (PostgreSQL) or database
    (MariaDB) ``name``, dropped afterwards."""
    import sqlalchemy as sa

    from mfa_core.stores.sql import SQLStore, create_schema

    quoted = f"{quote}{name}{quote}"
    admin = sa.create_engine(url)
    with admin.begin() as connection:
        connection.execute(sa.text(f"CREATE {kind} {quoted}"))
    engine = sa.create_engine(url).execution_options(schema_translate_map={None: name})
    try:
        create_schema(engine)
        yield SQLStore(engine)
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(sa.text(f"DROP {kind} IF EXISTS {quoted}{cascade}"))
        admin.dispose()


@contextlib.contextmanager
def open_store(name: str, directory: Path) -> Iterator[Any]:
    """The store ``name``, fresh, removed afterwards."""
    if name == "memory":
        yield MemoryStore()
    elif name == "sqlite":
        store = SQLiteStore(directory / f"target-{uuid.uuid4().hex}.sqlite3")
        try:
            yield store
        finally:
            store.close()
    elif name == "redis":
        from mfa_core.stores.redis import RedisStore

        prefix = f"mfa-bench-import:{uuid.uuid4().hex}:"
        store = RedisStore.from_url(REDIS_URL, prefix=prefix)
        try:
            yield store
        finally:
            store.close()
            import redis

            client = redis.Redis.from_url(REDIS_URL)  # removes this run's keys only
            for key in client.scan_iter(match=prefix + "*", count=1000):
                client.delete(key)
            client.close()
    elif name == "postgresql":
        schema = f"mfa_bench_import_{uuid.uuid4().hex[:12]}"
        with _sql_store(POSTGRES_URL, schema, "SCHEMA", '"', " CASCADE") as store:
            yield store
    elif name == "mariadb":
        database = f"mfa_bench_import_{uuid.uuid4().hex[:12]}"
        with _sql_store(MARIADB_URL, database, "DATABASE", "`", "") as store:
            yield store
    else:
        raise SystemExit(f"unknown store {name!r} (known: {', '.join(STORES)})")


def measure(name: str, source: Path, directory: Path, rows: int) -> float:
    """Rows per second imported from ``source`` into a fresh store ``name``."""
    sealer = AESGCMSealer.generate()
    with open_store(name, directory) as store:
        importer = Importer(store, sealer)
        started = time.perf_counter()
        report = import_django_otp(source, importer)
        elapsed = time.perf_counter() - started
    if report.credentials != rows or report.skipped:
        raise SystemExit(f"{name}: imported {report.credentials} of {rows}: {report.skipped[:3]}")
    return rows / elapsed


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=2000, help="devices in the source")
    parser.add_argument("--stores", default=",".join(STORES), help="comma-separated stores")
    args = parser.parse_args(argv)
    names = [name for name in args.stores.split(",") if name]
    with tempfile.TemporaryDirectory() as temp:
        directory = Path(temp)
        source = directory / "django.sqlite3"
        write_source(source, args.rows)
        results: dict[str, float] = {}
        for name in names:
            try:
                results[name] = measure(name, source, directory, args.rows)
            except Exception as exc:  # a server that is not there: say so, go on
                print(f"{name}: skipped ({type(exc).__name__}: {exc})", file=sys.stderr)
    base = results.get("memory")
    print(f"rows: {args.rows} django-otp TOTP devices (SQLite source)")
    print("| store | rows/s | / memory |")
    print("|---|---:|---:|")
    for name, rate in results.items():
        ratio = f"{rate / base:.3f}" if base else "-"
        print(f"| {name} | {rate:,.0f} | {ratio} |")
    return 0 if results else 1


if __name__ == "__main__":
    raise SystemExit(main())
