"""The :class:`~mfa_core.ports.WebAuthnStore` part of the reference stores.

Argument checks and row codecs shared by every store, and the in-memory and SQLite
implementations as mixins (:class:`MemoryWebAuthn`, :class:`SQLiteWebAuthn`), kept apart
from the OTP code of the store modules. The SQL (SQLAlchemy) and Redis parts live in
:mod:`mfa_core.stores._webauthn_sql` and :mod:`mfa_core.stores._webauthn_redis`.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

import attrs

from ..errors import InvalidParameter, StoreError
from ..models import CredentialState
from ..webauthn.records import (
    MAX_NICKNAME,
    MAX_PUBLIC_KEY,
    Ceremony,
    WebAuthnChallenge,
    WebAuthnCredential,
)
from ._common import check_id, check_time, check_version

__all__ = [
    "CHALLENGE_COLUMNS",
    "CREDENTIAL_COLUMNS",
    "SQLITE_STATEMENTS",
    "MemoryWebAuthn",
    "SQLiteWebAuthn",
    "challenge_from_row",
    "challenge_row",
    "check_challenge_key",
    "check_credential_id",
    "check_sign_count",
    "check_webauthn_challenge",
    "check_webauthn_credential",
    "credential_row",
    "webauthn_from_row",
]

_T = TypeVar("_T")
_B64URL: Final = re.compile(r"[A-Za-z0-9_-]{1,1364}\Z")
_TRANSPORT: Final = re.compile(r"[a-z-]{1,16}\Z")
_AAGUID: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
_SIGN_COUNT_MAX: Final = 2**32 - 1
_UV: Final = ("required", "preferred", "discouraged")
_FINGERPRINT_MAX: Final = 64
_STORED: Final = (CredentialState.ACTIVE, CredentialState.DISABLED)


def check_credential_id(value: object, name: str = "credential_id") -> str:
    """Return ``value`` if it is base64url text of a credential id (at most 1023 bytes)."""
    if type(value) is not str or not _B64URL.match(value):
        raise InvalidParameter(f"{name} must be base64url text of at most 1023 bytes")
    return value


def check_challenge_key(value: object) -> str:
    """Return ``value`` if it is a challenge key (base64url of a SHA-256)."""
    if type(value) is not str or len(value) != 43 or not _B64URL.match(value):
        raise InvalidParameter("key must be the base64url SHA-256 of a challenge")
    return value


def check_sign_count(value: object) -> int:
    """Return ``value`` if it is a signature counter (0 to 2**32-1)."""
    if type(value) is not int or not 0 <= value <= _SIGN_COUNT_MAX:
        raise InvalidParameter("sign_count must be an integer from 0 to 2**32-1")
    return value


def _check_text(value: object, name: str, limit: int) -> None:
    if type(value) is not str or len(value) > limit or not value.isprintable():
        raise InvalidParameter(f"{name} must be printable text of at most {limit} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidParameter(f"{name} must be valid Unicode text") from None


def _check_optional_time(value: object, name: str) -> None:
    if value is not None:
        check_time(value, name)


def check_webauthn_credential(credential: object) -> WebAuthnCredential:
    """Return ``credential`` if every field is one a store can hold (InvalidParameter)."""
    if type(credential) is not WebAuthnCredential:
        raise InvalidParameter("credential must be a WebAuthnCredential")
    c = credential
    check_credential_id(c.credential_id)
    check_id(c.user_id, "user_id")
    check_credential_id(c.user_handle, "user_handle")
    if type(c.public_key) is not bytes or not 1 <= len(c.public_key) <= MAX_PUBLIC_KEY:
        raise InvalidParameter(f"public_key must be 1 to {MAX_PUBLIC_KEY} bytes")
    check_sign_count(c.sign_count)
    check_time(c.created_at, "created_at")
    if c.status not in _STORED or type(c.status) is not CredentialState:
        raise InvalidParameter("status must be ACTIVE or DISABLED")
    if type(c.transports) is not tuple or len(c.transports) > 8:
        raise InvalidParameter("transports must be a tuple of at most 8 names")
    for transport in c.transports:
        if type(transport) is not str or not _TRANSPORT.match(transport):
            raise InvalidParameter("a transport must be a short lowercase name")
    if type(c.aaguid) is not str or not _AAGUID.match(c.aaguid):
        raise InvalidParameter("aaguid must be a lowercase UUID")
    for name in ("backup_eligible", "backed_up", "discoverable"):
        if type(getattr(c, name)) is not bool:
            raise InvalidParameter(f"{name} must be a bool")
    _check_text(c.attestation_format, "attestation_format", 32)
    _check_text(c.nickname, "nickname", MAX_NICKNAME)
    _check_optional_time(c.last_used_at, "last_used_at")
    _check_optional_time(c.disabled_at, "disabled_at")
    check_version(c.version)
    return c


def check_webauthn_challenge(challenge: object) -> WebAuthnChallenge:
    """Return ``challenge`` if every field is one a store can hold (InvalidParameter)."""
    if type(challenge) is not WebAuthnChallenge:
        raise InvalidParameter("challenge must be a WebAuthnChallenge")
    c = challenge
    check_challenge_key(c.key)
    if type(c.ceremony) is not Ceremony:
        raise InvalidParameter("ceremony must be a Ceremony")
    if c.user_id is not None:
        check_id(c.user_id, "user_id")
    if c.user_handle is not None:
        check_credential_id(c.user_handle, "user_handle")
    check_time(c.created_at, "created_at")
    check_time(c.expires_at, "expires_at")
    if c.user_verification not in _UV or type(c.user_verification) is not str:
        raise InvalidParameter("user_verification must be required, preferred or discouraged")
    if c.used_by is not None:
        check_fingerprint(c.used_by)
    return c


def check_fingerprint(value: object) -> str:
    """Return ``value`` if it is a response fingerprint (short base64url text)."""
    if type(value) is not str or not 1 <= len(value) <= _FINGERPRINT_MAX:
        raise InvalidParameter("fingerprint must be base64url text of at most 64 characters")
    if not _B64URL.match(value):
        raise InvalidParameter("fingerprint must be base64url text of at most 64 characters")
    return value


# -- rows ----------------------------------------------------------------------------------

CREDENTIAL_COLUMNS: Final = (
    "credential_id",
    "user_id",
    "user_handle",
    "public_key",
    "sign_count",
    "created_at",
    "status",
    "transports",
    "aaguid",
    "backup_eligible",
    "backed_up",
    "discoverable",
    "attestation_format",
    "nickname",
    "last_used_at",
    "disabled_at",
    "version",
)
"""Column order of a stored WebAuthn credential row (every SQL store)."""
CHALLENGE_COLUMNS: Final = (
    "key",
    "ceremony",
    "user_id",
    "user_handle",
    "created_at",
    "expires_at",
    "user_verification",
    "used_by",
)
"""Column order of a stored WebAuthn challenge row (every SQL store)."""


def credential_row(c: WebAuthnCredential) -> tuple[Any, ...]:
    """The row of a credential, in :data:`CREDENTIAL_COLUMNS` order."""
    return (
        c.credential_id,
        c.user_id,
        c.user_handle,
        c.public_key,
        c.sign_count,
        c.created_at,
        c.status.value,
        ",".join(c.transports),
        c.aaguid,
        int(c.backup_eligible),
        int(c.backed_up),
        int(c.discoverable),
        c.attestation_format,
        c.nickname,
        c.last_used_at,
        c.disabled_at,
        c.version,
    )


def _opt(value: Any) -> float | None:
    return None if value is None else float(value)


def webauthn_from_row(row: Sequence[Any], store: str) -> WebAuthnCredential:
    """Decode a :data:`CREDENTIAL_COLUMNS` row; a row that does not decode is a StoreError."""
    try:
        credential = WebAuthnCredential(
            credential_id=str(row[0]),
            user_id=str(row[1]),
            user_handle=str(row[2]),
            public_key=bytes(row[3]),
            sign_count=int(row[4]),
            created_at=float(row[5]),
            status=CredentialState(row[6]),
            transports=tuple(t for t in str(row[7]).split(",") if t),
            aaguid=str(row[8]),
            backup_eligible=bool(int(row[9])),
            backed_up=bool(int(row[10])),
            discoverable=bool(int(row[11])),
            attestation_format=str(row[12]),
            nickname=str(row[13]),
            last_used_at=_opt(row[14]),
            disabled_at=_opt(row[15]),
            version=int(row[16]),
        )
        return check_webauthn_credential(credential)
    except (InvalidParameter, ValueError, TypeError, IndexError):
        raise StoreError(f"the {store} store holds a WebAuthn credential it cannot read") from None


def challenge_row(c: WebAuthnChallenge) -> tuple[Any, ...]:
    """The row of a challenge, in :data:`CHALLENGE_COLUMNS` order."""
    return (
        c.key,
        c.ceremony.value,
        c.user_id,
        c.user_handle,
        c.created_at,
        c.expires_at,
        c.user_verification,
        c.used_by,
    )


def challenge_from_row(row: Sequence[Any], store: str) -> WebAuthnChallenge:
    """Decode a :data:`CHALLENGE_COLUMNS` row; a row that does not decode is a StoreError."""
    try:
        challenge = WebAuthnChallenge(
            key=str(row[0]),
            ceremony=Ceremony(row[1]),
            user_id=None if row[2] is None else str(row[2]),
            user_handle=None if row[3] is None else str(row[3]),
            created_at=float(row[4]),
            expires_at=float(row[5]),
            user_verification=str(row[6]),
            used_by=None if row[7] is None else str(row[7]),
        )
        return check_webauthn_challenge(challenge)
    except (InvalidParameter, ValueError, TypeError, IndexError):
        raise StoreError(f"the {store} store holds a WebAuthn challenge it cannot read") from None


def check_advance(
    credential_id: object, sign_count: object, backed_up: object, now: object
) -> float:
    """Check the arguments of ``advance_sign_count``; return ``now`` as a float."""
    check_credential_id(credential_id)
    check_sign_count(sign_count)
    if type(backed_up) is not bool:
        raise InvalidParameter("backed_up must be a bool")
    return check_time(now)


def check_consume(key: object, fingerprint: object, now: object) -> float:
    """Check the arguments of ``consume_webauthn_challenge``; return ``now`` as a float."""
    check_challenge_key(key)
    check_fingerprint(fingerprint)
    return check_time(now)


def advances(stored: int, presented: int) -> bool:
    """The rule of ``advance_sign_count``: greater, or both 0 (no counter kept)."""
    return presented > stored or presented == stored == 0


# -- in memory -------------------------------------------------------------------------------


class MemoryWebAuthn:
    """The :class:`~mfa_core.ports.WebAuthnStore` methods of
    :class:`~mfa_core.stores.MemoryStore` (one lock of their own; every method one step)."""

    __slots__ = ()
    _webauthn: _MemoryWebAuthnState

    def add_webauthn_credential(self, credential: WebAuthnCredential) -> None:
        """Insert a new credential; :class:`~mfa_core.errors.StoreError` if the id exists."""
        check_webauthn_credential(credential)
        state = self._webauthn
        with state.lock:
            if credential.credential_id in state.credentials:
                raise StoreError("a WebAuthn credential with this id already exists")
            state.credentials[credential.credential_id] = (state.next_seq, credential)
            state.next_seq += 1

    def get_webauthn_credential(self, credential_id: str) -> WebAuthnCredential | None:
        """Return the credential with this id, or ``None``."""
        check_credential_id(credential_id)
        state = self._webauthn
        with state.lock:
            entry = state.credentials.get(credential_id)
            return None if entry is None else entry[1]

    def webauthn_credentials(self, user_id: str) -> Sequence[WebAuthnCredential]:
        """Return the user's credentials, oldest first."""
        check_id(user_id, "user_id")
        state = self._webauthn
        with state.lock:
            found = [e for e in state.credentials.values() if e[1].user_id == user_id]
        found.sort(key=lambda e: (e[1].created_at, e[0]))
        return [credential for _, credential in found]

    def update_webauthn_credential(
        self, credential: WebAuthnCredential, *, expected_version: int
    ) -> bool:
        """Compare-and-set on ``version`` (the counter fields stay as stored)."""
        check_webauthn_credential(credential)
        check_version(expected_version)
        state = self._webauthn
        with state.lock:
            entry = state.credentials.get(credential.credential_id)
            if entry is None or entry[1].version != expected_version:
                return False
            stored = entry[1]
            state.credentials[credential.credential_id] = (
                entry[0],
                attrs.evolve(
                    credential,
                    sign_count=stored.sign_count,
                    backed_up=stored.backed_up,
                    last_used_at=stored.last_used_at,
                    version=expected_version + 1,
                ),
            )
            return True

    def advance_sign_count(
        self, credential_id: str, sign_count: int, *, backed_up: bool, now: float
    ) -> bool:
        """Accept the counter if it advances (or both are 0), under the lock."""
        at = check_advance(credential_id, sign_count, backed_up, now)
        state = self._webauthn
        with state.lock:
            entry = state.credentials.get(credential_id)
            if entry is None or not advances(entry[1].sign_count, sign_count):
                return False
            state.credentials[credential_id] = (
                entry[0],
                attrs.evolve(entry[1], sign_count=sign_count, backed_up=backed_up, last_used_at=at),
            )
            return True

    def delete_webauthn_credential(self, credential_id: str) -> bool:
        """Remove a credential; return whether it existed."""
        check_credential_id(credential_id)
        state = self._webauthn
        with state.lock:
            return state.credentials.pop(credential_id, None) is not None

    def put_webauthn_challenge(self, challenge: WebAuthnChallenge) -> None:
        """Store a new challenge (expired ones are dropped now and then)."""
        check_webauthn_challenge(challenge)
        state = self._webauthn
        with state.lock:
            if challenge.key in state.challenges:
                raise StoreError("a WebAuthn challenge with this key already exists")
            if len(state.challenges) >= state.sweep_at:
                for key in [
                    k for k, c in state.challenges.items() if c.expires_at < challenge.created_at
                ]:
                    del state.challenges[key]
                state.sweep_at = max(1024, 2 * len(state.challenges))
            state.challenges[challenge.key] = challenge

    def consume_webauthn_challenge(
        self, key: str, fingerprint: str, now: float
    ) -> WebAuthnChallenge | None:
        """Use the challenge under the lock; return it as it was."""
        check_consume(key, fingerprint, now)
        state = self._webauthn
        with state.lock:
            stored = state.challenges.get(key)
            if stored is not None and stored.used_by is None:
                state.challenges[key] = attrs.evolve(stored, used_by=fingerprint)
            return stored


