"""Migration in: credentials and recovery codes from django-otp, django-allauth or JSON lines.

A team switching to mfa_core keeps its users' authenticators. The readers here turn the
rows of another library into :class:`ImportRecord` values (the same shape as one line of
the JSON-lines format, see ``docs/admin.md``), and :class:`Importer` writes them to the
stores: each OTP key is sealed by the host's :class:`~mfa_core.ports.Sealer` on the way in,
the last accepted time step (or HOTP counter) and the clock drift come along, so no code
accepted before the switch is accepted after it, and plaintext recovery codes are stored
only as lookup tags and Argon2id hashes. Nothing here needs Django: the Django tables are
read with :mod:`sqlite3` from the database file.

* :func:`import_django_otp` reads ``otp_totp_totpdevice`` (key in hex, ``step``, ``t0``,
  ``digits``, ``drift``, ``last_t``, ``confirmed``), ``otp_hotp_hotpdevice`` when present
  (``counter`` is the next expected counter) and the plaintext tokens of
  ``otp_static_statictoken`` (all static devices of a user become one recovery set).
* :func:`import_allauth` reads ``mfa_authenticator`` rows of type ``totp`` (``data.secret``,
  base32) and ``recovery_codes`` (``data.seed`` and ``data.used_mask``; the unused codes
  are derived from them as allauth derives them, or taken from ``data.migrated_codes``).
  allauth may store these values encrypted by its adapter: pass the same ``decrypt``
  function the host's ``MFA_ADAPTER`` uses. allauth keeps its replay state in the cache, not
  the database: the last step accepted is taken from ``last_used_at`` (plus the tolerance).
* :func:`import_jsonl` reads the documented JSON-lines format.

An import is idempotent: each imported credential gets an id derived from its source
(``imp-`` and a hash of the source id), and a source already imported, or a user who
already has recovery codes, is skipped with the reason ``already_imported``. Everything
not imported is in :attr:`ImportReport.skipped` with a :class:`SkipReason`; a report never
holds a key or a code.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import hashlib
import hmac
import json
import math
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final

import attrs

from .errors import InvalidKey, InvalidParameter, MFAError
from .models import Credential, CredentialKind, CredentialState
from .otp import Algorithm, HOTPState
from .ports import CredentialStore, RecoveryCodeStore, Sealer
from .recovery import (
    Argon2Params,
    RecoveryRecord,
    hash_recovery_code,
    lookup_tag,
    normalize_recovery_code,
)

__all__ = [
    "ImportRecord",
    "ImportReport",
    "Importer",
    "SkipReason",
    "Skipped",
    "allauth_recovery_codes",
    "import_allauth",
    "import_django_otp",
    "import_jsonl",
    "read_allauth",
    "read_django_otp",
    "read_jsonl",
]

_ID_PREFIX: Final = "imp-"
_MAX_LINE: Final = 64 * 1024


class SkipReason(enum.StrEnum):
    """Why a source row was not imported. Values are stable (they appear in ``--json``)."""

    UNSUPPORTED_TYPE = "unsupported_type"
    """A device or authenticator kind mfa_core has no factor for (WebAuthn, YubiKey, ...)."""
    UNCONFIRMED = "unconfirmed"
    """An enrolment the user never confirmed."""
    BAD_KEY = "bad_key"
    """The key is not valid hex/base32, is under 128 bits, or could not be decrypted."""
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
    """A hash function other than SHA1, SHA256 or SHA512."""
    UNSUPPORTED_PARAMETERS = "unsupported_parameters"
    """Digits, period or a ``t0`` mfa_core cannot verify with."""
    UNSUPPORTED_CODE = "unsupported_code"
    """A recovery code mfa_core's checker refuses (13 to 52 characters of its alphabet)."""
    ALREADY_IMPORTED = "already_imported"
    """Imported by an earlier run (or the user already has recovery codes)."""
    BAD_ROW = "bad_row"
    """A row or line that cannot be read (malformed JSON, a missing field, ...)."""
    STORE_ERROR = "store_error"
    """The store refused the write; nothing was half-written."""


