"""Room tokens: short-lived and single use, for the consultation's own doctor or its patient
(the WebSocket's join takes one; an assistant never gets one); a refused request is audited
as the WebSocket's are."""

from __future__ import annotations

from aiohttp import web

from signaling.api.api_types import RoomTokenRequest, RoomTokenResponse
from signaling.api.http_api import (
    SESSION_KEY,
    USER_KEY,
    ApiRegistry,
    audit_request,
    id_shaped,
    json_response,
)
from signaling.consultations import permissions
from signaling.errors import AppError
from signaling.keys import SERVICES
from signaling.models import SeatRole

routes = ApiRegistry()


@routes.route(
    "POST",
    "/api/room-tokens",
    summary="A short-lived, single-use room token for the consultation's doctor or its "
    "patient; an assistant is refused (403 forbidden): it never takes a seat in a call",
    auth="staff_or_patient",
    body=RoomTokenRequest,
    response=RoomTokenResponse,
    errors=(
        "not_authenticated",
        "csrf_failed",
        "consultation_not_found",
        "consultation_cancelled",
        "consultation_ended",
        "invite_expired",
        "invite_superseded",
        "invalid_body",
        "forbidden",
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
    # The id asked for is recorded only when it has the shape of an id: the field is free
    # text, and the trail takes no text a client typed.
    asked = body.consultation_id if id_shaped(body.consultation_id) else ""
    await audit_request(request, "token.refused", target=asked, outcome="refused", reason=reason)


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
        role, subject = "patient", f"patient:{c.id}"
        # Checked when the request was authenticated: the session's generation is current.
        generation = session.invite_generation
        if services.clock.now() > services.consultations.invite_deadline(c):
            raise AppError("invite_expired")
    else:
        user = request[USER_KEY]
        c = await services.store.get_consultation(body.consultation_id)
        if c is None or not permissions.may_see(user, c):
            raise AppError("consultation_not_found")
        # Only the consultation's own doctor takes the doctor's place in its room.
        if not permissions.may_join(user, c):
            if user.role != "assistant":
                raise AppError("consultation_not_found")  # an admin: as for another's room
            raise AppError("forbidden", "An assistant does not take part in calls.")
        role, subject = "doctor", f"user:{user.id}"
    services.consultations.ensure_open(c)
    token = services.room_tokens.issue(c.id, role, subject, generation)
    # The role written is the seat taken (an admin who holds a consultation from their time as
    # a doctor takes the doctor's seat).
    await audit_request(request, "token.issued", actor_role=role, target=c.id, role=role)
    return json_response(
        RoomTokenResponse(room_token=token, role=role, expires_in=services.room_tokens.ttl)
    )
