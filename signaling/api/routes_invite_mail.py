"""The patient link sent by email from the dashboard: first time and again (resend)."""

from __future__ import annotations

from aiohttp import web

from signaling.api.api_types import ConsultationView, SendInviteEmailRequest
from signaling.api.http_api import USER_KEY, ApiRegistry, audit_request, json_response
from signaling.api.routes_consultations import consultation_view_of, ensure_link_issuer
from signaling.api.views import checked_email
from signaling.consultations import permissions
from signaling.errors import AppError
from signaling.keys import SERVICES

routes = ApiRegistry()


@routes.route(
    "POST",
    "/api/consultations/{consultation_id}/email",
    summary="Email the patient the current link (the access code never goes by email); "
    "an address or language in the body is kept first. Sending again is the same call",
    auth="staff",
    body=SendInviteEmailRequest,
    response=ConsultationView,
    errors=(
        "not_authenticated",
        "csrf_failed",
        "invalid_body",
        "consultation_not_found",
        "forbidden",
        "consultation_cancelled",
        "consultation_ended",
        "invite_expired",
        "mail_not_configured",
        "patient_email_missing",
        "mail_refused",
        "mail_unreachable",
    ),
    tag="consultations",
)
async def email_invite(request: web.Request, body: SendInviteEmailRequest) -> web.Response:
    services = request.app[SERVICES]
    user = request[USER_KEY]
    c = await services.consultations.visible_to(user, request.match_info["consultation_id"])
    ensure_link_issuer(user, c)
    changes: dict[str, object] = {}
    if body.patient_email is not None:
        changes["patient_email"] = checked_email(body.patient_email)
    if body.patient_language is not None:
        changes["patient_language"] = body.patient_language
    mailer = services.mailer
    mailer.ensure_sendable(c.evolve(**changes) if changes else c)
    if changes:
        # Kept before the send: a refused or unreachable server loses nothing typed.
        c = c.evolve(**changes)
        await services.store.update_consultation(c)
    try:
        c = await mailer.send_invitation(c)
    except AppError as error:
        await audit_request(
            request,
            "invite.emailed",
            target=c.id,
            outcome="failure",
            reason=error.code,
            language=c.patient_language,
            generation=c.invite_generation,
            # That the address was changed by this call (never the address itself).
            address_changed="patient_email" in changes,
            **permissions.acting_for(user, c.doctor_id),
        )
        raise
    await audit_request(
        request,
        "invite.emailed",
        target=c.id,
        language=c.patient_language,
        generation=c.invite_generation,
        address_changed="patient_email" in changes,
        **permissions.acting_for(user, c.doctor_id),
    )
    return json_response(consultation_view_of(services, c, user))
