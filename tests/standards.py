"""The rows of the standards table: the requirements mfa_core's tests prove.

A test proves a row with ``@pytest.mark.standard("ID", "what this test shows")``. The
documentation's standards page (``docs/_ext/standards.py``) is generated from those markers;
``conftest.py`` refuses a marker whose ID is not here, and the documentation build refuses a
row that no test proves, so the page cannot drift from the tests.

Each row: ID -> (document, clause, requirement in our words).
"""

from __future__ import annotations

from typing import Final

RFC4226: Final = "RFC 4226 (HOTP)"
RFC6238: Final = "RFC 6238 (TOTP)"
NIST: Final = "NIST SP 800-63B-4"
ASVS: Final = "OWASP ASVS 5.0"

STANDARDS: Final[dict[str, tuple[str, str, str]]] = {
    "RFC4226-5.3": (
        RFC4226,
        "§5.3, App. D",
        "HOTP value: HMAC-SHA-1 of the 8-byte counter, dynamic truncation, modulo 10^Digit",
    ),
    "RFC4226-7.2": (
        RFC4226,
        "§7.2",
        "the server accepts the next s counter values (look-ahead) and moves its counter on",
    ),
    "RFC4226-7.3": (
        RFC4226,
        "§7.3",
        "throttling: after a number of failed attempts the server delays and locks",
    ),
    "RFC4226-7.4": (
        RFC4226,
        "§7.4",
        "resynchronisation over a larger window needs consecutive values",
    ),
    "RFC6238-4": (
        RFC6238,
        "§4, App. B",
        "TOTP = HOTP(K, floor((T - T0) / X)) with HMAC-SHA-1, -256 and -512",
    ),
    "RFC6238-5.2": (
        RFC6238,
        "§5.2",
        "validation window of a few steps; an OTP is accepted at most once",
    ),
    "RFC6238-6": (
        RFC6238,
        "§6",
        "resynchronisation: the verifier learns the authenticator's clock drift, within bounds",
    ),
    "NIST-3.2.2": (
        NIST,
        "§3.2.2",
        "rate limiting: at most 100 consecutive failed attempts on one account",
    ),
    "NIST-3.1.3.1": (
        NIST,
        "§3.1.3.1",
        "email does not prove possession of a device: it counts only when a policy allows it",
    ),
    "NIST-4.4": (
        NIST,
        "§4.4",
        "expired authenticators are not used to authenticate (strict expiry)",
    ),
    "ASVS-6.3.1": (
        ASVS,
        "V6.3.1",
        "controls against brute force: throttling and lockout per account",
    ),
    "ASVS-6.5.1": (
        ASVS,
        "V6.5.1",
        "lookup secrets, out-of-band codes and TOTP codes are usable only once",
    ),
    "ASVS-6.5.2": (
        ASVS,
        "V6.5.2",
        "stored lookup secrets (recovery codes) are hashed with a password hashing algorithm",
    ),
    "ASVS-6.5.5": (
        ASVS,
        "V6.5.5",
        "out-of-band codes have a defined, short lifetime",
    ),
}
