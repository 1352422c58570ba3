"""The atheris side of :class:`_service_model.Source` and the service the harnesses drive."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from _harness import text
from _service_model import CONFIGS, SECRET, T0, ServiceRun

from mfa_core.sealing import AESGCMSealer
from mfa_core.service import MFAService
from mfa_core.stores import MemoryStore
from mfa_core.testing import FakeClock, FakeCodeSender

_T = TypeVar("_T")
_SEALER = AESGCMSealer.generate()


class FuzzSource:
    """Choices taken from a :class:`atheris.FuzzedDataProvider`."""

    def __init__(self, fdp: Any) -> None:
        self.fdp = fdp

    def int(self, low: int, high: int) -> int:
        return int(self.fdp.ConsumeIntInRange(low, high))

    def pick(self, values: Sequence[_T]) -> _T:
        return values[self.fdp.ConsumeIntInRange(0, len(values) - 1)]

    def text(self, limit: int) -> str:
        return text(self.fdp, limit)

    def more(self) -> bool:
        return bool(self.fdp.remaining_bytes() > 0)


def _build(config: Any) -> tuple[MFAService, MemoryStore, FakeClock, FakeCodeSender]:
    store = MemoryStore()
    clock = FakeClock(T0)
    sender = FakeCodeSender()
    service = MFAService(
        store,
        store,
        _SEALER,
        clock=clock,
        config=config,
        recovery_codes=store,
        oob=store,
        sender=sender,
        secret=SECRET,
    )
    return service, store, clock, sender


# One service per configuration, built once: building one (key derivation, port checks)
# cost more than most inputs. A service holds no state of its own; its store, clock and
# sender are reset to new ones in place for every input, so each input starts afresh.
_BUILT = [_build(config) for config in CONFIGS]


def service_run(fdp: Any) -> ServiceRun:
    """A service over an empty MemoryStore at ``T0`` with a new sender, and the model."""
    source = FuzzSource(fdp)
    index = source.int(0, len(CONFIGS) - 1)
    service, store, clock, sender = _BUILT[index]
    store.__init__()  # type: ignore[misc]  # empty again, the same object the service holds
    clock.set(T0)
    sender.__init__()  # type: ignore[misc]
    return ServiceRun(source, service, clock, sender, CONFIGS[index])
