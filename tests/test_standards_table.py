"""The standards page generator (docs/_ext/standards.py) reads the markers the tests carry."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("sphinx", reason="the docs extra (sphinx) is not installed")


def _extension() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_standards_ext", ROOT / "docs/_ext/standards.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ext = _extension()


def test_every_row_is_proved_by_a_marked_test_of_this_suite() -> None:
    data = ext.table_data()
    rows = ext.load_rows()
    assert [row_id for row_id, _, _ in data] == list(rows)
    proofs = {test for _, _, found in data for test, _ in found}
    assert "tests/test_vectors.py::test_hotp_vectors" in proofs
    for _, _, found in data:
        for test_id, proves in found:
            path, name = test_id.split("::")
            assert f"def {name}(" in (ROOT / path).read_text(encoding="utf-8")
            assert proves.strip()


def test_the_scan_finds_a_known_marker() -> None:
    from_source = {(r, t) for r, t, _ in ext.collect() if t.startswith("tests/test_throttle.py")}
    assert ("NIST-3.2.2", "tests/test_throttle.py::test_lock_boundary_both_sides") in from_source


def _suite(tmp_path: Path, test_source: str) -> Path:
    tests = tmp_path / "tests"
    tests.mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "standards.py", tests / "standards.py")
    (tests / "test_x.py").write_text(test_source, encoding="utf-8")
    return tests


def test_an_unknown_id_a_non_literal_marker_and_an_unproved_row_fail_the_build(
    tmp_path: Path,
) -> None:
    from sphinx.errors import ExtensionError

    unknown = _suite(tmp_path / "a", '@pytest.mark.standard("RFC0000-1", "x")\ndef test_a(): ...\n')
    with pytest.raises(ExtensionError, match="unknown standard 'RFC0000-1'"):
        ext.table_data(unknown)
    computed = _suite(tmp_path / "b", "@pytest.mark.standard(ID, 'x')\ndef test_b(): ...\n")
    with pytest.raises(ExtensionError, match="two literal strings"):
        ext.table_data(computed)
    one = _suite(tmp_path / "c", '@pytest.mark.standard("RFC6238-4", "x")\ndef test_c(): ...\n')
    with pytest.raises(ExtensionError, match="no test proves the standards rows"):
        ext.table_data(one)
