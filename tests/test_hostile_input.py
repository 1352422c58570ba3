"""Hostile input to the pure modules: one test per finding class of issue 11.

Each test failed on the code before the one validation layer (``mfa_core._validate``) and
passes with it: Unicode case mapping, integers beyond float range, lone surrogates, the
CLI's escaping exceptions and unbounded work, stored Argon2id cost, the QR charset, and
``encoder=steam``. Every refusal is a typed :class:`~mfa_core.errors.MFAError`.
"""

from __future__ import annotations

import base64
import io
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import attrs
import pytest
import segno
import zxingcpp

from mfa_core import oob, recovery, throttle
from mfa_core._validate import (
    check_ascii,
    check_duration,
    check_id,
    check_time,
    finite_float,
    int_in,
)
from mfa_core.cli import main
from mfa_core.errors import (
    ErrorCode,
    InvalidBase32,
    InvalidParameter,
    InvalidURI,
    MFAError,
    UnsupportedAlgorithm,
)
from mfa_core.keys import b32decode_key, b32encode_key
from mfa_core.lifecycle import LifecycleConfig, effective_state
from mfa_core.models import Credential, CredentialKind, CredentialState, FailureState
from mfa_core.otp import parse_algorithm, totp
from mfa_core.qr import qr_matrix
from mfa_core.uri import parse_uri

KEY = b"12345678901234567890"
B32 = b32encode_key(KEY)  # GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ
TAG_KEY = b"t" * 32
FAST = recovery.Argon2Params.fast_for_testing()
HUGE = 10**400  # an int no float can hold


# -- the validation layer itself ---------------------------------------------------------


def test_validate_time_and_int_refuse_huge_ints_without_overflow() -> None:
    assert finite_float(HUGE) is None
    assert finite_float(-HUGE) is None
    for bad in (HUGE, -1, float("nan"), float("inf"), True, "1", None):
        with pytest.raises(InvalidParameter) as caught:
            check_time(bad)
        assert caught.value.code is ErrorCode.INVALID_TIME
    assert check_time(5) == 5.0
    assert check_time(-5, allow_negative=True) == -5.0
    with pytest.raises(InvalidParameter):
        check_duration(HUGE, "d", low=0.0, high=float("inf"))
    assert check_duration(float("inf"), "d", low=0.0, high=float("inf")) == float("inf")
    with pytest.raises(InvalidParameter):
        int_in(HUGE, 0, 10, "n")
    with pytest.raises(InvalidParameter):
        int_in(True, 0, 10, "n")


def test_validate_id_refuses_lone_surrogates_and_ascii_is_checked_first() -> None:
    assert check_id("alice\u00e9", "user_id") == "alice\u00e9"
    for bad in ("", "a" * 257, "a\ud800", "\udcff", 7, None):
        with pytest.raises(InvalidParameter):
            check_id(bad, "user_id")
    for bad in ("\u017f", "\u0131", "\ufb06", "a\u3000", "\u00a0"):
        with pytest.raises(InvalidParameter):
            check_ascii(bad, "text", max_length=10)


# -- 1. Unicode case mapping -------------------------------------------------------------

# Each of these maps to ASCII base32 under str.upper() or vanishes under str.strip().
_CASE_MAPPED = [
    B32[:-1] + "\u017f",  # long s -> "S"
    B32[:-1] + "\u0131",  # dotless i -> "I"
    B32[:-2] + "\ufb06",  # the "st" ligature -> "ST"
    "\u3000" + B32,  # ideographic space, stripped by str.strip()
    B32 + "\u2003",  # em space
    B32 + "\u00a0",  # no-break space
]


@pytest.mark.parametrize("secret", _CASE_MAPPED)
def test_base32_secret_with_case_mapped_or_unicode_space_is_refused(secret: str) -> None:
    with pytest.raises(InvalidBase32):
        b32decode_key(secret)
    with pytest.raises(InvalidURI) as caught:
        parse_uri(f"otpauth://totp/Example:alice?secret={secret}&issuer=Example")
    assert caught.value.code is ErrorCode.INVALID_BASE32


