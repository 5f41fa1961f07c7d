"""POST /api/room-tokens refusals land in the audit trail as ``token.refused`` with the
reason (as the WebSocket's refused tokens do), on both backends, and carry no secret."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from aiohttp import web

from signaling.clock import ManualClock
from signaling.keys import SERVICES
from signaling.models import AuditEntry
from tests.conftest import Accounts, Staff
from tests.rtc import book

pytestmark = pytest.mark.both_stores


async def refusals(app: web.Application) -> list[tuple[str, str, str, str, dict[str, Any]]]:
    entries: list[AuditEntry] = await app[SERVICES].store.all_audit()
    return [
        (e.actor, e.actor_role, e.target, e.outcome, json.loads(e.details))
        for e in entries
        if e.action == "token.refused"
    ]


async def test_each_refused_room_token_is_recorded_with_its_reason(
    app: web.Application,
    accounts: Accounts,
    clock: ManualClock,
    doctor: Staff,
    admin: Staff,
) -> None:
    booking = await book(accounts, doctor, clock)
    cid = booking.consultation_id
    patient_headers = {"X-CSRF-Token": booking.patient_csrf}

    # The patient asks for another consultation's room.
    other = uuid.uuid4().hex
    resp = await booking.patient.post(
        "/api/room-tokens", json={"consultation_id": other}, headers=patient_headers
    )
    assert resp.status == 404
    # An admin is not the consultation's doctor (the wrong role for this room).
    resp = await admin.post("/api/room-tokens", json={"consultation_id": cid})
    assert resp.status == 404
    # Free text where an id belongs is refused, and not copied into the trail.
    resp = await doctor.post("/api/room-tokens", json={"consultation_id": "Alice Patient"})
    assert resp.status == 404
    # Once cancelled, neither the doctor nor the patient gets a token.
    assert (await doctor.post(f"/api/consultations/{cid}/cancel")).status == 200
    resp = await doctor.post("/api/room-tokens", json={"consultation_id": cid})
    assert resp.status == 410
    resp = await booking.patient.post(
        "/api/room-tokens", json={"consultation_id": cid}, headers=patient_headers
    )
    assert resp.status == 410

    assert await refusals(app) == [
        ("patient", "patient", other, "refused", {"reason": "consultation_not_found"}),
        (admin.user["id"], "admin", cid, "refused", {"reason": "consultation_not_found"}),
        (doctor.user["id"], "doctor", "", "refused", {"reason": "consultation_not_found"}),
        (doctor.user["id"], "doctor", cid, "refused", {"reason": "consultation_cancelled"}),
    ]
    # The cancellation ended the patient's session itself: refused before any token is
    # looked at, as on every patient endpoint (patient.session_refused).
    [ended] = [
        e for e in await app[SERVICES].store.all_audit() if e.action == "patient.session_refused"
    ]
    assert (ended.actor, ended.target, ended.outcome) == ("patient", cid, "refused")
    assert json.loads(ended.details)["reason"] == "consultation_cancelled"
    # No token ever reaches the trail, issued or refused.
    trail = json.dumps([e.details for e in await app[SERVICES].store.all_audit()])
    assert booking.first_patient_token is not None
    assert booking.first_patient_token not in trail and "Alice" not in trail


async def test_an_issued_token_is_not_a_refusal(
    app: web.Application, accounts: Accounts, clock: ManualClock, doctor: Staff
) -> None:
    booking = await book(accounts, doctor, clock)
    await booking.doctor_token()
    assert await refusals(app) == []
