"""WebAuthn verification cost beside a TOTP verify, in one process, interleaved.

Run from the repository root::

    .venv/bin/python benchmarks/bench_webauthn.py            # about 15 s
    .venv/bin/python benchmarks/bench_webauthn.py --quick    # about 2 s

Cases (each starts from what a request brings and what the store holds, the store being
left out so that the figures are the CPU cost of the check):

* ``totp verify, window ±1`` - :func:`mfa_core.verify_totp` of a valid code;
* ``registration verify (none / packed, ES256 / EdDSA)`` - parse the
  ``RegistrationResponseJSON``, mfa_core's checks, then py_webauthn's verification of the
  attestation (:func:`mfa_core.webauthn.check_registration`);
* ``authentication verify (ES256 / EdDSA)`` - parse the ``AuthenticationResponseJSON``,
  mfa_core's checks, py_webauthn's signature verification and the counter rule
  (:func:`mfa_core.webauthn.check_authentication`);
* ``service finish_webauthn_authentication (memory store)`` - the whole flow: admission,
  challenge consume, credential read, checks, counter compare-and-set, reset.

Each case is timed as ``--loops`` calls in a row, rounds of all cases interleaved,
``--repeats`` times; the best round counts. Prints µs per operation and the ratio to the
TOTP verify.
"""

from __future__ import annotations

import argparse
import gc
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

import cryptography
import webauthn as py_webauthn

import mfa_core
from mfa_core import totp, verify_totp
from mfa_core.sealing import AESGCMSealer
from mfa_core.service import MFAService, ServiceConfig
from mfa_core.stores import MemoryStore
from mfa_core.testing import FakeClock
from mfa_core.testing.authenticator import SoftwareAuthenticator
from mfa_core.throttle import ThrottleConfig
from mfa_core.webauthn import (
    Ceremony,
    WebAuthnConfig,
    WebAuthnCredential,
    authentication_options,
    check_authentication,
    check_registration,
    new_challenge,
    parse_authentication_response,
    parse_registration_response,
    registration_options,
)

KEY = bytes.fromhex("3132333435363738393031323334353637383930")
NOW = 1_700_000_015
ORIGIN = "http://localhost:8000"
CONFIG = WebAuthnConfig(rp_id="localhost", rp_name="Bench", origins=[ORIGIN])
HANDLE = "aGFuZGxlLWJlbmNo"

Op = Callable[[], Any]


def _registration(algorithm: int, attestation: str) -> Op:
    challenge, record = new_challenge(CONFIG, Ceremony.REGISTRATION, "u", NOW, user_handle=HANDLE)
    options = registration_options(
        CONFIG, challenge=challenge, user_handle=HANDLE, user_name="u", display_name="u"
    )
    response = SoftwareAuthenticator().create(
        options, ORIGIN, algorithm=algorithm, attestation=attestation
    )
    return lambda: check_registration(CONFIG, parse_registration_response(response), record)


def _authentication(algorithm: int) -> Op:
    key = SoftwareAuthenticator(counter="zero")
    challenge, record = new_challenge(CONFIG, Ceremony.REGISTRATION, "u", NOW, user_handle=HANDLE)
    options = registration_options(
        CONFIG, challenge=challenge, user_handle=HANDLE, user_name="u", display_name="u"
    )
    created = key.create(options, ORIGIN, algorithm=algorithm)
    registered = check_registration(CONFIG, parse_registration_response(created), record)
    credential = WebAuthnCredential(
        credential_id=created["id"], user_id="u", user_handle=HANDLE,
        public_key=registered.public_key, created_at=NOW,
    )  # fmt: skip
    challenge, record = new_challenge(CONFIG, Ceremony.AUTHENTICATION, "u", NOW)
    response = key.get(authentication_options(CONFIG, challenge=challenge), ORIGIN)
    return lambda: check_authentication(
        CONFIG, parse_authentication_response(response), record, credential
    )


def _service_flow() -> Op:
    store = MemoryStore()
    clock = FakeClock(NOW)
    service = MFAService(
        store, store, AESGCMSealer({"k": bytes(32)}, current_key_id="k"), clock=clock,
        config=ServiceConfig(throttle=ThrottleConfig(max_failures=100, base_delay=0.0)),
        webauthn=store, webauthn_config=CONFIG,
    )  # fmt: skip
    key = SoftwareAuthenticator()
    options = service.begin_webauthn_registration("u", user_name="u")
    assert service.finish_webauthn_registration("u", key.create(options, ORIGIN)).accepted
    pending: list[Any] = []

    def refill() -> None:  # fresh assertions, made outside the timed calls
        pending.extend(
            key.get(service.begin_webauthn_authentication("u"), ORIGIN) for _ in range(50)
        )

    def run() -> Any:
        if not pending:
            raise RuntimeError("no assertion prepared")
        result = service.finish_webauthn_authentication("u", pending.pop(0))
        assert result.accepted, result
        return result

    run.refill = refill  # type: ignore[attr-defined]
    return run


def build_cases() -> dict[str, Op]:
    """Every case, checked once before timing."""
    code = totp(KEY, NOW)
    return {
        "totp verify, window ±1": lambda: verify_totp(KEY, code, NOW),
        "registration verify, none, ES256": _registration(-7, "none"),
        "registration verify, packed, ES256": _registration(-7, "packed"),
        "registration verify, packed, EdDSA": _registration(-8, "packed"),
        "authentication verify, ES256": _authentication(-7),
        "authentication verify, EdDSA": _authentication(-8),
        "service finish_webauthn_authentication (memory)": _service_flow(),
    }


def _time(op: Op, loops: int) -> float:
    refill = getattr(op, "refill", None)
    if refill is not None:  # one batch of fresh assertions per round (made untimed)
        pending_ops = 50
        refill()
        loops = min(loops, pending_ops)
    start = time.perf_counter_ns()
    for _ in range(loops):
        op()
    return (time.perf_counter_ns() - start) / loops


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a rough, short run")
    parser.add_argument("--loops", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    loops, repeats = (40, 3) if args.quick else (args.loops, args.repeats)
    cases = build_cases()
    for op in cases.values():
        refill = getattr(op, "refill", None)
        if refill is not None:
            refill()
        op()
    best = dict.fromkeys(cases, float("inf"))
    gc.disable()
    try:
        for _ in range(repeats):
            for name, op in cases.items():
                best[name] = min(best[name], _time(op, loops))
    finally:
        gc.enable()
    print(
        f"Python {platform.python_version()}, mfa_core {mfa_core.__version__}, "
        f"py_webauthn {getattr(py_webauthn, '__version__', '?')}, "
        f"cryptography {cryptography.__version__}; best of {repeats} rounds"
    )
    base = best["totp verify, window ±1"]
    print(f"{'case':<52} {'µs/op':>10} {'x TOTP':>8}")
    for name, ns in best.items():
        print(f"{name:<52} {ns / 1000:>10.1f} {ns / base:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