@attrs.frozen
class Skipped:
    """One source row (or recovery code) that was not imported, and why."""

    source: str
    """Where it came from, e.g. ``django-otp:totp:3`` (never a key or a code)."""
    reason: SkipReason
    """The machine-readable reason."""
    detail: str = ""
    """A sentence for the operator."""
    user_id: str | None = None
    """The user concerned, when known."""

    def to_json(self) -> dict[str, Any]:
        """The JSON form (keys ``source``, ``reason``, ``detail``, ``user_id``)."""
        return {
            "source": self.source,
            "reason": self.reason.value,
            "detail": self.detail,
            "user_id": self.user_id,
        }


@attrs.frozen
class ImportRecord:
    """One thing to import, as a reader makes it (one line of the JSON-lines format).

    ``type`` is ``totp``, ``hotp`` or ``recovery_codes``. OTP records carry ``key`` (raw
    bytes; never in ``repr``), ``digits``, ``period``, ``algorithm``, ``last_accepted`` (the
    last accepted TOTP step counted from the Unix epoch, or the last accepted HOTP counter;
    -1: none), ``drift`` (in steps) and ``label``. Recovery records carry ``codes``: the
    unused plaintext codes (never in ``repr``).
    """

    type: str
    source: str
    user_id: str
    key: bytes = attrs.field(default=b"", repr=False)
    digits: int = 6
    period: int = 30
    algorithm: str = "SHA1"
    last_accepted: int = -1
    drift: int = 0
    label: str = ""
    created_at: float | None = None
    codes: tuple[str, ...] = attrs.field(default=(), repr=False)


@attrs.define
class ImportReport:
    """What an import did: counts, and every skipped row with its reason."""

    read: int = 0
    """Source records read (OTP devices and recovery sets)."""
    credentials: int = 0
    """OTP credentials written."""
    recovery_sets: int = 0
    """Users whose recovery codes were written."""
    recovery_codes: int = 0
    """Recovery codes written (hashed)."""
    skipped: list[Skipped] = attrs.field(factory=list)
    """Everything not imported."""

    def skipped_by_reason(self) -> dict[str, int]:
        """How many were skipped per reason (only reasons that occurred)."""
        counts: dict[str, int] = {}
        for item in self.skipped:
            counts[item.reason.value] = counts.get(item.reason.value, 0) + 1
        return counts

    def to_json(self) -> dict[str, Any]:
        """The JSON form (``read``, ``credentials``, ``recovery_sets``, ``recovery_codes``,
        ``skipped_by_reason``, ``skipped``)."""
        return {
            "read": self.read,
            "credentials": self.credentials,
            "recovery_sets": self.recovery_sets,
            "recovery_codes": self.recovery_codes,
            "skipped_by_reason": self.skipped_by_reason(),
            "skipped": [item.to_json() for item in self.skipped],
        }


def imported_credential_id(source: str) -> str:
    """The credential id an import gives the record from ``source`` (stable across runs)."""
    digest = hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()
    return _ID_PREFIX + digest[:32]


