"""What the framework recipes share: the HTTP answer to a verification, and their pages.

Nothing here knows a framework. ``django_app.py``, ``flask_app.py`` and ``fastapi_app.py``
import it (it sits beside them in ``examples/``); a host copies :func:`answer` and writes its
pages in its own templates.

* :func:`answer` turns a :class:`~mfa_core.service.VerificationResult` (TOTP, recovery code)
  into a status, one text and headers: **one uniform refusal** (:data:`REFUSAL`) for a wrong,
  malformed or replayed code, a wrong recovery code, a throttled or a locked user, so the
  page tells an attacker nothing about which it was; HTTP 429 with ``Retry-After`` while
  throttled or locked; 503 when a store failed (the attempt was refused: fail closed).
* :class:`DemoUsers` stands in for the host's own password check (scrypt hashes).
* The ``*_page`` functions render the recipes' small HTML pages (escaped, no JavaScript).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from html import escape

from mfa_core.errors import MFAError, SealingError, StoreError
from mfa_core.qr import qr_png
from mfa_core.sealing import AESGCMSealer
from mfa_core.service import (
    EXPIRED_MESSAGE,
    INVALID_CODE_MESSAGE,
    UNAVAILABLE_MESSAGE,
    VerificationResult,
    VerifyReason,
)

REFUSAL = INVALID_CODE_MESSAGE
"""The one text every refused code gets (wrong, replayed, recovery, throttled, locked)."""

#: What the user must wait out: the service refused without looking at the code.
_WAIT = (VerifyReason.THROTTLED, VerifyReason.LOCKED)
_OUTAGE = (VerifyReason.STORE_ERROR, VerifyReason.SEALING_ERROR)


@dataclass(frozen=True)
class Answer:
    """How a view answers one verification: ``status``, the ``message`` to show, ``headers``."""

    accepted: bool
    status: int
    message: str
    headers: dict[str, str] = field(default_factory=dict)


def answer(result: VerificationResult) -> Answer:
    """The HTTP answer to ``result`` (see the module docstring for the rules)."""
    if result.accepted:
        return Answer(True, 200, "")
    if result.reason in _WAIT:
        wait = result.retry_after
        # Locked until an administrator unlocks (lockout=None): no honest Retry-After; a
        # client should not retry on its own, so none is sent.
        headers = {} if wait is None else {"Retry-After": str(max(1, math.ceil(wait)))}
        return Answer(False, 429, REFUSAL, headers)
    if result.reason in _OUTAGE:
        return Answer(False, 503, UNAVAILABLE_MESSAGE, {"Retry-After": "30"})
    if result.reason is VerifyReason.EXPIRED:
        return Answer(False, 401, EXPIRED_MESSAGE)
    return Answer(False, 401, REFUSAL)


def error_status(exc: MFAError) -> int:
    """The HTTP status for a typed error an operation raised: 503 when a store or the sealer
    failed (retry later), 400 for bad input. Show ``exc.code``, never the message."""
    return 503 if isinstance(exc, StoreError | SealingError) else 400


class DemoUsers:
    """The host's password check, for the recipes: user -> scrypt hash, compared in
    constant time. A real host calls its own (Django's ``authenticate``, ...)."""

    def __init__(self, passwords: Mapping[str, str]) -> None:
        self._hashes = {user: self._hash(user, pw) for user, pw in passwords.items()}

    @staticmethod
    def _hash(user: str, password: str, salt: bytes | None = None) -> tuple[bytes, bytes]:
        salt = os.urandom(16) if salt is None else salt
        digest = hashlib.scrypt(password.encode(), salt=salt, n=2**12, r=8, p=1, dklen=32)
        return salt, digest

    def check(self, user: str, password: str) -> bool:
        """Whether ``password`` is ``user``'s (unknown users cost the same work)."""
        salt, digest = self._hashes.get(user, (b"\0" * 16, b""))
        _, computed = self._hash(user, password, salt)
        return bool(digest) and hmac.compare_digest(computed, digest)


def sealer_from_env() -> AESGCMSealer:
    """The sealing key from ``MFA_SEALING_KEY`` (32 bytes, URL-safe base64), else a new
    one: then stored keys are unreadable after a restart. A real host loads its keys from
    its secret manager (docs/service.md, "Sealing keys")."""
    text = os.environ.get("MFA_SEALING_KEY")
    if not text:
        return AESGCMSealer.generate()
    return AESGCMSealer({"k1": base64.urlsafe_b64decode(text)}, current_key_id="k1")


def host_secret_from_env() -> bytes:
    """The service's host secret (it keys the recovery codes' lookup tags) from
    ``MFA_HOST_SECRET`` (URL-safe base64), else a random one: then recovery codes stop
    working after a restart. Keep the real one in the secret manager, like the sealing key."""
    text = os.environ.get("MFA_HOST_SECRET")
    return base64.urlsafe_b64decode(text) if text else os.urandom(32)


def session_secret_from_env() -> str:
    """The key signing session cookies, from ``MFA_SESSION_SECRET``, else a random one."""
    return os.environ.get("MFA_SESSION_SECRET") or base64.urlsafe_b64encode(os.urandom(32)).decode()


# -- pages -------------------------------------------------------------------------------


def qr_img(uri: str) -> str:
    """An ``<img>`` of ``uri`` as a QR code (a PNG data URI: no file, no request to log)."""
    data = base64.b64encode(qr_png(uri, scale=6)).decode("ascii")
    return (
        f'<img id="qr" alt="QR code for your authenticator app" src="data:image/png;base64,{data}">'
    )


def page(title: str, body: str, *, message: str = "") -> str:
    """A whole HTML page; ``message`` (escaped) shows in ``<p id="message">``."""
    note = f'<p id="message" role="alert">{escape(message)}</p>' if message else ""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title></head><body><h1>{escape(title)}</h1>{note}{body}"
        "</body></html>"
    )


