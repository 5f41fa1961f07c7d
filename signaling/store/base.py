"""The Store protocol every backend implements, with its contract in tests/test_store.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from signaling.models import (
    AuditEntry,
    ConsentReceipt,
    Consultation,
    Recording,
    Session,
    StaffRole,
    User,
)
from signaling.models import AuditFields as AuditFields  # re-exported: callers name it here


class DuplicateUsername(Exception):
    pass


# What claiming the one-time setup link answered: the first user was created, or somebody
# was created before (setup is done), or the link's nonce is not the current one.
SetupClaim = Literal["created", "setup_done", "link_invalid"]
SETUP_NONCE_USED = "used"


class StoreUnavailable(Exception):
    """The backend cannot be reached; mapped to ``unavailable`` (503)."""


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    target: str | None = None
    action: str | None = None
    outcome: str | None = None
    since: float | None = None
    until: float | None = None
    # Only entries whose target is one of these (a doctor's own consultations and
    # recordings); None: any target.
    targets: frozenset[str] | None = None
    newest_first: bool = False
    # A keyset page: only the entries past the one numbered ``after_seq`` in the listing's
    # order (higher numbers oldest first, lower newest first). Unlike ``offset`` it costs
    # the same however deep the page, and entries purged or appended meanwhile shift
    # nothing: a walk page by page neither skips nor repeats an entry.
    after_seq: int | None = None
    offset: int = 0
    limit: int = 1000

    def matches(self, e: AuditEntry) -> bool:
        """The same test as a backend's query, for backends that filter in Python."""
        return (
            (self.actor is None or e.actor == self.actor)
            and (self.target is None or e.target == self.target)
            and (self.action is None or e.action == self.action)
            and (self.outcome is None or e.outcome == self.outcome)
            and (self.since is None or e.at >= self.since)
            and (self.until is None or e.at < self.until)
            and (self.targets is None or e.target in self.targets)
            and self.past(e.seq)
        )

    def past(self, seq: int) -> bool:
        """Whether ``seq`` lies past ``after_seq`` in the listing's order."""
        if self.after_seq is None:
            return True
        return seq < self.after_seq if self.newest_first else seq > self.after_seq


@dataclass(frozen=True)
class AuditCheckpoint:
    """The last entry removed by an audit purge: the kept trail chains on from it."""

    seq: int
    hash: str

    def encode(self) -> str:
        return f"{self.seq}:{self.hash}"

    @classmethod
    def decode(cls, text: str) -> AuditCheckpoint:
        seq, _, digest = text.partition(":")
        return cls(int(seq), digest)


# Builds the purge report entry from (entries removed, new checkpoint).
PurgeReport = Callable[[int, AuditCheckpoint], AuditFields]


