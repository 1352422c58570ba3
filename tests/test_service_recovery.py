"""Recovery codes through MFAService, on both embedded stores (memory and SQLite).

Time comes from a FakeClock and events are recorded. Argon2id runs with the cheapest
parameters (``Argon2Params.fast_for_testing``) except where the parameters themselves are
under test; a spy on the one Argon2id verification proves "no slow hash" rather than
assuming it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mfa_core import b32decode_key, recovery, totp
from mfa_core.errors import InvalidParameter, StoreUnavailable
from mfa_core.models import EventType
from mfa_core.recovery import (
    Argon2Params,
    RecoveryConfig,
    RecoveryReason,
    needs_rehash,
    normalize_recovery_code,
)
from mfa_core.sealing import AESGCMSealer
from mfa_core.service import (
    UNAVAILABLE_MESSAGE,
    MFAService,
    RecoveryVerificationResult,
    ServiceConfig,
    VerificationResult,
    VerifyReason,
)
from mfa_core.stores import MemoryStore, SQLiteStore
from mfa_core.testing import FakeClock, RecordingEventSink
from mfa_core.throttle import ThrottleConfig

T0 = 1_800_000_005.0
SECRET = b"host secret for tests, 32 bytes!"
FAST = Argon2Params.fast_for_testing()
CODE_RE = re.compile(r"[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}")


@attrs.define
class Env:
    service: MFAService
    store: Any
    clock: FakeClock
    events: RecordingEventSink

    def types(self) -> list[EventType]:
        return [e.type for e in self.events.events]

    def failures(self, user: str = "alice") -> int:
        return int(self.store.get_failures(user).count)

    def other_service(self, **settings: Any) -> MFAService:
        """A second service over the same store and clock (e.g. with other parameters)."""
        return MFAService(
            self.store,
            self.store,
            AESGCMSealer.generate(),
            clock=self.clock,
            events=self.events,
            recovery_codes=self.store,
            secret=SECRET,
            config=ServiceConfig(**settings),
        )


@pytest.fixture(params=["memory", "sqlite"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Any]]:
    made: list[Any] = []

    def make() -> Any:
        store: Any = (
            MemoryStore()
            if request.param == "memory"
            else SQLiteStore(tmp_path / f"recovery-{len(made)}.sqlite3")
        )
        made.append(store)
        return store

    yield make
    for store in made:
        close = getattr(store, "close", None)
        if close is not None:
            close()


@pytest.fixture
def make_env(store_factory: Callable[[], Any]) -> Callable[..., Env]:
    def make(
        *,
        recovery: RecoveryConfig | None = None,
        throttle: ThrottleConfig | None = None,
        store: Any = None,
    ) -> Env:
        backing = store_factory()
        port = backing if store is None else store(backing)
        clock = FakeClock(T0)
        events = RecordingEventSink()
        service = MFAService(
            backing,
            backing,
            AESGCMSealer.generate(),
            clock=clock,
            events=events,
            config=ServiceConfig(
                throttle=throttle or ThrottleConfig(),
                recovery=recovery or RecoveryConfig(argon2=FAST),
            ),
            recovery_codes=port,
            secret=SECRET,
        )
        return Env(service, backing, clock, events)

    return make


@pytest.fixture
def env(make_env: Callable[..., Env]) -> Env:
    return make_env()


class SlowHashSpy:
    """Counts Argon2id verifications made by the recovery module."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = recovery._verify

        def spy(canonical: str, phc: str, cap: Any) -> bool:
            self.calls += 1
            return real(canonical, phc, cap)

        monkeypatch.setattr(recovery, "_verify", spy)


@pytest.fixture
def slow_hashes(monkeypatch: pytest.MonkeyPatch) -> SlowHashSpy:
    return SlowHashSpy(monkeypatch)


def wrong_code() -> str:
    return "ZZZZ-ZZZZ-ZZZZ-ZZZZ"


# -- generation ---------------------------------------------------------------------------


