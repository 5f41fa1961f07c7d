"""A patient's rights over what the service holds about a consultation, exercised by an admin:
access (everything held, as one export) and erasure of the patient's details."""

from __future__ import annotations

from aiohttp import web

from signaling.api.api_types import ConsultationExport, ConsultationView
from signaling.api.http_api import USER_KEY, ApiRegistry, audit_request, json_response
from signaling.api.routes_consultations import consultation_view_of
from signaling.api.views import audit_entry_view, iso, recording_view, user_view
from signaling.consultations.retention import erase_consultation
from signaling.errors import AppError
from signaling.keys import SERVICES
from signaling.recording.recordings import RecordingLibrary
from signaling.store.base import AuditFilter

routes = ApiRegistry()


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
    services = request.app[SERVICES]
    admin = request[USER_KEY]
    c = await services.consultations.visible_to(admin, request.match_info["consultation_id"])
    doctor = await services.store.get_user(c.doctor_id)
    if doctor is None:
        raise AppError("consultation_not_found")
    entries = await services.store.list_audit(AuditFilter(target=c.id, limit=100_000))
    await audit_request(request, "consultation.exported", target=c.id)
    export = ConsultationExport(
        exported_at=iso(services.clock.now()),
        consultation=consultation_view_of(services, c, admin),
        doctor=user_view(doctor),
        audit=[audit_entry_view(e) for e in entries],
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
    services = request.app[SERVICES]
    admin = request[USER_KEY]
    c = await services.consultations.visible_to(admin, request.match_info["consultation_id"])
    library = RecordingLibrary(services.store, services.clock, services.settings)
    erased, shredded = await erase_consultation(services.store, c, services.clock.now(), library)
    await audit_request(
        request, "consultation.erased", target=c.id, reason="request", recordings_shredded=shredded
    )
    return json_response(consultation_view_of(services, erased, admin))
