"""RedisStore against a real Redis server.

* the shipped contract suite (credentials and failure counters, 32-thread races);
* the shipped contract suites of the recovery-code and out-of-band ports;
* the key layout, prefixes, TTLs of pending credentials, failure counters and challenges;
* exact comparisons of claim values beyond 2**53 (Lua numbers are doubles);
* one round trip per operation, counted on the client's connections;
* 8 worker processes with their own connections: exactly one winner per claimed value over
  200 rounds, exactly one consumer of each recovery code over 200 rounds (at the store and
  through ``MFAService.verify_recovery_code``), and a burst of failures counted exactly;
* faults for real: the client's connection killed server-side (between operations and
  while a command is in flight) and a private server killed and restarted.

Needs the Redis server of the machine (see ``servers.py``: skipped without it unless CI is
set). Each test works under its own key prefix and deletes only those keys.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import attrs
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_tools import delete_prefix, redis_client, unique
from store_race import (
    Crew,
    same_code_from_every_worker,
    same_recovery_code_from_every_worker,
    same_recovery_record_from_every_worker,
)

from mfa_core.errors import InvalidParameter, StoreError, StoreUnavailable
from mfa_core.models import (
    Admission,
    Credential,
    CredentialKind,
    CredentialState,
    FailureState,
)
from mfa_core.oob import OOBChannel, OOBPurpose, OOBRecord
from mfa_core.recovery import TAG_BYTES, Argon2Params, RecoveryRecord, hash_recovery_code
from mfa_core.stores._redis_protocol import SCRIPTS
from mfa_core.stores.redis import RedisStore
from mfa_core.testing import (
    CredentialStoreContract,
    FailureCounterContract,
    OOBChallengeStoreContract,
    RecoveryCodeStoreContract,
)
from mfa_core.throttle import ThrottleConfig, admit, delay_after

pytest_plugins = ("servers",)

INT63 = 2**63 - 1
T0 = 1_700_000_000.0
NO_DELAY = ThrottleConfig(max_failures=100, base_delay=0, max_delay=0, lockout=900)
"""Limits that admit every attempt up to 100 (the failure counter's layout and TTL tests)."""


def _credential(user_id: str = "alice", **changes: Any) -> Credential:
    base = Credential(
        id=unique("cred-"),
        user_id=user_id,
        kind=CredentialKind.TOTP,
        sealed_key=os.urandom(40),
        created_at=T0,
        status=CredentialState.ACTIVE,
    )
    return attrs.evolve(base, **changes)


PHC = hash_recovery_code("abcd-efgh-jkmn-pqrs", Argon2Params.fast_for_testing())


def _records(count: int) -> list[RecoveryRecord]:
    return [
        RecoveryRecord(id=unique("rc-"), tag=os.urandom(TAG_BYTES).hex(), phc=PHC)
        for _ in range(count)
    ]


def _challenge(issued_at: float = T0, **changes: Any) -> OOBRecord:
    base = OOBRecord(
        challenge_id=unique("ch-"),
        user_id="alice",
        purpose=OOBPurpose.LOGIN,
        channel=OOBChannel.SMS,
        destination_hint="***67",
        code_hash=os.urandom(32),
        digits=6,
        issued_at=issued_at,
        expires_at=issued_at + 180,
    )
    return attrs.evolve(base, **changes)


@pytest.fixture
def client(redis_url: str) -> Iterator[Any]:
    made = redis_client(redis_url)
    yield made
    made.close()


@pytest.fixture
def store(client: Any, redis_prefix: str) -> RedisStore:
    return RedisStore(client, prefix=redis_prefix)


# -- the contract suite ------------------------------------------------------------------


class TestRedisStoreContract(
    CredentialStoreContract,
    FailureCounterContract,
    RecoveryCodeStoreContract,
    OOBChallengeStoreContract,
):
    """The shipped contract suite (all four ports), each test under its own prefix."""

    @pytest.fixture(autouse=True)
    def _server(self, redis_url: str, redis_prefix: str) -> None:
        self.url = redis_url
        self.prefix = redis_prefix

    def make_store(self) -> RedisStore:
        return RedisStore.from_url(self.url, prefix=self.prefix)


# -- layout, prefixes, TTLs ---------------------------------------------------------------


def test_key_layout(store: RedisStore, client: Any, redis_prefix: str) -> None:
    credential = _credential("bob")
    store.add(credential)
    store.admit_attempt("bob", T0, NO_DELAY)
    keys = {key.decode() for key in client.scan_iter(match=redis_prefix + "*")}
    assert keys == {
        f"{redis_prefix}cred:{credential.id}",
        f"{redis_prefix}creds-of:bob",
        f"{redis_prefix}seq",
        f"{redis_prefix}fail:bob",
    }
    assert client.hget(f"{redis_prefix}cred:{credential.id}", "last_accepted") == b"-1"
    assert client.zscore(f"{redis_prefix}creds-of:bob", credential.id) == T0


def test_prefixes_separate_applications(client: Any, redis_prefix: str) -> None:
    first = RedisStore(client, prefix=redis_prefix + "a:")
    second = RedisStore(client, prefix=redis_prefix + "b:")
    credential = _credential()
    first.add(credential)
    first.admit_attempt("alice", T0, NO_DELAY)
    assert second.get(credential.id) is None
    assert second.list_for_user("alice") == []
    assert second.get_failures("alice") == FailureState()
    second.add(credential)  # the same id is free under another prefix
    assert second.claim(credential.id, 5, drift=0)
    assert first.get(credential.id) == credential
    assert first.prefix == redis_prefix + "a:"
    assert repr(first) == f"RedisStore(prefix={redis_prefix + 'a:'!r})"


def test_user_and_credential_ids_with_separators_do_not_collide(store: RedisStore) -> None:
    odd = _credential("a:creds-of:b", id="x:cred:y")
    plain = _credential("a", id="x")
    store.add(odd)
    store.add(plain)
    assert store.list_for_user("a:creds-of:b") == [odd]
    assert store.list_for_user("a") == [plain]
    assert store.get("x:cred:y") == odd
    store.admit_attempt("a", T0, NO_DELAY)
    assert store.get_failures("a:creds-of:b") == FailureState()


def test_list_orders_equal_created_at_by_insertion(store: RedisStore) -> None:
    ids = ["z", "m", "a", "q"]
    for credential_id in ids:
        store.add(_credential(id=credential_id + unique("-")))
    listed = [c.id.split("-")[0] for c in store.list_for_user("alice")]
    assert listed == ids


def test_update_moves_a_credential_to_another_user(store: RedisStore, client: Any) -> None:
    credential = _credential("alice")
    store.add(credential)
    moved = attrs.evolve(credential, user_id="bob", created_at=T0 + 5)
    assert store.update(moved, expected_version=0)
    assert store.list_for_user("alice") == []
    assert store.list_for_user("bob") == [attrs.evolve(moved, version=1)]
    assert store.delete(credential.id)
    assert store.list_for_user("bob") == []
    assert client.exists(f"{store.prefix}creds-of:bob") == 0


def test_pending_credential_expires_after_its_deadline_plus_grace(
    client: Any, redis_prefix: str
) -> None:
    store = RedisStore(client, prefix=redis_prefix, pending_grace=3600)
    now = time.time()
    pending = _credential(status=CredentialState.PENDING, pending_until=now + 600)
    store.add(pending)
    key = f"{redis_prefix}cred:{pending.id}"
    expected_ms = (600 + 3600) * 1000
    assert expected_ms - 10_000 < client.pttl(key) <= expected_ms
    # Activation removes the TTL; going back to PENDING (a renewal) sets it again.
    active = attrs.evolve(pending, status=CredentialState.ACTIVE, pending_until=None)
    assert store.update(active, expected_version=0)
    assert client.pttl(key) == -1
    renewed = attrs.evolve(active, status=CredentialState.PENDING, pending_until=now + 60)
    assert store.update(renewed, expected_version=1)
    assert (60 + 3600) * 1000 - 10_000 < client.pttl(key) <= (60 + 3600) * 1000
    # A deadline long past (or a fake clock) still keeps the credential for the grace.
    old = _credential(status=CredentialState.PENDING, pending_until=1000.0)
    store.add(old)
    assert 3590_000 < client.pttl(f"{redis_prefix}cred:{old.id}") <= 3600_000
    # Non-pending credentials and pending ones without a deadline never expire.
    for credential in (_credential(), _credential(status=CredentialState.PENDING)):
        store.add(credential)
        assert client.pttl(f"{redis_prefix}cred:{credential.id}") == -1


def test_expired_pending_credential_vanishes_with_its_index_entry(
    client: Any, redis_prefix: str
) -> None:
    store = RedisStore(client, prefix=redis_prefix, pending_grace=0.2)
    abandoned = _credential(status=CredentialState.PENDING, pending_until=1000.0)
    kept = _credential(created_at=T0 + 1)
    store.add(abandoned)
    store.add(kept)
    deadline = time.monotonic() + 5
    while store.get(abandoned.id) is not None:
        assert time.monotonic() < deadline, "the pending credential did not expire"
        time.sleep(0.05)
    assert store.list_for_user("alice") == [kept]
    index = client.zrange(f"{redis_prefix}creds-of:alice", 0, -1)
    assert index == [kept.id.encode()]
    assert not store.claim(abandoned.id, 1, drift=0)


def test_failure_counter_ttl(client: Any, redis_prefix: str) -> None:
    store = RedisStore(client, prefix=redis_prefix, failure_ttl=60)
    store.admit_attempt("alice", T0, NO_DELAY)
    assert 55_000 < client.pttl(f"{redis_prefix}fail:alice") <= 60_000
    forever = RedisStore(client, prefix=redis_prefix + "forever:", failure_ttl=None)
    forever.admit_attempt("alice", T0, NO_DELAY)
    assert client.pttl(f"{redis_prefix}forever:fail:alice") == -1
    short = RedisStore(client, prefix=redis_prefix + "short:", failure_ttl=0.2)
    assert short.admit_attempt("bob", T0, NO_DELAY).state.count == 1
    time.sleep(0.3)
    assert short.get_failures("bob") == FailureState()
    assert short.admit_attempt("bob", T0, NO_DELAY).state.count == 1


def test_recovery_and_challenge_key_layout(
    store: RedisStore, client: Any, redis_prefix: str
) -> None:
    first, second = _records(2)
    store.replace_recovery_codes("bob", [first, attrs.evolve(second, used_at=T0 + 0.25)])
    challenge = _challenge()
    store.put_challenge(challenge)
    keys = {key.decode() for key in client.scan_iter(match=redis_prefix + "*")}
    assert keys == {
        f"{redis_prefix}rc:bob",
        f"{redis_prefix}rc-used:bob",
        f"{redis_prefix}oob:{challenge.challenge_id}",
    }
    codes = client.hgetall(f"{redis_prefix}rc:bob")
    assert codes[first.id.encode()] == f"0:{first.tag}:{PHC}".encode()
    assert codes[second.id.encode()] == f"1:{second.tag}:{PHC}".encode()
    assert client.hgetall(f"{redis_prefix}rc-used:bob") == {
        second.id.encode(): repr(T0 + 0.25).encode()
    }
    fields = client.hgetall(f"{redis_prefix}oob:{challenge.challenge_id}")
    assert fields[b"code_hash"] == challenge.code_hash
    assert fields[b"used"] == b"0"
    assert fields[b"generation"] == b"0"
    # consuming writes only the used hash; an empty set deletes both keys
    assert store.consume_recovery_code("bob", first.id, T0 + 1) == 0
    assert client.hget(f"{redis_prefix}rc-used:bob", first.id) == repr(T0 + 1).encode()
    store.replace_recovery_codes("bob", [])
    assert client.exists(f"{redis_prefix}rc:bob", f"{redis_prefix}rc-used:bob") == 0
    assert store.recovery_codes("bob") == []


def test_send_counter_key_and_expiry(store: RedisStore, client: Any, redis_prefix: str) -> None:
    now = time.time()
    start = now - now % 3600
    assert [store.count_send("d:abc", start, start + 3600) for _ in range(3)] == [1, 2, 3]
    key = f"{redis_prefix}send:{start!r}:d:abc"
    assert {k.decode() for k in client.scan_iter(match=redis_prefix + "*")} == {key}
    assert client.get(key) == b"3"
    # expires at the window's end, and never sooner than one window length after a call
    deadline_ms = client.pexpiretime(key)
    assert (now + 3600) * 1000 - 5000 <= deadline_ms <= (start + 7200) * 1000 + 5000
    # a window far in the caller's past still lives one window length (clock skew)
    assert store.count_send("d:abc", 1_000_000_000.0, 1_000_000_060.0) == 1
    old = f"{redis_prefix}send:{1_000_000_000.0!r}:d:abc"
    assert 50_000 <= client.pttl(old) <= 60_000


def test_recovery_codes_keep_the_order_of_the_set(store: RedisStore) -> None:
    records = _records(12)
    store.replace_recovery_codes("alice", records)
    assert store.recovery_codes("alice") == records
    store.replace_recovery_codes("alice", records[::-1])
    assert store.recovery_codes("alice") == records[::-1]


def test_challenge_lives_until_its_code_expired_plus_grace(client: Any, redis_prefix: str) -> None:
    store = RedisStore(client, prefix=redis_prefix, challenge_grace=3600)
    now = time.time()
    fresh = _challenge(issued_at=now)
    store.put_challenge(fresh)
    key = f"{redis_prefix}oob:{fresh.challenge_id}"
    expected_ms = (180 + 3600) * 1000
    assert expected_ms - 10_000 < client.pttl(key) <= expected_ms
    # a resend moves the deadline with the new code's expiry
    resent = attrs.evolve(
        fresh, issued_at=now + 60, expires_at=now + 240, generation=1, resend_count=1
    )
    assert store.replace_challenge(resent, expected_generation=0)
    assert expected_ms + 50_000 < client.pttl(key) <= expected_ms + 60_000
    # an attempt keeps a TTL too
    assert store.update_challenge(attrs.evolve(resent, attempts=1), expected=resent)
    assert expected_ms + 50_000 < client.pttl(key) <= expected_ms + 60_000
    # a code that expired long ago (or a fake clock) is still kept for the grace
    old = _challenge(issued_at=1000.0)
    store.put_challenge(old)
    assert 3590_000 < client.pttl(f"{redis_prefix}oob:{old.challenge_id}") <= 3600_000


def test_expired_challenge_vanishes(client: Any, redis_prefix: str) -> None:
    store = RedisStore(client, prefix=redis_prefix, challenge_grace=0.2)
    old = _challenge(issued_at=1000.0)
    store.put_challenge(old)
    deadline = time.monotonic() + 5
    while store.get_challenge(old.challenge_id) is not None:
        assert time.monotonic() < deadline, "the challenge did not expire"
        time.sleep(0.05)
    assert not store.update_challenge(attrs.evolve(old, used=True), expected=old)
    assert not store.replace_challenge(attrs.evolve(old, generation=1), expected_generation=0)
    assert not store.delete_challenge(old.challenge_id)
    store.put_challenge(old)  # the id is free again


def test_failure_time_never_goes_back(store: RedisStore) -> None:
    assert store.admit_attempt("alice", T0 + 10, NO_DELAY).state == FailureState(1, T0 + 10)
    assert store.admit_attempt("alice", T0 + 5, NO_DELAY).state == FailureState(2, T0 + 10)
    assert store.admit_attempt("alice", T0 + 20.5, NO_DELAY).state == FailureState(3, T0 + 20.5)
    assert store.get_failures("alice") == FailureState(3, T0 + 20.5)


# -- admission: throttle.admit, as one script ---------------------------------------------


@st.composite
def limits_strategy(draw: st.DrawFn) -> ThrottleConfig:
    """ThrottleConfigs with small limits, fractional delays and both kinds of lock."""
    top = draw(st.sampled_from([0.0, 0.7, 4.0, 60.0]) | st.floats(0, 100))
    base = draw(st.sampled_from([0.0, top, top / 3]) | st.floats(0, top))
    lockout = draw(
        st.none() | st.sampled_from([max(top, 0.5), 900.0]) | st.floats(max(top, 1e-3), 1e4)
    )
    return ThrottleConfig(
        max_failures=draw(st.integers(1, 6)), base_delay=base, max_delay=top, lockout=lockout
    )


STEP = st.tuples(
    st.sampled_from(["admit", "admit", "admit", "begin", "reset"]),
    st.sampled_from(["edge", "edge", "just-before-edge", "back"])
    | st.floats(0, 5000, allow_nan=False)
    | st.sampled_from([0.0, 0.1, 1.0, 60.0, 899.9, 900.0]),
    limits_strategy(),
)


def _when(state: FailureState, now: float, step: str | float, limits: ThrottleConfig) -> float:
    """The time of the next call: ``step`` seconds after ``now``, or relative to the state:
    exactly where its delay or lock ends ("edge"), the double just before ("just-before-
    edge"), or before its latest attempt ("back": a worker whose clock is behind)."""
    if isinstance(step, float):
        return now + step
    last = now if state.last_failure_at is None else state.last_failure_at
    if step == "back":
        return max(0.0, last - 7.25)
    if state.count >= limits.max_failures:
        edge = last + (limits.lockout if limits.lockout is not None else 1e6)
    else:
        edge = last + delay_after(state.count, limits)
    return edge if step == "edge" else math.nextafter(edge, 0.0)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(STEP, min_size=1, max_size=25))
