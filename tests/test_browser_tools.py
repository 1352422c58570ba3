"""tests/browser_tools.py itself: both servers answer on loopback, and system Chromium reads a
QR code off a served page as a phone would (decoded from the screenshot)."""

from __future__ import annotations

import base64
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from browser_tools import Steps, decode_qr, launch_chromium, serve_asgi, serve_wsgi

from mfa_core import build_uri
from mfa_core.qr import qr_png

pytest.importorskip("uvicorn")
pytest.importorskip("zxingcpp")
pytest.importorskip("PIL")

URI = build_uri(b"12345678901234567890", account="alice@example.com", issuer="ACME Co")


def _page() -> bytes:
    data = base64.b64encode(qr_png(URI, scale=6)).decode()
    html = f'<!doctype html><title>qr</title><img alt="qr" src="data:image/png;base64,{data}">'
    return html.encode()


async def _asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]}
    )
    await send({"type": "http.response.body", "body": _page()})


def _wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/html")])
    return [_page()]


def test_servers_answer_on_free_loopback_ports() -> None:
    with serve_asgi(_asgi) as a, serve_wsgi(_wsgi) as w:
        assert a != w and a.startswith("http://127.0.0.1:") and w.startswith("http://127.0.0.1:")
        for base in (a, w):
            with urllib.request.urlopen(base + "/", timeout=10) as response:  # noqa: S310
                assert b"data:image/png" in response.read()


def test_decode_qr_reads_a_png_and_finds_nothing_in_a_blank_one() -> None:
    assert decode_qr(qr_png(URI)) == [URI]
    import io

    from PIL import Image

    blank = io.BytesIO()
    Image.new("RGB", (64, 64), "white").save(blank, format="PNG")
    assert decode_qr(blank.getvalue()) == []


def test_chromium_reads_the_qr_of_a_served_page(tmp_path: Path) -> None:
    steps = Steps(tmp_path / "shots")
    with serve_wsgi(_wsgi) as base, launch_chromium() as browser:
        page = browser.new_page()
        page.goto(base + "/")
        assert steps.shot_qr(page, "qr") == URI
    assert len(steps) == 1 and (tmp_path / "shots" / "01-qr.png").stat().st_size > 0
