"""A Redis list costs what its page holds, not what the store holds.

Measured on the server: the bytes Redis sends back during one list call (its INFO counter
``total_net_output_bytes``), against the size of the records the call answers. Reading every
entry of a 1000-entry trail to give 50 of them sends some twenty times more than the page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import msgspec
import pytest

from signaling.models import Recording
from signaling.store.base import AuditFields, AuditFilter
from signaling.store.redis import RedisStore
from tests.servers import RedisServer

T = TypeVar("T")
NOW = 1_800_000_000.0
ENTRIES = 1000
PAGE = 50


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[RedisStore]:
    s = RedisStore(redis_server.url)
    await s.open()
    await s.r.flushdb()
    yield s
    await s.close()


async def _sent(store: RedisStore) -> int:
    return int((await store.r.info("stats"))["total_net_output_bytes"])


async def bytes_sent(store: RedisStore, call: Callable[[], Awaitable[T]]) -> tuple[T, int]:
    """What ``call`` answers, and the bytes Redis sent while it ran (less the INFO reply)."""
    first, second = await _sent(store), await _sent(store)
    result = await call()
    after = await _sent(store)
    return result, after - second - (second - first)


def size(records: list[T]) -> int:
    return sum(len(msgspec.json.encode(r)) for r in records)


async def test_an_audit_page_reads_the_page_not_the_trail(store: RedisStore) -> None:
    for i in range(ENTRIES):
        await store.append_audit(
            AuditFields(
                at=NOW + i,
                actor=f"u{i % 10}",
                actor_role="doctor",
                action="login.success" if i % 2 else "consultation.created",
                target=f"c{i % 20}",
                outcome="success",
                address="127.0.0.1",
                details='{"reason":"a few words of detail"}',
            )
        )
    queries = [
        AuditFilter(newest_first=True, offset=500, limit=PAGE),
        AuditFilter(offset=10, limit=PAGE),
        AuditFilter(actor="u3", newest_first=True, limit=PAGE),
        AuditFilter(targets=frozenset({"c1", "c2", "c3"}), newest_first=True, limit=PAGE),
        AuditFilter(since=NOW + 300, until=NOW + 400, limit=PAGE),
    ]
    for query in queries:
        page, sent = await bytes_sent(store, lambda q=query: store.list_audit(q))  # type: ignore[misc]
        assert len(page) == PAGE
        assert all(query.matches(e) for e in page)
        assert sent < 2 * size(page) + 2048, (query, sent, size(page))
    # The measure sees a whole read: the trail is some twenty pages.
    everything, sent = await bytes_sent(store, store.all_audit)
    assert sent > 10 * size(everything) // (ENTRIES // PAGE)


async def test_a_doctors_recordings_read_only_theirs(store: RedisStore) -> None:
    for i in range(ENTRIES):
        await store.create_recording(
            Recording(
                id=f"r{i}",
                consultation_id=f"c{i % 100}",
                doctor_id=f"d{i % 20}",
                started_at=NOW + i,
                key_id="ab" * 8,
                file_name=f"r{i}.tcrec",
            )
        )
    for kwargs in ({"doctor_id": "d7"}, {"consultation_id": "c42"}):
        found, sent = await bytes_sent(store, lambda k=kwargs: store.list_recordings(**k))  # type: ignore[misc]
        assert found and len(found) <= PAGE
        assert sent < 2 * size(found) + 2048, (kwargs, sent, size(found))
