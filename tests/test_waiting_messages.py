"""Messages from the staff to the waiting room, on every store: the patient who waits receives
the doctor's (or the secretariat's) preset or short text; nobody else may write; a bad
message or an empty waiting room is answered with its documented code; the text is kept
nowhere (audit entry, store, log records)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from signaling.api.routes_waiting_messages import MESSAGES_PER_MINUTE
from signaling.clock import ManualClock
from signaling.keys import SERVICES
from signaling.live.protocol import Lobby, StaffMessage, Waiting
from signaling.live.staff_messages import MAX_TEXT_CHARS, STAFF_PRESETS
from tests.conftest import Accounts, Staff
from tests.rtc import Booking, SignalClient, book, join, let_in, silent

pytestmark = pytest.mark.both_stores
# Words a test can look for everywhere the text must not be.
FREE_TEXT = "Bonjour Alice, le cabinet a un petit retard : merci de patienter."


def path(booking: Booking) -> str:
    return f"/api/consultations/{booking.consultation_id}/waiting-message"


async def answer(resp: Any) -> tuple[int, str]:
    body = await resp.json()
    return resp.status, body["error"]["code"] if "error" in body else ""


async def waiting_patient(client: TestClient[Any, Any], booking: Booking) -> SignalClient:
    patient_ws, _ = await join(client, await booking.patient_token())
    await patient_ws.expect(Waiting)
    return patient_ws


async def audit_details(app: web.Application) -> list[dict[str, Any]]:
    entries = await app[SERVICES].store.all_audit()
    return [
        {"actor_role": e.actor_role, "outcome": e.outcome, **json.loads(e.details)}
        for e in entries
        if e.action == "waiting.message_sent"
    ]


async def test_the_waiting_patient_receives_a_preset_and_a_free_text_kept_nowhere(
    app: web.Application,
    client: TestClient[Any, Any],
    accounts: Accounts,
    doctor: Staff,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    booking = await book(accounts, doctor, clock)
    patient_ws = await waiting_patient(client, booking)
    resp = await doctor.post(path(booking), json={"preset": "soon_10"})
    assert resp.status == 200, await resp.text()
    sent = await resp.json()
    assert sent["consultation_id"] == booking.consultation_id
    got = await patient_ws.expect(StaffMessage)
    assert (got.preset, got.text, got.from_role, got.sent_at) == (
        "soon_10",
        "",
        "doctor",
        clock.now(),
    )
    # Surrounding spaces go; the words are relayed as typed.
    resp = await doctor.post(path(booking), json={"text": f"  {FREE_TEXT} "})
    assert resp.status == 200, await resp.text()
    got = await patient_ws.expect(StaffMessage)
    assert (got.preset, got.text, got.from_role) == (None, FREE_TEXT, "doctor")
    # The trail says which preset, or that a text of that length was written: never the text.
    assert await audit_details(app) == [
        {"actor_role": "doctor", "outcome": "success", "kind": "soon_10", "length": 0},
        {"actor_role": "doctor", "outcome": "success", "kind": "free_text", "length": 65},
    ]
    store = app[SERVICES].store
    assert not any(FREE_TEXT in e.details for e in await store.all_audit())
    consultation = await store.get_consultation(booking.consultation_id)
    assert consultation is not None and FREE_TEXT not in repr(consultation)
    assert FREE_TEXT not in caplog.text
    assert "Bonjour" not in caplog.text
    await patient_ws.close()


async def test_every_preset_is_relayed_and_the_doctor_hears_nothing_back(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    patient_ws = await waiting_patient(client, booking)
    doctor_ws, _ = await join(client, await booking.doctor_token())
    await doctor_ws.expect(Lobby)
    for preset in STAFF_PRESETS:
        resp = await doctor.post(path(booking), json={"preset": preset})
        assert resp.status == 200, await resp.text()
        assert (await patient_ws.expect(StaffMessage)).preset == preset
    # The doctor's own seat in the room gets no copy (the dashboard has the answer).
    assert await silent(doctor_ws)
    await doctor_ws.close()
    await patient_ws.close()


async def test_the_doctors_assistant_may_write_and_the_patient_sees_it_is_the_secretariat(
    app: web.Application,
    client: TestClient[Any, Any],
    accounts: Accounts,
    doctor: Staff,
    admin: Staff,
    clock: ManualClock,
) -> None:
    await accounts.create("sec.anne", role="assistant")
    assistant = await accounts.sign_in("sec.anne")
    resp = await admin.post(
        f"/api/users/{assistant.user['id']}/assists", json={"doctor_ids": [doctor.user["id"]]}
    )
    assert resp.status == 200, await resp.text()
    booking = await book(accounts, doctor, clock)
    patient_ws = await waiting_patient(client, booking)
    resp = await assistant.post(path(booking), json={"preset": "running_late"})
    assert resp.status == 200, await resp.text()
    got = await patient_ws.expect(StaffMessage)
    assert (got.preset, got.from_role) == ("running_late", "assistant")
    # An admin sees every consultation but writes to no waiting room.
    resp = await admin.post(path(booking), json={"preset": "soon_10"})
    assert await answer(resp) == (403, "forbidden")
    assert await silent(patient_ws)
    [entry] = await audit_details(app)
    assert entry == {
        "actor_role": "assistant",
        "outcome": "success",
        "kind": "running_late",
        "length": 0,
        "for_doctor": doctor.user["id"],
    }
    await patient_ws.close()


async def test_a_doctor_of_another_consultation_is_answered_not_found(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    patient_ws = await waiting_patient(client, booking)
    await accounts.create("dr.other")
    other = await accounts.sign_in("dr.other")
    resp = await other.post(path(booking), json={"preset": "soon_10"})
    assert await answer(resp) == (404, "consultation_not_found")
    # Without the CSRF header, even the consultation's doctor is refused.
    resp = await doctor.client.post(path(booking), json={"preset": "soon_10"})
    assert await answer(resp) == (403, "csrf_failed")
    assert await silent(patient_ws)
    await patient_ws.close()


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({"preset": "see_you_never"}, "$.preset"),
        ({"text": "x" * (MAX_TEXT_CHARS + 1)}, "$.text"),
        ({"text": "first line\nsecond line"}, "one line of plain text"),
        ({"text": "ring the bell\x07"}, "one line of plain text"),
        ({"text": "abc\u202edcba"}, "one line of plain text"),  # a right-to-left override
        ({"text": "   "}, "must not be blank"),
        ({}, "either preset or text"),
        ({"preset": "soon_10", "text": "and words"}, "either preset or text"),
        ({"preset": "soon_10", "urgent": True}, "urgent"),
    ],
)
async def test_a_bad_message_is_refused_with_invalid_body_and_not_relayed(
    client: TestClient[Any, Any],
    accounts: Accounts,
    doctor: Staff,
    clock: ManualClock,
    body: dict[str, Any],
    said: str,
) -> None:
    booking = await book(accounts, doctor, clock)
    patient_ws = await waiting_patient(client, booking)
    resp = await doctor.post(path(booking), json=body)
    error = (await resp.json())["error"]
    assert (resp.status, error["code"]) == (400, "invalid_body")
    assert said in error["message"]
    # The refusal never quotes what was typed.
    for value in body.values():
        if isinstance(value, str) and len(value) > 3 and value != "see_you_never":
            assert value not in error["message"]
    assert await silent(patient_ws)
    await patient_ws.close()


async def test_a_free_text_of_the_maximum_length_passes(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    patient_ws = await waiting_patient(client, booking)
    text = "é" * MAX_TEXT_CHARS  # characters, not bytes
    resp = await doctor.post(path(booking), json={"text": text})
    assert resp.status == 200, await resp.text()
    assert (await patient_ws.expect(StaffMessage)).text == text
    await patient_ws.close()


async def test_nobody_waiting_is_answered_not_waiting_and_audited_as_failed(
    app: web.Application,
    client: TestClient[Any, Any],
    accounts: Accounts,
    doctor: Staff,
    clock: ManualClock,
) -> None:
    booking = await book(accounts, doctor, clock)
    # Not arrived yet.
    resp = await doctor.post(path(booking), json={"preset": "soon_10"})
    assert await answer(resp) == (409, "not_waiting")
    # Admitted: in the call, not in the waiting room any more.
    patient_ws = await waiting_patient(client, booking)
    doctor_ws, _ = await join(client, await booking.doctor_token())
    await doctor_ws.expect(Lobby)
    await let_in(doctor_ws, patient_ws)
    resp = await doctor.post(path(booking), json={"text": "still there?"})
    assert await answer(resp) == (409, "not_waiting")
    assert await silent(patient_ws)
    # Gone for good.
    await patient_ws.send({"type": "hang_up"})
    await patient_ws.close()
    resp = await doctor.post(path(booking), json={"preset": "soon_10"})
    assert await answer(resp) == (409, "not_waiting")
    assert [(e["outcome"], e["reason"], e["kind"]) for e in await audit_details(app)] == [
        ("failure", "not_waiting", "soon_10"),
        ("failure", "not_waiting", "free_text"),
        ("failure", "not_waiting", "soon_10"),
    ]
    await doctor_ws.close()


async def test_a_cancelled_consultation_is_answered_cancelled(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    resp = await doctor.post(f"/api/consultations/{booking.consultation_id}/cancel")
    assert resp.status == 200, await resp.text()
    resp = await doctor.post(path(booking), json={"preset": "soon_10"})
    assert await answer(resp) == (410, "consultation_cancelled")


async def test_a_seventh_message_within_a_minute_is_refused_and_the_next_minute_passes(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    patient_ws = await waiting_patient(client, booking)
    for _ in range(MESSAGES_PER_MINUTE):
        resp = await doctor.post(path(booking), json={"preset": "soon_10"})
        assert resp.status == 200, await resp.text()
        await patient_ws.expect(StaffMessage)
    resp = await doctor.post(path(booking), json={"preset": "soon_10"})
    assert await answer(resp) == (429, "rate_limited")
    assert await silent(patient_ws)  # the refused one never reached the patient
    clock.advance(61)
    resp = await doctor.post(path(booking), json={"preset": "soon_10"})
    assert resp.status == 200, await resp.text()
    await patient_ws.expect(StaffMessage)
    await patient_ws.close()
