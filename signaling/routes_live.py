"""HTTP views of the live rooms, for pages that hold no WebSocket of their own.

* ``GET /api/waiting``: which of the doctor's patients are in a waiting room right now. The
  dashboard polls it (one socket per open consultation lives on the call page, never on the
  dashboard). It reads presence from the room registry: this process's rooms on one instance,
  every instance's waiting index when rooms are shared through Redis.
  Its authentication leaves the session's idle timer alone: a dashboard left open must not
  keep a session alive past ``security.session_idle_minutes``.
* ``GET /api/ice-policy``: whether the pages must send media through the TURN relay only
  (``turn.relay_only``), so neither side's address reaches the other.
"""

from __future__ import annotations

from typing import Literal

import msgspec
from aiohttp import web

from signaling.errors import AppError
from signaling.http_api import USER_KEY, ApiRegistry, json_response
from signaling.keys import SERVICES
from signaling.views import iso
from signaling.ws import SIGNALING

routes = ApiRegistry()


class WaitingPatientView(msgspec.Struct):
    consultation_id: str
    patient_name: str
    scheduled_start: str
    waiting_since: str


class WaitingList(msgspec.Struct):
    waiting: list[WaitingPatientView]


class IcePolicy(msgspec.Struct):
    ice_transport_policy: Literal["all", "relay"]


@routes.route(
    "GET",
    "/api/waiting",
    summary="The doctor's patients who wait in a waiting room now (does not extend the session)",
    auth="staff_quiet",
    response=WaitingList,
    errors=("not_authenticated", "forbidden"),
    tag="consultations",
)
async def list_waiting(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    doctor = request[USER_KEY]
    if doctor.role != "doctor":
        raise AppError("forbidden", "Only doctors have waiting rooms.")
    signaling = request.app.get(SIGNALING)
    # Every instance's waiting patients when rooms are shared through Redis.
    rooms = {} if signaling is None else await signaling.rooms.waiting()
    found: list[WaitingPatientView] = []
    for room_id, since in rooms.items():
        consultation = await services.store.get_consultation(room_id)
        if consultation is None or consultation.doctor_id != doctor.id:
            continue
        found.append(
            WaitingPatientView(
                consultation_id=consultation.id,
                patient_name=consultation.patient_name,
                scheduled_start=iso(consultation.scheduled_start),
                waiting_since=iso(since),
            )
        )
    found.sort(key=lambda view: view.waiting_since)
    return json_response(WaitingList(waiting=found))


@routes.route(
    "GET",
    "/api/ice-policy",
    summary="How the call pages gather ICE candidates: 'relay' sends media through TURN only",
    auth="staff_or_patient",
    response=IcePolicy,
    errors=("not_authenticated",),
    tag="consultations",
)
async def ice_policy(request: web.Request) -> web.Response:
    turn = request.app[SERVICES].settings.turn
    return json_response(IcePolicy(ice_transport_policy="relay" if turn.relay_only else "all"))
