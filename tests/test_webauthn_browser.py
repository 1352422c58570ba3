"""A real browser registers a security key and signs in: Chromium's virtual authenticator
(CDP ``WebAuthn.enable`` + ``WebAuthn.addVirtualAuthenticator``, through Playwright's CDP
session) against examples/webauthn_app.py served on localhost.

The page uses ``PublicKeyCredential.parseCreationOptionsFromJSON`` /
``parseRequestOptionsFromJSON`` and ``credential.toJSON()`` unchanged: the service's Level 3
JSON forms plug in directly. Skips with a reason when Chromium is absent (fails in CI).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from browser_tools import launch_chromium, require_chromium, serve_wsgi

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "webauthn_app.py"


def _example() -> Any:
    spec = importlib.util.spec_from_file_location("webauthn_app_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _reset(page: Any) -> None:
    page.evaluate("document.getElementById('status').textContent = 'waiting'")


def _wait_status(page: Any, prefix: str) -> str:
    page.wait_for_function(
        "(p) => document.getElementById('status').textContent.startsWith(p)"
        " || document.getElementById('status').textContent.startsWith('error')"
        " || document.getElementById('status').textContent.startsWith('refused')",
        arg=prefix,
        timeout=30_000,
    )
    text: str = page.inner_text("#status")
    return text


def test_virtual_authenticator_registers_and_signs_in() -> None:
    require_chromium()
    example = _example()
    holder: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        return holder["app"](environ, start_response)

    with serve_wsgi(app) as base:
        port = base.rsplit(":", 1)[1]
        origin = f"http://localhost:{port}"  # the RP ID must be a domain: localhost
        holder["app"] = example.WebAuthnApp(origin)
        with launch_chromium() as browser:
            page = browser.new_page()
            cdp = page.context.new_cdp_session(page)
            cdp.send("WebAuthn.enable")
            added = cdp.send(
                "WebAuthn.addVirtualAuthenticator",
                {
                    "options": {
                        "protocol": "ctap2",
                        "transport": "usb",
                        "hasResidentKey": True,
                        "hasUserVerification": True,
                        "isUserVerified": True,
                        "automaticPresenceSimulation": True,
                    }
                },
            )
            page.goto(origin + "/")
            page.click("#register")
            assert _wait_status(page, "registered").startswith("registered"), page.inner_text(
                "#status"
            )
            _reset(page)
            page.click("#login")
            assert _wait_status(page, "signed in") == "signed in as alice"
            before = holder["app"].service.list_webauthn_credentials("alice")[0].sign_count
            _reset(page)
            page.click("#passkey")  # a discoverable credential, no user name typed
            assert _wait_status(page, "signed in") == "signed in as alice"
            after = holder["app"].service.list_webauthn_credentials("alice")[0]
            assert after.sign_count > before and after.last_used_at is not None
            credentials = cdp.send(
                "WebAuthn.getCredentials", {"authenticatorId": added["authenticatorId"]}
            )["credentials"]
            assert len(credentials) == 1
            stored = holder["app"].service.list_webauthn_credentials("alice")
            assert len(stored) == 1
            assert stored[0].discoverable is True
            assert stored[0].sign_count == credentials[0]["signCount"]
            browser_id = credentials[0]["credentialId"]
            assert stored[0].credential_id == browser_id.replace("+", "-").replace("/", "_").rstrip(
                "="
            )
