"""Consultations for their doctor and its assistants (all of them for an admin): list, book,
read, reschedule, cancel, and a new invite link; a cancellation or a new link ends the room or
the patient it replaces. Who may do which: signaling/consultations/permissions.py."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import msgspec
from aiohttp import web

from signaling.api.api_types import (
    MAX_DAYS_AHEAD,
    ConsultationList,
    ConsultationView,
    CreateConsultationRequest,
    EditConsultationRequest,
    InviteResponse,
    RescheduleRequest,
)
from signaling.api.http_api import USER_KEY, ApiRegistry, audit_request, json_response
from signaling.api.views import DAY, checked_email, consultation_view, parse_iso
from signaling.audit.access_audit import AccessRefused
from signaling.consultations import permissions
from signaling.consultations.booking import IssuedInvite
from signaling.errors import AppError, ErrorCode
from signaling.keys import SERVICES, Services
from signaling.live.signaling_state import SIGNALING
from signaling.models import Consultation, User
from signaling.recording.recordings import RecordingLibrary

routes = ApiRegistry()


async def end_open_room(app: web.Application, consultation_id: str) -> None:
    """A cancelled consultation ends its room too: whoever is in it is told and let go."""
    signaling = app.get(SIGNALING)
    if signaling is None:
        return
    await signaling.recordings.stop(consultation_id, "cancelled")
    # end_room reaches the room whichever instance holds its participants (shared state).
    await signaling.rooms.end_room(consultation_id, "cancelled")


async def rename_in_open_room(app: web.Application, consultation_id: str, name: str) -> None:
    """An edited patient name reaches the open room (the doctor's waiting room shows it)."""
    signaling = app.get(SIGNALING)
    if signaling is not None:
        await signaling.rooms.rename_patient(consultation_id, name)


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
        **permissions.acting_for(request[USER_KEY], consultation.doctor_id),
    )


_STAFF_ERRORS: tuple[ErrorCode, ...] = ("not_authenticated", "csrf_failed")
# A change to an open consultation: cancel, reschedule, a new link, a waiting-room message.
OPEN_ERRORS: tuple[ErrorCode, ...] = (
    *_STAFF_ERRORS,
    "consultation_not_found",
    "consultation_cancelled",
    "consultation_ended",
    "forbidden",
)


def consultation_view_of(
    services: Services,
    c: Consultation,
    viewer: User,
    recordings: Mapping[str, int] | None = None,
) -> ConsultationView:
    """A consultation as ``viewer`` sees it, with its invite's deadline (without the private
    note for an assistant) and, given ``recordings`` (from :func:`recording_counts`), how
    many of its recordings the viewer may see."""
    return consultation_view(
        c,
        services.consultations.invite_deadline(c),
        permissions.may_see_notes(viewer),
        msgspec.UNSET if recordings is None else recordings.get(c.id, 0),
    )


async def recording_counts(
    services: Services, viewer: User, consultation_id: str | None = None
) -> Counter[str] | None:
    """How many recordings of each consultation (of ``consultation_id`` only, if given)
    ``viewer`` may see, for the dashboard's link to the recordings page; None for a role that
    sees no recordings, whose views then say nothing about them. Not audited as a listing of
    recordings: it tells that recordings exist, as the consultation list tells that
    consultations do, and opening them is audited by the recordings page."""
    if not permissions.may_see_recordings(viewer):
        return None
    library = RecordingLibrary(services.store, services.clock, services.settings)
    return Counter(r.consultation_id for r in await library.list_for(viewer, consultation_id))


def _invite_response(services: Services, issued: IssuedInvite, viewer: User) -> InviteResponse:
    url = f"{services.settings.server.origin}/join/{issued.invite_token}"
    return InviteResponse(
        consultation=consultation_view_of(services, issued.consultation, viewer),
        invite_url=url,
        access_code=issued.access_code,
    )