@pytest.mark.standard("ASVS-6.5.2", "recovery codes are stored only as Argon2id hashes")
def test_generate_returns_codes_once_and_stores_only_hashes(env: Env) -> None:
    generated = env.service.generate_recovery_codes("alice")
    assert len(generated.codes) == 10 and len(set(generated.codes)) == 10
    assert all(CODE_RE.fullmatch(code) for code in generated.codes)
    stored = env.store.recovery_codes("alice")
    assert {r.id for r in stored} == {r.id for r in generated.records}
    dump = repr(list(stored)) + repr(generated) + str(generated) + repr(env.events.events)
    for code in generated.codes:
        plain = normalize_recovery_code(code)
        assert plain is not None
        assert code not in dump and plain not in dump
        assert all(plain not in r.phc and plain not in r.tag for r in stored)
    assert all(r.phc.startswith("$argon2id$v=19$m=8,t=1,p=1$") for r in stored)
    assert env.types() == [EventType.RECOVERY_CODES_GENERATED]
    assert env.events.events[0].data == {"count": 10, "mode": "codes"}
    assert env.service.recovery_codes_left("alice") == 10


def test_generated_codes_verify_with_argon2_cffi(env: Env) -> None:
    argon2 = pytest.importorskip("argon2")
    generated = env.service.generate_recovery_codes("alice")
    hasher = argon2.PasswordHasher()
    for code, record in zip(generated.codes, generated.records, strict=True):
        assert hasher.verify(record.phc, normalize_recovery_code(code))


def test_regenerating_replaces_the_whole_set(env: Env) -> None:
    first = env.service.generate_recovery_codes("alice")
    assert env.service.verify_recovery_code("alice", first.codes[0]).accepted
    second = env.service.generate_recovery_codes("alice")
    for old in first.codes[1:3]:
        result = env.service.verify_recovery_code("alice", old)
        assert not result.accepted
        assert result.recovery_reason is RecoveryReason.NO_MATCH
        env.clock.advance(120)
    assert env.service.recovery_codes_left("alice") == 10
    assert env.service.verify_recovery_code("alice", second.codes[0]).accepted


def test_recovery_key_mode(make_env: Callable[..., Env]) -> None:
    env = make_env()
    generated = env.service.generate_recovery_codes(
        "alice", config=RecoveryConfig.recovery_key(argon2=FAST)
    )
    [key] = generated.codes
    assert len(key) == 32 + 7 and key.count("-") == 7
    assert env.events.events[-1].data == {"count": 1, "mode": "key"}
    result = env.service.verify_recovery_code("alice", key.lower().replace("-", " "))
    assert result.accepted and result.codes_left == 0
    assert env.service.verify_recovery_code("alice", key).reason is VerifyReason.REPLAYED


def test_generate_rejects_bad_arguments(env: Env) -> None:
    with pytest.raises(InvalidParameter):
        env.service.generate_recovery_codes("")
    with pytest.raises(InvalidParameter):
        env.service.generate_recovery_codes("alice", config="ten")  # type: ignore[arg-type]
    assert env.events.events == []
    assert list(env.store.recovery_codes("alice")) == []


def test_recovery_needs_a_store_and_a_secret(store_factory: Callable[[], Any]) -> None:
    store = store_factory()
    plain = MFAService(store, store, AESGCMSealer.generate())
    with pytest.raises(InvalidParameter):
        plain.generate_recovery_codes("alice")
    with pytest.raises(InvalidParameter):
        plain.verify_recovery_code("alice", wrong_code())
    with pytest.raises(InvalidParameter):
        MFAService(store, store, AESGCMSealer.generate(), recovery_codes=store)
    with pytest.raises(InvalidParameter):
        MFAService(store, store, AESGCMSealer.generate(), recovery_codes=object(), secret=SECRET)  # type: ignore[arg-type]


# -- verification ---------------------------------------------------------------------------


@pytest.mark.standard("ASVS-6.5.1", "a recovery code works once")
def test_a_code_works_once(env: Env) -> None:
    generated = env.service.generate_recovery_codes("alice")
    result = env.service.verify_recovery_code("alice", generated.codes[3])
    assert isinstance(result, VerificationResult) and isinstance(result, RecoveryVerificationResult)
    assert result.accepted and result.reason is VerifyReason.OK
    assert result.recovery_reason is RecoveryReason.OK
    assert result.codes_left == 9 and not result.running_low and not result.regenerate_recommended
    used = env.events.of_type(EventType.RECOVERY_CODE_USED)
    assert [e.data["codes_left"] for e in used] == [9]
    assert env.service.recovery_codes_left("alice") == 9

    env.clock.advance(5)
    again = env.service.verify_recovery_code("alice", generated.codes[3])
    assert not again.accepted and again.reason is VerifyReason.REPLAYED
    assert again.recovery_reason is RecoveryReason.ALREADY_USED
    assert again.user_message == recovery.USER_MESSAGE
    assert env.failures() == 1
    [failed] = env.events.of_type(EventType.RECOVERY_CODE_FAILED)
    assert failed.reason == VerifyReason.REPLAYED.value
    assert failed.data["detail"] == RecoveryReason.ALREADY_USED.value
    assert failed.data["failures"] == 1


