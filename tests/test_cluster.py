"""Two signaling processes sharing one Redis act as one service for live rooms, with their
records in Redis or in PostgreSQL.

A doctor on instance A and a patient on instance B meet, are admitted and exchange media;
two patient connections racing on A and B leave exactly one seat holder; SIGKILLing the
patient's instance leaves the media flowing and the patient resumes on A within 5 s; Redis
stopped for 15 s leaves the call's media flowing, answers new joins 'unavailable' and
everything works again within 10 s of its return, nothing stored lost.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer

from config import Settings, StorageSettings
from signaling.app import create_app
from signaling.keys import SERVICES
from signaling.live.protocol import (
    SERVER_DECODER,
    Admitted,
    Ended,
    ErrorMessage,
    Lobby,
    PeerJoined,
    PeerLeft,
    RelayedCandidate,
    ServerMessage,
    StaffMessage,
    Waiting,
    Welcome,
)
from signaling.live.room_state import RoomSnapshot, decode_snapshot
from signaling.live.signaling_state import SIGNALING
from tests.cluster import Cluster, Instance, alive_but_not_ready, start_cluster, wait_until_ready
from tests.conftest import Staff, wait_until
from tests.rtc import (
    Booking,
    Closed,
    Peer,
    SignalClient,
    admit,
    connect_media,
    join,
    peers,
    rtc_config,
)
from tests.servers import RedisServer
from tests.test_signaling_recording import record_then_patient_withdraws

WAITING_ROOM_TEXT = "Le docteur arrive dans un instant, merci."
CANDIDATE = "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture(params=["redis", "postgres+redis"])
def cluster(
    tmp_path: Path, own_redis: RedisServer, request: pytest.FixtureRequest
) -> Iterator[Cluster]:
    # Records in Redis (the Redis store), or in PostgreSQL with the live state in Redis.
    dsn = None
    if request.param == "postgres+redis":
        dsn = request.getfixturevalue("postgres_cluster").new_database()
    started = start_cluster(tmp_path, own_redis, postgres_dsn=dsn)
    yield started
    started.stop()
    # The instances' own logs hold no patient name and no TOTP secret either.
    for instance in started.instances:
        output = instance.output()
        assert "Alice Patient" not in output and "otpauth" not in output, instance.name


@pytest.fixture
async def doctor(cluster: Cluster) -> AsyncIterator[Staff]:
    staff = await cluster.sign_in(cluster.a)
    yield staff
    await staff.client.close()


async def join_on(
    cluster: Cluster, instance: Instance, http: aiohttp.ClientSession, token: str
) -> tuple[SignalClient, Welcome]:
    return await first_on(cluster, instance, http, {"type": "join", "v": 1, "token": token})


async def resume_on(
    cluster: Cluster, instance: Instance, http: aiohttp.ClientSession, secret: str
) -> tuple[SignalClient, Welcome]:
    return await first_on(cluster, instance, http, {"type": "resume", "v": 1, "resume": secret})


async def first_on(
    cluster: Cluster, instance: Instance, http: aiohttp.ClientSession, first: dict[str, object]
) -> tuple[SignalClient, Welcome]:
    """A socket on ``instance`` whose first message (join or resume) was welcomed."""
    signal = await cluster.connect(instance, http)
    await signal.send(first)
    return signal, await signal.expect(Welcome)


async def call_across(
    cluster: Cluster, booking: Booking
) -> tuple[SignalClient, Welcome, SignalClient, Welcome]:
    """Doctor joins on A, patient on B and waits, the doctor admits: both in the call."""
    doctor_ws, doctor_welcome = await join_on(
        cluster, cluster.a, booking.doctor.client, await booking.doctor_token()
    )
    assert (doctor_welcome.role, doctor_welcome.state) == ("doctor", "waiting")
    assert (await doctor_ws.expect(Lobby)).waiting is None
    patient_ws, patient_welcome = await join_on(
        cluster, cluster.b, booking.patient, await booking.patient_token()
    )
    assert patient_welcome.role == "patient"
    await admit(doctor_ws, patient_ws, "Alice Patient")
    return doctor_ws, doctor_welcome, patient_ws, patient_welcome


async def frames_keep_coming(peer: Peer, seconds: float = 5.0) -> None:
    """More than five new audio and video frames each arrive, within ``seconds`` (scaled by
    the test time factor): media that stopped fails, a slow machine only waits longer. The
    window is wide on purpose: a passing call returns at its sixth frame, and a loaded machine
    can run the peers' fake video at a few frames per second."""
    before = dict(peer.frames)
    try:
        await wait_until(
            lambda: all(peer.frames[kind] > before[kind] + 5 for kind in ("audio", "video")),
            within=seconds,
        )
    except TimeoutError:
        raise AssertionError(f"media stopped: {before} then {dict(peer.frames)}") from None


