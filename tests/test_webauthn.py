"""Security keys and passkeys (WebAuthn) through MFAService, with a software authenticator.

Every refusal the issue lists gets its own audit reason here, against real attestation and
assertion objects (P-256 and Ed25519 keys, "none" and "packed" self-attestation).
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mfa_core.aio import AsyncMemoryStore, AsyncMFAService
from mfa_core.errors import (
    CredentialNotFound,
    ErrorCode,
    IllegalTransition,
    InvalidParameter,
    WebAuthnError,
)
from mfa_core.models import CredentialState, EventType
from mfa_core.sealing import AESGCMSealer
from mfa_core.service import MFAService, ServiceConfig, VerifyReason, WebAuthnResult
from mfa_core.stores import MemoryStore, SQLiteStore
from mfa_core.testing import FakeClock, FaultyStore, RecordingEventSink
from mfa_core.testing.authenticator import SoftwareAuthenticator
from mfa_core.throttle import ThrottleConfig
from mfa_core.webauthn import (
    WebAuthnConfig,
    WebAuthnReason,
    parse_authentication_response,
    parse_registration_response,
)

T0 = 1_800_000_000.0
ORIGIN = "http://localhost:8000"
R = WebAuthnReason


def _config(**changes: Any) -> WebAuthnConfig:
    base: dict[str, Any] = {"rp_id": "localhost", "rp_name": "Example", "origins": [ORIGIN]}
    base.update(changes)
    return WebAuthnConfig(**base)


@attrs.define
class Env:
    service: MFAService
    store: Any
    clock: FakeClock
    events: RecordingEventSink

    def failures(self, user: str = "alice") -> int:
        return int(self.store.get_failures(user).count)


def _make(store: Any, **config: Any) -> Env:
    clock = FakeClock(T0)
    events = RecordingEventSink()
    sealer = AESGCMSealer({"k1": bytes(32)}, current_key_id="k1")
    service = MFAService(
        store,
        store,
        sealer,
        clock=clock,
        events=events,
        config=ServiceConfig(throttle=ThrottleConfig(max_failures=50, base_delay=0.0)),
        webauthn=store,
        webauthn_config=_config(**config),
    )
    return Env(service, store, clock, events)


@pytest.fixture(params=["memory", "sqlite"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    store = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "w.sqlite3")
    yield _make(store)
    if hasattr(store, "close"):
        store.close()


def register(
    env: Env, key: SoftwareAuthenticator, user: str = "alice", **create: Any
) -> WebAuthnResult:
    options = env.service.begin_webauthn_registration(user, user_name=user)
    response = key.create(options, create.pop("origin", ORIGIN), **create)
    return env.service.finish_webauthn_registration(user, response, nickname="key")


def sign_in(env: Env, key: SoftwareAuthenticator, user: str | None = "alice", **get: Any) -> Any:
    options = env.service.begin_webauthn_authentication(user)
    return key.get(options, get.pop("origin", ORIGIN), **get)


@pytest.mark.parametrize(
    ("algorithm", "attestation"), [(-7, "none"), (-7, "packed"), (-8, "none"), (-8, "packed")]
)
def test_register_and_sign_in(env: Env, algorithm: int, attestation: str) -> None:
    key = SoftwareAuthenticator()
    result = register(env, key, algorithm=algorithm, attestation=attestation)
    assert result.accepted, result
    assert result.webauthn_reason is R.OK
    (stored,) = env.service.list_webauthn_credentials("alice")
    assert stored.credential_id == result.credential_id
    assert stored.attestation_format == attestation
    assert stored.aaguid == "6d66615f-636f-7265-5f73-6f6674776172"
    assert stored.transports == ("usb",)
    assert stored.discoverable is True
    assert stored.status is CredentialState.ACTIVE
    assert env.events.of_type(EventType.WEBAUTHN_REGISTERED)
    response = sign_in(env, key)
    outcome = env.service.finish_webauthn_authentication("alice", response)
    assert outcome.accepted, outcome
    assert outcome.user_id == "alice" and outcome.user_verified
    assert env.service.list_webauthn_credentials("alice")[0].sign_count == 1
    assert env.service.list_webauthn_credentials("alice")[0].last_used_at == T0
    assert env.failures() == 0


def test_response_as_json_text_and_options_are_level3_json(env: Env) -> None:
    key = SoftwareAuthenticator()
    options = env.service.begin_webauthn_registration("alice", user_name="alice")
    assert set(options) >= {"rp", "user", "challenge", "pubKeyCredParams", "timeout"}
    assert options["rp"] == {"name": "Example", "id": "localhost"}
    assert options["user"]["id"] != base64.urlsafe_b64encode(b"alice").decode().rstrip("=")
    json.dumps(options)  # plain JSON all the way down
    text = json.dumps(key.create(options, ORIGIN))
    assert env.service.finish_webauthn_registration("alice", text).accepted
    request = env.service.begin_webauthn_authentication("alice")
    assert [c["id"] for c in request["allowCredentials"]] == [
        env.service.list_webauthn_credentials("alice")[0].credential_id
    ]
    assert request["rpId"] == "localhost"
    answer = json.dumps(key.get(request, ORIGIN)).encode()
    assert env.service.finish_webauthn_authentication("alice", answer).accepted
    again = env.service.begin_webauthn_registration("alice", user_name="alice")
    assert again["user"]["id"] == options["user"]["id"]  # one handle per user
    assert [c["id"] for c in again["excludeCredentials"]] == [
        env.service.list_webauthn_credentials("alice")[0].credential_id
    ]


def _refused(result: WebAuthnResult, reason: WebAuthnReason) -> None:
    assert not result.accepted
    assert result.webauthn_reason is reason, result
    assert result.user_message == "the security key or passkey was not accepted"


@pytest.mark.parametrize(
    ("origin", "reason"),
    [
        ("http://evil.localhost:8000", R.WRONG_ORIGIN),  # a subdomain is not the origin
        ("http://localhost:8001", R.WRONG_ORIGIN),
        ("https://localhost:8000", R.WRONG_ORIGIN),
        ("http://LOCALHOST:8000", R.WRONG_ORIGIN),
    ],
)
def test_wrong_origin_exact_match(env: Env, origin: str, reason: WebAuthnReason) -> None:
    key = SoftwareAuthenticator()
    _refused(register(env, key, origin=origin), reason)
    assert register(env, key).accepted
    _refused(
        env.service.finish_webauthn_authentication("alice", sign_in(env, key, origin=origin)),
        reason,
    )
    failed = env.events.of_type(EventType.VERIFICATION_FAILED)
    assert failed[-1].data["detail"] == reason.value
    assert env.failures() == 2


def test_every_refusal_has_its_reason(env: Env) -> None:
    key = SoftwareAuthenticator()
    svc = env.service
    _refused(register(env, key, rp_id="example.com"), R.WRONG_RP_ID)
    _refused(register(env, key, up=False), R.USER_NOT_PRESENT)
    _refused(register(env, key, client_data={"crossOrigin": True}), R.CROSS_ORIGIN)
    _refused(register(env, key, client_data={"type": "webauthn.get"}), R.WRONG_CEREMONY)
    assert register(env, key).accepted
    reg_failed = env.events.of_type(EventType.WEBAUTHN_REGISTRATION_FAILED)
    assert [e.data["detail"] for e in reg_failed] == [
        "wrong_rp_id", "user_not_present", "cross_origin", "wrong_ceremony",
    ]  # fmt: skip
    _refused(
        svc.finish_webauthn_authentication("alice", sign_in(env, key, rp_id="evil.com")),
        R.WRONG_RP_ID,
    )
    _refused(
        svc.finish_webauthn_authentication("alice", sign_in(env, key, up=False)), R.USER_NOT_PRESENT
    )
    cross = sign_in(env, key, client_data={"crossOrigin": True, "topOrigin": "https://evil.com"})
    _refused(svc.finish_webauthn_authentication("alice", cross), R.CROSS_ORIGIN)
    # a replayed assertion: the same response again
    good = sign_in(env, key)
    assert svc.finish_webauthn_authentication("alice", good).accepted
    _refused(svc.finish_webauthn_authentication("alice", good), R.REPLAYED)
    # a challenge reused by another response (signed afresh over the used challenge)
    used = parse_authentication_response(good).client_data
    reused = key.get(
        {
            "challenge": base64.urlsafe_b64encode(used.challenge).decode().rstrip("="),
            "rpId": "localhost",
        },
        ORIGIN,
    )
    _refused(svc.finish_webauthn_authentication("alice", reused), R.CHALLENGE_REUSED)
    # an expired challenge
    late = sign_in(env, key)
    env.clock.advance(301)
    _refused(svc.finish_webauthn_authentication("alice", late), R.CHALLENGE_EXPIRED)
    # a challenge never issued
    forged = key.get({"challenge": "A" * 43, "rpId": "localhost"}, ORIGIN)
    _refused(svc.finish_webauthn_authentication("alice", forged), R.UNKNOWN_CHALLENGE)
    # a registration challenge used to sign in
    options = svc.begin_webauthn_registration("alice", user_name="alice")
    wrong = key.get({"challenge": options["challenge"], "rpId": "localhost"}, ORIGIN)
    _refused(svc.finish_webauthn_authentication("alice", wrong), R.WRONG_CEREMONY)
    # a cloned authenticator: the counter does not advance
    behind = sign_in(env, key, sign_count=1)
    _refused(svc.finish_webauthn_authentication("alice", behind), R.CLONED_AUTHENTICATOR)
    (cloned,) = env.events.of_type(EventType.POSSIBLE_CLONED_AUTHENTICATOR)
    assert cloned.user_id == "alice"
    # a bad signature
    bad = sign_in(env, key)
    sig = bytearray(base64.urlsafe_b64decode(bad["response"]["signature"] + "=="))
    sig[-1] ^= 1
    bad["response"]["signature"] = base64.urlsafe_b64encode(bytes(sig)).decode().rstrip("=")
    _refused(svc.finish_webauthn_authentication("alice", bad), R.BAD_SIGNATURE)


def test_user_verification_required_by_policy(tmp_path: Path) -> None:
    env = _make(MemoryStore(), user_verification="required")
    key = SoftwareAuthenticator()
    _refused(register(env, key, uv=False), R.USER_NOT_VERIFIED)
    assert register(env, key).accepted
    _refused(
        env.service.finish_webauthn_authentication("alice", sign_in(env, key, uv=False)),
        R.USER_NOT_VERIFIED,
    )
    relaxed = _make(MemoryStore())  # preferred: UV missing is accepted
    assert register(relaxed, key, uv=False).accepted
    result = relaxed.service.finish_webauthn_authentication(
        "alice", sign_in(relaxed, key, uv=False)
    )
    assert result.accepted and not result.user_verified


def test_cross_origin_when_allowed() -> None:
    env = _make(MemoryStore(), allow_cross_origin=True, top_origins=["https://portal.example"])
    key = SoftwareAuthenticator()
    assert register(env, key).accepted
    framed = {"crossOrigin": True, "topOrigin": "https://portal.example"}
    assert env.service.finish_webauthn_authentication(
        "alice", sign_in(env, key, client_data=framed)
    ).accepted
    other = {"crossOrigin": True, "topOrigin": "https://evil.example"}
    _refused(
        env.service.finish_webauthn_authentication("alice", sign_in(env, key, client_data=other)),
        R.CROSS_ORIGIN,
    )


def test_credential_and_challenge_of_another_user(env: Env) -> None:
    alice, bob = SoftwareAuthenticator(), SoftwareAuthenticator()
    assert register(env, alice, "alice").accepted
    assert register(env, bob, "bob").accepted
    # bob's key presented on alice's challenge
    options = env.service.begin_webauthn_authentication("alice")
    response = bob.get(options, ORIGIN, credential_id=next(iter(bob.credentials)))
    _refused(
        env.service.finish_webauthn_authentication("alice", response), R.CREDENTIAL_OF_ANOTHER_USER
    )
    # alice's challenge presented as bob's sign-in
    options = env.service.begin_webauthn_authentication("alice")
    bobs = bob.get(options, ORIGIN, credential_id=next(iter(bob.credentials)))
    _refused(env.service.finish_webauthn_authentication("bob", bobs), R.WRONG_USER)
    # a registration challenge of alice finished as bob
    options = env.service.begin_webauthn_registration("alice", user_name="alice")
    _refused(
        env.service.finish_webauthn_registration("bob", bob.create(options, ORIGIN)), R.WRONG_USER
    )
    # a key registered twice
    options = env.service.begin_webauthn_registration("alice", user_name="alice")
    again = alice.create(options, ORIGIN)
    assert env.service.finish_webauthn_registration("alice", again).accepted
    dup = env.service.begin_webauthn_registration("bob", user_name="bob")
    replay = dict(again)
    cdj = json.loads(base64.urlsafe_b64decode(again["response"]["clientDataJSON"] + "=="))
    assert cdj["challenge"] != dup["challenge"]
    _refused(env.service.finish_webauthn_registration("bob", replay), R.REPLAYED)
    twice = alice.create(dup, ORIGIN, credential_id=next(iter(alice.credentials)))
    _refused(env.service.finish_webauthn_registration("bob", twice), R.CREDENTIAL_EXISTS)
    assert len(env.service.list_webauthn_credentials("bob")) == 1


def test_counter_zero_authenticator_and_passkey_sign_in(env: Env) -> None:
    key = SoftwareAuthenticator(counter="zero", backup=True)
    assert register(env, key).accepted
    (stored,) = env.service.list_webauthn_credentials("alice")
    assert stored.backup_eligible and stored.backed_up and stored.sign_count == 0
    for _ in range(3):  # no counter kept: every fresh assertion is accepted
        result = env.service.finish_webauthn_authentication(None, sign_in(env, key, None))
        assert result.accepted and result.user_id == "alice", result
    options = env.service.begin_webauthn_authentication(None)
    assert options.get("allowCredentials", []) == []
    no_handle = key.get(options, ORIGIN, user_handle=False)
    _refused(env.service.finish_webauthn_authentication(None, no_handle), R.MALFORMED)
    other_handle = sign_in(env, key, None)
    other_handle["response"]["userHandle"] = "b3RoZXItdXNlcg"  # not signed: must be checked
    _refused(
        env.service.finish_webauthn_authentication(None, other_handle),
        R.CREDENTIAL_OF_ANOTHER_USER,
    )
    stranger = SoftwareAuthenticator()
    stranger.create(
        {"rp": {"id": "localhost"}, "user": {"id": "AAAA"}, "challenge": "AAAA"}, ORIGIN
    )
    _refused(
        env.service.finish_webauthn_authentication(None, sign_in(env, stranger, None)),
        R.UNKNOWN_CREDENTIAL,
    )


def test_lifecycle_disable_rename_reset(env: Env) -> None:
    key = SoftwareAuthenticator()
    cid = register(env, key).credential_id
    assert cid is not None
    env.service.rename_webauthn_credential("alice", cid, "blue key")
    assert env.service.list_webauthn_credentials("alice")[0].nickname == "blue key"
    with pytest.raises(CredentialNotFound):
        env.service.rename_webauthn_credential("bob", cid, "mine now")
    env.service.disable_webauthn_credential("alice", cid, actor="admin-1")
    assert env.service.list_webauthn_credentials("alice")[0].status is CredentialState.DISABLED
    with pytest.raises(IllegalTransition):
        env.service.disable_webauthn_credential("alice", cid)
    assert env.service.begin_webauthn_authentication("alice")["allowCredentials"] == []
    options = env.service.begin_webauthn_authentication(None)
    _refused(
        env.service.finish_webauthn_authentication(None, key.get(options, ORIGIN)),
        R.CREDENTIAL_DISABLED,
    )
    assert env.service.admin_reset_webauthn("alice", admin_id="admin-1") == 1
    assert env.service.list_webauthn_credentials("alice") == []
    (reset,) = env.events.of_type(EventType.CREDENTIAL_RESET)
    assert reset.actor == "admin-1"


def test_throttle_is_shared_with_the_other_factors() -> None:
    store = MemoryStore()
    env = _make(store)
    key = SoftwareAuthenticator()
    assert register(env, key).accepted
    three = ServiceConfig(throttle=ThrottleConfig(max_failures=3, base_delay=0.0))
    locked = attrs.evolve(env, service=MFAService(
        store, store, AESGCMSealer({"k1": bytes(32)}, current_key_id="k1"), clock=env.clock,
        events=env.events, config=three, webauthn=store, webauthn_config=_config(),
    ))  # fmt: skip
    for _ in range(3):
        assert not locked.service.verify("alice", "000000").accepted  # TOTP guesses count
    result = locked.service.finish_webauthn_authentication("alice", sign_in(locked, key))
    assert result.reason is VerifyReason.LOCKED and result.webauthn_reason is R.LOCKED
    locked.service.admin_unlock("alice", admin_id="admin")
    assert locked.service.finish_webauthn_authentication("alice", sign_in(locked, key)).accepted


def test_store_failure_fails_closed() -> None:
    store = MemoryStore()
    env = _make(store)
    key = SoftwareAuthenticator()
    assert register(env, key).accepted
    response = sign_in(env, key)
    for method in ("consume_webauthn_challenge", "get_webauthn_credential", "advance_sign_count"):
        for after_write in (False, True):
            faulty = FaultyStore(store, fail_on={method: 1}, after_write=after_write)
            svc = MFAService(
                faulty, faulty, AESGCMSealer({"k1": bytes(32)}, current_key_id="k1"),
                clock=env.clock, webauthn=faulty, webauthn_config=_config(),
                config=ServiceConfig(throttle=ThrottleConfig(max_failures=50, base_delay=0.0)),
            )  # fmt: skip
            result = svc.finish_webauthn_authentication("alice", sign_in(env, key))
            assert not result.accepted and result.webauthn_reason is R.STORE_ERROR
            assert result.user_message != "the security key or passkey was not accepted"
    # an older assertion (its counter behind the one a lost reply stored) is refused
    late = env.service.finish_webauthn_authentication("alice", response)
    assert late.webauthn_reason is R.CLONED_AUTHENTICATOR
    assert env.service.finish_webauthn_authentication("alice", sign_in(env, key)).accepted


def test_not_configured_and_bad_arguments() -> None:
    store = MemoryStore()
    sealer = AESGCMSealer({"k1": bytes(32)}, current_key_id="k1")
    plain = MFAService(store, store, sealer)
    with pytest.raises(WebAuthnError) as info:
        plain.begin_webauthn_authentication("alice")
    assert info.value.code is ErrorCode.WEBAUTHN_NOT_CONFIGURED
    with pytest.raises(InvalidParameter):
        MFAService(store, store, sealer, webauthn=store)
    env = _make(MemoryStore())
    for bad in ("", "\ud800", 10**400, None):
        with pytest.raises(InvalidParameter):
            env.service.begin_webauthn_registration(bad, user_name="x")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameter):
        env.service.begin_webauthn_registration("alice", user_name="\ud800")
    with pytest.raises(InvalidParameter):
        WebAuthnConfig(rp_id="localhost", rp_name="x", origins="http://localhost")
    with pytest.raises(InvalidParameter):
        WebAuthnConfig(rp_id="Example.COM", rp_name="x", origins=["https://example.com"])
    with pytest.raises(InvalidParameter):
        WebAuthnConfig(rp_id="example.com", rp_name="x", origins=["https://example.com/path"])


# -- hostile responses -------------------------------------------------------------------------

HOSTILE: list[Any] = [
    "",
    "null",
    "[]",
    '{"id": 1}',
    "x" * 70000,  # over the size limit
    "[" * 5000 + "]" * 5000,  # nesting
    '{"id": "a", "rawId": "a", "type": "public-key", "response": {}}',
    '{"rawId": "\\ud800", "id": "\\ud800", "type": "public-key", "response": {}}',
    '{"rawId": "AA", "id": "AA", "type": "public-key", "response": {"clientDataJSON": 1e400}}',
    '{"rawId": "AA", "id": "AA", "type": "public-key", "response": {"clientDataJSON": NaN}}',
    '{"rawId": "AA", "id": "AA", "type": "public-key", "rawId": "AB", "response": {}}',
    {"rawId": "AA", "id": "AA", "type": "public-key", "response": {"clientDataJSON": 10**400}},
    {"rawId": "AA==", "id": "AA==", "type": "public-key", "response": {}},
    {"rawId": "A", "id": "A", "type": "public-key", "response": {}},
    {"rawId": "AB", "id": "AB", "type": "public-key", "response": {}},  # non-canonical bits
    {"rawId": "AA", "id": "AA", "type": "public-key", "response": []},
    {
        "rawId": "AA",
        "id": "AA",
        "type": "public-key",
        "response": {
            "clientDataJSON": "e30",
            "attestationObject": "oA",
            "authenticatorData": "AA",
            "signature": "AA",
        },
    },
    b"\xff\xfe",
    12,
    '{"id": ' + "9" * 5000 + "}",  # past Python's int digit limit
    {"rawId": "AA", "id": "AA", "type": "public-key", "response": {"clientDataJSON": "A" * 10**6}},
]


@pytest.mark.parametrize("response", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_responses_are_typed_errors(response: Any) -> None:
    for parse in (parse_registration_response, parse_authentication_response):
        with pytest.raises(WebAuthnError) as info:
            parse(response)
        assert info.value.code in (ErrorCode.WEBAUTHN_MALFORMED, ErrorCode.WEBAUTHN_TOO_LARGE)
        assert info.value.__cause__ is None and info.value.__context__ is None


def test_hostile_responses_through_the_service_are_counted_refusals() -> None:
    env = _make(MemoryStore())
    for response in HOSTILE:
        result = env.service.finish_webauthn_authentication("alice", response)
        assert result.webauthn_reason is R.MALFORMED and result.reason is VerifyReason.MALFORMED
        result = env.service.finish_webauthn_registration("alice", response)
        assert result.webauthn_reason is R.MALFORMED
    assert env.failures() == 2 * len(HOSTILE)


def _mutate(response: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    copy = json.loads(json.dumps(response))
    target = copy
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return copy


@settings(max_examples=60, deadline=None)
@given(
    field=st.sampled_from(
        [("id",), ("rawId",), ("type",), ("response", "clientDataJSON"),
         ("response", "authenticatorData"), ("response", "signature"), ("response", "userHandle")]
    ),
    value=st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=50),
        st.binary(max_size=50).map(lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")),
        st.lists(st.integers(), max_size=3),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    ),
)  # fmt: skip
def test_fuzzed_assertions_never_accepted_nor_stray_errors(
    field: tuple[str, ...], value: Any
) -> None:
    env = _FUZZ_ENV
    response = sign_in(env, _FUZZ_KEY)
    mutated = _mutate(response, field, value)
    if mutated == response or (field[-1] == "userHandle" and value in (None, "")):
        return  # unchanged, or an absent user handle (optional when the user is named)
    result = env.service.finish_webauthn_authentication("alice", mutated)
    assert not result.accepted
    assert isinstance(result.webauthn_reason, WebAuthnReason)


_FUZZ_ENV = _make(MemoryStore())
_FUZZ_KEY = SoftwareAuthenticator()
assert register(_FUZZ_ENV, _FUZZ_KEY).accepted


def test_threads_presenting_one_assertion_exactly_one_accepted(tmp_path: Path) -> None:
    for store in (MemoryStore(), SQLiteStore(tmp_path / "race.sqlite3")):
        env = _make(store)
        key = SoftwareAuthenticator()
        assert register(env, key).accepted
        response = sign_in(env, key)
        results: list[WebAuthnResult] = []
        barrier = threading.Barrier(16)

        def present(
            env: Env, response: Any, barrier: threading.Barrier, results: list[WebAuthnResult]
        ) -> None:
            barrier.wait()
            results.append(env.service.finish_webauthn_authentication("alice", response))

        args = (env, response, barrier, results)
        threads = [threading.Thread(target=present, args=args) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sum(r.accepted for r in results) == 1
        assert {r.webauthn_reason for r in results if not r.accepted} == {R.REPLAYED}


def test_async_service_500_tasks_one_assertion() -> None:
    store = MemoryStore()
    env = _make(store)
    key = SoftwareAuthenticator()
    assert register(env, key).accepted
    response = sign_in(env, key)
    aio = AsyncMemoryStore(store)
    service = AsyncMFAService(
        aio, aio, AESGCMSealer({"k1": bytes(32)}, current_key_id="k1"), clock=env.clock,
        config=ServiceConfig(throttle=ThrottleConfig(max_failures=100, base_delay=0.0)),
        webauthn=aio, webauthn_config=_config(),
    )  # fmt: skip

    async def main() -> list[WebAuthnResult]:
        options = await service.begin_webauthn_authentication("alice")
        assert options["allowCredentials"]
        return await asyncio.gather(
            *(service.finish_webauthn_authentication("alice", response) for _ in range(500))
        )

    results = asyncio.run(main())
    assert sum(r.accepted for r in results) == 1


# -- policy ------------------------------------------------------------------------------------


def test_decide_offers_the_security_key_first_and_can_require_it() -> None:
    from mfa_core.errors import PolicyError
    from mfa_core.policy import (
        Action,
        EnrolledFactor,
        Factor,
        FirstFactor,
        Outcome,
        Policy,
        RequestContext,
    )

    env = _make(MemoryStore())
    assert Factor.SECURITY_KEY.phishing_resistant and not Factor.TOTP.phishing_resistant

    def context(**changes: Any) -> RequestContext:
        values: dict[str, Any] = {
            "user_id": "alice", "first_factor": FirstFactor.PASSWORD, "authenticated_at": T0 - 5,
            "factors": (EnrolledFactor(factor=Factor.SMS_CODE, state=CredentialState.ACTIVE),),
        }  # fmt: skip
        values.update(changes)
        return RequestContext(**values)

    mandate = Policy(mandate_all=True)
    # a key the host claims but the store does not have: the store's word counts
    claimed = (EnrolledFactor(factor=Factor.SECURITY_KEY, state=CredentialState.ACTIVE),)
    assert env.service.decide(mandate, context(factors=claimed)).outcome is Outcome.ENROL_REQUIRED
    assert env.service.decide(mandate, context()).factors == (Factor.SMS_CODE,)
    key = SoftwareAuthenticator()
    assert register(env, key).accepted
    decision = env.service.decide(mandate, context())
    assert decision.outcome is Outcome.CHALLENGE
    assert decision.factors == (Factor.SECURITY_KEY, Factor.SMS_CODE)  # the key first
    strict = Policy(mandate_all=True, phishing_resistant_roles=frozenset({"admin"}))
    assert env.service.decide(strict, context(roles=frozenset({"admin"}))).factors == (
        Factor.SECURITY_KEY,
    )
    cid = env.service.list_webauthn_credentials("alice")[0].credential_id
    env.service.disable_webauthn_credential("alice", cid)
    assert env.service.decide(strict, context(roles=frozenset({"admin"}))).outcome is (
        Outcome.ENROL_REQUIRED
    )
    reset = Policy(mandate_all=True, phishing_resistant_actions=frozenset({Action.LOGIN}))
    assert Policy.from_json(reset.to_json()) == reset
    assert Policy.from_json(strict.to_json()) == strict
    for bad in ({"phishing_resistant_roles": "admin"}, {"phishing_resistant_actions": ["fly"]},
                {"phishing_resistant_roles": ["admin"], "allowed_factors": ["totp"]}):  # fmt: skip
        with pytest.raises(PolicyError):
            Policy.from_dict(bad)


def test_decide_knows_a_security_key_sign_in_as_the_last_check() -> None:
    from mfa_core.policy import Action, Factor, FirstFactor, Outcome, Policy, RequestContext

    env = _make(MemoryStore())
    key = SoftwareAuthenticator()
    assert register(env, key).accepted
    policy = Policy(mandate_all=True, step_up_window=300.0)
    login = RequestContext(
        user_id="alice", first_factor=FirstFactor.PASSWORD, authenticated_at=T0 - 5
    )
    settings = attrs.evolve(login, action=Action.CHANGE_SECURITY_SETTINGS)
    # registered, never used to sign in: no check to vouch for
    assert env.service.decide(policy, settings).outcome is Outcome.CHALLENGE
    env.clock.advance(60)
    signed = env.service.finish_webauthn_authentication("alice", sign_in(env, key))
    assert signed.accepted
    decision = env.service.decide(policy, settings)
    assert decision.allowed, decision  # the sign-in is a fresh step-up
    env.clock.advance(400)
    assert env.service.decide(policy, settings).outcome is Outcome.CHALLENGE  # stale now
    assert env.service.decide(policy, login).allowed  # still this sign-in's second factor
    assert Factor.SECURITY_KEY in env.service.decide(policy, settings).factors


def test_the_benchmark_cases_run_and_are_real() -> None:
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_webauthn.py"
    spec = importlib.util.spec_from_file_location("bench_webauthn", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    cases = bench.build_cases()
    for name, op in cases.items():
        refill = getattr(op, "refill", None)
        if refill is not None:
            refill()
        result = op()
        if name.startswith("registration"):
            assert result.public_key
        elif name.startswith("authentication"):
            assert result.sign_count == 0
        elif name.startswith("service"):
            assert result.accepted
        else:
            assert result is not None


def test_cpu_work_arguments_pickle_for_process_pools() -> None:
    import pickle

    env = _make(MemoryStore())
    key = SoftwareAuthenticator()
    options = env.service.begin_webauthn_registration("alice", user_name="alice")
    parsed = parse_registration_response(key.create(options, ORIGIN))
    config = _config(attestation_root_certs={"packed": [b"-----BEGIN CERTIFICATE-----"]})
    for value in (config, parsed):
        assert pickle.loads(pickle.dumps(value)) == value  # noqa: S301 - our own bytes


def test_without_the_extra_a_missing_dependency_names_the_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    from mfa_core.errors import MissingDependency

    env = _make(MemoryStore())
    for name in ("webauthn", "webauthn.helpers", "cbor2"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(MissingDependency, match=r"pip install 'mfa_core\[webauthn\]'"):
        env.service.begin_webauthn_registration("alice", user_name="alice")
    result = env.service.finish_webauthn_registration("alice", HOSTILE[6])
    assert result.webauthn_reason is R.MALFORMED  # parsing needs no extra until the CBOR
    with pytest.raises(MissingDependency):
        parse_registration_response(
            {"rawId": "AA", "id": "AA", "type": "public-key",
             "response": {"clientDataJSON": "e30", "attestationObject": "oA"}}
        )  # fmt: skip
