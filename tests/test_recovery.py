"""Recovery codes: configuration, generation, normalisation, tags, checking, hashing."""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from typing import Any, ClassVar

import argon2
import attrs
import pytest
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mfa_core import recovery
from mfa_core.errors import ErrorCode, InvalidKey, InvalidParameter, MFAError
from mfa_core.recovery import (
    ALPHABET,
    MAX_CODE_CHARS,
    MIN_CODE_CHARS,
    USER_MESSAGE,
    Argon2Params,
    RecoveryCheck,
    RecoveryCodeSet,
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

TAG_KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
FAST = Argon2Params.fast_for_testing()
FAST_CONFIG = RecoveryConfig(argon2=FAST)
USER = "user-42"
SEPARATORS = [" ", "-", "\t", "\u00a0", "\u2013", "\u2212"]
LOOK_ALIKES = {"0": "oO", "1": "iIlL"}

code_strategy = st.text(alphabet=ALPHABET, min_size=16, max_size=16)


def _set(config: RecoveryConfig = FAST_CONFIG, user: str = USER) -> RecoveryCodeSet:
    return generate_recovery_codes(user, TAG_KEY, config)


@pytest.fixture(scope="module")
def code_set() -> RecoveryCodeSet:
    return _set()


# --- configuration ---------------------------------------------------------------------


def test_defaults_follow_the_issue() -> None:
    config = RecoveryConfig()
    assert config.count == 10
    assert config.bits == 80
    assert config.length == 16
    assert config.mode is RecoveryMode.CODES
    assert config.argon2 == Argon2Params(
        memory_kib=19456, iterations=2, lanes=1, salt_bytes=16, hash_bytes=32
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"count": 0},
        {"count": 51},
        {"count": True},
        {"count": "10"},
        {"bits": 63},
        {"bits": 257},
        {"bits": 80.0},
        {"group_size": 1},
        {"group_size": 9},
        {"group_size": -1},
        {"low_threshold": 51},
        {"low_threshold": -1},
        {"mode": "codes"},
        {"argon2": {"memory_kib": 8}},
        {"mode": RecoveryMode.KEY, "count": 2, "bits": 160},
        {"mode": RecoveryMode.KEY, "count": 1, "bits": 127, "low_threshold": 0},
    ],
)
def test_bad_config_raises_typed_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidParameter) as info:
        RecoveryConfig(**kwargs)
    assert info.value.code is ErrorCode.INVALID_PARAMETER


@pytest.mark.parametrize(
    "kwargs",
    [
        {"memory_kib": 7},
        {"memory_kib": 15, "lanes": 2},
        {"memory_kib": 1024 * 1024 + 1},
        {"iterations": 0},
        {"iterations": 33},
        {"lanes": 0},
        {"lanes": 17},
        {"salt_bytes": 7},
        {"salt_bytes": 65},
        {"hash_bytes": 15},
        {"hash_bytes": 65},
        {"iterations": 2.0},
    ],
)
def test_bad_argon2_params_raise_typed_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidParameter):
        Argon2Params(**kwargs)


def test_validation_survives_disabled_attrs_validators() -> None:
    with attrs.validators.disabled():
        with pytest.raises(InvalidParameter):
            RecoveryConfig(count=0)
        with pytest.raises(InvalidParameter):
            Argon2Params(iterations=0)


def test_running_low_threshold() -> None:
    config = RecoveryConfig(low_threshold=3, argon2=FAST)
    assert not config.running_low(4)
    assert config.running_low(3)
    assert config.running_low(0)


# --- generation ------------------------------------------------------------------------


def test_generated_set_shape(code_set: RecoveryCodeSet) -> None:
    assert len(code_set.codes) == len(code_set.records) == 10
    for code in code_set.codes:
        assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}", code)
    assert len(set(code_set.codes)) == 10
    assert len({r.tag for r in code_set.records}) == 10
    assert len({r.id for r in code_set.records}) == 10
    for code, record in zip(code_set.codes, code_set.records, strict=True):
        assert record.tag == lookup_tag(TAG_KEY, USER, code)
        assert re.fullmatch(r"[0-9a-f]{16}", record.tag)
        assert record.phc.startswith("$argon2id$v=19$m=8,t=1,p=1$")
        assert not record.used


def test_codes_use_the_whole_alphabet() -> None:
    # 50 codes x 16 characters: a missing symbol (a biased or truncated alphabet) would
    # show; with a uniform draw the chance any of 32 symbols is absent is about 1e-10.
    codes = _set(RecoveryConfig(count=50, argon2=FAST)).codes
    seen = set("".join(codes).replace("-", ""))
    assert seen == set(ALPHABET)


