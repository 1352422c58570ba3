"""``mfa-core admin``: operator commands over a store (see ``docs/admin.md``).

::

    mfa-core admin [--store URL] [--keys-file FILE] COMMAND [--json] ...

    list USER                          a user's factors: state, kind, dates, no secrets
    unlock USER --admin ID             clear the failure count (lift a delay or a lock)
    reset USER --admin ID [--credential ID]   remove a lost device (or all of them)
    disable USER CREDENTIAL --admin ID        disable one credential
    reseal [--after ID] [--batch N]    re-seal every key under the newest sealing key
    schema DIALECT                     the schema DDL (sqlite, postgresql, sql-sqlite)
    purge [--grace SECONDS]            remove expired challenges and abandoned enrolments
    import --from KIND SOURCE          migrate in from django-otp, allauth or JSON lines

The store URL comes from ``--store`` or ``$MFA_CORE_STORE``; the URL scheme picks the store
(:data:`STORE_SCHEMES`). Sealing keys come from ``$MFA_CORE_SEALING_KEYS`` or
``--keys-file`` (never an argument): entries ``ID:KEY`` (the key as 64 hex digits or
base64 of 32 bytes) separated by commas or new lines, the LAST one current. The host
secret (needed to import recovery codes) comes from ``$MFA_CORE_HOST_SECRET`` or
``--host-secret-file`` (hex or base64). No error message ever holds a key.

With ``--json`` each command prints ONE JSON object on standard output: ``{"command": ...,
"ok": true, ...}``, or ``{"command": ..., "ok": false, "error": {"code": ..., "message":
...}}``. Exit status: 0 done, 1 refused or not found (no such credential, an illegal
transition, a store or sealing failure, keys that failed to re-seal), 2 bad usage or input.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import enum
import importlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import attrs

from .errors import (
    CredentialNotFound,
    ErrorCode,
    IllegalTransition,
    InvalidParameter,
    MFAError,
    SealingError,
    StepUpRequired,
    StoreError,
)
from .models import Event
from .ports import RecoveryCodeStore, StoreMaintenance

__all__ = [
    "HOST_SECRET_ENV",
    "SCHEMA_DIALECTS",
    "SEALING_KEYS_ENV",
    "STORE_ENV",
    "STORE_SCHEMES",
    "build_parser",
    "close_store",
    "load_sealing_keys",
    "open_store",
    "parse_sealing_keys",
    "run",
]

STORE_ENV: Final = "MFA_CORE_STORE"
"""Environment variable read for the store URL when ``--store`` is not given."""
SEALING_KEYS_ENV: Final = "MFA_CORE_SEALING_KEYS"
"""Environment variable holding the sealing keys (``ID:KEY,ID:KEY``; the last is current)."""
HOST_SECRET_ENV: Final = "MFA_CORE_HOST_SECRET"  # noqa: S105 - a variable name
"""Environment variable holding the service's host secret (hex or base64)."""

EXIT_OK: Final = 0
EXIT_REFUSED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130

DEFAULT_RESEAL_BATCH: Final = 500
DEFAULT_PURGE_GRACE: Final = 0.0
_PROG: Final = "mfa-core admin"


# -- stores ---------------------------------------------------------------------------------


def _open_sqlite(url: str, *, create: bool) -> Any:
    from .stores import SQLiteStore  # noqa: PLC0415

    path = url.split(":", 1)[1]
    if not path.startswith("///") or len(path) <= 3:
        raise InvalidParameter("a SQLite store URL is sqlite:///relative/path or sqlite:////abs")
    if not create and "\x00" not in path and not os.path.exists(path[3:]):
        # A typo must not silently make an empty store that then "has no factors".
        raise InvalidParameter("no SQLite store at that path (only import creates one)")
    return SQLiteStore(path[3:])