@routes.route(
    "GET",
    "/api/consultations",
    summary="Own consultations (an assistant's: its doctors'; all of them for an admin), "
    "by scheduled start; an assistant sees no note",
    auth="staff",
    response=ConsultationList,
    errors=_STAFF_ERRORS,
    tag="consultations",
)
async def list_consultations(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    user = request[USER_KEY]
    items = await services.consultations.list_for(user)
    counts = await recording_counts(services, user)
    return json_response(
        ConsultationList(
            consultations=[consultation_view_of(services, c, user, counts) for c in items]
        )
    )


def _scheduled_start(services: Services, scheduled_start: str, duration_minutes: int) -> float:
    now = services.clock.now()
    # Not already over, and at most MAX_DAYS_AHEAD days ahead: every date derived from it
    # (end, invite expiry) stays one a view can show.
    return parse_iso(
        scheduled_start,
        earliest=now - duration_minutes * 60,
        latest=now + MAX_DAYS_AHEAD * DAY,
        bounds=f"not already over, at most {MAX_DAYS_AHEAD} days ahead",
    )


@routes.route(
    "POST",
    "/api/consultations",
    summary="Create a consultation (an assistant names the doctor it is for); answers the "
    "patient link and the access code (shown once)",
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
    user = request[USER_KEY]
    doctor_id = body.doctor_id or (user.id if user.role == "doctor" else "")
    if user.role == "assistant" and not doctor_id:
        raise AppError("invalid_body", "doctor_id: name the doctor the consultation is for")
    doctor = permissions.ensure_bookable(
        user, await services.store.get_user(doctor_id) if doctor_id else None, doctor_id
    )
    if body.note.strip() and not permissions.may_see_notes(user):
        raise permissions.refuse_feature(user, "Private notes are written by the doctor.")
    patient_name = body.patient_name.strip()
    if not patient_name:
        raise AppError("invalid_body", "patient_name: must not be blank")
    start = _scheduled_start(services, body.scheduled_start, body.duration_minutes)
    issued = await services.consultations.create(
        doctor,
        patient_name,
        start,
        body.duration_minutes,
        body.note.strip(),
        patient_email=checked_email(body.patient_email),
        patient_language=body.patient_language,
    )
    acting = permissions.acting_for(user, doctor.id)
    await audit_request(request, "consultation.created", target=issued.consultation.id, **acting)
    await audit_request(request, "invite.created", target=issued.consultation.id, **acting)
    return json_response(_invite_response(services, issued, user), status=201)


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
    user = request[USER_KEY]
    c = await services.consultations.visible_to(user, request.match_info["consultation_id"])
    counts = await recording_counts(services, user, c.id)
    return json_response(consultation_view_of(services, c, user, counts))


@routes.route(
    "POST",
    "/api/consultations/{consultation_id}/cancel",
    summary="Cancel (its doctor, the doctor's assistant or an admin); every invite link "
    "stops working",
    auth="staff",
    response=ConsultationView,
    errors=OPEN_ERRORS,
    tag="consultations",
)
async def cancel_consultation(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    user = request[USER_KEY]
    c = await services.consultations.visible_to(user, request.match_info["consultation_id"])
    if not permissions.may_cancel(user, c):
        raise AccessRefused("forbidden", user, "not_owner", "consultation", c.id)
    c = await services.consultations.cancel(c)
    await _audit_sessions_ended(request, c, "cancelled", c.invite_generation)
    await end_open_room(request.app, c.id)
    await audit_request(
        request,
        "consultation.cancelled",
        target=c.id,
        **permissions.acting_for(user, c.doctor_id),
    )
    return json_response(consultation_view_of(services, c, user))


@routes.route(
    "POST",
    "/api/consultations/{consultation_id}/reschedule",
    summary="Move a consultation to another time (its doctor or the doctor's assistant); "
    "the patient link and code stay valid, their deadline follows the new end",
    auth="staff",
    body=RescheduleRequest,
    response=ConsultationView,
    errors=(*OPEN_ERRORS, "invalid_body"),
    tag="consultations",
)
async def reschedule_consultation(request: web.Request, body: RescheduleRequest) -> web.Response:
    services = request.app[SERVICES]
    user = request[USER_KEY]
    c = await services.consultations.visible_to(user, request.match_info["consultation_id"])
    ensure_manages(user, c, "Only the consultation's doctor or assistant reschedules it.")
    start = _scheduled_start(services, body.scheduled_start, body.duration_minutes)
    moved = await services.consultations.reschedule(c, start, body.duration_minutes)
    await audit_request(
        request,
        "consultation.rescheduled",
        target=c.id,
        **permissions.acting_for(user, c.doctor_id),
    )
    return json_response(consultation_view_of(services, moved, user))


@routes.route(
    "POST",
    "/api/consultations/{consultation_id}/edit",
    summary="Change an open consultation's time, duration, patient name or note (each field "
    "given; its doctor, or the doctor's assistant without the note); the patient link and "
    "code stay valid, their deadline follows a new end. Audited with the names of the "
    "fields changed, never their values",
    auth="staff",
    body=EditConsultationRequest,
    response=ConsultationView,
    errors=(*OPEN_ERRORS, "invalid_body"),
    tag="consultations",
)
async def edit_consultation(request: web.Request, body: EditConsultationRequest) -> web.Response:
    services = request.app[SERVICES]
    user = request[USER_KEY]
    c = await services.consultations.visible_to(user, request.match_info["consultation_id"])
    ensure_manages(user, c, "Only the consultation's doctor or assistant edits it.")
    if body.note is not None and not permissions.may_see_notes(user):
        raise permissions.refuse_feature(user, "Private notes are written by the doctor.")
    changes: dict[str, object] = {}
    if body.patient_name is not None:
        name = body.patient_name.strip()
        if not name:
            raise AppError("invalid_body", "patient_name: must not be blank")
        changes["patient_name"] = name
    if body.note is not None:
        changes["note"] = body.note.strip()
    if body.scheduled_start is not None or body.duration_minutes is not None:
        duration = body.duration_minutes or c.duration_minutes
        if body.scheduled_start is None:
            start = c.scheduled_start  # a longer or shorter slot at the same time
        else:
            start = _scheduled_start(services, body.scheduled_start, duration)
        changes.update(scheduled_start=start, duration_minutes=duration)
    if not changes:
        raise AppError("invalid_body", "Give at least one field to change.")
    services.consultations.ensure_open(c)
    edited = await services.consultations.edit(c, **changes)
    if "patient_name" in changes:
        await rename_in_open_room(request.app, c.id, edited.patient_name)
    await audit_request(
        request,
        "consultation.edited",
        target=c.id,
        fields=",".join(sorted(changes)),
        **permissions.acting_for(user, c.doctor_id),
    )
    counts = await recording_counts(services, user, c.id)
    return json_response(consultation_view_of(services, edited, user, counts))


def ensure_manages(user: User, c: Consultation, message: str) -> None:
    if not permissions.may_manage(user, c):
        raise AccessRefused("forbidden", user, "not_owner", "consultation", c.id, message)


def ensure_link_issuer(user: User, c: Consultation) -> None:
    """Who may hand out a consultation's link (issue it again, send it by email): its
    doctor, or an assistant of that doctor."""
    ensure_manages(user, c, "Only the consultation's doctor or assistant issues its links.")


@routes.route(
    "POST",
    "/api/consultations/{consultation_id}/invite",
    summary="Issue a new link and access code (the old ones stop working; unlocks a locked invite)",
    auth="staff",
    response=InviteResponse,
    errors=OPEN_ERRORS,
    tag="consultations",
)
async def reissue_invite(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    user = request[USER_KEY]
    c = await services.consultations.visible_to(user, request.match_info["consultation_id"])
    ensure_link_issuer(user, c)
    issued = await services.consultations.reissue_invite(c)
    generation = issued.consultation.invite_generation
    await audit_request(
        request,
        "invite.created",
        target=c.id,
        reissued=True,
        generation=generation,
        **permissions.acting_for(user, c.doctor_id),
    )
    await _audit_sessions_ended(request, c, "invite_reissued", c.invite_generation)
    await end_superseded_patient(request.app, c.id, generation)
    return json_response(_invite_response(services, issued, user))
