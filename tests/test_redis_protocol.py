"""The Redis protocol module on its own, without a server (and without redis-py's I/O):
the commands each operation builds, the NOSCRIPT fallback, the validation before building,
and the decoding of replies, malformed ones included (always StoreError)."""

from __future__ import annotations

import hashlib
import math
import os
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mfa_core.errors import InvalidParameter, StoreError, StoreUnavailable
from mfa_core.models import Admission, Credential, CredentialKind, CredentialState, FailureState
from mfa_core.oob import OOBChannel, OOBPurpose, OOBRecord
from mfa_core.stores import _redis_protocol as rp
from mfa_core.throttle import ThrottleConfig

T0 = 1_700_000_000.0
LIMITS = ThrottleConfig(max_failures=10, base_delay=1.0, max_delay=60.0, lockout=900.0)


def _protocol(**options: Any) -> rp.RedisProtocol:
    return rp.RedisProtocol(prefix="p:", **options)


def _credential(**changes: Any) -> Credential:
    base = Credential(
        id="c1",
        user_id="alice",
        kind=CredentialKind.TOTP,
        sealed_key=b"\x00sealed\xff" * 4,
        created_at=T0 + 0.1,
        status=CredentialState.ACTIVE,
    )
    return attrs.evolve(base, **changes)


def _stored_hash(call: rp.Call[Any], seq: int = 1) -> list[bytes]:
    """The hash the add script writes, from the command's ARGV (what the server would do)."""
    keys = int(call.command[2])
    argv = call.command[3 + keys :]
    return [b"seq", b"%d" % seq, *argv[4:]]


def test_scripts_are_named_by_their_sha1() -> None:
    shas = set()
    for name, script in rp.SCRIPTS.items():
        assert script.name == name
        assert script.sha == hashlib.sha1(script.source, usedforsecurity=False).hexdigest().encode()
        shas.add(script.sha)
    assert len(shas) == len(rp.SCRIPTS)
    assert {"admit_attempt", "begin_attempt", "claim_and_reset"} <= set(rp.SCRIPTS)
    assert "record_failure" not in rp.SCRIPTS


def test_admit_attempt_command() -> None:
    call = _protocol(failure_ttl=60).admit_attempt("alice", T0 + 0.1, LIMITS)
    script = rp.SCRIPTS["admit_attempt"]
    assert call.script is script
    assert call.command == (
        b"EVALSHA",
        script.sha,
        b"1",
        b"p:fail:alice",
        repr(T0 + 0.1).encode(),
        b"10",
        b"1.0",
        b"60.0",
        b"900.0",
        b"60000",
    )
    assert call.fallback() == (b"EVAL", script.source, *call.command[2:])
    forever = _protocol(failure_ttl=None).admit_attempt(
        "alice", T0, attrs.evolve(LIMITS, lockout=None)
    )
    assert forever.command[-2:] == (b"", b"")  # no lock end, no TTL


def test_begin_attempt_and_claim_and_reset_declare_their_keys() -> None:
    protocol = _protocol()
    begin = protocol.begin_attempt("bob", T0, LIMITS)
    assert begin.command[:5] == (
        b"EVALSHA",
        rp.SCRIPTS["begin_attempt"].sha,
        b"2",
        b"p:fail:bob",
        b"p:creds-of:bob",
    )
    assert begin.command[5:] == (
        repr(T0).encode(),
        b"10",
        b"1.0",
        b"60.0",
        b"900.0",
        b"%d" % math.ceil(rp.DEFAULT_FAILURE_TTL * 1000),
        b"p:cred:",
    )
    claim = protocol.claim_and_reset("c1", 2**63 - 1, drift=-2, user_id="bob")
    assert claim.command == (
        b"EVALSHA",
        rp.SCRIPTS["claim_and_reset"].sha,
        b"2",
        b"p:cred:c1",
        b"p:fail:bob",
        b"9223372036854775807",
        b"-2",
    )


def test_plain_commands_have_no_fallback() -> None:
    protocol = _protocol()
    for call, command in (
        (protocol.get("c1"), (b"HGETALL", b"p:cred:c1")),
        (protocol.get_failures("u"), (b"HMGET", b"p:fail:u", b"count", b"last_failure_at")),
        (protocol.reset("u"), (b"DEL", b"p:fail:u")),
        (protocol.get_challenge("ch"), (b"HGETALL", b"p:oob:ch")),
        (protocol.delete_challenge("ch"), (b"DEL", b"p:oob:ch")),
    ):
        assert call.command == command
        assert call.script is None and call.fallback() is None


