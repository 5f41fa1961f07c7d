"""Redis backend: state shared by several instances.

Records are stored whole (signaling/store/records.py): one JSON value per record, at
``<prefix>rec:<kind>:<key>``. What the lists need is derived from the kind's declaration: one
sorted set per index (``<prefix>idx:<kind>:<index>``, with ``:<value>`` for an index on a field),
scored on the index's order field, and one string per unique value
(``<prefix>uniq:<kind>:<name>:<value>``, holding the record's key). A list reads its sorted set
with a LIMIT and fetches the records of its page with one MGET: a page costs what it holds.

A record and its index entries are written in one MULTI; an operation that reads before it
writes is one WATCH/MULTI transaction, retried when a watched key changed meanwhile, or one
Lua script: never a read-modify-write left open. Expiry of ephemeral keys follows the
application's clock (passed in as ``now``), with a Redis TTL on top so that nothing lingers.
Durable data is only durable with AOF: ``open()`` refuses a server with ``appendonly no``
unless told otherwise. A database of the earlier layout (records as hashes) is converted by
``open()``, see :meth:`RedisStore._upgrade`.

Over 400 lines on purpose: the whole Store protocol, the page-at-a-time audit reads and the
one-time conversion of the earlier layout; each operation is a transaction of its own.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar, cast, get_args

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, TimeoutError, WatchError

from config import ConfigError
from signaling.models import (
    AuditEntry,
    AuditFields,
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
    AuditFilter,
    DuplicateUsername,
    PurgeReport,
    SetupClaim,
    StoreUnavailable,
)
from signaling.store.changes import (
    code_failure_counted,
    keeps_an_enabled_admin,
    totp_advanced,
    updated_keeping_totp_step,
)
from signaling.store.records import (
    AUDIT,
    AUDIT_FILTERS,
    CONSENT_RECEIPTS,
    CONSULTATIONS,
    RECORDINGS,
    SESSIONS,
    USERS,
    Index,
    Kind,
    fold_username,
)
from signaling.store.redis_client import close_redis, open_redis
from signaling.store.short_lived_redis import RedisShortLivedKeys, ttl_ms

log = logging.getLogger("teleconsult.store")

T = TypeVar("T")
R = TypeVar("R", bound=msgspec.Struct)

# The layout this code writes; 1 (no marker) kept records as hashes.
SCHEMA = "2"
# Audit indexes by name: the whole trail in order, by time, by each filtered field.
_AUDIT_ALL, _AUDIT_AT = Index(None, "seq"), Index(None, "at")
_AUDIT_BY = {name: Index(name, "seq") for name in AUDIT_FILTERS}
# The most records one MGET or one index read asks for.
_BATCH = 1000

# Keeps the receipts given at or after ARGV[1], in order; one script, so no receipt added
# meanwhile is lost.
_DELETE_RECEIPTS = """
local kept, removed = {}, 0
for _, item in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  if cjson.decode(item).at < tonumber(ARGV[1]) then removed = removed + 1
  else table.insert(kept, item) end
end
if removed > 0 then
  redis.call('DEL', KEYS[1])
  for _, item in ipairs(kept) do redis.call('RPUSH', KEYS[1], item) end
