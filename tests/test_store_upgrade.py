"""A database written by the earlier store layout opens and reads back every record.

SQLite: a file at schema 3 or 4 (the columns of those versions, made here with their own
migration SQL and filled as the earlier code filled them) is migrated to records stored whole.
Redis: the earlier layout (a hash per record, sets and sorted sets of ids, the audit trail as
one list) is converted by ``open()``. Then every record reads back equal, the lists and
lookups work, and writing goes on (the audit chain included).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest

from signaling.models import (
    AuditEntry,
    AuditFields,
    ConsentReceipt,
    Consultation,
    Recording,
    Session,
    User,
)
from signaling.store.audit_chain import GENESIS, chained_entry, first_broken
from signaling.store.base import AuditFilter, DuplicateUsername, Store
from signaling.store.redis import RedisStore
from signaling.store.sqlite import MIGRATIONS, SqliteStore
from tests.servers import RedisServer

NOW = 1_800_000_000.25
A, B = "id-dr.a", "id-dr.b"


@dataclass
class Data:
    """What the earlier code had stored, as records."""

    users: list[User] = field(default_factory=list)
    sessions: list[Session] = field(default_factory=list)
    consultations: list[Consultation] = field(default_factory=list)
    recordings: list[Recording] = field(default_factory=list)
    receipts: list[ConsentReceipt] = field(default_factory=list)
    audit: list[AuditEntry] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)


def stored_data() -> Data:
    users = [
        User(
            id="id-boss",
            username="Boss",
            display_name="The Boss",
            role="admin",
            password_hash="$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA",
            created_at=NOW - 86400.5,
            totp_secret_enc=b"\x00\x01\xfe\xff secret",
            totp_confirmed=True,
            totp_last_step=59_999_999,
        ),
        User(
            id=A,
            username="Dr.A",
            display_name="Dr A",
            role="doctor",
            password_hash="h",
            created_at=NOW - 3600,
            disabled=True,
        ),
    ]
    consultation = Consultation(
        id="c1",
        doctor_id=A,
        patient_name="Camille Durand",
        scheduled_start=NOW + 100.125,
        duration_minutes=30,
        note="allergie: pénicilline",
        status="scheduled",
        created_at=NOW,
        invite_nonce="n1",
        access_code_hash="code-hash",
        invite_generation=3,
    )
    consultations = [
        consultation,
        consultation.evolve(
            id="c2",
            scheduled_start=NOW,
            status="cancelled",
            code_failures=2,
            invite_locked=True,
            ended_at=NOW + 50,
            erased_at=NOW + 60,
            patient_name="",
            invite_generation=1,
        ),
        consultation.evolve(id="c3", doctor_id=B, invite_generation=1),
    ]
    staff = Session(
        id_hash="h-staff",
        kind="staff",
        created_at=NOW,
        last_seen=NOW + 5,
        expires_at=NOW + 3600,
        csrf_token="csrf",
        user_id=A,
    )
    sessions = [
        staff,
        staff.evolve(
            id_hash="h-patient", kind="patient", user_id=None, consultation_id="c1"
        ).evolve(invite_generation=2),
        staff.evolve(id_hash="h-pending", kind="pending", user_id="id-boss"),
    ]
    recording = Recording(
        id="r1",
        consultation_id="c1",
        doctor_id=A,
        started_at=NOW + 200,
        key_id="ab" * 8,
        file_name="r1.tcrec",
    )
    recordings = [
        recording,
        recording.evolve(
            id="r2",
            started_at=NOW + 300.5,
            file_name="r2.tcrec",
            status="complete",
            stopped_at=NOW + 400,
            size_bytes=123_456,
            stop_reason="consent_withdrawn",
        ),
        recording.evolve(
            id="r3",
            started_at=NOW + 250,
            consultation_id="c3",
            doctor_id=B,
            status="deleted",
            deleted_at=NOW + 500,
        ),
    ]
    receipts = [
        ConsentReceipt(
            id=f"k{i}",
            consultation_id="c1",
            recording_id="r1",
            role=role,
            subject="s",
            decision=decision,  # type: ignore[arg-type]
            # Two given in the same instant: the order they were given in is kept.
            at=NOW + min(i, 1),
        )
        for i, (role, decision) in enumerate(
            [("doctor", "granted"), ("patient", "granted"), ("patient", "withdrawn")]
        )
    ]
    audit: list[AuditEntry] = []
    for i, (actor, action) in enumerate(
        [(A, "login.success"), ("id-boss", "user.created"), (A, "consultation.created")]
    ):
        fields = AuditFields(
            at=NOW + i + 0.5,
            actor=actor,
            actor_role="doctor",
            action=action,
            target="c1" if i == 2 else "",
            outcome="success",
            address="127.0.0.1",
            details=json.dumps({"n": i}),
        )
        audit.append(chained_entry(fields, i + 1, audit[-1].hash if audit else GENESIS))
    return Data(
        users, sessions, consultations, recordings, receipts, audit, {"setup_nonce": "used"}
    )


async def reads_everything(store: Store, data: Data) -> None:
    for user in data.users:
        assert await store.get_user(user.id) == user
        assert await store.get_user_by_username(user.username.upper()) == user
    assert await store.list_users() == sorted(data.users, key=lambda u: u.username.casefold())
    assert await store.count_users() == len(data.users)
    for session in data.sessions:
        assert await store.get_session(session.id_hash) == session
    for consultation in data.consultations:
        assert await store.get_consultation(consultation.id) == consultation
    by_start = sorted(data.consultations, key=lambda c: c.scheduled_start)
    assert await store.list_consultations(None) == by_start
    assert await store.list_consultations(A) == [c for c in by_start if c.doctor_id == A]
    for recording in data.recordings:
        assert await store.get_recording(recording.id) == recording
    newest = sorted(data.recordings, key=lambda r: -r.started_at)
    assert await store.list_recordings() == newest
    assert await store.list_recordings(doctor_id=B) == [r for r in newest if r.doctor_id == B]
    assert await store.list_recordings(consultation_id="c1") == [
        r for r in newest if r.consultation_id == "c1"
    ]
    assert await store.list_consent_receipts("c1") == data.receipts
    assert await store.all_audit() == data.audit
    assert first_broken(await store.all_audit()) is None
    assert await store.audit_head() == data.audit[-1]
    assert await store.list_audit(AuditFilter(actor=A, newest_first=True)) == [
        e for e in reversed(data.audit) if e.actor == A
    ]
    assert await store.list_audit(AuditFilter(targets=frozenset({"c1"}))) == [data.audit[2]]
    for name, value in data.meta.items():
        assert await store.get_meta(name) == value


async def writes_go_on(store: Store, data: Data) -> None:
    with pytest.raises(DuplicateUsername):
        await store.create_user(data.users[0].evolve(id="other", username="BOSS"))
    assert await store.advance_totp_step("id-boss", 60_000_000)
    locked = await store.record_code_failure("c1", lock_at=1)
    assert locked.code_failures == 1 and locked.invite_locked
    assert await store.delete_user_sessions(A) == 1
    entry = await store.append_audit(
        AuditFields(NOW + 9, "id-boss", "admin", "audit.exported", "", "success", "", "")
    )
    assert (entry.seq, entry.prev_hash) == (len(data.audit) + 1, data.audit[-1].hash)
    assert first_broken(await store.all_audit()) is None


# -- SQLite


def sqlite_at(path: Path, version: int, data: Data) -> None:
    """The file the earlier code left at schema ``version``: its own migrations, its columns
    (a field that version did not have is not written), booleans as 0/1, bytes as a BLOB."""
    db = sqlite3.connect(path)
    for script in MIGRATIONS[:version]:
        assert isinstance(script, str)
        db.executescript(script)
    db.execute(f"PRAGMA user_version={version}")
    tables: dict[str, list[msgspec.Struct]] = {
        "users": list(data.users),
        "sessions": list(data.sessions),
        "consultations": list(data.consultations),
        "recordings": list(data.recordings),
        "consent_receipts": list(data.receipts),
        "audit": list(data.audit),
    }
    for table, records in tables.items():
        columns = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
        for record in records:
            values = msgspec.structs.asdict(record)
            if isinstance(record, User):
                values["username_key"] = record.username.casefold()
            marks = ", ".join("?" * len(columns))
            db.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                [values[c] for c in columns],
            )
    for name, value in data.meta.items():
        db.execute("INSERT INTO meta (name, value) VALUES (?, ?)", (name, value))
    db.commit()
    db.close()


@pytest.mark.parametrize("version", [3, 4])
async def test_an_sqlite_file_of_an_earlier_schema_is_migrated_and_reads_back(
    tmp_path: Path, version: int
) -> None:
    data = stored_data()
    path = tmp_path / "old.sqlite3"
    sqlite_at(path, version, data)
    if version == 3:
        # Before invite generations: every link was the first (migration 4's rule).
        data.consultations = [c.evolve(invite_generation=1) for c in data.consultations]
        data.sessions = [
            s.evolve(invite_generation=1 if s.kind == "patient" else 0) for s in data.sessions
        ]
    store = SqliteStore(path)
    await store.open()
    try:
        await reads_everything(store, data)
        await writes_go_on(store, data)
    finally:
        await store.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    # The columns of the earlier schema are gone: a record has one copy, its body.
    assert "patient_name" not in [r[1] for r in db.execute("PRAGMA table_xinfo(consultations)")]
    db.close()
    again = SqliteStore(path)  # opening a migrated file again changes nothing
    await again.open()
    try:
        assert await again.get_consultation("c2") == data.consultations[1]
    finally:
        await again.close()


# -- Redis


def old_hash(record: msgspec.Struct, missing: tuple[str, ...] = ()) -> dict[Any, Any]:
    """A record as the earlier Redis code wrote it: strings, "" for None, "1"/"0", hex bytes;
    ``missing``: fields it did not write yet."""
    written: dict[Any, Any] = {}
    for name, value in msgspec.structs.asdict(record).items():
        if name in missing:
            continue
        if value is None:
            written[name] = ""
        elif isinstance(value, bool):
            written[name] = "1" if value else "0"
        elif isinstance(value, bytes):
            written[name] = value.hex()
        elif isinstance(value, float):
            written[name] = repr(value)
        else:
            written[name] = str(value)
    return written


async def redis_of_schema_1(store: RedisStore, data: Data) -> None:
    r, p = store.r, "tc:"
    for u in data.users:
        # Saved before assistants (User.assists) and passkeys existed.
        before = ("assists", "webauthn_handle", "passkeys")
        await r.hset(f"{p}user:{u.id}", mapping=old_hash(u, before))
        await r.set(f"{p}username:{u.username.casefold()}", u.id)
        await r.sadd(f"{p}users", u.id)
    for s in data.sessions:
        # The patient session was saved before invite generations existed.
        missing: tuple[str, ...] = ("invite_generation",) if s.kind == "patient" else ()
        await r.hset(f"{p}session:{s.id_hash}", mapping=old_hash(s, missing))
        await r.pexpire(f"{p}session:{s.id_hash}", 3_600_000)
        if s.user_id:
            await r.sadd(f"{p}user_sessions:{s.user_id}", s.id_hash)
    for c in data.consultations:
        missing = ("erased_at", "invite_generation") if c.id == "c3" else ()
        await r.hset(f"{p}consultation:{c.id}", mapping=old_hash(c, missing))
        await r.zadd(f"{p}consultations", {c.id: c.scheduled_start})
        await r.zadd(f"{p}consultations:doctor:{c.doctor_id}", {c.id: c.scheduled_start})
    for rec in data.recordings:
        await r.hset(f"{p}recording:{rec.id}", mapping=old_hash(rec))
        await r.zadd(f"{p}recordings", {rec.id: rec.started_at})
    for k in data.receipts:
        await r.rpush(f"{p}consents:{k.consultation_id}", json.dumps(msgspec.structs.asdict(k)))
    for e in data.audit:
        await r.rpush(f"{p}audit", json.dumps(msgspec.structs.asdict(e)))
    await r.hset(f"{p}meta", mapping=dict[Any, Any](data.meta))


async def test_a_redis_of_the_earlier_layout_is_converted_at_open_and_reads_back(
    redis_server: RedisServer,
) -> None:
    data = stored_data()
    writer = RedisStore(redis_server.url)
    await writer.open()
    await writer.r.flushdb()
    await redis_of_schema_1(writer, data)
    await writer.close()
    # The patient session predates generations: it came from the first link.
    data.sessions[1] = data.sessions[1].evolve(invite_generation=1)
    stores = [RedisStore(redis_server.url), RedisStore(redis_server.url)]
    await asyncio.gather(*(s.open() for s in stores))  # two instances start at once
    store = stores[0]
    try:
        await reads_everything(store, data)
        # Nothing of the earlier layout is left, and a session keeps its time to live.
        old = [
            k
            async for k in store.r.scan_iter(match="tc:*")
            if k.split(":")[1]
            in (
                "user",
                "username",
                "users",
                "user_sessions",
                "session",
                "consultation",
                "consultations",
                "recording",
                "recordings",
                "audit",
            )
            and not k.startswith("tc:audit:")
        ]
        assert old == []
        assert 0 < await store.r.pttl("tc:rec:sessions:h-staff") <= 3_600_000
        await writes_go_on(store, data)
    finally:
        for s in stores:
            await s.close()
