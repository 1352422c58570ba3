"""Properties of the service's window arithmetic and matching (``mfa_core.service._windows``).

Each function is checked against a plain reference written with the public ``hotp``
primitive, and for constant work (every value of the window computed, wherever a match is).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mfa_core.otp import MAX_COUNTER, MAX_WINDOW, HOTPState, hotp
from mfa_core.service._windows import (
    WindowScan,
    clamp_drift,
    find_consecutive,
    hotp_window,
    scan_window,
    totp_window,
)

KEY = bytes(range(1, 21))
small = st.integers(min_value=0, max_value=MAX_WINDOW)
counters = st.integers(min_value=0, max_value=10**6)


class CountingState(HOTPState):
    """An HOTPState that counts the codes computed, and the values each range covered."""

    calls: int
    covered: list[int]

    def __init__(self, key: bytes) -> None:
        super().__init__(key, "SHA1", 6)
        self.calls = 0
        self.covered = []

    def code(self, counter: int) -> str:
        self.calls += 1
        self.covered.append(counter)
        return super().code(counter)

    def match(self, candidate: bytes, first: int, last: int) -> int | None:
        # HOTPState.match computes every value of its range (tested with otp.py).
        self.calls += max(last - first + 1, 0)
        self.covered.extend(range(first, last + 1))
        return super().match(candidate, first, last)


@given(st.integers(-(10**6), 10**6), small)
def test_clamp_drift_is_bounded_and_identity_inside(offset: int, bound: int) -> None:
    clamped = clamp_drift(offset, bound)
    assert -bound <= clamped <= bound
    if -bound <= offset <= bound:
        assert clamped == offset
    else:
        assert clamped == (bound if offset > 0 else -bound)


@pytest.mark.standard(
    "RFC6238-5.2", "the window is a few steps around now (plus the learned drift)"
)
@given(counters, st.integers(-300, 300), small, small, small)
def test_totp_window_is_centred_on_step_plus_bounded_drift(
    step: int, drift: int, behind: int, ahead: int, max_drift: int
) -> None:
    centre, first, last = totp_window(
        step, drift, look_behind=behind, look_ahead=ahead, max_drift=max_drift
    )
    assert centre == max(step + clamp_drift(drift, max_drift), 0)
    assert first == max(centre - behind, 0)
    assert last == centre + ahead
    assert first <= centre <= last
    assert abs(centre - step) <= max_drift


def test_totp_window_stays_in_counter_range() -> None:
    assert totp_window(MAX_COUNTER, 5, look_behind=1, look_ahead=3, max_drift=10) == (
        MAX_COUNTER,
        MAX_COUNTER - 1,
        MAX_COUNTER,
    )
    assert totp_window(0, -5, look_behind=2, look_ahead=1, max_drift=10) == (0, 0, 1)


@given(st.integers(-(2**65), 2**65), st.integers(-300, 300))
def test_clamp_drift_equals_the_min_max_formula(offset: int, bound: int) -> None:
    """The conditional-expression spelling is exactly ``max(-b, min(b, offset))`` (also
    for a negative bound)."""
    assert clamp_drift(offset, bound) == max(-bound, min(bound, offset))


@given(st.integers(-(2**65), 2**65), st.integers(-300, 300), small, small, small)
def test_totp_window_equals_the_min_max_formulas(
    step: int, drift: int, behind: int, ahead: int, max_drift: int
) -> None:
    """The conditional-expression spelling is exactly the min()/max() one (also out of
    range: negative steps and steps past the counter range)."""
    centre = min(max(step + max(-max_drift, min(max_drift, drift)), 0), MAX_COUNTER)
    expected = (centre, max(centre - behind, 0), min(centre + ahead, MAX_COUNTER))
    got = totp_window(step, drift, look_behind=behind, look_ahead=ahead, max_drift=max_drift)
    assert got == expected


@pytest.mark.standard("RFC4226-7.2", "the HOTP window is the expected counter plus the look-ahead")
@given(st.integers(-1, 10**6), small)
def test_hotp_window_covers_last_accepted_and_look_ahead(last_accepted: int, ahead: int) -> None:
    expected, first, last = hotp_window(last_accepted, ahead)
    assert expected == last_accepted + 1
    assert first == max(last_accepted, 0)
    assert last == expected + ahead


def _reference_scan(first: int, last: int, candidate: bytes, last_accepted: int) -> WindowScan:
    matches = [c for c in range(first, last + 1) if hotp(KEY, c).encode() == candidate]
    fresh = [c for c in matches if c > last_accepted]
    return WindowScan(
        fresh=min(fresh) if fresh else None, stale=any(c <= last_accepted for c in matches)
    )


@settings(max_examples=150)
@given(
    st.integers(0, 10**5),
    st.integers(0, 12),
    st.integers(-1, 10**5 + 12),
    st.one_of(st.integers(0, 10**5 + 12), st.just(None)),
)
def test_scan_window_matches_reference_and_does_constant_work(
    first: int, width: int, last_accepted: int, target: int | None
) -> None:
    last = first + width
    candidate = hotp(KEY, target).encode() if target is not None else b"000000"
    state = CountingState(KEY)
    scan = scan_window(state, candidate, first, last, last_accepted)
    assert scan == _reference_scan(first, last, candidate, last_accepted)
    # Every value of the window is computed; only a replay costs a second look.
    assert set(state.covered) == set(range(first, last + 1))
    if not scan.stale:
        assert state.calls == width + 1


def test_scan_window_reports_replay_and_fresh_together() -> None:
    # A candidate matching at or below last_accepted is stale; above it, fresh.
    code = hotp(KEY, 7).encode()
    assert scan_window(HOTPState(KEY, "SHA1", 6), code, 5, 9, 7) == WindowScan(None, True)
    assert scan_window(HOTPState(KEY, "SHA1", 6), code, 5, 9, 6) == WindowScan(7, False)


def _reference_pair(first: int, last: int, one: bytes, two: bytes) -> int | None:
    for c in range(first, last + 1):
        if hotp(KEY, c).encode() == one and hotp(KEY, c + 1).encode() == two:
            return c + 1
    return None


@settings(max_examples=100)
@given(st.integers(0, 10**5), st.integers(0, 40), st.integers(-3, 45), st.booleans())
def test_find_consecutive_matches_reference(first: int, width: int, at: int, swap: bool) -> None:
    last = first + width
    c = max(first + at, 0)
    one, two = hotp(KEY, c).encode(), hotp(KEY, c + 1).encode()
    if swap:
        one, two = two, one
    state = CountingState(KEY)
    found = find_consecutive(state, one, two, first, last)
    assert found == _reference_pair(first, last, one, two)
    assert state.calls == width + 2
    if not swap and first <= c <= last:
        assert found is not None and found <= c + 1


@pytest.mark.standard(
    "RFC4226-7.4", "resynchronisation needs both consecutive codes inside the window"
)
def test_find_consecutive_needs_the_pair_inside_the_window() -> None:
    one, two = hotp(KEY, 50).encode(), hotp(KEY, 51).encode()
    state = HOTPState(KEY, "SHA1", 6)
    assert find_consecutive(state, one, two, 0, 49) is None
    assert find_consecutive(state, one, two, 0, 50) == 51
    assert find_consecutive(state, one, two, 51, 100) is None
    assert find_consecutive(state, one, one, 0, 100) is None
