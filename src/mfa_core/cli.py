"""``mfa-core``: the operator's command line (also ``python -m mfa_core``).

Commands::

    mfa-core new --account NAME [--issuer NAME]      fresh key, provisioning URI, QR code
    mfa-core uri --secret B32 --account NAME ...     provisioning URI for an existing key
    mfa-core qr  [URI | -] [--format terminal|svg|png] [--output FILE]
    mfa-core code   --secret B32 [--at T]            the current (or given-time) code
    mfa-core verify --secret B32 [--at T] CODE       exit 0 if the code matches, 1 if not
    mfa-core diagnose --secret B32 [--at T] CODE     which step a code matches, clock offset
    mfa-core admin [--store URL] COMMAND ...         operator commands over a store
                                                     (:mod:`mfa_core.admin`)

The secret may come from the ``MFA_CORE_SECRET`` environment variable instead of
``--secret`` (so it stays out of shell history and ``ps``), or from standard input with
``--secret -``. Exit status: 0 success or match, 1 no match, 2 bad input (one line on
standard error, never a traceback), 130 interrupted.

This is the only module besides the service that reads the clock (``time.time()``);
``--at`` overrides it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hmac
import math
import os
import re
import sys
import time
from collections.abc import Sequence
from typing import Any, Final, NoReturn

from . import __version__
from .errors import ErrorCode, InvalidParameter, MFAError, MissingDependency
from .keys import DEFAULT_KEY_BYTES, b32decode_key, b32encode_key, generate_key
from .otp import (
    DEFAULT_DIGITS,
    DEFAULT_PERIOD,
    MAX_COUNTER,
    HOTPState,
    check_key,
    hotp,
    normalize_code,
    time_step,
    totp,
    verify_hotp,
    verify_totp,
)
from .uri import build_uri, parse_uri

__all__ = ["SECRET_ENV", "clock_sentence", "human_duration", "main"]

SECRET_ENV: Final = "MFA_CORE_SECRET"  # noqa: S105 - a variable name, not a secret
"""Environment variable read for the secret when ``--secret`` is not given."""

EXIT_OK: Final = 0
EXIT_NO_MATCH: Final = 1
EXIT_BAD_INPUT: Final = 2
EXIT_INTERRUPTED: Final = 130

DEFAULT_DIAGNOSE_RANGE: Final = 86_400
MAX_DIAGNOSE_RANGE: Final = 7 * 86_400
MAX_DIAGNOSE_STEPS: Final = 2 * (MAX_DIAGNOSE_RANGE // DEFAULT_PERIOD) + 1
"""Most time steps ``diagnose`` computes (7 days either side at 30 s): the work is bounded
whatever ``--period`` is."""

_PROG: Final = "mfa-core"
_UINT_RE: Final = re.compile(r"[0-9]{1,20}", re.ASCII)
_UNIX_TIME_RE: Final = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,9})?", re.ASCII)


class _HelpFormatter(argparse.HelpFormatter):
    """Help that shows each option's default (when it has a meaningful one)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or default is None
            or default is False
            or default is argparse.SUPPRESS
            or action.nargs == 0  # flags (store_true), --help, --version
        ):
            return action.help
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit status 2.

    Every parser and sub-parser shows defaults in its help (:class:`_HelpFormatter`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def _uint(text: str) -> int:
    if _UINT_RE.fullmatch(text) is None:
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a non-negative integer")
    return int(text)


def _instant(text: str) -> float:
    """``--at``: Unix seconds, or an ISO 8601 date-time with a time zone."""
    if _UNIX_TIME_RE.fullmatch(text) is not None:
        return float(text)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "expected Unix seconds or an ISO 8601 time such as 2026-01-31T12:00:00Z"
        ) from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError("the ISO 8601 time needs a time zone (e.g. Z)")
    try:
        seconds = moment.timestamp()
    except (OverflowError, ValueError, OSError):  # e.g. 0001-01-01T00:00:00+05:00
        raise argparse.ArgumentTypeError("the ISO 8601 time is out of range") from None
    if seconds < 0:
        raise argparse.ArgumentTypeError("the time must not be before 1970-01-01T00:00:00Z")
    return seconds


def _add_secret_options(parser: argparse.ArgumentParser, *, with_allow_short: bool = True) -> None:
    parser.add_argument(
        "--secret",
        metavar="B32",
        help=f"base32 secret; '-' reads it from stdin; default: ${SECRET_ENV}",
    )
    if with_allow_short:
        parser.add_argument(
            "--allow-short-key",
            action="store_true",
            help="accept legacy keys of 80 to 127 bits",
        )


def _add_otp_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--digits", type=_uint, default=DEFAULT_DIGITS, help="code length")
    parser.add_argument("--algorithm", default="SHA1", help="SHA1, SHA256 or SHA512")
    parser.add_argument(
        "--period", type=_uint, default=DEFAULT_PERIOD, help="TOTP time step in seconds"
    )


