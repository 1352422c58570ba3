"""Every Python block in README.md and docs/*.md runs (the documentation's code is tested).

Each page's blocks run in order in one namespace, as a reader would type them, in a fresh
working directory, after the page's prelude below (the names a block takes from the host:
keys from a secret manager, the code the user typed, the host's own functions). A block
that is a fragment by design (an excerpt of internal code) is preceded by the line
``<!-- fragment -->`` and only compiled... unless it cannot even be parsed, which fails too.
Blocks with top-level ``await`` run on one event loop per page.

A few blocks name a server the host has (``postgresql+psycopg://app@db/app``); ``REWRITES``
swaps such a literal for a local one. Each rewrite must match its block, so neither can
drift.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["README.md", *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))]
FRAGMENT = "<!-- fragment -->"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)

_HOST = """
import os
import time

from mfa_core.testing import FakeCodeSender

keys = {"k1": os.urandom(32)}
key_from_your_secret_manager = os.urandom(32)
host_secret = os.urandom(32)
sender = my_sender = FakeCodeSender()
typed_code = "000000"
typed = typed_recovery_code = "0000-0000-0000-0000"
user_id = "alice"
now = signed_in_at = time.time()


def _host_function(*args, **kwargs):
    return None


show = show_qr = show_once = audit = log_in = offer_new_codes = nudge_user_to_renew = (
    _host_function
)
"""

_SEALER = """
from mfa_core.sealing import AESGCMSealer

sealer = AESGCMSealer(keys, current_key_id="k1")
"""

# The framework recipes' pages import examples/ (mfa_web, the apps) as the recipes do.
_RECIPES = f"""
import sys

if {str(ROOT / "examples")!r} not in sys.path:
    sys.path.insert(0, {str(ROOT / "examples")!r})


def password_is_right(user, password):
    return password == "correct horse"
"""

# Django is configured once per process, by the recipe (tests/test_recipe_django.py does
# the same, and accepts settings the recipe made): a SQLite file that outlives the page.
_DJANGO = """
import tempfile

import django_app
from django.conf import settings
from django.core.management import call_command

if not settings.configured:
    django_app.configure(
        tempfile.mkdtemp(prefix="mfa-docs-django-") + "/db.sqlite3",
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
    )
call_command("migrate", verbosity=0)
"""

#: page -> {block index: code run just before that block (0: the page's prelude)}
PRELUDES: dict[str, dict[int, str]] = {
    "README.md": {},
    "docs/admin.md": {},
    "docs/async.md": {
        0: _HOST
        + _SEALER
        + """

class EmailGateway:  # an AsyncCodeSender: the host's async e-mail/SMS client
    async def send(self, *, channel, destination, code, purpose, challenge_id, expires_at):
        return None


sender = EmailGateway()
"""
    },
    "docs/policy.md": {
        0: _HOST
        + """
from mfa_core.policy import FirstFactor, Policy, RequestContext

policy = Policy()
context = RequestContext(user_id="alice", first_factor=FirstFactor.PASSWORD, authenticated_at=now)
"""
    },
    "docs/recovery-and-oob.md": {
        0: _HOST + _SEALER + "tag_key = oob_key = os.urandom(32)\n",
        1: """
attempt = generated.codes[0]
stored_records = generated.records
current_params = None  # the default Argon2id parameters
""",
        2: """
from mfa_core.stores import MemoryStore

store = MemoryStore()
""",
    },
    "docs/service.md": {
        0: _HOST,
        2: """
from mfa_core.stores import MemoryStore as _MemoryStore

_store = _MemoryStore()
service = MFAService(
    _store, _store, sealer, recovery_codes=_store, oob=_store, sender=sender, secret=os.urandom(32)
)
""",
        4: """
import logging
import types

from mfa_core.policy import Policy as _Policy

