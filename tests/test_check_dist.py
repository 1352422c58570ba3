"""tools/check_dist.py, the wheel/sdist content check `.ci/run` runs after ``python -m build``.

The real build is checked in `.ci/run`; these tests make small archives that are right or
wrong in one way each, so the checker is shown to catch every problem it names.
"""

from __future__ import annotations

import importlib.util
import io
import tarfile
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_dist", ROOT / "tools" / "check_dist.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_dist = _load_checker()

DIST_INFO = "mfa_core-0.1.0.dist-info"
GOOD_METADATA = "\n".join(
    [
        "Metadata-Version: 2.4",
        "Name: mfa_core",
        "Version: 0.1.0",
        "License-Expression: MIT",
        "License-File: LICENSE",
        "Classifier: Development Status :: 4 - Beta",
        "Classifier: Intended Audience :: Developers",
        "Classifier: Operating System :: OS Independent",
        "Classifier: Typing :: Typed",
        "Project-URL: Documentation, https://example.invalid/docs",
        "Project-URL: Source, https://example.invalid/src",
        "Project-URL: Issues, https://example.invalid/issues",
        "",
    ]
)


def _wheel(tmp_path: Path, files: dict[str, str]) -> Path:
    path = tmp_path / "mfa_core-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)
    return path


def _good_files() -> dict[str, str]:
    return {
        "mfa_core/__init__.py": "",
        "mfa_core/py.typed": "",
        f"{DIST_INFO}/METADATA": GOOD_METADATA,
        f"{DIST_INFO}/licenses/LICENSE": (ROOT / "LICENSE").read_text(encoding="utf-8"),
    }


def test_a_right_wheel_has_no_problem(tmp_path: Path) -> None:
    assert check_dist.check_wheel(_wheel(tmp_path, _good_files())) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda f: f.pop(f"{DIST_INFO}/licenses/LICENSE"), "no mfa_core-0.1.0.dist-info/licenses"),
        (lambda f: f.update({f"{DIST_INFO}/licenses/LICENSE": "Apache"}), "not the MIT"),
        (lambda f: f.pop("mfa_core/py.typed"), "no mfa_core/py.typed"),
        (lambda f: f.update({"tests/test_otp.py": ""}), "test file tests/test_otp.py"),
        (lambda f: f.update({"mfa_core/test_x.py": ""}), "test file mfa_core/test_x.py"),
        (lambda f: f.update({"conftest.py": ""}), "unexpected top-level entry conftest.py"),
        (
            lambda f: f.update(
                {f"{DIST_INFO}/METADATA": GOOD_METADATA.replace("Typing :: Typed", "Typing")}
            ),
            "no classifier 'Typing :: Typed'",
        ),
        (
            lambda f: f.update(
                {
                    f"{DIST_INFO}/METADATA": GOOD_METADATA
                    + "Classifier: License :: OSI Approved :: MIT License\n"
                }
            ),
            "deprecated classifier",
        ),
        (
            lambda f: f.update(
                {f"{DIST_INFO}/METADATA": GOOD_METADATA.replace("Project-URL: Issues", "X: y")}
            ),
            "no Project-URL Issues",
        ),
        (
            lambda f: f.update(
                {f"{DIST_INFO}/METADATA": GOOD_METADATA.replace("License-Expression: MIT", "")}
            ),
            "License-Expression is not MIT",
        ),
    ],
)
def test_each_wheel_problem_is_reported(tmp_path: Path, change: object, expected: str) -> None:
    files = _good_files()
    change(files)  # type: ignore[operator]
    problems = check_dist.check_wheel(_wheel(tmp_path, files))
    assert any(expected in p for p in problems), problems


def _sdist(tmp_path: Path, names: list[str]) -> Path:
    path = tmp_path / "mfa_core-0.1.0.tar.gz"
    with tarfile.open(path, "w:gz") as sdist:
        for name in names:
            info = tarfile.TarInfo(f"mfa_core-0.1.0/{name}")
            sdist.addfile(info, io.BytesIO(b""))
    return path


SDIST_NAMES = [
    "LICENSE",
    "README.md",
    "SECURITY.md",
    "CONTRIBUTING.md",
    "pyproject.toml",
    "src/mfa_core/py.typed",
    "tests/vectors/rfc_vectors.json",
]


def test_the_sdist_must_hold_license_docs_and_vectors(tmp_path: Path) -> None:
    assert check_dist.check_sdist(_sdist(tmp_path, SDIST_NAMES)) == []
    missing = [n for n in SDIST_NAMES if n not in ("LICENSE", "tests/vectors/rfc_vectors.json")]
    problems = check_dist.check_sdist(_sdist(tmp_path, missing))
    assert problems == [
        "mfa_core-0.1.0.tar.gz: no LICENSE",
        "mfa_core-0.1.0.tar.gz: no tests/vectors/rfc_vectors.json",
    ]


def test_main_wants_exactly_one_wheel_and_one_sdist(tmp_path: Path) -> None:
    assert check_dist.main([str(tmp_path)]) == 1
    _wheel(tmp_path, _good_files())
    _sdist(tmp_path, SDIST_NAMES)
    assert check_dist.main([str(tmp_path)]) == 0