def test_admission_agrees_with_throttle_admit(
    store: RedisStore, steps: list[tuple[str, str | float, ThrottleConfig]]
) -> None:
    """admit_attempt and begin_attempt give exactly throttle.admit's answers over a run of
    calls with changing limits, times on and just before the end of a delay or lock, times
    going back, and resets; the stored state (floats included) round-trips exactly."""
    user = unique("adm-")
    credential = _credential(user)
    store.add(credential)
    state = FailureState()
    now = T0
    for operation, step, limits in steps:
        now = _when(state, now, step, limits)
        if operation == "reset":
            store.reset(user)
            state = FailureState()
            continue
        expected = admit(state, now, limits)
        if operation == "admit":
            assert store.admit_attempt(user, now, limits) == expected
        else:
            admission, listed = store.begin_attempt(user, now, limits)
            assert admission == expected
            assert list(listed) == ([credential] if expected.admitted else [])
        state = expected.state
        assert store.get_failures(user) == state


def test_begin_attempt_lists_only_when_admitted_and_drops_vanished_entries(
    store: RedisStore, client: Any, redis_prefix: str
) -> None:
    limits = ThrottleConfig(max_failures=2, base_delay=10, max_delay=10, lockout=60)
    first, second = _credential("dan", created_at=T0 + 1), _credential("dan", created_at=T0)
    store.add(first)
    store.add(second)
    client.zadd(f"{redis_prefix}creds-of:dan", {"gone": T0})  # an expired credential's entry
    admission, listed = store.begin_attempt("dan", T0, limits)
    assert admission == Admission(admitted=True, state=FailureState(1, T0))
    assert listed == [second, first]  # oldest first
    assert client.zrange(f"{redis_prefix}creds-of:dan", 0, -1) == [
        second.id.encode(),
        first.id.encode(),
    ]
    assert store.begin_attempt("dan", T0 + 5, limits) == (
        Admission(admitted=False, state=FailureState(1, T0)),
        [],
    )
    assert store.begin_attempt("nobody", T0, limits) == (
        Admission(admitted=True, state=FailureState(1, T0)),
        [],
    )


