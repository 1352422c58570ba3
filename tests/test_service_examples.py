"""The service's example flow and benchmark script run, and say what they should.

Only outcomes are checked (never timings: those belong to ``benchmarks/``).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_runs_the_whole_service_flow() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for expected in (
        "6. Confirmation code: accepted (ok)",
        "7. Login code: accepted (ok)",
        "Same code again: refused (replayed",
        "The right code, too early: refused (throttled",
        "The right code while locked: refused (locked",
        "9. Login after 180 days: accepted (ok, renewal due)",
        "New key confirmed: accepted (ok)",
        "The old key: refused",
        "mfa_enabled",
        "user_locked",
        "credential_renewed",
        "    Recovery code: accepted (ok)",
        "9 codes left",
        "The same recovery code again: refused (replayed",
        "A code of the old set, after generating a new one: refused (invalid_code",
        "recovery_codes_generated, recovery_code_used, recovery_code_failed",
        "11. Policy: 2FA mandated for everyone",
        "CHALLENGE: ask for one of: authenticator app",
        "[mandate.all_members]",
        "ENROL REQUIRED: set up one of:",
        "Alice opens the security settings: challenge (step-up)",
    ):
        assert expected in out, expected
    assert out.count("user sees: 'invalid code'") >= 4


def test_service_benchmark_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location(
        "bench_service", ROOT / "benchmarks" / "bench_service.py"
    )
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--loops", "20", "--repeats", "1", "--sqlite-loops", "10"]) == 0
    out = capsys.readouterr().out
    assert "MFAService.verify`, memory store" in out and "SQLite file" in out
    assert "verifies/s" in out
    assert sum(line.startswith(("PASS", "FAIL")) for line in out.splitlines()) == 1
