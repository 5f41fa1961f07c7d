"""Redis backend: state shared by several instances.

Durable records are hashes; indexes are sets and sorted sets; every operation that must be
atomic is one Lua script or one WATCH/MULTI transaction, never a read-modify-write in Python.
Expiry of ephemeral keys follows the application's clock (passed in as ``now``), with a Redis
TTL on top so that nothing lingers. Durable data is only durable with AOF: ``open()`` refuses a
server with ``appendonly no`` unless told otherwise.
"""

from __future__ import annotations

import itertools
import json
import logging
from typing import Any, cast

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, TimeoutError, WatchError

from config import ConfigError
from signaling.audit_chain import GENESIS, chained_entry
from signaling.models import (
    AuditEntry,
    ConsentReceipt,
    Consultation,
    ConsultationStatus,
    Recording,
    RecordingStatus,
    Session,
    SessionKind,
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

log = logging.getLogger("teleconsult.store")


def _encode_entry(entry: AuditEntry) -> str:
    return json.dumps(msgspec.structs.asdict(entry), separators=(",", ":"))


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
# redis-py's mapping parameter is invariant in its key type: a plain dict of str needs this.
Fields = dict[Any, Any]

# Sets a user's role unless that leaves no enabled admin (KEYS[1]: the set of user ids;
# ARGV: user id, role, user hash key prefix). One script: the check and the write are atomic.
_SET_ROLE = """
if ARGV[2] ~= 'admin' then
  local others = 0
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    if id ~= ARGV[1] then
      local h = redis.call('HMGET', ARGV[3] .. id, 'role', 'disabled')
      if h[1] == 'admin' and h[2] ~= '1' then others = others + 1 end
    end
  end
  if others == 0 then return 0 end
end
redis.call('HSET', ARGV[3] .. ARGV[1], 'role', ARGV[2])
return 1
"""

# Replaces a user's password hash if it still is ARGV[1], then ends the user's other sessions
# (KEYS[1]: user hash, KEYS[2]: the user's session index; ARGV: old hash, new hash, session id
# hash to keep, session key prefix). One script: no session opened meanwhile survives.
_REPLACE_PASSWORD_HASH = """
if redis.call('HGET', KEYS[1], 'password_hash') ~= ARGV[1] then return -1 end
redis.call('HSET', KEYS[1], 'password_hash', ARGV[2])
local ended = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if id ~= ARGV[3] then
    ended = ended + redis.call('DEL', ARGV[4] .. id)
    redis.call('SREM', KEYS[2], id)
  end
end
return ended
"""  # noqa: S105 (a Lua script, not a secret)

# Claims the one-time setup link and creates the first user (KEYS[1]: the set of user ids,
# KEYS[2]: the meta hash, KEYS[3]: the username key, KEYS[4]: the user hash; ARGV: nonce
# name, nonce, used marker, user id, then the user hash as field, value pairs). One script:
# of concurrent claims exactly one wins, and a refused one writes nothing.
_CREATE_FIRST_USER = """
if redis.call('SCARD', KEYS[1]) > 0 then return 'setup_done' end
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 'link_invalid' end
-- A username key without any user: a create_user is half way; it comes first.
if not redis.call('SET', KEYS[3], ARGV[4], 'NX') then return 'setup_done' end
redis.call('HSET', KEYS[4], unpack(ARGV, 5))
redis.call('SADD', KEYS[1], ARGV[4])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 'created'
"""

_ADVANCE_TOTP = """
local current = tonumber(redis.call('HGET', KEYS[1], 'totp_last_step') or '-1')
if current == nil or redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if current < tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'totp_last_step', ARGV[1])
  return 1
end
return 0
"""

_CODE_FAILURE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = redis.call('HINCRBY', KEYS[1], 'code_failures', 1)
if n >= tonumber(ARGV[1]) then redis.call('HSET', KEYS[1], 'invite_locked', '1') end
return n
"""

_CLAIM_ONCE = """
local expires = tonumber(redis.call('GET', KEYS[1]) or '0')
if expires > tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""

_INCR = """
local expires = tonumber(redis.call('HGET', KEYS[1], 'expires') or '0')
if expires > tonumber(ARGV[1]) then
  return redis.call('HINCRBY', KEYS[1], 'count', 1)
end
redis.call('HSET', KEYS[1], 'count', 1, 'expires', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

_GET_COUNT = """
local expires = tonumber(redis.call('HGET', KEYS[1], 'expires') or '0')
if expires > tonumber(ARGV[1]) then
  return tonumber(redis.call('HGET', KEYS[1], 'count'))
end
return 0
"""


def _ms(seconds: float) -> int:
    # Redis-side TTL: the logical expiry plus a margin for clock skew between instances.
    return max(int((seconds + 60) * 1000), 1000)


def _b(value: bool) -> str:
    return "1" if value else "0"


class RedisStore:
    def __init__(self, url: str, require_aof: bool = True, prefix: str = "tc:") -> None:
        self.url = url
        self.require_aof = require_aof
        self.p = prefix
        self._redis: aioredis.Redis | None = None

    @property
    def r(self) -> aioredis.Redis:
        if self._redis is None:
            raise StoreUnavailable("store is closed")
        return self._redis

    async def _call(self, coro: Any) -> Any:
        try:
            return await coro
        except (RedisConnectionError, TimeoutError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def open(self) -> None:
        self._redis = aioredis.from_url(
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

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def ping(self) -> None:
        await self._call(self.r.ping())

    # -- users
    def _user_key(self, user_id: str) -> str:
        return f"{self.p}user:{user_id}"

    def _user_to_hash(self, user: User) -> Fields:
        return {
            "id": user.id,
            "username": user.username,
            "display_name": user.display_name,
            "role": user.role,
            "password_hash": user.password_hash,
            "created_at": repr(user.created_at),
            "totp_secret_enc": user.totp_secret_enc.hex() if user.totp_secret_enc else "",
            "totp_confirmed": _b(user.totp_confirmed),
            "totp_last_step": str(user.totp_last_step),
            "disabled": _b(user.disabled),
        }

    @staticmethod
    def _user(h: dict[str, str]) -> User:
        return User(
            id=h["id"],
            username=h["username"],
            display_name=h["display_name"],
            role=cast(StaffRole, h["role"]),
            password_hash=h["password_hash"],
            created_at=float(h["created_at"]),
            totp_secret_enc=bytes.fromhex(h["totp_secret_enc"]) if h["totp_secret_enc"] else None,
            totp_confirmed=h["totp_confirmed"] == "1",
            totp_last_step=int(h["totp_last_step"]),
            disabled=h["disabled"] == "1",
        )

    async def create_user(self, user: User) -> None:
        name_key = f"{self.p}username:{user.username.casefold()}"
        claimed = await self._call(self.r.set(name_key, user.id, nx=True))
        if not claimed:
            raise DuplicateUsername(user.username)
        async with self.r.pipeline(transaction=True) as pipe:
            pipe.hset(self._user_key(user.id), mapping=self._user_to_hash(user))
            pipe.sadd(f"{self.p}users", user.id)
            await self._call(pipe.execute())

    async def create_first_user(self, user: User, nonce_name: str, nonce: str) -> SetupClaim:
        fields = self._user_to_hash(user)
        result = await self._call(
            self.r.eval(
                _CREATE_FIRST_USER,
                4,
                f"{self.p}users",
                f"{self.p}meta",
                f"{self.p}username:{user.username.casefold()}",
                self._user_key(user.id),
                nonce_name,
                nonce,
                SETUP_NONCE_USED,
                user.id,
                *itertools.chain.from_iterable(fields.items()),
            )
        )
        if result not in ("created", "setup_done", "link_invalid"):
            raise ValueError(f"unexpected setup claim answer {result!r}")
        return cast(SetupClaim, result)

    async def get_user(self, user_id: str) -> User | None:
        h = await self._call(self.r.hgetall(self._user_key(user_id)))
        return self._user(h) if h else None

    async def get_user_by_username(self, username: str) -> User | None:
        user_id = await self._call(self.r.get(f"{self.p}username:{username.casefold()}"))
        return await self.get_user(user_id) if user_id else None

    async def list_users(self) -> list[User]:
        ids = await self._call(self.r.smembers(f"{self.p}users"))
        users = [u for u in [await self.get_user(i) for i in ids] if u is not None]
        return sorted(users, key=lambda u: u.username.casefold())

    async def count_users(self) -> int:
        return int(await self._call(self.r.scard(f"{self.p}users")))

    async def update_user(self, user: User) -> None:
        fields = self._user_to_hash(user)
        del fields["totp_last_step"]  # only advance_totp_step moves it
        await self._call(self.r.hset(self._user_key(user.id), mapping=fields))

    async def set_user_role(self, user_id: str, role: StaffRole) -> bool:
        result = await self._call(
            self.r.eval(_SET_ROLE, 1, f"{self.p}users", user_id, role, f"{self.p}user:")
        )
        return int(result) == 1

    async def set_user_password(
        self, user_id: str, old_hash: str, new_hash: str, keep_session: str
    ) -> int | None:
        result = int(
            await self._call(
                self.r.eval(
                    _REPLACE_PASSWORD_HASH,
                    2,
                    self._user_key(user_id),
                    f"{self.p}user_sessions:{user_id}",
                    old_hash,
                    new_hash,
                    keep_session,
                    f"{self.p}session:",
                )
            )
        )
        return None if result < 0 else result

    async def advance_totp_step(self, user_id: str, step: int) -> bool:
        result = await self._call(self.r.eval(_ADVANCE_TOTP, 1, self._user_key(user_id), str(step)))
        return int(result) == 1

    # -- sessions
    def _session_key(self, id_hash: str) -> str:
        return f"{self.p}session:{id_hash}"

    async def put_session(self, session: Session) -> None:
        key = self._session_key(session.id_hash)
        fields: Fields = {
            "id_hash": session.id_hash,
            "kind": session.kind,
            "created_at": repr(session.created_at),
            "last_seen": repr(session.last_seen),
            "expires_at": repr(session.expires_at),
            "csrf_token": session.csrf_token,
            "user_id": session.user_id or "",
            "consultation_id": session.consultation_id or "",
            "invite_generation": str(session.invite_generation),
        }
        async with self.r.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=fields)
            pipe.pexpire(key, _ms(session.expires_at - session.last_seen))
            if session.user_id:
                pipe.sadd(f"{self.p}user_sessions:{session.user_id}", session.id_hash)
            await self._call(pipe.execute())

    async def get_session(self, id_hash: str) -> Session | None:
        h = await self._call(self.r.hgetall(self._session_key(id_hash)))
        if not h:
            return None
        return Session(
            id_hash=h["id_hash"],
            kind=cast(SessionKind, h["kind"]),
            created_at=float(h["created_at"]),
            last_seen=float(h["last_seen"]),
            expires_at=float(h["expires_at"]),
            csrf_token=h["csrf_token"],
            user_id=h["user_id"] or None,
            consultation_id=h["consultation_id"] or None,
            # Patient sessions saved before generations existed came from the first link.
            invite_generation=int(
                h.get("invite_generation") or (1 if h["kind"] == "patient" else 0)
            ),
        )

    async def delete_session(self, id_hash: str) -> None:
        session = await self.get_session(id_hash)
        async with self.r.pipeline(transaction=True) as pipe:
            pipe.delete(self._session_key(id_hash))
            if session and session.user_id:
                pipe.srem(f"{self.p}user_sessions:{session.user_id}", id_hash)
            await self._call(pipe.execute())

    async def delete_user_sessions(self, user_id: str) -> int:
        index = f"{self.p}user_sessions:{user_id}"
        hashes = await self._call(self.r.smembers(index))
        if not hashes:
            return 0
        async with self.r.pipeline(transaction=True) as pipe:
            for h in hashes:
                pipe.delete(self._session_key(h))
            pipe.delete(index)
            results = await self._call(pipe.execute())
        return int(sum(results[:-1]))

    async def purge_sessions(self, now: float) -> int:
        purged = 0
        async for key in self.r.scan_iter(match=f"{self.p}session:*", count=500):
            expires = await self._call(self.r.hget(key, "expires_at"))
            if expires is not None and float(expires) <= now:
                await self.delete_session(key.rsplit(":", 1)[1])
                purged += 1
        return purged

    # -- consultations
    def _consultation_key(self, cid: str) -> str:
        return f"{self.p}consultation:{cid}"

    @staticmethod
    def _consultation_hash(c: Consultation) -> Fields:
        return {
            "id": c.id,
            "doctor_id": c.doctor_id,
            "patient_name": c.patient_name,
            "scheduled_start": repr(c.scheduled_start),
            "duration_minutes": str(c.duration_minutes),
            "note": c.note,
            "status": c.status,
            "created_at": repr(c.created_at),
            "invite_nonce": c.invite_nonce,
            "access_code_hash": c.access_code_hash,
            "code_failures": str(c.code_failures),
            "invite_locked": _b(c.invite_locked),
            "ended_at": "" if c.ended_at is None else repr(c.ended_at),
            "erased_at": "" if c.erased_at is None else repr(c.erased_at),
            "invite_generation": str(c.invite_generation),
        }

    @staticmethod
    def _consultation(h: dict[str, str]) -> Consultation:
        return Consultation(
            id=h["id"],
            doctor_id=h["doctor_id"],
            patient_name=h["patient_name"],
            scheduled_start=float(h["scheduled_start"]),
            duration_minutes=int(h["duration_minutes"]),
            note=h["note"],
            status=cast(ConsultationStatus, h["status"]),
            created_at=float(h["created_at"]),
            invite_nonce=h["invite_nonce"],
            access_code_hash=h["access_code_hash"],
            code_failures=int(h["code_failures"]),
            invite_locked=h["invite_locked"] == "1",
            ended_at=float(h["ended_at"]) if h["ended_at"] else None,
            erased_at=float(h["erased_at"]) if h.get("erased_at") else None,
            invite_generation=int(h.get("invite_generation") or 1),
        )

    async def create_consultation(self, consultation: Consultation) -> None:
        c = consultation
        async with self.r.pipeline(transaction=True) as pipe:
            pipe.hset(self._consultation_key(c.id), mapping=self._consultation_hash(c))
            pipe.zadd(f"{self.p}consultations", {c.id: c.scheduled_start})
            pipe.zadd(f"{self.p}consultations:doctor:{c.doctor_id}", {c.id: c.scheduled_start})
            await self._call(pipe.execute())

    async def get_consultation(self, consultation_id: str) -> Consultation | None:
        h = await self._call(self.r.hgetall(self._consultation_key(consultation_id)))
        return self._consultation(h) if h else None

    async def list_consultations(self, doctor_id: str | None) -> list[Consultation]:
        index = (
            f"{self.p}consultations"
            if doctor_id is None
            else f"{self.p}consultations:doctor:{doctor_id}"
        )
        ids = await self._call(self.r.zrange(index, 0, -1))
        found = [await self.get_consultation(i) for i in ids]
        return [c for c in found if c is not None]

    async def update_consultation(self, consultation: Consultation) -> None:
        # The whole record and its indexes are rewritten, exactly as on creation.
        await self.create_consultation(consultation)

    async def record_code_failure(self, consultation_id: str, lock_at: int) -> Consultation:
        await self._call(
            self.r.eval(_CODE_FAILURE, 1, self._consultation_key(consultation_id), str(lock_at))
        )
        found = await self.get_consultation(consultation_id)
        if found is None:
            raise KeyError(consultation_id)
        return found

    # -- recordings and consent receipts
    def _recording_key(self, recording_id: str) -> str:
        return f"{self.p}recording:{recording_id}"

    @staticmethod
    def _recording_hash(r: Recording) -> Fields:
        return {
            "id": r.id,
            "consultation_id": r.consultation_id,
            "doctor_id": r.doctor_id,
            "started_at": repr(r.started_at),
            "key_id": r.key_id,
            "file_name": r.file_name,
            "status": r.status,
            "stopped_at": "" if r.stopped_at is None else repr(r.stopped_at),
            "size_bytes": str(r.size_bytes),
            "stop_reason": r.stop_reason,
            "deleted_at": "" if r.deleted_at is None else repr(r.deleted_at),
        }

    @staticmethod
    def _recording(h: dict[str, str]) -> Recording:
        return Recording(
            id=h["id"],
            consultation_id=h["consultation_id"],
            doctor_id=h["doctor_id"],
            started_at=float(h["started_at"]),
            key_id=h["key_id"],
            file_name=h["file_name"],
            status=cast(RecordingStatus, h["status"]),
            stopped_at=float(h["stopped_at"]) if h["stopped_at"] else None,
            size_bytes=int(h["size_bytes"]),
            stop_reason=h["stop_reason"],
            deleted_at=float(h["deleted_at"]) if h["deleted_at"] else None,
        )

    async def create_recording(self, recording: Recording) -> None:
        r = recording
        async with self.r.pipeline(transaction=True) as pipe:
            pipe.hset(self._recording_key(r.id), mapping=self._recording_hash(r))
            pipe.zadd(f"{self.p}recordings", {r.id: r.started_at})
            await self._call(pipe.execute())

    async def get_recording(self, recording_id: str) -> Recording | None:
        h = await self._call(self.r.hgetall(self._recording_key(recording_id)))
        return self._recording(h) if h else None

    async def list_recordings(
        self, consultation_id: str | None = None, doctor_id: str | None = None
    ) -> list[Recording]:
        ids = await self._call(self.r.zrevrange(f"{self.p}recordings", 0, -1))
        found = [await self.get_recording(i) for i in ids]
        return [
            r
            for r in found
            if r is not None
            and (consultation_id is None or r.consultation_id == consultation_id)
            and (doctor_id is None or r.doctor_id == doctor_id)
        ]

    async def update_recording(self, recording: Recording) -> None:
        fields = self._recording_hash(recording)
        await self._call(self.r.hset(self._recording_key(recording.id), mapping=fields))

    async def add_consent_receipt(self, receipt: ConsentReceipt) -> None:
        await self._call(
            self.r.rpush(
                f"{self.p}consents:{receipt.consultation_id}",
                json.dumps(msgspec.structs.asdict(receipt), separators=(",", ":")),
            )
        )

    async def delete_consent_receipts(self, consultation_id: str, before: float) -> int:
        removed = await self._call(
            self.r.eval(
                _DELETE_RECEIPTS, 1, f"{self.p}consents:{consultation_id}", repr(float(before))
            )
        )
        return int(removed)

    async def list_consent_receipts(self, consultation_id: str) -> list[ConsentReceipt]:
        raw = await self._call(self.r.lrange(f"{self.p}consents:{consultation_id}", 0, -1))
        return [ConsentReceipt(**json.loads(item)) for item in raw]

    # -- ephemeral
    async def claim_once(self, key: str, ttl: float, now: float) -> bool:
        result = await self._call(
            self.r.eval(
                _CLAIM_ONCE, 1, f"{self.p}eph:{key}", repr(now), repr(now + ttl), str(_ms(ttl))
            )
        )
        return int(result) == 1

    async def incr(self, key: str, ttl: float, now: float) -> int:
        result = await self._call(
            self.r.eval(_INCR, 1, f"{self.p}cnt:{key}", repr(now), repr(now + ttl), str(_ms(ttl)))
        )
        return int(result)

    async def get_count(self, key: str, now: float) -> int:
        # claim_once keys count as 1 while live, so a lock set with claim_once reads as set.
        claimed = await self._call(self.r.get(f"{self.p}eph:{key}"))
        if claimed is not None and float(claimed) > now:
            return 1
        result = await self._call(self.r.eval(_GET_COUNT, 1, f"{self.p}cnt:{key}", repr(now)))
        return int(result)

    async def delete_key(self, key: str) -> None:
        await self._call(self.r.delete(f"{self.p}eph:{key}", f"{self.p}cnt:{key}"))

    async def scrub(self) -> None:
        # Rewrite the AOF so that overwritten values do not survive in its history.
        try:
            await self._call(self.r.bgrewriteaof())
        except RedisError as exc:  # a rewrite already running will include the erasure
            log.info("AOF rewrite not started: %s", exc)

    # -- meta
    async def get_meta(self, name: str) -> str | None:
        value = await self._call(self.r.hget(f"{self.p}meta", name))
        return cast(str | None, value)

    async def set_meta(self, name: str, value: str) -> None:
        await self._call(self.r.hset(f"{self.p}meta", name, value))

    # -- audit: a list of canonical JSON entries, appended under WATCH on the list's tail
    async def append_audit(self, fields: AuditFields) -> AuditEntry:
        log_key, checkpoint_key = f"{self.p}audit", f"{self.p}audit:checkpoint"
        while True:
            async with self.r.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(log_key, checkpoint_key)
                    last_raw = await pipe.lindex(log_key, -1)
                    if last_raw:
                        last = json.loads(last_raw)
                        seq, prev = int(last["seq"]) + 1, str(last["hash"])
                    else:
                        # Empty after a purge: the chain goes on from the checkpoint.
                        raw = await pipe.get(checkpoint_key)
                        checkpoint = AuditCheckpoint.decode(str(raw)) if raw else None
                        seq, prev = (
                            (checkpoint.seq + 1, checkpoint.hash) if checkpoint else (1, GENESIS)
                        )
                    entry = chained_entry(fields, seq, prev)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.rpush(log_key, _encode_entry(entry))
                    await pipe.execute()
                    return entry
                except WatchError:
                    continue  # another instance appended first: chain onto its entry
                except (RedisConnectionError, TimeoutError, OSError) as exc:
                    raise StoreUnavailable(str(exc)) from exc

    async def audit_checkpoint(self) -> AuditCheckpoint | None:
        raw = await self._call(self.r.get(f"{self.p}audit:checkpoint"))
        return AuditCheckpoint.decode(raw) if raw else None

    async def purge_audit(self, before: float, report: PurgeReport) -> AuditEntry | None:
        log_key, checkpoint_key = f"{self.p}audit", f"{self.p}audit:checkpoint"
        while True:
            async with self.r.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(log_key, checkpoint_key)
                    entries = [
                        AuditEntry(**json.loads(x)) for x in await pipe.lrange(log_key, 0, -1)
                    ]
                    removed = 0
                    while removed < len(entries) and entries[removed].at < before:
                        removed += 1
                    if removed == 0:
                        await pipe.unwatch()  # type: ignore[no-untyped-call]
                        return None
                    last = entries[removed - 1]
                    checkpoint = AuditCheckpoint(last.seq, last.hash)
                    entry = chained_entry(
                        report(removed, checkpoint), entries[-1].seq + 1, entries[-1].hash
                    )
                    # Trim, checkpoint and report in one MULTI: all of it or none.
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.ltrim(log_key, removed, -1)
                    pipe.set(checkpoint_key, checkpoint.encode())
                    pipe.rpush(log_key, _encode_entry(entry))
                    await pipe.execute()
                    return entry
                except WatchError:
                    continue  # an entry was appended meanwhile: purge again with it
                except (RedisConnectionError, TimeoutError, OSError) as exc:
                    raise StoreUnavailable(str(exc)) from exc

    async def audit_head(self) -> AuditEntry | None:
        raw = await self._call(self.r.lindex(f"{self.p}audit", -1))
        return AuditEntry(**json.loads(raw)) if raw else None

    async def all_audit(self) -> list[AuditEntry]:
        raw = await self._call(self.r.lrange(f"{self.p}audit", 0, -1))
        return [AuditEntry(**json.loads(item)) for item in raw]

    async def list_audit(self, query: AuditFilter) -> list[AuditEntry]:
        entries = await self.all_audit()
        if query.newest_first:
            entries.reverse()
        matches = (e for e in entries if query.matches(e))
        return list(itertools.islice(matches, query.offset, query.offset + query.limit))
