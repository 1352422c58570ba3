"""Test kit for hosts and for mfa_core itself: fakes and the store contract suite.

Shipped in the package (no test-runner dependency: nothing here imports pytest), so a host
application can check its own store against the same rules the reference stores follow.
Everything is importable from here (``from mfa_core.testing import FakeClock``); it lives
in two modules:

* :mod:`mfa_core.testing.fakes` - :class:`FakeClock`, :class:`RecordingEventSink`,
  :class:`FaultyStore` (a store wrapper that injects
  :class:`~mfa_core.errors.StoreUnavailable` faults), :class:`FakeCodeSender` and its
  :class:`SentCode`;
* :mod:`mfa_core.testing.contract` - the contract suite: :class:`CredentialStoreContract`,
  :class:`FailureCounterContract` (with the fused operations of
  :class:`~mfa_core.ports.AttemptStore` when a store has them),
  :class:`RecoveryCodeStoreContract` and :class:`OOBChallengeStoreContract`, mixins whose
  ``test_*`` methods a pytest test class inherits, providing ``make_store()``::

    from mfa_core.testing import CredentialStoreContract, FailureCounterContract

    class TestMyStore(CredentialStoreContract, FailureCounterContract):
        def make_store(self):
            return MyStore(dsn=...)

The async forms are in :mod:`mfa_core.aio.testing`.
"""

from __future__ import annotations

from .contract import (
    CredentialStoreContract,
    FailureCounterContract,
    OOBChallengeStoreContract,
    RecoveryCodeStoreContract,
    StoreContract,
    StoreMaintenanceContract,
)
from .fakes import (
    CombinedStore,
    FakeClock,
    FakeCodeSender,
    FaultyStore,
    RecordingEventSink,
    SentCode,
)
from .webauthn_contract import WebAuthnStoreContract

__all__ = [
    "CombinedStore",
    "CredentialStoreContract",
    "FailureCounterContract",
    "FakeClock",
    "FakeCodeSender",
    "FaultyStore",
    "OOBChallengeStoreContract",
    "RecordingEventSink",
    "RecoveryCodeStoreContract",
    "SentCode",
    "StoreContract",
    "StoreMaintenanceContract",
    "WebAuthnStoreContract",
]
