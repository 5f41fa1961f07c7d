"""The patient's side of a consultation: what a link leads to, the link and its access code
redeemed into a patient session (with a first room token), and that session read back."""

from __future__ import annotations

from aiohttp import web

from signaling.api.api_types import (
    InviteInfo,
    InviteInspectRequest,
    PatientSessionView,
    RedeemRequest,
    RedeemResponse,
)
from signaling.api.http_api import (
    PATIENT_COOKIE,
    SESSION_KEY,
    ApiRegistry,
    audit_request,
    client_address,
    json_response,
)
from signaling.api.views import iso, set_cookie
from signaling.errors import AppError
from signaling.keys import SERVICES, Services
from signaling.models import Consultation

routes = ApiRegistry()


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
    await audit_request(request, "token.issued", target=c.id, role="patient")
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