def form(action: str, fields: Iterable[tuple[str, str]], button: str, *, hidden: str = "") -> str:
    """A POST form to ``action`` with text inputs ``(name, label)``; ``hidden`` is extra
    markup inside it (Django's CSRF input)."""
    inputs = "".join(
        f'<label>{escape(label)} <input name="{escape(name)}" id="{escape(name)}" '
        f'autocomplete="off" required></label> '
        for name, label in fields
    )
    return (
        f'<form method="post" action="{escape(action)}">{hidden}{inputs}'
        f'<button type="submit">{escape(button)}</button></form>'
    )


def login_page(*, message: str = "", hidden: str = "") -> str:
    """Step one: user name and password."""
    fields = [("username", "User"), ("password", "Password")]
    body = form("/login", fields, "Sign in", hidden=hidden).replace(
        'name="password" id="password"', 'name="password" id="password" type="password"'
    )
    return page("Sign in", body, message=message)


def code_page(*, message: str = "", hidden: str = "") -> str:
    """Step two: a code from the authenticator app, or one recovery code."""
    body = form("/login/code", [("code", "Code from your app")], "Verify", hidden=hidden)
    body += form(
        "/login/recovery", [("recovery_code", "Or a recovery code")], "Use it", hidden=hidden
    )
    return page("Second factor", body, message=message)


def enrol_page(uri: str, secret: str, *, hidden: str = "") -> str:
    """The QR code (and the key, for typing), and the form confirming the first code."""
    body = (
        f"<p>Scan this with your authenticator app:</p>{qr_img(uri)}"
        f'<p>or type the key <code id="secret">{escape(secret)}</code></p>'
    )
    body += form("/enrol/confirm", [("code", "First code")], "Confirm", hidden=hidden)
    return page("Set up your authenticator", body)


def confirm_again_page(*, message: str, hidden: str = "") -> str:
    """A refused confirmation: type the next code (the QR code is not shown twice)."""
    body = form("/enrol/confirm", [("code", "First code")], "Confirm", hidden=hidden)
    body += '<p><a href="/enrol">Start again</a></p>'
    return page("Set up your authenticator", body, message=message)


def codes_page(codes: Iterable[str]) -> str:
    """New recovery codes, shown this once."""
    items = "".join(f"<li><code>{escape(c)}</code></li>" for c in codes)
    body = f'<p>Keep these; each works once.</p><ul id="codes">{items}</ul><a href="/">Done</a>'
    return page("Recovery codes", body)


def home_page(user: str, *, second_factor: bool, hidden: str = "") -> str:
    """The signed-in page: who, whether the second factor was used, the actions."""
    status = "with your second factor" if second_factor else "with your password only"
    body = f'<p id="who">Signed in as {escape(user)}, {status}.</p>'
    if not second_factor:
        body += '<p><a id="enrol" href="/enrol">Set up an authenticator app</a></p>'
    else:
        body += form("/recovery-codes", [], "New recovery codes", hidden=hidden)
    body += form("/logout", [], "Sign out", hidden=hidden)
    return page("Welcome", body)
