"""The asyncio front end: :class:`AsyncMFAService`, the same operations as
:class:`~mfa_core.service.MFAService` over async ports.

Both front ends run the very same flows (:mod:`mfa_core.service._effects`): a flow yields each
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
from typing import Any, TypeVar

from ..errors import InvalidParameter
from ..models import CredentialKind
from ..oob import OOBChannel, OOBPurpose
from ..policy import Decision, Factor, Policy, RequestContext
from ..ports import (
    Clock,
    CodeSender,
    CredentialStore,
    EventSink,
    FailureCounter,
    OOBChallengeStore,
    RecoveryCodeStore,
    Sealer,
    WebAuthnStore,
)
from ..recovery import RecoveryCodeSet, RecoveryConfig
from ..service._admin import (
    admin_reset_flow,
    admin_unlock_flow,
    disable_flow,
    list_credentials_flow,
    reseal_flow,
)
from ..service._context import check_id, configure
from ..service._effects import Flow
from ..service._enrol import (
    begin_enrolment_flow,
    begin_renewal_flow,
    cancel_enrolment_flow,
    confirm_enrolment_flow,
    enrolment_uri_flow,
)
from ..service._factors import admin_confirm_flow, send_factor_code_flow
from ..service._oob import resend_oob_code_flow, send_oob_code_flow, verify_oob_code_flow
from ..service._policy import decide_flow
from ..service._recovery import (
    generate_recovery_codes_flow,
    recovery_codes_left_flow,
    verify_recovery_code_flow,
)
from ..service._stepup import allowed_factors, step_up_flow
from ..service._verify import resync_hotp_flow, throttle_status_flow, verify_flow
from ..service._webauthn import (
    admin_reset_webauthn_flow,
    begin_authentication_flow,
    begin_registration_flow,
    disable_webauthn_flow,
    finish_authentication_flow,
    finish_registration_flow,
    list_webauthn_flow,
    rename_webauthn_flow,
)
from ..service.config import ServiceConfig
from ..service.results import (
    CredentialInfo,
    Enrolment,
    OOBVerificationResult,
    RecoveryVerificationResult,
    VerificationResult,
    WebAuthnResult,
)
from ..throttle import ThrottleDecision
from ..webauthn.config import WebAuthnConfig
from ..webauthn.records import WebAuthnCredential
from ._driver import run_async
from .ports import (
    AsyncAttemptStore,
    AsyncCodeSender,
    AsyncCredentialStore,
    AsyncFailureCounter,
    AsyncOOBChallengeStore,
    AsyncRecoveryCodeStore,
    AsyncWebAuthnStore,
)

__all__ = ["AsyncMFAService", "check_async_port"]

_R = TypeVar("_R")


def check_async_port(value: object, port: type, name: str) -> None:
    """Raise InvalidParameter for a port that is not an async implementation of its
    Protocol (a blocking store passed by mistake is refused here, not at the first call)."""
    methods = [m for m, f in vars(port).items() if inspect.iscoroutinefunction(f)]
    if not isinstance(value, port) or not all(
        inspect.iscoroutinefunction(getattr(value, m)) for m in methods
    ):
        raise InvalidParameter(f"{name} must implement {port.__name__} (async methods)")


class AsyncMFAService:
    """Two-factor authentication for an asyncio host, through async ports.

    Takes the arguments of :class:`~mfa_core.service.MFAService`, with async stores
    (:mod:`mfa_core.aio.ports`; e.g. :class:`~mfa_core.aio.AsyncMemoryStore`, or
    :class:`~mfa_core.aio.AsyncStoreAdapter` over a blocking store) and the same blocking
    sealer, clock and event sink. Every operation is a coroutine with the arguments,
    result type, events and errors of its blocking namesake. ``cpu_executor`` runs the
    CPU-heavy steps (Argon2id); ``None`` uses :func:`asyncio.to_thread`.

    Task-safe as far as the ports are: the service keeps no mutable state of its own.
    """

    __slots__ = ("_cpu_executor", "_ctx", "_table")

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
        cpu_executor: Executor | None = None,
        webauthn: AsyncWebAuthnStore | None = None,
        webauthn_config: WebAuthnConfig | None = None,
    ) -> None:
        self._ctx, self._table = configure(
            (
                (CredentialStore, AsyncCredentialStore, credentials, "credentials"),
                (FailureCounter, AsyncFailureCounter, failures, "failures"),
                (RecoveryCodeStore, AsyncRecoveryCodeStore, recovery_codes, "recovery_codes"),
                (OOBChallengeStore, AsyncOOBChallengeStore, oob, "oob"),
                (CodeSender, AsyncCodeSender, sender, "sender"),
                (WebAuthnStore, AsyncWebAuthnStore, webauthn, "webauthn"),
            ),
            AsyncAttemptStore,
            check_async_port,
            sealer,
            clock=clock,
            events=events,
            config=config,
            secret=secret,
            webauthn_config=webauthn_config,
        )
        if cpu_executor is not None and not isinstance(cpu_executor, Executor):
            raise InvalidParameter("cpu_executor must be a concurrent.futures.Executor")
        self._cpu_executor = cpu_executor

    @property
    def config(self) -> ServiceConfig:
        """The service's settings."""
        return self._ctx.config

    async def _run(self, flow: Flow[_R]) -> _R:
        return await run_async(flow, self._table, self._cpu_executor)

    async def begin_enrolment(
        self,
        user_id: str,
        *,
        kind: CredentialKind | str = CredentialKind.TOTP,
        label: str = "",
        account: str | None = None,
        destination: str | None = None,
    ) -> Enrolment:
        """Awaitable :meth:`~mfa_core.service.MFAService.begin_enrolment`."""
        return await self._run(
            begin_enrolment_flow(
                self._ctx,
                user_id,
                kind=kind,
                label=label,
                account=account,
                destination=destination,
            )
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
            begin_renewal_flow(self._ctx, user_id, credential_id, label=label, account=account)
        )

    async def cancel_enrolment(self, user_id: str, credential_id: str) -> None:
        """Awaitable :meth:`~mfa_core.service.MFAService.cancel_enrolment`."""
        return await self._run(cancel_enrolment_flow(self._ctx, user_id, credential_id))

    async def confirm_enrolment(
        self, user_id: str, credential_id: str, code: str
    ) -> VerificationResult:
        """Awaitable :meth:`~mfa_core.service.MFAService.confirm_enrolment`."""
        return await self._run(confirm_enrolment_flow(self._ctx, user_id, credential_id, code))

    async def verify(
        self, user_id: str, code: str, *, diagnose_skew: bool = False
    ) -> VerificationResult:
        """Awaitable :meth:`~mfa_core.service.MFAService.verify`."""
        return await self._run(verify_flow(self._ctx, user_id, code, diagnose_skew=diagnose_skew))

    async def resync_hotp(
        self, user_id: str, credential_id: str, first_code: str, second_code: str
    ) -> VerificationResult:
        """Awaitable :meth:`~mfa_core.service.MFAService.resync_hotp`."""
        return await self._run(
            resync_hotp_flow(self._ctx, user_id, credential_id, first_code, second_code)
        )

    async def throttle_status(self, user_id: str) -> ThrottleDecision:
        """Awaitable :meth:`~mfa_core.service.MFAService.throttle_status`."""
        return await self._run(throttle_status_flow(self._ctx, user_id))

    async def disable(
        self,
        user_id: str,
        credential_id: str,
        *,
        step_up_code: str | None = None,
        by_admin: str | None = None,
        step_up_challenge_id: str | None = None,
        keep_recovery_codes: bool = False,
        step_up_factors: Iterable[Factor] | None = None,
    ) -> None:
        """Awaitable :meth:`~mfa_core.service.MFAService.disable`."""
        return await self._run(
            disable_flow(
                self._ctx,
                user_id,
                credential_id,
                step_up_code=step_up_code,
                by_admin=by_admin,
                step_up_challenge_id=step_up_challenge_id,
                keep_recovery_codes=keep_recovery_codes,
                step_up_factors=allowed_factors(step_up_factors),
            )
        )

    async def admin_reset(
        self,
        user_id: str,
        *,
        admin_id: str,
        credential_id: str | None = None,
        keep_recovery_codes: bool = False,
    ) -> int:
        """Awaitable :meth:`~mfa_core.service.MFAService.admin_reset`."""
        return await self._run(
            admin_reset_flow(
                self._ctx,
                user_id,
                admin_id=admin_id,
                credential_id=credential_id,
                keep_recovery_codes=keep_recovery_codes,
            )
        )

    async def admin_unlock(self, user_id: str, *, admin_id: str) -> None:
        """Awaitable :meth:`~mfa_core.service.MFAService.admin_unlock`."""
        return await self._run(admin_unlock_flow(self._ctx, user_id, admin_id=admin_id))

    async def list_credentials(self, user_id: str) -> list[CredentialInfo]:
        """Awaitable :meth:`~mfa_core.service.MFAService.list_credentials`."""
        return await self._run(list_credentials_flow(self._ctx, user_id))

    async def decide(self, policy: Policy, context: RequestContext) -> Decision:
        """Awaitable :meth:`~mfa_core.service.MFAService.decide`."""
        return await self._run(decide_flow(self._ctx, policy, context))

    async def reseal(
        self, user_id: str | None = None, *, credential_ids: Iterable[str] | None = None
    ) -> int:
        """Awaitable :meth:`~mfa_core.service.MFAService.reseal`."""
        return await self._run(reseal_flow(self._ctx, user_id, credential_ids=credential_ids))

    async def generate_recovery_codes(
        self, user_id: str, *, config: RecoveryConfig | None = None
    ) -> RecoveryCodeSet:
        """Awaitable :meth:`~mfa_core.service.MFAService.generate_recovery_codes`."""
        return await self._run(generate_recovery_codes_flow(self._ctx, user_id, config=config))

    async def recovery_codes_left(self, user_id: str) -> int:
        """Awaitable :meth:`~mfa_core.service.MFAService.recovery_codes_left`."""
        return await self._run(recovery_codes_left_flow(self._ctx, user_id))

    async def verify_recovery_code(self, user_id: str, code: str) -> RecoveryVerificationResult:
        """Awaitable :meth:`~mfa_core.service.MFAService.verify_recovery_code`."""
        return await self._run(verify_recovery_code_flow(self._ctx, user_id, code))

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
            send_oob_code_flow(
                self._ctx, user_id, channel=channel, destination=destination, purpose=purpose
            )
        )

    async def resend_oob_code(self, user_id: str, challenge_id: str, destination: str) -> str:
        """Awaitable :meth:`~mfa_core.service.MFAService.resend_oob_code`."""
        return await self._run(resend_oob_code_flow(self._ctx, user_id, challenge_id, destination))

    async def verify_oob_code(
        self,
        user_id: str,
        challenge_id: str,
        code: str,
        purpose: OOBPurpose | str,
        *,
        destination: str | None = None,
    ) -> OOBVerificationResult:
        """Awaitable :meth:`~mfa_core.service.MFAService.verify_oob_code`."""
        return await self._run(
            verify_oob_code_flow(self._ctx, user_id, challenge_id, code, purpose, destination)
        )

    async def step_up(
        self,
        user_id: str,
        code: str,
        *,
        challenge_id: str | None = None,
        factors: Iterable[Factor] | None = None,
    ) -> VerificationResult:
        """Awaitable :meth:`~mfa_core.service.MFAService.step_up`."""
        check_id(user_id, "user_id")
        allowed = allowed_factors(factors)
        return await self._run(
            step_up_flow(
                self._ctx,
                user_id,
                code,
                self._ctx.now(),
                challenge_id=challenge_id,
                factors=allowed,
            )
        )

    async def enrolment_uri(
        self, user_id: str, credential_id: str, *, account: str | None = None
    ) -> Enrolment:
        """Awaitable :meth:`~mfa_core.service.MFAService.enrolment_uri`."""
        return await self._run(
            enrolment_uri_flow(self._ctx, user_id, credential_id, account=account)
        )

    async def admin_confirm(self, user_id: str, credential_id: str, *, admin_id: str) -> None:
        """Awaitable :meth:`~mfa_core.service.MFAService.admin_confirm`."""
        return await self._run(
            admin_confirm_flow(self._ctx, user_id, credential_id, admin_id=admin_id)
        )

    async def send_factor_code(
        self, user_id: str, credential_id: str, *, purpose: OOBPurpose | str
    ) -> str:
        """Awaitable :meth:`~mfa_core.service.MFAService.send_factor_code`."""
        return await self._run(send_factor_code_flow(self._ctx, user_id, credential_id, purpose))

    async def begin_webauthn_registration(
        self, user_id: str, *, user_name: str, display_name: str | None = None
    ) -> dict[str, Any]:
        """Awaitable :meth:`~mfa_core.service.MFAService.begin_webauthn_registration`."""
        return await self._run(
            begin_registration_flow(
                self._ctx, user_id, user_name=user_name, display_name=display_name
            )
        )

    async def finish_webauthn_registration(
        self, user_id: str, response: object, *, nickname: str = ""
    ) -> WebAuthnResult:
        """Awaitable :meth:`~mfa_core.service.MFAService.finish_webauthn_registration`."""
        return await self._run(
            finish_registration_flow(self._ctx, user_id, response, nickname=nickname)
        )

    async def begin_webauthn_authentication(self, user_id: str | None) -> dict[str, Any]:
        """Awaitable :meth:`~mfa_core.service.MFAService.begin_webauthn_authentication`."""
        return await self._run(begin_authentication_flow(self._ctx, user_id))

    async def finish_webauthn_authentication(
        self, user_id: str | None, response: object
    ) -> WebAuthnResult:
        """Awaitable :meth:`~mfa_core.service.MFAService.finish_webauthn_authentication`."""
        return await self._run(finish_authentication_flow(self._ctx, user_id, response))

    async def list_webauthn_credentials(self, user_id: str) -> list[WebAuthnCredential]:
        """Awaitable :meth:`~mfa_core.service.MFAService.list_webauthn_credentials`."""
        return await self._run(list_webauthn_flow(self._ctx, user_id))

    async def rename_webauthn_credential(
        self, user_id: str, credential_id: str, nickname: str
    ) -> None:
        """Awaitable :meth:`~mfa_core.service.MFAService.rename_webauthn_credential`."""
        return await self._run(rename_webauthn_flow(self._ctx, user_id, credential_id, nickname))

    async def disable_webauthn_credential(
        self, user_id: str, credential_id: str, *, actor: str | None = None
    ) -> None:
        """Awaitable :meth:`~mfa_core.service.MFAService.disable_webauthn_credential`."""
        return await self._run(
            disable_webauthn_flow(self._ctx, user_id, credential_id, actor=actor)
        )

    async def admin_reset_webauthn(
        self, user_id: str, *, admin_id: str, credential_id: str | None = None
    ) -> int:
        """Awaitable :meth:`~mfa_core.service.MFAService.admin_reset_webauthn`."""
        return await self._run(
            admin_reset_webauthn_flow(
                self._ctx, user_id, admin_id=admin_id, credential_id=credential_id
            )
        )
