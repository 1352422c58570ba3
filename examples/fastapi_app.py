"""FastAPI recipe: a password login with a second factor, on the async service.

Install and run (from the repository root)::

    pip install 'mfa_core[fastapi]'
    MFA_SQLITE=mfa-fastapi.sqlite3 uvicorn --factory fastapi_app:create_app --app-dir examples

then open http://127.0.0.1:8000/ and sign in as ``alice`` / ``correct horse``.

Where the second factor sits: ``POST /login`` checks the password and, when the user has an
authenticator, only writes ``pending`` into the session; ``POST /login/code`` (or
``/login/recovery``) calls :class:`~mfa_core.aio.AsyncMFAService` and, on success only,
replaces the session with a signed-in one (``user`` and ``mfa: True``). A refusal leaves
the session pending and answers with :func:`mfa_web.answer`: one text for every refused
code, HTTP 429 with ``Retry-After`` while throttled or locked. A user without an
authenticator signs in with the password and is offered ``/enrol`` (QR code, first code,
then ten recovery codes shown once).

Sessions are Starlette's signed cookies (``SessionMiddleware``, ``SameSite=Lax``, which
keeps other sites' forms from posting with the cookie). Storage: the SQLite file named by
``MFA_SQLITE`` (each call in a worker thread through
:class:`~mfa_core.aio.AsyncStoreAdapter`), else memory; any async store will do.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
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
from starlette.middleware.sessions import SessionMiddleware

from mfa_core.aio import AsyncMemoryStore, AsyncMFAService, AsyncStoreAdapter
from mfa_core.errors import MFAError
from mfa_core.service import ServiceConfig
from mfa_core.stores import SQLiteStore

DEMO_USERS = {"alice": "correct horse", "bob": "battery staple"}


def default_service() -> AsyncMFAService:
    """An AsyncMFAService over the SQLite file ``MFA_SQLITE`` (else memory)."""
    path = os.environ.get("MFA_SQLITE")
    store: Any = AsyncStoreAdapter(SQLiteStore(path)) if path else AsyncMemoryStore()
    return AsyncMFAService(
        store,
        store,
        sealer_from_env(),
        config=ServiceConfig(issuer="FastAPI recipe"),
        recovery_codes=store,
        secret=host_secret_from_env(),
    )


def create_app(  # noqa: PLR0915 - the routes read best side by side
    service: AsyncMFAService | None = None,
    *,
    users: Mapping[str, str] | None = None,
    session_secret: str | None = None,
) -> FastAPI:
    """The app around ``service`` (default: :func:`default_service`)."""
    mfa = default_service() if service is None else service
    passwords = DemoUsers(DEMO_USERS if users is None else users)
    app = FastAPI(title="mfa_core FastAPI recipe", docs_url=None, redoc_url=None)

    def html(body: str, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
        return HTMLResponse(body, status_code=status, headers=dict(headers or {}))

    def to(path: str) -> Response:
        return RedirectResponse(path, status_code=303)  # POST -> GET

    async def field(request: Request, name: str) -> str:
        value = (await request.form()).get(name)
        return value if isinstance(value, str) else ""

    @app.get("/")
    async def home(request: Request) -> Response:
        user = request.session.get("user")
        if not user:
            return to("/login")
        return html(home_page(user, second_factor=bool(request.session.get("mfa"))))

    @app.get("/login")
    async def login_form(request: Request) -> Response:
        return html(login_page())

    @app.post("/login")
    async def login(request: Request) -> Response:
        user = await field(request, "username")
        if not passwords.check(user, await field(request, "password")):
            return html(login_page(message="wrong user name or password"), 401)
        request.session.clear()
        credentials = await mfa.list_credentials(user)
        if any(c.can_authenticate for c in credentials):
            request.session["pending"] = user  # password done, second factor still due
            return to("/login/code")
        request.session.update(user=user, mfa=False)
        return to("/")

    @app.get("/login/code")
    async def code_form(request: Request) -> Response:
        return html(code_page()) if request.session.get("pending") else to("/login")

    async def second_factor(request: Request, kind: str) -> Response:
        user = request.session.get("pending")
        if not user:
            return to("/login")
        if kind == "code":
            result = await mfa.verify(user, await field(request, "code"))
        else:
            result = await mfa.verify_recovery_code(user, await field(request, "recovery_code"))
        outcome = answer(result)
        if not outcome.accepted:
            return html(code_page(message=outcome.message), outcome.status, outcome.headers)
        request.session.clear()  # a new session: nothing of the pending one carries over
        request.session.update(user=user, mfa=True)
        return to("/")

    @app.post("/login/code")
    async def login_code(request: Request) -> Response:
        return await second_factor(request, "code")

    @app.post("/login/recovery")
    async def login_recovery(request: Request) -> Response:
        return await second_factor(request, "recovery")

    @app.get("/enrol")
    async def enrol(request: Request) -> Response:
        user = request.session.get("user")
        if not user:
            return to("/login")
        enrolment = await mfa.begin_enrolment(user)
        request.session["enrolling"] = enrolment.credential_id
        return html(enrol_page(enrolment.uri, enrolment.secret))

    @app.post("/enrol/confirm")
    async def confirm(request: Request) -> Response:
        user, pending = request.session.get("user"), request.session.get("enrolling")
        if not user or not pending:
            return to("/login")
        result = await mfa.confirm_enrolment(user, pending, await field(request, "code"))
        outcome = answer(result)
        if not outcome.accepted:
            body = confirm_again_page(message=outcome.message)
            return html(body, outcome.status, outcome.headers)
        del request.session["enrolling"]
        request.session["mfa"] = True
        codes = await mfa.generate_recovery_codes(user)
        return html(codes_page(codes.codes))

    @app.post("/recovery-codes")
    async def new_codes(request: Request) -> Response:
        user = request.session.get("user")
        if not user or not request.session.get("mfa"):
            return to("/login")
        codes = await mfa.generate_recovery_codes(user)
        return html(codes_page(codes.codes))

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        request.session.clear()
        return to("/login")

    @app.exception_handler(MFAError)
    async def refused(request: Request, exc: MFAError) -> Response:
        # Bad input (an over-long user name, ...): the typed error's code, never its text.
        return html(page("Refused", f"<p>{exc.code.value}</p>"), error_status(exc))

    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret or session_secret_from_env(),
        same_site="lax",
        https_only=False,  # True behind TLS (always, in production)
    )
    return app
