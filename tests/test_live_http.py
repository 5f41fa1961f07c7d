"""GET /api/waiting and its event stream (the dashboard's view of its waiting rooms) and
GET /api/ice-policy."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from config import Settings, TurnSettings
from signaling.api.routes_live import MAX_STREAMS_PER_USER, STREAM_TIMING, StreamTiming
from signaling.app import create_app
from signaling.clock import ManualClock
from signaling.live.protocol import Admitted, Waiting
from tests.conftest import Accounts, Staff, wait_until
from tests.rtc import book, join

pytestmark = pytest.mark.both_stores
# Generous: an event that never comes fails the test after this, it is no speed measure.
EVENT_TIMEOUT = 10.0


@pytest.fixture
def app(settings: Settings, clock: ManualClock) -> web.Application:
    # Streams look for changes and re-check the session often, so tests wait little.
    app = create_app(settings, clock=clock)
    app[STREAM_TIMING] = StreamTiming(poll_seconds=0.05, heartbeat_seconds=0.1)
    return app


class EventStream:
    """The reading end of a text/event-stream response, one event (or comment) at a time."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next(self) -> tuple[str, str]:
        """(event name, data) of the next event, or ("", comment text) for a comment;
        ("eof", "") when the server closed the stream."""
        event, data = "", []
        while True:
            line = await asyncio.wait_for(self.response.content.readline(), EVENT_TIMEOUT)
            if not line:
                return "eof", ""
            text = line.decode().rstrip("\n")
            if text.startswith(":"):
                return "", text[1:].strip()
            if text.startswith("event: "):
                event = text[len("event: ") :]
            elif text.startswith("data: "):
                data.append(text[len("data: ") :])
            elif text == "" and event:
                return event, "\n".join(data)

    async def next_event(self) -> tuple[str, str]:
        """The next named event, skipping heartbeat comments (which never stop coming, so
        the whole wait has its own limit)."""

        async def skip_comments() -> tuple[str, str]:
            while True:
                event, data = await self.next()
                if event:
                    return event, data

        return await asyncio.wait_for(skip_comments(), EVENT_TIMEOUT)

    async def next_waiting(self) -> list[dict[str, Any]]:
        event, data = await self.next_event()
        assert event == "waiting", (event, data)
        return list(json.loads(data)["waiting"])


async def open_stream(staff: Staff) -> EventStream:
    resp = await staff.client.get("/api/waiting/events")
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    return EventStream(resp)


async def waiting_of(staff: Staff) -> list[dict[str, Any]]:
    resp = await staff.client.get("/api/waiting")
    assert resp.status == 200, await resp.text()
    return list((await resp.json())["waiting"])


async def test_doctor_sees_own_patient_waiting_and_not_once_admitted(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock, patient_name="Alice Patient")
    assert await waiting_of(doctor) == []
    patient, _ = await join(client, await booking.patient_token())
    await patient.expect(Waiting)
    [entry] = await waiting_of(doctor)
    assert entry["consultation_id"] == booking.consultation_id
    assert entry["patient_name"] == "Alice Patient"
    assert entry["waiting_since"].endswith("Z")
    # Admitted: no longer in the waiting room.
    doctor_ws, _ = await join(client, await booking.doctor_token())
    await doctor_ws.send({"type": "admit"})
    await patient.expect(Admitted)
    assert await waiting_of(doctor) == []
    await doctor_ws.close()
    await patient.close()