def _open_redis(url: str, *, create: bool) -> Any:
    from .stores.redis import RedisStore  # noqa: PLC0415

    parts = urlsplit(url)
    prefix: str | None = None
    kept = []
    for item in (item for item in parts.query.split("&") if item):
        name, _, value = item.partition("=")
        if name == "prefix":  # ?prefix=... is ours, everything else is redis-py's
            prefix = unquote(value)
        else:
            kept.append(item)
    plain = parts._replace(query="&".join(kept)).geturl()
    if prefix is None:
        return RedisStore.from_url(plain)
    return RedisStore.from_url(plain, prefix=prefix)


def _open_sql(url: str, *, create: bool) -> Any:
    try:
        import sqlalchemy as sa  # noqa: PLC0415
    except ImportError:
        from .errors import MissingDependency  # noqa: PLC0415

        raise MissingDependency(
            "the SQL store needs SQLAlchemy: pip install 'mfa_core[sql]'"
        ) from None
    from .stores.sql import SQLStore  # noqa: PLC0415

    scheme, rest = url.split(":", 1)
    # the drivers this package's 'sql' and 'mysql' extras bring
    scheme = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql"}.get(scheme, scheme)
    scheme = {"mariadb": "mariadb+pymysql"}.get(scheme, scheme)
    try:
        engine = sa.create_engine(f"{scheme}:{rest}", pool_size=2, max_overflow=2)
    except (sa.exc.ArgumentError, ImportError, ValueError) as exc:
        raise InvalidParameter(f"cannot use the SQL store URL ({type(exc).__name__})") from None
    return SQLStore(engine)


def _refuse_memory(url: str, *, create: bool) -> Any:
    raise InvalidParameter("memory: is one process's store; give a SQLite, Redis or SQL URL")


STORE_SCHEMES: Final[Mapping[str, Callable[..., Any]]] = {
    "sqlite": _open_sqlite,
    "redis": _open_redis,
    "rediss": _open_redis,
    "unix": _open_redis,
    "postgresql": _open_sql,
    "postgresql+psycopg": _open_sql,
    "mysql": _open_sql,  # MariaDB or MySQL through PyMySQL (the mysql extra)
    "mysql+pymysql": _open_sql,
    "mariadb": _open_sql,
    "mariadb+pymysql": _open_sql,
    "memory": _refuse_memory,
}
"""URL scheme -> the function ``(url, *, create)`` that opens that store (one line per
scheme). ``create``: the command may make a new store (``import``); otherwise a SQLite file
must exist."""


def open_store(url: str, *, create: bool = False) -> Any:
    """Open the store that ``url`` names (its scheme looked up in :data:`STORE_SCHEMES`);
    a SQLite file that does not exist is refused unless ``create``."""
    if type(url) is not str or ":" not in url:
        raise InvalidParameter(f"no store URL: pass --store URL or set {STORE_ENV}")
    scheme = url.split(":", 1)[0].lower()
    opener = STORE_SCHEMES.get(scheme)
    if opener is None:
        known = ", ".join(sorted(STORE_SCHEMES))
        raise InvalidParameter(f"unknown store URL scheme {scheme[:30]!r} (known: {known})")
    return opener(url, create=create)


def _sqlite_ddl() -> str:
    from .stores.sqlite import _VERSION_TABLE, MIGRATIONS  # noqa: PLC0415

    def tidy(statement: str) -> str:
        lines = [line.rstrip() for line in statement.strip("\n").splitlines()]
        indent = min((len(x) - len(x.lstrip()) for x in lines if x.strip()), default=0)
        return "\n".join(line[indent:] for line in lines) + ";"

    statements = [tidy(_VERSION_TABLE)]
    for migration in MIGRATIONS:
        statements += [tidy(statement) for statement in migration.statements]
        description = migration.description.replace("'", "''")
        statements.append(
            "INSERT INTO mfa_schema_version (version, applied_at, description) "  # noqa: S608
            f"VALUES ({migration.version}, 0, '{description}');"
        )
    return "\n\n".join(statements) + "\n"


