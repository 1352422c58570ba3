"""The contract of :class:`~mfa_core.ports.WebAuthnStore`, as a test mixin.

Like the other contracts of :mod:`mfa_core.testing.contract` (no pytest import; ids random
per test, so a shared database works)::

    class TestMyStore(WebAuthnStoreContract):
        def make_store(self):
            return MyStore(...)

The races (16 threads, :attr:`WebAuthnStoreContract.webauthn_race_threads`): of concurrent
``consume_webauthn_challenge`` calls exactly one sees the challenge unused; of concurrent
``advance_sign_count`` calls with one counter value exactly one wins, and with distinct
values the stored count ends at the largest; of concurrent ``update_webauthn_credential``
calls with one expected version exactly one wins.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import uuid
from collections.abc import Callable
from typing import Any, Final

import attrs

from ..errors import InvalidParameter, StoreError
from ..models import CredentialState
from ..webauthn.ceremony import b64url
from ..webauthn.records import Ceremony, WebAuthnChallenge, WebAuthnCredential
from .contract import StoreContract

__all__ = ["WebAuthnStoreContract"]

T0: Final = 1_800_000_000.0


def _user() -> str:
    return f"wa-user-{uuid.uuid4().hex}"


def _credential(user: str, **changes: Any) -> WebAuthnCredential:
    values: dict[str, Any] = {
        "credential_id": b64url(secrets.token_bytes(32)),
        "user_id": user,
        "user_handle": b64url(secrets.token_bytes(32)),
        "public_key": secrets.token_bytes(77),
        "created_at": T0,
        "transports": ("usb", "nfc"),
        "aaguid": "6d66615f-636f-7265-5f73-6f6674776172",
        "attestation_format": "packed",
        "nickname": "blue key",
    }
    values.update(changes)
    return WebAuthnCredential(**values)


def _challenge(user: str | None, **changes: Any) -> WebAuthnChallenge:
    values: dict[str, Any] = {
        "key": b64url(hashlib.sha256(secrets.token_bytes(32)).digest()),
        "ceremony": Ceremony.AUTHENTICATION,
        "user_id": user,
        "created_at": T0,
        "expires_at": T0 + 300,
    }
    values.update(changes)
    return WebAuthnChallenge(**values)


def _check(condition: object, what: str) -> None:
    if not condition:
        raise AssertionError(f"WebAuthnStore contract: {what}")


def _race(threads: int, work: Callable[[int], object]) -> list[object]:
    barrier = threading.Barrier(threads)
    results: list[object] = [None] * threads
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        except BaseException as exc:  # reported below
            errors.append(exc)

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if errors:
        raise errors[0]
    return results


class WebAuthnStoreContract(StoreContract):
    """The rules of :class:`~mfa_core.ports.WebAuthnStore`."""

    webauthn_race_threads: int = 16
    """Threads released at once in each race."""

    def test_webauthn_round_trip_every_field(self) -> None:
        store = self._new_store()
        user = _user()
        credential = _credential(
            user, sign_count=7, backup_eligible=True, backed_up=True, discoverable=True,
            last_used_at=T0 + 1.5, transports=(),
        )  # fmt: skip
        store.add_webauthn_credential(credential)
        _check(
            store.get_webauthn_credential(credential.credential_id) == credential,
            "store.get_webauthn_credential(credential.credential_id) =...",
        )
        _check(
            list(store.webauthn_credentials(user)) == [credential],
            "list(store.webauthn_credentials(user)) == [credential]",
        )
        _check(
            store.get_webauthn_credential(b64url(b"missing")) is None,
            "store.get_webauthn_credential(b64url(b'missing')) is None",
        )
        _check(
            list(store.webauthn_credentials(_user())) == [],
            "list(store.webauthn_credentials(_user())) == []",
        )

    def test_webauthn_ids_are_unique_across_users(self) -> None:
        store = self._new_store()
        credential = _credential(_user())
        store.add_webauthn_credential(credential)
        try:
            store.add_webauthn_credential(attrs.evolve(credential, user_id=_user()))
        except StoreError:
            pass
        else:
            raise AssertionError("a credential id was stored twice")
        _check(
            store.get_webauthn_credential(credential.credential_id) == credential,
            "store.get_webauthn_credential(credential.credential_id) =...",
        )

    def test_webauthn_list_is_oldest_first_and_per_user(self) -> None:
        store = self._new_store()
        user, other = _user(), _user()
        late = _credential(user, created_at=T0 + 10)
        early = _credential(user, created_at=T0)
        tie = _credential(user, created_at=T0 + 10)
        for credential in (late, early, tie, _credential(other)):
            store.add_webauthn_credential(credential)
        _check(
            list(store.webauthn_credentials(user)) == [early, late, tie],
            "list(store.webauthn_credentials(user)) == [early, late, tie]",
        )

    def test_webauthn_update_is_compare_and_set_and_keeps_the_counter(self) -> None:
        store = self._new_store()
        credential = _credential(_user())
        store.add_webauthn_credential(credential)
        _check(
            store.advance_sign_count(credential.credential_id, 5, backed_up=True, now=T0 + 2),
            "store.advance_sign_count(credential.credential_id, 5, bac...",
        )
        renamed = attrs.evolve(credential, nickname="red key", sign_count=0, backed_up=False)
        _check(
            store.update_webauthn_credential(renamed, expected_version=0),
            "store.update_webauthn_credential(renamed, expected_versio...",
        )
        stored = store.get_webauthn_credential(credential.credential_id)
        _check(
            stored.nickname == "red key" and stored.version == 1,
            "stored.nickname == 'red key' and stored.version == 1",
        )
        _check(
            (stored.sign_count, stored.backed_up, stored.last_used_at) == (5, True, T0 + 2),
            "(stored.sign_count, stored.backed_up, stored.last_used_at...",
        )
        _check(
            not store.update_webauthn_credential(renamed, expected_version=0),
            "not store.update_webauthn_credential(renamed, expected_ve...",
        )
        disabled = attrs.evolve(stored, status=CredentialState.DISABLED, disabled_at=T0 + 3)
        _check(
            store.update_webauthn_credential(disabled, expected_version=1),
            "store.update_webauthn_credential(disabled, expected_versi...",
        )
        stored = store.get_webauthn_credential(credential.credential_id)
        _check(
            stored.status is CredentialState.DISABLED, "stored.status is CredentialState.DISABLED"
        )
        missing = _credential(_user())
        _check(
            not store.update_webauthn_credential(missing, expected_version=0),
            "not store.update_webauthn_credential(missing, expected_ve...",
        )

    def test_webauthn_sign_count_advances_only(self) -> None:
        store = self._new_store()
        credential = _credential(_user())
        cid = credential.credential_id
        store.add_webauthn_credential(credential)
        # both 0: an authenticator without a counter
        _check(store.advance_sign_count(cid, 0, backed_up=False, now=T0), "0 after 0")
        _check(
            store.advance_sign_count(cid, 0, backed_up=False, now=T0),
            "store.advance_sign_count(cid, 0, backed_up=False, now=T0)",
        )
        _check(
            store.advance_sign_count(cid, 3, backed_up=False, now=T0 + 1),
            "store.advance_sign_count(cid, 3, backed_up=False, now=T0 ...",
        )
        _check(
            not store.advance_sign_count(cid, 3, backed_up=True, now=T0 + 2),
            "not store.advance_sign_count(cid, 3, backed_up=True, now=...",
        )
        _check(
            not store.advance_sign_count(cid, 2, backed_up=True, now=T0 + 2),
            "not store.advance_sign_count(cid, 2, backed_up=True, now=...",
        )
        _check(
            not store.advance_sign_count(cid, 0, backed_up=True, now=T0 + 2),
            "not store.advance_sign_count(cid, 0, backed_up=True, now=...",
        )
        _check(
            store.advance_sign_count(cid, 2**32 - 1, backed_up=True, now=T0 + 3),
            "store.advance_sign_count(cid, 2**32 - 1, backed_up=True, ...",
        )
        stored = store.get_webauthn_credential(cid)
        _check(
            (stored.sign_count, stored.backed_up, stored.last_used_at) == (2**32 - 1, True, T0 + 3),
            "(stored.sign_count, stored.backed_up, stored.last_used_at...",
        )
        _check(
            not store.advance_sign_count(b64url(b"missing"), 1, backed_up=False, now=T0),
            "not store.advance_sign_count(b64url(b'missing'), 1, backe...",
        )

    def test_webauthn_delete(self) -> None:
        store = self._new_store()
        user = _user()
        credential = _credential(user)
        store.add_webauthn_credential(credential)
        _check(
            store.delete_webauthn_credential(credential.credential_id),
            "store.delete_webauthn_credential(credential.credential_id)",
        )
        _check(
            not store.delete_webauthn_credential(credential.credential_id),
            "not store.delete_webauthn_credential(credential.credentia...",
        )
        _check(
            store.get_webauthn_credential(credential.credential_id) is None,
            "store.get_webauthn_credential(credential.credential_id) i...",
        )
        _check(
            list(store.webauthn_credentials(user)) == [],
            "list(store.webauthn_credentials(user)) == []",
        )
        store.add_webauthn_credential(credential)  # the id is free again
        _check(
            store.get_webauthn_credential(credential.credential_id) == credential,
            "store.get_webauthn_credential(credential.credential_id) =...",
        )

    def test_webauthn_challenge_is_used_once(self) -> None:
        store = self._new_store()
        user = _user()
        for challenge in (
            _challenge(user),
            _challenge(None, ceremony=Ceremony.REGISTRATION, user_handle=b64url(b"h" * 32)),
        ):
            store.put_webauthn_challenge(challenge)
            first = store.consume_webauthn_challenge(challenge.key, "fp-one", T0 + 1)
            _check(
                first == challenge and first.used_by is None,
                "first == challenge and first.used_by is None",
            )
            second = store.consume_webauthn_challenge(challenge.key, "fp-two", T0 + 2)
            _check(
                second == attrs.evolve(challenge, used_by="fp-one"),
                "second == attrs.evolve(challenge, used_by='fp-one')",
            )
        unknown = b64url(hashlib.sha256(b"never issued").digest())
        _check(
            store.consume_webauthn_challenge(unknown, "fp", T0) is None,
            "store.consume_webauthn_challenge(unknown, 'fp', T0) is None",
        )
        again = _challenge(user)
        store.put_webauthn_challenge(again)
        try:
            store.put_webauthn_challenge(again)
        except StoreError:
            pass
        else:
            raise AssertionError("a challenge key was stored twice")

    def test_webauthn_refuses_bad_arguments(self) -> None:
        store = self._new_store()
        user = _user()
        bad_credentials = [
            _credential(user, credential_id="not base64url!"),
            _credential(user, user_id=""),
            _credential(user, user_id="\ud800"),
            _credential(user, sign_count=-1),
            _credential(user, sign_count=2**32),
            _credential(user, sign_count=10**400),
            _credential(user, public_key=b""),
            _credential(user, created_at=float("nan")),
            _credential(user, status=CredentialState.PENDING),
            _credential(user, transports=("USB",)),
            _credential(user, aaguid="nope"),
            _credential(user, nickname="\x00"),
            _credential(user, backed_up=1),
        ]
        for bad in bad_credentials:
            try:
                store.add_webauthn_credential(bad)
            except InvalidParameter:
                continue
            raise AssertionError(f"accepted {bad!r}")
        calls: tuple[Callable[[], object], ...] = (
            lambda: store.advance_sign_count("x" * 2000, 1, backed_up=False, now=T0),
            lambda: store.advance_sign_count(b64url(b"id"), 10**400, backed_up=False, now=T0),
            lambda: store.advance_sign_count(b64url(b"id"), 1, backed_up=None, now=T0),
            lambda: store.consume_webauthn_challenge("short", "fp", T0),
            lambda: store.consume_webauthn_challenge("A" * 43, "\ud800", T0),
            lambda: store.put_webauthn_challenge(_challenge(user, user_verification="always")),
            lambda: store.webauthn_credentials(""),
        )
        for call in calls:
            try:
                call()
            except InvalidParameter:
                continue
            raise AssertionError("accepted a bad argument")

    def test_webauthn_consume_race_has_one_winner(self) -> None:
        store = self._new_store()
        threads = self.webauthn_race_threads
        for _ in range(3):
            challenge = _challenge(_user())
            store.put_webauthn_challenge(challenge)
            key = challenge.key
            seen = _race(threads, lambda i: store.consume_webauthn_challenge(key, f"fp{i}", T0))  # noqa: B023
            records = [r for r in seen if isinstance(r, WebAuthnChallenge)]
            _check(len(records) == len(seen), "len(records) == len(seen)")
            fresh = [r for r in records if r.used_by is None]
            _check(len(fresh) == 1, "len(fresh) == 1")
            winner = records.index(fresh[0])
            _check(
                all(r.used_by == f"fp{winner}" for r in records if r is not fresh[0]),
                "all(r.used_by == f'fp{winner}' for r in records if r is n...",
            )

    def test_webauthn_sign_count_race(self) -> None:
        store = self._new_store()
        threads = self.webauthn_race_threads
        credential = _credential(_user())
        cid = credential.credential_id
        store.add_webauthn_credential(credential)
        same = _race(threads, lambda i: store.advance_sign_count(cid, 5, backed_up=False, now=T0))
        _check(same.count(True) == 1, "same.count(True) == 1")
        spread = _race(
            threads, lambda i: store.advance_sign_count(cid, 10 + i, backed_up=False, now=T0)
        )
        _check(True in spread, "True in spread")
        _check(
            store.get_webauthn_credential(cid).sign_count == 10 + threads - 1,
            "store.get_webauthn_credential(cid).sign_count == 10 + thr...",
        )

    def test_webauthn_update_race_has_one_winner(self) -> None:
        store = self._new_store()
        credential = _credential(_user())
        store.add_webauthn_credential(credential)
        won = _race(
            self.webauthn_race_threads,
            lambda i: store.update_webauthn_credential(
                attrs.evolve(credential, nickname=f"n{i}"), expected_version=0
            ),
        )
        _check(won.count(True) == 1, "won.count(True) == 1")
        stored = store.get_webauthn_credential(credential.credential_id)
        _check(
            stored.nickname == f"n{won.index(True)}" and stored.version == 1,
            "stored.nickname == f'n{won.index(True)}' and stored.versi...",
        )
