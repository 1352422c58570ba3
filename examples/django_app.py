"""Django recipe: ``django.contrib.auth`` login with a second factor, in one file.

Install and run (from the repository root)::

    pip install 'mfa_core[django]'
    python examples/django_app.py migrate
    python examples/django_app.py createsuperuser
    python examples/django_app.py runserver

then open http://127.0.0.1:8000/ and sign in. (A real project puts :func:`settings_for`'s
entries in its settings module, the views in an app, and the URLs in its ``urls.py``.)

Where the second factor sits: the ``login`` view calls ``authenticate()``; when the user has
an authenticator it does **not** call ``login()`` but keeps the user's id under
``mfa_pending`` in the (anonymous) session. ``login_code`` / ``login_recovery`` call
:class:`~mfa_core.service.MFAService` and, on success only, call ``login()`` (which rotates
the session key and the CSRF token) and set ``mfa`` in the session. A refusal leaves the
visitor anonymous and answers with :func:`mfa_web.answer`: one text for every refused code,
HTTP 429 with ``Retry-After`` while throttled or locked. Django's CSRF middleware guards
every form (the pages carry its token).

Storage: :class:`~mfa_core.stores.sql.SQLStore` on a SQLAlchemy engine built from
``settings.DATABASES`` (:func:`engine_from_django_settings`: SQLite, the default here, or
PostgreSQL), its tables created beside Django's on first use; a project that manages its
schema runs :func:`mfa_core.stores.sql.schema_ddl` in a migration instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import django
import sqlalchemy as sa
from django.conf import settings
from django.contrib import auth
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.middleware.csrf import get_token
from django.urls import path
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from mfa_web import (
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
from mfa_core.stores.sql import SQLStore, create_schema

HERE = Path(__file__).resolve().parent


def settings_for(database: str | os.PathLike[str] | None = None, **extra: Any) -> dict[str, Any]:
    """The settings this recipe needs (``database``: the SQLite file, by default
    ``MFA_DJANGO_DB`` or ``mfa-django.sqlite3``); ``extra`` overrides any entry."""
    name = database or os.environ.get("MFA_DJANGO_DB", "mfa-django.sqlite3")
    values: dict[str, Any] = {
        "DEBUG": False,
        "SECRET_KEY": session_secret_from_env(),
        "ALLOWED_HOSTS": ["127.0.0.1", "localhost", "testserver"],
        "ROOT_URLCONF": __name__,
        "INSTALLED_APPS": [
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
        ],
        "MIDDLEWARE": [
            "django.middleware.security.SecurityMiddleware",
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ],
        "DATABASES": {
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(name)},
        },
        "DEFAULT_AUTO_FIELD": "django.db.models.AutoField",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": False,  # True behind TLS (always, in production)
        "CSRF_COOKIE_SECURE": False,  # likewise
        "USE_TZ": True,
    }
    values.update(extra)
    return values


def configure(database: str | os.PathLike[str] | None = None, **extra: Any) -> None:
    """Configure Django with :func:`settings_for` (once per process) and set it up."""
    if not settings.configured:
        settings.configure(**settings_for(database, **extra))
    django.setup()


def engine_from_django_settings(alias: str = "default") -> sa.Engine:
    """A SQLAlchemy engine on the database ``settings.DATABASES[alias]`` names."""
    return engine_from_database_settings(settings.DATABASES[alias])


def engine_from_database_settings(db: Mapping[str, Any]) -> sa.Engine:
    """A SQLAlchemy engine on the database one ``DATABASES`` entry describes: SQLite (a
    file), or PostgreSQL through psycopg 3; ``ImproperlyConfigured`` for anything else."""
    vendor = str(db["ENGINE"]).rsplit(".", 1)[-1]
    if vendor == "sqlite3":
        name = str(db["NAME"])
        if name == ":memory:" or name.startswith("file:"):
            raise ImproperlyConfigured("an in-memory SQLite database cannot be shared")
        # Django and SQLAlchemy each open the file: wait on the other's write lock.
        url = sa.URL.create("sqlite", database=name)
        return sa.create_engine(url, connect_args={"timeout": 30})
    if vendor == "postgresql":
        url = sa.URL.create(
            "postgresql+psycopg",
            username=db.get("USER") or None,
            password=db.get("PASSWORD") or None,
            host=db.get("HOST") or None,
            port=int(db["PORT"]) if db.get("PORT") else None,
            database=db.get("NAME") or None,
        )
        return sa.create_engine(url, pool_pre_ping=True)
    raise ImproperlyConfigured(f"no SQLStore recipe for the {vendor!r} database backend")


_service: MFAService | None = None


def get_service() -> MFAService:
    """The process's one MFAService (thread-safe), made on first use from the settings."""
    global _service  # noqa: PLW0603 - one service per process, like a database connection
    if _service is None:
        engine = engine_from_django_settings()
        create_schema(engine)  # idempotent
        store = SQLStore(engine)
        _service = MFAService(
            store,
            store,
            sealer_from_env(),
            config=ServiceConfig(issuer="Django recipe"),
            recovery_codes=store,
            secret=host_secret_from_env(),
        )
    return _service


def use_service(service: MFAService | None) -> None:
    """Replace the process's service (tests: one with a fake clock); ``None`` resets it."""
    global _service  # noqa: PLW0603
    _service = service


# -- views -----------------------------------------------------------------------------