def _sql_ddl(dialect: str) -> Callable[[], str]:
    def ddl() -> str:
        from .stores.sql import schema_ddl  # noqa: PLC0415

        return schema_ddl(dialect)

    return ddl


SCHEMA_DIALECTS: Final[Mapping[str, Callable[[], str]]] = {
    "sqlite": _sqlite_ddl,
    "postgresql": _sql_ddl("postgresql"),
    "sql-sqlite": _sql_ddl("sqlite"),
    "mysql": _sql_ddl("mysql"),
}
"""``schema`` dialect -> its DDL: ``sqlite`` is :class:`~mfa_core.stores.SQLiteStore`'s
schema, ``postgresql``, ``mysql`` (MariaDB too) and ``sql-sqlite``
:class:`~mfa_core.stores.sql.SQLStore`'s."""


# -- keys -----------------------------------------------------------------------------------


def _decode_secret(text: str, what: str, size: int | None) -> bytes:
    raw: bytes | None = None
    if len(text) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in text):
        raw = bytes.fromhex(text)
    else:
        try:
            padded = text + "=" * (-len(text) % 4)
            raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            raw = None
    if raw is None or (size is not None and len(raw) != size):
        length = f"{size} bytes" if size is not None else "bytes"
        raise InvalidParameter(f"{what} is not hex or base64 of {length}")
    return raw


def parse_sealing_keys(text: str, where: str) -> tuple[dict[str, bytes], str]:
    """Parse ``ID:KEY`` entries (commas or new lines; ``#`` starts a comment line); return
    the keys and the current (last) id. Errors name the entry's position, never its text."""
    keys: dict[str, bytes] = {}
    current = ""
    entries = [
        entry.strip()
        for line in text.splitlines()
        if not line.strip().startswith("#")
        for entry in line.split(",")
    ]
    for position, entry in enumerate((e for e in entries if e), start=1):
        key_id, sep, value = entry.partition(":")
        if not sep or not key_id.strip() or not value.strip():
            raise InvalidParameter(f"entry {position} of {where} is not ID:KEY")
        key_id = key_id.strip()
        keys[key_id] = _decode_secret(value.strip(), f"the key of entry {position} of {where}", 32)
        current = key_id
    if not keys:
        raise InvalidParameter(f"{where} holds no sealing key")
    return keys, current


def load_sealing_keys(keys_file: str | None) -> Any:
    """The :class:`~mfa_core.sealing.AESGCMSealer` of ``keys_file`` or of
    ``$MFA_CORE_SEALING_KEYS``; ``None`` when neither is given."""
    from .sealing import AESGCMSealer  # noqa: PLC0415

    if keys_file is not None:
        with open(keys_file, encoding="utf-8") as handle:
            keys, current = parse_sealing_keys(handle.read(), "the keys file")
    elif os.environ.get(SEALING_KEYS_ENV):
        keys, current = parse_sealing_keys(os.environ[SEALING_KEYS_ENV], SEALING_KEYS_ENV)
    else:
        return None
    return AESGCMSealer(keys, current_key_id=current)


def _host_secret(path: str | None) -> bytes | None:
    if path is not None:
        with open(path, encoding="utf-8") as handle:
            return _decode_secret(handle.read().strip(), "the host secret file", None)
    text = os.environ.get(HOST_SECRET_ENV)
    return None if not text else _decode_secret(text.strip(), HOST_SECRET_ENV, None)


class _NoKeys:
    """The sealer when no keys were given: commands that need none work; unsealing fails."""

    def seal(self, plaintext: bytes, *, credential_id: str) -> bytes:
        raise InvalidParameter(f"this command needs the sealing keys: set {SEALING_KEYS_ENV}")

    def unseal(self, sealed: bytes, *, credential_id: str) -> bytes:
        raise InvalidParameter(f"this command needs the sealing keys: set {SEALING_KEYS_ENV}")

    def needs_reseal(self, sealed: bytes) -> bool:
        raise InvalidParameter(f"this command needs the sealing keys: set {SEALING_KEYS_ENV}")


