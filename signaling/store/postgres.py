"""PostgreSQL backend: durable records for several instances (psycopg 3, async, pooled).

Records are stored whole (signaling/store/records.py), as SQLite does: one table per kind, the
record's JSON in ``body`` (type ``json``: kept byte for byte as msgspec wrote it). The fields
its indexes name are generated columns derived from the body, typed from the Struct (so a
column can never disagree with its record and sorts as a number where it is one), its unique
values real columns beside it; columns and indexes are made from the declaration at every
open, so a kind declared in records.py needs no schema code here. The tables that are not
records (meta, short-lived keys) come from the numbered migrations, applied under an advisory
lock so that two instances starting at once migrate once.

Every operation is one transaction on a pooled connection. One that reads before it writes
locks what it read (``SELECT ... FOR UPDATE``); the audit append and purge take one advisory
lock, so appends from any number of instances form one chain. A server that cannot be reached
is StoreUnavailable (503); the pool tests a connection before lending it, so a restarted
server is reconnected without restarting the service.

Short-lived keys (used token ids, TOTP steps, failure counters, lockouts) go to the
``short_lived`` keys given (Redis, when several instances share one), else to a table here.

Over 400 lines on purpose: it implements the whole Store protocol (one method per operation,
most a few lines of SQL) plus its schema derivation; the contract suite checks it whole.
"""

from __future__ import annotations

import types
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, Protocol, TypeVar, Union, get_args, get_origin

import msgspec
import psycopg
from psycopg import AsyncConnection
from psycopg.errors import UniqueViolation
from psycopg_pool import AsyncConnectionPool

from config import ConfigError
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
    AUDIT_FILTERS,
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
Conn = AsyncConnection[tuple[Any, ...]]

# Advisory lock keys (one 64-bit space per database): the schema, the audit chain.
_SCHEMA_LOCK = 0x7C_5C_0001
_AUDIT_LOCK = 0x7C_5C_0002
_CHECKPOINT = "audit_checkpoint"

# The tables that are not records; records.py's kinds are made by _sync_schema.
MIGRATIONS: list[str] = [
    # 1: settings and state, short-lived keys (when no Redis holds them)
    """
    CREATE TABLE meta (name text PRIMARY KEY, value text NOT NULL);
    CREATE TABLE ephemeral (
        key text PRIMARY KEY,
        count bigint NOT NULL,
        expires_at double precision NOT NULL
    );
    CREATE INDEX ephemeral_expires ON ephemeral (expires_at);
    """,
]


class ShortLivedKeys(Protocol):
    """Where short-lived keys go instead of the ephemeral table (the Store's four methods)."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def claim_once(self, key: str, ttl: float, now: float) -> bool: ...
    async def incr(self, key: str, ttl: float, now: float) -> int: ...
    async def get_count(self, key: str, now: float) -> int: ...
    async def delete_key(self, key: str) -> None: ...


def _q(name: str) -> str:
    """An identifier from records.py (never user input), quoted so no keyword collides."""
    return f'"{name}"'


def _sql_type(annotation: Any) -> str:
    """The column type of a field: numbers sort as numbers, the rest as text."""
    if get_origin(annotation) in (Union, types.UnionType):
        (annotation,) = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) is Literal:
        annotation = type(get_args(annotation)[0])
    if annotation is bool:
        return "boolean"
    if annotation is int:
        return "bigint"
    if annotation is float:
        return "double precision"
    return "text"


def _field_types(kind: Kind[Any]) -> dict[str, str]:
    return {f.name: _sql_type(f.type) for f in msgspec.structs.fields(kind.type)}


async def _sync_schema(conn: Conn) -> None:
    """Give each kind's table the columns and indexes records.py declares (idempotent)."""
    for kind in KINDS:
        table = _q(kind.name)
        await conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (body json NOT NULL)")
        cursor = await conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s",
            (kind.name,),
        )
        present = {row[0] for row in await cursor.fetchall()}
        types_ = _field_types(kind)
        for column in kind.columns:
            if column not in present:
                sql_type = types_[column]
                await conn.execute(
                    f"ALTER TABLE {table} ADD COLUMN {_q(column)} {sql_type} "
                    f"GENERATED ALWAYS AS ((body ->> '{column}')::{sql_type}) STORED"
                )
        for unique in kind.unique:
            if unique.name not in present:
                await conn.execute(f"ALTER TABLE {table} ADD COLUMN {_q(unique.name)} text")
                rows = await (
                    await conn.execute(f"SELECT ctid, body::text FROM {table}")
                ).fetchall()
                for ctid, text in rows:
                    await conn.execute(
                        f"UPDATE {table} SET {_q(unique.name)} = %s WHERE ctid = %s",
                        (unique.of(kind.decode(text)), ctid),
                    )
            await conn.execute(
                f"CREATE UNIQUE INDEX IF NOT EXISTS {_q(f'{kind.name}__{unique.name}')} "
                f"ON {table} ({_q(unique.name)})"
            )
        await conn.execute(
            f"CREATE UNIQUE INDEX IF NOT EXISTS {_q(f'{kind.name}__key')} "
            f"ON {table} ({_q(kind.key)})"
        )
        for index in kind.indexes:
            if index.columns and index.columns != (kind.key,):
                await conn.execute(
                    f"CREATE INDEX IF NOT EXISTS {_q(f'{kind.name}__{index.name}')} "
                    f"ON {table} ({', '.join(_q(c) for c in index.columns)})"
                )


