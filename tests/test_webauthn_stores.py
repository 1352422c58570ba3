"""The WebAuthnStore contract on every store: memory, SQLite, Redis (blocking and async),
SQL (PostgreSQL and SQLite through SQLAlchemy, blocking and async), and the async adapters.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mfa_core.aio import AsyncMemoryStore, AsyncStoreAdapter
from mfa_core.aio.testing import AsyncStoreContract
from mfa_core.stores import MemoryStore, SQLiteStore
from mfa_core.testing import WebAuthnStoreContract

pytest_plugins = ("servers",)


class TestMemoryWebAuthn(WebAuthnStoreContract):
    def make_store(self) -> MemoryStore:
        return MemoryStore()


class TestSQLiteWebAuthn(WebAuthnStoreContract):
    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self.directory = tmp_path

    def make_store(self) -> SQLiteStore:
        return SQLiteStore(self.directory / "wa.sqlite3")


class TestAsyncMemoryWebAuthn(AsyncStoreContract, WebAuthnStoreContract):
    def make_async_store(self) -> AsyncMemoryStore:
        return AsyncMemoryStore()


class TestAsyncSQLiteAdapterWebAuthn(AsyncStoreContract, WebAuthnStoreContract):
    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self.directory = tmp_path

    def make_async_store(self) -> AsyncStoreAdapter:
        return AsyncStoreAdapter(SQLiteStore(self.directory / "wa.sqlite3"))


class TestRedisWebAuthn(WebAuthnStoreContract):
    @pytest.fixture(autouse=True)
    def _server(self, redis_url: str, redis_prefix: str) -> None:
        self.url = redis_url
        self.prefix = redis_prefix

    def make_store(self) -> Any:
        from mfa_core.stores.redis import RedisStore

        return RedisStore.from_url(self.url, prefix=self.prefix)


class TestAsyncRedisWebAuthn(AsyncStoreContract, WebAuthnStoreContract):
    @pytest.fixture(autouse=True)
    def _server(self, redis_url: str, redis_prefix: str) -> None:
        self.url = redis_url
        self.prefix = redis_prefix

    def make_async_store(self) -> Any:
        from mfa_core.aio.redis import AsyncRedisStore

        return AsyncRedisStore.from_url(self.url, prefix=self.prefix)


def test_redis_key_layout_is_tagged_per_user(redis_url: str, redis_prefix: str) -> None:
    import redis

    from mfa_core.stores.redis import RedisStore
    from mfa_core.testing.webauthn_contract import _credential

    store = RedisStore.from_url(redis_url, prefix=redis_prefix)
    credential = _credential("alice{x}")
    store.add_webauthn_credential(credential)
    client = redis.Redis.from_url(redis_url)
    keys = {k.decode() for k in client.scan_iter(match=redis_prefix + "*")}
    cid = credential.credential_id
    assert keys == {
        f"{redis_prefix}wa:{{alice{{x}}}}:cred:{cid}",
        f"{redis_prefix}wa:{{alice{{x}}}}:ids",
        f"{redis_prefix}wa:{{alice{{x}}}}:seq",
        f"{redis_prefix}wa-cid:{cid}",
    }
    client.close()
    store.close()


def _owned_async_sql_store(url: str, schema: str) -> Any:
    """An AsyncSQLStore on its own engine for ``url`` (tables in ``schema``), which its
    close() disposes of."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from mfa_core.aio.sql import AsyncSQLStore

    class Owned(AsyncSQLStore):
        __slots__ = ()

        async def close(self) -> None:
            await self.engine.dispose()

    engine = create_async_engine(url, pool_size=4, max_overflow=30)
    return Owned(engine.execution_options(schema_translate_map={None: schema}))


class TestPostgresWebAuthn(WebAuthnStoreContract):
    @pytest.fixture(autouse=True)
    def _database(self, postgres_url: str, postgres_schema: str) -> Iterator[None]:
        from server_tools import postgres_engine

        self.engine = postgres_engine(postgres_url, postgres_schema, pool_size=4, max_overflow=20)
        yield
        self.engine.dispose()

    def make_store(self) -> Any:
        from mfa_core.stores.sql import SQLStore

        return SQLStore(self.engine)