@pytest.mark.parametrize("name", ["\u017fha1", "\u017fHA256", "SHA\u0665", "\u00a0SHA1"])
def test_algorithm_name_with_case_mapping_is_refused(name: str) -> None:
    with pytest.raises(UnsupportedAlgorithm):
        parse_algorithm(name)
    with pytest.raises(InvalidURI) as caught:
        parse_uri(f"otpauth://totp/a?secret={B32}&algorithm={name}")
    assert caught.value.code is ErrorCode.UNSUPPORTED_ALGORITHM


def test_uri_surrounded_by_unicode_space_is_refused() -> None:
    with pytest.raises(InvalidURI) as caught:
        parse_uri(f"\u2003otpauth://totp/a?secret={B32}")
    assert caught.value.code is ErrorCode.URI_BAD_SCHEME
    assert parse_uri(f" \totpauth://totp/a?secret={B32}\n").key == KEY


# -- 2. integers beyond float range ------------------------------------------------------


def _time_refused(call: object) -> None:
    assert callable(call)
    with pytest.raises(InvalidParameter) as caught:
        call()
    assert isinstance(caught.value, MFAError)


def test_huge_int_times_in_oob_are_invalid_parameters() -> None:
    issued = oob.issue(
        user_id="u",
        purpose="login",
        channel="email",
        destination="a@b.example",
        now=100,
        key=TAG_KEY,
    )
    _time_refused(
        lambda: oob.issue(
            user_id="u",
            purpose="login",
            channel="email",
            destination="a@b.example",
            now=HUGE,
            key=TAG_KEY,
        )
    )
    _time_refused(lambda: oob.send_window_for(HUGE))
    _time_refused(
        lambda: oob.check(
            issued.record,
            issued.code,
            purpose="login",
            challenge_id=issued.record.challenge_id,
            now=HUGE,
            key=TAG_KEY,
        )
    )
    _time_refused(lambda: oob.resend(issued.record, now=HUGE, key=TAG_KEY))
    _time_refused(lambda: attrs.evolve(issued.record, issued_at=HUGE))
    _time_refused(lambda: attrs.evolve(issued.record, expires_at=HUGE))


def test_huge_int_times_in_throttle_are_invalid_parameters() -> None:
    config = throttle.ThrottleConfig()
    _time_refused(lambda: throttle.check(FailureState(count=1, last_failure_at=0.0), HUGE, config))
    _time_refused(lambda: throttle.check(FailureState(count=1, last_failure_at=HUGE), 1.0, config))
    _time_refused(lambda: throttle.admit(FailureState(count=1, last_failure_at=HUGE), 1.0, config))
    _time_refused(lambda: throttle.ThrottleConfig(max_delay=HUGE))
    _time_refused(lambda: throttle.ThrottleConfig(lockout=HUGE))
    _time_refused(lambda: throttle.ThrottleConfig(max_failures=HUGE))


def test_huge_int_times_in_lifecycle_and_recovery_are_invalid_parameters() -> None:
    _time_refused(lambda: LifecycleConfig(max_age=HUGE))
    _time_refused(lambda: LifecycleConfig(pending_ttl=HUGE))
    config = LifecycleConfig()
    for field in ("created_at", "confirmed_at", "renewed_at"):
        times = {"created_at": 0.0, field: HUGE}
        active = Credential(
            id="c",
            user_id="u",
            kind=CredentialKind.TOTP,
            sealed_key=b"k",
            status=CredentialState.ACTIVE,
            **times,  # type: ignore[arg-type]
        )
        _time_refused(lambda active=active: effective_state(active, 10.0, config))
    pending = Credential(
        id="c",
        user_id="u",
        kind=CredentialKind.TOTP,
        sealed_key=b"k",
        created_at=0.0,
        pending_until=HUGE,  # type: ignore[arg-type]
    )
    _time_refused(lambda: effective_state(pending, 10.0, config))
    _time_refused(lambda: effective_state(pending, HUGE, config))
    phc = recovery.hash_recovery_code("ABCD0123EFGH4567", FAST)
    _time_refused(lambda: recovery.RecoveryRecord(id="r", tag="0" * 32, phc=phc, used_at=HUGE))


# -- 3. lone surrogates ------------------------------------------------------------------


