"""Mutation testing of the pure core: mutmut 3, one module at a time, against its own tests.

Usage (from the repository root, with the dev extra installed)::

    .venv/bin/python tools/mutation.py                  # every module, report, gate
    .venv/bin/python tools/mutation.py otp throttle     # some modules (by short name)
    .venv/bin/python tools/mutation.py --survivors      # also print each survivor's diff

The modules, their test files and the minimum score live in ``pyproject.toml`` under
``[tool.mutmut.pure]`` (mutmut itself reads only its own keys of ``[tool.mutmut]``). For
each module a scratch copy of ``src/``, ``tests/``, ``docs/`` and ``pyproject.toml`` is
made, with ``only_mutate`` and the test selection of that module written into its
``[tool.mutmut]`` table, and ``mutmut run`` mutates the module from scratch there:
nothing is cached between runs, so every run is a full measurement. Under mutation the tests see
``MFA_MUTATION=1``: ``tests/conftest.py`` then loads a small, derandomised hypothesis
profile, and tests marked ``slow`` are skipped.

The report (stdout, and ``--report FILE`` as Markdown) gives per module the mutants
generated, killed, survived (``no tests`` and ``suspicious`` count as survived) and the
score ``killed / (generated - skipped)``; timeouts count as killed (a mutant that loops for
ever is noticed). The exit status is 1 when any module's score is below the threshold.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# mutmut's exit codes per mutant (mutmut/stats.py): 1 and 3 killed, 0 survived, 33/5 no
# tests, 34 skipped, 36/24/-24/152/255 timeout, 37 caught by the type checker.
_KILLED = {1, 3, 37}
_TIMEOUT = {36, 24, -24, 152, 255}
_SKIPPED = {34}


@dataclass
class Result:
    """The figures of one module's run."""

    module: str
    path: str
    generated: int
    killed: int
    survived: int
    skipped: int
    seconds: float
    survivors: list[str]

    @property
    def score(self) -> float:
        """Killed (timeouts included) out of the mutants that were tested, in percent."""
        tested = self.generated - self.skipped
        return 100.0 if tested <= 0 else 100.0 * self.killed / tested


def _settings() -> dict[str, object]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    pure: dict[str, object] = data["tool"]["mutmut"]["pure"]
    return pure


def _toml_list(values: list[str]) -> str:
    # json.dumps of a str is a valid TOML basic string.
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def _scratch_pyproject(text: str, module_path: str, tests: list[str]) -> str:
    """``pyproject.toml`` with this module's ``only_mutate`` and test selection."""
    header = re.search(r"^\[tool\.mutmut\]\s*$", text, re.MULTILINE)
    if header is None:
        raise SystemExit("pyproject.toml has no [tool.mutmut] table")
    for key in ("only_mutate", "pytest_add_cli_args_test_selection"):
        if re.search(rf"^{key}\s*=", text, re.MULTILINE):
            raise SystemExit(f"[tool.mutmut] must not set {key}: tools/mutation.py sets it")
    added = (
        f"\nonly_mutate = {_toml_list([module_path])}\n"
        f"pytest_add_cli_args_test_selection = {_toml_list(tests)}\n"
    )
    return text[: header.end()] + added + text[header.end() :]


def _read_results(work: Path, module_path: str) -> tuple[dict[str, int | None], float]:
    meta = work / "mutants" / (module_path + ".meta")
    data = json.loads(meta.read_text("utf-8"))
    codes: dict[str, int | None] = data["exit_code_by_key"]
    return codes, 0.0