def test_input_is_normalised(env: Env) -> None:
    generated = env.service.generate_recovery_codes("alice")
    code = generated.codes[0]
    sloppy = " " + code.lower().replace("-", "  ").replace("0", "o").replace("1", "l") + "\t"
    assert env.service.verify_recovery_code("alice", sloppy).accepted


def test_wrong_and_malformed_guesses_cost_no_slow_hash(env: Env, slow_hashes: SlowHashSpy) -> None:
    env.service.generate_recovery_codes("alice")
    wrong = env.service.verify_recovery_code("alice", wrong_code())
    assert wrong.reason is VerifyReason.INVALID_CODE
    assert wrong.recovery_reason is RecoveryReason.NO_MATCH
    env.clock.advance(60)
    malformed = env.service.verify_recovery_code("alice", "not a code!")
    assert malformed.reason is VerifyReason.MALFORMED
    assert malformed.recovery_reason is RecoveryReason.MALFORMED
    assert slow_hashes.calls == 0
    assert env.failures() == 2
    assert wrong.user_message == malformed.user_message == recovery.USER_MESSAGE


def test_a_right_code_costs_one_slow_hash_however_many_are_left(
    make_env: Callable[..., Env], slow_hashes: SlowHashSpy
) -> None:
    env = make_env(recovery=RecoveryConfig(count=50, argon2=FAST))
    generated = env.service.generate_recovery_codes("alice")
    assert env.service.verify_recovery_code("alice", generated.codes[-1]).accepted
    assert slow_hashes.calls == 1


def test_user_without_codes_is_refused_and_the_attempt_counted(env: Env) -> None:
    # Admitted (and counted) before the records are read: no attempt is ever free.
    result = env.service.verify_recovery_code("alice", wrong_code())
    assert result.reason is VerifyReason.NO_CREDENTIAL and not result.accepted
    assert env.failures() == 1


def test_codes_of_one_user_do_not_work_for_another(env: Env) -> None:
    alice = env.service.generate_recovery_codes("alice")
    env.service.generate_recovery_codes("bob")
    result = env.service.verify_recovery_code("bob", alice.codes[0])
    assert result.recovery_reason is RecoveryReason.NO_MATCH
    assert env.service.recovery_codes_left("alice") == 10


@pytest.mark.parametrize(("threshold", "count"), [(3, 5), (1, 3)])
def test_running_low_fires_at_the_threshold(
    make_env: Callable[..., Env], threshold: int, count: int
) -> None:
    env = make_env(recovery=RecoveryConfig(count=count, low_threshold=threshold, argon2=FAST))
    generated = env.service.generate_recovery_codes("alice")
    lows: list[int] = []
    for used, code in enumerate(generated.codes, start=1):
        result = env.service.verify_recovery_code("alice", code)
        left = count - used
        assert result.accepted and result.codes_left == left
        assert result.running_low == (left <= threshold)
        assert result.regenerate_recommended == (left <= threshold)
        if result.running_low:
            lows.append(left)
    low_events = env.events.of_type(EventType.RECOVERY_CODES_LOW)
    assert [e.data["codes_left"] for e in low_events] == lows
    assert lows == list(range(threshold, -1, -1))
    assert all(e.data["threshold"] == threshold for e in low_events)


