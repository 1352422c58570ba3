"""The asyncio front end: :class:`AsyncMFAService`, the same operations as
:class:`~mfa_core.service.MFAService` over async ports.

Both front ends run the very same flows (:mod:`mfa_core._effects`): a flow yields each
store operation, and this front end's driver awaits it on the async port; CPU-heavy steps
(Argon2id for recovery codes) run off the event loop, in a worker thread or in the
``cpu_executor`` the host passes. Results, events, errors and the fail-closed rules are
those of the blocking service; only the calls are awaited::

    from mfa_core.aio import AsyncMemoryStore, AsyncMFAService

    store = AsyncMemoryStore()
    service = AsyncMFAService(store, store, sealer, config=ServiceConfig(issuer="Example"))
    enrolment = await service.begin_enrolment("alice")
    result = await service.verify("alice", typed_code)

``cryptography`` releases the GIL while it computes Argon2id, so the default worker thread
keeps the loop responsive; ``cpu_executor`` (e.g. a process pool) bounds or isolates that
work further (see ``docs/async.md``).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from concurrent.futures import Executor
from typing import TypeVar

from .._effects import Flow, Port, run_async
from .._enrolment import EnrolmentFlows
from .._fallback_base import FallbackConfig, OOBVerificationResult, RecoveryVerificationResult
from .._oob_flow import OOBFlows
from .._policy_flow import PolicyFlows
from .._recovery_flow import RecoveryFlows
from .._service_base import CredentialInfo, Enrolment, ServiceConfig, VerificationResult
from ..errors import InvalidParameter
from ..models import CredentialKind
from ..oob import OOBChannel, OOBPurpose
from ..policy import Decision, Policy, RequestContext
from ..ports import Clock, EventSink, Sealer
from ..recovery import RecoveryCodeSet, RecoveryConfig
from ..throttle import ThrottleDecision
from .ports import (
    AsyncCodeSender,
    AsyncCredentialStore,
    AsyncFailureCounter,
    AsyncOOBChallengeStore,
    AsyncRecoveryCodeStore,
)

__all__ = ["AsyncMFAService", "check_async_ports"]

_R = TypeVar("_R")


def check_async_ports(ports: Iterable[tuple[object, type, str]]) -> None:
    """Raise InvalidParameter for a port that is not an async implementation of its
    Protocol (a blocking store passed by mistake is refused here, not at the first call)."""
    for value, port, name in ports:
        methods = [m for m, f in vars(port).items() if inspect.iscoroutinefunction(f)]
        if not isinstance(value, port) or not all(
            inspect.iscoroutinefunction(getattr(value, m)) for m in methods
        ):
            raise InvalidParameter(f"{name} must implement {port.__name__} (async methods)")


class AsyncMFAService(PolicyFlows, EnrolmentFlows, RecoveryFlows, OOBFlows):
    """Two-factor authentication for an asyncio host, through async ports.

    Takes the arguments of :class:`~mfa_core.service.MFAService`, with async stores
    (:mod:`mfa_core.aio.ports`; e.g. :class:`~mfa_core.aio.AsyncMemoryStore`, or
    :class:`~mfa_core.aio.AsyncStoreAdapter` over a blocking store) and the same blocking
    sealer, clock and event sink. Every operation is a coroutine with the arguments,
    result type, events and errors of its blocking namesake. ``cpu_executor`` runs the
    CPU-heavy steps (Argon2id); ``None`` uses :func:`asyncio.to_thread`.

    Task-safe as far as the ports are: the service keeps no mutable state of its own.
    """

    __slots__ = ("_cpu_executor",)

    def __init__(
        self,
        credentials: AsyncCredentialStore,
        failures: AsyncFailureCounter,
        sealer: Sealer,
        *,
        clock: Clock | None = None,
        events: EventSink | None = None,
        config: ServiceConfig | None = None,
        recovery_codes: AsyncRecoveryCodeStore | None = None,
        oob: AsyncOOBChallengeStore | None = None,
        sender: AsyncCodeSender | None = None,
        secret: bytes | None = None,
        fallback: FallbackConfig | None = None,
        cpu_executor: Executor | None = None,
    ) -> None:
        ports = (
            (Port.CREDENTIALS, credentials, AsyncCredentialStore),
            (Port.FAILURES, failures, AsyncFailureCounter),
            (Port.RECOVERY_CODES, recovery_codes, AsyncRecoveryCodeStore),
            (Port.OOB, oob, AsyncOOBChallengeStore),
            (Port.SENDER, sender, AsyncCodeSender),
        )
        self._configure(
            ports,
            check_async_ports,
            sealer,
            clock=clock,
            events=events,
            config=config,
            secret=secret,
            fallback=fallback,
        )
        if cpu_executor is not None and not isinstance(cpu_executor, Executor):
            raise InvalidParameter("cpu_executor must be a concurrent.futures.Executor")
        self._cpu_executor = cpu_executor

    async def _run(self, flow: Flow[_R]) -> _R:
        return await run_async(flow, self._port, self._cpu_executor)

    async def begin_enrolment(
        self,
        user_id: str,
        *,
        kind: CredentialKind | str = CredentialKind.TOTP,
        label: str = "",
        account: str | None = None,
    ) -> Enrolment:
        """Awaitable :meth:`~mfa_core.service.MFAService.begin_enrolment`."""
        return await self._run(
            self._begin_enrolment_flow(user_id, kind=kind, label=label, account=account)
        )

    async def begin_renewal(
        self,
        user_id: str,
        credential_id: str,
        *,
        label: str | None = None,
        account: str | None = None,
    ) -> Enrolment:
        """Awaitable :meth:`~mfa_core.service.MFAService.begin_renewal`."""
        return await self._run(
            self._begin_renewal_flow(user_id, credential_id, label=label, account=account)
        )

    async def cancel_enrolment(self, user_id: str, credential_id: str) -> None:
        """Awaitable :meth:`~mfa_core.service.MFAService.cancel_enrolment`."""
        return await self._run(self._cancel_enrolment_flow(user_id, credential_id))

    async def confirm_enrolment(
        self, user_id: str, credential_id: str, code: str
    ) -> VerificationResult:
        """Awaitable :meth:`~mfa_core.service.MFAService.confirm_enrolment`."""
        return await self._run(self._confirm_enrolment_flow(user_id, credential_id, code))

    async def verify(self, user_id: str, code: str) -> VerificationResult:
        """Awaitable :meth:`~mfa_core.service.MFAService.verify`."""
        return await self._run(self._verify_flow(user_id, code))

    async def resync_hotp(
        self, user_id: str, credential_id: str, first_code: str, second_code: str
    ) -> VerificationResult:
        """Awaitable :meth:`~mfa_core.service.MFAService.resync_hotp`."""
        return await self._run(
            self._resync_hotp_flow(user_id, credential_id, first_code, second_code)
        )

    async def throttle_status(self, user_id: str) -> ThrottleDecision:
        """Awaitable :meth:`~mfa_core.service.MFAService.throttle_status`."""
        return await self._run(self._throttle_status_flow(user_id))

    async def disable(
        self,
        user_id: str,
        credential_id: str,
        *,
        step_up_code: str | None = None,
        by_admin: str | None = None,
    ) -> None:
        """Awaitable :meth:`~mfa_core.service.MFAService.disable`."""
        return await self._run(
            self._disable_flow(user_id, credential_id, step_up_code=step_up_code, by_admin=by_admin)
        )

    async def admin_reset(
        self, user_id: str, *, admin_id: str, credential_id: str | None = None
    ) -> int:
        """Awaitable :meth:`~mfa_core.service.MFAService.admin_reset`."""
        return await self._run(
            self._admin_reset_flow(user_id, admin_id=admin_id, credential_id=credential_id)
        )

    async def admin_unlock(self, user_id: str, *, admin_id: str) -> None:
        """Awaitable :meth:`~mfa_core.service.MFAService.admin_unlock`."""
        return await self._run(self._admin_unlock_flow(user_id, admin_id=admin_id))

    async def list_credentials(self, user_id: str) -> list[CredentialInfo]:
        """Awaitable :meth:`~mfa_core.service.MFAService.list_credentials`."""
        return await self._run(self._list_credentials_flow(user_id))

    async def decide(self, policy: Policy, context: RequestContext) -> Decision:
        """Awaitable :meth:`~mfa_core.service.MFAService.decide`."""
        return await self._run(self._decide_flow(policy, context))

    async def reseal(
        self, user_id: str | None = None, *, credential_ids: Iterable[str] | None = None
    ) -> int:
        """Awaitable :meth:`~mfa_core.service.MFAService.reseal`."""
        return await self._run(self._reseal_flow(user_id, credential_ids=credential_ids))

    async def generate_recovery_codes(
        self, user_id: str, *, config: RecoveryConfig | None = None
    ) -> RecoveryCodeSet:
        """Awaitable :meth:`~mfa_core.service.MFAService.generate_recovery_codes`."""
        return await self._run(self._generate_recovery_codes_flow(user_id, config=config))

    async def recovery_codes_left(self, user_id: str) -> int:
        """Awaitable :meth:`~mfa_core.service.MFAService.recovery_codes_left`."""
        return await self._run(self._recovery_codes_left_flow(user_id))

    async def verify_recovery_code(self, user_id: str, code: str) -> RecoveryVerificationResult:
        """Awaitable :meth:`~mfa_core.service.MFAService.verify_recovery_code`."""
        return await self._run(self._verify_recovery_code_flow(user_id, code))

    async def send_oob_code(
        self,
        user_id: str,
        *,
        channel: OOBChannel | str,
        destination: str,
        purpose: OOBPurpose | str,
    ) -> str:
        """Awaitable :meth:`~mfa_core.service.MFAService.send_oob_code`."""
        return await self._run(
            self._send_oob_code_flow(
                user_id, channel=channel, destination=destination, purpose=purpose
            )
        )

    async def resend_oob_code(self, user_id: str, challenge_id: str, destination: str) -> str:
        """Awaitable :meth:`~mfa_core.service.MFAService.resend_oob_code`."""
        return await self._run(self._resend_oob_code_flow(user_id, challenge_id, destination))

    async def verify_oob_code(
        self, user_id: str, challenge_id: str, code: str, purpose: OOBPurpose | str
    ) -> OOBVerificationResult:
        """Awaitable :meth:`~mfa_core.service.MFAService.verify_oob_code`."""
        return await self._run(self._verify_oob_code_flow(user_id, challenge_id, code, purpose))
