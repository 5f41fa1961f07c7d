"""After the call: the consultation keeps when its call started and ended, why, and how many
files went through it (counted from the doctor's page, never their content); and editing a
consultation (time, duration, name, note) keeps its link. Every store backend."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from signaling.clock import ManualClock
from signaling.keys import SERVICES
from signaling.live.protocol import Ended, ErrorMessage, Lobby, PeerLeft, Pong
from tests.conftest import Accounts, Staff, wait_until
from tests.rtc import Booking, book, enter_call, join, knocking, let_in

pytestmark = pytest.mark.both_stores


async def view(booking: Booking) -> dict[str, Any]:
    resp = await booking.doctor.client.get(f"/api/consultations/{booking.consultation_id}")
    assert resp.status == 200, await resp.text()
    return dict(await resp.json())


def iso_at(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


async def test_the_row_says_when_the_call_ran_how_many_files_and_that_the_doctor_ended_it(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    before = await view(booking)
    assert (before["call_started_at"], before["call_end"], before["files_exchanged"]) == (
        None,
        None,
        0,
    )
    started = clock.now()
    doctor_ws, _, patient_ws, _ = await enter_call(client, booking)
    await wait_until(lambda: _started(booking), within=20)
    for size in (1200, 0):
        await doctor_ws.send({"type": "file_exchanged", "size": size})
    # A ping answered after them: the two counts are written (one connection, in order).
    await doctor_ws.send({"type": "ping", "id": 7})
    await doctor_ws.expect(Pong)
    clock.advance(17 * 60)
    await doctor_ws.send({"type": "hang_up", "end": True})
    assert (await patient_ws.expect(Ended)).reason == "ended_by_doctor"

    async def ended() -> bool:
        return bool((await view(booking))["call_end"] == "doctor")

    await wait_until(ended, within=20)
    after = await view(booking)
    assert after["call_started_at"] == iso_at(started)
    assert after["call_ended_at"] == iso_at(started + 17 * 60)
    assert after["files_exchanged"] == 2
    assert after["status"] == "ended"


async def _started(booking: Booking) -> bool:
    return (await view(booking))["call_started_at"] is not None


async def test_a_patient_who_leaves_ends_the_call_and_a_new_call_keeps_the_first_start(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    first = clock.now()
    doctor_ws, _, patient_ws, _ = await enter_call(client, booking)
    await wait_until(lambda: _started(booking), within=20)
    clock.advance(60)
    await patient_ws.send({"type": "hang_up"})
    assert (await doctor_ws.expect(PeerLeft)).reason == "left"
    await doctor_ws.expect(Lobby)

    async def patient_ended() -> bool:
        return bool((await view(booking))["call_end"] == "patient")

    await wait_until(patient_ended, within=20)
    summary = await view(booking)
    assert summary["call_ended_at"] == iso_at(first + 60)
    # The doctor left the call without ending it: the consultation stays open.
    assert summary["status"] == "scheduled"


async def test_file_counts_come_from_the_doctor_in_a_call_only_and_are_bounded(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    doctor_ws, _, patient_ws, _ = await enter_call(client, booking)
    await patient_ws.send({"type": "file_exchanged", "size": 10})
    assert (await patient_ws.expect(ErrorMessage)).code == "forbidden"
    await doctor_ws.send({"type": "file_exchanged", "size": 10 * 1024 * 1024 + 1})
    assert (await doctor_ws.expect(ErrorMessage)).code == "malformed_message"
    await doctor_ws.send({"type": "file_exchanged", "size": 5, "name": "scan.pdf"})
    assert (await doctor_ws.expect(ErrorMessage)).code == "malformed_message"
    await patient_ws.send({"type": "hang_up"})
    await doctor_ws.expect(PeerLeft)
    await doctor_ws.expect(Lobby)
    # Out of a call: nothing to count.
    await doctor_ws.send({"type": "file_exchanged", "size": 5})
    assert (await doctor_ws.expect(ErrorMessage)).code == "invalid_state"
    assert (await view(booking))["files_exchanged"] == 0


async def test_editing_changes_time_name_and_note_keeps_the_link_and_audits_no_value(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    path = f"/api/consultations/{booking.consultation_id}/edit"
    later = clock.now() + 3 * 3600
    body = {
        "scheduled_start": iso_at(later),
        "duration_minutes": 45,
        "patient_name": "  Camille Durand-Roy ",
        "note": "Secret follow-up",
    }
    resp = await doctor.post(path, json=body)
    assert resp.status == 200, await resp.text()
    edited = await resp.json()
    assert edited["patient_name"] == "Camille Durand-Roy"
    assert edited["note"] == "Secret follow-up"
    assert (edited["scheduled_start"], edited["duration_minutes"]) == (iso_at(later), 45)
    # The patient's page, on the same session and link, shows the new time.
    resp = await booking.patient.get("/api/patient/session")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["consultation"]["scheduled_start"] == iso_at(later)
    # A duration alone keeps the time.
    resp = await doctor.post(path, json={"duration_minutes": 20})
    assert (await resp.json())["scheduled_start"] == iso_at(later)
    assert client.app is not None
    entries = [
        e for e in await client.app[SERVICES].store.all_audit() if e.action == "consultation.edited"
    ]
    assert [json.loads(e.details)["fields"] for e in entries] == [
        "duration_minutes,note,patient_name,scheduled_start",
        "duration_minutes,scheduled_start",
    ]
    for e in entries:
        assert "Camille" not in e.details and "Secret" not in e.details


async def test_a_renamed_patient_who_waits_is_shown_under_the_new_name(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    doctor_ws, _, patient_ws, _ = await knocking(client, booking)
    path = f"/api/consultations/{booking.consultation_id}/edit"
    resp = await doctor.post(path, json={"patient_name": "Camille Durand-Roy"})
    assert resp.status == 200, await resp.text()
    # The doctor's waiting room says the new name at once, for the same waiting patient.
    lobby = await doctor_ws.expect(Lobby)
    assert lobby.waiting is not None and lobby.waiting.name == "Camille Durand-Roy"
    # A note alone changes nothing in the room: no message.
    resp = await doctor.post(path, json={"note": "x"})
    assert resp.status == 200, await resp.text()
    await doctor_ws.send({"type": "ping"})
    await doctor_ws.expect(Pong)
    # The doctor's page opened again sees the new name too; the call goes on with it.
    await doctor_ws.close()
    again, _ = await join(client, await booking.doctor_token())
    lobby = await again.expect(Lobby)
    assert lobby.waiting is not None and lobby.waiting.name == "Camille Durand-Roy"
    await let_in(again, patient_ws)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 400, "invalid_body"),
        ({"patient_name": "   "}, 400, "invalid_body"),
        ({"patient_name": ""}, 400, "invalid_body"),
        ({"patient_name": "x" * 121}, 400, "invalid_body"),
        ({"note": "n" * 2001}, 400, "invalid_body"),
        ({"duration_minutes": 0}, 400, "invalid_body"),
        ({"scheduled_start": "2000-01-01T00:00:00Z"}, 400, "invalid_body"),
        ({"scheduled_start": "tomorrow"}, 400, "invalid_body"),
        ({"colour": "red"}, 400, "invalid_body"),
    ],
)
async def test_an_edit_is_validated_like_a_booking(
    client: TestClient[Any, Any],
    accounts: Accounts,
    doctor: Staff,
    clock: ManualClock,
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    booking = await book(accounts, doctor, clock)
    before = await view(booking)
    resp = await doctor.post(f"/api/consultations/{booking.consultation_id}/edit", json=body)
    assert resp.status == status, await resp.text()
    assert (await resp.json())["error"]["code"] == code
    assert await view(booking) == before


async def test_a_cancelled_consultation_is_not_edited(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    resp = await doctor.post(f"/api/consultations/{booking.consultation_id}/cancel")
    assert resp.status == 200
    resp = await doctor.post(
        f"/api/consultations/{booking.consultation_id}/edit", json={"patient_name": "B"}
    )
    assert (await resp.json())["error"]["code"] == "consultation_cancelled"
