"""Argument checks and row decoding shared by the reference stores.

Every store method checks its arguments before touching any state, so bad input raises a
typed :class:`~mfa_core.errors.InvalidParameter` (never a ``TypeError`` from a driver) and
the in-memory and SQLite stores accept and refuse exactly the same values.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from .. import _validate
from ..errors import ErrorCode, InvalidParameter, MFAError, StoreError
from ..models import STORED_STATES, Credential, CredentialKind, CredentialState
from ..oob import MAX_SEND_KEY, OOBChannel, OOBPurpose, OOBRecord
from ..otp import Algorithm
from ..ports import (
    AttemptStore,
    CodeSender,
    CredentialStore,
    FailureCounter,
    OOBChallengeStore,
    RecoveryCodeStore,
    WebAuthnStore,
)
from ..recovery import RecoveryRecord
from ..throttle import ThrottleConfig

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "MAX_ID_LENGTH",
    "challenge_from_row",
    "check_claim_value",
    "check_credential",
    "check_drift",
    "check_generation",
    "check_id",
    "check_limits",
    "check_oob_record",
    "check_phc",
    "check_recovery_records",
    "check_send_count",
    "check_time",
    "check_version",
    "credential_from_row",
    "opt_float",
    "port_methods",
    "ports_of",
    "recovery_from_row",
    "with_port_methods",
]

INT64_MAX: Final = 2**63 - 1
"""Largest value a store holds in an integer column (SQL ``BIGINT``, SQLite ``INTEGER``)."""
INT64_MIN: Final = -(2**63)
"""Smallest value a store holds in an integer column."""
MAX_ID_LENGTH: Final = 1024
"""Longest user or credential id (characters) a reference store accepts."""
_MAX_RECOVERY_RECORDS: Final = 1000
_MAX_PHC: Final = 512


def _is_int(value: object) -> bool:
    return type(value) is int


def _is_number(value: object) -> bool:
    return type(value) is int or type(value) is float


def check_id(value: object, name: str) -> str:
    """Return ``value`` if it is a non-empty string of at most :data:`MAX_ID_LENGTH`
    characters that can be encoded as UTF-8 (no lone surrogates)."""
    if type(value) is str and 1 <= len(value) <= MAX_ID_LENGTH and value.isascii():
        return value  # the common case, checked without another call
    return _validate.check_id(value, name, max_length=MAX_ID_LENGTH)


def _check_utf8(value: str, name: str) -> None:
    if not _validate.is_utf8(value):
        raise InvalidParameter(f"{name} must be valid Unicode text")


def check_time(value: object, name: str = "now") -> float:
    """Return ``value`` as a float if it is a finite, non-negative Unix time of at most
    :data:`mfa_core._validate.MAX_TIME` (:func:`mfa_core._validate.check_time`).

    An int is range-checked before it is converted (``10**400`` is an InvalidParameter,
    never an ``OverflowError``)."""
    return _validate.check_time(value, name)


def _check_optional_time(value: object, name: str) -> None:
    if value is not None:
        check_time(value, name)


def check_claim_value(value: object) -> int:
    """Return ``value`` if it is a TOTP step / HOTP counter a store can hold (0..2**63-1).

    HOTP allows counters up to 2**64-1, but stores keep ``last_accepted`` in a signed 64-bit
    column; a larger value is refused here rather than wrapped or rounded.
    """
    if type(value) is not int or not 0 <= value <= INT64_MAX:
        raise InvalidParameter(
            "value must be an integer from 0 to 2**63-1", code=ErrorCode.INVALID_COUNTER
        )
    return value


def check_drift(value: object) -> int:
    """Return ``value`` if it is an integer in the signed 64-bit range."""
    if type(value) is not int or not INT64_MIN <= value <= INT64_MAX:
        raise InvalidParameter("drift must be a 64-bit integer")
    return value


def check_version(value: object) -> int:
    """Return ``value`` if it is a version a store can increment (0..2**63-2)."""
    if not _is_int(value) or not 0 <= value < INT64_MAX:  # type: ignore[operator]
        raise InvalidParameter("expected_version must be a non-negative 64-bit integer")
    return value  # type: ignore[return-value]


def _check_int(value: object, name: str, low: int, high: int = INT64_MAX) -> None:
    if not _is_int(value) or not low <= value <= high:  # type: ignore[operator]
        raise InvalidParameter(f"{name} must be an integer from {low} to {high}")


def check_credential(credential: object) -> Credential:
    """Return ``credential`` if every field has a type and range a store can hold.

    Only stored states (:data:`~mfa_core.models.STORED_STATES`) may be stored: EXPIRED and
    PENDING_EXPIRED are derived at read time and never written.
    """
    if not isinstance(credential, Credential):
        raise InvalidParameter("credential must be a mfa_core.models.Credential")
    check_id(credential.id, "credential id")
    check_id(credential.user_id, "user_id")
    if not isinstance(credential.kind, CredentialKind):
        raise InvalidParameter("kind must be a CredentialKind")
    if not isinstance(credential.status, CredentialState) or credential.status not in STORED_STATES:
        raise InvalidParameter("status must be PENDING, ACTIVE or DISABLED (a stored state)")
    if not isinstance(credential.algorithm, Algorithm):
        raise InvalidParameter("algorithm must be an Algorithm")
    if type(credential.sealed_key) is not bytes or not credential.sealed_key:
        raise InvalidParameter("sealed_key must be non-empty bytes")
    check_time(credential.created_at, "created_at")
    _check_optional_time(credential.pending_until, "pending_until")
    _check_optional_time(credential.confirmed_at, "confirmed_at")
    _check_optional_time(credential.renewed_at, "renewed_at")
    _check_optional_time(credential.disabled_at, "disabled_at")
    _check_int(credential.digits, "digits", 1, 16)
    _check_int(credential.period, "period", 1, 2**31 - 1)
    _check_int(credential.last_accepted, "last_accepted", -1)
    check_drift(credential.drift)
    _check_int(credential.version, "version", 0)
    if type(credential.label) is not str or len(credential.label) > MAX_ID_LENGTH:
        raise InvalidParameter(f"label must be a string of at most {MAX_ID_LENGTH} characters")
    _check_utf8(credential.label, "label")
    if credential.replaces is not None:
        check_id(credential.replaces, "replaces")
    return credential


def check_recovery_records(records: object) -> tuple[RecoveryRecord, ...]:
    """Return ``records`` as a tuple if it is a sequence of
    :class:`~mfa_core.recovery.RecoveryRecord` with distinct ids (at most 1000)."""
    if isinstance(records, str | bytes) or not isinstance(records, Sequence):
        raise InvalidParameter("records must be a sequence of RecoveryRecord")
    result = tuple(records)
    if len(result) > _MAX_RECOVERY_RECORDS:
        raise InvalidParameter(f"a set holds at most {_MAX_RECOVERY_RECORDS} recovery codes")
    if not all(isinstance(record, RecoveryRecord) for record in result):
        raise InvalidParameter("records must be a sequence of RecoveryRecord")
    if len({record.id for record in result}) != len(result):
        raise InvalidParameter("recovery record ids must be distinct")
    for record in result:
        check_id(record.id, "record id")
        check_phc(record.phc)
        if record.used_at is not None:
            check_time(record.used_at, "used_at")
    return result


def check_oob_record(record: object) -> OOBRecord:
    """Return ``record`` if it is an :class:`~mfa_core.oob.OOBRecord` a store can hold
    (the record's own constructor checked every field's range)."""
    if not isinstance(record, OOBRecord):
        raise InvalidParameter("record must be a mfa_core.oob.OOBRecord")
    check_id(record.challenge_id, "challenge_id")
    check_id(record.user_id, "user_id")
    return record


def check_send_count(
    key: object, window_start: object, expires_at: object
) -> tuple[str, float, float]:
    """Return the arguments of ``count_send`` if ``key`` is a non-empty string of at most
    :data:`~mfa_core.oob.MAX_SEND_KEY` characters (valid UTF-8, no NUL) and the two times
    are Unix times with ``window_start < expires_at``."""
    if type(key) is not str or not 1 <= len(key) <= MAX_SEND_KEY or "\x00" in key:
        raise InvalidParameter(
            f"key must be a non-empty string of at most {MAX_SEND_KEY} characters without NUL"
        )
    _check_utf8(key, "key")
    start = check_time(window_start, "window_start")
    end = check_time(expires_at, "expires_at")
    if not start < end:
        raise InvalidParameter("expires_at must be after window_start", code=ErrorCode.INVALID_TIME)
    return key, start, end


def check_generation(value: object) -> int:
    """Return ``value`` if it is a challenge generation (a non-negative 64-bit integer)."""
    if not _is_int(value) or not 0 <= value <= INT64_MAX:  # type: ignore[operator]
        raise InvalidParameter("expected_generation must be a non-negative 64-bit integer")
    return value  # type: ignore[return-value]


def check_phc(phc: object) -> str:
    """Return ``phc`` if it looks like an Argon2id PHC string (``$argon2id$...``, at most
    512 ASCII characters); the recovery module checks the rest when it verifies."""
    if (
        type(phc) is not str
        or not phc.startswith("$argon2id$")
        or len(phc) > _MAX_PHC
        or not phc.isascii()
    ):
        raise InvalidParameter("phc must be an Argon2id PHC string")
    return phc


# -- decoding rows of the SQL-family stores ---------------------------------------------
# SQLiteStore and SQLStore lay their tables out in the same column order. A row is decoded
# by the rules the store applies when it writes (check_credential, check_oob_record,
# check_phc, the _validate time rules): a row that a store would never write (a tampered
# or corrupt database: an id None, period 0, digits 99, a NaN or 10**400 time, text where
# a number belongs) is a StoreError naming the store, never a ValueError, an
# OverflowError or a credential the service then trips over. The error carries no chain
# (the column's value could be anything, a secret included).

_ROW_ERRORS: Final = (MFAError, ValueError, TypeError, ArithmeticError, IndexError)


def _as_int(value: object) -> int:
    """An integer column's value: an int, or a float holding a whole number; anything else
    (a fraction, text, a bool, NaN, inf) is a row that does not decode."""
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    raise ValueError("not an integer")


def _as_bytes(value: object) -> bytes:
    """A BLOB/BYTEA column's value (``bytes(5)`` would quietly make five zero bytes)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise TypeError("not a byte string")


