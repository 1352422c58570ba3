"""One harness for the factor tests and the product-page scenarios: a service over the
memory or SQLite store, through the blocking or the asyncio front end (behind a blocking
facade), with recovery codes and out-of-band codes configured. Public API only."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from aio_front import Facades, async_port

from mfa_core import b32decode_key, totp
from mfa_core.aio import AsyncMFAService, AsyncStoreAdapter
from mfa_core.recovery import Argon2Params, RecoveryConfig
from mfa_core.sealing import AESGCMSealer
from mfa_core.service import MFAService, ServiceConfig
from mfa_core.stores import MemoryStore, SQLiteStore
from mfa_core.testing import FakeClock, FakeCodeSender, RecordingEventSink

T0 = 1_800_000_000.0
SECRET = b"factor-tests-host-secret-32bytes"
FAST = Argon2Params.fast_for_testing()
COMBOS = [
    ("sync", "memory"),
    ("sync", "sqlite"),
    ("async", "memory"),
    ("async", "sqlite"),
]


class CountingSealer:
    """A sealer that counts unseals (the work a refused attempt must not do)."""

    def __init__(self) -> None:
        self.inner = AESGCMSealer.generate()
        self.unseals = 0
        self._lock = threading.Lock()

    def seal(self, plaintext: bytes, *, credential_id: str) -> bytes:
        return self.inner.seal(plaintext, credential_id=credential_id)

    def unseal(self, sealed: bytes, *, credential_id: str) -> bytes:
        with self._lock:
            self.unseals += 1
        return self.inner.unseal(sealed, credential_id=credential_id)

    def needs_reseal(self, sealed: bytes) -> bool:
        return self.inner.needs_reseal(sealed)


@attrs.define
class World:
    service: Any
    store: Any
    clock: FakeClock
    events: RecordingEventSink
    sender: FakeCodeSender
    sealer: CountingSealer
    front: str

    @property
    def now(self) -> float:
        return self.clock.now()

    def of_type(self, kind: Any) -> list[Any]:
        return [e for e in self.events.events if e.type == kind]

    def enrol_totp(self, user: str = "alice", **kw: Any) -> tuple[str, bytes]:
        """Enrol and confirm a TOTP authenticator; the confirming step is then used up."""
        enrolment = self.service.begin_enrolment(user, **kw)
        key = b32decode_key(enrolment.secret)
        result = self.service.confirm_enrolment(user, enrolment.credential_id, totp(key, self.now))
        assert result.accepted, result
        self.clock.advance(30)
        return enrolment.credential_id, key

    def last_code(self) -> str:
        return self.sender.sent[-1].code


def build(front: str, store_kind: str, tmp: Path, **config: Any) -> tuple[World, Any]:
    store: Any = MemoryStore() if store_kind == "memory" else SQLiteStore(tmp / "mfa.sqlite3")
    clock = FakeClock(T0)
    events = RecordingEventSink()
    sender = FakeCodeSender()
    sealer = CountingSealer()
    settings = ServiceConfig(issuer="Example", recovery=RecoveryConfig(argon2=FAST), **config)
    facades = Facades()
    if front == "sync":
        service: Any = MFAService(
            store,
            store,
            sealer,
            clock=clock,
            events=events,
            config=settings,
            recovery_codes=store,
            oob=store,
            sender=sender,
            secret=SECRET,
        )
    else:
        port = async_port(store)
        service = facades(
            AsyncMFAService(
                port,
                port,
                sealer,
                clock=clock,
                events=events,
                config=settings,
                recovery_codes=port,
                oob=port,
                sender=AsyncStoreAdapter(sender, offload=False),
                secret=SECRET,
            )
        )
    return World(service, store, clock, events, sender, sealer, front), (facades, store)


def world_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Yield a builder ``make(**config) -> World`` for the combination in ``request``."""
    front, store_kind = request.param
    made: list[Any] = []

    def make(**config: Any) -> World:
        world, handle = build(front, store_kind, tmp_path / str(len(made)), **config)
        made.append(handle)
        return world

    for index in range(8):
        (tmp_path / str(index)).mkdir()
    yield make
    for facades, store in made:
        facades.close()
        close = getattr(store, "close", None)
        if close is not None:
            close()
