"""The ``standards-table`` directive: the standards page, generated from the test markers.

It reads the row definitions from ``tests/standards.py`` and every
``@pytest.mark.standard("ID", "what it proves")`` decorator in ``tests/test_*.py`` (with
:mod:`ast`, so no test module is imported and the build stays fast), and renders one table
row per requirement with the tests that prove it. The build fails (an error, whatever the
warning settings) on a marker that is not two literal strings, on an unknown ID, and on a
row that no test proves.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util.docutils import SphinxDirective

TESTS = Path(__file__).resolve().parents[2] / "tests"


def load_rows(tests: Path = TESTS) -> dict[str, tuple[str, str, str]]:
    """The rows defined in ``tests/standards.py``."""
    spec = importlib.util.spec_from_file_location("_mfa_standards", tests / "standards.py")
    if spec is None or spec.loader is None:
        raise ExtensionError(f"cannot load {tests / 'standards.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows: dict[str, tuple[str, str, str]] = module.STANDARDS
    return rows


def _is_standard_mark(node: ast.expr) -> bool:
    # pytest.mark.standard(...)
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "standard"
        and isinstance(node.func.value, ast.Attribute)
        and node.func.value.attr == "mark"
    )


def _is_text(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def collect(tests: Path = TESTS) -> Iterator[tuple[str, str, str]]:
    """Yield (ID, test id, what it proves) for every standard marker in the test files."""
    for path in sorted(tests.glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            for decorator in node.decorator_list:
                if not _is_standard_mark(decorator) or not isinstance(decorator, ast.Call):
                    continue
                args = decorator.args
                if len(args) != 2 or decorator.keywords or not all(_is_text(a) for a in args):
                    raise ExtensionError(
                        f"{path.name}:{decorator.lineno}: pytest.mark.standard takes two "
                        "literal strings (ID, what the test proves)"
                    )
                row_id, proves = (a.value for a in args)  # type: ignore[attr-defined]
                yield row_id, f"tests/{path.name}::{node.name}", proves


Row = tuple[str, tuple[str, str, str], list[tuple[str, str]]]


def table_data(tests: Path = TESTS) -> list[Row]:
    """Rows in definition order, each with its (test id, what it proves) list."""
    rows = load_rows(tests)
    proofs: dict[str, list[tuple[str, str]]] = {row_id: [] for row_id in rows}
    for row_id, test_id, proves in collect(tests):
        if row_id not in rows:
            raise ExtensionError(f"{test_id}: unknown standard {row_id!r} (tests/standards.py)")
        proofs[row_id].append((test_id, proves))
    unproved = [row_id for row_id, found in proofs.items() if not found]
    if unproved:
        raise ExtensionError(f"no test proves the standards rows {unproved}")
    return [(row_id, rows[row_id], proofs[row_id]) for row_id in rows]


class StandardsTable(SphinxDirective):
    """``.. standards-table::`` renders the table (no arguments, no content)."""

    def run(self) -> list[nodes.Node]:
        """Build the table node."""
        self.env.note_dependency(str(TESTS / "standards.py"))
        for path in TESTS.glob("test_*.py"):
            self.env.note_dependency(str(path))
        data = table_data()
        table = nodes.table()
        group = nodes.tgroup(cols=4)
        table += group
        for width in (14, 8, 30, 48):
            group += nodes.colspec(colwidth=width)
        head = nodes.thead()
        group += head
        head += self._row(["standard", "clause", "requirement", "tests that prove it"])
        body = nodes.tbody()
        group += body
        for _row_id, (document, clause, requirement), proofs in data:
            cells: list[Any] = [document, clause, requirement]
            listing = nodes.bullet_list()
            for test_id, proves in proofs:
                item = nodes.list_item()
                para = nodes.paragraph()
                para += nodes.literal(text=test_id)
                para += nodes.Text(f": {proves}")
                item += para
                listing += item
            cells.append(listing)
            body += self._row(cells)
        return [table]

    @staticmethod
    def _row(cells: list[Any]) -> nodes.row:
        row = nodes.row()
        for cell in cells:
            entry = nodes.entry()
            if isinstance(cell, str):
                entry += nodes.paragraph(text=cell)
            else:
                entry += cell
            row += entry
        return row


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directive."""
    app.add_directive("standards-table", StandardsTable)
    return {"parallel_read_safe": True, "version": "1"}
