"""Helpers to re-run the blocking service's scenario tests against AsyncMFAService.

:func:`adopt` copies a scenario module's tests that build their service through the
``env``/``make_env`` fixtures into a test module, whose own fixtures then build the async
front end; :class:`Facades` puts each AsyncMFAService behind a
:class:`~mfa_core.aio.testing.BlockingFacade` (coroutines run on a private event loop, so
tests may call it from many threads: the calls become concurrent tasks).
"""

from __future__ import annotations

import inspect
from types import ModuleType
from typing import Any

from mfa_core.aio import AsyncStoreAdapter
from mfa_core.aio.testing import BlockingFacade
from mfa_core.stores import MemoryStore

FIXTURES = frozenset({"env", "make_env"})
ALLOWED = FIXTURES | {"caplog", "monkeypatch", "slow_hashes"}


def _parametrized(test: Any) -> set[str]:
    names: set[str] = set()
    for mark in getattr(test, "pytestmark", []):
        if mark.name == "parametrize":
            argnames = mark.args[0]
            if isinstance(argnames, str):
                argnames = argnames.split(",")
            names |= {name.strip() for name in argnames}
    return names


def adopt(scenarios: ModuleType, namespace: dict[str, Any]) -> list[str]:
    """Copy the env-based tests of ``scenarios`` into ``namespace``; return their names."""
    names = []
    for name, test in vars(scenarios).items():
        if name.startswith("test_") and inspect.isfunction(test):
            params = set(inspect.signature(test).parameters)
            if params & FIXTURES and params <= ALLOWED | _parametrized(test):
                namespace[name] = test
                names.append(name)
    return names


def async_port(blocking: Any) -> AsyncStoreAdapter:
    """An async view of a blocking store: inline for memory, worker threads otherwise."""
    return AsyncStoreAdapter(blocking, offload=not isinstance(blocking, MemoryStore))


class Facades:
    """Blocking facades over async services, closed together at the end of a test."""

    def __init__(self) -> None:
        self.made: list[BlockingFacade] = []

    def __call__(self, service: Any) -> Any:
        facade = BlockingFacade(service)
        self.made.append(facade)
        return facade

    def close(self) -> None:
        for facade in self.made:
            facade.close()