def test_arguments_are_checked_before_anything_is_built() -> None:
    protocol = _protocol()
    for build in (
        lambda: protocol.admit_attempt("alice", float("nan"), LIMITS),
        lambda: protocol.admit_attempt("alice", -1, LIMITS),
        lambda: protocol.admit_attempt("alice", T0, {"max_failures": 3}),
        lambda: protocol.admit_attempt("", T0, LIMITS),
        lambda: protocol.begin_attempt("a" * 1025, T0, LIMITS),
        lambda: protocol.claim_and_reset("c", -1, drift=0, user_id="u"),
        lambda: protocol.claim_and_reset("c", 1, drift=0, user_id="\ud800"),
        lambda: protocol.add("credential"),
        lambda: protocol.count_send("k", T0, T0),
    ):
        with pytest.raises(InvalidParameter):
            build()  # type: ignore[no-untyped-call]
    for options in ({"prefix": 5}, {"failure_ttl": 0}, {"pending_grace": math.inf}):
        with pytest.raises(InvalidParameter):
            rp.RedisProtocol(**options)  # type: ignore[arg-type]


def test_calls_never_show_their_arguments() -> None:
    credential = _credential(sealed_key=b"TOPSECRETKEY")
    call = _protocol().add(credential)
    assert b"TOPSECRETKEY" in call.command
    assert "TOPSECRET" not in repr(call) and repr(call) == "Call(operation='add')"
    assert repr(_protocol()) == "RedisProtocol(prefix='p:')"


@given(st.floats(0, 1e12, allow_nan=False, allow_infinity=False))
def test_times_travel_as_text_that_round_trips_exactly(now: float) -> None:
    call = _protocol().admit_attempt("alice", now, LIMITS)
    assert float(call.command[4]) == now
    # the script answers with the text it stored; decoding gives the same double back
    admission = rp.decode_admit_attempt([1, 1, call.command[4]])
    assert admission.state.last_failure_at == now


def test_admission_replies() -> None:
    assert rp.decode_admit_attempt([1, 3, b"1700000000.25"]) == Admission(
        admitted=True, state=FailureState(3, 1_700_000_000.25)
    )
    assert rp.decode_admit_attempt([0, 10, b"5.0"]) == Admission(
        admitted=False, state=FailureState(10, 5.0)
    )
    for reply in (
        None,
        b"1",
        [1, 3],
        [1, 3, b"1.0", b"x"],
        [2, 3, b"1.0"],
        [True, 3, b"1.0"],
        [1, b"3", b"1.0"],
        [1, 3, b"soon"],
        [1, 3, b"nan"],
        [1, 3, None],  # failures without a time
        [0, 0, None],  # no failures is always admitted
        [1, 0, b"1.0"],  # an admission counts the attempt
        [1, -1, b"1.0"],
        [1, 3, 17],
    ):
        with pytest.raises(StoreError):
            rp.decode_admit_attempt(reply)


def test_begin_attempt_replies() -> None:
    credential = _credential()
    stored = _stored_hash(_protocol().add(credential))
    older = _credential(id="c0", created_at=T0)
    admitted, listed = rp.decode_begin_attempt(
        [1, 1, b"5.0", [stored, _stored_hash(_protocol().add(older), seq=2)]]
    )
    assert admitted == Admission(admitted=True, state=FailureState(1, 5.0))
    assert listed == [older, credential]  # oldest first
    assert rp.decode_begin_attempt([0, 4, b"5.0", []]) == (
        Admission(admitted=False, state=FailureState(4, 5.0)),
        [],
    )
    for reply in (
        [1, 1, b"5.0"],
        [1, 1, b"5.0", b"not a list"],
        [0, 4, b"5.0", [stored]],  # credentials for a refused attempt
        [1, 1, b"5.0", [stored[:-2]]],  # a hash missing a field
        [1, 1, b"5.0", [[b"id"]]],  # an odd hash
        {"admitted": 1},
    ):
        with pytest.raises(StoreError):
            rp.decode_begin_attempt(reply)