def _csrf(request: HttpRequest) -> str:
    return f'<input type="hidden" name="csrfmiddlewaretoken" value="{get_token(request)}">'


def _html(body: str, status: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
    return HttpResponse(body, status=status, headers=headers, content_type="text/html")


def _to(target: str) -> HttpResponse:
    return HttpResponseRedirect(target, status=303)


def _mfa_id(user: Any) -> str:
    """The id mfa_core knows the user by: the primary key (user names can change)."""
    return str(user.pk)


def _guarded(view: Any) -> Any:
    """Answer a typed error with its code (503 for a failed store), never its text."""

    def run(request: HttpRequest) -> HttpResponse:
        try:
            response: HttpResponse = view(request)
        except MFAError as exc:
            return _html(page("Refused", f"<p>{exc.code.value}</p>"), error_status(exc))
        return response

    return run


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """Who is signed in, and with which factors."""
    if not request.user.is_authenticated:
        return _to("/login")
    mfa = bool(request.session.get("mfa"))
    return _html(home_page(request.user.get_username(), second_factor=mfa, hidden=_csrf(request)))


@require_http_methods(["GET", "POST"])
@_guarded
def login(request: HttpRequest) -> HttpResponse:
    """Step one: the password. A user with an authenticator is not logged in yet."""
    if request.method == "GET":
        return _html(login_page(hidden=_csrf(request)))
    user = auth.authenticate(
        request,
        username=request.POST.get("username", ""),
        password=request.POST.get("password", ""),
    )
    if user is None:
        message = "wrong user name or password"
        return _html(login_page(message=message, hidden=_csrf(request)), 401)
    auth.logout(request)  # flush whatever the session held
    if any(c.can_authenticate for c in get_service().list_credentials(_mfa_id(user))):
        request.session.cycle_key()
        request.session["mfa_pending"] = user.pk
        return _to("/login/code")
    auth.login(request, user)
    request.session["mfa"] = False
    return _to("/")


def _pending_user(request: HttpRequest) -> Any:
    pk = request.session.get("mfa_pending")
    if pk is None:
        return None
    return auth.get_user_model().objects.filter(pk=pk, is_active=True).first()


def _second_factor(request: HttpRequest, kind: str) -> HttpResponse:
    user = _pending_user(request)
    if user is None:
        return _to("/login")
    mfa = get_service()
    if kind == "code":
        result = mfa.verify(_mfa_id(user), request.POST.get("code", ""))
    else:
        result = mfa.verify_recovery_code(_mfa_id(user), request.POST.get("recovery_code", ""))
    outcome = answer(result)
    if not outcome.accepted:
        body = code_page(message=outcome.message, hidden=_csrf(request))
        return _html(body, outcome.status, outcome.headers)
    del request.session["mfa_pending"]
    auth.login(request, user)  # a new session key, a new CSRF token
    request.session["mfa"] = True
    return _to("/")


@require_http_methods(["GET", "POST"])
@_guarded
def login_code(request: HttpRequest) -> HttpResponse:
    """Step two: the form (a code, or a recovery code), and a code from the app."""
    if request.method == "GET":
        if _pending_user(request) is None:
            return _to("/login")
        return _html(code_page(hidden=_csrf(request)))
    return _second_factor(request, "code")


@require_POST
@_guarded
def login_recovery(request: HttpRequest) -> HttpResponse:
    """Step two with a recovery code."""
    return _second_factor(request, "recovery")


@require_GET
@_guarded
def enrol(request: HttpRequest) -> HttpResponse:
    """Start enrolling an authenticator: the QR code and the confirmation form."""
    if not request.user.is_authenticated:
        return _to("/login")
    user = request.user
    enrolment = get_service().begin_enrolment(_mfa_id(user), account=user.get_username())
    request.session["mfa_enrolling"] = enrolment.credential_id
    return _html(enrol_page(enrolment.uri, enrolment.secret, hidden=_csrf(request)))


@require_POST
@_guarded
def confirm(request: HttpRequest) -> HttpResponse:
    """The first code: the authenticator works; show the recovery codes once."""
    pending = request.session.get("mfa_enrolling")
    if not request.user.is_authenticated or not pending:
        return _to("/login")
    mfa, user_id = get_service(), _mfa_id(request.user)
    outcome = answer(mfa.confirm_enrolment(user_id, pending, request.POST.get("code", "")))
    if not outcome.accepted:
        body = confirm_again_page(message=outcome.message, hidden=_csrf(request))
        return _html(body, outcome.status, outcome.headers)
    del request.session["mfa_enrolling"]
    request.session["mfa"] = True
    return _html(codes_page(mfa.generate_recovery_codes(user_id).codes))


@require_POST
@_guarded
def new_codes(request: HttpRequest) -> HttpResponse:
    """A new set of recovery codes (the old one stops working): both factors required."""
    if not request.user.is_authenticated or not request.session.get("mfa"):
        return _to("/login")
    return _html(codes_page(get_service().generate_recovery_codes(_mfa_id(request.user)).codes))


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    """Sign out: the session is flushed."""
    auth.logout(request)
    return _to("/login")


urlpatterns = [
    path("", home),
    path("login", login),
    path("login/code", login_code),
    path("login/recovery", login_recovery),
    path("enrol", enrol),
    path("enrol/confirm", confirm),
    path("recovery-codes", new_codes),
    path("logout", logout),
]


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    configure()
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