def run_module(
    name: str, module_path: str, tests: list[str], *, jobs: int, show: bool, tree: Path = ROOT
) -> Result:
    """Mutate ``module_path`` in a scratch copy and run ``tests`` against every mutant."""
    started = time.monotonic()
    missing = [test for test in tests if not (tree / test).exists()]
    if missing and tree == ROOT:
        raise SystemExit(f"{name}: no such test file: {', '.join(missing)}")
    tests = [test for test in tests if test not in missing]  # an older --tree lacks some
    with tempfile.TemporaryDirectory(prefix=f"mutation-{name}-") as scratch:
        work = Path(scratch)
        shutil.copytree(tree / "src", work / "src", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(
            tree / "tests",
            work / "tests",
            ignore=shutil.ignore_patterns("__pycache__", ".hypothesis"),
        )
        # docs/: some tests compare generated text with a page (docs/lifecycle.md).
        shutil.copytree(tree / "docs", work / "docs", ignore=shutil.ignore_patterns("_build"))
        text = (ROOT / "pyproject.toml").read_text("utf-8")
        (work / "pyproject.toml").write_text(_scratch_pyproject(text, module_path, tests))
        env = dict(os.environ, MFA_MUTATION="1", PYTHONDONTWRITEBYTECODE="1")
        command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs)]
        done = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
            command, cwd=work, env=env, capture_output=True, text=True, check=False
        )
        meta = work / "mutants" / (module_path + ".meta")
        if done.returncode != 0 or not meta.exists():
            sys.stdout.write(done.stdout[-4000:] + done.stderr[-4000:])
            raise SystemExit(f"mutmut failed on {module_path} (exit {done.returncode})")
        codes, _ = _read_results(work, module_path)
        survivors = sorted(
            key
            for key, code in codes.items()
            if code not in _KILLED and code not in _TIMEOUT and code not in _SKIPPED
        )
        if show:
            for key in survivors:
                diff = subprocess.run(  # noqa: S603
                    [sys.executable, "-m", "mutmut", "show", key],
                    cwd=work,
                    env=env,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                sys.stdout.write(f"--- {key} (exit {codes[key]})\n{diff.stdout}\n")
    killed = sum(1 for c in codes.values() if c in _KILLED or c in _TIMEOUT)
    skipped = sum(1 for c in codes.values() if c in _SKIPPED)
    return Result(
        module=name,
        path=module_path,
        generated=len(codes),
        killed=killed,
        survived=len(codes) - killed - skipped,
        skipped=skipped,
        seconds=time.monotonic() - started,
        survivors=survivors,
    )


def _table(results: list[Result], threshold: float) -> str:
    lines = [
        "| module | generated | killed | survived | score | seconds |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        flag = "" if r.score >= threshold else " (below the threshold)"
        lines.append(
            f"| {r.module} (`{r.path}`) | {r.generated} | {r.killed} | {r.survived} "
            f"| {r.score:.1f}%{flag} | {r.seconds:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the selected modules, print the report, return 1 if a score is too low."""
    settings = _settings()
    modules: dict[str, dict[str, object]] = settings["modules"]  # type: ignore[assignment]
    threshold = float(settings["threshold"])  # type: ignore[arg-type]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", choices=[[], *modules], default=[])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--survivors", action="store_true", help="print each survivor")
    parser.add_argument("--report", type=Path, help="also write the report here (Markdown)")
    parser.add_argument(
        "--tree",
        type=Path,
        default=ROOT,
        help="take src/ and tests/ from this checkout (e.g. to measure another commit)",
    )
    args = parser.parse_args(argv)
    chosen = args.modules or list(modules)
    results = []
    for name in chosen:
        entry = modules[name]
        result = run_module(
            name,
            str(entry["path"]),
            [str(t) for t in entry["tests"]],  # type: ignore[attr-defined]
            jobs=args.jobs,
            show=args.survivors,
            tree=args.tree.resolve(),
        )
        results.append(result)
        print(
            f"{name}: {result.killed}/{result.generated - result.skipped} killed "
            f"({result.score:.1f}%), {result.survived} survived, {result.seconds:.0f} s",
            flush=True,
        )
        if result.survivors and not args.survivors:
            print("  survivors: " + " ".join(result.survivors), flush=True)
    report = _table(results, threshold)
    print()
    print(report)
    if args.report:
        args.report.write_text(
            f"# Mutation testing report (threshold {threshold:g}%)\n\n{report}\n", "utf-8"
        )
    low = [r.module for r in results if r.score < threshold]
    if low:
        print(f"\nmutation score below {threshold:g}%: {', '.join(low)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