def test_outdated_parameters_rehash_the_matched_code(make_env: Callable[..., Env]) -> None:
    env = make_env()
    generated = env.service.generate_recovery_codes("alice")
    stronger = Argon2Params(memory_kib=16, iterations=2, lanes=1, salt_bytes=16, hash_bytes=32)
    upgraded = env.other_service(recovery=RecoveryConfig(argon2=stronger))
    result = upgraded.verify_recovery_code("alice", generated.codes[2])
    assert result.accepted and result.regenerate_recommended and not result.running_low
    stored = {r.id: r for r in env.store.recovery_codes("alice")}
    matched = stored[generated.records[2].id]
    assert not needs_rehash(matched.phc, stronger) and matched.used_at == T0
    assert needs_rehash(stored[generated.records[3].id].phc, stronger)
    used = env.events.of_type(EventType.RECOVERY_CODE_USED)[-1]
    assert used.data["rehash_due"] is True and used.data["rehashed"] is True
    # The re-hashed record still knows its code: reuse is reported as a replay.
    again = upgraded.verify_recovery_code("alice", generated.codes[2])
    assert again.recovery_reason is RecoveryReason.ALREADY_USED
    # Codes hashed with the current parameters need nothing.
    env.clock.advance(5)  # past the throttle delay of that failure
    fresh = upgraded.generate_recovery_codes("alice")
    done = upgraded.verify_recovery_code("alice", fresh.codes[0])
    assert done.accepted and not done.regenerate_recommended


# -- throttling shared with OTP -------------------------------------------------------------


def test_otp_failures_lock_out_recovery_codes_without_hashing(
    make_env: Callable[..., Env], slow_hashes: SlowHashSpy
) -> None:
    env = make_env(throttle=ThrottleConfig(max_failures=3, base_delay=0.0))
    generated = env.service.generate_recovery_codes("alice")
    enrolment = env.service.begin_enrolment("alice")
    key = _key(enrolment.secret)
    assert env.service.confirm_enrolment("alice", enrolment.credential_id, totp(key, T0)).accepted
    for _ in range(3):
        assert not env.service.verify(
            "alice", "000000" if totp(key, T0) != "000000" else "1" * 6
        ).accepted
    assert env.failures() == 3
    locked = env.service.verify_recovery_code("alice", generated.codes[0])
    assert not locked.accepted and locked.reason is VerifyReason.LOCKED
    assert locked.retry_after == pytest.approx(900.0)
    assert locked.user_message == recovery.USER_MESSAGE
    assert slow_hashes.calls == 0 and env.failures() == 3
    assert env.service.recovery_codes_left("alice") == 10
    env.clock.advance(900)
    assert env.service.verify_recovery_code("alice", generated.codes[0]).accepted
    assert env.failures() == 0


def test_recovery_failures_throttle_otp(make_env: Callable[..., Env]) -> None:
    env = make_env(throttle=ThrottleConfig(max_failures=5, base_delay=1.0))
    generated = env.service.generate_recovery_codes("alice")
    assert (
        env.service.verify_recovery_code("alice", wrong_code()).reason is VerifyReason.INVALID_CODE
    )
    throttled = env.service.verify("alice", "123456")
    assert throttled.reason is VerifyReason.THROTTLED and throttled.retry_after == 1.0
    again = env.service.verify_recovery_code("alice", generated.codes[0])
    assert again.reason is VerifyReason.THROTTLED and env.failures() == 1
    env.clock.advance(1.0)
    ok = env.service.verify_recovery_code("alice", generated.codes[0])
    assert ok.accepted and env.failures() == 0


def test_reaching_the_limit_with_recovery_codes_locks(make_env: Callable[..., Env]) -> None:
    env = make_env(throttle=ThrottleConfig(max_failures=2, base_delay=0.0))
    env.service.generate_recovery_codes("alice")
    env.service.verify_recovery_code("alice", wrong_code())
    env.service.verify_recovery_code("alice", wrong_code())
    assert [e.type for e in env.events.events].count(EventType.USER_LOCKED) == 1
    assert env.service.verify("alice", "123456").reason is VerifyReason.LOCKED


# -- failures of the store ---------------------------------------------------------------------


