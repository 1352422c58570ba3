"""Migration in, from rows written by the REAL django-otp and django-allauth packages
(``tests/django_rows.py``, in a subprocess) and from the JSON-lines format. The importer
reads the SQLite file with plain ``sqlite3``: Django is not imported in this process.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mfa_core.cli import main
from mfa_core.importers import (
    Importer,
    SkipReason,
    allauth_recovery_codes,
    import_allauth,
    import_django_otp,
    import_jsonl,
)
from mfa_core.otp import hotp, totp
from mfa_core.recovery import Argon2Params, RecoveryConfig
from mfa_core.sealing import AESGCMSealer
from mfa_core.service import MFAService, ServiceConfig
from mfa_core.stores import MemoryStore, SQLiteStore
from mfa_core.testing import FakeClock

HERE = Path(__file__).parent
SECRET = b"host-secret-for-the-import-tests"
FAST = Argon2Params.fast_for_testing()


@pytest.fixture(scope="module")
def django_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    for package in ("django_otp", "allauth"):  # found, not imported: Django stays out
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"{package} is a dev dependency (pip install -e '.[dev]')")
    path = tmp_path_factory.mktemp("django") / "django.sqlite3"
    done = subprocess.run(
        [sys.executable, str(HERE / "django_rows.py"), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return path, json.loads(done.stdout.strip().splitlines()[-1])


def _decrypt(text: str) -> str:
    sys.path.insert(0, str(HERE))
    import django_rows

    return django_rows.decrypt(text)


def _service(store: Any, sealer: AESGCMSealer, clock: FakeClock) -> MFAService:
    config = ServiceConfig(recovery=RecoveryConfig(argon2=FAST))
    return MFAService(
        store, store, sealer, clock=clock, config=config, recovery_codes=store, secret=SECRET
    )


def test_django_otp_import_keeps_replay_state(
    django_db: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    path, facts = django_db
    probe = (
        "import sys; from mfa_core.importers import read_django_otp, read_allauth; "
        f"n = len(list(read_django_otp({str(path)!r}))) + len(list(read_allauth({str(path)!r}))); "
        "assert n > 5 and 'django' not in sys.modules, n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr  # the importer reads the file with sqlite3 only
    sealer = AESGCMSealer.generate()
    store = SQLiteStore(tmp_path / "mfa.sqlite3")
    importer = Importer(store, sealer, recovery_codes=store, secret=SECRET, argon2=FAST)
    report = import_django_otp(path, importer)
    assert (report.credentials, report.recovery_sets, report.recovery_codes) == (2, 1, 1)
    reasons = {(item.source.split(":")[1], item.reason) for item in report.skipped}
    assert ("totp", SkipReason.UNCONFIRMED) in reasons
    assert ("totp", SkipReason.UNSUPPORTED_PARAMETERS) in reasons  # t0 = 7
    assert ("static-of", SkipReason.UNSUPPORTED_CODE) in reasons  # the 8-character token
    text = json.dumps(report.to_json())
    assert facts["otp_key_hex"] not in text

    # The code django-otp accepted before the switch is refused after it; the next is not.
    at = facts["otp_accepted_at"]
    key = bytes.fromhex(facts["otp_key_hex"])
    clock = FakeClock(at)
    service = _service(store, sealer, clock)
    alice = facts["alice"]
    assert not service.verify(alice, totp(key, at)).accepted
    clock.advance(30)
    assert service.verify(alice, totp(key, at + 30)).accepted
    # HOTP: django-otp accepted counter 0; mfa_core wants 1 next.
    hkey = bytes.fromhex(facts["hotp_key_hex"])
    assert not service.verify(facts["bob"], hotp(hkey, 0)).accepted
    clock.advance(60)
    assert service.verify(facts["bob"], hotp(hkey, 1)).accepted
    # The long static token became a hashed recovery code.
    assert service.verify_recovery_code(alice, "ABCD-EFGH-JKMN-PQRS").accepted
    assert all("ABCDEFGHJKMNPQRS" not in str(r) for r in store.recovery_codes(alice))

    again = import_django_otp(path, importer)  # idempotent
    assert (again.credentials, again.recovery_sets) == (0, 0)
    assert again.skipped_by_reason()["already_imported"] == 3
    store.close()


def test_allauth_derivation_matches_allauth(django_db: tuple[Path, dict[str, Any]]) -> None:
    path, facts = django_db
    import sqlite3

    with sqlite3.connect(path) as connection:
        (data,) = connection.execute(
            "SELECT data FROM mfa_authenticator WHERE type = 'recovery_codes'"
        ).fetchone()
    seed = _decrypt(json.loads(data)["seed"])
    assert allauth_recovery_codes(seed, digits=16) == facts["allauth_codes"]


def test_allauth_import_with_the_hosts_decrypt_hook(
    django_db: tuple[Path, dict[str, Any]],
) -> None:
    path, facts = django_db
    sealer = AESGCMSealer.generate()
    store = MemoryStore()
    importer = Importer(store, sealer, recovery_codes=store, secret=SECRET, argon2=FAST)
    report = import_allauth(path, importer, decrypt=_decrypt, recovery_code_digits=16)
    assert (report.credentials, report.recovery_sets) == (1, 1)
    assert report.recovery_codes == len(facts["allauth_unused"]) == 9
    assert report.skipped_by_reason() == {"unsupported_type": 1}  # the WebAuthn key
    dora, at = facts["dora"], facts["allauth_used_at"]
    key = bytes.fromhex(facts["allauth_key_hex"])
    clock = FakeClock(at)
    service = _service(store, sealer, clock)
    assert not service.verify(dora, totp(key, at)).accepted  # used at the last login
    clock.advance(30)
    assert service.verify(dora, totp(key, at + 30)).accepted
    clock.advance(60)
    assert not service.verify_recovery_code(dora, facts["allauth_used_code"]).accepted
    clock.advance(60)
    assert service.verify_recovery_code(dora, facts["allauth_unused"][0]).accepted

    # Without the hook the encrypted secrets are bad keys, never imported as they are.
    blind = import_allauth(path, Importer(MemoryStore(), sealer), recovery_code_digits=16)
    assert blind.credentials == 0
    assert blind.skipped_by_reason()["bad_key"] == 1


def test_jsonl_import_and_its_skips(tmp_path: Path) -> None:
    key = bytes(range(20))
    lines = [
        {
            "type": "totp",
            "source": "app:1",
            "user_id": "u1",
            "key_hex": key.hex(),
            "last_accepted": 60_000_000,
            "drift": 1,
            "label": "phone",
        },
        {"type": "totp", "source": "app:2", "user_id": "u2", "key_b32": "AAAA", "digits": 6},
        {
            "type": "totp",
            "source": "app:3",
            "user_id": "u3",
            "key_hex": key.hex(),
            "algorithm": "MD5",
        },
        {
            "type": "totp",
            "source": "app:4",
            "user_id": "u4",
            "key_hex": key.hex(),
            "confirmed": False,
        },
        {"type": "sms", "source": "app:5", "user_id": "u5"},
        {"type": "totp", "source": "app:6", "user_id": "u6", "key_hex": key.hex(), "digits": 3},
        {
            "type": "recovery_codes",
            "source": "app:7",
            "user_id": "u1",
            "codes": ["ABCD-EFGH-JKMN-PQRS", "12345678"],
        },
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n{not json\n[1]\n")
    store = MemoryStore()
    sealer = AESGCMSealer.generate()
    importer = Importer(store, sealer, recovery_codes=store, secret=SECRET, argon2=FAST)
    report = import_jsonl(path, importer)
    assert (report.credentials, report.recovery_codes) == (1, 1)
    assert report.skipped_by_reason() == {
        "bad_key": 1,
        "unsupported_algorithm": 1,
        "unconfirmed": 1,
        "unsupported_type": 1,
        "unsupported_parameters": 1,
        "unsupported_code": 1,
        "bad_row": 2,
    }
    [credential] = store.list_for_user("u1")
    assert (credential.last_accepted, credential.drift) == (60_000_000, 1)
    assert sealer.unseal(credential.sealed_key, credential_id=credential.id) == key
    assert import_jsonl(path, importer).credentials == 0


def test_cli_import_from_django_otp(
    django_db: tuple[Path, dict[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, facts = django_db
    monkeypatch.setenv("MFA_CORE_SEALING_KEYS", f"k1:{bytes(32).hex()}")
    monkeypatch.setenv("MFA_CORE_HOST_SECRET", SECRET.hex())
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    status = main(["admin", "--store", url, "import", "--from", "django-otp", str(path), "--json"])
    document = json.loads(capsys.readouterr().out)
    assert status == 0 and document["ok"] and document["credentials"] == 2
    assert document["skipped_by_reason"]["unconfirmed"] == 1
    assert facts["otp_key_hex"] not in json.dumps(document)
    status = main(["admin", "--store", url, "import", "--from", "allauth", str(path),
                   "--allauth-decrypt", "django_rows:decrypt", "--recovery-code-digits", "16",
                   "--json"])  # fmt: skip
    document = json.loads(capsys.readouterr().out)
    assert status == 0 and document["credentials"] == 1 and document["recovery_codes"] == 9


def test_import_benchmark_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    """benchmarks/bench_import.py still runs (a handful of rows; timings are not checked)."""
    spec = importlib.util.spec_from_file_location(
        "bench_import", HERE.parent / "benchmarks" / "bench_import.py"
    )
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--rows", "20", "--stores", "memory,sqlite"]) == 0
    table = capsys.readouterr().out
    assert "| memory |" in table and "| sqlite |" in table
