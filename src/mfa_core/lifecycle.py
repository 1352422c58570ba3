"""The credential lifecycle: one transition table, expiry derived at read time.

Pure, I/O-free: time is the ``now`` argument (Unix seconds). The service applies
:func:`transition` to a credential's *effective* state (:func:`effective_state`) and writes
the result with a compare-and-set; nothing here touches a store.

States (:class:`~mfa_core.models.CredentialState`):

* ``NONE`` - no credential yet; enrolment makes one (``ENROL``).
* ``PENDING`` - key generated and shown, not yet confirmed with a code. Never authenticates.
* ``PENDING_EXPIRED`` - a pending enrolment past its deadline (``pending_until``, by default
  :attr:`LifecycleConfig.pending_ttl` = 30 minutes after it started). Derived, never stored;
  it can only be dropped. A pending enrolment also dies (is dropped) after
  :attr:`LifecycleConfig.max_confirmation_attempts` wrong confirmation codes.
* ``ACTIVE`` - confirmed; authenticates.
* ``EXPIRED`` - ACTIVE but not renewed for :attr:`LifecycleConfig.max_age` (180 days).
  Derived, never stored. It still authenticates and every success says renewal is due,
  unless :attr:`LifecycleConfig.strict_expiry` (NIST SP 800-63B §4.4) makes it refuse.
* ``DISABLED`` - switched off by the user (after a step-up) or an administrator, or
  superseded by a confirmed renewal. Never authenticates.

Removal (``None`` in :data:`TRANSITIONS`) deletes the credential: an administrator's reset
(lost device) or dropping an unconfirmed enrolment.

Renewal rotates a key without locking anyone out: ``RENEW`` on an ACTIVE or EXPIRED
credential leaves it as it is while the service starts a new PENDING credential that
``replaces`` it; when that one is confirmed, the old one gets ``SUPERSEDE``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import attrs

from ._validate import check_duration as _check_duration
from ._validate import check_time as _check_time
from ._validate import int_in as _int_in
from .errors import IllegalTransition, InvalidParameter
from .models import STORED_STATES, Credential, CredentialState

__all__ = [
    "STORED_FORM",
    "TRANSITIONS",
    "LifecycleConfig",
    "LifecycleEvent",
    "can_authenticate",
    "effective_state",
    "renewal_due",
    "state_diagram",
    "stored_state",
    "transition",
]

_DEFAULT_PENDING_TTL: Final = 1800.0
_DEFAULT_CONFIRMATION_ATTEMPTS: Final = 5
_MAX_CONFIRMATION_ATTEMPTS: Final = 100
_DEFAULT_MAX_AGE: Final = 180 * 86400.0
_MAX_PENDING_TTL: Final = 7 * 86400.0


class LifecycleEvent(enum.StrEnum):
    """Something that happens to a credential. Values are stable (they appear in logs)."""

    ENROL = "enrol"
    """A new credential is created, PENDING until confirmed (from ``NONE``)."""
    CONFIRM = "confirm"
    """A valid code from the new authenticator proves possession: PENDING -> ACTIVE."""
    RENEW = "renew"
    """Renewal of an ACTIVE or EXPIRED credential starts; it keeps its state (and keeps
    working) while a new PENDING credential that replaces it awaits confirmation."""
    SUPERSEDE = "supersede"
    """The renewal that replaces this credential was confirmed: it is DISABLED."""
    DISABLE = "disable"
    """The user (after a step-up) or an administrator switches a credential off."""
    ADMIN_RESET = "admin_reset"
    """An administrator removes the credential (lost device); the user enrols again."""
    ABANDON = "abandon"
    """An unconfirmed enrolment (pending or past its deadline) is dropped."""


_S = CredentialState
_E = LifecycleEvent

TRANSITIONS: Final[Mapping[tuple[CredentialState, LifecycleEvent], CredentialState | None]] = (
    MappingProxyType(
        {
            (_S.NONE, _E.ENROL): _S.PENDING,
            (_S.PENDING, _E.CONFIRM): _S.ACTIVE,
            (_S.PENDING, _E.ABANDON): None,
            (_S.PENDING, _E.ADMIN_RESET): None,
            (_S.PENDING_EXPIRED, _E.ABANDON): None,
            (_S.PENDING_EXPIRED, _E.ADMIN_RESET): None,
            (_S.ACTIVE, _E.RENEW): _S.ACTIVE,
            (_S.ACTIVE, _E.SUPERSEDE): _S.DISABLED,
            (_S.ACTIVE, _E.DISABLE): _S.DISABLED,
            (_S.ACTIVE, _E.ADMIN_RESET): None,
            (_S.EXPIRED, _E.RENEW): _S.EXPIRED,
            (_S.EXPIRED, _E.SUPERSEDE): _S.DISABLED,
            (_S.EXPIRED, _E.DISABLE): _S.DISABLED,
            (_S.EXPIRED, _E.ADMIN_RESET): None,
            (_S.DISABLED, _E.ADMIN_RESET): None,
        }
    )
)
"""THE lifecycle table over effective states: ``(state, event) -> target``.

