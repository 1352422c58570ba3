"""The async driver of the service flows (:mod:`mfa_core.service._effects`).

Only the asyncio front end imports this module (and with it :mod:`asyncio`).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from typing import TypeVar, cast

from ..service._effects import Flow, Op, PortTable

__all__ = ["run_async"]

_T = TypeVar("_T")


async def run_async(flow: Flow[_T], table: PortTable, executor: Executor | None = None) -> _T:
    """Run ``flow`` to its end with async ports (``table`` maps each Protocol method to an
    async implementation); ``Cpu`` work runs in ``executor`` (or, when ``None``, in a worker
    thread of :func:`asyncio.to_thread`)."""
    send, throw = flow.send, flow.throw
    try:
        effect = send(None)
        while True:
            error: Exception | None = None
            try:
                if isinstance(effect, Op):
                    kwargs = effect.kwargs
                    if kwargs:
                        value = await table[effect.method](*effect.args, **kwargs)
                    else:
                        value = await table[effect.method](*effect.args)
                elif executor is None:
                    value = await asyncio.to_thread(effect.fn, *effect.args)
                else:
                    loop = asyncio.get_running_loop()
                    value = await loop.run_in_executor(executor, effect.fn, *effect.args)
            except Exception as exc:
                error = exc
            # Thrown outside the except block: nothing the flow raises in turn carries the
            # port's exception as its __context__.
            if error is None:
                effect = send(value)
            else:
                effect = throw(error)
                del error
    except StopIteration as stop:
        return cast(_T, stop.value)
