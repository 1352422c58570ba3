"""Fuzz the pure out-of-band module: :func:`issue`, :func:`resend`, :func:`check` and the
destination helpers of :mod:`mfa_core.oob`.

Oracle: only ``MFAError``; an accepted destination is UTF-8 text, an email address with one
``@`` and no whitespace or a phone number of 6 to 15 ASCII digits (an independent regex);
its send key is stable under :func:`normalize_destination`; a check succeeds only for the
issued code (normalised independently), the issued challenge and purpose, before expiry.
"""

from __future__ import annotations

import re

import atheris

with atheris.instrument_imports():
    from mfa_core import oob
    from mfa_core.errors import MFAError

from _harness import main, number, text

KEY = b"k" * 32
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
_PHONE = re.compile(r"\+?[0-9]{6,15}", re.ASCII)
_SPACE = " \t\n\r\x0b\x0c"


def _destination_ok(channel: str, destination: str) -> bool:
    try:
        destination.encode("utf-8")
    except UnicodeEncodeError:
        return False
    text_ = destination.strip(_SPACE)
    if channel == "email":
        return _EMAIL.fullmatch(text_) is not None
    return _PHONE.fullmatch(re.sub(r"[ \-.()]", "", text_)) is not None


def one_input(fdp: atheris.FuzzedDataProvider) -> None:
    channel = fdp.PickValueInList(["email", "sms", "fax", text(fdp, 5)])
    destination = fdp.PickValueInList(
        ["alice@example.com", "+1 (555) 010-0167", text(fdp, 40), "a\ud800@b.c", "\u3000a@b.c"]
    )
    purpose = fdp.PickValueInList(["login", "step_up", "reset", "phone_confirmation", "x"])
    user_id = "u" if fdp.ConsumeBool() else text(fdp, 20)
    now = number(fdp) if fdp.ConsumeBool() else 1_000_000.0
    challenge = fdp.PickValueInList([None, "c-1", text(fdp, 10)])
    try:
        issued = oob.issue(
            user_id=user_id,
            purpose=purpose,
            channel=channel,
            destination=destination,
            now=now,
            key=KEY,
            challenge_id=challenge,  # type: ignore[arg-type]
        )
        send_key = oob.destination_send_key(KEY, channel, destination)
    except MFAError:
        return
    if not _destination_ok(str(channel), destination):
        raise AssertionError(f"accepted destination {destination!r} for {channel!r}")
    normal = oob.normalize_destination(channel, destination)
    if oob.destination_send_key(KEY, channel, normal) != send_key:
        raise AssertionError("the send key changed under normalize_destination")
    record = issued.record
    if fdp.ConsumeBool():
        try:
            resent = oob.resend(record, now=number(fdp), key=KEY)
        except MFAError:
            pass
        else:
            record, issued = resent.record, resent
    honest = fdp.ConsumeBool()
    attempt: object = issued.code if honest else text(fdp, 12)
    if honest and fdp.ConsumeBool():
        attempt = f" {issued.code[:3]}-{issued.code[3:]} "
    wanted = purpose if fdp.ConsumeIntInRange(0, 3) else "reset"
    asked = record.challenge_id if fdp.ConsumeIntInRange(0, 3) else text(fdp, 10)
    at = record.issued_at + fdp.ConsumeIntInRange(0, 700) if fdp.ConsumeBool() else number(fdp)
    try:
        result = oob.check(
            record,
            attempt,
            purpose=wanted,
            challenge_id=asked,
            now=at,
            key=KEY,  # type: ignore[arg-type]
        )
    except MFAError:
        return
    if result.ok:
        digits = re.sub(r"[ \-]", "", attempt.strip(_SPACE)) if isinstance(attempt, str) else ""
        if digits != issued.code or asked != record.challenge_id or wanted != purpose:
            raise AssertionError("a check accepted a wrong code, challenge or purpose")
        if not at < record.expires_at:  # type: ignore[operator]
            raise AssertionError("a check accepted an expired code")


if __name__ == "__main__":
    main(one_input)
