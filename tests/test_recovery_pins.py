"""Pins of ``mfa_core.recovery`` and of the stored formats (issue 17).

Known answers for the recovery lookup tag and the sealed-blob format (``tests/vectors/``),
``needs_rehash`` on every Argon2id parameter, the defaults, and every refusal with its
``ErrorCode`` and message. Mutation testing (``tools/mutation.py``) runs this file against
``src/mfa_core/recovery.py``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import attrs
import pytest
from test_otp_pins import refuses

from mfa_core import recovery
from mfa_core.errors import ErrorCode, InvalidKey, InvalidParameter
from mfa_core.recovery import (
    Argon2Params,
    RecoveryCheck,
    RecoveryConfig,
    RecoveryMode,
    RecoveryReason,
    RecoveryRecord,
    check_recovery_code,
    count_unused,
    format_recovery_code,
    generate_recovery_codes,
    hash_recovery_code,
    lookup_tag,
    needs_rehash,
    normalize_recovery_code,
    select_by_tag,
)
from mfa_core.sealing import AESGCMSealer

VECTORS = Path(__file__).resolve().parent / "vectors"
TAG_KEY = bytes(range(32))
FAST = Argon2Params.fast_for_testing()
CODE = "0123456789ABCDEF"
PHC_FAST = hash_recovery_code(CODE, FAST)
BASE16 = Argon2Params(memory_kib=16, iterations=1, lanes=1, salt_bytes=8, hash_bytes=16)
PHC16 = hash_recovery_code(CODE, BASE16)


def _load(name: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((VECTORS / name).read_text("utf-8"))["vectors"]
    return data


# -- known answers -------------------------------------------------------------------------


@pytest.mark.parametrize("entry", _load("recovery_tag.json"), ids=lambda e: e["user_id"])
def test_lookup_tag_known_answers(entry: dict[str, Any]) -> None:
    key = bytes.fromhex(entry["tag_key_hex"])
    assert lookup_tag(key, entry["user_id"], entry["code"]) == entry["tag"]
    # Typed forms of the same code give the same tag.
    shown = format_recovery_code(entry["code"], 4).lower()
    assert lookup_tag(key, entry["user_id"], shown) == entry["tag"]


def test_the_tags_of_a_generated_set_are_the_lookup_tags_of_its_codes() -> None:
    made = generate_recovery_codes("user-42", TAG_KEY, RecoveryConfig(count=3, argon2=FAST))
    assert [lookup_tag(TAG_KEY, "user-42", c) for c in made.codes] == [r.tag for r in made.records]


@pytest.mark.parametrize("entry", _load("sealed_blob.json"), ids=lambda e: e["key_id"])
def test_sealed_blob_known_answers(entry: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    sealer = AESGCMSealer({entry["key_id"]: bytes.fromhex(entry["key_hex"])}, entry["key_id"])
    blob = bytes.fromhex(entry["blob_hex"])
    plaintext = bytes.fromhex(entry["plaintext_hex"])
    assert sealer.unseal(blob, credential_id=entry["credential_id"]) == plaintext
    nonce = bytes.fromhex(entry["nonce_hex"])
    monkeypatch.setattr("mfa_core.sealing.os.urandom", lambda n: nonce[:n])
    assert sealer.seal(plaintext, credential_id=entry["credential_id"]) == blob
    assert sealer.needs_reseal(blob) is False


# -- defaults ------------------------------------------------------------------------------


def test_the_defaults() -> None:
    params = Argon2Params()
    assert attrs.astuple(params) == (19 * 1024, 2, 1, 16, 32)
    # Called here, not at import: a mutant is active only while a test runs.
    assert attrs.astuple(Argon2Params.fast_for_testing()) == (8, 1, 1, 8, 16)
    config = RecoveryConfig()
    assert (config.count, config.bits, config.group_size, config.mode, config.low_threshold) == (
        10,
        80,
        4,
        RecoveryMode.CODES,
        3,
    )
    assert config.argon2 == params and config.length == 16
    key = RecoveryConfig.recovery_key()
    assert (key.count, key.bits, key.mode, key.low_threshold, key.length) == (
        1,
        160,
        RecoveryMode.KEY,
        0,
        32,
    )
    assert key.argon2 == params
    assert RecoveryConfig.recovery_key(bits=128, argon2=FAST).argon2 == FAST
    assert RecoveryConfig(bits=81).length == 17
    assert config.running_low(3) and not config.running_low(4)
    assert RecoveryCheck(RecoveryReason.OK).message == ""
    assert (
        RecoveryCheck(RecoveryReason.NO_MATCH).message == "invalid code"
    )  # the one uniform refusal
    check = RecoveryCheck(RecoveryReason.MALFORMED)
    assert (check.record_id, check.rehash_due, check.slow_hash, check.ok) == (
        None,
        False,
        False,
        False,
    )


# -- needs_rehash --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"memory_kib": 24},
        {"iterations": 2},
        {"lanes": 2},
        {"salt_bytes": 16},
        {"hash_bytes": 32},
    ],
    ids=lambda c: next(iter(c)),
)
def test_needs_rehash_sees_every_parameter(change: dict[str, int]) -> None:
    assert needs_rehash(PHC16, BASE16) is False
    assert needs_rehash(PHC16, attrs.evolve(BASE16, **change)) is True


def test_needs_rehash_reads_lanes_from_the_phc_string() -> None:
    two_lanes = Argon2Params(memory_kib=16, iterations=1, lanes=2, salt_bytes=8, hash_bytes=16)
    phc = hash_recovery_code(CODE, two_lanes)
    assert ",p=2$" in phc
    assert needs_rehash(phc, two_lanes) is False
    assert needs_rehash(phc, attrs.evolve(two_lanes, lanes=1)) is True


def test_needs_rehash_refusals() -> None:
    refuses(
        lambda: needs_rehash(PHC_FAST, None),  # type: ignore[arg-type]
        InvalidParameter,
        ErrorCode.INVALID_PARAMETER,
        "params must be Argon2Params",
    )
    refuses(
        lambda: needs_rehash(PHC_FAST + "A" * 10**6, FAST),  # past the pattern's reach
        InvalidParameter,
        ErrorCode.INVALID_PARAMETER,
        "stored recovery hash is not an Argon2id (v=19) PHC string",
    )
    refuses(
        lambda: needs_rehash(None, FAST),  # type: ignore[arg-type]
        InvalidParameter,
        ErrorCode.INVALID_PARAMETER,
        "stored recovery hash is not a valid PHC string",
    )
    for bad in (
        PHC_FAST.replace("v=19", "v=16"),
        PHC_FAST.replace("argon2id", "argon2i"),
        PHC_FAST + "$",
    ):
        refuses(
            lambda bad=bad: needs_rehash(bad, FAST),
            InvalidParameter,
            ErrorCode.INVALID_PARAMETER,
            "stored recovery hash is not an Argon2id (v=19) PHC string",
        )
    salt = PHC_FAST.split("$")[4]
    # A non-canonical base64 salt (its last character's unused bits set) is refused.
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    twisted = salt[:-1] + last[(last.index(salt[-1]) + 1) % 64]
    refuses(
        lambda: needs_rehash(PHC_FAST.replace(salt, twisted), FAST),
        InvalidParameter,
        ErrorCode.INVALID_PARAMETER,
        "stored recovery hash is not a valid PHC string",
    )
    refuses(
        lambda: needs_rehash(PHC_FAST.replace(salt, salt + "AA"), FAST),
        InvalidParameter,
        ErrorCode.INVALID_PARAMETER,
        "stored recovery hash is not a valid PHC string",
    )


# -- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lanes": 0}, "lanes must be an integer from 1 to 16"),
        ({"lanes": 17, "memory_kib": 1024}, "lanes must be an integer from 1 to 16"),
        ({"memory_kib": 7}, "memory_kib must be an integer from 8 to 1048576"),
        ({"memory_kib": 2**20 + 1}, "memory_kib must be an integer from 8 to 1048576"),
        ({"lanes": 2, "memory_kib": 15}, "memory_kib must be an integer from 16 to 1048576"),
        ({"iterations": 0}, "iterations must be an integer from 1 to 32"),
        ({"iterations": 33}, "iterations must be an integer from 1 to 32"),
        ({"salt_bytes": 7}, "salt_bytes must be an integer from 8 to 64"),
        ({"salt_bytes": 65}, "salt_bytes must be an integer from 8 to 64"),
        ({"hash_bytes": 15}, "hash_bytes must be an integer from 16 to 64"),
        ({"hash_bytes": 65}, "hash_bytes must be an integer from 16 to 64"),
    ],
)
def test_argon2_params_refusals(kwargs: dict[str, Any], message: str) -> None:
    refuses(lambda: Argon2Params(**kwargs), InvalidParameter, ErrorCode.INVALID_PARAMETER, message)


def test_argon2_params_boundaries() -> None:
    Argon2Params(memory_kib=2**20, iterations=32, lanes=16, salt_bytes=64, hash_bytes=64)
    Argon2Params(memory_kib=16, lanes=2)
    Argon2Params(memory_kib=128, lanes=16)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "codes"}, "mode must be a RecoveryMode"),
        ({"count": 0}, "count must be an integer from 1 to 50"),
        ({"count": 51}, "count must be an integer from 1 to 50"),
        ({"bits": 63}, "bits must be an integer from 64 to 256"),
        ({"bits": 257}, "bits must be an integer from 64 to 256"),
        (
            {"mode": RecoveryMode.KEY, "count": 2, "bits": 160},
            "count of a recovery key must be an integer from 1 to 1",
        ),
        (
            {"mode": RecoveryMode.KEY, "count": 1, "bits": 127},
            "bits of a recovery key must be an integer from 128 to 256",
        ),
        ({"group_size": 1}, "group_size must be 0 or an integer from 2 to 8"),
        ({"group_size": 9}, "group_size must be 0 or an integer from 2 to 8"),
        ({"group_size": True}, "group_size must be 0 or an integer from 2 to 8"),
        ({"group_size": -1}, "group_size must be 0 or an integer from 2 to 8"),
        ({"low_threshold": -1}, "low_threshold must be an integer from 0 to 50"),
        ({"low_threshold": 51}, "low_threshold must be an integer from 0 to 50"),
        ({"argon2": None}, "argon2 must be Argon2Params"),
    ],
)
def test_config_refusals(kwargs: dict[str, Any], message: str) -> None:
    refuses(
        lambda: RecoveryConfig(**kwargs), InvalidParameter, ErrorCode.INVALID_PARAMETER, message
    )


def test_config_boundaries() -> None:
    RecoveryConfig(count=1, bits=64, group_size=0, low_threshold=0)
    RecoveryConfig(count=50, bits=256, group_size=2, low_threshold=50)
    RecoveryConfig(group_size=8)
    RecoveryConfig.recovery_key(bits=256)


def test_record_refusals() -> None:
    tag = "0" * 16
    RecoveryRecord(id="r" * 128, tag=tag, phc=PHC_FAST, used_at=0)
    refuses(
        lambda: RecoveryRecord(id="r" * 129, tag=tag, phc=PHC_FAST),
        InvalidParameter,
        ErrorCode.INVALID_PARAMETER,
        "record id must be a non-empty string of at most 128",
    )
    for bad in ("0" * 15, "0" * 17, "A" * 16, None, "g" * 16):
        refuses(
            lambda bad=bad: RecoveryRecord(id="r", tag=bad, phc=PHC_FAST),
            InvalidParameter,
            ErrorCode.INVALID_PARAMETER,
            "tag must be 16 lower-case hex characters",
        )
    for bad in ("$argon2i$v=19$m=8,t=1,p=1$x$y", None, ""):
        refuses(
            lambda bad=bad: RecoveryRecord(id="r", tag=tag, phc=bad),
            InvalidParameter,
            ErrorCode.INVALID_PARAMETER,
            "phc must be an Argon2id PHC string",
        )
    for bad in (-1.0, math.nan, "1", True, 2.0**63):
        refuses(
            lambda bad=bad: RecoveryRecord(id="r", tag=tag, phc=PHC_FAST, used_at=bad),
            InvalidParameter,
            ErrorCode.INVALID_TIME,
            "used_at must be None or a finite, non-negative Unix time",
        )


def test_function_refusals() -> None:
    invalid = "not a valid recovery code"
    for call in (
        lambda: format_recovery_code("too-short"),
        lambda: lookup_tag(TAG_KEY, "u", "too-short"),
        lambda: hash_recovery_code("too-short", FAST),
    ):
        refuses(call, InvalidParameter, ErrorCode.INVALID_CODE, invalid)
    refuses(
        lambda: format_recovery_code(CODE, -1),
        InvalidParameter,
        ErrorCode.INVALID_PARAMETER,
        "group_size must be a non-negative integer",
    )
    refuses(
        lambda: format_recovery_code(CODE, True),
        InvalidParameter,
        ErrorCode.INVALID_PARAMETER,
        "group_size must be a non-negative integer",
    )
    refuses(
        lambda: hash_recovery_code(CODE, "fast"),  # type: ignore[arg-type]
        InvalidParameter,
        ErrorCode.INVALID_PARAMETER,
        "params must be Argon2Params",
    )
    for user in ("", "u" * 257, "\ud800", None):
        refuses(
            lambda user=user: lookup_tag(TAG_KEY, user, CODE),
            InvalidParameter,
            ErrorCode.INVALID_PARAMETER,
            "user_id must be a non-empty string of at most 256"
            if not isinstance(user, str) or user == "" or len(user) > 256
            else "user_id must be valid Unicode text (no lone surrogates)",
        )
    refuses(
        lambda: lookup_tag(b"short", "u", CODE),
        InvalidKey,
        ErrorCode.KEY_TOO_SHORT,
        "key must be at least 16 bytes (128 bits)",
    )
    refuses(
        lambda: generate_recovery_codes("u", TAG_KEY, "config"),  # type: ignore[arg-type]
        InvalidParameter,
        ErrorCode.INVALID_PARAMETER,
        "config must be a RecoveryConfig",
    )
    for records in ("abc", b"abc", 5, [None], [PHC_FAST]):
        refuses(
            lambda records=records: count_unused(records),  # type: ignore[arg-type]
            InvalidParameter,
            ErrorCode.INVALID_PARAMETER,
            "records must be an iterable of RecoveryRecord",
        )
    refuses(
        lambda: select_by_tag(b"tag", []),  # type: ignore[arg-type]
        InvalidParameter,
        ErrorCode.INVALID_PARAMETER,
        "tag must be a string",
    )
    refuses(
        lambda: check_recovery_code(CODE, "u", [], TAG_KEY, "fast"),  # type: ignore[arg-type]
        InvalidParameter,
        ErrorCode.INVALID_PARAMETER,
        "params must be Argon2Params",
    )


def test_format_and_normalise() -> None:
    assert format_recovery_code(CODE) == "0123-4567-89AB-CDEF"
    assert format_recovery_code(CODE, 0) == CODE
    assert format_recovery_code(CODE + "G", 5) == "01234-56789-ABCDE-FG"
    assert normalize_recovery_code(" o123-4567\u2013 89ab\u00a0cdef ") == CODE
    assert normalize_recovery_code("I" * 13) == "1" * 13
    assert normalize_recovery_code("L" * 13) == "1" * 13
    assert normalize_recovery_code("0" * 52) == "0" * 52
    for bad in ("0" * 12, "0" * 53, "U" * 13, "\u0131" * 13, "-" * 257 + CODE, None, 5):
        assert normalize_recovery_code(bad) is None
    assert normalize_recovery_code("-" * 240 + CODE) == CODE  # 256 characters


# -- checking ------------------------------------------------------------------------------


def _records(code: str, user: str = "u", **changes: Any) -> list[RecoveryRecord]:
    record = RecoveryRecord(id="r1", tag=lookup_tag(TAG_KEY, user, code), phc=PHC_FAST)
    return [attrs.evolve(record, **changes)]


def test_check_outcomes_exactly() -> None:
    records = _records(CODE)
    assert check_recovery_code("bad", "u", records, TAG_KEY) == RecoveryCheck(
        RecoveryReason.MALFORMED
    )
    other = "Z" * 16
    assert check_recovery_code(other, "u", records, TAG_KEY) == RecoveryCheck(
        RecoveryReason.NO_MATCH
    )
    assert check_recovery_code(CODE, "u", records, TAG_KEY) == RecoveryCheck(
        RecoveryReason.OK, record_id="r1", rehash_due=False, slow_hash=True
    )
    assert check_recovery_code(CODE, "u", records, TAG_KEY, FAST) == RecoveryCheck(
        RecoveryReason.OK, record_id="r1", rehash_due=False, slow_hash=True
    )
    newer = attrs.evolve(FAST, iterations=2)
    assert check_recovery_code(CODE, "u", records, TAG_KEY, newer) == RecoveryCheck(
        RecoveryReason.OK, record_id="r1", rehash_due=True, slow_hash=True
    )
    used = _records(CODE, used_at=5.0)
    assert check_recovery_code(CODE, "u", used, TAG_KEY) == RecoveryCheck(
        RecoveryReason.ALREADY_USED, record_id="r1", slow_hash=True
    )
    # A tag that matches a record whose hash is of another code: a collision.
    collided = [attrs.evolve(records[0], tag=lookup_tag(TAG_KEY, "u", other))]
    assert check_recovery_code(other, "u", collided, TAG_KEY) == RecoveryCheck(
        RecoveryReason.WRONG_CODE, slow_hash=True
    )
    # The user id is bound into the tag.
    assert check_recovery_code(CODE, "v", records, TAG_KEY).reason is RecoveryReason.NO_MATCH


def test_select_prefers_the_first_unused_record() -> None:
    tag = lookup_tag(TAG_KEY, "u", CODE)
    used_a = RecoveryRecord(id="a", tag=tag, phc=PHC_FAST, used_at=1.0)
    used_b = RecoveryRecord(id="b", tag=tag, phc=PHC_FAST, used_at=2.0)
    free_c = RecoveryRecord(id="c", tag=tag, phc=PHC_FAST)
    free_d = RecoveryRecord(id="d", tag=tag, phc=PHC_FAST)
    other = RecoveryRecord(id="e", tag="f" * 16, phc=PHC_FAST)
    assert select_by_tag(tag, [used_a, used_b, free_c, free_d]) is free_c
    assert select_by_tag(tag, [used_a, used_b, other]) is used_a
    assert select_by_tag(tag, [other]) is None
    assert select_by_tag(tag, iter([free_d, free_c])) is free_d
    assert select_by_tag("\u00e9" * 16, [other]) is None
    assert count_unused([used_a, free_c, free_d, other]) == 3
    assert count_unused(iter([])) == 0


def test_a_stored_hash_costlier_than_allowed_is_refused_before_hashing() -> None:
    message = "stored recovery hash asks for more Argon2id cost than the configuration allows"
    cases = [
        (Argon2Params(memory_kib=19 * 1024 + 8, iterations=1), None),
        (Argon2Params(memory_kib=8, iterations=3), None),
        (Argon2Params(memory_kib=16, iterations=1, lanes=2), None),
        (Argon2Params(memory_kib=64, iterations=1, lanes=3), Argon2Params(memory_kib=48, lanes=2)),
    ]
    for stored, allowed in cases:
        records = _records(CODE, phc=hash_recovery_code(CODE, stored))
        refuses(
            lambda records=records, allowed=allowed: check_recovery_code(
                CODE, "u", records, TAG_KEY, allowed
            ),
            InvalidParameter,
            ErrorCode.INVALID_PARAMETER,
            message,
        )
    # Up to the configured cost, or the defaults where they cost more, is checked.
    fits = [
        (Argon2Params(memory_kib=19 * 1024, iterations=2), None),
        (Argon2Params(memory_kib=16, iterations=1, lanes=2), Argon2Params(memory_kib=16, lanes=2)),
        (Argon2Params(memory_kib=8, iterations=3), Argon2Params(memory_kib=8, iterations=3)),
        (Argon2Params(memory_kib=8, iterations=2), FAST),
    ]
    for stored, allowed in fits:
        records = _records(CODE, phc=hash_recovery_code(CODE, stored))
        assert check_recovery_code(CODE, "u", records, TAG_KEY, allowed).ok


def test_the_default_parameters_hash_and_generate(monkeypatch: pytest.MonkeyPatch) -> None:
    phc = hash_recovery_code(CODE)  # the default Argon2id parameters (19 MiB)
    assert needs_rehash(phc, Argon2Params()) is False
    # A hash costlier than the defaults verifies when the configuration allows it.
    big = Argon2Params(memory_kib=19 * 1024 + 8, iterations=1, salt_bytes=8, hash_bytes=16)
    records = _records(CODE, phc=hash_recovery_code(CODE, big))
    assert check_recovery_code(CODE, "u", records, TAG_KEY, big).ok
    used: list[Argon2Params] = []

    def cheap(canonical: str, params: Argon2Params) -> str:
        used.append(params)
        return PHC_FAST

    monkeypatch.setattr(recovery, "_hash", cheap)
    made = generate_recovery_codes("u", TAG_KEY)
    assert made.user_id == "u"
    assert len(made.codes) == 10 and used == [Argon2Params()] * 10
    assert all(len(c) == 19 for c in made.codes)


def test_generated_codes_have_the_configured_shape() -> None:
    made = generate_recovery_codes(
        "u", TAG_KEY, RecoveryConfig(count=2, bits=64, group_size=0, argon2=FAST)
    )
    assert [len(c) for c in made.codes] == [13, 13]
    assert all(set(c) <= set(recovery.ALPHABET) for c in made.codes)
    assert all(len(r.id) == 16 and r.used_at is None for r in made.records)
    assert all(needs_rehash(r.phc, FAST) is False for r in made.records)
    grouped = generate_recovery_codes("u", TAG_KEY, RecoveryConfig(count=1, argon2=FAST))
    assert len(grouped.codes[0]) == 19 and grouped.codes[0].count("-") == 3
    assert "codes hidden" in str(grouped) and grouped.codes[0] not in repr(grouped)


# -- the verification cap and generation's redraws -------------------------------------------


def test_hashes_of_the_defaults_verify_under_cheaper_or_wider_configurations() -> None:
    """The cap is the configuration's parameters or the defaults, whichever cost more, per
    parameter: a hash made with the defaults still verifies after the host configures
    cheaper ones, or more lanes with less memory (a rehash is then due)."""
    made = generate_recovery_codes("u", TAG_KEY, RecoveryConfig(count=1))  # the defaults
    wide = Argon2Params(memory_kib=64, iterations=1, lanes=4, salt_bytes=8, hash_bytes=16)
    for params in (FAST, wide):
        checked = check_recovery_code(made.codes[0], "u", made.records, TAG_KEY, params)
        assert checked.reason is RecoveryReason.OK and checked.rehash_due, params
    # and a hash made with the wider one verifies under it, though it asks 4 lanes
    record = attrs.evolve(made.records[0], phc=hash_recovery_code(made.codes[0], wide))
    assert check_recovery_code(made.codes[0], "u", [record], TAG_KEY, wide).reason is (
        RecoveryReason.OK
    )


def test_generation_draws_again_on_a_repeated_record_id(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = iter(["a" * 16, "a" * 16, "b" * 16, "b" * 16, "c" * 16])
    monkeypatch.setattr(recovery.secrets, "token_hex", lambda n: next(drawn))
    made = generate_recovery_codes("u", TAG_KEY, RecoveryConfig(count=3, argon2=FAST))
    assert [r.id for r in made.records] == ["a" * 16, "b" * 16, "c" * 16]
    assert len(set(made.codes)) == 3
