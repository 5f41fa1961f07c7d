"""SQLite backend: the embedded default. One connection on one worker thread, WAL mode.

Every operation runs as a whole on the worker thread, so each is atomic with respect to the
others without extra locking; migrations are versioned with ``PRAGMA user_version``.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from signaling.audit_chain import GENESIS, chained_entry
from signaling.models import (
    AuditEntry,
    ConsentReceipt,
    Consultation,
    Recording,
    Session,
    StaffRole,
    User,
)
from signaling.store.base import (
    SETUP_NONCE_USED,
    AuditCheckpoint,
    AuditFields,
    AuditFilter,
    DuplicateUsername,
    PurgeReport,
    SetupClaim,
    StoreUnavailable,
)

T = TypeVar("T")

MIGRATIONS: list[str] = [
    # 1: initial schema
    """
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        username TEXT NOT NULL,
        username_key TEXT NOT NULL UNIQUE,
        display_name TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('admin', 'doctor')),
        password_hash TEXT NOT NULL,
        created_at REAL NOT NULL,
        totp_secret_enc BLOB,
        totp_confirmed INTEGER NOT NULL DEFAULT 0,
        totp_last_step INTEGER NOT NULL DEFAULT 0,
        disabled INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE sessions (
        id_hash TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        created_at REAL NOT NULL,
        last_seen REAL NOT NULL,
        expires_at REAL NOT NULL,
        csrf_token TEXT NOT NULL,
        user_id TEXT,
        consultation_id TEXT
    );
    CREATE INDEX sessions_user ON sessions(user_id);
    CREATE TABLE consultations (
        id TEXT PRIMARY KEY,
        doctor_id TEXT NOT NULL,
        patient_name TEXT NOT NULL,
        scheduled_start REAL NOT NULL,
        duration_minutes INTEGER NOT NULL,
        note TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at REAL NOT NULL,
        invite_nonce TEXT NOT NULL,
        access_code_hash TEXT NOT NULL,
        code_failures INTEGER NOT NULL DEFAULT 0,
        invite_locked INTEGER NOT NULL DEFAULT 0,
        ended_at REAL
    );
    CREATE INDEX consultations_doctor ON consultations(doctor_id, scheduled_start);
    CREATE TABLE ephemeral (
        key TEXT PRIMARY KEY,
        count INTEGER NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE TABLE meta (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        actor TEXT NOT NULL,
        actor_role TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        outcome TEXT NOT NULL,
        address TEXT NOT NULL,
        details TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX audit_actor ON audit(actor);
    CREATE INDEX audit_target ON audit(target);
    """,
    # 2: erasure of patient details
    """
    ALTER TABLE consultations ADD COLUMN erased_at REAL;
    """,
    # 3: recordings and consent receipts
    """
    CREATE TABLE recordings (
        id TEXT PRIMARY KEY,
        consultation_id TEXT NOT NULL,
        doctor_id TEXT NOT NULL,
        started_at REAL NOT NULL,
        key_id TEXT NOT NULL,
        file_name TEXT NOT NULL,
        status TEXT NOT NULL,
        stopped_at REAL,
        size_bytes INTEGER NOT NULL DEFAULT 0,
        stop_reason TEXT NOT NULL DEFAULT '',
        deleted_at REAL
    );
    CREATE INDEX recordings_consultation ON recordings(consultation_id);
    CREATE INDEX recordings_doctor ON recordings(doctor_id, started_at);
    CREATE TABLE consent_receipts (
        id TEXT PRIMARY KEY,
        consultation_id TEXT NOT NULL,
        recording_id TEXT NOT NULL,
        role TEXT NOT NULL,
        subject TEXT NOT NULL,
        decision TEXT NOT NULL,
        at REAL NOT NULL
    );
    CREATE INDEX consent_consultation ON consent_receipts(consultation_id, at);
    """,
    # 4: invite generations. Patient sessions opened before this migration belong to the
    # first (and so far only recorded) link of their consultation.
    """
    ALTER TABLE consultations ADD COLUMN invite_generation INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE sessions ADD COLUMN invite_generation INTEGER NOT NULL DEFAULT 0;
    UPDATE sessions SET invite_generation = 1 WHERE kind = 'patient';
    """,
]

_USER_COLUMNS = (
    "id, username, display_name, role, password_hash, created_at, totp_secret_enc, "
    "totp_confirmed, totp_last_step, disabled"
)
_SESSION_COLUMNS = (
    "id_hash, kind, created_at, last_seen, expires_at, csrf_token, user_id, consultation_id, "
    "invite_generation"
)
_CONSULTATION_COLUMNS = (
    "id, doctor_id, patient_name, scheduled_start, duration_minutes, note, status, created_at, "
    "invite_nonce, access_code_hash, code_failures, invite_locked, ended_at, erased_at, "
    "invite_generation"
)
_RECORDING_COLUMNS = (
    "id, consultation_id, doctor_id, started_at, key_id, file_name, status, stopped_at, "
    "size_bytes, stop_reason, deleted_at"
)
_CONSENT_COLUMNS = "id, consultation_id, recording_id, role, subject, decision, at"
_AUDIT_COLUMNS = (
    "seq, at, actor, actor_role, action, target, outcome, address, details, prev_hash, hash"
)


def _user(row: sqlite3.Row) -> User:
    return User(
        id=row["id"],
        username=row["username"],
        display_name=row["display_name"],
        role=row["role"],
        password_hash=row["password_hash"],
        created_at=row["created_at"],
        totp_secret_enc=row["totp_secret_enc"],
        totp_confirmed=bool(row["totp_confirmed"]),
        totp_last_step=row["totp_last_step"],
        disabled=bool(row["disabled"]),
    )


def _session(row: sqlite3.Row) -> Session:
    return Session(**{k: row[k] for k in row.keys()})


def _consultation(row: sqlite3.Row) -> Consultation:
    values = {k: row[k] for k in row.keys()}
    values["invite_locked"] = bool(values["invite_locked"])
    return Consultation(**values)


def _audit(row: sqlite3.Row) -> AuditEntry:
    return AuditEntry(**{k: row[k] for k in row.keys()})


class SqliteStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            if self._db is None:
                raise StoreUnavailable("store is closed")
            with self._db:  # one transaction per operation
                return fn(self._db)

        if self._executor is None:
            raise StoreUnavailable("store is closed")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def open(self) -> None:
        def connect() -> None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA busy_timeout=5000")
            # Deleted or overwritten content is zeroed, so an erasure leaves no old copy.
            db.execute("PRAGMA secure_delete=ON")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                db.execute("BEGIN IMMEDIATE")
                try:
                    for statement in script.split(";"):
                        if statement.strip():
                            db.execute(statement)
                    db.execute(f"PRAGMA user_version={number}")
                    db.execute("COMMIT")
                except Exception:
                    db.execute("ROLLBACK")
                    raise
            # The python sqlite3 module manages transactions with "with db:" from here on.
            db.isolation_level = "DEFERRED"
            self._db = db
            self.path.chmod(0o600)

        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        await asyncio.get_running_loop().run_in_executor(self._executor, connect)

    async def close(self) -> None:
        def disconnect() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(executor, disconnect)
            executor.shutdown(wait=True)

    async def ping(self) -> None:
        await self._run(lambda db: db.execute("SELECT 1").fetchone())

    # -- users
    async def create_user(self, user: User) -> None:
        await self._run(lambda db: _insert_user(db, user))

    async def create_first_user(self, user: User, nonce_name: str, nonce: str) -> SetupClaim:
        def op(db: sqlite3.Connection) -> SetupClaim:
            # The write lock first: even another process on the same file cannot claim the
            # link between the check and the insert, and a refusal or a failed insert rolls
            # the whole transaction back (the "with db" of _run commits or rolls back).
            db.execute("BEGIN IMMEDIATE")
            claimed = db.execute(
                "UPDATE meta SET value=? WHERE name=? AND value=? "
                "AND NOT EXISTS (SELECT 1 FROM users)",
                (SETUP_NONCE_USED, nonce_name, nonce),
            ).rowcount
            if claimed != 1:
                exists = db.execute("SELECT 1 FROM users LIMIT 1").fetchone()
                return "setup_done" if exists else "link_invalid"
            _insert_user(db, user)
            return "created"

        return await self._run(op)

    async def get_user(self, user_id: str) -> User | None:
        row = await self._run(
            lambda db: db.execute(
                f"SELECT {_USER_COLUMNS} FROM users WHERE id=?", (user_id,)
            ).fetchone()
        )
        return _user(row) if row else None

    async def get_user_by_username(self, username: str) -> User | None:
        row = await self._run(
            lambda db: db.execute(
                f"SELECT {_USER_COLUMNS} FROM users WHERE username_key=?", (username.casefold(),)
            ).fetchone()
        )
        return _user(row) if row else None

    async def list_users(self) -> list[User]:
        rows = await self._run(
            lambda db: db.execute(
                f"SELECT {_USER_COLUMNS} FROM users ORDER BY username_key"
            ).fetchall()
        )
        return [_user(r) for r in rows]

    async def count_users(self) -> int:
        return int(
            await self._run(lambda db: db.execute("SELECT COUNT(*) FROM users").fetchone()[0])
        )

    async def set_user_role(self, user_id: str, role: StaffRole) -> bool:
        def op(db: sqlite3.Connection) -> bool:
            if role != "admin":
                others = db.execute(
                    "SELECT COUNT(*) FROM users WHERE role='admin' AND disabled=0 AND id<>?",
                    (user_id,),
                ).fetchone()[0]
                if others == 0:
                    return False
            db.execute("UPDATE users SET role=? WHERE id=?", (role, user_id))
            return True

        return await self._run(op)

    async def set_user_password(
        self, user_id: str, old_hash: str, new_hash: str, keep_session: str
    ) -> int | None:
        def op(db: sqlite3.Connection) -> int | None:
            cursor = db.execute(
                "UPDATE users SET password_hash=? WHERE id=? AND password_hash=?",
                (new_hash, user_id, old_hash),
            )
            if cursor.rowcount != 1:
                return None
            return int(
                db.execute(
                    "DELETE FROM sessions WHERE user_id=? AND id_hash<>?", (user_id, keep_session)
                ).rowcount
            )

        return await self._run(op)

    async def update_user(self, user: User) -> None:
        # totp_last_step is only ever moved by advance_totp_step, so it stays monotonic.
        await self._run(
            lambda db: db.execute(
                "UPDATE users SET display_name=?, role=?, password_hash=?, totp_secret_enc=?, "
                "totp_confirmed=?, disabled=? WHERE id=?",
                (
                    user.display_name,
                    user.role,
                    user.password_hash,
                    user.totp_secret_enc,
                    int(user.totp_confirmed),
                    int(user.disabled),
                    user.id,
                ),
            )
        )

    async def advance_totp_step(self, user_id: str, step: int) -> bool:
        def op(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "UPDATE users SET totp_last_step=? WHERE id=? AND totp_last_step < ?",
                (step, user_id, step),
            )
            return cursor.rowcount == 1

        return await self._run(op)

    # -- sessions
    async def put_session(self, session: Session) -> None:
        await self._run(
            lambda db: db.execute(
                f"INSERT OR REPLACE INTO sessions ({_SESSION_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    session.id_hash,
                    session.kind,
                    session.created_at,
                    session.last_seen,
                    session.expires_at,
                    session.csrf_token,
                    session.user_id,
                    session.consultation_id,
                    session.invite_generation,
                ),
            )
        )

    async def get_session(self, id_hash: str) -> Session | None:
        row = await self._run(
            lambda db: db.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE id_hash=?", (id_hash,)
            ).fetchone()
        )
        return _session(row) if row else None

    async def delete_session(self, id_hash: str) -> None:
        await self._run(lambda db: db.execute("DELETE FROM sessions WHERE id_hash=?", (id_hash,)))

    async def delete_user_sessions(self, user_id: str) -> int:
        return await self._run(
            lambda db: db.execute("DELETE FROM sessions WHERE user_id=?", (user_id,)).rowcount
        )

    async def purge_sessions(self, now: float) -> int:
        return await self._run(
            lambda db: db.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,)).rowcount
        )

    # -- consultations
    async def create_consultation(self, consultation: Consultation) -> None:
        c = consultation
        await self._run(
            lambda db: db.execute(
                f"INSERT INTO consultations ({_CONSULTATION_COLUMNS}) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    c.id,
                    c.doctor_id,
                    c.patient_name,
                    c.scheduled_start,
                    c.duration_minutes,
                    c.note,
                    c.status,
                    c.created_at,
                    c.invite_nonce,
                    c.access_code_hash,
                    c.code_failures,
                    int(c.invite_locked),
                    c.ended_at,
                    c.erased_at,
                    c.invite_generation,
                ),
            )
        )

    async def get_consultation(self, consultation_id: str) -> Consultation | None:
        row = await self._run(
            lambda db: db.execute(
                f"SELECT {_CONSULTATION_COLUMNS} FROM consultations WHERE id=?",
                (consultation_id,),
            ).fetchone()
        )
        return _consultation(row) if row else None

    async def list_consultations(self, doctor_id: str | None) -> list[Consultation]:
        def op(db: sqlite3.Connection) -> list[sqlite3.Row]:
            if doctor_id is None:
                return db.execute(
                    f"SELECT {_CONSULTATION_COLUMNS} FROM consultations ORDER BY scheduled_start"
                ).fetchall()
            return db.execute(
                f"SELECT {_CONSULTATION_COLUMNS} FROM consultations WHERE doctor_id=? "
                "ORDER BY scheduled_start",
                (doctor_id,),
            ).fetchall()

        return [_consultation(r) for r in await self._run(op)]

    async def update_consultation(self, consultation: Consultation) -> None:
        c = consultation
        await self._run(
            lambda db: db.execute(
                "UPDATE consultations SET patient_name=?, scheduled_start=?, duration_minutes=?, "
                "note=?, status=?, invite_nonce=?, access_code_hash=?, code_failures=?, "
                "invite_locked=?, ended_at=?, erased_at=?, invite_generation=? WHERE id=?",
                (
                    c.patient_name,
                    c.scheduled_start,
                    c.duration_minutes,
                    c.note,
                    c.status,
                    c.invite_nonce,
                    c.access_code_hash,
                    c.code_failures,
                    int(c.invite_locked),
                    c.ended_at,
                    c.erased_at,
                    c.invite_generation,
                    c.id,
                ),
            )
        )

    async def record_code_failure(self, consultation_id: str, lock_at: int) -> Consultation:
        def op(db: sqlite3.Connection) -> sqlite3.Row:
            db.execute(
                "UPDATE consultations SET code_failures = code_failures + 1, "
                "invite_locked = CASE WHEN code_failures + 1 >= ? THEN 1 ELSE invite_locked END "
                "WHERE id=?",
                (lock_at, consultation_id),
            )
            row: sqlite3.Row = db.execute(
                f"SELECT {_CONSULTATION_COLUMNS} FROM consultations WHERE id=?",
                (consultation_id,),
            ).fetchone()
            return row

        return _consultation(await self._run(op))

    # -- recordings and consent receipts
    async def create_recording(self, recording: Recording) -> None:
        r = recording
        await self._run(
            lambda db: db.execute(
                f"INSERT INTO recordings ({_RECORDING_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    r.id,
                    r.consultation_id,
                    r.doctor_id,
                    r.started_at,
                    r.key_id,
                    r.file_name,
                    r.status,
                    r.stopped_at,
                    r.size_bytes,
                    r.stop_reason,
                    r.deleted_at,
                ),
            )
        )

    async def get_recording(self, recording_id: str) -> Recording | None:
        row = await self._run(
            lambda db: db.execute(
                f"SELECT {_RECORDING_COLUMNS} FROM recordings WHERE id=?", (recording_id,)
            ).fetchone()
        )
        return Recording(**dict(row)) if row else None

    async def list_recordings(
        self, consultation_id: str | None = None, doctor_id: str | None = None
    ) -> list[Recording]:
        clauses, params = [], []
        if consultation_id is not None:
            clauses.append("consultation_id=?")
            params.append(consultation_id)
        if doctor_id is not None:
            clauses.append("doctor_id=?")
            params.append(doctor_id)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self._run(
            lambda db: db.execute(
                f"SELECT {_RECORDING_COLUMNS} FROM recordings {where} ORDER BY started_at DESC",
                params,
            ).fetchall()
        )
        return [Recording(**dict(r)) for r in rows]

    async def update_recording(self, recording: Recording) -> None:
        r = recording
        await self._run(
            lambda db: db.execute(
                "UPDATE recordings SET status=?, stopped_at=?, size_bytes=?, stop_reason=?, "
                "deleted_at=?, key_id=? WHERE id=?",
                (r.status, r.stopped_at, r.size_bytes, r.stop_reason, r.deleted_at, r.key_id, r.id),
            )
        )

    async def add_consent_receipt(self, receipt: ConsentReceipt) -> None:
        c = receipt
        await self._run(
            lambda db: db.execute(
                f"INSERT INTO consent_receipts ({_CONSENT_COLUMNS}) VALUES (?,?,?,?,?,?,?)",
                (c.id, c.consultation_id, c.recording_id, c.role, c.subject, c.decision, c.at),
            )
        )

    async def delete_consent_receipts(self, consultation_id: str, before: float) -> int:
        return await self._run(
            lambda db: (
                db.execute(
                    "DELETE FROM consent_receipts WHERE consultation_id=? AND at<?",
                    (consultation_id, before),
                ).rowcount
            )
        )

    async def list_consent_receipts(self, consultation_id: str) -> list[ConsentReceipt]:
        rows = await self._run(
            lambda db: db.execute(
                f"SELECT {_CONSENT_COLUMNS} FROM consent_receipts WHERE consultation_id=? "
                "ORDER BY at, rowid",
                (consultation_id,),
            ).fetchall()
        )
        return [ConsentReceipt(**dict(r)) for r in rows]

    # -- ephemeral
    async def claim_once(self, key: str, ttl: float, now: float) -> bool:
        def op(db: sqlite3.Connection) -> bool:
            db.execute("DELETE FROM ephemeral WHERE key=? AND expires_at <= ?", (key, now))
            cursor = db.execute(
                "INSERT OR IGNORE INTO ephemeral (key, count, expires_at) VALUES (?, 1, ?)",
                (key, now + ttl),
            )
            return cursor.rowcount == 1

        return await self._run(op)

    async def incr(self, key: str, ttl: float, now: float) -> int:
        def op(db: sqlite3.Connection) -> int:
            db.execute("DELETE FROM ephemeral WHERE key=? AND expires_at <= ?", (key, now))
            db.execute(
                "INSERT INTO ephemeral (key, count, expires_at) VALUES (?, 1, ?) "
                "ON CONFLICT(key) DO UPDATE SET count = count + 1",
                (key, now + ttl),
            )
            return int(db.execute("SELECT count FROM ephemeral WHERE key=?", (key,)).fetchone()[0])

        return await self._run(op)

    async def get_count(self, key: str, now: float) -> int:
        row = await self._run(
            lambda db: db.execute(
                "SELECT count FROM ephemeral WHERE key=? AND expires_at > ?", (key, now)
            ).fetchone()
        )
        return int(row[0]) if row else 0

    async def delete_key(self, key: str) -> None:
        await self._run(lambda db: db.execute("DELETE FROM ephemeral WHERE key=?", (key,)))

    async def purge_ephemeral(self, now: float) -> int:
        return await self._run(
            lambda db: db.execute("DELETE FROM ephemeral WHERE expires_at <= ?", (now,)).rowcount
        )

    async def scrub(self) -> None:
        def op(db: sqlite3.Connection) -> None:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

        # Outside a transaction: a checkpoint cannot run inside one.
        def call() -> None:
            if self._db is None:
                raise StoreUnavailable("store is closed")
            op(self._db)

        if self._executor is None:
            raise StoreUnavailable("store is closed")
        await asyncio.get_running_loop().run_in_executor(self._executor, call)

    # -- meta
    async def get_meta(self, name: str) -> str | None:
        row = await self._run(
            lambda db: db.execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()
        )
        return str(row[0]) if row else None

    async def set_meta(self, name: str, value: str) -> None:
        await self._run(
            lambda db: db.execute(
                "INSERT INTO meta (name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value=excluded.value",
                (name, value),
            )
        )

    # -- audit
    async def append_audit(self, fields: AuditFields) -> AuditEntry:
        return await self._run(lambda db: _append_audit(db, fields))

    async def audit_checkpoint(self) -> AuditCheckpoint | None:
        return await self._run(_audit_checkpoint)

    async def purge_audit(self, before: float, report: PurgeReport) -> AuditEntry | None:
        def op(db: sqlite3.Connection) -> AuditEntry | None:
            # The oldest entries up to the first one dated at or after ``before``: a prefix,
            # so the kept trail still chains from one checkpoint.
            newer = db.execute("SELECT MIN(seq) FROM audit WHERE at>=?", (before,)).fetchone()[0]
            bound = "seq<?" if newer is not None else "1"
            params: tuple[Any, ...] = (newer,) if newer is not None else ()
            last = db.execute(
                f"SELECT seq, hash FROM audit WHERE {bound} ORDER BY seq DESC LIMIT 1", params
            ).fetchone()
            if last is None:
                return None
            removed = db.execute(f"DELETE FROM audit WHERE {bound}", params).rowcount
            checkpoint = AuditCheckpoint(last[0], last[1])
            db.execute(
                "INSERT INTO meta (name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value=excluded.value",
                (_CHECKPOINT, checkpoint.encode()),
            )
            return _append_audit(db, report(removed, checkpoint))

        return await self._run(op)

    async def list_audit(self, query: AuditFilter) -> list[AuditEntry]:
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("actor", query.actor),
            ("target", query.target),
            ("action", query.action),
            ("outcome", query.outcome),
        ):
            if value is not None:
                clauses.append(f"{column}=?")
                params.append(value)
        if query.since is not None:
            clauses.append("at>=?")
            params.append(query.since)
        if query.until is not None:
            clauses.append("at<?")
            params.append(query.until)
        if query.targets is not None:
            # One JSON parameter, however many ids (no limit on bound variables to meet).
            clauses.append("target IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(sorted(query.targets)))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        order = "DESC" if query.newest_first else "ASC"
        params += [query.limit, query.offset]
        rows = await self._run(
            lambda db: db.execute(
                f"SELECT {_AUDIT_COLUMNS} FROM audit {where} ORDER BY seq {order} LIMIT ? OFFSET ?",
                params,
            ).fetchall()
        )
        return [_audit(r) for r in rows]

    async def audit_head(self) -> AuditEntry | None:
        row = await self._run(
            lambda db: db.execute(
                f"SELECT {_AUDIT_COLUMNS} FROM audit ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        )
        return _audit(row) if row else None

    async def all_audit(self) -> list[AuditEntry]:
        rows = await self._run(
            lambda db: db.execute(f"SELECT {_AUDIT_COLUMNS} FROM audit ORDER BY seq").fetchall()
        )
        return [_audit(r) for r in rows]


_CHECKPOINT = "audit_checkpoint"


def _audit_checkpoint(db: sqlite3.Connection) -> AuditCheckpoint | None:
    row = db.execute("SELECT value FROM meta WHERE name=?", (_CHECKPOINT,)).fetchone()
    return AuditCheckpoint.decode(row[0]) if row else None


def _append_audit(db: sqlite3.Connection, fields: AuditFields) -> AuditEntry:
    # Runs inside the caller's transaction; after a purge the chain goes on from the
    # checkpoint (the last removed entry).
    last = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    if last is not None:
        seq, prev = last[0] + 1, last[1]
    else:
        checkpoint = _audit_checkpoint(db)
        seq, prev = (checkpoint.seq + 1, checkpoint.hash) if checkpoint else (1, GENESIS)
    entry = chained_entry(fields, seq, prev)
    db.execute(
        f"INSERT INTO audit ({_AUDIT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        tuple(getattr(entry, name) for name in _AUDIT_COLUMNS.split(", ")),
    )
    return entry


def _insert_user(db: sqlite3.Connection, user: User) -> None:
    try:
        db.execute(
            f"INSERT INTO users ({_USER_COLUMNS}, username_key) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                user.id,
                user.username,
                user.display_name,
                user.role,
                user.password_hash,
                user.created_at,
                user.totp_secret_enc,
                int(user.totp_confirmed),
                user.totp_last_step,
                int(user.disabled),
                user.username.casefold(),
            ),
        )
    except sqlite3.IntegrityError as exc:
        raise DuplicateUsername(user.username) from exc
