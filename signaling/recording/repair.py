"""Repair recordings left unfinished: a service killed while recording (the record still says
``recording``), a worker killed (``failed``), or a remux pass that did not run. Each is made
seekable up to its last complete segment (RecordingLibrary.make_seekable) and its record
closed; one that holds no media (stopped before any arrived) is marked ``empty`` instead, so
later passes leave it alone. Runs when the service starts and from ``run.py recording
repair``.

With several instances another one may still be writing a ``recording``: such a file is
repaired only once it has not changed for ``stale_after`` seconds (one instance passes 0: at
its start nothing of its own can still be writing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator

from aiohttp import web

from media.encrypted_recording import shred
from signaling.audit.trail import AuditTrail
from signaling.keys import SERVICES
from signaling.models import Recording
from signaling.recording.recordings import RecordingLibrary

log = logging.getLogger("teleconsult.recording")

CLUSTER_STALE_SECONDS = 120.0
INTERRUPTED = "interrupted"  # stop_reason of a recording whose service stopped under it


async def unfinished(library: RecordingLibrary, only: str | None = None) -> list[Recording]:
    """Recordings not yet through the remux pass (``only``: that recording id, if so). One
    found empty by a pass (no media ever arrived) is through it: it has nothing to repair."""
    return [
        r
        for r in await library.store.list_recordings()
        if r.status != "deleted"
        and not r.seekable
        and not r.empty
        and (only is None or r.id == only)
    ]


async def repair_unfinished(
    library: RecordingLibrary,
    audit: AuditTrail,
    candidates: list[Recording],
    *,
    stale_after: float,
    actor: str = "system",
) -> list[Recording]:
    """Repair the ``candidates`` (from :func:`unfinished`); answers the records repaired."""
    repaired: list[Recording] = []
    for recording in candidates:
        path = library.path_of(recording)
        try:
            modified = os.stat(path).st_mtime
        except FileNotFoundError:
            log.warning("recording %s: its file is missing; nothing to repair", recording.id)
            continue
        if recording.status == "recording" and time.time() - modified < stale_after:
            continue  # perhaps still written by another instance
        if recording.status == "recording":
            recording = recording.evolve(
                status="failed", stopped_at=modified, stop_reason=INTERRUPTED
            )
        done = await library.make_seekable(recording, recording.stopped_at or modified)
        current = await library.store.get_recording(recording.id)
        if current is not None and current.status == "deleted":
            # Deleted while the pass ran: the new file goes the same way.
            await asyncio.to_thread(shred, path, missing_ok=True)
            continue
        await library.store.update_recording(done)
        await audit.record(
            "recording.repaired",
            actor=actor,
            actor_role="system" if actor == "system" else "admin",
            target=recording.id,
            consultation=recording.consultation_id,
            outcome="success" if done.seekable or done.empty else "failure",
            duration_seconds=done.duration_seconds,
            empty=done.empty,
        )
        repaired.append(done)
    return repaired


def setup_recording_repair(app: web.Application, *, clustered: bool) -> None:
    """Repair in the background once the service has started (a pass takes a while on a long
    recording; requests need not wait), and once more after the staleness delay on a
    cluster."""

    async def run(app: web.Application) -> AsyncIterator[None]:
        services = app[SERVICES]
        library = RecordingLibrary(services.store, services.clock, services.settings)

        async def repair_once(candidates: list[Recording], stale_after: float) -> None:
            try:
                await repair_unfinished(
                    library, services.audit, candidates, stale_after=stale_after
                )
            except Exception:
                log.exception("recording repair failed")

        # Listed before the service answers: what is made afterwards is not this pass's.
        at_start = await unfinished(library)

        async def repair() -> None:
            if clustered:
                await repair_once(at_start, CLUSTER_STALE_SECONDS)
                await asyncio.sleep(CLUSTER_STALE_SECONDS)  # what was fresh is stale now
                ids = {r.id for r in at_start}
                again = [r for r in await unfinished(library) if r.id in ids]
                await repair_once(again, CLUSTER_STALE_SECONDS)
            else:
                await repair_once(at_start, 0.0)

        task = asyncio.create_task(repair(), name="recording-repair")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(run)
