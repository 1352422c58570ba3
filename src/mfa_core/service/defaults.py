"""The clock and event sinks a service uses when the host wires none, and a logging sink."""

from __future__ import annotations

import logging
import time

from ..models import Event

__all__ = ["LoggingEventSink", "NullEventSink", "SystemClock"]


class SystemClock:
    """The real clock: :func:`time.time`, Unix seconds (UTC, never local time)."""

    __slots__ = ()

    def now(self) -> float:
        """Return the current Unix time in seconds."""
        return time.time()


class NullEventSink:
    """An event sink that drops every event (the default when the host wires none)."""

    __slots__ = ()

    def emit(self, event: Event) -> None:
        """Discard ``event``."""


class LoggingEventSink:
    """An event sink that writes each event as one line to a :mod:`logging` logger.

    Events never hold a key or a code, so the line is safe to keep; it names the user id,
    which a host may treat as personal data.
    """

    __slots__ = ("_level", "_logger")

    def __init__(self, logger: logging.Logger | None = None, *, level: int = logging.INFO) -> None:
        self._logger = logger if logger is not None else logging.getLogger("mfa_core.events")
        self._level = level

    def emit(self, event: Event) -> None:
        """Log ``event`` at the configured level."""
        self._logger.log(
            self._level,
            "mfa event %s user=%s credential=%s reason=%s actor=%s data=%s",
            event.type.value,
            event.user_id,
            event.credential_id,
            event.reason,
            event.actor,
            dict(event.data),
        )
