"""Fuzz the store row decoders: the SQL-family rows (``credential_from_row``,
``challenge_from_row``, ``recovery_from_row``: SQLiteStore and SQLStore) and the Redis
hash decoders (credential, challenge, recovery set), starting from good rows with one to
three columns replaced by hostile values (None, bools, NaN/inf, ``10**400``, text where a
number belongs, bytes that are not UTF-8, wrong lengths).

Oracle: only ``StoreError`` (no other ``MFAError``, no stray exception), with no chain; a
row that decodes passes an independent reference of the write rules (written here, not
the store's checks) and survives a round trip through the store's own row encoder.
"""

from __future__ import annotations

import math
from typing import Any

import atheris

with atheris.instrument_imports():
    from mfa_core.errors import StoreError
    from mfa_core.stores import _redis_protocol as rp
    from mfa_core.stores import sqlite as sqlite_store
    from mfa_core.stores._common import (
        challenge_from_row,
        credential_from_row,
        recovery_from_row,
    )

from _harness import main, number, text

PHC = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
CREDENTIAL: tuple[Any, ...] = (
    "c1", "u1", "totp", b"sealed", 1.0, "active", "SHA1", 6, 30, "phone",
    None, 2.0, 2.0, None, None, 7, 0, 3,
)  # fmt: skip
CHALLENGE: tuple[Any, ...] = (
    "ch1", "u1", "login", "email", "a***@example.com", b"h" * 32, 6,
    10.0, 190.0, 5, 0, 0, 0, 0, b"d" * 32,
)  # fmt: skip
RECOVERY: tuple[Any, ...] = ("r1", "0" * 16, PHC, None)
_MAX_TIME = 2**62


def _value(fdp: atheris.FuzzedDataProvider) -> object:
    pick = fdp.ConsumeIntInRange(0, 6)
    if pick == 0:
        return number(fdp)
    if pick == 1:
        return text(fdp, 40)
    if pick == 2:
        return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 40))
    if pick == 3:
        return fdp.PickValueInList([None, True, False, 0, -1, 2**63, "", b"", 1.5])
    if pick == 4:
        return fdp.PickValueInList(
            ["totp", "hotp", "history", "active", "pending", "expired", "SHA256"]
        )
    if pick == 5:
        return fdp.PickValueInList(["login", "sms", "email", "phone_confirmation", PHC])
    return fdp.ConsumeIntInRange(-(2**64), 2**64)


def _time_ok(value: object, optional: bool = False) -> bool:
    if value is None:
        return optional
    if type(value) is float:
        return math.isfinite(value) and 0 <= value <= _MAX_TIME
    return type(value) is int and 0 <= value <= _MAX_TIME


def _id_ok(value: object, limit: int = 1024) -> bool:
    if type(value) is not str or not 1 <= len(value) <= limit:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _credential_ok(c: Any) -> bool:
    """The write rules, restated independently."""
    times = (c.pending_until, c.confirmed_at, c.renewed_at, c.disabled_at)
    return (
        _id_ok(c.id)
        and _id_ok(c.user_id)
        and c.kind.value in ("totp", "hotp", "sms", "email", "history")
        and c.status.value in ("pending", "active", "disabled")
        and type(c.sealed_key) is bytes
        and len(c.sealed_key) > 0
        and _time_ok(c.created_at)
        and all(_time_ok(t, optional=True) for t in times)
        and type(c.digits) is int
        and 1 <= c.digits <= 16
        and type(c.period) is int
        and 1 <= c.period <= 2**31 - 1
        and type(c.last_accepted) is int
        and -1 <= c.last_accepted <= 2**63 - 1
        and type(c.drift) is int
        and -(2**63) <= c.drift <= 2**63 - 1
        and type(c.version) is int
        and 0 <= c.version <= 2**63 - 1
        and type(c.label) is str
        and (c.label == "" or _id_ok(c.label))
        and (c.replaces is None or _id_ok(c.replaces))
    )


def _challenge_ok(r: Any) -> bool:
    return (
        _id_ok(r.challenge_id, 128)
        and r.challenge_id.isascii()
        and _id_ok(r.user_id, 256)
        and type(r.code_hash) is bytes
        and len(r.code_hash) == 32
        and (r.destination_hash is None or len(r.destination_hash) == 32)
        and 6 <= r.digits <= 8
        and _time_ok(r.issued_at)
        and r.issued_at < r.expires_at <= r.issued_at + 600
        and 1 <= r.max_attempts <= 20
        and 0 <= r.attempts <= 20
        and type(r.used) is bool
    )


def _recovery_ok(r: Any) -> bool:
    return (
        _id_ok(r.id, 128)
        and type(r.phc) is str
        and r.phc.startswith("$argon2id$")
        and len(r.phc) <= 512
        and r.phc.isascii()
        and _time_ok(r.used_at, optional=True)
    )


