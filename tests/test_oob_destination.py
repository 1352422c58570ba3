"""Out-of-band challenges are bound to their destination (issue 11).

A challenge stores a keyed hash of its normalised destination; a resend (and a verify given
a destination, as a phone confirmation does) must match it, compared in constant time. The
masked hint (``***67``, ``a***@example.com``) is for display only: an attacker who knows it
can pick another number or address with the same visible characters, and before this
change a resend went there. Every attack here runs through ``MFAService`` on each store
(memory, SQLite, PostgreSQL, Redis).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from mfa_core.errors import ErrorCode, InvalidParameter, OutOfBandError
from mfa_core.models import EventType
from mfa_core.oob import (
    OOBChannel,
    OOBPurpose,
    OOBReason,
    destination_hash,
    destination_matches,
    issue,
    mask_destination,
    normalize_destination,
)
from mfa_core.sealing import AESGCMSealer
from mfa_core.service import MFAService, ServiceConfig, VerifyReason
from mfa_core.stores import MemoryStore, SQLiteStore
from mfa_core.testing import FakeClock, FakeCodeSender, RecordingEventSink
from mfa_core.throttle import ThrottleConfig

pytest_plugins = ("servers",)

T0 = 1_800_000_000.0
SECRET = b"host secret for tests, 32 bytes!"
KEY = b"k" * 32
PHONE = "+1 555 010 0167"
EMAIL = "kevin@example.com"

# Same masked hint as the real destination, different value.
SAME_HINT_NUMBERS = ["+1 555 999 0167", "+44 20 7946 0167", "+15550100067"]
SAME_HINT_ADDRESSES = [
    "k\u0435vin@example.com",  # CYRILLIC SMALL LETTER IE, looks like "e"
    "kev\u0131n@example.com",  # DOTLESS I ('\u0131'.upper() == 'I')
    "k@example.com",  # another local part, same visible characters in the hint
    "kevin+x@example.com",
]
# Variants that normalise equal to the real destination: they must pass.
PHONE_VARIANTS = ["+15550100167", "15550100167", " +1 (555) 010-0167 ", "+1.555.010.0167"]
EMAIL_VARIANTS = ["KEVIN@EXAMPLE.COM", "  Kevin@Example.com\t", "kEvIn@eXaMpLe.CoM"]


def test_the_attack_addresses_really_share_the_hint() -> None:
    for number in SAME_HINT_NUMBERS:
        assert mask_destination("sms", number) == mask_destination("sms", PHONE)
        assert normalize_destination("sms", number) != normalize_destination("sms", PHONE)
    for address in SAME_HINT_ADDRESSES:
        assert mask_destination("email", address) == mask_destination("email", EMAIL)
        assert normalize_destination("email", address) != normalize_destination("email", EMAIL)


def test_kelvin_sign_is_not_case_mapped_to_k() -> None:
    # str.lower() maps U+212A KELVIN SIGN to ASCII 'k': normalising with it would make a
    # different mailbox share the destination's hash.
    lookalike = "alic\u212a@example.com"
    assert lookalike.lower() == "alick@example.com"
    assert normalize_destination("email", lookalike) != "alick@example.com"
    record = issue(
        user_id="u",
        purpose="login",
        channel="email",
        destination="alick@example.com",
        now=T0,
        key=KEY,
    ).record
    assert mask_destination("email", lookalike) == record.destination_hint
    assert not destination_matches(record, lookalike, key=KEY)
    assert destination_matches(record, "ALICK@example.com", key=KEY)


def test_the_hash_binds_key_challenge_channel_and_destination() -> None:
    base = destination_hash(KEY, "ch1", "sms", PHONE)
    assert len(base) == 32
    assert base == destination_hash(KEY, "ch1", OOBChannel.SMS, "15550100167")
    assert base != destination_hash(b"j" * 32, "ch1", "sms", PHONE)
    assert base != destination_hash(KEY, "ch2", "sms", PHONE)
    assert base != destination_hash(KEY, "ch1", "sms", "+1 555 010 0168")
    with pytest.raises(InvalidParameter):
        destination_hash(KEY, "ch1", "sms", "not a number")
    with pytest.raises(InvalidParameter):
        destination_hash(KEY, "ch1", "email", "a\ud800@example.com")


def test_a_record_without_a_hash_matches_nothing() -> None:
    record = issue(
        user_id="u", purpose="login", channel="sms", destination=PHONE, now=T0, key=KEY
    ).record
    assert destination_matches(record, PHONE, key=KEY)
    legacy = attrs.evolve(record, destination_hash=None)
    assert not destination_matches(legacy, PHONE, key=KEY)
    assert "destination_hash" not in repr(record) and PHONE not in repr(record)


# -- through the service, on every store ----------------------------------------------------


@pytest.fixture(params=["memory", "sqlite", "postgresql", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    kind = request.param
    if kind == "memory":
        yield MemoryStore()
        return
    if kind == "sqlite":
        made = SQLiteStore(tmp_path / "oob.sqlite3")
        yield made
        made.close()
        return
    if kind == "postgresql":
        from server_tools import postgres_engine

        from mfa_core.stores.sql import SQLStore

        url = request.getfixturevalue("postgres_url")
        engine = postgres_engine(url, request.getfixturevalue("postgres_schema"))
        yield SQLStore(engine)
        engine.dispose()
        return
    from mfa_core.stores.redis import RedisStore

    redis_store = RedisStore.from_url(
        request.getfixturevalue("redis_url"), prefix=request.getfixturevalue("redis_prefix")
    )
    yield redis_store
    redis_store.close()


@attrs.define
class Env:
    service: MFAService
    store: Any
    clock: FakeClock
    events: RecordingEventSink
    sender: FakeCodeSender

    def send(self, destination: str, channel: str = "sms", purpose: str = "login") -> str:
        return self.service.send_oob_code(
            "alice", channel=channel, destination=destination, purpose=purpose
        )


@pytest.fixture
def env(store: Any) -> Env:
    clock = FakeClock(T0)
    events = RecordingEventSink()
    sender = FakeCodeSender()
    service = MFAService(
        store,
        store,
        AESGCMSealer.generate(),
        clock=clock,
        events=events,
        config=ServiceConfig(throttle=ThrottleConfig(max_failures=50, base_delay=0.0)),
        oob=store,
        sender=sender,
        secret=SECRET,
    )
    return Env(service, store, clock, events, sender)


def _refused_resend(env: Env, challenge: str, destination: str) -> None:
    sent = len(env.sender.sent)
    failures = env.store.get_failures("alice").count
    with pytest.raises(OutOfBandError) as info:
        env.service.resend_oob_code("alice", challenge, destination)
    assert info.value.code is ErrorCode.OOB_DESTINATION_MISMATCH
    assert len(env.sender.sent) == sent, "nothing was sent"
    assert env.store.get_failures("alice").count == failures + 1, "counted as a failure"
    event = env.events.of_type(EventType.OOB_CODE_FAILED)[-1]
    assert event.data["detail"] == OOBReason.WRONG_DESTINATION.value
    assert destination not in repr(event) and destination not in str(info.value)
    assert info.value.__cause__ is None and info.value.__context__ is None


@pytest.mark.parametrize("number", SAME_HINT_NUMBERS)
def test_a_resend_to_a_number_with_the_same_hint_is_refused(env: Env, number: str) -> None:
    challenge = env.send(PHONE)
    env.clock.advance(30)
    _refused_resend(env, challenge, number)
    code = env.sender.last_code(challenge)
    assert env.service.verify_oob_code("alice", challenge, code, "login").accepted
    assert [sent.destination for sent in env.sender.sent] == [PHONE]


@pytest.mark.parametrize("address", SAME_HINT_ADDRESSES)
def test_a_resend_to_a_lookalike_address_is_refused(env: Env, address: str) -> None:
    challenge = env.send(EMAIL, channel="email")
    env.clock.advance(30)
    _refused_resend(env, challenge, address)
    assert [sent.destination for sent in env.sender.sent] == [EMAIL]


def test_variants_that_normalise_equal_may_resend(env: Env) -> None:
    phone = env.send(PHONE)
    email = env.send(EMAIL, channel="email")
    for number, address in zip(PHONE_VARIANTS, EMAIL_VARIANTS, strict=False):
        env.clock.advance(3600)
        assert env.service.resend_oob_code("alice", phone, number) == phone
        assert env.service.resend_oob_code("alice", email, address) == email
    assert env.store.get_failures("alice").count == 0
    destinations = [sent.destination for sent in env.sender.sent]
    assert destinations[2:] == [
        d for pair in zip(PHONE_VARIANTS, EMAIL_VARIANTS, strict=False) for d in pair
    ]


def test_a_challenge_stored_without_a_hash_is_never_resent(env: Env) -> None:
    challenge = env.send(PHONE)
    record = env.store.get_challenge(challenge)
    legacy = attrs.evolve(record, generation=1, resend_count=1, destination_hash=None)
    assert env.store.replace_challenge(legacy, expected_generation=0)
    env.clock.advance(3600)
    _refused_resend(env, challenge, PHONE)


def test_a_phone_confirmation_confirms_only_the_number_that_got_the_code(env: Env) -> None:
    challenge = env.send(PHONE, purpose="phone_confirmation")
    code = env.sender.last_code(challenge)
    purpose = OOBPurpose.PHONE_CONFIRMATION
    for number in [*SAME_HINT_NUMBERS, "not a number", EMAIL]:
        result = env.service.verify_oob_code("alice", challenge, code, purpose, destination=number)
        assert not result.accepted
        assert result.reason is VerifyReason.INVALID_CODE
        assert result.oob_reason is OOBReason.WRONG_DESTINATION
    # The refusals did not touch the code: the right number confirms with it.
    result = env.service.verify_oob_code(
        "alice", challenge, code, purpose, destination=PHONE_VARIANTS[2]
    )
    assert result.accepted
    with pytest.raises(InvalidParameter):
        env.service.verify_oob_code("alice", challenge, code, purpose, destination=b"+1555")  # type: ignore[arg-type]


def test_resends_keep_the_binding(env: Env) -> None:
    challenge = env.send(PHONE)
    first = env.store.get_challenge(challenge).destination_hash
    env.clock.advance(30)
    env.service.resend_oob_code("alice", challenge, PHONE)
    record = env.store.get_challenge(challenge)
    assert record.generation == 1 and record.destination_hash == first
    env.clock.advance(60)
    _refused_resend(env, challenge, SAME_HINT_NUMBERS[0])


@pytest.mark.parametrize(
    "address",
    ["a@evil.example@bank.example", "++++@+++++++++++@+++", "@@x.example", "a@@b.example"],
)
def test_an_address_with_two_at_signs_is_refused(address: str) -> None:
    # Found by the long run of fuzz_oob.py: the local part could hold an "@", so the hint
    # showed one domain while a gateway splitting at the first "@" would use another.
    with pytest.raises(InvalidParameter):
        mask_destination("email", address)
    with pytest.raises(InvalidParameter):
        issue(user_id="u", purpose="login", channel="email", destination=address, now=T0, key=KEY)
