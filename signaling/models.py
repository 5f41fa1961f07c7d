"""Stored records, each defined once: frozen msgspec Structs that the backends store whole
(one JSON value per record; signaling/store/records.py declares what each is indexed by)."""

from __future__ import annotations

from typing import Literal, Self, get_args

import msgspec

# What a staff account may do in the service (its sign-in, its pages, its endpoints). An
# assistant (the medical secretariat) schedules for the doctors it assists (User.assists);
# what each role may do is decided in signaling/consultations/permissions.py.
StaffRole = Literal["admin", "doctor", "assistant"]
STAFF_ROLES: tuple[StaffRole, ...] = get_args(StaffRole)
# Which of a consultation's two room seats a participant holds (room tokens, the protocol,
# consent). Not a staff role: an admin never takes a seat, and a patient has no account.
SeatRole = Literal["doctor", "patient"]
SEAT_ROLES: tuple[SeatRole, ...] = get_args(SeatRole)
SessionKind = Literal["pending", "staff", "patient"]
ConsultationStatus = Literal["scheduled", "cancelled", "ended"]
# The language of the emails a patient receives (signaling/mail/templates.py has the words).
PatientLanguage = Literal["fr", "en"]
# Why the last call of a consultation ended, as its row says it: the doctor ended the
# consultation, the patient left, the patient's connection did not come back, the
# consultation was cancelled, or a new link showed the patient out.
CallEnd = Literal["doctor", "patient", "connection_lost", "cancelled", "new_link"]


class _Record(msgspec.Struct, frozen=True):
    def evolve(self, **changes: object) -> Self:
        return msgspec.structs.replace(self, **changes)


# What a one-time account link lets its holder do: enrol (a new account) or reset (choose a
# new password and enrol a new authenticator, after an admin's reset).
AccountLinkPurpose = Literal["enrolment", "reset"]


class AccountLink(_Record, frozen=True):
    """A pending enrolment or reset link. Only the SHA-256 of its secret is kept: the link
    itself is shown once, to the admin who made it."""

    purpose: AccountLinkPurpose
    secret_hash: str
    issued_at: float
    expires_at: float


class Passkey(_Record, frozen=True):
    """A WebAuthn credential a staff member enrolled (signaling/accounts/passkeys.py): its
    public key and the last signature counter its authenticator reported."""

    # The credential id, base64url (the authenticator chooses it; at most 1023 bytes).
    id: str
    name: str
    public_key: bytes
    # The RP ID (the page's host name) it was made for: the browser offers it there only.
    rp_id: str
    sign_count: int
    created_at: float
    last_used_at: float | None = None
    transports: tuple[str, ...] = ()
    # Whether the authenticator keeps it as a discoverable credential (a "resident key", which
    # the browser finds without being told its id: what a sign-in by passkey alone needs), as
    # the browser said at enrolment (credProps); None when it did not say.
    discoverable: bool | None = None
    # Whether the authenticator verified the person (PIN, fingerprint) at enrolment.
    user_verified: bool = False


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
    # Set while an enrolment or reset link is pending: the account has no usable password
    # (password_hash is empty) until the link's holder chooses one.
    account_link: AccountLink | None = None
    last_sign_in_at: float | None = None
    # End of the account lockout (security.lockout_minutes) for the admin page; the lock
    # itself is the store key that sign-in checks. An admin may unlock sooner.
    locked_until: float | None = None
    # An assistant's doctors (user ids), set by an admin; ignored for any other role.
    assists: tuple[str, ...] = ()
    # WebAuthn user handle (random, base64url; never the username), made at the first passkey.
    webauthn_handle: str = ""
    # Only the passkey operations of the store (Store.change_user) move these: a whole-record
    # update_user keeps the stored ones, so a stale copy never brings a removed key back or
    # a counter down.
    passkeys: tuple[Passkey, ...] = ()

    @property
    def second_factors(self) -> int:
        """A confirmed authenticator app counts one, each passkey one."""
        return int(self.totp_confirmed) + len(self.passkeys)


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
    # Where invitations go, if the patient gave an address (erased with the name).
    patient_email: str = ""
    patient_language: PatientLanguage = "fr"
    # When the current link was last emailed (None: never): a reminder goes only to a
    # patient invited by email, and the dashboard says it was sent.
    invite_emailed_at: float | None = None
    # What happened in the call (signaling/live/call_summary.py writes it): when the doctor
    # first admitted the patient, when the last call ended and why, and how many files the
    # participants said they sent each other (the files go peer to peer: never their content).
    call_started_at: float | None = None
    call_ended_at: float | None = None
    call_end: CallEnd | None = None
    files_exchanged: int = 0

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
# "stopped": the participant stopped the recording without withdrawing consent.
ConsentDecision = Literal["granted", "withdrawn", "declined", "stopped"]


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
    # started_at is when it was asked for; these say when media began and ended in the file.
    media_started_at: float | None = None
    media_ended_at: float | None = None
    duration_seconds: float = 0.0
    # The file went through the remux pass (media.seekable_recording): Duration and Cues.
    seekable: bool = False
    # No media ever arrived (stopped before the first frame): nothing to play, and the repair
    # pass leaves it alone (it found nothing to remux once, it would find nothing again).
    empty: bool = False


class ConsentReceipt(_Record, frozen=True):
    """Who said yes or no to a recording, when: kept as proof of consent."""

    id: str
    consultation_id: str
    recording_id: str
    role: str
    subject: str
    decision: ConsentDecision
    at: float