class Importer:
    """Writes :class:`ImportRecord` values to the host's stores.

    ``credentials`` receives the OTP credentials, each ACTIVE (confirmed at the import),
    its key sealed by ``sealer`` and bound to the new credential id. Recovery codes need
    ``recovery_codes`` (a :class:`~mfa_core.ports.RecoveryCodeStore`) and the service's
    host ``secret`` (the lookup tags are keyed with the key the service derives from it);
    ``argon2`` are the hash parameters (default: the library's). ``now`` is the import time
    (default: the system clock).
    """

    def __init__(
        self,
        credentials: CredentialStore,
        sealer: Sealer,
        *,
        recovery_codes: RecoveryCodeStore | None = None,
        secret: bytes | None = None,
        argon2: Argon2Params | None = None,
        now: float | None = None,
    ) -> None:
        from .otp import check_key  # noqa: PLC0415
        from .service._context import _TAG_KEY_INFO, derive_key  # noqa: PLC0415 - one place

        self._credentials = credentials
        self._sealer = sealer
        self._codes = recovery_codes
        self._tag_key = None if secret is None else derive_key(check_key(secret), _TAG_KEY_INFO)
        if recovery_codes is not None and self._tag_key is None:
            raise InvalidParameter("importing recovery codes needs the host secret")
        self._argon2 = argon2 if argon2 is not None else Argon2Params()
        self._now = time.time() if now is None else float(now)

    def run(self, items: Iterable[ImportRecord | Skipped]) -> ImportReport:
        """Import every record of ``items`` (skips pass through into the report)."""
        report = ImportReport()
        for item in items:
            if isinstance(item, Skipped):
                report.skipped.append(item)
                continue
            report.read += 1
            if item.type == "recovery_codes":
                self._recovery(item, report)
            else:
                self._otp(item, report)
        return report

    def _otp(self, record: ImportRecord, report: ImportReport) -> None:
        def skip(reason: SkipReason, detail: str) -> None:
            report.skipped.append(Skipped(record.source, reason, detail, record.user_id))

        if record.type not in ("totp", "hotp"):
            skip(SkipReason.UNSUPPORTED_TYPE, f"type {record.type[:40]!r} is not imported")
            return
        try:
            algorithm = Algorithm(record.algorithm.upper())
        except ValueError:
            skip(SkipReason.UNSUPPORTED_ALGORITHM, "only SHA1, SHA256 and SHA512 are supported")
            return
        try:
            HOTPState(record.key, algorithm, record.digits)
        except MFAError as exc:
            bad_key = isinstance(exc, InvalidKey)
            skip(SkipReason.BAD_KEY if bad_key else SkipReason.UNSUPPORTED_PARAMETERS, exc.message)
            return
        credential_id = imported_credential_id(record.source)
        try:
            if self._credentials.get(credential_id) is not None:
                skip(SkipReason.ALREADY_IMPORTED, "imported by an earlier run")
                return
            created = record.created_at if record.created_at is not None else self._now
            credential = Credential(
                id=credential_id,
                user_id=record.user_id,
                kind=CredentialKind(record.type),
                sealed_key=self._sealer.seal(record.key, credential_id=credential_id),
                created_at=min(created, self._now),
                status=CredentialState.ACTIVE,
                algorithm=algorithm,
                digits=record.digits,
                period=record.period,
                label=record.label,
                confirmed_at=self._now,
                renewed_at=self._now,
                last_accepted=record.last_accepted,
                drift=record.drift,
            )
            self._credentials.add(credential)
        except MFAError as exc:
            skip(SkipReason.STORE_ERROR, exc.message)
            return
        report.credentials += 1

    def _recovery(self, record: ImportRecord, report: ImportReport) -> None:
        def skip(reason: SkipReason, detail: str) -> None:
            report.skipped.append(Skipped(record.source, reason, detail, record.user_id))

        if self._codes is None or self._tag_key is None:
            skip(SkipReason.UNSUPPORTED_TYPE, "no recovery-code store was given to the import")
            return
        canonical: list[str] = []
        for position, code in enumerate(record.codes):
            normal = normalize_recovery_code(code)
            if normal is None:
                skip(
                    SkipReason.UNSUPPORTED_CODE,
                    f"code #{position + 1} ({len(code)} characters) is not a code mfa_core "
                    "checks (13 to 52 characters of its alphabet): issue new codes",
                )
            elif normal not in canonical:
                canonical.append(normal)
        if not canonical:
            return
        try:
            if self._codes.recovery_codes(record.user_id):
                skip(SkipReason.ALREADY_IMPORTED, "the user already has recovery codes")
                return
            records = []
            for position, code in enumerate(canonical):
                records.append(
                    RecoveryRecord(
                        id=f"imp{position:03d}{os.urandom(6).hex()}",
                        tag=lookup_tag(self._tag_key, record.user_id, code),
                        phc=hash_recovery_code(code, self._argon2),
                    )
                )
            self._codes.replace_recovery_codes(record.user_id, records)
        except MFAError as exc:
            skip(SkipReason.STORE_ERROR, exc.message)
            return
        report.recovery_sets += 1
        report.recovery_codes += len(records)


