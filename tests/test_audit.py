"""The audit trail: actions land in it, and tampering with the SQLite file is detected."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from aiohttp import web

from signaling.keys import SERVICES
from tests.cli import run_cli
from tests.conftest import Staff

ROOT = Path(__file__).resolve().parent.parent


def verify(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return run_cli("audit", "verify", data_dir=data_dir)


async def test_sign_in_and_consultation_actions_are_audited(
    app: web.Application, doctor: Staff, admin: Staff
) -> None:
    entries = await app[SERVICES].store.all_audit()
    actions = [(e.action, e.actor, e.outcome) for e in entries]
    assert ("login.success", doctor.user["id"], "success") in actions
    assert ("mfa.enrolled", doctor.user["id"], "success") in actions
    resp = await admin.post(f"/api/users/{doctor.user['id']}/disable")
    assert resp.status == 200
    last = (await app[SERVICES].store.all_audit())[-1]
    assert (last.action, last.actor, last.target) == (
        "user.disabled",
        admin.user["id"],
        doctor.user["id"],
    )


async def test_failed_sign_in_is_audited_without_the_password(
    app: web.Application, doctor: Staff
) -> None:
    await doctor.client.post(
        "/api/auth/login", json={"username": "dr.martin", "password": "my secret guess!"}
    )
    entries = await app[SERVICES].store.all_audit()
    failed = [e for e in entries if e.action == "login.password" and e.outcome == "failure"]
    assert len(failed) == 1
    assert "guess" not in repr(entries)


async def make_trail(app: web.Application, doctor: Staff) -> None:
    for _ in range(3):
        await doctor.client.get("/api/me")
        await doctor.post("/api/room-tokens", json={"consultation_id": "absent"})
    assert len(await app[SERVICES].store.all_audit()) >= 3


async def test_audit_verify_reports_an_intact_chain(
    app: web.Application, doctor: Staff, data_dir: Path
) -> None:
    await make_trail(app, doctor)
    result = verify(data_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "intact" in result.stdout


def tamper(data_dir: Path, statement: str) -> None:
    db = sqlite3.connect(data_dir / "teleconsult.sqlite3")
    with db:
        db.execute(statement)
    db.close()


async def test_audit_verify_finds_a_modified_entry(
    app: web.Application, doctor: Staff, data_dir: Path
) -> None:
    await make_trail(app, doctor)
    tamper(data_dir, "UPDATE audit SET body=json_set(body, '$.actor', 'someone-else') WHERE seq=2")
    result = verify(data_dir)
    assert result.returncode == 1
    assert "entry 2" in result.stdout and "modified" in result.stdout


async def test_audit_verify_finds_a_removed_entry(
    app: web.Application, doctor: Staff, data_dir: Path
) -> None:
    await make_trail(app, doctor)
    tamper(data_dir, "DELETE FROM audit WHERE seq=2")
    result = verify(data_dir)
    assert result.returncode == 1
    assert "BROKEN at entry 2" in result.stdout


async def test_audit_verify_finds_swapped_entries(
    app: web.Application, doctor: Staff, data_dir: Path
) -> None:
    await make_trail(app, doctor)
    db = sqlite3.connect(data_dir / "teleconsult.sqlite3")
    with db:
        for old, new in ((2, -1), (3, 2), (-1, 3)):
            db.execute("UPDATE audit SET body=json_set(body, '$.seq', ?) WHERE seq=?", (new, old))
    db.close()
    result = verify(data_dir)
    assert result.returncode == 1
    assert "BROKEN at entry 2" in result.stdout


async def test_audit_verify_finds_an_inserted_entry(
    app: web.Application, doctor: Staff, data_dir: Path
) -> None:
    await make_trail(app, doctor)
    db = sqlite3.connect(data_dir / "teleconsult.sqlite3")
    with db:
        # Shift everything from entry 2 on (the last first), then forge an entry 2.
        for (seq,) in db.execute("SELECT seq FROM audit WHERE seq>=2 ORDER BY seq DESC").fetchall():
            db.execute(
                "UPDATE audit SET body=json_set(body, '$.seq', ?) WHERE seq=?", (seq + 1, seq)
            )
        first = json.loads(db.execute("SELECT body FROM audit WHERE seq=1").fetchone()[0])
        forged = {
            **first,
            **{"seq": 2, "actor": "forger", "action": "user.created", "prev_hash": first["hash"]},
        }
        db.execute("INSERT INTO audit (body) VALUES (?)", (json.dumps(forged),))
    db.close()
    result = verify(data_dir)
    assert result.returncode == 1
    assert "BROKEN at entry 2" in result.stdout


async def test_admin_filters_and_exports_the_trail(
    app: web.Application, admin: Staff, doctor: Staff
) -> None:
    resp = await admin.client.get(
        "/api/audit", params={"actor": doctor.user["id"], "action": "login.success"}
    )
    assert resp.status == 200
    body = await resp.json()
    assert [e["action"] for e in body["entries"]] == ["login.success"]
    assert body["head"]
    resp = await admin.client.get("/api/audit/export", params={"format": "csv"})
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/csv")
    text = await resp.text()
    assert text.splitlines()[0].startswith("seq,at,actor,actor_role,action")
    resp = await admin.client.get("/api/audit/export")
    lines = (await resp.text()).splitlines()
    import json

    assert all(json.loads(line)["hash"] for line in lines)
    # Each export is itself audited, once.
    entries = await app[SERVICES].store.all_audit()
    assert [e.action for e in entries].count("audit.exported") == 2


async def test_doctor_sees_only_the_trail_of_own_consultations(
    accounts: Any, doctor: Staff, clock: Any
) -> None:
    from tests.test_consultations import create

    await accounts.create("dr.other")
    other = await accounts.sign_in("dr.other")
    mine = (await create(doctor, clock))["consultation"]["id"]
    theirs = (await create(other, clock))["consultation"]["id"]
    body = await (await doctor.client.get("/api/audit")).json()
    targets = {e["target"] for e in body["entries"]}
    assert targets == {mine}
    body = await (await other.client.get("/api/audit", params={"consultation": mine})).json()
    assert body["entries"] == []
    assert theirs


async def test_bad_audit_filters_are_refused(admin: Staff) -> None:
    for params in ({"since": "yesterday"}, {"limit": "0"}, {"format": "xml"}, {"colour": "x"}):
        path = "/api/audit/export" if "format" in params else "/api/audit"
        resp = await admin.client.get(path, params=params)
        assert resp.status == 400, params
        assert (await resp.json())["error"]["code"] == "invalid_body"


async def test_an_anchor_detects_a_truncated_tail(
    app: web.Application, doctor: Staff, data_dir: Path
) -> None:
    await make_trail(app, doctor)
    result = verify(data_dir)
    anchor = result.stdout.strip().rsplit("head ", 1)[1]
    tamper(data_dir, "DELETE FROM audit WHERE seq = (SELECT MAX(seq) FROM audit)")
    plain = verify(data_dir)
    assert plain.returncode == 0  # a cut-off tail still chains...
    with_anchor = run_cli("audit", "verify", "--anchor", anchor, data_dir=data_dir)
    assert with_anchor.returncode == 1  # ...but the anchor kept outside is gone
    assert "anchor" in with_anchor.stdout


async def test_incident_report_lists_every_access_to_a_consultation(
    app: web.Application, admin: Staff, doctor: Staff, clock: Any, client: Any
) -> None:
    from tests.test_consultations import create, invite_token

    created = await create(doctor, clock)
    cid = created["consultation"]["id"]
    await client.post(
        "/api/invites/redeem",
        json={"invite": invite_token(created), "access_code": created["access_code"]},
    )
    await doctor.client.get(f"/api/consultations/{cid}")
    resp = await admin.client.get("/api/audit/incident", params={"subject": cid})
    assert resp.status == 200
    report = await resp.json()
    by_actor = {a["actor"]: a for a in report["accesses"]}
    assert "consultation.created" in by_actor[doctor.user["id"]]["actions"]
    assert by_actor["patient"]["actions"]["invite.used"] == 1
    assert all(a["address"] for a in report["accesses"])
    assert report["chain_head"]
    assert (await doctor.client.get("/api/audit/incident", params={"subject": cid})).status == 403
    entries = await app[SERVICES].store.all_audit()
    # The report is audited, and so is the doctor's refused attempt at one.
    assert [e.action for e in entries[-2:]] == ["audit.incident_report", "access.refused"]
