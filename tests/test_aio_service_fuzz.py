"""The async service under the fuzz oracle (issue 11), with hypothesis: atheris does not
drive coroutines, so the same reference model (``fuzz/_service_model.py``) runs on
:class:`~mfa_core.aio.AsyncMFAService` over :class:`~mfa_core.aio.AsyncMemoryStore`, its
choices drawn by hypothesis. Oracle: only ``MFAError``; nothing accepted that pyotp or the
model refuses; no step, counter, recovery code or challenge accepted twice; every code
went to the destination its challenge was bound to."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mfa_core.aio import AsyncMemoryStore, AsyncMFAService
from mfa_core.aio.stores import AsyncStoreAdapter
from mfa_core.sealing import AESGCMSealer
from mfa_core.testing import FakeClock, FakeCodeSender

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fuzz"))
from _service_model import CONFIGS, SECRET, T0, ServiceRun

_T = TypeVar("_T")
_SEALER = AESGCMSealer.generate()


class DrawSource:
    """Choices drawn from hypothesis' ``data`` (shrinks like any strategy)."""

    def __init__(self, data: st.DataObject, steps: int) -> None:
        self.data = data
        self.steps = steps

    def int(self, low: int, high: int) -> int:
        return self.data.draw(st.integers(low, high))

    def pick(self, values: Sequence[_T]) -> _T:
        return self.data.draw(st.sampled_from(list(values)))

    def text(self, limit: int) -> str:
        return self.data.draw(st.text(max_size=limit))

    def more(self) -> bool:
        self.steps -= 1
        return self.steps >= 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), steps=st.integers(1, 30))
def test_the_async_service_meets_the_fuzz_oracle(data: st.DataObject, steps: int) -> None:
    source = DrawSource(data, steps)
    config = source.pick(CONFIGS)
    loop = asyncio.new_event_loop()
    try:
        store = AsyncMemoryStore()
        clock = FakeClock(T0)
        sender = FakeCodeSender()
        service = AsyncMFAService(
            store,
            store,
            _SEALER,
            clock=clock,
            config=config,
            recovery_codes=store,
            oob=store,
            sender=AsyncStoreAdapter(sender, offload=False),
            secret=SECRET,
        )

        def call(awaitable: Any) -> Any:
            return loop.run_until_complete(awaitable)

        ServiceRun(source, service, clock, sender, config, call).run(steps=steps)
    finally:
        loop.close()


def test_the_model_catches_a_service_that_accepts_anything() -> None:
    """The oracle has teeth: a service whose verify accepts every code is caught."""

    from mfa_core.service import VerificationResult, VerifyReason

    class Accepting:
        def verify(self, user_id: str, code: str) -> VerificationResult:
            return VerificationResult(
                accepted=True, reason=VerifyReason.OK, credential_id="c1", matched=1
            )

    class Fixed:
        def int(self, low: int, high: int) -> int:
            return low

        def pick(self, values: Sequence[_T]) -> _T:
            return values[0]

        def text(self, limit: int) -> str:
            return "000000"

        def more(self) -> bool:
            return True

    run = ServiceRun(Fixed(), Accepting(), FakeClock(T0), FakeCodeSender(), CONFIGS[0])
    run.credentials["c1"] = ("alice", "totp", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    try:
        run.run(steps=1, operations=("verify",))
    except AssertionError as exc:
        assert "pyotp" in str(exc) or "window" in str(exc) or "credential" in str(exc)
    else:  # pragma: no cover - the oracle failed to notice
        raise AssertionError("the model did not catch a service accepting any code")
