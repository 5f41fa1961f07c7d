"""Recording through the signaling protocol: consent from both, send-only offers to the
server's recording peer, withdrawal stops it; the server, not the clients, decides."""

from __future__ import annotations

import asyncio
import dataclasses
import io
from pathlib import Path
from typing import Any

import av
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from config import Settings, TurnSettings
from media.recording_service import SPAWN_TIMEOUT
from signaling.app import create_app
from signaling.clock import ManualClock
from signaling.keys import SERVICES
from signaling.live.protocol import RecordingAnswer, RecordingState
from signaling.models import Recording
from signaling.recording.recordings import RecordingLibrary
from tests import test_turn
from tests.conftest import Accounts, Staff, wait_until
from tests.rtc import (
    RECEIVE_TIMEOUT,
    Coturn,
    SignalClient,
    book,
    enter_call,
    join,
    rtc_config,
    silent,
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("loopback_only")]

coturn = test_turn.coturn  # the real coturn of the aiortc TURN tests, same secret


@pytest.fixture
def settings(settings: Settings) -> Settings:
    recording = dataclasses.replace(settings.recording, worker_loopback="only")
    return dataclasses.replace(settings, recording=recording)


# "recording" comes once the worker process has started (it imports aiortc and PyAV: up to
# media.recording_service.SPAWN_TIMEOUT on a busy machine).
STATE_WITHIN = {"recording": SPAWN_TIMEOUT + 5}


async def both_see(state: str, *clients: SignalClient) -> list[RecordingState]:
    within = STATE_WITHIN.get(state, RECEIVE_TIMEOUT)  # recv() scales it by deadline()
    seen = [await c.expect(RecordingState, within=within) for c in clients]
    assert [s.state for s in seen] == [state] * len(clients)
    return seen


async def send_to_recorder(
    signal: SignalClient, config: RTCConfiguration | None = None
) -> RTCPeerConnection:
    pc = RTCPeerConnection(config or RTCConfiguration(iceServers=[]))
    pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
    pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())  # aiortc: complete, not trickled
    await signal.send({"type": "recording_offer", "sdp": pc.localDescription.sdp})
    answer = await signal.expect(RecordingAnswer)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer.sdp, type="answer"))
    return pc


async def stored_once_stopped(app: web.Application, recording_id: str) -> Recording:
    """The record once the stop is through: the room hears "idle" as intake stops, and the
    record is closed after the file is made seekable."""

    async def closed() -> Recording | None:
        found = await app[SERVICES].store.get_recording(recording_id)
        return found if found is not None and found.status != "recording" else None

    found = await wait_until(closed, within=30)
    assert found is not None
    return found


async def record_then_patient_withdraws(
    doctor_ws: SignalClient, patient_ws: SignalClient, seconds: float
) -> str:
    """The doctor asks, both consent, both send media to the recorder for ``seconds``, then
    the patient withdraws and the recording stops; answers the recording id."""
    await doctor_ws.send({"type": "recording_request"})
    asked = await both_see("asked", doctor_ws, patient_ws)
    await patient_ws.send({"type": "recording_consent", "granted": True})
    assert await silent(doctor_ws) and await silent(patient_ws)  # one consent: nothing yet
    await doctor_ws.send({"type": "recording_consent", "granted": True})
    await both_see("recording", doctor_ws, patient_ws)
    pcs = [await send_to_recorder(doctor_ws), await send_to_recorder(patient_ws)]
    try:
        await asyncio.sleep(seconds)
        await patient_ws.send({"type": "recording_withdraw"})
        stopped = await both_see("idle", doctor_ws, patient_ws)
        assert stopped[0].reason == "consent_withdrawn"
    finally:
        for pc in pcs:
            await pc.close()
    return asked[0].recording_id


async def test_both_consent_then_a_withdrawal_stops_the_recording(
    client: TestClient[Any, Any],
    app: web.Application,
    accounts: Accounts,
    doctor: Staff,
    clock: ManualClock,
) -> None:
    booking = await book(accounts, doctor, clock)
    doctor_ws, _, patient_ws, _ = await enter_call(client, booking)
    rid = await record_then_patient_withdraws(doctor_ws, patient_ws, seconds=3)
    services = app[SERVICES]
    recording = await stored_once_stopped(app, rid)
    assert recording.status == "complete" and recording.seekable
    assert 0 < recording.duration_seconds <= 3 + 1  # media flowed for at most the 3 s
    assert recording.media_started_at is not None and recording.media_ended_at is not None
    assert recording.media_ended_at == recording.stopped_at  # the test's clock stands still
    span = recording.media_ended_at - recording.media_started_at
    assert span == pytest.approx(recording.duration_seconds)
    data = b"".join(
        RecordingLibrary(services.store, services.clock, services.settings).plaintext(recording)
    )
    with av.open(io.BytesIO(data), mode="r") as container:
        assert sorted(s.type for s in container.streams) == ["audio", "audio", "video", "video"]
        # The file says how long it is (the remux pass), as the record does.
        assert container.duration is not None
        seconds = container.duration / av.time_base
        assert seconds == pytest.approx(recording.duration_seconds, rel=0.02)
        assert sum(1 for _ in container.decode(video=0)) > 10
    receipts = await services.store.list_consent_receipts(booking.consultation_id)
    assert [(r.role, r.decision) for r in receipts] == [
        ("patient", "granted"),
        ("doctor", "granted"),
        ("patient", "withdrawn"),
    ]
    await doctor_ws.close()
    await patient_ws.close()


