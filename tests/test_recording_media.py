"""Playing a recording in the page: GET /api/recordings/{id}/media answers HTTP Ranges,
decrypting only the segments a range needs; views are audited; only the consultation's doctor
and admins see recordings (an allow-list: any other role sees none)."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from aiohttp import web

from media.keyring import load_keyring_from_settings
from signaling.keys import SERVICES
from signaling.models import ConsentReceipt, Recording
from signaling.recording.recordings import RecordingLibrary, recording_context
from tests.conftest import Accounts, Staff
from tests.test_media_recorder_units import encode_opus, encode_vp8
from tests.test_seekable_recording import record

pytestmark = pytest.mark.both_stores


def library(app: web.Application) -> RecordingLibrary:
    services = app[SERVICES]
    return RecordingLibrary(services.store, services.clock, services.settings)


async def seekable_recording(
    app: web.Application,
    doctor_id: str,
    rid: str = "rec-play",
    seconds: int = 8,
    consultation_id: str = "c1",
    media: tuple[list[bytes], list[bytes]] | None = None,
) -> Recording:
    """A recording as the service leaves it after a stop: muxed live, then made seekable.
    ``media``: VP8 frames and Opus packets encoded beforehand (``seconds`` of them)."""
    services = app[SERVICES]
    lib = library(app)
    lib.directory.mkdir(parents=True, exist_ok=True)
    keyring = load_keyring_from_settings(services.settings)
    now = services.clock.now()
    recording = Recording(
        id=rid,
        consultation_id=consultation_id,
        doctor_id=doctor_id,
        started_at=now,
        key_id=keyring.current.key_id_hex,
        file_name=f"{rid}.tcrec",
        status="complete",
        stopped_at=now + seconds,
    )
    if media is None:
        media = await asyncio.to_thread(
            lambda: (encode_vp8(seconds * 30), encode_opus(seconds * 50))
        )
    await asyncio.to_thread(
        record, lib.path_of(recording), keyring, media, context=recording_context(rid)
    )
    done = await lib.make_seekable(recording, now + seconds)
    assert done.seekable
    await services.store.create_recording(done)
    patient = f"patient:{consultation_id}"
    for role, subject in (("patient", patient), ("doctor", f"user:{doctor_id}")):
        await services.store.add_consent_receipt(
            ConsentReceipt(
                id=f"{rid}-{role}",
                consultation_id=consultation_id,
                recording_id=rid,
                role=role,
                subject=subject,
                decision="granted",
                at=now - 5,
            )
        )
    return done


def whole_plaintext(app: web.Application, recording: Recording) -> bytes:
    lib = library(app)
    return b"".join(lib.plaintext(recording))


async def test_ranges_are_answered_with_the_decrypted_bytes_and_a_view_is_audited_once(
    app: web.Application, doctor: Staff
) -> None:
    recording = await seekable_recording(app, doctor.user["id"], seconds=30)
    expected = whole_plaintext(app, recording)
    assert len(expected) > 66001  # the first range crosses a segment boundary
    url = f"/api/recordings/{recording.id}/media"

    whole = await doctor.client.get(url)
    assert whole.status == 200 and whole.headers["Accept-Ranges"] == "bytes"
    assert whole.headers["Cache-Control"] == "no-store"
    assert await whole.read() == expected

    size = len(expected)
    # Across a segment boundary (64 KiB), a suffix, an open end.
    for header, start, stop in (
        ("bytes=65000-66000", 65000, 66001),
        ("bytes=-1000", size - 1000, size),
        (f"bytes={size - 10}-", size - 10, size),
        ("bytes=0-0", 0, 1),
    ):
        part = await doctor.client.get(url, headers={"Range": header})
        assert part.status == 206, header
        assert part.headers["Content-Range"] == f"bytes {start}-{stop - 1}/{size}"
        assert await part.read() == expected[start:stop], header

    for bad in (f"bytes={size}-", "bytes=10-5", "chapters=1-2"):
        refused = await doctor.client.get(url, headers={"Range": bad})
        assert refused.status == 416, bad
        assert (await refused.json())["error"]["code"] == "range_not_satisfiable"

    trail = await app[SERVICES].store.all_audit()
    views = [e for e in trail if e.action == "recording.viewed"]
    assert [(e.actor, e.target) for e in views] == [(doctor.user["id"], recording.id)]


async def test_the_list_says_duration_consents_and_retention(
    app: web.Application, doctor: Staff
) -> None:
    recording = await seekable_recording(app, doctor.user["id"])
    body = await (await doctor.client.get("/api/recordings")).json()
    (view,) = body["recordings"]
    assert view["seekable"] is True
    assert view["duration_seconds"] == pytest.approx(8, rel=0.02)
    assert [(c["role"], c["decision"]) for c in view["consents"]] == [
        ("patient", "granted"),
        ("doctor", "granted"),
    ]
    days = app[SERVICES].settings.recording.retention_days
    assert view["retention_ends_at"] is not None
    assert view["size_bytes"] == library(app).path_of(recording).stat().st_size
    assert days > 0


async def test_only_the_doctor_and_admins_play_it_and_a_new_role_sees_nothing(
    app: web.Application, accounts: Accounts, doctor: Staff, admin: Staff
) -> None:
    recording = await seekable_recording(app, doctor.user["id"])
    url = f"/api/recordings/{recording.id}/media"
    await accounts.create("dr.other")
    other = await accounts.sign_in("dr.other")
    refused = await other.client.get(url)
    assert refused.status == 404
    assert (await refused.json())["error"]["code"] == "recording_not_found"
    # Read to the end: a response left unread keeps its connection, reported as unclosed
    # when the garbage collector meets it (in whichever later test that happens).
    played = await admin.client.get(url, headers={"Range": "bytes=0-99"})
    assert played.status == 206
    assert await played.read() == whole_plaintext(app, recording)[:100]
    # A role this code does not know (the secretariat's, added elsewhere) is refused by
    # default: the check is an allow-list, not a deny-list.
    user = await app[SERVICES].store.get_user(doctor.user["id"])
    assert user is not None
    stranger = msgspec.structs.replace(user, role="assistant")
    lib = library(app)
    assert not lib.may_see(stranger, recording)
    assert await lib.list_for(stranger, None) == []
    assert lib.may_see(user, recording)


async def test_a_missing_file_is_a_clear_error_not_a_500(
    app: web.Application, doctor: Staff
) -> None:
    recording = await seekable_recording(app, doctor.user["id"])
    library(app).path_of(recording).unlink()  # e.g. on another instance's unshared disk
    for resp in (
        await doctor.client.get(f"/api/recordings/{recording.id}/media"),
        await doctor.client.get(f"/api/recordings/{recording.id}/download"),
        await doctor.post(f"/api/recordings/{recording.id}/delete"),
    ):
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "recording_file_missing"
    kept = await app[SERVICES].store.get_recording(recording.id)
    assert kept is not None and kept.status == "complete"  # the record is left intact


async def test_a_recording_played_is_byte_for_byte_the_download(
    app: web.Application, doctor: Staff
) -> None:
    recording = await seekable_recording(app, doctor.user["id"])
    played = await (await doctor.client.get(f"/api/recordings/{recording.id}/media")).read()
    downloaded = await (await doctor.client.get(f"/api/recordings/{recording.id}/download")).read()
    assert played == downloaded
    assert played == whole_plaintext(app, recording)
