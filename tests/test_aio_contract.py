"""The store contract suite, in its async form, against every async store in the package.

Stores: memory (inline), SQLite and Redis behind :class:`AsyncStoreAdapter`. The async
mixins run every rule of the blocking suite through a
:class:`~mfa_core.aio.testing.BlockingFacade` (thread races become task races on one
event loop) and add :func:`asyncio.gather` races of their own. The suite's teeth are
checked too: an async store that breaks the claim compare-and-set fails it.
"""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from mfa_core.aio import AsyncMemoryStore, AsyncStoreAdapter
from mfa_core.aio.testing import (
    AsyncCredentialStoreContract,
    AsyncFailureCounterContract,
    AsyncOOBChallengeStoreContract,
    AsyncRecoveryCodeStoreContract,
    BlockingFacade,
)
from mfa_core.stores import MemoryStore, SQLiteStore

pytest_plugins = ("servers",)


class TestAsyncMemoryStoreContract(
    AsyncCredentialStoreContract,
    AsyncFailureCounterContract,
    AsyncRecoveryCodeStoreContract,
    AsyncOOBChallengeStoreContract,
):
    def make_async_store(self) -> AsyncMemoryStore:
        return AsyncMemoryStore()


class TestAsyncSQLiteAdapterContract(
    AsyncCredentialStoreContract,
    AsyncFailureCounterContract,
    AsyncRecoveryCodeStoreContract,
    AsyncOOBChallengeStoreContract,
):
    """SQLite behind :class:`AsyncStoreAdapter`: every call in a worker thread."""

    race_threads = 16
    gather_tasks = 40

    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self.directory = tmp_path

    def make_async_store(self) -> AsyncStoreAdapter:
        return AsyncStoreAdapter(SQLiteStore(self.directory / "async.sqlite3"))


class TestAsyncRedisAdapterContract(
    AsyncCredentialStoreContract,
    AsyncFailureCounterContract,
    AsyncRecoveryCodeStoreContract,
    AsyncOOBChallengeStoreContract,
):
    """The Redis store behind :class:`AsyncStoreAdapter` (the machine's Redis server;
    skipped without it, as in ``test_redis_store.py``)."""

    race_threads = 16
    gather_tasks = 50

    @pytest.fixture(autouse=True)
    def _server(self, redis_url: str, redis_prefix: str) -> None:
        self.url = redis_url
        self.prefix = redis_prefix

    def make_async_store(self) -> AsyncStoreAdapter:
        from mfa_core.stores.redis import RedisStore

        return AsyncStoreAdapter(RedisStore.from_url(self.url, prefix=self.prefix))


def _load_async_host_adapters() -> ModuleType:
    path = Path(__file__).parent / "typing" / "async_host_adapters.py"
    spec = importlib.util.spec_from_file_location("async_host_adapters", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TestAsyncHostAdapterContract(AsyncCredentialStoreContract, AsyncFailureCounterContract):
    """The asyncio host-style store of tests/typing passes too (hosts can do what we ask)."""

    def make_async_store(self) -> Any:
        return _load_async_host_adapters().AsyncHostStore()


def test_the_async_host_store_runs_the_service() -> None:
    service = _load_async_host_adapters().build_service()

    async def main() -> None:
        enrolment = await service.begin_enrolment("alice")
        assert [c.id for c in await service.list_credentials("alice")] == [enrolment.credential_id]

    asyncio.run(main())


class TestAsyncRedisStoreContract(
    AsyncCredentialStoreContract,
    AsyncFailureCounterContract,
    AsyncRecoveryCodeStoreContract,
    AsyncOOBChallengeStoreContract,
):
    """:class:`~mfa_core.aio.redis.AsyncRedisStore` on ``redis.asyncio`` (the machine's
    Redis server; skipped without it)."""

    race_threads = 16
    gather_tasks = 100

    @pytest.fixture(autouse=True)
    def _server(self, redis_url: str, redis_prefix: str) -> None:
        self.url = redis_url
        self.prefix = redis_prefix

    def make_async_store(self) -> Any:
        from mfa_core.aio.redis import AsyncRedisStore

        return AsyncRedisStore.from_url(self.url, prefix=self.prefix)


class _LosingClaims(AsyncMemoryStore):
    """Broken on purpose: claim reads, yields to the loop, then writes (a lost update)."""

    async def claim(self, credential_id: str, value: int, *, drift: int) -> bool:
        stored = await self.get(credential_id)
        await asyncio.sleep(0)
        if stored is None or value <= stored.last_accepted:
            return False
        self.blocking.claim(credential_id, value, drift=drift)
        return True


def test_the_async_suite_catches_a_read_then_write_claim() -> None:
    class Suite(AsyncCredentialStoreContract):
        def make_async_store(self) -> Any:
            return _LosingClaims()

    suite = Suite()
    with pytest.raises(AssertionError, match="winners"):
        suite.test_async_claim_gather_has_exactly_one_winner()


def test_memory_store_state_is_shared_with_blocking_code() -> None:
    blocking = MemoryStore()
    store = AsyncMemoryStore(blocking)
    assert store.blocking is blocking
    assert asyncio.run(store.get_failures("u")).count == 0
    blocking.record_failure("u", 1.0)
    assert asyncio.run(store.get_failures("u")).count == 1
    assert "AsyncMemoryStore" in repr(store)


def test_facade_passes_plain_attributes_through() -> None:
    facade = BlockingFacade(AsyncMemoryStore())
    try:
        assert facade.blocking.__class__ is MemoryStore
        assert facade.record_failure("u", 1.0).count == 1
        assert "BlockingFacade" in repr(facade)
    finally:
        facade.close()