def test_credential_hashes_decode_from_resp2_and_resp3() -> None:
    credential = _credential(
        status=CredentialState.PENDING, pending_until=T0 + 600.5, replaces="c0", label="t\u00e9l"
    )
    flat = _stored_hash(_protocol().add(credential))
    assert rp.decode_get(flat) == credential
    as_map = dict(zip(flat[::2], flat[1::2], strict=True))
    assert rp.decode_get(as_map) == credential
    assert rp.decode_get([]) is None
    for damaged in (
        [*flat[:-1], b"x"],  # version "x"
        [*flat, b"kind", b"push"],  # a kind that does not exist (the later field wins)
        flat[:2],
        [*flat, b"kind"],
        [*flat, b"digits", 1],
    ):
        with pytest.raises(StoreError):
            rp.decode_get(damaged)
    with pytest.raises(StoreError):
        rp.decode_list_for_user(b"nope")


def test_other_replies() -> None:
    assert rp.decode_claim(1) is True and rp.decode_claim(0) is False
    assert rp.decode_claim_and_reset(1) is True and rp.decode_claim_and_reset(0) is False
    for decode in (rp.decode_claim, rp.decode_claim_and_reset, rp.decode_update):
        for reply in (2, -1, b"1", None, True):
            with pytest.raises(StoreError):
                decode(reply)
    rp.decode_add(1)
    with pytest.raises(StoreError, match="already exists"):
        rp.decode_add(0)
    assert rp.decode_get_failures([None, None]) == FailureState()
    assert rp.decode_get_failures([b"2", b"1.5"]) == FailureState(2, 1.5)
    for reply in ([b"x", b"1.5"], [b"2"], None, [2, b"1.5"], [b"2", b"later"]):
        with pytest.raises(StoreError):
            rp.decode_get_failures(reply)
    assert rp.decode_count_send(3) == 3
    for reply in (0, b"3", None):
        with pytest.raises(StoreError):
            rp.decode_count_send(reply)
    assert rp.decode_consume_recovery_code(None) is None
    assert rp.decode_consume_recovery_code(4) == 4
    with pytest.raises(StoreError):
        rp.decode_consume_recovery_code(-1)
    with pytest.raises(StoreError):
        rp.decode_recovery_codes([[b"rc", b"no position"], []])
    with pytest.raises(StoreError):
        rp.decode_reset(b"OK")


def test_challenge_round_trip_and_damage() -> None:
    record = OOBRecord(
        challenge_id="ch1",
        user_id="alice",
        purpose=OOBPurpose.LOGIN,
        channel=OOBChannel.EMAIL,
        destination_hint="a***@x",
        code_hash=os.urandom(32),
        digits=6,
        issued_at=T0,
        expires_at=T0 + 180.5,
    )
    call = _protocol().put_challenge(record)
    fields = list(call.command[6:])  # EVALSHA sha 1 key expire_at grace, then the fields
    assert call.decode(1) is None
    get = _protocol().get_challenge("ch1")
    assert get.decode(fields) == record
    assert get.decode([]) is None
    with pytest.raises(StoreError):
        get.decode([*fields, b"used", b"2"])


# -- the cluster layout and the plans --------------------------------------------------------

_IDS = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40)


def _keys_of(call: rp.Call[Any]) -> list[bytes]:
    if call.script is None:
        return [call.command[1]]
    return list(call.command[3 : 3 + int(call.command[2])])


def _run_plan(operation: Any, replies: list[Any]) -> tuple[list[rp.Call[Any]], Any]:
    """Drive a plan with the given decoded results; the calls it sent and its result."""
    if isinstance(operation, rp.Call):
        return [operation], None
    sent: list[rp.Call[Any]] = []
    try:
        call = next(operation)
        for reply in replies:
            sent.append(call)
            call = operation.send(reply)
    except StopIteration as done:
        return sent, done.value
    raise AssertionError("the plan wanted more calls")


@given(user=_IDS, credential_id=_IDS)
def test_every_cluster_call_of_a_user_touches_one_slot(user: str, credential_id: str) -> None:
    from redis.crc import key_slot

    protocol = _protocol(cluster=True)
    credential = _credential(id=credential_id, user_id=user)
    calls: list[rp.Call[Any]] = [
        protocol.begin_attempt(user, T0, LIMITS),
        protocol.admit_attempt(user, T0, LIMITS),
        protocol.get_failures(user),
        protocol.reset(user),
        protocol.list_for_user(user),
        protocol.recovery_codes(user),
        protocol.consume_recovery_code(user, "r1", T0),
    ]
    sent, _ = _run_plan(protocol.claim_and_reset(credential_id, 5, drift=0, user_id=user), [1])
    calls += sent
    sent, _ = _run_plan(protocol.add(credential), [None, None])
    calls += sent[1:]  # the first takes the owner pointer (its own key)
    sent, _ = _run_plan(protocol.update(credential, expected_version=0), [1])
    calls += sent
    slots = {key_slot(key) for call in calls for key in _keys_of(call)}
    assert len(slots) == 1
    layout = protocol.cluster_keys
    assert layout is not None
    assert all(key.startswith(layout.user(user.encode())) for c in calls for key in _keys_of(c))


