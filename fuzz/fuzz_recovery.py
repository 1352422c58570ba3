"""Fuzz :func:`mfa_core.recovery.check_recovery_code` (the pure check).

A set of three codes is generated once (cheap test parameters). Each input submits a
fuzzed attempt (often a real code with separators, case changes and Unicode look-alikes
mixed in) for a fuzzed user id, against the real records or records whose PHC string is
fuzzed (tampered parameters, huge costs). Oracle: only ``MFAError``; an accepted attempt,
normalised by an independent reference (ASCII only, separators dropped, upper-cased,
O->0 and I/L->1), equals the code of the record it names; no check runs a slow hash beyond
the configured cost (the per-input time bound).
"""

from __future__ import annotations

import atheris

with atheris.instrument_imports():
    from mfa_core.errors import MFAError
    from mfa_core.recovery import (
        Argon2Params,
        RecoveryConfig,
        RecoveryRecord,
        check_recovery_code,
        generate_recovery_codes,
        lookup_tag,
    )

from _harness import main, text

TAG_KEY = b"t" * 32
FAST = Argon2Params.fast_for_testing()
SET = generate_recovery_codes("u", TAG_KEY, RecoveryConfig(count=3, argon2=FAST))
_SEPARATORS = " \t\u00a0-\u2010\u2011\u2012\u2013\u2014\u2212"
_LOOK_ALIKES = ["\u017f", "\u0131", "\ufb06", "\u212a", "O", "l", "I", "\u3000"]


def reference(attempt: str) -> str | None:
    if not attempt.isascii():
        stripped = "".join(ch for ch in attempt if ch not in _SEPARATORS)
        if not stripped.isascii():
            return None
        attempt = stripped
    canonical = "".join(ch for ch in attempt if ch not in _SEPARATORS).upper()
    return canonical.replace("O", "0").replace("I", "1").replace("L", "1")


def _attempt(fdp: atheris.FuzzedDataProvider) -> object:
    pick = fdp.ConsumeIntInRange(0, 5)
    if pick == 0:
        return text(fdp, 70)
    if pick == 1:
        return fdp.PickValueInList([None, 123, b"ABCD", ["x"]])
    code = fdp.PickValueInList(list(SET.codes))
    for _ in range(fdp.ConsumeIntInRange(0, 3)):
        where = fdp.ConsumeIntInRange(0, len(code))
        insert = fdp.PickValueInList([*_LOOK_ALIKES, *_SEPARATORS, text(fdp, 2)])
        code = code[:where] + insert + code[where:]
    return code.lower() if fdp.ConsumeBool() else code


def _records(fdp: atheris.FuzzedDataProvider, attempt: object) -> list[RecoveryRecord]:
    if not fdp.ConsumeBool():
        return list(SET.records)
    memory = fdp.PickValueInList([8, 19 * 1024, 64 * 1024, 1024 * 1024, 2**32])
    iterations = fdp.PickValueInList([1, 2, 3, 32, 2**20])
    lanes = fdp.PickValueInList([1, 2, 16, 17])
    salt = fdp.PickValueInList(["c2FsdHNhbHQ", "c2FsdHNhbHRzYWx0c2FsdA", text(fdp, 20)])
    phc = f"$argon2id$v=19$m={memory},t={iterations},p={lanes}${salt}$aGFzaGhhc2hoYXNoaGFzaA"
    if fdp.ConsumeBool():
        phc = "$argon2id$" + text(fdp, 120)
    try:
        tag = lookup_tag(TAG_KEY, "u", attempt)  # type: ignore[arg-type]
    except MFAError:
        tag = SET.records[0].tag
    return [RecoveryRecord(id="r", tag=tag, phc=phc)]


def one_input(fdp: atheris.FuzzedDataProvider) -> None:
    attempt = _attempt(fdp)
    user_id = "u" if fdp.ConsumeIntInRange(0, 3) else text(fdp, 20)
    try:
        records = _records(fdp, attempt)
        check = check_recovery_code(attempt, user_id, records, TAG_KEY, FAST)
    except MFAError:
        return
    if not check.ok:
        return
    by_id = dict(zip((r.id for r in SET.records), SET.codes, strict=True))
    if check.record_id not in by_id or user_id != "u" or not isinstance(attempt, str):
        raise AssertionError("accepted a code for a record or user it does not belong to")
    if reference(attempt) != reference(by_id[check.record_id]):
        raise AssertionError(f"accepted {attempt!r}, which the reference refuses")


if __name__ == "__main__":
    main(one_input)
