"""Retention of the audit trail itself, and of consent receipts, with a clock moved forward.

Old audit entries go behind a checkpoint (the last removed entry's seq and hash), stored in
the backend and named by the purge entry, so the kept trail still verifies and a moved,
removed or forged checkpoint is found.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from config import ConfigError, Settings
from signaling.audit.trail import AuditAction, verify_chain
from signaling.clock import ManualClock
from signaling.consultations.retention import DAY, RetentionSweeper
from signaling.keys import SERVICES
from signaling.models import ConsentReceipt
from signaling.store.base import AuditCheckpoint, Store
from signaling.store.redis import RedisStore
from tests.cli import run_cli, store_env
from tests.conftest import Staff

pytestmark = pytest.mark.both_stores
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
async def serving(client: TestClient[Any, Any]) -> None:
    """The application started (its store open), as in service."""


def sweeper(app: web.Application) -> RetentionSweeper:
    s = app[SERVICES]
    return RetentionSweeper(s.store, s.clock, s.settings, s.audit)


async def write_entries(
    app: web.Application, count: int, action: AuditAction = "login.password"
) -> None:
    for i in range(count):
        await app[SERVICES].audit.record(action, actor=f"u{i}", actor_role="doctor")


async def purge_a_year_of_entries(app: web.Application, clock: ManualClock) -> int:
    """Three old entries, a year and a day later two new ones, then a sweep."""
    store = app[SERVICES].store
    await write_entries(app, 3)
    old = len(await store.all_audit())
    clock.advance(366 * DAY)
    await write_entries(app, 2, "login.success")
    report = await sweeper(app).sweep()
    assert report.audit_entries_purged == old
    return old


async def test_entries_older_than_the_audit_retention_are_purged_and_the_trail_verifies(
    app: web.Application, clock: ManualClock
) -> None:
    store = app[SERVICES].store
    await write_entries(app, 3)
    clock.advance(364 * DAY)
    assert (await sweeper(app).sweep()).audit_entries_purged == 0  # not a year old yet
    assert await store.audit_checkpoint() is None
    before = await store.all_audit()
    clock.advance(2 * DAY)
    await write_entries(app, 2, "login.success")
    report = await sweeper(app).sweep()
    assert report.audit_entries_purged == len(before)
    kept = await store.all_audit()
    assert [e.action for e in kept] == ["login.success", "login.success", "audit.purged"]
    # The checkpoint is the last removed entry, and the purge entry says so.
    checkpoint = await store.audit_checkpoint()
    assert checkpoint == AuditCheckpoint(before[-1].seq, before[-1].hash)
    purge = kept[-1]
    assert (purge.actor, purge.actor_role, purge.outcome) == ("system", "system", "success")
    details = json.loads(purge.details)
    assert details == {
        "audit_days": 365,
        "removed": len(before),
        "through_hash": before[-1].hash,
        "through_seq": before[-1].seq,
    }
    assert kept[0].seq == before[-1].seq + 1 and kept[0].prev_hash == before[-1].hash
    chain = await verify_chain(store)
    assert chain.broken is None
    assert (chain.head_seq, chain.head_hash) == (purge.seq, purge.hash)
    # New entries keep chaining, and a second sweep the same day purges nothing.
    await write_entries(app, 1, "session.end")
    assert (await sweeper(app).sweep()).audit_entries_purged == 0
    assert (await verify_chain(store)).broken is None


async def test_a_purge_of_everything_leaves_the_purge_entry_chained_on_the_checkpoint(
    app: web.Application, clock: ManualClock
) -> None:
    store = app[SERVICES].store
    await write_entries(app, 4)
    clock.advance(400 * DAY)
    assert (await sweeper(app).sweep()).audit_entries_purged == 4
    kept = await store.all_audit()
    assert [(e.seq, e.action) for e in kept] == [(5, "audit.purged")]
    assert (await verify_chain(store)).broken is None


async def test_a_later_purge_removes_the_earlier_purge_entry_and_moves_the_checkpoint(
    app: web.Application, clock: ManualClock
) -> None:
    store = app[SERVICES].store
    await purge_a_year_of_entries(app, clock)
    first = await store.audit_checkpoint()
    clock.advance(366 * DAY)
    await write_entries(app, 1, "mfa.enrolled")
    report = await sweeper(app).sweep()
    assert report.audit_entries_purged == 3  # two login.success and the first purge entry
    second = await store.audit_checkpoint()
    assert first is not None and second is not None and second.seq == first.seq + 3
    assert [e.action for e in await store.all_audit()] == ["mfa.enrolled", "audit.purged"]
    assert (await verify_chain(store)).broken is None


async def tamper_checkpoint(store: Store, settings: Settings, value: str | None) -> None:
    """Overwrite (or delete) the stored checkpoint behind the application's back."""
    if isinstance(store, RedisStore):
        if value is None:
            await store.r.delete("tc:audit:checkpoint")
        else:
            await store.r.set("tc:audit:checkpoint", value)
        return
    if settings.storage.backend == "postgres":
        with psycopg.connect(settings.storage.postgres_dsn, autocommit=True) as pg:
            if value is None:
                pg.execute("DELETE FROM meta WHERE name = 'audit_checkpoint'")
            else:
                pg.execute("UPDATE meta SET value = %s WHERE name = 'audit_checkpoint'", (value,))
        return
    with sqlite3.connect(settings.storage.sqlite_path) as db:
        if value is None:
            db.execute("DELETE FROM meta WHERE name='audit_checkpoint'")
        else:
            db.execute("UPDATE meta SET value=? WHERE name='audit_checkpoint'", (value,))


