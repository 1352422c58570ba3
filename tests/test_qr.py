"""QR helpers: every output is decoded again and compared with the URI it was made from.

zxing-cpp (a dev dependency) plays the phone: it reads the PNG, the SVG's module grid and
the terminal rendering. The structure is also checked against segno's own matrix.
"""

from __future__ import annotations

import re
import struct
import sys
import xml.etree.ElementTree as ET
import zlib

import pytest
import segno
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st

from mfa_core import build_uri
from mfa_core.errors import ErrorCode, InvalidURI, MissingDependency
from mfa_core.keys import b32encode_key
from mfa_core.qr import QUIET_ZONE, qr_matrix, qr_png, qr_svg, qr_terminal

KEY = b"12345678901234567890"
URI = build_uri(KEY, account="alice@example.com", issuer="ACME Co")
Matrix = list[list[bool]]

UPPER, LOWER, FULL = "\u2580", "\u2584", "\u2588"


def decode(matrix: Matrix, *, pixels: int = 4) -> str | None:
    """Rasterise a module matrix (True = dark) and read it like a phone camera would."""
    rows = []
    for row in matrix:
        line = bytes(0 if dark else 255 for dark in row for _ in range(pixels))
        rows.extend([line] * pixels)
    height, width = len(rows), len(rows[0])
    image = memoryview(b"".join(rows)).cast("B", (height, width))
    found = zxingcpp.read_barcode(image, formats=zxingcpp.BarcodeFormat.QRCode)
    return None if found is None else str(found.text)


def segno_matrix(uri: str) -> Matrix:
    qr = segno.make(uri, error="m", micro=False)
    return [[bool(m) for m in row] for row in qr.matrix_iter(scale=1, border=QUIET_ZONE)]


def terminal_to_matrix(text: str, *, dark_background: bool) -> Matrix:
    """Undo the half-block rendering: two module rows per line of text."""
    assert text.endswith("\n")
    matrix: Matrix = []
    for line in text[:-1].split("\n"):
        assert set(line) <= {" ", UPPER, LOWER, FULL}
        upper = [ch in (UPPER, FULL) for ch in line]
        lower = [ch in (LOWER, FULL) for ch in line]
        for drawn in (upper, lower):
            # Drawn cells show the terminal's text colour: light on a dark background.
            matrix.append([d != dark_background for d in drawn])
    return matrix


