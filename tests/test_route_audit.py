"""What the API routes write to the trail (one helper, http_api.audit_request): the actor and
its role from the request, the client's address, on both backends."""

from __future__ import annotations

import json

import pytest
from aiohttp import web

from signaling.clock import ManualClock
from signaling.keys import SERVICES
from tests.conftest import Accounts, Staff
from tests.rtc import book

pytestmark = pytest.mark.both_stores


async def test_a_doctor_made_admin_takes_the_doctors_seat_and_the_trail_says_doctor(
    app: web.Application, accounts: Accounts, clock: ManualClock, doctor: Staff, admin: Staff
) -> None:
    booking = await book(accounts, doctor, clock)
    resp = await admin.post(f"/api/users/{doctor.user['id']}/role", json={"role": "admin"})
    assert resp.status == 200, await resp.text()
    promoted = await accounts.sign_in("dr.martin", totp=doctor.totp)
    assert promoted.user["role"] == "admin"

    resp = await promoted.post(
        "/api/room-tokens", json={"consultation_id": booking.consultation_id}
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["role"] == "doctor"
    entries = await app[SERVICES].store.all_audit()
    issued = [e for e in entries if e.action == "token.issued"][-1]
    # The role the entry names is the seat taken, not the account's role.
    assert (issued.actor, issued.actor_role, issued.target, issued.address) == (
        doctor.user["id"],
        "doctor",
        booking.consultation_id,
        "127.0.0.1",
    )
    assert json.loads(issued.details) == {"role": "doctor"}


async def test_a_patient_redeeming_a_link_is_written_as_the_patient(
    app: web.Application, accounts: Accounts, clock: ManualClock, doctor: Staff
) -> None:
    booking = await book(accounts, doctor, clock)
    entries = await app[SERVICES].store.all_audit()
    issued = [e for e in entries if e.action == "token.issued"]
    assert [(e.actor, e.actor_role, e.target, e.address) for e in issued] == [
        ("patient", "patient", booking.consultation_id, "127.0.0.1")
    ]
    assert json.loads(issued[0].details) == {"role": "patient"}