def _as_text(value: object) -> str:
    """A TEXT column's value: a ``str`` (a number or ``None`` is a row that does not
    decode; the write rules check the rest)."""
    if type(value) is str:
        return value
    raise TypeError("not text")


def _as_time(value: object) -> float:
    """A REAL time column's value, by the rules a store writes times with (an int or
    float, finite, non-negative, at most ``MAX_TIME``; never converted from text)."""
    if type(value) is not float and type(value) is not int:
        raise TypeError("not a time")
    return _validate.check_time(value, "time")


def _as_opt_time(value: object) -> float | None:
    return None if value is None else _as_time(value)


def opt_float(value: float | None) -> float | None:
    """``None`` or the value as a float (SQLite may return whole REAL values as int)."""
    return None if value is None else float(value)


def credential_from_row(row: Sequence[Any], store: str) -> Credential:
    """Decode a credentials row (columns in :class:`~mfa_core.models.Credential` order)
    and check it by :func:`check_credential`, the rule the store writes by."""
    try:
        replaces = row[13]
        credential = Credential(
            id=_as_text(row[0]),
            user_id=_as_text(row[1]),
            kind=CredentialKind(row[2]),
            sealed_key=_as_bytes(row[3]),
            created_at=_as_time(row[4]),
            status=CredentialState(row[5]),
            algorithm=Algorithm(row[6]),
            digits=_as_int(row[7]),
            period=_as_int(row[8]),
            label=_as_text(row[9]),
            pending_until=_as_opt_time(row[10]),
            confirmed_at=_as_opt_time(row[11]),
            renewed_at=_as_opt_time(row[12]),
            replaces=None if replaces is None else _as_text(replaces),
            disabled_at=_as_opt_time(row[14]),
            last_accepted=_as_int(row[15]),
            drift=_as_int(row[16]),
            version=_as_int(row[17]),
        )
        return check_credential(credential)
    except _ROW_ERRORS:
        pass
    raise StoreError(f"the {store} store holds a credential row it cannot read")


