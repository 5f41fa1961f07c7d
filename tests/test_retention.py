"""Retention (clock moved forward) and a patient's rights: access (export) and erasure."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from config import Settings
from signaling.clock import ManualClock
from signaling.consultations.retention import RetentionSweeper
from signaling.keys import SERVICES
from signaling.store.audit_chain import first_broken
from signaling.store.redis import RedisStore
from tests.cli import run_cli
from tests.conftest import Staff
from tests.test_consultations import create, invite_token

pytestmark = pytest.mark.both_stores
ROOT = Path(__file__).resolve().parent.parent
PATIENT = "Camille Durand"


def sweeper(app: web.Application) -> RetentionSweeper:
    s = app[SERVICES]
    return RetentionSweeper(s.store, s.clock, s.settings, s.audit)


async def test_patient_details_are_erased_after_the_retention_period(
    app: web.Application, doctor: Staff, clock: ManualClock
) -> None:
    created = await create(doctor, clock)
    cid = created["consultation"]["id"]
    clock.advance(40 * 60 + 89 * 86400)  # ended 89 days ago: kept
    assert (await sweeper(app).sweep()).consultations_erased == 0
    kept = await app[SERVICES].store.get_consultation(cid)
    assert kept is not None and kept.patient_name == PATIENT
    clock.advance(2 * 86400)
    report = await sweeper(app).sweep()
    assert report.consultations_erased == 1
    erased = await app[SERVICES].store.get_consultation(cid)
    assert erased is not None
    assert (erased.patient_name, erased.note, erased.access_code_hash) == ("", "", "")
    assert erased.erased_at is not None
    entries = await app[SERVICES].store.all_audit()
    purge = [
        e
        for e in entries
        if e.action == "retention.purged" and '"consultations_erased":1' in e.details
    ]
    assert len(purge) == 1
    assert first_broken(entries) is None
    assert (await sweeper(app).sweep()).consultations_erased == 0  # once only


async def short_lived_rows(settings: Settings) -> set[str]:
    """The keys the store's table of short-lived keys holds (SQLite, PostgreSQL alone)."""
    if settings.storage.backend == "sqlite":
        with contextlib.closing(sqlite3.connect(settings.storage.sqlite_path)) as db:
            return {row[0] for row in db.execute("SELECT key FROM ephemeral")}
    async with await psycopg.AsyncConnection.connect(settings.storage.postgres_dsn) as conn:
        cursor = await conn.execute("SELECT key FROM ephemeral")
        return {row[0] for row in await cursor.fetchall()}


async def test_a_sweep_removes_the_expired_short_lived_keys(
    app: web.Application, client: TestClient[Any, Any], clock: ManualClock, settings: Settings
) -> None:
    # Used token ids, failure counters and lockouts expire. Where a table holds them, a read
    # only ever clears the one key it asks for, so without the sweep every used link and
    # every failed attempt would stay a row for ever.
    store = app[SERVICES].store
    await store.claim_once("used:old", ttl=60, now=clock.now())
    await store.incr("failures:old", ttl=60, now=clock.now())
    await store.claim_once("used:live", ttl=3600, now=clock.now())
    clock.advance(120)
    report = await sweeper(app).sweep()
    assert await store.get_count("used:live", clock.now()) == 1
    if isinstance(store, RedisStore):
        # Redis removes them itself: each carries its TTL, nothing is left for the sweep.
        assert report.ephemeral_keys_purged == 0
        assert await store.r.pttl("tc:eph:used:old") > 0
        assert await store.r.pttl("tc:cnt:failures:old") > 0
        return
    assert report.ephemeral_keys_purged == 2
    assert await short_lived_rows(settings) == {"used:live"}


async def test_admin_exports_then_erases_a_consultation_at_the_patients_request(
    app: web.Application,
    admin: Staff,
    doctor: Staff,
    clock: ManualClock,
    client: TestClient[Any, Any],
    settings: Settings,
) -> None:
    created = await create(doctor, clock, note="allergic to penicillin")
    cid = created["consultation"]["id"]
    resp = await client.post(
        "/api/invites/redeem",
        json={"invite": invite_token(created), "access_code": created["access_code"]},
    )
    assert resp.status == 200
    resp = await admin.client.get(f"/api/consultations/{cid}/export")
    assert resp.status == 200
    export = await resp.json()
    assert export["consultation"]["patient_name"] == PATIENT
    assert export["consultation"]["note"] == "allergic to penicillin"
    assert "invite.used" in {e["action"] for e in export["audit"]}
    assert (await doctor.client.get(f"/api/consultations/{cid}/export")).status == 403

    resp = await admin.post(f"/api/consultations/{cid}/erase")
    assert resp.status == 200
    view = await resp.json()
    assert view["erased"] is True and view["patient_name"] == "" and view["note"] == ""
    # The link is dead, and nothing of the patient is left in the store.
    resp = await client.post(
        "/api/invites/redeem",
        json={"invite": invite_token(created), "access_code": created["access_code"]},
    )
    assert resp.status in (404, 410)
    store = app[SERVICES].store
    entries = await store.all_audit()
    assert first_broken(entries) is None
    assert {"consultation.exported", "consultation.erased"} <= {e.action for e in entries}
    dump = repr(await store.list_consultations(None)) + repr(entries)
    assert PATIENT not in dump and "penicillin" not in dump
    if settings.storage.backend == "sqlite":
        # No old copy of the erased details survives in the database files either.
        db = settings.storage.sqlite_path
        raw = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
        assert PATIENT.encode() not in raw
        assert b"penicillin" not in raw
        result = run_cli("audit", "verify", data_dir=settings.storage.data_dir)
        assert result.returncode == 0, result.stdout


async def test_erasure_at_the_patients_request_crypto_shreds_the_recordings(
    app: web.Application, admin: Staff, doctor: Staff, clock: ManualClock
) -> None:
    from signaling.recording.recordings import RecordingLibrary
    from tests.test_recordings_api import make_recording

    created = await create(doctor, clock)
    cid = created["consultation"]["id"]
    rec = await make_recording(app, cid, doctor.user["id"])
    export = await (await admin.client.get(f"/api/consultations/{cid}/export")).json()
    assert [r["id"] for r in export["recordings"]] == [rec.id]
    resp = await admin.post(f"/api/consultations/{cid}/erase")
    assert resp.status == 200
    services = app[SERVICES]
    path = RecordingLibrary(services.store, services.clock, services.settings).path_of(rec)
    assert not path.exists()
    stored = await services.store.get_recording(rec.id)
    assert stored is not None and stored.status == "deleted"
    erased = [e for e in await services.store.all_audit() if e.action == "consultation.erased"]
    assert '"recordings_shredded":1' in erased[0].details
