"""Row decoding shared by SQLiteStore and SQLStore: a row that does not decode (a corrupt
or tampered database) is a StoreError naming the store, never a stray ValueError or a
silently rounded value."""

from __future__ import annotations

from typing import Any

import pytest

from mfa_core.errors import StoreError
from mfa_core.models import CredentialKind, CredentialState
from mfa_core.stores._common import challenge_from_row, credential_from_row, recovery_from_row

GOOD_CREDENTIAL: tuple[Any, ...] = (
    "c1", "u1", "totp", b"sealed", 1.0, "active", "SHA1", 6, 30, "phone",
    None, 2.0, 2.0, None, None, 7, 0, 3,
)  # fmt: skip
PHC = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
GOOD_CHALLENGE: tuple[Any, ...] = (
    "ch1", "u1", "login", "email", "a***@example.com", b"h" * 32, 6,
    10.0, 190.0, 5, 0, 0, 0, 0,
)  # fmt: skip


def _with(row: tuple[Any, ...], index: int, value: object) -> tuple[Any, ...]:
    return (*row[:index], value, *row[index + 1 :])


def test_good_rows_decode() -> None:
    credential = credential_from_row(GOOD_CREDENTIAL, "SQLite")
    assert credential.kind is CredentialKind.TOTP
    assert credential.status is CredentialState.ACTIVE
    assert (credential.digits, credential.last_accepted, credential.version) == (6, 7, 3)
    # SQLite may hand back whole REAL values and integers as floats: accepted as such.
    assert credential_from_row(_with(GOOD_CREDENTIAL, 7, 6.0), "SQLite").digits == 6
    assert challenge_from_row(GOOD_CHALLENGE, "SQL").used is False
    assert recovery_from_row(("r1", "0" * 16, PHC, None), "SQL").used_at is None


@pytest.mark.parametrize(
    ("index", "value"),
    [(2, "push"), (5, "unknown"), (6, "MD5"), (7, 6.5), (7, "6"), (7, True), (15, None), (3, 5)],
)
def test_bad_credential_rows_are_store_errors(index: int, value: object) -> None:
    with pytest.raises(StoreError, match="the SQLite store holds a credential row"):
        credential_from_row(_with(GOOD_CREDENTIAL, index, value), "SQLite")


@pytest.mark.parametrize(
    ("index", "value"), [(2, "fax"), (3, "pigeon"), (6, 6.5), (10, "0"), (13, 2), (13, "yes")]
)
def test_bad_challenge_rows_are_store_errors(index: int, value: object) -> None:
    with pytest.raises(StoreError, match="the SQL store holds a challenge row"):
        challenge_from_row(_with(GOOD_CHALLENGE, index, value), "SQL")


def test_bad_recovery_rows_are_store_errors() -> None:
    with pytest.raises(StoreError, match="recovery code row"):
        recovery_from_row(("r1", "0" * 16, PHC, "yesterday"), "SQLite")
