"""Test-wide settings.

Hypothesis' per-example deadline is switched off: the suite runs on small shared machines
(2 cores, other processes), where a slow example is noise, not a failure. Performance is
measured by the scripts in ``benchmarks/``, never by timing tests.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings
from standards import STANDARDS

MUTATION_MAX_EXAMPLES = 25

settings.register_profile(
    "mfa_core",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "mutation",
    parent=settings.get_profile("mfa_core"),
    max_examples=MUTATION_MAX_EXAMPLES,
    derandomize=True,
    database=None,
)
# tools/mutation.py sets MFA_MUTATION=1: every mutant reruns the tests that reach it, so
# hypothesis runs few examples, the same ones every time (a verdict does not depend on
# luck), and ``slow`` tests are skipped (docs/mutation.md).
UNDER_MUTATION = os.environ.get("MFA_MUTATION") == "1"
settings.load_profile("mutation" if UNDER_MUTATION else "mfa_core")


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
    if UNDER_MUTATION:
        _fit_for_mutation(items)


def _fit_for_mutation(items: list[pytest.Item]) -> None:
    """Under mutation: skip ``slow`` tests, and cap every hypothesis test (an explicit
    ``@settings(max_examples=...)`` included) at the mutation profile's examples."""
    skip = pytest.mark.skip(reason="slow: skipped under mutation testing")
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(skip)
        function = getattr(item, "obj", None)
        own = getattr(function, "_hypothesis_internal_use_settings", None)
        if isinstance(own, settings) and own.max_examples > MUTATION_MAX_EXAMPLES:
            function._hypothesis_internal_use_settings = settings(  # type: ignore[union-attr]
                own, max_examples=MUTATION_MAX_EXAMPLES, derandomize=True, database=None
            )
        machine = getattr(item, "cls", None)
        own = getattr(machine, "settings", None)
        if isinstance(own, settings) and own.max_examples > MUTATION_MAX_EXAMPLES:
            machine.settings = settings(  # type: ignore[union-attr]
                own, max_examples=MUTATION_MAX_EXAMPLES, derandomize=True, database=None
            )


# -- lines a test reports in every run's summary ---------------------------------------
# A test calls ``record_property("summary", text)``; the text is printed at the end of the
# run. The property travels with the test's report, so this works with pytest-xdist too
# (where a worker's own output is never shown).
_SUMMARIES: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Collect the ``summary`` properties of passed test calls."""
    if report.when == "call" and report.passed:
        _SUMMARIES.extend(str(value) for name, value in report.user_properties if name == "summary")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print what the tests reported (browser steps, doc blocks run)."""
    for line in _SUMMARIES:
        terminalreporter.write_line(line)