class _MemoryWebAuthnState:
    __slots__ = ("challenges", "credentials", "lock", "next_seq", "sweep_at")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.credentials: dict[str, tuple[int, WebAuthnCredential]] = {}
        self.challenges: dict[str, WebAuthnChallenge] = {}
        self.next_seq = 0
        self.sweep_at = 1024


def memory_state() -> _MemoryWebAuthnState:
    """A fresh state for :class:`MemoryWebAuthn`."""
    return _MemoryWebAuthnState()


# -- SQLite ----------------------------------------------------------------------------------

SQLITE_STATEMENTS: Final = (
    """
    CREATE TABLE mfa_webauthn_credentials (
        credential_id      TEXT    PRIMARY KEY,
        user_id            TEXT    NOT NULL,
        user_handle        TEXT    NOT NULL,
        public_key         BLOB    NOT NULL,
        sign_count         INTEGER NOT NULL,
        created_at         REAL    NOT NULL,
        status             TEXT    NOT NULL CHECK (status IN ('active', 'disabled')),
        transports         TEXT    NOT NULL,
        aaguid             TEXT    NOT NULL,
        backup_eligible    INTEGER NOT NULL,
        backed_up          INTEGER NOT NULL,
        discoverable       INTEGER NOT NULL,
        attestation_format TEXT    NOT NULL,
        nickname           TEXT    NOT NULL,
        last_used_at       REAL,
        disabled_at        REAL,
        version            INTEGER NOT NULL
    )
    """,
    "CREATE INDEX mfa_webauthn_credentials_by_user "
    "ON mfa_webauthn_credentials (user_id, created_at)",
    """
    CREATE TABLE mfa_webauthn_challenges (
        key               TEXT PRIMARY KEY,
        ceremony          TEXT NOT NULL,
        user_id           TEXT,
        user_handle       TEXT,
        created_at        REAL NOT NULL,
        expires_at        REAL NOT NULL,
        user_verification TEXT NOT NULL,
        used_by           TEXT
    )
    """,
    "CREATE INDEX mfa_webauthn_challenges_by_expiry ON mfa_webauthn_challenges (expires_at)",
)
"""The SQLite schema step that adds the WebAuthn tables."""

