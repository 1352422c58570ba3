"""A minimal web app with security keys and passkeys (WebAuthn) on mfa_core.

Standard library only (a WSGI app) plus ``mfa_core[webauthn]``. Run it and open
http://localhost:8000 (``localhost``, not ``127.0.0.1``: the RP ID must be a domain, and
http://localhost is a secure context, so WebAuthn works without TLS)::

    python examples/webauthn_app.py 8000

The page registers a key for a user name, then signs in with it, or with a passkey and no
user name. The server side is four JSON endpoints, each one call of
:class:`~mfa_core.service.MFAService`; the page hands the options to
``PublicKeyCredential.parseCreationOptionsFromJSON`` / ``parseRequestOptionsFromJSON`` and
posts ``credential.toJSON()`` back. A real app keeps the user in its session and does this
after the first factor; here the user name stands in for that.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import make_server

from mfa_core.sealing import AESGCMSealer
from mfa_core.service import MFAService
from mfa_core.stores import MemoryStore
from mfa_core.webauthn import WebAuthnConfig

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>mfa_core WebAuthn example</title></head>
<body>
<h1>Security keys and passkeys</h1>
<label>User <input id="user" value="alice"></label>
<button id="register">Register a key</button>
<button id="login">Sign in with the key</button>
<button id="passkey">Sign in with a passkey (no user name)</button>
<p id="status">ready</p>
<script>
async function post(path, body) {
  const reply = await fetch(path, {method: "POST", body: JSON.stringify(body),
                                   headers: {"Content-Type": "application/json"}});
  return reply.json();
}
function show(text) { document.getElementById("status").textContent = text; }
async function register() {
  const user = document.getElementById("user").value;
  const options = await post("/register/begin", {user});
  const credential = await navigator.credentials.create(
    {publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options)});
  const result = await post("/register/finish", {user, response: credential.toJSON()});
  show(result.accepted ? "registered " + result.credential_id : "refused: " + result.reason);
}
async function login(user) {
  const options = await post("/login/begin", {user});
  const credential = await navigator.credentials.get(
    {publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options)});
  const result = await post("/login/finish", {user, response: credential.toJSON()});
  show(result.accepted ? "signed in as " + result.user : "refused: " + result.reason);
}
function guard(action) {
  return () => action().catch((error) => show("error: " + error.name));
}
document.getElementById("register").onclick = guard(register);
document.getElementById("login").onclick =
  guard(() => login(document.getElementById("user").value));
document.getElementById("passkey").onclick = guard(() => login(null));
</script>
</body></html>
"""

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class WebAuthnApp:
    """The example's WSGI app: one :class:`MFAService` over a :class:`MemoryStore`.

    ``origin`` is the exact origin the page is served on (``http://localhost:8000``).
    """

    def __init__(self, origin: str, *, rp_id: str = "localhost") -> None:
        self.store = MemoryStore()
        self.service = MFAService(
            self.store,
            self.store,
            AESGCMSealer({"k1": bytes(32)}, current_key_id="k1"),  # demo key only
            webauthn=self.store,
            webauthn_config=WebAuthnConfig(
                rp_id=rp_id, rp_name="mfa_core example", origins=[origin]
            ),
        )

    def _reply(self, body: dict[str, Any]) -> dict[str, Any]:
        path = body["_path"]
        user = body.get("user") or None
        service = self.service
        if path == "/register/begin":
            return service.begin_webauthn_registration(user, user_name=user)
        if path == "/login/begin":
            return service.begin_webauthn_authentication(user)
        if path == "/register/finish":
            result = service.finish_webauthn_registration(user, body["response"], nickname="key")
        else:
            result = service.finish_webauthn_authentication(user, body["response"])
        return {
            "accepted": result.accepted,
            "reason": str(result.webauthn_reason),
            "credential_id": result.credential_id,
            "user": result.user_id,
        }

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if environ["REQUEST_METHOD"] == "GET" and path == "/":
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [PAGE.encode("utf-8")]
        if environ["REQUEST_METHOD"] != "POST" or path not in {
            "/register/begin", "/register/finish", "/login/begin", "/login/finish",
        }:  # fmt: skip
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(min(length, 100_000)) or b"{}")
        body["_path"] = path
        reply = json.dumps(self._reply(body)).encode("utf-8")
        start_response("200 OK", [("Content-Type", "application/json")])
        return [reply]


def main(port: int = 8000) -> None:
    """Serve the example on http://localhost:PORT until interrupted."""
    app = WebAuthnApp(f"http://localhost:{port}")
    with make_server("localhost", port, app) as server:
        print(f"open http://localhost:{port}")
        server.serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8000)
