"""Fuzz :func:`mfa_core.cli.main` with argument vectors built from its own vocabulary and
fuzzed values (secrets, codes, times, paths, look-alike characters).

Oracle: ``main`` returns one of the documented exit statuses (0, 1, 2) and lets nothing
escape (an escaping exception is a finding); ``diagnose``/``verify`` exit 0 only for a code
that pyotp computes for the key. Files are written only inside a private temporary folder
(every ``--output`` value is made a name in it).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import io
import os
import shutil
import sys
import tempfile

import atheris
import pyotp

with atheris.instrument_imports():
    from mfa_core.cli import SECRET_ENV
    from mfa_core.cli import main as cli_main

from _harness import main, text

B32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
_WORKDIR = tempfile.mkdtemp(prefix="mfa-core-fuzz-cli-")
_COMMANDS = ["new", "uri", "qr", "code", "verify", "diagnose", "bogus", "--version"]
_OPTIONS = [
    "--secret",
    "--account",
    "--issuer",
    "--kind",
    "--counter",
    "--digits",
    "--algorithm",
    "--period",
    "--at",
    "--range",
    "--look-behind",
    "--look-ahead",
    "--format",
    "--output",
    "--bytes",
    "--no-qr",
    "--allow-short-key",
    "--light-background",
]
_VALUES = [
    B32,
    "-",
    "alice@example.com",
    "ACME",
    "hotp",
    "totp",
    "6",
    "8",
    "1",
    "30",
    "0",
    "604800",
    "86400",
    "SHA256",
    "\u017fha1",
    "svg",
    "png",
    "terminal",
    "2026-01-31T12:00:00Z",
    "0001-01-01T00:00:00+05:00",
    "999999999999999",
    "1e400",
    "99999999999999999999",
    "\ud800",
    "Ex\u00e4mple:alice",
]


def _argv(fdp: atheris.FuzzedDataProvider) -> list[str]:
    argv = [fdp.PickValueInList(_COMMANDS)]
    for _ in range(fdp.ConsumeIntInRange(0, 8)):
        option = fdp.PickValueInList(_OPTIONS)
        value = fdp.PickValueInList(_VALUES) if fdp.ConsumeIntInRange(0, 2) else text(fdp, 30)
        if option == "--output":
            value = os.path.join(_WORKDIR, value.replace("/", "_").replace("\0", "0")[:40])
        argv += [option, value]
    if fdp.ConsumeBool():
        argv.append(fdp.PickValueInList(_VALUES) if fdp.ConsumeBool() else text(fdp, 12))
    if fdp.ConsumeBool() and argv[0] in ("verify", "diagnose"):
        argv += ["--secret", B32, "--at", "1000000000", pyotp.TOTP(B32).at(1_000_000_000)]
    return argv


@functools.cache
def _steps() -> frozenset[str]:
    """pyotp's codes within 7 days either side of the fixed time (diagnose's widest)."""
    assert base64.b32decode(B32)
    totp = pyotp.TOTP(B32)
    return frozenset(totp.at(1_000_000_000 + d * 30) for d in range(-20161, 20162))


def _option(argv: list[str], name: str) -> str | None:
    values = [argv[i + 1] for i in range(len(argv) - 1) if argv[i] == name]
    return values[-1] if values else None


def one_input(fdp: atheris.FuzzedDataProvider) -> None:
    argv = _argv(fdp)
    stdin = io.StringIO(fdp.PickValueInList([B32 + "\n", "", text(fdp, 40)]))
    os.environ.pop(SECRET_ENV, None)
    out, err = io.StringIO(), io.StringIO()
    saved_stdin, sys.stdin = sys.stdin, stdin
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = cli_main(argv)
    finally:
        sys.stdin = saved_stdin
        for name in os.listdir(_WORKDIR):
            os.unlink(os.path.join(_WORKDIR, name))
    if status not in (0, 1, 2):
        raise AssertionError(f"exit status {status} for {argv!r}")
    if status == 0 and argv[0] in ("verify", "diagnose"):
        secret, at, code = _option(argv, "--secret"), _option(argv, "--at"), argv[-1]
        if secret != B32 or at != "1000000000" or _option(argv, "--counter") is not None:
            return  # other keys, times or HOTP: only the common case is cross-checked
        if {"--digits", "--algorithm", "--period"} & set(argv):
            return
        if code.strip().replace(" ", "").replace("-", "") not in _steps():
            raise AssertionError(f"{argv[0]} accepted a code pyotp does not compute")


if __name__ == "__main__":
    _steps()  # computed once, before the clock of the first input starts
    try:
        main(one_input)
    finally:
        shutil.rmtree(_WORKDIR, ignore_errors=True)