def _columns(kind: Kind[Any]) -> list[str]:
    return ["body", *(unique.name for unique in kind.unique)]


def _values(kind: Kind[R], record: R) -> tuple[Any, ...]:
    """The values of ``body`` and of the unique columns, in _columns order."""
    return (kind.encode(record).decode(), *(unique.of(record) for unique in kind.unique))


def _placeholders(kind: Kind[Any]) -> str:
    return ", ".join(["%s::json", *("%s" for _ in kind.unique)])


async def _insert(conn: Conn, kind: Kind[R], record: R, replace: bool = False) -> None:
    columns = ", ".join(_q(c) for c in _columns(kind))
    conflict = ""
    if replace:
        sets = ", ".join(f"{_q(c)} = EXCLUDED.{_q(c)}" for c in _columns(kind))
        conflict = f"ON CONFLICT ({_q(kind.key)}) DO UPDATE SET {sets}"
    await conn.execute(
        f"INSERT INTO {_q(kind.name)} ({columns}) VALUES ({_placeholders(kind)}) {conflict}",
        _values(kind, record),
    )


async def _update(conn: Conn, kind: Kind[R], record: R) -> None:
    sets = ", ".join(
        f"{_q(c)} = %s::json" if c == "body" else f"{_q(c)} = %s" for c in _columns(kind)
    )
    await conn.execute(
        f"UPDATE {_q(kind.name)} SET {sets} WHERE {_q(kind.key)} = %s",
        (*_values(kind, record), getattr(record, kind.key)),
    )


async def _select(
    conn: Conn,
    kind: Kind[R],
    where: str = "",
    params: Sequence[Any] = (),
    order: str = "",
    lock: bool = False,
) -> list[R]:
    locking = "FOR UPDATE" if lock else ""
    cursor = await conn.execute(
        f"SELECT body::text FROM {_q(kind.name)} {where} {order} {locking}", params
    )
    return [kind.decode(row[0]) for row in await cursor.fetchall()]


async def _get(conn: Conn, kind: Kind[R], key: object, lock: bool = False) -> R | None:
    found = await _select(conn, kind, f"WHERE {_q(kind.key)} = %s", (key,), lock=lock)
    return found[0] if found else None


async def _change(
    conn: Conn, kind: Kind[R], key: object, change: Callable[[R], R | None]
) -> R | None:
    """Rewrite the stored record as ``change`` makes it, the row locked from the read to the
    write; None (nothing written) when there is no such record or ``change`` answers None."""
    stored = await _get(conn, kind, key, lock=True)
    changed = change(stored) if stored is not None else None
    if changed is not None:
        await _update(conn, kind, changed)
    return changed


async def _rowcount(conn: Conn, sql: str, params: Sequence[Any]) -> int:
    cursor = await conn.execute(sql, params)
    return max(cursor.rowcount, 0)


async def _set_meta(conn: Conn, name: str, value: str) -> None:
    await conn.execute(
        "INSERT INTO meta (name, value) VALUES (%s, %s) "
        "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
        (name, value),
    )


