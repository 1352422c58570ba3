"""Every blocking port of :mod:`mfa_core.ports` and its async twin in
:mod:`mfa_core.aio.ports` have the same methods: names, parameters (names, kinds,
defaults, annotations) and return annotations; the async ones are coroutine functions.

The comparison is checked to have teeth on small Protocol pairs that drift on purpose.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import pytest

import mfa_core.aio.ports as aio_ports
from mfa_core import ports
from mfa_core.models import Admission, FailureState
from mfa_core.throttle import ThrottleConfig

EXPECTED_PAIRS = {
    "AttemptStore",
    "CodeSender",
    "CredentialStore",
    "FailureCounter",
    "OOBChallengeStore",
    "RecoveryCodeStore",
    "WebAuthnStore",
}


def _pairs() -> list[tuple[type, type]]:
    """Each blocking Protocol of ``mfa_core.ports`` that has an ``Async`` twin."""
    return [
        (getattr(ports, name), getattr(aio_ports, f"Async{name}"))
        for name in ports.__all__
        if f"Async{name}" in aio_ports.__all__
    ]


def _methods(protocol: type) -> dict[str, Callable[..., Any]]:
    """The methods a Protocol declares, its Protocol bases' included."""
    methods: dict[str, Callable[..., Any]] = {}
    for klass in reversed(protocol.__mro__):
        if klass in (object, Protocol, typing.Generic):
            continue
        for name, member in vars(klass).items():
            if not name.startswith("_") and inspect.isfunction(member):
                methods[name] = member
    return methods


def _described(function: Callable[..., Any]) -> tuple[list[tuple[Any, ...]], Any]:
    """Parameters as (name, kind, default, resolved annotation), and the resolved return."""
    hints = typing.get_type_hints(function)
    parameters = [
        (p.name, p.kind, p.default, hints.get(p.name, p.annotation))
        for p in inspect.signature(function).parameters.values()
    ]
    return parameters, hints.get("return", inspect.Signature.empty)


def differences(blocking: type, twin: type) -> list[str]:
    """Every way ``twin`` is not the async form of ``blocking`` (empty: none)."""
    found: list[str] = []
    mine, theirs = _methods(blocking), _methods(twin)
    if set(mine) != set(theirs):
        found.append(f"methods differ: {sorted(set(mine) ^ set(theirs))}")
    for name in sorted(set(mine) & set(theirs)):
        if inspect.iscoroutinefunction(mine[name]):
            found.append(f"{blocking.__name__}.{name} is a coroutine function")
        if not inspect.iscoroutinefunction(theirs[name]):
            found.append(f"{twin.__name__}.{name} is not a coroutine function")
        (params, result), (twin_params, twin_result) = (
            _described(mine[name]),
            _described(theirs[name]),
        )
        if params != twin_params:
            found.append(f"{name}: parameters {params} != {twin_params}")
        if result != twin_result:
            found.append(f"{name}: returns {result} != {twin_result}")
    return found


def test_every_port_with_an_async_twin_is_compared() -> None:
    assert {blocking.__name__ for blocking, _ in _pairs()} == EXPECTED_PAIRS


@pytest.mark.parametrize("pair", _pairs(), ids=lambda pair: pair[0].__name__)
def test_async_twin_has_the_same_methods(pair: tuple[type, type]) -> None:
    blocking, twin = pair
    assert _methods(blocking), "a port declares methods"
    assert differences(blocking, twin) == []


# -- the comparison has teeth ------------------------------------------------------------------


class _Counter(Protocol):
    def admit_attempt(self, user_id: str, now: float, limits: ThrottleConfig) -> Admission: ...

    def reset(self, user_id: str, *, reason: str = "ok") -> None: ...


class _AsyncCounter(Protocol):
    async def admit_attempt(
        self, user_id: str, now: float, limits: ThrottleConfig
    ) -> Admission: ...

    async def reset(self, user_id: str, *, reason: str = "ok") -> None: ...


class _RenamedParameter(Protocol):
    async def admit_attempt(self, user: str, now: float, limits: ThrottleConfig) -> Admission: ...

    async def reset(self, user_id: str, *, reason: str = "ok") -> None: ...


class _OtherKind(Protocol):
    async def admit_attempt(
        self, user_id: str, now: float, limits: ThrottleConfig
    ) -> Admission: ...

    async def reset(self, user_id: str, reason: str = "ok") -> None: ...


class _OtherDefault(Protocol):
    async def admit_attempt(
        self, user_id: str, now: float, limits: ThrottleConfig
    ) -> Admission: ...

    async def reset(self, user_id: str, *, reason: str = "no") -> None: ...


class _OtherAnnotation(Protocol):
    async def admit_attempt(self, user_id: str, now: int, limits: ThrottleConfig) -> Admission: ...

    async def reset(self, user_id: str, *, reason: str = "ok") -> None: ...


class _OtherReturn(Protocol):
    async def admit_attempt(
        self, user_id: str, now: float, limits: ThrottleConfig
    ) -> FailureState: ...

    async def reset(self, user_id: str, *, reason: str = "ok") -> None: ...


class _NotAsync(Protocol):
    async def admit_attempt(
        self, user_id: str, now: float, limits: ThrottleConfig
    ) -> Admission: ...

    def reset(self, user_id: str, *, reason: str = "ok") -> None: ...


class _MissingMethod(Protocol):
    async def admit_attempt(
        self, user_id: str, now: float, limits: ThrottleConfig
    ) -> Admission: ...


class _ExtraMethod(_AsyncCounter, Protocol):
    async def record_failure(self, user_id: str, now: float) -> Sequence[FailureState]: ...


def test_the_comparison_accepts_a_faithful_twin() -> None:
    assert differences(_Counter, _AsyncCounter) == []


@pytest.mark.parametrize(
    ("drifted", "what"),
    [
        (_RenamedParameter, "parameters"),
        (_OtherKind, "parameters"),
        (_OtherDefault, "parameters"),
        (_OtherAnnotation, "parameters"),
        (_OtherReturn, "returns"),
        (_NotAsync, "not a coroutine function"),
        (_MissingMethod, "methods differ"),
        (_ExtraMethod, "methods differ"),
        (_Counter, "not a coroutine function"),
    ],
)
def test_the_comparison_catches_a_drifted_twin(drifted: type, what: str) -> None:
    found = differences(_Counter, drifted)
    assert found, drifted
    assert any(what in difference for difference in found), found
