"""Stored records, each defined once: frozen msgspec Structs that the backends store whole
(one JSON value per record; signaling/store/records.py declares what each is indexed by)."""

from __future__ import annotations

from typing import Literal, Self, get_args

import msgspec

# What a staff account may do in the service (its sign-in, its pages, its endpoints).
StaffRole = Literal["admin", "doctor"]
STAFF_ROLES: tuple[StaffRole, ...] = get_args(StaffRole)
# Which of a consultation's two room seats a participant holds (room tokens, the protocol,
# consent). Not a staff role: an admin never takes a seat, and a patient has no account.
SeatRole = Literal["doctor", "patient"]
SEAT_ROLES: tuple[SeatRole, ...] = get_args(SeatRole)
SessionKind = Literal["pending", "staff", "patient"]
ConsultationStatus = Literal["scheduled", "cancelled", "ended"]


class _Record(msgspec.Struct, frozen=True):
    def evolve(self, **changes: object) -> Self:
        return msgspec.structs.replace(self, **changes)


class User(_Record, frozen=True):
    id: str
    username: str
    display_name: str
    role: StaffRole
    password_hash: str
    created_at: float
    # TOTP secret, AES-GCM encrypted with a key derived from the app secret.
    totp_secret_enc: bytes | None = None
    totp_confirmed: bool = False
    # Highest TOTP time step accepted so far: a code is accepted once (RFC 6238 §5.2).
    totp_last_step: int = 0
    disabled: bool = False


class Session(_Record, frozen=True):
    # SHA-256 of the cookie value: a leaked database does not yield live sessions.
    id_hash: str
    kind: SessionKind
    created_at: float
    last_seen: float
    expires_at: float
    csrf_token: str
    user_id: str | None = None
    consultation_id: str | None = None
    # Patient sessions: the invite generation whose link and code opened it. A re-issued
    # invite (a higher generation on the consultation) ends it, without finding it first.
    invite_generation: int = 0


class Consultation(_Record, frozen=True):
    id: str
    doctor_id: str
    patient_name: str
    scheduled_start: float
    duration_minutes: int
    note: str
    status: ConsultationStatus
    created_at: float
    # Part of the signed invite: changing it revokes every link issued before.
    invite_nonce: str
    access_code_hash: str
    code_failures: int = 0
    invite_locked: bool = False
    ended_at: float | None = None
    # Set when the patient's details were erased (retention or a patient's request).
    erased_at: float | None = None
    # Which link this is: 1 for the first, raised by each re-issue. Patient sessions and
    # patient room tokens carry the generation they came from; an older one is refused.
    invite_generation: int = 1

    @property
    def scheduled_end(self) -> float:
        return self.scheduled_start + self.duration_minutes * 60


class AuditFields(_Record, frozen=True):
    """What a caller records; the store chains it into an :class:`AuditEntry`."""

    at: float
    actor: str
    actor_role: str
    action: str
    target: str
    outcome: str
    address: str
    details: str


class AuditEntry(AuditFields, frozen=True):
    """An entry of the trail: the fields, its place in the chain and its hash."""

    seq: int
    prev_hash: str
    hash: str


RecordingStatus = Literal["recording", "complete", "failed", "deleted"]
ConsentDecision = Literal["granted", "withdrawn", "declined"]


class Recording(_Record, frozen=True):
    id: str
    consultation_id: str
    doctor_id: str
    started_at: float
    # Hex id of the master key that wrapped this recording's data key.
    key_id: str
    # File name under <data_dir>/recordings; the file is bound to the id (AEAD context).
    file_name: str
    status: RecordingStatus = "recording"
    stopped_at: float | None = None
    size_bytes: int = 0
    stop_reason: str = ""
    deleted_at: float | None = None


class ConsentReceipt(_Record, frozen=True):
    """Who said yes or no to a recording, when: kept as proof of consent."""

    id: str
    consultation_id: str
    recording_id: str
    role: str
    subject: str
    decision: ConsentDecision
    at: float