_CRED_COLS: Final = ", ".join(CREDENTIAL_COLUMNS)
_CH_COLS: Final = ", ".join(CHALLENGE_COLUMNS)
_SQ_SELECT: Final = f"SELECT {_CRED_COLS} FROM mfa_webauthn_credentials"  # noqa: S608
_SQ_INSERT: Final = (
    f"INSERT INTO mfa_webauthn_credentials ({_CRED_COLS}) VALUES "  # noqa: S608
    f"({', '.join('?' for _ in CREDENTIAL_COLUMNS)})"
)
_SQ_UPDATE: Final = (
    "UPDATE mfa_webauthn_credentials SET user_id = ?, user_handle = ?, public_key = ?, "
    "created_at = ?, status = ?, transports = ?, aaguid = ?, backup_eligible = ?, "
    "discoverable = ?, attestation_format = ?, nickname = ?, disabled_at = ?, version = ? "
    "WHERE credential_id = ? AND version = ?"
)
_SQ_ADVANCE: Final = (
    "UPDATE mfa_webauthn_credentials SET sign_count = ?, backed_up = ?, last_used_at = ? "
    "WHERE credential_id = ? AND (sign_count < ? OR (sign_count = 0 AND ? = 0))"
)
_SQ_CH_INSERT: Final = (
    f"INSERT INTO mfa_webauthn_challenges ({_CH_COLS}) VALUES "  # noqa: S608
    f"({', '.join('?' for _ in CHALLENGE_COLUMNS)})"
)
_SQ_CH_SELECT: Final = f"SELECT {_CH_COLS} FROM mfa_webauthn_challenges WHERE key = ?"  # noqa: S608