def test_claim_and_reset_resets_only_when_the_claim_wins(store: RedisStore) -> None:
    credential = _credential("erin")
    store.add(credential)
    store.admit_attempt("erin", T0, NO_DELAY)
    store.admit_attempt("frank", T0, NO_DELAY)
    assert store.claim_and_reset(credential.id, 5, drift=2, user_id="erin")
    assert store.get_failures("erin") == FailureState()
    assert store.get_failures("frank") == FailureState(1, T0)  # another user's is kept
    got = store.get(credential.id)
    assert got is not None and (got.last_accepted, got.drift) == (5, 2)
    store.admit_attempt("erin", T0, NO_DELAY)
    assert not store.claim_and_reset(credential.id, 5, drift=0, user_id="erin")  # a replay
    assert not store.claim_and_reset("missing", 9, drift=0, user_id="erin")
    assert store.get_failures("erin") == FailureState(1, T0)  # a lost claim resets nothing
    # the user_id names the counter to reset, whoever owns the credential
    assert store.claim_and_reset(credential.id, 6, drift=0, user_id="frank")
    assert store.get_failures("frank") == FailureState()
    assert store.get_failures("erin") == FailureState(1, T0)


def test_thirty_two_threads_admit_exactly_the_limit(redis_url: str, redis_prefix: str) -> None:
    limits = ThrottleConfig(max_failures=10, base_delay=0, max_delay=0, lockout=900)
    store = RedisStore.from_url(redis_url, prefix=redis_prefix)
    threads_count, per_thread = 32, 4
    barrier = threading.Barrier(threads_count)
    results: list[Admission] = []
    lock = threading.Lock()

    def attempt() -> None:
        barrier.wait(10)
        mine = [store.admit_attempt("alice", T0, limits) for _ in range(per_thread)]
        with lock:
            results.extend(mine)

    try:
        threads = [threading.Thread(target=attempt) for _ in range(threads_count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(results) == threads_count * per_thread
        admitted = sorted(a.state.count for a in results if a.admitted)
        assert admitted == list(range(1, 11))
        assert all(a.state == FailureState(10, T0) for a in results if not a.admitted)
        assert store.get_failures("alice") == FailureState(10, T0)
    finally:
        store.close()


def test_binary_keys_with_a_decoding_client(redis_url: str, redis_prefix: str) -> None:
    decoding = redis_client(redis_url, decode_responses=True)
    try:
        store = RedisStore(decoding, prefix=redis_prefix)
        credential = _credential(sealed_key=bytes(range(256)), label="t\u00e9l\u00e9phone \u2713")
        store.add(credential)
        got = store.get(credential.id)
        assert got == credential
        assert got is not None and got.sealed_key == bytes(range(256))
        assert store.list_for_user("alice") == [credential]
        records = _records(3)
        store.replace_recovery_codes("alice", records)
        assert store.recovery_codes("alice") == records
        assert store.consume_recovery_code("alice", records[1].id, T0) == 2
        challenge = _challenge(code_hash=bytes(range(224, 256)))
        store.put_challenge(challenge)
        got_challenge = store.get_challenge(challenge.challenge_id)
        assert got_challenge == challenge
        assert got_challenge is not None and got_challenge.code_hash == bytes(range(224, 256))
    finally:
        decoding.close()


# -- exact claims beyond 2**53 ----------------------------------------------------------


def _near(low: int) -> st.SearchStrategy[tuple[int, int]]:
    """Pairs of values at most 3 apart, the first at least ``low``."""
    return st.integers(low, INT63).flatmap(
        lambda a: st.tuples(st.just(a), st.integers(max(0, a - 3), min(INT63, a + 3)))
    )


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    pair=st.one_of(
        _near(2**53),  # where doubles can no longer tell neighbours apart
        _near(0),
        st.tuples(st.integers(0, INT63), st.integers(0, INT63)),
    )
)
def test_claim_compares_64_bit_values_exactly(store: RedisStore, pair: tuple[int, int]) -> None:
    first, second = pair
    credential = _credential()
    store.add(credential)
    assert store.claim(credential.id, first, drift=0)
    assert store.claim(credential.id, second, drift=1) is (second > first)
    got = store.get(credential.id)
    assert got is not None
    assert got.last_accepted == max(first, second)


def test_claim_at_the_edges_of_the_digit_split(store: RedisStore) -> None:
    credential = _credential()
    store.add(credential)
    edges = {0, 9, 10, 999_999_999, 1_000_000_000, 2**53, 2**53 + 1, 10**18 - 1, 10**18}
    for value in sorted(edges | {INT63 - 1, INT63}):
        assert store.claim(credential.id, value, drift=0), value
        assert not store.claim(credential.id, value, drift=0), value
        assert not store.claim(credential.id, max(0, value - 1), drift=0), value


# -- one round trip per operation ---------------------------------------------------------


class CountingConnection(redis.Connection):
    """A redis-py connection that counts the commands it sends."""

    sent: ClassVar[list[bytes]] = []

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        CountingConnection.sent.append(
            args[0] if isinstance(args[0], bytes) else str(args[0]).encode()
        )
        super().send_command(*args, **kwargs)


def test_every_operation_is_one_round_trip(redis_url: str, redis_prefix: str) -> None:
    client = redis_client(redis_url, connection_class=CountingConnection)
    try:
        store = RedisStore(client, prefix=redis_prefix)
        store.get_failures("warm-up")  # connect (the handshake sends commands too)
        credential = _credential()
        calls = [
            lambda: store.add(credential),
            lambda: store.get(credential.id),
            lambda: store.list_for_user("alice"),
            lambda: store.claim(credential.id, 7, drift=0),
            lambda: store.update(attrs.evolve(credential, label="x"), expected_version=0),
            lambda: store.admit_attempt("alice", T0, NO_DELAY),
            lambda: store.begin_attempt("alice", T0, NO_DELAY),
            lambda: store.claim_and_reset(credential.id, 8, drift=0, user_id="alice"),
            lambda: store.get_failures("alice"),
            lambda: store.reset("alice"),
            lambda: store.delete(credential.id),
        ]
        for call in calls:
            call()  # first run: the server may not know a script yet (EVALSHA, then EVAL)
        for call in calls[1:]:
            CountingConnection.sent.clear()
            call()
            assert len(CountingConnection.sent) == 1, CountingConnection.sent
    finally:
        client.close()


def test_recovery_and_challenge_operations_are_one_round_trip(
    redis_url: str, redis_prefix: str
) -> None:
    client = redis_client(redis_url, connection_class=CountingConnection)
    try:
        store = RedisStore(client, prefix=redis_prefix)

        def calls() -> dict[str, Any]:
            records = _records(3)
            challenge = _challenge()
            resent = attrs.evolve(challenge, generation=1, resend_count=1)
            return {
                "replace_recovery_codes": lambda: store.replace_recovery_codes("bob", records),
                "recovery_codes": lambda: store.recovery_codes("bob"),
                "consume_recovery_code": lambda: store.consume_recovery_code(
                    "bob", records[0].id, T0
                ),
                "update_recovery_hash": lambda: store.update_recovery_hash(
                    "bob", records[1].id, PHC
                ),
                "put_challenge": lambda: store.put_challenge(challenge),
                "get_challenge": lambda: store.get_challenge(challenge.challenge_id),
                "replace_challenge": lambda: store.replace_challenge(resent, expected_generation=0),
                "update_challenge": lambda: store.update_challenge(
                    attrs.evolve(resent, used=True), expected=resent
                ),
                "delete_challenge": lambda: store.delete_challenge(challenge.challenge_id),
                "count_send": lambda: store.count_send("u:bob", T0, T0 + 3600),
            }

        for call in calls().values():
            call()  # the server learns the scripts (EVALSHA, then EVAL)
        for name, call in calls().items():
            CountingConnection.sent.clear()
            call()
            assert len(CountingConnection.sent) == 1, (name, CountingConnection.sent)
    finally:
        client.close()


def _every_operation(store: RedisStore) -> dict[str, tuple[Any, object]]:
    """Every store operation: a call and its expected result, in an order (on an empty
    prefix) where each does real work."""
    credential = _credential("carol")
    changed = attrs.evolve(credential, label="x")
    records = _records(2)
    challenge = _challenge()
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
    """Commands counted where redis-py sends them. With the scripts known, every operation
    sends exactly one command. After SCRIPT FLUSH a script operation sends EVALSHA, gets
    NOSCRIPT and sends EVAL (2 commands, counted as they are), with the same result."""
    client = redis_client(private_redis.url, connection_class=CountingConnection)
    admin = redis_client(private_redis.url)
    try:
        store = RedisStore(client, prefix="p:")
        store.get_failures("warm-up")  # connect (the handshake sends commands too)
        for name, (call, expected) in _every_operation(store).items():
            assert call() == expected, name  # the server may learn the scripts here
        for flush in (False, True):
            admin.flushall()
            assert admin.script_exists(SCRIPTS["claim"].sha.decode()) == [not flush]
            for name, (call, expected) in _every_operation(store).items():
                if flush:
                    admin.script_flush()
                CountingConnection.sent.clear()
                assert call() == expected, name
                if flush and name not in PLAIN_COMMANDS:
                    assert CountingConnection.sent == [b"EVALSHA", b"EVAL"], name
                else:
                    assert len(CountingConnection.sent) == 1, (name, CountingConnection.sent)
            if not flush:
                admin.script_flush()
    finally:
        client.close()
        admin.close()


def test_unknown_script_falls_back_to_eval_once(private_redis: Any) -> None:
    client = redis_client(private_redis.url, connection_class=CountingConnection)
    admin = redis_client(private_redis.url)
    try:
        store = RedisStore(client, prefix="p:")
        credential = _credential()
        store.add(credential)
        calls = {
            "claim": lambda value: store.claim(credential.id, value, drift=0),
            "claim_and_reset": lambda value: store.claim_and_reset(
                credential.id, value, drift=0, user_id="alice"
            ),
            "begin_attempt": lambda _: store.begin_attempt("alice", T0, NO_DELAY)[0].admitted,
        }
        for value, (name, call) in enumerate(calls.items(), 3):
            admin.script_flush()
            CountingConnection.sent.clear()
            assert call(value), name  # ran once, by EVAL
            assert CountingConnection.sent == [b"EVALSHA", b"EVAL"], name
            CountingConnection.sent.clear()
            assert call(value) is (name == "begin_attempt"), name  # the script is known now
            assert CountingConnection.sent == [b"EVALSHA"], name
        assert store.get_failures("alice") == FailureState(2, T0)  # each attempt counted once
    finally:
        client.close()
        admin.close()


# -- errors ------------------------------------------------------------------------------


def test_bad_arguments_raise_typed_errors(client: Any, redis_prefix: str) -> None:
    with pytest.raises(InvalidParameter):
        RedisStore("redis://x", prefix=redis_prefix)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter):
        RedisStore(client, prefix=7)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter):
        RedisStore(client, prefix="\ud800")
    for grace in (0, -1, float("nan"), float("inf"), "1"):
        with pytest.raises(InvalidParameter):
            RedisStore(client, pending_grace=grace)  # type: ignore[arg-type]
        with pytest.raises(InvalidParameter):
            RedisStore(client, failure_ttl=grace)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter):
        RedisStore.from_url("http://example.com")
    with pytest.raises(InvalidParameter):
        RedisStore.from_url(b"redis://x")  # type: ignore[arg-type]
    for timeout in (-1, 0, 3600.5, float("nan"), float("inf"), "5", True):
        with pytest.raises(InvalidParameter, match="socket_timeout"):
            RedisStore.from_url("redis://127.0.0.1:1/0", socket_timeout=timeout)  # type: ignore[arg-type]
    RedisStore.from_url("redis://127.0.0.1:1/0", socket_timeout=3600).close()
    store = RedisStore(client, prefix=redis_prefix)
    with pytest.raises(InvalidParameter):
        store.claim("x", 2**63, drift=0)
    with pytest.raises(InvalidParameter):
        store.claim("x", -1, drift=0)
    with pytest.raises(InvalidParameter):
        store.get("")
    with pytest.raises(InvalidParameter):
        store.admit_attempt("alice", float("nan"), NO_DELAY)
    with pytest.raises(InvalidParameter):
        store.add(attrs.evolve(_credential(), status=CredentialState.EXPIRED))
    for grace in (0, -1, float("nan"), "1"):
        with pytest.raises(InvalidParameter):
            RedisStore(client, challenge_grace=grace)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter):
        store.consume_recovery_code("alice", "rc", float("inf"))
    with pytest.raises(InvalidParameter):
        store.consume_recovery_code("alice", "", T0)
    with pytest.raises(InvalidParameter):
        store.replace_recovery_codes("alice", "not records")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter):
        store.update_recovery_hash("alice", "rc", "$2b$10$bcrypt")
    with pytest.raises(InvalidParameter):
        store.put_challenge("challenge")  # type: ignore[arg-type]
    challenge = _challenge()
    with pytest.raises(InvalidParameter):
        store.update_challenge(challenge, expected=_challenge())
    with pytest.raises(InvalidParameter):
        store.replace_challenge(challenge, expected_generation=-1)


