"""Fixtures for the store tests that need servers: a pytest plugin.

``test_redis_store.py`` and ``test_sql_store.py`` load it with
``pytest_plugins = ("servers",)``. Every fixture that needs a server skips the test when the
server is not reachable - or fails it when the ``CI`` variable is set (see
:func:`server_tools.unavailable`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from server_tools import (
    MARIADB_URL,
    POSTGRES_URL,
    REDIS_URL,
    PrivateRedis,
    PrivateRedisCluster,
    create_mariadb_database,
    create_postgres_schema,
    delete_prefix,
    drop_mariadb_database,
    drop_postgres_schema,
    empty_mariadb_database,
    redis_client,
    unavailable,
    unique,
)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The shared Redis server's URL, once it answered PING (else skip / fail in CI)."""
    try:
        import redis
    except ImportError:
        unavailable("redis-py is not installed (pip install 'mfa_core[redis]')")
    client = redis_client()
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        unavailable(f"no Redis server at {REDIS_URL}: {exc}")
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A unique key prefix for one test; its keys are deleted afterwards."""
    prefix = unique("mfa-test:") + ":"
    yield prefix
    client = redis_client(redis_url)
    try:
        delete_prefix(client, prefix)
    finally:
        client.close()


@pytest.fixture
def private_redis(tmp_path: Path, redis_url: str) -> Iterator[PrivateRedis]:
    """A started private Redis server; killed at the end of the test."""
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The shared PostgreSQL server's URL, once a connection worked (else skip / fail)."""
    try:
        import sqlalchemy as sa
    except ImportError:
        unavailable("SQLAlchemy is not installed (pip install 'mfa_core[sql]')")
    try:
        engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 5})
    except ImportError as exc:
        unavailable(f"the PostgreSQL driver is missing: {exc}")
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        unavailable(f"no PostgreSQL server at {POSTGRES_URL}: {type(exc).__name__}")
    finally:
        engine.dispose()
    return POSTGRES_URL


@pytest.fixture
def postgres_schema(postgres_url: str) -> Iterator[str]:
    """A fresh schema holding the store's tables, dropped after the test."""
    schema = unique("mfa_test_")
    create_postgres_schema(postgres_url, schema)
    try:
        yield schema
    finally:
        drop_postgres_schema(postgres_url, schema)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedisCluster]:
    """A private Redis Cluster of 3 primaries for the whole session (stopped by PID)."""
    try:
        import redis  # noqa: F401
    except ImportError:
        unavailable("redis-py is not installed (pip install 'mfa_core[redis]')")
    cluster = PrivateRedisCluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def mariadb_url() -> str:
    """The shared MariaDB server's URL (pymysql), once a connection worked (else skip / fail)."""
    try:
        import sqlalchemy as sa
    except ImportError:
        unavailable("SQLAlchemy is not installed (pip install 'mfa_core[sql]')")
    try:
        import pymysql  # noqa: F401
    except ImportError:
        unavailable("PyMySQL is not installed (pip install 'mfa_core[mysql]')")
    engine = sa.create_engine(MARIADB_URL, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        unavailable(f"no MariaDB server at {MARIADB_URL}: {type(exc).__name__}")
    finally:
        engine.dispose()
    return MARIADB_URL


@pytest.fixture(scope="session")
def mariadb_session_database(mariadb_url: str) -> Iterator[str]:
    """A database of this test session (unique name) with the store's tables; dropped at
    the end of the session."""
    database = unique("mfa_test_")
    create_mariadb_database(mariadb_url, database)
    try:
        yield database
    finally:
        drop_mariadb_database(mariadb_url, database)


@pytest.fixture
def mariadb_database(mariadb_url: str, mariadb_session_database: str) -> Iterator[str]:
    """The session's MariaDB database, its tables emptied after the test."""
    yield mariadb_session_database
    empty_mariadb_database(mariadb_url, mariadb_session_database)
