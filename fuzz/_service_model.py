"""A reference model of ``MFAService`` flows, driven by any source of choices.

:class:`ServiceRun` decodes a sequence of calls (enrol, confirm, verify, HOTP resync,
recovery codes, out-of-band send / resend / verify, admin reset / unlock / disable, clock
jumps) from a :class:`Source` and makes them on a service, sync
(:class:`~mfa_core.service.MFAService`) or async (:class:`~mfa_core.aio.AsyncMFAService`,
through ``call``). It checks the oracle of ``fuzz/README.md`` on every answer:

1. only an :class:`~mfa_core.errors.MFAError` escapes a call;
2. nothing is accepted that an independent reference refuses: an accepted TOTP/HOTP code
   is pyotp's code for the matched step or counter, of a credential of that user, the step
   within ``max_drift`` + the window of the clock; an accepted recovery code is one of the
   user's current set; an accepted out-of-band code is the latest one the sender got for
   that challenge, purpose and user;
3. no replay: per credential the accepted steps / counters strictly increase, a recovery
   code and an out-of-band challenge are each accepted at most once;
4. every code the sender got for a challenge went to a destination that normalises (by an
   independent rule) to the one the challenge was started for.

Used by ``fuzz_service.py`` and ``fuzz_oob_service.py`` (atheris, MemoryStore) and by
``tests/test_aio_service_fuzz.py`` (hypothesis, the async service).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import pyotp

from mfa_core.errors import MFAError
from mfa_core.recovery import Argon2Params, RecoveryConfig
from mfa_core.service import ServiceConfig
from mfa_core.testing import FakeClock, FakeCodeSender
from mfa_core.throttle import ThrottleConfig

_T = TypeVar("_T")

T0 = 1_800_000_000.0
SECRET = b"host secret for the fuzz model!!"
USERS = ("alice", "bob")
ADMIN = "admin"
PURPOSES = ("login", "step_up", "reset", "phone_confirmation")
DESTINATIONS = {
    "sms": ("+1 555 010 0167", "+1 555 999 0167", " +1 (555) 010-0167 ", "+15550100167", "1555"),
    "email": (
        "kevin@example.com",
        " KEVIN@Example.com\t",
        "k\u0435vin@example.com",
        "alic\u212a@example.com",
        "alick@example.com",
        "a\ud800@example.com",
    ),
}
# Window of the configs below: look_behind = look_ahead = 1, max_drift = 10.
_TOTP_REACH = 11
_HOTP_REACH = 10 + 100  # hotp_look_ahead, or the resync window
_SPACE = " \t\n\r\x0b\x0c"
_LOWER = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")

CONFIGS = (
    ServiceConfig(
        throttle=ThrottleConfig(max_failures=5, base_delay=0.0),
        recovery=RecoveryConfig(count=3, argon2=Argon2Params.fast_for_testing()),
    ),
    ServiceConfig(
        throttle=ThrottleConfig(max_failures=3, base_delay=1.0, max_delay=4.0, lockout=60.0),
        recovery=RecoveryConfig(count=2, argon2=Argon2Params.fast_for_testing()),
        allow_email_login_with_totp=True,
    ),
)


class Source(Protocol):
    """Where the choices come from (atheris' FuzzedDataProvider or hypothesis' data)."""

    def int(self, low: int, high: int) -> int: ...

    def pick(self, values: Sequence[_T]) -> _T: ...

    def text(self, limit: int) -> str: ...

    def more(self) -> bool: ...


class Finding(AssertionError):
    """The service answered something the reference model refuses."""


def normal_destination(channel: str, destination: str) -> str:
    """The reference normaliser: ASCII whitespace stripped; email: ASCII letters
    lower-cased (bytes.translate: no Unicode case mapping); SMS: spaces, ``-``, ``.``,
    brackets and one leading ``+`` dropped."""
    text = destination.strip(_SPACE)
    if channel == "email":
        return (
            text.encode("utf-8", "surrogatepass").translate(_LOWER).decode("utf-8", "surrogatepass")
        )
    digits = re.sub(r"[ \-.()]", "", text)
    return digits[1:] if digits.startswith("+") else digits


def _digits(code: object) -> str:
    return re.sub(r"[ \-]", "", code.strip(_SPACE)) if isinstance(code, str) else ""


class ServiceRun:
    """One input's sequence of calls on ``service`` (see the module's docstring)."""

    def __init__(
        self,
        source: Source,
        service: Any,
        clock: FakeClock,
        sender: FakeCodeSender,
        config: ServiceConfig,
        call: Callable[[Any], Any] = lambda value: value,
    ) -> None:
        self.source = source
        self.service = service
        self.clock = clock
        self.sender = sender
        self.config = config
        self.call = call
        # credential id -> (user, kind, base32 secret)
        self.credentials: dict[str, tuple[str, str, str]] = {}
        self.last_accepted: dict[str, int] = {}
        self.recovery: dict[str, tuple[str, ...]] = {}
        self.used_recovery: set[tuple[str, str]] = set()
        # challenge id -> (user, channel, purpose, normalised destination)
        self.challenges: dict[str, tuple[str, str, str, str]] = {}
        self.completed: set[str] = set()

    # -- helpers -----------------------------------------------------------------------

    def _do(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call a service method; ``None`` when it raised an MFAError (allowed)."""
        try:
            return self.call(getattr(self.service, method)(*args, **kwargs))
        except MFAError:
            return None

    def _user(self) -> str:
        return self.source.pick(USERS)

    def _credential(self) -> str:
        ids = list(self.credentials)  # insertion order: the same choices give the same run
        return self.source.pick([*ids, "nope"]) if ids else "nope"

    def _code_for(self, credential_id: str) -> str:
        """An honest code (near now, or near the HOTP counter), a replay, or junk."""
        entry = self.credentials.get(credential_id)
        choice = self.source.int(0, 3)
        if entry is None or choice == 3:
            return self.source.text(10)
        _, kind, secret = entry
        if kind == "totp":
            now = self.clock.now() + 30 * self.source.int(-2, 2)
            code = pyotp.TOTP(secret).at(max(now, 0))
        else:
            counter = self.last_accepted.get(credential_id, -1) + 1 + self.source.int(-1, 3)
            code = pyotp.HOTP(secret).at(max(counter, 0))
        return f" {code[:3]}-{code[3:]} " if choice == 2 else code

    def _check_accepted(self, user: str, code: object, result: Any) -> None:
        if result is None or not result.accepted:
            return
        credential_id, matched = result.credential_id, result.matched
        entry = self.credentials.get(credential_id)
        if entry is None or entry[0] != user or type(matched) is not int:
            raise Finding("accepted a code of no credential of this user")
        _, kind, secret = entry
        if kind == "totp":
            expected = pyotp.TOTP(secret).at(matched * 30)
            if abs(matched - int(self.clock.now() // 30)) > _TOTP_REACH:
                raise Finding("accepted a TOTP step outside the window")
        else:
            expected = pyotp.HOTP(secret).at(matched)
            if matched - self.last_accepted.get(credential_id, -1) > _HOTP_REACH + 1:
                raise Finding("accepted an HOTP counter beyond the look-ahead")
        if _digits(code) != expected:
            raise Finding("accepted a code pyotp does not compute for the matched value")
        if matched <= self.last_accepted.get(credential_id, -1):
            raise Finding("accepted a replayed step or counter")
        self.last_accepted[credential_id] = matched

    # -- the calls ---------------------------------------------------------------------

    def enrol(self) -> None:
        user = self._user()
        kind = self.source.pick(["totp", "hotp", "fax"])
        enrolment = self._do("begin_enrolment", user, kind=kind)
        if enrolment is not None:
            self.credentials[enrolment.credential_id] = (user, kind, enrolment.secret)

    def renew(self) -> None:
        user, credential_id = self._user(), self._credential()
        enrolment = self._do("begin_renewal", user, credential_id)
        if enrolment is not None:
            kind = self.credentials[credential_id][1]
            self.credentials[enrolment.credential_id] = (user, kind, enrolment.secret)

    def confirm(self) -> None:
        user, credential_id = self._user(), self._credential()
        code = self._code_for(credential_id)
        self._check_accepted(user, code, self._do("confirm_enrolment", user, credential_id, code))

    def verify(self) -> None:
        user, credential_id = self._user(), self._credential()
        code = self._code_for(credential_id)
        self._check_accepted(user, code, self._do("verify", user, code))

    def resync(self) -> None:
        user, credential_id = self._user(), self._credential()
        entry = self.credentials.get(credential_id)
        if entry is not None and entry[1] == "hotp" and self.source.int(0, 1):
            start = self.last_accepted.get(credential_id, -1) + 1 + self.source.int(0, 20)
            first = pyotp.HOTP(entry[2]).at(start)
            second = pyotp.HOTP(entry[2]).at(start + self.source.int(0, 2))
        else:
            first, second = self.source.text(8), self.source.text(8)
        result = self._do("resync_hotp", user, credential_id, first, second)
        self._check_accepted(user, second, result)

    def recovery_codes(self) -> None:
        user = self._user()
        generated = self._do("generate_recovery_codes", user)
        if generated is not None:
            self.recovery[user] = tuple(generated.codes)

    def use_recovery_code(self) -> None:
        user = self._user()
        codes = self.recovery.get(user, ())
        code = self.source.pick(codes) if codes and self.source.int(0, 2) else self.source.text(20)
        result = self._do("verify_recovery_code", user, code)
        if result is None or not result.accepted:
            return
        if code not in self.recovery.get(user, ()):
            raise Finding("accepted a recovery code that is not in the user's set")
        if (user, code) in self.used_recovery:
            raise Finding("accepted a recovery code twice")
        self.used_recovery.add((user, code))

    def _destination(self, channel: str) -> str:
        options = DESTINATIONS.get(channel, DESTINATIONS["sms"])
        return self.source.pick(options) if self.source.int(0, 4) else self.source.text(24)

    def send(self) -> None:
        user = self._user()
        channel = self.source.pick(["sms", "email", "fax"])
        destination = self._destination(channel)
        purpose = self.source.pick(PURPOSES)
        challenge = self._do(
            "send_oob_code", user, channel=channel, destination=destination, purpose=purpose
        )
        if challenge is not None:
            normal = normal_destination(channel, destination)
            self.challenges[challenge] = (user, channel, purpose, normal)

    def _challenge(self) -> str:
        ids = list(self.challenges)
        return self.source.pick([*ids, "no-such"]) if ids else "no-such"

    def resend(self) -> None:
        challenge = self._challenge()
        entry = self.challenges.get(challenge)
        user = entry[0] if entry is not None and self.source.int(0, 3) else self._user()
        channel = entry[1] if entry is not None else "sms"
        if self._do("resend_oob_code", user, challenge, self._destination(channel)) is None:
            return
        if entry is None or user != entry[0]:
            raise Finding("resent a challenge of another user or of none")
        if challenge in self.completed:
            raise Finding("resent a completed challenge")

    def verify_oob(self) -> None:
        challenge = self._challenge()
        entry = self.challenges.get(challenge)
        user = entry[0] if entry is not None and self.source.int(0, 3) else self._user()
        honest = entry is not None and self.source.int(0, 2) > 0
        code = self.sender.last_code(challenge) if honest else self.source.text(8)
        purpose = (
            entry[2] if entry is not None and self.source.int(0, 3) else self.source.pick(PURPOSES)
        )
        destination = None
        if entry is not None and self.source.int(0, 2) == 0:
            destination = self._destination(entry[1])
        result = self._do(
            "verify_oob_code", user, challenge, code, purpose, destination=destination
        )
        if result is None or not result.accepted:
            return
        if entry is None or (user, purpose) != (entry[0], entry[2]):
            raise Finding("accepted an out-of-band code for another user or purpose")
        if code != self.sender.last_code(challenge):
            raise Finding("accepted an out-of-band code that is not the latest one sent")
        if destination is not None and normal_destination(entry[1], destination) != entry[3]:
            raise Finding("confirmed a destination the challenge was not started for")
        if challenge in self.completed:
            raise Finding("accepted an out-of-band challenge twice")
        self.completed.add(challenge)

    def admin(self) -> None:
        user = self._user()
        what = self.source.int(0, 3)
        if what == 0:
            if self._do("admin_reset", user, admin_id=ADMIN) is not None:
                for credential_id in [c for c, e in self.credentials.items() if e[0] == user]:
                    del self.credentials[credential_id]
        elif what == 1:
            self._do("admin_unlock", user, admin_id=ADMIN)
        elif what == 2:
            credential_id = self._credential()
            if self._do("disable", user, credential_id, by_admin=ADMIN) is not None:
                self.credentials.pop(credential_id, None)
        else:
            self._do("list_credentials", user)
            self._do("throttle_status", user)
            self._do("recovery_codes_left", user)

    def tick(self) -> None:
        pick = self.source.int(0, 9)
        if pick < 7:
            self.clock.advance((0, 1, 29, 30, 31, 90, 700)[pick])
        elif pick == 7:
            self.clock.set(max(self.clock.now() - self.source.int(0, 120), 0.0))
        else:
            with contextlib.suppress(MFAError):
                self.clock.advance(self.source.int(0, 10**6))

    OPERATIONS = (
        "enrol",
        "confirm",
        "verify",
        "verify",
        "tick",
        "renew",
        "resync",
        "recovery_codes",
        "use_recovery_code",
        "send",
        "resend",
        "verify_oob",
        "admin",
    )

    def run(self, steps: int = 24, operations: Sequence[str] = OPERATIONS) -> None:
        """Make up to ``steps`` calls chosen by the source; then check the senders'
        destinations (rule 4)."""
        for _ in range(steps):
            if not self.source.more():
                break
            getattr(self, self.source.pick(operations))()
        for sent in self.sender.sent:
            entry = self.challenges.get(sent.challenge_id)
            if entry is None:
                continue  # a send whose delivery the service rolled back
            if normal_destination(entry[1], sent.destination) != entry[3]:
                raise Finding("a code of a challenge went to another destination")
