"""mfa_core quickstart: enrol an authenticator app and check a code.

Run it with ``python examples/quickstart.py`` (after ``pip install -e ".[qr]"``). It needs
no input: it plays both sides, the server and the phone, prints what happens, and exits 0
when every step behaves as described below (1 otherwise).

Sections:
1. make a key (the server stores it, sealed, with the user's account)
2. show the provisioning URI and its QR code (the user scans it)
3. compute the current code (what the app now displays)
4. verify the code (the server-side check at login)

Then the same, done the way a real server does it, with ``MFAService`` on a SQLite file
(a temporary one, deleted at the end) and a simulated clock, so that months can pass in a
moment:

5. enrol: a PENDING credential, its key sealed (AES-256-GCM) in the database
6. confirm with the first code: the credential becomes ACTIVE
7. verify at login; the same code a second time is refused (replay)
8. wrong codes: a growing delay, then a lock that refuses even the right code
9. 180 days later: the code still works, but renewal is due; renew the key
10. recovery codes for a lost phone: generate a set (shown once), use one, reuse refused
11. policy: the organisation mandates 2FA; the service explains what a sign-in needs
12. a phone whose clock is wrong: the code is refused, and the diagnosis says by how much
13. an SMS factor: the number is stored sealed, confirmed with a code, then gets login codes
"""

from __future__ import annotations

import secrets
import sys
import tempfile
import time
from pathlib import Path

from mfa_core import (
    MFAError,
    b32encode_key,
    build_uri,
    generate_key,
    parse_uri,
    totp,
    verify_totp,
)
from mfa_core.errors import MissingDependency
from mfa_core.otp import time_step
from mfa_core.policy import Action, FirstFactor, Policy, RequestContext, explain
from mfa_core.qr import qr_terminal
from mfa_core.sealing import AESGCMSealer
from mfa_core.service import MFAService, ServiceConfig, VerificationResult
from mfa_core.stores import SQLiteStore
from mfa_core.testing import FakeClock, FakeCodeSender, RecordingEventSink
from mfa_core.throttle import ThrottleConfig

ACCOUNT = "alice@example.com"
ISSUER = "Example Service"


def main() -> int:
    """Run the four steps; return the process exit status."""
    # 1. Make a key: 160 random bits from the OS CSPRNG (RFC 4226 recommends 160).
    key = generate_key()
    print("1. New key made (shown once, for typing into an app by hand):")
    print(f"   {b32encode_key(key)}\n")

    # 2. The provisioning URI and its QR code. Apps read issuer, account, algorithm,
    #    digits and period from it; the QR code is the same URI as an image.
    uri = build_uri(key, account=ACCOUNT, issuer=ISSUER)
    print("2. Provisioning URI (scan the QR code below with any authenticator app):")
    print(f"   {uri}\n")
    try:
        print(qr_terminal(uri))  # segno (the "qr" extra) is imported only here
    except MissingDependency as exc:
        print(f"   (no QR code: {exc.message})\n")

    # The app's side: it parses the URI it scanned.
    scanned = parse_uri(uri)

    # 3. The current code. Only the host reads the clock; the library takes time as an
    #    argument, so the same call works in tests with any fixed time.
    now = time.time()
    code = totp(scanned.key, now, digits=scanned.digits, period=scanned.period)
    seconds_left = scanned.period - int(now) % scanned.period
    print(f"3. Current code: {code[:3]} {code[3:]}  (valid for about {seconds_left} s more)\n")

    # 4. Verify, as the server does at login: one step either side for clock drift. The
    #    matched step is what a service stores to refuse the same code a second time.
    typed = f"{code[:3]} {code[3:]}"  # people type the space the app shows
    try:
        matched = verify_totp(key, typed, now, look_behind=1, look_ahead=1)
    except MFAError as exc:
        print(f"4. Verification failed with an error: {exc.code.value}", file=sys.stderr)
        return 1
    if matched is None:
        print("4. The code was rejected.", file=sys.stderr)
        return 1
    drift = matched - time_step(now)
    print(f"4. Code accepted: time step {matched} ({drift:+d} steps from the server's clock).")

    # A code that belongs to no step in the window is refused.
    window = {totp(key, now + shift * scanned.period) for shift in (-1, 0, 1)}
    wrong = next(c for c in ("000000", "111111", "222222", "333333") if c not in window)
    if verify_totp(key, wrong, now) is not None:
        print("   A wrong code was accepted!", file=sys.stderr)
        return 1
    print("   A wrong code is refused.\n")

    print("Now the way a server does it: MFAService on a SQLite file, simulated time.\n")
    with tempfile.TemporaryDirectory() as directory:
        return ServiceFlow(Path(directory) / "mfa.sqlite3", now).run()