org = types.SimpleNamespace(policy_json=_Policy().to_json())
log = logging.getLogger("docs")
""",
    },
    "docs/stores.md": {0: _HOST + _SEALER},
    "docs/integrations.md": {0: _RECIPES},
    "docs/integrations-django.md": {0: _HOST + _SEALER + _RECIPES + _DJANGO},
    "docs/integrations-fastapi.md": {0: _HOST + _RECIPES},
    "docs/integrations-flask.md": {0: _HOST + _RECIPES},
    "docs/integrations-starlette.md": {0: _HOST + _RECIPES},
    "docs/webauthn.md": {},  # its blocks are whole (the software authenticator plays the browser)
}

#: page -> [(text in a block, what the test runs instead)]
REWRITES: dict[str, list[tuple[str, str]]] = {
    "docs/async.md": [
        (
            '"postgresql+psycopg://app@db/app",  # or "sqlite+aiosqlite:///var/lib/app/mfa.db"',
            '"sqlite+aiosqlite:///mfa.db",',
        )
    ],
    "docs/stores.md": [
        ('"redis://10.0.0.5:6379/0"', "REDIS_URL"),
        ('"postgresql+psycopg://app@db/app"', '"sqlite:///mfa.db"'),
    ],
}

#: pages whose blocks need the shared Redis server (skipped without it unless CI is set)
NEEDS_REDIS = {"docs/stores.md"}

pytest_plugins = ("servers",)


def blocks(page: str) -> list[tuple[int, str, bool]]:
    """(line number, code, is a fragment) of each Python block of ``page``."""
    text = (ROOT / page).read_text(encoding="utf-8")
    found = []
    for match in _BLOCK.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        found.append((text.count("\n", 0, match.start()) + 1, match.group(1), before == FRAGMENT))
    return found


def _runnable_pages() -> list[str]:
    return [page for page in PAGES if any(not frag for _, _, frag in blocks(page))]


def test_every_page_with_code_has_a_prelude_entry_and_fragments_are_few() -> None:
    assert set(_runnable_pages()) <= set(PRELUDES), "add the page to PRELUDES"
    counts = [(frag, 1) for page in PAGES for _, _, frag in blocks(page)]
    fragments = sum(1 for frag, _ in counts if frag)
    assert len(counts) >= 20  # the README and the guides do show code
    assert fragments <= 3, f"{fragments} fragments: make blocks runnable instead"


@pytest.mark.parametrize("page", PAGES)
def test_fragments_still_parse(page: str) -> None:
    for line, code, frag in blocks(page):
        if frag:
            # a fragment may use `yield` or `return` outside a function: parse it as a body
            body = "def _fragment():\n" + "".join(f"    {ln}\n" for ln in code.splitlines())
            try:
                ast.parse(body)
            except SyntaxError as exc:  # pragma: no cover - the failure message
                pytest.fail(f"{page}:{line}: the fragment does not parse: {exc}")


@pytest.mark.parametrize("page", _runnable_pages())
def test_the_python_blocks_of_the_page_run(
    page: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "__doc_block__"}
    if page in NEEDS_REDIS:
        namespace["REDIS_URL"] = request.getfixturevalue("redis_url")
    rewrites = list(REWRITES.get(page, []))
    preludes = PRELUDES.get(page, {})
    loop = asyncio.new_event_loop()
    try:
        for index, (line, code, frag) in enumerate(blocks(page)):
            if frag:
                continue
            for old, new in list(rewrites):
                if old in code:
                    code = code.replace(old, new)  # noqa: PLW2901 - the rewritten block
                    rewrites.remove((old, new))
            if index in preludes:
                exec(compile(preludes[index], f"{page}:prelude-{index}", "exec"), namespace)  # noqa: S102
            compiled = compile(code, f"{page}:{line}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            try:
                if compiled.co_flags & inspect.CO_COROUTINE:
                    loop.run_until_complete(eval(compiled, namespace))  # noqa: S307
                else:
                    exec(compiled, namespace)  # noqa: S102
            except Exception as exc:
                raise AssertionError(f"the block at {page}:{line} failed: {exc!r}") from exc
    finally:
        loop.close()
    assert not rewrites, f"rewrites that match no block of {page}: {rewrites}"


def test_count_of_blocks_that_run(record_property: Callable[[str, object], None]) -> None:
    total = [frag for page in PAGES for _, _, frag in blocks(page)]
    record_property(  # printed at the end of the run (tests/conftest.py)
        "summary",
        f"doc blocks: {len(total)} Python blocks, {total.count(False)} run, "
        f"{total.count(True)} fragments",
    )
    assert total.count(False) >= 20


DOCS_SITE = "https://mfa-core.readthedocs.io/en/latest/"


def test_readme_links_are_absolute_and_name_pages_the_site_builds() -> None:
    # The README is also the package index page: no relative link may appear, and every link
    # to the documentation site names a page docs/ builds (a guide or the API index).
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)]+)\)|<(https?://[^>]+)>", text)
    links = [a or b for a, b in targets]
    assert links, "the README links to its documentation"
    for link in links:
        assert link.startswith("https://"), f"relative link {link!r} breaks on PyPI"
        if link.startswith(DOCS_SITE):
            page = link.removeprefix(DOCS_SITE).split("#")[0]
            if page in ("", "api/index.html"):
                continue  # the site root, the generated API reference
            assert page.endswith(".html")
            assert (ROOT / "docs" / page.replace(".html", ".md")).is_file(), link
