"""Fakes for tests of hosts and of mfa_core itself.

* :class:`FakeClock` - a :class:`~mfa_core.ports.Clock` whose time moves only when told;
* :class:`RecordingEventSink` - an :class:`~mfa_core.ports.EventSink` that keeps events;
* :class:`FaultyStore` - wraps a store (with exactly its port methods) and raises
  :class:`~mfa_core.errors.StoreUnavailable` on the N-th call of chosen methods, optionally
  after the wrapped call went through (a connection that dropped after the write);
* :class:`FakeCodeSender` - a :class:`~mfa_core.ports.CodeSender` that records the codes
  it would deliver (:class:`SentCode`, codes hidden from ``repr``).
"""

from __future__ import annotations

import inspect
import math
import sys
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import attrs

from ..errors import ErrorCode, InvalidParameter, StoreUnavailable
from ..models import Event, EventType
from ..oob import OOBChannel, OOBPurpose
from ..ports import CredentialStore, FailureCounter
from ..stores._common import ports_of, with_port_methods

__all__ = [
    "CombinedStore",
    "FakeClock",
    "FakeCodeSender",
    "FaultyStore",
    "RecordingEventSink",
    "SentCode",
]

_R = TypeVar("_R")


# -- fakes -------------------------------------------------------------------------------


def _check_time(value: object, name: str) -> float:
    # An int is range-checked before it is converted: 10**400 is an InvalidParameter.
    if type(value) is float and value >= 0.0 and math.isfinite(value):
        return value
    if type(value) is int and 0 <= value <= sys.float_info.max:
        return float(value)
    raise InvalidParameter(
        f"{name} must be a finite, non-negative number of seconds",
        code=ErrorCode.INVALID_TIME,
    )


