"""A lone surrogate in a user id, credential id or admin id is an InvalidParameter
everywhere (issue 11): in every method of both service front ends and in both sealers,
whose associated data used to be encoded with ``surrogatepass`` (accepting what
``_validate.check_id`` refuses)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from mfa_core.aio import AsyncMFAService
from mfa_core.aio.stores import AsyncMemoryStore, AsyncStoreAdapter
from mfa_core.errors import InvalidParameter, MFAError
from mfa_core.recovery import Argon2Params, RecoveryConfig
from mfa_core.sealing import AESGCMSealer, InsecurePlaintextSealer, reseal
from mfa_core.service import MFAService, ServiceConfig
from mfa_core.stores import MemoryStore
from mfa_core.testing import FakeClock, FakeCodeSender

SECRET = b"host secret for tests, 32 bytes!"
BAD_IDS = ["\ud800", "alice\udfff", "\udcff\udcfe"]
CONFIG = ServiceConfig(recovery=RecoveryConfig(count=1, argon2=Argon2Params.fast_for_testing()))


def _calls(bad: str) -> list[tuple[str, Callable[[Any], Any]]]:
    """Every front-end method, called with ``bad`` where an id goes (a name ending in
    ``/credential`` passes it as a credential id, which the service also never finds)."""
    return [
        ("begin_enrolment", lambda s: s.begin_enrolment(bad)),
        ("begin_renewal", lambda s: s.begin_renewal(bad, "c1")),
        ("begin_renewal/credential", lambda s: s.begin_renewal("alice", bad)),
        ("cancel_enrolment", lambda s: s.cancel_enrolment(bad, "c1")),
        ("cancel_enrolment/credential", lambda s: s.cancel_enrolment("alice", bad)),
        ("confirm_enrolment", lambda s: s.confirm_enrolment(bad, "c1", "123456")),
        ("confirm_enrolment/credential", lambda s: s.confirm_enrolment("alice", bad, "123456")),
        ("verify", lambda s: s.verify(bad, "123456")),
        ("resync_hotp", lambda s: s.resync_hotp(bad, "c1", "123456", "654321")),
        ("throttle_status", lambda s: s.throttle_status(bad)),
        ("disable", lambda s: s.disable(bad, "c1", by_admin="admin")),
        ("disable/admin", lambda s: s.disable("alice", "c1", by_admin=bad)),
        ("admin_reset", lambda s: s.admin_reset(bad, admin_id="admin")),
        ("admin_reset/admin", lambda s: s.admin_reset("alice", admin_id=bad)),
        ("admin_unlock", lambda s: s.admin_unlock(bad, admin_id="admin")),
        ("admin_unlock/admin", lambda s: s.admin_unlock("alice", admin_id=bad)),
        ("list_credentials", lambda s: s.list_credentials(bad)),
        ("reseal", lambda s: s.reseal(bad)),
        ("reseal/credential", lambda s: s.reseal(credential_ids=[bad])),
        ("generate_recovery_codes", lambda s: s.generate_recovery_codes(bad)),
        ("recovery_codes_left", lambda s: s.recovery_codes_left(bad)),
        ("verify_recovery_code", lambda s: s.verify_recovery_code(bad, "ABCD-EFGH-JKMN-PQRS")),
        (
            "send_oob_code",
            lambda s: s.send_oob_code(
                bad, channel="sms", destination="+15550100167", purpose="login"
            ),
        ),
        ("resend_oob_code", lambda s: s.resend_oob_code(bad, "ch1", "+15550100167")),
        ("verify_oob_code", lambda s: s.verify_oob_code(bad, "ch1", "123456", "login")),
    ]


def _sync_service() -> MFAService:
    store = MemoryStore()
    return MFAService(
        store,
        store,
        AESGCMSealer.generate(),
        clock=FakeClock(1_800_000_000.0),
        config=CONFIG,
        recovery_codes=store,
        oob=store,
        sender=FakeCodeSender(),
        secret=SECRET,
    )


@pytest.mark.parametrize("bad", BAD_IDS)
def test_every_sync_method_refuses_a_surrogate_id(bad: str) -> None:
    service = _sync_service()
    for name, call in _calls(bad):
        expected = MFAError if name.endswith("/credential") else InvalidParameter
        with pytest.raises(expected) as info:
            call(service)
        assert info.value.__cause__ is None, name
        assert not isinstance(info.value.__context__, UnicodeError), name


@pytest.mark.parametrize("bad", BAD_IDS)
def test_every_async_method_refuses_a_surrogate_id(bad: str) -> None:
    async def run() -> None:
        store = AsyncMemoryStore()
        service = AsyncMFAService(
            store,
            store,
            AESGCMSealer.generate(),
            clock=FakeClock(1_800_000_000.0),
            config=CONFIG,
            recovery_codes=store,
            oob=store,
            sender=AsyncStoreAdapter(FakeCodeSender(), offload=False),
            secret=SECRET,
        )
        for name, call in _calls(bad):
            expected = MFAError if name.endswith("/credential") else InvalidParameter
            with pytest.raises(expected):
                result = call(service)
                if asyncio.iscoroutine(result):
                    await result
                else:  # pragma: no cover - every async method is a coroutine
                    raise AssertionError(name)

    asyncio.run(run())


@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize(
    "sealer",
    [
        AESGCMSealer.generate(),
        InsecurePlaintextSealer(i_understand_keys_are_stored_in_plaintext=True),
    ],
    ids=["aesgcm", "plaintext"],
)
def test_sealers_refuse_a_surrogate_credential_id(bad: str, sealer: Any) -> None:
    blob = sealer.seal(b"k" * 20, credential_id="c1")
    with pytest.raises(InvalidParameter):
        sealer.seal(b"k" * 20, credential_id=bad)
    with pytest.raises(InvalidParameter):
        sealer.unseal(blob, credential_id=bad)
    with pytest.raises(InvalidParameter):
        reseal(blob, credential_id=bad, old=sealer, new=sealer)


def test_valid_non_ascii_ids_still_seal() -> None:
    sealer = AESGCMSealer.generate()
    for good in ["\u00e9", "\U0001f511", "\ud7ff\ue000"]:
        blob = sealer.seal(b"key", credential_id=good)
        assert sealer.unseal(blob, credential_id=good) == b"key"
    with pytest.raises(MFAError):
        sealer.unseal(blob, credential_id="\u00e9")
