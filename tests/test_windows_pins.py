"""Pins of the service's window arithmetic, ``mfa_core.service._windows`` (issue 17).

Exact windows at both ends of the counter range, and the HOTP re-search after a replayed
value when two counters in the window share a code. Mutation testing
(``tools/mutation.py``) runs this file against ``src/mfa_core/service/_windows.py``.
"""

from __future__ import annotations

from mfa_core.otp import MAX_COUNTER, HOTPState
from mfa_core.service._windows import (
    WindowScan,
    clamp_drift,
    find_consecutive,
    find_skew,
    hotp_window,
    scan_window,
    scan_window_values,
    totp_window,
)

KEY = b"12345678901234567890"  # RFC 4226 Appendix D
STATE = HOTPState(KEY, "SHA1", 6)
# Counters 2386 and 2394 of this key share the code 709847 (tests/test_otp_pins.py).
TWIN = b"709847"


def test_clamp_drift_exactly() -> None:
    assert [clamp_drift(o, 2) for o in (-5, -2, -1, 0, 1, 2, 5)] == [-2, -2, -1, 0, 1, 2, 2]
    assert clamp_drift(7, 0) == 0 and clamp_drift(-7, 0) == 0


def test_totp_window_exactly() -> None:
    assert totp_window(100, 0, look_behind=1, look_ahead=1, max_drift=2) == (100, 99, 101)
    assert totp_window(100, 5, look_behind=1, look_ahead=2, max_drift=2) == (102, 101, 104)
    assert totp_window(100, -5, look_behind=3, look_ahead=0, max_drift=2) == (98, 95, 98)
    assert totp_window(100, 1, look_behind=0, look_ahead=0, max_drift=2) == (101, 101, 101)
    assert totp_window(1, -5, look_behind=1, look_ahead=1, max_drift=3) == (0, 0, 1)
    assert totp_window(2, -1, look_behind=5, look_ahead=1, max_drift=3) == (1, 0, 2)
    top = MAX_COUNTER
    assert totp_window(top, 3, look_behind=1, look_ahead=1, max_drift=3) == (top, top - 1, top)
    assert totp_window(top - 1, 0, look_behind=0, look_ahead=4, max_drift=0) == (
        top - 1,
        top - 1,
        top,
    )


def test_hotp_window_exactly() -> None:
    assert hotp_window(-1, 0) == (0, 0, 0)
    assert hotp_window(-1, 3) == (0, 0, 3)
    assert hotp_window(9, 2) == (10, 9, 12)
    assert hotp_window(MAX_COUNTER - 1, 5) == (MAX_COUNTER, MAX_COUNTER - 1, MAX_COUNTER)
    assert hotp_window(MAX_COUNTER, 5) == (MAX_COUNTER, MAX_COUNTER, MAX_COUNTER)


def test_the_twin_counters() -> None:
    assert STATE.code(2386) == STATE.code(2394) == TWIN.decode()
    assert len({STATE.code(c) for c in range(2380, 2401)}) == 20  # the only repeat


def test_a_replay_re_searches_above_the_last_accepted_value() -> None:
    # The first match (2386) is already used: the window is searched again above it.
    assert scan_window_values(STATE, TWIN, 2386, 2400, 2386) == (2394, True)
    assert scan_window_values(STATE, TWIN, 2380, 2400, 2390) == (2394, True)
    assert scan_window_values(STATE, TWIN, 2380, 2400, 2393) == (2394, True)
    assert scan_window_values(STATE, TWIN, 2380, 2400, 2394) == (None, True)
    assert scan_window_values(STATE, TWIN, 2380, 2394, 2393) == (2394, True)
    assert scan_window_values(STATE, TWIN, 2380, 2393, 2390) == (None, True)
    # The last accepted value is the end of the window: nothing above it to search.
    assert scan_window_values(STATE, TWIN, 2380, 2386, 2386) == (None, True)
    top = STATE.code(MAX_COUNTER).encode()
    assert scan_window_values(STATE, top, MAX_COUNTER - 1, MAX_COUNTER, MAX_COUNTER) == (
        None,
        True,
    )
    # Nothing used yet: the first match is fresh.
    assert scan_window_values(STATE, TWIN, 2380, 2400, 2385) == (2386, False)
    assert scan_window_values(STATE, TWIN, 2387, 2400, 2386) == (2394, False)
    assert scan_window_values(STATE, b"000000", 2380, 2400, 2385) == (None, False)
    assert scan_window(STATE, TWIN, 2386, 2400, 2386) == WindowScan(fresh=2394, stale=True)
    assert scan_window(STATE, b"000000", 0, 3, -1) == WindowScan(fresh=None, stale=False)


