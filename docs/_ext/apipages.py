"""Generate the API reference pages (``docs/api/*.rst``) from the public modules' ``__all__``.

Each public name is documented once, under the most specific public module that exports it
(``mfa_core.otp.hotp``, not ``mfa_core.hotp``); a package that re-exports names (``mfa_core``,
``mfa_core.stores``, ``mfa_core.aio``) lists them with links. Private modules (``_*.py``)
never appear: a name they define is documented under the public module that exports it. A
public class or function without a docstring is an error.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError

#: The public modules, most specific first (a name goes to the first one that exports it).
PUBLIC_MODULES: tuple[tuple[str, str], ...] = (
    ("mfa_core.otp", "HOTP and TOTP (RFC 4226, RFC 6238)"),
    ("mfa_core.keys", "keys and base32"),
    ("mfa_core.uri", "otpauth:// provisioning URIs"),
    ("mfa_core.qr", "QR codes (the qr extra)"),
    ("mfa_core.sealing", "sealing keys at rest"),
    ("mfa_core.recovery", "recovery codes"),
    ("mfa_core.oob", "email/SMS one-time codes"),
    ("mfa_core.throttle", "throttling"),
    ("mfa_core.lifecycle", "the credential lifecycle"),
    ("mfa_core.models", "records the ports exchange"),
    ("mfa_core.errors", "errors and error codes"),
    ("mfa_core.ports", "the ports (protocols)"),
    ("mfa_core.admin", "the mfa-core admin command line"),
    ("mfa_core.importers", "migration in from django-otp, allauth, JSON lines"),
    ("mfa_core.policy", "policy evaluation"),
    ("mfa_core.webauthn", "security keys and passkeys (the webauthn extra)"),
    ("mfa_core.service.config", "the service's settings"),
    ("mfa_core.service.results", "the service's results"),
    ("mfa_core.service.defaults", "default clock and event sinks"),
    ("mfa_core.service", "the verification service"),
    ("mfa_core.stores.memory", "in-memory store"),
    ("mfa_core.stores.sqlite", "SQLite store"),
    ("mfa_core.stores.redis", "Redis store (the redis extra)"),
    ("mfa_core.stores.sql", "SQL store (the sql extra)"),
    ("mfa_core.stores", "reference stores"),
    ("mfa_core.aio.ports", "async ports"),
    ("mfa_core.aio.service", "the async service"),
    ("mfa_core.aio.stores", "async in-memory store"),
    ("mfa_core.aio.redis", "async Redis store (the redis extra)"),
    ("mfa_core.aio.sql", "async SQL store (the sql extra)"),
    ("mfa_core.aio.testing", "async contract suite"),
    ("mfa_core.aio", "the asyncio API"),
    ("mfa_core.testing.fakes", "test doubles"),
    ("mfa_core.testing.contract", "the store contract suites"),
    ("mfa_core.testing.webauthn_contract", "the WebAuthn store contract suite"),
    ("mfa_core.testing.authenticator", "a software WebAuthn authenticator"),
    ("mfa_core.testing", "test doubles and the store contract suite"),
    ("mfa_core", "the package"),
)


def _directive(obj: Any) -> str:
    if inspect.isclass(obj):
        return "autoexception" if issubclass(obj, BaseException) else "autoclass"
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        return "autofunction"
    return "autodata"


def plan() -> dict[str, tuple[list[str], list[tuple[str, str]]]]:
    """Map each public module to (names documented there, [(name, home module)] re-exported)."""
    home: dict[int, str] = {}
    result: dict[str, tuple[list[str], list[tuple[str, str]]]] = {}
    for module_name, _ in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        own: list[str] = []
        again: list[tuple[str, str]] = []
        for name in module.__all__:
            obj = getattr(module, name)
            simple = isinstance(obj, str | int | float | bytes | tuple | frozenset)
            key = id(obj)
            if not simple and key in home:
                again.append((name, home[key]))
                continue
            if not simple:
                home[key] = module_name
            own.append(name)
        result[module_name] = (own, again)
    return result


def _page(module_name: str, title: str, own: list[str], again: list[tuple[str, str]]) -> str:
    module = importlib.import_module(module_name)
    heading = f"``{module_name}``: {title}"
    lines = [heading, "=" * len(heading), "", f".. automodule:: {module_name}", ""]
    if again:
        lines += ["Re-exported here (documented in their own module):", ""]
        lines += [f"* :py:obj:`{name} <{home}.{name}>`" for name, home in again]
        lines.append("")
    for name in own:
        obj = getattr(module, name)
        directive = _directive(obj)
        if directive != "autodata" and not (inspect.getdoc(obj) or "").strip():
            raise ExtensionError(f"{module_name}.{name} has no docstring")
        lines.append(f".. {directive}:: {module_name}.{name}")
        if directive in ("autoclass", "autoexception"):
            lines.append("   :members:")
        if directive == "autodata":
            lines.append("   :no-value:" if name != "__version__" else "   :annotation:")
        lines.append("")
    return "\n".join(lines)


def generate(app: Sphinx) -> None:
    """Write ``api/<module>.rst`` and ``api/index.rst`` (only files whose text changed)."""
    out = Path(app.srcdir) / "api"
    out.mkdir(exist_ok=True)
    pages = plan()
    names: list[str] = []
    for module_name, title in PUBLIC_MODULES:
        own, again = pages[module_name]
        _write(out / f"{module_name}.rst", _page(module_name, title, own, again))
        names.append(module_name)
    index = ["API reference", "=============", ""]
    index += [
        "Every public module and name. Modules whose name starts with ``_`` are internal and",
        "may change in any release; their names are documented under the public module that",
        "exports them.",
        "",
        ".. toctree::",
        "   :maxdepth: 1",
        "",
    ]
    index += [f"   {name}" for name in sorted(names)]
    _write(out / "index.rst", "\n".join(index) + "\n")


def _write(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the generator (runs before Sphinx reads the sources)."""
    app.connect("builder-inited", generate)
    return {"parallel_read_safe": True, "version": "1"}
