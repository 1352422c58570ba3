"""The asyncio API: :class:`AsyncMFAService`, async ports and async reference stores.

* :class:`AsyncMFAService` - the operations of :class:`~mfa_core.service.MFAService` as
  coroutines, running the same flows (no second copy of any rule);
* :mod:`mfa_core.aio.ports` - the async Protocols a host's stores implement;
* :class:`AsyncMemoryStore` - in-process, for tests and single-process hosts;
* :class:`AsyncStoreAdapter` - any blocking store behind the async ports (each call in a
  worker thread, e.g. :class:`~mfa_core.stores.SQLiteStore`);
* :class:`AsyncRedisStore` (``mfa_core.aio.redis``, the ``redis`` extra) - ``redis.asyncio``
  with the key layout and Lua scripts of :class:`~mfa_core.stores.RedisStore`.
"""

from __future__ import annotations

from .ports import (
    AsyncCodeSender,
    AsyncCredentialStore,
    AsyncFailureCounter,
    AsyncOOBChallengeStore,
    AsyncRecoveryCodeStore,
)
from .service import AsyncMFAService
from .stores import AsyncMemoryStore, AsyncStoreAdapter

__all__ = [
    "AsyncCodeSender",
    "AsyncCredentialStore",
    "AsyncFailureCounter",
    "AsyncMFAService",
    "AsyncMemoryStore",
    "AsyncOOBChallengeStore",
    "AsyncRecoveryCodeStore",
    "AsyncStoreAdapter",
]
