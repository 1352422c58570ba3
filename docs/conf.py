"""Sphinx configuration of the mfa_core documentation site.

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html`` (warnings are
errors; `.ci/run` does exactly this). The guides are the Markdown files beside this file
(myst-parser); the API reference is generated at build time by ``_ext/apipages.py`` from
the ``__all__`` of every public module, and the standards table by ``_ext/standards.py``
from the ``@pytest.mark.standard`` markers on the tests.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(ROOT / "src"))

import mfa_core  # noqa: E402 - after the path set-up

project = "mfa_core"
author = "the mfa_core developers"
copyright = "the mfa_core developers, MIT license"
release = mfa_core.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "myst_parser",
    "apipages",
    "standards",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "api/_generated_marker"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]  # guides start at "##" under their own title

autodoc_default_options = {"show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_class_signature = "separated"
autodoc_inherit_docstrings = True


def _inventory(url: str, debian_doc: str) -> tuple[str, str | None]:
    """Link to ``url``; read its objects.inv from a Debian doc package when installed.

    `.ci/run` installs ``python3.11-doc``, ``python-attr-doc`` and ``python-cryptography-doc``
    (the machines reach no documentation host), so the build works offline; elsewhere
    Sphinx fetches the inventory from ``url``.
    """
    local = Path("/usr/share/doc") / debian_doc / "html" / "objects.inv"
    return (url, str(local) if local.is_file() else None)


intersphinx_mapping = {
    "python": _inventory("https://docs.python.org/3", "python3.11"),
    "attrs": _inventory("https://www.attrs.org/en/stable", "python-attr-doc"),
    "cryptography": _inventory("https://cryptography.io/en/latest", "python-cryptography-doc"),
}
intersphinx_timeout = 10

html_theme = "alabaster"
html_title = f"mfa_core {release}"
html_static_path: list[str] = []


def setup(app: object) -> None:
    """Show ``mermaid`` blocks (the lifecycle diagram) as plain text, without a warning."""
    from pygments.lexers.special import TextLexer  # noqa: PLC0415

    app.add_lexer("mermaid", TextLexer)  # type: ignore[attr-defined]
