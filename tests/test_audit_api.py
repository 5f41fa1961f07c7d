"""GET /api/audit paging, outcome filter and scope, and GET /api/audit/verify, on both
backends: what the audit page relies on."""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg
import pytest
from aiohttp import web

from config import Settings
from signaling.audit.trail import AUDITED_ACTIONS
from signaling.clock import ManualClock
from signaling.keys import SERVICES
from signaling.store.redis import RedisStore
from tests.conftest import Accounts, Staff
from tests.test_consultations import create
from tests.test_recordings_api import make_recording

pytestmark = pytest.mark.both_stores


async def page(staff: Staff, **params: Any) -> dict[str, Any]:
    resp = await staff.client.get("/api/audit", params={k: str(v) for k, v in params.items()})
    assert resp.status == 200, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


async def test_pages_come_newest_first_without_gaps_or_overlaps(
    app: web.Application, admin: Staff
) -> None:
    for i in range(7):
        await app[SERVICES].audit.record("recording.listed", actor=f"u{i}", actor_role="doctor")
    everything = await page(admin, newest_first="true", limit=1000)
    seqs = [e["seq"] for e in everything["entries"]]
    assert seqs == sorted(seqs, reverse=True) and not everything["more"]
    first = await page(admin, newest_first="true", limit=3)
    second = await page(admin, newest_first="true", limit=3, offset=3)
    assert first["more"] and [e["seq"] for e in first["entries"] + second["entries"]] == seqs[:6]
    last = await page(admin, newest_first="true", limit=3, offset=len(seqs) - 2)
    assert len(last["entries"]) == 2 and not last["more"]
    assert first["head_seq"] == seqs[0] and first["head"] == everything["entries"][0]["hash"]
    assert first["actions"] == list(AUDITED_ACTIONS)


async def test_the_outcome_filter_finds_the_failed_sign_ins(
    accounts: Accounts, admin: Staff, doctor: Staff
) -> None:
    session = accounts.new_session()
    resp = await session.post("/api/auth/login", json={"username": "dr.x", "password": "nope"})
    assert resp.status == 401
    failed = await page(admin, outcome="failure")
    assert [(e["action"], e["outcome"]) for e in failed["entries"]] == [
        ("login.password", "failure")
    ]
    ok = await page(admin, outcome="success", action="login.password")
    assert {e["actor"] for e in ok["entries"]} == {admin.user["id"], doctor.user["id"]}
    resp = await admin.client.get("/api/audit", params={"outcome": "maybe"})
    assert resp.status == 400


async def test_a_doctor_sees_own_recordings_entries_and_no_other(
    app: web.Application, accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    await accounts.create("dr.other")
    other = await accounts.sign_in("dr.other")
    mine = (await create(doctor, clock))["consultation"]["id"]
    theirs = (await create(other, clock))["consultation"]["id"]
    my_rec = await make_recording(app, mine, doctor.user["id"], recording_id="rec-mine")
    their_rec = await make_recording(app, theirs, other.user["id"], recording_id="rec-theirs")
    for staff, rec in ((doctor, my_rec), (other, their_rec)):
        resp = await staff.client.get(f"/api/recordings/{rec.id}/download")
        assert resp.status == 200
        await resp.read()
    seen = {e["target"] for e in (await page(doctor))["entries"]}
    assert seen == {mine, my_rec.id}
    # Paging counts only what the doctor may see: one entry per page, never another's.
    mine_all = [e["seq"] for e in (await page(doctor))["entries"]]
    paged = [(await page(doctor, limit=1, offset=n))["entries"][0]["seq"] for n in range(3)]
    assert paged == mine_all[:3]
    assert (await page(doctor, action="recording.downloaded"))["entries"][0]["target"] == (
        my_rec.id
    )
    assert (await page(doctor, consultation=theirs))["entries"] == []
    resp = await doctor.client.get("/api/audit/export", params={"consultation": theirs})
    assert (await resp.text()) == ""


async def test_verify_reports_an_intact_chain_then_the_first_broken_entry(
    app: web.Application, admin: Staff, doctor: Staff, settings: Settings
) -> None:
    resp = await admin.client.get("/api/audit/verify")
    assert resp.status == 200
    report = await resp.json()
    head = await app[SERVICES].store.audit_head()
    assert head is not None
    assert report == {
        "intact": True,
        "entries": head.seq,
        "head_seq": head.seq,
        "head": head.hash,
        "checkpoint_seq": 0,
        "broken_at": None,
        "reason": "",
    }
    assert (await doctor.client.get("/api/audit/verify")).status == 403
    # Rewrite the second entry's actor behind the application's back.
    store = app[SERVICES].store
    if isinstance(store, RedisStore):
        import json

        entry = json.loads(str(await store.r.get("tc:rec:audit:2")))
        entry["actor"] = "someone-else"
        await store.r.set("tc:rec:audit:2", json.dumps(entry))
    elif settings.storage.backend == "postgres":
        with psycopg.connect(settings.storage.postgres_dsn, autocommit=True) as pg:
            pg.execute(
                "UPDATE audit SET body = jsonb_set(body::jsonb, '{actor}', '\"someone-else\"')"
                "::json WHERE seq = 2"
            )
    else:
        with sqlite3.connect(settings.storage.sqlite_path) as db:
            db.execute(
                "UPDATE audit SET body=json_set(body, '$.actor', 'someone-else') WHERE seq=2"
            )
    report = await (await admin.client.get("/api/audit/verify")).json()
    assert report["intact"] is False
    assert report["broken_at"] == 2 and "modified" in report["reason"]


async def test_the_period_filter_keeps_entries_from_since_up_to_until(
    app: web.Application, admin: Staff, clock: ManualClock
) -> None:
    from signaling.api.views import iso

    start = clock.now()
    step = 600  # ten minutes apart: the admin's session stays alive
    for n in range(3):
        await app[SERVICES].audit.record("recording.listed", actor=f"u{n}", actor_role="doctor")
        clock.advance(step)
    since, until = iso(start + step), iso(start + 2 * step)
    body = await page(admin, action="recording.listed", since=since, until=until)
    assert [e["actor"] for e in body["entries"]] == ["u1"]
    resp = await admin.client.get(
        "/api/audit/export",
        params={"action": "recording.listed", "since": since, "until": until, "format": "csv"},
    )
    lines = (await resp.text()).splitlines()
    assert len(lines) == 2 and ",u1," in lines[1]