class TestMariaDBWebAuthn(WebAuthnStoreContract):
    """On MariaDB: ids and challenge keys as byte-exact VARBINARY, the counter's
    compare-and-set a conditional UPDATE (no RETURNING)."""

    @pytest.fixture(autouse=True)
    def _database(self, mariadb_url: str, mariadb_database: str) -> Iterator[None]:
        from server_tools import mariadb_engine

        self.engine = mariadb_engine(mariadb_url, mariadb_database, pool_size=4, max_overflow=30)
        yield
        self.engine.dispose()

    def make_store(self) -> Any:
        from mfa_core.stores.sql import SQLStore

        return SQLStore(self.engine)


class TestSQLAlchemySQLiteWebAuthn(WebAuthnStoreContract):
    @pytest.fixture(autouse=True)
    def _database(self, tmp_path: Path) -> Iterator[None]:
        import sqlalchemy as sa

        from mfa_core.stores.sql import create_schema

        self.engine = sa.create_engine(f"sqlite:///{tmp_path / 'sa.db'}")
        create_schema(self.engine)
        yield
        self.engine.dispose()

    def make_store(self) -> Any:
        from mfa_core.stores.sql import SQLStore

        return SQLStore(self.engine)


class TestAsyncPostgresWebAuthn(AsyncStoreContract, WebAuthnStoreContract):
    @pytest.fixture(autouse=True)
    def _database(self, postgres_url: str, postgres_schema: str) -> None:
        self.url = postgres_url
        self.schema = postgres_schema

    def make_async_store(self) -> Any:
        url = self.url.replace("postgresql://", "postgresql+psycopg://", 1)
        return _owned_async_sql_store(url, self.schema)


class TestAsyncMariaDBWebAuthn(AsyncStoreContract, WebAuthnStoreContract):
    @pytest.fixture(autouse=True)
    def _database(self, mariadb_url: str, mariadb_database: str) -> None:
        self.url = mariadb_url
        self.target = mariadb_database

    def make_async_store(self) -> Any:
        from server_tools import async_mariadb_url

        return _owned_async_sql_store(async_mariadb_url(self.url), self.target)


# -- the suite's teeth: stores that break a rule fail it -----------------------------------


class _RacyConsume(MemoryStore):
    """Reads, then marks used: two callers can both see the challenge unused."""

    __slots__ = ()

    def consume_webauthn_challenge(self, key: str, fingerprint: str, now: float) -> Any:
        import time

        import attrs

        state = self._webauthn
        stored = state.challenges.get(key)
        time.sleep(0.005)
        if stored is not None and stored.used_by is None:
            state.challenges[key] = attrs.evolve(stored, used_by=fingerprint)
        return stored


class _RacyCounter(MemoryStore):
    """Accepts any counter that is not behind the stored one (equal counts pass twice)."""

    __slots__ = ()

    def advance_sign_count(
        self, credential_id: str, sign_count: int, *, backed_up: bool, now: float
    ) -> bool:
        import attrs

        state = self._webauthn
        entry = state.credentials.get(credential_id)
        if entry is None or sign_count < entry[1].sign_count:
            return False
        state.credentials[credential_id] = (entry[0], attrs.evolve(entry[1], sign_count=sign_count))
        return True


@pytest.mark.parametrize(
    ("broken", "test"),
    [
        (_RacyConsume, "test_webauthn_consume_race_has_one_winner"),
        (_RacyCounter, "test_webauthn_sign_count_advances_only"),
    ],
)
def test_the_contract_fails_broken_stores(broken: type, test: str) -> None:
    class Suite(WebAuthnStoreContract):
        def make_store(self) -> Any:
            return broken()

    suite = Suite()
    with pytest.raises(AssertionError):
        try:
            getattr(suite, test)()
        finally:
            suite.teardown_method(None)