class _Events:
    """Collects the events the service emits, for the command's output."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def to_json(self) -> list[dict[str, Any]]:
        return [
            {
                "type": event.type.value,
                "user_id": event.user_id,
                "credential_id": event.credential_id,
                "actor": event.actor,
                "at": event.at,
            }
            for event in self.events
        ]


# -- the parser -----------------------------------------------------------------------------


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def build_parser(formatter: type[argparse.HelpFormatter], parser_class: type) -> Any:
    """The ``admin`` parser (``cli.py`` passes its help formatter and parser class)."""
    admin = parser_class(
        prog=_PROG,
        description="Operator commands over a store: list, unlock, reset, disable, "
        "reseal, schema, purge, import.",
        epilog=f"Keys: ${SEALING_KEYS_ENV} (ID:KEY,...; the last is current) or --keys-file. "
        "Exit status: 0 done, 1 refused or not found, 2 bad usage.",
        formatter_class=formatter,
        allow_abbrev=False,
    )
    admin.add_argument("--store", metavar="URL", help=f"store URL (default: ${STORE_ENV})")
    admin.add_argument(
        "--keys-file", metavar="FILE", help=f"sealing keys (default: ${SEALING_KEYS_ENV})"
    )
    admin.add_argument(
        "--host-secret-file", metavar="FILE", help=f"host secret (default: ${HOST_SECRET_ENV})"
    )
    commands = admin.add_subparsers(dest="admin_command", required=True, metavar="COMMAND")

    def command(name: str, text: str) -> Any:
        sub = commands.add_parser(
            name, help=text, description=text, formatter_class=formatter, allow_abbrev=False
        )
        _add_common(sub)
        return sub

    listing = command("list", "list a user's factors (no secrets)")
    listing.add_argument("user", metavar="USER")

    unlock = command("unlock", "clear a user's failure count")
    unlock.add_argument("user", metavar="USER")
    unlock.add_argument("--admin", required=True, metavar="ID", help="who acts (required)")

    reset = command("reset", "remove a user's credential(s): the device was lost")
    reset.add_argument("user", metavar="USER")
    reset.add_argument("--admin", required=True, metavar="ID", help="who acts (required)")
    reset.add_argument("--credential", metavar="ID", help="only this one (default: all)")

    disable = command("disable", "disable one credential of a user")
    disable.add_argument("user", metavar="USER")
    disable.add_argument("credential", metavar="CREDENTIAL")
    disable.add_argument("--admin", required=True, metavar="ID", help="who acts (required)")

    reseal = command("reseal", "re-seal every stored key under the current sealing key")
    reseal.add_argument("--after", metavar="ID", help="resume after this credential id")
    reseal.add_argument(
        "--batch", type=_positive, default=DEFAULT_RESEAL_BATCH, help="ids read per page"
    )

    schema = command("schema", "print the schema as DDL")
    schema.add_argument("dialect", choices=tuple(SCHEMA_DIALECTS), help="which schema")

    purge = command("purge", "remove expired challenges and abandoned enrolments")
    purge.add_argument(
        "--grace",
        type=_seconds,
        default=DEFAULT_PURGE_GRACE,
        metavar="SECONDS",
        help="keep what expired less than this long ago",
    )

    imports = command("import", "import credentials and recovery codes from another library")
    imports.add_argument(
        "--from", dest="source_kind", required=True, choices=("django-otp", "allauth", "jsonl")
    )
    imports.add_argument("source", metavar="SOURCE", help="the SQLite file or JSON-lines file")
    imports.add_argument(
        "--allauth-decrypt",
        metavar="MODULE:FUNCTION",
        help="the host adapter's decrypt function for allauth's secrets",
    )
    imports.add_argument(
        "--totp-period", type=_positive, default=30, help="allauth MFA_TOTP_PERIOD"
    )
    imports.add_argument("--totp-digits", type=_positive, default=6, help="allauth MFA_TOTP_DIGITS")
    imports.add_argument(
        "--totp-tolerance", type=_natural, default=0, help="allauth MFA_TOTP_TOLERANCE"
    )
    imports.add_argument(
        "--recovery-code-count", type=_positive, default=10, help="allauth MFA_RECOVERY_CODE_COUNT"
    )
    imports.add_argument(
        "--recovery-code-digits", type=_positive, default=8, help="allauth MFA_RECOVERY_CODE_DIGITS"
    )
    return admin


def _natural(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a non-negative integer")
    return int(text)


def _positive(text: str) -> int:
    value = _natural(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text) if text.isascii() and len(text) <= 20 else -1.0
    except ValueError:
        value = -1.0
    if not 0 <= value < 10**10:
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a number of seconds")
    return value


# -- commands -------------------------------------------------------------------------------


@attrs.define
class _Run:
    args: argparse.Namespace
    store: Any
    sealer: Any
    events: _Events
    service: Any
    lines: list[str] = attrs.field(factory=list)
    secret: bytes | None = None


def _service(store: Any, sealer: Any, events: _Events, secret: bytes | None) -> Any:
    from .service import MFAService  # noqa: PLC0415

    codes = store if isinstance(store, RecoveryCodeStore) and secret is not None else None
    return MFAService(store, store, sealer, events=events, recovery_codes=codes, secret=secret)


def _info_json(info: Any, credential: Any, keys_known: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for field in attrs.fields(type(info)):
        value: Any = getattr(info, field.name)
        if isinstance(value, enum.Enum):
            fields[field.name] = value.value
        elif isinstance(value, str | int | float | bool) or value is None:
            fields[field.name] = value
        else:
            fields[field.name] = str(value)
    if not keys_known:
        fields["needs_reseal"] = None
    if credential is not None:
        fields["last_accepted"] = credential.last_accepted
        fields["drift"] = credential.drift
        period = getattr(credential, "period", 0)
        kind = str(getattr(credential.kind, "value", credential.kind))
        fields["last_used_at"] = (
            float(credential.last_accepted * period)
            if kind == "totp" and credential.last_accepted >= 0 and period
            else None
        )
    return fields


def _cmd_list(run: _Run) -> dict[str, Any]:
    user = run.args.user
    infos = run.service.list_credentials(user)
    stored = {c.id: c for c in run.store.list_for_user(user)}
    keys_known = not isinstance(run.sealer, _NoKeys)
    factors = [_info_json(info, stored.get(info.id), keys_known) for info in infos]
    failures = run.store.get_failures(user)
    codes_left = None
    if isinstance(run.store, RecoveryCodeStore):
        codes_left = sum(1 for record in run.store.recovery_codes(user) if not record.used)
    for factor in factors:
        run.lines.append(
            f"{factor['id']}  {factor['kind']:<6} {factor['state']:<16} "
            f"created {_when(factor['created_at'])}  last used {_when(factor['last_used_at'])}"
            + (f"  {factor['label']}" if factor["label"] else "")
        )
    if not factors:
        run.lines.append(f"{user}: no factors")
    run.lines.append(
        f"failures: {failures.count}"
        + ("" if codes_left is None else f"  recovery codes left: {codes_left}")
    )
    return {
        "user_id": user,
        "factors": factors,
        "failures": {"count": failures.count, "last_failure_at": failures.last_failure_at},
        "recovery_codes_left": codes_left,
    }


def _when(at: float | None) -> str:
    if at is None:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def _cmd_unlock(run: _Run) -> dict[str, Any]:
    run.service.admin_unlock(run.args.user, admin_id=run.args.admin)
    run.lines.append(f"{run.args.user}: unlocked")
    return {"user_id": run.args.user}


def _cmd_reset(run: _Run) -> dict[str, Any]:
    removed = run.service.admin_reset(
        run.args.user, admin_id=run.args.admin, credential_id=run.args.credential
    )
    run.lines.append(f"{run.args.user}: {removed} credential(s) removed")
    return {"user_id": run.args.user, "removed": removed}


def _cmd_disable(run: _Run) -> dict[str, Any]:
    run.service.disable(run.args.user, run.args.credential, by_admin=run.args.admin)
    run.lines.append(f"{run.args.user}: {run.args.credential} disabled")
    return {"user_id": run.args.user, "credential_id": run.args.credential}


def _maintained(store: Any, command: str) -> Any:
    if not isinstance(store, StoreMaintenance):
        raise InvalidParameter(f"this store does not support {command} (no StoreMaintenance)")
    return store


def _cmd_reseal(run: _Run) -> dict[str, Any]:
    if isinstance(run.sealer, _NoKeys):
        raise InvalidParameter(f"reseal needs the sealing keys: set {SEALING_KEYS_ENV}")
    store = _maintained(run.store, "reseal")
    counts = {"scanned": 0, "resealed": 0, "current": 0, "vanished": 0, "failed": 0}
    failed: list[str] = []
    after = run.args.after
    while True:
        page = store.credential_ids(after, run.args.batch)
        if not page:
            break
        for credential_id in page:
            counts["scanned"] += 1
            try:
                done = run.service.reseal(credential_ids=[credential_id])
            except CredentialNotFound:
                counts["vanished"] += 1
                continue
            except (SealingError, StoreError):
                counts["failed"] += 1
                failed.append(credential_id)
                continue
            counts["resealed" if done else "current"] += 1
        after = page[-1]
    run.lines.append(
        f"scanned {counts['scanned']}: re-sealed {counts['resealed']}, already current "
        f"{counts['current']}, vanished {counts['vanished']}, failed {counts['failed']}"
    )
    run.lines += [f"failed: {credential_id}" for credential_id in failed[:100]]
    return {
        **counts,
        "current_key_id": run.sealer.current_key_id,
        "last_id": after,
        "failed_ids": failed[:100],
    }


def _cmd_purge(run: _Run) -> dict[str, Any]:
    store = _maintained(run.store, "purge")
    before = max(0.0, time.time() - run.args.grace)
    challenges = store.purge_challenges(before)
    enrolments = store.purge_pending(before)
    run.lines.append(
        f"removed {challenges} expired challenge(s), {enrolments} abandoned enrolment(s)"
    )
    return {"before": before, "challenges": challenges, "enrolments": enrolments}


def _decrypt_hook(spec: str | None) -> Callable[[str], str] | None:
    if spec is None:
        return None
    module_name, sep, name = spec.partition(":")
    if not sep or not module_name or not name:
        raise InvalidParameter("--allauth-decrypt must be MODULE:FUNCTION")
    try:
        hook = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError):
        raise InvalidParameter("--allauth-decrypt names no importable function") from None
    if not callable(hook):
        raise InvalidParameter("--allauth-decrypt names no importable function")
    return hook  # type: ignore[no-any-return]


def _cmd_import(run: _Run) -> dict[str, Any]:
    secret = run.secret
    from . import importers  # noqa: PLC0415

    if isinstance(run.sealer, _NoKeys):
        raise InvalidParameter(f"import needs the sealing keys: set {SEALING_KEYS_ENV}")
    codes = run.store if secret is not None and isinstance(run.store, RecoveryCodeStore) else None
    importer = importers.Importer(run.store, run.sealer, recovery_codes=codes, secret=secret)
    args = run.args
    if not os.path.exists(args.source):
        raise InvalidParameter("SOURCE does not exist")
    if args.source_kind == "django-otp":
        report = importers.import_django_otp(args.source, importer)
    elif args.source_kind == "allauth":
        report = importers.import_allauth(
            args.source,
            importer,
            decrypt=_decrypt_hook(args.allauth_decrypt),
            totp_period=args.totp_period,
            totp_digits=args.totp_digits,
            totp_tolerance=args.totp_tolerance,
            recovery_code_count=args.recovery_code_count,
            recovery_code_digits=args.recovery_code_digits,
        )
    else:
        report = importers.import_jsonl(args.source, importer)
    if secret is None:
        run.lines.append(f"note: no host secret (${HOST_SECRET_ENV}): recovery codes are skipped")
    run.lines.append(
        f"read {report.read}: {report.credentials} credential(s), {report.recovery_sets} "
        f"recovery set(s) ({report.recovery_codes} codes), {len(report.skipped)} skipped"
    )
    run.lines += [
        f"skipped {item.source}: {item.reason.value} ({item.detail})" for item in report.skipped
    ]
    return report.to_json()


_REFUSALS: Final = (CredentialNotFound, IllegalTransition, StepUpRequired, SealingError, StoreError)


def _emit(args: argparse.Namespace, document: dict[str, Any], lines: Sequence[str]) -> None:
    if args.json:
        sys.stdout.write(json.dumps(document, sort_keys=True) + "\n")
    else:
        for line in lines:
            print(line)


@contextmanager
def _opened(url: str, *, create: bool) -> Iterator[Any]:
    store = open_store(url, create=create)
    try:
        yield store
    finally:
        close_store(store)


def close_store(store: Any) -> None:
    """Release a store :func:`open_store` made (its ``close()``, or its engine's pool)."""
    close = getattr(store, "close", None)
    if callable(close):
        close()
        return
    engine = getattr(store, "engine", None)
    if engine is not None:
        engine.dispose()


def run(args: argparse.Namespace) -> int:
    """Run the parsed ``admin`` command; return the exit status."""
    name = args.admin_command
    document: dict[str, Any] = {"command": name, "ok": True}
    try:
        if name == "schema":
            ddl = SCHEMA_DIALECTS[args.dialect]()
            document.update(dialect=args.dialect, ddl=ddl)
            _emit(args, document, [ddl.rstrip("\n")])
            return EXIT_OK
        secret = _host_secret(args.host_secret_file)
        sealer = load_sealing_keys(args.keys_file) or _NoKeys()
        url = args.store if args.store is not None else os.environ.get(STORE_ENV, "")
        with _opened(url, create=name == "import") as store:
            events = _Events()
            state = _Run(args, store, sealer, events, _service(store, sealer, events, secret))
            state.secret = secret
            result = _HANDLERS[name](state)
            document.update(result)
            document["events"] = events.to_json()
            _emit(args, document, state.lines)
            if name == "reseal" and result["failed"]:
                return EXIT_REFUSED
            return EXIT_OK
    except MFAError as exc:
        status = EXIT_REFUSED if isinstance(exc, _REFUSALS) else EXIT_USAGE
        return _failed(args, name, str(exc.code.value), exc.message, status)
    except OSError as exc:
        return _failed(args, name, "os_error", f"{exc.strerror or type(exc).__name__}", EXIT_USAGE)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _failed(args: argparse.Namespace, name: str, code: str, message: str, status: int) -> int:
    if args.json:
        document = {"command": name, "ok": False, "error": {"code": code, "message": message}}
        sys.stdout.write(json.dumps(document, sort_keys=True) + "\n")
    print(f"{_PROG} {name}: error: {message}", file=sys.stderr)
    return status


_HANDLERS: Final[Mapping[str, Callable[[_Run], dict[str, Any]]]] = {
    "list": _cmd_list,
    "unlock": _cmd_unlock,
    "reset": _cmd_reset,
    "disable": _cmd_disable,
    "reseal": _cmd_reseal,
    "purge": _cmd_purge,
    "import": _cmd_import,
}


_ = ErrorCode  # the codes printed are ErrorCode values
