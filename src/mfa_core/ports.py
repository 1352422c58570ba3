"""The Protocols a host implements (or takes from :mod:`mfa_core.stores`).

Each port has the fewest methods that keep the core correct under concurrency. Every state
change that concurrent requests can race is ONE atomic operation of the store
(compare-and-set or conditional update), never read-then-write in Python:

* :meth:`CredentialStore.claim` - accept a TOTP step / HOTP counter only if it is greater
  than the last accepted one (replay protection; exactly one of N concurrent winners);
* :meth:`CredentialStore.update` - lifecycle changes, compare-and-set on ``version``;
* :meth:`FailureCounter.admit_attempt` - check the throttle and count the attempt, before its
  code is looked at (at most ``max_failures`` guesses under any concurrency);
* :meth:`RecoveryCodeStore.replace_recovery_codes` - swap a user's whole set of recovery
  codes (the old codes are dead at once);
* :meth:`RecoveryCodeStore.consume_recovery_code` - mark one code used only if it is
  unused (exactly one of N concurrent winners);
* :meth:`OOBChallengeStore.replace_challenge` - a resend, compare-and-set on ``generation``;
* :meth:`OOBChallengeStore.update_challenge` - an attempt, compare-and-set on
  ``(generation, attempts, used)``;
* :meth:`OOBChallengeStore.count_send` - increment-and-read of a send counter (the per-user
  and per-destination limits on codes sent);
* :meth:`WebAuthnStore.advance_sign_count` - accept a WebAuthn signature counter only if it
  advances (cloned-authenticator detection), and
  :meth:`WebAuthnStore.consume_webauthn_challenge` - mark a challenge used only if unused.

Every store method either completes or raises :class:`~mfa_core.errors.StoreError`
(:class:`~mfa_core.errors.StoreUnavailable` when the back-end cannot be reached); it never
half-writes. The service turns those errors into refused attempts (fail closed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from .models import Admission, Credential, Event, FailureState
from .oob import OOBChannel, OOBPurpose, OOBRecord
from .recovery import RecoveryRecord
from .throttle import ThrottleConfig
from .webauthn.records import WebAuthnChallenge, WebAuthnCredential

__all__ = [
    "AttemptStore",
    "Clock",
    "CodeSender",
    "CredentialStore",
    "EventSink",
    "FailureCounter",
    "OOBChallengeStore",
    "RecoveryCodeStore",
    "Sealer",
    "StoreMaintenance",
    "WebAuthnStore",
]


@runtime_checkable
class Clock(Protocol):
    """Where the service reads the time. Pure modules never do; they take ``now``."""

    def now(self) -> float:
        """Return the current Unix time in seconds (UTC, never local time)."""
        ...


@runtime_checkable
class EventSink(Protocol):
    """Receives audit events (write them to a log, a queue, an audit table...)."""

    def emit(self, event: Event) -> None:
        """Record ``event``. Must not raise for ordinary sink trouble; the service ignores
        and logs exceptions from ``emit`` so that auditing cannot change an outcome."""
        ...


@runtime_checkable
class Sealer(Protocol):
    """Encrypts OTP keys for storage (AES-256-GCM in :mod:`mfa_core.sealing`, or a KMS).

    The credential id is bound as associated data: a sealed key copied to another
    credential does not unseal.
    """

    def seal(self, plaintext: bytes, *, credential_id: str) -> bytes:
        """Return an opaque blob (including the id of the sealing key) for ``plaintext``."""
        ...

    def unseal(self, sealed: bytes, *, credential_id: str) -> bytes:
        """Return the plaintext, or raise :class:`~mfa_core.errors.SealingError`."""
        ...

    def needs_reseal(self, sealed: bytes) -> bool:
        """True when ``sealed`` was made with a key other than the current one."""
        ...


@runtime_checkable
class CredentialStore(Protocol):
    """Persistent credentials, several per user."""

    def add(self, credential: Credential) -> None:
        """Insert a new credential; raise :class:`~mfa_core.errors.StoreError` if the id exists."""
        ...

    def get(self, credential_id: str) -> Credential | None:
        """Return the credential with this id, or ``None``."""
        ...

    def list_for_user(self, user_id: str) -> Sequence[Credential]:
        """Return all credentials of a user (any state), oldest first."""
        ...

    def update(self, credential: Credential, *, expected_version: int) -> bool:
        """Atomically replace the stored credential if its version is ``expected_version``.

        The stored version becomes ``expected_version + 1`` (whatever ``credential.version``
        says); ``last_accepted`` and ``drift`` are left as stored (they belong to
        :meth:`claim`). Returns ``False``, changing nothing, if the credential is missing
        or its version differs.
        """
        ...

    def claim(self, credential_id: str, value: int, *, drift: int) -> bool:
        """Atomically accept a TOTP step / HOTP counter value.

        If ``value`` is greater than the stored ``last_accepted``, store ``value`` and
        ``drift`` and return ``True``; otherwise change nothing and return ``False``. Of
        any number of concurrent calls with the same value exactly one returns ``True``.
        """
        ...

    def delete(self, credential_id: str) -> bool:
        """Remove a credential; return whether it existed."""
        ...


@runtime_checkable
class FailureCounter(Protocol):
    """Second-factor attempts per user, across all the user's credentials and factors.

    An attempt is counted when it is *admitted*, before its code is looked at, by ONE
    atomic operation (:meth:`admit_attempt`); a success resets the count. So with
    ``max_failures = N`` at most N guesses are evaluated before the user is locked, under any
    number of concurrent requests, threads or processes.
    """

    def admit_attempt(self, user_id: str, now: float, limits: ThrottleConfig) -> Admission:
        """Atomically admit and count one attempt at ``now``, or refuse it.

        Applies :func:`mfa_core.throttle.admit` to the stored state (``FailureState()`` when
        there is none) as one atomic step: if :func:`mfa_core.throttle.check` allows the
        attempt under ``limits``, store ``count + 1`` and ``max(last_failure_at, now)`` and
        return ``Admission(admitted=True, state=<the new state>)``; otherwise change nothing
        and return ``Admission(admitted=False, state=<the stored state>)``. Of any number of
        concurrent calls for one user, from any thread or process, no more are admitted
        than the limits allow (``max_failures - count`` before the lock).
        """
        ...

    def get_failures(self, user_id: str) -> FailureState:
        """Return the current state (``FailureState()`` if none).

        Named apart from :meth:`CredentialStore.get` so that one object can implement both
        ports (every store in :mod:`mfa_core.stores` does).
        """
        ...

    def reset(self, user_id: str) -> None:
        """Forget the user's failures (after a successful second factor, or an admin unlock)."""
        ...


