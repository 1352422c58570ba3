"""Checking one recovery-code attempt: keyed tag + one Argon2id vs a linear Argon2id scan.

Both sides check the same stored set (default 10 codes, same Argon2id parameters, same
PHC strings, same cryptography Argon2id implementation):

* mfa_core: ``check_recovery_code`` (normalise, HMAC lookup tag, select the record, then
  at most one Argon2id verification);
* linear scan: what devise-two-factor / GitLab do with their per-code bcrypt hashes, here
  with Argon2id: verify the attempt against each stored hash in turn until one matches.

Cases: a correct code that is last in the set (the scan's worst case for a hit) and a
wrong code (every scan pays for the whole set). Prints the median ms per check and the
ratio scan / mfa_core.

Run: ``.venv/bin/python benchmarks/bench_recovery.py`` (``--help`` for options).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable, Sequence

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from mfa_core.recovery import (
    Argon2Params,
    RecoveryConfig,
    RecoveryReason,
    RecoveryRecord,
    check_recovery_code,
    generate_recovery_codes,
    normalize_recovery_code,
)

TAG_KEY = bytes(range(32))
USER = "bench-user"
WRONG = "ZZZZ-ZZZZ-ZZZZ-ZZZZ"


def linear_scan(attempt: str, records: Sequence[RecoveryRecord]) -> str | None:
    """Verify ``attempt`` against each unused stored hash in turn; return the matching id."""
    canonical = normalize_recovery_code(attempt)
    if canonical is None:
        return None
    material = canonical.encode("ascii")
    for record in records:
        if record.used:
            continue
        try:
            Argon2id.verify_phc_encoded(material, record.phc)
        except InvalidKey:
            continue
        return record.id
    return None


def median_ms(func: Callable[[], object], repeat: int, number: int) -> float:
    """Median over ``repeat`` runs of the mean time of ``number`` calls, in milliseconds."""
    func()  # warm up
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            func()
        runs.append((time.perf_counter() - start) / number)
    return statistics.median(runs) * 1000


def main() -> None:
    """Run the comparison and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10, help="codes in the set (10)")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per case (7)")
    parser.add_argument("--memory-kib", type=int, default=19456, help="Argon2id m (19456)")
    parser.add_argument("--iterations", type=int, default=2, help="Argon2id t (2)")
    parser.add_argument("--lanes", type=int, default=1, help="Argon2id p (1)")
    args = parser.parse_args()

    params = Argon2Params(memory_kib=args.memory_kib, iterations=args.iterations, lanes=args.lanes)
    config = RecoveryConfig(count=args.count, low_threshold=0, argon2=params)
    generated = generate_recovery_codes(USER, TAG_KEY, config)
    records = generated.records
    last = generated.codes[-1]

    # Both sides must agree before they are timed.
    assert check_recovery_code(last, USER, records, TAG_KEY).record_id == records[-1].id
    assert linear_scan(last, records) == records[-1].id
    assert check_recovery_code(WRONG, USER, records, TAG_KEY).reason is RecoveryReason.NO_MATCH
    assert linear_scan(WRONG, records) is None

    cases = {
        "correct code (last of set)": last,
        "wrong code": WRONG,
    }
    print(
        f"recovery check, {args.count} stored codes, Argon2id m={params.memory_kib} KiB "
        f"t={params.iterations} p={params.lanes}; median of {args.repeat} runs"
    )
    print(f"{'case':<28} {'mfa_core ms/op':>15} {'linear scan ms/op':>18} {'scan/mfa_core':>14}")
    for name, attempt in cases.items():
        ours = median_ms(
            functools.partial(check_recovery_code, attempt, USER, records, TAG_KEY),
            args.repeat,
            200 if attempt == WRONG else 3,
        )
        scan = median_ms(functools.partial(linear_scan, attempt, records), args.repeat, 1)
        print(f"{name:<28} {ours:>15.4f} {scan:>18.2f} {scan / ours:>13.1f}x")


if __name__ == "__main__":
    main()
