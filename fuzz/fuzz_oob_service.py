"""Fuzz out-of-band send / resend / verify through ``MFAService`` over ``MemoryStore``,
with destinations that share a masked hint, Unicode look-alikes and variants that
normalise equal, TOTP enrolments (the email-login rule) and admin calls in between.

Oracle (``_service_model.py``): only ``MFAError``; an accepted code is the latest one the
sender got for that challenge, user and purpose, accepted at most once per challenge; a
verify given a destination confirms only the one the challenge was started for; every code
the sender got went to a destination that normalises (by an independent rule) to the
challenge's.
"""

from __future__ import annotations

import atheris

with atheris.instrument_imports():
    import mfa_core.oob  # instrumented before the model imports it
    import mfa_core.service  # noqa: F401

from _harness import main
from _sources import service_run

OPERATIONS = ("send", "send", "resend", "resend", "verify_oob", "verify_oob", "tick", "enrol")
OPERATIONS += ("confirm", "admin")


def one_input(fdp: atheris.FuzzedDataProvider) -> None:
    service_run(fdp).run(operations=OPERATIONS)


if __name__ == "__main__":
    main(one_input)
