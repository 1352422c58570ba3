"""No code, secret or destination reachable from a Redis store's error, its chain or the log.

``RedisStore`` keeps the redis-py exception as the typed error's ``__cause__`` (an operator
reads which command failed and why). That is safe only while nothing redis-py or the
server says quotes what was sent: this test makes the store fail for real, in every way a
server can (a key of the wrong type where a script writes, a damaged hash where a decoder
reads, a script's own refusal of a damaged counter, a server that is gone), in flows that
hold a TOTP secret, an SMS code and a phone number, and walks every error's chain,
traceback and the log for them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from error_chain import chain_text
from server_tools import free_port

from mfa_core.errors import MFAError, StoreError, StoreUnavailable
from mfa_core.sealing import AESGCMSealer
from mfa_core.service import MFAService, VerifyReason
from mfa_core.testing import FakeClock, FakeCodeSender

pytest_plugins = ("servers",)

PHONE = "+1 555 010 0167"
SECRET = b"host secret for tests, 32 bytes!"


def _on_a_server_that_is_gone(
    service_on: Callable[[Any], MFAService],
    code: str,
    expect: Callable[[Callable[[], object]], None],
) -> list[object]:
    """The flows on a store whose server is gone; returns the refusals (errors go to
    ``expect``)."""
    from mfa_core.stores.redis import RedisStore

    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    gone = RedisStore.from_url(url, prefix="gone:", socket_timeout=0.5)
    dead = service_on(gone)
    expect(lambda: dead.send_oob_code("alice", channel="sms", destination=PHONE, purpose="login"))
    expect(lambda: dead.begin_enrolment("alice"))
    refused = dead.verify("alice", code)
    assert refused.reason == VerifyReason.STORE_ERROR
    gone.close()
    return [refused]


@pytest.fixture
def redis_store(redis_url: str, redis_prefix: str) -> Iterator[object]:
    from mfa_core.stores.redis import RedisStore

    store = RedisStore.from_url(redis_url, prefix=redis_prefix)
    yield store
    store.close()


def test_redis_errors_never_reach_a_code_secret_or_destination(
    redis_store: object, caplog: pytest.LogCaptureFixture
) -> None:
    import redis

    from mfa_core.stores.redis import RedisStore

    assert isinstance(redis_store, RedisStore)
    store = redis_store
    caplog.set_level(logging.DEBUG)
    clock = FakeClock(1_800_000_000.0)
    sender = FakeCodeSender()

    def service_on(backend: RedisStore) -> MFAService:
        return MFAService(
            backend,
            backend,
            AESGCMSealer({"k1": bytes(range(32))}, current_key_id="k1"),
            clock=clock,
            oob=backend,
            sender=sender,
            secret=SECRET,
        )

    service = service_on(store)
    enrolment = service.begin_enrolment("alice", label="phone")
    challenge = service.send_oob_code("alice", channel="sms", destination=PHONE, purpose="login")
    code = sender.last_code()
    raw = store._client  # the store's own client: the same server and database
    keys = store._protocol.keys
    assert keys is not None
    errors: list[BaseException] = []
    refusals: list[object] = []

    def expect(operation: Callable[[], object]) -> None:
        with pytest.raises(MFAError) as info:
            operation()
        errors.append(info.value)

    # 1. the user's failure counter is a list where the admission's script writes a hash
    raw.delete(keys.failures("alice"))
    raw.rpush(keys.failures("alice"), code, PHONE)
    clock.advance(30)
    refused = service.verify("alice", code)
    assert refused.reason == VerifyReason.STORE_ERROR
    refusals.append(refused)
    refused_oob = service.verify_oob_code("alice", challenge, code, "login")
    assert refused_oob.reason == VerifyReason.STORE_ERROR
    refusals.append(refused_oob)
    raw.delete(keys.failures("alice"))
    # 2. the script's own refusal: a damaged counter (a count without a time)
    raw.hset(keys.failures("alice"), mapping={"count": "3"})
    refusals.append(service.verify("alice", code))
    raw.delete(keys.failures("alice"))
    # 3. a damaged credential hash whose fields quote the number and the code
    credential_key = keys.credential(enrolment.credential_id)
    raw.hset(credential_key, mapping={"label": f"{PHONE} {code}".encode() + b"\xff"})
    expect(lambda: service.list_credentials("alice"))
    raw.hset(credential_key, mapping={"digits": f"{code}{PHONE}"})
    expect(lambda: service.list_credentials("alice"))
    # 4. the challenge is a string where the store reads a hash
    raw.delete(keys.challenge(challenge))
    raw.set(keys.challenge(challenge), f"{code} for {PHONE}")
    expect(lambda: service.resend_oob_code("alice", challenge, PHONE))
    # 5. a server that is gone: the port of a listener that was closed
    refusals += _on_a_server_that_is_gone(service_on, code, expect)

    assert any(isinstance(e, StoreUnavailable) for e in errors)
    assert all(isinstance(e, StoreError) for e in errors), [type(e) for e in errors]
    # the server's and redis-py's exceptions are kept as causes: this test reads them
    assert any(isinstance(e.__cause__, redis.exceptions.RedisError) for e in errors)
    secrets = [
        code,
        *(sent.code for sent in sender.sent),
        enrolment.secret,
        PHONE,
        "15550100167",
        "555 010",
    ]
    everything = "\n".join(
        [*(chain_text(error) for error in errors), caplog.text, *(repr(r) for r in refusals)]
    )
    for secret in secrets:
        assert secret not in everything, f"{secret!r} reached an error, its chain or the log"