def update_params(credential: WebAuthnCredential, expected_version: int) -> tuple[Any, ...]:
    """The parameters of the SQL compare-and-set update of a credential (both SQL stores)."""
    row = credential_row(credential)
    return (
        row[1], row[2], row[3], row[5], row[6], row[7], row[8], row[9], row[11], row[12],
        row[13], row[15], expected_version + 1, credential.credential_id, expected_version,
    )  # fmt: skip


class SQLiteWebAuthn:
    """The :class:`~mfa_core.ports.WebAuthnStore` methods of
    :class:`~mfa_core.stores.SQLiteStore` (tables ``mfa_webauthn_credentials`` and
    ``mfa_webauthn_challenges``, schema step 6). The counter and the challenge are each one
    conditional ``UPDATE``."""

    __slots__ = ()

    if False:  # pragma: no cover - the host class provides it

        def _run(
            self, operation: str, body: Callable[[sqlite3.Connection], _T], *, write: bool = False
        ) -> _T: ...

    def add_webauthn_credential(self, credential: WebAuthnCredential) -> None:
        """Insert a new credential; :class:`~mfa_core.errors.StoreError` if the id exists."""
        row = credential_row(check_webauthn_credential(credential))

        def insert(connection: sqlite3.Connection) -> None:
            try:
                connection.execute(_SQ_INSERT, row)
            except sqlite3.IntegrityError:
                raise StoreError("a WebAuthn credential with this id already exists") from None

        self._run("add_webauthn_credential", insert, write=True)

    def get_webauthn_credential(self, credential_id: str) -> WebAuthnCredential | None:
        """Return the credential with this id, or ``None``."""
        check_credential_id(credential_id)

        def select(connection: sqlite3.Connection) -> WebAuthnCredential | None:
            row = connection.execute(
                f"{_SQ_SELECT} WHERE credential_id = ?", (credential_id,)
            ).fetchone()
            return None if row is None else webauthn_from_row(row, "SQLite")

        return self._run("get_webauthn_credential", select)

    def webauthn_credentials(self, user_id: str) -> Sequence[WebAuthnCredential]:
        """Return the user's credentials, oldest first."""
        check_id(user_id, "user_id")

        def select(connection: sqlite3.Connection) -> list[WebAuthnCredential]:
            rows = connection.execute(
                f"{_SQ_SELECT} WHERE user_id = ? ORDER BY created_at, rowid", (user_id,)
            ).fetchall()
            return [webauthn_from_row(row, "SQLite") for row in rows]

        return self._run("webauthn_credentials", select)

    def update_webauthn_credential(
        self, credential: WebAuthnCredential, *, expected_version: int
    ) -> bool:
        """One conditional ``UPDATE ... WHERE version = ?``."""
        check_webauthn_credential(credential)
        check_version(expected_version)
        params = update_params(credential, expected_version)

        def conditional_update(connection: sqlite3.Connection) -> bool:
            return connection.execute(_SQ_UPDATE, params).rowcount == 1

        return self._run("update_webauthn_credential", conditional_update, write=True)

    def advance_sign_count(
        self, credential_id: str, sign_count: int, *, backed_up: bool, now: float
    ) -> bool:
        """One conditional ``UPDATE ... WHERE sign_count < ?`` (or both 0)."""
        at = check_advance(credential_id, sign_count, backed_up, now)
        params = (sign_count, int(backed_up), at, credential_id, sign_count, sign_count)

        def conditional_update(connection: sqlite3.Connection) -> bool:
            return connection.execute(_SQ_ADVANCE, params).rowcount == 1

        return self._run("advance_sign_count", conditional_update, write=True)

    def delete_webauthn_credential(self, credential_id: str) -> bool:
        """Remove a credential; return whether it existed."""
        check_credential_id(credential_id)

        def remove(connection: sqlite3.Connection) -> bool:
            return (
                connection.execute(
                    "DELETE FROM mfa_webauthn_credentials WHERE credential_id = ?",
                    (credential_id,),
                ).rowcount
                == 1
            )

        return self._run("delete_webauthn_credential", remove, write=True)

    def put_webauthn_challenge(self, challenge: WebAuthnChallenge) -> None:
        """Insert a new challenge, dropping those expired an hour before it was made."""
        row = challenge_row(check_webauthn_challenge(challenge))
        horizon = challenge.created_at - 3600.0

        def insert(connection: sqlite3.Connection) -> None:
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.execute(
                    "DELETE FROM mfa_webauthn_challenges WHERE expires_at < ?", (horizon,)
                )
                connection.execute(_SQ_CH_INSERT, row)
                connection.execute("COMMIT")
            except BaseException as exc:
                connection.execute("ROLLBACK")
                if isinstance(exc, sqlite3.IntegrityError):
                    raise StoreError("a WebAuthn challenge with this key already exists") from None
                raise

        self._run("put_webauthn_challenge", insert, write=True)

    def consume_webauthn_challenge(
        self, key: str, fingerprint: str, now: float
    ) -> WebAuthnChallenge | None:
        """Read and mark used in one ``BEGIN IMMEDIATE`` transaction."""
        check_consume(key, fingerprint, now)

        def consume(connection: sqlite3.Connection) -> WebAuthnChallenge | None:
            connection.execute("BEGIN IMMEDIATE")
            try:
                row = connection.execute(_SQ_CH_SELECT, (key,)).fetchone()
                if row is not None and row[7] is None:
                    connection.execute(
                        "UPDATE mfa_webauthn_challenges SET used_by = ? WHERE key = ?",
                        (fingerprint, key),
                    )
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            return None if row is None else challenge_from_row(row, "SQLite")

        return self._run("consume_webauthn_challenge", consume, write=True)
