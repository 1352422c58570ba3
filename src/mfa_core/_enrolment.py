"""The enrolment flows of the service front ends: enrol, confirm, renew, cancel.

* ``begin_enrolment`` makes a key, seals it, stores a PENDING
  credential and returns the provisioning URI and the base32 secret (shown once).
* ``confirm_enrolment`` proves possession: the code's step/counter is
  claimed (it counts as used), the credential becomes ACTIVE, and MFA_ENABLED is emitted
  when the user had no usable credential before (the host may sign other sessions out).
* ``begin_renewal`` starts a new PENDING credential that ``replaces`` an
  active or expired one; the old one keeps working until the new one is confirmed, then it
  is superseded. Until that write is made, the confirmed replacement already keeps the old
  credential from authenticating (derived at read time), so no failure leaves two working.
* ``cancel_enrolment`` drops a pending enrolment; expired pending ones
  are dropped on the user's next enrolment.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence

import attrs

from ._effects import Credentials, Flow
from ._service_base import (
    Enrolment,
    ServiceCore,
    VerificationResult,
    VerifyReason,
    check_id,
    check_label,
    checked,
    find,
    new_credential_id,
    parse_kind,
)
from .errors import CredentialNotFound, IllegalTransition, MFAError
from .keys import b32encode_key, generate_key
from .lifecycle import LifecycleEvent, effective_state, transition
from .models import Credential, CredentialKind, CredentialState, Event, EventType
from .otp import DEFAULT_PERIOD, normalize_code
from .uri import build_uri

__all__ = ["EnrolmentFlows"]

_logger = logging.getLogger("mfa_core.service")


class EnrolmentFlows(ServiceCore):
    """Enrolment, confirmation, renewal and cancellation of credentials, as flows."""

    __slots__ = ()

    def _begin_enrolment_flow(
        self,
        user_id: str,
        *,
        kind: CredentialKind | str = CredentialKind.TOTP,
        label: str = "",
        account: str | None = None,
    ) -> Flow[Enrolment]:
        check_id(user_id, "user_id")
        otp_kind = parse_kind(kind)
        check_label(label)
        now = self._now()
        credentials = yield from checked(Credentials.list_for_user(user_id))
        yield from self._drop_abandoned_flow(credentials, now)
        return (yield from self._start_flow(user_id, otp_kind, label, account, now, replaces=None))

    def _begin_renewal_flow(
        self,
        user_id: str,
        credential_id: str,
        *,
        label: str | None = None,
        account: str | None = None,
    ) -> Flow[Enrolment]:
        check_id(user_id, "user_id")
        check_id(credential_id, "credential_id")
        if label is not None:
            check_label(label)
        now = self._now()
        credentials = yield from checked(Credentials.list_for_user(user_id))
        old = find(credentials, credential_id)
        state = effective_state(old, now, self._config.lifecycle)
        if old.id in self._superseded(credentials):
            raise IllegalTransition(
                "credential was already replaced by a confirmed renewal; event renew refused"
            )
        transition(state, LifecycleEvent.RENEW)
        for credential in credentials:
            if credential.replaces == old.id and credential.status == CredentialState.PENDING:
                yield from self._abandon_flow(credential, now, "renewal_restarted")
        return (
            yield from self._start_flow(
                user_id,
                old.kind,
                old.label if label is None else label,
                account,
                now,
                replaces=old.id,
            )
        )

    def _cancel_enrolment_flow(self, user_id: str, credential_id: str) -> Flow[None]:
        check_id(user_id, "user_id")
        check_id(credential_id, "credential_id")
        now = self._now()
        credentials = yield from checked(Credentials.list_for_user(user_id))
        yield from self._abandon_flow(find(credentials, credential_id), now, "cancelled")

    def _confirm_enrolment_flow(
        self, user_id: str, credential_id: str, code: object
    ) -> Flow[VerificationResult]:
        check_id(user_id, "user_id")
        check_id(credential_id, "credential_id")
        now = self._now()
        try:
            credentials = yield from Credentials.list_for_user(user_id)
        except Exception as exc:
            return self._broken(user_id, now, VerifyReason.STORE_ERROR, exc)
        pending = find(credentials, credential_id)
        transition(effective_state(pending, now, self._config.lifecycle), LifecycleEvent.CONFIRM)
        gate = yield from self._gate_flow(user_id, now)
        if isinstance(gate, VerificationResult):
            return gate
        before = gate
        had_usable = bool(self._usable(credentials, now)[0])
        candidate = normalize_code(code, pending.digits)
        if candidate is None:
            malformed = VerifyReason.MALFORMED
            return (yield from self._fail_flow(user_id, now, before, malformed, pending.id))
        try:
            key = self._sealer.unseal(pending.sealed_key, credential_id=pending.id)
        except Exception as exc:
            return self._broken(user_id, now, VerifyReason.SEALING_ERROR, exc, pending.id)
        match, replayed = self._scan(pending, key, candidate, now, learned=False)
        if match is None:
            reason = VerifyReason.REPLAYED if replayed else VerifyReason.INVALID_CODE
            return (yield from self._fail_flow(user_id, now, before, reason, pending.id))
        # Claim first: exactly one of concurrent confirmations with the same code wins.
        result = yield from self._succeed_flow(user_id, now, before, match, None, reset=False)
        if not result.accepted:
            return result
        try:
            yield from self._apply_flow(
                pending,
                LifecycleEvent.CONFIRM,
                now,
                lambda c: attrs.evolve(c, confirmed_at=now, renewed_at=now, pending_until=None),
            )
        except (IllegalTransition, CredentialNotFound):
            return self._refuse(user_id, now, VerifyReason.CONFLICT, credential_id=pending.id)
        except MFAError as exc:
            return self._broken(user_id, now, VerifyReason.STORE_ERROR, exc, pending.id)
        self._emit(
            Event(
                type=EventType.ENROLMENT_CONFIRMED,
                user_id=user_id,
                at=now,
                credential_id=pending.id,
                reason=VerifyReason.OK.value,
                data={"offset": match.offset, "drift": match.drift},
            )
        )
        if pending.replaces is not None:
            yield from self._supersede_flow(credentials, pending, now)
        if not had_usable:
            self._emit(
                Event(
                    type=EventType.MFA_ENABLED,
                    user_id=user_id,
                    at=now,
                    credential_id=pending.id,
                )
            )
        return result

    # -- helpers -----------------------------------------------------------------------------

    def _start_flow(
        self,
        user_id: str,
        kind: CredentialKind,
        label: str,
        account: str | None,
        now: float,
        *,
        replaces: str | None,
    ) -> Flow[Enrolment]:
        config = self._config
        status = transition(CredentialState.NONE, LifecycleEvent.ENROL)  # PENDING
        key = generate_key(config.key_bytes)
        credential_id = new_credential_id()
        is_totp = kind == CredentialKind.TOTP
        uri = build_uri(
            key,
            account=user_id if account is None else account,
            issuer=config.issuer,
            kind=kind,
            digits=config.digits,
            algorithm=config.algorithm,
            period=config.period if is_totp else DEFAULT_PERIOD,
            counter=None if is_totp else 0,
        )
        sealed = self._seal(key, credential_id)
        pending_until = now + config.lifecycle.pending_ttl
        credential = Credential(
            id=credential_id,
            user_id=user_id,
            kind=kind,
            sealed_key=sealed,
            created_at=now,
            status=CredentialState.PENDING if status is None else status,
            algorithm=config.algorithm,
            digits=config.digits,
            period=config.period if is_totp else DEFAULT_PERIOD,
            label=label,
            pending_until=pending_until,
            replaces=replaces,
        )
        yield from checked(Credentials.add(credential))
        self._emit(
            Event(
                type=(
                    EventType.ENROLMENT_STARTED
                    if replaces is None
                    else EventType.CREDENTIAL_RENEWAL_STARTED
                ),
                user_id=user_id,
                at=now,
                credential_id=credential_id,
                data={"kind": kind.value, "replaces": replaces},
            )
        )
        return Enrolment(
            credential_id=credential_id,
            user_id=user_id,
            kind=kind,
            expires_at=pending_until,
            replaces=replaces,
            secret=b32encode_key(key),
            uri=uri,
        )

    def _abandon_flow(self, credential: Credential, now: float, reason: str) -> Flow[None]:
        yield from self._apply_flow(credential, LifecycleEvent.ABANDON, now)
        self._emit(
            Event(
                type=EventType.CREDENTIAL_REMOVED,
                user_id=credential.user_id,
                at=now,
                credential_id=credential.id,
                reason=reason,
            )
        )

    def _drop_abandoned_flow(self, credentials: Sequence[Credential], now: float) -> Flow[None]:
        lifecycle = self._config.lifecycle
        for credential in credentials:
            if effective_state(credential, now, lifecycle) == CredentialState.PENDING_EXPIRED:
                with contextlib.suppress(CredentialNotFound):  # dropped concurrently
                    yield from self._abandon_flow(credential, now, "pending_expired")

    def _supersede_flow(
        self, credentials: Sequence[Credential], new: Credential, now: float
    ) -> Flow[None]:
        """Retire the credential a confirmed renewal replaces, and say so.

        Best effort: the confirmed replacement already keeps the old credential from
        authenticating, so a failure here is logged, not raised.
        """
        replaced = new.replaces
        if replaced is None:
            return
        self._emit(
            Event(
                type=EventType.CREDENTIAL_RENEWED,
                user_id=new.user_id,
                at=now,
                credential_id=new.id,
                data={"replaces": replaced},
            )
        )
        try:
            old = find(credentials, replaced)
            target = yield from self._apply_flow(
                old, LifecycleEvent.SUPERSEDE, now, _disabled_at(now)
            )
        except CredentialNotFound:
            return
        except MFAError as exc:
            _logger.warning(
                "could not retire a superseded credential (%s); it no longer authenticates",
                type(exc).__name__,
                exc_info=exc,
            )
            return
        self._emit(
            Event(
                type=(
                    EventType.CREDENTIAL_REMOVED
                    if target is None
                    else EventType.CREDENTIAL_DISABLED
                ),
                user_id=new.user_id,
                at=now,
                credential_id=replaced,
                reason="superseded",
                data={"replaced_by": new.id},
            )
        )


def _disabled_at(now: float) -> Callable[[Credential], Credential]:
    """Stamp for a transition to DISABLED."""
    return lambda credential: attrs.evolve(credential, disabled_at=now)
