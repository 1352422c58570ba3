"""Recovery-code scenarios of ``test_service_recovery.py`` against AsyncMFAService.

Every test there that builds its service through ``env``/``make_env`` runs here again,
on :class:`~mfa_core.aio.AsyncMemoryStore`-style adapters over memory and SQLite, with
Argon2id run off the event loop (a worker thread). The loop-lag checks live in
``test_aio_service.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import test_service_recovery as scenarios
from aio_front import Facades, adopt, async_port
from test_service_recovery import FAST, SECRET, T0, Env

from mfa_core.aio import AsyncMFAService
from mfa_core.recovery import RecoveryConfig
from mfa_core.sealing import AESGCMSealer
from mfa_core.service import ServiceConfig
from mfa_core.stores import MemoryStore, SQLiteStore
from mfa_core.testing import FakeClock, RecordingEventSink
from mfa_core.throttle import ThrottleConfig

ADOPTED = adopt(scenarios, globals())


@pytest.fixture(params=["memory", "sqlite"])
def make_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Env]]:
    facades = Facades()
    made: list[Any] = []

    def make(
        *,
        recovery: RecoveryConfig | None = None,
        throttle: ThrottleConfig | None = None,
        store: Any = None,
    ) -> Env:
        backing: Any = (
            MemoryStore()
            if request.param == "memory"
            else SQLiteStore(tmp_path / f"recovery-{len(made)}.sqlite3")
        )
        made.append(backing)
        codes = async_port(backing if store is None else store(backing))
        service = AsyncMFAService(
            async_port(backing),
            async_port(backing),
            AESGCMSealer.generate(),
            clock=(clock := FakeClock(T0)),
            events=(events := RecordingEventSink()),
            config=ServiceConfig(
                throttle=throttle or ThrottleConfig(),
                recovery=recovery or RecoveryConfig(argon2=FAST),
            ),
            recovery_codes=codes,
            secret=SECRET,
        )
        return Env(facades(service), backing, clock, events)

    yield make
    facades.close()
    for backing in made:
        close = getattr(backing, "close", None)
        if close is not None:
            close()


@pytest.fixture
def env(make_env: Callable[..., Env]) -> Env:
    return make_env()


@pytest.fixture
def slow_hashes(monkeypatch: pytest.MonkeyPatch) -> scenarios.SlowHashSpy:
    return scenarios.SlowHashSpy(monkeypatch)


def test_the_recovery_scenarios_are_adopted() -> None:
    assert len(ADOPTED) >= 15
    assert "test_sixteen_threads_one_code_exactly_one_accepted" in ADOPTED