@given(first=_IDS, second=_IDS)
def test_distinct_users_never_share_a_key_head(first: str, second: str) -> None:
    layout = rp.ClusterKeyLayout(b"p:")
    if first != second:
        assert layout.user(first.encode()) != layout.user(second.encode())
    # the hash tag is never empty and never cut short: it is the escaped id
    head = layout.user(first.encode())
    assert head.index(b"}") == len(head) - 2


def test_cluster_plans_follow_the_owner_pointer() -> None:
    protocol = _protocol(cluster=True)
    sent, result = _run_plan(protocol.get("c1"), [None])
    assert result is None and [c.command[0] for c in sent] == [b"GET"]
    stored = _credential()
    sent, result = _run_plan(protocol.get("c1"), [b"alice", stored])
    assert result == stored and sent[1].command == (b"HGETALL", b"p:{alice}:cred:c1")
    sent, result = _run_plan(protocol.claim("c1", 5, drift=0), [b"alice", True])
    assert result is True and sent[1].command[3] == b"p:{alice}:cred:c1"
    sent, result = _run_plan(protocol.delete("c1"), [b"alice", True, True])
    assert result is True and sent[2].command == (b"DEL", b"p:owner:c1")
    with pytest.raises(StoreError, match="already exists"):
        _run_plan(protocol.add(_credential()), [b"bob"])
    with pytest.raises(InvalidParameter, match="another user"):
        _run_plan(protocol.update(_credential(), expected_version=0), [-1, b"bob"])
    # claim_and_reset for another user's credential: claim in the owner's slot, then reset
    sent, result = _run_plan(
        protocol.claim_and_reset("c1", 5, drift=0, user_id="bob"), [-1, b"alice", True, None]
    )
    assert result is True
    assert sent[2].command[3] == b"p:{alice}:cred:c1"
    assert sent[3].command == (b"DEL", b"p:{bob}:fail")
    with pytest.raises(InvalidParameter):
        rp.RedisProtocol(prefix="{p}:", cluster=True)
    assert rp.RedisProtocol(prefix="{p}:").keys.prefix == b"{p}:"  # one server: no rule


def test_acknowledged_writes_carry_their_wait_and_others_do_not() -> None:
    protocol = _protocol(min_replicas_ack=2, replica_ack_timeout=0.25)
    acknowledged = [
        protocol.claim("c1", 5, drift=0),
        protocol.claim_and_reset("c1", 5, drift=0, user_id="alice"),
        protocol.admit_attempt("alice", T0, LIMITS),
        protocol.begin_attempt("alice", T0, LIMITS),
        protocol.consume_recovery_code("alice", "r1", T0),
    ]
    for call in acknowledged:
        assert isinstance(call, rp.Call)
        assert call.wait == (b"WAIT", b"2", b"250")
        assert call.wait_seconds == 0.25
        assert call.operation in rp.ACKNOWLEDGED
        call.check_acknowledged(2)
        call.check_acknowledged(3)
        for short in (0, 1, None, b"2"):
            with pytest.raises(StoreUnavailable, match="acknowledged"):
                call.check_acknowledged(short)
    for call in (protocol.get_failures("alice"), protocol.reset("alice"), protocol.get("c1")):
        assert isinstance(call, rp.Call) and call.wait is None
        call.check_acknowledged(None)
    assert _protocol().claim("c1", 5, drift=0).wait is None  # type: ignore[union-attr]
    for bad in (
        {"min_replicas_ack": -1},
        {"min_replicas_ack": True},
        {"min_replicas_ack": 101},
        {"min_replicas_ack": 1, "replica_ack_timeout": 0},
        {"min_replicas_ack": 1, "replica_ack_timeout": math.inf},
    ):
        with pytest.raises(InvalidParameter):
            _protocol(**bad)
