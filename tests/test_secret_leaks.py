"""Secrets never show: not in repr/str, not in exception messages, not in tracebacks.

Each failing operation below is handed a real secret (and, where it takes one, the right
code), then everything a host might log about the outcome is searched for them.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable

import pytest
from error_chain import chain_text
from hypothesis import given, settings
from hypothesis import strategies as st

from mfa_core import b32decode_key, build_uri, hotp, parse_uri, totp, verify_hotp, verify_totp
from mfa_core.cli import main
from mfa_core.errors import MFAError
from mfa_core.keys import b32encode_key
from mfa_core.otp import HOTPState
from mfa_core.qr import qr_png, qr_svg, qr_terminal


def _forms(key: bytes) -> list[str]:
    b32 = b32encode_key(key)
    return [b32, b32.lower(), b32[:16], key.hex(), repr(key), repr(key)[2:-1][:24]]


def _failing_operations(key: bytes) -> list[Callable[[], object]]:
    b32 = b32encode_key(key)
    code = totp(key, 59)
    good = build_uri(key, account="alice", issuer="Bank")
    return [
        lambda: parse_uri(good.replace("issuer=Bank", "issuer=Evil")),
        lambda: parse_uri(good.replace("digits=6", "digits=5")),
        lambda: parse_uri(good.replace("algorithm=SHA1", "algorithm=MD5")),
        lambda: parse_uri(good.replace("period=30", "period=0")),
        lambda: parse_uri(good + "&secret=" + b32),
        lambda: parse_uri(good.replace("secret=", "secret=1")),
        lambda: parse_uri(good.replace("otpauth://", "https://")),
        lambda: parse_uri(good.replace("totp", "motp", 1)),
        lambda: parse_uri(good + "&image=" + "x" * 3000),
        lambda: parse_uri(f"otpauth://hotp/a?secret={b32}"),
        lambda: parse_uri(f"otpauth://totp/a?secret={b32[:16]}"),
        lambda: build_uri(key, account="a:b"),
        lambda: build_uri(key, account="a", digits=9),
        lambda: build_uri(key[:15], account="a"),
        lambda: b32decode_key(b32 + "!"),
        lambda: b32decode_key(b32 + "1"),
        lambda: b32decode_key(b32 + "=" * 9),
        lambda: verify_totp(key, code, 59, digits=5),
        lambda: verify_totp(key, code, 59, algorithm="MD5"),
        lambda: verify_totp(key, code, -1),
        lambda: verify_totp(key, code, 59, look_behind=1000),
        lambda: verify_hotp(key, code, -1),
        lambda: verify_hotp(key[:15], code, 1),
        lambda: hotp(key, 2**64),
        lambda: totp(key, 59, period=0),
        lambda: qr_terminal(good.replace("issuer=Bank", "issuer=Evil")),
        lambda: qr_svg(good.replace("digits=6", "digits=11")),
        lambda: qr_png(good.replace("secret=", "secret=0")),
    ]


def _assert_clean(text: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in text


@settings(max_examples=30, deadline=None)
@given(st.binary(min_size=16, max_size=64).filter(lambda k: len(set(k)) > 4))
def test_errors_never_contain_the_secret_or_the_code(key: bytes) -> None:
    secrets = [*_forms(key), totp(key, 59)]
    for operation in _failing_operations(key):
        with pytest.raises(MFAError) as info:
            operation()
        error = info.value
        everything = " ".join(
            [
                str(error),
                repr(error),
                repr(error.args),
                error.message,
                "".join(traceback.format_exception(error)),
            ]
        )
        _assert_clean(everything, secrets)
        # No standard-library exception (whose text could quote the input) is chained.
        assert error.__cause__ is None
        assert error.__context__ is None or error.__suppress_context__


def test_value_objects_hide_the_key() -> None:
    key = bytes(range(100, 132))
    parsed = parse_uri(build_uri(key, account="alice", issuer="Bank"))
    state = HOTPState(key, "SHA1", 6)
    for text in (repr(parsed), str(parsed), repr(state), str(state)):
        _assert_clean(text, _forms(key))


def test_nothing_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    key = bytes(range(16, 48))
    caplog.set_level(logging.DEBUG)
    for operation in _failing_operations(key):
        with pytest.raises(MFAError):
            operation()
    verify_totp(key, totp(key, 59), 59)
    assert caplog.records == []


def test_cli_errors_never_echo_the_secret_or_the_code(capsys: pytest.CaptureFixture[str]) -> None:
    key = bytes(range(50, 70))
    b32 = b32encode_key(key)
    code = totp(key, 59)
    invocations = [
        ["verify", "--secret", b32, "--at", "59", "--digits", "5", code],
        ["verify", "--secret", b32, "--at", "59", code + "x"],
        ["verify", "--secret", b32 + "1", "--at", "59", code],
        ["diagnose", "--secret", b32, "--algorithm", "md5", code],
        ["code", "--secret", b32[:20]],
        ["qr", build_uri(key, account="a", issuer="Bank").replace("issuer=Bank", "issuer=X")],
        ["uri", "--secret", b32, "--account", "a:b"],
    ]
    for argv in invocations:
        assert main(argv) == 2
        out, err = capsys.readouterr()
        assert out == ""
        _assert_clean(err, [*_forms(key), code])


# -- the service's flows: out-of-band resends, bound destinations, corrupt rows ---------------


class _QuotingSender:
    """A gateway whose errors quote the code and the number (as real ones do)."""

    def __init__(self) -> None:
        self.failing = False
        self.codes: list[str] = []

    def send(self, **fields: object) -> None:
        self.codes.append(str(fields["code"]))
        if self.failing:
            raise RuntimeError(f"refused {fields['code']} to {fields['destination']}")


def test_service_errors_never_reach_a_code_secret_or_destination(
    tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    import sqlite3
    from pathlib import Path

    from mfa_core.sealing import AESGCMSealer
    from mfa_core.service import MFAService
    from mfa_core.stores import SQLiteStore
    from mfa_core.testing import FakeClock, RecordingEventSink

    caplog.set_level(logging.DEBUG)
    phone, elsewhere = "+1 555 010 0167", "+1 555 999 0167"
    path = Path(str(tmp_path)) / "leaks.sqlite3"
    store = SQLiteStore(path)
    clock = FakeClock(1_800_000_000.0)
    events = RecordingEventSink()
    sender = _QuotingSender()
    service = MFAService(
        store,
        store,
        AESGCMSealer.generate(),
        clock=clock,
        events=events,
        oob=store,
        sender=sender,  # type: ignore[arg-type]
        secret=b"host secret for tests, 32 bytes!",
    )
    enrolment = service.begin_enrolment("alice", label="phone")
    challenge = service.send_oob_code("alice", channel="sms", destination=phone, purpose="login")
    clock.advance(30)
    errors: list[MFAError] = []

    def expect(operation: Callable[[], object]) -> None:
        with pytest.raises(MFAError) as info:
            operation()
        errors.append(info.value)

    expect(lambda: service.resend_oob_code("alice", challenge, elsewhere))  # bound elsewhere
    expect(lambda: service.resend_oob_code("alice", challenge, elsewhere + "x"))  # not a number
    sender.failing = True
    expect(lambda: service.resend_oob_code("alice", challenge, phone))  # delivery fails
    expect(
        lambda: service.send_oob_code("alice", channel="sms", destination=phone, purpose="reset")
    )
    sender.failing = False
    refused = service.verify_oob_code(
        "alice", challenge, sender.codes[0], "login", destination=elsewhere
    )
    assert not refused.accepted
    # A corrupt row whose text quotes the number (SQLite's decode error quoted a column).
    raw = sqlite3.connect(path)
    with raw:
        raw.execute(
            "UPDATE mfa_credentials SET label = CAST(? AS TEXT)",
            (phone.encode("ascii") + b"\xff",),
        )
    raw.close()
    expect(lambda: service.list_credentials("alice"))
    result = service.verify("alice", "123456")
    assert not result.accepted
    store.close()

    secrets = [
        *sender.codes,
        enrolment.secret,
        phone,
        elsewhere,
        "15550100167",
        "15559990167",
        "555 010",
    ]
    everything = "\n".join(
        [*(chain_text(error) for error in errors), caplog.text, repr(events.events), repr(refused)]
    )
    _assert_clean(everything, secrets)
    for error in errors:
        assert error.__cause__ is None and error.__context__ is None, repr(error)
