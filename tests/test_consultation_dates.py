"""Dates and durations at the HTTP edge are bounded, and a stored row out of range (an old
database) never breaks a list: it is shown clamped and can still be cancelled and erased."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from signaling.api.api_types import MAX_DAYS_AHEAD
from signaling.api.views import iso
from signaling.clock import ManualClock
from signaling.keys import SERVICES
from signaling.models import Consultation
from tests.conftest import Staff

pytestmark = pytest.mark.both_stores

YEAR_9999 = "9999-12-31T22:00:00Z"


def body(start: str, **overrides: Any) -> dict[str, Any]:
    return {"patient_name": "Camille Durand", "scheduled_start": start, **overrides}


async def refused(staff: Staff, json: dict[str, Any]) -> str:
    resp = await staff.post("/api/consultations", json=json)
    assert resp.status == 400, await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] == "invalid_body"
    return str(error["message"])


async def test_a_far_future_start_is_refused_and_nothing_is_stored(
    app: web.Application, doctor: Staff, clock: ManualClock
) -> None:
    store = app[SERVICES].store
    audit_before = len(await store.all_audit())
    message = await refused(doctor, body(YEAR_9999, duration_minutes=240))
    assert "scheduled_start" in message and f"{MAX_DAYS_AHEAD} days" in message
    for start in (
        "9999-12-31T23:59:59-14:00",  # past year 9999 once in UTC
        "0001-01-01T00:00:00+14:00",  # before year 1 once in UTC
        iso(clock.now() + (MAX_DAYS_AHEAD + 1) * 86400),
    ):
        assert "scheduled_start" in await refused(doctor, body(start))
    for duration in (4, 241, 10**30):
        assert "duration_minutes" in await refused(
            doctor, body(iso(clock.now()), duration_minutes=duration)
        )
    assert await store.list_consultations(None) == []
    assert len(await store.all_audit()) == audit_before
    resp = await doctor.client.get("/api/consultations")
    assert resp.status == 200 and (await resp.json())["consultations"] == []
    # The bounds themselves are accepted.
    latest = iso(clock.now() + MAX_DAYS_AHEAD * 86400)
    resp = await doctor.post("/api/consultations", json=body(latest, duration_minutes=240))
    assert resp.status == 201, await resp.text()


def stored_row(cid: str, doctor_id: str, clock: ManualClock, **changes: Any) -> Consultation:
    row = Consultation(
        id=cid,
        doctor_id=doctor_id,
        patient_name="Old Row",
        scheduled_start=clock.now() + 3600,
        duration_minutes=30,
        note="",
        status="scheduled",
        created_at=clock.now(),
        invite_nonce="n",
        access_code_hash="h",
    )
    return row.evolve(**changes)


@pytest.mark.parametrize(
    "bad",
    [
        {"scheduled_start": 253402297200.0, "duration_minutes": 240},  # 9999-12-31T23:00Z
        {"scheduled_start": 1e20},
        {"scheduled_start": -1e20},
        {"duration_minutes": 10**12},
    ],
)
async def test_a_stored_row_out_of_range_still_lists_and_can_be_cancelled_and_erased(
    app: web.Application,
    doctor: Staff,
    admin: Staff,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
    bad: dict[str, Any],
) -> None:
    store = app[SERVICES].store
    good = await doctor.post("/api/consultations", json=body(iso(clock.now() + 600)))
    assert good.status == 201
    good_id = (await good.json())["consultation"]["id"]
    bad_id = "f" * 32
    await store.create_consultation(stored_row(bad_id, doctor.user["id"], clock, **bad))

    with caplog.at_level(logging.WARNING, logger="teleconsult.views"):
        for staff in (doctor, admin):
            resp = await staff.client.get("/api/consultations")
            assert resp.status == 200, await resp.text()
            listed = {c["id"]: c for c in (await resp.json())["consultations"]}
            assert set(listed) == {good_id, bad_id}
            shown = listed[bad_id]
            assert shown["scheduled_start"] <= shown["scheduled_end"] <= "9999-12-31T23:59:59Z"
            assert shown["invite_expires"] <= "9999-12-31T23:59:59Z"
        resp = await doctor.client.get(f"/api/consultations/{bad_id}")
        assert resp.status == 200, await resp.text()
    warnings = [r for r in caplog.records if bad_id in r.getMessage()]
    assert warnings and all(r.levelno == logging.WARNING for r in warnings)

    resp = await doctor.post(f"/api/consultations/{bad_id}/invite")
    assert resp.status == 200, await resp.text()
    resp = await doctor.post(f"/api/consultations/{bad_id}/cancel")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["status"] == "cancelled"
    resp = await admin.post(f"/api/consultations/{bad_id}/erase")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["erased"] is True
    resp = await doctor.client.get("/api/consultations")
    assert resp.status == 200


async def test_audit_period_filter_is_bounded(admin: Staff, clock: ManualClock) -> None:
    for path in ("/api/audit", "/api/audit/export"):
        for params in (
            {"since": "9999-12-31T23:59:59-14:00"},
            {"until": "0001-01-01T00:00:00+14:00"},
            {"since": "1969-12-31T23:59:59Z"},
            {"until": iso(clock.now() + (MAX_DAYS_AHEAD + 1) * 86400)},
            {"since": iso(clock.now()), "until": iso(clock.now() - 60)},
        ):
            resp = await admin.client.get(path, params=params)
            assert resp.status == 400, (path, params, await resp.text())
            error = (await resp.json())["error"]
            assert error["code"] == "invalid_body"
            assert next(iter(params)) in error["message"] or "until" in error["message"]
    resp = await admin.client.get(
        "/api/audit/incident", params={"subject": "x", "since": "9999-12-31T23:59:59-14:00"}
    )
    assert resp.status == 400 and "since" in (await resp.json())["error"]["message"]
    resp = await admin.client.get(
        "/api/audit", params={"since": "1970-01-01T00:00:00Z", "until": iso(clock.now() + 60)}
    )
    assert resp.status == 200, await resp.text()


async def test_openapi_states_the_bounds(client: TestClient[Any, Any]) -> None:
    doc = await (await client.get("/api/openapi.json")).json()
    props = doc["components"]["schemas"]["CreateConsultationRequest"]["properties"]
    assert (props["duration_minutes"]["minimum"], props["duration_minutes"]["maximum"]) == (5, 240)
    assert f"at most {MAX_DAYS_AHEAD} days ahead" in props["scheduled_start"]["description"]
    for path in ("/api/audit", "/api/audit/export", "/api/audit/incident"):
        params = {p["name"]: p for p in doc["paths"][path]["get"]["parameters"]}
        for name in ("since", "until"):
            assert "1970-01-01" in json.dumps(params[name]["schema"]), (path, name)
        assert "400" in doc["paths"][path]["get"]["responses"]
