"""Client-side deadlines for the SQL store's calls: a watchdog that cuts the connection of a
call that is still waiting for its server when its bound has passed.

Why a watchdog: when a database server stops answering without closing anything (a
stopped process, a black-holed network path), the client's kernel keeps the TCP
connection alive: keepalives and ``tcp_user_timeout`` do not fire while the server's
kernel still acknowledges, and libpq has no read timeout, so a blocking call waits for
ever. The watchdog, one daemon thread for the whole process, holds the deadline of every
call in progress; when one passes it shuts the call's socket down (``shutdown(2)`` on a
duplicate of its descriptor), so the driver's blocked read returns at once with "server
closed the connection", SQLAlchemy invalidates that connection and the store fails closed
with :class:`~mfa_core.errors.StoreUnavailable`. Sync and asyncio drivers alike (an
event loop sees the socket end too).

A call registers the sockets it uses as it gets them: the pool's ``checkout`` event, and
the pre-ping of a pooled connection (which SQLAlchemy runs before that event). Calls are
told apart by their greenlet when greenlet is installed (each task of the async store
runs in its own), else by thread.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Final

try:
    from greenlet import getcurrent as _current  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - greenlet ships with SQLAlchemy's asyncio extra
    _current = threading.get_ident

__all__ = ["WATCHDOG", "Call", "Watchdog", "socket_of"]


_TICK: Final = 0.02
"""How often the watchdog looks at the calls in progress while there are any (seconds): a
deadline is enforced at most this late."""
_IDLE_TICKS: Final = 50
"""Ticks without any call in progress after which the watchdog thread parks until the next
call (about a second)."""


class Call:
    """One call in progress, and the ``with`` block that arms it: its deadline, the sockets
    it uses, whether it was cut. A class rather than a generator-based context manager,
    and no lock on the way in: arming costs about a microsecond, on every store call."""

    __slots__ = ("_key", "_outer", "_watchdog", "deadline", "done", "expired", "sockets")

    def __init__(self, watchdog: Watchdog, deadline: float) -> None:
        self._watchdog = watchdog
        self._key: Any = None
        self._outer: Call | None = None
        self.deadline = deadline
        self.done = False
        self.expired = False
        self.sockets: list[int] = []

    def __enter__(self) -> Call:
        watchdog = self._watchdog
        key = self._key = _current()
        calls = watchdog._calls
        self._outer = calls.get(key)
        calls[key] = self  # one dict store: atomic under the GIL
        watchdog._seen = True
        if watchdog._parked:
            watchdog._wake()
        return self

    def __exit__(self, *_: object) -> None:
        watchdog = self._watchdog
        # Under the lock, so that a cut in progress finishes before the sockets (which go
        # back to the pool and to other calls) are let go, and none starts after.
        with watchdog._lock:
            self.done = True
            self.sockets.clear()
        if self._outer is None:
            watchdog._calls.pop(self._key, None)
        else:
            watchdog._calls[self._key] = self._outer


class Watchdog:
    """The deadlines of the calls in progress and the thread that enforces them: while any
    call is in progress it looks every :data:`_TICK` seconds and cuts the sockets of each
    call past its deadline; after :data:`_IDLE_TICKS` idle ticks it parks until a call
    starts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[Any, Call] = {}
        self._seen = False
        self._parked = True
        self._wakeup = threading.Event()
        self._thread: threading.Thread | None = None

    def call(self, timeout: float) -> Call:
        """Arm a deadline ``timeout`` seconds from now for the body of the ``with`` block,
        run by this greenlet (or thread)."""
        return Call(self, time.monotonic() + timeout)

    def _wake(self) -> None:
        """Start (or unpark) the watchdog thread; the first call after a pause pays this."""
        with self._lock:
            if not self._parked:
                return
            self._parked = False
            self._wakeup.set()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="mfa_core-sql-watchdog", daemon=True
                )
                self._thread.start()

    def attach(self, connection: object) -> None:
        """Register the socket of the DBAPI ``connection`` with this greenlet's call (if
        one is in progress)."""
        record = self._calls.get(_current())
        if record is None:
            return
        fd = socket_of(connection)
        if fd is not None:
            record.sockets.append(fd)

    def _run(self) -> None:
        idle = 0
        while True:
            self._wakeup.wait()
            time.sleep(_TICK)
            if self._calls or self._seen:
                self._seen = False
                idle = 0
                self._enforce(time.monotonic())
                continue
            idle += 1
            if idle >= _IDLE_TICKS:
                with self._lock:
                    self._parked = True
                    self._wakeup.clear()
                    # A call that started meanwhile either saw "parked" (and wakes this
                    # thread) or is seen here: it set its entry before reading the flag.
                    if self._calls or self._seen:
                        self._parked = False
                        self._wakeup.set()
                idle = 0

    def _enforce(self, now: float) -> None:
        """Cut the sockets of every call in progress whose deadline has passed."""
        for innermost in list(self._calls.values()):  # a C-level copy: atomic under the GIL
            record: Call | None = innermost
            while record is not None:  # a nested call's outer calls are in progress too
                if record.deadline <= now and not record.expired:
                    with self._lock:
                        if not record.done:
                            record.expired = True
                            for fd in record.sockets:
                                _cut(fd)
                record = record._outer

    def _forked(self) -> None:
        """In a child process: no watchdog thread runs there, and no call is in progress."""
        self._lock = threading.Lock()
        self._calls = {}
        self._seen = False
        self._parked = True
        self._wakeup = threading.Event()
        self._thread = None


def _cut(fd: int) -> None:
    """Shut the socket ``fd`` down for both directions (a blocked read returns at once)."""
    try:
        duplicate = socket.socket(fileno=socket.dup(fd))
    except OSError:
        return
    try:
        duplicate.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        duplicate.close()


_FINDERS: Final[tuple[Callable[[Any], Any], ...]] = (
    lambda c: c.fileno(),  # psycopg (sync and async), the DBAPI's own
    lambda c: c._sock.fileno(),  # PyMySQL
    lambda c: c._writer.get_extra_info("socket").fileno(),  # asyncmy, aiomysql
)


def socket_of(connection: object) -> int | None:
    """The socket descriptor of a DBAPI connection (SQLAlchemy's async adapters are looked
    through), or ``None`` (SQLite, or a driver this module does not know)."""
    target = getattr(connection, "_connection", connection)
    for find in _FINDERS:
        with contextlib.suppress(Exception):  # not this driver's shape: try the next
            fd = find(target)
            if isinstance(fd, int) and fd >= 0:
                return fd
    return None


WATCHDOG: Final = Watchdog()
"""The process's watchdog (one thread, started by the first bounded call; a forked child
starts its own)."""
if hasattr(os, "register_at_fork"):  # pragma: no branch - every POSIX Python has it
    os.register_at_fork(after_in_child=WATCHDOG._forked)