def test_recovery_key_mode() -> None:
    config = RecoveryConfig.recovery_key(argon2=FAST)
    assert config.mode is RecoveryMode.KEY
    assert config.count == 1
    assert config.length == 32
    key_set = _set(config)
    assert len(key_set.codes) == 1
    assert re.fullmatch(r"([0-9A-Z]{4}-){7}[0-9A-Z]{4}", key_set.codes[0])
    result = check_recovery_code(key_set.codes[0], USER, key_set.records, TAG_KEY)
    assert result.ok


@pytest.mark.parametrize(("bits", "length"), [(64, 13), (65, 13), (66, 14), (128, 26)])
def test_length_covers_the_requested_bits(bits: int, length: int) -> None:
    config = RecoveryConfig(bits=bits, count=2, group_size=0, argon2=FAST)
    assert config.length == length
    codes = _set(config).codes
    assert all(len(code) == length and "-" not in code for code in codes)


def test_group_size_changes_display_only() -> None:
    config = RecoveryConfig(count=1, group_size=5, argon2=FAST)
    generated = _set(config)
    assert re.fullmatch(r"\w{5}-\w{5}-\w{5}-\w", generated.codes[0])
    assert check_recovery_code(generated.codes[0], USER, generated.records, TAG_KEY).ok


def test_generation_rejects_bad_input() -> None:
    with pytest.raises(InvalidKey):
        generate_recovery_codes(USER, b"short", FAST_CONFIG)
    with pytest.raises(InvalidKey):
        generate_recovery_codes(USER, "a string key" * 4, FAST_CONFIG)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter):
        generate_recovery_codes("", TAG_KEY, FAST_CONFIG)
    with pytest.raises(InvalidParameter):
        generate_recovery_codes(42, TAG_KEY, FAST_CONFIG)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter):
        generate_recovery_codes(USER, TAG_KEY, {"count": 3})  # type: ignore[arg-type]


