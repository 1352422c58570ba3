"""The effect drivers: one flow, run by the blocking and the async driver alike.

A property checks that both drivers give a flow the same results and the same thrown
errors for any script of port calls; the rest pins what the async driver adds (CPU work
off the loop thread, the host's executor) and that effects never show their arguments.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mfa_core._effects import Cpu, Flow, Op, Port, cpu, run_async, run_sync


class Boom(Exception):
    """A port failure."""


class SyncPort:
    def call(self, value: int) -> int:
        if value < 0:
            raise Boom(f"failed on {value}")
        return value * 2


class AsyncPort:
    async def call(self, value: int) -> int:
        await asyncio.sleep(0)
        return SyncPort().call(value)


def _script(values: list[int]) -> Flow[list[str]]:
    """Calls the port once per value; records each result or caught error."""
    seen: list[str] = []
    for value in values:
        try:
            result = yield Op(Port.CREDENTIALS, "call", (value,))
        except Boom as exc:
            seen.append(f"error {exc}")
            continue
        seen.append(f"ok {result}")
    return seen


@settings(max_examples=100)
@given(st.lists(st.integers(-5, 5), max_size=12))
def test_both_drivers_give_a_flow_the_same_results_and_errors(values: list[int]) -> None:
    blocking = run_sync(_script(values), lambda port: SyncPort())
    awaited = asyncio.run(run_async(_script(values), lambda port: AsyncPort()))
    assert blocking == awaited
    assert blocking == [f"ok {v * 2}" if v >= 0 else f"error failed on {v}" for v in values]


def _uncaught() -> Flow[int]:
    return int((yield Op(Port.FAILURES, "call", (-1,))))


def test_an_error_the_flow_does_not_catch_propagates_from_both_drivers() -> None:
    with pytest.raises(Boom):
        run_sync(_uncaught(), lambda port: SyncPort())
    with pytest.raises(Boom):
        asyncio.run(run_async(_uncaught(), lambda port: AsyncPort()))


def _where() -> Flow[tuple[int, int]]:
    here = threading.get_ident()
    there = yield from cpu(threading.get_ident)
    return here, there


def test_cpu_work_runs_inline_when_blocking_and_off_the_loop_thread_when_async() -> None:
    here, there = run_sync(_where(), lambda port: None)
    assert here == there
    here, there = asyncio.run(run_async(_where(), lambda port: None))
    assert here != there
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="host-cpu") as pool:
        names: list[str] = []

        def name() -> Flow[str]:
            return (yield from cpu(lambda: threading.current_thread().name))

        names.append(asyncio.run(run_async(name(), lambda port: None, pool)))
    assert names[0].startswith("host-cpu")


def test_effects_never_show_their_arguments() -> None:
    op = Op(Port.SENDER, "send", (), (("code", "123456"),))
    work = Cpu(pow, ("secret-code", 1))
    assert "123456" not in repr(op) and "sender" in repr(op)
    assert "secret-code" not in repr(work)


def test_a_flow_returning_at_once_needs_no_port() -> None:
    def nothing() -> Flow[Any]:
        return 7
        yield  # pragma: no cover - makes this a generator

    assert run_sync(nothing(), lambda port: None) == 7
    assert asyncio.run(run_async(nothing(), lambda port: None)) == 7
