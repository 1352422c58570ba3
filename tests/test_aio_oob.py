"""Out-of-band scenarios of ``test_service_oob.py`` against AsyncMFAService.

Every test there that builds its service through ``env``/``make_env`` runs here again,
over memory and SQLite behind async adapters, with the recording sender behind an
async adapter too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import test_service_oob as scenarios
from aio_front import Facades, adopt, async_port
from test_service_oob import NO_DELAY, SECRET, T0, Env

from mfa_core.aio import AsyncMFAService, AsyncStoreAdapter
from mfa_core.oob import OOBConfig
from mfa_core.sealing import AESGCMSealer
from mfa_core.service import ServiceConfig
from mfa_core.stores import MemoryStore, SQLiteStore
from mfa_core.testing import FakeClock, FakeCodeSender, RecordingEventSink
from mfa_core.throttle import ThrottleConfig

ADOPTED = adopt(scenarios, globals())


@pytest.fixture(params=["memory", "sqlite"])
def make_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Env]]:
    facades = Facades()
    made: list[Any] = []

    def make(
        *,
        oob: OOBConfig | None = None,
        throttle: ThrottleConfig = NO_DELAY,
        allow_email_login_with_totp: bool = False,
        wrap: Callable[[Any], Any] | None = None,
    ) -> Env:
        store: Any = (
            MemoryStore()
            if request.param == "memory"
            else SQLiteStore(tmp_path / f"oob-{len(made)}.sqlite3")
        )
        made.append(store)
        challenges = async_port(store if wrap is None else wrap(store))
        sender = FakeCodeSender()
        service = AsyncMFAService(
            async_port(store),
            async_port(store),
            AESGCMSealer.generate(),
            clock=(clock := FakeClock(T0)),
            events=(events := RecordingEventSink()),
            config=ServiceConfig(
                throttle=throttle,
                oob=oob or OOBConfig(),
                allow_email_login_with_totp=allow_email_login_with_totp,
            ),
            oob=challenges,
            sender=AsyncStoreAdapter(sender, offload=False),
            secret=SECRET,
        )
        return Env(facades(service), store, clock, events, sender)

    yield make
    facades.close()
    for store in made:
        close = getattr(store, "close", None)
        if close is not None:
            close()


@pytest.fixture
def env(make_env: Callable[..., Env]) -> Env:
    return make_env()


def test_the_oob_scenarios_are_adopted() -> None:
    assert len(ADOPTED) >= 20
    assert "test_concurrent_resends_send_one_code" in ADOPTED