def _show(label: str, result: VerificationResult) -> None:
    verdict = "accepted" if result.accepted else "refused"
    extra = f", retry after {result.retry_after:.0f} s" if result.retry_after else ""
    due = ", renewal due" if result.renewal_due else ""
    print(
        f"{label}: {verdict} ({result.reason.value}{extra}{due}); user sees: "
        f"{result.user_message!r}"
    )


class ServiceFlow:
    """Sections 5 to 10: the full flow through MFAService on a SQLite file."""

    def __init__(self, path: Path, start: float) -> None:
        self.clock = FakeClock(start)  # simulated time: a real server passes no clock
        self.events = RecordingEventSink()  # a real server passes its audit log
        self.sender = FakeCodeSender()  # records the texts it would send
        self.store = SQLiteStore(path)  # credentials and failure counts in one file (WAL)
        self.service = MFAService(
            self.store,
            self.store,
            AESGCMSealer.generate(),  # in production: keys from your secret manager
            clock=self.clock,
            events=self.events,
            config=ServiceConfig(
                issuer=ISSUER,
                throttle=ThrottleConfig(max_failures=5, base_delay=1.0, max_delay=30.0),
            ),
            recovery_codes=self.store,  # recovery codes live in the same file
            oob=self.store,  # email/SMS challenges too
            sender=self.sender,  # in production: your SMS/email gateway
            secret=secrets.token_bytes(32),  # in production: a stable secret you keep
        )
        self.problems: list[str] = []
        self.key = b""
        self.new_key = b""
        self.credential_id = ""

    def expect(self, ok: bool, what: str) -> None:
        """Note an outcome that is not what the library promises."""
        if not ok:
            self.problems.append(what)

    def code(self, key: bytes | None = None) -> str:
        """What the authenticator app shows right now."""
        return totp(self.key if key is None else key, self.clock.now())

    def enrol(self) -> None:
        """5 and 6: start an enrolment, then confirm it with the app's first code."""
        enrolment = self.service.begin_enrolment("alice", account=ACCOUNT, label="phone")
        self.credential_id = enrolment.credential_id
        self.key = parse_uri(enrolment.uri).key  # the app's copy, from the scanned QR code
        stored = self.store.get(self.credential_id)
        print(f"5. Enrolment started: credential {self.credential_id[:8]}..., PENDING")
        print("   (confirm within 30 minutes; the key is stored only sealed)")
        self.expect(stored is not None and self.key not in stored.sealed_key, "sealed")
        self.clock.advance(20)
        result = self.service.confirm_enrolment("alice", self.credential_id, self.code())
        _show("6. Confirmation code", result)
        self.expect(result.accepted, "confirmation accepted")

    def login(self) -> None:
        """7: a login, and the same code submitted twice (a watcher, a double submit)."""
        self.clock.advance(30)
        code = self.code()
        result = self.service.verify("alice", code)
        _show("7. Login code", result)
        self.expect(result.accepted, "login accepted")
        result = self.service.verify("alice", code)
        _show("   Same code again", result)
        self.expect(result.reason.value == "replayed", "replay refused")

    def guess(self) -> None:
        """8: wrong codes; each makes the next attempt wait longer, then the user is locked."""
        self.clock.advance(60)
        window = {totp(self.key, self.clock.now() + s * 30) for s in range(-2, 3)}
        wrong = next(c for c in ("123456", "654321", "111111") if c not in window)
        for attempt in range(1, 10):
            result = self.service.verify("alice", wrong)
            _show(f"{'8.' if attempt == 1 else '  '} Wrong code #{attempt}", result)
            if attempt == 1:
                early = self.service.verify("alice", self.code())
                _show("   The right code, too early", early)
                self.expect(early.reason.value == "throttled", "throttled")
            if self.service.throttle_status("alice").locked:
                break  # the replay above counted too: 5 failures in all
            self.clock.advance(result.retry_after or 0)  # the user waits as told
        result = self.service.verify("alice", self.code())
        _show("   The right code while locked", result)
        self.expect(result.reason.value == "locked", "locked")
        self.service.admin_unlock("alice", admin_id="helpdesk")
        print("   An administrator unlocks the user.")

    def renew(self) -> None:
        """9: half a year later the code still works, but renewal is due: rotate the key."""
        self.clock.advance(180 * 86400)
        result = self.service.verify("alice", self.code())
        _show("9. Login after 180 days", result)
        self.expect(result.accepted and result.renewal_due, "renewal due")
        renewal = self.service.begin_renewal("alice", self.credential_id)
        new_key = self.new_key = parse_uri(renewal.uri).key
        self.clock.advance(30)
        result = self.service.confirm_enrolment("alice", renewal.credential_id, self.code(new_key))
        _show("   New key confirmed", result)
        for info in self.service.list_credentials("alice"):
            print(f"   credential {info.id[:8]}...: {info.state.value}")
        self.clock.advance(30)
        old = self.service.verify("alice", self.code())
        _show("   The old key", old)
        self.expect(result.accepted and not old.accepted, "renewed")

    def recover(self) -> None:
        """10: the phone is lost. Recovery codes, made earlier, get the user in once each."""
        generated = self.service.generate_recovery_codes("alice")
        print("10. Recovery codes (shown once; only Argon2id hashes are stored):")
        for first, second in zip(generated.codes[::2], generated.codes[1::2], strict=True):
            print(f"      {first}    {second}")
        stored = self.store.recovery_codes("alice")
        self.expect(all(generated.codes[0] not in r.phc for r in stored), "codes not stored")
        self.clock.advance(3600)
        typed = generated.codes[4].lower().replace("-", " ")  # typed sloppily: still fine
        result = self.service.verify_recovery_code("alice", typed)
        _show("    Recovery code", result)
        print(f"    {result.codes_left} codes left")
        self.expect(result.accepted and result.codes_left == 9, "recovery code accepted")
        again = self.service.verify_recovery_code("alice", generated.codes[4])
        _show("    The same recovery code again", again)
        self.expect(again.reason.value == "replayed", "recovery code reuse refused")
        self.clock.advance(5)
        self.service.generate_recovery_codes("alice")
        old = self.service.verify_recovery_code("alice", generated.codes[5])
        _show("    A code of the old set, after generating a new one", old)
        self.expect(not old.accepted, "old set dead")

    def decide(self) -> None:
        """11. Policy: the service evaluates an organisation's policy with what it knows of
        the user's factors, and explains the decision."""
        policy = Policy(mandate_all=True)  # every member needs a second factor
        now = self.clock.now()
        login = RequestContext(
            user_id="alice", first_factor=FirstFactor.PASSWORD, authenticated_at=now
        )
        decision = self.service.decide(policy, login)
        print("\n11. Policy: 2FA mandated for everyone. Alice signs in with her password:")
        print("    " + explain(decision).replace("\n", "\n    "))
        self.expect(decision.outcome.value == "challenge", "mandated login challenged")
        newcomer = RequestContext(
            user_id="bob", first_factor=FirstFactor.PASSWORD, authenticated_at=now
        )
        decision = self.service.decide(policy, newcomer)
        print("    Bob, with no second factor yet:")
        print("    " + explain(decision).replace("\n", "\n    "))
        self.expect(decision.outcome.value == "enrol_required", "enrolment required")
        settings = RequestContext(
            user_id="alice",
            first_factor=FirstFactor.PASSWORD,
            authenticated_at=now,
            action=Action.CHANGE_SECURITY_SETTINGS,
        )
        decision = self.service.decide(policy, settings)
        print(f"    Alice opens the security settings: {decision.outcome.value} (step-up)")

    def skew(self) -> None:
        """12. The phone's clock is 7 minutes slow: its code is refused; the host asks for a
        diagnosis, which finds the step the code belongs to (never accepting it)."""
        self.clock.advance(60)
        slow = totp(self.new_key, self.clock.now() - 420)
        result = self.service.verify("alice", slow, diagnose_skew=True)
        _show("\n12. A code from a phone 7 minutes slow", result)
        print(
            f"    Diagnosis (for the host, not the user): {result.skew_steps} steps, "
            f"{result.skew_seconds:+.0f} s: ask the user to set the phone's clock"
        )
        self.expect(not result.accepted and result.skew_seconds == -420.0, "skew diagnosed")

    def sms(self) -> None:
        """13. An SMS factor: the number is a credential, sealed like a key, confirmed with
        a code sent to it; login codes then go to the number the store holds."""
        self.clock.advance(60)
        phone = self.service.begin_enrolment("alice", kind="sms", destination="+1 555 010 0167")
        sent = self.sender.sent[-1]
        print(f"13. SMS factor for {phone.destination}: confirmation code sent ({sent.purpose})")
        result = self.service.confirm_enrolment("alice", phone.credential_id, sent.code)
        _show("    Confirmation code from the SMS", result)
        info = next(i for i in self.service.list_credentials("alice") if i.kind == "sms")
        print(f"    credential {info.id[:8]}...: {info.state.value}, {info.destination}")
        challenge = self.service.send_factor_code("alice", phone.credential_id, purpose="login")
        code = self.sender.sent[-1].code  # the user reads it from the SMS
        login = self.service.verify_oob_code("alice", challenge, code, "login")
        _show("    Login code by SMS", login)
        self.expect(result.accepted and login.accepted, "SMS factor works")

    def run(self) -> int:
        """Run sections 5 to 13; return the exit status."""
        try:
            self.enrol()
            self.login()
            self.guess()
            self.renew()
            self.recover()
            self.decide()
            self.skew()
            self.sms()
        finally:
            self.store.close()
        print("\nAudit events: " + ", ".join(e.type.value for e in self.events.events))
        if self.problems:
            print("Unexpected: " + "; ".join(self.problems), file=sys.stderr)
            return 1
        return 0


if __name__ == "__main__":
    sys.exit(main())
