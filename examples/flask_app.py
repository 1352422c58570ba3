"""Flask recipe: a password login with a second factor, on the blocking service.

Install and run (from the repository root)::

    pip install 'mfa_core[flask]'
    MFA_SQLITE=mfa-flask.sqlite3 flask --app examples/flask_app.py run

then open http://127.0.0.1:5000/ and sign in as ``alice`` / ``correct horse``.

Where the second factor sits: the ``login`` view checks the password and, when the user has
an authenticator, only writes ``pending`` into the session; ``login_code`` (or
``login_recovery``) calls :class:`~mfa_core.service.MFAService` and, on success only,
replaces the session with a signed-in one (``user`` and ``mfa: True``). A refusal leaves the
session pending and answers with :func:`mfa_web.answer`: one text for every refused code,
HTTP 429 with ``Retry-After`` while throttled or locked. The :func:`second_factor_required`
decorator guards the views that need both factors.

Sessions are Flask's signed cookies (``SameSite=Lax``: other sites' forms cannot post with
the cookie; add Flask-WTF's CSRF protection for anything more). The service is made once
per app and is thread-safe: run it under any WSGI server. Storage: the SQLite file named by
``MFA_SQLITE``, else memory.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, Response, redirect, request, session
from mfa_web import (
    DemoUsers,
    answer,
    code_page,
    codes_page,
    confirm_again_page,
    enrol_page,
    error_status,
    home_page,
    host_secret_from_env,
    login_page,
    page,
    sealer_from_env,
    session_secret_from_env,
)

from mfa_core.errors import MFAError
from mfa_core.service import MFAService, ServiceConfig
from mfa_core.stores import MemoryStore, SQLiteStore

DEMO_USERS = {"alice": "correct horse", "bob": "battery staple"}


def default_service() -> MFAService:
    """An MFAService over the SQLite file ``MFA_SQLITE`` (else memory)."""
    path = os.environ.get("MFA_SQLITE")
    store: Any = SQLiteStore(path) if path else MemoryStore()
    return MFAService(
        store,
        store,
        sealer_from_env(),
        config=ServiceConfig(issuer="Flask recipe"),
        recovery_codes=store,
        secret=host_secret_from_env(),
    )


def second_factor_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Let the view run only for a session signed in with both factors."""

    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if not session.get("user") or not session.get("mfa"):
            return redirect("/login", 303)
        return view(*args, **kwargs)

    return guarded


def create_app(
    service: MFAService | None = None,
    *,
    users: Mapping[str, str] | None = None,
    session_secret: str | None = None,
) -> Flask:
    """The app around ``service`` (default: :func:`default_service`)."""
    mfa = default_service() if service is None else service
    passwords = DemoUsers(DEMO_USERS if users is None else users)
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=session_secret or session_secret_from_env(),
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=False,  # True behind TLS (always, in production)
    )

    def html(body: str, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
        return Response(body, status, dict(headers or {}), mimetype="text/html")

    @app.get("/")
    def home() -> Any:
        user = session.get("user")
        if not user:
            return redirect("/login", 303)
        return html(home_page(user, second_factor=bool(session.get("mfa"))))

    @app.get("/login")
    def login_form() -> Any:
        return html(login_page())

    @app.post("/login")
    def login() -> Any:
        user = request.form.get("username", "")
        if not passwords.check(user, request.form.get("password", "")):
            return html(login_page(message="wrong user name or password"), 401)
        session.clear()
        if any(c.can_authenticate for c in mfa.list_credentials(user)):
            session["pending"] = user  # password done, second factor still due
            return redirect("/login/code", 303)
        session.update(user=user, mfa=False)
        return redirect("/", 303)

    @app.get("/login/code")
    def code_form() -> Any:
        return html(code_page()) if session.get("pending") else redirect("/login", 303)

    def second_factor(check: Callable[[str, str], Any], field: str) -> Any:
        user = session.get("pending")
        if not user:
            return redirect("/login", 303)
        outcome = answer(check(user, request.form.get(field, "")))
        if not outcome.accepted:
            return html(code_page(message=outcome.message), outcome.status, outcome.headers)
        session.clear()  # a new session: nothing of the pending one carries over
        session.update(user=user, mfa=True)
        return redirect("/", 303)

    @app.post("/login/code")
    def login_code() -> Any:
        return second_factor(mfa.verify, "code")

    @app.post("/login/recovery")
    def login_recovery() -> Any:
        return second_factor(mfa.verify_recovery_code, "recovery_code")

    @app.get("/enrol")
    def enrol() -> Any:
        user = session.get("user")
        if not user:
            return redirect("/login", 303)
        enrolment = mfa.begin_enrolment(user)
        session["enrolling"] = enrolment.credential_id
        return html(enrol_page(enrolment.uri, enrolment.secret))

    @app.post("/enrol/confirm")
    def confirm() -> Any:
        user, pending = session.get("user"), session.get("enrolling")
        if not user or not pending:
            return redirect("/login", 303)
        outcome = answer(mfa.confirm_enrolment(user, pending, request.form.get("code", "")))
        if not outcome.accepted:
            body = confirm_again_page(message=outcome.message)
            return html(body, outcome.status, outcome.headers)
        session.pop("enrolling")
        session["mfa"] = True
        return html(codes_page(mfa.generate_recovery_codes(user).codes))

    @app.post("/recovery-codes")
    @second_factor_required
    def new_codes() -> Any:
        return html(codes_page(mfa.generate_recovery_codes(session["user"]).codes))

    @app.post("/logout")
    def logout() -> Any:
        session.clear()
        return redirect("/login", 303)

    @app.errorhandler(MFAError)
    def refused(exc: MFAError) -> Any:
        # Bad input (an over-long user name, ...) or a failed store: the typed error's code,
        # never its text.
        return html(page("Refused", f"<p>{exc.code.value}</p>"), error_status(exc))

    return app


if __name__ == "__main__":
    create_app().run()
