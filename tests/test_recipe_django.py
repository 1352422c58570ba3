"""The Django recipe (examples/django_app.py) attacked through Django's test client, with
CSRF checks enforced, on SQLStore over an engine built from Django's settings (SQLite; the
PostgreSQL mapping against the real server)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import recipe_scenarios as scenarios
from server_tools import unavailable

from mfa_core import totp
from mfa_core.service import MFAService
from mfa_core.testing import FakeClock

pytest.importorskip("django")
pytest.importorskip("sqlalchemy")

import sqlalchemy as sa
from django.conf import settings

from mfa_core.stores.sql import SQLStore, create_schema, metadata

pytest_plugins = ("servers",)


class _Client:
    """Django's Client with CSRF enforced; each POST carries the current CSRF token (the
    cookie's secret, as Django's docs describe for scripts), unless ``csrf=False``."""

    def __init__(self) -> None:
        from django.test import Client

        self.client = Client(enforce_csrf_checks=True)

    def _reply(self, response: Any) -> scenarios.Reply:
        headers = {k.lower(): v for k, v in response.headers.items()}
        return scenarios.Reply(response.status_code, response.content.decode(), headers)

    def get(self, path: str) -> scenarios.Reply:
        return self._reply(self.client.get(path))

    def post(self, path: str, data: dict[str, str], *, csrf: bool = True) -> scenarios.Reply:
        if csrf:
            if "csrftoken" not in self.client.cookies:
                self.client.get("/login")  # the form page sets the cookie
            data = {**data, "csrfmiddlewaretoken": self.client.cookies["csrftoken"].value}
        return self._reply(self.client.post(path, data))


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Any:
    module = scenarios.load_example("django_app")
    database = tmp_path_factory.mktemp("django") / "db.sqlite3"
    if settings.configured and settings.ROOT_URLCONF != "django_app":
        unavailable("Django's settings were configured by another test module of this run")
    module.configure(  # a no-op when the docs' test configured the recipe already
        database, PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]
    )  # MD5: fast password checks, for tests only
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return module


@pytest.fixture
def engine(example: Any) -> Iterator[sa.Engine]:
    """Django's tables flushed, the store's made anew, and alice a Django user."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("flush", interactive=False, verbosity=0)
    made = example.engine_from_django_settings()
    metadata.drop_all(made)
    create_schema(made)
    get_user_model().objects.create_user("alice", password=scenarios.PASSWORD)
    yield made
    example.use_service(None)
    made.dispose()


def _service(engine: sa.Engine, clock: FakeClock) -> MFAService:
    return scenarios.service_over(MFAService, SQLStore(engine), clock, "Django recipe")


@pytest.fixture
def make_client(example: Any, engine: sa.Engine) -> scenarios.MakeClient:
    def make(clock: FakeClock) -> _Client:
        example.use_service(_service(engine, clock))
        return _Client()

    return make


class TestAttacks(scenarios.Attacks):
    """Replay, throttling and the lock, one refusal text, sessions (recipe_scenarios)."""


def test_csrf_refuses_forms_without_the_token(
    make_client: scenarios.MakeClient, engine: sa.Engine
) -> None:
    clock = FakeClock(scenarios.T0)
    client = make_client(clock)
    assert isinstance(client, _Client)
    alice = scenarios.enrol(client, clock)
    clock.advance(30)
    code = totp(alice.key, clock.now())
    login = {"username": "alice", "password": scenarios.PASSWORD}
    assert client.post("/login", login, csrf=False).status == 403
    scenarios.sign_in(client)
    page = client.get("/login/code")
    assert len(re.findall(r'name="csrfmiddlewaretoken" value="\w+"', page.text)) == 2
    assert client.post("/login/code", {"code": code}, csrf=False).status == 403
    recovery = {"recovery_code": alice.recovery_codes[0]}
    assert client.post("/login/recovery", recovery, csrf=False).status == 403
    assert not scenarios.is_signed_in_with_second_factor(client)
    # The forged posts reached no verification: the code is still unused and unthrottled.
    assert client.post("/login/code", {"code": code}).location == "/"
    assert scenarios.is_signed_in_with_second_factor(client)
    assert client.post("/logout", {}, csrf=False).status == 403
    assert client.post("/recovery-codes", {}, csrf=False).status == 403


def test_login_rotates_the_session_key(make_client: scenarios.MakeClient) -> None:
    clock = FakeClock(scenarios.T0)
    client = make_client(clock)
    assert isinstance(client, _Client)
    alice = scenarios.enrol(client, clock)
    clock.advance(30)
    scenarios.sign_in(client)
    pending_key = client.client.cookies["sessionid"].value
    assert client.post("/login/code", {"code": totp(alice.key, clock.now())}).location == "/"
    assert client.client.cookies["sessionid"].value != pending_key  # no session fixation
    from django.contrib.sessions.backends.db import SessionStore

    assert not SessionStore().exists(pending_key)


def test_the_store_shares_djangos_database(example: Any, engine: sa.Engine) -> None:
    name = str(settings.DATABASES["default"]["NAME"])
    assert engine.url.get_backend_name() == "sqlite" and engine.url.database == name
    with engine.connect() as connection:
        tables = set(sa.inspect(connection).get_table_names())
    assert {"auth_user", "django_session"} <= tables
    assert set(metadata.tables) <= tables
    example.use_service(None)
    default = example.get_service()  # made from the settings, on that engine
    assert default is example.get_service()
    enrolment = default.begin_enrolment("42")
    assert [c.id for c in SQLStore(engine).list_for_user("42")] == [enrolment.credential_id]


def test_engine_from_postgresql_settings(
    example: Any, postgres_url: str, postgres_schema: str
) -> None:
    from django.core.exceptions import ImproperlyConfigured

    url = sa.make_url(postgres_url)
    database = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": url.database,
        "USER": url.username,
        "PASSWORD": url.password or "",
        "HOST": url.host or "",
        "PORT": str(url.port or ""),
    }
    made = example.engine_from_database_settings(database)
    try:
        assert made.url.drivername == "postgresql+psycopg"
        mapped = made.execution_options(schema_translate_map={None: postgres_schema})
        store = SQLStore(mapped)
        service = _service(mapped, FakeClock(scenarios.T0))
        enrolment = service.begin_enrolment("7")
        assert [c.id for c in store.list_for_user("7")] == [enrolment.credential_id]
    finally:
        made.dispose()
    others = [
        {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
        {"ENGINE": "django.db.backends.mysql", "NAME": "app"},
    ]
    for other in others:
        with pytest.raises(ImproperlyConfigured):
            example.engine_from_database_settings(other)


def test_the_recipe_runs_as_a_manage_script(tmp_path: Path) -> None:
    """``python examples/django_app.py migrate`` (the documented first step) works."""
    database = tmp_path / "run.sqlite3"
    env = {**os.environ, "MFA_DJANGO_DB": str(database)}
    script = scenarios.EXAMPLES / "django_app.py"
    done = subprocess.run(
        [sys.executable, str(script), "migrate", "-v", "0"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    with sa.create_engine(f"sqlite:///{database}").connect() as connection:
        assert "auth_user" in sa.inspect(connection).get_table_names()