end
return removed
"""


def _multi(pipe: Pipeline) -> None:
    pipe.multi()  # type: ignore[no-untyped-call]


def _text(value: object) -> str:
    """A value Redis answered: str, the client decoding responses (its types allow bytes)."""
    if isinstance(value, bytes):
        return value.decode()
    if not isinstance(value, str):
        raise TypeError(f"unexpected Redis answer {value!r}")
    return value


def _texts(values: Iterable[object]) -> list[str]:
    return [_text(v) for v in values]


def _from_hash(kind: Kind[R], fields: dict[str, str]) -> R:
    """A record as the schema-1 layout kept it: a hash of strings, "" for None, bytes in hex,
    booleans as "1"/"0"; a field it did not have yet takes its default."""
    values: dict[str, object] = {}
    for field in msgspec.structs.fields(kind.type):
        raw = fields.get(field.encode_name)
        if raw is None:
            continue
        types = get_args(field.type) or (field.type,)
        if raw == "" and type(None) in types:
            values[field.name] = None
        elif bytes in types:
            values[field.name] = bytes.fromhex(raw)
        else:
            values[field.name] = raw
    return msgspec.convert(values, kind.type, strict=False)


class RedisStore:
    def __init__(self, url: str, require_aof: bool = True, prefix: str = "tc:") -> None:
        self.url = url
        self.require_aof = require_aof
        self.p = prefix
        self._redis: aioredis.Redis | None = None
        self._short_lived = RedisShortLivedKeys(lambda: self.r, prefix)

    @property
    def r(self) -> aioredis.Redis:
        if self._redis is None:
            raise StoreUnavailable("store is closed")
        return self._redis

    async def _call(self, awaitable: Awaitable[T]) -> T:
        try:
            return await awaitable
        except (RedisConnectionError, TimeoutError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def open(self) -> None:
        self._redis = open_redis(
            self.url,
            decode_responses=True,
            socket_timeout=5,
            socket_connect_timeout=5,
            health_check_interval=10,
            # No silent retries: a command that fails answers StoreUnavailable (503) at once,
            # and a closed store is never reconnected behind our back by an in-flight call.
            retry=Retry(NoBackoff(), 0),
        )
        try:
            config = await self._redis.config_get("appendonly")
        except RedisError as exc:
            await self.close()
            raise ConfigError(f"storage.redis_url: cannot reach Redis ({exc})") from exc
        if config.get("appendonly") != "yes":
            if self.require_aof:
                await self.close()
                raise ConfigError(
                    "storage.redis_require_aof: Redis runs without AOF persistence "
                    "(appendonly no), so accounts and consultations would be lost on restart; "
                    "enable 'appendonly yes' with 'appendfsync everysec' or set "
                    "storage.redis_require_aof = false"
                )
            log.warning("Redis runs WITHOUT AOF persistence: durable data will be lost on restart")
        await self._upgrade()

    async def close(self) -> None:
        if self._redis is not None:
            await close_redis(self._redis)
            self._redis = None

    async def ping(self) -> None:
        await self._call(self.r.ping())

    # -- records, their indexes and unique values (derived from records.py)
    def _rec(self, kind: Kind[Any], key: object) -> str:
        return f"{self.p}rec:{kind.name}:{key}"

    def _idx(self, kind: Kind[Any], index: Index, value: object = None) -> str:
        name = f"{self.p}idx:{kind.name}:{index.name}"
        return name if index.field is None else f"{name}:{value}"

    def _uniq(self, kind: Kind[Any], name: str, value: str) -> str:
        return f"{self.p}uniq:{kind.name}:{name}:{value}"

    def _entries(self, kind: Kind[R], record: R) -> dict[str, float]:
        """The sorted sets ``record`` belongs in, with its score in each."""
        entries = {}
        for index in kind.indexes:
            value = getattr(record, index.field) if index.field is not None else None
            if index.field is not None and value is None:
                continue  # a session without a user is in no user's index
            score = float(getattr(record, index.order)) if index.order else 0.0
            entries[self._idx(kind, index, value)] = score
        return entries

    def _uniques(self, kind: Kind[R], record: R) -> dict[str, str]:
        return {self._uniq(kind, u.name, u.of(record)): kind.key_of(record) for u in kind.unique}

    def _put(
        self, pipe: Pipeline, kind: Kind[R], record: R, old: R | None = None, px: int | None = None
    ) -> None:
        """Queue the writes of ``record`` over ``old`` (its stored version, if any)."""
        member = kind.key_of(record)
        pipe.set(self._rec(kind, member), kind.encode(record), px=px)
        entries, uniques = self._entries(kind, record), self._uniques(kind, record)
        if old is not None:
            for key in self._entries(kind, old).keys() - entries.keys():
                pipe.zrem(key, member)
            for key in self._uniques(kind, old).keys() - uniques.keys():
                pipe.delete(key)
        for key, score in entries.items():
            pipe.zadd(key, {member: score})
        for key, value in uniques.items():
            pipe.set(key, value)

    def _put_many(self, pipe: Pipeline, kind: Kind[R], records: Sequence[R]) -> None:
        """Queue new ``records`` in a few commands (one MSET, one ZADD per sorted set)."""
        if not records:
            return
        pipe.mset({self._rec(kind, kind.key_of(r)): kind.encode(r) for r in records})
        members: dict[str, dict[str, float]] = {}
        for record in records:
            for key, score in self._entries(kind, record).items():
                members.setdefault(key, {})[kind.key_of(record)] = score
        for key, scores in members.items():
            pipe.zadd(key, scores)
        uniques = {k: v for r in records for k, v in self._uniques(kind, r).items()}
        if uniques:
            pipe.mset(uniques)

    def _delete(self, pipe: Pipeline, kind: Kind[R], records: Iterable[R]) -> None:
        for record in records:
            member = kind.key_of(record)
            pipe.delete(self._rec(kind, member), *self._uniques(kind, record))
            for key in self._entries(kind, record):
                pipe.zrem(key, member)

    async def _transact(self, watch: Sequence[str], body: Callable[[Pipeline], Awaitable[T]]) -> T:
        """Run ``body`` with ``watch`` watched: it reads (the pipeline answers at once), then
        calls ``multi()``, queues its writes and executes them; all again if a watched key
        changed in between. Without ``multi()`` it writes nothing."""
        while True:
            async with self.r.pipeline(transaction=True) as pipe:
                try:
                    if watch:
                        await pipe.watch(*watch)
                    return await body(pipe)
                except WatchError:
                    continue
                except (RedisConnectionError, TimeoutError, OSError) as exc:
                    raise StoreUnavailable(str(exc)) from exc

    async def _write(self, kind: Kind[R], record: R, px: int | None = None) -> None:
        """Write a record whose indexed fields never change (or that is new)."""
        async with self.r.pipeline(transaction=True) as pipe:
            self._put(pipe, kind, record, px=px)
            await self._call(pipe.execute())

    async def _ids(
        self,
        key: str,
        start: int | str = 0,
        stop: int | str = -1,
        *,
        desc: bool = False,
        byscore: bool = False,
        via: Any = None,
    ) -> list[str]:
        """The members of the sorted set ``key`` from ``start`` to ``stop`` (ranks, or scores
        with ``byscore``); ``via``: a watching pipeline instead of the client."""
        if via is not None:
            return _texts(await via.zrange(key, start, stop, desc=desc, byscore=byscore))
        return _texts(await self._call(self.r.zrange(key, start, stop, desc=desc, byscore=byscore)))

    async def _get(self, kind: Kind[R], key: object) -> R | None:
        raw = await self._call(self.r.get(self._rec(kind, key)))
        return kind.decode(raw) if raw is not None else None

    async def _many(self, kind: Kind[R], keys: Sequence[object], via: Any = None) -> list[R]:
        """The records at ``keys`` that exist, in that order (``via``: a watching pipeline)."""
        found: list[R] = []
        for start in range(0, len(keys), _BATCH):
            names = [self._rec(kind, key) for key in keys[start : start + _BATCH]]
            raws = await (via.mget(names) if via is not None else self._call(self.r.mget(names)))
            found += [kind.decode(raw) for raw in raws if raw is not None]
        return found

    async def _change(
        self, kind: Kind[R], key: object, change: Callable[[R], R | None]
    ) -> R | None:
        """Rewrite the stored record as ``change`` makes it, atomically; None (nothing
        written) when there is no such record or ``change`` answers None."""
        name = self._rec(kind, key)

        async def body(pipe: Pipeline) -> R | None:
            raw = await pipe.get(name)
            changed = change(kind.decode(raw)) if raw is not None else None
            if raw is None or changed is None:
                return None
            await self._check_unique(pipe, kind, changed)
            _multi(pipe)
            self._put(pipe, kind, changed, old=kind.decode(raw))
            await pipe.execute()
            return changed

        return await self._transact([name], body)

    async def _check_unique(self, pipe: Pipeline, kind: Kind[R], record: R) -> None:
        """Refuse ``record`` when another record holds one of its unique values (watched, so
        a value taken meanwhile makes the transaction start again)."""
        for key, owner in self._uniques(kind, record).items():
            await pipe.watch(key)
            holder = await pipe.get(key)
            if holder is not None and holder != owner:
                raise DuplicateUsername(key.rsplit(":", 1)[1])

    # -- users
    async def create_user(self, user: User) -> None:
        async def body(pipe: Pipeline) -> None:
            await self._check_unique(pipe, USERS, user)
            _multi(pipe)
            self._put(pipe, USERS, user)
            await pipe.execute()

        await self._transact([], body)

    async def create_first_user(self, user: User, nonce_name: str, nonce: str) -> SetupClaim:
        everyone, meta = self._idx(USERS, USERS.indexes[0]), f"{self.p}meta"

        async def body(pipe: Pipeline) -> SetupClaim:
            # The nonce first: a claim committed between the two reads then shows as a user.
            current = await pipe.hget(meta, nonce_name)
            if await pipe.zcard(everyone) > 0:
                return "setup_done"
            if current != nonce:
                return "link_invalid"
            await self._check_unique(pipe, USERS, user)
            _multi(pipe)
            self._put(pipe, USERS, user)
            pipe.hset(meta, nonce_name, SETUP_NONCE_USED)
            await pipe.execute()
            return "created"

        # Of concurrent claims one commits; the others find a user when they start again.
        return await self._transact([everyone, meta], body)

    async def get_user(self, user_id: str) -> User | None:
        return await self._get(USERS, user_id)

    async def get_user_by_username(self, username: str) -> User | None:
        key = self._uniq(USERS, USERS.unique[0].name, fold_username(username))
        user_id = await self._call(self.r.get(key))
        return await self.get_user(_text(user_id)) if user_id else None

    async def list_users(self) -> list[User]:
        ids = await self._ids(self._idx(USERS, USERS.indexes[0]))
        users = await self._many(USERS, ids)
        return sorted(users, key=lambda u: fold_username(u.username))

    async def count_users(self) -> int:
        return int(await self._call(self.r.zcard(self._idx(USERS, USERS.indexes[0]))))

    async def update_user(self, user: User) -> None:
        # totp_last_step is only ever moved by advance_totp_step, so it stays monotonic.
        await self._change(USERS, user.id, updated_keeping_totp_step(user))

    async def set_user_role(self, user_id: str, role: StaffRole) -> bool:
        everyone = self._idx(USERS, USERS.indexes[0])

        async def body(pipe: Pipeline) -> bool:
            ids = await self._ids(everyone, via=pipe)
            if ids:
                await pipe.watch(*(self._rec(USERS, i) for i in ids))
            users = await self._many(USERS, ids, pipe)
            if not keeps_an_enabled_admin(users, user_id, role):
                return False
            _multi(pipe)
            for u in users:
                if u.id == user_id:
                    self._put(pipe, USERS, u.evolve(role=role), old=u)
            await pipe.execute()
            return True

        return await self._transact([everyone], body)

    async def set_user_password(
        self, user_id: str, old_hash: str, new_hash: str, keep_session: str
    ) -> int | None:
        name = self._rec(USERS, user_id)
        index = self._idx(SESSIONS, SESSIONS.indexes[0], user_id)

        async def body(pipe: Pipeline) -> int | None:
            raw = await pipe.get(name)
            user = USERS.decode(raw) if raw is not None else None
            if user is None or user.password_hash != old_hash:
                return None
            ids = [i for i in await self._ids(index, via=pipe) if i != keep_session]
            ended = await self._many(SESSIONS, ids, pipe)
            _multi(pipe)
            self._put(pipe, USERS, user.evolve(password_hash=new_hash), old=user)
            self._delete(pipe, SESSIONS, ended)
            if ids:
                pipe.zrem(index, *ids)  # also the ids of sessions that expired by their TTL
            await pipe.execute()
            return len(ended)

        # A session opened meanwhile changes the index: the transaction starts again.
        return await self._transact([name, index], body)

    async def change_user(self, user_id: str, change: Callable[[User], User | None]) -> User | None:
        return await self._change(USERS, user_id, change)

    async def advance_totp_step(self, user_id: str, step: int) -> bool:
        changed = await self._change(USERS, user_id, totp_advanced(step))
        return changed is not None

    # -- sessions (a session's user never changes: written without reading it first)
    async def put_session(self, session: Session) -> None:
        await self._write(SESSIONS, session, px=ttl_ms(session.expires_at - session.last_seen))

    async def get_session(self, id_hash: str) -> Session | None:
        return await self._get(SESSIONS, id_hash)

    async def delete_session(self, id_hash: str) -> None:
        session = await self.get_session(id_hash)
        if session is not None:
            async with self.r.pipeline(transaction=True) as pipe:
                self._delete(pipe, SESSIONS, [session])
                await self._call(pipe.execute())

    async def delete_user_sessions(self, user_id: str) -> int:
        index = self._idx(SESSIONS, SESSIONS.indexes[0], user_id)

        async def body(pipe: Pipeline) -> int:
            sessions = await self._many(SESSIONS, await self._ids(index, via=pipe), pipe)
            _multi(pipe)
            self._delete(pipe, SESSIONS, sessions)
            pipe.delete(index)
            await pipe.execute()
            return len(sessions)

        return await self._transact([index], body)

    async def purge_sessions(self, now: float) -> int:
        by_expiry = self._idx(SESSIONS, SESSIONS.indexes[1])
        ids = await self._ids(by_expiry, "-inf", repr(now), byscore=True)
        if not ids:
            return 0

        async def body(pipe: Pipeline) -> int:
            # Read again under watch: a session renewed meanwhile is kept.
            present = await self._many(SESSIONS, ids, pipe)
            expired = [s for s in present if s.expires_at <= now]
            gone = set(ids) - {s.id_hash for s in present}  # expired by their Redis TTL
            _multi(pipe)
            self._delete(pipe, SESSIONS, expired)
            if gone:
                pipe.zrem(by_expiry, *gone)
            await pipe.execute()
            return len(expired)

        return await self._transact([self._rec(SESSIONS, i) for i in ids], body)

    # -- consultations
    async def create_consultation(self, consultation: Consultation) -> None:
        await self._write(CONSULTATIONS, consultation)

    async def get_consultation(self, consultation_id: str) -> Consultation | None:
        return await self._get(CONSULTATIONS, consultation_id)

    async def list_consultations(self, doctor_id: str | None) -> list[Consultation]:
        everyone, by_doctor = CONSULTATIONS.indexes
        index = (
            self._idx(CONSULTATIONS, everyone)
            if doctor_id is None
            else self._idx(CONSULTATIONS, by_doctor, doctor_id)
        )
        return await self._many(CONSULTATIONS, await self._ids(index))

    async def update_consultation(self, consultation: Consultation) -> None:
        await self._change(CONSULTATIONS, consultation.id, lambda _: consultation)

    async def change_consultation(
        self, consultation_id: str, change: Callable[[Consultation], Consultation | None]
    ) -> Consultation | None:
        return await self._change(CONSULTATIONS, consultation_id, change)

    async def record_code_failure(self, consultation_id: str, lock_at: int) -> Consultation:
        changed = await self._change(CONSULTATIONS, consultation_id, code_failure_counted(lock_at))
        if changed is None:
            raise KeyError(consultation_id)
        return changed

    # -- recordings and consent receipts
    async def create_recording(self, recording: Recording) -> None:
        await self._write(RECORDINGS, recording)

    async def get_recording(self, recording_id: str) -> Recording | None:
        return await self._get(RECORDINGS, recording_id)

    async def list_recordings(
        self, consultation_id: str | None = None, doctor_id: str | None = None
    ) -> list[Recording]:
        # Read the narrowest index; a consultation's recordings are all its doctor's.
        everyone, by_doctor, by_consultation = RECORDINGS.indexes
        if consultation_id is not None:
            index = self._idx(RECORDINGS, by_consultation, consultation_id)
        elif doctor_id is not None:
            index = self._idx(RECORDINGS, by_doctor, doctor_id)
        else:
            index = self._idx(RECORDINGS, everyone)
        ids = await self._ids(index, desc=True)
        return [
            r
            for r in await self._many(RECORDINGS, ids)
            if doctor_id is None or r.doctor_id == doctor_id
        ]

    async def update_recording(self, recording: Recording) -> None:
        await self._change(RECORDINGS, recording.id, lambda _: recording)

    # Receipts are a list per consultation, whole JSON values in the order they were given
    # (a sorted set on ``at`` would not keep that order between receipts of the same time).
    async def add_consent_receipt(self, receipt: ConsentReceipt) -> None:
        key = f"{self.p}consents:{receipt.consultation_id}"
        await self._call(self.r.rpush(key, CONSENT_RECEIPTS.encode(receipt)))

    async def delete_consent_receipts(self, consultation_id: str, before: float) -> int:
        removed = await self._call(
            self.r.eval(
                _DELETE_RECEIPTS, 1, f"{self.p}consents:{consultation_id}", repr(float(before))
            )
        )
        return int(removed)

    async def list_consent_receipts(self, consultation_id: str) -> list[ConsentReceipt]:
        raw = await self._call(self.r.lrange(f"{self.p}consents:{consultation_id}", 0, -1))
        return [CONSENT_RECEIPTS.decode(item) for item in raw]

    # -- ephemeral
    async def claim_once(self, key: str, ttl: float, now: float) -> bool:
        return await self._short_lived.claim_once(key, ttl, now)

    async def incr(self, key: str, ttl: float, now: float) -> int:
        return await self._short_lived.incr(key, ttl, now)

    async def get_count(self, key: str, now: float) -> int:
        return await self._short_lived.get_count(key, now)

    async def delete_key(self, key: str) -> None:
        await self._short_lived.delete_key(key)

    async def purge_ephemeral(self, now: float) -> int:
        # Nothing to do: every short-lived key carries a Redis TTL, and Redis removes it.
        return 0

    async def scrub(self) -> None:
        # Rewrite the AOF so that overwritten values do not survive in its history.
        try:
            await self._call(self.r.bgrewriteaof())
        except RedisError as exc:  # a rewrite already running will include the erasure
            log.info("AOF rewrite not started: %s", exc)

    # -- meta
    async def get_meta(self, name: str) -> str | None:
        value = await self._call(self.r.hget(f"{self.p}meta", name))
        return _text(value) if value is not None else None

    async def set_meta(self, name: str, value: str) -> None:
        await self._call(self.r.hset(f"{self.p}meta", name, value))

    async def list_meta(self, prefix: str) -> list[tuple[str, str]]:
        # HSCAN a batch at a time (never one HGETALL blocking the server on a large hash),
        # the prefix escaped so that its characters match themselves, not as a pattern.
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*"
        found: dict[str, str] = {}
        cursor = 0
        while True:
            cursor, batch = await self._call(
                self.r.hscan(f"{self.p}meta", cursor, match=pattern, count=_BATCH)
            )
            pairs = cast(dict[object, object], batch)  # HSCAN answers a mapping
            found.update({_text(name): _text(value) for name, value in pairs.items()})
            if not cursor:
                return sorted(found.items())

    # -- audit: each entry a record keyed by its sequence number, in the sorted sets of
    # records.py (scored on seq, and one on time); appended under WATCH on the whole trail's
    # set, so that an entry appended by another instance meanwhile is chained onto.
    @property
    def _checkpoint_key(self) -> str:
        return f"{self.p}audit:checkpoint"

    async def _last_entry(self, via: Any) -> AuditEntry | None:
        """The trail's last entry, read through ``via`` (the client or a watching pipeline)."""
        last = await self._ids(self._idx(AUDIT, _AUDIT_ALL), -1, -1, via=via)
        raw = await via.get(self._rec(AUDIT, last[0])) if last else None
        return AUDIT.decode(raw) if raw is not None else None

    async def append_audit(self, fields: AuditFields) -> AuditEntry:
        async def body(pipe: Pipeline) -> AuditEntry:
            last = await self._last_entry(pipe)
            if last is not None:
                seq, prev = last.seq + 1, last.hash
            else:
                # Empty after a purge: the chain goes on from the checkpoint.
                raw = await pipe.get(self._checkpoint_key)
                checkpoint = AuditCheckpoint.decode(str(raw)) if raw else None
                seq, prev = (checkpoint.seq + 1, checkpoint.hash) if checkpoint else (1, GENESIS)
            entry = chained_entry(fields, seq, prev)
            _multi(pipe)
            self._put(pipe, AUDIT, entry)
            await pipe.execute()
            return entry

        return await self._transact([self._idx(AUDIT, _AUDIT_ALL), self._checkpoint_key], body)

    async def set_audit_checkpoint(self, checkpoint: AuditCheckpoint) -> None:
        await self._call(self.r.set(self._checkpoint_key, checkpoint.encode()))

    async def audit_checkpoint(self) -> AuditCheckpoint | None:
        raw = await self._call(self.r.get(self._checkpoint_key))
        return AuditCheckpoint.decode(_text(raw)) if raw else None

    async def purge_audit(self, before: float, report: PurgeReport) -> AuditEntry | None:
        trail = self._idx(AUDIT, _AUDIT_ALL)

        async def body(pipe: Pipeline) -> AuditEntry | None:
            # The oldest entries up to the first one dated at or after ``before``: a prefix,
            # read a batch at a time from the start of the trail.
            removed: list[AuditEntry] = []
            while True:
                seqs = await self._ids(trail, len(removed), len(removed) + _BATCH - 1, via=pipe)
                batch = await self._many(AUDIT, seqs, pipe)
                old = list(itertools.takewhile(lambda e: e.at < before, batch))
                removed += old
                if len(old) < len(batch) or len(seqs) < _BATCH:
                    break
            if not removed:
                return None
            head = await self._last_entry(pipe)
            assert head is not None
            checkpoint = AuditCheckpoint(removed[-1].seq, removed[-1].hash)
            entry = chained_entry(report(len(removed), checkpoint), head.seq + 1, head.hash)
            # Removal, checkpoint and report in one MULTI: all of it or none.
            _multi(pipe)
            self._delete(pipe, AUDIT, removed)
            pipe.set(self._checkpoint_key, checkpoint.encode())
            self._put(pipe, AUDIT, entry)
            await pipe.execute()
            return entry

        return await self._transact([trail, self._checkpoint_key], body)

    async def audit_head(self) -> AuditEntry | None:
        return await self._call(self._last_entry(self.r))

    async def all_audit(self) -> list[AuditEntry]:
        seqs = await self._ids(self._idx(AUDIT, _AUDIT_ALL))
        return await self._many(AUDIT, seqs)

    async def list_audit(self, query: AuditFilter) -> list[AuditEntry]:
        """A page of the entries ``query`` matches, read through the narrowest index.

        Each filter on a field names one sorted set, a doctor's targets the union of theirs,
        the period a range of the time index; the smallest of these drives. When it is the
        query's only condition the page is one ranged read (ZRANGE ... LIMIT) and one MGET;
        otherwise the driving set is read in order, a batch at a time, and its entries are
        tested with ``query.matches`` until the page is full."""
        q = query
        drivers = [
            [self._idx(AUDIT, _AUDIT_BY[name], getattr(q, name))]
            for name in AUDIT_FILTERS
            if getattr(q, name) is not None
        ]
        if q.targets is not None and q.target is None:
            drivers.append([self._idx(AUDIT, _AUDIT_BY["target"], t) for t in sorted(q.targets)])
        conditions = len(drivers) + (q.targets is not None and q.target is not None)
        drivers.append([self._idx(AUDIT, _AUDIT_ALL)])
        timed = q.since is not None or q.until is not None
        low = "-inf" if q.since is None else repr(q.since)
        high = "+inf" if q.until is None else f"({q.until!r}"
        async with self.r.pipeline(transaction=False) as pipe:
            for keys in drivers:
                for key in keys:
                    pipe.zcard(key)
            if timed:
                pipe.zcount(self._idx(AUDIT, _AUDIT_AT), low, high)
            sizes = iter(await self._call(pipe.execute()))
        costs = [sum(next(sizes) for _ in keys) for keys in drivers]
        cost, keys = min(zip(costs, drivers, strict=True), key=lambda c: c[0])
        window = next(sizes) if timed else None
        conditions += timed
        driven = keys != drivers[-1]
        chunk = min(max(q.offset + q.limit, 16), _BATCH)
        source: AsyncIterator[list[str]]
        if window is not None and window < cost:
            # The period is the narrowest: its members (sequence numbers only), in order.
            seqs = await self._ids(self._idx(AUDIT, _AUDIT_AT), low, high, byscore=True)
            ordered = [n for n in sorted(seqs, key=int, reverse=q.newest_first) if q.past(int(n))]
            if conditions == 1:
                return await self._many(AUDIT, ordered[q.offset : q.offset + q.limit])
            source = _batches(ordered, chunk)
        elif len(keys) == 1 and conditions == int(driven):
            # The one set is the whole query: the page by rank, or past a sequence number.
            if q.after_seq is None:
                start, stop = q.offset, q.offset + q.limit - 1
                seqs = await self._ids(keys[0], start, stop, desc=q.newest_first)
            else:
                seqs = await self._past(keys[0], q)
            return await self._many(AUDIT, seqs)
        else:
            source = self._merged(keys, q.newest_first, chunk, q.after_seq)
        page: list[AuditEntry] = []
        skip = q.offset
        async for seqs in source:
            while seqs:
                # Fetch no more entries than could still be needed.
                want = q.limit - len(page) + skip
                batch, seqs = seqs[:want], seqs[want:]
                for entry in await self._many(AUDIT, batch):
                    if not q.matches(entry):
                        continue
                    if skip:
                        skip -= 1
                        continue
                    page.append(entry)
                    if len(page) == q.limit:
                        return page
        return page

    async def _past(self, key: str, q: AuditFilter) -> list[str]:
        """A page of the sorted set ``key`` (scored on sequence numbers) past ``q.after_seq``
        in the listing's order: a ranged read that costs the same however deep."""
        edge = f"({q.after_seq}"
        start, stop = (edge, "-inf") if q.newest_first else (edge, "+inf")
        read = self.r.zrange(
            key, start, stop, desc=q.newest_first, byscore=True, offset=q.offset, num=q.limit
        )
        return _texts(await self._call(read))

    async def _merged(
        self, keys: Sequence[str], newest_first: bool, chunk: int, after: int | None = None
    ) -> AsyncIterator[list[str]]:
        """The members of the sorted sets ``keys`` (scored on sequence numbers) in score
        order, merged, a batch at a time: each round reads at most ``chunk`` of each set
        past the last score given (at first, past ``after``), and gives what no set can
        still precede."""
        bound: float | None = after
        live = list(keys)
        while live:
            async with self.r.pipeline(transaction=False) as pipe:
                for key in live:
                    if newest_first:
                        start = "+inf" if bound is None else f"({bound!r}"
                        pipe.zrange(
                            key,
                            start,
                            "-inf",
                            desc=True,
                            byscore=True,
                            withscores=True,
                            offset=0,
                            num=chunk,
                        )
                    else:
                        start = "-inf" if bound is None else f"({bound!r}"
                        pipe.zrange(
                            key, start, "+inf", byscore=True, withscores=True, offset=0, num=chunk
                        )
                reads: list[list[tuple[str, float]]] = await self._call(pipe.execute())
            full = [read[-1][1] for read in reads if len(read) == chunk]
            edge = (max if newest_first else min)(full) if full else None

            def within(score: float, edge: float | None = edge) -> bool:
                return edge is None or (score >= edge if newest_first else score <= edge)

            given = sorted(
                {(score, member) for read in reads for member, score in read if within(score)},
                reverse=newest_first,
            )
            yield [member for _, member in given]
            if edge is None:
                return
            bound = edge
            live = [
                key
                for key, read in zip(live, reads, strict=True)
                if len(read) == chunk or (read and not within(read[-1][1]))
            ]

    # -- the earlier layout (schema 1): records as hashes, indexes as sets, the trail a list
    async def _upgrade(self) -> None:
        """Convert a database written by the earlier layout, once, at open.

        Each record hash becomes its JSON value with its index entries (one MULTI per
        record, its TTL kept), the audit list its entries (one MULTI), then the old indexes
        go. Safe to run by several instances at once and to resume after a crash: a record
        already converted is skipped. Instances of the earlier version must be stopped
        first (they would go on writing hashes)."""
        marker = f"{self.p}schema"
        if await self._call(self.r.get(marker)) == SCHEMA:
            return
        kinds: list[tuple[Kind[Any], str]] = [
            (USERS, "user"),
            (SESSIONS, "session"),
            (CONSULTATIONS, "consultation"),
            (RECORDINGS, "recording"),
        ]
        converted = 0
        for kind, prefix in kinds:
            async for key in self.r.scan_iter(match=f"{self.p}{prefix}:*", _type="hash"):
                converted += await self._upgrade_record(kind, key)
        converted += await self._upgrade_trail()
        async with self.r.pipeline(transaction=True) as pipe:
            for pattern in ("username:*", "user_sessions:*", "consultations:doctor:*"):
                async for key in self.r.scan_iter(match=f"{self.p}{pattern}"):
                    pipe.delete(key)
            pipe.delete(*(f"{self.p}{name}" for name in ("users", "consultations", "recordings")))
            pipe.set(marker, SCHEMA)
            await self._call(pipe.execute())
        if converted:
            log.info("store: %d records converted to the layout of schema %s", converted, SCHEMA)

    async def _upgrade_record(self, kind: Kind[Any], key: str) -> int:
        async def body(pipe: Pipeline) -> int:
            fields = {_text(k): _text(v) for k, v in (await pipe.hgetall(key)).items()}
            if not fields:
                return 0  # converted by another instance meanwhile
            record = _from_hash(kind, fields)
            if isinstance(record, Session) and "invite_generation" not in fields:
                # Patient sessions saved before generations existed came from the first link.
                record = record.evolve(invite_generation=1 if record.kind == "patient" else 0)
            ttl = await pipe.pttl(key)
            _multi(pipe)
            self._put(pipe, kind, record, px=ttl if ttl > 0 else None)
            pipe.delete(key)
            await pipe.execute()
            return 1

        return await self._transact([key], body)

    async def _upgrade_trail(self) -> int:
        trail = f"{self.p}audit"

        async def body(pipe: Pipeline) -> int:
            if await pipe.type(trail) != "list":
                return 0
            entries = [AUDIT.decode(raw) for raw in await pipe.lrange(trail, 0, -1)]
            _multi(pipe)
            self._put_many(pipe, AUDIT, entries)
            pipe.delete(trail)
            await pipe.execute()
            return len(entries)

        return await self._transact([trail], body)


async def _batches(items: Sequence[str], size: int) -> AsyncIterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
