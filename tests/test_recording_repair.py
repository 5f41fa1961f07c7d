"""Recordings cut short (a killed service or recorder) are repaired: made seekable up to their
last complete segment, when the service starts or by `run.py recording repair`."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import av
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from config import Settings
from media.encrypted_recording import decrypt_file
from media.keyring import load_keyring_from_settings
from signaling.app import create_app
from signaling.clock import ManualClock
from signaling.keys import SERVICES
from signaling.models import Recording
from signaling.recording.recordings import RecordingLibrary, recording_context
from signaling.recording.repair import repair_unfinished, unfinished
from tests.cli import run_cli
from tests.conftest import Staff, wait_until
from tests.test_media_recorder_units import encode_opus, encode_vp8
from tests.test_seekable_recording import record


async def interrupted_recording(app: web.Application, doctor_id: str, rid: str) -> Recording:
    """A recording whose service died under it: the record still says "recording", the file
    lacks its last segment."""
    services = app[SERVICES]
    library = RecordingLibrary(services.store, services.clock, services.settings)
    library.directory.mkdir(parents=True, exist_ok=True)
    keyring = load_keyring_from_settings(services.settings)
    recording = Recording(
        id=rid,
        consultation_id="c1",
        doctor_id=doctor_id,
        started_at=services.clock.now(),
        key_id=keyring.current.key_id_hex,
        file_name=f"{rid}.tcrec",
    )
    media = (encode_vp8(6 * 30), encode_opus(6 * 50))
    await asyncio.to_thread(
        record,
        library.path_of(recording),
        keyring,
        media,
        finish=False,
        context=recording_context(rid),
    )
    await services.store.create_recording(recording)
    return recording


def duration_of(app: web.Application, recording: Recording) -> float:
    services = app[SERVICES]
    library = RecordingLibrary(services.store, services.clock, services.settings)
    out = io.BytesIO()
    decrypt_file(  # no recover: the repaired file is complete
        library.path_of(recording),
        load_keyring_from_settings(services.settings),
        out,
        context=recording_context(recording.id),
    )
    with av.open(io.BytesIO(out.getvalue()), mode="r") as container:
        assert container.duration is not None
        return container.duration / av.time_base


async def test_the_command_line_repairs_a_recording_cut_short(
    app: web.Application, doctor: Staff, data_dir: Path
) -> None:
    recording = await interrupted_recording(app, doctor.user["id"], "rec-cut")
    result = await asyncio.to_thread(
        run_cli, "recording", "repair", "--stale-after", "0", data_dir=data_dir
    )
    assert result.returncode == 0, result.stderr
    assert "rec-cut" in result.stdout and "1 recording(s) repaired" in result.stdout
    store = app[SERVICES].store
    repaired = await store.get_recording("rec-cut")
    assert repaired is not None and repaired.seekable
    assert (repaired.status, repaired.stop_reason) == ("failed", "interrupted")
    assert 3 < repaired.duration_seconds < 6
    assert duration_of(app, repaired) == pytest.approx(repaired.duration_seconds, abs=0.05)
    entries = [e for e in await store.all_audit() if e.action == "recording.repaired"]
    assert [(e.actor, e.actor_role, e.target, e.outcome) for e in entries] == [
        ("cli", "admin", recording.id, "success")
    ]
    again = await asyncio.to_thread(run_cli, "recording", "repair", data_dir=data_dir)
    assert again.returncode == 0 and "0 recording(s) repaired" in again.stdout


async def test_a_fresh_recording_is_left_to_the_instance_that_may_still_write_it(
    app: web.Application, doctor: Staff, data_dir: Path
) -> None:
    await interrupted_recording(app, doctor.user["id"], "rec-live")
    result = await asyncio.to_thread(run_cli, "recording", "repair", data_dir=data_dir)
    assert result.returncode == 0 and "0 recording(s) repaired" in result.stdout
    kept = await app[SERVICES].store.get_recording("rec-live")
    assert kept is not None and (kept.status, kept.seekable) == ("recording", False)


async def test_the_service_repairs_unfinished_recordings_when_it_starts(
    aiohttp_client: Callable[[web.Application], Awaitable[TestClient[Any, Any]]],
    app: web.Application,
    doctor: Staff,
    settings: Settings,
    clock: ManualClock,
) -> None:
    await interrupted_recording(app, doctor.user["id"], "rec-crash")
    restarted = create_app(settings, clock=clock)  # the next start, on the same data
    await aiohttp_client(restarted)
    store = restarted[SERVICES].store

    async def repaired() -> Recording | None:
        found = await store.get_recording("rec-crash")
        return found if found is not None and found.seekable else None

    done = await wait_until(repaired, within=60)
    assert done is not None
    assert (done.status, done.stop_reason) == ("failed", "interrupted")
    assert duration_of(restarted, done) == pytest.approx(done.duration_seconds, abs=0.05)


async def empty_recording(
    app: web.Application, doctor_id: str, rid: str, *, killed: bool, consultation_id: str = "c1"
) -> Recording:
    """A recording no media ever reached: stopped before the first frame (a record left by a
    version without the mark: complete, not seekable, not empty), or its worker killed before
    the first segment (the record still says "recording")."""
    services = app[SERVICES]
    library = RecordingLibrary(services.store, services.clock, services.settings)
    library.directory.mkdir(parents=True, exist_ok=True)
    keyring = load_keyring_from_settings(services.settings)
    now = services.clock.now()
    recording = Recording(
        id=rid,
        consultation_id=consultation_id,
        doctor_id=doctor_id,
        started_at=now,
        key_id=keyring.current.key_id_hex,
        file_name=f"{rid}.tcrec",
    )
    if not killed:
        recording = recording.evolve(status="complete", stopped_at=now + 1)
    await asyncio.to_thread(
        record,
        library.path_of(recording),
        keyring,
        ([], []),
        finish=not killed,
        context=recording_context(rid),
    )
    await services.store.create_recording(recording)
    return recording


@pytest.mark.both_stores
async def test_a_recording_without_media_is_marked_empty_once_and_left_alone_after(
    app: web.Application, doctor: Staff
) -> None:
    services = app[SERVICES]
    store = services.store
    library = RecordingLibrary(store, services.clock, services.settings)
    stopped = await empty_recording(app, doctor.user["id"], "rec-none", killed=False)
    killed = await empty_recording(app, doctor.user["id"], "rec-killed", killed=True)
    files = {r.id: library.path_of(r).read_bytes() for r in (stopped, killed)}

    first = await repair_unfinished(
        library, services.audit, await unfinished(library), stale_after=0
    )
    assert sorted((r.id, r.empty, r.seekable) for r in first) == [
        ("rec-killed", True, False),
        ("rec-none", True, False),
    ]
    marked = {rid: await store.get_recording(rid) for rid in files}
    for rid, found in marked.items():
        assert found is not None and found.empty, rid  # kept by the store
        assert library.path_of(found).read_bytes() == files[rid]  # the file as it was
    assert marked["rec-killed"] is not None
    assert marked["rec-killed"].status == "failed"  # interrupted, as any killed one

    # The next start (or command) finds nothing to repair: no pass, no audit entry.
    assert await unfinished(library) == []
    entries = [e for e in await store.all_audit() if e.action == "recording.repaired"]
    assert sorted((e.target, e.outcome, json.loads(e.details)["empty"]) for e in entries) == [
        ("rec-killed", "success", True),
        ("rec-none", "success", True),
    ]

    # Nothing to play or download, said plainly; deleting it still works.
    for rid in files:
        for path in (f"/api/recordings/{rid}/media", f"/api/recordings/{rid}/download"):
            resp = await doctor.client.get(path)
            assert resp.status == 409, path
            assert (await resp.json())["error"]["code"] == "recording_empty"
        deleted = await doctor.post(f"/api/recordings/{rid}/delete")
        assert deleted.status == 200, await deleted.text()
        assert (await deleted.json())["status"] == "deleted"
        assert not library.path_of(stopped if rid == "rec-none" else killed).exists()


async def test_the_command_line_marks_an_empty_recording_once(
    app: web.Application, doctor: Staff, data_dir: Path
) -> None:
    await empty_recording(app, doctor.user["id"], "rec-none", killed=False)
    result = await asyncio.to_thread(run_cli, "recording", "repair", data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    assert "rec-none  empty (no media arrived), marked: not tried again" in result.stdout
    again = await asyncio.to_thread(run_cli, "recording", "repair", data_dir=data_dir)
    assert again.returncode == 0 and "0 recording(s) repaired" in again.stdout
    entries = [e for e in await app[SERVICES].store.all_audit() if e.action == "recording.repaired"]
    assert [(e.target, e.actor) for e in entries] == [("rec-none", "cli")]
