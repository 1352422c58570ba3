"""Effects: how ONE flow serves both the blocking and the asyncio front end.

Every flow of the service (verify, confirm, enrol, recover, ...) is written once, as a
generator. Where it needs a stateful port it does not call it: it *yields* an effect and
receives the result back (``credentials = yield from Credentials.list_for_user(user_id)``):

* :class:`Op` - one call of one port method (credential store, failure counter, recovery
  code store, out-of-band challenge store, code sender), named by :class:`Port`;
* :class:`Cpu` - CPU-heavy pure work (Argon2id): a module-level function and its
  arguments, so that it can run in another thread or process.

A driver runs the generator. :func:`run_sync` calls the blocking ports and runs ``Cpu``
work inline (:class:`~mfa_core.service.MFAService`); :func:`run_async` awaits the async
ports and runs ``Cpu`` work off the event loop: in a worker thread
(:func:`asyncio.to_thread`) or in the executor the host passes, e.g. a process pool for a
hash that holds the GIL (:class:`~mfa_core.aio.AsyncMFAService`). When a port
raises, the driver throws the exception back into the generator at the ``yield``, so the
fail-closed handling (``except Exception: refuse``) lives in the flow, once.

The sealer, clock and event sink are in-process and cheap; flows call them directly.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Generator, Mapping, Sequence
from concurrent.futures import Executor
from types import MappingProxyType
from typing import Any, Generic, TypeAlias, TypeVar, TypeVarTuple, cast

import attrs

from .errors import StoreError
from .models import Credential, FailureState
from .oob import OOBChannel, OOBPurpose, OOBRecord
from .recovery import RecoveryRecord

__all__ = [
    "CodeSenderOps",
    "Cpu",
    "Credentials",
    "Effect",
    "Failures",
    "Flow",
    "OOBChallenges",
    "Op",
    "Port",
    "RecoveryCodes",
    "cpu",
    "run_async",
    "run_sync",
]

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")


class Port(enum.StrEnum):
    """The stateful ports an :class:`Op` can address (the value is the constructor name)."""

    CREDENTIALS = "credentials"
    FAILURES = "failures"
    RECOVERY_CODES = "recovery_codes"
    OOB = "oob"
    SENDER = "sender"


_NO_KWARGS: Mapping[str, object] = MappingProxyType({})


@attrs.define
class Op:
    """Call ``method`` of ``port`` with ``args`` and ``kwargs`` (may hold codes: no repr).

    Made for every port call, so it is a plain slotted class (a frozen attrs init costs
    several times more); nothing mutates an ``Op`` (nor its ``kwargs``) after it is
    yielded. The typed helpers below build it directly: no helper call, and keyword
    arguments are handed to the port as the mapping they already are.
    """

    port: Port
    method: str
    args: tuple[object, ...] = attrs.field(default=(), repr=False)
    kwargs: Mapping[str, object] = attrs.field(default=_NO_KWARGS, repr=False)


@attrs.frozen
class Cpu:
    """Run ``fn(*args)``: pure, CPU-heavy work (off the loop under the async driver).

    ``fn`` is a module-level function and ``args`` picklable values (a process pool can
    run it); the arguments may hold a code, so they stay out of ``repr``.
    """

    fn: Callable[..., object]
    args: tuple[object, ...] = attrs.field(default=(), repr=False)


Effect: TypeAlias = Op | Cpu
"""What a flow yields."""
Flow: TypeAlias = Generator[Effect, Any, _T]
"""A flow: yields effects, is sent their results, returns its outcome."""


def cpu(fn: Callable[[*_Ts], _T], *args: *_Ts) -> Flow[_T]:
    """Run ``fn(*args)`` as a :class:`Cpu` effect and return its result."""
    return cast(_T, (yield Cpu(fn, args)))


class Credentials:
    """Typed effects of :class:`~mfa_core.ports.CredentialStore`."""

    @staticmethod
    def add(credential: Credential) -> Flow[None]:
        """``CredentialStore.add``."""
        yield Op(Port.CREDENTIALS, "add", (credential,))

    @staticmethod
    def get(credential_id: str) -> Flow[Credential | None]:
        """``CredentialStore.get``."""
        return cast(Credential | None, (yield Op(Port.CREDENTIALS, "get", (credential_id,))))

    @staticmethod
    def list_for_user(user_id: str) -> Flow[Sequence[Credential]]:
        """``CredentialStore.list_for_user``."""
        found = yield Op(Port.CREDENTIALS, "list_for_user", (user_id,))
        return cast("Sequence[Credential]", found)

    @staticmethod
    def update(credential: Credential, *, expected_version: int) -> Flow[bool]:
        """``CredentialStore.update``."""
        done = yield Op(
            Port.CREDENTIALS, "update", (credential,), {"expected_version": expected_version}
        )
        return bool(done)

    @staticmethod
    def claim(credential_id: str, value: int, *, drift: int) -> Flow[bool]:
        """``CredentialStore.claim``."""
        done = yield Op(Port.CREDENTIALS, "claim", (credential_id, value), {"drift": drift})
        return bool(done)

    @staticmethod
    def delete(credential_id: str) -> Flow[bool]:
        """``CredentialStore.delete``."""
        return bool((yield Op(Port.CREDENTIALS, "delete", (credential_id,))))


class Failures:
    """Typed effects of :class:`~mfa_core.ports.FailureCounter`."""

    @staticmethod
    def record_failure(user_id: str, now: float) -> Flow[FailureState]:
        """``FailureCounter.record_failure``."""
        state = yield Op(Port.FAILURES, "record_failure", (user_id, now))
        return cast(FailureState, state)

    @staticmethod
    def get_failures(user_id: str) -> Flow[FailureState]:
        """``FailureCounter.get_failures``."""
        return cast(FailureState, (yield Op(Port.FAILURES, "get_failures", (user_id,))))

    @staticmethod
    def reset(user_id: str) -> Flow[None]:
        """``FailureCounter.reset``."""
        yield Op(Port.FAILURES, "reset", (user_id,))


class RecoveryCodes:
    """Typed effects of :class:`~mfa_core.ports.RecoveryCodeStore`."""

    @staticmethod
    def replace_recovery_codes(user_id: str, records: Sequence[RecoveryRecord]) -> Flow[None]:
        """``RecoveryCodeStore.replace_recovery_codes``."""
        yield Op(Port.RECOVERY_CODES, "replace_recovery_codes", (user_id, records))

    @staticmethod
    def recovery_codes(user_id: str) -> Flow[Sequence[RecoveryRecord]]:
        """``RecoveryCodeStore.recovery_codes``."""
        found = yield Op(Port.RECOVERY_CODES, "recovery_codes", (user_id,))
        return cast("Sequence[RecoveryRecord]", found)

    @staticmethod
    def consume_recovery_code(user_id: str, record_id: str, now: float) -> Flow[int | None]:
        """``RecoveryCodeStore.consume_recovery_code``."""
        left = yield Op(Port.RECOVERY_CODES, "consume_recovery_code", (user_id, record_id, now))
        return cast(int | None, left)

    @staticmethod
    def update_recovery_hash(user_id: str, record_id: str, phc: str) -> Flow[bool]:
        """``RecoveryCodeStore.update_recovery_hash``."""
        done = yield Op(Port.RECOVERY_CODES, "update_recovery_hash", (user_id, record_id, phc))
        return bool(done)


class OOBChallenges:
    """Typed effects of :class:`~mfa_core.ports.OOBChallengeStore`."""

    @staticmethod
    def put_challenge(record: OOBRecord) -> Flow[None]:
        """``OOBChallengeStore.put_challenge``."""
        yield Op(Port.OOB, "put_challenge", (record,))

    @staticmethod
    def get_challenge(challenge_id: str) -> Flow[OOBRecord | None]:
        """``OOBChallengeStore.get_challenge``."""
        return cast(OOBRecord | None, (yield Op(Port.OOB, "get_challenge", (challenge_id,))))

    @staticmethod
    def replace_challenge(record: OOBRecord, *, expected_generation: int) -> Flow[bool]:
        """``OOBChallengeStore.replace_challenge``."""
        done = yield Op(
            Port.OOB, "replace_challenge", (record,), {"expected_generation": expected_generation}
        )
        return bool(done)

    @staticmethod
    def update_challenge(record: OOBRecord, *, expected: OOBRecord) -> Flow[bool]:
        """``OOBChallengeStore.update_challenge``."""
        return bool((yield Op(Port.OOB, "update_challenge", (record,), {"expected": expected})))

    @staticmethod
    def delete_challenge(challenge_id: str) -> Flow[bool]:
        """``OOBChallengeStore.delete_challenge``."""
        return bool((yield Op(Port.OOB, "delete_challenge", (challenge_id,))))

    @staticmethod
    def count_send(key: str, window_start: float, expires_at: float) -> Flow[int]:
        """``OOBChallengeStore.count_send``; a count that is not an ``int`` is a
        :class:`~mfa_core.errors.StoreError` (never compared as a limit)."""
        count = yield Op(Port.OOB, "count_send", (key, window_start, expires_at))
        if type(count) is not int:
            raise StoreError("the challenge store returned a send count that is not an integer")
        return count


class CodeSenderOps:
    """Typed effects of :class:`~mfa_core.ports.CodeSender`."""

    @staticmethod
    def send(
        *,
        channel: OOBChannel,
        destination: str,
        code: str,
        purpose: OOBPurpose,
        challenge_id: str,
        expires_at: float,
    ) -> Flow[None]:
        """``CodeSender.send``."""
        yield Op(
            Port.SENDER,
            "send",
            (),
            {
                "channel": channel,
                "destination": destination,
                "code": code,
                "purpose": purpose,
                "challenge_id": challenge_id,
                "expires_at": expires_at,
            },
        )


# -- drivers ---------------------------------------------------------------------------------


class _Stepper(Generic[_T]):
    """Advances a flow: send a result or throw an error in, get the next effect out."""

    __slots__ = ("_flow", "result")

    def __init__(self, flow: Flow[_T]) -> None:
        self._flow = flow
        self.result: _T | None = None

    def step(self, value: object, error: Exception | None) -> Effect | None:
        """Resume the flow; return its next effect, or ``None`` once it returned."""
        try:
            if error is None:
                return self._flow.send(value)
            return self._flow.throw(error)
        except StopIteration as stop:
            self.result = cast(_T, stop.value)
            return None


def _method(effect: Op, resolve: Callable[[Port], object]) -> Callable[..., Any]:
    # A string cast: subscripting Callable at run time would build a new alias per call.
    return cast("Callable[..., Any]", getattr(resolve(effect.port), effect.method))


def run_sync(flow: Flow[_T], resolve: Callable[[Port], object]) -> _T:
    """Run ``flow`` to its end with blocking ports (``resolve`` maps a port to its object)."""
    # The same protocol as _Stepper, inlined: this loop runs for every sync operation.
    send, throw = flow.send, flow.throw
    try:
        effect = send(None)
        while True:
            try:
                if isinstance(effect, Op):
                    method = getattr(resolve(effect.port), effect.method)
                    if effect.kwargs:
                        value = method(*effect.args, **effect.kwargs)
                    else:
                        value = method(*effect.args)
                else:
                    value = effect.fn(*effect.args)
            except Exception as exc:
                effect = throw(exc)
                del exc
            else:
                effect = send(value)
    except StopIteration as stop:
        return cast(_T, stop.value)


async def run_async(
    flow: Flow[_T], resolve: Callable[[Port], object], executor: Executor | None = None
) -> _T:
    """Run ``flow`` to its end with async ports; ``Cpu`` work runs in ``executor`` (or,
    when ``None``, in a worker thread of :func:`asyncio.to_thread`)."""
    stepper = _Stepper(flow)
    effect = stepper.step(None, None)
    while effect is not None:
        value: object = None
        error: Exception | None = None
        try:
            if isinstance(effect, Cpu):
                if executor is None:
                    value = await asyncio.to_thread(effect.fn, *effect.args)
                else:
                    loop = asyncio.get_running_loop()
                    value = await loop.run_in_executor(executor, effect.fn, *effect.args)
            else:
                value = await _method(effect, resolve)(*effect.args, **effect.kwargs)
        except Exception as exc:
            error = exc
        effect = stepper.step(value, error)
        del error
    return cast(_T, stepper.result)