async def test_patient_who_left_is_no_longer_listed(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    patient, _ = await join(client, await booking.patient_token())
    await patient.expect(Waiting)
    assert len(await waiting_of(doctor)) == 1
    await patient.send({"type": "hang_up"})
    await patient.closed_with()
    assert await waiting_of(doctor) == []


async def test_another_doctors_waiting_patient_is_not_listed(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    patient, _ = await join(client, await booking.patient_token())
    await patient.expect(Waiting)
    await accounts.create("dr.other")
    other = await accounts.sign_in("dr.other")
    assert await waiting_of(other) == []
    assert len(await waiting_of(doctor)) == 1
    await patient.close()


async def test_admin_and_anonymous_are_refused(client: TestClient[Any, Any], admin: Staff) -> None:
    resp = await admin.client.get("/api/waiting")
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "forbidden"
    resp = await client.get("/api/waiting")
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "not_authenticated"


async def test_polling_does_not_keep_an_idle_session_alive(
    client: TestClient[Any, Any], doctor: Staff, clock: ManualClock
) -> None:
    # The dashboard polls every few seconds: 29 minutes of polls, then past the idle timeout.
    for _ in range(29):
        clock.advance(60)
        assert (await doctor.client.get("/api/waiting")).status == 200
    clock.advance(2 * 60)
    resp = await doctor.client.get("/api/waiting")
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "session_locked"
    # An ordinary request would have kept it alive: the session is locked for every request.
    resp = await doctor.client.get("/api/me")
    assert (await resp.json())["error"]["code"] == "session_locked"


async def test_stream_sends_an_arrival_and_the_admission(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock, patient_name="Alice Patient")
    stream = await open_stream(doctor)
    assert await stream.next_waiting() == []  # the current list at connect
    patient, _ = await join(client, await booking.patient_token())
    await patient.expect(Waiting)
    [entry] = await stream.next_waiting()
    assert entry["consultation_id"] == booking.consultation_id
    assert entry["patient_name"] == "Alice Patient"
    assert [entry] == await waiting_of(doctor)  # the same JSON as GET /api/waiting
    doctor_ws, _ = await join(client, await booking.doctor_token())
    await doctor_ws.send({"type": "admit"})
    await patient.expect(Admitted)
    assert await stream.next_waiting() == []
    stream.response.close()
    await doctor_ws.close()
    await patient.close()


async def test_stream_refuses_non_doctors(client: TestClient[Any, Any], admin: Staff) -> None:
    resp = await admin.client.get("/api/waiting/events")
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "forbidden"
    resp = await client.get("/api/waiting/events")
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "not_authenticated"


async def test_stream_locks_with_the_session_and_does_not_extend_it(
    client: TestClient[Any, Any], doctor: Staff, clock: ManualClock
) -> None:
    stream = await open_stream(doctor)
    assert await stream.next_waiting() == []
    # 29 minutes with the stream open, heartbeats (each re-checking the session) going on.
    for _ in range(29):
        clock.advance(60)
        assert await stream.next() == ("", "heartbeat")
    clock.advance(2 * 60)
    # Locked, not ended: the stream stays, with counts instead of names.
    assert await stream.next_event() == ("session_locked", "{}")
    assert await stream.next_event() == ("waiting_count", '{"waiting_count":0}')
    stream.response.close()
    # The stream did not keep the session: it is locked for every request.
    resp = await doctor.client.get("/api/me")
    assert (await resp.json())["error"]["code"] == "session_locked"


async def test_stream_ends_at_sign_out(
    client: TestClient[Any, Any], doctor: Staff, clock: ManualClock
) -> None:
    stream = await open_stream(doctor)
    assert await stream.next_waiting() == []
    assert (await doctor.post("/api/auth/logout")).status in (200, 204)
    assert await stream.next_event() == ("session_ended", "{}")
    assert await stream.next() == ("eof", "")
    stream.response.release()


async def test_streams_per_user_are_bounded(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff
) -> None:
    streams = [await open_stream(doctor) for _ in range(MAX_STREAMS_PER_USER)]
    resp = await doctor.client.get("/api/waiting/events")
    assert resp.status == 429
    error = (await resp.json())["error"]
    assert error["code"] == "too_many_connections"
    assert str(MAX_STREAMS_PER_USER) in error["message"]
    # Another doctor has a count of their own.
    await accounts.create("dr.other")
    other = await accounts.sign_in("dr.other")
    streams.append(await open_stream(other))
    # A closed stream frees its place (found at the next write, a heartbeat at the latest).
    streams[0].response.close()

    async def place_free() -> bool:
        resp = await doctor.client.get("/api/waiting/events")
        resp.close()
        return resp.status == 200

    await wait_until(place_free, within=EVENT_TIMEOUT, interval=0.1)
    for stream in streams:
        stream.response.close()


async def test_ice_policy_follows_the_relay_only_setting(
    aiohttp_client: Any, settings: Settings, clock: ManualClock, doctor: Staff
) -> None:
    resp = await doctor.client.get("/api/ice-policy")
    assert resp.status == 200
    assert await resp.json() == {"ice_transport_policy": "all"}

    secret = settings.storage.data_path / "turn.key"
    secret.write_text(base64.b64encode(b"0" * 32).decode())
    secret.chmod(0o600)
    relay = dataclasses.replace(
        settings,
        turn=TurnSettings(
            turn_urls=("turn:127.0.0.1:3478",), secret_file=str(secret), relay_only=True
        ),
    ).validate()
    relay_app = create_app(relay, clock=clock)
    relay_client: TestClient[Any, Any] = await aiohttp_client(relay_app)
    resp = await relay_client.get("/api/ice-policy")
    assert resp.status == 401  # pages ask with their session
    assert (await resp.json())["error"]["code"] == "not_authenticated"
    relay_accounts = Accounts(relay_app, clock, relay_client)
    try:
        await relay_accounts.create("dr.relay")
        relay_doctor = await relay_accounts.sign_in("dr.relay")
        resp = await relay_doctor.client.get("/api/ice-policy")
        assert await resp.json() == {"ice_transport_policy": "relay"}
    finally:
        for session in relay_accounts.sessions:
            await session.close()


@pytest.mark.parametrize("path", ["/api/waiting", "/api/waiting/events", "/api/ice-policy"])
async def test_documented_in_openapi(client: TestClient[Any, Any], path: str) -> None:
    document = await (await client.get("/api/openapi.json")).json()
    assert "get" in document["paths"][path]


async def test_stream_documented_as_event_stream(client: TestClient[Any, Any]) -> None:
    document = await (await client.get("/api/openapi.json")).json()
    ok = document["paths"]["/api/waiting/events"]["get"]["responses"]["200"]
    assert "text/event-stream" in ok["content"]


async def test_app_shutdown_ends_open_streams(
    client: TestClient[Any, Any], app: web.Application, doctor: Staff
) -> None:
    stream = await open_stream(doctor)
    assert await stream.next_waiting() == []
    await app.shutdown()  # what the server runs first when it stops
    assert await stream.next_event() == ("eof", "")
    stream.response.release()