async def relayed(sender: SignalClient, receiver: SignalClient) -> None:
    """A trickled candidate sent by ``sender`` reaches ``receiver``."""
    await sender.send({"type": "candidate", "candidate": CANDIDATE, "sdp_mid": "0"})
    got = await receiver.expect(RelayedCandidate)
    assert got.candidate == CANDIDATE


def room_snapshot(cluster: Cluster, room_id: str) -> RoomSnapshot:
    client = redis.Redis.from_url(cluster.redis.url)
    try:
        raw = client.get(f"tc:room:{room_id}")
    finally:
        client.close()
    assert isinstance(raw, bytes)
    return decode_snapshot(raw)


def durable_keys(url: str) -> dict[str, str]:
    """Every key without a TTL (the durable records) and its type."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        return {
            key: str(client.type(key))
            for key in client.scan_iter(count=1000)
            if client.ttl(key) == -1
        }
    finally:
        client.close()


@pytest.mark.usefixtures("loopback_only")
async def test_a_doctor_on_one_instance_and_a_patient_on_the_other_talk(
    cluster: Cluster, doctor: Staff
) -> None:
    booking = await cluster.book(doctor, patient_on=cluster.b)
    doctor_ws, _, patient_ws, _ = await call_across(cluster, booking)
    async with peers(rtc_config([]), rtc_config([])) as (doctor_peer, patient_peer):
        await connect_media(doctor_ws, doctor_peer, patient_ws, patient_peer)
        for peer in (doctor_peer, patient_peer):
            assert peer.srtp_profile().startswith("SRTP_")
        # Trickle both ways across the instances.
        await relayed(doctor_ws, patient_ws)
        await relayed(patient_ws, doctor_ws)
        # The patient leaves for good: the doctor on the other instance hears it.
        await patient_ws.send({"type": "hang_up"})
        left = await doctor_ws.expect(PeerLeft)
        assert (left.role, left.reason) == ("patient", "left")
        assert (await doctor_ws.expect(Lobby)).waiting is None
    await doctor_ws.close()
    await booking.patient.close()


async def test_the_dashboard_sees_and_cancels_a_patient_waiting_on_the_other_instance(
    cluster: Cluster, doctor: Staff
) -> None:
    """The doctor's dashboard on A lists a patient waiting on B (GET /api/waiting), and
    cancelling the consultation over HTTP on A ends the patient's room on B."""
    booking = await cluster.book(doctor, patient_on=cluster.b)
    patient_ws, _ = await join_on(
        cluster, cluster.b, booking.patient, await booking.patient_token()
    )
    await patient_ws.expect(Waiting)
    resp = await doctor.client.get("/api/waiting")
    assert resp.status == 200, await resp.text()
    waiting = (await resp.json())["waiting"]
    assert [(w["consultation_id"], w["patient_name"]) for w in waiting] == [
        (booking.consultation_id, "Alice Patient")
    ]
    resp = await doctor.post(f"/api/consultations/{booking.consultation_id}/cancel")
    assert resp.status == 200, await resp.text()
    assert (await patient_ws.expect(Ended)).reason == "cancelled"
    resp = await doctor.client.get("/api/waiting")
    assert (await resp.json())["waiting"] == []
    await booking.patient.close()


