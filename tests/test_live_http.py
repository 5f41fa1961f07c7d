"""GET /api/waiting (the dashboard's view of its waiting rooms) and GET /api/ice-policy."""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from config import Settings, TurnSettings
from signaling.app import create_app
from signaling.clock import ManualClock
from signaling.protocol import Admitted, Waiting
from tests.conftest import Accounts, Staff
from tests.rtc import book, join

pytestmark = pytest.mark.both_stores


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
    # An ordinary request would have kept it: the session is gone, not merely hidden.
    assert (await doctor.client.get("/api/me")).status == 401


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


@pytest.mark.parametrize("path", ["/api/waiting", "/api/ice-policy"])
async def test_documented_in_openapi(client: TestClient[Any, Any], path: str) -> None:
    document = await (await client.get("/api/openapi.json")).json()
    assert "get" in document["paths"][path]
