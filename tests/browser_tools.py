"""Helpers for tests that drive a real browser against an app served on loopback.

Stable API (other browser tests import these names; extend, do not rename):

* :func:`chromium_path` / :func:`require_chromium` - Debian's Chromium (``apt-get install
  chromium``), never a browser Playwright downloads; absent, the test skips with a reason, or
  fails when ``CI`` is set (the convention of ``server_tools.unavailable``);
* :func:`launch_chromium` - a headless Playwright ``Browser`` on that binary;
* :func:`serve_asgi` / :func:`serve_wsgi` - run an app on a free 127.0.0.1 port in a
  background thread and yield its base URL (``http://127.0.0.1:PORT``);
* :func:`decode_qr` / :func:`read_qr_on_page` - what a phone does: read the QR code(s) in a
  PNG screenshot (zxing-cpp);
* :class:`Steps` - one numbered screenshot per step of a scenario, in a directory the test
  owns (pytest's ``tmp_path``), and the step count.

Playwright is the PyPI package (a dev dependency); its wheel carries only the driver.
``PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1`` is set here so nothing ever fetches a browser.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from server_tools import unavailable

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")

#: Where Debian (and most distributions) put the Chromium binary; the first found is used.
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")

#: Seconds a served app has to start listening before the helper gives up.
START_TIMEOUT = 20.0


def chromium_path() -> str | None:
    """The system Chromium binary (``MFA_CHROMIUM`` overrides), or ``None`` when absent."""
    override = os.environ.get("MFA_CHROMIUM")
    candidates = (override,) if override else CHROMIUM_CANDIDATES
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    found = None if override else shutil.which("chromium")
    return found


def require_chromium() -> str:
    """The Chromium path; skip the test (fail it when ``CI`` is set) when there is none."""
    path = chromium_path()
    if path is None:
        unavailable("no system Chromium at /usr/bin/chromium (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        unavailable("playwright is not installed (it is in the dev extra)")
    return path


@contextmanager
def launch_chromium(*, headless: bool = True, args: tuple[str, ...] = ()) -> Iterator[Any]:
    """Start Playwright and a Chromium ``Browser`` on the system binary; close both after.

    ``args`` are extra command-line switches. Playwright adds ``--no-sandbox`` itself
    (its ``chromium_sandbox`` defaults to off), which running as root needs.
    """
    from playwright.sync_api import sync_playwright

    executable = require_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            headless=headless,
            args=["--disable-gpu", "--disable-dev-shm-usage", *args],
        )
        try:
            yield browser
        finally:
            browser.close()


def free_socket() -> socket.socket:
    """A listening-ready TCP socket bound to a free port on 127.0.0.1 (the caller owns it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def _base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"


def _wait_for(condition: Callable[[], bool], what: str, thread: threading.Thread) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not condition():
        if not thread.is_alive():
            raise RuntimeError(f"{what} stopped before it was ready")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} was not ready within {START_TIMEOUT} s")
        time.sleep(0.02)


@contextmanager
def serve_asgi(app: Any, *, log_level: str = "warning") -> Iterator[str]:
    """Serve the ASGI ``app`` with uvicorn on a free loopback port; yield its base URL.

    The server runs its own event loop in a daemon thread (lifespan events included) and
    is shut down, and the thread joined, when the block ends.
    """
    import uvicorn

    sock = free_socket()
    config = uvicorn.Config(app, log_level=log_level, lifespan="auto", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True
    )
    thread.start()
    try:
        _wait_for(lambda: server.started, "uvicorn", thread)
        yield _base_url(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextmanager
def serve_wsgi(app: Callable[..., Any]) -> Iterator[str]:
    """Serve the WSGI ``app`` (Flask, Django's ``get_wsgi_application()``) on a free
    loopback port with the standard library's threading server; yield its base URL."""
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class _Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return None

    class _Threading(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    server = make_server("127.0.0.1", 0, app, server_class=_Threading, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, name="wsgi", daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host!s}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def decode_qr(png: bytes) -> list[str]:
    """The texts of every QR code zxing-cpp finds in the PNG image ``png`` (maybe none)."""
    import zxingcpp
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        grey = image.convert("L")
        found = zxingcpp.read_barcodes(grey, formats=zxingcpp.BarcodeFormat.QRCode)
    return [str(code.text) for code in found]


def read_qr_on_page(page: Any, path: Path | None = None) -> str:
    """Screenshot the whole ``page`` (to ``path`` when given) and return the one QR code's
    text; ``AssertionError`` when there is not exactly one."""
    png = page.screenshot(path=None if path is None else str(path), full_page=True)
    texts = decode_qr(png)
    assert len(texts) == 1, f"expected one QR code on the page, found {len(texts)}"
    return texts[0]


class Steps:
    """One numbered full-page screenshot per step, in ``directory`` (e.g. ``tmp_path``).

    ``steps.shot(page, "enrol")`` writes ``01-enrol.png`` and returns its path;
    ``len(steps)`` is the step count; ``steps.names`` the step names in order.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.names: list[str] = []

    def path(self, name: str) -> Path:
        """The file the next step named ``name`` will be written to."""
        return self.directory / f"{len(self.names) + 1:02d}-{name}.png"

    def shot(self, page: Any, name: str) -> Path:
        """Screenshot ``page`` as the next step and record it."""
        target = self.path(name)
        page.screenshot(path=str(target), full_page=True)
        self.names.append(name)
        return target

    def shot_qr(self, page: Any, name: str) -> str:
        """Screenshot ``page`` as the next step and return the QR code's text read from it."""
        target = self.path(name)
        text = read_qr_on_page(page, target)
        self.names.append(name)
        return text

    def __len__(self) -> int:
        return len(self.names)
