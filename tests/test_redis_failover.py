"""Redis servers that freeze, black-hole, lag behind or fail over, under RedisStore and
AsyncRedisStore (plain and cluster clients).

* Bounded calls: every call on a server that stops answering (SIGSTOP of a private
  ``redis-server``; a TCP listener that accepts and never replies) returns within the
  store's ``timeout`` (plus slack for a loaded machine) and raises ``StoreUnavailable``,
  whatever the client's own timeouts (the clients here have none).
* Replication-safe claims (``min_replicas_ack``): with a paused replica ``WAIT`` times out
  and the call fails closed; a lagging replica promoted after a claim re-opens the code
  without the option, and cannot with it.
* Redis Cluster failover: a primary SIGKILLed in the middle of a stream of verifies fails
  them closed (never an acceptance of a replay), and the store recovers once the replica is
  promoted (automatic failover, ``cluster-node-timeout`` 1000 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from server_tools import PrivateRedis, PrivateRedisCluster, redis_client, unique

from mfa_core.aio.redis import AsyncRedisStore
from mfa_core.errors import StoreError, StoreUnavailable
from mfa_core.models import Credential, CredentialKind, CredentialState
from mfa_core.otp import Algorithm
from mfa_core.stores.redis import RedisStore
from mfa_core.throttle import ThrottleConfig

pytest_plugins = ("servers",)

T0 = 1_800_000_000.0
BOUND = 0.3
SLACK = 2.5  # a loaded 2-core machine; the point is that the call returns, and raises
LIMITS = ThrottleConfig(max_failures=100, base_delay=0.0, max_delay=0.0, lockout=900.0)


def _credential(user: str, credential_id: str) -> Credential:
    return Credential(
        id=credential_id,
        user_id=user,
        kind=CredentialKind.TOTP,
        sealed_key=b"\x00sealed",
        created_at=T0,
        status=CredentialState.ACTIVE,
        algorithm=Algorithm.SHA1,
        digits=6,
        period=30,
        label="phone",
    )


def _fails_closed_in_bound(call: Any) -> None:
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        call()
    assert time.monotonic() - started < BOUND + SLACK


async def _async_fails_closed_in_bound(call: Any) -> None:
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        await call()
    assert time.monotonic() - started < BOUND + SLACK


def _every_call(store: Any) -> list[Any]:
    """One call of every kind a verify makes, and a few others."""
    return [
        lambda: store.begin_attempt("alice", T0, LIMITS),
        lambda: store.claim_and_reset("c1", 7, drift=0, user_id="alice"),
        lambda: store.get("c1"),
        lambda: store.get_failures("alice"),
        lambda: store.consume_recovery_code("alice", "r1", T0),
        lambda: store.add(_credential("alice", unique("c-"))),
    ]


# -- bounded calls ---------------------------------------------------------------------------


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A loopback port that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for connection in accepted:
            connection.close()
        listener.close()


def test_a_black_holed_server_fails_every_call_closed_within_the_bound(black_hole: int) -> None:
    # The host's client has no timeouts at all: the bound is the store's.
    store = RedisStore(redis.Redis(host="127.0.0.1", port=black_hole), timeout=BOUND)
    for call in _every_call(store):
        _fails_closed_in_bound(call)
    store.close()


def test_a_black_holed_server_fails_async_calls_closed_within_the_bound(black_hole: int) -> None:
    async def main() -> None:
        client = aioredis.Redis(host="127.0.0.1", port=black_hole)
        store = AsyncRedisStore(client, timeout=BOUND)
        try:
            for call in _every_call(store):
                await _async_fails_closed_in_bound(call)
        finally:
            await store.close()
            await client.aclose()

    asyncio.run(main())


def test_a_frozen_server_fails_calls_closed_and_they_work_again_after(
    private_redis: PrivateRedis,
) -> None:
    client = redis.Redis.from_url(private_redis.url)  # no timeouts
    store = RedisStore(client, timeout=BOUND)
    store.add(_credential("alice", "c1"))
    fresh = RedisStore(redis.Redis.from_url(private_redis.url), timeout=BOUND)  # not connected
    private_redis.signal(signal.SIGSTOP)
    try:
        for call in _every_call(store) + _every_call(fresh)[:2]:
            _fails_closed_in_bound(call)
    finally:
        private_redis.signal(signal.SIGCONT)
    assert store.claim("c1", 9, drift=0)  # the stale replies were never read
    assert fresh.get("c1") is not None
    store.close()
    client.close()


def test_a_frozen_server_fails_async_calls_closed_and_they_work_again_after(
    private_redis: PrivateRedis,
) -> None:
    async def main() -> None:
        client = aioredis.Redis.from_url(private_redis.url)
        store = AsyncRedisStore(client, timeout=BOUND)
        try:
            await store.add(_credential("alice", "c1"))
            private_redis.signal(signal.SIGSTOP)
            try:
                for call in _every_call(store):
                    await _async_fails_closed_in_bound(call)
            finally:
                private_redis.signal(signal.SIGCONT)
            assert await store.claim("c1", 9, drift=0)
        finally:
            await store.close()
            await client.aclose()

    asyncio.run(main())


# -- replication-safe claims ------------------------------------------------------------------


@pytest.fixture
def replicated(tmp_path: Path, redis_url: str) -> Iterator[tuple[PrivateRedis, PrivateRedis]]:
    """A private primary and its replica (``replicaof``), in sync; killed afterwards."""
    (tmp_path / "primary").mkdir()
    (tmp_path / "replica").mkdir()
    primary = PrivateRedis(tmp_path / "primary", "--repl-diskless-sync-delay", "0")
    primary.start()
    replica = PrivateRedis(tmp_path / "replica", "--replicaof", "127.0.0.1", str(primary.port))
    try:
        replica.start()
        admin = redis_client(replica.url)
        try:
            deadline = time.monotonic() + 20
            while admin.info("replication").get("master_link_status") != "up":
                assert time.monotonic() < deadline, "the replica did not sync"
                time.sleep(0.05)
        finally:
            admin.close()
        yield primary, replica
    finally:
        replica.signal(signal.SIGCONT)
        replica.kill()
        primary.kill()


def _promote(replica: PrivateRedis) -> None:
    admin = redis_client(replica.url)
    try:
        admin.execute_command("REPLICAOF", "NO", "ONE")
    finally:
        admin.close()


def test_a_paused_replica_makes_acknowledged_writes_fail_closed(
    replicated: tuple[PrivateRedis, PrivateRedis],
) -> None:
    primary, replica = replicated
    # A short wait for the paused replica's refusals; a patient store for the calls that
    # must be acknowledged (a loaded CI machine can take more than 0.2 s to acknowledge).
    store = RedisStore.from_url(primary.url, min_replicas_ack=1, replica_ack_timeout=0.2)
    patient = RedisStore.from_url(primary.url, min_replicas_ack=1, replica_ack_timeout=3)
    store.add(_credential("alice", "c1"))
    assert patient.claim_and_reset("c1", 5, drift=0, user_id="alice")  # acknowledged
    replica.signal(signal.SIGSTOP)
    try:
        for call in (
            lambda: store.claim_and_reset("c1", 6, drift=0, user_id="alice"),
            lambda: store.claim("c1", 7, drift=0),
            lambda: store.begin_attempt("alice", T0, LIMITS),
            lambda: store.admit_attempt("alice", T0, LIMITS),
            lambda: store.consume_recovery_code("alice", "r1", T0),
        ):
            with pytest.raises(StoreUnavailable, match="acknowledged"):
                call()
        # Reads and writes that decide nothing do not wait.
        assert store.get_failures("alice").count == 2
        # The refused claim did apply on the primary (it burns the code, fail closed).
        stored = store.get("c1")
        assert stored is not None and stored.last_accepted == 7
    finally:
        replica.signal(signal.SIGCONT)
    assert patient.claim("c1", 8, drift=0)
    store.close()
    patient.close()


def test_async_acknowledged_writes_fail_closed_on_a_paused_replica(
    replicated: tuple[PrivateRedis, PrivateRedis],
) -> None:
    primary, replica = replicated

    async def main() -> None:
        store = AsyncRedisStore.from_url(primary.url, min_replicas_ack=1, replica_ack_timeout=0.2)
        patient = AsyncRedisStore.from_url(primary.url, min_replicas_ack=1, replica_ack_timeout=3)
        try:
            await store.add(_credential("alice", "c1"))
            assert await patient.claim("c1", 5, drift=0)
            replica.signal(signal.SIGSTOP)
            try:
                with pytest.raises(StoreUnavailable, match="acknowledged"):
                    await store.claim("c1", 6, drift=0)
            finally:
                replica.signal(signal.SIGCONT)
            assert await patient.claim("c1", 7, drift=0)
        finally:
            await store.close()
            await patient.close()

    asyncio.run(main())


@pytest.mark.parametrize("acknowledged", [False, True], ids=["no-option", "min_replicas_ack=1"])
def test_a_promoted_lagging_replica_reopens_a_code_only_without_the_option(
    replicated: tuple[PrivateRedis, PrivateRedis], acknowledged: bool
) -> None:
    primary, replica = replicated
    # 2 s: long enough for a loaded machine to acknowledge the setup claim, and the frozen
    # replica still never answers within it.
    options = {"min_replicas_ack": 1, "replica_ack_timeout": 2.0} if acknowledged else {}
    store = RedisStore.from_url(primary.url, **options)
    store.add(_credential("alice", "c1"))
    assert store.claim("c1", 5, drift=0)
    wins = 0
    # Replication stops: the replica is frozen and the primary drops its link (what it had
    # sent before is in the replica's socket buffer; nothing after it reaches the replica).
    admin = redis_client(primary.url)
    try:
        assert admin.execute_command("WAIT", 1, 5000) == 1  # the replica has c1 at 5
        replica.signal(signal.SIGSTOP)
        admin.execute_command("CLIENT", "KILL", "TYPE", "replica")
    finally:
        admin.close()
    try:
        with contextlib.suppress(StoreUnavailable):  # refused: no login on this code
            wins += store.claim_and_reset("c1", 6, drift=0, user_id="alice")
    finally:
        primary.kill()  # the primary is lost before the replica caught up
        replica.signal(signal.SIGCONT)
    store.close()
    _promote(replica)
    promoted = RedisStore.from_url(replica.url)  # it has no replica of its own yet
    wins += promoted.claim_and_reset("c1", 6, drift=0, user_id="alice")
    promoted.close()
    # Without the option the code was accepted on the primary AND again on the promoted
    # replica; with it, exactly one acceptance ever happened.
    assert wins == (1 if acknowledged else 2)


# -- Redis Cluster: a frozen node, a killed primary ---------------------------------------------


@pytest.fixture(scope="module")
def failover_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedisCluster]:
    """3 primaries with one replica each, node timeout 1000 ms; stopped by PID."""
    cluster = PrivateRedisCluster(tmp_path_factory.mktemp("failover"), replicas=1)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def test_a_frozen_cluster_node_fails_calls_closed_within_the_bound(
    failover_cluster: PrivateRedisCluster,
) -> None:
    prefix = unique("mfa-test:") + ":"
    store = RedisStore(failover_cluster.client(socket_timeout=None), prefix=prefix, timeout=BOUND)
    store.add(_credential("alice", "c1"))
    layout = store._protocol.cluster_keys
    assert layout is not None
    port = failover_cluster.primary_of(layout.failures(b"alice"))

    async def frozen_async() -> None:
        client = failover_cluster.async_client()
        other = AsyncRedisStore(client, prefix=prefix, timeout=BOUND)
        try:
            assert (await other.get_failures("alice")).count == 0  # connected and routed
            failover_cluster.signal(port, signal.SIGSTOP)
            await _async_fails_closed_in_bound(lambda: other.begin_attempt("alice", T0, LIMITS))
        finally:
            failover_cluster.signal(port, signal.SIGCONT)
            await client.aclose()

    failover_cluster.signal(port, signal.SIGSTOP)
    try:
        _fails_closed_in_bound(lambda: store.begin_attempt("alice", T0, LIMITS))
        _fails_closed_in_bound(lambda: store.claim_and_reset("c1", 5, drift=0, user_id="alice"))
        # The maintenance walks SCAN every primary, the frozen one too.
        _fails_closed_in_bound(lambda: store.credential_ids(None, 10))
        _fails_closed_in_bound(lambda: store.purge_challenges(T0))
        _fails_closed_in_bound(lambda: store.purge_pending(T0))
    finally:
        failover_cluster.signal(port, signal.SIGCONT)
    asyncio.run(frozen_async())
    failover_cluster.wait_healthy()
    _eventually(lambda: store.claim_and_reset("c1", 5, drift=0, user_id="alice"))
    store._client.close()


def _eventually(call: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except StoreError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _claim_once_acknowledged(store: RedisStore, credential_id: str, start: int) -> int:
    """Claim ever higher values until one is acknowledged by a replica; return it. A claim
    refused for want of an acknowledgement may still have been applied on the primary (it
    fails closed, see docs/stores.md), so each retry uses the next value: a fresh higher
    value that is refused without an error would be a bug."""
    deadline = time.monotonic() + 30.0
    value = start
    while True:
        try:
            assert store.claim(credential_id, value, drift=0), "a higher value was refused"
            return value
        except StoreUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
        value += 1


def test_a_killed_primary_fails_closed_then_the_promoted_replica_serves(
    failover_cluster: PrivateRedisCluster,
) -> None:
    prefix = unique("mfa-test:") + ":"
    store = RedisStore(
        failover_cluster.client(),
        prefix=prefix,
        timeout=BOUND,
        min_replicas_ack=1,
        replica_ack_timeout=0.5,
    )
    users = [f"user-{index}" for index in range(6)]
    for user in users:
        store.add(_credential(user, f"cred-{user}"))
    # The credentials themselves are not acknowledged writes: make sure every replica has
    # them before a primary dies (else the promoted replica may lack one, under load).
    setup = failover_cluster.client()
    try:
        setup.execute_command("WAIT", 1, 10_000, target_nodes=setup.PRIMARIES)
    finally:
        setup.close()
    layout = store._protocol.cluster_keys
    assert layout is not None
    victim = failover_cluster.primary_of(layout.index(users[0].encode()))
    accepted: dict[str, list[int]] = {user: [] for user in users}
    outcomes: list[str] = []
    for step in range(200):
        if step == 3:
            failover_cluster.kill(victim)  # mid-stream: SIGKILL by PID
        for user in users:
            try:
                admission, _ = store.begin_attempt(user, T0 + step, LIMITS)
                if admission.admitted and store.claim_and_reset(
                    f"cred-{user}", 100 + step, drift=0, user_id=user
                ):
                    accepted[user].append(100 + step)
                # a replay of the first value is never accepted, before or after failover
                assert not store.claim_and_reset(f"cred-{user}", 100, drift=0, user_id=user)
                outcomes.append("ok")
            except StoreUnavailable:
                outcomes.append("refused")
        if step > 3 and _promoted(failover_cluster, victim):
            break
        time.sleep(0.05)
    assert "refused" in outcomes  # the dead primary's users were refused, never accepted
    # The promoted replica has no replica of its own, so acknowledged writes on its slots
    # keep failing closed until the old primary comes back (as its replica).
    failover_cluster.restart(victim)
    failover_cluster.wait_healthy()
    for user in users:
        value = _claim_once_acknowledged(store, f"cred-{user}", 10_000)
        assert not store.claim(f"cred-{user}", value, drift=0)
        assert not store.claim_and_reset(f"cred-{user}", 100, drift=0, user_id=user)
        assert accepted[user] == sorted(set(accepted[user]))
        assert accepted[user][0] == 100
    store._client.close()


def _promoted(cluster: PrivateRedisCluster, dead: int) -> bool:
    """Whether a live node reports all slots served again (the dead primary's replica took
    over)."""
    client = redis_client(f"redis://127.0.0.1:{cluster.live_ports()[0]}/0", socket_timeout=1.0)
    try:
        state = client.execute_command("CLUSTER INFO")
        return state.get("cluster_state") in ("ok", b"ok") and all(
            int(primary[1]) != dead for *_, primary in _slot_primaries(client)
        )
    except redis.exceptions.RedisError:
        return False
    finally:
        client.close()


def _slot_primaries(client: Any) -> list[tuple[int, int, Any]]:
    return [(start, end, primary) for start, end, primary, *_ in client.cluster("slots")]


def test_an_async_cluster_that_cannot_be_reached_fails_closed_within_the_bound(
    black_hole: int,
) -> None:
    from redis.asyncio.cluster import ClusterNode, RedisCluster

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        refused = probe.getsockname()[1]

    async def main() -> None:
        for port in (refused, black_hole):
            client = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", port)])
            store = AsyncRedisStore(client, timeout=BOUND)
            try:
                await _async_fails_closed_in_bound(lambda s=store: s.get_failures("alice"))
            finally:
                await client.aclose()

    asyncio.run(main())
