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
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

try:
    from greenlet import getcurrent as _current  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - greenlet ships with SQLAlchemy's asyncio extra
    _current = threading.get_ident

__all__ = ["WATCHDOG", "Call", "Watchdog", "socket_of"]


class Call:
    """One call in progress: its deadline, the sockets it uses, whether it was cut."""

    __slots__ = ("deadline", "expired", "sockets")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.expired = False
        self.sockets: list[int] = []


class Watchdog:
    """The deadlines of the calls in progress and the thread that enforces them."""

    def __init__(self) -> None:
        self._lock = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, Call]] = []
        self._calls: dict[Any, Call] = {}
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def call(self, timeout: float) -> Iterator[Call]:
        """Arm a deadline ``timeout`` seconds from now for the body of the ``with`` block,
        run by this greenlet (or thread)."""
        record = Call(time.monotonic() + timeout)
        key = _current()
        with self._lock:
            outer = self._calls.get(key)
            self._calls[key] = record
            heapq.heappush(self._heap, (record.deadline, next(self._order), record))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="mfa_core-sql-watchdog", daemon=True
                )
                self._thread.start()
            elif self._heap[0][2] is record:
                self._lock.notify()
        try:
            yield record
        finally:
            with self._lock:
                record.sockets.clear()
                record.deadline = -1.0  # done: the watchdog drops it when it comes up
                if outer is None:
                    self._calls.pop(key, None)
                else:
                    self._calls[key] = outer

    def attach(self, connection: object) -> None:
        """Register the socket of the DBAPI ``connection`` with this greenlet's call (if
        one is in progress)."""
        record = self._calls.get(_current())
        if record is None:
            return
        fd = socket_of(connection)
        if fd is not None:
            with self._lock:
                if record.deadline >= 0:
                    record.sockets.append(fd)

    def _run(self) -> None:
        with self._lock:
            while True:
                while self._heap and self._heap[0][2].deadline < 0:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._lock.wait()
                    continue
                deadline, _, record = self._heap[0]
                left = deadline - time.monotonic()
                if left > 0:
                    self._lock.wait(left)
                    continue
                heapq.heappop(self._heap)
                if record.deadline < 0:
                    continue
                record.expired = True
                for fd in record.sockets:
                    _cut(fd)


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
"""The process's watchdog (one thread, started by the first bounded call)."""