def png_pixels(data: bytes) -> Matrix:
    """A small PNG reader (8-bit or lower greyscale/palette, all five row filters).

    Returns one entry per pixel, True for dark.
    """
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, palette = 8, b"", None
    width = height = depth = colour = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        crc = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0]
        assert zlib.crc32(kind + body) == crc
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
        elif kind == b"PLTE":
            palette = [body[i : i + 3] for i in range(0, len(body), 3)]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert colour in (0, 3) and depth in (1, 2, 4, 8)
    raw = zlib.decompress(idat)
    stride = (width * depth + 7) // 8
    previous = bytearray(stride)
    values: list[list[int]] = []
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - 1] if i else 0
            up, up_left = previous[i], previous[i - 1] if i else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else up_left
                line[i] = (line[i] + pred) & 0xFF
        previous = line
        bits = "".join(f"{b:08b}" for b in line)
        values.append([int(bits[x * depth : (x + 1) * depth], 2) for x in range(width)])
    if colour == 3:
        assert palette is not None
        light = [sum(palette[v]) > 384 for row in values for v in row]
    else:
        top = 2**depth - 1
        light = [v > top // 2 for row in values for v in row]
    return [[not v for v in light[y * width : (y + 1) * width]] for y in range(height)]


def png_to_matrix(data: bytes, scale: int) -> Matrix:
    """The module grid of a PNG drawn with ``scale`` pixels per module."""
    pixels = png_pixels(data)
    height, width = len(pixels), len(pixels[0])
    assert width % scale == 0 and height % scale == 0
    # Every scale x scale block must be one colour; take its top-left pixel.
    for y in range(height):
        for x in range(width):
            assert pixels[y][x] == pixels[y - y % scale][x - x % scale]
    return [[pixels[y][x] for x in range(0, width, scale)] for y in range(0, height, scale)]


def svg_to_matrix(svg: str, scale: int) -> Matrix:
    """Rebuild the module grid from segno's path of horizontal strokes."""
    root = ET.fromstring(svg)  # noqa: S314 - our own output
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    size = int(root.attrib["width"]) // scale
    assert int(root.attrib["height"]) == size * scale
    ns = {"s": "http://www.w3.org/2000/svg"}
    lines = [p for p in root.iter("{http://www.w3.org/2000/svg}path") if p.get("stroke")]
    assert len(lines) == 1
    background = [p for p in root.iter("{http://www.w3.org/2000/svg}path") if p.get("fill")]
    assert background and background[0].get("fill") == "#fff"  # drawn, not transparent
    assert root.find("s:title", ns) is not None
    matrix = [[False] * size for _ in range(size)]
    x = y = 0.0
    for op, a, b in re.findall(r"([Mmh])(-?[\d.]+)(?: (-?[\d.]+))?", lines[0].attrib["d"]):
        if op == "M":
            x, y = float(a), float(b)
        elif op == "m":
            x, y = x + float(a), y + float(b)
        else:
            for dx in range(int(float(a))):
                matrix[int(y)][int(x) + dx] = True
            x += float(a)
    return matrix


def test_matrix_is_segnos_with_a_quiet_zone() -> None:
    matrix = qr_matrix(URI)
    assert matrix == segno_matrix(URI)
    size = len(matrix)
    assert all(len(row) == size for row in matrix)
    for i in range(QUIET_ZONE):
        assert not any(matrix[i]) and not any(matrix[size - 1 - i])
        assert not any(row[i] or row[size - 1 - i] for row in matrix)
    assert decode(matrix) == URI


@pytest.mark.parametrize("dark_background", [True, False])
def test_terminal_rendering_round_trips_and_scans(dark_background: bool) -> None:
    text = qr_terminal(URI, dark_background=dark_background)
    lines = text[:-1].split("\n")
    matrix = qr_matrix(URI)
    assert len(lines) == (len(matrix) + 1) // 2
    assert all(len(line) == len(matrix) for line in lines)
    back = terminal_to_matrix(text, dark_background=dark_background)
    # An odd module count gets one more light row at the bottom (more quiet zone).
    assert back[: len(matrix)] == matrix
    assert all(not any(row) for row in back[len(matrix) :])
    assert decode(back) == URI


def test_terminal_polarity() -> None:
    dark_screen = qr_terminal(URI)
    light_screen = qr_terminal(URI, dark_background=False)
    # The quiet zone is light: drawn with full blocks on a dark screen, blank on a light one.
    assert dark_screen.split("\n")[0] == FULL * len(qr_matrix(URI))
    assert light_screen.split("\n")[0].strip() == ""
    assert dark_screen != light_screen


@pytest.mark.parametrize("scale", [1, 3, 8])
def test_png_scans(scale: int) -> None:
    data = qr_png(URI, scale=scale)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    matrix = png_to_matrix(data, scale)
    assert matrix == qr_matrix(URI)
    assert decode(matrix) == URI


def test_png_image_itself_scans() -> None:
    # Read the decoded pixels directly (no re-rasterising): the PNG as a phone would see it.
    pixels = png_pixels(qr_png(URI, scale=4))
    assert decode(pixels, pixels=1) == URI


@pytest.mark.parametrize("scale", [1, 4])
def test_svg_scans(scale: int) -> None:
    svg = qr_svg(URI, scale=scale)
    assert svg.startswith("<svg") and "<?xml" not in svg
    matrix = svg_to_matrix(svg, scale)
    assert matrix == qr_matrix(URI)
    assert decode(matrix) == URI


@settings(max_examples=25, deadline=None)
@given(
    key=st.binary(min_size=16, max_size=64),
    account=st.text(
        alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters=":"),
        min_size=1,
        max_size=30,
    ).filter(lambda s: s == s.strip()),
    digits=st.integers(6, 8),
)
def test_any_uri_scans_from_the_terminal(key: bytes, account: str, digits: int) -> None:
    uri = build_uri(key, account=account, issuer="Issuer", digits=digits)
    back = terminal_to_matrix(qr_terminal(uri), dark_background=True)
    assert decode(back) == uri


def test_invalid_uri_is_refused_before_rendering() -> None:
    for render in (qr_svg, qr_png, qr_terminal, qr_matrix):
        with pytest.raises(InvalidURI) as info:
            render("https://example.com/")
        assert info.value.code is ErrorCode.URI_BAD_SCHEME


def test_short_keys_need_the_opt_in() -> None:
    uri = f"otpauth://totp/a?secret={b32encode_key(KEY[:10])}"
    with pytest.raises(InvalidURI):
        qr_terminal(uri)
    assert (
        decode(terminal_to_matrix(qr_terminal(uri, allow_short_key=True), dark_background=True))
        == uri
    )


def test_missing_segno_is_a_helpful_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "segno", None)  # makes `import segno` fail
    for render in (qr_svg, qr_png, qr_terminal):
        with pytest.raises(MissingDependency) as info:
            render(URI)
        assert info.value.code is ErrorCode.MISSING_DEPENDENCY
        assert "pip install 'mfa_core[qr]'" in info.value.message
