"""Loading a policy from plain data and JSON, strictly (:meth:`Policy.from_dict`,
:meth:`Policy.from_json`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final, NoReturn, TypeVar

from ..errors import PolicyError
from ._model import (
    _BOOL_FIELDS,
    MAX_NAME_LENGTH,
    MAX_POLICY_JSON,
    MAX_ROLES,
    POLICY_VERSION,
    Action,
    Factor,
    Policy,
    _check_name,
    _finite,
    _policy_error,
)

__all__ = ["policy_from_dict", "policy_from_json"]


def _reject_constant(name: str) -> NoReturn:
    raise PolicyError(f"policy JSON must not contain {name}")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            shown = key if len(key) <= 64 else key[:64] + "..."
            raise PolicyError(f"policy JSON repeats the key {shown!r}")
        result[key] = value
    return result


def _parse_bool(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        _policy_error(name, "must be true or false")
    return value


def _parse_number(value: object, name: str) -> float:
    if not _finite(value):
        _policy_error(name, "must be a finite number")
    return float(value)  # type: ignore[arg-type]


def _parse_optional_number(value: object, name: str) -> float | None:
    return None if value is None else _parse_number(value, name)


def _parse_optional_name(value: object, name: str) -> str | None:
    if value is None:
        return None
    if not _check_name(value):
        _policy_error(name, f"must be null or 1 to {MAX_NAME_LENGTH} characters")
    return value  # type: ignore[return-value]


def _parse_list(value: object, name: str) -> list[object]:
    if not isinstance(value, list | tuple):
        _policy_error(name, "must be a list")
    if len(value) > MAX_ROLES:
        _policy_error(name, f"must have at most {MAX_ROLES} entries")
    return list(value)


def _parse_roles(value: object, name: str) -> frozenset[str]:
    roles = _parse_list(value, name)
    if not all(_check_name(role) for role in roles):
        _policy_error(name, f"each entry must be a string of 1 to {MAX_NAME_LENGTH} characters")
    return frozenset(roles)  # type: ignore[arg-type]


_E = TypeVar("_E", Factor, Action)


def _parse_enum_set(value: object, name: str, kind: type[_E]) -> frozenset[_E]:
    result: set[_E] = set()
    for item in _parse_list(value, name):
        if not isinstance(item, str):
            _policy_error(name, "each entry must be a string")
        try:
            result.add(kind(item))
        except ValueError:
            known = ", ".join(member.value for member in kind)
            shown = item if len(item) <= 32 else item[:32] + "..."
            _policy_error(name, f"unknown value {shown!r} (known: {known})")
    return frozenset(result)


def _parse_factors(value: object, name: str) -> frozenset[Factor]:
    return _parse_enum_set(value, name, Factor)


def _parse_actions(value: object, name: str) -> frozenset[Action]:
    return _parse_enum_set(value, name, Action)


_FIELD_PARSERS: Final[dict[str, Any]] = {
    "organisation": _parse_optional_name,
    "mandated_roles": _parse_roles,
    "allowed_factors": _parse_factors,
    "self_enrol_factors": _parse_factors,
    "remember_device_max_age": _parse_number,
    "step_up_window": _parse_number,
    "sensitive_actions": _parse_actions,
    "enrolment_grace_period": _parse_number,
    "mandate_effective_at": _parse_optional_number,
    "mandate_first_effective_at": _parse_optional_number,
    "phishing_resistant_roles": _parse_roles,
    "phishing_resistant_actions": _parse_actions,
    **dict.fromkeys(_BOOL_FIELDS, _parse_bool),
}


def policy_from_dict(data: object) -> Policy:
    """:meth:`Policy.from_dict`: build a policy from plain data, strictly."""
    if not isinstance(data, Mapping):
        raise PolicyError("a policy must be a JSON object (a mapping of field names)")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise PolicyError("policy field names must be strings")
        if key == "version":
            if type(value) is not int or value != POLICY_VERSION:
                _policy_error("version", f"must be {POLICY_VERSION}")
            continue
        parse = _FIELD_PARSERS.get(key)
        if parse is None:
            shown = key if len(key) <= 64 else key[:64] + "..."
            raise PolicyError(f"unknown policy field {shown!r}")
        kwargs[key] = parse(value, key)
    return Policy(**kwargs)


def policy_from_json(text: str | bytes) -> Policy:
    """:meth:`Policy.from_json`: parse a policy's JSON text, strictly."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise PolicyError("policy JSON must be UTF-8") from None
    if not isinstance(text, str):
        raise PolicyError("policy JSON must be str or bytes")
    if len(text) > MAX_POLICY_JSON:
        raise PolicyError(f"policy JSON is longer than {MAX_POLICY_JSON} characters")
    try:
        data = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except PolicyError:
        raise
    except (ValueError, RecursionError):
        raise PolicyError("policy is not valid JSON") from None
    return policy_from_dict(data)