def recovery_from_row(row: Sequence[Any], store: str) -> RecoveryRecord:
    """Decode a recovery-code row: id, tag, PHC string, used_at."""
    try:
        return RecoveryRecord(
            id=_as_text(row[0]),
            tag=_as_text(row[1]),
            phc=check_phc(row[2]),
            used_at=_as_opt_time(row[3]),
        )
    except _ROW_ERRORS:
        pass
    raise StoreError(f"the {store} store holds a recovery code row it cannot read")


def challenge_from_row(row: Sequence[Any], store: str) -> OOBRecord:
    """Decode an out-of-band challenge row (columns in :class:`~mfa_core.oob.OOBRecord`
    order; ``used`` a boolean or 0/1; ``destination_hash`` NULL or 32 bytes, absent from
    a row of an older layout)."""
    try:
        used = row[13]
        if type(used) is not bool and (type(used) is not int or used not in (0, 1)):
            raise ValueError("used must be a boolean")
        bound = row[14] if len(row) > 14 else None
        return check_oob_record(
            OOBRecord(
                challenge_id=_as_text(row[0]),
                user_id=_as_text(row[1]),
                purpose=OOBPurpose(row[2]),
                channel=OOBChannel(row[3]),
                destination_hint=_as_text(row[4]),
                code_hash=_as_bytes(row[5]),
                digits=_as_int(row[6]),
                issued_at=_as_time(row[7]),
                expires_at=_as_time(row[8]),
                max_attempts=_as_int(row[9]),
                attempts=_as_int(row[10]),
                resend_count=_as_int(row[11]),
                generation=_as_int(row[12]),
                used=bool(used),
                destination_hash=None if bound is None else _as_bytes(bound),
            )
        )
    except _ROW_ERRORS:
        pass
    raise StoreError(f"the {store} store holds a challenge row it cannot read")