@runtime_checkable
class AttemptStore(CredentialStore, FailureCounter, Protocol):
    """A credential store and failure counter in one, with the two fused operations of a
    verification: a verify is then at most two round trips to the back-end.

    Optional: the service uses these operations when ``credentials`` and ``failures`` are
    one object implementing this Protocol (every store in :mod:`mfa_core.stores` does),
    and the separate port methods otherwise. Each must be exactly equivalent to the
    separate calls it names, with the same atomicity.
    """

    def begin_attempt(
        self, user_id: str, now: float, limits: ThrottleConfig
    ) -> tuple[Admission, Sequence[Credential]]:
        """:meth:`FailureCounter.admit_attempt`, then (only when admitted)
        :meth:`CredentialStore.list_for_user`, in one round trip; an attempt that is not
        admitted gets an empty sequence. The admission is atomic as in ``admit_attempt``;
        the list is a consistent read of the user's credentials."""
        ...

    def claim_and_reset(self, credential_id: str, value: int, *, drift: int, user_id: str) -> bool:
        """:meth:`CredentialStore.claim`, then (only when the claim won)
        :meth:`FailureCounter.reset` of ``user_id``, in one round trip. Returns whether the
        claim won; the claim is atomic as in ``claim``."""
        ...


@runtime_checkable
class RecoveryCodeStore(Protocol):
    """A user's recovery codes, stored as :class:`~mfa_core.recovery.RecoveryRecord` values
    (record id, keyed lookup tag, Argon2id PHC hash, ``used_at``); never the codes."""

    def replace_recovery_codes(self, user_id: str, records: Sequence[RecoveryRecord]) -> None:
        """Atomically replace the user's whole set with ``records`` (an empty sequence
        deletes it). Afterwards no code of the previous set is found or consumable."""
        ...

    def recovery_codes(self, user_id: str) -> Sequence[RecoveryRecord]:
        """Return the user's records, used ones included (empty if the user has none)."""
        ...

    def consume_recovery_code(self, user_id: str, record_id: str, now: float) -> int | None:
        """Atomically mark a code used at ``now`` if it exists and is unused.

        Returns the number of unused codes left after consuming it, or ``None`` (changing
        nothing) if the record is missing or was already used. Of any number of concurrent
        calls for the same record exactly one returns a number.
        """
        ...

    def update_recovery_hash(self, user_id: str, record_id: str, phc: str) -> bool:
        """Replace the PHC hash of one record (an upgrade of the Argon2id parameters),
        leaving ``used_at`` as stored. Returns whether the record exists."""
        ...


