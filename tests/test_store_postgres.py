"""What the PostgreSQL store adds to the contract (tests/test_store.py runs that on it too):
appends from several instances form one chain, the schema comes from records.py with an index
for every list, a lost server is StoreUnavailable and is reconnected, a failed operation
writes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest

from signaling.models import AuditEntry
from signaling.store.audit_chain import first_broken
from signaling.store.base import AuditCheckpoint, AuditFields, StoreUnavailable
from signaling.store.postgres import PostgresStore
from signaling.store.records import KINDS
from tests.conftest import wait_until
from tests.postgres_cluster import PostgresCluster

NOW = 1_800_000_000.0


def fields(i: int, actor: str = "u") -> AuditFields:
    return AuditFields(
        at=NOW + i,
        actor=actor,
        actor_role="doctor",
        action="login.success",
        target=f"t{i}",
        outcome="success",
        address="127.0.0.1",
        details="",
    )


@pytest.fixture
async def stores(postgres_cluster: PostgresCluster) -> AsyncIterator[list[PostgresStore]]:
    """Three instances of the service's store on one database, opened at the same time."""
    dsn = postgres_cluster.new_database()
    opened = [PostgresStore(dsn, pool_size=4) for _ in range(3)]
    await asyncio.gather(*(s.open() for s in opened))  # three migrations racing: one wins
    yield opened
    for s in opened:
        await s.close()


async def test_instances_appending_at_once_never_fork_the_chain(
    stores: list[PostgresStore],
) -> None:
    async def append_many(store: PostgresStore, actor: str) -> list[AuditEntry]:
        return [await store.append_audit(fields(i, actor)) for i in range(30)]

    # Two connections of each of three instances append at once, 180 entries in all.
    answered = await asyncio.gather(
        *(append_many(store, f"{n}{k}") for n, store in enumerate(stores) for k in "ab")
    )
    trail = await stores[0].all_audit()
    assert [e.seq for e in trail] == list(range(1, 181))
    assert first_broken(trail) is None
    assert sorted(e.seq for entries in answered for e in entries) == list(range(1, 181))


async def test_a_purge_racing_appends_keeps_one_chain(stores: list[PostgresStore]) -> None:
    for i in range(20):
        await stores[0].append_audit(fields(i))

    async def appends() -> None:
        for i in range(20, 40):
            await stores[1].append_audit(fields(i))

    purge = stores[2].purge_audit(NOW + 10, lambda removed, cp: fields(100, "retention"))
    report, _ = await asyncio.gather(purge, appends())
    assert report is not None
    trail = await stores[0].all_audit()
    checkpoint = await stores[0].audit_checkpoint()
    assert checkpoint == AuditCheckpoint(10, checkpoint.hash if checkpoint else "")
    assert trail[0].seq == 11 and trail[0].prev_hash == checkpoint.hash
    assert [e.seq for e in trail] == list(range(11, 42))
    assert first_broken(trail, checkpoint) is None


async def test_a_failed_operation_writes_nothing(stores: list[PostgresStore]) -> None:
    store = stores[0]
    for i in range(5):
        await store.append_audit(fields(i))

    def broken_report(removed: int, checkpoint: AuditCheckpoint) -> AuditFields:
        raise RuntimeError("the report cannot be built")

    # The purge deletes, stores its checkpoint, then fails building its report: rolled back.
    with pytest.raises(RuntimeError):
        await store.purge_audit(NOW + 3, broken_report)
    assert [e.seq for e in await store.all_audit()] == [1, 2, 3, 4, 5]
    assert await store.audit_checkpoint() is None


async def test_every_list_of_records_py_has_its_index(stores: list[PostgresStore]) -> None:
    async with await psycopg.AsyncConnection.connect(stores[0].dsn) as conn:
        cursor = await conn.execute(
            "SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
        )
        made = {(table, definition) for table, definition in await cursor.fetchall()}
    for kind in KINDS:
        # PostgreSQL quotes a column name only where it must (at): compared without quotes.
        definitions = [d.replace('"', "") for table, d in made if table == kind.name]
        for index in kind.indexes:
            if not index.columns:
                continue  # a whole-table list reads the table
            columns = ", ".join(index.columns)
            assert any(f"({columns})" in d for d in definitions), (kind.name, index, definitions)
        assert any("UNIQUE" in d and f"({kind.key})" in d for d in definitions), kind.name


async def test_a_second_open_keeps_the_schema_and_the_records(
    stores: list[PostgresStore],
) -> None:
    await stores[0].set_meta("kept", "yes")
    again = PostgresStore(stores[0].dsn)
    await again.open()
    try:
        assert await again.get_meta("kept") == "yes"
    finally:
        await again.close()


async def test_a_restarted_server_is_unavailable_then_reconnected(tmp_path: Path) -> None:
    # Durable: an acknowledged commit must survive the crash below.
    cluster = PostgresCluster(durable=True).start()
    try:
        store = PostgresStore(cluster.new_database())
        await store.open()
        await store.set_meta("kept", "yes")
        cluster.stop(mode="immediate")  # as a crash: recovery replays the WAL at start
        with pytest.raises(StoreUnavailable):
            await store.ping()
        with pytest.raises(StoreUnavailable):
            await store.get_meta("kept")
        cluster.start()
        # The same store object, never reopened: its pool makes new connections.
        assert await wait_until(lambda: _meta_once_available(store), within=20) == ("yes",)
        await store.set_meta("after", "ok")
        assert await store.get_meta("after") == "ok"
        await store.close()
    finally:
        cluster.remove()


async def _meta_once_available(store: PostgresStore) -> tuple[str | None] | None:
    """None while the server is unavailable; then the value read, lost or not."""
    try:
        return (await store.get_meta("kept"),)
    except StoreUnavailable:
        return None
