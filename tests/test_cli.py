"""The ``mfa-core`` command line, run in-process through ``main()`` (plus one real process)."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mfa_core import build_uri, parse_uri
from mfa_core.cli import SECRET_ENV, clock_sentence, human_duration, main
from mfa_core.keys import b32decode_key
from mfa_core.otp import hotp, totp
from mfa_core.qr import qr_png, qr_svg, qr_terminal

KEY = b"12345678901234567890"
B32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
KEY32 = b"12345678901234567890123456789012"
URI = build_uri(KEY, account="alice@example.com", issuer="ACME")
T = 1_700_000_000  # a fixed "now"; step 56666666


@pytest.fixture(autouse=True)
def _no_secret_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


# --- code ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--at", "59"], "287082"),
        (["--at", "59.9"], "287082"),
        (["--at", "1970-01-01T00:00:59Z"], "287082"),
        (["--at", "1970-01-01T02:00:59+02:00"], "287082"),
        (["--at", "59", "--digits", "8"], "94287082"),
        (["--at", "20000000000", "--digits", "8"], "65353130"),
        (["--at", "119", "--period", "60"], hotp(KEY, 1)),
        (["--counter", "1"], "287082"),
        (["--counter", "9", "--digits", "8"], hotp(KEY, 9, digits=8)),
    ],
)
def test_code(capsys: pytest.CaptureFixture[str], argv: list[str], expected: str) -> None:
    assert run(capsys, "code", "--secret", B32, *argv) == (0, expected + "\n", "")


def test_code_sha256(capsys: pytest.CaptureFixture[str]) -> None:
    secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA"  # the RFC 6238 SHA-256 seed
    assert b32decode_key(secret) == KEY32
    status, out, _ = run(
        capsys, "code", "--secret", secret, "--at", "59", "--digits", "8", "--algorithm", "sha256"
    )
    assert (status, out) == (0, "46119246\n")


def test_code_reads_the_clock_unless_at_is_given(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mfa_core.cli.time.time", lambda: 59.0)
    assert run(capsys, "code", "--secret", B32)[1] == "287082\n"
    assert run(capsys, "code", "--secret", B32, "--at", "89")[1] == totp(KEY, 89) + "\n"


def test_secret_from_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, B32.lower())
    assert run(capsys, "code", "--at", "59") == (0, "287082\n", "")
    # --secret wins over the environment.
    other = "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U"
    assert run(capsys, "code", "--secret", other, "--at", "59")[1] == (
        totp(b32decode_key(other), 59) + "\n"
    )


def test_secret_from_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(B32 + "\n"))
    assert run(capsys, "code", "--secret", "-", "--at", "59") == (0, "287082\n", "")


def test_short_secret_needs_the_opt_in(capsys: pytest.CaptureFixture[str]) -> None:
    short = "JBSWY3DPEHPK3PXP"
    status, _, err = run(capsys, "code", "--secret", short, "--at", "59")
    assert status == 2 and "at least 16 bytes" in err
    status, out, _ = run(capsys, "code", "--secret", short, "--at", "59", "--allow-short-key")
    assert (status, out) == (0, totp(b32decode_key(short), 59, allow_short_key=True) + "\n")


# --- verify -------------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["287082", "287 082", "287-082"])
def test_verify_match(capsys: pytest.CaptureFixture[str], typed: str) -> None:
    status, out, err = run(capsys, "verify", "--secret", B32, "--at", "59", typed)
    assert (status, err) == (0, "")
    assert out == "match: time step 1 (+0 steps from now)\n"


def test_verify_window(capsys: pytest.CaptureFixture[str]) -> None:
    previous = totp(KEY, T - 30)
    status, out, _ = run(capsys, "verify", "--secret", B32, "--at", str(T), previous)
    assert status == 0 and "(-1 steps from now)" in out
    status, out, _ = run(
        capsys, "verify", "--secret", B32, "--at", str(T), "--look-behind", "0", previous
    )
    assert (status, out.split(" ")[0]) == (1, "no")
    later = totp(KEY, T + 60)
    assert run(capsys, "verify", "--secret", B32, "--at", str(T), later)[0] == 1
    assert (
        run(capsys, "verify", "--secret", B32, "--at", str(T), "--look-ahead", "2", later)[0] == 0
    )


def test_verify_no_match(capsys: pytest.CaptureFixture[str]) -> None:
    wrong = "000000" if totp(KEY, T) != "000000" else "111111"
    status, out, err = run(capsys, "verify", "--secret", B32, "--at", str(T), wrong)
    assert (status, err) == (1, "")
    assert out.startswith("no match")


def test_verify_hotp(capsys: pytest.CaptureFixture[str]) -> None:
    code = hotp(KEY, 12)
    status, out, _ = run(capsys, "verify", "--secret", B32, "--counter", "10", code)
    assert status == 1  # HOTP look-ahead defaults to 0
    status, out, _ = run(
        capsys, "verify", "--secret", B32, "--counter", "10", "--look-ahead", "3", code
    )
    assert (status, out) == (0, "match: counter 12 (store 13 as the next counter)\n")


# --- diagnose -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shift", "sentence"),
    [
        (-5, "the authenticator's clock is about 2 min 30 s behind this machine's."),
        (-1, "the authenticator's clock is about 30 s behind this machine's."),
        (0, "the authenticator's clock agrees with this machine's (within one 30 s step)."),
        (2, "the authenticator's clock is about 1 min ahead of this machine's."),
        (-2880, "the authenticator's clock is about 1 day behind this machine's."),
        (1000, "the authenticator's clock is about 8 h 20 min ahead of this machine's."),
    ],
)
def test_diagnose_reports_the_offset(
    capsys: pytest.CaptureFixture[str], shift: int, sentence: str
) -> None:
    current = T // 30
    code = hotp(KEY, current + shift)
    status, out, err = run(capsys, "diagnose", "--secret", B32, "--at", str(T), code)
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith(f"match: time step {current + shift} (")
    assert lines[1] == f"offset: {shift:+d} steps ({shift * 30:+d} s)"
    assert lines[2] == sentence
    verdict = "accepts" if abs(shift) <= 1 else "rejects"
    assert f"usual window (1 step either side) {verdict}" in lines[3]


def test_diagnose_with_another_period(capsys: pytest.CaptureFixture[str]) -> None:
    code = totp(KEY, T - 600, period=60)
    status, out, _ = run(
        capsys, "diagnose", "--secret", B32, "--at", str(T), "--period", "60", code
    )
    assert status == 0
    assert "offset: -10 steps (-600 s)" in out and "about 10 min behind" in out


def test_diagnose_no_match(capsys: pytest.CaptureFixture[str]) -> None:
    # The code of 3 days ago is outside the default one-day search.
    code = hotp(KEY, T // 30 - 3 * 2880)
    status, out, _ = run(capsys, "diagnose", "--secret", B32, "--at", str(T), code)
    assert status == 1
    assert out.startswith("no match within 1 day either side (5761 steps of 30 s")
    # A wider range finds it.
    status, out, _ = run(
        capsys, "diagnose", "--secret", B32, "--at", str(T), "--range", str(4 * 86400), code
    )
    assert status == 0 and "about 3 days behind" in out


def test_diagnose_range_limits_the_search(capsys: pytest.CaptureFixture[str]) -> None:
    code = hotp(KEY, T // 30 - 5)
    assert run(capsys, "diagnose", "--secret", B32, "--at", str(T), "--range", "60", code)[0] == 1
    assert run(capsys, "diagnose", "--secret", B32, "--at", str(T), "--range", "150", code)[0] == 0


def test_diagnose_reports_chance_repeats(capsys: pytest.CaptureFixture[str]) -> None:
    # With this key, 585471 is the code of steps -1875 and +207 around T (found by search).
    assert hotp(KEY, T // 30 - 1875) == hotp(KEY, T // 30 + 207) == "585471"
    status, out, _ = run(capsys, "diagnose", "--secret", B32, "--at", str(T), "585471")
    assert status == 0
    assert "offset: +207 steps (+6210 s)" in out  # the nearer one is reported
    assert "note: the code also matches at -1875 steps" in out


def test_diagnose_near_the_epoch(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "diagnose", "--secret", B32, "--at", "59", hotp(KEY, 40))
    assert status == 0 and "offset: +39 steps" in out


# --- new, uri, qr -------------------------------------------------------------------------


def test_new(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "new", "--account", "alice@example.com", "--issuer", "ACME")
    assert (status, err) == (0, "")
    lines = out.splitlines()
    secret = lines[0].removeprefix("secret: ")
    uri = lines[1].removeprefix("uri:    ")
    parsed = parse_uri(uri)
    assert parsed.key == b32decode_key(secret) and len(parsed.key) == 20
    assert (parsed.account, parsed.issuer) == ("alice@example.com", "ACME")
    assert out.endswith(qr_terminal(uri))
    # Each run makes a fresh key.
    assert run(capsys, "new", "--account", "a", "--no-qr")[1].splitlines()[0] != lines[0]


def test_new_options(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(
        capsys,
        "new",
        "--account",
        "bob",
        "--kind",
        "hotp",
        "--digits",
        "8",
        "--algorithm",
        "SHA512",
        "--bytes",
        "64",
        "--no-qr",
    )
    assert status == 0 and len(out.splitlines()) == 2
    parsed = parse_uri(out.splitlines()[1].removeprefix("uri:    "))
    assert (parsed.kind, parsed.counter, parsed.digits, len(parsed.key)) == ("hotp", 0, 8, 64)
    status, out, _ = run(capsys, "new", "--account", "a", "--light-background")
    assert out.endswith(qr_terminal(out.splitlines()[1][8:], dark_background=False))


def test_new_without_segno_still_gives_the_key(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "segno", None)
    status, out, err = run(capsys, "new", "--account", "a")
    assert status == 0 and out.startswith("secret: ")
    assert err == (
        "mfa-core: note: no QR code shown. QR codes need the qr extra: pip install 'mfa_core[qr]'\n"
    )
    status, _, err = run(capsys, "qr", URI)
    assert status == 2 and "pip install 'mfa_core[qr]'" in err


def test_uri(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(
        capsys, "uri", "--secret", B32, "--account", "alice@example.com", "--issuer", "ACME"
    )
    assert (status, out) == (0, URI + "\n")
    status, out, _ = run(
        capsys, "uri", "--secret", B32, "--account", "a", "--kind", "hotp", "--counter", "5"
    )
    assert out.strip().endswith("&counter=5") and out.startswith("otpauth://hotp/a?")


def test_qr_terminal_from_uri_and_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run(capsys, "qr", URI) == (0, qr_terminal(URI), "")
    assert run(capsys, "qr", URI, "--light-background")[1] == qr_terminal(
        URI, dark_background=False
    )
    monkeypatch.setattr(sys, "stdin", io.StringIO(URI + "\n"))
    assert run(capsys, "qr", "-") == (0, qr_terminal(URI), "")


def test_qr_from_secret_options(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(
        capsys, "qr", "--secret", B32, "--account", "alice@example.com", "--issuer", "ACME"
    )
    assert (status, out) == (0, qr_terminal(URI))


def test_qr_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert run(capsys, "qr", URI, "--format", "svg") == (0, qr_svg(URI) + "\n", "")
    png = tmp_path / "code.png"
    assert run(capsys, "qr", URI, "--format", "png", "--output", str(png)) == (0, "", "")
    assert png.read_bytes() == qr_png(URI)
    assert stat.S_IMODE(png.stat().st_mode) == 0o600  # the image holds the secret
    svg = tmp_path / "code.svg"
    assert run(capsys, "qr", URI, "--format", "svg", "--output", str(svg))[0] == 0
    assert svg.read_text(encoding="utf-8") == qr_svg(URI)


# --- bad input ----------------------------------------------------------------------------

BAD_INVOCATIONS = [
    [],
    ["nope"],
    ["code"],  # no secret anywhere
    ["code", "--secret", "GEZDGNBVGY3TQOJ1GEZDGNBVGY3TQOJQ"],
    ["code", "--secret", B32, "--digits", "٦"],
    ["code", "--secret", B32, "--digits", "1_0"],
    ["code", "--secret", B32, "--digits", "5"],
    ["code", "--secret", B32, "--digits", "11"],
    ["code", "--secret", B32, "--period", "0"],
    ["code", "--secret", B32, "--period", "601"],
    ["code", "--secret", B32, "--algorithm", "md5"],
    ["code", "--secret", B32, "--algorithm", "SHA3-256"],
    ["code", "--secret", B32, "--at", "-5"],
    ["code", "--secret", B32, "--at", "nan"],
    ["code", "--secret", B32, "--at", "inf"],
    ["code", "--secret", B32, "--at", "yesterday"],
    ["code", "--secret", B32, "--at", "2026-01-01T00:00:00"],  # no time zone
    ["code", "--secret", B32, "--at", "1960-01-01T00:00:00Z"],  # before the epoch
    ["code", "--secret", B32, "--counter", str(2**64)],
    ["code", "--secret", B32, "--counter", "-1"],
    ["code", "--secret", B32, "--bogus"],
    ["verify", "--secret", B32],  # no CODE
    ["verify", "--secret", B32, "--at", "59", "٢٨٧٠٨٢"],
    ["verify", "--secret", B32, "--at", "59", "２８７０８２"],  # noqa: RUF001
    ["verify", "--secret", B32, "--at", "59", "+287082"],
    ["verify", "--secret", B32, "--at", "59", "287_082"],
    ["verify", "--secret", B32, "--at", "59", "2870820"],
    ["verify", "--secret", B32, "--at", "59", "2" * 100_000],
    ["verify", "--secret", B32, "--at", "59", "--look-behind", "201", "287082"],
    ["verify", "--secret", B32, "--at", "59", "--digits", "5", "28708"],
    ["diagnose", "--secret", B32, "--range", str(8 * 86400), "287082"],
    ["diagnose", "--secret", B32, "--at", "59", "28708"],
    ["new"],  # no account
    ["new", "--account", "a", "--bytes", "10"],
    ["new", "--account", "a:b"],
    ["new", "--account", "a", "--digits", "9"],
    ["uri", "--secret", B32],
    ["uri", "--secret", B32, "--account", "a", "--issuer", "x:y"],
    ["uri", "--secret", B32, "--account", "a", "--counter", "3"],  # counter without hotp
    ["qr"],
    ["qr", "https://example.com/"],
    ["qr", "otpauth://totp/Bank:a?secret=" + B32 + "&issuer=Evil"],
    ["qr", URI, "--secret", B32],
    ["qr", URI, "--format", "png"],  # png needs --output
    ["qr", URI, "--output", "x.txt"],  # terminal output is not a file
    ["qr", URI, "--format", "gif"],
    ["qr", URI, "--format", "png", "--output", "/nonexistent-dir/x.png"],
]


@pytest.mark.parametrize("argv", BAD_INVOCATIONS, ids=lambda a: " ".join(a)[:60] or "<none>")
def test_bad_input_is_one_line_on_stderr(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    status, out, err = run(capsys, *argv)
    assert status == 2
    assert out == ""
    assert err.startswith("mfa-core") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert B32 not in err and "287082" not in err  # never the secret or the code


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "--help")
    assert status == 0 and SECRET_ENV in out
    for command in ("new", "uri", "qr", "code", "verify", "diagnose"):
        assert command in out
        assert run(capsys, command, "--help")[0] == 0
    status, out, _ = run(capsys, "--version")
    assert status == 0 and out.startswith("mfa-core ")


def _help(capsys: pytest.CaptureFixture[str], command: str) -> str:
    status, out, _ = run(capsys, command, "--help")
    assert status == 0
    return " ".join(out.split())  # argparse wraps lines: compare on single spaces


@pytest.mark.parametrize("command", ["new", "uri"])
def test_help_marks_account_as_required(capsys: pytest.CaptureFixture[str], command: str) -> None:
    text = _help(capsys, command)
    usage = text.split(" options:")[0]
    assert " --account ACCOUNT " in usage and "[--account" not in usage
    assert "[--issuer ISSUER]" in usage  # an optional option keeps its brackets
    assert "e-mail (required)" in text


def test_qr_help_says_when_account_is_needed(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(capsys, "qr")
    assert "[--account ACCOUNT]" in text  # not required: a URI may be given instead
    assert "(required without URI)" in text


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        ("new", ["code length (default: 6)", "(default: SHA1)", "(default: 30)"]),
        ("new", ["OTP type (default: totp)", "key size in bytes (default: 20)"]),
        ("qr", ["image format (default: terminal)", "(with --kind hotp; default: 0)"]),
        ("verify", ["TOTP steps accepted before now (default: 1)", "(default: now)"]),
        ("diagnose", ["(default 86400: one day)", "when the code was read (default: now)"]),
    ],
)
def test_help_shows_defaults(
    capsys: pytest.CaptureFixture[str], command: str, shown: list[str]
) -> None:
    text = _help(capsys, command)
    for part in shown:
        assert part in text
    assert "(default: None)" not in text and "(default: False)" not in text
    assert text.count("(default: now)") <= 1  # never doubled on a help that says it already


@pytest.mark.parametrize("command", ["new", "uri"])
def test_missing_account_is_a_usage_error(capsys: pytest.CaptureFixture[str], command: str) -> None:
    argv = [command, "--no-qr"] if command == "new" else [command, "--secret", B32]
    status, out, err = run(capsys, *argv)
    assert status == 2 and out == ""
    assert "required: --account" in err and err.count("\n") == 1, err


# --- the human sentence -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (1, "1 s"),
        (59, "59 s"),
        (60, "1 min"),
        (150, "2 min 30 s"),
        (3600, "1 h"),
        (3661, "1 h 1 min"),
        (86_400, "1 day"),
        (2 * 86_400 + 7200 + 5, "2 days 2 h"),
    ],
)
def test_human_duration(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


@given(st.integers(0, 10**8))
def test_human_duration_never_overstates(seconds: int) -> None:
    units = {"day": 86_400, "days": 86_400, "h": 3_600, "min": 60, "s": 1}
    words = human_duration(seconds).split()
    assert 2 <= len(words) <= 4
    shown = sum(int(n) * units[u] for n, u in zip(words[::2], words[1::2], strict=True))
    assert shown <= seconds
    # The first unit is the largest that fits.
    assert seconds < 60 or words[1] != "s"


def test_clock_sentence_sides() -> None:
    assert "behind" in clock_sentence(-30, 30)
    assert "ahead of" in clock_sentence(30, 30)
    assert "agrees" in clock_sentence(0, 30)


# --- a real process -----------------------------------------------------------------------


def test_python_dash_m(tmp_path: Path) -> None:
    env = {**os.environ, SECRET_ENV: B32}
    done = subprocess.run(
        [sys.executable, "-m", "mfa_core", "code", "--at", "59"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "287082\n", "")
    bad = subprocess.run(
        [sys.executable, "-m", "mfa_core", "verify", "--at", "59", "٢٨٧٠٨٢"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
