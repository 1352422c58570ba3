"""Async reference stores: :class:`AsyncStoreAdapter` and :class:`AsyncMemoryStore`.

Neither has store logic of its own: each forwards to a blocking store of
:mod:`mfa_core.stores`, whose single operations are already atomic.

* :class:`AsyncMemoryStore` runs the calls of its :class:`~mfa_core.stores.MemoryStore`
  inline on the event loop: each one is a few dictionary operations under a lock held
  only for that call, so it never blocks the loop and never interleaves with another task.
* :class:`AsyncStoreAdapter` (``offload=True``) runs each call of any blocking store in a
  worker thread (:func:`asyncio.to_thread`): the way to put a
  :class:`~mfa_core.stores.SQLiteStore` or :class:`~mfa_core.stores.SQLStore` under
  :class:`~mfa_core.aio.AsyncMFAService` without blocking the loop on disk or network I/O.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, Protocol, TypeVar, cast

from ..models import Credential, FailureState
from ..oob import OOBChannel, OOBPurpose, OOBRecord
from ..ports import (
    CodeSender,
    CredentialStore,
    FailureCounter,
    OOBChallengeStore,
    RecoveryCodeStore,
)
from ..recovery import RecoveryRecord
from ..stores.memory import MemoryStore

__all__ = ["AsyncMemoryStore", "AsyncStoreAdapter"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


class _BlockingPorts(
    CredentialStore, FailureCounter, RecoveryCodeStore, OOBChallengeStore, CodeSender, Protocol
):
    """What an adapted object may implement (a missing method fails when it is used)."""


class AsyncStoreAdapter:
    """The async ports over a blocking object that implements some or all of
    :mod:`mfa_core.ports` (credential store, failure counter, recovery codes, out-of-band
    challenges, and a code sender).

    ``offload=True`` (the default) runs every call in a worker thread; ``offload=False``
    runs it inline, for stores whose calls never block (in memory). ``close()`` closes the
    wrapped store if it has a ``close`` method.
    """

    __slots__ = ("_offload", "_store")

    def __init__(self, store: object, *, offload: bool = True) -> None:
        self._store = cast(_BlockingPorts, store)
        self._offload = bool(offload)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._store!r}, offload={self._offload})"

    @property
    def blocking(self) -> Any:
        """The wrapped blocking store (shares its state with this adapter)."""
        return self._store

    async def _do(self, fn: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
        if self._offload:
            return await asyncio.to_thread(fn, *args, **kwargs)
        return fn(*args, **kwargs)

    async def close(self) -> None:
        """Close the wrapped store (if it can be closed)."""
        close = getattr(self._store, "close", None)
        if callable(close):
            await self._do(close)

    # -- AsyncCredentialStore ------------------------------------------------------------

    async def add(self, credential: Credential) -> None:
        """See :meth:`mfa_core.ports.CredentialStore.add`."""
        await self._do(self._store.add, credential)

    async def get(self, credential_id: str) -> Credential | None:
        """See :meth:`mfa_core.ports.CredentialStore.get`."""
        return await self._do(self._store.get, credential_id)

    async def list_for_user(self, user_id: str) -> Sequence[Credential]:
        """See :meth:`mfa_core.ports.CredentialStore.list_for_user`."""
        return await self._do(self._store.list_for_user, user_id)

    async def update(self, credential: Credential, *, expected_version: int) -> bool:
        """See :meth:`mfa_core.ports.CredentialStore.update`."""
        return await self._do(self._store.update, credential, expected_version=expected_version)

    async def claim(self, credential_id: str, value: int, *, drift: int) -> bool:
        """See :meth:`mfa_core.ports.CredentialStore.claim`."""
        return await self._do(self._store.claim, credential_id, value, drift=drift)

    async def delete(self, credential_id: str) -> bool:
        """See :meth:`mfa_core.ports.CredentialStore.delete`."""
        return await self._do(self._store.delete, credential_id)

    # -- AsyncFailureCounter -------------------------------------------------------------

    async def record_failure(self, user_id: str, now: float) -> FailureState:
        """See :meth:`mfa_core.ports.FailureCounter.record_failure`."""
        return await self._do(self._store.record_failure, user_id, now)

    async def get_failures(self, user_id: str) -> FailureState:
        """See :meth:`mfa_core.ports.FailureCounter.get_failures`."""
        return await self._do(self._store.get_failures, user_id)

    async def reset(self, user_id: str) -> None:
        """See :meth:`mfa_core.ports.FailureCounter.reset`."""
        await self._do(self._store.reset, user_id)

    # -- AsyncRecoveryCodeStore ----------------------------------------------------------

    async def replace_recovery_codes(self, user_id: str, records: Sequence[RecoveryRecord]) -> None:
        """See :meth:`mfa_core.ports.RecoveryCodeStore.replace_recovery_codes`."""
        await self._do(self._store.replace_recovery_codes, user_id, records)

    async def recovery_codes(self, user_id: str) -> Sequence[RecoveryRecord]:
        """See :meth:`mfa_core.ports.RecoveryCodeStore.recovery_codes`."""
        return await self._do(self._store.recovery_codes, user_id)

    async def consume_recovery_code(self, user_id: str, record_id: str, now: float) -> int | None:
        """See :meth:`mfa_core.ports.RecoveryCodeStore.consume_recovery_code`."""
        return await self._do(self._store.consume_recovery_code, user_id, record_id, now)

    async def update_recovery_hash(self, user_id: str, record_id: str, phc: str) -> bool:
        """See :meth:`mfa_core.ports.RecoveryCodeStore.update_recovery_hash`."""
        return await self._do(self._store.update_recovery_hash, user_id, record_id, phc)

    # -- AsyncOOBChallengeStore ----------------------------------------------------------

    async def put_challenge(self, record: OOBRecord) -> None:
        """See :meth:`mfa_core.ports.OOBChallengeStore.put_challenge`."""
        await self._do(self._store.put_challenge, record)

    async def get_challenge(self, challenge_id: str) -> OOBRecord | None:
        """See :meth:`mfa_core.ports.OOBChallengeStore.get_challenge`."""
        return await self._do(self._store.get_challenge, challenge_id)

    async def replace_challenge(self, record: OOBRecord, *, expected_generation: int) -> bool:
        """See :meth:`mfa_core.ports.OOBChallengeStore.replace_challenge`."""
        replace = self._store.replace_challenge
        return await self._do(replace, record, expected_generation=expected_generation)

    async def update_challenge(self, record: OOBRecord, *, expected: OOBRecord) -> bool:
        """See :meth:`mfa_core.ports.OOBChallengeStore.update_challenge`."""
        return await self._do(self._store.update_challenge, record, expected=expected)

    async def delete_challenge(self, challenge_id: str) -> bool:
        """See :meth:`mfa_core.ports.OOBChallengeStore.delete_challenge`."""
        return await self._do(self._store.delete_challenge, challenge_id)

    async def count_send(self, key: str, window_start: float, expires_at: float) -> int:
        """See :meth:`mfa_core.ports.OOBChallengeStore.count_send`."""
        return await self._do(self._store.count_send, key, window_start, expires_at)

    # -- AsyncCodeSender -----------------------------------------------------------------

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
        """See :meth:`mfa_core.ports.CodeSender.send` (adapts a blocking sender too)."""
        await self._do(
            self._store.send,
            channel=channel,
            destination=destination,
            code=code,
            purpose=purpose,
            challenge_id=challenge_id,
            expires_at=expires_at,
        )


class AsyncMemoryStore(AsyncStoreAdapter):
    """An asyncio-safe in-memory store: all four async store ports in one object.

    Wraps a :class:`~mfa_core.stores.MemoryStore` (pass one to share its state with
    blocking code, e.g. a test) and runs its calls inline: each is atomic and short.
    """

    __slots__ = ()

    def __init__(self, store: MemoryStore | None = None) -> None:
        super().__init__(MemoryStore() if store is None else store, offload=False)