def _add_label_options(parser: argparse.ArgumentParser, *, account_required: bool) -> None:
    if account_required:
        parser.add_argument(
            "--account",
            required=True,
            help="account name shown in the app, e.g. an e-mail (required)",
        )
    else:
        parser.add_argument(
            "--account",
            help="account name shown in the app, e.g. an e-mail (required without URI)",
        )
    parser.add_argument("--issuer", help="service name shown in the app")
    parser.add_argument("--kind", choices=("totp", "hotp"), default="totp", help="OTP type")
    parser.add_argument(
        "--counter",
        type=_uint,
        default=None,
        help="initial HOTP counter (with --kind hotp; default: 0)",
    )


def _add_qr_look(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--light-background",
        action="store_true",
        help="terminal QR for dark text on a light background",
    )


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=_PROG,
        description="HOTP/TOTP keys, provisioning URIs, QR codes and code checks.",
        epilog=f"The secret may be given in ${SECRET_ENV} instead of --secret. "
        "Exit status: 0 ok or match, 1 no match, 2 bad input.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    new = commands.add_parser(
        "new", help="make a fresh key and show its URI and QR code", allow_abbrev=False
    )
    _add_label_options(new, account_required=True)
    _add_otp_options(new)
    new.add_argument("--bytes", type=_uint, default=DEFAULT_KEY_BYTES, help="key size in bytes")
    new.add_argument("--no-qr", action="store_true", help="do not print the QR code")
    _add_qr_look(new)

    uri = commands.add_parser(
        "uri", help="print the provisioning URI for a key", allow_abbrev=False
    )
    _add_secret_options(uri)
    _add_label_options(uri, account_required=True)
    _add_otp_options(uri)

    qr = commands.add_parser("qr", help="show a provisioning URI as a QR code", allow_abbrev=False)
    qr.add_argument(
        "uri", nargs="?", metavar="URI", help="otpauth:// URI, or '-' to read it from stdin"
    )
    _add_secret_options(qr)
    _add_label_options(qr, account_required=False)
    _add_otp_options(qr)
    qr.add_argument(
        "--format", choices=("terminal", "svg", "png"), default="terminal", help="image format"
    )
    qr.add_argument("--output", metavar="FILE", help="write to FILE (required for png)")
    _add_qr_look(qr)

    code = commands.add_parser("code", help="print the code for now (or --at)", allow_abbrev=False)
    _add_secret_options(code)
    _add_otp_options(code)
    _add_time_options(code)

    verify = commands.add_parser(
        "verify", help="check a code; exit 0 on match, 1 otherwise", allow_abbrev=False
    )
    _add_secret_options(verify)
    _add_otp_options(verify)
    _add_time_options(verify)
    verify.add_argument(
        "--look-behind", type=_uint, default=1, help="TOTP steps accepted before now"
    )
    verify.add_argument(
        "--look-ahead",
        type=_uint,
        default=None,
        help="steps accepted after now (TOTP default 1) or after --counter (HOTP default 0)",
    )
    verify.add_argument("code", metavar="CODE", help="the code to check")

    diagnose = commands.add_parser(
        "diagnose",
        help="find which time step a code matches and how far the clocks differ",
        allow_abbrev=False,
    )
    _add_secret_options(diagnose)
    _add_otp_options(diagnose)
    diagnose.add_argument(
        "--at", type=_instant, default=None, help="when the code was read (default: now)"
    )
    diagnose.add_argument(
        "--range",
        type=_uint,
        default=DEFAULT_DIAGNOSE_RANGE,
        metavar="SECONDS",
        help=f"search this far either side of now (default {DEFAULT_DIAGNOSE_RANGE}: one day)",
    )
    diagnose.add_argument("code", metavar="CODE", help="the code the authenticator shows")
    commands.add_parser(
        "admin",
        help="operator commands over a store (list, unlock, reset, disable, reseal, schema, "
        "purge, import; see 'mfa-core admin --help')",
        add_help=False,
    )
    return parser


def _add_time_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--at",
        type=_instant,
        default=None,
        help="Unix seconds or ISO 8601 time with zone (default: now)",
    )
    parser.add_argument(
        "--counter",
        type=_uint,
        default=None,
        help="use HOTP with this counter instead of TOTP",
    )


def _now(args: argparse.Namespace) -> float:
    return float(args.at) if args.at is not None else time.time()


def _read_secret(args: argparse.Namespace) -> bytes:
    text: str | None = args.secret
    if text == "-":
        text = sys.stdin.readline().strip()
    elif text is None:
        text = os.environ.get(SECRET_ENV)
    if not text:
        raise InvalidParameter(f"no secret: pass --secret B32 or set {SECRET_ENV}")
    return check_key(b32decode_key(text), allow_short_key=bool(args.allow_short_key))