async def test_a_stop_is_not_a_withdrawal_in_the_protocol_the_receipts_or_the_trail(
    client: TestClient[Any, Any],
    app: web.Application,
    accounts: Accounts,
    doctor: Staff,
    clock: ManualClock,
) -> None:
    booking = await book(accounts, doctor, clock)
    doctor_ws, _, patient_ws, _ = await enter_call(client, booking)
    await doctor_ws.send({"type": "recording_stop"})  # nothing is being recorded
    await doctor_ws.expect_error("invalid_state")
    await doctor_ws.send({"type": "recording_request"})
    asked = await both_see("asked", doctor_ws, patient_ws)
    rid = asked[0].recording_id
    await patient_ws.send({"type": "recording_consent", "granted": True})
    await doctor_ws.send({"type": "recording_consent", "granted": True})
    await both_see("recording", doctor_ws, patient_ws)
    pcs = [await send_to_recorder(doctor_ws), await send_to_recorder(patient_ws)]
    try:
        await wait_until(lambda: all(pc.connectionState == "connected" for pc in pcs), within=10)
        await doctor_ws.send({"type": "recording_stop"})
        stopped = await both_see("idle", doctor_ws, patient_ws)
    finally:
        for pc in pcs:
            await pc.close()
    assert [s.reason for s in stopped] == ["stopped_by_doctor"] * 2
    recording = await stored_once_stopped(app, rid)
    assert (recording.status, recording.stop_reason) == ("complete", "stopped_by_doctor")
    store = app[SERVICES].store
    receipts = await store.list_consent_receipts(booking.consultation_id)
    assert [(r.role, r.decision) for r in receipts] == [
        ("patient", "granted"),
        ("doctor", "granted"),
        ("doctor", "stopped"),
    ]
    trail = [e for e in await store.all_audit() if e.details and rid in e.details]
    actions = [(e.action, e.actor_role) for e in trail]
    assert ("recording.stop_requested", "doctor") in actions
    assert ("consent.withdrawn", "doctor") not in actions
    (stop,) = [e for e in trail if e.action == "recording.stopped"]
    assert '"reason":"stopped_by_doctor"' in stop.details.replace(" ", "")
    await doctor_ws.close()
    await patient_ws.close()


async def test_a_client_cannot_consent_for_the_other_side(
    client: TestClient[Any, Any],
    app: web.Application,
    accounts: Accounts,
    doctor: Staff,
    clock: ManualClock,
) -> None:
    booking = await book(accounts, doctor, clock)
    doctor_ws, _, patient_ws, _ = await enter_call(client, booking)
    # Only the doctor asks.
    await patient_ws.send({"type": "recording_request"})
    assert (await patient_ws.expect_error("forbidden")).code == "forbidden"
    await doctor_ws.send({"type": "recording_request"})
    await both_see("asked", doctor_ws, patient_ws)
    # The doctor claims the patient's consent: the message has no such field.
    await doctor_ws.send({"type": "recording_consent", "granted": True, "role": "patient"})
    await doctor_ws.expect_error("malformed_message")
    # Saying yes twice is still one participant's consent; offers are refused.
    await doctor_ws.send({"type": "recording_consent", "granted": True})
    await doctor_ws.send({"type": "recording_consent", "granted": True})
    await doctor_ws.send({"type": "recording_offer", "sdp": "v=0\r\n"})
    await doctor_ws.expect_error("invalid_sdp")
    assert await app[SERVICES].store.list_recordings() == []
    # The patient declines: back to idle, told to both.
    await patient_ws.send({"type": "recording_consent", "granted": False})
    declined = await both_see("idle", doctor_ws, patient_ws)
    assert declined[0].reason == "declined_by_patient"
    assert await app[SERVICES].store.list_recordings() == []
    await doctor_ws.close()
    await patient_ws.close()