class PostgresStore:
    def __init__(
        self,
        dsn: str,
        password: str | None = None,
        short_lived: ShortLivedKeys | None = None,
        pool_size: int = 10,
        timeout: float = 5.0,
    ) -> None:
        # The password travels apart from the DSN, so no DSN ever printed holds it.
        self.dsn = dsn
        self._connect_kwargs: dict[str, Any] = {"autocommit": True}
        if password:
            self._connect_kwargs["password"] = password
        self._short_lived = short_lived
        self._pool_size = pool_size
        self._timeout = timeout
        self._pool: AsyncConnectionPool[Conn] | None = None

    async def _run(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        """Run ``fn`` as one transaction: all of it is written, or nothing."""
        if self._pool is None:
            raise StoreUnavailable("store is closed")
        try:
            async with self._pool.connection() as conn, conn.transaction():
                return await fn(conn)
        except psycopg.OperationalError as exc:  # the pool's timeout is one too
            raise StoreUnavailable(str(exc)) from exc

    async def open(self) -> None:
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            self.dsn,
            kwargs=self._connect_kwargs,
            min_size=1,
            max_size=self._pool_size,
            timeout=self._timeout,
            open=False,
            check=AsyncConnectionPool.check_connection,
            name="teleconsult-store",
        )
        try:
            # Starting may wait longer than a request: a server just starting, a busy machine.
            await pool.open(wait=True, timeout=max(self._timeout, 30.0))
        except psycopg.OperationalError as exc:
            await pool.close()
            raise ConfigError(f"storage.postgres_dsn: cannot reach PostgreSQL ({exc})") from exc
        self._pool = pool
        await self._run(self._migrate)
        if self._short_lived is not None:
            await self._short_lived.open()

    @staticmethod
    async def _migrate(conn: Conn) -> None:
        # One transaction under the schema lock: instances starting together migrate once.
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
        row = await (await conn.execute("SELECT version FROM schema_version")).fetchone()
        version = row[0] if row else 0
        for step in MIGRATIONS[version:]:
            for statement in step.split(";"):
                if statement.strip():
                    await conn.execute(statement)
        if row is None:
            await conn.execute("INSERT INTO schema_version VALUES (%s)", (len(MIGRATIONS),))
        else:
            await conn.execute("UPDATE schema_version SET version = %s", (len(MIGRATIONS),))
        await _sync_schema(conn)

    async def close(self) -> None:
        if self._short_lived is not None:
            await self._short_lived.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def ping(self) -> None:
        await self._run(lambda conn: conn.execute("SELECT 1"))

    # -- users
    async def create_user(self, user: User) -> None:
        try:
            await self._run(lambda conn: _insert(conn, USERS, user))
        except UniqueViolation as exc:
            raise DuplicateUsername(user.username) from exc

    async def create_first_user(self, user: User, nonce_name: str, nonce: str) -> SetupClaim:
        async def op(conn: Conn) -> SetupClaim:
            # A concurrent claim waits on the meta row, then finds it used: one wins. A
            # refusal or a failed insert rolls the whole transaction back.
            claimed = await _rowcount(
                conn,
                "UPDATE meta SET value = %s WHERE name = %s AND value = %s "
                "AND NOT EXISTS (SELECT 1 FROM users)",
                (SETUP_NONCE_USED, nonce_name, nonce),
            )
            if claimed != 1:
                exists = await (await conn.execute("SELECT 1 FROM users LIMIT 1")).fetchone()
                return "setup_done" if exists else "link_invalid"
            await _insert(conn, USERS, user)
            return "created"

        try:
            return await self._run(op)
        except UniqueViolation as exc:
            raise DuplicateUsername(user.username) from exc

    async def get_user(self, user_id: str) -> User | None:
        return await self._run(lambda conn: _get(conn, USERS, user_id))

    async def get_user_by_username(self, username: str) -> User | None:
        found = await self._run(
            lambda conn: _select(conn, USERS, "WHERE username_key = %s", (fold_username(username),))
        )
        return found[0] if found else None

    async def list_users(self) -> list[User]:
        return await self._run(lambda conn: _select(conn, USERS, order="ORDER BY username_key"))

    async def count_users(self) -> int:
        async def op(conn: Conn) -> int:
            row = await (await conn.execute("SELECT COUNT(*) FROM users")).fetchone()
            return int(row[0]) if row else 0

        return await self._run(op)

    async def set_user_role(self, user_id: str, role: StaffRole) -> bool:
        async def op(conn: Conn) -> bool:
            # Every user row locked: two admins demoting each other wait for one another.
            users = await _select(conn, USERS, lock=True)
            if not keeps_an_enabled_admin(users, user_id, role):
                return False
            await _change(conn, USERS, user_id, lambda u: u.evolve(role=role))
            return True

        return await self._run(op)

    async def set_user_password(
        self, user_id: str, old_hash: str, new_hash: str, keep_session: str
    ) -> int | None:
        async def op(conn: Conn) -> int | None:
            changed = await _change(conn, USERS, user_id, password_replaced(old_hash, new_hash))
            if changed is None:
                return None
            return await _rowcount(
                conn,
                "DELETE FROM sessions WHERE user_id = %s AND id_hash <> %s",
                (user_id, keep_session),
            )

        return await self._run(op)

    async def update_user(self, user: User) -> None:
        # totp_last_step is only ever moved by advance_totp_step, so it stays monotonic.
        try:
            await self._run(
                lambda conn: _change(conn, USERS, user.id, updated_keeping_totp_step(user))
            )
        except UniqueViolation as exc:
            raise DuplicateUsername(user.username) from exc

    async def change_user(self, user_id: str, change: Callable[[User], User | None]) -> User | None:
        return await self._run(lambda conn: _change(conn, USERS, user_id, change))

    async def advance_totp_step(self, user_id: str, step: int) -> bool:
        changed = await self._run(lambda conn: _change(conn, USERS, user_id, totp_advanced(step)))
        return changed is not None

    # -- sessions
    async def put_session(self, session: Session) -> None:
        await self._run(lambda conn: _insert(conn, SESSIONS, session, replace=True))

    async def get_session(self, id_hash: str) -> Session | None:
        return await self._run(lambda conn: _get(conn, SESSIONS, id_hash))

    async def delete_session(self, id_hash: str) -> None:
        await self._run(
            lambda conn: conn.execute("DELETE FROM sessions WHERE id_hash = %s", (id_hash,))
        )

    async def delete_user_sessions(self, user_id: str) -> int:
        return await self._run(
            lambda conn: _rowcount(conn, "DELETE FROM sessions WHERE user_id = %s", (user_id,))
        )

    async def purge_sessions(self, now: float) -> int:
        return await self._run(
            lambda conn: _rowcount(conn, "DELETE FROM sessions WHERE expires_at <= %s", (now,))
        )

    # -- consultations
    async def create_consultation(self, consultation: Consultation) -> None:
        await self._run(lambda conn: _insert(conn, CONSULTATIONS, consultation))

    async def get_consultation(self, consultation_id: str) -> Consultation | None:
        return await self._run(lambda conn: _get(conn, CONSULTATIONS, consultation_id))

    async def list_consultations(self, doctor_id: str | None) -> list[Consultation]:
        where, params = (
            ("WHERE doctor_id = %s", (doctor_id,)) if doctor_id is not None else ("", ())
        )
        return await self._run(
            lambda conn: _select(conn, CONSULTATIONS, where, params, "ORDER BY scheduled_start")
        )

    async def update_consultation(self, consultation: Consultation) -> None:
        await self._run(lambda conn: _update(conn, CONSULTATIONS, consultation))

    async def change_consultation(
        self, consultation_id: str, change: Callable[[Consultation], Consultation | None]
    ) -> Consultation | None:
        return await self._run(lambda conn: _change(conn, CONSULTATIONS, consultation_id, change))

    async def record_code_failure(self, consultation_id: str, lock_at: int) -> Consultation:
        counted = code_failure_counted(lock_at)
        changed = await self._run(
            lambda conn: _change(conn, CONSULTATIONS, consultation_id, counted)
        )
        if changed is None:
            raise KeyError(consultation_id)
        return changed

    # -- recordings and consent receipts
    async def create_recording(self, recording: Recording) -> None:
        await self._run(lambda conn: _insert(conn, RECORDINGS, recording))

    async def get_recording(self, recording_id: str) -> Recording | None:
        return await self._run(lambda conn: _get(conn, RECORDINGS, recording_id))

    async def list_recordings(
        self, consultation_id: str | None = None, doctor_id: str | None = None
    ) -> list[Recording]:
        clauses, params = [], []
        for column, value in (("consultation_id", consultation_id), ("doctor_id", doctor_id)):
            if value is not None:
                clauses.append(f"{column} = %s")
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return await self._run(
            lambda conn: _select(conn, RECORDINGS, where, params, "ORDER BY started_at DESC")
        )

    async def update_recording(self, recording: Recording) -> None:
        await self._run(lambda conn: _update(conn, RECORDINGS, recording))

    async def add_consent_receipt(self, receipt: ConsentReceipt) -> None:
        await self._run(lambda conn: _insert(conn, CONSENT_RECEIPTS, receipt))

    async def delete_consent_receipts(self, consultation_id: str, before: float) -> int:
        return await self._run(
            lambda conn: _rowcount(
                conn,
                "DELETE FROM consent_receipts WHERE consultation_id = %s AND at < %s",
                (consultation_id, before),
            )
        )

    async def list_consent_receipts(self, consultation_id: str) -> list[ConsentReceipt]:
        # ctid: receipts given at the same instant keep the order they were written in.
        return await self._run(
            lambda conn: _select(
                conn,
                CONSENT_RECEIPTS,
                "WHERE consultation_id = %s",
                (consultation_id,),
                "ORDER BY at, ctid",
            )
        )

    # -- short-lived keys: in Redis when given one, else in the ephemeral table
    async def claim_once(self, key: str, ttl: float, now: float) -> bool:
        if self._short_lived is not None:
            return await self._short_lived.claim_once(key, ttl, now)

        async def op(conn: Conn) -> bool:
            await conn.execute(
                "DELETE FROM ephemeral WHERE key = %s AND expires_at <= %s", (key, now)
            )
            return 1 == await _rowcount(
                conn,
                "INSERT INTO ephemeral (key, count, expires_at) VALUES (%s, 1, %s) "
                "ON CONFLICT (key) DO NOTHING",
                (key, now + ttl),
            )

        return await self._run(op)

    async def incr(self, key: str, ttl: float, now: float) -> int:
        if self._short_lived is not None:
            return await self._short_lived.incr(key, ttl, now)

        async def op(conn: Conn) -> int:
            await conn.execute(
                "DELETE FROM ephemeral WHERE key = %s AND expires_at <= %s", (key, now)
            )
            row = await (
                await conn.execute(
                    "INSERT INTO ephemeral (key, count, expires_at) VALUES (%s, 1, %s) "
                    "ON CONFLICT (key) DO UPDATE SET count = ephemeral.count + 1 "
                    "RETURNING count",
                    (key, now + ttl),
                )
            ).fetchone()
            return int(row[0]) if row else 0

        return await self._run(op)

    async def get_count(self, key: str, now: float) -> int:
        if self._short_lived is not None:
            return await self._short_lived.get_count(key, now)

        async def op(conn: Conn) -> int:
            row = await (
                await conn.execute(
                    "SELECT count FROM ephemeral WHERE key = %s AND expires_at > %s", (key, now)
                )
            ).fetchone()
            return int(row[0]) if row else 0

        return await self._run(op)

    async def delete_key(self, key: str) -> None:
        if self._short_lived is not None:
            await self._short_lived.delete_key(key)
            return
        await self._run(lambda conn: conn.execute("DELETE FROM ephemeral WHERE key = %s", (key,)))

    async def purge_ephemeral(self, now: float) -> int:
        # Also with short-lived keys in Redis (which expires them itself): the table may still
        # hold rows written before the instances shared a Redis.
        return await self._run(
            lambda conn: _rowcount(conn, "DELETE FROM ephemeral WHERE expires_at <= %s", (now,))
        )

    async def scrub(self) -> None:
        # Erased details linger in dead row versions until a vacuum; VACUUM FULL rewrites the
        # small tables that hold patients' details, so no old version stays in their files.
        # (WAL segments and backups keep them until they are recycled: docs/deploy.md.)
        if self._pool is None:
            raise StoreUnavailable("store is closed")
        try:
            async with self._pool.connection() as conn:
                for kind in (CONSULTATIONS, CONSENT_RECEIPTS, RECORDINGS, SESSIONS):
                    await conn.execute(f"VACUUM (FULL) {_q(kind.name)}")
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(str(exc)) from exc

    # -- meta
    async def get_meta(self, name: str) -> str | None:
        async def op(conn: Conn) -> str | None:
            cursor = await conn.execute("SELECT value FROM meta WHERE name = %s", (name,))
            row = await cursor.fetchone()
            return str(row[0]) if row else None

        return await self._run(op)

    async def set_meta(self, name: str, value: str) -> None:
        await self._run(lambda conn: _set_meta(conn, name, value))

    async def list_meta(self, prefix: str) -> list[tuple[str, str]]:
        async def op(conn: Conn) -> list[tuple[str, str]]:
            cursor = await conn.execute(
                "SELECT name, value FROM meta WHERE starts_with(name, %s) ORDER BY name",
                (prefix,),
            )
            return [(str(name), str(value)) for name, value in await cursor.fetchall()]

        return await self._run(op)

    # -- audit
    async def append_audit(self, fields: AuditFields) -> AuditEntry:
        return await self._run(lambda conn: _append_audit(conn, fields))

    async def audit_checkpoint(self) -> AuditCheckpoint | None:
        return await self._run(_audit_checkpoint)

    async def set_audit_checkpoint(self, checkpoint: AuditCheckpoint) -> None:
        await self.set_meta(_CHECKPOINT, checkpoint.encode())

    async def purge_audit(self, before: float, report: PurgeReport) -> AuditEntry | None:
        async def op(conn: Conn) -> AuditEntry | None:
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_AUDIT_LOCK,))
            # The oldest entries up to the first one dated at or after ``before``: a prefix,
            # so the kept trail still chains from one checkpoint.
            row = await (
                await conn.execute("SELECT MIN(seq) FROM audit WHERE at >= %s", (before,))
            ).fetchone()
            newer = row[0] if row else None
            bound, params = ("WHERE seq < %s", (newer,)) if newer is not None else ("", ())
            last = await _select(conn, AUDIT, bound, params, "ORDER BY seq DESC LIMIT 1")
            if not last:
                return None
            removed = await _rowcount(conn, f"DELETE FROM audit {bound}", params)
            checkpoint = AuditCheckpoint(last[0].seq, last[0].hash)
            await _set_meta(conn, _CHECKPOINT, checkpoint.encode())
            return await _append_audit(conn, report(removed, checkpoint), locked=True)

        return await self._run(op)

    async def list_audit(self, query: AuditFilter) -> list[AuditEntry]:
        clauses: list[str] = []
        params: list[Any] = []
        for column in AUDIT_FILTERS:
            value = getattr(query, column)
            if value is not None:
                clauses.append(f"{_q(column)} = %s")
                params.append(value)
        if query.since is not None:
            clauses.append("at >= %s")
            params.append(query.since)
        if query.until is not None:
            clauses.append("at < %s")
            params.append(query.until)
        if query.targets is not None:
            clauses.append("target = ANY(%s)")
            params.append(sorted(query.targets))
        if query.after_seq is not None:
            clauses.append("seq < %s" if query.newest_first else "seq > %s")
            params.append(query.after_seq)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        order = "DESC" if query.newest_first else "ASC"
        params += [query.limit, query.offset]
        return await self._run(
            lambda conn: _select(
                conn, AUDIT, where, params, f"ORDER BY seq {order} LIMIT %s OFFSET %s"
            )
        )

    async def audit_head(self) -> AuditEntry | None:
        last = await self._run(lambda conn: _select(conn, AUDIT, order="ORDER BY seq DESC LIMIT 1"))
        return last[0] if last else None

    async def all_audit(self) -> list[AuditEntry]:
        return await self._run(lambda conn: _select(conn, AUDIT, order="ORDER BY seq"))


async def _audit_checkpoint(conn: Conn) -> AuditCheckpoint | None:
    cursor = await conn.execute("SELECT value FROM meta WHERE name = %s", (_CHECKPOINT,))
    row = await cursor.fetchone()
    return AuditCheckpoint.decode(row[0]) if row else None


async def _append_audit(conn: Conn, fields: AuditFields, locked: bool = False) -> AuditEntry:
    # Under the audit lock until the transaction ends: an append from any other instance
    # waits, then chains onto this one. After a purge the chain goes on from the checkpoint.
    if not locked:
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_AUDIT_LOCK,))
    last = await _select(conn, AUDIT, order="ORDER BY seq DESC LIMIT 1")
    if last:
        seq, prev = last[0].seq + 1, last[0].hash
    else:
        checkpoint = await _audit_checkpoint(conn)
        seq, prev = (checkpoint.seq + 1, checkpoint.hash) if checkpoint else (1, GENESIS)
    entry = chained_entry(fields, seq, prev)
    await _insert(conn, AUDIT, entry)
    return entry
