"""The whole user loop in a real browser: Debian's Chromium, driven by Playwright, against
the FastAPI recipe (examples/fastapi_app.py) served by uvicorn on a free loopback port.

The test is the user and the phone: it signs in with the password, reads the QR code from a
screenshot of the enrolment page (zxing-cpp), computes the code from the decoded
``otpauth://`` URI (pyotp, as an authenticator app would), types it, signs out and in with a
fresh code, sees a replayed code refused, and signs in with a recovery code. Time is the
app's FakeClock, so "the next code" needs no 30 s wait. One screenshot per step goes to
pytest's temporary directory; the step count and that path are printed in the test output.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import recipe_scenarios as scenarios
from browser_tools import Steps, launch_chromium, require_chromium, serve_asgi
from test_recipe_fastapi import T0, load_example, service

from mfa_core.testing import FakeClock

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pyotp = pytest.importorskip("pyotp")


def _submit(page: Any, button: str) -> Any:
    """Click the submit button named ``button``; return the response of the page it loads."""
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name=button).click()
    return navigation.value


def _sign_in(page: Any, base: str) -> Any:
    page.goto(base + "/login")
    page.fill("#username", "alice")
    page.fill("#password", scenarios.PASSWORD)
    return _submit(page, "Sign in")


def test_enrol_scan_sign_in_replay_and_recovery_in_chromium(  # noqa: PLR0915 - one story
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    require_chromium()
    clock = FakeClock(T0)
    app = load_example("fastapi_app").create_app(
        service(tmp_path, clock), users={"alice": scenarios.PASSWORD}
    )
    steps = Steps(tmp_path / "screenshots")
    with serve_asgi(app) as base, launch_chromium() as browser:
        page = browser.new_page(viewport={"width": 800, "height": 900})

        # 1-2: the password alone signs in a user who has no second factor yet.
        page.goto(base + "/")
        assert page.url == base + "/login"
        steps.shot(page, "login")
        assert _sign_in(page, base).status == 200
        assert "with your password only" in page.inner_text("#who")
        steps.shot(page, "password-only")

        # 3: enrolment: the QR code read off the screen, the code computed from it.
        with page.expect_navigation():
            page.click("#enrol")
        uri = steps.shot_qr(page, "enrol-qr")
        assert uri.startswith("otpauth://totp/") and "issuer=" in uri
        phone = pyotp.parse_uri(uri)
        assert phone.secret == page.inner_text("#secret")
        page.fill("#code", phone.at(clock.now()))
        assert _submit(page, "Confirm").status == 200
        codes = page.locator("#codes li").all_inner_texts()
        assert len(codes) == 10
        steps.shot(page, "recovery-codes")

        # 4-6: sign out; sign in again: the password leaves the session pending, a fresh
        # code completes it.
        page.goto(base + "/")
        _submit(page, "Sign out")
        assert page.url == base + "/login"
        steps.shot(page, "signed-out")
        assert _sign_in(page, base).status == 200
        assert page.url == base + "/login/code"
        steps.shot(page, "second-factor")
        clock.advance(30)
        code = phone.at(clock.now())
        page.fill("#code", code)
        assert _submit(page, "Verify").status == 200
        assert "with your second factor" in page.inner_text("#who")
        steps.shot(page, "signed-in-with-code")

        # 7: the same code again is refused, and the session stays pending.
        _submit(page, "Sign out")
        _sign_in(page, base)
        page.fill("#code", code)
        replay = _submit(page, "Verify")
        assert replay.status == 401
        assert page.inner_text("#message") == scenarios.REFUSAL
        steps.shot(page, "replay-refused")
        page.goto(base + "/")
        assert page.url == base + "/login"

        # 8: a recovery code signs in (after the 1 s delay the refusal started).
        clock.advance(2)
        _sign_in(page, base)
        page.fill("#recovery_code", codes[0])
        assert _submit(page, "Use it").status == 200
        assert "with your second factor" in page.inner_text("#who")
        steps.shot(page, "signed-in-with-recovery-code")
    # shown at the end of every run's output, CI's included (tests/conftest.py)
    record_property(
        "summary", f"browser loop: {len(steps)} steps, screenshots in {steps.directory}"
    )
    assert steps.names == [
        "login",
        "password-only",
        "enrol-qr",
        "recovery-codes",
        "signed-out",
        "second-factor",
        "signed-in-with-code",
        "replay-refused",
        "signed-in-with-recovery-code",
    ]
    assert all(p.stat().st_size > 1000 for p in steps.directory.glob("*.png"))
