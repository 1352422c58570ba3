"""AsyncRedisStore beyond the contract suite: one key layout with the blocking RedisStore,
typed failures, cancellation, and the service's 1,000-task race on a real server.

Needs the machine's Redis server (``servers.py``: skipped without it unless CI is set).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mfa_core import b32decode_key, totp
from mfa_core.aio import AsyncMFAService
from mfa_core.aio.redis import AsyncRedisStore
from mfa_core.errors import InvalidParameter, StoreError, StoreUnavailable
from mfa_core.models import Credential, CredentialKind, CredentialState
from mfa_core.sealing import AESGCMSealer
from mfa_core.service import ServiceConfig, VerifyReason
from mfa_core.stores.redis import RedisStore
from mfa_core.testing import FakeClock
from mfa_core.throttle import ThrottleConfig

pytest_plugins = ("servers",)

T0 = 1_800_000_005.0


def _credential(user: str, index: int = 0) -> Credential:
    return Credential(
        id=f"{user}-c{index}",
        user_id=user,
        kind=CredentialKind.TOTP,
        sealed_key=bytes(48),
        created_at=T0 + index,
        status=CredentialState.ACTIVE,
    )


def test_blocking_and_async_stores_share_one_layout(redis_url: str, redis_prefix: str) -> None:
    blocking = RedisStore.from_url(redis_url, prefix=redis_prefix)

    async def main() -> None:
        store = AsyncRedisStore.from_url(redis_url, prefix=redis_prefix)
        try:
            await store.add(_credential("alice"))
            assert blocking.claim("alice-c0", 7, drift=1)
            assert not await store.claim("alice-c0", 7, drift=0)
            stored = await store.get("alice-c0")
            assert stored is not None and stored.last_accepted == 7 and stored.drift == 1
            blocking.record_failure("alice", T0)
            assert (await store.record_failure("alice", T0 + 1)).count == 2
            assert store.prefix == redis_prefix and redis_prefix in repr(store)
        finally:
            await store.close()

    try:
        asyncio.run(main())
    finally:
        blocking.close()


def test_bad_arguments_and_an_unreachable_server_are_typed_errors() -> None:
    with pytest.raises(InvalidParameter):
        AsyncRedisStore(object())  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter):
        AsyncRedisStore.from_url("http://example.com")
    for timeout in (-1, 0, 3600.5, float("nan"), float("inf"), "5", True):
        with pytest.raises(InvalidParameter, match="socket_timeout"):
            AsyncRedisStore.from_url("redis://127.0.0.1:1/0", socket_timeout=timeout)  # type: ignore[arg-type]
    asyncio.run(AsyncRedisStore.from_url("redis://127.0.0.1:1/0", socket_timeout=3600).close())
    with pytest.raises(InvalidParameter):
        AsyncRedisStore.from_url("redis://127.0.0.1:1/0", max_connections=0)

    async def main() -> None:
        store = AsyncRedisStore.from_url("redis://127.0.0.1:1/0", socket_timeout=1.0)
        try:
            with pytest.raises(StoreUnavailable):
                await store.get_failures("alice")
            with pytest.raises(InvalidParameter):  # validated before any I/O
                await store.get_failures("")
        finally:
            await store.close()

    asyncio.run(main())


def test_a_redis_error_reply_is_a_store_error(redis_url: str, redis_prefix: str) -> None:
    async def main() -> None:
        store = AsyncRedisStore.from_url(redis_url, prefix=redis_prefix)
        client: Any = store._client
        try:
            # A wrong-type key where the failure counter hash should be: WRONGTYPE reply.
            await client.set(f"{redis_prefix}fail:alice", "x")
            with pytest.raises(StoreError) as caught:
                await store.record_failure("alice", T0)
            assert not isinstance(caught.value, StoreUnavailable)
            assert (await store.get_failures("bob")).count == 0  # the connection is fine
        finally:
            await store.close()

    asyncio.run(main())


def test_cancelled_calls_leave_no_stale_reply_behind(redis_url: str, redis_prefix: str) -> None:
    async def main() -> None:
        store = AsyncRedisStore.from_url(redis_url, prefix=redis_prefix)
        try:
            for index in range(20):
                await store.add(_credential(f"user{index}"))
            for round_ in range(30):
                tasks = [asyncio.create_task(store.get(f"user{index}-c0")) for index in range(20)]
                for _ in range(round_ % 4):
                    await asyncio.sleep(0)
                for task in tasks[::3]:
                    task.cancel()
                for index, task in enumerate(tasks):
                    try:
                        found = await task
                    except asyncio.CancelledError:
                        continue
                    assert found is not None and found.user_id == f"user{index}"
                # Every later call reads its own reply.
                found = await store.get("user5-c0")
                assert found is not None and found.user_id == "user5"
        finally:
            await store.close()

    asyncio.run(main())


def test_a_thousand_tasks_one_code_on_redis(redis_url: str, redis_prefix: str) -> None:
    throttle = ThrottleConfig(max_failures=100, base_delay=1.0, max_delay=4.0, lockout=60.0)
    clock = FakeClock(T0)

    async def main() -> list[VerifyReason]:
        store = AsyncRedisStore.from_url(redis_url, prefix=redis_prefix)
        service = AsyncMFAService(
            store,
            store,
            AESGCMSealer.generate(),
            clock=clock,
            config=ServiceConfig(throttle=throttle),
        )
        try:
            enrolment = await service.begin_enrolment("alice")
            key = b32decode_key(enrolment.secret)
            confirmed = await service.confirm_enrolment(
                "alice", enrolment.credential_id, totp(key, T0)
            )
            assert confirmed.accepted
            clock.set(T0 + 30)
            code = totp(key, clock.now())
            results = await asyncio.gather(*(service.verify("alice", code) for _ in range(1000)))
            failures = await store.get_failures("alice")
            reasons = [result.reason for result in results]
            assert failures.count == reasons.count(VerifyReason.REPLAYED)
            return reasons
        finally:
            await store.close()

    reasons = asyncio.run(main())
    assert reasons.count(VerifyReason.OK) == 1
    assert set(reasons) - {VerifyReason.OK} <= {
        VerifyReason.REPLAYED,
        VerifyReason.THROTTLED,
        VerifyReason.LOCKED,
    }
