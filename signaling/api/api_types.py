"""Request and response bodies of the HTTP API. msgspec validates them and documents them
(the OpenAPI document is generated from these types, so the two cannot drift apart)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from signaling.live.staff_messages import MAX_TEXT_CHARS, StaffPreset
from signaling.models import (
    AccountLinkPurpose,
    CallEnd,
    PatientLanguage,
    SeatRole,
    StaffRole,
)

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
            "(`https://visio.clinic.example/join/<token>`), not the whole link. Links are "
            "short codes, 12 characters of Crockford's base32 shown in groups of four "
            "(`7KQM-2XRT-9HPW`; any case, hyphens optional, O read as 0, I and L as 1); the "
            "signed tokens of earlier links (URL-safe base64 characters and dots) still work "
            "until their consultation's invite expires. At most 512 characters; anything "
            "else answers `invite_invalid`."
        ),
    ),
]

# Plain ASCII addresses (an internationalised domain in its xn-- form): a local part without
# spaces, quotes or brackets, and a domain of at least two labels.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL_PATTERN = rf"^$|^[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]{{1,64}}@{_LABEL}(?:\.{_LABEL})+$"
PatientEmail = Annotated[
    str,
    Meta(
        max_length=254,
        pattern=EMAIL_PATTERN,
        description="The patient's email address for invitations and reminders (empty: "
        "none); erased with the patient's other details",
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
    # The account has a passkey: instead of the code, POST /api/auth/passkey/options, then
    # POST /api/auth/passkey with what the browser's navigator.credentials.get() answered.
    passkey: bool = False
    # The clinic's policy binds the account to its passkey and keeps no code fallback: the
    # code is refused (passkey_required), only the passkey signs in.
    passkey_only: bool = False


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
    # An assistant's doctors (user ids); empty for every other role.
    assists: list[str] = []


# What navigator.credentials.create()/get() answered, as PublicKeyCredential.toJSON() gives it
# (binary fields base64url); the webauthn package checks its shape.
WebAuthnCredential = Annotated[
    dict[str, Any],
    Meta(description="The browser's PublicKeyCredential as JSON (PublicKeyCredential.toJSON())"),
]


class PasskeyOptions(msgspec.Struct):
    # For navigator.credentials.create()/get() as `publicKey` (binary fields base64url:
    # PublicKeyCredential.parseCreationOptionsFromJSON / parseRequestOptionsFromJSON).
    public_key: dict[str, Any]


class PasskeyEnrolRequest(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=60)]
    credential: WebAuthnCredential


class PasskeySignInRequest(msgspec.Struct, forbid_unknown_fields=True):
    credential: WebAuthnCredential


class PasskeyView(msgspec.Struct):
    id: str
    name: str
    created_at: float
    last_used_at: float | None


class PasskeyList(msgspec.Struct):
    passkeys: list[PasskeyView]
    # Whether removing any one is allowed (the account keeps another second factor).
    removable: bool


class MeResponse(msgspec.Struct):
    user: UserView
    csrf_token: str
    # The clinic's policy binds the account to a passkey and it has none: only its passkeys
    # (GET/POST /api/me/passkeys), GET /api/me and the sign-out answer until it enrols one
    # (any other staff endpoint: passkey_enrolment_required).
    passkey_enrolment_required: bool = False


class AuthMethods(msgspec.Struct):
    # Whether the sign-in page offers "Sign in with a passkey" (POST /api/auth/passwordless).
    passwordless: bool


class PasskeyPolicyView(msgspec.Struct, forbid_unknown_fields=True):
    required_for: Annotated[
        Literal["nobody", "admins", "everyone"],
        Meta(description="Who must sign in with a passkey"),
    ]
    totp_fallback: Annotated[
        bool,
        Meta(
            description="Whether the authenticator code still signs in an account bound to "
            "its passkey that has one"
        ),
    ]
    passwordless: Annotated[
        bool, Meta(description="Whether a passkey alone (with user verification) may sign in")
    ]


class CreateUserRequest(msgspec.Struct, forbid_unknown_fields=True):
    # No password: the person chooses theirs through the enrolment link this answers.
    username: Username
    role: StaffRole
    display_name: Annotated[str, Meta(max_length=120)] = ""


class RoleChangeRequest(msgspec.Struct, forbid_unknown_fields=True):
    role: StaffRole


class PasswordChangeRequest(msgspec.Struct, forbid_unknown_fields=True):
    new_password: Password
    # Either the current password and a code, or a passkey's answer (to
    # POST /api/auth/reauth/options) instead of both.
    current_password: Annotated[str, Meta(max_length=1024)] = ""
    code: Annotated[str, Meta(max_length=16)] = ""
    credential: WebAuthnCredential | None = None


class UnlockRequest(msgspec.Struct, forbid_unknown_fields=True):
    password: Password
    code: TotpCode


class PasskeyProofRequest(msgspec.Struct, forbid_unknown_fields=True):
    # What navigator.credentials.get() answered to POST /api/auth/reauth/options.
    credential: WebAuthnCredential


class SessionState(msgspec.Struct):
    # Locked by inactivity: only POST /api/auth/unlock, the sign-out and the waiting count
    # answer until the password and a code unlock it.
    locked: bool
    # security.session_idle_minutes, in seconds.
    idle_seconds: int
    # Seconds until it locks without a request (0 once locked).
    locks_in_seconds: float
    # Seconds until the absolute limit ends it, locked or not.
    ends_in_seconds: float


class PasswordChanged(msgspec.Struct):
    # How many other sessions of the account (other browsers, pending sign-ins) were ended.
    sessions_ended: int


class UserList(msgspec.Struct):
    users: list[AccountView]


# What the admin page shows of an account: one word, a locked account never "active".
AccountStatus = Literal[
    "active", "locked", "disabled", "enrolment_pending", "reset_pending", "link_expired"
]


class AccountView(UserView, kw_only=True):
    status: Annotated[
        AccountStatus,
        Meta(
            description=(
                '"disabled" first, then "locked" (until `locked_until`), then a pending link '
                '("enrolment_pending", "reset_pending", or "link_expired": issue another), '
                'else "active".'
            )
        ),
    ]
    locked_until: float | None
    last_sign_in_at: float | None
    link_purpose: AccountLinkPurpose | None
    link_expires_at: float | None


class AccountLinkResponse(msgspec.Struct):
    user: AccountView
    link: Annotated[
        str,
        Meta(
            description=(
                "The one-time enrolment or reset link, shown this once (only a hash is kept): "
                "hand it to the person. The secret is in the fragment, after `#`."
            )
        ),
    ]
    expires_at: float


AccountLinkToken = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=256,
        description="What follows `#` in the enrolment or reset link.",
    ),
]


class AccountLinkRequest(msgspec.Struct, forbid_unknown_fields=True):
    token: AccountLinkToken


class AccountLinkDetails(msgspec.Struct):
    username: str
    display_name: str
    purpose: AccountLinkPurpose
    expires_at: float
    secret: str
    otpauth_uri: str
    qr_svg: str


class AccountLinkCompletion(msgspec.Struct, forbid_unknown_fields=True):
    token: AccountLinkToken
    password: Password
    code: TotpCode


ScheduledStart = Annotated[
    str,
    Meta(
        max_length=40,
        description="ISO 8601 date-time with a UTC offset; the consultation must not be "
        f"over already (start + duration >= now) and may start at most {MAX_DAYS_AHEAD} "
        "days ahead",
    ),
]
DurationMinutes = Annotated[
    int,
    Meta(
        ge=DURATION_MINUTES[0],
        le=DURATION_MINUTES[1],
        description=f"{DURATION_MINUTES[0]} to {DURATION_MINUTES[1]} minutes",
    ),
]


PatientName = Annotated[str, Meta(min_length=1, max_length=120)]
PrivateNote = Annotated[
    str, Meta(max_length=2000, description="The doctor's private note; never an assistant's")
]


class CreateConsultationRequest(msgspec.Struct, forbid_unknown_fields=True):
    patient_name: PatientName
    scheduled_start: ScheduledStart
    duration_minutes: DurationMinutes = 30
    note: PrivateNote = ""
    doctor_id: (
        Annotated[
            str,
            Meta(
                max_length=64,
                description="Whose consultation it is: required from an assistant (one of "
                "the doctors it assists), the caller itself for a doctor when given",
            ),
        ]
        | None
    ) = None
    patient_email: PatientEmail = ""
    patient_language: PatientLanguage = "fr"


class RescheduleRequest(msgspec.Struct, forbid_unknown_fields=True):
    scheduled_start: ScheduledStart
    duration_minutes: DurationMinutes = 30


class EditConsultationRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A change to an open consultation: each field given is changed, the others kept. The
    link and code stay valid; their deadline follows a new time. An assistant may not give
    ``note`` (the doctor's private note)."""

    scheduled_start: ScheduledStart | None = None
    duration_minutes: DurationMinutes | None = None
    patient_name: PatientName | None = None
    note: PrivateNote | None = None


class SendInviteEmailRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Send (or send again) the current link by email; an address or language given here
    is kept on the consultation first, so a failed send loses nothing the doctor typed."""

    patient_email: PatientEmail | None = None
    patient_language: PatientLanguage | None = None


class WaitingMessageRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A message to the patient who waits: a preset, worded in the patient's language by
    the patient's page, or a short free text (one line), never both. Nothing keeps it."""

    preset: StaffPreset | None = None
    text: Annotated[str, Meta(max_length=MAX_TEXT_CHARS)] | None = None


class WaitingMessageSent(msgspec.Struct):
    consultation_id: str
    # When the message was handed to the patient's connection (ISO 8601).
    sent_at: str


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
    patient_email: str = ""
    patient_language: PatientLanguage = "fr"
    # When the current link was last emailed to the patient (null: never).
    invite_emailed_at: str | None = None
    # What happened in the call (null/0: no call yet); never the files' names or content.
    call_started_at: str | None = None
    call_ended_at: str | None = None
    call_end: (
        Annotated[
            CallEnd,
            Meta(
                description="Why the last call ended: `doctor` (the doctor ended the "
                "consultation), `patient` (the patient left), `connection_lost`, "
                "`cancelled`, `new_link` (a new link showed the patient out)"
            ),
        ]
        | None
    ) = None
    files_exchanged: Annotated[
        int,
        Meta(ge=0, description="Chat files that went through the call (the doctor's page counts)"),
    ] = 0
    recordings: (
        Annotated[
            int,
            Meta(
                ge=0,
                description=(
                    "How many of its recordings the viewer may see (the recordings page "
                    "`/recordings?consultation=<id>` lists them): in the consultation list and "
                    "in `GET /api/consultations/{id}`, for its doctor and for admins. Absent "
                    "for a role that sees no recordings (an assistant) and in other answers."
                ),
            ),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET


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


class RecordingConsentView(msgspec.Struct):
    """One consent receipt of the recording: who (by role) said what, when."""

    role: Literal["doctor", "patient"]
    decision: Literal["granted", "withdrawn", "declined", "stopped"]
    at: str


class RecordingView(msgspec.Struct):
    id: str
    consultation_id: str
    doctor_id: str
    started_at: str  # when it was asked for
    stopped_at: str | None
    status: Literal["recording", "complete", "failed", "deleted"]
    size_bytes: int
    stop_reason: str
    # When media began and ended in the file; its length in seconds (0 until it is known).
    media_started_at: str | None = None
    media_ended_at: str | None = None
    duration_seconds: float = 0.0
    # Has a duration and cues: a player shows its length and seeks (GET .../media, Range).
    seekable: bool = False
    # No media ever arrived (stopped before the first frame): nothing to play or download.
    empty: bool = False
    # When retention deletes it (crypto-shredding).
    retention_ends_at: str | None = None
    consents: list[RecordingConsentView] = []


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
