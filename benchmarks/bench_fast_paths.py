"""The fast paths of ``mfa_core.otp`` against the checked paths they skip, side by side.

Run from the repository root::

    .venv/bin/python benchmarks/bench_fast_paths.py            # about 10 s
    .venv/bin/python benchmarks/bench_fast_paths.py --quick    # about 2 s

A fast path exists only for speed: it handles the usual valid call inline, by the same
rules as the checked path, which handles everything (``tests/test_otp_pins.py`` checks that
every valid usual call takes the fast path and that anything else falls through). Each one
is kept only while this benchmark shows it pays on the call it serves; the project removed
the others (``docs/mutation.md``). For each case the public function (fast path) and the
checked function are timed on the same valid input, in interleaved rounds; the best round
counts. Timings on a shared machine are noisy: compare the ratio, not the nanoseconds.
"""

from __future__ import annotations

import argparse
import gc
import platform
import sys
import time
from collections.abc import Callable

from mfa_core import otp
from mfa_core.otp import normalize_code, time_step, totp, verify_totp

KEY = b"12345678901234567890"
NOW = 1_700_000_015
CODE = totp(KEY, NOW)

# (case, the public call taking the fast path, the checked path on the same input)
CASES: list[tuple[str, Callable[[], object], Callable[[], object]]] = [
    (
        "verify_totp, window +-1",
        lambda: verify_totp(KEY, CODE, NOW),
        lambda: otp._verify_totp_checked(KEY, CODE, NOW, 6, "SHA1", 30, 0, 1, 1, False),
    ),
    (
        "time_step",
        lambda: time_step(NOW, period=30),
        lambda: otp._time_step_checked(NOW, 30, 0),
    ),
    (
        "normalize_code",
        lambda: normalize_code(CODE, 6),
        lambda: otp._normalize_checked(CODE, 6),
    ),
]


def _round(call: Callable[[], object], loops: int) -> float:
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for _ in range(loops):
            call()
        return (time.perf_counter_ns() - start) / loops
    finally:
        gc.enable()


def main(argv: list[str] | None = None) -> int:
    """Print ns per call for both paths of each case and the ratio checked / fast."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer loops and rounds")
    parser.add_argument("--loops", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)
    loops = args.loops or (2_000 if args.quick else 20_000)
    repeats = args.repeats or (5 if args.quick else 15)
    print(f"Python {platform.python_version()}, {loops} calls x {repeats} rounds (best)")
    print(f"{'case':26s} {'fast ns':>9s} {'checked ns':>11s} {'checked/fast':>13s}")
    for name, fast, checked in CASES:
        assert fast() == checked(), name  # the same answer on the same input
        best_fast = best_checked = float("inf")
        for _ in range(repeats):
            best_fast = min(best_fast, _round(fast, loops))
            best_checked = min(best_checked, _round(checked, loops))
        ratio = best_checked / best_fast
        print(f"{name:26s} {best_fast:9.0f} {best_checked:11.0f} {ratio:13.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
