"""A room's recording end to end: consent, a real worker process, aiortc participants, the
stored record and the decrypted file."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import av
import pytest
from aiortc import RTCSessionDescription
from aiortc.mediastreams import VideoStreamTrack

from config import Settings
from signaling.audit.trail import AuditTrail
from signaling.clock import ManualClock
from signaling.errors import AppError
from signaling.models import Consultation
from signaling.recording.recording_session import RecordingChange, RecordingSession
from signaling.store.sqlite import SqliteStore
from tests.test_media_recorder import ROLES, Participant

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("loopback_only")]


@pytest.fixture
async def session(
    settings: Settings, clock: ManualClock
) -> AsyncIterator[tuple[RecordingSession, list[RecordingChange]]]:
    store = SqliteStore(settings.storage.sqlite_path)
    await store.open()
    consultation = Consultation(
        id="c1",
        doctor_id="d1",
        patient_name="P",
        scheduled_start=clock.now(),
        duration_minutes=30,
        note="",
        status="scheduled",
        created_at=clock.now(),
        invite_nonce="n",
        access_code_hash="h",
    )
    await store.create_consultation(consultation)
    changes: list[RecordingChange] = []

    async def told(change: RecordingChange) -> None:
        changes.append(change)

    rs = RecordingSession(
        consultation, store, clock, settings, AuditTrail(store, clock), told, loopback="only"
    )
    yield rs, changes
    await rs.stop("test_end")
    await store.close()


async def test_both_consent_record_then_a_withdrawal_stops_it(
    session: tuple[RecordingSession, list[RecordingChange]],
) -> None:
    rs, changes = session
    rid = await rs.request("doctor", "user:d1")
    await rs.answer("doctor", "user:d1", True)
    assert rs.worker is None  # one consent starts nothing
    await rs.answer("patient", "patient:c1", True)
    assert [c.state for c in changes] == ["asked", "recording"]
    peers = [Participant(role, VideoStreamTrack()) for role in ROLES]
    try:
        for p in peers:
            await p.pc.setLocalDescription(await p.pc.createOffer())
            answer = await rs.offer(p.role, p.pc.localDescription.sdp)
            await p.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        await asyncio.sleep(3)
        await rs.withdraw("patient", "patient:c1")
    finally:
        for p in peers:
            await p.pc.close()
    assert changes[-1] == RecordingChange("idle", rid, "consent_withdrawn")
    stored = await rs.store.get_recording(rid)
    assert stored is not None and stored.status == "complete"
    assert stored.stop_reason == "consent_withdrawn" and stored.size_bytes > 0
    assert stored.seekable and 0 < stored.duration_seconds <= 3 + 1
    data = b"".join(rs.library.plaintext(stored))
    with av.open(io.BytesIO(data), mode="r") as container:
        kinds = sorted(s.type for s in container.streams)
        assert kinds == ["audio", "audio", "video", "video"]
        frames = sum(1 for _ in container.decode(video=0))
        assert frames > 10
    receipts = await rs.store.list_consent_receipts("c1")
    assert [(r.role, r.decision) for r in receipts] == [
        ("doctor", "granted"),
        ("patient", "granted"),
        ("patient", "withdrawn"),
    ]


async def test_without_both_consents_offers_are_refused_and_nothing_is_written(
    session: tuple[RecordingSession, list[RecordingChange]], settings: Settings
) -> None:
    rs, _ = session
    with pytest.raises(AppError) as info:
        await rs.request("patient", "patient:c1")  # only the doctor asks
    assert info.value.code == "forbidden"
    await rs.request("doctor", "user:d1")
    await rs.answer("doctor", "user:d1", True)
    await rs.answer("doctor", "user:d1", True)  # one role, however often it says yes
    with pytest.raises(AppError) as info:
        await rs.offer("doctor", "v=0")
    assert info.value.code == "consent_required"
    assert await rs.store.list_recordings() == []
    recordings = settings.storage.data_path / "recordings"
    assert not recordings.exists() or not any(recordings.iterdir())
