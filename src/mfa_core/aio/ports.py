"""Async forms of the stateful ports, for hosts that run on an asyncio event loop.

Each Protocol has the methods, arguments, results and atomicity rules of its blocking
counterpart in :mod:`mfa_core.ports` (read the rules there); only ``def`` becomes
``async def``. The clock, the sealer and the event sink stay blocking: they are cheap and
in-process, and :class:`~mfa_core.aio.AsyncMFAService` calls them directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ..models import Admission, Credential, FailureState
from ..oob import OOBChannel, OOBPurpose, OOBRecord
from ..recovery import RecoveryRecord
from ..throttle import ThrottleConfig
from ..webauthn.records import WebAuthnChallenge, WebAuthnCredential

__all__ = [
    "AsyncAttemptStore",
    "AsyncCodeSender",
    "AsyncCredentialStore",
    "AsyncFailureCounter",
    "AsyncOOBChallengeStore",
    "AsyncRecoveryCodeStore",
    "AsyncWebAuthnStore",
]


@runtime_checkable
class AsyncCredentialStore(Protocol):
    """Async :class:`~mfa_core.ports.CredentialStore`."""

    async def add(self, credential: Credential) -> None:
        """Insert a new credential (raise StoreError if the id exists)."""
        ...

    async def get(self, credential_id: str) -> Credential | None:
        """The credential with this id, or ``None``."""
        ...

    async def list_for_user(self, user_id: str) -> Sequence[Credential]:
        """All credentials of a user, oldest first."""
        ...

    async def update(self, credential: Credential, *, expected_version: int) -> bool:
        """Compare-and-set on ``version``."""
        ...

    async def claim(self, credential_id: str, value: int, *, drift: int) -> bool:
        """Accept a step/counter only if greater than the last accepted one (atomic)."""
        ...

    async def delete(self, credential_id: str) -> bool:
        """Remove a credential; return whether it existed."""
        ...


@runtime_checkable
class AsyncFailureCounter(Protocol):
    """Async :class:`~mfa_core.ports.FailureCounter`."""

    async def admit_attempt(self, user_id: str, now: float, limits: ThrottleConfig) -> Admission:
        """Admit and count one attempt, or refuse it (atomic)."""
        ...

    async def get_failures(self, user_id: str) -> FailureState:
        """The current state (``FailureState()`` if none)."""
        ...

    async def reset(self, user_id: str) -> None:
        """Forget the user's failures."""
        ...


@runtime_checkable
class AsyncAttemptStore(AsyncCredentialStore, AsyncFailureCounter, Protocol):
    """Async :class:`~mfa_core.ports.AttemptStore` (the fused operations of a verify)."""

    async def begin_attempt(
        self, user_id: str, now: float, limits: ThrottleConfig
    ) -> tuple[Admission, Sequence[Credential]]:
        """``admit_attempt`` then, when admitted, ``list_for_user``, in one round trip."""
        ...

    async def claim_and_reset(
        self, credential_id: str, value: int, *, drift: int, user_id: str
    ) -> bool:
        """``claim`` then, when it won, ``reset`` of ``user_id``, in one round trip."""
        ...


@runtime_checkable
class AsyncRecoveryCodeStore(Protocol):
    """Async :class:`~mfa_core.ports.RecoveryCodeStore`."""

    async def replace_recovery_codes(self, user_id: str, records: Sequence[RecoveryRecord]) -> None:
        """Replace the user's whole set (atomic)."""
        ...

    async def recovery_codes(self, user_id: str) -> Sequence[RecoveryRecord]:
        """The user's records, used ones included."""
        ...

    async def consume_recovery_code(self, user_id: str, record_id: str, now: float) -> int | None:
        """Mark a code used if unused (atomic); codes left, or ``None``."""
        ...

    async def update_recovery_hash(self, user_id: str, record_id: str, phc: str) -> bool:
        """Replace one record's PHC hash; return whether it exists."""
        ...


@runtime_checkable
class AsyncOOBChallengeStore(Protocol):
    """Async :class:`~mfa_core.ports.OOBChallengeStore`."""

    async def put_challenge(self, record: OOBRecord) -> None:
        """Insert a new challenge (raise StoreError if the id exists)."""
        ...

    async def get_challenge(self, challenge_id: str) -> OOBRecord | None:
        """The challenge with this id, or ``None``."""
        ...

    async def replace_challenge(self, record: OOBRecord, *, expected_generation: int) -> bool:
        """A resend: compare-and-set on ``generation``."""
        ...

    async def update_challenge(self, record: OOBRecord, *, expected: OOBRecord) -> bool:
        """An attempt: compare-and-set on ``(generation, attempts, used)``."""
        ...

    async def delete_challenge(self, challenge_id: str) -> bool:
        """Remove a challenge; return whether it existed."""
        ...

    async def count_send(self, key: str, window_start: float, expires_at: float) -> int:
        """Add one to the send counter ``(key, window_start)`` (atomic); the new count."""
        ...


@runtime_checkable
class AsyncCodeSender(Protocol):
    """Async :class:`~mfa_core.ports.CodeSender` (the host's email or SMS gateway)."""

    async def send(
        self,
        *,
        channel: OOBChannel,
        destination: str,
        code: str,
        purpose: OOBPurpose,
        challenge_id: str,
        expires_at: float,
    ) -> None:
        """Deliver ``code`` to ``destination``; must not log the code. Raising refuses."""
        ...


@runtime_checkable
class AsyncWebAuthnStore(Protocol):
    """Async :class:`~mfa_core.ports.WebAuthnStore`."""

    async def add_webauthn_credential(self, credential: WebAuthnCredential) -> None:
        """Insert a new credential (raise StoreError if the credential id exists)."""
        ...

    async def get_webauthn_credential(self, credential_id: str) -> WebAuthnCredential | None:
        """The credential with this id, or ``None``."""
        ...

    async def webauthn_credentials(self, user_id: str) -> Sequence[WebAuthnCredential]:
        """The user's credentials, oldest first."""
        ...

    async def update_webauthn_credential(
        self, credential: WebAuthnCredential, *, expected_version: int
    ) -> bool:
        """Compare-and-set on ``version``."""
        ...

    async def advance_sign_count(
        self, credential_id: str, sign_count: int, *, backed_up: bool, now: float
    ) -> bool:
        """Accept the counter only if it advances (or both are 0), atomically."""
        ...

    async def delete_webauthn_credential(self, credential_id: str) -> bool:
        """Remove a credential; return whether it existed."""
        ...

    async def put_webauthn_challenge(self, challenge: WebAuthnChallenge) -> None:
        """Store a new challenge (raise StoreError if the key exists)."""
        ...

    async def consume_webauthn_challenge(
        self, key: str, fingerprint: str, now: float
    ) -> WebAuthnChallenge | None:
        """Use the challenge atomically; the record as it was before."""
        ...
