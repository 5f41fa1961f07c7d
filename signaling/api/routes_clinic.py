"""The clinic's details: read by the patient's pages (public), edited by an admin.

The details in effect are the admin's saved ones, else the TOML's [clinic]
(signaling/clinic/details.py). An edit is checked field by field with the same rules as the
TOML (config/clinic_rules.py) and audited as ``clinic.updated`` naming the fields changed,
with their old and new values: a clinic's name, phone and hours are public, not health data.
"""

from __future__ import annotations

from aiohttp import web

from config.clinic_rules import clinic_field_problem
from signaling.api.http_api import ApiRegistry, audit_request, json_response
from signaling.clinic.details import ClinicDetails, clinic_details, save_clinic_details
from signaling.errors import AppError
from signaling.keys import SERVICES

routes = ApiRegistry()


class ClinicUpdate(ClinicDetails, frozen=True, forbid_unknown_fields=True):
    """Every field, as the admin page's form sends them (spaces around a value are dropped)."""


@routes.route(
    "GET",
    "/api/clinic",
    summary="The clinic's name, phone, opening hours and emergency line (French and English), "
    "as the patient's pages and the invitations give them: the admin's saved details, else the "
    "settings' [clinic] (an empty phone or hours: not given)",
    response=ClinicDetails,
    tag="patients",
)
async def clinic_info(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    return json_response(await clinic_details(services.store, services.settings.clinic))


@routes.route(
    "POST",
    "/api/clinic",
    summary="Save the clinic's details (admins only); they then win over the settings' "
    "[clinic]. Audited as clinic.updated with the fields changed and their values",
    description="Each field is one line without control characters: `name` (1 to 120 "
    "characters), `phone` (empty, or 2 to 20 digits with spaces, dots, hyphens, brackets and a "
    "leading +, at most 40 characters), `hours` (empty or at most 120), `emergency_fr` and "
    "`emergency_en` (1 to 200). A refused field answers `invalid_body` with "
    '`details.field` naming it, e.g. `{"field": "phone"}`.',
    auth="admin",
    body=ClinicUpdate,
    response=ClinicDetails,
    errors=("not_authenticated", "forbidden", "csrf_failed", "invalid_body"),
    tag="users",
)
async def update_clinic(request: web.Request, body: ClinicUpdate) -> web.Response:
    services = request.app[SERVICES]
    values = {name: getattr(body, name).strip() for name in ClinicDetails.__struct_fields__}
    for name, value in values.items():
        problem = clinic_field_problem(name, value)
        if problem is not None:
            raise AppError("invalid_body", f"{name}: expected {problem}", details={"field": name})
    wanted = ClinicDetails(**values)
    before = await clinic_details(services.store, services.settings.clinic)
    changed = wanted.changed_fields(before)
    if not changed:
        return json_response(before)  # nothing changes: nothing to record
    await save_clinic_details(services.store, wanted)
    await audit_request(
        request,
        "clinic.updated",
        target="clinic",
        fields=changed,
        old={name: getattr(before, name) for name in changed},
        new={name: getattr(wanted, name) for name in changed},
    )
    return json_response(wanted)
