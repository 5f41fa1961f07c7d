"""Recording benchmark: ``.venv/bin/python bench/bench_recording.py [--seconds 15]``.

Measures, in one run, on the same synthetic input (two participants, each 640x480@30 VP8 at
~1 Mbit/s plus Opus, pre-encoded once and replayed by aiortc senders in this process so the
senders cost little and the input is identical for every recorder):

1. CPU-seconds per media-second of one recording (both participants) in the passthrough
   recording worker (``media.recorder_worker``, the production path: aiortc receive, SRTP,
   passthrough, mux, encryption), against aiortc's ``MediaRecorder`` (decode + re-encode to
   WebM) in a process of its own receiving the same input. Goal: <= 0.2x.
2. Encryption overhead: the same muxer fed the same frames in this process, writing through
   ``RecordingWriter`` to a file against writing the WebM to a plain file (CPU of mux + write),
   reported against the mux alone and against the whole recording worker. Goal: <= 2 %.
3. Capacity: N simultaneous recordings (one worker process each, two participants each)
   for N = 1, 2, 4, ...; a step passes when every recording holds >= 95 % of the video
   frames sent and no worker needed a full core; the machine's CPU use (everything, the
   senders and any other work included) is shown beside. Stops at the first failure or at
   ``--max-recordings``.

Bounded: about 3-4 minutes with the defaults on 2 cores. CPU is read from /proc (Linux).
Bounded: about 3-4 minutes with the defaults on 2 cores. CPU is read from /proc (Linux).
A bench script, over 400 lines: its senders, both recorders and the three measures live in one
file so it runs with one command.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import io
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import av  # noqa: E402
from aiortc import (  # noqa: E402
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamTrack  # noqa: E402

from media.encrypted_recording import RecordingReader, RecordingWriter  # noqa: E402
from media.keyring import Keyring, load_keyring  # noqa: E402
from media.muxer import RecordingMuxer  # noqa: E402
from media.passthrough import EncodedFrame, parse_vp8_frame  # noqa: E402
from media.recording_service import RecorderProcess  # noqa: E402
from tests.loopback import use_loopback_only  # noqa: E402

WIDTH, HEIGHT, FPS = 640, 480, 30
VIDEO_BITRATE = 1_000_000
LOOP_SECONDS = 4  # pre-encoded loop; starts with a keyframe
ROLES = ("doctor", "patient")
CLK_TCK = os.sysconf("SC_CLK_TCK")
SETTLE = 1.0  # seconds after connecting before measuring


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


# -- input --------------------------------------------------------------------------------------


def encode_video() -> list[tuple[bytes, bool]]:
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height = WIDTH, HEIGHT
    encoder.pix_fmt = "yuv420p"
    encoder.time_base = Fraction(1, FPS)
    encoder.bit_rate = VIDEO_BITRATE
    encoder.gop_size = LOOP_SECONDS * FPS
    encoder.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    packets: list[tuple[bytes, bool]] = []
    for i in range(LOOP_SECONDS * FPS):
        frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        for n, plane in enumerate(frame.planes):
            # A moving gradient with a patch of fresh noise: a "camera" the encoder has to
            # work for, but that fits the target bitrate.
            width, height = plane.line_size, plane.buffer_size // plane.line_size
            row = bytes(((x * 3) // (n + 1) + i * 2) & 0xFF for x in range(width))
            rows = [row] * height
            patch = (i * 5) % (height - height // 4)
            for y in range(patch, patch + height // 4):
                rows[y] = (
                    row[: width // 3] + os.urandom(width // 6) + row[width // 3 + width // 6 :]
                )
            plane.update(b"".join(rows))
        frame.pts = i
        packets.extend((bytes(p), p.is_keyframe) for p in encoder.encode(frame))
    packets.extend((bytes(p), p.is_keyframe) for p in encoder.encode(None))
    assert packets[0][1], "the loop must start with a keyframe"
    return packets


def encode_audio() -> list[bytes]:
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = 48000
    encoder.layout = "stereo"
    encoder.format = "s16"
    encoder.time_base = Fraction(1, 48000)
    packets: list[bytes] = []
    for i in range(LOOP_SECONDS * 50):
        samples = array.array(
            "h",
            (
                int(8000 * math.sin(2 * math.pi * 440 * (i * 960 + k // 2) / 48000))
                for k in range(960 * 2)
            ),
        )
        frame = av.AudioFrame(format="s16", layout="stereo", samples=960)
        frame.planes[0].update(samples.tobytes())
        frame.sample_rate = 48000
        frame.pts = i * 960
        packets.extend(bytes(p) for p in encoder.encode(frame))
    return packets


class ReplayTrack(MediaStreamTrack):
    """Replays pre-encoded packets at their real rate (aiortc sends av.Packet as is)."""

    def __init__(self, kind: str, packets: Sequence[bytes], rate: int, step: int) -> None:
        super().__init__()
        self.kind = kind
        self._packets = packets
        self._rate = rate
        self._step = step
        self._index = 0
        self._start: float | None = None

    @property
    def sent(self) -> int:
        return self._index

    @property
    def on_time(self) -> float:
        """Share of the packets due by now that went out (< 1: this process fell behind)."""
        if self._start is None:
            return 0.0
        due = (time.monotonic() - self._start) * self._rate / self._step
        return min(1.0, self._index / max(1.0, due))

    async def recv(self) -> av.Packet[Any]:
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._index * self._step / self._rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        packet = av.Packet(self._packets[self._index % len(self._packets)])
        packet.pts = self._index * self._step
        packet.time_base = Fraction(1, self._rate)
        self._index += 1
        return packet


class Sender:
    def __init__(self, video: Sequence[bytes], audio: Sequence[bytes]) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.video = ReplayTrack("video", video, 90000, 3000)
        self.pc.addTransceiver(self.video, direction="sendonly")
        self.pc.addTransceiver(ReplayTrack("audio", audio, 48000, 960), direction="sendonly")

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))


@contextlib.asynccontextmanager
async def senders(
    count: int, video: Sequence[bytes], audio: Sequence[bytes]
) -> AsyncIterator[list[Sender]]:
    peers = [Sender(video, audio) for _ in range(count)]
    try:
        yield peers
    finally:
        await asyncio.gather(*(p.pc.close() for p in peers))


def video_packet_counts(data: bytes) -> list[int]:
    """Non-empty packets of each video stream of a WebM file."""
    with av.open(io.BytesIO(data), mode="r") as container:
        counts = {s.index: 0 for s in container.streams if s.type == "video"}
        for packet in container.demux():
            if packet.stream.index in counts and packet.size:
                counts[packet.stream.index] += 1
    return list(counts.values())


# -- 1. passthrough worker against MediaRecorder ---------------------------------------------


async def measure_passthrough(
    seconds: float,
    video: Sequence[bytes],
    audio: Sequence[bytes],
    key_file: Path,
    keyring: Keyring,
    out: Path,
) -> tuple[float, float]:
    """(CPU-s per wall second, share of the sent video frames in the file)."""
    worker = await RecorderProcess.spawn(loopback="only", log_level="WARNING")
    try:
        await worker.start_recording("bench", out, key_file)
        async with senders(2, video, audio) as peers:
            for role, peer in zip(ROLES, peers, strict=True):
                await peer.answer(await worker.offer("bench", role, await peer.offer()))
            await asyncio.sleep(SETTLE)
            cpu0, t0 = cpu_seconds(worker.pid), time.monotonic()
            await asyncio.sleep(seconds)
            cpu1, t1 = cpu_seconds(worker.pid), time.monotonic()
            sent = [p.video.sent for p in peers]
            stopped = await worker.stop("bench")
    finally:
        await worker.close()
    with RecordingReader.open(out, keyring) as reader:
        counts = video_packet_counts(b"".join(reader))
    print(
        f"  passthrough file: {stopped.bytes / 1e6:.1f} MB, {stopped.duration:.1f} s, "
        f"video frames per participant {counts} of {sent} sent"
    )
    return (cpu1 - cpu0) / (t1 - t0), min(1.0, sum(counts) / sum(sent))


MEDIARECORDER_CHILD = "--mediarecorder-child"


def mediarecorder_path(output: Path, n: int) -> Path:
    return output.with_name(f"{output.stem}-{n}{output.suffix}")


async def mediarecorder_child(output: str) -> None:
    """Child mode: a plain aiortc receiver recording with MediaRecorder (no passthrough).

    One MediaRecorder (one WebM file) per participant: MediaRecorder cannot put two video
    tracks in one file (the container opens every encoder at the first packet, before the
    second track's size is known, and that track then records nothing).
    """
    from aiortc.contrib.media import MediaRecorder

    use_loopback_only()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    pcs: list[RTCPeerConnection] = []
    recorders: list[MediaRecorder] = []
    while line := await reader.readline():
        request = json.loads(line)
        if request["type"] == "stop":
            await asyncio.gather(*(r.stop() for r in recorders))
            await asyncio.gather(*(pc.close() for pc in pcs))
            print(json.dumps({"type": "stopped"}), flush=True)
            return
        recorder = MediaRecorder(str(mediarecorder_path(Path(output), len(pcs))), format="webm")
        recorders.append(recorder)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pcs.append(pc)
        pc.on("track", recorder.addTrack)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=request["sdp"], type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        await recorder.start()
        print(json.dumps({"type": "answer", "sdp": pc.localDescription.sdp}), flush=True)


async def measure_mediarecorder(
    seconds: float, video: Sequence[bytes], audio: Sequence[bytes], out: Path
) -> tuple[float, float]:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        MEDIARECORDER_CHILD,
        str(out),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdin is not None and child.stdout is not None

    async def call(request: dict[str, Any]) -> dict[str, Any]:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(json.dumps(request).encode() + b"\n")
        await child.stdin.drain()
        reply: dict[str, Any] = json.loads(await asyncio.wait_for(child.stdout.readline(), 60))
        return reply

    try:
        async with senders(2, video, audio) as peers:
            for peer in peers:
                await peer.answer((await call({"type": "offer", "sdp": await peer.offer()}))["sdp"])
            await asyncio.sleep(SETTLE)
            cpu0, t0 = cpu_seconds(child.pid), time.monotonic()
            await asyncio.sleep(seconds)
            cpu1, t1 = cpu_seconds(child.pid), time.monotonic()
            sent = [p.video.sent for p in peers]
            await call({"type": "stop"})
    finally:
        if child.returncode is None:
            child.kill()
        await child.wait()
    files = [mediarecorder_path(out, n).read_bytes() for n in range(len(ROLES))]
    counts = [count for data in files for count in video_packet_counts(data)]
    print(
        f"  MediaRecorder files: {sum(map(len, files)) / 1e6:.1f} MB, video frames per "
        f"participant {counts} of {sent} sent"
    )
    return (cpu1 - cpu0) / (t1 - t0), min(1.0, sum(counts) / sum(sent))


# -- 2. encryption overhead ------------------------------------------------------------------------


def call_frames(
    seconds: int, video: Sequence[bytes], audio: Sequence[bytes]
) -> list[tuple[str, int, EncodedFrame]]:
    frames: list[tuple[str, int, EncodedFrame]] = []
    for n, role in enumerate(ROLES):
        for i in range(seconds * FPS):
            data = video[i % len(video)]
            info = parse_vp8_frame(data)
            frame = EncodedFrame(
                "video", data, i * 3000, info.keyframe, i / FPS, info.width, info.height
            )
            frames.append((role, 2 * n, frame))
        for i in range(seconds * 50):
            frame = EncodedFrame("audio", audio[i % len(audio)], i * 960, True, 0.06 + i / 50)
            frames.append((role, 2 * n + 1, frame))
    frames.sort(key=lambda item: item[2].arrival)
    return frames


def mux_cpu(
    frames: list[tuple[str, int, EncodedFrame]], directory: Path, keyring: Keyring | None
) -> float:
    path = directory / f"mux-{time.monotonic_ns()}.bin"
    start = time.process_time()
    if keyring is not None:
        with RecordingWriter.create(path, keyring.current) as writer:
            muxer = RecordingMuxer(writer, ROLES)
            for role, source, frame in frames:
                muxer.push(role, source, frame)
            muxer.close()
    else:
        with open(path, "xb", buffering=0) as plain:
            muxer = RecordingMuxer(plain, ROLES)
            for role, source, frame in frames:
                muxer.push(role, source, frame)
            muxer.close()
            os.fsync(plain.fileno())
    spent = time.process_time() - start
    path.unlink()
    return spent


# -- 3. capacity -----------------------------------------------------------------------------


async def capacity_step(
    count: int,
    seconds: float,
    video: Sequence[bytes],
    audio: Sequence[bytes],
    key_file: Path,
    keyring: Keyring,
    directory: Path,
) -> tuple[bool, str]:
    workers = await asyncio.gather(
        *(RecorderProcess.spawn(loopback="only", log_level="WARNING") for _ in range(count))
    )
    paths = [directory / f"cap-{count}-{i}.enc" for i in range(count)]
    try:
        for i, worker in enumerate(workers):
            await worker.start_recording(f"r{i}", paths[i], key_file)
        async with senders(2 * count, video, audio) as peers:
            for i, worker in enumerate(workers):
                for role, peer in zip(ROLES, peers[2 * i : 2 * i + 2], strict=True):
                    await peer.answer(await worker.offer(f"r{i}", role, await peer.offer()))
            await asyncio.sleep(SETTLE)
            busy0, total0 = machine_busy()
            cpu0 = [cpu_seconds(w.pid) for w in workers]
            senders0 = cpu_seconds(os.getpid())
            t0 = time.monotonic()
            await asyncio.sleep(seconds)
            wall = time.monotonic() - t0
            busy1, total1 = machine_busy()
            cpu1 = [cpu_seconds(w.pid) for w in workers]
            senders_cpu = (cpu_seconds(os.getpid()) - senders0) / wall
            sent = [p.video.sent for p in peers]
            senders_on_time = min(p.video.on_time for p in peers)
            await asyncio.gather(*(w.stop(f"r{i}") for i, w in enumerate(workers)))
    finally:
        await asyncio.gather(*(w.close() for w in workers))
    utilisation = (busy1 - busy0) / max(1, total1 - total0)  # whole machine, others included
    worst = 1.0
    for i, path in enumerate(paths):
        with RecordingReader.open(path, keyring) as reader:
            plaintext = b"".join(reader)
        for recorded, of in zip(
            video_packet_counts(plaintext), sent[2 * i : 2 * i + 2], strict=True
        ):
            worst = min(worst, recorded / max(1, of))
        path.unlink()
    per_worker = sum(b - a for a, b in zip(cpu0, cpu1, strict=True)) / wall / count
    # Real time: every recording got (nearly) every frame, and no worker needed a full core
    # (a worker runs one event loop: past a core it falls behind whatever the machine has).
    # The input must be real time too: senders that fell behind make the step meaningless.
    ok = worst >= 0.95 and per_worker < 0.9 and senders_on_time >= 0.95
    detail = (
        f"worst video completeness {worst:.1%}, senders on time {senders_on_time:.0%}, "
        f"machine CPU {utilisation:.0%}, "
        f"{per_worker:.3f} CPU-s/s per worker, senders {senders_cpu:.2f} CPU-s/s"
    )
    return ok, detail


# -- main ------------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> None:
    use_loopback_only()
    load = os.getloadavg()
    print(f"{os.cpu_count()} CPUs, load average {load[0]:.1f} (other work skews the figures)")
    print(f"pre-encoding {LOOP_SECONDS} s of {WIDTH}x{HEIGHT}@{FPS} VP8 and Opus...")
    video_packets = encode_video()
    video = [data for data, _ in video_packets]
    audio = encode_audio()
    kbps = sum(map(len, video)) * 8 / LOOP_SECONDS / 1000
    print(f"  video {kbps:.0f} kbit/s per participant, {len(audio)} Opus packets")
    with tempfile.TemporaryDirectory(prefix="bench-recording-") as tmp:
        directory = Path(tmp)
        key_file = directory / "keys" / "recording-master.key"
        keyring = load_keyring(key_file, create=True)

        print(f"\n1. one recording, two participants, {args.seconds:.0f} s each recorder")
        passthrough, kept = await measure_passthrough(
            args.seconds, video, audio, key_file, keyring, directory / "passthrough.enc"
        )
        reference, ref_kept = await measure_mediarecorder(
            args.seconds, video, audio, directory / "mediarecorder.webm"
        )
        print(
            f"  passthrough worker  : {passthrough:.3f} CPU-s per wall-s, {kept:.0%} of the "
            f"video recorded -> {passthrough / max(kept, 0.01):.3f} CPU-s per media-s"
        )
        print(
            f"  aiortc MediaRecorder: {reference:.3f} CPU-s per wall-s, {ref_kept:.0%} of the "
            f"video recorded -> {reference / max(ref_kept, 0.01):.3f} CPU-s per media-s"
        )
        print(
            f"  ratio: {passthrough / reference:.3f}x per wall-s, "
            f"{(passthrough / max(kept, 0.01)) / (reference / max(ref_kept, 0.01)):.3f}x per "
            "recorded media-s (goal <= 0.2x; MediaRecorder falling behind means it could not "
            "record this input in real time)"
        )

        print("\n2. encryption overhead (same muxer, same frames, 60 s of media)")
        frames = call_frames(60, video, audio)
        encrypted, plain = [], []
        for _ in range(5):
            encrypted.append(mux_cpu(frames, directory, keyring))
            plain.append(mux_cpu(frames, directory, None))
        enc, pln = sorted(encrypted)[2], sorted(plain)[2]  # medians
        print(f"  mux + RecordingWriter: {enc / 60:.4f} CPU-s per media-s")
        print(f"  mux + plain file     : {pln / 60:.4f} CPU-s per media-s")
        extra = (enc - pln) / 60
        print(
            f"  encryption: +{extra:.4f} CPU-s per media-s = {extra / pln * 60:.1%} of the mux, "
            f"{extra / passthrough:.1%} of the whole recording worker (goal <= 2 %)"
        )

        print(f"\n3. simultaneous recordings ({args.capacity_seconds:.0f} s per step)")
        sustained = 0
        for count in (1, 2, 4, 6, 8, 12, 16, 24, 32):
            if count > args.max_recordings:
                break
            ok, detail = await capacity_step(
                count, args.capacity_seconds, video, audio, key_file, keyring, directory
            )
            print(f"  {count:2d} recordings: {'ok  ' if ok else 'FAIL'} {detail}")
            if not ok:
                break
            sustained = count
        cores = os.cpu_count() or 1
        print(
            f"  sustained in real time: {sustained} recordings "
            f"(senders share this {cores}-core machine; CPU alone would allow "
            f"~{cores / passthrough:.0f})"
        )


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == MEDIARECORDER_CHILD:
        asyncio.run(mediarecorder_child(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--capacity-seconds", type=float, default=10.0)
    parser.add_argument("--max-recordings", type=int, default=24)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
