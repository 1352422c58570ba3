"""RedisStore and AsyncRedisStore on a real Redis Cluster (3 primaries, started by the
``redis_cluster`` session fixture on free loopback ports and stopped by PID).

The shipped contract suites (blocking and async), the cluster key layout (every key of one
user in one hash slot, hostile user ids included), exactly-once claims and recovery codes
from 8 processes, and the calls that reach another user's slot. The exact lockout bound on
the cluster is in ``test_lockout_bound.py``; failover and frozen nodes in
``test_redis_failover.py``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from redis.crc import key_slot
from server_tools import PrivateRedisCluster, unique
from store_race import (
    Crew,
    attempts_from_every_worker_admit_exactly_the_limit,
    same_code_from_every_worker,
    same_recovery_code_from_every_worker,
    same_recovery_record_from_every_worker,
)

from mfa_core.aio.redis import AsyncRedisStore
from mfa_core.aio.testing import (
    AsyncCredentialStoreContract,
    AsyncFailureCounterContract,
    AsyncOOBChallengeStoreContract,
    AsyncRecoveryCodeStoreContract,
    AsyncStoreContract,
)
from mfa_core.errors import InvalidParameter
from mfa_core.models import Credential, CredentialKind, CredentialState, FailureState
from mfa_core.oob import OOBChannel, OOBPurpose, OOBRecord
from mfa_core.otp import Algorithm
from mfa_core.recovery import Argon2Params, RecoveryRecord, hash_recovery_code
from mfa_core.stores.redis import RedisStore
from mfa_core.testing import (
    CredentialStoreContract,
    FailureCounterContract,
    OOBChallengeStoreContract,
    RecoveryCodeStoreContract,
    StoreMaintenanceContract,
    WebAuthnStoreContract,
)
from mfa_core.throttle import ThrottleConfig

pytest_plugins = ("servers",)

T0 = 1_800_000_000.0
PHC = hash_recovery_code("abcd-efgh-jkmn-pqrs", Argon2Params.fast_for_testing())
NO_DELAY = ThrottleConfig(max_failures=100, base_delay=0.0, max_delay=0.0, lockout=900.0)


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


def cluster_store(cluster: PrivateRedisCluster, prefix: str, **options: Any) -> RedisStore:
    """A store on its own cluster client, which its close() closes."""
    store = RedisStore(cluster.client(), prefix=prefix, **options)
    store._owns_client = True
    return store


class _OwningAsyncStore(AsyncRedisStore):
    """AsyncRedisStore that also closes its cluster client (made in the test's loop)."""

    async def close(self) -> None:
        await super().close()
        await self._client.aclose()


# -- the contract suites -------------------------------------------------------------------


class _ClusterPrefix:
    """Each test on the session's private cluster, under a key prefix of its own."""

    @pytest.fixture(autouse=True)
    def _cluster(self, redis_cluster: PrivateRedisCluster) -> None:
        self.cluster = redis_cluster
        self.prefix = unique("mfa-test:") + ":"


class _OnCluster(_ClusterPrefix):
    """Through a blocking store with its own cluster client."""

    def make_store(self) -> RedisStore:
        return cluster_store(self.cluster, self.prefix)


class _OnAsyncCluster(_ClusterPrefix):
    """Through an async store with its own cluster client (made in the test's loop); the
    async contract's own ``make_store`` wraps it for the suite's blocking helpers."""

    def make_async_store(self) -> Any:
        return _OwningAsyncStore(self.cluster.async_client(), prefix=self.prefix)


class TestRedisClusterContract(
    _OnCluster,
    CredentialStoreContract,
    FailureCounterContract,
    RecoveryCodeStoreContract,
    OOBChallengeStoreContract,
    StoreMaintenanceContract,
):
    """The shipped contract suite (all four ports, the fused attempt operations and the
    optional StoreMaintenance port of ``mfa-core admin``)."""

    attempt_store = True
    race_threads = 16


class TestAsyncRedisClusterContract(
    _OnAsyncCluster,
    AsyncCredentialStoreContract,
    AsyncFailureCounterContract,
    AsyncRecoveryCodeStoreContract,
    AsyncOOBChallengeStoreContract,
):
    """The async contract suite on ``redis.asyncio.cluster.RedisCluster``."""

    race_threads = 16
    gather_tasks = 100


class TestRedisClusterWebAuthn(_OnCluster, WebAuthnStoreContract):
    """Security keys on the cluster: a user's credential keys under their hash tag, the
    credential-id index and the challenges each in their own slot."""


class TestAsyncRedisClusterWebAuthn(_OnAsyncCluster, AsyncStoreContract, WebAuthnStoreContract):
    """The same on ``redis.asyncio.cluster.RedisCluster``."""


# -- the key layout ------------------------------------------------------------------------

HOSTILE_USERS = [
    *("alice", "}", "{", "a}b", "a%7Db", "{x}", "%"),
    *("\u017f", "\u00e9\U0001f600", "x" * 300),
]


def _all_keys(cluster: PrivateRedisCluster, prefix: str) -> list[bytes]:
    keys: list[bytes] = []
    for port in cluster.live_ports():
        from server_tools import redis_client

        node = redis_client(f"redis://127.0.0.1:{port}/0")
        try:
            keys += list(node.scan_iter(match=prefix.encode() + b"*", count=1000))
        finally:
            node.close()
    return keys


@pytest.fixture
def store(redis_cluster: PrivateRedisCluster) -> Iterator[RedisStore]:
    made = cluster_store(redis_cluster, unique("mfa-test:") + ":")
    yield made
    made.close()


def test_every_key_of_a_user_is_in_the_users_slot(
    store: RedisStore, redis_cluster: PrivateRedisCluster
) -> None:
    for index, user in enumerate(HOSTILE_USERS):
        store.add(_credential(user, f"c{index}"))
        store.add(_credential(user, f"c{index}-second"))
        store.admit_attempt(user, T0, NO_DELAY)
        store.replace_recovery_codes(user, [RecoveryRecord(id="r1", tag="ab" * 8, phc=PHC)])
        assert store.consume_recovery_code(user, "r1", T0) == 0
        assert [c.id for c in store.list_for_user(user)] == [f"c{index}", f"c{index}-second"]
        assert store.claim_and_reset(f"c{index}", 5, drift=0, user_id=user)
        store.admit_attempt(user, T0, NO_DELAY)
    prefix = store.prefix.encode()
    keys = _all_keys(redis_cluster, store.prefix)
    layout = store._protocol.cluster_keys
    assert layout is not None
    for index, user in enumerate(HOSTILE_USERS):
        head = layout.user(user.encode())
        mine = [k for k in keys if k.startswith(head)]
        # creds (index), seq, fail, rc, rc-used and two credential hashes
        assert len(mine) == 7, (user, mine)
        assert len({key_slot(k) for k in mine}) == 1, user
        owners = {k for k in keys if k.startswith(prefix + b"owner:c%d" % index)}
        assert len(owners) == 2
    # distinct users never share a key family (a}b and a%7Db stay apart)
    heads = [layout.user(user.encode()) for user in HOSTILE_USERS]
    assert len(set(heads)) == len(HOSTILE_USERS)
    assert sum(1 for k in keys if not any(k.startswith(h) for h in heads)) == 2 * len(
        HOSTILE_USERS
    )  # only the owner pointers live outside the users' slots


def test_users_spread_over_every_primary(
    store: RedisStore, redis_cluster: PrivateRedisCluster
) -> None:
    for index in range(60):
        store.add(_credential(f"user-{index}", f"spread-{index}"))
    layout = store._protocol.cluster_keys
    assert layout is not None
    primaries = {
        redis_cluster.primary_of(layout.index(f"user-{index}".encode())) for index in range(60)
    }
    assert len(primaries) == 3


def test_prefix_with_braces_is_refused_on_a_cluster(redis_cluster: PrivateRedisCluster) -> None:
    client = redis_cluster.client()
    try:
        for prefix in ("{mfa}:", "a}", "b{"):
            with pytest.raises(InvalidParameter):
                RedisStore(client, prefix=prefix)
    finally:
        client.close()


def test_a_dangling_owner_pointer_is_taken_over_by_the_same_user_only(
    store: RedisStore, redis_cluster: PrivateRedisCluster
) -> None:
    # An add() that stopped after taking the id: the pointer exists, the hash does not.
    client = redis_cluster.client()
    try:
        client.set(store.prefix + "owner:half", "alice")
    finally:
        client.close()
    assert store.get("half") is None
    with pytest.raises(Exception, match="already exists"):
        store.add(_credential("bob", "half"))
    store.add(_credential("alice", "half"))
    assert store.get("half") == _credential("alice", "half")
    assert store.delete("half")
    assert store.get("half") is None
    assert not store.delete("half")


def test_claim_and_reset_of_another_users_credential(store: RedisStore) -> None:
    store.add(_credential("alice", "c1"))
    for _ in range(3):
        store.admit_attempt("bob", T0, NO_DELAY)
        store.admit_attempt("alice", T0, NO_DELAY)
    assert store.claim_and_reset("c1", 7, drift=1, user_id="bob")
    assert store.get_failures("bob") == FailureState()
    assert store.get_failures("alice").count == 3
    assert not store.claim_and_reset("c1", 7, drift=1, user_id="bob")  # a replay
    assert not store.claim_and_reset("ghost", 8, drift=1, user_id="bob")
    stored = store.get("c1")
    assert stored is not None and (stored.last_accepted, stored.drift) == (7, 1)


def test_moving_a_credential_to_another_user_is_refused(store: RedisStore) -> None:
    store.add(_credential("alice", "c1"))
    with pytest.raises(InvalidParameter, match="another user"):
        store.update(_credential("bob", "c1"), expected_version=0)
    assert store.get("c1") == _credential("alice", "c1")
    assert not store.update(_credential("carol", "ghost"), expected_version=0)
    moved = attrs.evolve(_credential("alice", "c1"), label="renamed")
    assert store.update(moved, expected_version=0)
    assert store.get("c1") == attrs.evolve(moved, version=1)


def test_blocking_and_async_stores_share_the_cluster_layout(
    store: RedisStore, redis_cluster: PrivateRedisCluster
) -> None:
    store.add(_credential("alice", "c1"))

    async def main() -> None:
        client = redis_cluster.async_client()
        try:
            other = AsyncRedisStore(client, prefix=store.prefix)
            assert await other.get("c1") == _credential("alice", "c1")
            assert await other.claim_and_reset("c1", 3, drift=0, user_id="alice")
            assert not await other.claim("c1", 3, drift=0)
            await other.add(_credential("alice", "c2"))
            assert await other.delete("c1")
        finally:
            await client.aclose()

    asyncio.run(main())
    assert [c.id for c in store.list_for_user("alice")] == ["c2"]


# -- maintenance (the walks of mfa-core admin) ---------------------------------------------


def _challenge(user: str, challenge_id: str, expires_at: float) -> OOBRecord:
    return OOBRecord(
        challenge_id=challenge_id,
        user_id=user,
        purpose=OOBPurpose.LOGIN,
        channel=OOBChannel.SMS,
        destination_hint="***67",
        code_hash=b"\x01" * 32,
        digits=6,
        issued_at=expires_at - 180,
        expires_at=expires_at,
    )


def test_maintenance_walks_and_purges_keys_on_every_primary(
    store: RedisStore, redis_cluster: PrivateRedisCluster
) -> None:
    layout = store._protocol.cluster_keys
    assert layout is not None
    until = time.time() + 3600  # in the future: the keys' own TTLs keep them meanwhile
    users = [f"user-{index}" for index in range(60)] + HOSTILE_USERS
    pending = [f"pending-{index}" for index in range(len(users))]
    for user, credential_id in zip(users, pending, strict=True):
        store.add(
            attrs.evolve(
                _credential(user, credential_id),
                status=CredentialState.PENDING,
                pending_until=until,
            )
        )
        store.add(_credential(user, "active-" + credential_id))
        store.put_challenge(_challenge(user[:100], "oob-" + credential_id, until))
    hashes = {redis_cluster.primary_of(layout.index(user.encode())) for user in users}
    challenges = {
        redis_cluster.primary_of(store._protocol.keys.challenge("oob-" + cid)) for cid in pending
    }
    assert len(hashes) == len(challenges) == 3  # the data lives on all three primaries

    every = sorted(pending + ["active-" + cid for cid in pending])
    assert list(store.credential_ids(None, 10_000)) == every
    assert list(store.credential_ids(every[9], 5)) == every[10:15]

    assert store.purge_pending(until - 1) == 0  # not yet expired: nothing goes
    assert store.purge_challenges(until - 1) == 0
    assert store.purge_pending(until + 1) == len(users)
    assert store.purge_challenges(until + 1) == len(users)
    assert list(store.credential_ids(None, 10_000)) == sorted("active-" + c for c in pending)
    for user, credential_id in zip(users, pending, strict=True):
        assert store.get(credential_id) is None
        assert store.get_challenge("oob-" + credential_id) is None
        assert [c.id for c in store.list_for_user(user)] == ["active-" + credential_id]
    # Nothing dangles: no owner pointer and no index entry of a purged credential is left.
    keys = _all_keys(redis_cluster, store.prefix)
    owners = {k for k in keys if k.startswith(store.prefix.encode() + b"owner:")}
    assert owners == {layout.owner(b"active-" + cid.encode()) for cid in pending}
    client = redis_cluster.client()
    try:
        for user in users:
            assert client.zcard(layout.index(user.encode())) == 1
    finally:
        client.close()
    # A purged id is free again, for any user.
    store.add(_credential("someone-else", pending[0]))
    assert store.get(pending[0]) == _credential("someone-else", pending[0])


def test_maintenance_on_a_cluster_walks_only_its_own_prefix_even_with_glob_characters(
    redis_cluster: PrivateRedisCluster,
) -> None:
    base = unique("mfa-test:")
    globbing = cluster_store(redis_cluster, base + "x*[?]\\")
    neighbour = cluster_store(redis_cluster, base + "xyz?")  # the glob would match it
    try:
        until = time.time() + 3600
        for made, name in ((globbing, "mine"), (neighbour, "theirs")):
            made.add(
                attrs.evolve(
                    _credential("alice", name), status=CredentialState.PENDING, pending_until=until
                )
            )
            made.put_challenge(_challenge("alice", name, until))
        assert list(globbing.credential_ids(None, 100)) == ["mine"]
        assert list(neighbour.credential_ids(None, 100)) == ["theirs"]
        assert globbing.purge_pending(until + 1) == 1
        assert globbing.purge_challenges(until + 1) == 1
        assert neighbour.get("theirs") is not None and globbing.get("mine") is None
        assert neighbour.get_challenge("theirs") is not None
    finally:
        globbing.close()
        neighbour.close()


def test_mfa_core_admin_list_and_purge_on_a_cluster_store(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``mfa-core admin`` has no store URL for a cluster (``redis://`` makes a single-server
    client), so a test-only scheme hands it this cluster store; the commands then run
    unchanged over the cluster store's StoreMaintenance."""
    from mfa_core import admin
    from mfa_core.cli import main

    gone = time.time() - 60  # past deadlines; the keys' TTL floors keep them meanwhile
    store.add(
        attrs.evolve(_credential("alice", "p1"), status=CredentialState.PENDING, pending_until=gone)
    )
    store.add(_credential("alice", "a1"))
    store.put_challenge(_challenge("alice", "o1", gone))
    monkeypatch.setitem(admin.STORE_SCHEMES, "testcluster", lambda url, *, create: store)
    monkeypatch.setattr(admin, "close_store", lambda made: None)

    def run(*words: str) -> Any:
        status = main(["admin", "--store", "testcluster:", *words, "--json"])
        assert status == 0
        return json.loads(capsys.readouterr().out)

    assert sorted(f["id"] for f in run("list", "alice")["factors"]) == ["a1", "p1"]
    purged = run("purge", "--grace", "0")
    assert (purged["enrolments"], purged["challenges"]) == (1, 1)
    assert [f["id"] for f in run("list", "alice")["factors"]] == ["a1"]
    assert store.get("p1") is None and store.get_challenge("o1") is None


# -- 8 processes ---------------------------------------------------------------------------

ROUNDS = 40


@pytest.fixture(scope="module")
def crew(redis_cluster: PrivateRedisCluster) -> Iterator[tuple[Crew, RedisStore]]:
    prefix = unique("mfa-test:") + ":"
    url = f"redis://127.0.0.1:{redis_cluster.ports[0]}"
    with Crew(("rediscluster", url, prefix), 8) as workers:
        store = cluster_store(redis_cluster, prefix)
        try:
            yield workers, store
        finally:
            store.close()


def test_eight_processes_claim_the_same_value_exactly_once(
    crew: tuple[Crew, RedisStore],
) -> None:
    workers, store = crew
    store.add(_credential("alice", "race"))
    for round_ in range(ROUNDS):
        results = workers.run(("claim", "race", 1000 + round_, 0))
        assert results.count(True) == 1, f"round {round_}: {results}"
    stored = store.get("race")
    assert stored is not None and stored.last_accepted == 1000 + ROUNDS - 1


def test_eight_processes_submit_the_same_totp_code_exactly_one_succeeds(
    crew: tuple[Crew, RedisStore],
) -> None:
    same_code_from_every_worker(*crew, ROUNDS)


def test_eight_processes_consume_the_same_recovery_code_exactly_once(
    crew: tuple[Crew, RedisStore],
) -> None:
    same_recovery_record_from_every_worker(*crew, ROUNDS)


def test_eight_processes_submit_the_same_recovery_code_exactly_one_succeeds(
    crew: tuple[Crew, RedisStore],
) -> None:
    same_recovery_code_from_every_worker(*crew, ROUNDS)


@pytest.mark.parametrize("fused", [False, True], ids=["admit_attempt", "begin_attempt"])
def test_eight_processes_are_admitted_exactly_up_to_the_limit(
    crew: tuple[Crew, RedisStore], fused: bool
) -> None:
    # The exact lockout bound across processes (the whole-service variant with threads and
    # 500 tasks runs on the cluster in test_lockout_bound.py).
    attempts_from_every_worker_admit_exactly_the_limit(*crew, rounds=2, fused=fused)
