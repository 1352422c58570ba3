"""Fuzz ``MFAService`` over ``MemoryStore``: a sequence of enrol / confirm / verify / HOTP
resync / recovery / out-of-band / admin calls and clock jumps decoded from the input.

Oracle (``_service_model.py``): only ``MFAError``; an accepted TOTP/HOTP code is pyotp's
code for the matched step or counter of one of the user's credentials, within the window;
an accepted recovery or out-of-band code is one the user was given (the latest sent, for
out-of-band); no step, counter, recovery code or challenge is accepted twice; every code
went to the destination its challenge was started for.
"""

from __future__ import annotations

import atheris

with atheris.instrument_imports():
    import mfa_core.service  # instrumented before the model imports it
    import mfa_core.stores  # noqa: F401

from _harness import main
from _sources import service_run


def one_input(fdp: atheris.FuzzedDataProvider) -> None:
    service_run(fdp).run()


if __name__ == "__main__":
    main(one_input)