def test_bad_arguments_of_the_attempt_operations(store: RedisStore) -> None:
    for call in (
        lambda: store.admit_attempt("alice", T0, None),  # type: ignore[arg-type]
        lambda: store.admit_attempt("alice", -1.0, NO_DELAY),
        lambda: store.admit_attempt("alice", float("inf"), NO_DELAY),
        lambda: store.admit_attempt("", T0, NO_DELAY),
        lambda: store.begin_attempt("", T0, NO_DELAY),
        lambda: store.begin_attempt("alice", "now", NO_DELAY),  # type: ignore[arg-type]
        lambda: store.begin_attempt("alice", T0, object()),  # type: ignore[arg-type]
        lambda: store.claim_and_reset("c", 2**63, drift=0, user_id="alice"),
        lambda: store.claim_and_reset("c", 1, drift=2**63, user_id="alice"),
        lambda: store.claim_and_reset("c", 1, drift=0, user_id=""),
        lambda: store.claim_and_reset("", 1, drift=0, user_id="alice"),
    ):
        with pytest.raises(InvalidParameter):
            call()


def test_a_key_of_the_wrong_type_is_a_store_error(
    store: RedisStore, client: Any, redis_prefix: str
) -> None:
    client.set(f"{redis_prefix}cred:squatter", "not a hash")
    with pytest.raises(StoreError) as caught:
        store.claim("squatter", 1, drift=0)
    assert not isinstance(caught.value, StoreUnavailable)
    with pytest.raises(StoreError):
        store.get("squatter")
    client.set(f"{redis_prefix}fail:alice", "not a hash")
    with pytest.raises(StoreError):
        store.admit_attempt("alice", T0, NO_DELAY)
    with pytest.raises(StoreError):
        store.begin_attempt("alice", T0, NO_DELAY)
    with pytest.raises(StoreError):
        store.claim_and_reset("squatter", 1, drift=0, user_id="bob")


