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
import inspect
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from mfa_core.aio import AsyncMemoryStore, AsyncStoreAdapter
from mfa_core.aio.ports import (
    AsyncAttemptStore,
    AsyncCodeSender,
    AsyncCredentialStore,
    AsyncFailureCounter,
    AsyncOOBChallengeStore,
    AsyncRecoveryCodeStore,
)
from mfa_core.aio.testing import (
    AsyncCredentialStoreContract,
    AsyncFailureCounterContract,
    AsyncOOBChallengeStoreContract,
    AsyncRecoveryCodeStoreContract,
    BlockingFacade,
)
from mfa_core.errors import InvalidParameter
from mfa_core.models import Admission, FailureState
from mfa_core.stores import MemoryStore, SQLiteStore
from mfa_core.testing import FakeCodeSender
from mfa_core.throttle import ThrottleConfig

pytest_plugins = ("servers",)


class TestAsyncMemoryStoreContract(
    AsyncCredentialStoreContract,
    AsyncFailureCounterContract,
    AsyncRecoveryCodeStoreContract,
    AsyncOOBChallengeStoreContract,
):
    attempt_store = True

    def make_async_store(self) -> AsyncMemoryStore:
        return AsyncMemoryStore()


class TestAsyncSQLiteAdapterContract(
    AsyncCredentialStoreContract,
    AsyncFailureCounterContract,
    AsyncRecoveryCodeStoreContract,
    AsyncOOBChallengeStoreContract,
):
    """SQLite behind :class:`AsyncStoreAdapter`: every call in a worker thread."""

    attempt_store = True

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
    blocking.admit_attempt("u", 1.0, ThrottleConfig())
    assert asyncio.run(store.get_failures("u")).count == 1
    assert "AsyncMemoryStore" in repr(store)


def test_facade_passes_plain_attributes_through() -> None:
    facade = BlockingFacade(AsyncMemoryStore())
    try:
        assert facade.blocking.__class__ is MemoryStore
        assert facade.admit_attempt("u", 1.0, ThrottleConfig()).state.count == 1
        assert "BlockingFacade" in repr(facade)
    finally:
        facade.close()


# -- AsyncStoreAdapter forwards generically ---------------------------------------------------


class _CounterOnly:
    """A blocking failure counter and nothing else (no credentials, no fused operations)."""

    def __init__(self) -> None:
        self.inner = MemoryStore()
        self.threads: list[int] = []

    def admit_attempt(self, user_id: str, now: float, limits: ThrottleConfig) -> Admission:
        self.threads.append(threading.get_ident())
        return self.inner.admit_attempt(user_id, now, limits)

    def get_failures(self, user_id: str) -> FailureState:
        return self.inner.get_failures(user_id)

    def reset(self, user_id: str) -> None:
        self.inner.reset(user_id)


def _port_names(protocol: type) -> set[str]:
    return {name for name in dir(protocol) if not name.startswith("_")}


def test_adapter_has_exactly_the_wrapped_port_methods() -> None:
    full = AsyncMemoryStore()
    for protocol in (
        AsyncAttemptStore,
        AsyncCredentialStore,
        AsyncFailureCounter,
        AsyncRecoveryCodeStore,
        AsyncOOBChallengeStore,
    ):
        assert isinstance(full, protocol), protocol
    assert not isinstance(full, AsyncCodeSender)
    assert not hasattr(full, "send") and not hasattr(full, "purge_challenges")

    narrow = AsyncStoreAdapter(_CounterOnly())
    assert isinstance(narrow, AsyncFailureCounter)
    assert not isinstance(narrow, AsyncAttemptStore)
    assert not isinstance(narrow, AsyncCredentialStore)
    for name in ("claim", "begin_attempt", "claim_and_reset", "count_send", "record_failure"):
        assert not hasattr(narrow, name), name
        assert inspect.getattr_static(narrow, name, None) is None, name  # not even statically

    sender = AsyncStoreAdapter(FakeCodeSender())
    assert isinstance(sender, AsyncCodeSender) and not isinstance(sender, AsyncFailureCounter)


def test_adapter_methods_are_coroutines_with_the_async_twins_signatures() -> None:
    adapter = AsyncMemoryStore()
    names = _port_names(AsyncAttemptStore) | _port_names(AsyncRecoveryCodeStore)
    names |= _port_names(AsyncOOBChallengeStore)
    for name in names:
        method = getattr(adapter, name)
        assert inspect.iscoroutinefunction(method), name
        twin = next(
            getattr(p, name)
            for p in (AsyncAttemptStore, AsyncRecoveryCodeStore, AsyncOOBChallengeStore)
            if hasattr(p, name)
        )
        assert inspect.signature(method) == inspect.signature(twin.__get__(adapter)), name
        assert method.__doc__, name


def test_adapter_offloads_to_a_worker_thread_or_runs_inline() -> None:
    async def main(offload: bool) -> set[int]:
        counter = _CounterOnly()
        adapter = AsyncStoreAdapter(counter, offload=offload)
        admission = await adapter.admit_attempt("u", 5.0, ThrottleConfig())
        assert admission == Admission(True, FailureState(1, 5.0))
        assert await adapter.get_failures("u") == FailureState(1, 5.0)
        await adapter.reset("u")
        assert counter.inner.get_failures("u") == FailureState()
        return set(counter.threads)

    loop_thread = threading.get_ident()
    assert asyncio.run(main(offload=False)) == {loop_thread}
    assert loop_thread not in asyncio.run(main(offload=True))


def test_adapter_subclasses_can_override_and_call_super() -> None:
    calls: list[str] = []

    class Logged(AsyncMemoryStore):
        __slots__ = ()

        async def claim(self, credential_id: str, value: int, *, drift: int) -> bool:
            calls.append(credential_id)
            won: bool = await super().claim(credential_id, value, drift=drift)
            return won

    async def main() -> None:
        store = Logged()
        assert isinstance(store, Logged) and isinstance(store, AsyncAttemptStore)
        assert "Logged" in repr(store)
        assert not await store.claim("missing", 1, drift=0)
        assert await store.claim_and_reset("missing", 1, drift=0, user_id="u") is False

    asyncio.run(main())
    assert calls == ["missing"]


def test_adapter_forwards_bad_input_errors_unchanged() -> None:
    async def main() -> None:
        store = AsyncMemoryStore()
        with pytest.raises(InvalidParameter):
            await store.admit_attempt("u", 1.0, None)  # type: ignore[arg-type]

    asyncio.run(main())
