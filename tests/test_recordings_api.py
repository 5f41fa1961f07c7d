"""Recordings for their doctor and admins: list, streamed decrypted download, delete, retention.

The recordings here are real: a few VP8 frames encoded with PyAV and muxed into the
encrypting writer, exactly as the recorder does, then registered in the store.
"""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest
from aiohttp import web

from media.encrypted_recording import RecordingWriter
from media.keyring import load_keyring_from_settings
from signaling.clock import ManualClock
from signaling.consultations.retention import RetentionSweeper
from signaling.keys import SERVICES
from signaling.models import Recording
from signaling.recording.recordings import RecordingLibrary, recording_context
from tests.conftest import Accounts, Staff
from tests.test_consultations import create

pytestmark = pytest.mark.both_stores
ROOT = Path(__file__).resolve().parent.parent
EBML = bytes.fromhex("1a45dfa3")


def encode_webm(out: Any, frames: int = 10) -> None:
    with av.open(out, mode="w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame(64, 48, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([(i * 20) % 255]) * plane.buffer_size)
            frame.pts, frame.time_base = i, Fraction(1, 10)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


async def make_recording(
    app: web.Application,
    consultation_id: str,
    doctor_id: str,
    recording_id: str = "rec1",
    complete: bool = True,
) -> Recording:
    services = app[SERVICES]
    lib = RecordingLibrary(services.store, services.clock, services.settings)
    lib.directory.mkdir(parents=True, exist_ok=True)
    keyring = load_keyring_from_settings(services.settings)
    recording = Recording(
        id=recording_id,
        consultation_id=consultation_id,
        doctor_id=doctor_id,
        started_at=services.clock.now(),
        key_id=keyring.current.key_id_hex,
        file_name=f"{recording_id}.tcrec",
    )
    writer = RecordingWriter.create(
        lib.path_of(recording), keyring.current, context=recording_context(recording_id)
    )
    encode_webm(writer)
    writer.close()
    recording = recording.evolve(
        status="complete" if complete else "failed",
        stopped_at=services.clock.now() + 1,
        size_bytes=lib.path_of(recording).stat().st_size,
    )
    await services.store.create_recording(recording)
    return recording


def decoded_frames(data: bytes) -> int:
    with av.open(io.BytesIO(data), "r") as container:
        return sum(1 for _ in container.decode(video=0))


async def test_doctor_lists_and_downloads_own_recording_decrypted(
    app: web.Application, doctor: Staff
) -> None:
    rec = await make_recording(app, "c1", doctor.user["id"])
    stored = (
        RecordingLibrary(app[SERVICES].store, app[SERVICES].clock, app[SERVICES].settings)
        .path_of(rec)
        .read_bytes()
    )
    assert EBML not in stored and b"webm" not in stored
    body = await (await doctor.client.get("/api/recordings")).json()
    assert [r["id"] for r in body["recordings"]] == ["rec1"]
    resp = await doctor.client.get("/api/recordings/rec1/download")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "video/webm"
    data = await resp.read()
    assert data.startswith(EBML)
    assert decoded_frames(data) == 10
    actions = [e.action for e in await app[SERVICES].store.all_audit()]
    assert "recording.listed" in actions and "recording.downloaded" in actions


async def test_other_doctor_cannot_see_or_fetch_a_recording_admin_can(
    app: web.Application, accounts: Accounts, doctor: Staff, admin: Staff
) -> None:
    await make_recording(app, "c1", doctor.user["id"])
    await accounts.create("dr.other")
    other = await accounts.sign_in("dr.other")
    assert (await (await other.client.get("/api/recordings")).json())["recordings"] == []
    resp = await other.client.get("/api/recordings/rec1/download")
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "recording_not_found"
    resp = await admin.client.get("/api/recordings/rec1/download")
    assert resp.status == 200 and decoded_frames(await resp.read()) == 10


async def test_delete_crypto_shreds_the_recording(app: web.Application, doctor: Staff) -> None:
    rec = await make_recording(app, "c1", doctor.user["id"])
    path = RecordingLibrary(
        app[SERVICES].store, app[SERVICES].clock, app[SERVICES].settings
    ).path_of(rec)
    resp = await doctor.client.post("/api/recordings/rec1/delete")
    assert resp.status == 403  # CSRF token required
    resp = await doctor.post("/api/recordings/rec1/delete")
    assert resp.status == 200
    assert (await resp.json())["status"] == "deleted"
    assert not path.exists()
    assert (await doctor.client.get("/api/recordings/rec1/download")).status == 404
    assert (await (await doctor.client.get("/api/recordings")).json())["recordings"] == []


async def test_a_file_swapped_into_another_recordings_place_does_not_decrypt(
    app: web.Application, doctor: Staff
) -> None:
    first = await make_recording(app, "c1", doctor.user["id"], "rec1")
    second = await make_recording(app, "c1", doctor.user["id"], "rec2")
    lib = RecordingLibrary(app[SERVICES].store, app[SERVICES].clock, app[SERVICES].settings)
    lib.path_of(second).write_bytes(lib.path_of(first).read_bytes())
    resp = await doctor.client.get("/api/recordings/rec2/download")
    assert resp.status == 500
    assert (await resp.json())["error"]["code"] == "recording_unreadable"


async def test_recordings_are_purged_after_their_retention(
    app: web.Application, doctor: Staff, clock: ManualClock
) -> None:
    await make_recording(app, "c1", doctor.user["id"])
    services = app[SERVICES]
    sweeper = RetentionSweeper(services.store, clock, services.settings, services.audit)
    clock.advance(29 * 86400)
    assert (await sweeper.sweep()).recordings_purged == 0
    clock.advance(2 * 86400)
    assert (await sweeper.sweep()).recordings_purged == 1
    rec = await services.store.get_recording("rec1")
    assert rec is not None and rec.status == "deleted"


async def test_the_consultations_tell_their_doctor_and_admins_how_many_recordings_they_have(
    app: web.Application, accounts: Accounts, doctor: Staff, admin: Staff, clock: ManualClock
) -> None:
    recorded = (await create(doctor, clock, patient_name="Alice Dupont"))["consultation"]["id"]
    plain = (await create(doctor, clock, patient_name="Bob Martin"))["consultation"]["id"]
    await make_recording(app, recorded, doctor.user["id"], "rec1")
    await make_recording(app, recorded, doctor.user["id"], "rec2")
    await make_recording(app, recorded, doctor.user["id"], "rec3")
    assert (await doctor.post("/api/recordings/rec3/delete")).status == 200
    await accounts.create("sec.anne", role="assistant")
    assistant = await accounts.sign_in("sec.anne")
    resp = await admin.post(
        f"/api/users/{assistant.user['id']}/assists", json={"doctor_ids": [doctor.user["id"]]}
    )
    assert resp.status == 200, await resp.text()

    async def counts(staff: Staff) -> dict[str, Any]:
        resp = await staff.client.get("/api/consultations")
        assert resp.status == 200
        listed = (await resp.json())["consultations"]
        return {c["id"]: c.get("recordings", "absent") for c in listed}

    async def count_of_one(staff: Staff, cid: str) -> Any:
        resp = await staff.client.get(f"/api/consultations/{cid}")
        assert resp.status == 200
        return (await resp.json()).get("recordings", "absent")

    # A deleted recording is not counted: the recordings page does not list it either.
    assert await counts(doctor) == {recorded: 2, plain: 0}
    assert await counts(admin) == {recorded: 2, plain: 0}
    assert await count_of_one(doctor, recorded) == 2
    assert await count_of_one(admin, plain) == 0
    # The secretariat sees no recordings, and not whether there are any.
    assert await counts(assistant) == {recorded: "absent", plain: "absent"}
    assert await count_of_one(assistant, recorded) == "absent"
