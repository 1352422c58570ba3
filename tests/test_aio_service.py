"""The asyncio front end: the blocking service's scenarios re-run against AsyncMFAService,
plus what only an event loop can show (task concurrency, a loop that is never blocked).

Scenarios: every test of ``test_service.py`` that builds its service through the ``env``
or ``make_env`` fixture runs here again, with those fixtures replaced: the service is an
:class:`~mfa_core.aio.AsyncMFAService` over memory or SQLite behind
:class:`~mfa_core.aio.AsyncStoreAdapter`, behind a blocking facade that runs each
coroutine to completion on its own event loop. Same assertions, same events, same
errors: the two front ends share their flows.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
import test_service as scenarios
from aio_front import Facades, adopt, async_port
from test_service import T0, CountingSealer, Env

from mfa_core import b32decode_key, totp
from mfa_core.aio import AsyncMemoryStore, AsyncMFAService
from mfa_core.errors import InvalidParameter
from mfa_core.recovery import RecoveryConfig
from mfa_core.sealing import AESGCMSealer
from mfa_core.service import MFAService, ServiceConfig, VerifyReason
from mfa_core.stores import MemoryStore, SQLiteStore
from mfa_core.testing import FakeClock, RecordingEventSink
from mfa_core.throttle import ThrottleConfig

ADOPTED = adopt(scenarios, globals())
_T = TypeVar("_T")


@pytest.fixture(params=["memory", "sqlite"])
def make_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Env]]:
    facades = Facades()
    made: list[Any] = []

    def make(**config: Any) -> Env:
        store: Any = (
            MemoryStore()
            if request.param == "memory"
            else SQLiteStore(tmp_path / f"mfa-{len(made)}.sqlite3")
        )
        made.append(store)
        async_store = async_port(store)
        clock = FakeClock(T0)
        events = RecordingEventSink()
        sealer = CountingSealer(AESGCMSealer.generate())
        service = AsyncMFAService(
            async_store,
            async_store,
            sealer,
            clock=clock,
            events=events,
            config=ServiceConfig(issuer="Example", **config),
        )
        return Env(facades(service), store, clock, events, sealer)

    yield make
    facades.close()
    for store in made:
        close = getattr(store, "close", None)
        if close is not None:
            close()


@pytest.fixture
def env(make_env: Callable[..., Env]) -> Env:
    return make_env()


def test_the_scenarios_are_adopted() -> None:
    assert len(ADOPTED) > 30
    assert "test_verify_accepts_once_and_never_an_earlier_step" in ADOPTED


def test_blocking_stores_are_refused_by_the_async_service() -> None:
    store = MemoryStore()
    sealer = AESGCMSealer.generate()
    with pytest.raises(InvalidParameter, match="AsyncCredentialStore"):
        AsyncMFAService(store, store, sealer)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter, match="AsyncFailureCounter"):
        AsyncMFAService(AsyncMemoryStore(), store, sealer)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter, match="sealer"):
        AsyncMFAService(AsyncMemoryStore(), AsyncMemoryStore(), object())  # type: ignore[arg-type]


def test_async_and_blocking_front_ends_decide_alike_on_shared_state() -> None:
    """One MemoryStore under both front ends: a code accepted by one is a replay for the
    other, and failures counted by one throttle the other."""
    clock = FakeClock(T0)
    memory = MemoryStore()
    sealer = AESGCMSealer.generate()
    blocking = MFAService(memory, memory, sealer, clock=clock)
    service = AsyncMFAService(
        AsyncMemoryStore(memory), AsyncMemoryStore(memory), sealer, clock=clock
    )

    async def main() -> None:
        enrolment = await service.begin_enrolment("alice")
        key = b32decode_key(enrolment.secret)
        confirmed = await service.confirm_enrolment("alice", enrolment.credential_id, totp(key, T0))
        assert confirmed.accepted
        clock.advance(30)
        code = totp(key, clock.now())
        assert blocking.verify("alice", code).accepted
        again = await service.verify("alice", code)
        assert again.reason == VerifyReason.REPLAYED
        assert (await service.throttle_status("alice")).allowed is False
        assert [info.id for info in await service.list_credentials("alice")] == [
            enrolment.credential_id
        ]

    asyncio.run(main())


class _Interleaving(AsyncMemoryStore):
    """Yields to the event loop before every store call, so 1,000 tasks interleave at
    each step of the flow (all pass the gate, all scan, all race to claim)."""

    async def _do(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0)
        return fn(*args, **kwargs)


@pytest.mark.parametrize("store_type", [AsyncMemoryStore, _Interleaving])
def test_a_thousand_concurrent_tasks_submitting_one_code_have_one_winner(
    store_type: type[AsyncMemoryStore],
) -> None:
    clock = FakeClock(T0)
    store = store_type()
    throttle = ThrottleConfig(max_failures=100, base_delay=1.0, max_delay=4.0, lockout=60.0)
    service = AsyncMFAService(
        store, store, AESGCMSealer.generate(), clock=clock, config=ServiceConfig(throttle=throttle)
    )

    async def main() -> None:
        enrolment = await service.begin_enrolment("alice")
        key = b32decode_key(enrolment.secret)
        first = totp(key, T0)
        assert (await service.confirm_enrolment("alice", enrolment.credential_id, first)).accepted
        clock.set(T0 + 30)
        code = totp(key, clock.now())
        results = await asyncio.gather(*(service.verify("alice", code) for _ in range(1000)))
        reasons = [result.reason for result in results]
        assert reasons.count(VerifyReason.OK) == 1
        refused = {VerifyReason.REPLAYED, VerifyReason.THROTTLED, VerifyReason.LOCKED}
        assert set(reasons) - {VerifyReason.OK} <= refused
        # The admission counts each attempt before its code is checked: an admitted
        # attempt makes every other one at that instant wait out the 1 s delay (also with
        # the interleaving store, where every task reaches the admission before any has
        # finished). The success resets the count, so at most one more attempt is
        # admitted after it (a replay, counted), and the rest are throttled.
        failures = await store.get_failures("alice")
        replays = reasons.count(VerifyReason.REPLAYED)
        assert replays <= 1 and replays + reasons.count(VerifyReason.THROTTLED) == 999
        assert failures.count == replays
        if store_type is _Interleaving:
            assert replays == 0

    asyncio.run(main())


# -- the event loop is never blocked by Argon2id ------------------------------------------------


async def _max_lag_during(work: Callable[[], Awaitable[_T]]) -> tuple[float, _T]:
    """Run ``work()`` while a task sleeps 1 ms at a time and records how late it wakes."""
    lags: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        loop = asyncio.get_running_loop()
        while not done.is_set():
            start = loop.time()
            await asyncio.sleep(0.001)
            lags.append(loop.time() - start - 0.001)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.01)  # the ticker is running
    try:
        result = await work()
    finally:
        done.set()
        await ticker
    return max(lags), result


def test_the_loop_is_not_blocked_during_a_recovery_code_check(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Real Argon2id parameters (OWASP defaults): the loop keeps ticking while a code is
    checked, with the default worker thread and with a process pool as ``cpu_executor``
    (a generous bound for a noisy CI machine; the figures are printed)."""
    store = AsyncMemoryStore()
    context = multiprocessing.get_context("spawn")
    figures: dict[str, float] = {}
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        pool.submit(sum, (1, 2)).result(timeout=120)  # start the worker before measuring
        for name, executor in (("process pool", pool), ("worker thread", None)):
            service = AsyncMFAService(
                store,
                store,
                AESGCMSealer.generate(),
                recovery_codes=store,
                secret=bytes(range(32)),
                config=ServiceConfig(recovery=RecoveryConfig()),  # real Argon2id cost
                cpu_executor=executor,
            )
            user = f"user-{len(figures)}"

            async def main(service: AsyncMFAService = service, user: str = user) -> float:
                generated = await service.generate_recovery_codes(user)
                lag, result = await _max_lag_during(
                    lambda: service.verify_recovery_code(user, generated.codes[0])
                )
                assert result.accepted and result.codes_left == 9
                return lag

            figures[name] = asyncio.run(main())
    with capsys.disabled():
        print(
            "\nloop lag during verify_recovery_code (Argon2id m=19 MiB, t=2): "
            + ", ".join(f"{name} {lag * 1000:.1f} ms" for name, lag in figures.items())
        )
    assert figures["worker thread"] < 0.050
    assert figures["process pool"] < 0.050


def test_a_cpu_executor_must_be_an_executor() -> None:
    store = AsyncMemoryStore()
    with pytest.raises(InvalidParameter, match="cpu_executor"):
        AsyncMFAService(store, store, AESGCMSealer.generate(), cpu_executor=object())  # type: ignore[arg-type]