A ``None`` target means the credential is removed. A pair that is not in the table is an
illegal transition. A derived target (``EXPIRED``) is stored as ``ACTIVE``: expiry is
recomputed from the timestamps at every read.
"""

# Changes that happen by time alone (derived at read time, never applied as events); shown
# in the diagram so that it tells the whole story.
_TIME_EDGES: Final = (
    (_S.PENDING, _S.PENDING_EXPIRED, "pending_ttl passes"),
    (_S.ACTIVE, _S.EXPIRED, "max_age passes"),
)


def _check_now(now: object, name: str = "now") -> float:
    return _check_time(now, name, allow_negative=True)


def _parse_state(state: object) -> CredentialState:
    if isinstance(state, CredentialState):
        return state
    if isinstance(state, str):
        try:
            return CredentialState(state)
        except ValueError:
            pass
    raise InvalidParameter("state must be a CredentialState")


def _parse_event(event: object) -> LifecycleEvent:
    if isinstance(event, LifecycleEvent):
        return event
    if isinstance(event, str):
        try:
            return LifecycleEvent(event)
        except ValueError:
            pass
    raise InvalidParameter("event must be a LifecycleEvent")


def transition(state: CredentialState, event: LifecycleEvent) -> CredentialState | None:
    """Return the state ``event`` leads to from ``state`` (``None``: the credential is removed).

    ``state`` is an effective state (see :func:`effective_state`). Raises
    :class:`~mfa_core.errors.IllegalTransition`, naming the state and the event, for a pair
    that is not in :data:`TRANSITIONS`, and :class:`~mfa_core.errors.InvalidParameter` for
    something that is not a state or an event. It is a pure lookup: nothing changes.
    """
    parsed_state = _parse_state(state)
    parsed_event = _parse_event(event)
    try:
        return TRANSITIONS[parsed_state, parsed_event]
    except KeyError:
        raise IllegalTransition(
            f"illegal lifecycle transition: event {parsed_event.value!r} "
            f"is not allowed in state {parsed_state.value!r}"
        ) from None


def _positive_seconds(value: object, name: str, *, upper: float) -> None:
    _check_duration(value, name, low=0.0, high=upper, low_open=True)


@attrs.frozen
class LifecycleConfig:
    """Deadlines of the lifecycle.

    ``pending_ttl``: seconds an enrolment may stay unconfirmed (default 1800, 30 minutes;
    at most 7 days). Thirty minutes is what a person needs to install an authenticator
    app from a store (sign-in to the store, download, first start) or to wait for an SMS,
    with an interruption, while the unconfirmed key (shown on screen, perhaps photographed)
    stays usable for enrolment only that long; a pending enrolment never authenticates.
    ``max_confirmation_attempts``: wrong confirmation codes after which the pending
    enrolment is dropped (default 5, 1 to 100); they are counted per enrolment, never
    on the user's failure counter, so they lock nothing else. ``max_age``: seconds after
    confirmation or the last renewal at which a credential becomes EXPIRED (default 180
    days; ``math.inf`` means never).
    ``strict_expiry``: EXPIRED credentials refuse to authenticate (NIST SP 800-63B §4.4)
    instead of working with a renewal nudge. Nonsense raises
    :class:`~mfa_core.errors.InvalidParameter`.
    """

    pending_ttl: float = _DEFAULT_PENDING_TTL
    """Seconds a PENDING enrolment may wait for its confirming code."""
    max_age: float = _DEFAULT_MAX_AGE
    """Seconds from ``renewed_at`` after which an ACTIVE credential is EXPIRED."""
    strict_expiry: bool = False
    """Whether an EXPIRED credential refuses to authenticate."""
    max_confirmation_attempts: int = _DEFAULT_CONFIRMATION_ATTEMPTS
    """Wrong confirmation codes a pending enrolment survives before it is dropped."""

    def __attrs_post_init__(self) -> None:
        _positive_seconds(self.pending_ttl, "pending_ttl", upper=_MAX_PENDING_TTL)
        _positive_seconds(self.max_age, "max_age", upper=math.inf)
        if not isinstance(self.strict_expiry, bool):
            raise InvalidParameter("strict_expiry must be a bool")
        _int_in(
            self.max_confirmation_attempts,
            1,
            _MAX_CONFIRMATION_ATTEMPTS,
            "max_confirmation_attempts",
        )


def _pending_deadline(credential: Credential, config: LifecycleConfig) -> float:
    if credential.pending_until is not None:
        return _check_now(credential.pending_until, "pending_until")
    return _check_now(credential.created_at, "created_at") + config.pending_ttl


def _validity_start(credential: Credential) -> float:
    # Each stored time is checked (a huge int would overflow the subtraction).
    if credential.renewed_at is not None:
        return _check_now(credential.renewed_at, "renewed_at")
    if credential.confirmed_at is not None:
        return _check_now(credential.confirmed_at, "confirmed_at")
    return _check_now(credential.created_at, "created_at")


def effective_state(credential: Credential, now: float, config: LifecycleConfig) -> CredentialState:
    """Return the state of ``credential`` at ``now``, deriving expiry from its timestamps.

    * PENDING and ``now > pending_until`` (strictly past the deadline; without
      ``pending_until``: ``created_at + pending_ttl``) -> PENDING_EXPIRED;
    * ACTIVE and ``now - renewed_at >= max_age`` (without ``renewed_at``: counted from
      ``confirmed_at``, else ``created_at``) -> EXPIRED;
    * otherwise the stored status (PENDING, ACTIVE or DISABLED).

    Raises :class:`~mfa_core.errors.InvalidParameter` for a non-finite ``now`` or a
    stored status that is not one of :data:`~mfa_core.models.STORED_STATES`.
    """
    if not isinstance(credential, Credential):
        raise InvalidParameter("credential must be a Credential")
    if not isinstance(config, LifecycleConfig):
        raise InvalidParameter("config must be a LifecycleConfig")
    at = _check_now(now)
    status = credential.status
    if status not in STORED_STATES:
        raise InvalidParameter(
            f"a stored credential status must be pending, active or disabled, not {status!s}"
        )
    if status == CredentialState.PENDING:
        if at > _pending_deadline(credential, config):
            return CredentialState.PENDING_EXPIRED
        return CredentialState.PENDING
    if status == CredentialState.ACTIVE:
        if at - _validity_start(credential) >= config.max_age:
            return CredentialState.EXPIRED
        return CredentialState.ACTIVE
    return CredentialState.DISABLED


def can_authenticate(state: CredentialState, config: LifecycleConfig) -> bool:
    """Whether a credential in effective ``state`` may verify a code.

    ACTIVE always; EXPIRED unless ``config.strict_expiry``; never NONE, PENDING,
    PENDING_EXPIRED or DISABLED.
    """
    parsed = _parse_state(state)
    if not isinstance(config, LifecycleConfig):
        raise InvalidParameter("config must be a LifecycleConfig")
    if parsed == CredentialState.ACTIVE:
        return True
    return parsed == CredentialState.EXPIRED and not config.strict_expiry


def renewal_due(credential: Credential, now: float, config: LifecycleConfig) -> bool:
    """Whether the user should renew (re-enrol) ``credential``: it is EXPIRED at ``now``.

    Pending, disabled and still-young credentials are never due.
    """
    return effective_state(credential, now, config) == CredentialState.EXPIRED


def _node(state: CredentialState | None) -> str:
    if state is None or state == CredentialState.NONE:
        return "[*]"
    return state.name


def state_diagram() -> str:
    """Return a Mermaid ``stateDiagram-v2`` of :data:`TRANSITIONS`.

    ``[*]`` is "no credential" (the start, and the end of a removal). One edge per table
    entry, labelled with the event, in table order; the two changes that happen by time
    alone (derived at read time) follow, labelled as such. ``docs/lifecycle.md`` holds
    exactly this text (a test keeps it so).
    """
    lines = ["stateDiagram-v2"]
    for (source, event), target in TRANSITIONS.items():
        lines.append(f"    {_node(source)} --> {_node(target)} : {event.value}")
    lines.append("    %% derived at read time from timestamps, never stored")
    for source, target, label in _TIME_EDGES:
        lines.append(f"    {_node(source)} --> {_node(target)} : {label}")
    return "\n".join(lines) + "\n"


# -- persistence rules -------------------------------------------------------------------------

STORED_FORM: Final[Mapping[CredentialState, CredentialState]] = MappingProxyType(
    {
        CredentialState.EXPIRED: CredentialState.ACTIVE,
        CredentialState.PENDING_EXPIRED: CredentialState.PENDING,
    }
)
"""Effective states that are never written: expiry is derived from the timestamps at read
time, so a credential that :func:`transition` leads to EXPIRED (or PENDING_EXPIRED) is
stored as ACTIVE (or PENDING). Every other target of :data:`TRANSITIONS` is stored as is."""


def stored_state(target: CredentialState) -> CredentialState:
    """The status a store keeps for a credential whose effective state is ``target``
    (:data:`STORED_FORM`; the service writes a transition's target through this)."""
    return STORED_FORM.get(target, target)