def _uri_from_options(args: argparse.Namespace, key: bytes) -> str:
    if not args.account:
        raise InvalidParameter("--account is required")
    counter = args.counter
    if args.kind == "hotp" and counter is None:
        counter = 0
    return build_uri(
        key,
        account=args.account,
        issuer=args.issuer,
        kind=args.kind,
        digits=args.digits,
        algorithm=args.algorithm,
        period=args.period,
        counter=counter,
        allow_short_key=bool(getattr(args, "allow_short_key", False)),
    )


def _print_terminal_qr(uri: str, args: argparse.Namespace, *, required: bool) -> None:
    from .qr import qr_terminal  # noqa: PLC0415 - keeps `mfa-core code` free of QR imports

    try:
        text = qr_terminal(
            uri,
            dark_background=not args.light_background,
            allow_short_key=bool(getattr(args, "allow_short_key", False)),
        )
    except MissingDependency as exc:
        if required:
            raise
        print(f"{_PROG}: note: no QR code shown. {exc.message}", file=sys.stderr)
        return
    sys.stdout.write(text)


def _cmd_new(args: argparse.Namespace) -> int:
    key = generate_key(args.bytes)
    uri = _uri_from_options(args, key)
    print(f"secret: {b32encode_key(key)}")
    print(f"uri:    {uri}")
    if not args.no_qr:
        print()
        _print_terminal_qr(uri, args, required=False)
    return EXIT_OK


def _cmd_uri(args: argparse.Namespace) -> int:
    print(_uri_from_options(args, _read_secret(args)))
    return EXIT_OK


