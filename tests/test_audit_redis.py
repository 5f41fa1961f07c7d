"""Tampering with the audit trail inside Redis is found, at the right entry."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from signaling.audit.trail import verify_trail
from signaling.store.base import AuditFields
from signaling.store.redis import RedisStore
from tests.servers import RedisServer

# Each entry is one JSON value keyed by its sequence number; the trail's order is a sorted set.
TRAIL = "tc:idx:audit:all_by_seq"


def entry_key(member: object) -> str:
    return f"tc:rec:audit:{member}"


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[RedisStore]:
    s = RedisStore(redis_server.url)
    await s.open()
    await s.r.flushdb()
    for i in range(5):
        await s.append_audit(
            AuditFields(
                at=1_800_000_000.0 + i,
                actor=f"u{i}",
                actor_role="doctor",
                action="login.success",
                target="",
                outcome="success",
                address="127.0.0.1",
                details="",
            )
        )
    yield s
    await s.close()


async def broken_at(store: RedisStore) -> int | None:
    _, _, broken = await verify_trail(store)
    return None if broken is None else broken[0]


async def test_an_intact_trail_verifies(store: RedisStore) -> None:
    assert await broken_at(store) is None


async def test_a_modified_entry_is_found(store: RedisStore) -> None:
    entry = json.loads(str(await store.r.get(entry_key(3))))
    entry["actor"] = "someone-else"
    await store.r.set(entry_key(3), json.dumps(entry))
    assert await broken_at(store) == 3


async def test_a_removed_entry_is_found(store: RedisStore) -> None:
    await store.r.delete(entry_key(2))
    await store.r.zrem(TRAIL, "2")
    assert await broken_at(store) == 2


async def test_an_entry_removed_from_its_key_only_is_found(store: RedisStore) -> None:
    await store.r.delete(entry_key(2))
    assert await broken_at(store) == 2


async def test_an_inserted_entry_is_found(store: RedisStore) -> None:
    forged = json.loads(str(await store.r.get(entry_key(2))))
    forged["action"] = "user.created"
    await store.r.set(entry_key("forged"), json.dumps(forged))
    await store.r.zadd(TRAIL, {"forged": 2.5})  # right after entry 2
    assert await broken_at(store) == 3


async def test_swapped_entries_are_found(store: RedisStore) -> None:
    second, third = str(await store.r.get(entry_key(2))), str(await store.r.get(entry_key(3)))
    await store.r.set(entry_key(2), third)
    await store.r.set(entry_key(3), second)
    assert await broken_at(store) == 2
