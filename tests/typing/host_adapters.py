"""Every port of :mod:`mfa_core.ports`, implemented the way a host application would.

This file is checked with ``mypy --strict tests/typing``: if a Protocol changes so that a
plain host class can no longer satisfy it, type checking fails here. The adapters are real
(``tests/test_store_contract.py`` runs the store contract suite against :class:`HostStore`),
but deliberately written without any help from :mod:`mfa_core.stores`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mfa_core.errors import InvalidParameter, SealingError, StoreError
from mfa_core.models import Admission, Credential, Event, FailureState
from mfa_core.oob import OOBChannel, OOBPurpose, OOBRecord
from mfa_core.ports import (
    Clock,
    CodeSender,
    CredentialStore,
    EventSink,
    FailureCounter,
    OOBChallengeStore,
    RecoveryCodeStore,
    Sealer,
)
from mfa_core.recovery import RecoveryRecord
from mfa_core.throttle import ThrottleConfig, admit

log = logging.getLogger("host.mfa")


class WallClock:
    """The host's clock: plain Unix time."""

    def now(self) -> float:
        return time.time()


class AuditLog:
    """Writes audit events to the host's log (type and ids only)."""

    def emit(self, event: Event) -> None:
        log.info(
            "mfa event %s user=%s credential=%s reason=%s",
            event.type.value,
            event.user_id,
            event.credential_id,
            event.reason,
        )


class HostSealer:
    """AES-256-GCM with one key from the host's secret manager; the credential id is the
    associated data. Blob: 1-byte key generation, 12-byte nonce, ciphertext."""

    def __init__(self, key: bytes, generation: int = 1) -> None:
        self._aead = AESGCM(key)
        self._generation = generation

    def seal(self, plaintext: bytes, *, credential_id: str) -> bytes:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext, credential_id.encode())
        return bytes([self._generation]) + nonce + sealed

    def unseal(self, sealed: bytes, *, credential_id: str) -> bytes:
        if len(sealed) < 29 or sealed[0] != self._generation:
            raise SealingError("sealed key was made with another key")
        try:
            return self._aead.decrypt(sealed[1:13], sealed[13:], credential_id.encode())
        except InvalidTag:
            raise SealingError("sealed key does not belong to this credential") from None

    def needs_reseal(self, sealed: bytes) -> bool:
        return not sealed or sealed[0] != self._generation


class HostStore:
    """Credentials and failure counters in the host's own dictionaries, behind one lock
    (standing in for the host's database)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._rows: dict[str, Credential] = {}
        self._order: dict[str, int] = {}
        self._failures: dict[str, FailureState] = {}

    def add(self, credential: Credential) -> None:
        with self._lock:
            if credential.id in self._rows:
                raise StoreError("duplicate credential id")
            self._rows[credential.id] = credential
            self._order[credential.id] = len(self._order)

    def get(self, credential_id: str) -> Credential | None:
        with self._lock:
            return self._rows.get(credential_id)

    def list_for_user(self, user_id: str) -> Sequence[Credential]:
        with self._lock:
            mine = [c for c in self._rows.values() if c.user_id == user_id]
            return sorted(mine, key=lambda c: (c.created_at, self._order[c.id]))

    def update(self, credential: Credential, *, expected_version: int) -> bool:
        with self._lock:
            row = self._rows.get(credential.id)
            if row is None or row.version != expected_version:
                return False
            self._rows[credential.id] = attrs.evolve(
                credential,
                last_accepted=row.last_accepted,
                drift=row.drift,
                version=expected_version + 1,
            )
            return True

    def claim(self, credential_id: str, value: int, *, drift: int) -> bool:
        with self._lock:
            row = self._rows.get(credential_id)
            if row is None or value <= row.last_accepted:
                return False
            self._rows[credential_id] = attrs.evolve(row, last_accepted=value, drift=drift)
            return True

    def delete(self, credential_id: str) -> bool:
        with self._lock:
            return self._rows.pop(credential_id, None) is not None

    def admit_attempt(self, user_id: str, now: float, limits: ThrottleConfig) -> Admission:
        # The library's reference decision, applied under the host's lock (atomic).
        with self._lock:
            admission = admit(self._failures.get(user_id, FailureState()), now, limits)
            if admission.admitted:
                self._failures[user_id] = admission.state
            return admission

    def get_failures(self, user_id: str) -> FailureState:
        with self._lock:
            return self._failures.get(user_id, FailureState())

    def reset(self, user_id: str) -> None:
        with self._lock:
            self._failures.pop(user_id, None)


class HostRecoveryCodes:
    """Recovery-code records per user, behind one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sets: dict[str, dict[str, RecoveryRecord]] = {}

    def replace_recovery_codes(self, user_id: str, records: Sequence[RecoveryRecord]) -> None:
        with self._lock:
            if records:
                self._sets[user_id] = {r.id: r for r in records}
            else:
                self._sets.pop(user_id, None)

    def recovery_codes(self, user_id: str) -> Sequence[RecoveryRecord]:
        with self._lock:
            return list(self._sets.get(user_id, {}).values())

    def consume_recovery_code(self, user_id: str, record_id: str, now: float) -> int | None:
        with self._lock:
            records = self._sets.get(user_id, {})
            record = records.get(record_id)
            if record is None or record.used_at is not None:
                return None
            records[record_id] = attrs.evolve(record, used_at=now)
            return sum(1 for r in records.values() if r.used_at is None)

    def update_recovery_hash(self, user_id: str, record_id: str, phc: str) -> bool:
        with self._lock:
            records = self._sets.get(user_id, {})
            record = records.get(record_id)
            if record is None:
                return False
            records[record_id] = attrs.evolve(record, phc=phc)
            return True


