"""Invite generations: a re-issued or cancelled invite ends the patient sessions, room tokens
and room seats obtained with the earlier link, and the doctor sees which link a waiting
patient came through."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from signaling.clock import ManualClock
from signaling.keys import SERVICES
from signaling.live.protocol import Lobby, PatientLeft, PeerLeft, RelayedOffer, Waiting
from signaling.models import AuditEntry
from tests.conftest import Accounts, Staff, wait_until
from tests.rtc import (
    RECEIVE_TIMEOUT,
    Booking,
    SignalClient,
    book,
    connect,
    enter_call,
    join,
    knocking,
    make_sdp,
    silent,
)

pytestmark = pytest.mark.both_stores

# Every endpoint a patient session opens: (method, path, body).
PATIENT_ENDPOINTS = [
    ("GET", "/api/patient/session", None),
    ("POST", "/api/room-tokens", "consultation"),
    ("GET", "/api/ice-policy", None),
]


async def reissue(doctor: Staff, booking: Booking) -> dict[str, Any]:
    resp = await doctor.post(f"/api/consultations/{booking.consultation_id}/invite")
    assert resp.status == 200, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


async def redeem(accounts: Accounts, doctor: Staff, issued: dict[str, Any]) -> Booking:
    """The real patient opens the new link and types the new code."""
    patient = accounts.new_session()
    invite = issued["invite_url"].rsplit("/join/", 1)[1]
    resp = await patient.post(
        "/api/invites/redeem", json={"invite": invite, "access_code": issued["access_code"]}
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    return Booking(
        issued["consultation"]["id"], doctor, patient, body["csrf_token"], body["room_token"]
    )


async def patient_call(booking: Booking, method: str, path: str, body: str | None) -> Any:
    json_body = {"consultation_id": booking.consultation_id} if body else None
    return await booking.patient.request(
        method, path, json=json_body, headers={"X-CSRF-Token": booking.patient_csrf}
    )


async def close_code_sent(signal: SignalClient) -> int:
    """The code in the server's close frame (aiohttp's own close_code says 1006 when its
    answering close frame finds the socket already shut, which the server does at once)."""
    msg = await signal.ws.receive(timeout=RECEIVE_TIMEOUT)
    assert msg.type is aiohttp.WSMsgType.CLOSE, msg
    return int(msg.data)


async def entries(app: web.Application, action: str) -> list[AuditEntry]:
    return [e for e in await app[SERVICES].store.all_audit() if e.action == action]


async def entries_written(app: web.Application, action: str) -> list[AuditEntry]:
    """The entries of ``action`` once there is one: a room writes its entries after it has told
    the sockets, so a test that heard the message may read the trail a moment too early."""
    return await wait_until(lambda: entries(app, action), within=5)


def details(entry: AuditEntry) -> dict[str, Any]:
    return dict(json.loads(entry.details)) if entry.details else {}


async def test_a_leaked_patient_session_is_refused_on_every_endpoint_after_a_new_link(
    app: web.Application, accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    leaked = await book(accounts, doctor, clock)  # someone else got the link and the code
    for method, path, body in PATIENT_ENDPOINTS:
        resp = await patient_call(leaked, method, path, body)
        assert resp.status == 200, (path, await resp.text())
    issued = await reissue(doctor, leaked)
    assert issued["consultation"]["invite_generation"] == 2
    [ended] = await entries(app, "patient.sessions_ended")
    assert (ended.actor, ended.target) == (doctor.user["id"], leaked.consultation_id)
    assert details(ended) == {"reason": "invite_reissued", "generation": 1}
    for method, path, body in PATIENT_ENDPOINTS:
        resp = await patient_call(leaked, method, path, body)
        assert resp.status == 410, (path, await resp.text())
        error = (await resp.json())["error"]
        assert error["code"] == "invite_superseded", path
        assert "new link" in error["message"]
    refused = await entries(app, "patient.session_refused")
    assert len(refused) == len(PATIENT_ENDPOINTS)
    for entry in refused:
        assert (entry.actor, entry.actor_role, entry.outcome) == ("patient", "patient", "refused")
        assert entry.target == leaked.consultation_id
        assert details(entry)["reason"] == "invite_superseded"
        assert details(entry)["generation"] == 1
    # Refused, not forgotten: the next request gets the same clear answer.
    resp = await patient_call(leaked, "GET", "/api/patient/session", None)
    assert (await resp.json())["error"]["code"] == "invite_superseded"
    # The patient with the new link gets in.
    real = await redeem(accounts, doctor, issued)
    for method, path, body in PATIENT_ENDPOINTS:
        resp = await patient_call(real, method, path, body)
        assert resp.status == 200, (path, await resp.text())


async def test_a_token_minted_before_the_new_link_cannot_displace_the_admitted_patient(
    app: web.Application,
    client: TestClient[Any, Any],
    accounts: Accounts,
    doctor: Staff,
    clock: ManualClock,
) -> None:
    leaked = await book(accounts, doctor, clock)
    old_token = await leaked.patient_token()  # good for 120 s, minted under link #1
    real = await redeem(accounts, doctor, await reissue(doctor, leaked))
    doctor_ws, _, patient_ws, _ = await enter_call(client, real)
    intruder = await connect(client)
    await intruder.send({"type": "join", "v": 1, "token": old_token})
    await intruder.expect_error("invite_superseded")
    assert await close_code_sent(intruder) == 4410
    # The admitted patient was not pushed out (no 4000 "replaced"), the doctor heard nothing.
    assert await silent(patient_ws)
    assert await silent(doctor_ws)
    await doctor_ws.send({"type": "offer", "sdp": make_sdp()})
    await patient_ws.expect(RelayedOffer)
    [refusal] = [
        e
        for e in await entries_written(app, "signaling.token_refused")
        if details(e).get("reason") == "invite_superseded"
    ]
    assert refusal.outcome == "refused"
    await doctor_ws.close()
    await patient_ws.close()


async def test_a_new_link_ends_the_old_patient_in_the_call(
    app: web.Application,
    client: TestClient[Any, Any],
    accounts: Accounts,
    doctor: Staff,
    clock: ManualClock,
) -> None:
    booking = await book(accounts, doctor, clock)
    doctor_ws, _, patient_ws, patient_welcome = await enter_call(client, booking)
    await reissue(doctor, booking)
    await patient_ws.expect_error("invite_superseded")
    assert await close_code_sent(patient_ws) == 4410
    left = await doctor_ws.expect(PeerLeft)
    assert (left.role, left.reason) == ("patient", "superseded")
    lobby = await doctor_ws.expect(Lobby)
    assert lobby.waiting is None
    # The doctor is told this patient cannot come back through their link.
    assert lobby.left == PatientLeft(reason="superseded", may_return=False)
    # Its place cannot be taken back with the resume secret either.
    back = await connect(client)
    await back.send({"type": "resume", "v": 1, "resume": patient_welcome.resume})
    await back.expect_error("token_invalid")
    [ended] = await entries_written(app, "signaling.superseded")
    assert (ended.actor, ended.actor_role, ended.outcome) == ("patient", "patient", "ended")
    assert ended.target == booking.consultation_id
    assert details(ended)["generation"] == 1
    calls = [details(e).get("reason") for e in await entries_written(app, "call.ended")]
    assert calls == ["superseded"]
    await doctor_ws.close()


async def test_a_new_link_ends_the_old_patient_in_the_waiting_room(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    doctor_ws, _, patient_ws, _ = await knocking(client, booking)
    await reissue(doctor, booking)
    await patient_ws.expect_error("invite_superseded")
    assert await close_code_sent(patient_ws) == 4410
    lobby = await doctor_ws.expect(Lobby)
    assert lobby.waiting is None
    assert lobby.left == PatientLeft(reason="superseded", may_return=False)
    resp = await doctor.client.get("/api/waiting")
    assert (await resp.json())["waiting"] == []
    await doctor_ws.close()


async def test_a_patient_who_left_comes_back_without_the_code_until_a_new_link(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    doctor_ws, _, patient_ws, _ = await knocking(client, booking)
    await patient_ws.send({"type": "hang_up"})
    lobby = await doctor_ws.expect(Lobby)
    assert lobby.waiting is None
    assert lobby.left == PatientLeft(reason="left", may_return=True)
    # The same browser (its patient cookie) comes back: its session still answers, a fresh
    # room token takes the seat again, and the doctor sees the patient wait, with no "left".
    resp = await patient_call(booking, "GET", "/api/patient/session", None)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["consultation"]["consultation_id"] == booking.consultation_id
    back, welcome = await join(client, await booking.patient_token())
    assert welcome.state == "waiting"
    await back.expect(Waiting)
    lobby = await doctor_ws.expect(Lobby)
    assert lobby.waiting is not None and lobby.left is None
    await back.send({"type": "hang_up"})
    assert (await doctor_ws.expect(Lobby)).left == PatientLeft(reason="left", may_return=True)
    # A new link ends the remembered session: no way back without the new link and code.
    await reissue(doctor, booking)
    resp = await patient_call(booking, "GET", "/api/patient/session", None)
    assert resp.status == 410
    assert (await resp.json())["error"]["code"] == "invite_superseded"
    resp = await patient_call(booking, "POST", "/api/room-tokens", "consultation")
    assert (await resp.json())["error"]["code"] == "invite_superseded"
    await doctor_ws.close()


async def test_cancelling_ends_the_patient_sessions(
    app: web.Application, accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    resp = await doctor.post(f"/api/consultations/{booking.consultation_id}/cancel")
    assert resp.status == 200, await resp.text()
    [ended] = await entries(app, "patient.sessions_ended")
    assert details(ended) == {"reason": "cancelled", "generation": 1}
    for method, path, body in PATIENT_ENDPOINTS:
        resp = await patient_call(booking, method, path, body)
        assert resp.status == 410, (path, await resp.text())
        assert (await resp.json())["error"]["code"] == "consultation_cancelled", path
    refused = await entries(app, "patient.session_refused")
    assert [details(e)["reason"] for e in refused] == ["consultation_cancelled"] * len(
        PATIENT_ENDPOINTS
    )


async def test_waiting_entries_carry_the_link_generation(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    first = await book(accounts, doctor, clock)
    doctor_ws, _ = await join(client, await first.doctor_token())
    await doctor_ws.expect(Lobby)
    patient_ws, _ = await join(client, await first.patient_token())
    await patient_ws.expect(Waiting)
    lobby = await doctor_ws.expect(Lobby)
    assert lobby.waiting is not None and lobby.waiting.invite_generation == 1
    [entry] = (await (await doctor.client.get("/api/waiting")).json())["waiting"]
    assert (entry["invite_generation"], entry["latest_invite_generation"]) == (1, 1)
    # Link #2: the patient of link #1 is shown out, the one of link #2 waits.
    second = await redeem(accounts, doctor, await reissue(doctor, first))
    assert (await doctor_ws.expect(Lobby)).waiting is None
    patient_ws, _ = await join(client, await second.patient_token())
    await patient_ws.expect(Waiting)
    lobby = await doctor_ws.expect(Lobby)
    assert lobby.waiting is not None and lobby.waiting.invite_generation == 2
    [entry] = (await (await doctor.client.get("/api/waiting")).json())["waiting"]
    assert (entry["invite_generation"], entry["latest_invite_generation"]) == (2, 2)
    await doctor_ws.close()
    await patient_ws.close()
