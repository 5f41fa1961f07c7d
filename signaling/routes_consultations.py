"""Consultations for doctors, invite links for patients, and room tokens for both."""

from __future__ import annotations

import re

from aiohttp import web

from signaling.access_audit import AccessRefused
from signaling.api_types import (
    MAX_DAYS_AHEAD,
    ConsultationExport,
    ConsultationList,
    ConsultationView,
    CreateConsultationRequest,
    InviteInfo,
    InviteInspectRequest,
    InviteResponse,
    PatientSessionView,
    RedeemRequest,
    RedeemResponse,
    RoomTokenRequest,
    RoomTokenResponse,
)
from signaling.consultations import IssuedInvite
from signaling.errors import AppError, ErrorCode
from signaling.http_api import (
    PATIENT_COOKIE,
    SESSION_KEY,
    USER_KEY,
    ApiRegistry,
    client_address,
    json_response,
)
from signaling.keys import SERVICES, Services
from signaling.models import Consultation, SeatRole
from signaling.views import DAY, consultation_view, iso, parse_iso, set_cookie

routes = ApiRegistry()


async def end_open_room(app: web.Application, consultation_id: str) -> None:
    """A cancelled consultation ends its room too: whoever is in it is told and let go."""
    from signaling.ws import SIGNALING

    signaling = app.get(SIGNALING)
    if signaling is None:
        return
    await signaling.stop_recording(consultation_id, "cancelled")
    # end_room reaches the room whichever instance holds its participants (shared state).
    await signaling.rooms.end_room(consultation_id, "cancelled")


async def end_superseded_patient(
    app: web.Application, consultation_id: str, generation: int
) -> None:
    """A re-issued invite shows out the patient who came through an earlier link, whether it
    waits, is in the call or dropped within its resume grace; the doctor stays."""
    from signaling.ws import SIGNALING

    signaling = app.get(SIGNALING)
    if signaling is None:
        return
    # Like end_room, this reaches the room whichever instance holds the patient's socket.
    if await signaling.rooms.supersede_patient(consultation_id, generation):
        # A participant who can no longer withdraw is no longer recorded (the patient's own
        # instance stops it too when its socket closes; stopping twice is harmless).
        await signaling.stop_recording(consultation_id, "participant_left")


async def _audit_sessions_ended(
    request: web.Request, consultation: Consultation, reason: str, generation: int
) -> None:
    """Patient sessions of ``generation`` and before end (found lazily: each is refused at
    its next request, see Consultations.patient_consultation)."""
    user = request[USER_KEY]
    await request.app[SERVICES].audit.record(
        "patient.sessions_ended",
        actor=user.id,
        actor_role=user.role,
        target=consultation.id,
        address=client_address(request),
        reason=reason,
        generation=generation,
    )


_STAFF_ERRORS: tuple[ErrorCode, ...] = ("not_authenticated", "csrf_failed")
_ID_SHAPE = re.compile(r"[0-9a-f]{32}")  # uuid4().hex, as consultations are numbered


def _view(services: Services, c: Consultation) -> ConsultationView:
    return consultation_view(c, services.consultations.invite_deadline(c))


def _invite_response(services: Services, issued: IssuedInvite) -> InviteResponse:
    url = f"{services.settings.server.origin}/join/{issued.invite_token}"
    return InviteResponse(
        consultation=_view(services, issued.consultation),
        invite_url=url,
        access_code=issued.access_code,
    )


