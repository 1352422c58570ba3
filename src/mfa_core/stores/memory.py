"""An in-memory store: :class:`MemoryStore`.

For tests, single-process services and prototypes. Everything lives in dictionaries of
the process and is lost when it ends. One lock guards all state, so every method is one
atomic step and the compare-and-set methods are exact under any number of threads.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import attrs

from ..errors import InvalidParameter, StoreError
from ..models import Admission, Credential, CredentialState, FailureState
from ..oob import OOBRecord
from ..recovery import RecoveryRecord
from ..throttle import ThrottleConfig, admit
from ._common import (
    check_claim_value,
    check_credential,
    check_drift,
    check_generation,
    check_id,
    check_limits,
    check_oob_record,
    check_page,
    check_phc,
    check_recovery_records,
    check_send_count,
    check_time,
    check_version,
)
from ._webauthn import MemoryWebAuthn, memory_state

__all__ = ["MemoryStore"]


_MIN_SWEEP = 1024
"""Send counters held before the first sweep of expired ones."""

_NO_FAILURES = FailureState()
"""What a user without failures has (immutable, so one shared value)."""


def _creation_order(entry: tuple[int, Credential]) -> tuple[float, int]:
    """Sort key of a stored entry: ``created_at``, then the insertion sequence."""
    return entry[1].created_at, entry[0]


class MemoryStore(MemoryWebAuthn):
    """A thread-safe in-memory :class:`~mfa_core.ports.CredentialStore`,
    :class:`~mfa_core.ports.FailureCounter` (with the fused operations of
    :class:`~mfa_core.ports.AttemptStore`), :class:`~mfa_core.ports.RecoveryCodeStore` and
    :class:`~mfa_core.ports.OOBChallengeStore` in one object.

    ``MemoryStore()`` starts empty. Not shared between processes (each has its own copy);
    use :class:`~mfa_core.stores.SQLiteStore` for that. Credentials are stored as the frozen
    values given, so nothing a caller holds can change the stored state.
    """

    __slots__ = (
        "_by_user",
        "_challenges",
        "_credentials",
        "_failures",
        "_lock",
        "_next_seq",
        "_recovery",
        "_sends",
        "_sweep_at",
        "_webauthn",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # id -> (insertion sequence, credential); the sequence breaks created_at ties.
        self._credentials: dict[str, tuple[int, Credential]] = {}
        self._by_user: dict[str, set[str]] = {}
        self._failures: dict[str, FailureState] = {}
        self._next_seq = 0
        # user id -> record id -> record (in the order the set was given)
        self._recovery: dict[str, dict[str, RecoveryRecord]] = {}
        self._challenges: dict[str, OOBRecord] = {}
        # (key, window_start) -> (count, expires_at); swept when it doubles in size
        self._sends: dict[tuple[str, float], tuple[int, float]] = {}
        self._sweep_at = _MIN_SWEEP
        self._webauthn = memory_state()

    def __repr__(self) -> str:
        with self._lock:
            return (
                f"MemoryStore(credentials={len(self._credentials)}, "
                f"users_with_failures={len(self._failures)}, "
                f"users_with_recovery_codes={len(self._recovery)}, "
                f"challenges={len(self._challenges)})"
            )

    # -- CredentialStore ---------------------------------------------------------------

    def add(self, credential: Credential) -> None:
        """Insert a new credential; raise :class:`~mfa_core.errors.StoreError` if its id
        is already stored."""
        check_credential(credential)
        with self._lock:
            if credential.id in self._credentials:
                raise StoreError("a credential with this id already exists")
            self._credentials[credential.id] = (self._next_seq, credential)
            self._next_seq += 1
            self._by_user.setdefault(credential.user_id, set()).add(credential.id)

    def get(self, credential_id: str) -> Credential | None:
        """Return the credential with this id, or ``None``."""
        check_id(credential_id, "credential_id")
        with self._lock:
            entry = self._credentials.get(credential_id)
        return None if entry is None else entry[1]

    def list_for_user(self, user_id: str) -> Sequence[Credential]:
        """Return all credentials of a user (any state), oldest first (by ``created_at``,
        then by insertion order)."""
        check_id(user_id, "user_id")
        with self._lock:
            ids = self._by_user.get(user_id)
            if not ids:
                return []
            credentials = self._credentials
            if len(ids) == 1:  # the common case: nothing to sort
                for only in ids:
                    return [credentials[only][1]]
            entries = [credentials[i] for i in ids]
        entries.sort(key=_creation_order)
        return [credential for _, credential in entries]

    def update(self, credential: Credential, *, expected_version: int) -> bool:
        """Replace the stored credential if its version is ``expected_version``.

        The stored version becomes ``expected_version + 1``; ``last_accepted`` and ``drift``
        keep their stored values. Returns ``False`` (changing nothing) if the credential is
        missing or its version differs.
        """
        check_credential(credential)
        check_version(expected_version)
        with self._lock:
            entry = self._credentials.get(credential.id)
            if entry is None or entry[1].version != expected_version:
                return False
            seq, stored = entry
            replacement = attrs.evolve(
                credential,
                last_accepted=stored.last_accepted,
                drift=stored.drift,
                version=expected_version + 1,
            )
            self._credentials[credential.id] = (seq, replacement)
            if stored.user_id != replacement.user_id:
                self._unindex(stored)
                self._by_user.setdefault(replacement.user_id, set()).add(replacement.id)
            return True

    def claim(self, credential_id: str, value: int, *, drift: int) -> bool:
        """Store ``value`` and ``drift`` if ``value`` is greater than ``last_accepted``.

        Returns whether it was stored; of concurrent calls with one value exactly one wins.
        ``value`` must be 0..2**63-1 (the range every reference store can hold).
        """
        check_id(credential_id, "credential_id")
        check_claim_value(value)
        check_drift(drift)
        with self._lock:
            return self._claim(credential_id, value, drift)

    def _claim(self, credential_id: str, value: int, drift: int) -> bool:
        entry = self._credentials.get(credential_id)
        if entry is None or value <= entry[1].last_accepted:
            return False
        self._credentials[credential_id] = (entry[0], entry[1].with_claim(value, drift))
        return True

    def delete(self, credential_id: str) -> bool:
        """Remove a credential; return whether it existed."""
        check_id(credential_id, "credential_id")
        with self._lock:
            entry = self._credentials.pop(credential_id, None)
            if entry is None:
                return False
            self._unindex(entry[1])
            return True

    def _unindex(self, credential: Credential) -> None:
        ids = self._by_user.get(credential.user_id)
        if ids is not None:
            ids.discard(credential.id)
            if not ids:
                del self._by_user[credential.user_id]

    # -- FailureCounter ----------------------------------------------------------------

    def admit_attempt(self, user_id: str, now: float, limits: ThrottleConfig) -> Admission:
        """Admit and count one attempt at ``now``, or refuse it, under the store's lock:
        :func:`mfa_core.throttle.admit` applied to the stored state. ``last_failure_at``
        becomes the later of ``now`` and the stored time, so a caller with a lagging clock
        never shortens a delay or a lock. A refusal changes nothing."""
        check_id(user_id, "user_id")
        at = check_time(now)
        config = check_limits(limits)
        with self._lock:
            return self._admit(user_id, at, config)

    def _admit(self, user_id: str, now: float, limits: ThrottleConfig) -> Admission:
        admission = admit(self._failures.get(user_id, _NO_FAILURES), now, limits)
        if admission.admitted:
            self._failures[user_id] = admission.state
        return admission

    def get_failures(self, user_id: str) -> FailureState:
        """Return the user's failure state (``FailureState()`` if none)."""
        check_id(user_id, "user_id")
        with self._lock:
            return self._failures.get(user_id, _NO_FAILURES)

    def reset(self, user_id: str) -> None:
        """Forget the user's failures."""
        check_id(user_id, "user_id")
        with self._lock:
            self._failures.pop(user_id, None)

    # -- AttemptStore ------------------------------------------------------------------

    def begin_attempt(
        self, user_id: str, now: float, limits: ThrottleConfig
    ) -> tuple[Admission, Sequence[Credential]]:
        """:meth:`admit_attempt`, then (only when admitted) :meth:`list_for_user`, in one
        step under the store's lock; a refused attempt gets an empty list."""
        check_id(user_id, "user_id")
        at = check_time(now)
        config = check_limits(limits)
        failures = self._failures
        with self._lock:
            admission = admit(failures.get(user_id, _NO_FAILURES), at, config)
            if not admission.admitted:
                return admission, []
            failures[user_id] = admission.state
            entries = [self._credentials[i] for i in self._by_user.get(user_id, ())]
        if len(entries) > 1:
            entries.sort(key=_creation_order)
        return admission, [credential for _, credential in entries]

    def claim_and_reset(self, credential_id: str, value: int, *, drift: int, user_id: str) -> bool:
        """:meth:`claim`, then (only when the claim won) :meth:`reset` of ``user_id``, in
        one step under the store's lock. Returns whether the claim won."""
        check_id(credential_id, "credential_id")
        check_claim_value(value)
        check_drift(drift)
        check_id(user_id, "user_id")
        with self._lock:
            if not self._claim(credential_id, value, drift):
                return False
            self._failures.pop(user_id, None)
            return True

    # -- RecoveryCodeStore -------------------------------------------------------------

    def replace_recovery_codes(self, user_id: str, records: Sequence[RecoveryRecord]) -> None:
        """Replace the user's whole set with ``records`` in one step (empty: delete it)."""
        check_id(user_id, "user_id")
        new = check_recovery_records(records)
        with self._lock:
            if new:
                self._recovery[user_id] = {record.id: record for record in new}
            else:
                self._recovery.pop(user_id, None)

    def recovery_codes(self, user_id: str) -> Sequence[RecoveryRecord]:
        """Return the user's records, used ones included, in the order they were given."""
        check_id(user_id, "user_id")
        with self._lock:
            return list(self._recovery.get(user_id, {}).values())

    def consume_recovery_code(self, user_id: str, record_id: str, now: float) -> int | None:
        """Mark the code used at ``now`` if it exists and is unused; return the unused
        codes left, or ``None`` (changing nothing). One step under the store's lock."""
        check_id(user_id, "user_id")
        check_id(record_id, "record_id")
        at = check_time(now)
        with self._lock:
            codes = self._recovery.get(user_id)
            record = None if codes is None else codes.get(record_id)
            if codes is None or record is None or record.used:
                return None
            codes[record_id] = attrs.evolve(record, used_at=at)
            return sum(1 for code in codes.values() if not code.used)

    def update_recovery_hash(self, user_id: str, record_id: str, phc: str) -> bool:
        """Replace one record's PHC hash (``used_at`` is kept); return whether it exists."""
        check_id(user_id, "user_id")
        check_id(record_id, "record_id")
        check_phc(phc)
        with self._lock:
            codes = self._recovery.get(user_id)
            record = None if codes is None else codes.get(record_id)
            if codes is None or record is None:
                return False
            codes[record_id] = attrs.evolve(record, phc=phc)
            return True

    # -- OOBChallengeStore -------------------------------------------------------------

    def put_challenge(self, record: OOBRecord) -> None:
        """Insert a new challenge; raise :class:`~mfa_core.errors.StoreError` if its id is
        already stored."""
        check_oob_record(record)
        with self._lock:
            if record.challenge_id in self._challenges:
                raise StoreError("a challenge with this id already exists")
            self._challenges[record.challenge_id] = record

    def get_challenge(self, challenge_id: str) -> OOBRecord | None:
        """Return the challenge with this id, or ``None``."""
        check_id(challenge_id, "challenge_id")
        with self._lock:
            return self._challenges.get(challenge_id)

    def replace_challenge(self, record: OOBRecord, *, expected_generation: int) -> bool:
        """Store ``record`` if the stored challenge has ``expected_generation`` and is not
        used; return whether it was stored."""
        check_oob_record(record)
        check_generation(expected_generation)
        with self._lock:
            stored = self._challenges.get(record.challenge_id)
            if stored is None or stored.generation != expected_generation or stored.used:
                return False
            self._challenges[record.challenge_id] = record
            return True

    def update_challenge(self, record: OOBRecord, *, expected: OOBRecord) -> bool:
        """Store ``record`` if the stored challenge still has ``expected``'s generation,
        attempts and used flag; return whether it was stored."""
        check_oob_record(record)
        check_oob_record(expected)
        if record.challenge_id != expected.challenge_id:
            raise InvalidParameter("record and expected must be the same challenge")
        with self._lock:
            stored = self._challenges.get(record.challenge_id)
            if stored is None or (stored.generation, stored.attempts, stored.used) != (
                expected.generation,
                expected.attempts,
                expected.used,
            ):
                return False
            self._challenges[record.challenge_id] = record
            return True

    def delete_challenge(self, challenge_id: str) -> bool:
        """Remove a challenge; return whether it existed."""
        check_id(challenge_id, "challenge_id")
        with self._lock:
            return self._challenges.pop(challenge_id, None) is not None

    def count_send(self, key: str, window_start: float, expires_at: float) -> int:
        """Add one to the send counter ``(key, window_start)`` and return the new count,
        under the store's lock. Counters whose ``expires_at`` is before the
        ``window_start`` of a call are dropped now and then (whenever the number held
        has doubled since the last sweep)."""
        name, start, end = check_send_count(key, window_start, expires_at)
        with self._lock:
            sends = self._sends
            if len(sends) >= self._sweep_at:
                for old in [k for k, (_, until) in sends.items() if until < start]:
                    del sends[old]
                self._sweep_at = max(_MIN_SWEEP, 2 * len(sends))
            count, until = sends.get((name, start), (0, end))
            sends[(name, start)] = (count + 1, max(until, end))
            return count + 1

    def purge_challenges(self, before: float) -> int:
        """Remove every challenge whose code expired before ``before`` (Unix seconds),
        and every send counter that expired before it; return how many challenges.
        Housekeeping for hosts (not part of the port): call it now and then with, e.g.,
        ``now - 86400`` to keep used and expired challenges a day."""
        limit = check_time(before, "before")
        with self._lock:
            old = [cid for cid, rec in self._challenges.items() if rec.expires_at < limit]
            for challenge_id in old:
                del self._challenges[challenge_id]
            for counter in [k for k, (_, until) in self._sends.items() if until < limit]:
                del self._sends[counter]
            return len(old)

    # -- StoreMaintenance --------------------------------------------------------------

    def credential_ids(self, after: str | None, limit: int) -> Sequence[str]:
        """Up to ``limit`` stored credential ids greater than ``after``, ascending
        (:meth:`mfa_core.ports.StoreMaintenance.credential_ids`)."""
        start, count = check_page(after, limit)
        with self._lock:
            ids = sorted(cid for cid in self._credentials if start is None or cid > start)
        return ids[:count]

    def purge_pending(self, before: float) -> int:
        """Remove every PENDING credential whose ``pending_until`` is before ``before``,
        under the store's lock; return how many."""
        limit = check_time(before, "before")
        with self._lock:
            old = [
                credential
                for _, credential in self._credentials.values()
                if credential.status is CredentialState.PENDING
                and credential.pending_until is not None
                and credential.pending_until < limit
            ]
            for credential in old:
                del self._credentials[credential.id]
                self._unindex(credential)
            return len(old)
