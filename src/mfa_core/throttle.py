"""Throttling of second-factor attempts: a growing delay, then a hard lock.

Pure, I/O-free: the service reads a user's :class:`~mfa_core.models.FailureState` (consecutive
failures across all the user's credentials, and the time of the latest one) from its
failure counter and asks :func:`check` whether an attempt may go ahead at ``now``.

* After ``n`` consecutive failures (``0 < n < max_failures``) the next attempt must wait
  :func:`delay_after` ``(n)`` seconds from the latest failure: ``base_delay * 2**(n - 1)``,
  capped at ``max_delay`` (1, 2, 4, ... 60 s with the defaults).
* At ``max_failures`` (default 10; at most 100, NIST SP 800-63B §3.2.2) the user is locked:
  every attempt is refused, even with a correct code, for ``lockout`` seconds after the
  latest failure (default 900), or until an administrator unlocks when ``lockout`` is
  ``None``. A failure after a lock ran out locks again at once.

An attempt is counted when it is *admitted*, before its code is checked (:func:`admit`, the
reference semantics of :meth:`~mfa_core.ports.FailureCounter.admit_attempt`, which a store
performs as ONE atomic operation): so with ``max_failures = N`` at most N guesses are ever
evaluated before the lock, whatever the concurrency. Only a success with a second factor
(or an administrator) resets the count; that is the service's business, not this module's.
"""

from __future__ import annotations

import math
from typing import Final

import attrs

from ._validate import check_duration as _check_duration
from ._validate import check_time as _check_time
from ._validate import int_in as _int_in
from ._validate import is_time as _is_time
from .errors import ErrorCode, InvalidParameter
from .models import Admission, FailureState

__all__ = ["ThrottleConfig", "ThrottleDecision", "admit", "check", "delay_after"]

_MAX_FAILURES_LIMIT: Final = 100
_MAX_DELAY_LIMIT: Final = 86400.0
_MAX_LOCKOUT: Final = 365 * 86400.0


def _seconds(value: object, name: str, *, low: float, high: float, low_open: bool = False) -> float:
    return _check_duration(value, name, low=low, high=high, low_open=low_open)


@attrs.frozen
class ThrottleConfig:
    """Limits on consecutive failed attempts per user.

    ``max_failures`` 1 to 100; ``base_delay`` 0 to ``max_delay``; ``max_delay`` 0 to 86400
    seconds; ``lockout`` from ``max_delay`` (and more than 0) to 365 days, so that a lock
    never ends sooner than a delay would, or ``None`` (locked until an administrator
    unlocks). Anything else raises :class:`~mfa_core.errors.InvalidParameter`.
    """

    max_failures: int = 10
    """Consecutive failures that lock the user (NIST SP 800-63B §3.2.2: at most 100)."""
    base_delay: float = 1.0
    """Delay in seconds after the first failure; it doubles with each further one."""
    max_delay: float = 60.0
    """Cap on the growing delay, in seconds."""
    lockout: float | None = 900.0
    """Seconds a hard lock lasts from the latest failure; ``None``: until an admin unlocks."""

    def __attrs_post_init__(self) -> None:
        _int_in(self.max_failures, 1, _MAX_FAILURES_LIMIT, "max_failures")
        top = _seconds(self.max_delay, "max_delay", low=0.0, high=_MAX_DELAY_LIMIT)
        _seconds(self.base_delay, "base_delay", low=0.0, high=top)
        if self.lockout is not None:
            lockout = _seconds(self.lockout, "lockout", low=0.0, high=_MAX_LOCKOUT, low_open=True)
            if lockout < top:
                raise InvalidParameter("lockout must be at least max_delay")


@attrs.frozen
class ThrottleDecision:
    """Whether an attempt may go ahead now.

    ``allowed`` false with ``locked`` false: too soon after the latest failure. ``locked``:
    the hard lock after ``max_failures``. ``retry_after``: seconds until an attempt is
    allowed again (``None`` when allowed, or when locked until an administrator unlocks).
    """

    allowed: bool
    """The attempt may be checked."""
    locked: bool
    """The user is hard-locked (even a correct code is refused)."""
    retry_after: float | None
    """Seconds to wait, or ``None`` (allowed, or locked with no end)."""