async def test_a_message_written_on_one_instance_reaches_the_patient_waiting_on_the_other(
    cluster: Cluster, doctor: Staff
) -> None:
    """The doctor's dashboard on A writes to the waiting room: the patient, whose socket
    lives on B, receives it; the text reaches neither instance's log."""
    booking = await cluster.book(doctor, patient_on=cluster.b)
    patient_ws, _ = await join_on(
        cluster, cluster.b, booking.patient, await booking.patient_token()
    )
    await patient_ws.expect(Waiting)
    url = f"/api/consultations/{booking.consultation_id}/waiting-message"
    for body in ({"preset": "check_microphone"}, {"text": WAITING_ROOM_TEXT}):
        resp = await doctor.post(url, json=body)
        assert resp.status == 200, await resp.text()
        got = await patient_ws.expect(StaffMessage)
        assert (got.preset, got.text, got.from_role) == (
            body.get("preset"),
            body.get("text", ""),
            "doctor",
        )
    await patient_ws.close()
    await booking.patient.close()
    for instance in cluster.instances:
        assert WAITING_ROOM_TEXT not in instance.output(), instance.name


async def test_a_new_link_on_one_instance_shows_out_the_patient_on_the_other(
    cluster: Cluster, doctor: Staff
) -> None:
    """The doctor on A issues a new invite link over HTTP: the patient of the old link, in the
    call on B, is shown out (invite_superseded, 4410) and the doctor on A hears it."""
    booking = await cluster.book(doctor, patient_on=cluster.b)
    doctor_ws, _, patient_ws, _ = await call_across(cluster, booking)
    resp = await doctor.post(f"/api/consultations/{booking.consultation_id}/invite")
    assert resp.status == 200, await resp.text()
    assert (await patient_ws.expect(ErrorMessage)).code == "invite_superseded"
    assert await close_code_sent(patient_ws, 10.0) == 4410
    left = await doctor_ws.expect(PeerLeft)
    assert (left.role, left.reason) == ("patient", "superseded")
    assert (await doctor_ws.expect(Lobby)).waiting is None
    # The old link's session (on B, where it was opened) gets no new token.
    resp = await booking.patient.post(
        "/api/room-tokens",
        json={"consultation_id": booking.consultation_id},
        headers={"X-CSRF-Token": booking.patient_csrf},
    )
    assert (await resp.json())["error"]["code"] == "invite_superseded"
    await doctor_ws.close()
    await booking.patient.close()


async def close_code_sent(signal: SignalClient, within: float) -> int | None:
    """The close code in the server's close frame (None: still open after ``within`` s of
    silence). Read from the frame: aiohttp's own close_code says 1006 whenever its answering
    close frame finds the socket already shut, which the server does right after closing."""
    while True:
        try:
            msg = await signal.ws.receive(timeout=within)
        except TimeoutError:
            return None
        if msg.type is aiohttp.WSMsgType.CLOSE:
            return int(msg.data)
        if msg.type is not aiohttp.WSMsgType.TEXT:
            return signal.ws.close_code
        message = SERVER_DECODER.decode(msg.data)
        assert isinstance(message, Waiting | ErrorMessage), message


@pytest.mark.usefixtures("loopback_only")
async def test_recording_across_instances_runs_on_the_doctors_and_hears_the_patient(
    cluster: Cluster, doctor: Staff
) -> None:
    """The recording runs on A (the doctor's instance); the patient's consent, send-only offer
    and withdrawal, sent to B, are handed over to A, and A's answers come back."""
    booking = await cluster.book(doctor, patient_on=cluster.b)
    doctor_ws, _, patient_ws, _ = await call_across(cluster, booking)
    recording_id = await record_then_patient_withdraws(doctor_ws, patient_ws, seconds=2)

    async def once_complete() -> dict[str, Any] | None:
        # Complete once A's recorder has sealed the file (its remux pass comes after the stop).
        resp = await doctor.client.get("/api/recordings")
        assert resp.status == 200, await resp.text()
        listed = {r["id"]: r for r in (await resp.json())["recordings"]}
        recording: dict[str, Any] = listed[recording_id]
        assert recording["status"] in ("recording", "complete"), recording
        return recording if recording["status"] == "complete" else None

    recording = await wait_until(once_complete, within=30)
    assert recording["size_bytes"] > 0, recording
    await doctor_ws.close()
    await patient_ws.close()
    await booking.patient.close()


