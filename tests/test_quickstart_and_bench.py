"""The quickstart runs non-interactively, and the benchmark script still works.

The benchmark is run for a handful of calls only: this checks that every library it
compares gives the expected answer for each case and that the report prints, never how
fast anything is (timings belong to ``benchmarks/``, not to assertions).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quickstart_runs_without_input() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "otpauth://totp/" in done.stdout
    assert "-14 steps, -420 s" in done.stdout  # the clock-skew diagnosis
    assert "SMS factor for ***67" in done.stdout and "Login code by SMS: accepted" in done.stdout


def test_benchmark_script_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    bench = _load(ROOT / "benchmarks" / "bench_otp.py")
    assert bench.main(["--loops", "3", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    for case in bench.build_cases():
        assert case in out
    verdicts = [line for line in out.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert len(verdicts) == 2 * len(bench.TARGETS)
