"""Reference implementations of the storage ports (:mod:`mfa_core.ports`).

Each store is a :class:`~mfa_core.ports.CredentialStore` and a
:class:`~mfa_core.ports.FailureCounter` in one object, so a service is built with
``MFAService(store, store, sealer)``:

* :class:`MemoryStore` - in-process dictionaries behind one lock (tests, prototypes,
  single-process services);
* :class:`SQLiteStore` - the embedded default: one SQLite file (WAL, versioned schema),
  exact across threads and processes.

Stores for servers with optional dependencies live in their own modules
(``mfa_core.stores.redis``, ``mfa_core.stores.sql``) and are imported from there, so that
importing this package never needs an optional extra. Every store passes the contract suite
in :mod:`mfa_core.testing`; see ``docs/stores.md``.
"""

from __future__ import annotations

from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = ["MemoryStore", "SQLiteStore"]