def test_generation_redraws_a_repeated_tag(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = iter(["A" * 16, "A" * 16, "B" * 16])
    monkeypatch.setattr(recovery, "_random_code", lambda length: next(drawn))
    generated = _set(RecoveryConfig(count=2, argon2=FAST))
    assert [c.replace("-", "") for c in generated.codes] == ["A" * 16, "B" * 16]


# --- argon2-cffi interoperability ------------------------------------------------------


def test_default_hashes_verify_with_argon2_cffi() -> None:
    generated = _set(RecoveryConfig(count=2))
    hasher = argon2.PasswordHasher()
    for code, record in zip(generated.codes, generated.records, strict=True):
        assert record.phc.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
        assert hasher.verify(record.phc, normalize_recovery_code(code) or "")
        owasp = argon2.PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
        assert not owasp.check_needs_rehash(record.phc)
        with pytest.raises(argon2.exceptions.VerifyMismatchError):
            hasher.verify(record.phc, "0" * 16)


def test_argon2_cffi_hashes_are_checked_by_us() -> None:
    code = "ABCD0123EFGH4567"
    phc = argon2.PasswordHasher(time_cost=1, memory_cost=64, parallelism=1).hash(code)
    record = RecoveryRecord(id="r1", tag=lookup_tag(TAG_KEY, USER, code), phc=phc)
    assert check_recovery_code("abcd-o123-efgh-4567", USER, [record], TAG_KEY).ok
    assert needs_rehash(phc, FAST)
    assert not needs_rehash(
        phc, Argon2Params(memory_kib=64, iterations=1, salt_bytes=16, hash_bytes=32)
    )


@pytest.mark.parametrize(
    "changed",
    [
        {"memory_kib": 16},
        {"iterations": 2},
        {"lanes": 2, "memory_kib": 16},
        {"salt_bytes": 16},
        {"hash_bytes": 32},
    ],
)
def test_needs_rehash_agrees_with_argon2_cffi(changed: dict[str, int]) -> None:
    phc = hash_recovery_code("ABCD0123EFGH4567", FAST)
    assert not needs_rehash(phc, FAST)
    target = attrs.evolve(FAST, **changed)
    assert needs_rehash(phc, target)
    cffi = argon2.PasswordHasher(
        time_cost=target.iterations,
        memory_cost=target.memory_kib,
        parallelism=target.lanes,
        hash_len=target.hash_bytes,
        salt_len=target.salt_bytes,
    )
    assert cffi.check_needs_rehash(phc)


@pytest.mark.parametrize(
    "phc",
    [
        "",
        "not a hash",
        "$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        "$argon2id$v=16$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        "$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        "$argon2id$v=19$m=8,t=1,p=1$c2Fs$aGFzaGhhc2hoYXNoaGFzaA",
        "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA",
        "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA",
        "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA$extra",
        "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHR$aGFzaGhhc2hoYXNoaGFzaA",
        "x" * 10_000,
        None,
    ],
)
def test_needs_rehash_rejects_malformed_phc(phc: object) -> None:
    with pytest.raises(InvalidParameter):
        needs_rehash(phc, FAST)  # type: ignore[arg-type]


def test_needs_rehash_rejects_bad_params() -> None:
    with pytest.raises(InvalidParameter):
        needs_rehash(hash_recovery_code("ABCD0123EFGH4567", FAST), {"m": 8})  # type: ignore[arg-type]


# --- normalisation ---------------------------------------------------------------------


@given(st.text(max_size=80))
def test_normalisation_is_idempotent(text: str) -> None:
    once = normalize_recovery_code(text)
    if once is not None:
        assert normalize_recovery_code(once) == once
        assert set(once) <= set(ALPHABET)
        assert MIN_CODE_CHARS <= len(once) <= MAX_CODE_CHARS


@given(st.data())
@settings(max_examples=100)
def test_variants_of_a_code_normalise_to_it(data: st.DataObject) -> None:
    canonical = data.draw(code_strategy)
    chars = []
    for original in canonical:
        typed = original
        if original in LOOK_ALIKES and data.draw(st.booleans()):
            typed = data.draw(st.sampled_from(LOOK_ALIKES[original]))
        elif data.draw(st.booleans()):
            typed = original.lower()
        chars.append(typed)
        if data.draw(st.booleans()):
            chars.append(data.draw(st.sampled_from(SEPARATORS)))
    variant = data.draw(st.sampled_from(SEPARATORS)) + "".join(chars)
    assert normalize_recovery_code(variant) == canonical
    assert normalize_recovery_code(format_recovery_code(canonical)) == canonical


@given(
    code_strategy,
    st.integers(min_value=0, max_value=15),
    st.characters().filter(
        lambda ch: ch.upper() not in ALPHABET + "OIL" and ch not in "".join(SEPARATORS)
    ),
)
def test_a_foreign_character_makes_a_code_malformed(canonical: str, at: int, ch: str) -> None:
    text = canonical[:at] + ch + canonical[at:]
    if ch in " \r\n\u202f\u2010\u2011\u2012\u2014":  # the other accepted separators
        assert normalize_recovery_code(text) == canonical
    else:
        assert normalize_recovery_code(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "ABCD-EFGH-JKMN-PQRU",  # U is not in the alphabet
        "\u0410BCD-EFGH-JKMN-PQRS",  # Cyrillic A
        "\u0131BCD-EFGH-JKMN-PQRS",  # dotless i, whose upper case is ASCII I
        "\u017fBCD-EFGH-JKMN-PQRS",  # long s, whose upper case is ASCII S
        "\uff21BCD-EFGH-JKMN-PQRS",  # full-width A
        "ABCD_EFGH_JKMN_PQRS",
        "A" * 12,
        "A" * 53,
        "A" * 1000,
        "",
        "----",
    ],
)
def test_malformed_codes(text: str) -> None:
    assert normalize_recovery_code(text) is None


@pytest.mark.parametrize("value", [None, 1234567890123456, b"ABCDEFGHJKMNPQRS", ["A"] * 16])
def test_non_strings_are_malformed(value: object) -> None:
    assert normalize_recovery_code(value) is None


def test_length_bounds() -> None:
    assert normalize_recovery_code("A" * MIN_CODE_CHARS) == "A" * MIN_CODE_CHARS
    assert normalize_recovery_code("A" * MAX_CODE_CHARS) == "A" * MAX_CODE_CHARS


def test_look_alikes_map() -> None:
    assert normalize_recovery_code("oOiIlL abcd efgh jk") == "001111ABCDEFGHJK"