def _mutated(fdp: atheris.FuzzedDataProvider, row: tuple[Any, ...]) -> tuple[Any, ...]:
    values = list(row)
    for _ in range(fdp.ConsumeIntInRange(1, 3)):
        values[fdp.ConsumeIntInRange(0, len(values) - 1)] = _value(fdp)
    if fdp.ConsumeIntInRange(0, 15) == 0:
        values = values[: fdp.ConsumeIntInRange(0, len(values))]
    return tuple(values)


def _redis_fields(row: tuple[Any, ...], names: tuple[str, ...]) -> dict[bytes, bytes]:
    fields = {}
    for name, value in zip(names, row, strict=False):
        if value is None:
            continue
        if isinstance(value, bytes):
            fields[name.encode()] = value
        elif isinstance(value, str):
            fields[name.encode()] = value.encode("utf-8", "surrogatepass")
        elif type(value) is bool:
            fields[name.encode()] = b"1" if value else b"0"
        else:
            fields[name.encode()] = repr(value).encode("ascii")
    return fields


_CREDENTIAL_NAMES = (
    "id", "user_id", "kind", "sealed_key", "created_at", "status", "algorithm", "digits",
    "period", "label", "pending_until", "confirmed_at", "renewed_at", "replaces",
    "disabled_at", "last_accepted", "drift", "version",
)  # fmt: skip
_CHALLENGE_NAMES = (
    "challenge_id", "user_id", "purpose", "channel", "destination_hint", "code_hash",
    "digits", "issued_at", "expires_at", "max_attempts", "attempts", "resend_count",
    "generation", "used", "destination_hash",
)  # fmt: skip


def _decode(decode: Any, *args: Any) -> Any:
    try:
        return decode(*args)
    except StoreError as exc:
        if exc.__cause__ is not None or exc.__context__ is not None:
            raise AssertionError("a StoreError of a decoder carries a chain") from None
        return None


def _sql_row(fdp: atheris.FuzzedDataProvider, kind: int) -> None:
    """A mutated credential (kind 0) or challenge (kind 1) row: refused, or a value the
    write rules accept that survives the store's row encoder (secret fields included)."""
    template, decode, ok, encode, hidden = (
        (CREDENTIAL, credential_from_row, _credential_ok, sqlite_store._to_row, "sealed_key"),
        (CHALLENGE, challenge_from_row, _challenge_ok, sqlite_store._oob_row, "destination_hash"),
    )[kind]
    row = _mutated(fdp, template)
    value = _decode(decode, row, "SQLite")
    if value is None:
        return
    if not ok(value):
        raise AssertionError(f"decoded a row the write rules refuse: {row!r}")
    again = decode(encode(value), "SQLite")
    if again != value or getattr(again, hidden) != getattr(value, hidden):
        raise AssertionError("a decoded row does not round-trip")


def one_input(fdp: atheris.FuzzedDataProvider) -> None:
    which = fdp.ConsumeIntInRange(0, 5)
    if which in (0, 1):
        _sql_row(fdp, which)
    elif which == 2:
        row = _mutated(fdp, RECOVERY)
        record = _decode(recovery_from_row, row, "SQL")
        if record is not None and not _recovery_ok(record):
            raise AssertionError(f"decoded a recovery code the write rules refuse: {row!r}")
    elif which == 3:
        fields = _redis_fields(_mutated(fdp, CREDENTIAL), _CREDENTIAL_NAMES)
        reply = [item for pair in fields.items() for item in pair]
        credential = _decode(rp.decode_get, reply)
        if credential is not None and not _credential_ok(credential):
            raise AssertionError(f"decoded a Redis credential the write rules refuse: {fields!r}")
    elif which == 4:
        fields = _redis_fields(_mutated(fdp, CHALLENGE), _CHALLENGE_NAMES)
        challenge_id = fields.pop(b"challenge_id", b"ch1").decode("utf-8", "replace")
        record = _decode(rp.decode_get_challenge, challenge_id, fields)
        if record is not None and not _challenge_ok(record):
            raise AssertionError(f"decoded a Redis challenge the write rules refuse: {fields!r}")
    else:
        value = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 120))
        if fdp.ConsumeBool():
            value = b"0:" + b"0" * 16 + b":" + PHC.encode() + value[:8]
        used = {b"r1": fdp.ConsumeBytes(12)} if fdp.ConsumeBool() else {}
        records = _decode(rp.decode_recovery_codes, [{b"r1": value}, used])
        for record in records or ():
            if not _recovery_ok(record):
                raise AssertionError(f"decoded a Redis recovery code the rules refuse: {value!r}")


if __name__ == "__main__":
    main(one_input)