def test_find_consecutive_exactly() -> None:
    codes = [STATE.code(c).encode() for c in range(0, 12)]
    assert find_consecutive(STATE, codes[3], codes[4], 0, 10) == 4
    assert find_consecutive(STATE, codes[3], codes[4], 3, 3) == 4  # the pair's end past last
    assert find_consecutive(STATE, codes[3], codes[4], 4, 10) is None
    assert find_consecutive(STATE, codes[10], codes[11], 0, 10) == 11
    assert find_consecutive(STATE, codes[11], codes[0], 0, 11) is None
    assert find_consecutive(STATE, codes[4], codes[3], 0, 10) is None
    assert find_consecutive(STATE, codes[0], codes[1], 0, 0) == 1
    # With the twins, the smallest first counter wins.
    twin_next = STATE.code(2395).encode()
    assert find_consecutive(STATE, TWIN, twin_next, 2380, 2400) == 2395
    assert find_consecutive(STATE, TWIN, STATE.code(2387).encode(), 2380, 2400) == 2387
    top = MAX_COUNTER
    high = [STATE.code(c).encode() for c in (top - 1, top)]
    assert find_consecutive(STATE, high[0], high[1], top - 3, top) == top
    assert find_consecutive(STATE, high[1], high[0], top - 3, top) is None


def _skew_reference(
    state: HOTPState, candidate: bytes, first: int, last: int, reach: int, budget: int
) -> tuple[int | None, int]:
    """find_skew restated: the order of the steps and the count of codes computed."""
    order = [s for d in range(1, reach + 1) for s in (first - d, last + d)]
    computed = 0
    for step in order:
        if computed >= budget:
            return None, computed
        if step < 0 or step > MAX_COUNTER:
            continue
        computed += 1
        if state.code(step).encode("ascii") == candidate:
            return step, computed
    return None, computed


def test_find_skew_exactly() -> None:
    first, last = 1000, 1002
    for distance in (1, 2, 5):
        behind = STATE.code(first - distance).encode("ascii")
        ahead = STATE.code(last + distance).encode("ascii")
        # nearest first, behind before ahead: 2d - 1 codes for behind, 2d for ahead
        assert find_skew(STATE, behind, first, last, 5, 100) == (first - distance, 2 * distance - 1)
        assert find_skew(STATE, ahead, first, last, 5, 100) == (last + distance, 2 * distance)
    beyond = STATE.code(last + 6).encode("ascii")
    assert find_skew(STATE, beyond, first, last, 5, 100) == (None, 10)  # reach is 5 a side
    assert find_skew(STATE, beyond, first, last, 6, 100) == (last + 6, 12)
    # the budget: exactly enough, one short
    assert find_skew(STATE, beyond, first, last, 6, 12) == (last + 6, 12)
    assert find_skew(STATE, beyond, first, last, 6, 11) == (None, 11)
    inside = STATE.code(first).encode("ascii")  # in the window: never a skew
    assert find_skew(STATE, inside, first, last, 3, 100) == (None, 6)
    assert find_skew(STATE, b"", first, last, 0, 100) == (None, 0)


def test_find_skew_skips_steps_outside_the_counter_range() -> None:
    # Steps below 0 and above MAX_COUNTER are neither computed nor counted.
    zero = STATE.code(0).encode("ascii")
    assert find_skew(STATE, zero, 2, 3, 4, 100) == (0, 3)  # 1, 4, 0
    assert find_skew(STATE, b"x", 1, 1, 3, 100) == (None, 4)  # 0, 2, 3, 4
    top = MAX_COUNTER
    high = STATE.code(top).encode("ascii")
    assert find_skew(STATE, high, top - 3, top - 2, 4, 100) == (top, 4)  # -4, -1, -5, top
    assert find_skew(STATE, b"x", top - 1, top - 1, 3, 100) == (None, 4)


def test_find_skew_agrees_with_the_reference_on_twin_codes() -> None:
    # Counters 2386 and 2394 share a code: the nearer one is reported.
    for first, last in ((2390, 2390), (2388, 2392), (2387, 2393), (2380, 2385)):
        for reach in (1, 3, 8, 12):
            for budget in (1, 4, 9, 30):
                got = find_skew(STATE, TWIN, first, last, reach, budget)
                assert got == _skew_reference(STATE, TWIN, first, last, reach, budget)


def test_find_consecutive_never_pairs_the_last_code_with_the_first() -> None:
    # The first value has no predecessor. Here the window's codes (2386 .. 2394) begin and
    # end with the same code, TWIN: asking for the pair (TWIN, TWIN) must not wrap around.
    first, last = 2386, 2393
    assert STATE.code(first).encode("ascii") == STATE.code(last + 1).encode("ascii") == TWIN
    assert STATE.code(first + 1).encode("ascii") != TWIN
    assert find_consecutive(STATE, TWIN, TWIN, first, last) is None
    after = STATE.code(first + 1).encode("ascii")
    assert find_consecutive(STATE, TWIN, after, first, last) == first + 1
