"""A staff session idle past ``security.session_idle_minutes`` is locked, not ended: data
endpoints answer ``session_locked``, the waiting-room stream keeps counting arrivals without
naming anyone, the password and a fresh code unlock it (wrong answers count like a failed
sign-in), and the absolute limit still ends it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from signaling.clock import ManualClock
from signaling.keys import SERVICES
from signaling.live.protocol import Waiting
from tests.conftest import PASSWORD, Accounts, Staff
from tests.rtc import book, join
from tests.test_live_http import app, open_stream  # noqa: F401 - app: short stream timings

pytestmark = pytest.mark.both_stores
IDLE = 30 * 60


async def error_code(resp: Any) -> tuple[int, str]:
    return resp.status, (await resp.json())["error"]["code"]


def unlock_body(staff: Staff, accounts: Accounts, password: str = PASSWORD) -> dict[str, str]:
    return {"password": password, "code": accounts.next_code(staff.totp)}


async def audit_actions(client: TestClient[Any, Any]) -> list[tuple[str, str, str]]:
    entries = await client.app[SERVICES].store.all_audit()
    return [
        (e.action, e.outcome, str(json.loads(e.details or "{}").get("reason", "")))
        for e in entries
        if e.action.startswith("session.")
    ]


async def test_idle_session_is_locked_and_data_endpoints_refuse(
    client: TestClient[Any, Any], doctor: Staff, clock: ManualClock
) -> None:
    state = await (await doctor.client.get("/api/auth/session")).json()
    assert state["locked"] is False
    assert state["idle_seconds"] == IDLE
    assert IDLE - 60 < state["locks_in_seconds"] <= IDLE
    clock.advance(IDLE + 1)
    for path in ("/api/me", "/api/consultations", "/api/waiting"):
        assert await error_code(await doctor.client.get(path)) == (401, "session_locked")
    resp = await doctor.post("/api/consultations", json={})
    assert await error_code(resp) == (401, "session_locked")
    state = await (await doctor.client.get("/api/auth/session")).json()
    assert state["locked"] is True
    assert state["locks_in_seconds"] == 0
    # Locked, not ended: a refused request does not unlock it, and it is recorded once.
    assert await error_code(await doctor.client.get("/api/me")) == (401, "session_locked")
    assert await audit_actions(client) == [("session.locked", "locked", "")]


async def test_unlock_with_password_and_code_restores_the_session(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    clock.advance(IDLE + 1)
    resp = await doctor.post("/api/auth/unlock", json=unlock_body(doctor, accounts))
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["csrf_token"] == doctor.csrf  # the same session, its page keeps working
    assert body["user"]["username"] == "dr.martin"
    assert (await doctor.client.get("/api/consultations")).status == 200
    # Its idle timer starts again from the unlock.
    clock.advance(IDLE - 60)
    assert (await doctor.client.get("/api/me")).status == 200
    assert await audit_actions(client) == [
        ("session.locked", "locked", ""),
        ("session.unlocked", "success", ""),
    ]


async def test_unlock_needs_the_csrf_token(doctor: Staff, clock: ManualClock) -> None:
    clock.advance(IDLE + 1)
    resp = await doctor.client.post("/api/auth/unlock", json={"password": PASSWORD, "code": "1"})
    assert await error_code(resp) == (403, "csrf_failed")


async def test_wrong_code_or_password_is_refused_counted_and_locks_out(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    clock.advance(IDLE + 1)
    good = accounts.next_code(doctor.totp)
    wrong = f"{(int(good) + 1) % 1_000_000:06d}"
    resp = await doctor.post("/api/auth/unlock", json={"password": PASSWORD, "code": wrong})
    assert await error_code(resp) == (401, "invalid_totp")
    resp = await doctor.post("/api/auth/unlock", json=unlock_body(doctor, accounts, "not it!!!!!!"))
    assert (await resp.json())["error"]["code"] == "wrong_password"
    # Still locked after the refusals.
    assert await error_code(await doctor.client.get("/api/me")) == (401, "session_locked")
    failures = [a for a in await audit_actions(client) if a[0] == "session.unlocked"]
    assert failures == [
        ("session.unlocked", "failure", "wrong_code"),
        ("session.unlocked", "failure", "wrong_password"),
    ]
    # They count with sign-in failures: three more make five, and the account is locked out.
    for _ in range(3):
        await doctor.post("/api/auth/unlock", json=unlock_body(doctor, accounts, "not it!!!!!!"))
    resp = await doctor.post("/api/auth/unlock", json=unlock_body(doctor, accounts))
    assert await error_code(resp) == (429, "account_locked")
    fresh = accounts.new_session()
    resp = await fresh.post("/api/auth/login", json={"username": "dr.martin", "password": PASSWORD})
    assert await error_code(resp) == (429, "account_locked")


async def test_absolute_limit_ends_a_locked_session(
    accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    clock.advance(IDLE + 1)
    assert await error_code(await doctor.client.get("/api/me")) == (401, "session_locked")
    clock.advance(12 * 3600)
    assert await error_code(await doctor.client.get("/api/me")) == (401, "not_authenticated")
    resp = await doctor.post("/api/auth/unlock", json=unlock_body(doctor, accounts))
    assert await error_code(resp) == (401, "not_authenticated")


async def test_sign_out_works_while_locked(doctor: Staff, clock: ManualClock) -> None:
    clock.advance(IDLE + 1)
    assert (await doctor.post("/api/auth/logout")).status == 204
    assert await error_code(await doctor.client.get("/api/auth/session")) == (
        401,
        "not_authenticated",
    )


async def test_locked_stream_counts_arrivals_without_names_then_names_after_unlock(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock, patient_name="Alice Patient")
    await booking.patient_token()  # the first, short-lived token: a fresh one is asked later
    stream = await open_stream(doctor)
    assert await stream.next_waiting() == []
    clock.advance(IDLE + 1)
    assert await stream.next_event() == ("session_locked", "{}")
    assert await stream.next_event() == ("waiting_count", '{"waiting_count":0}')
    patient, _ = await join(client, await booking.patient_token())
    await patient.expect(Waiting)
    event, data = await stream.next_event()
    assert (event, json.loads(data)) == ("waiting_count", {"waiting_count": 1})
    assert "Alice" not in data
    # A stream opened while locked says so first, and names nobody either.
    second = await open_stream(doctor)
    assert await second.next_event() == ("session_locked", "{}")
    assert await second.next_event() == ("waiting_count", '{"waiting_count":1}')
    second.response.close()

    resp = await doctor.post("/api/auth/unlock", json=unlock_body(doctor, accounts))
    assert resp.status == 200
    assert await stream.next_event() == ("session_unlocked", "{}")
    [entry] = await stream.next_waiting()
    assert entry["patient_name"] == "Alice Patient"
    stream.response.close()
    await patient.close()


async def test_locked_stream_ends_with_the_session(
    client: TestClient[Any, Any], doctor: Staff, clock: ManualClock
) -> None:
    stream = await open_stream(doctor)
    assert await stream.next_waiting() == []
    clock.advance(IDLE + 1)
    assert await stream.next_event() == ("session_locked", "{}")
    clock.advance(12 * 3600)
    assert await stream.next_event() == ("waiting_count", '{"waiting_count":0}')
    assert await stream.next_event() == ("session_ended", "{}")
    stream.response.release()