_ALLOWED: Final = ThrottleDecision(allowed=True, locked=False, retry_after=None)


def delay_after(count: int, config: ThrottleConfig) -> float:
    """Seconds an attempt must wait after ``count`` consecutive failures.

    0 for no failure, then ``base_delay * 2**(count - 1)`` capped at ``max_delay``:
    non-decreasing in ``count`` and never above ``max_delay``. (The hard lock at
    ``max_failures`` is :func:`check`'s business.) A negative or non-int ``count`` raises
    :class:`~mfa_core.errors.InvalidParameter`.
    """
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise InvalidParameter("count must be an int >= 0")
    if not isinstance(config, ThrottleConfig):
        raise InvalidParameter("config must be a ThrottleConfig")
    if count == 0 or config.base_delay == 0:
        return 0.0
    try:
        delay = math.ldexp(config.base_delay, count - 1)
    except OverflowError:  # past the float range (or a count beyond a C long): the cap
        return float(config.max_delay)
    return float(min(delay, config.max_delay))


def check(state: FailureState, now: float, config: ThrottleConfig) -> ThrottleDecision:
    """Decide whether a user with failure ``state`` may make an attempt at ``now``.

    * ``count == 0``: allowed.
    * ``count >= max_failures``: locked while ``now < last_failure_at + lockout`` (for
      ever when ``lockout`` is ``None``), then allowed.
    * otherwise: refused while ``now < last_failure_at + delay_after(count)``, then allowed.

    ``retry_after`` is the time left. Raises :class:`~mfa_core.errors.InvalidParameter` for
    a non-finite ``now``, a negative count, or failures without a time (``count > 0`` and
    ``last_failure_at`` ``None``): an inconsistent state is refused, never waved through.
    """
    if not isinstance(state, FailureState):
        raise InvalidParameter("state must be a FailureState")
    if not isinstance(config, ThrottleConfig):
        raise InvalidParameter("config must be a ThrottleConfig")
    now = _check_time(now, allow_negative=True)  # named "now" in its message
    count = state.count
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise InvalidParameter("a failure count must be an int >= 0")
    if count == 0:
        return _ALLOWED
    last = state.last_failure_at
    if last is None or not _is_time(last, allow_negative=True):
        raise InvalidParameter(
            "a failure state with failures needs the time of the latest one",
            code=ErrorCode.INVALID_TIME,
        )
    if count >= config.max_failures:
        if config.lockout is None:
            return ThrottleDecision(allowed=False, locked=True, retry_after=None)
        until = last + config.lockout
        if now < until:
            return ThrottleDecision(allowed=False, locked=True, retry_after=until - now)
        return _ALLOWED
    delay = delay_after(count, config)
    until = last + delay
    if delay > 0 and now < until:
        return ThrottleDecision(allowed=False, locked=False, retry_after=until - now)
    return _ALLOWED


def admit(state: FailureState, now: float, config: ThrottleConfig) -> Admission:
    """Admit (and count) an attempt at ``now`` by a user with failure ``state``, or refuse it.

    The reference semantics of :meth:`~mfa_core.ports.FailureCounter.admit_attempt`: when
    :func:`check` allows the attempt, the result is admitted with the state
    ``count + 1`` and ``last_failure_at = max(last_failure_at, now)`` (a worker whose clock
    is behind never moves the time back); otherwise it is refused and ``state`` is returned
    unchanged. A store applies exactly this, atomically, to its stored state. Raises
    :class:`~mfa_core.errors.InvalidParameter` as :func:`check` does.
    """
    decision = check(state, now, config)
    if not decision.allowed:
        return Admission(admitted=False, state=state)
    last = state.last_failure_at
    latest = float(now if last is None else max(now, last))
    return Admission(
        admitted=True, state=FailureState(count=state.count + 1, last_failure_at=latest)
    )