def test_format_recovery_code() -> None:
    assert format_recovery_code("abcdefghjkmnpqrs") == "ABCD-EFGH-JKMN-PQRS"
    assert format_recovery_code("ABCDEFGHJKMNPQRS", 0) == "ABCDEFGHJKMNPQRS"
    assert format_recovery_code("ABCDEFGHJKMNP", 5) == "ABCDE-FGHJK-MNP"
    with pytest.raises(InvalidParameter) as info:
        format_recovery_code("SECRETU-NOT-VALID")
    assert info.value.code is ErrorCode.INVALID_CODE
    assert "SECRET" not in str(info.value)
    with pytest.raises(InvalidParameter):
        format_recovery_code("ABCDEFGHJKMNPQRS", -1)


# --- lookup tags and selection ---------------------------------------------------------


def test_lookup_tag_is_keyed_and_bound_to_the_user() -> None:
    code = "ABCD-EFGH-JKMN-PQRS"
    tag = lookup_tag(TAG_KEY, USER, code)
    assert tag == lookup_tag(TAG_KEY, USER, "abcdefghjkmnpqrs")
    assert re.fullmatch(r"[0-9a-f]{16}", tag)
    assert tag != lookup_tag(OTHER_KEY, USER, code)
    assert tag != lookup_tag(TAG_KEY, "user-43", code)
    # Length-prefixing keeps (user, code) pairs apart that concatenate alike.
    assert lookup_tag(TAG_KEY, "u1", "ABCDEFGHJKMNP") != lookup_tag(TAG_KEY, "u", "1ABCDEFGHJKMNP")


def test_lookup_tag_rejects_bad_input() -> None:
    with pytest.raises(InvalidKey):
        lookup_tag(b"x" * 15, USER, "ABCDEFGHJKMNPQRS")
    with pytest.raises(InvalidParameter) as info:
        lookup_tag(TAG_KEY, USER, "SECRETCODE-U")
    assert "SECRETCODE" not in repr(info.value)
    with pytest.raises(InvalidParameter):
        lookup_tag(TAG_KEY, "x" * 257, "ABCDEFGHJKMNPQRS")


def _record(record_id: str, tag: str, used_at: float | None = None) -> RecoveryRecord:
    return RecoveryRecord(
        id=record_id, tag=tag, phc="$argon2id$v=19$m=8,t=1,p=1$x$y", used_at=used_at
    )


@given(st.lists(st.binary(min_size=8, max_size=8), min_size=1, max_size=20, unique=True))
def test_select_by_tag_finds_exactly_the_record(raw_tags: list[bytes]) -> None:
    records = [_record(f"r{i}", t.hex()) for i, t in enumerate(raw_tags)]
    for record in records:
        assert select_by_tag(record.tag, records) is record
    missing = bytes(b ^ 0xFF for b in raw_tags[0]).hex()
    if missing not in {r.tag for r in records}:
        assert select_by_tag(missing, records) is None


def test_select_by_tag_prefers_an_unused_record() -> None:
    tag = "00" * 8
    used = _record("used", tag, used_at=10.0)
    fresh = _record("fresh", tag)
    assert select_by_tag(tag, [used, fresh]) is fresh
    assert select_by_tag(tag, [fresh, used]) is fresh
    assert select_by_tag(tag, [used]) is used
    assert select_by_tag(tag, []) is None


def test_select_by_tag_rejects_bad_input() -> None:
    with pytest.raises(InvalidParameter):
        select_by_tag(None, [])  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter):
        select_by_tag("00" * 8, "not records")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter):
        select_by_tag("00" * 8, [object()])  # type: ignore[list-item]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"id": ""},
        {"id": 7},
        {"tag": "00" * 7},
        {"tag": "AA" * 8},
        {"tag": None},
        {"phc": "$2b$12$bcrypt"},
        {"phc": None},
        {"used_at": -1.0},
        {"used_at": float("nan")},
        {"used_at": "yesterday"},
        {"used_at": True},
    ],
)
def test_record_rejects_bad_fields(kwargs: dict[str, Any]) -> None:
    fields: dict[str, Any] = {"id": "r1", "tag": "00" * 8, "phc": "$argon2id$v=19$"}
    fields.update(kwargs)
    with pytest.raises(InvalidParameter):
        RecoveryRecord(**fields)


def test_count_unused() -> None:
    records = [_record("a", "00" * 8), _record("b", "11" * 8, used_at=5), _record("c", "22" * 8)]
    assert count_unused(records) == 2
    assert count_unused([]) == 0


# --- checking --------------------------------------------------------------------------


