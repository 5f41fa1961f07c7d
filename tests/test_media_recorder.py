"""The recording worker end to end: aiortc clients (in this process, not patched) send
synthetic tracks as doctor and patient to a real worker process over DTLS-SRTP on loopback;
the encrypted file is then decrypted and opened with PyAV."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import signal
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import av
import av.error
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack, VideoStreamTrack

from media.encrypted_recording import RecordingIntegrityError, RecordingReader
from media.keyring import Keyring, load_keyring
from media.recorder_protocol import ParticipantConnected, RecordingFailed
from media.recording_service import (
    CLOSE_TIMEOUT,
    RecorderProcess,
    RecorderRequestFailed,
    RecorderUnavailable,
    ServiceEvent,
    WorkerExited,
)
from signaling.models import SeatRole
from tests.conftest import deadline, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("loopback_only")]

ROLES: tuple[SeatRole, ...] = ("doctor", "patient")
TITLES = {"doctor video", "doctor audio", "patient video", "patient audio"}
NOISE_SIZE = (160, 120)  # small: the senders must keep real time on a busy 2-core machine
# Container signatures that must never be on disk in clear: the EBML header, the "webm"
# doctype element, Opus' codec private data and a VP8 keyframe start code with the picture
# size of NoiseVideoTrack. Each comes with enough context that random ciphertext does not
# contain it by chance (a bare 3-byte start code shows up every ~16 MB).
PLAINTEXT_SIGNATURES = (
    re.compile(re.escape(bytes.fromhex("1a45dfa3")) + rb".{1,8}\x42\x86\x81\x01", re.DOTALL),
    re.compile(re.escape(bytes.fromhex("428284") + b"webm")),
    re.compile(re.escape(b"OpusHead")),
    re.compile(re.escape(bytes.fromhex("9d012a") + struct.pack("<HH", *NOISE_SIZE))),
)
EVENT_TIMEOUT = 10.0  # seconds on an ordinary machine: deadline() scales it
SEGMENT_BYTES = 65536 + 16  # an encrypted segment on disk
HEADER_BYTES = 88


class NoiseVideoTrack(VideoStreamTrack):
    """Frames of noise: the encoder cannot compress them away, so segments fill quickly."""

    def __init__(self, width: int = NOISE_SIZE[0], height: int = NOISE_SIZE[1]) -> None:
        super().__init__()
        self._size = (width, height)

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame(*self._size, "yuv420p")
        for plane in frame.planes:
            plane.update(os.urandom(plane.buffer_size))
        frame.pts, frame.time_base = pts, time_base
        return frame


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "recording-master.key"
    load_keyring(path, create=True)
    return path


@pytest.fixture
def keyring(key_file: Path) -> Keyring:
    return load_keyring(key_file, create=False)


@pytest.fixture
async def worker() -> AsyncIterator[RecorderProcess]:
    process = await RecorderProcess.spawn(loopback="only", log_level="WARNING")
    yield process
    await process.close()


class Participant:
    """A consenting participant's send-only connection to the recorder."""

    def __init__(self, role: SeatRole, video: MediaStreamTrack) -> None:
        self.role = role
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTransceiver(video, direction="sendonly")
        self.pc.addTransceiver(AudioStreamTrack(), direction="sendonly")

    async def join(self, worker: RecorderProcess, recording_id: str) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await worker.offer(recording_id, self.role, self.pc.localDescription.sdp)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))


@contextlib.asynccontextmanager
async def participants(
    worker: RecorderProcess, recording_id: str, *, noise: bool = False
) -> AsyncIterator[list[Participant]]:
    peers = [
        Participant(role, NoiseVideoTrack() if noise else VideoStreamTrack()) for role in ROLES
    ]
    try:
        await asyncio.gather(*(p.join(worker, recording_id) for p in peers))
        yield peers
    finally:
        await asyncio.gather(*(p.pc.close() for p in peers))


async def wait_for_event(worker: RecorderProcess, kind: type[ServiceEvent]) -> ServiceEvent:
    async def find() -> ServiceEvent:
        while True:
            event = await worker.next_event()
            if isinstance(event, kind):
                return event

    return await asyncio.wait_for(find(), deadline(EVENT_TIMEOUT))