class ConsumeFails:
    """Passes everything through except ``consume_recovery_code``, which fails."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def replace_recovery_codes(self, user_id: str, records: Any) -> None:
        self.inner.replace_recovery_codes(user_id, records)

    def recovery_codes(self, user_id: str) -> Any:
        return self.inner.recovery_codes(user_id)

    def consume_recovery_code(self, user_id: str, record_id: str, now: float) -> int | None:
        raise StoreUnavailable("connection dropped")

    def update_recovery_hash(self, user_id: str, record_id: str, phc: str) -> bool:
        return bool(self.inner.update_recovery_hash(user_id, record_id, phc))


def test_a_failing_store_refuses(make_env: Callable[..., Env]) -> None:
    env = make_env(store=ConsumeFails)
    generated = env.service.generate_recovery_codes("alice")
    result = env.service.verify_recovery_code("alice", generated.codes[0])
    assert not result.accepted and result.reason is VerifyReason.STORE_ERROR
    assert result.user_message == UNAVAILABLE_MESSAGE
    assert env.service.recovery_codes_left("alice") == 10


def test_a_tampered_hash_refuses(env: Env) -> None:
    generated = env.service.generate_recovery_codes("alice")
    broken = [
        attrs.evolve(r, phc="$argon2id$v=19$m=99999999,t=1,p=1$AAAA$BBBB")
        for r in generated.records
    ]
    env.store.replace_recovery_codes("alice", broken)
    result = env.service.verify_recovery_code("alice", generated.codes[0])
    assert not result.accepted and result.reason is VerifyReason.STORE_ERROR


# -- concurrency -------------------------------------------------------------------------------


def test_sixteen_threads_one_code_exactly_one_accepted(env: Env) -> None:
    generated = env.service.generate_recovery_codes("alice")
    barrier = threading.Barrier(16)
    results: list[RecoveryVerificationResult] = []
    lock = threading.Lock()

    def attempt() -> None:
        barrier.wait(timeout=30)
        result = env.service.verify_recovery_code("alice", generated.codes[0])
        with lock:
            results.append(result)

    threads = [threading.Thread(target=attempt) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 16
    assert sum(r.accepted for r in results) == 1
    assert env.service.recovery_codes_left("alice") == 9
    assert len(env.events.of_type(EventType.RECOVERY_CODE_USED)) == 1


def _key(secret: str) -> bytes:
    return b32decode_key(secret)


# -- properties --------------------------------------------------------------------------------


def _property_service() -> tuple[MFAService, MemoryStore]:
    store = MemoryStore()
    service = MFAService(
        store,
        store,
        AESGCMSealer.generate(),
        clock=FakeClock(T0),
        config=ServiceConfig(
            throttle=ThrottleConfig(max_failures=100, base_delay=0.0),
            recovery=RecoveryConfig(count=3, argon2=FAST),
        ),
        recovery_codes=store,
        secret=SECRET,
    )
    return service, store


_PROPERTY_SERVICE = _property_service()
_LOOK_ALIKES = {"0": "oO", "1": "iIlL"}


@settings(max_examples=100, deadline=None)
@given(attempt=st.text(max_size=40) | st.from_regex(r"[0-9A-Za-z -]{13,30}", fullmatch=True))
def test_any_attempt_outside_the_set_is_refused_and_counted(attempt: str) -> None:
    service, store = _PROPERTY_SERVICE
    store.reset("prop")
    generated = service.generate_recovery_codes("prop")
    assert normalize_recovery_code(attempt) not in {
        normalize_recovery_code(c) for c in generated.codes
    }
    result = service.verify_recovery_code("prop", attempt)
    assert not result.accepted
    assert result.reason in (VerifyReason.INVALID_CODE, VerifyReason.MALFORMED)
    assert store.get_failures("prop").count == 1
    assert service.recovery_codes_left("prop") == 3


_EDITS = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=3),  # which look-alike, if the char has some
        st.booleans(),  # lower-case it
        st.sampled_from(["", "", " ", "-", "\t", "\u00a0", "\u2010"]),  # what follows
    ),
    min_size=16,
    max_size=16,
)


@settings(max_examples=60, deadline=None)
@given(which=st.integers(min_value=0, max_value=2), edits=_EDITS)
def test_any_sloppy_spelling_of_a_code_is_accepted_once(
    which: int, edits: list[tuple[int, bool, str]]
) -> None:
    service, store = _PROPERTY_SERVICE
    generated = service.generate_recovery_codes("prop")
    code = generated.codes[which]
    typed = ""
    for plain, (alike, lower, separator) in zip(code.replace("-", ""), edits, strict=True):
        options = _LOOK_ALIKES.get(plain)
        char = options[alike % len(options)] if options and alike else plain
        typed += (char.lower() if lower else char) + separator
    first = service.verify_recovery_code("prop", typed)
    assert first.accepted and first.codes_left == 2
    again = service.verify_recovery_code("prop", code)
    assert again.reason is VerifyReason.REPLAYED
    store.reset("prop")
