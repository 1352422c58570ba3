"""The SQL stores' watchdog (:mod:`mfa_core.stores._deadline`) on its own, with real sockets:
a call past its deadline has its sockets shut down (a blocked read returns at once), a call
that ended in time is never cut (its socket goes back to a pool and to other calls), an
outer call's deadline holds while a nested call runs, the thread parks when idle and wakes
for the next call, and a forked child enforces its own calls.

The stores' own bounded-call tests (a stopped PostgreSQL or MariaDB, a black-holed port)
are in tests/test_sql_bounded.py; these pin the mechanism they rest on.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator

import pytest

from mfa_core.stores import _deadline
from mfa_core.stores._deadline import Watchdog

SLACK = 1.0
"""How late a cut may come on a loaded machine (the watchdog looks every 20 ms)."""


class _Connection:
    """A DBAPI-shaped object whose socket is one end of a socket pair."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def fileno(self) -> int:
        return self._sock.fileno()


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    left, right = socket.socketpair()
    try:
        yield left, right
    finally:
        left.close()
        right.close()


def _blocked_read_ends(sock: socket.socket, within: float) -> float:
    """Seconds until a read on ``sock`` (nothing is ever sent) returned; fails past ``within``."""
    sock.settimeout(within)
    start = time.monotonic()
    try:
        data = sock.recv(1)
    except TimeoutError:
        pytest.fail(f"the read was not cut within {within} s")
    assert data == b""  # shut down, not data
    return time.monotonic() - start


def test_a_call_past_its_deadline_has_its_socket_cut(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    watchdog = Watchdog()
    with watchdog.call(0.2) as call:
        watchdog.attach(_Connection(pair[0]))
        took = _blocked_read_ends(pair[0], 0.2 + SLACK)
        assert call.expired
    assert took >= 0.15


def test_a_call_that_ended_in_time_is_never_cut(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    watchdog = Watchdog()
    with watchdog.call(0.1) as call:
        watchdog.attach(_Connection(pair[0]))
    time.sleep(0.4)  # well past the deadline
    assert not call.expired
    pair[1].sendall(b"x")
    pair[0].settimeout(1.0)
    assert pair[0].recv(1) == b"x"  # the socket still works


def test_a_socket_attached_outside_any_call_is_ignored(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    watchdog = Watchdog()
    watchdog.attach(_Connection(pair[0]))  # no call in progress: nothing registered
    with watchdog.call(0.1):
        pass
    time.sleep(0.3)
    pair[1].sendall(b"y")
    pair[0].settimeout(1.0)
    assert pair[0].recv(1) == b"y"


def test_an_outer_deadline_holds_while_a_nested_call_runs(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    watchdog = Watchdog()
    with watchdog.call(0.2) as outer:
        watchdog.attach(_Connection(pair[0]))
        with watchdog.call(30.0) as inner:
            _blocked_read_ends(pair[0], 0.2 + SLACK)
            assert outer.expired and not inner.expired
        assert watchdog._calls[_deadline._current()] is outer  # the outer call again
    assert _deadline._current() not in watchdog._calls


def test_the_thread_parks_when_idle_and_the_next_call_wakes_it(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    watchdog = Watchdog()
    with watchdog.call(5.0):
        pass
    idle = _deadline._TICK * _deadline._IDLE_TICKS
    limit = time.monotonic() + idle + 5.0
    while not watchdog._parked:
        assert time.monotonic() < limit, "the watchdog never parked"
        time.sleep(0.05)
    with watchdog.call(0.2) as call:
        watchdog.attach(_Connection(pair[0]))
        _blocked_read_ends(pair[0], 0.2 + SLACK)
        assert call.expired


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_enforces_its_own_calls() -> None:
    """The process's watchdog, running in the parent, does not run in a forked child:
    the child's first bounded call starts a watchdog there, which cuts it."""
    watchdog = _deadline.WATCHDOG
    with watchdog.call(5.0):  # the parent's thread runs
        pass
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        status = 1
        try:
            left, _right = socket.socketpair()
            with watchdog.call(0.2) as call:
                watchdog.attach(_Connection(left))
                left.settimeout(0.2 + SLACK)
                cut = left.recv(1) == b"" and call.expired
            status = 0 if cut else 2
        except BaseException:
            status = 3
        finally:
            os.write(write, bytes([status]))
            os._exit(0)
    os.close(write)
    try:
        reported = os.read(read, 1)
    finally:
        os.close(read)
        os.waitpid(child, 0)
    assert reported == b"\x00", f"the child's call was not cut (status {reported!r})"