# -- django-otp ---------------------------------------------------------------------------


def _connect(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """Open a SQLite database read-only (a missing file is an error, never created)."""
    escaped = os.fspath(path).replace("%", "%25").replace("?", "%3f").replace("#", "%23")
    uri = "file:" + escaped + "?mode=ro"
    try:
        return sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise InvalidParameter(f"cannot open the SQLite database ({type(exc).__name__})") from None


def _tables(connection: sqlite3.Connection) -> set[str]:
    rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {str(row[0]) for row in rows}


def _epoch(value: object) -> float | None:
    """A Django DateTimeField as SQLite holds it (ISO text, UTC when naive), or None."""
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def read_django_otp(path: str | os.PathLike[str]) -> Iterator[ImportRecord | Skipped]:
    """Yield the records (and skips) of django-otp's tables in the SQLite file ``path``."""
    connection = _connect(path)
    try:
        tables = _tables(connection)
        if "otp_totp_totpdevice" in tables:
            yield from _django_totp(connection)
        if "otp_hotp_hotpdevice" in tables:
            yield from _django_hotp(connection)
        if "otp_static_staticdevice" in tables and "otp_static_statictoken" in tables:
            yield from _django_static(connection)
        for table in sorted(tables):
            if (
                table.startswith("otp_")
                and table.endswith("device")
                and table
                not in (
                    "otp_totp_totpdevice",
                    "otp_hotp_hotpdevice",
                    "otp_static_staticdevice",
                )
            ):
                for (row_id,) in connection.execute(f'SELECT id FROM "{table}"'):  # noqa: S608
                    yield Skipped(
                        f"django-otp:{table}:{row_id}",
                        SkipReason.UNSUPPORTED_TYPE,
                        f"{table} devices have no mfa_core factor",
                    )
    except sqlite3.Error as exc:
        raise InvalidParameter(f"cannot read django-otp's tables ({type(exc).__name__})") from None
    finally:
        connection.close()


def _hex_key(text: object) -> bytes | None:
    try:
        return binascii.unhexlify(str(text))
    except (binascii.Error, ValueError):
        return None


def _django_totp(connection: sqlite3.Connection) -> Iterator[ImportRecord | Skipped]:
    rows = connection.execute(
        "SELECT id, user_id, name, confirmed, key, step, t0, digits, drift, last_t "
        "FROM otp_totp_totpdevice ORDER BY id"
    )
    for row_id, user_id, name, confirmed, key_hex, step, t0, digits, drift, last_t in rows:
        source = f"django-otp:totp:{row_id}"
        user = str(user_id)
        if not confirmed:
            yield Skipped(source, SkipReason.UNCONFIRMED, "the device was never confirmed", user)
            continue
        key = _hex_key(key_hex)
        if key is None:
            yield Skipped(source, SkipReason.BAD_KEY, "the key is not hex", user)
            continue
        if not step or int(t0) % int(step):
            yield Skipped(
                source,
                SkipReason.UNSUPPORTED_PARAMETERS,
                "t0 is not a multiple of the step (mfa_core counts steps from the epoch)",
                user,
            )
            continue
        offset = int(t0) // int(step)
        # django-otp's step t counts from t0: epoch step = t + t0 / step.
        last = -1 if int(last_t) < 0 else int(last_t) + offset
        yield ImportRecord(
            type="totp",
            source=source,
            user_id=user,
            key=key,
            digits=int(digits),
            period=int(step),
            last_accepted=last,
            drift=int(drift),
            label=str(name or "")[:128],
        )


def _django_hotp(connection: sqlite3.Connection) -> Iterator[ImportRecord | Skipped]:
    rows = connection.execute(
        "SELECT id, user_id, name, confirmed, key, digits, counter "
        "FROM otp_hotp_hotpdevice ORDER BY id"
    )
    for row_id, user_id, name, confirmed, key_hex, digits, counter in rows:
        source = f"django-otp:hotp:{row_id}"
        user = str(user_id)
        if not confirmed:
            yield Skipped(source, SkipReason.UNCONFIRMED, "the device was never confirmed", user)
            continue
        key = _hex_key(key_hex)
        if key is None:
            yield Skipped(source, SkipReason.BAD_KEY, "the key is not hex", user)
            continue
        # django-otp holds the next counter it expects; mfa_core the last one accepted.
        yield ImportRecord(
            type="hotp",
            source=source,
            user_id=user,
            key=key,
            digits=int(digits),
            last_accepted=int(counter) - 1,
            label=str(name or "")[:128],
        )


def _django_static(connection: sqlite3.Connection) -> Iterator[ImportRecord | Skipped]:
    rows = connection.execute(
        "SELECT d.user_id, d.id, d.confirmed, t.token FROM otp_static_staticdevice d "
        "JOIN otp_static_statictoken t ON t.device_id = d.id ORDER BY d.user_id, d.id, t.id"
    )
    by_user: dict[str, list[str]] = {}
    for user_id, device_id, confirmed, token in rows:
        user = str(user_id)
        if not confirmed:
            yield Skipped(
                f"django-otp:static:{device_id}",
                SkipReason.UNCONFIRMED,
                "the static device was never confirmed",
                user,
            )
            continue
        by_user.setdefault(user, []).append(str(token))
    for user, tokens in by_user.items():
        yield ImportRecord(
            type="recovery_codes",
            source=f"django-otp:static-of:{user}",
            user_id=user,
            codes=tuple(tokens),
        )


def import_django_otp(path: str | os.PathLike[str], importer: Importer) -> ImportReport:
    """Import django-otp's devices from the SQLite file ``path`` with ``importer``."""
    return importer.run(read_django_otp(path))


# -- django-allauth -----------------------------------------------------------------------


def allauth_recovery_codes(seed: str, *, count: int = 10, digits: int = 8) -> list[str]:
    """The ``count`` recovery codes allauth derives from ``seed`` (its settings
    ``MFA_RECOVERY_CODE_COUNT`` and ``MFA_RECOVERY_CODE_DIGITS``).

    allauth keeps one running HMAC-SHA1 keyed with the seed's ASCII text; for code ``i`` it
    feeds the text ``f"{i:3},"`` into it, reads the first ``digits // 2`` bytes of the
    digest (at most 20) as a big-endian number and writes it modulo ``10**digits`` as
    ``digits`` decimal digits.
    """
    mac = hmac.new(seed.encode("ascii"), digestmod=hashlib.sha1)
    width = min(digits // 2, mac.digest_size)
    codes: list[str] = []
    for index in range(count):
        mac.update(f"{index:3},".encode("ascii"))
        number = int.from_bytes(mac.digest()[:width], "big") % 10**digits
        codes.append(f"{number:0{digits}d}")
    return codes


def read_allauth(
    path: str | os.PathLike[str],
    *,
    decrypt: Callable[[str], str] | None = None,
    totp_period: int = 30,
    totp_digits: int = 6,
    totp_tolerance: int = 0,
    recovery_code_count: int = 10,
    recovery_code_digits: int = 8,
) -> Iterator[ImportRecord | Skipped]:
    """Yield the records (and skips) of allauth's ``mfa_authenticator`` table in the SQLite
    file ``path``. ``decrypt`` is the host adapter's ``decrypt`` (identity when ``None``);
    the other arguments are the host's ``MFA_*`` settings of the same names."""
    unseal = decrypt if decrypt is not None else (lambda text: text)
    connection = _connect(path)
    try:
        rows = connection.execute(
            "SELECT id, user_id, type, data, created_at, last_used_at "
            "FROM mfa_authenticator ORDER BY id"
        ).fetchall()
    except sqlite3.Error as exc:
        raise InvalidParameter(f"cannot read allauth's table ({type(exc).__name__})") from None
    finally:
        connection.close()
    for row_id, user_id, kind, data_text, created_at, last_used_at in rows:
        source = f"allauth:{kind}:{row_id}"
        user = str(user_id)
        try:
            data = json.loads(data_text)
            if not isinstance(data, dict):
                raise ValueError
        except ValueError:
            yield Skipped(source, SkipReason.BAD_ROW, "data is not a JSON object", user)
            continue
        if kind == "totp":
            yield _allauth_totp(
                source,
                user,
                data,
                unseal,
                totp_period,
                totp_digits,
                totp_tolerance,
                _epoch(created_at),
                _epoch(last_used_at),
            )
        elif kind == "recovery_codes":
            yield _allauth_codes(
                source, user, data, unseal, recovery_code_count, recovery_code_digits
            )
        else:
            yield Skipped(
                source, SkipReason.UNSUPPORTED_TYPE, f"{str(kind)[:40]} authenticators", user
            )


def _decrypted(unseal: Callable[[str], str], value: object) -> str | None:
    try:
        text = unseal(str(value))
    except Exception:  # the host's hook: any failure means "cannot decrypt"
        return None
    return text if isinstance(text, str) else None


def _allauth_totp(
    source: str,
    user: str,
    data: Mapping[str, Any],
    unseal: Callable[[str], str],
    period: int,
    digits: int,
    tolerance: int,
    created_at: float | None,
    last_used_at: float | None,
) -> ImportRecord | Skipped:
    secret = _decrypted(unseal, data.get("secret", ""))
    if not secret:
        return Skipped(source, SkipReason.BAD_KEY, "the secret is missing or did not decrypt", user)
    try:
        key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    except (binascii.Error, ValueError):
        return Skipped(source, SkipReason.BAD_KEY, "the secret is not base32", user)
    # allauth accepted a code within ``tolerance`` steps of the time it was last used.
    last = -1 if last_used_at is None else math.floor(last_used_at / period) + tolerance
    return ImportRecord(
        type="totp",
        source=source,
        user_id=user,
        key=key,
        digits=digits,
        period=period,
        last_accepted=last,
        created_at=created_at,
    )


def _allauth_codes(
    source: str,
    user: str,
    data: Mapping[str, Any],
    unseal: Callable[[str], str],
    count: int,
    digits: int,
) -> ImportRecord | Skipped:
    migrated = data.get("migrated_codes")
    if isinstance(migrated, list):
        codes = [_decrypted(unseal, code) for code in migrated]
        if any(code is None for code in codes):
            return Skipped(source, SkipReason.BAD_KEY, "a migrated code did not decrypt", user)
        unused = [code for code in codes if code is not None]
    else:
        seed = _decrypted(unseal, data.get("seed", ""))
        mask = data.get("used_mask", 0)
        if not seed or not seed.isascii() or type(mask) is not int or mask < 0:
            return Skipped(
                source, SkipReason.BAD_KEY, "the seed is missing or did not decrypt", user
            )
        every = allauth_recovery_codes(seed, count=count, digits=digits)
        unused = [code for index, code in enumerate(every) if not mask >> index & 1]
    return ImportRecord(type="recovery_codes", source=source, user_id=user, codes=tuple(unused))


def import_allauth(
    path: str | os.PathLike[str], importer: Importer, **options: Any
) -> ImportReport:
    """Import allauth's authenticators from the SQLite file ``path`` with ``importer``
    (``options`` as for :func:`read_allauth`)."""
    return importer.run(read_allauth(path, **options))


# -- JSON lines ---------------------------------------------------------------------------

_OTP_FIELDS: Final = {
    "type",
    "source",
    "user_id",
    "key_hex",
    "key_b32",
    "digits",
    "period",
    "algorithm",
    "last_accepted",
    "drift",
    "label",
    "created_at",
    "confirmed",
}
_CODE_FIELDS: Final = {"type", "source", "user_id", "codes", "created_at"}


def _int_field(data: Mapping[str, Any], name: str, default: int) -> int:
    value = data.get(name, default)
    if type(value) is not int or abs(value) > 2**63:
        raise ValueError(f"{name} must be an integer")
    return value


def _jsonl_record(data: Mapping[str, Any], line: int) -> ImportRecord | Skipped:
    source = data.get("source")
    user = data.get("user_id")
    if type(source) is not str or not source or type(user) is not str or not user:
        return Skipped(f"jsonl:{line}", SkipReason.BAD_ROW, "source and user_id are required")
    kind = data.get("type")
    if kind == "recovery_codes":
        codes = data.get("codes")
        if not isinstance(codes, list) or not all(type(code) is str for code in codes):
            return Skipped(source, SkipReason.BAD_ROW, "codes must be a list of strings", user)
        if set(data) - _CODE_FIELDS:
            return Skipped(source, SkipReason.BAD_ROW, "unknown fields", user)
        return ImportRecord(type=kind, source=source, user_id=user, codes=tuple(codes))
    if kind not in ("totp", "hotp"):
        return Skipped(
            source, SkipReason.UNSUPPORTED_TYPE, "type must be totp, hotp or recovery_codes", user
        )
    if set(data) - _OTP_FIELDS:
        return Skipped(source, SkipReason.BAD_ROW, "unknown fields", user)
    if data.get("confirmed", True) is not True:
        return Skipped(source, SkipReason.UNCONFIRMED, "confirmed is not true", user)
    if ("key_hex" in data) == ("key_b32" in data):
        return Skipped(source, SkipReason.BAD_KEY, "give exactly one of key_hex and key_b32", user)
    try:
        if "key_hex" in data:
            key = binascii.unhexlify(str(data["key_hex"]))
        else:
            text = str(data["key_b32"]).replace(" ", "").upper()
            key = base64.b32decode(text + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError):
        return Skipped(source, SkipReason.BAD_KEY, "the key is not valid hex / base32", user)
    try:
        created = data.get("created_at")
        if created is not None and (
            type(created) not in (int, float) or not math.isfinite(created) or created < 0
        ):
            raise ValueError("created_at must be Unix seconds")
        algorithm = data.get("algorithm", "SHA1")
        label = data.get("label", "")
        if type(algorithm) is not str or type(label) is not str:
            raise ValueError("algorithm and label must be strings")
        return ImportRecord(
            type=kind,
            source=source,
            user_id=user,
            key=key,
            digits=_int_field(data, "digits", 6),
            period=_int_field(data, "period", 30),
            algorithm=algorithm,
            last_accepted=_int_field(data, "last_accepted", -1),
            drift=_int_field(data, "drift", 0),
            label=label[:128],
            created_at=None if created is None else float(created),
        )
    except ValueError as exc:
        return Skipped(source, SkipReason.BAD_ROW, str(exc), user)


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[ImportRecord | Skipped]:
    """Yield the records (and skips) of the JSON-lines file ``path`` (one object a line;
    blank lines are ignored). The fields are documented in ``docs/admin.md``."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            if len(raw) > _MAX_LINE:
                yield Skipped(f"jsonl:{number}", SkipReason.BAD_ROW, "the line is too long")
                continue
            try:
                data = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError):
                yield Skipped(f"jsonl:{number}", SkipReason.BAD_ROW, "not a JSON object")
                continue
            if not isinstance(data, dict):
                yield Skipped(f"jsonl:{number}", SkipReason.BAD_ROW, "not a JSON object")
                continue
            yield _jsonl_record(data, number)


def import_jsonl(path: str | os.PathLike[str], importer: Importer) -> ImportReport:
    """Import the JSON-lines file ``path`` with ``importer``."""
    return importer.run(read_jsonl(path))
