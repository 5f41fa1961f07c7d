"""Refused access to another doctor's records, or to an admin endpoint, is in the audit trail
(ids only), at most REFUSALS_PER_WINDOW entries per actor per window, then one summary; on both
stores, through the real HTTP API."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from signaling.audit.access_audit import REFUSALS_PER_WINDOW, WINDOW_SECONDS
from signaling.audit.trail import AuditTrail
from signaling.clock import ManualClock
from signaling.keys import SERVICES
from signaling.models import AuditEntry
from signaling.recording.recordings import RecordingLibrary
from signaling.store.sqlite import SqliteStore
from tests.conftest import Accounts, Staff
from tests.rtc import book
from tests.test_recordings_api import make_recording

pytestmark = pytest.mark.both_stores
PATIENT = "Alice Patient"


class Trail:
    """The access.* entries written since the last look."""

    def __init__(self, app: web.Application) -> None:
        self.store = app[SERVICES].store
        self.seen = 0

    async def new(self) -> list[AuditEntry]:
        entries = [e for e in await self.store.all_audit() if e.seq > self.seen]
        if entries:
            self.seen = entries[-1].seq
        return [e for e in entries if e.action.startswith("access.")]

    async def wait_for(self, action: str, within: float = 5.0) -> list[AuditEntry]:
        """The new access.* entries, once one of them is ``action`` (the summary is written by
        a once-a-second check)."""
        got: list[AuditEntry] = []
        async with asyncio.timeout(within):
            while not any(e.action == action for e in got):
                got += await self.new()
                await asyncio.sleep(0.05)
        return got


async def two_doctors(accounts: Accounts) -> tuple[Staff, Staff]:
    await accounts.create("dr.alpha")
    await accounts.create("dr.bravo")
    return await accounts.sign_in("dr.alpha"), await accounts.sign_in("dr.bravo")


def fields(entry: AuditEntry) -> tuple[str, str, str, str, str, dict[str, Any]]:
    details = json.loads(entry.details) if entry.details else {}
    return entry.action, entry.actor, entry.actor_role, entry.target, entry.outcome, details


async def test_a_doctor_refused_another_doctors_records_or_an_admin_endpoint_is_audited(
    app: web.Application, client: TestClient[Any, Any], accounts: Accounts, clock: ManualClock
) -> None:
    alpha, bravo = await two_doctors(accounts)
    booking = await book(accounts, alpha, clock, PATIENT)
    cid = booking.consultation_id
    rid = uuid.uuid4().hex
    await make_recording(app, cid, alpha.user["id"], recording_id=rid)
    trail = Trail(app)
    await trail.new()
    consultation = "/api/consultations/{consultation_id}"
    recording = "/api/recordings/{recording_id}"
    probes = [
        ("GET", f"/api/consultations/{cid}", 404, "consultation_not_found"),
        ("POST", f"/api/consultations/{cid}/cancel", 404, "consultation_not_found"),
        ("POST", f"/api/consultations/{cid}/invite", 404, "consultation_not_found"),
        ("GET", f"/api/recordings/{rid}/download", 404, "recording_not_found"),
        ("POST", f"/api/recordings/{rid}/delete", 404, "recording_not_found"),
        ("GET", f"/api/consultations/{cid}/export", 403, "forbidden"),
        ("POST", f"/api/consultations/{cid}/erase", 403, "forbidden"),
        ("GET", "/api/users", 403, "forbidden"),
        ("POST", f"/api/users/{alpha.user['id']}/disable", 403, "forbidden"),
    ]
    routes = {
        f"/api/consultations/{cid}": f"GET {consultation}",
        f"/api/consultations/{cid}/cancel": f"POST {consultation}/cancel",
        f"/api/consultations/{cid}/invite": f"POST {consultation}/invite",
        f"/api/recordings/{rid}/download": f"GET {recording}/download",
        f"/api/recordings/{rid}/delete": f"POST {recording}/delete",
        f"/api/consultations/{cid}/export": f"GET {consultation}/export",
        f"/api/consultations/{cid}/erase": f"POST {consultation}/erase",
        "/api/users": "GET /api/users",
        f"/api/users/{alpha.user['id']}/disable": "POST /api/users/{user_id}/disable",
    }
    for method, path, status, code in probes:
        if method == "GET":
            resp = await bravo.client.get(path)
        else:
            resp = await bravo.post(path)
        assert resp.status == status, (path, await resp.text())
        assert (await resp.json())["error"]["code"] == code
        [entry] = await trail.new()
        action, actor, role, target, outcome, details = fields(entry)
        assert (action, actor, role, outcome) == (
            "access.refused",
            bravo.user["id"],
            "doctor",
            "refused",
        )
        assert entry.address == "127.0.0.1"
        assert details["route"] == routes[path]
        if "/api/recordings/" in path:
            assert (target, details["kind"], details["reason"]) == (rid, "recording", "not_owner")
        elif path.startswith("/api/users/"):
            assert (target, details["kind"], details["reason"]) == (
                alpha.user["id"],
                "user",
                "not_admin",
            )
        elif path == "/api/users":
            assert (target, details["kind"], details["reason"]) == ("", "", "not_admin")
        else:
            reason = "not_admin" if status == 403 else "not_owner"
            assert (target, details["kind"], details["reason"]) == (cid, "consultation", reason)
        assert PATIENT not in entry.details

    # Nothing was touched: the consultation is open, its link works, the recording is whole.
    resp = await alpha.client.get(f"/api/consultations/{cid}")
    assert (await resp.json())["status"] == "scheduled"
    services = app[SERVICES]
    kept = await services.store.get_recording(rid)
    assert kept is not None and kept.status == "complete"
    assert RecordingLibrary(services.store, clock, services.settings).path_of(kept).exists()

    # The breach report on the consultation shows who probed it.
    await accounts.create("boss", role="admin")
    boss = await accounts.sign_in("boss")
    resp = await boss.client.get("/api/audit/incident", params={"subject": cid})
    report = await resp.json()
    probing = [a for a in report["accesses"] if a["actor"] == bravo.user["id"]]
    assert probing and probing[0]["actions"] == {"access.refused": 5}


async def test_an_admin_reissuing_another_doctors_link_is_refused_and_audited(
    app: web.Application, client: TestClient[Any, Any], accounts: Accounts, clock: ManualClock
) -> None:
    await accounts.create("dr.alpha")
    await accounts.create("boss", role="admin")
    alpha = await accounts.sign_in("dr.alpha")
    boss = await accounts.sign_in("boss")
    booking = await book(accounts, alpha, clock, PATIENT)
    trail = Trail(app)
    await trail.new()
    resp = await boss.post(f"/api/consultations/{booking.consultation_id}/invite")
    assert resp.status == 403
    [entry] = await trail.new()
    assert fields(entry)[:5] == (
        "access.refused",
        boss.user["id"],
        "admin",
        booking.consultation_id,
        "refused",
    )
    assert json.loads(entry.details)["reason"] == "not_owner"


async def test_an_unknown_id_is_audited_and_text_that_is_no_id_is_not_kept(
    app: web.Application, client: TestClient[Any, Any], accounts: Accounts, clock: ManualClock
) -> None:
    await accounts.create("dr.bravo")
    bravo = await accounts.sign_in("dr.bravo")
    trail = Trail(app)
    await trail.new()
    unknown = uuid.uuid4().hex
    resp = await bravo.client.get(f"/api/consultations/{unknown}")
    assert resp.status == 404
    [entry] = await trail.new()
    assert entry.target == unknown and json.loads(entry.details)["reason"] == "not_found"
    # Free text in the path (here, what could be a patient's name) never reaches the trail.
    resp = await bravo.client.get("/api/recordings/Alice%20Patient/download")
    assert resp.status == 404
    [entry] = await trail.new()
    assert entry.target == "" and "Alice" not in entry.details
    assert json.loads(entry.details)["kind"] == "recording"


async def test_a_hundred_probes_write_at_most_the_cap_then_one_summary(
    app: web.Application, client: TestClient[Any, Any], accounts: Accounts, clock: ManualClock
) -> None:
    alpha, bravo = await two_doctors(accounts)
    trail = Trail(app)
    await trail.new()
    for _ in range(100):
        resp = await bravo.client.get(f"/api/consultations/{uuid.uuid4().hex}")
        assert resp.status == 404  # every probe is still refused
    written = await trail.new()
    assert len(written) == REFUSALS_PER_WINDOW
    assert {(e.action, e.actor) for e in written} == {("access.refused", bravo.user["id"])}

    # Another doctor's refusals have their own allowance.
    resp = await alpha.client.get("/api/users")
    assert resp.status == 403
    assert [(e.action, e.actor) for e in await trail.new()] == [
        ("access.refused", alpha.user["id"])
    ]

    # When the window closes, the rest is written as one count.
    clock.advance(WINDOW_SECONDS)
    [summary] = await trail.wait_for("access.refused_suppressed")
    action, actor, role, target, outcome, details = fields(summary)
    assert (action, actor, role, target, outcome) == (
        "access.refused_suppressed",
        bravo.user["id"],
        "doctor",
        "",
        "refused",
    )
    assert details["count"] == 100 - REFUSALS_PER_WINDOW
    assert details["window_seconds"] == WINDOW_SECONDS
    # Alpha's window had nothing held back: closing it writes nothing.
    await app[SERVICES].audit.refusals.flush()
    assert await trail.new() == []

    # A new window: entries again.
    resp = await bravo.client.get(f"/api/consultations/{uuid.uuid4().hex}")
    assert resp.status == 404
    assert [e.action for e in await trail.new()] == ["access.refused"]


async def test_the_next_refusal_after_a_window_writes_its_summary_first(
    app: web.Application, client: TestClient[Any, Any], accounts: Accounts, clock: ManualClock
) -> None:
    # Without waiting for the once-a-second check: the summary comes with the next refusal.
    await accounts.create("dr.bravo")
    bravo = await accounts.sign_in("dr.bravo")
    refusals = app[SERVICES].audit.refusals
    trail = Trail(app)
    await trail.new()
    for _ in range(REFUSALS_PER_WINDOW + 3):
        assert (await bravo.client.get("/api/users")).status == 403
    assert len(await trail.new()) == REFUSALS_PER_WINDOW
    clock.advance(WINDOW_SECONDS + 1)
    await refusals.refused(
        actor=bravo.user["id"],
        actor_role="doctor",
        kind="",
        target="",
        route="GET /api/users",
        address="127.0.0.1",
        reason="not_admin",
    )
    got = [(e.action, json.loads(e.details).get("count")) for e in await trail.new()]
    assert got == [("access.refused_suppressed", 3), ("access.refused", None)]


async def test_counts_of_open_windows_are_written_at_shutdown(
    tmp_path: Path, clock: ManualClock
) -> None:
    store = SqliteStore(tmp_path / "shutdown.sqlite3")
    await store.open()
    try:
        trail = AuditTrail(store, clock)
        running = trail.refusals.running(web.Application())
        await anext(running)  # as aiohttp runs a cleanup context: start...
        for _ in range(REFUSALS_PER_WINDOW + 4):
            await trail.refusals.refused(
                actor="u1",
                actor_role="doctor",
                kind="consultation",
                target="",
                route="GET /api/consultations/{consultation_id}",
                address="127.0.0.1",
                reason="not_found",
            )
        with pytest.raises(StopAsyncIteration):
            await anext(running)  # ...and shutdown, before the store closes
        entries = await store.all_audit()
        assert [e.action for e in entries].count("access.refused") == REFUSALS_PER_WINDOW
        assert entries[-1].action == "access.refused_suppressed"
        assert json.loads(entries[-1].details)["count"] == 4
    finally:
        await store.close()
