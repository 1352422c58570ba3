"""Fuzz :meth:`Policy.from_json`, :meth:`Policy.from_dict` and :func:`evaluate`.

Oracle: only ``MFAError``; an accepted JSON text is strict JSON to :func:`json.loads` (no
NaN/Infinity, no repeated key); an accepted policy survives ``to_json`` / ``from_json``
and ``to_dict`` / ``from_dict`` unchanged; :func:`evaluate` with a fuzzed request context
and time is total (a :class:`Decision` or an ``MFAError``) and :func:`explain` renders it.
"""

from __future__ import annotations

import json

import atheris

with atheris.instrument_imports():
    from mfa_core.errors import MFAError
    from mfa_core.models import CredentialState
    from mfa_core.policy import (
        Action,
        EnrolledFactor,
        Factor,
        FirstFactor,
        Policy,
        RememberedDevice,
        RequestContext,
        SecondFactorCheck,
        evaluate,
        explain,
    )

from _harness import main, number, text

_KEYS = [
    "mandate_all",
    "mandated_roles",
    "allowed_factors",
    "step_up_window",
    "sensitive_actions",
    "enrolment_grace",
    "mandate_effective_at",
    "organisation",
    "remember_device_for",
    "email_superseded_by_app",
    "version",
]


def _strict_json(raw: str) -> None:
    def refuse_constant(name: str) -> None:
        raise ValueError(name)

    def unique(pairs: list[tuple[str, object]]) -> dict[str, object]:
        if len({key for key, _ in pairs}) != len(pairs):
            raise ValueError("repeated key")
        return dict(pairs)

    json.loads(raw, parse_constant=refuse_constant, object_pairs_hook=unique)


def _document(fdp: atheris.FuzzedDataProvider) -> str | bytes:
    pick = fdp.ConsumeIntInRange(0, 3)
    if pick == 0:
        return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 400))
    if pick == 1:
        return text(fdp, 400)
    data = Policy().to_dict()
    for _ in range(fdp.ConsumeIntInRange(0, 4)):
        key = fdp.PickValueInList([*_KEYS, *data.keys(), text(fdp, 10)])
        data[key] = fdp.PickValueInList(
            [None, True, 0, -1, 1e308, 10**30, text(fdp, 12), [text(fdp, 8)], {}, 600]
        )
    return json.dumps(data)


def _context(fdp: atheris.FuzzedDataProvider) -> RequestContext:
    checked = number(fdp)
    return RequestContext(
        user_id=text(fdp, 20),
        first_factor=fdp.PickValueInList(list(FirstFactor)),
        authenticated_at=number(fdp),  # type: ignore[arg-type]
        action=fdp.PickValueInList(list(Action)),
        roles=frozenset(text(fdp, 8) for _ in range(fdp.ConsumeIntInRange(0, 3))),
        organisation=fdp.PickValueInList([None, "org", text(fdp, 8)]),
        member_since=fdp.PickValueInList([None, number(fdp)]),  # type: ignore[arg-type]
        factors=tuple(
            EnrolledFactor(
                factor=fdp.PickValueInList(list(Factor)),
                state=fdp.PickValueInList(list(CredentialState)),
            )
            for _ in range(fdp.ConsumeIntInRange(0, 3))
        ),
        last_check=fdp.PickValueInList(
            [None, SecondFactorCheck(factor=Factor.TOTP, at=checked)]  # type: ignore[arg-type]
        )
        if isinstance(checked, int | float) and not isinstance(checked, bool)
        else None,
        remembered_device=None,
        factors_reset_at=fdp.PickValueInList([None, number(fdp)]),  # type: ignore[arg-type]
    )


def one_input(fdp: atheris.FuzzedDataProvider) -> None:
    document = _document(fdp)
    try:
        policy = Policy.from_json(document)
    except MFAError:
        policy = Policy()
    else:
        raw = document.decode("utf-8") if isinstance(document, bytes) else document
        try:
            _strict_json(raw)
        except (ValueError, RecursionError) as exc:
            raise AssertionError("accepted JSON that json.loads refuses") from exc
        if Policy.from_json(policy.to_json()) != policy:
            raise AssertionError("to_json / from_json changed the policy")
        if Policy.from_dict(policy.to_dict()) != policy:
            raise AssertionError("to_dict / from_dict changed the policy")
    try:
        context = _context(fdp)
        if fdp.ConsumeBool():
            context = RequestContext(
                user_id="u",
                first_factor=FirstFactor.PASSWORD,
                authenticated_at=1e9,
                remembered_device=RememberedDevice(issued_at=number(fdp)),  # type: ignore[arg-type]
            )
        decision = evaluate(policy, context, number(fdp))  # type: ignore[arg-type]
    except MFAError:
        return
    explain(decision)


if __name__ == "__main__":
    main(one_input)