async def test_a_waiting_patient_is_seen_and_let_go_from_every_instance(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    """Two apps in this process on one Redis: the waiting index (the dashboard's source) is
    the same from both; ending the room from the other one (a cancelled consultation)
    reaches the patient and empties it."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    storage = StorageSettings(data_dir=str(data_dir), backend="redis", redis_url=own_redis.url)
    settings = Settings(storage=storage).validate()
    apps = [create_app(settings), create_app(settings)]
    clients = [TestClient(TestServer(app)) for app in apps]
    for client in clients:
        await client.start_server()
    try:
        services = apps[0][SERVICES]
        await services.accounts.create_user("dr.waiting", "a long enough password", "doctor", "W")
        doctor = await services.store.get_user_by_username("dr.waiting")
        assert doctor is not None
        issued = await services.consultations.create(
            doctor, "Alice Patient", services.clock.now(), 30, ""
        )
        room = issued.consultation.id
        patient, _ = await join(
            clients[1], services.room_tokens.issue(room, "patient", f"patient:{room}", 1)
        )
        await patient.expect(Waiting)
        for app in apps:
            [(waiting_room, entry)] = (await app[SIGNALING].rooms.waiting()).items()
            assert waiting_room == room
            assert entry.since == pytest.approx(time.time(), abs=30)
            assert entry.generation == 1
        # The consultation is cancelled through the instance that holds nobody of the room.
        await apps[0][SIGNALING].rooms.end_room(room, "cancelled")
        assert (await patient.expect(Ended)).reason == "cancelled"
        assert await patient.closed_with() is not None
        for app in apps:
            assert await app[SIGNALING].rooms.waiting() == {}
    finally:
        for client in clients:
            await client.close()


async def _race_once(cluster: Cluster, booking: Booking, doctor_ws: SignalClient) -> None:
    tokens = [await booking.patient_token(), await booking.patient_token()]
    sockets = [
        await cluster.connect(cluster.a, booking.patient),
        await cluster.connect(cluster.b, booking.patient),
    ]
    # Both joins leave at once, one to each instance.
    await asyncio.gather(
        *(
            ws.send({"type": "join", "v": 1, "token": token})
            for ws, token in zip(sockets, tokens, strict=True)
        )
    )
    welcomes = [await ws.expect(Welcome) for ws in sockets]
    # Exactly one is closed as replaced (4000); the other keeps the seat.
    outcomes = [await close_code_sent(ws, within=2.0) for ws in sockets]
    assert sorted(outcomes, key=str) == [4000, None], outcomes
    holder = outcomes.index(None)
    loser = 1 - holder
    # Both instances agree: the saved seat is the holder's, the loser's secret is void on both.
    seats = room_snapshot(cluster, booking.consultation_id).seats
    expected = hashlib.sha256(welcomes[holder].resume.encode()).hexdigest()
    assert seats["patient"].resume_hash == expected
    for instance in cluster.instances:
        ws = await cluster.connect(instance, booking.patient)
        await ws.send({"type": "resume", "v": 1, "resume": welcomes[loser].resume})
        await ws.expect_error("token_invalid")
        await ws.close()
    # The doctor saw a patient waiting, and admitting reaches the holder, wherever it is.
    lobby = await doctor_ws.expect(Lobby)
    while True:
        try:
            lobby = await doctor_ws.expect(Lobby, within=0.5)
        except TimeoutError:
            break
    assert lobby.waiting is not None
    await doctor_ws.send({"type": "admit"})
    await sockets[holder].expect(Admitted)
    assert (await sockets[holder].expect(PeerJoined)).role == "doctor"
    assert (await doctor_ws.expect(Lobby)).waiting is None
    assert (await doctor_ws.expect(PeerJoined)).role == "patient"
    await sockets[holder].send({"type": "hang_up"})
    assert (await doctor_ws.expect(PeerLeft)).reason == "left"
    assert (await doctor_ws.expect(Lobby)).waiting is None


@pytest.mark.slow
async def test_two_patient_joins_racing_on_two_instances_leave_one_seat_holder(
    cluster: Cluster, doctor: Staff
) -> None:
    booking = await cluster.book(doctor, patient_on=cluster.a)
    doctor_ws, _ = await join_on(
        cluster, cluster.a, booking.doctor.client, await booking.doctor_token()
    )
    assert (await doctor_ws.expect(Lobby)).waiting is None
    for _ in range(3):
        await _race_once(cluster, booking, doctor_ws)
    await doctor_ws.close()
    await booking.patient.close()


@pytest.mark.usefixtures("loopback_only")
async def test_sigkill_of_the_patients_instance_keeps_media_and_the_patient_resumes_on_the_other(
    cluster: Cluster, doctor: Staff
) -> None:
    booking = await cluster.book(doctor, patient_on=cluster.b)
    doctor_ws, _, patient_ws, patient_welcome = await call_across(cluster, booking)
    async with peers(rtc_config([]), rtc_config([])) as (doctor_peer, patient_peer):
        await connect_media(doctor_ws, doctor_peer, patient_ws, patient_peer)
        killed_at = time.monotonic()
        cluster.b.kill()
        # The patient's socket is gone with its instance.
        with pytest.raises(Closed):
            while True:
                await patient_ws.recv(within=5.0)
        # It reconnects to the surviving instance and resumes its place in the call.
        resumed_ws, welcome = await resume_on(
            cluster, cluster.a, booking.patient, patient_welcome.resume
        )
        resumed_after = time.monotonic() - killed_at
        assert welcome.resumed and welcome.state == "in_call"
        assert resumed_after < 5.0, resumed_after
        assert (await resumed_ws.expect(PeerJoined)).role == "doctor"
        # The doctor is told the patient came back (perhaps after hearing it dropped).
        seen: list[ServerMessage] = []
        while not (seen and isinstance(seen[-1], PeerJoined)):
            seen.append(await doctor_ws.recv())
        assert all(isinstance(m, PeerLeft) and m.reason == "disconnected" for m in seen[:-1])
        assert isinstance(seen[-1], PeerJoined) and seen[-1].resumed
        # Media never went through the instances: it kept flowing all along.
        await frames_keep_coming(patient_peer)
        await frames_keep_coming(doctor_peer)
        await relayed(doctor_ws, resumed_ws)
        await relayed(resumed_ws, doctor_ws)
    await doctor_ws.close()
    await resumed_ws.close()
    await booking.patient.close()


async def test_sigkill_of_a_lone_peers_instance_is_noticed_by_the_other_instance(
    cluster: Cluster, doctor: Staff
) -> None:
    """Nobody resumes: the instance whose heartbeat stopped is taken for gone, and the doctor
    on the other instance is told the patient dropped, within the heartbeat TTL."""
    booking = await cluster.book(doctor, patient_on=cluster.b)
    doctor_ws, _, _, _ = await call_across(cluster, booking)
    cluster.b.kill()
    left = await doctor_ws.expect(PeerLeft, within=10.0)
    assert (left.role, left.reason) == ("patient", "disconnected")
    seats = room_snapshot(cluster, booking.consultation_id).seats
    assert seats["patient"].connection_id is None  # kept for a resume
    await doctor_ws.close()
    await booking.patient.close()


@pytest.mark.slow
@pytest.mark.usefixtures("loopback_only")
async def test_redis_stopped_for_15_s_keeps_the_call_and_nothing_stored_is_lost(
    cluster: Cluster, doctor: Staff
) -> None:
    booking = await cluster.book(doctor, patient_on=cluster.b)
    later = await cluster.book(doctor, patient_on=cluster.a)
    doctor_ws, _, patient_ws, _ = await call_across(cluster, booking)
    async with peers(rtc_config([]), rtc_config([])) as (doctor_peer, patient_peer):
        await connect_media(doctor_ws, doctor_peer, patient_ws, patient_peer)
        token_before = await later.doctor_token()
        stored = durable_keys(cluster.redis.url)
        # Records as the service reads them, from wherever they live (Redis, or PostgreSQL).
        listed = await consultations_listed(doctor)
        assert {booking.consultation_id, later.consultation_id} <= listed.keys()
        port = cluster.redis.port
        cluster.redis.stop()
        stopped_at = time.monotonic()
        during = {"audio": patient_peer.frames["audio"], "video": patient_peer.frames["video"]}
        await alive_but_not_ready(cluster)
        # A new join is refused clearly, on either instance.
        for instance in cluster.instances:
            ws = await cluster.connect(instance, later.doctor.client)
            await ws.send({"type": "join", "v": 1, "token": token_before})
            error = await ws.expect_error("unavailable")
            assert error.message
            assert await ws.closed_with() == 1013
        await asyncio.sleep(max(0.0, 15.0 - (time.monotonic() - stopped_at)))
        # The call's media never needed Redis.
        for kind in ("audio", "video"):
            assert patient_peer.frames[kind] > during[kind] + 100, (kind, during)
        await frames_keep_coming(doctor_peer)
        cluster.redis.port = port
        cluster.redis.start()
        back_at = time.monotonic()
        # Within 10 s: ready, a new join works across the instances, the old call signals.
        for instance in cluster.instances:
            await wait_until_ready(instance, within=10.0)
        late_doctor_ws = await _join_when_back(cluster, later, back_at)
        late_patient_ws, _ = await join_on(
            cluster, cluster.a, later.patient, await later.patient_token()
        )
        await late_patient_ws.expect(Waiting)
        assert (await late_doctor_ws.expect(Lobby)).waiting is not None
        await _relayed_when_back(doctor_ws, patient_ws, back_at)
        assert time.monotonic() - back_at < 10.0
        await frames_keep_coming(patient_peer)
    # Nothing stored before the outage is missing or changed in kind: the keys without a
    # time to live (the Redis store's records; few or none beside PostgreSQL), and every
    # consultation with its patient as the service lists them.
    after = durable_keys(cluster.redis.url)
    missing = {k: v for k, v in stored.items() if after.get(k) != v}
    assert not missing, missing
    assert await consultations_listed(doctor) == listed
    for ws in (doctor_ws, patient_ws, late_doctor_ws, late_patient_ws):
        await ws.close()
    await booking.patient.close()
    await later.patient.close()


async def consultations_listed(staff: Staff) -> dict[str, str]:
    """The doctor's consultations as the dashboard lists them: id -> patient's name."""
    resp = await staff.client.get("/api/consultations")
    assert resp.status == 200, await resp.text()
    return {c["id"]: c["patient_name"] for c in (await resp.json())["consultations"]}


async def _join_when_back(cluster: Cluster, booking: Booking, back_at: float) -> SignalClient:
    """The doctor of ``booking`` joins on B as soon as the service takes joins again."""
    while True:
        resp = await booking.doctor.post(
            "/api/room-tokens", json={"consultation_id": booking.consultation_id}
        )
        if resp.status == 200:
            token = (await resp.json())["room_token"]
            ws = await cluster.connect(cluster.b, booking.doctor.client)
            await ws.send({"type": "join", "v": 1, "token": token})
            message = await ws.recv()
            if isinstance(message, Welcome):
                assert (await ws.expect(Lobby)).waiting is None
                return ws
            await ws.close()
        assert time.monotonic() - back_at < 10.0, "joins still refused 10 s after Redis returned"
        await asyncio.sleep(0.2)


async def _relayed_when_back(
    doctor_ws: SignalClient, patient_ws: SignalClient, back_at: float
) -> None:
    """The established call signals across the instances again (the bus resubscribed)."""
    while True:
        await doctor_ws.send({"type": "candidate", "candidate": CANDIDATE, "sdp_mid": "0"})
        try:
            got = await patient_ws.expect(RelayedCandidate, within=0.5)
        except TimeoutError:
            assert time.monotonic() - back_at < 10.0, "no relay 10 s after Redis returned"
            continue
        assert got.candidate == CANDIDATE
        return