class FakeClock:
    """A :class:`~mfa_core.ports.Clock` for tests: the time changes only through
    :meth:`advance` and :meth:`set`. Thread-safe."""

    __slots__ = ("_lock", "_now")

    def __init__(self, start: float) -> None:
        self._lock = threading.Lock()
        self._now = _check_time(start, "start")

    def __repr__(self) -> str:
        return f"FakeClock({self._now!r})"

    def now(self) -> float:
        """Return the fake current Unix time."""
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move the time forward by ``seconds`` (not negative) and return the new time."""
        step = _check_time(seconds, "seconds")
        with self._lock:
            self._now += step
            return self._now

    def set(self, now: float) -> None:
        """Jump to ``now`` (backwards too, to simulate a clock that was corrected)."""
        value = _check_time(now, "now")
        with self._lock:
            self._now = value


class RecordingEventSink:
    """An :class:`~mfa_core.ports.EventSink` that keeps every event, in order, in
    :attr:`events`. Thread-safe."""

    __slots__ = ("_lock", "events")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[Event] = []
        """Every event emitted so far, oldest first."""

    def __repr__(self) -> str:
        return f"RecordingEventSink(events={len(self.events)})"

    def emit(self, event: Event) -> None:
        """Record ``event``."""
        with self._lock:
            self.events.append(event)

    def of_type(self, event_type: EventType) -> list[Event]:
        """Return the recorded events of one type, oldest first."""
        with self._lock:
            return [event for event in self.events if event.type == event_type]

    def clear(self) -> None:
        """Forget every recorded event."""
        with self._lock:
            self.events.clear()


class CombinedStore(CredentialStore, FailureCounter, Protocol):
    """A store that implements both :class:`~mfa_core.ports.CredentialStore` and
    :class:`~mfa_core.ports.FailureCounter` (as every reference store does)."""


def _faulty_forwarder(name: str, port: type, blocking: Callable[..., Any]) -> Callable[..., Any]:
    """The port method ``name`` of a :class:`FaultyStore`: count the call, then delegate
    to the wrapped store or fail as planned."""

    def forward(self: FaultyStore, *args: Any, **kwargs: Any) -> Any:
        return self._call(name, lambda: getattr(self._store, name)(*args, **kwargs))

    forward.__name__ = name
    forward.__qualname__ = f"FaultyStore.{name}"
    forward.__doc__ = f"Delegate :meth:`mfa_core.ports.{port.__name__}.{name}` (or fail)."
    forward.__signature__ = inspect.signature(blocking)  # type: ignore[attr-defined]
    return forward


class FaultyStore:
    """Wraps a store and injects :class:`~mfa_core.errors.StoreUnavailable` faults.

    Has exactly the port methods of :mod:`mfa_core.ports` that the wrapped store has (so
    it stands in wherever the store did, and is an
    :class:`~mfa_core.ports.AttemptStore` exactly when the store is one), each delegating
    to the store. ``fail_on`` maps method names to the call number (1 = the first call)
    that fails, e.g. ``{"claim": 1, "admit_attempt": 2}``; a name that is not a port
    method of the wrapped store raises :class:`~mfa_core.errors.InvalidParameter`. With
    ``after_write=True`` the failing call is first passed to the wrapped store and the
    fault is raised afterwards: the write took place but the caller never heard (a
    connection dropped mid-operation). With ``persistent=True`` every call from the N-th
    on fails (an outage) until :meth:`heal`.

    :attr:`calls` counts calls per method and :attr:`faults` lists the methods that
    failed, in order.
    """

    __slots__ = (
        "_after_write",
        "_fail_on",
        "_healed",
        "_lock",
        "_persistent",
        "_store",
        "calls",
        "faults",
    )

    def __init__(
        self,
        store: CombinedStore,
        *,
        fail_on: Mapping[str, int],
        after_write: bool = False,
        persistent: bool = False,
    ) -> None:
        methods = ports_of(store)
        plan = dict(fail_on)
        for name, nth in plan.items():
            if name not in methods:
                raise InvalidParameter(f"unknown store method {name!r} in fail_on")
            if type(nth) is not int or nth < 1:
                raise InvalidParameter("fail_on call numbers must be integers from 1")
        self._store: Any = store
        self._fail_on = plan
        self._after_write = bool(after_write)
        self._persistent = bool(persistent)
        self._healed = False
        self._lock = threading.Lock()
        self.calls: dict[str, int] = {}
        """Calls per method so far (failed ones included)."""
        self.faults: list[str] = []
        """Methods whose call failed by injection, in order."""
        with_port_methods(self, methods, _faulty_forwarder)

    if TYPE_CHECKING:  # the port methods are made at run time, one per wrapped method

        def __getattr__(self, name: str) -> Any: ...

    def __repr__(self) -> str:
        return f"FaultyStore({self._store!r}, fail_on={self._fail_on!r})"

    def heal(self) -> None:
        """Stop injecting faults: every later call goes through."""
        with self._lock:
            self._healed = True

    def _should_fail(self, name: str) -> bool:
        with self._lock:
            count = self.calls.get(name, 0) + 1
            self.calls[name] = count
            nth = self._fail_on.get(name)
            fail = (
                not self._healed
                and nth is not None
                and (count == nth or (self._persistent and count > nth))
            )
            if fail:
                self.faults.append(name)
            return fail

    def _call(self, name: str, call: Callable[[], _R]) -> _R:
        if not self._should_fail(name):
            return call()
        if self._after_write:
            call()
        raise StoreUnavailable(f"injected fault: the store connection dropped during {name}")


# -- the code sender fake ------------------------------------------------------------------


@attrs.frozen
class SentCode:
    """One delivery recorded by :class:`FakeCodeSender`; ``repr`` hides the code."""

    channel: OOBChannel
    """Email or SMS."""
    destination: str
    """Where the code would have gone."""
    code: str = attrs.field(repr=False, eq=False)
    """The plain code (for the test to type in)."""
    purpose: OOBPurpose
    """What the code is for."""
    challenge_id: str
    """The challenge it belongs to."""
    expires_at: float
    """When it stops working."""


class FakeCodeSender:
    """A :class:`~mfa_core.ports.CodeSender` that records what it would deliver.

    :attr:`sent` lists every :class:`SentCode`, oldest first; :meth:`last_code` returns the
    latest code (of one challenge). Set :attr:`failing` to make :meth:`send` raise
    ``ConnectionError`` (an unreachable gateway). ``repr`` never shows a code. Thread-safe.
    """

    __slots__ = ("_lock", "failing", "sent")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sent: list[SentCode] = []
        """Every delivery so far, oldest first."""
        self.failing = False
        """When true, :meth:`send` raises ``ConnectionError`` and records nothing."""

    def __repr__(self) -> str:
        return f"FakeCodeSender(sent={len(self.sent)}, codes hidden)"

    def send(
        self,
        *,
        channel: OOBChannel,
        destination: str,
        code: str,
        purpose: OOBPurpose,
        challenge_id: str,
        expires_at: float,
    ) -> None:
        """Record the delivery (or raise ``ConnectionError`` when :attr:`failing`)."""
        if self.failing:
            raise ConnectionError("fake gateway unreachable")
        with self._lock:
            self.sent.append(
                SentCode(
                    channel=channel,
                    destination=destination,
                    code=code,
                    purpose=purpose,
                    challenge_id=challenge_id,
                    expires_at=expires_at,
                )
            )

    def last_code(self, challenge_id: str | None = None) -> str:
        """Return the latest code sent (for ``challenge_id`` if given); raise
        ``LookupError`` when there is none."""
        with self._lock:
            for sent in reversed(self.sent):
                if challenge_id is None or sent.challenge_id == challenge_id:
                    return sent.code
        raise LookupError("no code was sent")
