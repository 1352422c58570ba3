"""AsyncRedisStore beyond the contract suite: one key layout with the blocking RedisStore,
typed failures, cancellation, and the service's 1,000-task race on a real server.

Needs the machine's Redis server (``servers.py``: skipped without it unless CI is set).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import attrs
import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st
from server_tools import redis_client, unique

from mfa_core import b32decode_key, totp
from mfa_core.aio import AsyncMFAService
from mfa_core.aio.redis import AsyncRedisStore
from mfa_core.errors import InvalidParameter, StoreError, StoreUnavailable
from mfa_core.models import Admission, Credential, CredentialKind, CredentialState, FailureState
from mfa_core.oob import OOBChannel, OOBPurpose, OOBRecord
from mfa_core.recovery import TAG_BYTES, Argon2Params, RecoveryRecord, hash_recovery_code
from mfa_core.sealing import AESGCMSealer
from mfa_core.service import ServiceConfig, VerifyReason
from mfa_core.stores._redis_protocol import SCRIPTS
from mfa_core.stores.redis import RedisStore
from mfa_core.testing import FakeClock
from mfa_core.throttle import ThrottleConfig, admit

pytest_plugins = ("servers",)

T0 = 1_800_000_005.0
NO_DELAY = ThrottleConfig(max_failures=100, base_delay=0, max_delay=0, lockout=900)


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
            blocking.admit_attempt("alice", T0, NO_DELAY)
            assert (await store.admit_attempt("alice", T0 + 1, NO_DELAY)).state.count == 2
            assert blocking.get_failures("alice") == FailureState(2, T0 + 1)
            admission, listed = await store.begin_attempt("alice", T0 + 2, NO_DELAY)
            assert admission.state.count == 3 and listed == [blocking.get("alice-c0")]
            assert await store.claim_and_reset("alice-c0", 8, drift=0, user_id="alice")
            assert blocking.get_failures("alice") == FailureState()
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
                await store.admit_attempt("alice", T0, NO_DELAY)
            with pytest.raises(StoreError):
                await store.begin_attempt("alice", T0, NO_DELAY)
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


# -- admission: throttle.admit, as one script ---------------------------------------------

LIMITS = st.builds(
    lambda failures, top, share, lockout: ThrottleConfig(
        max_failures=failures,
        base_delay=top * share,
        max_delay=top,
        lockout=None if lockout is None else max(top, lockout),
    ),
    st.integers(1, 5),
    st.sampled_from([0.0, 0.7, 4.0]) | st.floats(0, 100),
    st.sampled_from([0.0, 1.0, 0.3]) | st.floats(0, 1),
    st.none() | st.sampled_from([0.5, 900.0]) | st.floats(1e-3, 1e4),
)


@settings(max_examples=40, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["admit", "admit", "begin", "reset"]), st.floats(0, 50), LIMITS),
        min_size=1,
        max_size=20,
    )
)
def test_admission_agrees_with_throttle_admit(
    redis_url: str, steps: list[tuple[str, float, ThrottleConfig]]
) -> None:
    """admit_attempt and begin_attempt of the async store give exactly throttle.admit's
    answers over a generated run of (now, limits) calls with resets."""
    prefix = unique("mfa-test:") + ":"

    async def main() -> None:
        store = AsyncRedisStore.from_url(redis_url, prefix=prefix)
        try:
            await store.add(_credential("alice"))
            state = FailureState()
            now = T0
            for operation, offset, limits in steps:
                now += offset
                if operation == "reset":
                    await store.reset("alice")
                    state = FailureState()
                    continue
                expected = admit(state, now, limits)
                if operation == "admit":
                    assert await store.admit_attempt("alice", now, limits) == expected
                else:
                    admission, listed = await store.begin_attempt("alice", now, limits)
                    assert admission == expected
                    assert [c.id for c in listed] == (["alice-c0"] if expected.admitted else [])
                state = expected.state
                assert await store.get_failures("alice") == state
        finally:
            client: Any = store._client
            await client.delete(*[key async for key in client.scan_iter(match=prefix + "*")])
            await store.close()

    asyncio.run(main())


def test_five_hundred_tasks_admit_exactly_the_limit(redis_url: str, redis_prefix: str) -> None:
    limits = ThrottleConfig(max_failures=10, base_delay=0, max_delay=0, lockout=900)

    async def main() -> list[Admission]:
        store = AsyncRedisStore.from_url(redis_url, prefix=redis_prefix)
        try:
            return await asyncio.gather(
                *(store.admit_attempt("alice", T0, limits) for _ in range(500))
            )
        finally:
            await store.close()

    results = asyncio.run(main())
    assert sorted(a.state.count for a in results if a.admitted) == list(range(1, 11))
    assert all(a.state == FailureState(10, T0) for a in results if not a.admitted)


# -- one round trip per operation, counted where redis-py sends ---------------------------


class CountingConnection(aioredis.Connection):
    """A redis.asyncio connection that counts the commands it sends."""

    sent: ClassVar[list[bytes]] = []

    async def send_command(self, *args: Any, **kwargs: Any) -> None:
        CountingConnection.sent.append(
            args[0] if isinstance(args[0], bytes) else str(args[0]).encode()
        )
        await super().send_command(*args, **kwargs)


PHC = hash_recovery_code("abcd-efgh-jkmn-pqrs", Argon2Params.fast_for_testing())


def _every_operation(
    store: AsyncRedisStore,
) -> dict[str, tuple[Callable[[], Awaitable[object]], object]]:
    """Every store operation: a call and its expected result, in an order (on an empty
    prefix) where each does real work."""
    credential = attrs.evolve(_credential("carol"), id=unique("c-"))
    changed = attrs.evolve(credential, label="x")
    records = [
        RecoveryRecord(id=unique("rc-"), tag=os.urandom(TAG_BYTES).hex(), phc=PHC) for _ in "ab"
    ]
    challenge = OOBRecord(
        challenge_id=unique("ch-"),
        user_id="carol",
        purpose=OOBPurpose.LOGIN,
        channel=OOBChannel.SMS,
        destination_hint="***67",
        code_hash=os.urandom(32),
        digits=6,
        issued_at=T0,
        expires_at=T0 + 180,
    )
    resent = attrs.evolve(challenge, generation=1, resend_count=1)
    limits = ThrottleConfig(max_failures=5, base_delay=0, max_delay=0, lockout=60)
    listed = [attrs.evolve(changed, version=1, last_accepted=7)]
    return {
        "add": (lambda: store.add(credential), None),
        "get": (lambda: store.get(credential.id), credential),
        "list_for_user": (lambda: store.list_for_user("carol"), [credential]),
        "update": (lambda: store.update(changed, expected_version=0), True),
        "claim": (lambda: store.claim(credential.id, 7, drift=0), True),
        "admit_attempt": (
            lambda: store.admit_attempt("carol", T0, limits),
            Admission(admitted=True, state=FailureState(1, T0)),
        ),
        "begin_attempt": (
            lambda: store.begin_attempt("carol", T0 + 1, limits),
            (Admission(admitted=True, state=FailureState(2, T0 + 1)), listed),
        ),
        "get_failures": (lambda: store.get_failures("carol"), FailureState(2, T0 + 1)),
        "claim_and_reset": (
            lambda: store.claim_and_reset(credential.id, 8, drift=0, user_id="carol"),
            True,
        ),
        "reset": (lambda: store.reset("carol"), None),
        "delete": (lambda: store.delete(credential.id), True),
        "replace_recovery_codes": (lambda: store.replace_recovery_codes("carol", records), None),
        "recovery_codes": (lambda: store.recovery_codes("carol"), records),
        "consume_recovery_code": (
            lambda: store.consume_recovery_code("carol", records[0].id, T0),
            1,
        ),
        "update_recovery_hash": (
            lambda: store.update_recovery_hash("carol", records[1].id, PHC),
            True,
        ),
        "put_challenge": (lambda: store.put_challenge(challenge), None),
        "get_challenge": (lambda: store.get_challenge(challenge.challenge_id), challenge),
        "replace_challenge": (
            lambda: store.replace_challenge(resent, expected_generation=0),
            True,
        ),
        "update_challenge": (
            lambda: store.update_challenge(attrs.evolve(resent, used=True), expected=resent),
            True,
        ),
        "delete_challenge": (lambda: store.delete_challenge(challenge.challenge_id), True),
        "count_send": (lambda: store.count_send("u:carol", T0, T0 + 3600), 1),
    }


PLAIN_COMMANDS = {"get", "get_failures", "reset", "get_challenge", "delete_challenge"}


def test_every_operation_is_one_round_trip_also_after_a_script_flush(private_redis: Any) -> None:
    """Each call sends its one command once (no planning pass, no second execution).
    After SCRIPT FLUSH a script operation sends EVALSHA, gets NOSCRIPT and sends EVAL
    (2 commands, counted as they are), with the same result."""
    admin = redis_client(private_redis.url)

    async def main() -> None:
        client = aioredis.Redis.from_url(private_redis.url, connection_class=CountingConnection)
        store = AsyncRedisStore(client, prefix="p:")
        try:
            await store.get_failures("warm-up")  # connect (the handshake sends commands too)
            for name, (call, expected) in _every_operation(store).items():
                assert await call() == expected, name
            for flush in (False, True):
                admin.flushall()
                assert admin.script_exists(SCRIPTS["claim"].sha.decode()) == [not flush]
                for name, (call, expected) in _every_operation(store).items():
                    if flush:
                        admin.script_flush()
                    CountingConnection.sent.clear()
                    assert await call() == expected, name
                    if flush and name not in PLAIN_COMMANDS:
                        assert CountingConnection.sent == [b"EVALSHA", b"EVAL"], name
                    else:
                        assert len(CountingConnection.sent) == 1, (name, CountingConnection.sent)
                if not flush:
                    admin.script_flush()
        finally:
            await client.aclose()

    try:
        asyncio.run(main())
    finally:
        admin.close()