async def both_connected(worker: RecorderProcess) -> None:
    roles: set[str] = set()
    while roles != set(ROLES):
        event = await wait_for_event(worker, ParticipantConnected)
        assert isinstance(event, ParticipantConnected)
        roles.add(event.role)


def assert_no_plaintext(path: Path) -> int:
    data = path.read_bytes()
    for signature in PLAINTEXT_SIGNATURES:
        assert not signature.search(data), f"plaintext {signature.pattern!r} on disk"
    return len(data)


def decode(plaintext: bytes) -> dict[str, tuple[int, float]]:
    """Decoded frames and last timestamp (s) per stream title, up to where decoding stops."""
    result: dict[str, tuple[int, float]] = {}
    with av.open(io.BytesIO(plaintext), mode="r") as container:
        titles = {s.index: s.metadata.get("title", "") for s in container.streams}
        result = dict.fromkeys(titles.values(), (0, 0.0))
        with contextlib.suppress(av.error.FFmpegError):  # a cut file ends mid-cluster
            for packet in container.demux():
                if packet.pts is None:
                    continue
                title = titles[packet.stream.index]
                count, last = result[title]
                result[title] = (
                    count + len(packet.decode()),
                    max(last, float(packet.pts * packet.time_base)),
                )
    return result


async def test_doctor_and_patient_are_recorded_into_one_encrypted_webm_that_decodes(
    worker: RecorderProcess, key_file: Path, keyring: Keyring, tmp_path: Path
) -> None:
    path = tmp_path / "consultation.enc"
    started = await worker.start_recording("rec-1", path, key_file)
    assert started.key_id == keyring.current.key_id_hex
    loop = asyncio.get_running_loop()
    async with participants(worker, "rec-1", noise=True):
        await both_connected(worker)
        began = loop.time()
        sizes = []
        while loop.time() - began < 5.0:
            await asyncio.sleep(0.25)
            sizes.append(assert_no_plaintext(path))  # never any clear container byte
        recorded = loop.time() - began
        stopped = await worker.stop("rec-1")  # the reply comes within the 1 s deadline
        # Media still flows from both participants, yet nothing more reaches the file.
        size_at_stop = path.stat().st_size
        await asyncio.sleep(0.5)
        assert path.stat().st_size == size_at_stop == stopped.bytes
        assert worker.alive
    assert sizes[-1] > sizes[0] > 88  # segments were written while recording
    assert stopped.complete
    assert stopped.duration == pytest.approx(recorded, rel=0.1)

    with RecordingReader.open(path, keyring) as reader:  # complete: no recover needed
        plaintext = b"".join(reader)
    assert reader.complete
    # The signatures looked for on disk are really in the plaintext: the check means something.
    assert all(signature.search(plaintext) for signature in PLAINTEXT_SIGNATURES)
    decoded = decode(plaintext)
    assert set(decoded) == TITLES
    for title, (frames, last) in decoded.items():
        assert frames > (80 if "video" in title else 150), title
        assert last == pytest.approx(recorded, rel=0.1), title
    with av.open(io.BytesIO(plaintext), mode="r") as container:
        kinds = sorted((s.type, s.codec_context.name) for s in container.streams)
    assert kinds == [("audio", "opus")] * 2 + [("video", "vp8")] * 2


async def test_a_worker_killed_mid_recording_leaves_a_file_that_decodes_up_to_the_cut(
    worker: RecorderProcess, key_file: Path, keyring: Keyring, tmp_path: Path
) -> None:
    path = tmp_path / "killed.enc"
    await worker.start_recording("rec-2", path, key_file)
    async with participants(worker, "rec-2", noise=True):
        await both_connected(worker)
        await asyncio.sleep(3.0)  # three seconds of media, then the cut
        # ...with at least two sealed segments on disk (a loaded machine writes less).
        await wait_until(lambda: path.stat().st_size >= HEADER_BYTES + 2 * SEGMENT_BYTES, 20)
        os.kill(worker.pid, signal.SIGKILL)
        exited = await wait_for_event(worker, WorkerExited)
        assert isinstance(exited, WorkerExited) and exited.returncode == -signal.SIGKILL
        assert not worker.alive
    assert_no_plaintext(path)
    with pytest.raises(RecordingIntegrityError), RecordingReader.open(path, keyring) as reader:
        b"".join(reader)
    with RecordingReader.open(path, keyring, recover=True) as reader:
        plaintext = b"".join(reader)
    assert not reader.complete and reader.segments_read >= 2
    decoded = decode(plaintext)
    assert set(decoded) == TITLES
    for title in ("doctor video", "patient video"):
        frames, last = decoded[title]
        assert frames > 10 and last > 0.5, title