def test_damaged_recovery_codes_and_challenges_are_store_errors(
    store: RedisStore, client: Any, redis_prefix: str
) -> None:
    [record] = _records(1)
    store.replace_recovery_codes("alice", [record])
    client.hset(f"{redis_prefix}rc:alice", record.id, "no position")
    with pytest.raises(StoreError, match="cannot read"):
        store.recovery_codes("alice")
    with pytest.raises(StoreError) as caught:
        store.update_recovery_hash("alice", record.id, PHC)
    assert not isinstance(caught.value, StoreUnavailable)
    client.set(f"{redis_prefix}rc:bob", "not a hash")
    with pytest.raises(StoreError):
        store.consume_recovery_code("bob", record.id, T0)
    challenge = _challenge()
    store.put_challenge(challenge)
    key = f"{redis_prefix}oob:{challenge.challenge_id}"
    client.hset(key, "used", "2")
    with pytest.raises(StoreError, match="cannot read"):
        store.get_challenge(challenge.challenge_id)
    client.hset(key, mapping={"used": "0", "expires_at": repr(T0 + 3600)})  # beyond 600 s
    with pytest.raises(StoreError, match="cannot read"):
        store.get_challenge(challenge.challenge_id)
    client.set(key, "not a hash")
    with pytest.raises(StoreError):
        store.update_challenge(attrs.evolve(challenge, used=True), expected=challenge)