async def drop_oldest_entry(store: Store, settings: Settings) -> None:
    if isinstance(store, RedisStore):
        [(seq, _)] = await store.r.zpopmin("tc:idx:audit:all_by_seq")  # type: ignore[str-unpack]
        await store.r.delete(f"tc:rec:audit:{seq!s}")
        return
    if settings.storage.backend == "postgres":
        with psycopg.connect(settings.storage.postgres_dsn, autocommit=True) as pg:
            pg.execute("DELETE FROM audit WHERE seq = (SELECT MIN(seq) FROM audit)")
        return
    with sqlite3.connect(settings.storage.sqlite_path) as db:
        db.execute("DELETE FROM audit WHERE seq=(SELECT MIN(seq) FROM audit)")


async def test_a_checkpoint_moved_forward_to_hide_removed_entries_is_detected(
    app: web.Application, clock: ManualClock, settings: Settings
) -> None:
    store = app[SERVICES].store
    await purge_a_year_of_entries(app, clock)
    oldest = (await store.all_audit())[0]
    # Remove the oldest kept entry and move the checkpoint onto it: the chain alone holds.
    await drop_oldest_entry(store, settings)
    await tamper_checkpoint(store, settings, AuditCheckpoint(oldest.seq, oldest.hash).encode())
    chain = await verify_chain(store)
    assert chain.broken is not None
    assert "checkpoint" in chain.broken[1]


async def test_a_removed_or_rewritten_checkpoint_is_detected(
    app: web.Application, clock: ManualClock, settings: Settings
) -> None:
    store = app[SERVICES].store
    await purge_a_year_of_entries(app, clock)
    checkpoint = await store.audit_checkpoint()
    assert checkpoint is not None
    first_kept = checkpoint.seq + 1
    await tamper_checkpoint(store, settings, None)
    assert (await verify_chain(store)).broken == (1, f"entry 1 has sequence number {first_kept}")
    await tamper_checkpoint(store, settings, AuditCheckpoint(checkpoint.seq, "f" * 64).encode())
    # Restoring a row that was deleted needs an insert on SQLite.
    if not isinstance(store, RedisStore):
        await store.set_meta("audit_checkpoint", f"{checkpoint.seq}:{'f' * 64}")
    broken = (await verify_chain(store)).broken
    assert broken == (first_kept, f"entry {first_kept} does not follow the previous entry")


async def test_audit_verify_command_starts_from_the_checkpoint(
    app: web.Application, clock: ManualClock, settings: Settings, data_dir: Path
) -> None:
    store = app[SERVICES].store
    await purge_a_year_of_entries(app, clock)
    head = await store.audit_head()
    assert head is not None

    def verify(*extra: str) -> subprocess.CompletedProcess[str]:
        return run_cli("audit", "verify", *extra, data_dir=data_dir, env=store_env(settings))

    result = verify()
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"head {head.seq}:{head.hash}" in result.stdout
    assert "kept from checkpoint" in result.stdout
    assert verify("--anchor", f"{head.seq}:{head.hash}").returncode == 0
    await drop_oldest_entry(store, settings)
    result = verify()
    assert result.returncode == 1 and "BROKEN" in result.stdout


async def test_consent_receipts_are_purged_after_their_retention(
    app: web.Application, doctor: Staff, clock: ManualClock
) -> None:
    from tests.test_consultations import create

    created = await create(doctor, clock)
    cid = created["consultation"]["id"]
    store = app[SERVICES].store
    for i, role in enumerate(("doctor", "patient")):
        await store.add_consent_receipt(
            ConsentReceipt(
                id=f"r{i}",
                consultation_id=cid,
                recording_id="",
                role=role,
                subject=role,
                decision="granted",
                at=clock.now() + i * DAY,
            )
        )
    clock.advance(365.5 * DAY)  # past the first receipt's year, not the second's
    report = await sweeper(app).sweep()
    assert report.consent_receipts_purged == 1
    assert [r.id for r in await store.list_consent_receipts(cid)] == ["r1"]
    purged = [e for e in await store.all_audit() if e.action == "retention.purged"]
    assert '"consent_receipts_purged":1' in purged[-1].details
    clock.advance(DAY)
    assert (await sweeper(app).sweep()).consent_receipts_purged == 1
    assert await store.list_consent_receipts(cid) == []


def test_consent_receipts_may_not_be_kept_shorter_than_recordings() -> None:
    from config.settings import RecordingSettings, RetentionSettings

    with pytest.raises(ConfigError, match=r"retention\.consent_receipt_days"):
        Settings(
            recording=RecordingSettings(retention_days=60),
            retention=RetentionSettings(consent_receipt_days=30),
        ).validate()
    with pytest.raises(ConfigError, match=r"retention\.audit_days"):
        Settings(retention=RetentionSettings(audit_days=0)).validate()