async def test_a_write_error_stops_the_recording_with_an_error_event_and_a_valid_file(
    key_file: Path, keyring: Keyring, tmp_path: Path
) -> None:
    limit = 300_000  # bytes: RLIMIT_FSIZE makes writes past it fail, like a full disk
    worker = await RecorderProcess.spawn(
        loopback="only", log_level="CRITICAL", file_size_limit=limit
    )
    try:
        path = tmp_path / "full.enc"
        await worker.start_recording("rec-3", path, key_file)
        async with participants(worker, "rec-3", noise=True):
            event = await wait_for_event(worker, RecordingFailed)
            assert isinstance(event, RecordingFailed)
            assert event.recording_id == "rec-3" and event.code == "write_error"
            assert "File too large" in event.message
            stopped = await worker.stop("rec-3")  # idempotent: the final figures
            assert not stopped.complete
            assert stopped.bytes == event.bytes == path.stat().st_size <= limit
            assert worker.alive  # one recording failing does not take the worker down
    finally:
        await worker.close()
    with RecordingReader.open(path, keyring, recover=True) as reader:
        plaintext = b"".join(reader)
    assert (HEADER_BYTES + reader.segments_read * SEGMENT_BYTES) == path.stat().st_size
    decoded = decode(plaintext)
    assert set(decoded) == TITLES
    assert all(frames > 0 for frames, _ in decoded.values()), decoded


async def test_the_worker_refuses_what_it_cannot_record(
    worker: RecorderProcess, key_file: Path, keyring: Keyring, tmp_path: Path
) -> None:
    with pytest.raises(RecorderRequestFailed) as unknown:
        await worker.offer("nope", "doctor", "v=0\r\n")
    assert unknown.value.code == "unknown_recording"
    with pytest.raises(RecorderRequestFailed) as wrong_key:
        await worker.start_recording("r", tmp_path / "a.enc", key_file, key_id="00" * 8)
    assert wrong_key.value.code == "key_error"
    (tmp_path / "taken.enc").write_bytes(b"")
    with pytest.raises(RecorderRequestFailed) as exists:
        await worker.start_recording("r", tmp_path / "taken.enc", key_file)
    assert exists.value.code == "io_error"
    await worker.start_recording("r", tmp_path / "r.enc", key_file)
    with pytest.raises(RecorderRequestFailed) as again:
        await worker.start_recording("r", tmp_path / "r2.enc", key_file)
    assert again.value.code == "already_exists"
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    offer = pc.localDescription.sdp
    await pc.close()
    no_dtls = "".join(line for line in offer.splitlines(True) if "fingerprint" not in line)
    with pytest.raises(RecorderRequestFailed) as rejected:
        await worker.offer("r", "doctor", no_dtls)
    assert rejected.value.code == "sdp_rejected"
    with pytest.raises(RecorderRequestFailed) as stranger:
        await worker.offer("r", "visitor", offer)
    assert stranger.value.code == "invalid_state"
    stopped = await worker.stop("r")
    assert stopped.complete and stopped.duration == 0.0
    with pytest.raises(RecorderRequestFailed) as late:
        await worker.offer("r", "doctor", offer)
    assert late.value.code == "invalid_state"
    with RecordingReader.open(tmp_path / "r.enc", keyring) as reader:
        assert b"".join(reader)[:4] == bytes.fromhex("1a45dfa3")


