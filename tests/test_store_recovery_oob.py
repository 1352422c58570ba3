"""Recovery-code and out-of-band challenge storage in the embedded stores.

The shipped contract suites (run for both stores in ``test_store_contract.py``) are shown
to have teeth here: deliberately broken stores fail them. Then store-specific rules: the
schema migrations that add the tables, reading back rows a store cannot trust, the purge
helper, the send counters (arguments, purge, SQLite's pre-3.35 path), and 4 processes
consuming the same recovery code, or counting sends, on one SQLite file.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from test_store_concurrency import _run_processes

import mfa_core.stores.sqlite as sqlite_module
from mfa_core.errors import InvalidParameter, StoreError
from mfa_core.oob import OOBChannel, OOBConfig, OOBPurpose, OOBRecord, issue
from mfa_core.ports import OOBChallengeStore, RecoveryCodeStore
from mfa_core.recovery import Argon2Params, RecoveryConfig, RecoveryRecord, generate_recovery_codes
from mfa_core.stores import MemoryStore, SQLiteStore
from mfa_core.testing import OOBChallengeStoreContract, RecoveryCodeStoreContract
from mfa_core.throttle import ThrottleConfig

T0 = 1_800_000_000.0
TAG_KEY = b"t" * 32
FAST = RecoveryConfig(argon2=Argon2Params.fast_for_testing())
PROCESSES = 4
PROCESS_ROUNDS = 20
TIMEOUT = 60.0


def _records(user: str = "alice", count: int = 10) -> tuple[RecoveryRecord, ...]:
    config = attrs.evolve(FAST, count=count)
    return generate_recovery_codes(user, TAG_KEY, config).records


def _challenge(user: str = "alice", challenge_id: str | None = None, now: float = T0) -> OOBRecord:
    return issue(
        user_id=user,
        purpose=OOBPurpose.STEP_UP,
        channel=OOBChannel.EMAIL,
        destination="alice@example.com",
        now=now,
        key=b"k" * 32,
        config=OOBConfig(ttl=120),
        challenge_id=challenge_id,
    ).record


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    made: Any = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "s.db")
    yield made
    if isinstance(made, SQLiteStore):
        made.close()


# -- the contract suites have teeth -------------------------------------------------------------


class _ReadThenWriteConsume(MemoryStore):
    """Consumption as read, then write, in Python: the race the port forbids."""

    def consume_recovery_code(self, user_id: str, record_id: str, now: float) -> int | None:
        codes = {r.id: r for r in self.recovery_codes(user_id)}
        record = codes.get(record_id)
        if record is None or record.used:
            return None
        time.sleep(0.002)  # widen the window between the read and the write
        codes[record_id] = attrs.evolve(record, used_at=now)
        self._recovery[user_id] = codes
        return sum(1 for r in codes.values() if not r.used)


class _AppendingReplace(MemoryStore):
    """A "replacement" that keeps the old codes (the bug that leaves old codes working)."""

    def replace_recovery_codes(self, user_id: str, records: Any) -> None:
        old = list(self.recovery_codes(user_id))
        super().replace_recovery_codes(user_id, [*old, *records])


class _AttemptsBlindUpdate(MemoryStore):
    """An attempt update that compares only the generation (concurrent attempts get lost)."""

    def update_challenge(self, record: OOBRecord, *, expected: OOBRecord) -> bool:
        stored = self.get_challenge(record.challenge_id)
        if stored is None or stored.generation != expected.generation:
            return False
        time.sleep(0.002)
        self._challenges[record.challenge_id] = record
        return True


class _UnconditionalReplace(MemoryStore):
    """A resend that ignores the expected generation (every concurrent resend "wins")."""

    def replace_challenge(self, record: OOBRecord, *, expected_generation: int) -> bool:
        if self.get_challenge(record.challenge_id) is None:
            return False
        time.sleep(0.002)
        self._challenges[record.challenge_id] = record
        return True


class _ReadThenWriteCount(MemoryStore):
    """A send counter read, then written, in Python: concurrent sends get lost."""

    def count_send(self, key: str, window_start: float, expires_at: float) -> int:
        current = self._sends.get((key, window_start), (0, expires_at))[0]
        time.sleep(0.002)
        self._sends[(key, window_start)] = (current + 1, expires_at)
        return current + 1


class _GlobalCount(MemoryStore):
    """A send counter that ignores the key and window (one counter for everything)."""

    def count_send(self, key: str, window_start: float, expires_at: float) -> int:
        return super().count_send("all", 0.0, 1.0)


def _run_contract_test(contract: type[Any], store: Any, name: str) -> None:
    class Probe(contract):  # type: ignore[misc]
        code_race_threads = 8
        race_rounds = 3

        def make_store(self) -> Any:
            return store

    probe = Probe()
    try:
        getattr(probe, name)()
    finally:
        probe.teardown_method(None)


@pytest.mark.parametrize(
    ("broken", "contract", "test"),
    [
        (
            _ReadThenWriteConsume,
            RecoveryCodeStoreContract,
            "test_recovery_codes_race_for_one_code_has_exactly_one_winner",
        ),
        (
            _AppendingReplace,
            RecoveryCodeStoreContract,
            "test_recovery_codes_replace_kills_the_old_set",
        ),
        (
            _AttemptsBlindUpdate,
            OOBChallengeStoreContract,
            "test_challenges_update_is_a_compare_and_set",
        ),
        (
            _AttemptsBlindUpdate,
            OOBChallengeStoreContract,
            "test_challenges_race_to_use_a_code_has_exactly_one_winner",
        ),
        (
            _UnconditionalReplace,
            OOBChallengeStoreContract,
            "test_challenges_race_to_resend_has_exactly_one_winner",
        ),
        (
            _UnconditionalReplace,
            OOBChallengeStoreContract,
            "test_challenges_replace_is_a_compare_and_set_on_generation",
        ),
        (
            _ReadThenWriteCount,
            OOBChallengeStoreContract,
            "test_send_count_race_gives_distinct_counts",
        ),
        (
            _GlobalCount,
            OOBChallengeStoreContract,
            "test_send_counters_are_per_key_and_window",
        ),
    ],
)
def test_contract_suites_catch_a_broken_store(
    broken: type[MemoryStore], contract: type[Any], test: str
) -> None:
    with pytest.raises(AssertionError):
        _run_contract_test(contract, broken(), test)
    # ...while the same test passes on the correct store.
    _run_contract_test(contract, MemoryStore(), test)


# -- both stores ---------------------------------------------------------------------------------


def test_stores_satisfy_the_new_ports(store: Any) -> None:
    assert isinstance(store, RecoveryCodeStore) and isinstance(store, OOBChallengeStore)


def test_purge_removes_only_challenges_expired_before_the_limit(store: Any) -> None:
    old = _challenge(now=T0)  # expires T0 + 120
    new = _challenge(now=T0 + 100)  # expires T0 + 220
    store.put_challenge(old)
    store.put_challenge(new)
    assert store.purge_challenges(T0 + 120) == 0  # expiry is exclusive: not yet "before"
    assert store.purge_challenges(T0 + 120.5) == 1
    assert store.get_challenge(old.challenge_id) is None
    assert store.get_challenge(new.challenge_id) is not None
    with pytest.raises(InvalidParameter):
        store.purge_challenges(float("nan"))


def test_purge_also_forgets_expired_send_counters(store: Any) -> None:
    for _ in range(3):
        store.count_send("u:alice", T0, T0 + 3600)
    store.count_send("u:alice", T0 + 3600, T0 + 7200)
    assert store.purge_challenges(T0 + 3600) == 0  # the window ends at T0 + 3600: kept
    assert store.count_send("u:alice", T0, T0 + 3600) == 4
    assert store.purge_challenges(T0 + 3600.5) == 0
    assert store.count_send("u:alice", T0, T0 + 3600) == 1  # forgotten, so counting restarts
    assert store.count_send("u:alice", T0 + 3600, T0 + 7200) == 2  # the later window is kept


@pytest.mark.parametrize(
    ("key", "window_start", "expires_at"),
    [
        ("u:\x00", T0, T0 + 60),
        ("u:\udc80", T0, T0 + 60),
        ("u:alice", float("nan"), T0 + 60),
        ("u:alice", -1.0, T0 + 60),
        ("u:alice", T0, float("inf")),
        ("u:alice", T0, T0),
        ("u:alice", T0 + 60, T0),
        ("u:alice", "T0", T0 + 60),
        ("u:alice", T0, None),
        ("u:alice", True, T0 + 60),
    ],
)
def test_count_send_refuses_bad_arguments(
    store: Any, key: Any, window_start: Any, expires_at: Any
) -> None:
    with pytest.raises(InvalidParameter):
        store.count_send(key, window_start, expires_at)
    assert store.count_send("u:alice", T0, T0 + 60) == 1  # nothing was counted


def test_memory_store_sweeps_expired_send_counters() -> None:
    store = MemoryStore()
    for i in range(1023):
        store.count_send(f"u:{i}", T0, T0 + 60)
    assert store.count_send("u:late", T0 + 120, T0 + 180) == 1
    assert len(store._sends) == 1024
    # 1024 held: this call sweeps the counters that ended before its window started
    assert store.count_send("u:late", T0 + 120, T0 + 180) == 2
    assert len(store._sends) == 1
    # a sweep that frees nothing doubles the threshold (amortised: no sweep per call)
    for i in range(1100):
        store.count_send(f"u:now-{i}", T0 + 120, T0 + 180)
    assert len(store._sends) == 1101 and store._sweep_at == 2048


def test_repr_shows_no_codes_or_hashes(store: Any) -> None:
    generated = generate_recovery_codes("alice", TAG_KEY, FAST)
    store.replace_recovery_codes("alice", generated.records)
    record = _challenge()
    store.put_challenge(record)
    text = repr(store)
    assert all(code not in text for code in generated.codes)
    assert all(r.phc not in text and r.tag not in text for r in generated.records)
    assert record.challenge_id not in text


def test_bad_arguments_change_nothing(store: Any) -> None:
    records = _records()
    store.replace_recovery_codes("alice", records)
    for bad_records in ("codes", [object()], None):
        with pytest.raises(InvalidParameter):
            store.replace_recovery_codes("alice", bad_records)
    with pytest.raises(InvalidParameter):
        store.consume_recovery_code("alice", "", T0)
    with pytest.raises(InvalidParameter):
        store.consume_recovery_code("alice", records[0].id, -1.0)
    with pytest.raises(InvalidParameter):
        store.update_recovery_hash("alice", records[0].id, "$argon2id$" + "x" * 600)
    assert [r.id for r in store.recovery_codes("alice")] == [r.id for r in records]
    record = _challenge()
    store.put_challenge(record)
    with pytest.raises(InvalidParameter):
        store.put_challenge("challenge")
    with pytest.raises(InvalidParameter):
        store.replace_challenge(record, expected_generation=-1)
    with pytest.raises(InvalidParameter):
        store.replace_challenge(record, expected_generation=True)
    with pytest.raises(InvalidParameter):
        store.get_challenge(None)
    with pytest.raises(InvalidParameter):
        store.update_challenge(_challenge(), expected=record)  # another challenge
    with pytest.raises(InvalidParameter):
        store.replace_recovery_codes("alice", [records[0], records[0]])  # duplicate ids


def test_recovery_codes_keep_their_order(store: Any) -> None:
    records = _records(count=12)
    store.replace_recovery_codes("alice", records)
    assert [r.id for r in store.recovery_codes("alice")] == [r.id for r in records]


# -- SQLite specifics --------------------------------------------------------------------------


def test_sqlite_schema_v1_file_gains_the_new_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.sqlite3"
    with monkeypatch.context() as patch:
        patch.setattr(sqlite_module, "MIGRATIONS", sqlite_module.MIGRATIONS[:1])
        patch.setattr(sqlite_module, "SCHEMA_VERSION", 1)
        with SQLiteStore(path) as old:
            assert old.schema_version() == 1
            old.admit_attempt("alice", T0, ThrottleConfig())
    with SQLiteStore(path) as store:
        assert store.schema_version() == sqlite_module.SCHEMA_VERSION >= 3
        assert store.get_failures("alice").count == 1  # data of version 1 kept
        store.replace_recovery_codes("alice", _records(count=2))
        store.put_challenge(_challenge())
        assert store.count_send("u:alice", T0, T0 + 3600) == 1
    raw = sqlite3.connect(path)
    try:
        tables = {row[0] for row in raw.execute("SELECT name FROM sqlite_master")}
        descriptions = [row[0] for row in raw.execute("SELECT description FROM mfa_schema_version")]
    finally:
        raw.close()
    assert {"mfa_recovery_codes", "mfa_oob_challenges", "mfa_send_counters"} <= tables
    assert descriptions[1:3] == [
        "recovery codes and out-of-band challenges",
        "out-of-band send counters",
    ]


def test_sqlite_schema_v2_file_gains_the_send_counters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "v2.sqlite3"
    challenge = _challenge()
    with monkeypatch.context() as patch:
        patch.setattr(sqlite_module, "MIGRATIONS", sqlite_module.MIGRATIONS[:2])
        patch.setattr(sqlite_module, "SCHEMA_VERSION", 2)
        with SQLiteStore(path) as old:
            old.put_challenge(challenge)
            with pytest.raises(StoreError):  # no table yet
                old.count_send("u:alice", T0, T0 + 3600)
    with SQLiteStore(path) as store:
        assert store.schema_version() == sqlite_module.SCHEMA_VERSION >= 3
        assert store.get_challenge(challenge.challenge_id) == challenge
        assert [store.count_send("u:alice", T0, T0 + 3600) for _ in range(3)] == [1, 2, 3]
    with SQLiteStore(path) as store:  # and the counts survive reopening
        assert store.count_send("u:alice", T0, T0 + 3600) == 4


class TestSQLiteSendCountersWithoutReturning(OOBChallengeStoreContract):
    """``count_send`` on SQLite older than 3.35: the BEGIN IMMEDIATE fallback."""

    @pytest.fixture(autouse=True)
    def _no_returning(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(sqlite_module, "_HAS_RETURNING", False)
        self.directory = tmp_path

    def make_store(self) -> SQLiteStore:
        return SQLiteStore(self.directory / "fallback.sqlite3")


def test_sqlite_data_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "reopen.sqlite3"
    records = _records(count=3)
    challenge = _challenge()
    with SQLiteStore(path) as store:
        store.replace_recovery_codes("alice", records)
        assert store.consume_recovery_code("alice", records[0].id, T0 + 0.5) == 2
        store.put_challenge(challenge)
    with SQLiteStore(path) as store:
        stored = list(store.recovery_codes("alice"))
        assert stored == [attrs.evolve(records[0], used_at=T0 + 0.5), *records[1:]]
        again = store.get_challenge(challenge.challenge_id)
        assert again == challenge and again is not None
        assert again.code_hash == challenge.code_hash


@pytest.mark.parametrize(
    ("table", "change"),
    [
        ("mfa_oob_challenges", "purpose = 'party'"),
        ("mfa_oob_challenges", "code_hash = x'00'"),
        ("mfa_oob_challenges", "attempts = 99"),
        ("mfa_recovery_codes", "phc = 'plain'"),
        ("mfa_recovery_codes", "tag = 'XYZ'"),
    ],
)
def test_sqlite_rows_it_cannot_trust_raise_store_error(
    tmp_path: Path, table: str, change: str
) -> None:
    path = tmp_path / "tampered.sqlite3"
    challenge = _challenge()
    with SQLiteStore(path) as store:
        store.replace_recovery_codes("alice", _records(count=1))
        store.put_challenge(challenge)
    raw = sqlite3.connect(path)
    try:
        raw.execute(f"UPDATE {table} SET {change}")  # noqa: S608 - test constants
        raw.commit()
    finally:
        raw.close()
    with SQLiteStore(path) as store, pytest.raises(StoreError):
        if table == "mfa_oob_challenges":
            store.get_challenge(challenge.challenge_id)
        else:
            store.recovery_codes("alice")


# -- 4 processes, one recovery code, one SQLite file --------------------------------------------


def _consume_in_process(
    path: str, index: int, ids: list[str], barrier: Any, results: Any
) -> None:  # pragma: no cover - runs in a child process
    store = SQLiteStore(path, timeout=30)
    try:
        for round_, record_id in enumerate(ids):
            barrier.wait(TIMEOUT)
            left = store.consume_recovery_code("alice", record_id, T0 + round_)
            results.put((round_, index, left))
            barrier.wait(TIMEOUT)
    except BaseException as exc:
        results.put(("error", index, repr(exc)))
        barrier.abort()
    finally:
        store.close()


def test_4_processes_consume_one_code_exactly_once_every_round(tmp_path: Path) -> None:
    path = tmp_path / "processes.sqlite3"
    records = _records(count=PROCESS_ROUNDS + 1)
    with SQLiteStore(path) as store:
        store.replace_recovery_codes("alice", records)
    ids = [record.id for record in records[:PROCESS_ROUNDS]]
    messages = _run_processes(
        _consume_in_process, path, ids, PROCESSES * PROCESS_ROUNDS, processes=PROCESSES
    )
    winners: dict[int, list[int]] = {round_: [] for round_ in range(PROCESS_ROUNDS)}
    for round_, _, left in messages:
        if left is not None:
            winners[round_].append(left)
    # Exactly one process won each round, and it saw the exact number of codes left.
    assert winners == {r: [PROCESS_ROUNDS - r] for r in range(PROCESS_ROUNDS)}
    with SQLiteStore(path) as store:
        stored = list(store.recovery_codes("alice"))
    assert [r.used_at for r in stored] == [T0 + r for r in range(PROCESS_ROUNDS)] + [None]


# -- 4 processes, one send counter, one SQLite file ---------------------------------------------


def _count_in_process(
    path: str, index: int, calls: int, barrier: Any, results: Any
) -> None:  # pragma: no cover - runs in a child process
    store = SQLiteStore(path, timeout=30)
    try:
        barrier.wait(TIMEOUT)
        counts = [store.count_send("d:shared", T0, T0 + 3600) for _ in range(calls)]
        results.put((index, counts))
    except BaseException as exc:
        results.put(("error", repr(exc)))
        barrier.abort()
    finally:
        store.close()


def test_4_processes_counting_sends_get_distinct_counts(tmp_path: Path) -> None:
    path = tmp_path / "counters.sqlite3"
    SQLiteStore(path).close()  # create the schema once
    calls = 25
    messages = _run_processes(_count_in_process, path, calls, PROCESSES, processes=PROCESSES)
    counts = [count for _, seen in messages for count in seen]
    assert sorted(counts) == list(range(1, PROCESSES * calls + 1))
