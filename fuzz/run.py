"""Run the atheris harnesses one after another, each for a number of seconds.

    python fuzz/run.py --seconds 4                 # the CI smoke run (every harness)
    python fuzz/run.py --seconds 600 parse_uri     # a long run of one harness
    python fuzz/run.py --seconds 1700 --runs 1000000 service   # to 10**6 inputs

Each harness starts from its seed corpus (``fuzz/corpus/NAME/``, read only) and writes the
units it finds to a work folder (``--work``, a temporary one by default), so the repository
is never changed. A crash, an escaping exception, a refused oracle or an input slower than
a second stops that harness with a reproducer in the work folder; the script then exits 1.
It prints the iterations run per harness.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
HARNESSES = (
    "parse_uri",
    "b32decode_key",
    "normalize_code",
    "verify_otp",
    "policy",
    "recovery",
    "oob",
    "cli",
    "service",
    "oob_service",
    "store_rows",
)
_UNITS = re.compile(rb"stat::number_of_executed_units:\s*(\d+)")


def run_one(name: str, seconds: int, work: Path, runs: int | None = None) -> tuple[bool, int]:
    """Fuzz harness ``name`` for ``seconds`` (or until ``runs`` inputs, if sooner); return
    (clean, iterations)."""
    found = work / name
    found.mkdir(parents=True, exist_ok=True)
    seeds = HERE / "corpus" / name
    command = [
        sys.executable,
        str(HERE / f"fuzz_{name}.py"),
        str(found),
        *([str(seeds)] if seeds.is_dir() else []),
        f"-max_total_time={seconds}",
        *([f"-runs={runs}"] if runs is not None else []),
        "-timeout=5",
        "-rss_limit_mb=2048",
        "-print_final_stats=1",
        f"-artifact_prefix={found}/",
    ]
    result = subprocess.run(command, capture_output=True, cwd=HERE, check=False)  # noqa: S603
    match = _UNITS.search(result.stderr)
    iterations = int(match.group(1)) if match else 0
    if result.returncode != 0:
        sys.stderr.write(result.stderr.decode("utf-8", "replace")[-4000:])
    return result.returncode == 0, iterations


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="seconds per harness")
    parser.add_argument("--work", type=Path, default=None, help="folder for new units")
    parser.add_argument("--runs", type=int, default=None, help="stop each harness after N inputs")
    parser.add_argument("names", nargs="*", choices=(*HARNESSES, []), help="harnesses to run")
    args = parser.parse_args()
    names = args.names or list(HARNESSES)
    work = args.work or Path(tempfile.mkdtemp(prefix="mfa-core-fuzz-"))
    failed = []
    for name in names:
        started = time.monotonic()
        clean, iterations = run_one(name, args.seconds, work, args.runs)
        took = max(time.monotonic() - started, 1e-9)
        print(
            f"fuzz {name}: {iterations} inputs in {took:.0f} s ({iterations / took:,.0f}/s), "
            + ("0 findings" if clean else "FINDING")
        )
        if not clean:
            failed.append(name)
    print(f"fuzz: {len(names) - len(failed)} harnesses clean, {len(failed)} with findings")
    if failed:
        print(f"reproducers in {work}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