@runtime_checkable
class OOBChallengeStore(Protocol):
    """Out-of-band challenges (:class:`~mfa_core.oob.OOBRecord`), keyed by challenge id.

    A record holds only the keyed hash of its code. ``generation`` grows with each resend;
    ``attempts`` and ``used`` change with each attempt. Both changes are compare-and-sets,
    so a code is accepted at most once and wrong attempts are counted exactly. The same
    store counts the codes sent per window (:meth:`count_send`), under opaque keys the
    service makes (never an address or number).
    """

    def put_challenge(self, record: OOBRecord) -> None:
        """Insert a new challenge; raise :class:`~mfa_core.errors.StoreError` if the id exists."""
        ...

    def get_challenge(self, challenge_id: str) -> OOBRecord | None:
        """Return the challenge with this id, or ``None``."""
        ...

    def replace_challenge(self, record: OOBRecord, *, expected_generation: int) -> bool:
        """A resend: atomically replace the stored challenge ``record.challenge_id`` with
        ``record`` if its stored ``generation`` is ``expected_generation`` and it is not
        ``used``. Returns ``False``, changing nothing, otherwise (or if it is missing). Of
        concurrent resends of the same generation exactly one wins.
        """
        ...

    def update_challenge(self, record: OOBRecord, *, expected: OOBRecord) -> bool:
        """An attempt: atomically store ``record`` if the stored challenge still has
        ``expected``'s ``generation``, ``attempts`` and ``used``. Returns ``False``,
        changing nothing, otherwise (or if it is missing); the caller re-reads and
        decides again.
        """
        ...

    def delete_challenge(self, challenge_id: str) -> bool:
        """Remove a challenge; return whether it existed."""
        ...

    def count_send(self, key: str, window_start: float, expires_at: float) -> int:
        """Atomically add one to the counter ``(key, window_start)`` and return the new
        count (1 for the first call). Of N concurrent calls for one counter, from any
        thread or process, each gets a distinct count from 1 to N. The store may forget
        the counter once ``expires_at`` (Unix seconds) has passed. ``key`` is an opaque
        string of 1 to 128 characters made by the service.
        """
        ...


@runtime_checkable
class CodeSender(Protocol):
    """Delivers an out-of-band code (the host's email or SMS gateway)."""

    def send(
        self,
        *,
        channel: OOBChannel,
        destination: str,
        code: str,
        purpose: OOBPurpose,
        challenge_id: str,
        expires_at: float,
    ) -> None:
        """Deliver ``code`` to ``destination`` over ``channel``; it is valid until
        ``expires_at`` (Unix seconds). Must not log the code. Raising refuses the send:
        the service then removes the challenge it had just stored (or restores the previous
        code on a resend) and raises :class:`~mfa_core.errors.OutOfBandError` with code
        ``OOB_DELIVERY_FAILED``.
        """
        ...


