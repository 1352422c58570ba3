"""The :class:`~mfa_core.ports.WebAuthnStore` part of :class:`~mfa_core.stores.sql.SQLStore`.

Two tables of the store's metadata, ``mfa_webauthn_credentials`` and
``mfa_webauthn_challenges`` (made by :func:`define_tables` from ``sql.py``, so
``create_schema`` and ``schema_ddl`` include them). The counter advance and the challenge
consume are each ONE conditional ``UPDATE`` (the consume with ``RETURNING``), atomic on
PostgreSQL and SQLite alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

import sqlalchemy as sa

from .._validate import MAX_ID_LENGTH
from ..webauthn.records import WebAuthnChallenge, WebAuthnCredential
from ._common import check_id, check_version
from ._webauthn import (
    CHALLENGE_COLUMNS,
    CREDENTIAL_COLUMNS,
    challenge_from_row,
    challenge_row,
    check_advance,
    check_consume,
    check_credential_id,
    check_webauthn_challenge,
    check_webauthn_credential,
    credential_row,
    webauthn_from_row,
)

__all__ = ["SQLWebAuthn", "define_tables"]

_T = TypeVar("_T")
_TABLES: dict[str, sa.Table] = {}
_COUNTER: Final = frozenset({"sign_count", "backed_up", "last_used_at", "version"})


def define_tables(
    metadata: sa.MetaData, key: Callable[[int], sa.types.TypeEngine[str]]
) -> tuple[sa.Table, sa.Table]:
    """Add the two WebAuthn tables to ``metadata`` (once) and return them. ``key(n)`` is
    the column type of an identifier of at most ``n`` characters that the store compares
    (:class:`~mfa_core.stores.sql.Key`: byte-exact, and with a length MySQL/MariaDB can
    index)."""
    credentials = sa.Table(
        "mfa_webauthn_credentials",
        metadata,
        # seq: insertion order (SQLite's rowid; PostgreSQL an identity column)
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.Identity(),
            primary_key=True,
        ),
        # base64url of at most 1023 bytes: 1364 ASCII characters, which key(341) holds (it
        # allows 4 bytes a character) within InnoDB's 3072-byte index key.
        sa.Column("credential_id", key(341), nullable=False, unique=True),
        sa.Column("user_id", key(MAX_ID_LENGTH), nullable=False),
        sa.Column("user_handle", key(MAX_ID_LENGTH), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("transports", sa.Text(), nullable=False),
        sa.Column("aaguid", sa.Text(), nullable=False),
        sa.Column("backup_eligible", sa.SmallInteger(), nullable=False),
        sa.Column("backed_up", sa.SmallInteger(), nullable=False),
        sa.Column("discoverable", sa.SmallInteger(), nullable=False),
        sa.Column("attestation_format", sa.Text(), nullable=False),
        sa.Column("nickname", sa.Text(), nullable=False),
        sa.Column("last_used_at", sa.Double()),
        sa.Column("disabled_at", sa.Double()),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Index(None, "user_id", "created_at"),
    )
    challenges = sa.Table(
        "mfa_webauthn_challenges",
        metadata,
        sa.Column("key", key(MAX_ID_LENGTH), primary_key=True),
        sa.Column("ceremony", sa.Text(), nullable=False),
        sa.Column("user_id", key(MAX_ID_LENGTH)),
        sa.Column("user_handle", key(MAX_ID_LENGTH)),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Column("user_verification", sa.Text(), nullable=False),
        sa.Column("used_by", sa.Text()),
        sa.Index(None, "expires_at"),
    )
    _TABLES["credentials"] = credentials
    _TABLES["challenges"] = challenges
    return credentials, challenges


def _values(names: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
    return dict(zip(names, row, strict=True))


def _changed(result: sa.CursorResult[Any]) -> bool:
    return result.rowcount == 1


def _rows(result: sa.CursorResult[Any]) -> Sequence[Sequence[Any]]:
    return result.all()


class SQLWebAuthn:
    """The :class:`~mfa_core.ports.WebAuthnStore` methods of
    :class:`~mfa_core.stores.sql.SQLStore` (its ``_execute`` / ``_transaction``)."""

    __slots__ = ()

    if False:  # pragma: no cover - the host class provides them

        def _execute(
            self,
            operation: str,
            statement: sa.Executable,
            read: Callable[[sa.CursorResult[Any]], _T],
            *,
            conflict: str | None = None,
            params: dict[str, Any] | None = None,
        ) -> _T: ...

        def _transaction(self, operation: str, body: Callable[[sa.Connection], _T]) -> _T: ...

        _mysql: bool

    def add_webauthn_credential(self, credential: WebAuthnCredential) -> None:
        """One ``INSERT``; :class:`~mfa_core.errors.StoreError` if the id exists."""
        row = credential_row(check_webauthn_credential(credential))
        statement = _TABLES["credentials"].insert().values(**_values(CREDENTIAL_COLUMNS, row))
        self._execute(
            "add_webauthn_credential",
            statement,
            _changed,
            conflict="a WebAuthn credential with this id already exists",
        )

    def _select(self) -> sa.Select[Any]:
        table = _TABLES["credentials"]
        return sa.select(*(table.c[name] for name in CREDENTIAL_COLUMNS))

    def get_webauthn_credential(self, credential_id: str) -> WebAuthnCredential | None:
        """Return the credential with this id, or ``None``."""
        check_credential_id(credential_id)
        table = _TABLES["credentials"]
        statement = self._select().where(table.c.credential_id == credential_id)
        rows = self._execute("get_webauthn_credential", statement, _rows)
        return webauthn_from_row(rows[0], "SQL") if rows else None

    def webauthn_credentials(self, user_id: str) -> Sequence[WebAuthnCredential]:
        """Return the user's credentials, oldest first (then by insertion)."""
        check_id(user_id, "user_id")
        table = _TABLES["credentials"]
        statement = (
            self._select()
            .where(table.c.user_id == user_id)
            .order_by(table.c.created_at, table.c.seq)
        )
        rows = self._execute("webauthn_credentials", statement, _rows)
        return [webauthn_from_row(row, "SQL") for row in rows]

    def update_webauthn_credential(
        self, credential: WebAuthnCredential, *, expected_version: int
    ) -> bool:
        """One conditional ``UPDATE ... WHERE version = :expected``."""
        row = credential_row(check_webauthn_credential(credential))
        check_version(expected_version)
        table = _TABLES["credentials"]
        values = {k: v for k, v in _values(CREDENTIAL_COLUMNS, row).items() if k not in _COUNTER}
        values.pop("credential_id")
        statement = (
            table.update()
            .where(
                table.c.credential_id == credential.credential_id,
                table.c.version == expected_version,
            )
            .values(version=expected_version + 1, **values)
        )
        return self._execute("update_webauthn_credential", statement, _changed)

    def advance_sign_count(
        self, credential_id: str, sign_count: int, *, backed_up: bool, now: float
    ) -> bool:
        """One conditional ``UPDATE ... WHERE sign_count < :n`` (or both 0)."""
        at = check_advance(credential_id, sign_count, backed_up, now)
        table = _TABLES["credentials"]
        behind = table.c.sign_count == 0 if sign_count == 0 else table.c.sign_count < sign_count
        statement = (
            table.update()
            .where(table.c.credential_id == credential_id, behind)
            .values(sign_count=sign_count, backed_up=int(backed_up), last_used_at=at)
        )
        return self._execute("advance_sign_count", statement, _changed)

    def delete_webauthn_credential(self, credential_id: str) -> bool:
        """One ``DELETE``."""
        check_credential_id(credential_id)
        table = _TABLES["credentials"]
        statement = table.delete().where(table.c.credential_id == credential_id)
        return self._execute("delete_webauthn_credential", statement, _changed)

    def put_webauthn_challenge(self, challenge: WebAuthnChallenge) -> None:
        """Insert a challenge (and drop those expired an hour before it was made)."""
        row = challenge_row(check_webauthn_challenge(challenge))
        table = _TABLES["challenges"]
        horizon = challenge.created_at - 3600.0

        def body(connection: sa.Connection) -> None:
            connection.execute(table.delete().where(table.c.expires_at < horizon))
            connection.execute(table.insert().values(**_values(CHALLENGE_COLUMNS, row)))

        self._transaction("put_webauthn_challenge", body)

    def consume_webauthn_challenge(
        self, key: str, fingerprint: str, now: float
    ) -> WebAuthnChallenge | None:
        """One ``UPDATE ... WHERE used_by IS NULL RETURNING``; when it changed nothing, the
        row as it is (used already) or ``None``. MySQL/MariaDB have no ``UPDATE ...
        RETURNING``: there the conditional ``UPDATE`` and the read of the row it changed
        are one transaction (the update's row lock keeps the row as it was written)."""
        check_consume(key, fingerprint, now)
        table = _TABLES["challenges"]
        columns = [table.c[name] for name in CHALLENGE_COLUMNS]
        claim = (
            table.update()
            .where(table.c.key == key, table.c.used_by.is_(None))
            .values(used_by=fingerprint)
        )
        if self._mysql:

            def claim_then_read(connection: sa.Connection) -> Sequence[Sequence[Any]]:
                if connection.execute(claim).rowcount != 1:
                    return []
                return connection.execute(sa.select(*columns).where(table.c.key == key)).all()

            rows = self._transaction("consume_webauthn_challenge", claim_then_read)
        else:
            rows = self._execute("consume_webauthn_challenge", claim.returning(*columns), _rows)
        if rows:
            fresh = list(rows[0])
            fresh[CHALLENGE_COLUMNS.index("used_by")] = None  # as it was before this call
            return challenge_from_row(fresh, "SQL")
        rows = self._execute(
            "consume_webauthn_challenge", sa.select(*columns).where(table.c.key == key), _rows
        )
        return challenge_from_row(rows[0], "SQL") if rows else None