def check_limits(limits: object) -> ThrottleConfig:
    """Return ``limits`` if it is a :class:`~mfa_core.throttle.ThrottleConfig` (whose own
    checks have already run when it was made)."""
    if not isinstance(limits, ThrottleConfig):
        raise InvalidParameter("limits must be a mfa_core.throttle.ThrottleConfig")
    return limits


# -- generic forwarding of the port methods --------------------------------------------------

_PORTS: Final = (
    CredentialStore,
    FailureCounter,
    AttemptStore,
    RecoveryCodeStore,
    OOBChallengeStore,
    CodeSender,
    WebAuthnStore,
)


def _collect_port_methods() -> dict[str, tuple[type, Callable[..., Any]]]:
    methods: dict[str, tuple[type, Callable[..., Any]]] = {}
    for port in _PORTS:
        for name, member in vars(port).items():
            if not name.startswith("_") and inspect.isfunction(member):
                methods.setdefault(name, (port, member))
    return methods


_PORT_METHODS: Final = _collect_port_methods()


def port_methods() -> Mapping[str, tuple[type, Callable[..., Any]]]:
    """Every method of the blocking store Protocols of :mod:`mfa_core.ports`
    (credential store, failure counter, attempt store, recovery codes, out-of-band
    challenges, code sender), by name: the Protocol that declares it and its function."""
    return _PORT_METHODS


def ports_of(store: object) -> frozenset[str]:
    """The names of the port methods ``store`` has (callable attributes)."""
    return frozenset(name for name in _PORT_METHODS if callable(getattr(store, name, None)))


MethodMaker = Callable[[str, type, Callable[..., Any]], Callable[..., Any]]
"""Makes the forwarding method ``name`` (declared by a Protocol as the given function)."""

_SPECIALISED: dict[tuple[type, frozenset[str], MethodMaker], type] = {}
_SPECIALISED_GUARD = threading.Lock()


def with_port_methods(instance: object, names: frozenset[str], make: MethodMaker) -> None:
    """Give ``instance`` exactly the port methods ``names``, made by ``make``.

    The methods become real class attributes (so ``isinstance`` with a runtime-checkable
    Protocol, ``inspect`` and ``getattr_static`` all see them, and only them): the
    instance's class is swapped for a cached subclass of it that also inherits, *after*
    every class of the original hierarchy, a mixin holding the made methods. A subclass
    that overrides a port method therefore keeps its override, and its ``super()`` call
    reaches the forwarding method. The classes involved must not add ``__slots__`` after
    the instance was made (the swap needs an identical layout).
    """
    own = type(instance)
    base: type = own.__dict__.get("_port_base", own)
    key = (base, names, make)
    with _SPECIALISED_GUARD:
        specialised = _SPECIALISED.get(key)
        if specialised is None:
            forwarders = {name: make(name, *_PORT_METHODS[name]) for name in sorted(names)}
            mixin = type(
                f"_{base.__name__}PortMethods",
                (),
                {"__slots__": (), "__module__": base.__module__, **forwarders},
            )
            specialised = type(
                base.__name__,
                (base, mixin),
                {
                    "__slots__": (),
                    "__module__": base.__module__,
                    "__qualname__": base.__qualname__,
                    "__doc__": base.__doc__,
                    "_port_base": base,
                },
            )
            _SPECIALISED[key] = specialised
    instance.__class__ = specialised


MAX_PAGE: Final = 10_000
"""Most credential ids one :meth:`~mfa_core.ports.StoreMaintenance.credential_ids` call returns."""


def check_page(after: object, limit: object) -> tuple[str | None, int]:
    """Check the arguments of ``credential_ids``: ``after`` an id or ``None``, ``limit``
    an int from 1 to :data:`MAX_PAGE`."""
    start = None if after is None else check_id(after, "after")
    if type(limit) is not int or not 1 <= limit <= MAX_PAGE:
        raise InvalidParameter(f"limit must be an int from 1 to {MAX_PAGE}")
    return start, limit
