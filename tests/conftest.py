"""Test-wide settings.

Hypothesis' per-example deadline is switched off: the suite runs on small shared machines
(2 cores, other processes), where a slow example is noise, not a failure. Performance is
measured by the scripts in ``benchmarks/``, never by timing tests.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from standards import STANDARDS

settings.register_profile(
    "mfa_core",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("mfa_core")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuse a ``standard`` marker that the standards page could not show.

    ``@pytest.mark.standard("ID", "what this test proves")``: the ID must be a row of
    ``tests/standards.py`` and both arguments literal strings (the documentation build reads
    the markers from the source, see ``docs/_ext/standards.py``).
    """
    for item in items:
        for mark in item.iter_markers("standard"):
            args = mark.args
            if (
                len(args) != 2
                or mark.kwargs
                or not all(isinstance(a, str) and a.strip() for a in args)
            ):
                raise pytest.UsageError(
                    f"{item.nodeid}: pytest.mark.standard takes (ID, what the test proves)"
                )
            if args[0] not in STANDARDS:
                raise pytest.UsageError(
                    f"{item.nodeid}: unknown standard {args[0]!r}; add it to tests/standards.py"
                )