def test_a_damaged_hash_is_a_store_error(store: RedisStore, client: Any, redis_prefix: str) -> None:
    credential = _credential()
    store.add(credential)
    client.hset(f"{redis_prefix}cred:{credential.id}", "kind", "push")
    with pytest.raises(StoreError, match="cannot read"):
        store.get(credential.id)
    client.hdel(f"{redis_prefix}cred:{credential.id}", "kind")
    with pytest.raises(StoreError, match="cannot read"):
        store.list_for_user("alice")


def test_no_server_is_store_unavailable() -> None:
    store = RedisStore.from_url("redis://127.0.0.1:1/0", socket_timeout=1.0)
    challenge = _challenge()
    started = time.monotonic()
    for call in (
        lambda: store.claim("c", 1, drift=0),
        lambda: store.admit_attempt("alice", T0, NO_DELAY),
        lambda: store.begin_attempt("alice", T0, NO_DELAY),
        lambda: store.claim_and_reset("c", 1, drift=0, user_id="alice"),
        lambda: store.get("c"),
        lambda: store.add(_credential()),
        lambda: store.consume_recovery_code("alice", "rc", T0),
        lambda: store.replace_recovery_codes("alice", []),
        lambda: store.update_challenge(challenge, expected=challenge),
    ):
        with pytest.raises(StoreUnavailable) as caught:
            call()
        assert caught.value.code.value == "store_unavailable"
    assert time.monotonic() - started < 10
    store.close()


