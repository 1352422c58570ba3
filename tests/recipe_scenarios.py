"""The attacks every framework recipe of examples/ must withstand, over a test client.

Each ``tests/test_recipe_<framework>.py`` wraps its framework's own test client in a
:class:`Client` (no redirects followed, cookies kept) around an app whose service reads a
:class:`~mfa_core.testing.FakeClock`, and runs these scenarios: the whole loop (enrolment
with the QR code, login with a code, a replay refused, recovery codes), throttling as 429
with ``Retry-After`` up to the lock at the 11th wrong code, one uniform refusal text, and
sessions never marked second-factor-done by a failure.
"""

from __future__ import annotations

import base64
import importlib.util
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qs, urlsplit

from mfa_core import b32decode_key, parse_uri, totp

__all__ = ["totp"]
from mfa_core.recovery import Argon2Params, RecoveryConfig
from mfa_core.sealing import AESGCMSealer
from mfa_core.service import ServiceConfig
from mfa_core.testing import FakeClock

_S = TypeVar("_S")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
T0 = 1_800_000_005.0
PASSWORD = "correct horse"
REFUSAL = "invalid code"
_MESSAGE = re.compile(r'<p id="message" role="alert">(.*?)</p>', re.S)
_SECRET = re.compile(r'<code id="secret">([A-Z2-7]+)</code>')
_QR = re.compile(r'<img id="qr" [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
_CODES = re.compile(r"<li><code>([^<]+)</code></li>")


def load_example(name: str) -> ModuleType:
    """Import examples/<name>.py afresh, as module ``name`` (examples/ is put on sys.path
    for its mfa_web import; sys.modules holds it, for frameworks that import by name)."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def service_over(front: Callable[..., _S], store: Any, clock: FakeClock, issuer: str) -> _S:
    """``front`` (MFAService or AsyncMFAService) over one ``store`` for every port, with a
    fresh sealing key and host secret, the fake ``clock`` and :func:`config`."""
    return front(
        store,
        store,
        AESGCMSealer.generate(),
        clock=clock,
        config=config(issuer),
        recovery_codes=store,
        secret=os.urandom(32),
    )


def config(issuer: str) -> ServiceConfig:
    """The recipes' service configuration with the cheapest Argon2id (tests only)."""
    return ServiceConfig(
        issuer=issuer, recovery=RecoveryConfig(argon2=Argon2Params.fast_for_testing())
    )


@dataclass
class Reply:
    """One HTTP answer, whatever the framework's response class."""

    status: int
    text: str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def location(self) -> str:
        """The redirect's target path ('' when not a redirect)."""
        return urlsplit(self.headers.get("location", "")).path

    @property
    def message(self) -> str | None:
        """The text of the page's ``<p id="message">``, if any."""
        found = _MESSAGE.search(self.text)
        return None if found is None else found.group(1)


class Client(Protocol):
    """A framework's test client: GET and form POST, no redirects followed."""

    def get(self, path: str) -> Reply: ...

    def post(self, path: str, data: dict[str, str]) -> Reply: ...


class Wrapped:
    """A :class:`Client` over a test client with ``get(path)`` and ``post(path, data=...)``
    (Starlette's, Flask's); ``text`` reads a response's body."""

    def __init__(self, client: Any, text: Callable[[Any], str]) -> None:
        self.client = client
        self._text = text

    def _reply(self, response: Any) -> Reply:
        headers = {k.lower(): v for k, v in response.headers.items()}
        return Reply(response.status_code, self._text(response), headers)

    def get(self, path: str) -> Reply:
        return self._reply(self.client.get(path))

    def post(self, path: str, data: dict[str, str]) -> Reply:
        return self._reply(self.client.post(path, data=data))


MakeClient = Callable[[FakeClock], Client]


@dataclass
class Enrolled:
    """A user who enrolled through the pages: the key (from the QR code) and their codes."""

    key: bytes
    recovery_codes: list[str]


def sign_in(client: Client, user: str = "alice") -> Reply:
    """Step one of the login: the password."""
    return client.post("/login", {"username": user, "password": PASSWORD})


def is_signed_in_with_second_factor(client: Client) -> bool:
    """Whether the session is fully signed in (the home page says so)."""
    home = client.get("/")
    return home.status == 200 and "with your second factor" in home.text


def enrol(
    client: Client, clock: FakeClock, user: str = "alice", *, wrong_first: bool = False
) -> Enrolled:
    """Sign in with the password, scan the QR code, confirm, keep the recovery codes.

    ``wrong_first``: type a wrong code first (it counts as a failure until a login succeeds).
    """
    import zxingcpp
    from browser_tools import decode_qr

    assert zxingcpp  # the QR code is read as a phone would
    first = sign_in(client, user)
    assert first.status in (302, 303) and first.location == "/"
    home = client.get("/")
    assert "with your password only" in home.text
    page = client.get("/enrol")
    assert page.status == 200
    qr = _QR.search(page.text)
    assert qr is not None
    (uri,) = decode_qr(base64.b64decode(qr.group(1)))
    parsed = parse_uri(uri)
    secret = _SECRET.search(page.text)
    assert secret is not None and b32decode_key(secret.group(1)) == parsed.key
    assert parse_qs(urlsplit(uri).query)["issuer"]
    if wrong_first:
        wrong = client.post("/enrol/confirm", {"code": "12345x"})
        assert wrong.status == 401 and wrong.message == REFUSAL
        assert "Start again" in wrong.text and not _QR.search(wrong.text)
        clock.advance(2)  # past the 1 s delay the failure started
    confirmed = client.post("/enrol/confirm", {"code": totp(parsed.key, clock.now())})
    assert confirmed.status == 200, confirmed.text
    codes = _CODES.findall(confirmed.text)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert is_signed_in_with_second_factor(client)
    client.post("/logout", {})
    assert client.get("/").location == "/login"
    return Enrolled(parsed.key, codes)


def whole_loop(make_client: MakeClient, clock: FakeClock) -> None:
    """Enrol, log out and in with a fresh code, replay refused, recovery code, its reuse."""
    client = make_client(clock)
    assert client.get("/").location == "/login"
    assert client.get("/enrol").location == "/login"
    alice = enrol(client, clock, wrong_first=True)
    clock.advance(30)
    code = totp(alice.key, clock.now())
    pending = sign_in(client)
    assert pending.location == "/login/code"
    assert client.get("/").location == "/login"  # password alone signs nobody in
    assert client.get("/enrol").location == "/login"
    done = client.post("/login/code", {"code": code})
    assert done.status in (302, 303) and done.location == "/"
    assert is_signed_in_with_second_factor(client)
    client.post("/logout", {})
    assert not is_signed_in_with_second_factor(client)

    sign_in(client)
    replay = client.post("/login/code", {"code": code})
    assert replay.status == 401 and replay.message == REFUSAL
    assert not is_signed_in_with_second_factor(client)
    clock.advance(2)
    recovered = client.post("/login/recovery", {"recovery_code": alice.recovery_codes[0]})
    assert recovered.location == "/", recovered.text
    assert is_signed_in_with_second_factor(client)
    fresh = client.post("/recovery-codes", {})
    new_codes = _CODES.findall(fresh.text)
    assert len(new_codes) == 10 and not set(new_codes) & set(alice.recovery_codes)
    client.post("/logout", {})

    sign_in(client)
    reused = client.post("/login/recovery", {"recovery_code": alice.recovery_codes[1]})
    assert reused.status == 401 and reused.message == REFUSAL  # the old set was replaced
    assert not is_signed_in_with_second_factor(client)
    clock.advance(3)
    assert client.post("/login/recovery", {"recovery_code": new_codes[0]}).location == "/"


def throttle_and_lock(make_client: MakeClient, clock: FakeClock) -> None:
    """429 + Retry-After inside a delay; ten wrong codes lock: the 11th (even right) is 429."""
    client = make_client(clock)
    alice = enrol(client, clock)
    clock.advance(60)
    sign_in(client)
    first = client.post("/login/code", {"code": "123456"})
    assert first.status == 401 and first.message == REFUSAL
    hurried = client.post("/login/code", {"code": totp(alice.key, clock.now())})
    assert hurried.status == 429 and hurried.message == REFUSAL
    assert int(hurried.headers["retry-after"]) >= 1
    for _ in range(9):  # failures 2..10, each after the delay the previous one started
        clock.advance(61)
        wrong = client.post("/login/code", {"code": "12345x"})
        assert wrong.status == 401 and wrong.message == REFUSAL
    clock.advance(61)
    locked = client.post("/login/code", {"code": totp(alice.key, clock.now())})
    assert locked.status == 429 and locked.message == REFUSAL
    wait = int(locked.headers["retry-after"])
    assert 800 <= wait <= 900  # the 900 s lock, started by the 10th failure 61 s ago
    recovery = client.post("/login/recovery", {"recovery_code": alice.recovery_codes[0]})
    assert recovery.status == 429 and recovery.message == REFUSAL
    assert not is_signed_in_with_second_factor(client)
    clock.advance(wait + 1)
    assert client.post("/login/code", {"code": totp(alice.key, clock.now())}).location == "/"


def uniform_refusal(make_client: MakeClient, clock: FakeClock) -> None:
    """Wrong code, replay, wrong/used recovery code, hostile input, locked: one page text."""
    client = make_client(clock)
    alice = enrol(client, clock)
    clock.advance(30)
    code = totp(alice.key, clock.now())
    sign_in(client)
    assert client.post("/login/code", {"code": code}).location == "/"
    client.post("/logout", {})
    sign_in(client)
    texts: dict[str, tuple[int, str | None]] = {}
    attempts = [
        ("wrong code", "/login/code", {"code": "000001"}),
        ("replayed code", "/login/code", {"code": code}),
        ("wrong recovery code", "/login/recovery", {"recovery_code": "AAAA-BBBB-CCCC-DDDD"}),
        ("not a code", "/login/code", {"code": "\u017f" * 6}),
        ("huge", "/login/code", {"code": "9" * 100_000}),
        ("full-width digits", "/login/code", {"code": "".join(chr(0xFF10 + d) for d in range(6))}),
        ("NUL", "/login/recovery", {"recovery_code": "\x00" * 19}),
        ("empty", "/login/code", {"code": ""}),
    ]
    for name, path, data in attempts:
        clock.advance(120)
        reply = client.post(path, data)
        texts[name] = (reply.status, reply.message)
    # Ten failures in all lock the user; the lock answers with the same text.
    for _ in range(10 - len(attempts)):
        clock.advance(120)
        client.post("/login/code", {"code": "000002"})
    clock.advance(120)
    locked = client.post("/login/recovery", {"recovery_code": alice.recovery_codes[0]})
    assert locked.status == 429
    texts["locked"] = (401, locked.message)
    assert set(texts.values()) == {(401, REFUSAL)}, texts
    assert not is_signed_in_with_second_factor(client)


class Attacks:
    """The scenarios as tests: a ``Test...`` subclass in each recipe's test module inherits
    them; the module provides the ``make_client`` fixture."""

    def test_whole_loop(self, make_client: MakeClient) -> None:
        whole_loop(make_client, FakeClock(T0))

    def test_throttle_429_with_retry_after_and_lock_at_the_11th(
        self, make_client: MakeClient
    ) -> None:
        throttle_and_lock(make_client, FakeClock(T0))

    def test_one_refusal_text(self, make_client: MakeClient) -> None:
        uniform_refusal(make_client, FakeClock(T0))
