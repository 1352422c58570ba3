"""Effects: how ONE flow serves both the blocking and the asyncio front end.

Every operation of the service (verify, confirm, enrol, recover, ...) is written once, as a
generator. Where it needs a stateful port it does not call it: it *yields* an effect and
receives the result back::

    claimed = yield from call(CredentialStore.claim, credential_id, value, drift=drift)

* :class:`Op` - one call of one port method. It carries the method of the blocking
  Protocol itself (``CredentialStore.claim``), so :func:`call` is typed by the Protocol's
  own signature (``ParamSpec``): a wrong argument is a type error at the call site, and no
  method is ever named by a string;
* :class:`Cpu` - CPU-heavy pure work (Argon2id): a module-level function and its
  arguments, so that it can run in another thread or process.

A driver runs the generator with a :class:`PortTable`, built once per service by
:func:`bind_ports`: it maps each Protocol method to the host's implementation of it (a
bound method of the blocking store, or of the async store for the async front end).
:func:`run_sync` calls the blocking ports and runs ``Cpu`` work inline;
:func:`mfa_core.aio._driver.run_async` awaits the async ports and runs ``Cpu`` work off the
event loop. When a port raises, the driver throws the exception back into the generator at
the ``yield``, so the fail-closed handling (``except Exception: refuse``) lives in the
flow, once.

This module imports nothing of :mod:`asyncio`: a blocking host never loads it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Mapping
from types import MappingProxyType
from typing import Any, Concatenate, ParamSpec, TypeAlias, TypeVar, TypeVarTuple, cast

import attrs

from ..errors import InvalidParameter

__all__ = [
    "Cpu",
    "Effect",
    "Flow",
    "Op",
    "PortTable",
    "bind_ports",
    "call",
    "cpu",
    "port_methods",
    "run_sync",
]

_T = TypeVar("_T")
_R = TypeVar("_R")
_P = ParamSpec("_P")
_Ts = TypeVarTuple("_Ts")

_NO_KWARGS: Mapping[str, object] = MappingProxyType({})


class Op:
    """Call the host's implementation of the Protocol method ``method`` with ``args`` and
    ``kwargs`` (which may hold codes: they stay out of ``repr``).

    Made for every port call, so a plain slotted class; nothing mutates an ``Op`` (nor its
    ``kwargs``) after it is yielded.
    """

    __slots__ = ("args", "kwargs", "method")

    def __init__(
        self,
        method: Callable[..., object],
        args: tuple[object, ...] = (),
        kwargs: Mapping[str, object] = _NO_KWARGS,
    ) -> None:
        self.method = method
        self.args = args
        self.kwargs = kwargs

    def __repr__(self) -> str:
        return f"Op({self.method.__qualname__})"


@attrs.frozen
class Cpu:
    """Run ``fn(*args)``: pure, CPU-heavy work (off the loop under the async driver).

    ``fn`` is a module-level function and ``args`` picklable values (a process pool can
    run it); the arguments may hold a code, so they stay out of ``repr``.
    """

    fn: Callable[..., object]
    args: tuple[object, ...] = attrs.field(default=(), repr=False)


Effect: TypeAlias = Op | Cpu
"""What a flow yields."""
Flow: TypeAlias = Generator[Effect, Any, _T]
"""A flow: yields effects, is sent their results, returns its outcome."""


def call(
    method: Callable[Concatenate[Any, _P], _R], /, *args: _P.args, **kwargs: _P.kwargs
) -> Flow[_R]:
    """Call the port method ``method`` (a blocking Protocol's method, e.g.
    ``CredentialStore.claim``) with these arguments, as an :class:`Op` effect, and return
    its result. Typed by the Protocol's signature."""
    return cast(_R, (yield Op(method, args, kwargs if kwargs else _NO_KWARGS)))


def cpu(fn: Callable[[*_Ts], _T], *args: *_Ts) -> Flow[_T]:
    """Run ``fn(*args)`` as a :class:`Cpu` effect and return its result."""
    return cast(_T, (yield Cpu(fn, args)))


def port_methods(protocol: type) -> tuple[str, ...]:
    """The names of the methods a Protocol class declares itself (not inherited ones)."""
    return tuple(
        name
        for name, value in vars(protocol).items()
        if callable(value) and not name.startswith("_")
    )


class PortTable(dict[Callable[..., object], Callable[..., Any]]):
    """Protocol method -> the host's implementation of it (what a driver calls).

    A method whose port is not configured raises
    :class:`~mfa_core.errors.InvalidParameter`, thrown into the flow like any port error.
    """

    __slots__ = ()

    def __missing__(self, method: Callable[..., object]) -> Callable[..., Any]:
        port = method.__qualname__.split(".")[0]
        raise InvalidParameter(f"no {port} port is configured")


def bind_ports(ports: Iterable[tuple[type, type, object]]) -> PortTable:
    """Build the table of a service from ``(blocking Protocol, implemented Protocol, object)``
    triples: each method the blocking Protocol declares maps to ``object``'s method of the
    same name (the implemented Protocol is the async twin for the async front end, and the
    blocking one itself otherwise; it names the methods ``object`` must have)."""
    table = PortTable()
    for blocking, _implemented, value in ports:
        for name in port_methods(blocking):
            table[vars(blocking)[name]] = getattr(value, name)
    return table


def run_sync(flow: Flow[_T], table: PortTable) -> _T:
    """Run ``flow`` to its end with blocking ports.

    A port's exception is thrown into the flow after the driver's own ``except`` block has
    ended, so nothing the flow raises in turn can carry the port's exception as its
    ``__context__`` (a sender's or a driver's message can quote a code).
    """
    send, throw = flow.send, flow.throw
    try:
        effect = send(None)
        while True:
            error: Exception | None = None
            try:
                if isinstance(effect, Op):
                    kwargs = effect.kwargs
                    if kwargs:
                        value = table[effect.method](*effect.args, **kwargs)
                    else:
                        value = table[effect.method](*effect.args)
                else:
                    value = effect.fn(*effect.args)
            except Exception as exc:
                error = exc
            if error is None:
                effect = send(value)
            else:
                effect = throw(error)
                del error
    except StopIteration as stop:
        return cast(_T, stop.value)
