"""Async reference stores: :class:`AsyncStoreAdapter` and :class:`AsyncMemoryStore`.

Neither has store logic of its own: each forwards to a blocking store of
:mod:`mfa_core.stores`, whose single operations are already atomic.

* :class:`AsyncMemoryStore` runs the calls of its :class:`~mfa_core.stores.MemoryStore`
  inline on the event loop: each one is a few dictionary operations under a lock held
  only for that call, so it never blocks the loop and never interleaves with another task.
* :class:`AsyncStoreAdapter` (``offload=True``) runs each call of any blocking store in a
  worker thread (:func:`asyncio.to_thread`): the way to put a
  :class:`~mfa_core.stores.SQLiteStore` or :class:`~mfa_core.stores.SQLStore` under
  :class:`~mfa_core.aio.AsyncMFAService` without blocking the loop on disk or network I/O.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from ..stores._common import ports_of, with_port_methods
from ..stores.memory import MemoryStore

__all__ = ["AsyncMemoryStore", "AsyncStoreAdapter"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _async_forwarder(name: str, port: type, blocking: Callable[..., Any]) -> Callable[..., Any]:
    """The async twin of the port method ``name``: awaits ``self._do`` on the wrapped
    store's method (found when called, so the wrapped store can be any object)."""

    async def forward(self: AsyncStoreAdapter, *args: Any, **kwargs: Any) -> Any:
        return await self._do(getattr(self._store, name), *args, **kwargs)

    forward.__name__ = name
    forward.__qualname__ = f"AsyncStoreAdapter.{name}"
    forward.__doc__ = f"See :meth:`mfa_core.ports.{port.__name__}.{name}` (awaitable)."
    forward.__signature__ = inspect.signature(blocking)  # type: ignore[attr-defined]
    return forward


class AsyncStoreAdapter:
    """The async ports over a blocking object that implements some or all of
    :mod:`mfa_core.ports` (credential store, failure counter with or without the fused
    attempt operations, recovery codes, out-of-band challenges, and a code sender).

    The adapter has exactly the port methods the wrapped object has, each an ``async``
    method with the blocking one's parameters: so ``isinstance(adapter,
    AsyncAttemptStore)`` holds exactly when the wrapped store is an
    :class:`~mfa_core.ports.AttemptStore`. One mechanism makes them all (the list of
    methods comes from the Protocols of :mod:`mfa_core.ports`), each calling the wrapped
    store through :meth:`_do`, which subclasses may override.

    ``offload=True`` (the default) runs every call in a worker thread; ``offload=False``
    runs it inline, for stores whose calls never block (in memory). ``close()`` closes the
    wrapped store if it has a ``close`` method.
    """

    __slots__ = ("_offload", "_store")

    def __init__(self, store: object, *, offload: bool = True) -> None:
        self._store: Any = store
        self._offload = bool(offload)
        with_port_methods(self, ports_of(store), _async_forwarder)

    if TYPE_CHECKING:  # the port methods are made at run time, one per wrapped method

        def __getattr__(self, name: str) -> Any: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._store!r}, offload={self._offload})"

    @property
    def blocking(self) -> Any:
        """The wrapped blocking store (shares its state with this adapter)."""
        return self._store

    async def _do(self, fn: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
        if self._offload:
            return await asyncio.to_thread(fn, *args, **kwargs)
        return fn(*args, **kwargs)

    async def close(self) -> None:
        """Close the wrapped store (if it can be closed)."""
        close = getattr(self._store, "close", None)
        if callable(close):
            await self._do(close)


class AsyncMemoryStore(AsyncStoreAdapter):
    """An asyncio-safe in-memory store: all four async store ports in one object.

    Wraps a :class:`~mfa_core.stores.MemoryStore` (pass one to share its state with
    blocking code, e.g. a test) and runs its calls inline: each is atomic and short.
    """

    __slots__ = ()

    def __init__(self, store: MemoryStore | None = None) -> None:
        super().__init__(MemoryStore() if store is None else store, offload=False)
