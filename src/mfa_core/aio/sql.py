"""An asyncio store on a SQL database: :class:`AsyncSQLStore` (SQLAlchemy's async engine).

Needs the ``sql`` extra (``pip install 'mfa_core[sql]'``: SQLAlchemy 2 with greenlet, and
psycopg 3, whose async mode serves ``postgresql+psycopg://`` URLs); for SQLite the host
installs ``aiosqlite`` itself (``sqlite+aiosqlite:///path``). Importing this module
without SQLAlchemy or greenlet raises :class:`~mfa_core.errors.MissingDependency`.

Same tables, statements, transactions, validation, row decoding and error mapping as
:class:`~mfa_core.stores.sql.SQLStore`, and not a second copy of any of them: every call
runs the blocking store's own method, on the async engine's pool, through SQLAlchemy's
greenlet bridge (``greenlet_spawn``, what ``AsyncConnection.run_sync`` and
``AsyncEngine.connect`` are made of). Inside the bridge the synchronous ``Engine`` behind
the :class:`~sqlalchemy.ext.asyncio.AsyncEngine` borrows a connection, executes and
commits exactly as ``SQLStore`` does; each time the driver would block, the greenlet
hands the driver's coroutine to the event loop and resumes with its result. No thread is
used, and the loop runs other tasks while a statement is on the wire.

Why the bridge around whole methods rather than the two other shapes:

* ``AsyncConnection.run_sync(body)`` needs the connection first, taken by async code
  outside ``SQLStore``: the connection's checkout and its errors would need a second
  error mapping, the choice between the autocommit and the transactional engine a second
  home, and every ``SQLStore`` method a variant bound to a given connection;
* splitting every operation into a plan (statement + reader) run by two executors keeps
  one copy of the statements but two of the execution (commit, transaction, error
  mapping) and of each method's outline;
* running the whole method keeps ``SQLStore`` the single implementation: argument checks
  before any I/O, one statement in autocommit per call on PostgreSQL (no ``BEGIN`` or
  ``COMMIT``), the same multi-statement transactions (``replace_recovery_codes``, and
  ``consume_recovery_code`` on SQLite), ``StoreUnavailable`` when the database cannot be
  reached and ``StoreError`` otherwise, with identical messages.

Cancellation: a task cancelled during a call gets ``CancelledError`` at once, while the
call itself is shielded and runs to its end in the background: SQLAlchemy and the driver
are never interrupted half-way, so every connection goes back to the pool in order (no
transaction left open, no result left unread, no later call sees a stale result). As
with a timeout, the outcome of the cancelled call is unknown to its caller (each call is
atomic: nothing is half-written); a cancelled claim may still have been stored, which
only refuses that code later (never an acceptance without a claim).

Why not interrupt the call: on SQLite, aiosqlite cannot stop a statement running in its
thread, and a call cut between its statement and the reading of its rows left the file's
write lock held by a closed connection until the garbage collector ran, so every other
writer waited for its busy timeout. On PostgreSQL, psycopg does cancel a statement, but a
cancellation that lands while the pool is opening or handing back a connection left
connections that only the garbage collector closed (a few in 200 rounds of mass
cancellation under load; none with the shield), a slow leak of server connections under
cancellation pressure. A shielded call holds its pooled connection until its statement
ends, so bound long waits with the host's own limits (``lock_timeout`` /
``statement_timeout`` on PostgreSQL, the busy timeout on SQLite), and dispose of the
engine once the tasks using it are done.

Pooling, timeouts, ``pool_pre_ping`` and ``schema_translate_map`` are the host's engine's
own. An async engine's connections belong to the event loop that opened them: use one
engine per loop, and ``await engine.dispose()`` on that loop when done.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar

from ..errors import InvalidParameter, MissingDependency, StoreUnavailable
from ..models import Admission, Credential
from ..throttle import ThrottleConfig

try:
    import greenlet  # type: ignore[import-untyped]  # noqa: F401 - needed by the bridge
    from sqlalchemy import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine
    from sqlalchemy.util import await_only, greenlet_spawn
except ImportError:  # pragma: no cover - exercised in a subprocess by the tests
    raise MissingDependency(
        "the async SQL store needs SQLAlchemy 2 with greenlet: pip install 'mfa_core[sql]'"
    ) from None

from ..stores import sql
from ..stores.sql import SQLStore
from .stores import AsyncStoreAdapter

__all__ = ["AsyncSQLStore", "create_schema"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _sync_engine(engine: object) -> Engine:
    """The synchronous ``Engine`` behind ``engine``, once it is an async engine on a
    supported database."""
    if not isinstance(engine, AsyncEngine):
        raise InvalidParameter(
            "engine must be a sqlalchemy.ext.asyncio.AsyncEngine (create_async_engine); "
            "for a blocking Engine use SQLStore"
        )
    sql._check_engine(engine.sync_engine, "AsyncSQLStore")
    return engine.sync_engine


async def create_schema(engine: AsyncEngine) -> None:
    """Create the store's tables and indexes that do not exist yet (idempotent), as
    :func:`mfa_core.stores.sql.create_schema` does on a blocking engine (the same
    metadata, ``schema_translate_map`` honoured, the same typed errors)."""
    await greenlet_spawn(sql.create_schema, _sync_engine(engine))


def _yielding_pause(seconds: float) -> None:
    """Wait ``seconds`` inside SQLAlchemy's greenlet bridge, letting the event loop run
    other tasks meanwhile (a ``time.sleep`` there would stop the whole loop)."""
    await_only(asyncio.sleep(seconds))


def _discard(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


class AsyncSQLStore(AsyncStoreAdapter):
    """The four async store ports (credentials, failure counters, recovery codes,
    out-of-band challenges) and the fused attempt operations
    (:class:`~mfa_core.aio.ports.AsyncAttemptStore`) on PostgreSQL or SQLite through a SQLAlchemy
    :class:`~sqlalchemy.ext.asyncio.AsyncEngine` the host owns.

    Every operation is the one of :class:`~mfa_core.stores.sql.SQLStore` (same schema,
    statements, atomicity, checks and errors; see the module docstring for how), awaited
    instead of blocking. Blocking ``SQLStore`` workers and asyncio workers can share one
    database. The tables must exist (:func:`create_schema`, or the DDL of
    :func:`mfa_core.stores.sql.schema_ddl`). :meth:`close` leaves the engine alone: the
    host disposes of it.
    """

    __slots__ = ("_async_engine", "_bound", "_sql")

    def __init__(self, engine: AsyncEngine, *, timeout: float | None = sql.DEFAULT_TIMEOUT) -> None:
        self._sql = SQLStore(_sync_engine(engine), timeout=timeout)
        self._sql._pause = _yielding_pause
        super().__init__(self._sql, offload=False)
        self._async_engine = engine
        # The blocking store's watchdog cuts a silent server's socket at the bound; this
        # backstop (a second more) returns to the caller even if a driver ignores that.
        self._bound = None if self._sql._timeout is None else self._sql._timeout + 1.0

    def __repr__(self) -> str:
        return f"AsyncSQLStore(dialect={self._async_engine.dialect.name!r})"

    @property
    def engine(self) -> AsyncEngine:
        """The host's async engine this store runs on."""
        return self._async_engine

    @property
    def blocking(self) -> SQLStore:
        """The :class:`~mfa_core.stores.sql.SQLStore` whose methods this store runs. Its
        engine is the async engine's synchronous side: call it only through this store
        (outside SQLAlchemy's greenlet bridge every call fails with a ``StoreError``)."""
        return self._sql

    async def _do(self, fn: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
        # Shielded: a cancelled caller returns at once, the call runs to its end (see the
        # module docstring).
        running = asyncio.ensure_future(greenlet_spawn(functools.partial(fn, *args, **kwargs)))
        try:
            if self._bound is None:
                return await asyncio.shield(running)
            done, _ = await asyncio.wait((running,), timeout=self._bound)
        except asyncio.CancelledError:
            # The caller is gone; the call finishes on its own and nobody reads its
            # outcome (retrieved here, so that a failure is not logged as unretrieved).
            running.add_done_callback(_discard)
            raise
        if done:
            return running.result()
        running.add_done_callback(_discard)
        raise StoreUnavailable(f"the SQL store is unavailable: no answer within {self._bound:g} s")

    async def admit_attempt(self, user_id: str, now: float, limits: ThrottleConfig) -> Admission:
        """Admit and count one attempt, or refuse it, atomically (see
        :meth:`mfa_core.stores.sql.SQLStore.admit_attempt`: one statement on PostgreSQL)."""
        return await self._do(self._sql.admit_attempt, user_id, now, limits)

    async def begin_attempt(
        self, user_id: str, now: float, limits: ThrottleConfig
    ) -> tuple[Admission, Sequence[Credential]]:
        """The admission and, only when admitted, the user's credentials (see
        :meth:`mfa_core.stores.sql.SQLStore.begin_attempt`: one statement on PostgreSQL)."""
        return await self._do(self._sql.begin_attempt, user_id, now, limits)

    async def claim_and_reset(
        self, credential_id: str, value: int, *, drift: int, user_id: str
    ) -> bool:
        """The claim and, only when it won, the reset of ``user_id``'s failures (see
        :meth:`mfa_core.stores.sql.SQLStore.claim_and_reset`: one statement on PostgreSQL)."""
        return await self._do(
            self._sql.claim_and_reset, credential_id, value, drift=drift, user_id=user_id
        )

    async def purge_challenges(self, before: float) -> int:
        """Remove every challenge whose code expired before ``before`` (and every send
        counter whose window ended before it) and return how many challenges (see
        :meth:`mfa_core.stores.sql.SQLStore.purge_challenges`)."""
        return await self._do(self._sql.purge_challenges, before)
