"""Test-wide settings.

Hypothesis' per-example deadline is switched off: the suite runs on small shared machines
(2 cores, other processes), where a slow example is noise, not a failure. Performance is
measured by the scripts in ``benchmarks/``, never by timing tests.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile(
    "mfa_core",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("mfa_core")
