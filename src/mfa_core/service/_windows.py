"""Window arithmetic and constant-work code matching for :class:`~mfa_core.service.MFAService`.

Pure functions, no I/O and no clock: the service passes the time step, the stored
``last_accepted`` value and the learned drift in, and writes the outcome through its store.

* TOTP (RFC 6238 §5.2, §6): the window is centred on ``current step + learned drift``, the
  drift bounded by ``max_drift``; a match's distance from the current step becomes the new
  drift (again bounded), so the window follows a clock that wanders slowly.
* HOTP (RFC 4226 §7.2, §7.4): the window runs from the next expected counter over
  ``look_ahead`` further values, plus the last accepted counter itself so that a replay of
  the last code is recognised as one. Resynchronisation looks for two consecutive codes.

Every value in a window is computed and compared with :func:`hmac.compare_digest`,
whether or not, and wherever, a code matches.
"""

from __future__ import annotations

import hmac

import attrs

from ..otp import MAX_COUNTER, HOTPState

__all__ = [
    "WindowScan",
    "clamp_drift",
    "find_consecutive",
    "find_skew",
    "hotp_window",
    "scan_window",
    "scan_window_values",
    "totp_window",
]


@attrs.frozen
class WindowScan:
    """What a window scan found: a usable match and/or a match that was already used."""

    fresh: int | None
    """Smallest matching value greater than ``last_accepted`` (``None``: no such match)."""
    stale: bool
    """Some value not greater than ``last_accepted`` matched: a replayed or older code."""


def clamp_drift(offset: int, max_drift: int) -> int:
    """Return ``offset`` limited to ``-max_drift .. max_drift``."""
    return max(-max_drift, min(max_drift, offset))


def totp_window(
    step: int, drift: int, *, look_behind: int, look_ahead: int, max_drift: int
) -> tuple[int, int, int]:
    """Return ``(centre, first, last)`` of the TOTP window for the current ``step``.

    The centre is ``step + drift`` with ``drift`` clamped to ``±max_drift``; the window runs
    from ``look_behind`` steps before the centre to ``look_ahead`` after it, cut to the
    valid counter range ``0 .. 2**64-1``.
    """
    centre = min(max(step + clamp_drift(drift, max_drift), 0), MAX_COUNTER)
    return centre, max(centre - look_behind, 0), min(centre + look_ahead, MAX_COUNTER)


def hotp_window(last_accepted: int, look_ahead: int) -> tuple[int, int, int]:
    """Return ``(expected, first, last)`` of the HOTP window.

    ``expected`` is the next counter (``last_accepted + 1``); the window also holds the last
    accepted counter (so its replay is reported as one) and ``look_ahead`` values after
    ``expected``.
    """
    expected = min(last_accepted + 1, MAX_COUNTER)
    first = max(last_accepted, 0)
    last = min(expected + look_ahead, MAX_COUNTER)
    return expected, first, last


def scan_window(
    state: HOTPState, candidate: bytes, first: int, last: int, last_accepted: int
) -> WindowScan:
    """:func:`scan_window_values` as a :class:`WindowScan`."""
    fresh, stale = scan_window_values(state, candidate, first, last, last_accepted)
    return WindowScan(fresh=fresh, stale=stale)


def scan_window_values(
    state: HOTPState, candidate: bytes, first: int, last: int, last_accepted: int
) -> tuple[int | None, bool]:
    """Compare ``candidate`` with the code of every value in ``first .. last``.

    One :meth:`HOTPState.match` over the whole window computes and compares (in constant
    time) every value, whatever matches, and gives the smallest match. Only when that one
    is already used (a replay: the caller knows it submitted an old code) is the part
    above ``last_accepted`` searched once more for a fresh match. Returns ``(fresh,
    stale)``: the smallest matching value above ``last_accepted`` (or ``None``) and whether
    any value at or below it matched (RFC 6238 §5.2: a step is accepted once, and never an
    earlier one after it). A plain tuple: the service calls this on every verification.
    """
    found = state.match(candidate, first, last)
    if found is None:
        return None, False
    if found > last_accepted:
        return found, False
    fresh = state.match(candidate, last_accepted + 1, last) if last_accepted < last else None
    return fresh, True


def find_consecutive(
    state: HOTPState, first_code: bytes, second_code: bytes, first: int, last: int
) -> int | None:
    """Return the counter of ``second_code`` if the two codes are consecutive in the window.

    Looks for the smallest ``c`` in ``first .. last`` whose code is ``first_code`` and whose
    successor ``c + 1`` has ``second_code`` (RFC 4226 §7.4). The code of every value in
    ``first .. last + 1`` is computed once and each is compared with both inputs in constant
    time.
    """
    compare = hmac.compare_digest
    top = min(last + 1, MAX_COUNTER)
    codes = [state.code(value).encode() for value in range(first, top + 1)]
    firsts = [compare(code, first_code) for code in codes]
    seconds = [compare(code, second_code) for code in codes]
    found: int | None = None
    # A pair starts at most at top - 1 <= last: every start lies in the window.
    for index in range(1, len(codes)):
        if firsts[index - 1] and seconds[index] and found is None:
            found = first + index
    return found


def find_skew(
    state: HOTPState, candidate: bytes, first: int, last: int, reach: int, budget: int
) -> tuple[int | None, int]:
    """Look for ``candidate`` at steps OUTSIDE the window ``first .. last``, nearest first.

    Steps ``first - 1, last + 1, first - 2, last + 2, ...`` up to ``reach`` steps on each
    side, computing at most ``budget`` codes (each compared with
    :func:`hmac.compare_digest`). Returns the nearest matching step (``None``: none within
    the reach and the budget) and how many codes were computed. For a diagnosis only: a
    match here is never accepted.
    """
    computed = 0
    compare = hmac.compare_digest
    for distance in range(1, reach + 1):
        for step in (first - distance, last + distance):
            if computed >= budget:
                return None, computed
            if not 0 <= step <= MAX_COUNTER:
                continue
            computed += 1
            if compare(state.code(step).encode(), candidate):
                return step, computed
    return None, computed
