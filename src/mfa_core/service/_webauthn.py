"""The WebAuthn flows: registration, authentication (with a user name or a passkey),
and the keys' lifecycle (list, rename, disable, admin reset).

The pure checks are :mod:`mfa_core.webauthn.ceremony`'s; these flows own the state: the
single-use challenge (ONE atomic consume), the credential record, the signature counter
(ONE compare-and-set) and the per-user failure counter shared with every other factor.
Authentication attempts are admitted and counted before the response is looked at;
registration responses are confirmations (checked against the throttle, only a refused one
counts).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any, Final

import attrs

from ..errors import (
    CredentialNotFound,
    ErrorCode,
    IllegalTransition,
    InvalidParameter,
    MFAError,
    StoreError,
    WebAuthnError,
)
from ..lifecycle import LifecycleEvent, transition
from ..models import CredentialState, Event, EventType, EventValue, FailureState
from ..ports import FailureCounter, WebAuthnStore
from ..webauthn import ceremony as wa
from ..webauthn.config import WebAuthnConfig
from ..webauthn.records import MAX_NICKNAME, Ceremony, WebAuthnCredential
from ._context import Context, admit_flow, check_id, checked, count_failure_flow, fail, gate_flow
from ._effects import Flow, call, cpu
from .results import VerificationResult, VerifyReason, WebAuthnResult

__all__ = [
    "admin_reset_webauthn_flow",
    "begin_authentication_flow",
    "begin_registration_flow",
    "disable_webauthn_flow",
    "finish_authentication_flow",
    "finish_registration_flow",
    "list_webauthn_flow",
    "rename_webauthn_flow",
]

_R: Final = wa.WebAuthnReason
_COARSE: Final = {
    _R.MALFORMED: VerifyReason.MALFORMED,
    _R.REPLAYED: VerifyReason.REPLAYED,
    _R.CHALLENGE_REUSED: VerifyReason.REPLAYED,
    _R.CLONED_AUTHENTICATOR: VerifyReason.REPLAYED,
    _R.STORE_ERROR: VerifyReason.STORE_ERROR,
    _R.THROTTLED: VerifyReason.THROTTLED,
    _R.LOCKED: VerifyReason.LOCKED,
    _R.CREDENTIAL_DISABLED: VerifyReason.NO_CREDENTIAL,
}
_FINE: Final = {
    VerifyReason.THROTTLED: _R.THROTTLED,
    VerifyReason.LOCKED: _R.LOCKED,
    VerifyReason.STORE_ERROR: _R.STORE_ERROR,
}
_REG_FAILED: Final = EventType.WEBAUTHN_REGISTRATION_FAILED
_AUTH_FAILED: Final = EventType.VERIFICATION_FAILED


def _config(ctx: Context) -> WebAuthnConfig:
    config = ctx.webauthn
    if config is None:
        raise WebAuthnError(
            "security keys are not configured (pass webauthn= and webauthn_config=)",
            code=ErrorCode.WEBAUTHN_NOT_CONFIGURED,
        )
    return config


def _result(
    result: VerificationResult,
    fine: wa.WebAuthnReason | None,
    *,
    user_id: str | None,
    credential_id: str | None = None,
) -> WebAuthnResult:
    return WebAuthnResult(
        accepted=False,
        reason=result.reason,
        credential_id=credential_id if credential_id is not None else result.credential_id,
        retry_after=result.retry_after,
        webauthn_reason=fine if fine is not None else _FINE.get(result.reason),
        user_id=user_id,
    )


def _reason_of(error: WebAuthnError) -> wa.WebAuthnReason:
    try:
        return wa.WebAuthnReason(error.reason)
    except ValueError:
        return _R.MALFORMED


def _check_text(value: object, name: str, limit: int, *, empty: bool = True) -> str:
    if (
        type(value) is not str
        or len(value) > limit
        or (not value and not empty)
        or not value.isprintable()
    ):
        raise InvalidParameter(f"{name} must be printable text of at most {limit} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidParameter(f"{name} must be valid Unicode text") from None
    return value


# -- registration ------------------------------------------------------------------------


def begin_registration_flow(
    ctx: Context, user_id: str, *, user_name: str, display_name: str | None
) -> Flow[dict[str, Any]]:
    """Issue a registration challenge; return the creation options JSON (a dict)."""
    check_id(user_id, "user_id")
    _check_text(user_name, "user_name", 64, empty=False)
    display = user_name if display_name is None else display_name
    _check_text(display, "display_name", 64)
    config = _config(ctx)
    now = ctx.now()
    existing = yield from checked(call(WebAuthnStore.webauthn_credentials, user_id))
    handle = existing[0].user_handle if existing else wa.b64url(secrets.token_bytes(32))
    challenge, record = wa.new_challenge(
        config, Ceremony.REGISTRATION, user_id, now, user_handle=handle
    )
    yield from checked(call(WebAuthnStore.put_webauthn_challenge, record))
    return wa.registration_options(
        config,
        challenge=challenge,
        user_handle=handle,
        user_name=user_name,
        display_name=display,
        exclude=existing,
    )


def _refuse_registration(
    ctx: Context, user_id: str, now: float, reason: wa.WebAuthnReason, credential_id: str | None
) -> Flow[WebAuthnResult]:
    coarse = _COARSE.get(reason, VerifyReason.INVALID_CODE)
    result = yield from count_failure_flow(
        ctx, user_id, now, coarse, credential_id, event_type=_REG_FAILED, detail=reason.value
    )
    return _result(result, reason, user_id=user_id, credential_id=credential_id)


def finish_registration_flow(
    ctx: Context, user_id: str, response: object, *, nickname: str
) -> Flow[WebAuthnResult]:
    """Check a registration response and store the new key (see ``MFAService``)."""
    check_id(user_id, "user_id")
    _check_text(nickname, "nickname", MAX_NICKNAME)
    config = _config(ctx)
    now = ctx.now()
    gate = yield from gate_flow(ctx, user_id, now, event_type=_REG_FAILED)
    if gate is not None:
        return _result(gate, None, user_id=user_id)
    try:
        parsed = wa.parse_registration_response(response)
    except WebAuthnError as exc:
        return (yield from _refuse_registration(ctx, user_id, now, _reason_of(exc), None))
    cid = parsed.credential_id
    key = wa.challenge_key(parsed.client_data.challenge)
    try:
        record = yield from checked(
            call(WebAuthnStore.consume_webauthn_challenge, key, parsed.fingerprint, now)
        )
    except MFAError:
        return (yield from _store_refusal(ctx, user_id, now, _REG_FAILED, cid))
    try:
        wa.check_challenge(record, parsed.fingerprint, Ceremony.REGISTRATION, user_id, now)
        assert record is not None  # noqa: S101 - check_challenge refuses None
        registered = yield from cpu(wa.check_registration, config, parsed, record)
    except WebAuthnError as exc:
        return (yield from _refuse_registration(ctx, user_id, now, _reason_of(exc), cid))
    credential = WebAuthnCredential(
        credential_id=cid,
        user_id=user_id,
        user_handle=record.user_handle or wa.b64url(secrets.token_bytes(32)),
        public_key=registered.public_key,
        sign_count=registered.sign_count,
        created_at=now,
        transports=parsed.transports,
        aaguid=registered.aaguid,
        backup_eligible=registered.backup_eligible,
        backed_up=registered.backed_up,
        discoverable=parsed.discoverable is True,
        attestation_format=registered.attestation_format,
        nickname=nickname,
    )
    try:
        yield from checked(call(WebAuthnStore.add_webauthn_credential, credential))
    except MFAError:
        try:
            existing = yield from checked(call(WebAuthnStore.get_webauthn_credential, cid))
        except MFAError:
            existing = None
        if existing is not None:
            return (yield from _refuse_registration(ctx, user_id, now, _R.CREDENTIAL_EXISTS, cid))
        return (yield from _store_refusal(ctx, user_id, now, _REG_FAILED, cid))
    data: dict[str, EventValue] = {
        "aaguid": registered.aaguid,
        "attestation_format": registered.attestation_format,
        "backup_eligible": registered.backup_eligible,
        "user_verified": registered.user_verified,
    }
    return _accepted(ctx, EventType.WEBAUTHN_REGISTERED, user_id, now, cid, data)


def _accepted(
    ctx: Context,
    event_type: EventType,
    user_id: str,
    now: float,
    credential_id: str,
    data: dict[str, EventValue],
) -> WebAuthnResult:
    """Emit the success event and return the accepted result."""
    ctx.emit(
        Event(
            type=event_type,
            user_id=user_id,
            at=now,
            credential_id=credential_id,
            reason=VerifyReason.OK.value,
            data=data,
        )
    )
    return WebAuthnResult(
        accepted=True,
        reason=VerifyReason.OK,
        credential_id=credential_id,
        webauthn_reason=_R.OK,
        user_id=user_id,
        user_verified=data["user_verified"] is True,
    )


def _store_refusal(
    ctx: Context, user_id: str, now: float, event_type: EventType, credential_id: str | None
) -> Flow[WebAuthnResult]:
    ctx.emit(
        Event(
            type=event_type,
            user_id=user_id,
            at=now,
            credential_id=credential_id,
            reason=VerifyReason.STORE_ERROR.value,
            data={"detail": _R.STORE_ERROR.value},
        )
    )
    return WebAuthnResult(
        accepted=False,
        reason=VerifyReason.STORE_ERROR,
        credential_id=credential_id,
        webauthn_reason=_R.STORE_ERROR,
        user_id=user_id,
    )
    yield  # pragma: no cover - a flow, for a uniform call shape


# -- authentication ---------------------------------------------------------------------


def begin_authentication_flow(ctx: Context, user_id: str | None) -> Flow[dict[str, Any]]:
    """Issue an authentication challenge; the request options JSON (a dict). ``None``: a
    passkey sign-in (no allow list: the browser offers the discoverable credentials)."""
    if user_id is not None:
        check_id(user_id, "user_id")
    config = _config(ctx)
    now = ctx.now()
    allow: Sequence[WebAuthnCredential] = ()
    if user_id is not None:
        stored = yield from checked(call(WebAuthnStore.webauthn_credentials, user_id))
        allow = [c for c in stored if c.status is CredentialState.ACTIVE]
    challenge, record = wa.new_challenge(config, Ceremony.AUTHENTICATION, user_id, now)
    yield from checked(call(WebAuthnStore.put_webauthn_challenge, record))
    return wa.authentication_options(config, challenge=challenge, allow=allow)


def _unowned_refusal(
    ctx: Context, now: float, reason: wa.WebAuthnReason, credential_id: str | None
) -> WebAuthnResult:
    """A passkey sign-in refused before any user is known: nothing to count."""
    ctx.emit(
        Event(
            type=_AUTH_FAILED,
            user_id="",
            at=now,
            credential_id=credential_id,
            reason=_COARSE.get(reason, VerifyReason.INVALID_CODE).value,
            data={"detail": reason.value, "factor": "webauthn"},
        )
    )
    return WebAuthnResult(
        accepted=False,
        reason=_COARSE.get(reason, VerifyReason.INVALID_CODE),
        credential_id=credential_id,
        webauthn_reason=reason,
    )


def finish_authentication_flow(
    ctx: Context, user_id: str | None, response: object
) -> Flow[WebAuthnResult]:
    """Check an assertion (see ``MFAService.finish_webauthn_authentication``)."""
    if user_id is not None:
        check_id(user_id, "user_id")
    config = _config(ctx)
    now = ctx.now()
    after: FailureState | None = None
    if user_id is not None:  # admitted and counted before the response is looked at
        admitted = yield from admit_flow(ctx, user_id, now)
        if isinstance(admitted, VerificationResult):
            return _result(admitted, None, user_id=user_id)
        after = admitted
    try:
        parsed = wa.parse_authentication_response(response)
    except WebAuthnError as exc:
        return (yield from _refuse_auth(ctx, user_id, now, after, _reason_of(exc), None))
    cid = parsed.credential_id
    try:
        credential = yield from checked(call(WebAuthnStore.get_webauthn_credential, cid))
        record = yield from checked(
            call(
                WebAuthnStore.consume_webauthn_challenge,
                wa.challenge_key(parsed.client_data.challenge),
                parsed.fingerprint,
                now,
            )
        )
    except MFAError:
        return (yield from _refuse_auth(ctx, user_id, now, after, _R.STORE_ERROR, cid))
    owner = user_id
    if credential is not None and user_id is None:  # a passkey sign-in names its user
        owner = credential.user_id
        if parsed.user_handle is None:
            return (yield from _refuse_auth(ctx, None, now, None, _R.MALFORMED, cid))
        admitted = yield from admit_flow(ctx, owner, now)
        if isinstance(admitted, VerificationResult):
            return _result(admitted, None, user_id=owner)
        after = admitted
    try:
        wa.check_challenge(record, parsed.fingerprint, Ceremony.AUTHENTICATION, user_id, now)
        assert record is not None  # noqa: S101 - check_challenge refuses None
        if credential is None:
            raise WebAuthnError("unknown credential", reason=_R.UNKNOWN_CREDENTIAL.value)
        if credential.user_id != owner:
            raise WebAuthnError("another user's key", reason=_R.CREDENTIAL_OF_ANOTHER_USER.value)
        if credential.status is not CredentialState.ACTIVE:
            raise WebAuthnError("disabled", reason=_R.CREDENTIAL_DISABLED.value)
        outcome = yield from cpu(wa.check_authentication, config, parsed, record, credential)
    except WebAuthnError as exc:
        return (yield from _refuse_auth(ctx, owner, now, after, _reason_of(exc), cid))
    try:
        advanced = yield from checked(
            call(
                WebAuthnStore.advance_sign_count,
                cid,
                outcome.sign_count,
                backed_up=outcome.backed_up,
                now=now,
            )
        )
    except MFAError:
        return (yield from _refuse_auth(ctx, owner, now, after, _R.STORE_ERROR, cid))
    if advanced is not True:
        return (yield from _refuse_auth(ctx, owner, now, after, _R.CLONED_AUTHENTICATOR, cid))
    assert owner is not None  # noqa: S101 - a known credential named it
    try:
        yield from checked(call(FailureCounter.reset, owner))
    except MFAError:
        return (yield from _refuse_auth(ctx, owner, now, after, _R.STORE_ERROR, cid))
    passkey = user_id is None
    data: dict[str, EventValue] = {
        "factor": "webauthn",
        "user_verified": outcome.user_verified,
        "passkey": passkey,
    }
    return _accepted(ctx, EventType.VERIFICATION_SUCCEEDED, owner, now, cid, data)


def _refuse_auth(
    ctx: Context,
    user_id: str | None,
    now: float,
    after: FailureState | None,
    reason: wa.WebAuthnReason,
    credential_id: str | None,
) -> Flow[WebAuthnResult]:
    if reason is _R.CLONED_AUTHENTICATOR and user_id is not None:
        ctx.emit(
            Event(
                type=EventType.POSSIBLE_CLONED_AUTHENTICATOR,
                user_id=user_id,
                at=now,
                credential_id=credential_id,
                reason=reason.value,
            )
        )
    if user_id is None or after is None:
        return _unowned_refusal(ctx, now, reason, credential_id)
    if reason is _R.STORE_ERROR:
        return (yield from _store_refusal(ctx, user_id, now, _AUTH_FAILED, credential_id))
    coarse = _COARSE.get(reason, VerifyReason.INVALID_CODE)
    result = fail(ctx, user_id, now, after, coarse, credential_id, detail=reason.value)
    return _result(result, reason, user_id=user_id, credential_id=credential_id)


# -- lifecycle ----------------------------------------------------------------------------


def list_webauthn_flow(ctx: Context, user_id: str) -> Flow[list[WebAuthnCredential]]:
    """The user's keys, oldest first."""
    check_id(user_id, "user_id")
    _config(ctx)
    return list((yield from checked(call(WebAuthnStore.webauthn_credentials, user_id))))