async def test_closing_the_worker_seals_its_recordings_and_a_participant_can_reconnect(
    key_file: Path, keyring: Keyring, tmp_path: Path
) -> None:
    worker = await RecorderProcess.spawn(loopback="only", log_level="WARNING")
    path = tmp_path / "closed.enc"
    await worker.start_recording("rec-4", path, key_file)
    async with participants(worker, "rec-4"):
        await both_connected(worker)
        await asyncio.sleep(1.0)
        # The doctor's connection drops and comes back: a new offer replaces the old one.
        async with contextlib.AsyncExitStack() as stack:
            again = Participant("doctor", VideoStreamTrack())
            stack.push_async_callback(again.pc.close)
            await again.join(worker, "rec-4")
            event = await wait_for_event(worker, ParticipantConnected)
            assert isinstance(event, ParticipantConnected) and event.role == "doctor"
            await asyncio.sleep(1.0)
            # EOF on stdin: stop everything, then exit (killed past the close deadline).
            assert await worker.close(reply_timeout=deadline(CLOSE_TIMEOUT)) == 0
    with RecordingReader.open(path, keyring) as reader:  # sealed: no recover needed
        plaintext = b"".join(reader)
    assert reader.complete
    decoded = decode(plaintext)
    assert set(decoded) == TITLES
    # The doctor's video goes on after the reconnection, on the same stream.
    assert decoded["doctor video"][1] > 1.5 and decoded["patient video"][1] > 1.5


def fake_worker(tmp_path: Path, behaviour: str) -> str:
    """An executable standing in for ``python``: says ready, then ``behaviour`` (shell)."""
    script = tmp_path / "fake-python"
    ready = '{"type":"ready","pid":1,"loopback":"off"}'
    script.write_text(f"#!/bin/sh\necho '{ready}'\n{behaviour}\n")
    script.chmod(0o700)
    return str(script)


async def test_a_worker_that_misses_a_deadline_is_killed(tmp_path: Path) -> None:
    worker = await RecorderProcess.spawn(python=fake_worker(tmp_path, "exec sleep 60"))
    with pytest.raises(RecorderUnavailable, match="killed"):
        await worker.stop("rec")  # never answered: killed at the 1 s stop deadline
    assert not worker.alive
    exited = await wait_for_event(worker, WorkerExited)
    assert isinstance(exited, WorkerExited) and exited.returncode == -signal.SIGKILL
    with pytest.raises(RecorderUnavailable):
        await worker.offer("rec", "doctor", "v=0\r\n")


async def test_a_worker_that_dies_fails_the_pending_request(tmp_path: Path) -> None:
    worker = await RecorderProcess.spawn(python=fake_worker(tmp_path, "read line; exit 3"))
    with pytest.raises(RecorderUnavailable, match="exited"):
        await worker.offer("rec", "doctor", "v=0\r\n")
    exited = await wait_for_event(worker, WorkerExited)
    assert isinstance(exited, WorkerExited) and exited.returncode == 3
    await worker.close()


async def test_a_recording_is_bound_to_its_context(
    worker: RecorderProcess, key_file: Path, keyring: Keyring, tmp_path: Path
) -> None:
    path = tmp_path / "bound.tcrec"
    await worker.start_recording("rec-bound", path, key_file, context="recording:rec-bound")
    await worker.stop("rec-bound")
    with RecordingReader.open(path, keyring, context=b"recording:rec-bound") as reader:
        list(reader.chunks())  # authentic under its own context
    with pytest.raises(RecordingIntegrityError):
        with RecordingReader.open(path, keyring, context=b"recording:another") as reader:
            list(reader.chunks())


async def test_a_closed_worker_exits_without_waiting_for_the_interpreters_teardown(
    key_file: Path, keyring: Keyring, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After EOF the worker seals its recordings and exits at once. The interpreter's own
    teardown (freeing aiortc's and PyAV's objects one by one) writes nothing, yet took most of
    a close on a loaded machine and could push it past RecorderProcess.close's deadline, where
    the worker is killed. Here an exit hook that sleeps stands in for that slow teardown."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import atexit, time\natexit.register(time.sleep, 60)\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    worker = await RecorderProcess.spawn(loopback="only", log_level="WARNING")
    path = tmp_path / "sealed.enc"
    await worker.start_recording("rec-5", path, key_file)
    assert await worker.close(reply_timeout=deadline(CLOSE_TIMEOUT)) == 0  # not killed
    with RecordingReader.open(path, keyring) as reader:  # sealed: no recover needed
        b"".join(reader)
    assert reader.complete
