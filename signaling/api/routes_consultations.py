"""Consultations for their doctor (all of them for an admin): list, book, read, cancel, and
a new invite link; a cancellation or a new link ends the room or the patient it replaces."""

from __future__ import annotations

from aiohttp import web

from signaling.api.api_types import (
    MAX_DAYS_AHEAD,
    ConsultationList,
    ConsultationView,
    CreateConsultationRequest,
    InviteResponse,
)
from signaling.api.http_api import USER_KEY, ApiRegistry, audit_request, json_response
from signaling.api.views import DAY, consultation_view, parse_iso
from signaling.audit.access_audit import AccessRefused
from signaling.consultations.booking import IssuedInvite
from signaling.errors import AppError, ErrorCode
from signaling.keys import SERVICES, Services
from signaling.live.signaling_state import SIGNALING
from signaling.models import Consultation

routes = ApiRegistry()


async def end_open_room(app: web.Application, consultation_id: str) -> None:
    """A cancelled consultation ends its room too: whoever is in it is told and let go."""
    signaling = app.get(SIGNALING)
    if signaling is None:
        return
    await signaling.recordings.stop(consultation_id, "cancelled")
    # end_room reaches the room whichever instance holds its participants (shared state).
    await signaling.rooms.end_room(consultation_id, "cancelled")


async def end_superseded_patient(
    app: web.Application, consultation_id: str, generation: int
) -> None:
    """A re-issued invite shows out the patient who came through an earlier link, whether it
    waits, is in the call or dropped within its resume grace; the doctor stays."""
    signaling = app.get(SIGNALING)
    if signaling is None:
        return
    # Like end_room, this reaches the room whichever instance holds the patient's socket.
    if await signaling.rooms.supersede_patient(consultation_id, generation):
        # A participant who can no longer withdraw is no longer recorded (the patient's own
        # instance stops it too when its socket closes; stopping twice is harmless).
        await signaling.recordings.stop(consultation_id, "participant_left")


async def _audit_sessions_ended(
    request: web.Request, consultation: Consultation, reason: str, generation: int
) -> None:
    """Patient sessions of ``generation`` and before end (found lazily: each is refused at
    its next request, see Consultations.patient_consultation)."""
    await audit_request(
        request,
        "patient.sessions_ended",
        target=consultation.id,
        reason=reason,
        generation=generation,
    )


_STAFF_ERRORS: tuple[ErrorCode, ...] = ("not_authenticated", "csrf_failed")


def consultation_view_of(services: Services, c: Consultation) -> ConsultationView:
    """A consultation as staff see it, with its invite's deadline."""
    return consultation_view(c, services.consultations.invite_deadline(c))


def _invite_response(services: Services, issued: IssuedInvite) -> InviteResponse:
    url = f"{services.settings.server.origin}/join/{issued.invite_token}"
    return InviteResponse(
        consultation=consultation_view_of(services, issued.consultation),
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
    return json_response(
        ConsultationList(consultations=[consultation_view_of(services, c) for c in items])
    )


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
    await audit_request(request, "consultation.created", target=issued.consultation.id)
    await audit_request(request, "invite.created", target=issued.consultation.id)
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
    return json_response(consultation_view_of(services, c))


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
    await audit_request(request, "consultation.cancelled", target=c.id)
    return json_response(consultation_view_of(services, c))


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
    await audit_request(
        request, "invite.created", target=c.id, reissued=True, generation=generation
    )
    await _audit_sessions_ended(request, c, "invite_reissued", c.invite_generation)
    await end_superseded_patient(request.app, c.id, generation)
    return json_response(_invite_response(services, issued))