def _owned(ctx: Context, user_id: str, credential_id: str) -> Flow[WebAuthnCredential]:
    check_id(user_id, "user_id")
    if type(credential_id) is not str or not 1 <= len(credential_id) <= 1364:
        raise InvalidParameter("credential_id must be base64url text")
    _config(ctx)
    found = yield from checked(call(WebAuthnStore.get_webauthn_credential, credential_id))
    if found is None or found.user_id != user_id:
        raise CredentialNotFound("no such security key for this user")
    return found


def _write(ctx: Context, updated: WebAuthnCredential, version: int) -> Flow[None]:
    if not (
        yield from checked(
            call(WebAuthnStore.update_webauthn_credential, updated, expected_version=version)
        )
    ):
        raise StoreError("the security key changed concurrently; nothing was changed")


def rename_webauthn_flow(
    ctx: Context, user_id: str, credential_id: str, nickname: str
) -> Flow[None]:
    """Give a key a new nickname (compare-and-set on its version)."""
    _check_text(nickname, "nickname", MAX_NICKNAME)
    found = yield from _owned(ctx, user_id, credential_id)
    yield from _write(ctx, attrs.evolve(found, nickname=nickname), found.version)


def disable_webauthn_flow(
    ctx: Context, user_id: str, credential_id: str, *, actor: str | None
) -> Flow[None]:
    """ACTIVE -> DISABLED through the lifecycle's transition table."""
    found = yield from _owned(ctx, user_id, credential_id)
    target = transition(found.status, LifecycleEvent.DISABLE)
    if target is None or found.status is CredentialState.DISABLED:
        raise IllegalTransition("the security key is disabled already")
    now = ctx.now()
    updated = attrs.evolve(found, status=target, disabled_at=now)
    yield from _write(ctx, updated, found.version)
    ctx.emit(
        Event(
            type=EventType.CREDENTIAL_DISABLED,
            user_id=user_id,
            at=now,
            credential_id=credential_id,
            actor=actor,
            data={"factor": "webauthn"},
        )
    )


def admin_reset_webauthn_flow(
    ctx: Context, user_id: str, *, admin_id: str, credential_id: str | None
) -> Flow[int]:
    """Remove one key or all of a user's keys (the transition table's ADMIN_RESET)."""
    check_id(admin_id, "admin_id")
    if credential_id is None:
        check_id(user_id, "user_id")
        _config(ctx)
        targets = list((yield from checked(call(WebAuthnStore.webauthn_credentials, user_id))))
    else:
        targets = [(yield from _owned(ctx, user_id, credential_id))]
    now = ctx.now()
    removed = 0
    for credential in targets:
        if transition(credential.status, LifecycleEvent.ADMIN_RESET) is not None:
            raise IllegalTransition("an admin reset must remove the key")  # pragma: no cover
        cid = credential.credential_id
        if (yield from checked(call(WebAuthnStore.delete_webauthn_credential, cid))):
            removed += 1
            ctx.emit(
                Event(
                    type=EventType.CREDENTIAL_RESET,
                    user_id=user_id,
                    at=now,
                    credential_id=cid,
                    actor=admin_id,
                    data={"factor": "webauthn"},
                )
            )
    return removed
