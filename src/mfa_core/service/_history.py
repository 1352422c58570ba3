"""The service's own per-user history: what it did, for :func:`decide`.

One small record per user, kept as a credential of kind
:attr:`~mfa_core.models.CredentialKind.HISTORY` in the credential store (so every store
holds it with no new table or port): status DISABLED (it never authenticates), its
``sealed_key`` the sealed JSON of ``{"checks": {factor: time}, "reset": time,
"confirmed": {kind: time}}``, its id derived from the user id, changed only by the
store's compare-and-set on ``version`` (re-read and merged on a concurrent change; every
entry only ever grows, so merging is taking the later time).

What is noted here: successful SMS/email code checks (the last check per factor), an
administrator's reset of a user's factors, and confirmed destinations. What is derived
instead, to keep a verify at two round trips: TOTP checks from the credential's last
accepted step (``(last_accepted - drift) * period``: the start of the step the server was
in, never later than the check) and recovery-code checks from the records' ``used_at``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Final

import attrs

from ..errors import MFAError
from ..models import Credential, CredentialKind, CredentialState
from ..ports import CredentialStore
from ._context import Context, checked
from ._effects import Flow, call

__all__ = ["History", "history_id", "history_of", "note_flow"]

_logger = logging.getLogger("mfa_core.service")
_CAS_ATTEMPTS: Final = 5
_HISTORY: Final = CredentialKind.HISTORY


@attrs.frozen
class History:
    """The decoded record (internal)."""

    checks: Mapping[str, float] = attrs.field(factory=dict)
    reset: float | None = None
    confirmed: Mapping[str, float] = attrs.field(factory=dict)

    def merged(self, other: History) -> History:
        """Every entry at its later time."""
        return History(
            checks=_later(self.checks, other.checks),
            reset=_max(self.reset, other.reset),
            confirmed=_later(self.confirmed, other.confirmed),
        )

    def to_bytes(self) -> bytes:
        data = {"checks": dict(self.checks), "reset": self.reset, "confirmed": dict(self.confirmed)}
        return json.dumps(data, sort_keys=True, allow_nan=False).encode("ascii")


def _max(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else max(a, b)


def _later(a: Mapping[str, float], b: Mapping[str, float]) -> dict[str, float]:
    out = dict(a)
    for key, value in b.items():
        out[key] = value if key not in out else max(out[key], value)
    return out


def _times(value: object) -> dict[str, float]:
    if not isinstance(value, dict):
        return {}
    return {
        k: float(v)
        for k, v in value.items()
        if type(k) is str and type(v) in (int, float) and v == v  # noqa: PLR0124 - NaN out
    }


def _decode(raw: bytes) -> History:
    try:
        data = json.loads(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return History()
    if not isinstance(data, dict):
        return History()
    reset = data.get("reset")
    if not isinstance(reset, int | float) or isinstance(reset, bool):
        reset = None
    return History(
        checks=_times(data.get("checks")),
        reset=None if reset is None else float(reset),
        confirmed=_times(data.get("confirmed")),
    )


def history_id(user_id: str) -> str:
    """The id of the user's history record (a hash of the user id: fixed length, ASCII)."""
    digest = hashlib.sha256(b"mfa_core/history/v1\x00" + user_id.encode("utf-8", "replace"))
    return "history." + base64.urlsafe_b64encode(digest.digest()).decode("ascii").rstrip("=")


def history_of(ctx: Context, credentials: Sequence[Credential]) -> History:
    """The user's history from a list of their credentials (empty when there is none or it
    cannot be unsealed: history only ever informs a decision, it never grants one)."""
    found = History()
    for credential in credentials:
        if credential.kind is _HISTORY:
            try:
                found = found.merged(_decode(ctx.unseal(credential)))
            except MFAError:
                _logger.warning("the history record could not be unsealed; ignored")
    return found


def note_flow(ctx: Context, user_id: str, now: float, update: History) -> Flow[None]:
    """Merge ``update`` into the user's record (created on first use) by compare-and-set.
    Best effort: a failure is logged, never raised (the operation it records is done)."""
    try:
        yield from _note_flow(ctx, user_id, now, update)
    except Exception:
        _logger.warning("the history record was not updated", exc_info=True)


def _note_flow(ctx: Context, user_id: str, now: float, update: History) -> Flow[None]:
    record_id = history_id(user_id)
    for _ in range(_CAS_ATTEMPTS):
        current = yield from checked(call(CredentialStore.get, record_id))
        if current is None:
            record = Credential(
                id=record_id,
                user_id=user_id,
                kind=_HISTORY,
                sealed_key=ctx.seal(update.to_bytes(), record_id),
                created_at=now,
                status=CredentialState.DISABLED,
                disabled_at=now,
            )
            try:
                yield from checked(call(CredentialStore.add, record))
            except MFAError:
                continue  # made concurrently: merge into it
            return
        merged = _decode(ctx.unseal(current)).merged(update)
        changed = attrs.evolve(current, sealed_key=ctx.seal(merged.to_bytes(), record_id))
        version = current.version
        if (yield from checked(call(CredentialStore.update, changed, expected_version=version))):
            return
    _logger.warning("the history record kept changing; this entry was not noted")
