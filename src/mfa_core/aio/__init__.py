"""The asyncio API: :class:`AsyncMFAService`, async ports and async reference stores.

* :class:`AsyncMFAService` - the operations of :class:`~mfa_core.service.MFAService` as
  coroutines, running the same flows (no second copy of any rule);
* :mod:`mfa_core.aio.ports` - the async Protocols a host's stores implement;
* :class:`AsyncMemoryStore` - in-process, for tests and single-process hosts;
* :class:`AsyncStoreAdapter` - any blocking store behind the async ports (each call in a
  worker thread, e.g. :class:`~mfa_core.stores.SQLiteStore`);
* :class:`AsyncRedisStore` (``mfa_core.aio.redis``, the ``redis`` extra) - ``redis.asyncio``
  with the key layout and Lua scripts of :class:`~mfa_core.stores.RedisStore`;
* :class:`AsyncSQLStore` (``mfa_core.aio.sql``, the ``sql`` extra) - SQLAlchemy's async
  engine (PostgreSQL via psycopg, SQLite via aiosqlite) running the operations of
  :class:`~mfa_core.stores.sql.SQLStore`.

The two stores with optional dependencies are imported lazily: ``import mfa_core.aio``
never needs an extra, and ``from mfa_core.aio import AsyncSQLStore`` without the extra
raises :class:`~mfa_core.errors.MissingDependency` with the ``pip install`` line.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .ports import (
    AsyncCodeSender,
    AsyncCredentialStore,
    AsyncFailureCounter,
    AsyncOOBChallengeStore,
    AsyncRecoveryCodeStore,
)
from .service import AsyncMFAService
from .stores import AsyncMemoryStore, AsyncStoreAdapter

if TYPE_CHECKING:
    from .redis import AsyncRedisStore as AsyncRedisStore
    from .sql import AsyncSQLStore as AsyncSQLStore

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
# Not in __all__: a star import must not need the optional extras.
_LAZY = {"AsyncRedisStore": ".redis", "AsyncSQLStore": ".sql"}


def __getattr__(name: str) -> Any:
    """Import :class:`AsyncRedisStore` and :class:`AsyncSQLStore` on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