class Store(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> None:
        """Raise StoreUnavailable when the backend cannot answer."""

    # -- users
    async def create_user(self, user: User) -> None:
        """Raise DuplicateUsername when the name (case-insensitive) is taken."""

    async def create_first_user(self, user: User, nonce_name: str, nonce: str) -> SetupClaim:
        """Claim the one-time setup link and create the first user, as one operation.

        Answers ``setup_done`` when any user exists, ``link_invalid`` when the meta value
        ``nonce_name`` is not ``nonce``; otherwise creates ``user``, sets the meta value to
        :data:`SETUP_NONCE_USED` and answers ``created``. Of concurrent claims exactly one
        wins; a refused claim writes nothing."""

    async def get_user(self, user_id: str) -> User | None: ...
    async def get_user_by_username(self, username: str) -> User | None: ...
    async def list_users(self) -> list[User]: ...
    async def count_users(self) -> int: ...
    async def update_user(self, user: User) -> None: ...
    async def set_user_role(self, user_id: str, role: StaffRole) -> bool:
        """Atomically set a user's role; False (nothing written) when the change would leave
        no enabled admin: the check and the write are one operation, so two admins demoting
        each other at once cannot both succeed."""

    async def set_user_password(
        self, user_id: str, old_hash: str, new_hash: str, keep_session: str
    ) -> int | None:
        """Atomically replace the password hash and end every other session of the user
        (all but the session whose id hash is ``keep_session``). Nothing is written and None
        is answered when the stored hash is no longer ``old_hash`` (changed meanwhile);
        otherwise answers how many sessions were ended."""

    async def change_user(self, user_id: str, change: Callable[[User], User | None]) -> User | None:
        """Atomically rewrite a user as ``change`` makes it from the stored record (the
        passkeys' operations); None, nothing written, when there is no such user or
        ``change`` answers None."""

    async def advance_totp_step(self, user_id: str, step: int) -> bool:
        """Atomically raise totp_last_step to ``step``; False if it already is >= step."""

    # -- sessions
    async def put_session(self, session: Session) -> None: ...
    async def get_session(self, id_hash: str) -> Session | None: ...
    async def delete_session(self, id_hash: str) -> None: ...
    async def delete_user_sessions(self, user_id: str) -> int: ...
    async def purge_sessions(self, now: float) -> int: ...

    # -- consultations
    async def create_consultation(self, consultation: Consultation) -> None: ...
    async def get_consultation(self, consultation_id: str) -> Consultation | None: ...
    async def list_consultations(self, doctor_id: str | None) -> list[Consultation]: ...
    async def update_consultation(self, consultation: Consultation) -> None: ...

    async def record_code_failure(self, consultation_id: str, lock_at: int) -> Consultation:
        """Atomically count a wrong access code; lock the invite at ``lock_at`` failures."""

    async def change_consultation(
        self, consultation_id: str, change: Callable[[Consultation], Consultation | None]
    ) -> Consultation | None:
        """Atomically rewrite a consultation as ``change`` makes it from its stored value
        (None from ``change``: leave it); the record written, None if nothing was."""

    # -- recordings and consent receipts
    async def create_recording(self, recording: Recording) -> None: ...
    async def get_recording(self, recording_id: str) -> Recording | None: ...
    async def list_recordings(
        self, consultation_id: str | None = None, doctor_id: str | None = None
    ) -> list[Recording]:
        """Newest first."""

    async def update_recording(self, recording: Recording) -> None: ...
    async def add_consent_receipt(self, receipt: ConsentReceipt) -> None: ...
    async def list_consent_receipts(self, consultation_id: str) -> list[ConsentReceipt]:
        """In the order they were given."""

    async def delete_consent_receipts(self, consultation_id: str, before: float) -> int:
        """Remove a consultation's consent receipts given before ``before``; answers how many."""

    # -- ephemeral keys with a time to live
    async def claim_once(self, key: str, ttl: float, now: float) -> bool:
        """True the first time ``key`` is claimed while unexpired, False afterwards."""

    async def incr(self, key: str, ttl: float, now: float) -> int:
        """Increment a counter that expires ``ttl`` after its first increment."""

    async def get_count(self, key: str, now: float) -> int: ...
    async def delete_key(self, key: str) -> None: ...
    async def purge_ephemeral(self, now: float) -> int:
        """Remove the keys expired at ``now`` (the retention sweep calls it); answers how
        many. A key expired but not yet purged already reads as absent."""

    async def scrub(self) -> None:
        """Make erased data unrecoverable from the backend's files (old pages, logs)."""

    # -- small settings and state
    async def get_meta(self, name: str) -> str | None: ...
    async def set_meta(self, name: str, value: str) -> None: ...
    async def list_meta(self, prefix: str) -> list[tuple[str, str]]:
        """The (name, value) of every meta value whose name starts with ``prefix``, by name."""

    # -- audit trail (hash-chained, append-only)
    async def append_audit(self, fields: AuditFields) -> AuditEntry: ...
    async def list_audit(self, query: AuditFilter) -> list[AuditEntry]: ...
    async def all_audit(self) -> list[AuditEntry]: ...
    async def audit_head(self) -> AuditEntry | None:
        """The last entry, without reading the whole trail."""

    async def audit_checkpoint(self) -> AuditCheckpoint | None:
        """Where the kept trail starts after purges (None: it starts at entry 1)."""

    async def set_audit_checkpoint(self, checkpoint: AuditCheckpoint) -> None:
        """Where an imported trail starts (``run.py store import``, on an empty trail only):
        the entries appended next chain on from it."""

    async def purge_audit(self, before: float, report: PurgeReport) -> AuditEntry | None:
        """Atomically remove the oldest entries dated before ``before``, store the checkpoint
        (last removed entry) and append the purge report entry built by ``report``.

        Answers the report entry, or None when nothing was old enough.
        """
