"""The async ports of :mod:`mfa_core.aio.ports`, implemented the way an asyncio host would.

Checked with ``mypy --strict tests/typing``: if an async Protocol changes so that a plain
host class can no longer satisfy it, type checking fails here. The store is real
(``tests/test_aio_contract.py`` runs the async contract suite against it) and written
without help from :mod:`mfa_core.stores`: dictionaries behind an :class:`asyncio.Lock`,
with an ``await`` inside every critical section, as a network round trip would have.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import attrs

from mfa_core.aio import AsyncMFAService
from mfa_core.aio.ports import AsyncCredentialStore, AsyncFailureCounter
from mfa_core.errors import StoreError
from mfa_core.models import Admission, Credential, FailureState
from mfa_core.sealing import AESGCMSealer
from mfa_core.throttle import ThrottleConfig, admit


class AsyncHostStore:
    """Credentials and failure counts in memory, one lock for every change."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._credentials: dict[str, tuple[int, Credential]] = {}
        self._failures: dict[str, FailureState] = {}
        self._sequence = 0

    async def add(self, credential: Credential) -> None:
        async with self._lock:
            await asyncio.sleep(0)
            if credential.id in self._credentials:
                raise StoreError("credential id exists")
            self._sequence += 1
            self._credentials[credential.id] = (self._sequence, credential)

    async def get(self, credential_id: str) -> Credential | None:
        found = self._credentials.get(credential_id)
        return None if found is None else found[1]

    async def list_for_user(self, user_id: str) -> Sequence[Credential]:
        rows = sorted(
            (c.created_at, seq, c) for seq, c in self._credentials.values() if c.user_id == user_id
        )
        return [c for _, _, c in rows]

    async def update(self, credential: Credential, *, expected_version: int) -> bool:
        async with self._lock:
            await asyncio.sleep(0)
            found = self._credentials.get(credential.id)
            if found is None or found[1].version != expected_version:
                return False
            seq, current = found
            self._credentials[credential.id] = (
                seq,
                attrs.evolve(
                    credential,
                    version=expected_version + 1,
                    last_accepted=current.last_accepted,
                    drift=current.drift,
                ),
            )
            return True

    async def claim(self, credential_id: str, value: int, *, drift: int) -> bool:
        async with self._lock:
            await asyncio.sleep(0)
            found = self._credentials.get(credential_id)
            if found is None or value <= found[1].last_accepted:
                return False
            seq, current = found
            updated = attrs.evolve(current, last_accepted=value, drift=drift)
            self._credentials[credential_id] = (seq, updated)
            return True

    async def delete(self, credential_id: str) -> bool:
        async with self._lock:
            return self._credentials.pop(credential_id, None) is not None

    async def admit_attempt(self, user_id: str, now: float, limits: ThrottleConfig) -> Admission:
        async with self._lock:  # the decision and the write in one step for other tasks
            await asyncio.sleep(0)
            admission = admit(self._failures.get(user_id, FailureState()), now, limits)
            if admission.admitted:
                self._failures[user_id] = admission.state
            return admission

    async def get_failures(self, user_id: str) -> FailureState:
        return self._failures.get(user_id, FailureState())

    async def reset(self, user_id: str) -> None:
        async with self._lock:
            self._failures.pop(user_id, None)


def build_service() -> AsyncMFAService:
    """Wire the host store into the async service (type-checked, not only run)."""
    store = AsyncHostStore()
    credentials: AsyncCredentialStore = store
    failures: AsyncFailureCounter = store
    return AsyncMFAService(credentials, failures, AESGCMSealer.generate())
