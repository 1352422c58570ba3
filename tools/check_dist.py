"""Check what the built wheel and sdist hold: ``python tools/check_dist.py DIST_DIR``.

`.ci/run` builds the package (``python -m build``), runs ``twine check --strict`` and then
this script, which fails (exit 1, naming each problem) unless:

* there is exactly one wheel and one sdist;
* the wheel holds the MIT LICENSE (in ``*.dist-info/licenses/``), ``mfa_core/py.typed``,
  ``mfa_core/__init__.py`` and no test file (nothing under ``tests/``, no ``conftest.py``,
  no ``test_*.py``) and nothing outside ``mfa_core/`` and its ``.dist-info``;
* the wheel's metadata declares the license as ``License-Expression: MIT`` (PEP 639; no
  ``License ::`` classifier, which PyPI refuses next to it), Project-URLs and the classifiers
  a package index shows (Development Status, Intended Audience, Typing :: Typed, OS);
* the sdist holds LICENSE, README.md, SECURITY.md, CONTRIBUTING.md and the test vectors.
"""

from __future__ import annotations

import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path, PurePosixPath

REQUIRED_CLASSIFIER_PREFIXES = (
    "Development Status :: ",
    "Intended Audience :: ",
    "Typing :: Typed",
    "Operating System :: ",
)


def check_wheel(path: Path) -> list[str]:
    """Return the problems found in the wheel at ``path`` (empty when it is right)."""
    problems: list[str] = []
    with zipfile.ZipFile(path) as wheel:
        names = wheel.namelist()
        dist_info = next((n.split("/")[0] for n in names if ".dist-info/" in n), None)
        if dist_info is None:
            return [f"{path.name}: no .dist-info directory"]
        license_name = f"{dist_info}/licenses/LICENSE"
        if license_name not in names:
            problems.append(f"{path.name}: no {license_name}")
        elif "MIT License" not in wheel.read(license_name).decode("utf-8"):
            problems.append(f"{path.name}: {license_name} is not the MIT license")
        for needed in ("mfa_core/py.typed", "mfa_core/__init__.py"):
            if needed not in names:
                problems.append(f"{path.name}: no {needed}")
        for name in names:
            parts = PurePosixPath(name).parts
            if parts[0] not in ("mfa_core", dist_info):
                problems.append(f"{path.name}: unexpected top-level entry {name}")
            if "tests" in parts or parts[-1] == "conftest.py" or parts[-1].startswith("test_"):
                problems.append(f"{path.name}: holds a test file {name}")
        metadata = Parser().parsestr(wheel.read(f"{dist_info}/METADATA").decode("utf-8"))
    if metadata.get("License-Expression") != "MIT":
        problems.append(f"{path.name}: License-Expression is not MIT")
    if "LICENSE" not in (metadata.get_all("License-File") or []):
        problems.append(f"{path.name}: no License-File: LICENSE")
    classifiers = metadata.get_all("Classifier") or []
    # PEP 639: License-Expression replaces the License :: classifiers, and PyPI refuses an
    # upload that has both.
    problems.extend(
        f"{path.name}: deprecated classifier {c!r} (License-Expression says it)"
        for c in classifiers
        if c.startswith("License :: ")
    )
    for prefix in REQUIRED_CLASSIFIER_PREFIXES:
        if not any(c.startswith(prefix) for c in classifiers):
            problems.append(f"{path.name}: no classifier {prefix!r}")
    urls = metadata.get_all("Project-URL") or []
    for label in ("Documentation", "Source", "Issues"):
        if not any(u.startswith(f"{label}, ") for u in urls):
            problems.append(f"{path.name}: no Project-URL {label}")
    return problems


def check_sdist(path: Path) -> list[str]:
    """Return the problems found in the sdist at ``path`` (empty when it is right)."""
    with tarfile.open(path) as sdist:
        names = {"/".join(PurePosixPath(n).parts[1:]) for n in sdist.getnames()}
    needed = (
        "LICENSE",
        "README.md",
        "SECURITY.md",
        "CONTRIBUTING.md",
        "pyproject.toml",
        "src/mfa_core/py.typed",
        "tests/vectors/rfc_vectors.json",
    )
    return [f"{path.name}: no {name}" for name in needed if name not in names]


def main(argv: list[str]) -> int:
    """Check the one wheel and one sdist in ``argv[0]``; return the exit status."""
    if len(argv) != 1:
        print("usage: check_dist.py DIST_DIR", file=sys.stderr)
        return 2
    dist = Path(argv[0])
    wheels = sorted(dist.glob("*.whl"))
    sdists = sorted(dist.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        print(f"expected one wheel and one sdist in {dist}, found {wheels + sdists}")
        return 1
    problems = check_wheel(wheels[0]) + check_sdist(sdists[0])
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print(f"{wheels[0].name} and {sdists[0].name}: content as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