def test_import_without_redis_py_raises_missing_dependency() -> None:
    program = (
        "import sys\n"
        "sys.modules['redis'] = None\n"
        "from mfa_core.errors import MissingDependency\n"
        "import mfa_core, mfa_core.stores\n"
        "try:\n"
        "    import mfa_core.stores.redis\n"
        "except MissingDependency as exc:\n"
        "    print(exc.code.value, exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == (
        "missing_dependency the Redis store needs redis-py: pip install 'mfa_core[redis]'"
    )


# -- 8 processes, 200 rounds -------------------------------------------------------------

ROUNDS = 200
PROCESSES = 8


@pytest.fixture(scope="module")
def crew(redis_url: str) -> Iterator[tuple[Crew, RedisStore]]:
    """8 worker processes (started once for this module) on one prefix, and a store of
    this process on the same prefix to set up and check."""
    prefix = unique("mfa-test:") + ":"
    client = redis_client(redis_url)
    try:
        with Crew(("redis", redis_url, prefix), PROCESSES) as workers:
            yield workers, RedisStore(client, prefix=prefix)
    finally:
        delete_prefix(client, prefix)
        client.close()


def test_eight_processes_claim_the_same_value_exactly_once(
    crew: tuple[Crew, RedisStore],
) -> None:
    workers, store = crew
    credential = _credential()
    store.add(credential)
    for round_ in range(ROUNDS):
        results = workers.run(("claim", credential.id, 1000 + round_, 0))
        assert results.count(True) == 1, f"round {round_}: {results}"
    # the same value again: nobody wins
    assert workers.run(("claim", credential.id, 1000 + ROUNDS - 1, 0)).count(True) == 0
    got = store.get(credential.id)
    assert got is not None
    assert got.last_accepted == 1000 + ROUNDS - 1


def test_eight_processes_submit_the_same_totp_code_exactly_one_succeeds(
    crew: tuple[Crew, RedisStore],
) -> None:
    workers, store = crew
    same_code_from_every_worker(workers, store, ROUNDS)


def test_eight_processes_consume_the_same_recovery_code_exactly_once(
    crew: tuple[Crew, RedisStore],
) -> None:
    workers, store = crew
    same_recovery_record_from_every_worker(workers, store, ROUNDS)


def test_eight_processes_submit_the_same_recovery_code_exactly_one_succeeds(
    crew: tuple[Crew, RedisStore],
) -> None:
    workers, store = crew
    same_recovery_code_from_every_worker(workers, store, ROUNDS)


def test_burst_of_attempts_from_eight_processes_admits_exactly_the_limit(
    crew: tuple[Crew, RedisStore],
) -> None:
    workers, store = crew
    user = unique("burst-")
    per_process = 25  # 200 attempts at once against a limit of 100
    limits = ThrottleConfig(max_failures=100, base_delay=0, max_delay=0, lockout=900)
    results = workers.run(("admit", user, per_process, T0, limits))
    admitted = sorted(count for result in results for ok, count in result if ok)
    # every admission counted its own attempt: 1..100, then all refused at the lock
    assert admitted == list(range(1, 101))
    refused = [count for result in results for ok, count in result if not ok]
    assert len(refused) == 100 and set(refused) == {100}
    assert store.get_failures(user) == FailureState(100, T0)
    again = workers.run(("admit", user, 5, T0 + 899, limits))
    assert not any(ok for result in again for ok, _ in result)
    after = workers.run(("admit", user, 5, T0 + 900, limits))  # the lock ran out: one more
    assert sorted(ok for result in after for ok, _ in result).count(True) == 1
    assert store.get_failures(user) == FailureState(101, T0 + 900)


# -- faults, for real ---------------------------------------------------------------------


def _kill_clients(admin: Any, name: str) -> int:
    ids = [c["id"] for c in admin.client_list() if c.get("name") == name]
    for client_id in ids:
        admin.client_kill_filter(_id=client_id)
    return len(ids)