class HostChallenges:
    """Out-of-band challenges by id, and send counters, behind one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, OOBRecord] = {}
        self._sends: dict[tuple[str, float], int] = {}

    def put_challenge(self, record: OOBRecord) -> None:
        with self._lock:
            if record.challenge_id in self._rows:
                raise StoreError("duplicate challenge id")
            self._rows[record.challenge_id] = record

    def get_challenge(self, challenge_id: str) -> OOBRecord | None:
        with self._lock:
            return self._rows.get(challenge_id)

    def replace_challenge(self, record: OOBRecord, *, expected_generation: int) -> bool:
        with self._lock:
            row = self._rows.get(record.challenge_id)
            if row is None or row.used or row.generation != expected_generation:
                return False
            self._rows[record.challenge_id] = record
            return True

    def update_challenge(self, record: OOBRecord, *, expected: OOBRecord) -> bool:
        with self._lock:
            row = self._rows.get(record.challenge_id)
            if row is None or (row.generation, row.attempts, row.used) != (
                expected.generation,
                expected.attempts,
                expected.used,
            ):
                return False
            self._rows[record.challenge_id] = record
            return True

    def delete_challenge(self, challenge_id: str) -> bool:
        with self._lock:
            return self._rows.pop(challenge_id, None) is not None

    def count_send(self, key: str, window_start: float, expires_at: float) -> int:
        if not isinstance(key, str) or not 1 <= len(key) <= 128:
            raise InvalidParameter("bad send-counter key")
        with self._lock:
            # A host with a real database would also drop rows once expires_at has passed.
            count = self._sends.get((key, window_start), 0) + 1
            self._sends[(key, window_start)] = count
            return count


class OutboxSender:
    """Queues codes for the host's mailer (never logs the code)."""

    def __init__(self) -> None:
        self.outbox: list[tuple[OOBChannel, str, str]] = []

    def send(
        self,
        *,
        channel: OOBChannel,
        destination: str,
        code: str,
        purpose: OOBPurpose,
        challenge_id: str,
        expires_at: float,
    ) -> None:
        self.outbox.append((channel, destination, code))
        log.info("queued %s code for %s (%s)", channel.value, challenge_id, purpose.value)


# The assignments mypy checks: each host class satisfies its port.
_clock: Clock = WallClock()
_sink: EventSink = AuditLog()
_sealer: Sealer = HostSealer(AESGCM.generate_key(bit_length=256))
_credentials: CredentialStore = HostStore()
_failures: FailureCounter = HostStore()
_recovery: RecoveryCodeStore = HostRecoveryCodes()
_challenges: OOBChallengeStore = HostChallenges()
_sender: CodeSender = OutboxSender()
