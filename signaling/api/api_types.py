"""Request and response bodies of the HTTP API. msgspec validates them and documents them
(the OpenAPI document is generated from these types, so the two cannot drift apart)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from signaling.models import SeatRole, StaffRole

Username = Annotated[str, Meta(min_length=3, max_length=64)]
Password = Annotated[str, Meta(min_length=1, max_length=1024)]
TotpCode = Annotated[str, Meta(min_length=6, max_length=8, description="6-digit TOTP code")]
Id = Annotated[str, Meta(min_length=1, max_length=64)]
# The patient link is <origin>/join/<token>: the API takes the token alone.
InviteToken = Annotated[
    str,
    Meta(
        max_length=512,
        description=(
            "The invite token: the last path segment of the patient link, after `/join/` "
            "(`https://visio.clinic.example/join/<token>`), not the whole link. It is made of "
            "URL-safe base64 characters (A-Z, a-z, 0-9, `-`, `_`) and dots, at most 512 "
            "characters; anything else answers `invite_invalid`."
        ),
    ),
]

# Bounds of the dates and durations the API accepts (checked in signaling/api/views.py), so that
# every date derived from them (a consultation's end, its invite expiry) can be shown.
MAX_DAYS_AHEAD = 730
DURATION_MINUTES = (5, 240)
# An end of a period filter (audit page, incident report); checked in views.parse_period.
PeriodEnd = Annotated[
    str,
    Meta(
        max_length=40,
        description="ISO 8601 date-time with a UTC offset, from 1970-01-01T00:00:00Z to at "
        f"most {MAX_DAYS_AHEAD} days ahead; until must not be before since",
    ),
]


class ErrorDetail(msgspec.Struct):
    code: str
    message: str
    details: dict[str, int | str | bool] | None = None


class ErrorBody(msgspec.Struct):
    error: ErrorDetail


class Health(msgspec.Struct):
    status: str


class SetupStatus(msgspec.Struct):
    needs_setup: bool


class SetupRequest(msgspec.Struct, forbid_unknown_fields=True):
    setup_token: Annotated[
        str,
        Meta(
            max_length=512,
            description=(
                "The last path segment of the one-time link printed at first start, after "
                "`/setup/`, not the whole link."
            ),
        ),
    ]
    username: Username
    password: Password
    display_name: Annotated[str, Meta(max_length=120)] = ""


class LoginRequest(msgspec.Struct, forbid_unknown_fields=True):
    username: Annotated[str, Meta(max_length=256)]
    password: Password


class LoginResponse(msgspec.Struct):
    next: Annotated[
        Literal["totp", "enrol"],
        Meta(
            description=(
                '"totp": send a code to POST /api/auth/totp; "enrol": no confirmed '
                "authenticator yet, POST /api/auth/enrol for the secret, then POST /api/auth/totp."
            )
        ),
    ]
    expires_in: int


class EnrolmentResponse(msgspec.Struct):
    secret: str
    otpauth_uri: str
    qr_svg: str


class TotpRequest(msgspec.Struct, forbid_unknown_fields=True):
    code: TotpCode


class UserView(msgspec.Struct):
    id: str
    username: str
    display_name: str
    role: StaffRole
    mfa_enrolled: bool
    disabled: bool
    created_at: float


class MeResponse(msgspec.Struct):
    user: UserView
    csrf_token: str


class CreateUserRequest(msgspec.Struct, forbid_unknown_fields=True):
    username: Username
    password: Password
    role: StaffRole
    display_name: Annotated[str, Meta(max_length=120)] = ""


class RoleChangeRequest(msgspec.Struct, forbid_unknown_fields=True):
    role: StaffRole


class PasswordChangeRequest(msgspec.Struct, forbid_unknown_fields=True):
    current_password: Password
    new_password: Password
    code: TotpCode


class PasswordChanged(msgspec.Struct):
    # How many other sessions of the account (other browsers, pending sign-ins) were ended.
    sessions_ended: int


class UserList(msgspec.Struct):
    users: list[UserView]


class CreateConsultationRequest(msgspec.Struct, forbid_unknown_fields=True):
    patient_name: Annotated[str, Meta(min_length=1, max_length=120)]
    scheduled_start: Annotated[
        str,
        Meta(
            max_length=40,
            description="ISO 8601 date-time with a UTC offset; the consultation must not be "
            f"over already (start + duration >= now) and may start at most {MAX_DAYS_AHEAD} "
            "days ahead",
        ),
    ]
    duration_minutes: Annotated[
        int,
        Meta(
            ge=DURATION_MINUTES[0],
            le=DURATION_MINUTES[1],
            description=f"{DURATION_MINUTES[0]} to {DURATION_MINUTES[1]} minutes",
        ),
    ] = 30
    note: Annotated[str, Meta(max_length=2000)] = ""


class ConsultationView(msgspec.Struct):
    id: str
    doctor_id: str
    patient_name: str
    scheduled_start: str
    scheduled_end: str
    duration_minutes: int
    note: str
    status: Literal["scheduled", "cancelled", "ended"]
    invite_locked: bool
    invite_expires: str
    erased: bool = False
    # Which invite link is current: 1 for the first, +1 per re-issue.
    invite_generation: int = 1


class ConsultationList(msgspec.Struct):
    consultations: list[ConsultationView]


class InviteResponse(msgspec.Struct):
    consultation: ConsultationView
    invite_url: Annotated[
        str,
        Meta(
            description=(
                "The whole link to give the patient, `<origin>/join/<token>`; the API calls "
                "for invites take the part after `/join/` (`invite`)."
            )
        ),
    ]
    access_code: Annotated[
        str,
        Meta(description="Shown once; give it to the patient by another channel than the link."),
    ]


class RoomTokenRequest(msgspec.Struct, forbid_unknown_fields=True):
    consultation_id: Id


class RoomTokenResponse(msgspec.Struct):
    room_token: str
    role: SeatRole
    expires_in: int


class InviteInspectRequest(msgspec.Struct, forbid_unknown_fields=True):
    invite: InviteToken


class InviteInfo(msgspec.Struct):
    consultation_id: str
    doctor_name: str
    scheduled_start: str
    scheduled_end: str


class RedeemRequest(msgspec.Struct, forbid_unknown_fields=True):
    invite: InviteToken
    access_code: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=16,
            description="The 6-digit access code given with the link; spaces are ignored.",
        ),
    ]


class RedeemResponse(msgspec.Struct):
    consultation: InviteInfo
    room_token: str
    expires_in: int
    csrf_token: str


AuditOutcome = Literal["success", "failure", "locked", "refused", "denied"]


class AuditQuery(msgspec.Struct, forbid_unknown_fields=True):
    actor: Annotated[str, Meta(max_length=64)] | None = None
    consultation: Annotated[str, Meta(max_length=64)] | None = None
    action: Annotated[str, Meta(max_length=64)] | None = None
    outcome: AuditOutcome | None = None
    since: PeriodEnd | None = None
    until: PeriodEnd | None = None
    newest_first: Annotated[bool, Meta(description="newest entries first (pages)")] = False
    offset: Annotated[int, Meta(ge=0, le=1_000_000, description="entries to skip")] = 0
    limit: Annotated[int, Meta(ge=1, le=10000)] = 1000


class AuditExportQuery(AuditQuery, forbid_unknown_fields=True):
    format: Literal["jsonl", "csv"] = "jsonl"


class AuditEntryView(msgspec.Struct):
    seq: int
    at: str
    actor: str
    actor_role: str
    action: str
    target: str
    outcome: str
    address: str
    details: str
    prev_hash: str
    hash: str


class AuditList(msgspec.Struct):
    entries: list[AuditEntryView]
    # Hash and sequence number of the last entry of the whole trail (an anchor to keep).
    head: str
    head_seq: int = 0
    # More entries match beyond this page (offset + limit).
    more: bool = False
    # Every action the service records (the filter's choices).
    actions: list[str] = []


class AuditVerification(msgspec.Struct):
    """The chain walked from its purge checkpoint (``audit verify`` over HTTP)."""

    intact: bool
    entries: int
    head_seq: int
    head: str
    # Where the kept trail starts after retention purges (0: from the first entry).
    checkpoint_seq: int
    broken_at: int | None = None
    reason: str = ""


class ConsultationExport(msgspec.Struct):
    """Everything held about one consultation (a patient's right of access)."""

    exported_at: str
    consultation: ConsultationView
    doctor: UserView
    audit: list[AuditEntryView]
    # Each one downloads decrypted from /api/recordings/{id}/download.
    recordings: list[RecordingView] = []


class RecordingView(msgspec.Struct):
    id: str
    consultation_id: str
    doctor_id: str
    started_at: str
    stopped_at: str | None
    status: Literal["recording", "complete", "failed", "deleted"]
    size_bytes: int
    stop_reason: str


class RecordingList(msgspec.Struct):
    recordings: list[RecordingView]


class RecordingQuery(msgspec.Struct, forbid_unknown_fields=True):
    consultation: Annotated[str, Meta(max_length=64)] | None = None


class PatientSessionView(msgspec.Struct):
    """A patient's own appointment, for a page reloaded after the access code step."""

    consultation: InviteInfo
    csrf_token: str


class IncidentQuery(msgspec.Struct, forbid_unknown_fields=True):
    subject: Annotated[
        str, Meta(min_length=1, max_length=64, description="a consultation, recording or user id")
    ]
    since: PeriodEnd | None = None
    until: PeriodEnd | None = None


class AccessSummary(msgspec.Struct):
    actor: str
    actor_role: str
    address: str
    actions: dict[str, int]
    first: str
    last: str


class IncidentReport(msgspec.Struct):
    """Every recorded access to one subject, for a breach notification (72 hours)."""

    subject: str
    generated_at: str
    period_start: str | None
    period_end: str | None
    accesses: list[AccessSummary]
    entries: list[AuditEntryView]
    chain_head: str
