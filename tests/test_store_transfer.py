"""Moving the records between stores (``run.py store export | run.py store import``): from
SQLite and from Redis into PostgreSQL, everything arrives as it was, the audit trail chains
on from its checkpoint with the same hashes, a non-empty target or an altered trail is refused.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from config import Settings
from signaling.app import create_app
from signaling.audit.settings_audit import DIGESTS_META
from signaling.audit.trail import AuditTrail
from signaling.clock import ManualClock
from signaling.models import ConsentReceipt, Passkey, Recording
from signaling.store.audit_chain import first_broken
from signaling.store.base import Store
from signaling.store.postgres import PostgresStore
from signaling.store.sqlite import SqliteStore
from signaling.store.transfer import PAGE, TransferError, export_lines, import_lines
from tests.cli import run_cli
from tests.conftest import Staff
from tests.postgres_cluster import PostgresCluster
from tests.test_consultations import create, invite_token
from tests.test_store import NOW, consultation, open_store, user
from tests.test_store_postgres import fields

PATIENT = "Alice Transfer"


async def fill(store: Store, entries: int = 1100) -> None:
    """A little of everything, and a trail purged once (so it starts at a checkpoint); by
    default more entries than one export page."""
    passkey = Passkey(
        id="cred-1",
        name="Laptop",
        public_key=b"\xa5\x01",
        rp_id="localhost",
        sign_count=4,
        created_at=NOW,
        last_used_at=NOW + 1,
        transports=("internal",),
    )
    await store.create_user(
        user("dr.a").evolve(
            totp_secret_enc=b"\x00\xff", totp_last_step=7, webauthn_handle="h", passkeys=(passkey,)
        )
    )
    await store.create_user(user("Boss", "admin"))
    await store.create_consultation(consultation("c1").evolve(patient_name=PATIENT))
    await store.create_consultation(consultation("c2", start=NOW + 60).evolve(code_failures=2))
    for n, role in enumerate(("doctor", "patient")):
        await store.add_consent_receipt(
            ConsentReceipt(
                id=f"k{n}",
                consultation_id="c1",
                recording_id="r1",
                role=role,
                subject=role,
                decision="granted",
                at=NOW,
            )
        )
    await store.create_recording(
        Recording(
            id="r1",
            consultation_id="c1",
            doctor_id="id-dr.a",
            started_at=NOW,
            key_id="ab" * 8,
            file_name="r1.tcrec",
        )
    )
    await store.set_meta(DIGESTS_META, json.dumps({"server.port": "x"}))
    for i in range(entries):
        await store.append_audit(fields(i, actor=f"u{i % 3}"))
    # As the retention sweep purges: the report entry names the checkpoint it leaves.
    await AuditTrail(store, ManualClock(NOW + entries)).purge_before(NOW + 100, keep_days=365)


async def snapshot(store: Store) -> dict[str, object]:
    consultations = await store.list_consultations(None)
    return {
        "users": await store.list_users(),
        "consultations": consultations,
        "receipts": [await store.list_consent_receipts(c.id) for c in consultations],
        "recordings": await store.list_recordings(),
        "digests": await store.get_meta(DIGESTS_META),
        "checkpoint": await store.audit_checkpoint(),
        "audit": await store.all_audit(),
    }


@pytest.fixture
async def target(postgres_cluster: PostgresCluster) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(postgres_cluster.new_database())
    await store.open()
    yield store
    await store.close()


@pytest.fixture(params=["sqlite", "redis"])
async def source(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    store = await open_store(request.param, request, tmp_path)
    yield store
    await store.close()


@pytest.fixture(params=["sqlite", "redis", "postgres"])
async def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    store = await open_store(request.param, request, tmp_path)
    yield store
    await store.close()


async def exported(store: Store) -> list[bytes]:
    return [line async for line in export_lines(store, meta_names=(DIGESTS_META,))]


async def test_every_record_arrives_as_it_was_and_the_trail_chains_the_same(
    source: Store, target: PostgresStore
) -> None:
    await fill(source)
    counts = await import_lines(target, await exported(source))
    assert counts.by_kind["audit"] == 1100 - 100 + 1
    moved, kept = await snapshot(target), await snapshot(source)
    assert moved == kept
    checkpoint = await target.audit_checkpoint()
    assert first_broken(await target.all_audit(), checkpoint) is None
    # The target goes on as the source would have.
    assert (await target.append_audit(fields(9000))) == (await source.append_audit(fields(9000)))


async def test_a_target_that_is_not_empty_is_refused(source: Store, target: PostgresStore) -> None:
    await fill(source)
    await target.create_user(user("someone"))
    with pytest.raises(TransferError, match="not empty"):
        await import_lines(target, await exported(source))
    assert [u.username for u in await target.list_users()] == ["someone"]


async def test_an_altered_trail_is_refused_at_the_altered_entry(
    source: Store, target: PostgresStore
) -> None:
    await fill(source)
    lines = await exported(source)
    altered = [
        line.replace(b'"actor":"u1"', b'"actor":"intruder"', 1) if b'"seq":500,' in line else line
        for line in lines
    ]
    assert altered != lines
    with pytest.raises(TransferError, match="audit entry 500 does not chain"):
        await import_lines(target, altered)


async def test_the_commands_pipe_sqlite_into_postgresql(
    tmp_path: Path, postgres_cluster: PostgresCluster
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    source = SqliteStore(data_dir / "teleconsult.sqlite3")
    await source.open()
    await fill(source, entries=150)  # paging is the in-process tests' concern
    await source.close()
    export = run_cli("store", "export", data_dir=data_dir, env={"PATH": "/usr/bin:/bin"})
    assert export.returncode == 0, export.stderr
    assert PATIENT not in export.stderr  # the records go to stdout only
    dsn = postgres_cluster.new_database()
    env = {
        "PATH": "/usr/bin:/bin",
        "TELECONSULT_STORAGE_BACKEND": "postgres",
        "TELECONSULT_STORAGE_POSTGRES_DSN": dsn,
    }
    imported = run_cli(
        "store", "import", data_dir=data_dir, stdin=export.stdout, env=env, within=180
    )
    assert imported.returncode == 0, imported.stderr
    assert "Imported 2 users, 2 consultations, 2 consent_receipts, 1 recordings" in imported.stdout
    verified = run_cli("audit", "verify", data_dir=data_dir, env=env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    target = PostgresStore(dsn)
    await target.open()
    try:
        trail = await target.all_audit()
        assert trail[-1].action == "store.exported"  # the export carries the record of itself
        assert (await target.get_consultation("c1")) == await _sqlite_consultation(data_dir)
    finally:
        await target.close()


async def _sqlite_consultation(data_dir: Path) -> object:
    store = SqliteStore(data_dir / "teleconsult.sqlite3")
    await store.open()
    try:
        return await store.get_consultation("c1")
    finally:
        await store.close()


def _audit_seq(line: bytes) -> int | None:
    item = json.loads(line)
    return int(item["record"]["seq"]) if item.get("kind") == "audit" else None


async def test_a_purge_and_appends_during_an_export_neither_skip_nor_repeat_an_entry(
    any_store: Store,
) -> None:
    # The export pages past the last entry it gave (a keyset), not by offset: once its first
    # page is read, a purge of entries it has already given and new entries appended change
    # nothing in what follows: each entry still there is exported once, in order, and the
    # appended ones come last (an offset would jump over as many entries as were purged).
    total = PAGE + 300
    for i in range(total):
        await any_store.append_audit(fields(i))
    seqs: list[int] = []
    async for line in export_lines(any_store, meta_names=()):
        seq = _audit_seq(line)
        if seq is None:
            continue
        if not seqs:
            report = await AuditTrail(any_store, ManualClock(NOW + total)).purge_before(
                NOW + 300, keep_days=365
            )
            assert report is not None and json.loads(report.details)["removed"] == 300
            for i in range(3):
                await any_store.append_audit(fields(total + i))
        seqs.append(seq)
    # The first page was read before the purge: all of it; then the rest, the purge's report
    # and the three appended.
    assert seqs == list(range(1, total + 1 + 1 + 3))


def move_by_commands(settings: Settings, postgres_cluster: PostgresCluster) -> Settings:
    """``run.py store export | run.py store import`` from the store of ``settings`` into a new
    PostgreSQL database: the settings that open the target."""
    storage = settings.storage
    source = {
        "PATH": "/usr/bin:/bin",
        "TELECONSULT_STORAGE_BACKEND": storage.backend,
        "TELECONSULT_STORAGE_REDIS_URL": storage.redis_url,
        "TELECONSULT_STORAGE_POSTGRES_DSN": storage.postgres_dsn,
    }
    export = run_cli("store", "export", data_dir=storage.data_dir, env=source)
    assert export.returncode == 0, export.stderr
    dsn = postgres_cluster.new_database()
    env = {
        "PATH": "/usr/bin:/bin",
        "TELECONSULT_STORAGE_BACKEND": "postgres",
        "TELECONSULT_STORAGE_POSTGRES_DSN": dsn,
    }
    imported = run_cli("store", "import", data_dir=storage.data_dir, stdin=export.stdout, env=env)
    assert imported.returncode == 0, imported.stderr
    return settings.replace(
        storage=dataclasses.replace(storage, backend="postgres", postgres_dsn=dsn)
    ).validate()


async def test_patients_short_links_open_on_the_target_after_the_commands(
    settings: Settings,
    doctor: Staff,
    clock: ManualClock,
    postgres_cluster: PostgresCluster,
    aiohttp_client: Callable[[web.Application], Awaitable[TestClient[Any, Any]]],
) -> None:
    # A link sent before the move (its code's hash is a meta value of the SQLite store)
    # opens the same consultation on the PostgreSQL store after export and import; the
    # earlier link of a re-issued invite stays dead there too.
    created = await create(doctor, clock)
    cid = created["consultation"]["id"]
    before = invite_token(created)
    resp = await doctor.post(f"/api/consultations/{cid}/invite")
    assert resp.status == 200, await resp.text()
    link = invite_token(await resp.json())
    assert link != before
    moved = move_by_commands(settings, postgres_cluster)
    patient = await aiohttp_client(create_app(moved, clock=clock))
    resp = await patient.post("/api/invites/inspect", json={"invite": link})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["consultation_id"] == cid
    old = await patient.post("/api/invites/inspect", json={"invite": before})
    assert old.status in (404, 410)