@routes.route(
    "GET",
    "/api/consultations",
    summary="Own consultations (all of them for an admin), by scheduled start",
    auth="staff",
    response=ConsultationList,
    errors=_STAFF_ERRORS,
    tag="consultations",
)
async def list_consultations(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    items = await services.consultations.list_for(request[USER_KEY])
    return json_response(ConsultationList(consultations=[_view(services, c) for c in items]))


@routes.route(
    "POST",
    "/api/consultations",
    summary="Create a consultation; answers the patient link and the access code (shown once)",
    auth="staff",
    body=CreateConsultationRequest,
    response=InviteResponse,
    status=201,
    errors=(*_STAFF_ERRORS, "forbidden", "invalid_body"),
    tag="consultations",
)
async def create_consultation(
    request: web.Request, body: CreateConsultationRequest
) -> web.Response:
    services = request.app[SERVICES]
    doctor = request[USER_KEY]
    if doctor.role != "doctor":
        raise AppError("forbidden", "Only doctors hold consultations.")
    patient_name = body.patient_name.strip()
    if not patient_name:
        raise AppError("invalid_body", "patient_name: must not be blank")
    now = services.clock.now()
    # Not already over, and at most MAX_DAYS_AHEAD days ahead: every date derived from it
    # (end, invite expiry) stays one a view can show.
    start = parse_iso(
        body.scheduled_start,
        earliest=now - body.duration_minutes * 60,
        latest=now + MAX_DAYS_AHEAD * DAY,
        bounds=f"not already over, at most {MAX_DAYS_AHEAD} days ahead",
    )
    issued = await services.consultations.create(
        doctor, patient_name, start, body.duration_minutes, body.note.strip()
    )
    await services.audit.record(
        "consultation.created",
        actor=doctor.id,
        actor_role=doctor.role,
        target=issued.consultation.id,
        address=client_address(request),
    )
    await services.audit.record(
        "invite.created",
        actor=doctor.id,
        actor_role=doctor.role,
        target=issued.consultation.id,
        address=client_address(request),
    )
    return json_response(_invite_response(services, issued), status=201)


@routes.route(
    "GET",
    "/api/consultations/{consultation_id}",
    summary="One consultation",
    auth="staff",
    response=ConsultationView,
    errors=(*_STAFF_ERRORS, "consultation_not_found"),
    tag="consultations",
)
async def get_consultation(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    c = await services.consultations.visible_to(
        request[USER_KEY], request.match_info["consultation_id"]
    )
    return json_response(_view(services, c))


@routes.route(
    "POST",
    "/api/consultations/{consultation_id}/cancel",
    summary="Cancel; every invite link stops working",
    auth="staff",
    response=ConsultationView,
    errors=(
        *_STAFF_ERRORS,
        "consultation_not_found",
        "consultation_cancelled",
        "consultation_ended",
    ),
    tag="consultations",
)
async def cancel_consultation(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    user = request[USER_KEY]
    c = await services.consultations.visible_to(user, request.match_info["consultation_id"])
    c = await services.consultations.cancel(c)
    await _audit_sessions_ended(request, c, "cancelled", c.invite_generation)
    await end_open_room(request.app, c.id)
    await services.audit.record(
        "consultation.cancelled",
        actor=user.id,
        actor_role=user.role,
        target=c.id,
        address=client_address(request),
    )
    return json_response(_view(services, c))


@routes.route(
    "POST",
    "/api/consultations/{consultation_id}/invite",
    summary="Issue a new link and access code (the old ones stop working; unlocks a locked invite)",
    auth="staff",
    response=InviteResponse,
    errors=(
        *_STAFF_ERRORS,
        "consultation_not_found",
        "consultation_cancelled",
        "consultation_ended",
        "forbidden",
    ),
    tag="consultations",
)
async def reissue_invite(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    user = request[USER_KEY]
    c = await services.consultations.visible_to(user, request.match_info["consultation_id"])
    if c.doctor_id != user.id:
        raise AccessRefused(
            "forbidden",
            user,
            "not_owner",
            "consultation",
            c.id,
            "Only the consultation's doctor issues its links.",
        )
    issued = await services.consultations.reissue_invite(c)
    generation = issued.consultation.invite_generation
    await services.audit.record(
        "invite.created",
        actor=user.id,
        actor_role=user.role,
        target=c.id,
        address=client_address(request),
        reissued=True,
        generation=generation,
    )
    await _audit_sessions_ended(request, c, "invite_reissued", c.invite_generation)
    await end_superseded_patient(request.app, c.id, generation)
    return json_response(_invite_response(services, issued))


async def _invite_info(services: Services, c: Consultation) -> InviteInfo:
    doctor = await services.store.get_user(c.doctor_id)
    return InviteInfo(
        consultation_id=c.id,
        doctor_name=doctor.display_name if doctor else "",
        scheduled_start=iso(c.scheduled_start),
        scheduled_end=iso(c.scheduled_end),
    )


@routes.route(
    "POST",
    "/api/invites/inspect",
    summary="What a patient link leads to, before "
    "the access code (lets the page explain an expired or cancelled link)",
    body=InviteInspectRequest,
    response=InviteInfo,
    errors=(
        "invite_invalid",
        "invite_expired",
        "invite_locked",
        "consultation_cancelled",
        "consultation_ended",
        "invalid_body",
    ),
    tag="patients",
)
async def inspect_invite(request: web.Request, body: InviteInspectRequest) -> web.Response:
    services = request.app[SERVICES]
    c = await services.consultations.open_invite(body.invite)
    return json_response(await _invite_info(services, c))


@routes.route(
    "POST",
    "/api/invites/redeem",
    summary="Patient link + access code: a patient session (cookie) and a first room token",
    body=RedeemRequest,
    response=RedeemResponse,
    errors=(
        "invite_invalid",
        "invite_expired",
        "invite_locked",
        "invalid_access_code",
        "address_locked",
        "consultation_cancelled",
        "consultation_ended",
        "invalid_body",
    ),
    tag="patients",
)
async def redeem_invite(request: web.Request, body: RedeemRequest) -> web.Response:
    services = request.app[SERVICES]
    c = await services.consultations.redeem(body.invite, body.access_code, client_address(request))
    deadline = services.consultations.invite_deadline(c)
    patient = await services.accounts.issue_patient_session(c.id, deadline, c.invite_generation)
    token = services.room_tokens.issue(c.id, "patient", f"patient:{c.id}", c.invite_generation)
    await services.audit.record(
        "token.issued",
        actor="patient",
        actor_role="patient",
        target=c.id,
        address=client_address(request),
        role="patient",
    )
    response = json_response(
        RedeemResponse(
            consultation=await _invite_info(services, c),
            room_token=token,
            expires_in=services.room_tokens.ttl,
            csrf_token=patient.session.csrf_token,
        )
    )
    set_cookie(
        response,
        PATIENT_COOKIE,
        patient.cookie_value,
        patient.session.expires_at - patient.session.created_at,
        services.settings.server.secure_cookies,
    )
    return response


@routes.route(
    "POST",
    "/api/room-tokens",
    summary="A short-lived, single-use room token for the consultation's doctor or its patient",
    auth="staff_or_patient",
    body=RoomTokenRequest,
    response=RoomTokenResponse,
    errors=(
        *_STAFF_ERRORS,
        "consultation_not_found",
        "consultation_cancelled",
        "consultation_ended",
        "invite_expired",
        "invite_superseded",
        "invalid_body",
    ),
    tag="consultations",
)
async def issue_room_token(request: web.Request, body: RoomTokenRequest) -> web.Response:
    try:
        return await _issue_room_token(request, body)
    except AppError as refusal:
        # As the WebSocket audits its refused tokens: who asked, for what, and why.
        await _audit_token_refusal(request, body, refusal.code)
        raise


async def _audit_token_refusal(request: web.Request, body: RoomTokenRequest, reason: str) -> None:
    session = request[SESSION_KEY]
    user = request.get(USER_KEY)
    # The id asked for is recorded only when it has the shape of an id: the field is free
    # text, and the trail takes no text a client typed.
    asked = body.consultation_id if _ID_SHAPE.fullmatch(body.consultation_id) else ""
    await request.app[SERVICES].audit.record(
        "token.refused",
        actor=user.id if user is not None else "patient",
        actor_role=user.role if user is not None else session.kind,
        target=asked,
        outcome="refused",
        address=client_address(request),
        reason=reason,
    )


async def _issue_room_token(request: web.Request, body: RoomTokenRequest) -> web.Response:
    services = request.app[SERVICES]
    session = request[SESSION_KEY]
    role: SeatRole
    generation = 0
    if session.kind == "patient":
        if session.consultation_id != body.consultation_id:
            raise AppError("consultation_not_found")
        c = await services.store.get_consultation(body.consultation_id)
        if c is None:
            raise AppError("consultation_not_found")
        role, subject, actor = "patient", f"patient:{c.id}", "patient"
        # Checked when the request was authenticated: the session's generation is current.
        generation = session.invite_generation
        if services.clock.now() > services.consultations.invite_deadline(c):
            raise AppError("invite_expired")
    else:
        user = request[USER_KEY]
        c = await services.store.get_consultation(body.consultation_id)
        # Only the consultation's own doctor takes the doctor's place in its room.
        if c is None or c.doctor_id != user.id:
            raise AppError("consultation_not_found")
        role, subject, actor = "doctor", f"user:{user.id}", user.id
    services.consultations.ensure_open(c)
    token = services.room_tokens.issue(c.id, role, subject, generation)
    await services.audit.record(
        "token.issued",
        actor=actor,
        actor_role=role,
        target=c.id,
        address=client_address(request),
        role=role,
    )
    return json_response(
        RoomTokenResponse(room_token=token, role=role, expires_in=services.room_tokens.ttl)
    )


@routes.route(
    "GET",
    "/api/consultations/{consultation_id}/export",
    summary="Everything held about a consultation, for a patient's request of access "
    "(admins only; the export is audited)",
    auth="admin",
    response=ConsultationExport,
    errors=("not_authenticated", "forbidden", "consultation_not_found"),
    tag="patients",
)
async def export_consultation(request: web.Request) -> web.Response:
    from signaling.routes_audit import _view as audit_view
    from signaling.routes_recordings import recording_view
    from signaling.store.base import AuditFilter
    from signaling.views import user_view

    services = request.app[SERVICES]
    admin = request[USER_KEY]
    c = await services.consultations.visible_to(admin, request.match_info["consultation_id"])
    doctor = await services.store.get_user(c.doctor_id)
    if doctor is None:
        raise AppError("consultation_not_found")
    entries = await services.store.list_audit(AuditFilter(target=c.id, limit=100_000))
    await services.audit.record(
        "consultation.exported",
        actor=admin.id,
        actor_role=admin.role,
        target=c.id,
        address=client_address(request),
    )
    export = ConsultationExport(
        exported_at=iso(services.clock.now()),
        consultation=_view(services, c),
        doctor=user_view(doctor),
        audit=[audit_view(e) for e in entries],
        recordings=[
            recording_view(r)
            for r in await services.store.list_recordings(consultation_id=c.id)
            if r.status != "deleted"
        ],
    )
    response = json_response(export)
    response.headers["Content-Disposition"] = f'attachment; filename="consultation-{c.id}.json"'
    return response


@routes.route(
    "POST",
    "/api/consultations/{consultation_id}/erase",
    summary="Erase the patient's details of a consultation (right to erasure); the audit "
    "trail keeps only pseudonymous ids and still verifies",
    auth="admin",
    response=ConsultationView,
    errors=("not_authenticated", "forbidden", "csrf_failed", "consultation_not_found"),
    tag="patients",
)
async def erase_consultation_route(request: web.Request) -> web.Response:
    from signaling.recordings import RecordingLibrary
    from signaling.retention import erase_consultation

    services = request.app[SERVICES]
    admin = request[USER_KEY]
    c = await services.consultations.visible_to(admin, request.match_info["consultation_id"])
    library = RecordingLibrary(services.store, services.clock, services.settings)
    erased, shredded = await erase_consultation(services.store, c, services.clock.now(), library)
    await services.audit.record(
        "consultation.erased",
        actor=admin.id,
        actor_role=admin.role,
        target=c.id,
        address=client_address(request),
        reason="request",
        recordings_shredded=shredded,
    )
    return json_response(_view(services, erased))


@routes.route(
    "GET",
    "/api/patient/session",
    summary="The signed-in patient's appointment and CSRF token (a reloaded page carries on "
    "without the access code)",
    auth="patient",
    response=PatientSessionView,
    errors=(
        "not_authenticated",
        "consultation_not_found",
        "consultation_cancelled",
        "consultation_ended",
        "invite_superseded",
    ),
    tag="patients",
)
async def patient_session(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    session = request[SESSION_KEY]
    c = await services.store.get_consultation(session.consultation_id or "")
    if c is None:
        raise AppError("consultation_not_found")
    services.consultations.ensure_open(c)
    return json_response(
        PatientSessionView(
            consultation=await _invite_info(services, c), csrf_token=session.csrf_token
        )
    )
