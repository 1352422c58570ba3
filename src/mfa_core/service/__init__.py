"""The verification service: the one orchestrator a host calls.

:class:`MFAService` composes the pure modules (:mod:`~mfa_core.otp`,
:mod:`~mfa_core.lifecycle`, :mod:`~mfa_core.throttle`) with the ports a host provides
(:mod:`~mfa_core.ports`: credential store, failure counter, sealer, clock, event sink). It
is the only place that does I/O, and it reads the clock once per operation::

    from mfa_core.sealing import AESGCMSealer
    from mfa_core.service import MFAService, ServiceConfig
    from mfa_core.stores import SQLiteStore

    store = SQLiteStore("mfa.sqlite3")
    service = MFAService(store, store, AESGCMSealer(keys, current_key_id="k1"),
                         config=ServiceConfig(issuer="Example"))
    enrolment = service.begin_enrolment("alice")          # show enrolment.uri as a QR code
    service.confirm_enrolment("alice", enrolment.credential_id, typed_code)
    result = service.verify("alice", typed_code)          # at every login
    if not result.accepted:
        show(result.user_message)                         # "invalid code", whatever the reason

Operations that decide on a code (:meth:`~MFAService.verify`,
:meth:`~MFAService.confirm_enrolment`, :meth:`~MFAService.resync_hotp`) return a
:class:`VerificationResult` and fail closed: a store or sealer failure is a refusal with a
reason, never an exception and never an acceptance. Lifecycle operations raise typed
:class:`~mfa_core.errors.MFAError` subclasses and change nothing when they do.

The flows are functions over one explicit context, in private modules of this package by
topic (``_verify``, ``_enrol``, ``_admin``, ``_recovery``, ``_oob``, ``_policy``), each
written once as a generator over effects (``_effects``); :class:`MFAService` runs them with
the blocking driver and :class:`~mfa_core.aio.AsyncMFAService` with the async one. The
public types live in public modules (:mod:`mfa_core.service.config`,
:mod:`mfa_core.service.results`, :mod:`mfa_core.service.defaults`) and are re-exported
here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from ..errors import InvalidParameter
from ..models import CredentialKind
from ..oob import OOBChannel, OOBPurpose
from ..policy import Decision, Factor, Policy, RequestContext
from ..ports import (
    AttemptStore,
    Clock,
    CodeSender,
    CredentialStore,
    EventSink,
    FailureCounter,
    OOBChallengeStore,
    RecoveryCodeStore,
    Sealer,
    WebAuthnStore,
)
from ..recovery import RecoveryCodeSet, RecoveryConfig
from ..throttle import ThrottleDecision
from ..webauthn.config import WebAuthnConfig
from ..webauthn.records import WebAuthnCredential
from ._admin import (
    admin_reset_flow,
    admin_unlock_flow,
    disable_flow,
    list_credentials_flow,
    reseal_flow,
)
from ._context import check_id, configure
from ._effects import Flow, run_sync
from ._enrol import (
    begin_enrolment_flow,
    begin_renewal_flow,
    cancel_enrolment_flow,
    confirm_enrolment_flow,
    enrolment_uri_flow,
)
from ._factors import admin_confirm_flow, send_factor_code_flow
from ._oob import resend_oob_code_flow, send_oob_code_flow, verify_oob_code_flow
from ._policy import decide_flow
from ._recovery import (
    generate_recovery_codes_flow,
    recovery_codes_left_flow,
    verify_recovery_code_flow,
)
from ._stepup import allowed_factors, step_up_flow
from ._verify import resync_hotp_flow, throttle_status_flow, verify_flow
from ._webauthn import (
    admin_reset_webauthn_flow,
    begin_authentication_flow,
    begin_registration_flow,
    disable_webauthn_flow,
    finish_authentication_flow,
    finish_registration_flow,
    list_webauthn_flow,
    rename_webauthn_flow,
)
from .config import MAX_RESYNC_WINDOW, ServiceConfig
from .defaults import LoggingEventSink, NullEventSink, SystemClock
from .results import (
    ACCEPTED_MESSAGE,
    EXPIRED_MESSAGE,
    INVALID_CODE_MESSAGE,
    UNAVAILABLE_MESSAGE,
    CredentialInfo,
    Enrolment,
    OOBVerificationResult,
    RecoveryVerificationResult,
    VerificationResult,
    VerifyReason,
    WebAuthnResult,
)

__all__ = [
    "ACCEPTED_MESSAGE",
    "EXPIRED_MESSAGE",
    "INVALID_CODE_MESSAGE",
    "MAX_RESYNC_WINDOW",
    "UNAVAILABLE_MESSAGE",
    "CredentialInfo",
    "Enrolment",
    "LoggingEventSink",
    "MFAService",
    "NullEventSink",
    "OOBVerificationResult",
    "RecoveryVerificationResult",
    "ServiceConfig",
    "SystemClock",
    "VerificationResult",
    "VerifyReason",
    "WebAuthnResult",
]

_R = TypeVar("_R")


def _check_port(value: object, protocol: type, name: str) -> None:
    if not isinstance(value, protocol):
        raise InvalidParameter(f"{name} must implement {protocol.__name__}")


class MFAService:
    """Two-factor authentication for a host application, through the host's ports.

    ``credentials`` and ``failures`` are often one object (every store in
    :mod:`mfa_core.stores` is both). ``sealer`` encrypts keys at rest
    (:class:`~mfa_core.sealing.AESGCMSealer`). ``clock`` defaults to :class:`SystemClock`,
    ``events`` to :class:`NullEventSink` (use :class:`LoggingEventSink` or your audit log),
    ``config`` to ``ServiceConfig()``. Ports that do not implement their Protocol raise
    :class:`~mfa_core.errors.InvalidParameter`.

    Recovery codes and out-of-band (email/SMS) codes are optional: pass
    ``recovery_codes=`` (a :class:`~mfa_core.ports.RecoveryCodeStore`), ``oob=`` (an
    :class:`~mfa_core.ports.OOBChallengeStore`) with ``sender=`` (the host's
    :class:`~mfa_core.ports.CodeSender`), a host ``secret=`` (16 to 256 random bytes, kept
    stable; the recovery lookup-tag key and the out-of-band code key are derived from it
    with HKDF-SHA256); their settings are ``config.recovery`` and ``config.oob``.

    Security keys and passkeys (WebAuthn) are optional too: pass ``webauthn=`` (a
    :class:`~mfa_core.ports.WebAuthnStore`) and ``webauthn_config=`` (a
    :class:`~mfa_core.webauthn.WebAuthnConfig`: RP ID, exact origins); see
    ``docs/webauthn.md``.

    When ``credentials`` and ``failures`` are one :class:`~mfa_core.ports.AttemptStore`
    (every reference store is), a verify is at most two store calls: the admission of the
    attempt fused with the read of the credentials, and the claim fused with the reset.

    Thread-safe as far as the ports are: the service keeps no mutable state of its own.
    """

    __slots__ = ("_ctx", "_table")

    def __init__(
        self,
        credentials: CredentialStore,
        failures: FailureCounter,
        sealer: Sealer,
        *,
        clock: Clock | None = None,
        events: EventSink | None = None,
        config: ServiceConfig | None = None,
        recovery_codes: RecoveryCodeStore | None = None,
        oob: OOBChallengeStore | None = None,
        sender: CodeSender | None = None,
        secret: bytes | None = None,
        webauthn: WebAuthnStore | None = None,
        webauthn_config: WebAuthnConfig | None = None,
    ) -> None:
        self._ctx, self._table = configure(
            (
                (CredentialStore, CredentialStore, credentials, "credentials"),
                (FailureCounter, FailureCounter, failures, "failures"),
                (RecoveryCodeStore, RecoveryCodeStore, recovery_codes, "recovery_codes"),
                (OOBChallengeStore, OOBChallengeStore, oob, "oob"),
                (CodeSender, CodeSender, sender, "sender"),
                (WebAuthnStore, WebAuthnStore, webauthn, "webauthn"),
            ),
            AttemptStore,
            _check_port,
            sealer,
            clock=clock,
            events=events,
            config=config,
            secret=secret,
            webauthn_config=webauthn_config,
        )

    @property
    def config(self) -> ServiceConfig:
        """The service's settings."""
        return self._ctx.config

    def _run(self, flow: Flow[_R]) -> _R:
        return run_sync(flow, self._table)

    def begin_enrolment(
        self,
        user_id: str,
        *,
        kind: CredentialKind | str = CredentialKind.TOTP,
        label: str = "",
        account: str | None = None,
        destination: str | None = None,
    ) -> Enrolment:
        """Start enrolling a new authenticator for ``user_id``.

        Generates a key, stores it sealed in a PENDING credential (confirm it within
        ``lifecycle.pending_ttl`` seconds) and returns an :class:`Enrolment` with the
        provisioning URI (``account`` is the name apps show, ``user_id`` by default; it must
        not contain a colon) and the base32 secret. Emits ENROLMENT_STARTED. Raises
        :class:`~mfa_core.errors.InvalidParameter`/:class:`~mfa_core.errors.InvalidURI` for
        bad arguments and :class:`~mfa_core.errors.StoreError` or
        :class:`~mfa_core.errors.SealingError` if a port fails (nothing is stored then).

        ``kind="sms"`` or ``"email"`` with ``destination=`` (a phone number or an email
        address) enrols a destination instead (out-of-band codes must be configured): it
        is stored sealed like a key, a confirmation code is sent to it (the returned
        :class:`Enrolment` has the ``challenge_id`` and the masked ``destination``, no
        secret or URI), and :meth:`confirm_enrolment` checks that code (or an
        administrator confirms it with :meth:`admin_confirm`).

        A new enrolment replaces the user's earlier pending one of the same kind
        (CREDENTIAL_REMOVED, reason ``enrolment_restarted``).

        A host should require a fresh second factor before adding a device to a user who
        already has one, as for :meth:`begin_renewal`.
        """
        return self._run(
            begin_enrolment_flow(
                self._ctx,
                user_id,
                kind=kind,
                label=label,
                account=account,
                destination=destination,
            )
        )

    def begin_renewal(
        self,
        user_id: str,
        credential_id: str,
        *,
        label: str | None = None,
        account: str | None = None,
    ) -> Enrolment:
        """Start rotating the key of an ACTIVE or EXPIRED credential.

        Creates a PENDING credential of the same kind that ``replaces`` the old one; the old
        one keeps working until the new one is confirmed with
        :meth:`confirm_enrolment`, and is then superseded. Starting again drops an earlier
        unconfirmed renewal of the same credential. Emits CREDENTIAL_RENEWAL_STARTED.
        Raises :class:`~mfa_core.errors.CredentialNotFound`,
        :class:`~mfa_core.errors.IllegalTransition` (pending, disabled or already replaced:
        nothing changes) or :class:`~mfa_core.errors.StoreError`.
        """
        return self._run(
            begin_renewal_flow(self._ctx, user_id, credential_id, label=label, account=account)
        )

    def cancel_enrolment(self, user_id: str, credential_id: str) -> None:
        """Drop an unconfirmed (pending or abandoned) enrolment or renewal.

        Emits CREDENTIAL_REMOVED. Raises :class:`~mfa_core.errors.CredentialNotFound`,
        :class:`~mfa_core.errors.IllegalTransition` for a confirmed credential (use
        ``disable``) or :class:`~mfa_core.errors.StoreError`.
        """
        return self._run(cancel_enrolment_flow(self._ctx, user_id, credential_id))

    def confirm_enrolment(self, user_id: str, credential_id: str, code: str) -> VerificationResult:
        """Confirm a pending enrolment or renewal with a code from the new authenticator.

        Throttled like ``verify`` (a delayed or locked user is refused), and a wrong code
        counts as a failure for the user; but a confirmation is not a guess at an
        established factor, so it is checked before it is counted. On
        success the code's step/counter is claimed, so it cannot be used again, the
        credential becomes ACTIVE and learns the authenticator's drift, and the events
        ENROLMENT_CONFIRMED, then for a renewal CREDENTIAL_RENEWED (the old credential is
        superseded), and MFA_ENABLED if the user had no usable credential before, are
        emitted. Confirming does not reset the failure count: only ``verify`` with an
        established credential does.

        Raises :class:`~mfa_core.errors.CredentialNotFound` for an unknown credential and
        :class:`~mfa_core.errors.IllegalTransition` if it is not PENDING (already confirmed,
        disabled, or past its deadline: start again). Store and sealer failures are
        refusals with a reason, as in ``verify``.
        """
        return self._run(confirm_enrolment_flow(self._ctx, user_id, credential_id, code))

    def verify(self, user_id: str, code: str, *, diagnose_skew: bool = False) -> VerificationResult:
        """Check a code typed by ``user_id`` against all of the user's usable credentials.

        The attempt is admitted and counted by ONE atomic store operation before the code
        is looked at (a delayed or locked user is refused there, with no key unsealed and
        no HMAC computed), so with ``throttle.max_failures = N`` at most N guesses are
        evaluated per lock period, under any concurrency; a success resets the count.

        Returns a :class:`VerificationResult`; never raises for a wrong, malformed or
        replayed code, a throttled or locked user, or a failing store (those are refusals
        with a :class:`VerifyReason`). Raises :class:`~mfa_core.errors.InvalidParameter` only
        for a ``user_id`` that is not a non-empty string.

        ``diagnose_skew=True`` (the host asks, e.g. after repeated refusals): a code refused
        as ``invalid_code`` is looked for at TOTP steps outside the window, nearest first,
        up to ``config.skew_search`` seconds either side and at most
        ``config.skew_max_hmacs`` codes computed per attempt. A match is reported as the
        authenticator's clock offset in ``skew_steps`` / ``skew_seconds`` of the result
        and in the VERIFICATION_FAILED event; it is never accepted, and the user sees the
        same uniform message.
        """
        return self._run(verify_flow(self._ctx, user_id, code, diagnose_skew=diagnose_skew))

    def resync_hotp(
        self, user_id: str, credential_id: str, first_code: str, second_code: str
    ) -> VerificationResult:
        """Resynchronise an HOTP token from two consecutive codes (RFC 4226 §7.4).

        Searches ``hotp_resync_window`` counter values after the expected one for the two
        codes in a row; on success the counter moves past the second code (so neither can
        be used again) and the failure count is reset. Throttled, counted and refused like
        :meth:`verify`. Raises :class:`~mfa_core.errors.CredentialNotFound` for an unknown
        credential, :class:`~mfa_core.errors.InvalidParameter` for a TOTP credential and
        :class:`~mfa_core.errors.IllegalTransition` for one that cannot authenticate
        (pending or disabled).
        """
        return self._run(
            resync_hotp_flow(self._ctx, user_id, credential_id, first_code, second_code)
        )

    def throttle_status(self, user_id: str) -> ThrottleDecision:
        """Return whether ``user_id`` may attempt a code now, and how long to wait if not.

        For the host's own use (e.g. an HTTP ``Retry-After``); users are shown the uniform
        message either way. Raises :class:`~mfa_core.errors.StoreError` if the store fails.
        """
        return self._run(throttle_status_flow(self._ctx, user_id))

    def disable(
        self,
        user_id: str,
        credential_id: str,
        *,
        step_up_code: str | None = None,
        by_admin: str | None = None,
        step_up_challenge_id: str | None = None,
        keep_recovery_codes: bool = False,
        step_up_factors: Iterable[Factor] | None = None,
    ) -> None:
        """Disable a confirmed credential (it stays listed as DISABLED, never authenticates).

        The user must prove a second factor right now: ``step_up_code`` is checked by
        :meth:`step_up` (a TOTP/HOTP code, a recovery code, or with
        ``step_up_challenge_id`` an SMS/email ``step_up`` code; with throttling, counting
        and replay protection; only ``step_up_factors`` when given, as ``factors`` there)
        before anything changes. An administrator passes
        ``by_admin=<admin id>`` instead. Emits CREDENTIAL_DISABLED. Disabling the user's
        last usable factor also deletes their recovery codes (RECOVERY_CODES_REVOKED,
        reason ``disabled``) unless ``keep_recovery_codes``.

        Raises :class:`~mfa_core.errors.StepUpRequired` (no or a wrong code),
        :class:`~mfa_core.errors.Throttled` (throttled; ``code`` LOCKED when locked),
        :class:`~mfa_core.errors.CredentialNotFound`,
        :class:`~mfa_core.errors.IllegalTransition` (pending or already disabled),
        :class:`~mfa_core.errors.StoreError` or :class:`~mfa_core.errors.SealingError`;
        nothing changes when it raises.
        """
        return self._run(
            disable_flow(
                self._ctx,
                user_id,
                credential_id,
                step_up_code=step_up_code,
                by_admin=by_admin,
                step_up_challenge_id=step_up_challenge_id,
                keep_recovery_codes=keep_recovery_codes,
                step_up_factors=allowed_factors(step_up_factors),
            )
        )

    def admin_reset(
        self,
        user_id: str,
        *,
        admin_id: str,
        credential_id: str | None = None,
        keep_recovery_codes: bool = False,
    ) -> int:
        """Remove one credential of a user (``credential_id``) or all of them (lost device).

        The user can then enrol again. Emits CREDENTIAL_RESET per credential, naming the
        administrator. When no factor of the user can authenticate afterwards, their
        recovery codes are deleted too (RECOVERY_CODES_REVOKED, reason ``admin_reset``),
        unless ``keep_recovery_codes``. Returns how many credentials were removed. The
        failure count is left alone (see :meth:`admin_unlock`). Raises
        :class:`~mfa_core.errors.CredentialNotFound` or
        :class:`~mfa_core.errors.StoreError` (credentials removed before a failure stay
        removed; each removal is atomic).
        """
        return self._run(
            admin_reset_flow(
                self._ctx,
                user_id,
                admin_id=admin_id,
                credential_id=credential_id,
                keep_recovery_codes=keep_recovery_codes,
            )
        )

    def admin_unlock(self, user_id: str, *, admin_id: str) -> None:
        """Clear a user's failure count (lifting a delay or a lock). Emits USER_UNLOCKED.

        Raises :class:`~mfa_core.errors.StoreError` if the store fails.
        """
        return self._run(admin_unlock_flow(self._ctx, user_id, admin_id=admin_id))

    def list_credentials(self, user_id: str) -> list[CredentialInfo]:
        """Return the user's credentials, oldest first, with their effective state now.

        A credential already replaced by a confirmed renewal is shown in the state its
        superseding leads to (or left out when superseding removes it). No key material.
        Raises :class:`~mfa_core.errors.StoreError` if the store fails.
        """
        return self._run(list_credentials_flow(self._ctx, user_id))

    def decide(self, policy: Policy, context: RequestContext) -> Decision:
        """Evaluate ``policy`` for a request (:func:`mfa_core.policy.evaluate`) at the
        service clock's time, with the factors this service knows.

        The user's TOTP/HOTP credentials (with their effective states), their SMS/email
        factors (when out-of-band codes are configured) and, when a recovery-code store is
        configured, their recovery codes replace any entries of those kinds in
        ``context.factors``; factors the service does not manage (security keys) are taken
        from ``context`` as given. From its own records the service also supplies the
        last successful check (TOTP from the last accepted step, recovery codes from their
        use, SMS/email codes from the user's history record) and the time of the last
        administrator's reset; the later of those and the host's ``last_check`` /
        ``factors_reset_at`` is used (HOTP checks, remembered devices, upstream MFA and
        roles stay the host's to give). Returns the explained
        :class:`~mfa_core.policy.Decision`. Raises
        :class:`~mfa_core.errors.InvalidParameter` for arguments of the wrong type and
        :class:`~mfa_core.errors.StoreError` if a store fails.
        """
        return self._run(decide_flow(self._ctx, policy, context))

    def reseal(
        self, user_id: str | None = None, *, credential_ids: Iterable[str] | None = None
    ) -> int:
        """Re-seal keys made with an old sealing key under the sealer's current key.

        Give a ``user_id`` (all of the user's credentials) or ``credential_ids``. Keys
        already under the current key are left alone. Each re-seal is a compare-and-set, so
        it never overwrites a concurrent change. Emits KEY_RESEALED per credential and
        returns how many were re-sealed. Raises :class:`~mfa_core.errors.SealingError` or
        :class:`~mfa_core.errors.StoreError` (those done before stay done).
        """
        return self._run(reseal_flow(self._ctx, user_id, credential_ids=credential_ids))

    def generate_recovery_codes(
        self, user_id: str, *, config: RecoveryConfig | None = None
    ) -> RecoveryCodeSet:
        """Make a new set of recovery codes for ``user_id`` and replace the old set.

        Returns a :class:`~mfa_core.recovery.RecoveryCodeSet`: show its ``codes`` to the
        user exactly once (they cannot be retrieved later; ``repr`` hides them); only
        the records (lookup tag and Argon2id hash) are stored. The old set, used or not,
        stops working in the same atomic store operation. ``config`` overrides the
        service's ``config.recovery`` settings for this set (e.g.
        ``RecoveryConfig.recovery_key()`` for one long recovery key). Emits
        RECOVERY_CODES_GENERATED.

        Computing ``count`` Argon2id hashes takes a while (about 50 ms each with the
        default parameters). A host should require a fresh second factor before
        replacing a user's codes. Raises :class:`~mfa_core.errors.InvalidParameter` for
        bad arguments or when recovery codes are not configured, and
        :class:`~mfa_core.errors.StoreError` if the store fails (the old set then stays).
        """
        return self._run(generate_recovery_codes_flow(self._ctx, user_id, config=config))

    def recovery_codes_left(self, user_id: str) -> int:
        """Return how many unused recovery codes ``user_id`` has (0 if none were made).

        Raises :class:`~mfa_core.errors.StoreError` if the store fails.
        """
        return self._run(recovery_codes_left_flow(self._ctx, user_id))

    def verify_recovery_code(self, user_id: str, code: str) -> RecoveryVerificationResult:
        """Check and consume one recovery code of ``user_id``.

        Returns a :class:`~mfa_core.service.RecoveryVerificationResult` (a
        :class:`~mfa_core.service.VerificationResult`): accepted, or refused with a reason
        (users see one "invalid code" text). Attempts share the per-user failure
        counter with OTP verification: a throttled or locked user is refused before any
        hash is computed, every refusal about the code is counted, and a success resets
        the count. A code is accepted once, even when submitted concurrently.

        On success RECOVERY_CODE_USED is emitted with the number of codes left, and
        RECOVERY_CODES_LOW when that is at or below ``low_threshold``. When the matched
        code was hashed with outdated Argon2id parameters, its hash is replaced with a
        current one and ``regenerate_recommended`` is set: the other codes cannot be
        re-hashed without their plain text, so offer (or require) a new set.

        Never raises for a wrong code or a failing store; raises
        :class:`~mfa_core.errors.InvalidParameter` for a ``user_id`` that is not a
        non-empty string or when recovery codes are not configured.
        """
        return self._run(verify_recovery_code_flow(self._ctx, user_id, code))

    def send_oob_code(
        self,
        user_id: str,
        *,
        channel: OOBChannel | str,
        destination: str,
        purpose: OOBPurpose | str,
    ) -> str:
        """Issue a code for ``purpose``, deliver it to ``destination`` and return the
        challenge id to pass to :meth:`verify_oob_code` and :meth:`resend_oob_code`.

        The store keeps only a keyed hash of the code and a masked destination hint. The
        code is valid for ``config.oob.ttl`` seconds (default 180). Emits OOB_CODE_SENT.
        The send is counted first against ``config.oob.max_sends_per_user`` and
        ``max_sends_per_destination`` (per ``send_window``, default 10 an hour each).

        Raises :class:`~mfa_core.errors.OutOfBandError` with code
        ``OOB_CHANNEL_NOT_ALLOWED`` for an email login code to a user who has a usable
        authenticator (unless ``allow_email_login_with_totp``), or ``OOB_DELIVERY_FAILED``
        when the sender raised (the challenge is removed again);
        :class:`~mfa_core.errors.SendLimitExceeded` (an ``OutOfBandError``, code
        ``OOB_SEND_LIMIT``, ``retry_after`` until the window ends; emits OOB_SEND_LIMITED)
        when the user or the destination reached its send limit (nothing stored or sent);
        :class:`~mfa_core.errors.Throttled` (code LOCKED) for a locked user;
        :class:`~mfa_core.errors.InvalidParameter` for bad arguments (a destination that is
        not an address or number) or when out-of-band codes are not configured;
        :class:`~mfa_core.errors.StoreError` if a store fails.
        """
        return self._run(
            send_oob_code_flow(
                self._ctx, user_id, channel=channel, destination=destination, purpose=purpose
            )
        )

    def resend_oob_code(self, user_id: str, challenge_id: str, destination: str) -> str:
        """Send a new code for an existing challenge; the previous code stops working.

        ``destination`` is the address or number the challenge was started for: the
        store keeps a keyed hash of its normalised form (ASCII case, surrounding
        whitespace and phone punctuation aside), compared in constant time, so another
        address or number with the same masked hint is refused. The ``n``-th resend is allowed
        ``resend_cooldown + (n - 1) * resend_cooldown_step`` seconds after the previous
        send (30 s, 60 s, 90 s, ... by default). The new code gets a fresh TTL and fresh
        per-code attempts; the user's failure count is NOT reset. Emits OOB_CODE_SENT.
        A resend counts against the send limits as a send does. Returns the challenge id.

        Raises :class:`~mfa_core.errors.CooldownActive` (``retry_after`` in seconds) when
        too early; :class:`~mfa_core.errors.IllegalTransition` when the code was already
        used; :class:`~mfa_core.errors.OutOfBandError` with ``OOB_CHALLENGE_NOT_FOUND``
        for an unknown challenge or one of another user, or ``OOB_DELIVERY_FAILED`` when
        the sender raised (the previous code is restored);
        :class:`~mfa_core.errors.SendLimitExceeded` when the user or the destination
        reached its send limit (nothing sent; the current code stays valid);
        :class:`~mfa_core.errors.OutOfBandError` with ``OOB_DESTINATION_MISMATCH`` for a
        destination that does not match the challenge (counted as a failed attempt, with
        an OOB_CODE_FAILED event whose ``detail`` is ``wrong_destination``; nothing sent);
        :class:`~mfa_core.errors.InvalidParameter` for a destination that is not an
        address or number; :class:`~mfa_core.errors.Throttled` (code LOCKED) for a locked user;
        :class:`~mfa_core.errors.StoreError` if a store fails.
        """
        return self._run(resend_oob_code_flow(self._ctx, user_id, challenge_id, destination))

    def verify_oob_code(
        self,
        user_id: str,
        challenge_id: str,
        code: str,
        purpose: OOBPurpose | str,
        *,
        destination: str | None = None,
    ) -> OOBVerificationResult:
        """Check a code the user typed for challenge ``challenge_id`` and ``purpose``.

        Returns an :class:`~mfa_core.service.OOBVerificationResult` (a
        :class:`~mfa_core.service.VerificationResult`): accepted, or refused with a
        :class:`~mfa_core.service.VerifyReason` and the finer ``oob_reason`` (expired,
        used, wrong_purpose, wrong_challenge, wrong_code, too_many_attempts, malformed)
        for audit; users see one "invalid code" text. A throttled or locked
        user is refused before anything is read; every other refusal is counted in the
        per-user failure counter (shared with OTP and recovery codes) and emits
        OOB_CODE_FAILED; a success marks the code used (it is accepted at most once,
        even under concurrency), resets the count and emits OOB_CODE_VERIFIED.

        With ``destination`` (the address or number the host is about to mark as
        confirmed: pass it for a phone confirmation), the code is refused unless the
        challenge was started for exactly that destination (``oob_reason``
        ``wrong_destination``, compared as keyed hashes in constant time), so a number
        that never received the code is never confirmed.

        Never raises for a wrong code or a failing store; raises
        :class:`~mfa_core.errors.InvalidParameter` for a bad ``user_id``, ``purpose`` or
        ``destination`` type, or when out-of-band codes are not configured.
        """
        return self._run(
            verify_oob_code_flow(self._ctx, user_id, challenge_id, code, purpose, destination)
        )

    def step_up(
        self,
        user_id: str,
        code: str,
        *,
        challenge_id: str | None = None,
        factors: Iterable[Factor] | None = None,
    ) -> VerificationResult:
        """Check a fresh second factor before a sensitive operation (the one step-up check).

        Accepts exactly the factors :func:`mfa_core.policy.evaluate` counts for a step-up:
        a TOTP/HOTP code of a usable credential, a recovery code (when recovery codes are
        configured), or an SMS/email code of a ``step_up`` challenge (pass its
        ``challenge_id``). Each is checked by its own verification (one attempt counted on
        the user's counter, throttling, replay protection) and the result's ``factor``
        names it, for the host's ``last_check``. Never raises for a wrong code; users see
        the one uniform message.

        ``factors``: accept only these (pass the ``factors`` of the challenge decision
        :meth:`decide` gave for the action, so that the step-up takes exactly what the
        policy counts for it: a policy that asks for a security key accepts no code here).
        A code of another factor is refused as if it matched nothing (``no_credential`` or
        ``malformed``; for an SMS/email challenge ``invalid_code`` with the audit reason
        ``channel_not_allowed``), counted as an attempt like any refusal.
        """
        check_id(user_id, "user_id")
        allowed = allowed_factors(factors)
        return self._run(
            step_up_flow(
                self._ctx,
                user_id,
                code,
                self._ctx.now(),
                challenge_id=challenge_id,
                factors=allowed,
            )
        )

    def enrolment_uri(
        self, user_id: str, credential_id: str, *, account: str | None = None
    ) -> Enrolment:
        """Show a pending authenticator enrolment again: the same provisioning URI and
        secret as :meth:`begin_enrolment` gave, rebuilt from the sealed key, until it is
        confirmed or its ``pending_ttl`` passes (``account`` as given there). Changes
        nothing. Raises :class:`~mfa_core.errors.CredentialNotFound`,
        :class:`~mfa_core.errors.IllegalTransition` (confirmed, expired, or not an
        authenticator), :class:`~mfa_core.errors.SealingError` or
        :class:`~mfa_core.errors.StoreError`.
        """
        return self._run(enrolment_uri_flow(self._ctx, user_id, credential_id, account=account))

    def admin_confirm(self, user_id: str, credential_id: str, *, admin_id: str) -> None:
        """An administrator confirms a pending SMS or email factor without a code.

        The same CONFIRM transition as :meth:`confirm_enrolment` (ENROLMENT_CONFIRMED with
        the administrator as actor, MFA_ENABLED for a first factor). Raises
        :class:`~mfa_core.errors.CredentialNotFound`,
        :class:`~mfa_core.errors.InvalidParameter` for an authenticator,
        :class:`~mfa_core.errors.IllegalTransition` when it is not pending, or
        :class:`~mfa_core.errors.StoreError`.
        """
        return self._run(admin_confirm_flow(self._ctx, user_id, credential_id, admin_id=admin_id))

    def send_factor_code(
        self, user_id: str, credential_id: str, *, purpose: OOBPurpose | str
    ) -> str:
        """Send a code to the destination an SMS/email factor holds; return the challenge id.

        The host names the factor, never the number: the destination is unsealed from the
        store. ``login``, ``step_up`` or ``reset`` need a factor that can authenticate (check
        the code with :meth:`verify_oob_code` or :meth:`step_up`); ``phone_confirmation``
        resends the confirmation code of a pending one (check it with
        :meth:`confirm_enrolment`). Send limits, the resend cooldown and the channel rule
        apply as for :meth:`send_oob_code`, with its errors; also
        :class:`~mfa_core.errors.CredentialNotFound`,
        :class:`~mfa_core.errors.InvalidParameter` for an authenticator and
        :class:`~mfa_core.errors.IllegalTransition` for a factor in the wrong state.
        """
        return self._run(send_factor_code_flow(self._ctx, user_id, credential_id, purpose))

    def begin_webauthn_registration(
        self, user_id: str, *, user_name: str, display_name: str | None = None
    ) -> dict[str, Any]:
        """Start registering a security key or passkey for ``user_id``.

        Issues a single-use challenge (valid ``webauthn_config.challenge_ttl`` seconds,
        bound to the user and to registration) and returns the
        ``PublicKeyCredentialCreationOptionsJSON`` (a dict) for the page's
        ``PublicKeyCredential.parseCreationOptionsFromJSON()``. ``user_name`` /
        ``display_name`` are what the authenticator shows; the WebAuthn user handle is
        random (never the user id) and the same for all of a user's keys. The user's keys
        are listed in ``excludeCredentials``. A host should require a fresh second factor
        before adding a key to a user who has one. Raises
        :class:`~mfa_core.errors.InvalidParameter`, :class:`~mfa_core.errors.WebAuthnError`
        (``WEBAUTHN_NOT_CONFIGURED``), :class:`~mfa_core.errors.MissingDependency` (no
        ``webauthn`` extra) or :class:`~mfa_core.errors.StoreError`.
        """
        return self._run(
            begin_registration_flow(
                self._ctx, user_id, user_name=user_name, display_name=display_name
            )
        )

    def finish_webauthn_registration(
        self, user_id: str, response: object, *, nickname: str = ""
    ) -> WebAuthnResult:
        """Check the page's ``credential.toJSON()`` (a ``RegistrationResponseJSON``, as a
        dict or JSON text) and store the new key ACTIVE.

        The challenge is consumed atomically (at most one response is ever accepted for
        it). Refusals are results, never exceptions: ``webauthn_reason`` names each
        (malformed, unknown/expired/reused challenge, replayed, wrong ceremony or user,
        wrong origin, cross-origin, wrong RP ID, user not present / not verified, bad
        attestation, credential exists, throttled, locked, store error); every refusal but
        a throttled one counts as a failure for the user. Emits WEBAUTHN_REGISTERED or
        WEBAUTHN_REGISTRATION_FAILED. Raises only for a bad ``user_id`` / ``nickname`` or
        when WebAuthn is not configured.
        """
        return self._run(finish_registration_flow(self._ctx, user_id, response, nickname=nickname))

    def begin_webauthn_authentication(self, user_id: str | None) -> dict[str, Any]:
        """Issue an authentication challenge and return the
        ``PublicKeyCredentialRequestOptionsJSON`` (a dict) for
        ``PublicKeyCredential.parseRequestOptionsFromJSON()``.

        ``user_id`` lists the user's ACTIVE keys in ``allowCredentials``; ``None`` starts a
        passkey sign-in (no user name: the browser offers its discoverable credentials,
        and the response's user handle names the user). Raises as
        :meth:`begin_webauthn_registration`.
        """
        return self._run(begin_authentication_flow(self._ctx, user_id))

    def finish_webauthn_authentication(
        self, user_id: str | None, response: object
    ) -> WebAuthnResult:
        """Check an assertion (``credential.toJSON()``: an ``AuthenticationResponseJSON``).

        With a ``user_id`` the attempt is admitted and counted by the shared per-user
        throttle before the response is looked at (as a TOTP code is); for a passkey
        sign-in (``user_id=None``) it is counted for the key's owner once the key is known.
        The challenge is consumed atomically, the signature verified with the stored key,
        and the signature counter advanced by ONE compare-and-set: a counter that does not
        advance (where the authenticator keeps one) is refused as
        ``cloned_authenticator`` and emits POSSIBLE_CLONED_AUTHENTICATOR. On success the
        user's failure count is reset and ``result.user_id`` names the user. Refusals are
        results with a ``webauthn_reason`` (see :meth:`finish_webauthn_registration`;
        also unknown credential, credential of another user, credential disabled, bad
        signature). Raises only for a bad ``user_id`` or when WebAuthn is not configured.
        """
        return self._run(finish_authentication_flow(self._ctx, user_id, response))

    def list_webauthn_credentials(self, user_id: str) -> list[WebAuthnCredential]:
        """The user's security keys and passkeys (any state), oldest first (no secret in
        them). Raises :class:`~mfa_core.errors.StoreError` if the store fails."""
        return self._run(list_webauthn_flow(self._ctx, user_id))

    def rename_webauthn_credential(self, user_id: str, credential_id: str, nickname: str) -> None:
        """Set a key's nickname. Raises :class:`~mfa_core.errors.CredentialNotFound` (not
        this user's), :class:`~mfa_core.errors.InvalidParameter` or
        :class:`~mfa_core.errors.StoreError` (also when it changed concurrently)."""
        return self._run(rename_webauthn_flow(self._ctx, user_id, credential_id, nickname))

    def disable_webauthn_credential(
        self, user_id: str, credential_id: str, *, actor: str | None = None
    ) -> None:
        """Disable a key (ACTIVE -> DISABLED by the lifecycle table; it stays listed and
        never signs in). The host requires a fresh second factor first (e.g. a
        :meth:`finish_webauthn_authentication` with another key) or passes an
        administrator's id as ``actor``. Emits CREDENTIAL_DISABLED. Raises
        :class:`~mfa_core.errors.CredentialNotFound`,
        :class:`~mfa_core.errors.IllegalTransition` (disabled already) or
        :class:`~mfa_core.errors.StoreError`."""
        return self._run(disable_webauthn_flow(self._ctx, user_id, credential_id, actor=actor))

    def admin_reset_webauthn(
        self, user_id: str, *, admin_id: str, credential_id: str | None = None
    ) -> int:
        """Remove one key of a user (``credential_id``) or all of them (lost key); returns
        how many were removed. Emits CREDENTIAL_RESET per key, naming the administrator.
        Raises :class:`~mfa_core.errors.CredentialNotFound` or
        :class:`~mfa_core.errors.StoreError`."""
        return self._run(
            admin_reset_webauthn_flow(
                self._ctx, user_id, admin_id=admin_id, credential_id=credential_id
            )
        )