async def test_the_welcome_says_whether_recording_is_offered_and_for_how_long(
    aiohttp_client: Any,
    settings: Settings,
    accounts: Accounts,
    doctor: Staff,
    clock: ManualClock,
) -> None:
    # The pages offer "Record" and state the retention period from the welcome alone.
    booking = await book(accounts, doctor, clock)
    kept = dataclasses.replace(settings.recording, retention_days=45)
    on = await aiohttp_client(
        create_app(dataclasses.replace(settings, recording=kept), clock=clock)
    )
    doctor_ws, doctor_welcome = await join(on, await booking.doctor_token())
    assert doctor_welcome.recording_available is True
    assert doctor_welcome.recording_retention_days == 45
    await doctor_ws.close()
    off = dataclasses.replace(settings.recording, enabled=False)
    client_off = await aiohttp_client(
        create_app(dataclasses.replace(settings, recording=off), clock=clock)
    )
    doctor_ws, doctor_welcome = await join(client_off, await booking.doctor_token())
    assert doctor_welcome.recording_available is False
    await doctor_ws.close()


@pytest.mark.parametrize("who_drops", ["patient", "doctor"])
async def test_a_pending_request_ends_for_the_other_side_when_a_participant_drops(
    client: TestClient[Any, Any],
    app: web.Application,
    accounts: Accounts,
    doctor: Staff,
    clock: ManualClock,
    who_drops: str,
) -> None:
    # The doctor asked and granted; the patient's prompt is still open when one of them loses
    # the connection. The one who stays is told the request is over (not left waiting), and
    # nothing is recorded.
    booking = await book(accounts, doctor, clock)
    doctor_ws, _, patient_ws, _ = await enter_call(client, booking)
    await doctor_ws.send({"type": "recording_request"})
    asked = await both_see("asked", doctor_ws, patient_ws)
    await doctor_ws.send({"type": "recording_consent", "granted": True})
    assert await silent(doctor_ws) and await silent(patient_ws)
    dropped, stayed = (patient_ws, doctor_ws) if who_drops == "patient" else (doctor_ws, patient_ws)
    dropped.drop()
    ended = await stayed.expect(RecordingState)
    assert (ended.state, ended.reason) == ("idle", "participant_left")
    assert ended.recording_id == asked[0].recording_id
    assert await app[SERVICES].store.list_recordings() == []
    await stayed.close()


def candidate_types(sdp: str) -> set[str]:
    return {line.split(" typ ")[1].split()[0] for line in sdp.splitlines() if " typ " in line}


async def test_relay_only_participants_record_through_turn_and_the_recorder_has_a_relay_too(
    aiohttp_client: Any,
    settings: Settings,
    accounts: Accounts,
    doctor: Staff,
    clock: ManualClock,
    coturn: Coturn,
    tmp_path: Path,
) -> None:
    # Both participants send to the recorder through a real coturn only (what turn.relay_only
    # makes the pages do), with the welcome's credentials. The recording peer gets TURN REST
    # credentials of its own: its answer offers a relay candidate (coturn refuses an
    # allocation with bad credentials), so it stays reachable when its host address is not.
    secret_file = tmp_path / "turn.key"
    secret_file.write_text(test_turn.SECRET_TEXT + "\n")
    secret_file.chmod(0o600)
    turn = TurnSettings(turn_urls=(coturn.url,), secret_file=str(secret_file), relay_only=True)
    client = await aiohttp_client(create_app(settings.replace(turn=turn).validate(), clock=clock))
    booking = await book(accounts, doctor, clock)
    doctor_ws, doctor_welcome, patient_ws, patient_welcome = await enter_call(client, booking)
    await doctor_ws.send({"type": "recording_request"})
    asked = await both_see("asked", doctor_ws, patient_ws)
    await patient_ws.send({"type": "recording_consent", "granted": True})
    await doctor_ws.send({"type": "recording_consent", "granted": True})
    await both_see("recording", doctor_ws, patient_ws)
    pcs = [
        await send_to_recorder(ws, rtc_config(welcome.ice_servers, relay_only=True))
        for ws, welcome in ((doctor_ws, doctor_welcome), (patient_ws, patient_welcome))
    ]
    try:
        for pc in pcs:
            assert candidate_types(pc.localDescription.sdp) == {"relay"}
            assert "relay" in candidate_types(pc.remoteDescription.sdp)
        await wait_until(lambda: all(pc.connectionState == "connected" for pc in pcs), within=5)
        await asyncio.sleep(2)  # two seconds of media to record: a workload, not a wait
        await doctor_ws.send({"type": "recording_withdraw"})
        await both_see("idle", doctor_ws, patient_ws)
    finally:
        for pc in pcs:
            await pc.close()
    services = client.server.app[SERVICES]
    recording = await stored_once_stopped(client.server.app, asked[0].recording_id)
    assert recording.status == "complete"
    data = b"".join(
        RecordingLibrary(services.store, services.clock, services.settings).plaintext(recording)
    )
    with av.open(io.BytesIO(data), mode="r") as container:
        assert sorted(s.type for s in container.streams) == ["audio", "audio", "video", "video"]
        decoded = {stream.index: 0 for stream in container.streams.video}
        for packet in container.demux(*container.streams.video):
            decoded[packet.stream.index] += len(packet.decode())
        assert min(decoded.values()) > 10, decoded  # both participants' video
    await doctor_ws.close()
    await patient_ws.close()