def _write_private(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by the owner only (it encodes a secret)."""
    try:
        raw = os.fsencode(path)
    except UnicodeError:  # a lone surrogate the file system encoding cannot carry
        raise InvalidParameter("--output is not a file name this system can encode") from None
    if not raw or b"\0" in raw:
        raise InvalidParameter("--output must be a non-empty file name without NUL")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _cmd_qr(args: argparse.Namespace) -> int:
    allow_short = bool(args.allow_short_key)
    if args.uri is not None:
        if args.secret is not None:
            raise InvalidParameter("give either a URI or --secret, not both")
        uri = (sys.stdin.readline() if args.uri == "-" else args.uri).strip()
        parse_uri(uri, allow_short_key=allow_short)  # refuse a bad URI before rendering it
    else:
        uri = _uri_from_options(args, _read_secret(args))
    from .qr import qr_png, qr_svg  # noqa: PLC0415 - optional extra

    if args.format == "terminal":
        if args.output is not None:
            raise InvalidParameter("--output is for --format svg or png")
        _print_terminal_qr(uri, args, required=True)
    elif args.format == "svg":
        svg = qr_svg(uri, allow_short_key=allow_short)
        if args.output is None:
            sys.stdout.write(svg + "\n")
        else:
            _write_private(args.output, svg.encode("utf-8"))
    else:
        if args.output is None:
            raise InvalidParameter("--format png needs --output FILE")
        _write_private(args.output, qr_png(uri, allow_short_key=allow_short))
    return EXIT_OK


def _cmd_code(args: argparse.Namespace) -> int:
    key = _read_secret(args)
    allow_short = bool(args.allow_short_key)
    if args.counter is not None:
        code = hotp(
            key,
            args.counter,
            digits=args.digits,
            algorithm=args.algorithm,
            allow_short_key=allow_short,
        )
    else:
        code = totp(
            key,
            _now(args),
            digits=args.digits,
            algorithm=args.algorithm,
            period=args.period,
            allow_short_key=allow_short,
        )
    print(code)
    return EXIT_OK


def _candidate(code: str, digits: int) -> bytes:
    candidate = normalize_code(code, digits)
    if candidate is None:
        raise InvalidParameter(
            f"CODE must be {digits} ASCII digits (a space or dash between groups is fine)",
            code=ErrorCode.INVALID_CODE,
        )
    return candidate


def _cmd_verify(args: argparse.Namespace) -> int:
    key = _read_secret(args)
    allow_short = bool(args.allow_short_key)
    HOTPState(key, args.algorithm, args.digits)  # parameters first, then the code
    _candidate(args.code, args.digits)  # a malformed code is bad input, not a mismatch
    if args.counter is not None:
        matched = verify_hotp(
            key,
            args.code,
            args.counter,
            digits=args.digits,
            algorithm=args.algorithm,
            look_ahead=0 if args.look_ahead is None else args.look_ahead,
            allow_short_key=allow_short,
        )
        if matched is None:
            print("no match")
            return EXIT_NO_MATCH
        print(f"match: counter {matched} (store {matched + 1} as the next counter)")
        return EXIT_OK
    now = _now(args)
    matched = verify_totp(
        key,
        args.code,
        now,
        digits=args.digits,
        algorithm=args.algorithm,
        period=args.period,
        look_behind=args.look_behind,
        look_ahead=1 if args.look_ahead is None else args.look_ahead,
        allow_short_key=allow_short,
    )
    if matched is None:
        print("no match (try: mfa-core diagnose ... CODE)")
        return EXIT_NO_MATCH
    offset = matched - time_step(now, period=args.period)
    print(f"match: time step {matched} ({offset:+d} steps from now)")
    return EXIT_OK


def human_duration(seconds: int) -> str:
    """Return ``seconds`` (>= 0) as a short English duration such as ``"2 min 30 s"``.

    At most the two largest non-zero units are shown (days, hours, minutes, seconds).
    """
    parts: list[str] = []
    rest = seconds
    for size, unit in ((86_400, "day"), (3_600, "h"), (60, "min"), (1, "s")):
        count, rest = divmod(rest, size)
        if count:
            label = f"{unit}s" if unit == "day" and count != 1 else unit
            parts.append(f"{count} {label}")
    return " ".join(parts[:2]) if parts else "0 s"


def clock_sentence(offset_seconds: int, period: int) -> str:
    """Describe an authenticator's clock offset (matched step minus current, in seconds)."""
    if offset_seconds == 0:
        return f"the authenticator's clock agrees with this machine's (within one {period} s step)"
    side = "behind" if offset_seconds < 0 else "ahead of"
    amount = human_duration(abs(offset_seconds))
    return f"the authenticator's clock is about {amount} {side} this machine's"


def _utc(seconds: int) -> str:
    try:
        moment = dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    except (OverflowError, ValueError, OSError):  # beyond the year 9999
        return f"Unix time {seconds}"
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _cmd_diagnose(args: argparse.Namespace) -> int:
    key = _read_secret(args)
    if args.range > MAX_DIAGNOSE_RANGE:
        raise InvalidParameter(f"--range must be at most {MAX_DIAGNOSE_RANGE} seconds (7 days)")
    state = HOTPState(key, args.algorithm, args.digits)
    candidate = _candidate(args.code, args.digits)
    now = _now(args)
    period = args.period
    current = time_step(now, period=period)
    span = math.ceil(args.range / period)
    if 2 * span + 1 > MAX_DIAGNOSE_STEPS:
        raise InvalidParameter(
            f"--range / --period asks for more than {MAX_DIAGNOSE_STEPS} time steps; "
            "give a smaller --range"
        )
    first, last = max(current - span, 0), min(current + span, MAX_COUNTER)
    compare = hmac.compare_digest
    matches = [
        step for step in range(first, last + 1) if compare(state.code(step).encode(), candidate)
    ]
    searched = f"{last - first + 1} steps of {period} s around step {current}"
    if not matches:
        print(f"no match within {human_duration(args.range)} either side ({searched}).")
        print(
            "The secret, digits, algorithm or period differ from the authenticator's, "
            "or its clock is off by more than that."
        )
        return EXIT_NO_MATCH
    best = min(matches, key=lambda step: (abs(step - current), step))
    offset_steps = best - current
    offset_seconds = offset_steps * period
    start = best * period
    print(f"match: time step {best} ({_utc(start)} to {_utc(start + period)})")
    print(f"offset: {offset_steps:+d} steps ({offset_seconds:+d} s)")
    print(f"{clock_sentence(offset_seconds, period)}.")
    if abs(offset_steps) <= 1:
        print("A verifier with the usual window (1 step either side) accepts this code.")
    else:
        print(
            "A verifier with the usual window (1 step either side) rejects this code: set the "
            "phone's date and time to automatic, or check this machine's NTP."
        )
    others = [step for step in matches if step != best]
    if others:
        listed = ", ".join(f"{step - current:+d}" for step in others[:5])
        print(
            f"note: the code also matches at {listed} steps; codes repeat by chance, "
            "so diagnose a second code to be sure."
        )
    return EXIT_OK


_COMMANDS: Final = {
    "new": _cmd_new,
    "uri": _cmd_uri,
    "qr": _cmd_qr,
    "code": _cmd_code,
    "verify": _cmd_verify,
    "diagnose": _cmd_diagnose,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mfa-core`` with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["admin"]:
        from . import admin  # noqa: PLC0415 - only the operator's commands need it

        admin_parser = admin.build_parser(_HelpFormatter, _Parser)
        try:
            admin_args = admin_parser.parse_args(words[1:])
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
        return admin.run(admin_args)
    parser = _build_parser()
    try:
        args = parser.parse_args(words)
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    try:
        return _COMMANDS[args.command](args)
    except MFAError as exc:
        print(f"{_PROG} {args.command}: error: {exc.message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        print(f"{_PROG} {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
