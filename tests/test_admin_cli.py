"""``mfa-core admin`` against real stores: SQLite, Redis and PostgreSQL (one unique schema or
key prefix per test), in-process through ``cli.main`` and once as the installed entry point.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from mfa_core.admin import close_store, open_store
from mfa_core.cli import main
from mfa_core.oob import OOBChannel, OOBConfig, OOBPurpose
from mfa_core.oob import issue as oob_issue
from mfa_core.otp import totp
from mfa_core.recovery import Argon2Params, RecoveryConfig
from mfa_core.sealing import AESGCMSealer
from mfa_core.service import MFAService, ServiceConfig

pytest_plugins = ("servers",)

K1 = bytes(range(32))
K2 = bytes(range(100, 132))
SECRET = b"host-secret-for-the-admin-tests!"
KEYS_ENV = "MFA_CORE_SEALING_KEYS"


@pytest.fixture(params=["sqlite", "redis", "postgresql", "mariadb"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store URL on a fresh SQLite file, Redis prefix, PostgreSQL schema or emptied
    MariaDB database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'admin.sqlite3'}"
    elif request.param == "redis":
        base = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
        yield f"{base}?prefix={quote(prefix)}"
    elif request.param == "mariadb":
        base = request.getfixturevalue("mariadb_url")  # mysql+pymysql://root@host:port/test
        database = request.getfixturevalue("mariadb_database")
        yield base.rsplit("/", 1)[0].replace("mysql+pymysql:", "mysql:", 1) + "/" + database
    else:
        base = request.getfixturevalue("postgres_url")
        schema = request.getfixturevalue("postgres_schema")
        yield f"{base}?options={quote(f'-csearch_path={schema}')}"


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEYS_ENV, f"k1:{K1.hex()}")
    monkeypatch.setenv("MFA_CORE_HOST_SECRET", SECRET.hex())
    monkeypatch.delenv("MFA_CORE_STORE", raising=False)


def admin(capsys: pytest.CaptureFixture[str], url: str, *words: str) -> tuple[int, Any, str]:
    """Run ``mfa-core admin --store URL WORDS --json``; return (status, document, stderr)."""
    status = main(["admin", "--store", url, *words, "--json"])
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 1, out  # one JSON document per command
    return status, json.loads(lines[0]), err


def _service(url: str, sealer: AESGCMSealer) -> tuple[MFAService, Any]:
    store = open_store(url, create=True)
    config = ServiceConfig(recovery=RecoveryConfig(argon2=Argon2Params.fast_for_testing()))
    service = MFAService(store, store, sealer, config=config, recovery_codes=store, secret=SECRET)
    return service, store


def _enrolled(service: MFAService, user: str) -> tuple[str, bytes]:
    from mfa_core.uri import parse_uri

    enrolment = service.begin_enrolment(user, label="phone")
    key = parse_uri(enrolment.uri).key
    result = service.confirm_enrolment(user, enrolment.credential_id, totp(key, time.time()))
    assert result.accepted
    return enrolment.credential_id, key


def test_admin_operations_on_each_store(capsys: pytest.CaptureFixture[str], store_url: str) -> None:
    service, store = _service(store_url, AESGCMSealer({"k1": K1}, current_key_id="k1"))
    try:
        credential_id, key = _enrolled(service, "alice")
        service.generate_recovery_codes("alice")
        wrong = str((int(totp(key, time.time())) + 1) % 10**6).zfill(6)
        assert not service.verify("alice", wrong).accepted
        sealed = store.get(credential_id).sealed_key
    finally:
        close_store(store)

    status, listing, _ = admin(capsys, store_url, "list", "alice")
    assert status == 0 and listing["ok"] and listing["command"] == "list"
    [factor] = listing["factors"]
    assert factor["id"] == credential_id and factor["kind"] == "totp"
    assert factor["state"] == "active" and factor["label"] == "phone"
    assert factor["last_used_at"] is not None and factor["needs_reseal"] is False
    assert listing["recovery_codes_left"] == 10
    assert listing["failures"]["count"] >= 1
    text = json.dumps(listing)
    assert sealed.hex() not in text and key.hex() not in text

    status, unlocked, _ = admin(capsys, store_url, "unlock", "alice", "--admin", "ops")
    assert status == 0 and [e["type"] for e in unlocked["events"]] == ["user_unlocked"]
    assert admin(capsys, store_url, "list", "alice")[1]["failures"]["count"] == 0

    # Key rotation: k2 is current; reseal moves the key over, and a second run does nothing.
    os.environ[KEYS_ENV] = f"k1:{K1.hex()},k2:{K2.hex()}"
    status, resealed, _ = admin(capsys, store_url, "reseal", "--batch", "1")
    assert status == 0
    assert (resealed["scanned"], resealed["resealed"], resealed["failed"]) == (1, 1, 0)
    assert resealed["current_key_id"] == "k2" and resealed["last_id"] == credential_id
    status, again, _ = admin(capsys, store_url, "reseal")
    assert status == 0 and (again["resealed"], again["current"]) == (0, 1)
    os.environ[KEYS_ENV] = f"k2:{K2.hex()}"  # k1 dropped: the key still unseals
    service, store = _service(store_url, AESGCMSealer({"k2": K2}, current_key_id="k2"))
    try:
        assert service.verify("alice", totp(key, time.time() + 30)).accepted
    finally:
        close_store(store)

    status, disabled, _ = admin(
        capsys, store_url, "disable", "alice", credential_id, "--admin", "ops"
    )
    assert status == 0 and disabled["events"][0]["type"] == "credential_disabled"
    assert admin(capsys, store_url, "list", "alice")[1]["factors"][0]["state"] == "disabled"
    status, refused, _ = admin(
        capsys, store_url, "disable", "alice", credential_id, "--admin", "ops"
    )
    assert status == 1 and not refused["ok"] and refused["error"]["code"]

    status, missing, _ = admin(
        capsys, store_url, "reset", "alice", "--admin", "ops", "--credential", "nope"
    )
    assert status == 1 and missing["error"]["code"] == "credential_not_found"
    status, reset, _ = admin(capsys, store_url, "reset", "alice", "--admin", "ops")
    assert status == 0 and reset["removed"] == 1
    assert admin(capsys, store_url, "list", "alice")[1]["factors"] == []


def test_purge_removes_expired_challenges_and_abandoned_enrolments(
    capsys: pytest.CaptureFixture[str], store_url: str
) -> None:
    store = open_store(store_url, create=True)
    now = time.time()
    try:
        old = oob_issue(
            user_id="bob",
            purpose=OOBPurpose.LOGIN,
            channel=OOBChannel.EMAIL,
            destination="bob@example.org",
            now=now - 3600,
            key=os.urandom(32),
            config=OOBConfig(),
        ).record
        store.put_challenge(old)
        service, _ = _service(store_url, AESGCMSealer({"k1": K1}, current_key_id="k1"))
        pending = service.begin_enrolment("bob").credential_id
        import attrs

        stored = store.get(pending)
        assert store.update(attrs.evolve(stored, pending_until=now - 60), expected_version=0)
        live = service.begin_enrolment("dave").credential_id
    finally:
        close_store(store)
    status, purged, _ = admin(capsys, store_url, "purge")
    assert status == 0 and purged["enrolments"] == 1
    assert purged["challenges"] == 1
    store = open_store(store_url)
    try:
        assert store.get(pending) is None and store.get(live) is not None
        assert store.get_challenge(old.challenge_id) is None
    finally:
        close_store(store)


def test_usage_errors_and_keys_never_printed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'u.sqlite3'}"
    assert main(["admin", "--store", url, "unlock", "alice"]) == 2  # --admin is required
    assert "--admin" in capsys.readouterr().err
    bad = "k1:" + "ab" * 31 + ",k2:" + "cd" * 32  # entry 1 is 31 bytes
    monkeypatch.setenv(KEYS_ENV, bad)
    status, document, err = admin(capsys, url, "list", "alice")
    assert status == 2 and "entry 1" in document["error"]["message"]
    assert "ab" * 8 not in err + json.dumps(document) and "cd" * 8 not in err
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"# rotation\nk1:{K1.hex()}\nk2:not-base64-{K2.hex()}\n")
    status = main(["admin", "--store", url, "--keys-file", str(keys_file), "reseal", "--json"])
    out, err = capsys.readouterr()
    assert status == 2 and K2.hex()[:16] not in out + err and K1.hex()[:16] not in out + err
    monkeypatch.setenv(KEYS_ENV, f"k1:{K1.hex()}")
    assert admin(capsys, "memory:", "list", "alice")[0] == 2
    assert admin(capsys, "ftp://x", "list", "alice")[0] == 2
    missing = tmp_path / "typo.sqlite3"
    status, document, _ = admin(capsys, f"sqlite:///{missing}", "list", "alice")
    assert status == 2 and "no SQLite store" in document["error"]["message"]
    assert not missing.exists()  # a typo makes no empty store
    assert main(["admin", "reseal", "--help"]) == 0
    assert "(default: 500)" in capsys.readouterr().out


def test_schema_ddl_for_each_dialect(capsys: pytest.CaptureFixture[str]) -> None:
    dialects = (("sqlite", "BLOB"), ("postgresql", "BYTEA"), ("sql-sqlite", "BLOB"))
    for dialect, marker in (*dialects, ("mysql", "VARBINARY")):
        assert main(["admin", "schema", dialect, "--json"]) == 0
        document = json.loads(capsys.readouterr().out)
        assert document["ok"] and marker in document["ddl"]
        assert "CREATE TABLE mfa_credentials" in document["ddl"].replace('"', "")
    assert main(["admin", "schema", "oracle"]) == 2


def test_sqlite_schema_ddl_builds_a_database_the_store_accepts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import sqlite3

    from mfa_core.stores import SQLiteStore

    assert main(["admin", "schema", "sqlite"]) == 0
    ddl = capsys.readouterr().out
    path = tmp_path / "ddl.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.executescript(ddl)
    SQLiteStore(path).close()  # the versions table came along: no migration needed


def test_installed_entry_point(tmp_path: Path) -> None:
    """The ``mfa-core`` script of this environment runs ``admin`` end to end."""
    from mfa_core.stores import SQLiteStore

    SQLiteStore(tmp_path / "e.db").close()
    script = Path(sys.executable).with_name("mfa-core")
    assert script.exists(), "pip install -e . puts mfa-core next to the interpreter"
    env = {**os.environ, KEYS_ENV: f"k1:{K1.hex()}", "MFA_CORE_STORE": f"sqlite:///{tmp_path}/e.db"}
    done = subprocess.run(
        [str(script), "admin", "list", "carol", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["factors"] == []


def _stored_credential(sealer: AESGCMSealer, user: str) -> Any:
    import uuid

    from mfa_core.models import Credential, CredentialKind, CredentialState

    credential_id = f"cred-{uuid.uuid4().hex}"
    now = time.time()
    return Credential(
        id=credential_id,
        user_id=user,
        kind=CredentialKind.TOTP,
        sealed_key=sealer.seal(os.urandom(20), credential_id=credential_id),
        created_at=now,
        status=CredentialState.ACTIVE,
        confirmed_at=now,
        renewed_at=now,
    )


def test_reseal_resumes_after_an_id_and_reports_keys_that_fail(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite3'}"
    old = AESGCMSealer({"k1": K1}, current_key_id="k1")
    lost = AESGCMSealer({"k0": os.urandom(32)}, current_key_id="k0")  # a key nobody has
    store = open_store(url, create=True)
    made = [_stored_credential(old, f"user{n}") for n in range(5)]
    orphan = _stored_credential(lost, "user9")
    for credential in [*made, orphan]:
        store.add(credential)
    close_store(store)
    ids = sorted(c.id for c in [*made, orphan])

    monkeypatch.setenv(KEYS_ENV, f"k1:{K1.hex()},k2:{K2.hex()}")
    status, part, _ = admin(capsys, url, "reseal", "--after", ids[2], "--batch", "2")
    assert part["scanned"] == 3 and part["last_id"] == ids[-1]
    status, whole, err = admin(capsys, url, "reseal")
    assert status == 1  # one key did not re-seal
    assert whole["scanned"] == 6 and whole["failed_ids"] == [orphan.id]
    assert whole["resealed"] + part["resealed"] == 5 and whole["current"] == part["resealed"]
    assert orphan.id in err or orphan.id in json.dumps(whole)
    store = open_store(url)
    try:
        for credential in made:
            assert store.get(credential.id).sealed_key[6:8] == b"k2"  # key id in the header
    finally:
        close_store(store)


def test_hostile_arguments_get_one_json_error_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'h.sqlite3'}"
    store = open_store(url, create=True)
    store.add(_stored_credential(AESGCMSealer({"k1": K1}, current_key_id="k1"), "S"))
    close_store(store)
    # '\u017f'.upper() == 'S': the long s is another user, never S's factors.
    status, listing, _ = admin(capsys, url, "list", "\u017f")
    assert status == 0 and listing["factors"] == []
    assert len(admin(capsys, url, "list", "S")[1]["factors"]) == 1
    for user in ("\udcff", "x" * 100_000, ""):
        status, document, err = admin(capsys, url, "list", user)
        assert status == 2 and document["ok"] is False and "Traceback" not in err
    for words in (
        ("reseal", "--batch", str(10**400)),
        ("purge", "--grace", "nan"),
        ("purge", "--grace", "1e400"),
        ("purge", "--grace", "-1"),
    ):
        assert main(["admin", "--store", url, *words]) == 2
        assert "Traceback" not in capsys.readouterr().err
    assert admin(capsys, "sqlite:///a\x00b", "list", "u")[0] == 2
    monkeypatch.setenv(KEYS_ENV, "k1:\udcff" + "00" * 31)
    status, document, err = admin(capsys, url, "list", "S")
    assert status == 2 and "00" * 8 not in err + json.dumps(document)