class _CountingArgon2id:
    """Stands in for cryptography's Argon2id in recovery and counts slow verifications."""

    real: ClassVar[Any] = Argon2id
    verifications: ClassVar[int] = 0

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        return cls.real(*args, **kwargs)

    @classmethod
    def verify_phc_encoded(cls, key_material: bytes, phc: str) -> None:
        cls.verifications += 1
        cls.real.verify_phc_encoded(key_material, phc)


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> type[_CountingArgon2id]:
    _CountingArgon2id.verifications = 0
    monkeypatch.setattr(recovery, "Argon2id", _CountingArgon2id)
    return _CountingArgon2id


def test_every_code_of_the_set_is_accepted(
    code_set: RecoveryCodeSet, counting: type[_CountingArgon2id]
) -> None:
    for code, record in zip(code_set.codes, code_set.records, strict=True):
        result = check_recovery_code(code, USER, code_set.records, TAG_KEY, FAST)
        assert result == RecoveryCheck(
            RecoveryReason.OK, record_id=record.id, rehash_due=False, slow_hash=True
        )
        assert result.ok
        assert result.message == ""
    assert counting.verifications == len(code_set.codes)


def test_a_wrong_guess_costs_no_slow_hash(
    code_set: RecoveryCodeSet, counting: type[_CountingArgon2id]
) -> None:
    guess = "ZZZZ-ZZZZ-ZZZZ-ZZZZ"
    assert guess not in code_set.codes
    result = check_recovery_code(guess, USER, code_set.records, TAG_KEY)
    assert result.reason is RecoveryReason.NO_MATCH
    assert not result.ok
    assert not result.slow_hash
    assert result.message == USER_MESSAGE
    assert counting.verifications == 0


@given(code_strategy)
@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_code_outside_the_set_fails(code_set: RecoveryCodeSet, candidate: str) -> None:
    if format_recovery_code(candidate) in code_set.codes:
        return
    result = check_recovery_code(candidate, USER, code_set.records, TAG_KEY)
    assert not result.ok
    assert result.reason is RecoveryReason.NO_MATCH
    assert result.record_id is None


def test_code_of_another_user_or_key_does_not_match(code_set: RecoveryCodeSet) -> None:
    code = code_set.codes[0]
    assert check_recovery_code(code, "user-43", code_set.records, TAG_KEY).reason is (
        RecoveryReason.NO_MATCH
    )
    assert check_recovery_code(code, USER, code_set.records, OTHER_KEY).reason is (
        RecoveryReason.NO_MATCH
    )


def test_typed_variants_are_accepted(code_set: RecoveryCodeSet) -> None:
    code = code_set.codes[3]
    typed = f"  {code.lower().replace('-', ' ').replace('0', 'o').replace('1', 'l')} "
    result = check_recovery_code(typed, USER, code_set.records, TAG_KEY)
    assert result.ok
    assert result.record_id == code_set.records[3].id


@pytest.mark.parametrize("attempt", ["", "ABCD", "ABCD-EFGH-JKMN-PQRU", None, 12345, "\u0410" * 16])
def test_malformed_attempts_cost_no_hash(
    code_set: RecoveryCodeSet, counting: type[_CountingArgon2id], attempt: object
) -> None:
    result = check_recovery_code(attempt, USER, code_set.records, TAG_KEY)
    assert result.reason is RecoveryReason.MALFORMED
    assert counting.verifications == 0


def test_a_used_code_is_refused(
    code_set: RecoveryCodeSet, counting: type[_CountingArgon2id]
) -> None:
    records = list(code_set.records)
    records[2] = attrs.evolve(records[2], used_at=1_700_000_000.0)
    result = check_recovery_code(code_set.codes[2], USER, records, TAG_KEY)
    assert result.reason is RecoveryReason.ALREADY_USED
    assert result.record_id == records[2].id
    assert not result.ok
    assert counting.verifications == 1
    # The other codes still work.
    assert check_recovery_code(code_set.codes[1], USER, records, TAG_KEY).ok


def test_tag_collision_with_wrong_hash_is_wrong_code(
    code_set: RecoveryCodeSet, counting: type[_CountingArgon2id]
) -> None:
    # A record whose tag matches the attempt but whose hash is of another code: what a
    # 64-bit tag collision (or a tampered row) looks like. One slow hash, then refused.
    attempt = "ZZZZ-ZZZZ-ZZZZ-ZZZZ"
    forged = attrs.evolve(code_set.records[0], tag=lookup_tag(TAG_KEY, USER, attempt))
    result = check_recovery_code(attempt, USER, [forged, *code_set.records[1:]], TAG_KEY)
    assert result.reason is RecoveryReason.WRONG_CODE
    assert result.slow_hash
    assert counting.verifications == 1