@runtime_checkable
class StoreMaintenance(Protocol):
    """Operator work over a whole store (``mfa-core admin``): walk every credential, and
    remove what has expired.

    Optional: the service never needs it; the admin command line uses it when the store
    implements it (every store in :mod:`mfa_core.stores` does). Every method either
    completes or raises :class:`~mfa_core.errors.StoreError`.
    """

    def credential_ids(self, after: str | None, limit: int) -> Sequence[str]:
        """Return up to ``limit`` (1 to 10 000) stored credential ids greater than ``after``
        (all ids when ``None``), in ascending code-point order: pages of a walk over the
        whole store that a caller can resume from the last id it saw."""
        ...

    def purge_challenges(self, before: float) -> int:
        """Remove every out-of-band challenge whose code expired before ``before`` (Unix
        seconds), and every send counter whose window ended before it; return how many
        challenges were removed."""
        ...

    def purge_pending(self, before: float) -> int:
        """Remove every PENDING credential (an enrolment never confirmed) whose
        ``pending_until`` deadline is before ``before``; return how many were removed. Each
        removal is atomic with its test: a credential confirmed meanwhile stays."""
        ...


@runtime_checkable
class WebAuthnStore(Protocol):
    """Security keys and passkeys (:class:`~mfa_core.webauthn.WebAuthnCredential`) and the
    challenges issued for their ceremonies (:class:`~mfa_core.webauthn.WebAuthnChallenge`).

    A credential id is unique across all users (a key registered twice is refused). The
    sign count changes only by :meth:`advance_sign_count` and a challenge is used only by
    :meth:`consume_webauthn_challenge`, each ONE atomic operation.
    """

    def add_webauthn_credential(self, credential: WebAuthnCredential) -> None:
        """Insert a new credential; raise :class:`~mfa_core.errors.StoreError` if its
        ``credential_id`` is stored already (for any user)."""
        ...

    def get_webauthn_credential(self, credential_id: str) -> WebAuthnCredential | None:
        """Return the credential with this id (whoever's it is), or ``None``."""
        ...

    def webauthn_credentials(self, user_id: str) -> Sequence[WebAuthnCredential]:
        """Return the user's credentials (any state), oldest first."""
        ...

    def update_webauthn_credential(
        self, credential: WebAuthnCredential, *, expected_version: int
    ) -> bool:
        """Atomically replace the stored credential if its version is ``expected_version``;
        the stored version becomes ``expected_version + 1`` and ``sign_count``,
        ``backed_up`` and ``last_used_at`` stay as stored (they belong to
        :meth:`advance_sign_count`). ``False`` (nothing changed) if missing or changed."""
        ...

    def advance_sign_count(
        self, credential_id: str, sign_count: int, *, backed_up: bool, now: float
    ) -> bool:
        """Atomically accept a use of the credential with signature counter ``sign_count``.

        If ``sign_count`` is greater than the stored count, or both are 0 (an authenticator
        that keeps no counter), store it with ``backed_up`` and ``last_used_at = now`` and
        return ``True``; otherwise change nothing and return ``False`` (the counter did not
        advance: a possibly cloned authenticator). Of concurrent calls with one value at
        most one returns ``True`` unless both counts are 0."""
        ...

    def delete_webauthn_credential(self, credential_id: str) -> bool:
        """Remove a credential; return whether it existed."""
        ...

    def put_webauthn_challenge(self, challenge: WebAuthnChallenge) -> None:
        """Store a newly issued challenge; raise :class:`~mfa_core.errors.StoreError` if its
        key exists. The store may forget challenges whose ``expires_at`` has passed."""
        ...

    def consume_webauthn_challenge(
        self, key: str, fingerprint: str, now: float
    ) -> WebAuthnChallenge | None:
        """Atomically use the challenge ``key``: return it as it was stored before this call
        (``None`` if unknown or forgotten), and if its ``used_by`` was ``None`` set it to
        ``fingerprint``. So exactly one of concurrent calls gets a record with
        ``used_by is None`` (the one that consumed it); the others see who did."""
        ...
