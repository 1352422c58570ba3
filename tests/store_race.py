"""Multi-process races against a shared store: a crew of long-lived worker processes.

:class:`Crew` starts N worker processes once (``spawn``, so each builds its own client or
engine and so its own server connection), then drives any number of rounds: in a round
every worker receives the same operation, all of them wait at one barrier and are released
at the same moment, and each sends its result back. The per-round cost is a few
milliseconds, so hundreds of rounds fit in seconds.

A store is described by a picklable :data:`StoreSpec` (backend plus where to find it), from
which each worker builds its own store object. Operations: ``claim`` (the store's
compare-and-set), ``admit`` / ``begin`` (a burst of ``admit_attempt`` / ``begin_attempt``
calls under one ``ThrottleConfig``: ``(admitted, count)`` per call), ``verify`` (a whole
``MFAService.verify`` with a code, on a service each worker builds on its store),
``consume`` (``consume_recovery_code``) and ``recover`` (a whole
``MFAService.verify_recovery_code``).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
import uuid
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

StoreSpec = tuple[str, str, str]
"""``(backend, url, namespace)``: ``("redis", url, key prefix)``, ``("rediscluster", url of
one node, key prefix)``, ``("postgresql", url,
schema)``, ``("sqlite", url, "")`` (:class:`~mfa_core.stores.sql.SQLStore` on SQLite) or
``("sqlitestore", path, "")`` (:class:`~mfa_core.stores.SQLiteStore` on a file) or
``("mariadb", url, database)``."""

TIMEOUT = 60.0


def build_store(spec: StoreSpec) -> Any:
    """Make a store from ``spec`` with connections of this process."""
    backend, url, namespace = spec
    if backend == "sqlitestore":
        from mfa_core.stores import SQLiteStore

        return SQLiteStore(url)
    if backend == "redis":
        from mfa_core.stores.redis import RedisStore

        return RedisStore.from_url(url, prefix=namespace)
    if backend == "rediscluster":  # url: one node of the cluster
        from redis.cluster import RedisCluster

        from mfa_core.stores.redis import RedisStore

        return RedisStore(RedisCluster.from_url(url, socket_timeout=10.0), prefix=namespace)
    import sqlalchemy as sa

    from mfa_core.stores.sql import SQLStore

    if backend == "postgresql":
        engine = sa.create_engine(url, pool_size=1, connect_args={"connect_timeout": 10})
        return SQLStore(engine.execution_options(schema_translate_map={None: namespace}))
    if backend == "sqlite":
        return SQLStore(sa.create_engine(url, connect_args={"timeout": 60}))
    if backend == "mariadb":
        engine = sa.create_engine(url, pool_size=1, connect_args={"connect_timeout": 10})
        return SQLStore(engine.execution_options(schema_translate_map={None: namespace}))
    raise ValueError(f"unknown backend {backend!r}")


SEALING_KEYS = {"k1": bytes(range(32))}
"""The sealing key every process of a race uses (the parent enrols, workers verify)."""


HOST_SECRET = bytes(range(100, 132))
"""The host secret (recovery-code lookup tags) every process of a race uses."""


def make_service(store: Any, now: float, *, recovery: bool = False) -> tuple[Any, Any]:
    """An ``MFAService`` on ``store`` with a fake clock at ``now``; returns both. With
    ``recovery`` the store is also the recovery-code store (cheap Argon2id parameters)."""
    from mfa_core.recovery import Argon2Params, RecoveryConfig
    from mfa_core.sealing import AESGCMSealer
    from mfa_core.service import MFAService, ServiceConfig
    from mfa_core.testing import FakeClock

    clock = FakeClock(now)
    sealer = AESGCMSealer(SEALING_KEYS, current_key_id="k1")
    if not recovery:
        return MFAService(store, store, sealer, clock=clock), clock
    config = ServiceConfig(
        recovery=RecoveryConfig(count=50, argon2=Argon2Params.fast_for_testing())
    )
    service = MFAService(
        store,
        store,
        sealer,
        clock=clock,
        recovery_codes=store,
        secret=HOST_SECRET,
        config=config,
    )
    return service, clock


def _perform(store: Any, operation: tuple[Any, ...], services: dict[str, Any]) -> Any:
    name = operation[0]
    if name == "verify":
        _, user_id, code, now = operation
        if "service" not in services:
            services["service"], services["clock"] = make_service(store, now)
        services["clock"].set(now)
        return services["service"].verify(user_id, code).reason.value
    if name == "recover":
        _, user_id, code, now = operation
        if "recovery" not in services:
            services["recovery"], services["recovery_clock"] = make_service(
                store, now, recovery=True
            )
        services["recovery_clock"].set(now)
        return services["recovery"].verify_recovery_code(user_id, code).reason.value
    if name == "consume":
        _, user_id, record_id, now = operation
        return store.consume_recovery_code(user_id, record_id, now)
    if name == "claim":
        _, credential_id, value, drift = operation
        return store.claim(credential_id, value, drift=drift)
    if name in ("admit", "begin"):
        # ``times`` attempts in a row, all at ``now``: (admitted, count after) of each
        _, user_id, times, now, limits = operation
        if name == "admit":
            admissions = [store.admit_attempt(user_id, now, limits) for _ in range(times)]
        else:
            admissions = [store.begin_attempt(user_id, now, limits)[0] for _ in range(times)]
        return [(a.admitted, a.state.count) for a in admissions]
    raise ValueError(f"unknown operation {name!r}")


def _worker(spec: StoreSpec, barrier: Any, pipe: Connection) -> None:
    """Worker loop: build the store, then for each operation wait at the barrier and run."""
    try:
        store = build_store(spec)
        store.get_failures("warm-up")  # open the connection before the first round
    except BaseException as exc:
        pipe.send(("error", repr(exc)))
        return
    pipe.send(("ready", None))
    services: dict[str, Any] = {}
    while True:
        operation = pipe.recv()
        if operation is None:
            break
        try:
            barrier.wait(TIMEOUT)
            pipe.send(("ok", _perform(store, operation, services)))
        except BaseException as exc:
            pipe.send(("error", repr(exc)))
    close = getattr(store, "close", None)
    if close is not None:
        close()


class Crew:
    """``size`` worker processes on one store; use as a context manager."""

    def __init__(self, spec: StoreSpec, size: int = 8) -> None:
        context = multiprocessing.get_context("spawn")
        self._barrier = context.Barrier(size)
        self._pipes: list[Connection] = []
        self._processes: list[Any] = []
        for index in range(size):
            mine, theirs = context.Pipe()
            process = context.Process(
                target=_worker,
                args=(spec, self._barrier, theirs),
                name=f"store-race-{index}",
                daemon=True,
            )
            self._pipes.append(mine)
            self._processes.append(process)

    def __enter__(self) -> Crew:
        for process in self._processes:
            process.start()
        for status, detail in self._collect():
            if status != "ready":
                self.__exit__(None, None, None)
                raise AssertionError(f"a worker could not start: {detail}")
        return self

    def __exit__(self, *exc_info: object) -> None:
        for pipe in self._pipes:
            with contextlib.suppress(OSError):  # a worker that already died
                pipe.send(None)
        for process in self._processes:
            process.join(10)
            if process.is_alive():
                process.terminate()
                process.join(5)

    def _collect(self) -> list[tuple[str, Any]]:
        deadline = time.monotonic() + TIMEOUT
        replies = []
        for pipe in self._pipes:
            if not pipe.poll(max(0.0, deadline - time.monotonic())):
                raise AssertionError("a worker did not answer in time")
            replies.append(pipe.recv())
        return replies

    def run(self, operation: tuple[Any, ...]) -> Sequence[Any]:
        """Release every worker at once on ``operation``; return their results in order."""
        for pipe in self._pipes:
            pipe.send(operation)
        results = []
        for status, detail in self._collect():
            if status != "ok":
                raise AssertionError(f"a worker failed: {detail}")
            results.append(detail)
        return results


def same_code_from_every_worker(crew: Crew, store: Any, rounds: int) -> None:
    """The issue's scenario through the service: a user enrols, then in each round every
    worker submits the same valid TOTP code (a fresh step each round) at the same moment.
    Exactly one submission is accepted per round; the others are refused as replays (or
    throttled by a replay counted a moment earlier)."""
    from mfa_core import b32decode_key, totp

    start = 1_800_000_015.0
    user = f"race-{uuid.uuid4().hex[:12]}"
    service, _ = make_service(store, start)
    enrolment = service.begin_enrolment(user)
    key = b32decode_key(enrolment.secret)
    if not service.confirm_enrolment(user, enrolment.credential_id, totp(key, start)).accepted:
        raise AssertionError("the enrolment was not confirmed")
    for round_ in range(rounds):
        now = start + 60 * (round_ + 1)
        reasons = list(crew.run(("verify", user, totp(key, now), now)))
        if reasons.count("ok") != 1 or not set(reasons) <= {"ok", "replayed", "throttled"}:
            raise AssertionError(f"round {round_}: {reasons}")
        service.admin_unlock(user, admin_id="race")  # the next round starts unthrottled


def same_recovery_record_from_every_worker(crew: Crew, store: Any, rounds: int) -> None:
    """Store level: a user has ``rounds`` recovery codes; in each round every worker
    consumes the same code at the same moment. Exactly one gets a number back, and it is
    the number of codes left (``rounds - round - 1``); the others get ``None``."""
    import secrets

    from mfa_core.recovery import TAG_BYTES, Argon2Params, RecoveryRecord, hash_recovery_code

    user = f"race-{uuid.uuid4().hex[:12]}"
    phc = hash_recovery_code("abcd-efgh-jkmn-pqrs", Argon2Params.fast_for_testing())
    records = [
        RecoveryRecord(id=uuid.uuid4().hex, tag=secrets.token_hex(TAG_BYTES), phc=phc)
        for _ in range(rounds)
    ]
    store.replace_recovery_codes(user, records)
    for round_, record in enumerate(records):
        results = list(crew.run(("consume", user, record.id, 1_800_000_000.0 + round_)))
        winners = [left for left in results if left is not None]
        if winners != [rounds - round_ - 1]:
            raise AssertionError(f"round {round_}: {results}")
    if any(not record.used for record in store.recovery_codes(user)):
        raise AssertionError("a code was left unused")
    if set(crew.run(("consume", user, records[0].id, 1_800_000_999.0))) != {None}:
        raise AssertionError("a used code was consumed again")


def same_recovery_code_from_every_worker(crew: Crew, store: Any, rounds: int) -> None:
    """Through the service: in each round every worker submits the same valid recovery
    code (a new one each round) to ``MFAService.verify_recovery_code`` at the same moment.
    Exactly one submission is accepted; the others are refused as replays (or throttled
    by a refusal counted a moment earlier). Sets of 50 codes are replaced as they run out."""
    start = 1_800_000_015.0
    user = f"race-{uuid.uuid4().hex[:12]}"
    service, clock = make_service(store, start, recovery=True)
    codes: list[str] = []
    for round_ in range(rounds):
        now = start + 60 * (round_ + 1)
        clock.set(now)
        if not codes:
            codes = list(service.generate_recovery_codes(user).codes)
        code = codes.pop()
        reasons = list(crew.run(("recover", user, code, now)))
        if reasons.count("ok") != 1 or not set(reasons) <= {"ok", "replayed", "throttled"}:
            raise AssertionError(f"round {round_}: {reasons}")
        if service.recovery_codes_left(user) != len(codes):
            raise AssertionError(f"round {round_}: codes left")
        service.admin_unlock(user, admin_id="race")  # the next round starts unthrottled


def attempts_from_every_worker_admit_exactly_the_limit(
    crew: Crew, store: Any, *, attempts: int = 10, rounds: int = 3, fused: bool = False
) -> None:
    """The bound of issue 10 across processes, at store level: in each round a new user
    gets ``attempts`` back-to-back ``admit_attempt`` calls (``begin_attempt`` with
    ``fused``) from every worker, all at one instant. With ``max_failures=10`` and no
    delays exactly 10 of them are admitted and the stored count is 10; with the default
    delays exactly one is admitted at that instant. ``store`` is the parent's own store on
    the same back-end (it checks the stored state)."""
    from mfa_core.throttle import ThrottleConfig

    operation = "begin" if fused else "admit"
    no_delay = ThrottleConfig(max_failures=10, base_delay=0.0, max_delay=0.0, lockout=900.0)
    for round_ in range(rounds):
        for limits, expected in ((no_delay, 10), (ThrottleConfig(), 1)):
            user = f"admit-{uuid.uuid4().hex[:12]}"
            now = 1_800_000_000.0 + round_
            results = crew.run((operation, user, attempts, now, limits))
            admitted = sum(ok for mine in results for ok, _ in mine)
            if admitted != expected:
                raise AssertionError(f"round {round_}: {admitted} admitted, not {expected}")
            if store.get_failures(user).count != expected:
                raise AssertionError(f"round {round_}: stored count {store.get_failures(user)}")
