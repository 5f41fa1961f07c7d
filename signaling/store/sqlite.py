"""SQLite backend: the embedded default. One connection on one worker thread, WAL mode.

Every operation runs as a whole on the worker thread, so each is atomic with respect to the
others without extra locking; one that reads a record before writing it takes the write lock
first (BEGIN IMMEDIATE), so that another process on the same file cannot interleave either.
Migrations are versioned with ``PRAGMA user_version``.

Records are stored whole (signaling/store/records.py): one table per kind, the record's JSON
in ``body``. The fields its indexes name are generated columns that SQLite derives from the
body (so a column can never disagree with its record), its unique values real columns beside
it; those columns and their SQL indexes are made from the declaration at every open.

Over 400 lines on purpose: it implements the whole Store protocol (one method per operation,
most a few lines of SQL) plus its numbered migrations; the contract suite checks it whole.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from signaling.models import (
    AuditEntry,
    ConsentReceipt,
    Consultation,
    Recording,
    Session,
    StaffRole,
    User,
)
from signaling.store.audit_chain import GENESIS, chained_entry
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
from signaling.store.changes import (
    code_failure_counted,
    keeps_an_enabled_admin,
    password_replaced,
    totp_advanced,
    updated_keeping_totp_step,
)
from signaling.store.records import (
    AUDIT,
    CONSENT_RECEIPTS,
    CONSULTATIONS,
    KINDS,
    RECORDINGS,
    SESSIONS,
    USERS,
    Kind,
    fold_username,
)

T = TypeVar("T")
R = TypeVar("R", bound=msgspec.Struct)

# The record tables of schema 4, with their boolean columns (stored as 0 or 1).
_V4_TABLES = (
    ("users", ("totp_confirmed", "disabled")),
    ("sessions", ()),
    ("consultations", ("invite_locked",)),
    ("recordings", ()),
    ("consent_receipts", ()),
    ("audit", ()),
)


def _records_whole(db: sqlite3.Connection) -> None:
    """Migration 5: each record table of schema 4 becomes the JSON bodies of its rows, in
    rowid order (consent receipts keep their order); the derived columns and indexes are
    then added by _sync_schema. Written against the old columns, not today's records."""
    for table, flags in _V4_TABLES:
        db.execute(f"ALTER TABLE {table} RENAME TO {table}_v4")
        db.execute(f"CREATE TABLE {table} (body TEXT NOT NULL)")
        for row in db.execute(f"SELECT * FROM {table}_v4 ORDER BY rowid").fetchall():
            values = {name: row[name] for name in row.keys() if name != "username_key"}
            for name in flags:
                values[name] = bool(values[name])
            # msgspec writes the BLOB column (totp_secret_enc) as base64, as records are.
            db.execute(
                f"INSERT INTO {table} (body) VALUES (?)", (msgspec.json.encode(values).decode(),)
            )
        db.execute(f"DROP TABLE {table}_v4")


MIGRATIONS: list[str | Callable[[sqlite3.Connection], None]] = [
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
    # 5: records stored whole (see _records_whole)
    _records_whole,
]


def _migrate(db: sqlite3.Connection, step: str | Callable[[sqlite3.Connection], None]) -> None:
    if callable(step):
        step(db)
        return
    for statement in step.split(";"):
        if statement.strip():
            db.execute(statement)


def _sync_schema(db: sqlite3.Connection) -> None:
    """Give each kind's table the columns and indexes records.py declares (idempotent)."""
    for kind in KINDS:
        table = kind.name
        db.execute(f"CREATE TABLE IF NOT EXISTS {table} (body TEXT NOT NULL)")
        present = {row["name"] for row in db.execute(f"PRAGMA table_xinfo({table})")}
        for column in kind.columns:
            if column not in present:
                db.execute(
                    f"ALTER TABLE {table} ADD COLUMN {column} "
                    f"GENERATED ALWAYS AS (json_extract(body, '$.{column}')) VIRTUAL"
                )
        for unique in kind.unique:
            if unique.name not in present:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {unique.name} TEXT")
                for rowid, text in db.execute(f"SELECT rowid, body FROM {table}").fetchall():
                    value = unique.of(kind.decode(text))
                    db.execute(f"UPDATE {table} SET {unique.name}=? WHERE rowid=?", (value, rowid))
            db.execute(
                f"CREATE UNIQUE INDEX IF NOT EXISTS {table}__{unique.name} "
                f"ON {table}({unique.name})"
            )
        db.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {table}__key ON {table}({kind.key})")
        for index in kind.indexes:
            if index.columns and index.columns != (kind.key,):
                db.execute(
                    f"CREATE INDEX IF NOT EXISTS {table}__{index.name} "
                    f"ON {table}({', '.join(index.columns)})"
                )


