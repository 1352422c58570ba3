"""Policy evaluation: when to ask for a second factor, which ones count, and step-up.

A pure engine, no I/O and no clock: a host calls :func:`evaluate` at each decision point
(web login, unattended access, API call, reconnect, a change of security settings) with
the organisation's :class:`Policy`, a :class:`RequestContext` describing the request and
the current time ``now``, and gets back a :class:`Decision`:

- ``allow`` - go on;
- ``challenge`` - ask for one of ``decision.factors`` (best first), then call again with
  the successful check recorded in ``context.last_check``;
- ``enrol_required`` - the user must set up one of ``decision.factors`` first, by
  ``decision.enrol_by`` if the policy grants a grace period;
- ``deny`` - stop (for example "contact your administrator").

Every decision carries the ordered list of :class:`Reason` objects (a stable
:class:`Rule` id, a human sentence and the outcome the rule asked for) that led to it.
The result is the strictest outcome any rule asked for (``allow < challenge <
enrol_required < deny``), so a deny always wins over an allow. Evaluation is
deterministic and total: it never raises for a valid context.

The policy is plain data (``to_dict``/``from_dict``, ``to_json``/``from_json``) so hosts
can store one per organisation; loading is strict and raises :class:`PolicyError`
(``ErrorCode.INVALID_POLICY``) with a message naming the offending field. The defaults
encode the standards listed in ``docs/policy.md``; each one can be overridden.

The package is split by concern: ``_model`` (the data: factors, rules, the request context,
:class:`Policy`, :class:`Decision`), ``_serialize`` (strict loading from plain data and
JSON) and ``_evaluate`` (:func:`evaluate`, :func:`explain`); every public name is here.
"""

from __future__ import annotations

from ._evaluate import evaluate, explain
from ._model import (
    DEFAULT_ALLOWED_FACTORS,
    DEFAULT_REMEMBER_DEVICE_MAX_AGE,
    DEFAULT_SELF_ENROL_FACTORS,
    DEFAULT_SENSITIVE_ACTIONS,
    DEFAULT_STEP_UP_WINDOW,
    MAX_DURATION,
    MAX_FACTORS,
    MAX_NAME_LENGTH,
    MAX_POLICY_JSON,
    MAX_ROLES,
    MAX_STEP_UP_WINDOW,
    PHISHING_RESISTANT_FACTORS,
    POLICY_VERSION,
    Action,
    Decision,
    EnrolledFactor,
    Factor,
    FactorCategory,
    FirstFactor,
    Outcome,
    Policy,
    Reason,
    RememberedDevice,
    RequestContext,
    Rule,
    SecondFactorCheck,
)

__all__ = [
    "DEFAULT_ALLOWED_FACTORS",
    "DEFAULT_REMEMBER_DEVICE_MAX_AGE",
    "DEFAULT_SELF_ENROL_FACTORS",
    "DEFAULT_SENSITIVE_ACTIONS",
    "DEFAULT_STEP_UP_WINDOW",
    "MAX_DURATION",
    "MAX_FACTORS",
    "MAX_NAME_LENGTH",
    "MAX_POLICY_JSON",
    "MAX_ROLES",
    "MAX_STEP_UP_WINDOW",
    "PHISHING_RESISTANT_FACTORS",
    "POLICY_VERSION",
    "Action",
    "Decision",
    "EnrolledFactor",
    "Factor",
    "FactorCategory",
    "FirstFactor",
    "Outcome",
    "Policy",
    "Reason",
    "RememberedDevice",
    "RequestContext",
    "Rule",
    "SecondFactorCheck",
    "evaluate",
    "explain",
]
