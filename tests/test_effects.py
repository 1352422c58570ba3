"""The effect drivers: one flow, run by the blocking and the async driver alike.

A property checks that both drivers give a flow the same results and the same thrown
errors for any script of port calls; the rest pins what the async driver adds (CPU work
off the loop thread, the host's executor), how a port table is bound from a Protocol's
own methods, and that effects never show their arguments.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mfa_core.aio._driver import run_async
from mfa_core.errors import InvalidParameter
from mfa_core.ports import CodeSender, CredentialStore
from mfa_core.service._effects import (
    Cpu,
    Flow,
    Op,
    PortTable,
    bind_ports,
    call,
    cpu,
    port_methods,
    run_sync,
)


class Boom(Exception):
    """A port failure."""


class Doubler(Protocol):
    def double(self, value: int) -> int: ...


class SyncPort:
    def double(self, value: int) -> int:
        if value < 0:
            raise Boom(f"failed on {value}")
        return value * 2


class AsyncPort:
    async def double(self, value: int) -> int:
        await asyncio.sleep(0)
        return SyncPort().double(value)


def _table(port: object) -> PortTable:
    return bind_ports([(Doubler, Doubler, port)])


def _script(values: list[int]) -> Flow[list[str]]:
    """Calls the port once per value; records each result or caught error."""
    seen: list[str] = []
    for value in values:
        try:
            result = yield from call(Doubler.double, value)
        except Boom as exc:
            seen.append(f"error {exc}")
            continue
        seen.append(f"ok {result}")
    return seen


@settings(max_examples=100)
@given(st.lists(st.integers(-5, 5), max_size=12))
def test_both_drivers_give_a_flow_the_same_results_and_errors(values: list[int]) -> None:
    blocking = run_sync(_script(values), _table(SyncPort()))
    awaited = asyncio.run(run_async(_script(values), _table(AsyncPort())))
    assert blocking == awaited
    assert blocking == [f"ok {v * 2}" if v >= 0 else f"error failed on {v}" for v in values]


def _uncaught() -> Flow[int]:
    return int((yield from call(Doubler.double, -1)))


def test_an_error_the_flow_does_not_catch_propagates_from_both_drivers() -> None:
    with pytest.raises(Boom):
        run_sync(_uncaught(), _table(SyncPort()))
    with pytest.raises(Boom):
        asyncio.run(run_async(_uncaught(), _table(AsyncPort())))


def test_a_port_that_is_not_configured_is_an_invalid_parameter_thrown_into_the_flow() -> None:
    def flow() -> Flow[str]:
        try:
            yield from call(CredentialStore.get, "c1")
        except InvalidParameter as exc:
            return str(exc)
        return "called"  # pragma: no cover - the port is missing

    assert run_sync(flow(), PortTable()) == "no CredentialStore port is configured"
    assert asyncio.run(run_async(flow(), PortTable())) == "no CredentialStore port is configured"


def test_a_table_maps_each_method_the_protocol_declares_to_the_objects_method() -> None:
    class Sender:
        def send(self, **kwargs: object) -> None:
            raise AssertionError("not called")

    sender = Sender()
    table = bind_ports([(CodeSender, CodeSender, sender)])
    assert list(table) == [CodeSender.send]
    assert table[CodeSender.send] == sender.send
    assert port_methods(CredentialStore) == (
        "add",
        "get",
        "list_for_user",
        "update",
        "claim",
        "delete",
    )


def _where() -> Flow[tuple[int, int]]:
    here = threading.get_ident()
    there = yield from cpu(threading.get_ident)
    return here, there


def test_cpu_work_runs_inline_when_blocking_and_off_the_loop_thread_when_async() -> None:
    here, there = run_sync(_where(), PortTable())
    assert here == there
    here, there = asyncio.run(run_async(_where(), PortTable()))
    assert here != there
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="host-cpu") as pool:
        names: list[str] = []

        def name() -> Flow[str]:
            return (yield from cpu(lambda: threading.current_thread().name))

        names.append(asyncio.run(run_async(name(), PortTable(), pool)))
    assert names[0].startswith("host-cpu")


def test_effects_never_show_their_arguments() -> None:
    op = Op(CodeSender.send, (), {"code": "123456"})
    work = Cpu(pow, ("secret-code", 1))
    assert "123456" not in repr(op) and "CodeSender.send" in repr(op)
    assert "secret-code" not in repr(work)


def test_a_flow_returning_at_once_needs_no_port() -> None:
    def nothing() -> Flow[Any]:
        return 7
        yield  # pragma: no cover - makes this a generator

    assert run_sync(nothing(), PortTable()) == 7
    assert asyncio.run(run_async(nothing(), PortTable())) == 7


def test_the_blocking_api_does_not_import_asyncio() -> None:
    probe = (
        "import sys, mfa_core, mfa_core.service, mfa_core.stores; print('asyncio' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"