def _body(kind: Kind[R], record: R) -> tuple[Any, ...]:
    """The values of ``body`` and of the unique columns, in _COLUMNS order."""
    return (kind.encode(record).decode(), *(unique.of(record) for unique in kind.unique))


def _columns(kind: Kind[Any]) -> list[str]:
    return ["body", *(unique.name for unique in kind.unique)]


def _insert(db: sqlite3.Connection, kind: Kind[R], record: R, replace: bool = False) -> None:
    columns = _columns(kind)
    verb = "INSERT OR REPLACE" if replace else "INSERT"
    db.execute(
        f"{verb} INTO {kind.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
        _body(kind, record),
    )


def _update(db: sqlite3.Connection, kind: Kind[R], record: R) -> None:
    sets = ", ".join(f"{column}=?" for column in _columns(kind))
    db.execute(
        f"UPDATE {kind.name} SET {sets} WHERE {kind.key}=?",
        (*_body(kind, record), getattr(record, kind.key)),
    )


def _select(
    db: sqlite3.Connection, kind: Kind[R], where: str = "", params: Any = (), order: str = ""
) -> list[R]:
    rows = db.execute(f"SELECT body FROM {kind.name} {where} {order}", params).fetchall()
    return [kind.decode(row[0]) for row in rows]


def _get(db: sqlite3.Connection, kind: Kind[R], key: object) -> R | None:
    found = _select(db, kind, f"WHERE {kind.key}=?", (key,))
    return found[0] if found else None


def _change(
    db: sqlite3.Connection, kind: Kind[R], key: object, change: Callable[[R], R | None]
) -> R | None:
    """Rewrite the stored record as ``change`` makes it; None (nothing written) when there is
    no such record or ``change`` answers None. Run it under the write lock."""
    stored = _get(db, kind, key)
    changed = change(stored) if stored is not None else None
    if changed is not None:
        _update(db, kind, changed)
    return changed


class SqliteStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None

    async def _run(self, fn: Callable[[sqlite3.Connection], T], write: bool = False) -> T:
        """Run ``fn`` as one transaction; ``write``: take the write lock first, for an
        operation that reads what it then writes."""

        def call() -> T:
            if self._db is None:
                raise StoreUnavailable("store is closed")
            with self._db:  # one transaction per operation
                if write:
                    self._db.execute("BEGIN IMMEDIATE")
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
            # Each step under the write lock, the version read inside it: two processes
            # opening an old file at once migrate it once. The last step derives the
            # columns and indexes records.py declares.
            while True:
                db.execute("BEGIN IMMEDIATE")
                try:
                    version = db.execute("PRAGMA user_version").fetchone()[0]
                    if version < len(MIGRATIONS):
                        _migrate(db, MIGRATIONS[version])
                        db.execute(f"PRAGMA user_version={version + 1}")
                    else:
                        _sync_schema(db)
                    db.execute("COMMIT")
                except Exception:
                    db.execute("ROLLBACK")
                    raise
                if version >= len(MIGRATIONS):
                    break
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
            # Under the write lock: even another process on the same file cannot claim the
            # link between the check and the insert, and a refusal or a failed insert rolls
            # the whole transaction back (the "with db" of _run commits or rolls back).
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

        return await self._run(op, write=True)

    async def get_user(self, user_id: str) -> User | None:
        return await self._run(lambda db: _get(db, USERS, user_id))

    async def get_user_by_username(self, username: str) -> User | None:
        found = await self._run(
            lambda db: _select(db, USERS, "WHERE username_key=?", (fold_username(username),))
        )
        return found[0] if found else None

    async def list_users(self) -> list[User]:
        return await self._run(lambda db: _select(db, USERS, order="ORDER BY username_key"))

    async def count_users(self) -> int:
        return int(
            await self._run(lambda db: db.execute("SELECT COUNT(*) FROM users").fetchone()[0])
        )

    async def set_user_role(self, user_id: str, role: StaffRole) -> bool:
        def op(db: sqlite3.Connection) -> bool:
            if not keeps_an_enabled_admin(_select(db, USERS), user_id, role):
                return False
            _change(db, USERS, user_id, lambda u: u.evolve(role=role))
            return True

        return await self._run(op, write=True)

    async def set_user_password(
        self, user_id: str, old_hash: str, new_hash: str, keep_session: str
    ) -> int | None:
        def op(db: sqlite3.Connection) -> int | None:
            changed = _change(db, USERS, user_id, password_replaced(old_hash, new_hash))
            if changed is None:
                return None
            return int(
                db.execute(
                    "DELETE FROM sessions WHERE user_id=? AND id_hash<>?", (user_id, keep_session)
                ).rowcount
            )

        return await self._run(op, write=True)

    async def update_user(self, user: User) -> None:
        # totp_last_step is only ever moved by advance_totp_step, so it stays monotonic.
        def op(db: sqlite3.Connection) -> None:
            try:
                _change(db, USERS, user.id, updated_keeping_totp_step(user))
            except sqlite3.IntegrityError as exc:
                raise DuplicateUsername(user.username) from exc

        await self._run(op, write=True)

    async def change_user(self, user_id: str, change: Callable[[User], User | None]) -> User | None:
        return await self._run(lambda db: _change(db, USERS, user_id, change), write=True)

    async def advance_totp_step(self, user_id: str, step: int) -> bool:
        changed = await self._run(
            lambda db: _change(db, USERS, user_id, totp_advanced(step)), write=True
        )
        return changed is not None

    # -- sessions
    async def put_session(self, session: Session) -> None:
        await self._run(lambda db: _insert(db, SESSIONS, session, replace=True))

    async def get_session(self, id_hash: str) -> Session | None:
        return await self._run(lambda db: _get(db, SESSIONS, id_hash))

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
        await self._run(lambda db: _insert(db, CONSULTATIONS, consultation))

    async def get_consultation(self, consultation_id: str) -> Consultation | None:
        return await self._run(lambda db: _get(db, CONSULTATIONS, consultation_id))

    async def list_consultations(self, doctor_id: str | None) -> list[Consultation]:
        where, params = ("WHERE doctor_id=?", (doctor_id,)) if doctor_id is not None else ("", ())
        return await self._run(
            lambda db: _select(db, CONSULTATIONS, where, params, "ORDER BY scheduled_start")
        )

    async def update_consultation(self, consultation: Consultation) -> None:
        await self._run(lambda db: _update(db, CONSULTATIONS, consultation))

    async def change_consultation(
        self, consultation_id: str, change: Callable[[Consultation], Consultation | None]
    ) -> Consultation | None:
        return await self._run(
            lambda db: _change(db, CONSULTATIONS, consultation_id, change), write=True
        )

    async def record_code_failure(self, consultation_id: str, lock_at: int) -> Consultation:
        counted = code_failure_counted(lock_at)
        changed = await self._run(
            lambda db: _change(db, CONSULTATIONS, consultation_id, counted), write=True
        )
        if changed is None:
            raise KeyError(consultation_id)
        return changed

    # -- recordings and consent receipts
    async def create_recording(self, recording: Recording) -> None:
        await self._run(lambda db: _insert(db, RECORDINGS, recording))

    async def get_recording(self, recording_id: str) -> Recording | None:
        return await self._run(lambda db: _get(db, RECORDINGS, recording_id))

    async def list_recordings(
        self, consultation_id: str | None = None, doctor_id: str | None = None
    ) -> list[Recording]:
        clauses, params = [], []
        for column, value in (("consultation_id", consultation_id), ("doctor_id", doctor_id)):
            if value is not None:
                clauses.append(f"{column}=?")
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return await self._run(
            lambda db: _select(db, RECORDINGS, where, params, "ORDER BY started_at DESC")
        )

    async def update_recording(self, recording: Recording) -> None:
        await self._run(lambda db: _update(db, RECORDINGS, recording))

    async def add_consent_receipt(self, receipt: ConsentReceipt) -> None:
        await self._run(lambda db: _insert(db, CONSENT_RECEIPTS, receipt))

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
        return await self._run(
            lambda db: _select(
                db,
                CONSENT_RECEIPTS,
                "WHERE consultation_id=?",
                (consultation_id,),
                "ORDER BY at, rowid",
            )
        )

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

    async def list_meta(self, prefix: str) -> list[tuple[str, str]]:
        # substr, not LIKE: a name's "%" or "_" is no wildcard.
        rows = await self._run(
            lambda db: db.execute(
                "SELECT name, value FROM meta WHERE substr(name, 1, ?) = ? ORDER BY name",
                (len(prefix), prefix),
            ).fetchall()
        )
        return [(str(name), str(value)) for name, value in rows]

    # -- audit
    async def append_audit(self, fields: AuditFields) -> AuditEntry:
        return await self._run(lambda db: _append_audit(db, fields), write=True)

    async def audit_checkpoint(self) -> AuditCheckpoint | None:
        return await self._run(_audit_checkpoint)

    async def set_audit_checkpoint(self, checkpoint: AuditCheckpoint) -> None:
        await self.set_meta(_CHECKPOINT, checkpoint.encode())

    async def purge_audit(self, before: float, report: PurgeReport) -> AuditEntry | None:
        def op(db: sqlite3.Connection) -> AuditEntry | None:
            # The oldest entries up to the first one dated at or after ``before``: a prefix,
            # so the kept trail still chains from one checkpoint.
            newer = db.execute("SELECT MIN(seq) FROM audit WHERE at>=?", (before,)).fetchone()[0]
            bound = "seq<?" if newer is not None else "1"
            params: tuple[Any, ...] = (newer,) if newer is not None else ()
            last = _select(db, AUDIT, f"WHERE {bound}", params, "ORDER BY seq DESC LIMIT 1")
            if not last:
                return None
            removed = db.execute(f"DELETE FROM audit WHERE {bound}", params).rowcount
            checkpoint = AuditCheckpoint(last[0].seq, last[0].hash)
            db.execute(
                "INSERT INTO meta (name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value=excluded.value",
                (_CHECKPOINT, checkpoint.encode()),
            )
            return _append_audit(db, report(removed, checkpoint))

        return await self._run(op, write=True)

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
        if query.after_seq is not None:
            clauses.append("seq<?" if query.newest_first else "seq>?")
            params.append(query.after_seq)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        order = "DESC" if query.newest_first else "ASC"
        params += [query.limit, query.offset]
        return await self._run(
            lambda db: _select(db, AUDIT, where, params, f"ORDER BY seq {order} LIMIT ? OFFSET ?")
        )

    async def audit_head(self) -> AuditEntry | None:
        last = await self._run(lambda db: _select(db, AUDIT, order="ORDER BY seq DESC LIMIT 1"))
        return last[0] if last else None

    async def all_audit(self) -> list[AuditEntry]:
        return await self._run(lambda db: _select(db, AUDIT, order="ORDER BY seq"))


_CHECKPOINT = "audit_checkpoint"


def _audit_checkpoint(db: sqlite3.Connection) -> AuditCheckpoint | None:
    row = db.execute("SELECT value FROM meta WHERE name=?", (_CHECKPOINT,)).fetchone()
    return AuditCheckpoint.decode(row[0]) if row else None


def _append_audit(db: sqlite3.Connection, fields: AuditFields) -> AuditEntry:
    # Runs inside the caller's transaction; after a purge the chain goes on from the
    # checkpoint (the last removed entry).
    last = _select(db, AUDIT, order="ORDER BY seq DESC LIMIT 1")
    if last:
        seq, prev = last[0].seq + 1, last[0].hash
    else:
        checkpoint = _audit_checkpoint(db)
        seq, prev = (checkpoint.seq + 1, checkpoint.hash) if checkpoint else (1, GENESIS)
    entry = chained_entry(fields, seq, prev)
    _insert(db, AUDIT, entry)
    return entry


def _insert_user(db: sqlite3.Connection, user: User) -> None:
    try:
        _insert(db, USERS, user)
    except sqlite3.IntegrityError as exc:
        raise DuplicateUsername(user.username) from exc
