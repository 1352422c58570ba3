"""QR codes for provisioning URIs: SVG text, PNG bytes and a terminal rendering.

Needs the ``qr`` extra (``pip install 'mfa_core[qr]'``, which brings segno); segno is
imported inside each function, so ``import mfa_core`` works without it and a call without
it raises :class:`~mfa_core.errors.MissingDependency`.

Every function first checks the URI with :func:`~mfa_core.uri.parse_uri`, so a QR code is
never made from a URI an authenticator app would refuse. The codes use error correction
level M (raised when it fits in the same size) and the standard quiet zone of four
modules; Micro QR is never used, since authenticator apps cannot read it. A URI with
non-ASCII text (a raw label such as ``Exämple``) is encoded as UTF-8 with an ECI header
declaring the charset.

The output encodes the secret: it is meant for the person enrolling, never for a log.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any, Final

from .errors import MissingDependency
from .uri import parse_uri

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["QUIET_ZONE", "qr_matrix", "qr_png", "qr_svg", "qr_terminal"]

QUIET_ZONE: Final = 4
"""Light modules around the symbol, as the QR standard requires."""

_INSTALL_HINT: Final = "QR codes need the qr extra: pip install 'mfa_core[qr]'"
# Half blocks: one character cell shows two module rows (upper, lower). A cell is about
# twice as tall as it is wide, so each module comes out roughly square.
_HALF_BLOCKS: Final = {
    (False, False): " ",
    (True, False): "\u2580",  # upper half block
    (False, True): "\u2584",  # lower half block
    (True, True): "\u2588",  # full block
}


def _make(uri: str, *, allow_short_key: bool) -> Any:
    # Validate first: never render something an app would refuse (and never echo it).
    parse_uri(uri, allow_issuer_mismatch=False, allow_short_key=allow_short_key)
    try:
        import segno  # noqa: PLC0415 - optional extra, imported on use
    except ImportError:
        raise MissingDependency(_INSTALL_HINT) from None
    text = uri.strip()
    if text.isascii():
        return segno.make(text, error="m", micro=False, boost_error=True)
    # A raw non-ASCII label (parse_uri accepts it): UTF-8 bytes with an ECI header that
    # declares them. Without it segno picks ISO-8859-1 or Kanji mode, which the apps'
    # readers (expecting UTF-8) show garbled.
    return segno.make(
        text, error="m", micro=False, boost_error=True, mode="byte", encoding="utf-8", eci=True
    )


def qr_matrix(
    uri: str, *, border: int = QUIET_ZONE, allow_short_key: bool = False
) -> list[list[bool]]:
    """Return the QR symbol for ``uri`` as rows of modules, ``True`` for dark.

    ``border`` light modules surround the symbol (the quiet zone).
    """
    qr = _make(uri, allow_short_key=allow_short_key)
    rows: Iterator[Any] = qr.matrix_iter(scale=1, border=border)
    return [[bool(module) for module in row] for row in rows]


def qr_svg(uri: str, *, scale: int = 4, allow_short_key: bool = False) -> str:
    """Return a standalone SVG document (text) of the QR code for ``uri``.

    ``scale`` is the size of one module in pixels. The light background is drawn (not
    transparent), so the code also scans on a dark page.
    """
    qr = _make(uri, allow_short_key=allow_short_key)
    out = io.BytesIO()
    qr.save(
        out,
        kind="svg",
        scale=scale,
        border=QUIET_ZONE,
        dark="#000",
        light="#fff",
        xmldecl=False,
        title="Scan with your authenticator app",
    )
    return out.getvalue().decode("utf-8")


def qr_png(uri: str, *, scale: int = 8, allow_short_key: bool = False) -> bytes:
    """Return PNG image bytes of the QR code for ``uri`` (``scale`` pixels per module)."""
    qr = _make(uri, allow_short_key=allow_short_key)
    out = io.BytesIO()
    qr.save(out, kind="png", scale=scale, border=QUIET_ZONE, dark="#000", light="#fff")
    return out.getvalue()


def qr_terminal(uri: str, *, dark_background: bool = True, allow_short_key: bool = False) -> str:
    """Return a text rendering of the QR code for ``uri`` to print in a terminal.

    Each character cell shows two module rows with Unicode half blocks, quiet zone
    included; lines end with ``\\n``. Block characters appear in the terminal's text
    colour, so by default (``dark_background=True``, light text on a dark screen) the
    *light* modules are drawn and the dark ones left blank, which shows dark modules on
    light. Pass ``dark_background=False`` for dark text on a light screen.
    """
    matrix = qr_matrix(uri, allow_short_key=allow_short_key)
    if len(matrix) % 2:
        matrix.append([False] * len(matrix[0]))  # a light row below: quiet zone grows by one
    drawn = [[module != dark_background for module in row] for row in matrix]
    lines = []
    for upper, lower in zip(drawn[0::2], drawn[1::2], strict=True):
        lines.append("".join(_HALF_BLOCKS[pair] for pair in zip(upper, lower, strict=True)))
    return "\n".join(lines) + "\n"