@pytest.mark.parametrize("user_id", ["\ud800", "alice\udfff", "\udcff"])
def test_lone_surrogate_user_ids_are_invalid_parameters(user_id: str) -> None:
    config = recovery.RecoveryConfig(count=1, argon2=FAST)
    with pytest.raises(InvalidParameter):
        recovery.generate_recovery_codes(user_id, TAG_KEY, config)
    with pytest.raises(InvalidParameter):
        recovery.lookup_tag(TAG_KEY, user_id, "ABCD0123EFGH4567")
    with pytest.raises(InvalidParameter):
        recovery.check_recovery_code("ABCD0123EFGH4567", user_id, [], TAG_KEY)
    with pytest.raises(InvalidParameter):
        oob.issue(
            user_id=user_id,
            purpose="login",
            channel="email",
            destination="a@b.example",
            now=1.0,
            key=TAG_KEY,
        )
    with pytest.raises(InvalidParameter):
        oob.user_send_key(TAG_KEY, user_id)


@pytest.mark.parametrize(
    ("channel", "destination"),
    [("email", "a\ud800@example.com"), ("email", "alice@ex\udcffample.com")],
)
def test_lone_surrogate_destinations_are_invalid_parameters(channel: str, destination: str) -> None:
    with pytest.raises(InvalidParameter):
        oob.destination_send_key(TAG_KEY, channel, destination)
    with pytest.raises(InvalidParameter):
        oob.issue(
            user_id="u",
            purpose="login",
            channel=channel,
            destination=destination,
            now=1.0,
            key=TAG_KEY,
        )


# -- 4. the CLI --------------------------------------------------------------------------


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = main(list(argv))
    return status, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    "at", ["0001-01-01T00:00:00+05:00", "0001-01-01T00:00:00+00:00", "1969-12-31T23:00:00Z"]
)
def test_cli_diagnose_at_out_of_range_is_bad_input(at: str) -> None:
    status, _, err = _run("diagnose", "--secret", B32, "--at", at, "123456")
    assert status == 2
    assert "error" in err


def test_cli_diagnose_far_future_match_prints_without_a_calendar_date() -> None:
    at = 999_999_999_999_999
    status, out, _ = _run("diagnose", "--secret", B32, "--at", str(at), totp(KEY, at))
    assert status == 0
    assert "match: time step" in out


def test_cli_unencodable_output_path_is_bad_input(tmp_path: Path) -> None:
    uri = f"otpauth://totp/a?secret={B32}"
    for name in ("\ud800.svg", "a\0b.svg"):
        status, _, err = _run("qr", uri, "--format", "svg", "--output", str(tmp_path / name))
        assert status == 2
        assert "--output" in err
    assert list(tmp_path.iterdir()) == []


def test_cli_diagnose_work_is_bounded() -> None:
    started = time.perf_counter()
    status, _, err = _run(
        "diagnose",
        "--secret",
        B32,
        "--period",
        "1",
        "--range",
        "604800",
        "--at",
        "1000000000",
        "123456",
    )
    assert status == 2
    assert "time steps" in err
    assert time.perf_counter() - started < 0.5


# -- 5. stored Argon2id parameters -------------------------------------------------------


def _record_with_params(code: str, memory_kib: int, iterations: int) -> recovery.RecoveryRecord:
    salt = base64.b64encode(b"s" * 16).decode().rstrip("=")
    digest = base64.b64encode(b"h" * 32).decode().rstrip("=")
    phc = f"$argon2id$v=19$m={memory_kib},t={iterations},p=1${salt}${digest}"
    tag = recovery.lookup_tag(TAG_KEY, "u", code)
    return recovery.RecoveryRecord(id="r", tag=tag, phc=phc)


@pytest.mark.parametrize(("memory_kib", "iterations"), [(1024 * 1024, 32), (64 * 1024, 3)])
def test_stored_argon2_cost_beyond_the_configuration_is_refused_before_hashing(
    memory_kib: int, iterations: int
) -> None:
    code = "ABCD0123EFGH4567"
    record = _record_with_params(code, memory_kib, iterations)
    started = time.perf_counter()
    with pytest.raises(InvalidParameter):
        recovery.check_recovery_code(code, "u", [record], TAG_KEY, FAST)
    with pytest.raises(InvalidParameter):
        recovery.check_recovery_code(code, "u", [record], TAG_KEY)  # the defaults
    assert time.perf_counter() - started < 0.5  # no slow hash ran


