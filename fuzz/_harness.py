"""Shared plumbing of the atheris harnesses (see README.md).

Each harness defines ``one_input(fdp)`` that drives one untrusted entry point with a
:class:`atheris.FuzzedDataProvider` and checks the oracle itself: only an
:class:`~mfa_core.errors.MFAError` may escape the library, and nothing may be accepted that
an independent reference refuses. :func:`main` adds the third rule, a time bound per input,
and hands over to libFuzzer.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import atheris

SLOW_SECONDS = 1.0
"""An input taking more CPU time than this is a finding. CPU time, not wall time: on a
loaded machine a cheap input can wait seconds for a core (a run at nice 19 beside a CI run
reported a 60 ms input as 1.4 s). A hang is libFuzzer's ``-timeout``."""


class SlowInput(Exception):
    """An input took more than :data:`SLOW_SECONDS` of CPU time."""


def main(one_input: Callable[[Any], None]) -> None:
    """Run ``one_input`` under libFuzzer with ``sys.argv`` as its options."""

    def test_one_input(data: bytes) -> None:
        started = time.process_time()
        one_input(atheris.FuzzedDataProvider(data))
        elapsed = time.process_time() - started
        if elapsed > SLOW_SECONDS:
            raise SlowInput(f"one input took {elapsed:.2f} s")

    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


def text(fdp: Any, limit: int = 64) -> str:
    """A string of up to ``limit`` code points, lone surrogates included (sometimes)."""
    size = fdp.ConsumeIntInRange(0, limit)
    if fdp.ConsumeBool():
        return str(fdp.ConsumeUnicode(size))
    return str(fdp.ConsumeUnicodeNoSurrogates(size))


def number(fdp: Any) -> object:
    """A time-like value: usual ints and floats, huge ints, NaN/inf, bools, None, str."""
    pick = fdp.ConsumeIntInRange(0, 9)
    if pick == 0:
        return fdp.ConsumeIntInRange(0, 2**34)
    if pick == 1:
        return fdp.ConsumeFloat()
    if pick == 2:
        return fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 200))  # up to 10**480
    if pick == 3:
        return 10 ** fdp.ConsumeIntInRange(0, 400) * fdp.PickValueInList([1, -1])
    if pick == 4:
        return fdp.PickValueInList([float("nan"), float("inf"), -float("inf"), -0.0, 2.0**62])
    if pick == 5:
        return fdp.ConsumeBool()
    if pick == 6:
        return None
    if pick == 7:
        return text(fdp, 8)
    return fdp.ConsumeIntInRange(1_000_000_000, 2_000_000_000) + fdp.ConsumeProbability()
