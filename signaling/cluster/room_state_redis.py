"""RoomStates in Redis: a lease per room, a JSON snapshot, the resume index, fenced commits.

Keys (prefix ``tc:``): ``room:<id>`` the snapshot, ``roomlock:<id>`` the lease (a random token,
``PX`` a few seconds so a dead holder frees it), ``resume:<sha256 of secret>`` → room id and
role. Taking a room and reading it is one script; saving and letting go is another, which
writes nothing unless the lease is still this transaction's: two joins racing on two
instances are serialised, the second one sees the first one's seat. Taking is idempotent for
one token, so a command retried after a lost reply does not wait for its own lease.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from typing import cast

from redis.exceptions import RedisError

from signaling.cluster.bus_redis import RedisBus
from signaling.live.room_state import (
    ResumeChanges,
    RoomSnapshot,
    WaitingEntry,
    decode_snapshot,
    encode_snapshot,
)
from signaling.models import SeatRole
from signaling.store.base import StoreUnavailable

LEASE_MS = 5000
# How long a change waits for a room another change holds before answering 'unavailable'.
WAIT_SECONDS = 3.0

_TAKE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
   or redis.call('GET', KEYS[1]) == ARGV[1] then
  return {1, redis.call('GET', KEYS[2]) or ''}
end
return {0, ''}
"""

# KEYS: lease, room, waiting index. ARGV: token, snapshot ('' = delete), ttl ms, waiting
# entry ('<since> <generation>', '' = nobody waits), forgotten count, forgotten keys..., then
# resume key / value pairs.
_COMMIT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[2])
else
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
end
if ARGV[4] == '' then
  redis.call('HDEL', KEYS[3], KEYS[2])
else
  redis.call('HSET', KEYS[3], KEYS[2], ARGV[4])
end
local n = tonumber(ARGV[5])
for i = 6, 5 + n do redis.call('DEL', ARGV[i]) end
for i = 6 + n, #ARGV, 2 do redis.call('SET', ARGV[i], ARGV[i + 1], 'PX', ARGV[3]) end
redis.call('DEL', KEYS[1])
return 1
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisRoomStates:
    def __init__(self, bus: RedisBus) -> None:
        self.bus = bus
        self.p = bus.p

    def _keys(self, room_id: str) -> list[str]:
        return [f"{self.p}roomlock:{room_id}", f"{self.p}room:{room_id}"]

    def _resume_key(self, secret_hash: str) -> str:
        return f"{self.p}resume:{secret_hash}"

    async def begin(self, room_id: str) -> tuple[str, RoomSnapshot | None]:
        token = secrets.token_hex(8)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_SECONDS
        pause = 0.002
        while True:
            try:
                taken, raw = await self.bus.redis.eval(
                    _TAKE, 2, *self._keys(room_id), token, LEASE_MS
                )
            except (RedisError, OSError) as exc:
                raise StoreUnavailable(str(exc)) from exc
            if taken:
                return token, (decode_snapshot(raw) if raw else None)
            if loop.time() > deadline:
                raise StoreUnavailable(f"room {room_id} stays held by another change")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)

    async def commit(
        self,
        room_id: str,
        token: str,
        snapshot: RoomSnapshot | None,
        resume: ResumeChanges,
        ttl: float,
        waiting: WaitingEntry | None,
    ) -> None:
        args: list[str | int] = [
            token,
            "" if snapshot is None else encode_snapshot(snapshot).decode(),
            int(ttl * 1000),
            "" if waiting is None else waiting.encode(),
            len(resume.forgotten),
            *(self._resume_key(h) for h in resume.forgotten),
        ]
        for secret_hash, role in resume.remembered.items():
            args += [self._resume_key(secret_hash), f"{room_id} {role}"]
        try:
            done = await self.bus.redis.eval(
                _COMMIT, 3, *self._keys(room_id), self._waiting_key, *args
            )
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc
        if not done:
            raise StoreUnavailable(f"room {room_id}: the lease ran out before the save")

    async def release(self, room_id: str, token: str) -> None:
        try:
            await self.bus.redis.eval(_RELEASE, 1, self._keys(room_id)[0], token)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def read(self, room_id: str) -> RoomSnapshot | None:
        try:
            raw = await self.bus.redis.get(self._keys(room_id)[1])
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc
        return None if raw is None else decode_snapshot(raw)

    async def read_many(self, room_ids: list[str]) -> list[RoomSnapshot | None]:
        if not room_ids:
            return []
        try:
            raws = await self.bus.redis.mget([self._keys(r)[1] for r in room_ids])
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc
        return [None if raw is None else decode_snapshot(raw) for raw in raws]

    @property
    def _waiting_key(self) -> str:
        return f"{self.p}waiting"

    async def waiting(self) -> dict[str, WaitingEntry]:
        """The waiting index, without rooms whose key expired (dropped from it here)."""
        redis = self.bus.redis
        try:
            index = {
                _text(k): WaitingEntry.decode(_text(v))
                for k, v in (await redis.hgetall(self._waiting_key)).items()
            }
            pipe = redis.pipeline(transaction=False)
            for key in index:
                pipe.exists(key)
            gone = [k for k, up in zip(index, await pipe.execute(), strict=True) if not up]
            if gone:
                await redis.hdel(self._waiting_key, *gone)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc
        prefix = f"{self.p}room:"
        return {k.removeprefix(prefix): v for k, v in index.items() if k not in gone}

    async def find_resume(self, secret_hash: str) -> tuple[str, SeatRole] | None:
        try:
            raw = await self.bus.redis.get(self._resume_key(secret_hash))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc
        if raw is None:
            return None
        room_id, _, role = _text(raw).partition(" ")
        return room_id, cast(SeatRole, role)

    def changed(self, room_id: str, connection_ids: Sequence[str | None]) -> None:
        instances = {self.bus.instance_of(c) for c in connection_ids if c is not None}
        instances.discard(self.bus.instance)
        for instance in instances:
            self.bus.notify_room(instance, room_id)

    async def alive(self, connection_ids: list[str]) -> list[bool]:
        try:
            return await self.bus.alive(connection_ids)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    @property
    def beat(self) -> float:
        return self.bus.beat

    def alive_is_known(self) -> bool:
        return self.bus.steady_for(self.bus.ttl + self.bus.beat)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