def test_connection_killed_between_operations(redis_url: str, redis_prefix: str) -> None:
    name = unique("mfa-kill-")
    client = redis_client(redis_url, client_name=name)
    admin = redis_client(redis_url)
    try:
        store = RedisStore(client, prefix=redis_prefix)
        credential = _credential()
        store.add(credential)
        assert store.claim(credential.id, 10, drift=0)
        store.admit_attempt("alice", T0, NO_DELAY)
        for value in (11, 12, 13):
            assert _kill_clients(admin, name) >= 1
            # The pool notices the dead connection before sending (or the send fails and
            # the call is refused): never a wrong answer, and the next call works.
            try:
                outcome: object = store.claim(credential.id, value, drift=0)
            except StoreUnavailable:
                outcome = "refused"
                assert store.claim(credential.id, value, drift=0)
            assert outcome in (True, "refused")
            assert not store.claim(credential.id, value, drift=0)
        got = store.get(credential.id)
        assert got is not None and got.last_accepted == 13
        assert store.get_failures("alice").count == 1
    finally:
        client.close()
        admin.close()


def _paused_call(
    server_url: str, store: RedisStore, name: str, call: Any
) -> BaseException | object:
    """Run ``call`` while the private server holds writes (CLIENT PAUSE), kill the store's
    connection while the command is in flight, then unpause. Returns the outcome."""
    admin = redis_client(server_url)
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:
            outcome.append(exc)

    try:
        admin.execute_command("CLIENT", "PAUSE", 10_000, "WRITE")
        worker = threading.Thread(target=run)
        worker.start()
        deadline = time.monotonic() + 5
        # wait until the server holds our script (the client shows up as paused/blocked)
        while not any(
            c.get("name") == name and c.get("cmd") in ("evalsha", "eval")
            for c in admin.client_list()
        ):
            assert time.monotonic() < deadline, "the store's command never reached the server"
            time.sleep(0.01)
        assert _kill_clients(admin, name) == 1
        worker.join(10)
        assert not worker.is_alive()
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
        admin.close()
    return outcome[0]


def test_connection_killed_while_a_command_is_in_flight(private_redis: Any) -> None:
    name = unique("mfa-inflight-")
    client = redis_client(private_redis.url, client_name=name)
    try:
        store = RedisStore(client, prefix="p:")
        credential = _credential()
        store.add(credential)
        assert store.claim(credential.id, 10, drift=0)
        store.admit_attempt("alice", T0, NO_DELAY)

        outcome = _paused_call(
            private_redis.url, store, name, lambda: store.claim(credential.id, 11, drift=0)
        )
        assert isinstance(outcome, StoreUnavailable), outcome
        got = store.get(credential.id)  # the next call works, on a fresh connection
        assert got is not None and got.last_accepted == 10  # nothing was accepted

        outcome = _paused_call(
            private_redis.url, store, name, lambda: store.admit_attempt("alice", T0 + 1, NO_DELAY)
        )
        assert isinstance(outcome, StoreUnavailable), outcome
        assert store.get_failures("alice") == FailureState(1, T0)  # not counted twice

        assert store.claim(credential.id, 11, drift=0)
        assert store.admit_attempt("alice", T0 + 2, NO_DELAY).state.count == 2
    finally:
        client.close()


def test_server_crash_and_restart(private_redis: Any) -> None:
    store = RedisStore.from_url(private_redis.url, prefix="p:", socket_timeout=2.0)
    try:
        credential = _credential()
        store.add(credential)
        assert store.claim(credential.id, 5, drift=1)
        store.admit_attempt("alice", T0, NO_DELAY)
        private_redis.kill()
        for call in (
            lambda: store.claim(credential.id, 6, drift=0),
            lambda: store.admit_attempt("alice", T0 + 1, NO_DELAY),
            lambda: store.get(credential.id),
            lambda: store.update(credential, expected_version=0),
        ):
            with pytest.raises(StoreUnavailable):
                call()
        private_redis.start()
        got = store.get(credential.id)  # acknowledged writes survived (AOF, fsync always)
        assert got is not None and (got.last_accepted, got.drift) == (5, 1)
        assert store.get_failures("alice") == FailureState(1, T0)
        assert not store.claim(credential.id, 5, drift=0)  # still no replay
        assert store.claim(credential.id, 6, drift=0)
        assert store.admit_attempt("alice", T0 + 2, NO_DELAY).state.count == 2
    finally:
        store.close()


def test_server_crash_and_restart_with_recovery_codes_and_challenges(
    private_redis: Any,
) -> None:
    store = RedisStore.from_url(private_redis.url, prefix="p:", socket_timeout=2.0)
    try:
        records = _records(3)
        store.replace_recovery_codes("alice", records)
        assert store.consume_recovery_code("alice", records[0].id, T0) == 2
        challenge = _challenge()
        store.put_challenge(challenge)
        private_redis.kill()
        for call in (
            lambda: store.consume_recovery_code("alice", records[1].id, T0 + 1),
            lambda: store.replace_recovery_codes("alice", _records(2)),
            lambda: store.update_challenge(attrs.evolve(challenge, used=True), expected=challenge),
            lambda: store.get_challenge(challenge.challenge_id),
        ):
            with pytest.raises(StoreUnavailable):
                call()
        private_redis.start()
        # nothing half-written: the old set is intact, one code used; the challenge unused
        assert [r.used for r in store.recovery_codes("alice")] == [True, False, False]
        assert store.consume_recovery_code("alice", records[0].id, T0 + 2) is None
        assert store.consume_recovery_code("alice", records[1].id, T0 + 2) == 1
        assert store.get_challenge(challenge.challenge_id) == challenge
        assert store.update_challenge(attrs.evolve(challenge, used=True), expected=challenge)
    finally:
        store.close()


def test_cleanup_helper_deletes_only_its_prefix(client: Any, redis_prefix: str) -> None:
    client.set(f"{redis_prefix}a:1", 1)
    client.set(f"{redis_prefix}a*:2", 1)
    client.set(f"{redis_prefix}b:1", 1)
    delete_prefix(client, f"{redis_prefix}a*")
    assert client.exists(f"{redis_prefix}a:1") == 1
    assert client.exists(f"{redis_prefix}a*:2") == 0
