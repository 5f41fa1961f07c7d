"""The secretariat: an admin attaches an assistant to the doctors it schedules for, and a
staff member asks which doctors it books for (the dashboard's doctor picker).

Who may then do what is decided in signaling/consultations/permissions.py.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web
from msgspec import Meta

from signaling.api.api_types import UserView
from signaling.api.http_api import USER_KEY, ApiRegistry, audit_request, json_response
from signaling.api.views import user_view
from signaling.consultations import permissions
from signaling.errors import AppError
from signaling.keys import SERVICES

routes = ApiRegistry()

# A clinic's secretariat works for a handful of doctors; the bound keeps a record small.
MAX_ASSISTED_DOCTORS = 50


class AssistsRequest(msgspec.Struct, forbid_unknown_fields=True):
    doctor_ids: Annotated[
        list[Annotated[str, Meta(min_length=1, max_length=64)]],
        Meta(
            max_length=MAX_ASSISTED_DOCTORS,
            description="The doctors (user ids of enabled doctor accounts) the assistant "
            "schedules for; an empty list detaches it from every doctor",
        ),
    ]


class DoctorRef(msgspec.Struct):
    id: str
    display_name: str


class DoctorList(msgspec.Struct):
    doctors: list[DoctorRef]


@routes.route(
    "POST",
    "/api/users/{user_id}/assists",
    summary="Set the doctors an assistant schedules for (admins only; audited with the old "
    "and new list). Takes effect at the assistant's next request",
    auth="admin",
    body=AssistsRequest,
    response=UserView,
    errors=("not_authenticated", "forbidden", "csrf_failed", "not_found", "invalid_body"),
    tag="users",
)
async def set_assists(request: web.Request, body: AssistsRequest) -> web.Response:
    store = request.app[SERVICES].store
    target = await store.get_user(request.match_info["user_id"])
    if target is None:
        raise AppError("not_found", "No such user.")
    if target.role != "assistant":
        raise AppError("invalid_body", "Only an assistant's account schedules for doctors.")
    wanted = tuple(dict.fromkeys(body.doctor_ids))  # in the order given, once each
    for doctor_id in wanted:
        doctor = await store.get_user(doctor_id)
        if doctor is None or doctor.role != "doctor":
            raise AppError("invalid_body", "doctor_ids: each must be a doctor's account")
    if wanted == target.assists:
        return json_response(user_view(target))  # nothing changes: nothing to record
    # Read again just before the write: the fewer the steps between, the less another
    # admin's change of the same account (disable, role) can be overwritten.
    fresh = await store.get_user(target.id)
    if fresh is None or fresh.role != "assistant":
        raise AppError("invalid_body", "Only an assistant's account schedules for doctors.")
    updated = fresh.evolve(assists=wanted)
    await store.update_user(updated)
    await audit_request(
        request,
        "user.assists_changed",
        target=updated.id,
        old=list(fresh.assists),
        new=list(wanted),
    )
    return json_response(user_view(updated))


@routes.route(
    "GET",
    "/api/me/doctors",
    summary="The doctors the caller books for: itself for a doctor, its doctors for an "
    "assistant, none for an admin",
    auth="staff",
    response=DoctorList,
    errors=("not_authenticated",),
    tag="consultations",
)
async def my_doctors(request: web.Request) -> web.Response:
    store = request.app[SERVICES].store
    found: list[DoctorRef] = []
    for doctor_id in permissions.assisted_doctors(request[USER_KEY]):
        doctor = await store.get_user(doctor_id)
        if doctor is not None and doctor.role == "doctor" and not doctor.disabled:
            found.append(DoctorRef(doctor.id, doctor.display_name or doctor.username))
    return json_response(DoctorList(doctors=found))