def test_duplicate_tags_still_cost_one_hash(counting: type[_CountingArgon2id]) -> None:
    code = "ABCD-EFGH-JKMN-PQRS"
    tag = lookup_tag(TAG_KEY, USER, code)
    others = [
        RecoveryRecord(id=f"d{i}", tag=tag, phc=hash_recovery_code("Z" * 16, FAST))
        for i in range(5)
    ]
    result = check_recovery_code(code, USER, others, TAG_KEY)
    assert result.reason is RecoveryReason.WRONG_CODE
    assert counting.verifications == 1


def test_outdated_parameters_ask_for_a_rehash(code_set: RecoveryCodeSet) -> None:
    code = code_set.codes[0]
    stronger = Argon2Params(memory_kib=16, iterations=2, salt_bytes=8, hash_bytes=16)
    assert check_recovery_code(code, USER, code_set.records, TAG_KEY, stronger).rehash_due
    assert not check_recovery_code(code, USER, code_set.records, TAG_KEY, FAST).rehash_due
    assert not check_recovery_code(code, USER, code_set.records, TAG_KEY).rehash_due


def test_corrupt_stored_hash_fails_closed(code_set: RecoveryCodeSet) -> None:
    broken = attrs.evolve(code_set.records[0], phc="$argon2id$v=19$m=8,t=1,p=1$!!$??")
    with pytest.raises(InvalidParameter):
        check_recovery_code(code_set.codes[0], USER, [broken], TAG_KEY)


def test_check_rejects_bad_input(code_set: RecoveryCodeSet) -> None:
    code = code_set.codes[0]
    with pytest.raises(InvalidKey):
        check_recovery_code(code, USER, code_set.records, b"short")
    with pytest.raises(InvalidParameter):
        check_recovery_code(code, "", code_set.records, TAG_KEY)
    with pytest.raises(InvalidParameter):
        check_recovery_code(code, USER, None, TAG_KEY)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter):
        check_recovery_code(code, USER, [code], TAG_KEY)  # type: ignore[list-item]
    with pytest.raises(InvalidParameter):
        check_recovery_code(code, USER, code_set.records, TAG_KEY, "fast")  # type: ignore[arg-type]


def test_hash_recovery_code() -> None:
    phc = hash_recovery_code("abcd-efgh-jkmn-pqrs", FAST)
    assert argon2.PasswordHasher().verify(phc, "ABCDEFGHJKMNPQRS")
    assert phc != hash_recovery_code("ABCDEFGHJKMNPQRS", FAST)  # fresh salt each time
    with pytest.raises(InvalidParameter):
        hash_recovery_code("nope", FAST)
    with pytest.raises(InvalidParameter):
        hash_recovery_code("ABCDEFGHJKMNPQRS", "fast")  # type: ignore[arg-type]


# --- secrets never leak ----------------------------------------------------------------


def test_no_code_in_repr_or_str(code_set: RecoveryCodeSet) -> None:
    texts = [repr(code_set), str(code_set), *(repr(r) for r in code_set.records)]
    for code in code_set.codes[:3]:
        result = check_recovery_code(code, USER, code_set.records, TAG_KEY)
        texts += [repr(result), str(result), result.message]
    texts += [repr(FAST_CONFIG), repr(FAST)]
    joined = "\n".join(texts)
    for code in code_set.codes:
        assert code not in joined
        assert code.replace("-", "") not in joined
        assert code.replace("-", "").lower() not in joined
    for record in code_set.records:
        assert record.phc not in joined
        assert record.tag not in joined


def test_code_set_equality_ignores_codes(code_set: RecoveryCodeSet) -> None:
    clone = attrs.evolve(code_set, codes=tuple("X" for _ in code_set.codes))
    assert clone == code_set


@given(st.text(alphabet=string.ascii_letters + string.digits + "-", min_size=1, max_size=40))
@settings(max_examples=60)
def test_errors_never_repeat_the_submitted_code(body: str) -> None:
    # "QZ...U" is always invalid (U is not in the alphabet) and never part of a message.
    text = f"QZ{body}U"
    calls: list[Callable[[], object]] = [
        lambda: format_recovery_code(text),
        lambda: lookup_tag(TAG_KEY, USER, text),
        lambda: hash_recovery_code(text, FAST),
    ]
    for call in calls:
        with pytest.raises(MFAError) as info:
            call()
        assert info.value.code is ErrorCode.INVALID_CODE
        for shown in (str(info.value), repr(info.value)):
            assert text not in shown
            assert "QZ" not in shown.upper()
