"""Stored records. Plain frozen dataclasses: backends map them to rows or hashes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal, Self

Role = Literal["admin", "doctor"]
ROLES: tuple[Role, ...] = ("admin", "doctor")
SessionKind = Literal["pending", "staff", "patient"]
ConsultationStatus = Literal["scheduled", "cancelled", "ended"]


class _Record:
    def evolve(self, **changes: object) -> Self:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True)
class User(_Record):
    id: str
    username: str
    display_name: str
    role: Role
    password_hash: str
    created_at: float
    # TOTP secret, AES-GCM encrypted with a key derived from the app secret.
    totp_secret_enc: bytes | None = None
    totp_confirmed: bool = False
    # Highest TOTP time step accepted so far: a code is accepted once (RFC 6238 §5.2).
    totp_last_step: int = 0
    disabled: bool = False


@dataclass(frozen=True)
class Session(_Record):
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


@dataclass(frozen=True)
class Consultation(_Record):
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


@dataclass(frozen=True)
class AuditEntry(_Record):
    seq: int
    at: float
    actor: str
    actor_role: str
    action: str
    target: str
    outcome: str
    address: str
    details: str
    prev_hash: str
    hash: str


RecordingStatus = Literal["recording", "complete", "failed", "deleted"]
ConsentDecision = Literal["granted", "withdrawn", "declined"]


@dataclass(frozen=True)
class Recording(_Record):
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


@dataclass(frozen=True)
class ConsentReceipt(_Record):
    """Who said yes or no to a recording, when: kept as proof of consent."""

    id: str
    consultation_id: str
    recording_id: str
    role: str
    subject: str
    decision: ConsentDecision
    at: float
