"""Store benchmark: does a page cost the same with 10k and with 1M audit entries stored?

    python bench/bench_store.py [--sizes 10000 1000000] [--backends sqlite postgres]

For each backend (SQLite in a temporary file; PostgreSQL in a throwaway cluster started as the
tests start theirs), the trail is filled to each size in turn (bulk-loaded with the rows the
store itself writes: chained entries, 200 actors, 12 actions, one target per 100 entries, one
entry a second), with 20,000 consultations over 50 doctors beside it. At each size it times,
through the Store protocol, the median of 30 calls (after 3 warm-ups) of:

- an audit page of 50, newest first, filtered on one actor;
- an audit page of 50 filtered on one action within the last day;
- an audit page of 50 about one consultation (the target filter);
- one doctor's consultation list (400 consultations).

Then it exports the whole store as ``run.py store export`` does (signaling/store/transfer.py,
lines counted, not written) and times the audit trail's part in tenths: the rate of the last
tenth against the second (the first holds the export's start), and the process's resident
memory after the last tenth against after the first.

Prints each median and the ratio of the largest size to the smallest. Goals: every page ratio
<= 2 (a page costs what it holds, not what the store holds); the export's rate steady (last
tenth / second tenth >= 0.8) and its memory flat (a few MiB between the first and the last
tenth, whatever the size).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from signaling.models import AuditFields
from signaling.store.audit_chain import GENESIS, chained_entry
from signaling.store.base import AuditFilter, Store
from signaling.store.postgres import PostgresStore
from signaling.store.records import AUDIT, CONSULTATIONS
from signaling.store.sqlite import SqliteStore
from signaling.store.transfer import export_lines
from tests.postgres_cluster import PostgresCluster
from tests.test_store import consultation

START = 1_700_000_000.0
ACTIONS = (
    "login.success",
    "consultation.created",
    "invite.created",
    "invite.used",
    "token.issued",
    "signaling.join",
    "signaling.admitted",
    "call.started",
    "call.ended",
    "recording.listed",
    "consultation.ended",
    "session.end",
)
DOCTORS = 50
CONSULTATIONS_STORED = 20_000
RUNS = 30


def entries(first: int, last: int, prev: str) -> Iterator[bytes]:
    """Encoded, chained audit entries ``first`` to ``last`` (inclusive), after ``prev``."""
    for seq in range(first, last + 1):
        entry = chained_entry(
            AuditFields(
                at=START + seq,
                actor=f"user-{seq % 200}",
                actor_role="doctor",
                action=ACTIONS[seq % len(ACTIONS)],
                target=f"consultation-{seq // 100}",
                outcome="success",
                address="10.0.0.1",
                details="",
            ),
            seq,
            prev,
        )
        prev = entry.hash
        yield AUDIT.encode(entry)


def consultations() -> Iterator[bytes]:
    for n in range(CONSULTATIONS_STORED):
        yield CONSULTATIONS.encode(
            consultation(f"c-{n}", doctor=f"doctor-{n % DOCTORS}", start=START + n * 600)
        )


class Loader:
    """Bulk-loads rows as the store writes them, faster than one transaction per entry."""

    def __init__(self, backend: str, store: Store, where: str) -> None:
        self.backend, self.store, self.where = backend, store, where
        self.size, self.head = 0, GENESIS

    def _chained(self, size: int) -> Iterator[str]:
        """The next entries up to ``size``, as text; remembers the head as it goes."""
        for raw in entries(self.size + 1, size, self.head):
            self.head = AUDIT.decode(raw).hash
            yield raw.decode()
        self.size = size

    async def grow(self, size: int) -> None:
        rows = self._chained(size)  # streamed: a million rows never sit in memory at once
        if self.backend == "sqlite":
            with sqlite3.connect(self.where) as db:
                db.executemany("INSERT INTO audit (body) VALUES (?)", ((r,) for r in rows))
        else:
            async with await psycopg.AsyncConnection.connect(self.where) as conn:
                async with conn.cursor().copy("COPY audit (body) FROM STDIN") as copy:
                    for row in rows:
                        await copy.write_row((row,))
                await conn.execute("ANALYZE audit")

    async def add_consultations(self) -> None:
        rows = [raw.decode() for raw in consultations()]
        if self.backend == "sqlite":
            with sqlite3.connect(self.where) as db:
                db.executemany("INSERT INTO consultations (body) VALUES (?)", ((r,) for r in rows))
        else:
            async with await psycopg.AsyncConnection.connect(self.where) as conn:
                async with conn.cursor().copy("COPY consultations (body) FROM STDIN") as copy:
                    for raw in rows:
                        await copy.write_row((raw,))
                await conn.execute("ANALYZE consultations")


async def median_ms(call: Callable[[], Awaitable[Any]]) -> float:
    for _ in range(3):
        await call()
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def measure(store: Store, size: int) -> dict[str, float]:
    last_day = START + size - 86_400

    async def page(query: AuditFilter) -> None:
        found = await store.list_audit(query)
        assert len(found) == 50, len(found)

    async def listing() -> None:
        assert len(await store.list_consultations("doctor-7")) == CONSULTATIONS_STORED // DOCTORS

    return {
        "audit page, one actor": await median_ms(
            lambda: page(AuditFilter(actor="user-7", newest_first=True, limit=50))
        ),
        "audit page, action + last day": await median_ms(
            lambda: page(
                AuditFilter(action="call.started", since=last_day, newest_first=True, limit=50)
            )
        ),
        "audit page, one consultation": await median_ms(
            lambda: page(AuditFilter(target=f"consultation-{size // 200}", limit=50))
        ),
        "consultation list, one doctor": await median_ms(listing),
    }


def rss_mib() -> float:
    status = Path("/proc/self/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match is not None
    return int(match.group(1)) / 1024


async def measure_export(store: Store, size: int) -> dict[str, float]:
    """The export's audit part in tenths: entries a second in the second tenth (the first
    holds the export's start) and in the last, and the resident memory from the end of the
    first tenth to the end of the last."""
    tenth = size // 10
    audit_seen = 0
    marks: dict[int, tuple[float, float]] = {}  # tenth -> (time, RSS) at its end
    started = time.perf_counter()
    async for line in export_lines(store, meta_names=()):
        if line.startswith(b'{"type":"record","kind":"audit"'):
            audit_seen += 1
            if audit_seen % tenth == 0:
                marks[audit_seen // tenth] = (time.perf_counter(), rss_mib())
    assert audit_seen >= size, audit_seen  # the trail, and a purge report if any
    second = tenth / (marks[2][0] - marks[1][0])
    last = tenth / (marks[10][0] - marks[9][0])
    return {
        "whole export, s": time.perf_counter() - started,
        "2nd tenth, entries/s": second,
        "last tenth, entries/s": last,
        "rate last/2nd": last / second,
        "RSS growth 1st->last tenth, MiB": marks[10][1] - marks[1][1],
    }


async def run_backend(backend: str, sizes: list[int], tmp: Path) -> dict[int, dict[str, float]]:
    cluster = None
    store: Store
    if backend == "sqlite":
        where = str(tmp / "bench.sqlite3")
        store = SqliteStore(Path(where))
    else:
        cluster = PostgresCluster().start()
        where = cluster.new_database()
        store = PostgresStore(where)
    await store.open()
    results: dict[int, dict[str, float]] = {}
    try:
        loader = Loader(backend, store, where)
        await loader.add_consultations()
        for size in sorted(sizes):
            started = time.monotonic()
            await loader.grow(size)
            print(f"{backend}: {size} entries stored ({time.monotonic() - started:.0f} s to load)")
            results[size] = await measure(store, size)
            for name, ms in results[size].items():
                print(f"  {name:32} {ms:8.2f} ms")
            for name, figure in (await measure_export(store, size)).items():
                print(f"  export: {name:34} {figure:10.2f}")
    finally:
        await store.close()
        if cluster is not None:
            cluster.remove()
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # At least 10,000: every page then finds its 50 entries.
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgres"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends:
            results = await run_backend(backend, args.sizes, Path(tmp))
            small, large = min(results), max(results)
            print(f"{backend}: ratio {large} / {small} entries")
            for name in results[small]:
                if results[small][name]:
                    ratio = results[large][name] / results[small][name]
                    print(f"  {name:32} {ratio:6.2f}  {'ok' if ratio <= 2 else 'OVER 2'}")


if __name__ == "__main__":
    asyncio.run(main())