def test_stored_argon2_cost_within_the_configuration_is_checked() -> None:
    code = "ABCD0123EFGH4567"
    phc = recovery.hash_recovery_code(code, FAST)
    record = recovery.RecoveryRecord(id="r", tag=recovery.lookup_tag(TAG_KEY, "u", code), phc=phc)
    assert recovery.check_recovery_code(code, "u", [record], TAG_KEY, FAST).ok
    # A host that raised its cost still checks the hashes made with the defaults.
    higher = recovery.Argon2Params(memory_kib=32 * 1024, iterations=3)
    assert recovery.check_recovery_code(code, "u", [record], TAG_KEY, higher).ok


# -- 6. QR of a non-ASCII label ----------------------------------------------------------


def _read_bytes(matrix: list[list[bool]]) -> bytes:
    rows = []
    for row in matrix:
        line = bytes(0 if dark else 255 for dark in row for _ in range(4))
        rows.extend([line] * 4)
    image = memoryview(b"".join(rows)).cast("B", (len(rows), len(rows[0])))
    found = zxingcpp.read_barcode(image, formats=zxingcpp.BarcodeFormat.QRCode)
    assert found is not None
    return bytes(found.bytes)


@pytest.mark.parametrize("label", ["Ex\u00e4mple:j\u00fcrgen", "\u6771\u4eac:alice"])
def test_qr_of_non_ascii_label_is_utf8(label: str) -> None:
    uri = f"otpauth://totp/{label}?secret={B32}"
    assert _read_bytes(qr_matrix(uri)) == uri.encode("utf-8")
    # An ASCII URI keeps segno's most compact encoding (no ECI header).
    ascii_uri = f"otpauth://totp/a?secret={B32}"
    plain = segno.make(ascii_uri, error="m", micro=False, boost_error=True)
    assert qr_matrix(ascii_uri) == [
        [bool(m) for m in row] for row in plain.matrix_iter(scale=1, border=4)
    ]


# -- 7. encoder=steam --------------------------------------------------------------------


@pytest.mark.parametrize("encoder", ["steam", "Steam", "x"])
def test_unsupported_encoder_has_its_own_code(encoder: str) -> None:
    with pytest.raises(InvalidURI) as caught:
        parse_uri(f"otpauth://totp/Steam:alice?secret={B32}&issuer=Steam&encoder={encoder}")
    assert caught.value.code is ErrorCode.URI_UNSUPPORTED_ENCODER


def test_base32_encoder_and_empty_encoder_are_accepted() -> None:
    assert parse_uri(f"otpauth://totp/a?secret={B32}&encoder=base32").key == KEY
    assert parse_uri(f"otpauth://totp/a?secret={B32}&encoder=").key == KEY


# -- 8. integers beyond float range at the stores and the testing clock -------------------


@pytest.mark.parametrize("make", ["memory", "sqlite"])
@pytest.mark.parametrize("when", [10**400, -(10**400), 2**1024])
def test_a_store_refuses_a_time_beyond_float_range_with_a_typed_error(
    make: str, when: int, tmp_path: Path
) -> None:
    from mfa_core.stores import MemoryStore, SQLiteStore
    from mfa_core.throttle import ThrottleConfig

    store = MemoryStore() if make == "memory" else SQLiteStore(tmp_path / "t.sqlite3")
    try:
        for call in (
            lambda: store.admit_attempt("alice", when, ThrottleConfig()),  # type: ignore[arg-type]
            lambda: store.begin_attempt("alice", when, ThrottleConfig()),  # type: ignore[arg-type]
            lambda: store.consume_recovery_code("alice", "r1", when),  # type: ignore[arg-type]
        ):
            with pytest.raises(InvalidParameter) as caught:
                call()
            assert caught.value.code is ErrorCode.INVALID_TIME
        assert store.get_failures("alice") == FailureState()  # nothing written
    finally:
        close = getattr(store, "close", None)
        if close is not None:
            close()


def test_the_fake_clock_refuses_a_time_beyond_float_range_with_a_typed_error() -> None:
    from mfa_core.testing import FakeClock

    for bad in (10**400, 2**1024, -1, float("nan"), True):
        with pytest.raises(InvalidParameter) as caught:
            FakeClock(bad)  # type: ignore[arg-type]
        assert caught.value.code is ErrorCode.INVALID_TIME
    clock = FakeClock(10**9)
    with pytest.raises(InvalidParameter):
        clock.set(10**400)
    assert clock.now() == 1e9
