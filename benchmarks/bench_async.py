"""``AsyncMFAService`` on ``AsyncRedisStore`` against ``MFAService`` on ``RedisStore``.

Run from the repository root (the machine's Redis server)::

    .venv/bin/python benchmarks/bench_async.py              # about 20 s
    .venv/bin/python benchmarks/bench_async.py --quick      # a rough run

Both sides verify valid codes for fresh time steps (a whole successful verification: the
admission fused with the credential list, unseal, window, the claim fused with the reset;
2 round trips to Redis) on the same Redis server, in one process:

* **blocking, 1 caller**: ``MFAService.verify`` in a loop on one thread;
* **async, 1 task**: ``await AsyncMFAService.verify`` in a loop in one task;
* **async, 50 tasks**: 50 users verifying at once (``asyncio.gather`` per time step), so
  the event loop overlaps their round trips.

Rounds of the three sides are interleaved and the best round of each counts. Prints
verifies per second, the ratios to the blocking store and PASS/FAIL for the targets: one
task at least 0.8x the blocking store, 50 tasks more than the blocking store. Never fails on
a target unless ``--strict`` is given (shared machines are noisy).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import os
import platform
import sys
import time
import uuid
from collections.abc import Sequence

import redis

from mfa_core import AESGCMSealer, MFAService, ServiceConfig, b32decode_key, totp
from mfa_core.aio import AsyncMFAService
from mfa_core.aio.redis import AsyncRedisStore
from mfa_core.stores.redis import RedisStore
from mfa_core.testing import FakeClock
from mfa_core.throttle import ThrottleConfig

REDIS_URL = os.environ.get("MFA_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
T0 = 1_700_000_015.0
PERIOD = 30
TASKS = 50
ONE_TASK_TARGET = 0.8
CONFIG = ServiceConfig(throttle=ThrottleConfig(max_failures=100))
SEALER = AESGCMSealer({"k1": bytes(range(32))}, current_key_id="k1")


def _enrol(store: RedisStore, clock: FakeClock, user: str) -> bytes:
    service = MFAService(store, store, SEALER, clock=clock, config=CONFIG)
    enrolment = service.begin_enrolment(user)
    key = b32decode_key(enrolment.secret)
    if not service.confirm_enrolment(
        user, enrolment.credential_id, totp(key, clock.now())
    ).accepted:
        raise RuntimeError("enrolment failed")
    return key


def blocking_round(service: MFAService, clock: FakeClock, user: str, key: bytes, n: int) -> float:
    """Seconds for ``n`` successful verifies on one thread."""
    start = time.perf_counter()
    for _ in range(n):
        now = clock.advance(PERIOD)
        if not service.verify(user, totp(key, now)).accepted:
            raise RuntimeError("a valid code was refused")
    return time.perf_counter() - start


async def one_task_round(
    service: AsyncMFAService, clock: FakeClock, user: str, key: bytes, n: int
) -> float:
    """Seconds for ``n`` successful verifies awaited one after another."""
    start = time.perf_counter()
    for _ in range(n):
        now = clock.advance(PERIOD)
        if not (await service.verify(user, totp(key, now))).accepted:
            raise RuntimeError("a valid code was refused")
    return time.perf_counter() - start


async def many_tasks_round(
    service: AsyncMFAService, clock: FakeClock, users: Sequence[tuple[str, bytes]], n: int
) -> float:
    """Seconds for ``n`` successful verifies, ``len(users)`` at a time."""
    start = time.perf_counter()
    for _ in range(n // len(users)):
        now = clock.advance(PERIOD)
        results = await asyncio.gather(
            *(service.verify(user, totp(key, now)) for user, key in users)
        )
        if not all(result.accepted for result in results):
            raise RuntimeError("a valid code was refused")
    return time.perf_counter() - start


def report(
    verifies: int,
    repeats: int,
    sync_runs: Sequence[float],
    one_runs: Sequence[float],
    many_runs: Sequence[float],
) -> tuple[bool, bool]:
    """Print the table and the verdicts; return whether each target was met."""
    sync_rate = verifies / min(sync_runs)
    one_rate = verifies / min(one_runs)
    many_rate = verifies / min(many_runs)
    print(
        f"mfa_core, redis-py {importlib.metadata.version('redis')}, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs; "
        f"{verifies} verifies per round, best of {repeats} interleaved rounds\n"
    )
    print("| case | verifies/s | vs blocking |")
    print("|---|---:|---:|")
    print(f"| `MFAService` on `RedisStore`, 1 caller | {sync_rate:,.0f} | 1.00x |")
    print(
        f"| `AsyncMFAService` on `AsyncRedisStore`, 1 task | {one_rate:,.0f} | "
        f"{one_rate / sync_rate:.2f}x |"
    )
    print(
        f"| `AsyncMFAService` on `AsyncRedisStore`, {TASKS} tasks | {many_rate:,.0f} | "
        f"{many_rate / sync_rate:.2f}x |"
    )
    one_ok = one_rate >= ONE_TASK_TARGET * sync_rate
    many_ok = many_rate > sync_rate
    print(
        f"\n{'PASS' if one_ok else 'FAIL'} 1 task >= {ONE_TASK_TARGET}x blocking: "
        f"{one_rate / sync_rate:.2f}x"
    )
    print(f"{'PASS' if many_ok else 'FAIL'} {TASKS} tasks > blocking: {many_rate / sync_rate:.2f}x")
    return one_ok, many_ok


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and print the report; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verifies", type=int, default=1000, help="verifies per round (1000)")
    parser.add_argument("--repeats", type=int, default=5, help="rounds per side (5)")
    parser.add_argument("--quick", action="store_true", help="a rough run: few verifies")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    verifies, repeats = (100, 1) if args.quick else (args.verifies, args.repeats)
    verifies = max(TASKS, verifies - verifies % TASKS)

    prefix = f"mfa-bench-async:{uuid.uuid4().hex[:8]}:"
    blocking_store = RedisStore.from_url(REDIS_URL, prefix=prefix)
    clock = FakeClock(T0)
    solo_user = "solo"
    solo_key = _enrol(blocking_store, clock, solo_user)
    users = [(f"user-{i}", _enrol(blocking_store, clock, f"user-{i}")) for i in range(TASKS)]
    blocking = MFAService(blocking_store, blocking_store, SEALER, clock=clock, config=CONFIG)

    async def run() -> tuple[list[float], list[float], list[float]]:
        async_store = AsyncRedisStore.from_url(REDIS_URL, prefix=prefix, max_connections=TASKS)
        service = AsyncMFAService(async_store, async_store, SEALER, clock=clock, config=CONFIG)
        sync_runs: list[float] = []
        one_runs: list[float] = []
        many_runs: list[float] = []
        try:
            await one_task_round(service, clock, solo_user, solo_key, 20)  # warm up
            await many_tasks_round(service, clock, users, TASKS)
            for _ in range(repeats):
                sync_runs.append(blocking_round(blocking, clock, solo_user, solo_key, verifies))
                one_runs.append(await one_task_round(service, clock, solo_user, solo_key, verifies))
                many_runs.append(await many_tasks_round(service, clock, users, verifies))
        finally:
            await async_store.close()
        return sync_runs, one_runs, many_runs

    try:
        sync_runs, one_runs, many_runs = asyncio.run(run())
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(match=prefix + "*", count=1000):
            client.delete(key)
        client.close()
        blocking_store.close()

    one_ok, many_ok = report(verifies, repeats, sync_runs, one_runs, many_runs)
    return 1 if args.strict and not (one_ok and many_ok) else 0


if __name__ == "__main__":
    sys.exit(main())
