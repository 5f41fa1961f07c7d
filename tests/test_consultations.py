"""Consultations, patient invites (link + access code) and who may see what."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from signaling.api.views import iso
from signaling.clock import ManualClock
from signaling.keys import SERVICES
from tests.conftest import Accounts, Staff, new_session

pytestmark = pytest.mark.both_stores


def start_in(clock: ManualClock, minutes: float) -> str:
    return iso(clock.now() + minutes * 60)


async def create(doctor: Staff, clock: ManualClock, **overrides: Any) -> dict[str, Any]:
    body = {
        "patient_name": "Camille Durand",
        "scheduled_start": start_in(clock, 10),
        "duration_minutes": 30,
        "note": "follow-up",
    }
    body.update(overrides)
    resp = await doctor.post("/api/consultations", json=body)
    assert resp.status == 201, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


def invite_token(created: dict[str, Any]) -> str:
    url: str = created["invite_url"]
    assert "?" not in url  # never a token in a query string
    return url.rsplit("/join/", 1)[1]


async def test_doctor_creates_consultation_and_gets_link_and_code(
    doctor: Staff, clock: ManualClock
) -> None:
    created = await create(doctor, clock)
    assert created["invite_url"].startswith("http://localhost:8080/join/")
    assert len(created["access_code"]) == 6 and created["access_code"].isdigit()
    c = created["consultation"]
    assert c["patient_name"] == "Camille Durand"
    assert c["status"] == "scheduled"
    listed = await (await doctor.client.get("/api/consultations")).json()
    assert [x["id"] for x in listed["consultations"]] == [c["id"]]
    # The access code is shown once: it is in no later answer.
    shown = await (await doctor.client.get(f"/api/consultations/{c['id']}")).text()
    assert created["access_code"] not in shown


async def test_bad_consultation_bodies_are_refused_and_nothing_is_written(
    doctor: Staff, clock: ManualClock
) -> None:
    bad_bodies = [
        {"patient_name": "", "scheduled_start": start_in(clock, 10)},
        {"patient_name": "   ", "scheduled_start": start_in(clock, 10)},
        {"patient_name": "A", "scheduled_start": "tomorrow"},
        {"patient_name": "A", "scheduled_start": "2030-01-01T10:00:00"},  # no offset
        {"patient_name": "A", "scheduled_start": start_in(clock, 10), "duration_minutes": 1},
        {"patient_name": "A", "scheduled_start": start_in(clock, 10), "duration_minutes": "30"},
        {"patient_name": "A", "scheduled_start": start_in(clock, -120)},  # already over
        {"patient_name": "A", "scheduled_start": start_in(clock, 10), "extra": 1},
        {"patient_name": "A" * 121, "scheduled_start": start_in(clock, 10)},
    ]
    for body in bad_bodies:
        resp = await doctor.post("/api/consultations", json=body)
        assert resp.status == 400, body
        error = (await resp.json())["error"]
        assert error["code"] == "invalid_body"
        assert error["message"]
    resp = await doctor.client.post(
        "/api/consultations",
        data=b"{not json",
        headers={"X-CSRF-Token": doctor.csrf, "Content-Type": "application/json"},
    )
    assert resp.status == 400
    listed = await (await doctor.client.get("/api/consultations")).json()
    assert listed["consultations"] == []


async def test_oversized_body_is_refused_with_413(doctor: Staff, clock: ManualClock) -> None:
    body = {"patient_name": "A", "scheduled_start": start_in(clock, 10), "note": "x" * 70_000}
    resp = await doctor.post("/api/consultations", json=body)
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "payload_too_large"


async def test_doctor_sees_only_own_consultations_admin_sees_all(
    accounts: Accounts, doctor: Staff, admin: Staff, clock: ManualClock
) -> None:
    await accounts.create("dr.other")
    other = await accounts.sign_in("dr.other")
    mine = await create(doctor, clock)
    theirs = await create(other, clock, patient_name="Someone Else")
    ids = {
        c["id"]
        for c in (await (await doctor.client.get("/api/consultations")).json())["consultations"]
    }
    assert ids == {mine["consultation"]["id"]}
    resp = await doctor.client.get(f"/api/consultations/{theirs['consultation']['id']}")
    assert resp.status == 404
    resp = await doctor.post(f"/api/consultations/{theirs['consultation']['id']}/cancel")
    assert resp.status == 404
    all_ids = {
        c["id"]
        for c in (await (await admin.client.get("/api/consultations")).json())["consultations"]
    }
    assert all_ids == {mine["consultation"]["id"], theirs["consultation"]["id"]}


async def test_admin_cannot_create_consultations(admin: Staff, clock: ManualClock) -> None:
    resp = await admin.post(
        "/api/consultations", json={"patient_name": "A", "scheduled_start": start_in(clock, 10)}
    )
    assert resp.status == 403


async def test_patient_redeems_link_and_code_for_a_room_token(
    doctor: Staff, clock: ManualClock, client: TestClient[Any, Any]
) -> None:
    created = await create(doctor, clock)
    patient = new_session(client)
    try:
        resp = await patient.post("/api/invites/inspect", json={"invite": invite_token(created)})
        info = await resp.json()
        assert info["doctor_name"] == "Dr.Martin"
        resp = await patient.post(
            "/api/invites/redeem",
            json={"invite": invite_token(created), "access_code": created["access_code"]},
        )
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        assert body["room_token"]
        assert body["expires_in"] <= 120
        assert resp.cookies["tc_patient"]["httponly"]
        # The patient session gives fresh room tokens for this consultation only.
        resp = await patient.post(
            "/api/room-tokens",
            json={"consultation_id": created["consultation"]["id"]},
            headers={"X-CSRF-Token": body["csrf_token"]},
        )
        assert resp.status == 200
        assert (await resp.json())["role"] == "patient"
        resp = await patient.post(
            "/api/room-tokens",
            json={"consultation_id": "other"},
            headers={"X-CSRF-Token": body["csrf_token"]},
        )
        assert resp.status == 404
        # A patient session is no staff session.
        assert (await patient.get("/api/consultations")).status == 401
        # A reloaded page picks the appointment and CSRF token up again, without the code.
        resp = await patient.get("/api/patient/session")
        again = await resp.json()
        assert again["csrf_token"] == body["csrf_token"]
        assert again["consultation"]["consultation_id"] == created["consultation"]["id"]
        await doctor.post(f"/api/consultations/{created['consultation']['id']}/cancel")
        resp = await patient.get("/api/patient/session")
        assert (await resp.json())["error"]["code"] == "consultation_cancelled"
    finally:
        await patient.close()


async def test_doctor_gets_a_doctor_room_token_only_for_own_consultation(
    accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    created = await create(doctor, clock)
    cid = created["consultation"]["id"]
    resp = await doctor.post("/api/room-tokens", json={"consultation_id": cid})
    assert resp.status == 200
    assert (await resp.json())["role"] == "doctor"
    await accounts.create("dr.other")
    other = await accounts.sign_in("dr.other")
    resp = await other.post("/api/room-tokens", json={"consultation_id": cid})
    assert resp.status == 404


async def test_five_wrong_codes_lock_the_invite(
    doctor: Staff, clock: ManualClock, client: TestClient[Any, Any]
) -> None:
    created = await create(doctor, clock)
    token = invite_token(created)
    right = created["access_code"]
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for attempt in range(4):
        resp = await client.post(
            "/api/invites/redeem", json={"invite": token, "access_code": wrong}
        )
        body = await resp.json()
        assert body["error"]["code"] == "invalid_access_code"
        assert body["error"]["details"]["attempts_left"] == 4 - attempt
    resp = await client.post("/api/invites/redeem", json={"invite": token, "access_code": wrong})
    assert (await resp.json())["error"]["code"] == "invite_locked"
    resp = await client.post("/api/invites/redeem", json={"invite": token, "access_code": right})
    assert resp.status == 423
    assert (await resp.json())["error"]["code"] == "invite_locked"
    # The doctor issues a new link and code; the old link stays dead.
    resp = await doctor.post(f"/api/consultations/{created['consultation']['id']}/invite")
    fresh = await resp.json()
    resp = await client.post("/api/invites/redeem", json={"invite": token, "access_code": right})
    assert (await resp.json())["error"]["code"] == "invite_invalid"
    resp = await client.post(
        "/api/invites/redeem",
        json={"invite": invite_token(fresh), "access_code": fresh["access_code"]},
    )
    assert resp.status == 200


async def test_invite_expires_after_scheduled_end_plus_grace(
    doctor: Staff, clock: ManualClock, client: TestClient[Any, Any]
) -> None:
    created = await create(doctor, clock)  # starts in 10 min, lasts 30, grace 60
    token = invite_token(created)
    clock.advance((10 + 30 + 60) * 60 - 5)
    resp = await client.post("/api/invites/inspect", json={"invite": token})
    assert resp.status == 200
    clock.advance(10)
    for path, body in (
        ("/api/invites/inspect", {"invite": token}),
        ("/api/invites/redeem", {"invite": token, "access_code": created["access_code"]}),
    ):
        resp = await client.post(path, json=body)
        assert resp.status == 410
        assert (await resp.json())["error"]["code"] == "invite_expired"


async def test_cancelled_consultation_revokes_the_link(
    doctor: Staff, clock: ManualClock, client: TestClient[Any, Any]
) -> None:
    created = await create(doctor, clock)
    cid = created["consultation"]["id"]
    resp = await doctor.post(f"/api/consultations/{cid}/cancel")
    assert (await resp.json())["status"] == "cancelled"
    resp = await client.post(
        "/api/invites/redeem",
        json={"invite": invite_token(created), "access_code": created["access_code"]},
    )
    assert (await resp.json())["error"]["code"] == "consultation_cancelled"
    resp = await doctor.post("/api/room-tokens", json={"consultation_id": cid})
    assert (await resp.json())["error"]["code"] == "consultation_cancelled"
    resp = await doctor.post(f"/api/consultations/{cid}/cancel")
    assert resp.status == 410


async def test_tampered_invite_is_invalid(
    doctor: Staff, clock: ManualClock, client: TestClient[Any, Any]
) -> None:
    created = await create(doctor, clock)
    token = invite_token(created)
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    for bad in (tampered, "", "x" * 600, "not.a.token"):
        resp = await client.post("/api/invites/inspect", json={"invite": bad})
        assert resp.status in (400, 404), bad
        assert (await resp.json())["error"]["code"] in ("invite_invalid", "invalid_body")


async def _wrong_codes(client: TestClient[Any, Any], created: dict[str, Any], n: int) -> None:
    right = created["access_code"]
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for _ in range(n):
        resp = await client.post(
            "/api/invites/redeem", json={"invite": invite_token(created), "access_code": wrong}
        )
        assert (await resp.json())["error"]["code"] == "invalid_access_code"


async def test_wrong_codes_spread_over_invites_lock_the_address(
    doctor: Staff, clock: ManualClock, client: TestClient[Any, Any], app: web.Application
) -> None:
    services = app[SERVICES]
    security = services.settings.security
    per_invite = security.invite_max_code_attempts - 1  # never enough to lock one invite
    invites = [
        await create(doctor, clock, patient_name=f"Patient {n}")
        for n in range(-(-security.address_failure_threshold // per_invite))
    ]
    failures = 0
    for created in invites:
        n = min(per_invite, security.address_failure_threshold - failures)
        await _wrong_codes(client, created, n)
        failures += n
    # The address is locked: even the right code of an untouched invite is refused, before
    # the code is looked at (the invite counts no failure, the trail no code attempt).
    fresh = await create(doctor, clock, patient_name="Untouched")
    codes_before = len([e for e in await services.store.all_audit() if e.action == "invite.code"])
    resp = await client.post(
        "/api/invites/redeem",
        json={"invite": invite_token(fresh), "access_code": fresh["access_code"]},
    )
    assert resp.status == 429, await resp.text()
    assert (await resp.json())["error"]["code"] == "address_locked"
    stored = await services.store.get_consultation(fresh["consultation"]["id"])
    assert stored is not None and stored.code_failures == 0
    trail = await services.store.all_audit()
    assert len([e for e in trail if e.action == "invite.code"]) == codes_before
    assert [e.target for e in trail if e.action == "address.locked"] == ["127.0.0.1"]
    # The lock lasts its period, then the right code works.
    clock.advance(security.lockout_minutes * 60 + 1)
    resp = await client.post(
        "/api/invites/redeem",
        json={"invite": invite_token(fresh), "access_code": fresh["access_code"]},
    )
    assert resp.status == 200, await resp.text()


async def test_a_right_code_after_a_few_wrong_ones_on_other_invites_still_works(
    doctor: Staff, clock: ManualClock, client: TestClient[Any, Any], app: web.Application
) -> None:
    others = [await create(doctor, clock, patient_name=f"Other {n}") for n in range(3)]
    for created in others:
        await _wrong_codes(client, created, 3)
    mine = await create(doctor, clock)
    resp = await client.post(
        "/api/invites/redeem",
        json={"invite": invite_token(mine), "access_code": mine["access_code"]},
    )
    assert resp.status == 200, await resp.text()
    count = await app[SERVICES].store.get_count("fail:addr:127.0.0.1", clock.now())
    assert count == 9  # the wrong codes counted toward the address, below its limit
