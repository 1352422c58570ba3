"""Type checks shared by the pure modules' strict constructors (private).

``bool`` is an ``int`` subclass in Python; none of the library's integer or numeric
parameters accepts it, so every check here refuses it.
"""

from __future__ import annotations

from typing import TypeGuard

from .errors import InvalidParameter

__all__ = ["int_in", "is_int", "is_number"]


def is_int(value: object) -> TypeGuard[int]:
    """True for an ``int`` (or subclass) that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> TypeGuard[int | float]:
    """True for an ``int`` or ``float`` (or subclass) that is not a ``bool``."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def int_in(value: object, low: int, high: int, name: str) -> int:
    """Return ``value`` as an ``int`` if it is an integer from ``low`` to ``high``;
    otherwise raise :class:`~mfa_core.errors.InvalidParameter` naming ``name``."""
    if not is_int(value) or not low <= value <= high:
        raise InvalidParameter(f"{name} must be an integer from {low} to {high}")
    return int(value)
