"""Recording benchmark: ``.venv/bin/python bench/bench_recording.py [--seconds 15]``.

Measures, in one run, on the same synthetic input (two participants, each 640x480@30 VP8 at
~1 Mbit/s plus Opus, pre-encoded once and replayed by aiortc senders in this process so the
senders cost little and the input is identical for every recorder):

1. ``cpu``: CPU-seconds per media-second of one recording (both participants) in the
   passthrough recording worker (``media.recorder_worker``, the production path: aiortc
   receive, SRTP, passthrough, mux, encryption), against
   - the baseline: a receive-and-discard aiortc peer in a process of its own (the same aiortc
     receive, SRTP and jitter buffer; its "decoder" hands the reassembled frame over as is and
     it reads every frame from its tracks and drops it), measured over the same seconds as
     the worker, each fed by its own two senders. Goal: worker <= 1.2x the baseline: recording
     costs little more than receiving.
   - aiortc's ``MediaRecorder`` (decode + re-encode to WebM) in a process of its own receiving
     the same input (skip with ``--no-mediarecorder``, it is slow). Goal: <= 0.2x.
2. ``encryption``: the same muxer fed the same frames in this process, writing through
   ``RecordingWriter`` to a file against writing the WebM to a plain file (CPU of mux + write),
   reported against the mux alone and against the whole recording worker. Goal: <= 2 %.
3. ``capacity``: N simultaneous recordings (one worker process each, two participants each)
   for N = 1, 2, 4, ...; a step passes when every recording holds >= 95 % of the video
   frames sent and no worker needed a full core; the machine's CPU use (everything, the
   senders and any other work included) is shown beside. Stops at the first failure or at
   ``--max-recordings``. Goal: >= 24 on 2 cores.

``--parts cpu,capacity`` runs only those measures; ``--profile`` samples the worker with
py-spy during measure 1 and prints where its time goes (py-spy is not a dependency of the
project: ``.venv/bin/python -m pip install py-spy`` first).

Bounded: about 3-4 minutes with the defaults on 2 cores. CPU is read from /proc (Linux).
A bench script, over 400 lines: its senders, the recorders, the baseline and the three measures
live in one file so it runs with one command.
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
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import av  # noqa: E402
from aiortc import (  # noqa: E402
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack  # noqa: E402

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


@dataclass(frozen=True)
class BenchInput:
    """What every measure is fed: the pre-encoded media, the recording key, a scratch directory."""

    video: Sequence[bytes]
    audio: Sequence[bytes]
    key_file: Path
    keyring: Keyring
    directory: Path


def video_packet_counts(data: bytes) -> list[int]:
    """Non-empty packets of each video stream of a WebM file."""
    with av.open(io.BytesIO(data), mode="r") as container:
        counts = {s.index: 0 for s in container.streams if s.type == "video"}
        for packet in container.demux():
            if packet.stream.index in counts and packet.size:
                counts[packet.stream.index] += 1
    return list(counts.values())


# -- 1. passthrough worker against the baseline and MediaRecorder -------------------------------


@dataclass(frozen=True)
class Measured:
    cpu: float  # CPU-seconds per wall-second
    kept: float  # share of the sent video frames that reached the file (or the tracks)

    @property
    def per_media_second(self) -> float:
        return self.cpu / max(self.kept, 0.01)

    def describe(self, name: str, what: str) -> str:
        return (
            f"  {name:<21}: {self.cpu:.3f} CPU-s per wall-s, {self.kept:.0%} of the video "
            f"{what} -> {self.per_media_second:.3f} CPU-s per media-s"
        )


RECEIVER_CHILD = "--receiver-child"
ReceiverMode = Literal["mediarecorder", "discard"]


def mediarecorder_path(output: Path, n: int) -> Path:
    return output.with_name(f"{output.stem}-{n}{output.suffix}")


class _IdentityDecoder:
    """The baseline's "decoder": hands aiortc's reassembled frame over as is (decoding would
    measure libvpx, not the receive path the recorder shares)."""

    def decode(self, encoded: Any) -> list[Any]:
        return [encoded]


async def receiver_child(mode: ReceiverMode, output: str) -> None:
    """Child mode: a plain aiortc receiver, one connection per offer read on stdin.

    ``discard``: the baseline, reads every frame from its tracks and drops it (counting the
    video ones). ``mediarecorder``: one MediaRecorder (one WebM file) per participant:
    MediaRecorder cannot put two video tracks in one file (the container opens every encoder
    at the first packet, before the second track's size is known, and that track then
    records nothing).
    """
    import aiortc.rtcrtpreceiver
    from aiortc.contrib.media import MediaRecorder

    use_loopback_only()
    if mode == "discard":
        receiver_module: Any = aiortc.rtcrtpreceiver  # where decoder_worker looks it up
        receiver_module.get_decoder = lambda codec: _IdentityDecoder()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    pcs: list[RTCPeerConnection] = []
    recorders: list[MediaRecorder] = []
    video_frames: list[int] = []
    readers: list[asyncio.Task[None]] = []

    async def discard(track: MediaStreamTrack, n: int) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                if track.kind == "video":
                    video_frames[n] += 1

    while line := await reader.readline():
        request = json.loads(line)
        if request["type"] == "stop":
            await asyncio.gather(*(r.stop() for r in recorders))
            await asyncio.gather(*(pc.close() for pc in pcs))
            print(json.dumps({"type": "stopped", "video_frames": video_frames}), flush=True)
            return
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        n = len(pcs)
        pcs.append(pc)
        video_frames.append(0)
        if mode == "mediarecorder":
            recorder = MediaRecorder(str(mediarecorder_path(Path(output), n)), format="webm")
            recorders.append(recorder)
            pc.on("track", recorder.addTrack)
        else:
            pc.on(
                "track", lambda track, n=n: readers.append(asyncio.create_task(discard(track, n)))
            )
        await pc.setRemoteDescription(RTCSessionDescription(sdp=request["sdp"], type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        if mode == "mediarecorder":
            await recorders[-1].start()
        print(json.dumps({"type": "answer", "sdp": pc.localDescription.sdp}), flush=True)


class ReceiverChild:
    """Drives a :func:`receiver_child` process over its stdin and stdout (JSON lines)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process

    @classmethod
    async def spawn(cls, mode: ReceiverMode, output: Path) -> ReceiverChild:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            RECEIVER_CHILD,
            mode,
            str(output),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(process)

    @property
    def pid(self) -> int:
        return self._process.pid

    async def call(self, request: dict[str, Any]) -> dict[str, Any]:
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None and stdout is not None
        stdin.write(json.dumps(request).encode() + b"\n")
        await stdin.drain()
        reply: dict[str, Any] = json.loads(await asyncio.wait_for(stdout.readline(), 60))
        return reply

    async def offer(self, sdp: str) -> str:
        return str((await self.call({"type": "offer", "sdp": sdp}))["sdp"])

    async def stop(self) -> list[int]:
        """Video frames each connection received (the discard mode counts them)."""
        return list((await self.call({"type": "stop"}))["video_frames"])

    async def close(self) -> None:
        if self._process.returncode is None:
            self._process.kill()
        await self._process.wait()


async def measure_worker_and_baseline(
    seconds: float,
    video: Sequence[bytes],
    audio: Sequence[bytes],
    key_file: Path,
    keyring: Keyring,
    out: Path,
    profile: Path | None,
) -> tuple[Measured, Measured]:
    """(worker, baseline), measured over the same seconds, each fed by its own two senders
    (so a load change on the machine hits both alike)."""
    worker = await RecorderProcess.spawn(loopback="only", log_level="WARNING")
    baseline = await ReceiverChild.spawn("discard", out.with_suffix(".unused"))
    try:
        await worker.start_recording("bench", out, key_file)
        async with senders(4, video, audio) as peers:
            for role, peer in zip(ROLES, peers[:2], strict=True):
                await peer.answer(await worker.offer("bench", role, await peer.offer()))
            for peer in peers[2:]:
                await peer.answer(await baseline.offer(await peer.offer()))
            await asyncio.sleep(SETTLE)
            pids = (worker.pid, baseline.pid)
            cpu0, t0 = [cpu_seconds(p) for p in pids], time.monotonic()
            await asyncio.sleep(seconds)
            cpu1, t1 = [cpu_seconds(p) for p in pids], time.monotonic()
            sent = [p.video.sent for p in peers]
            if profile is not None:  # after the measure: sampling costs the worker CPU
                await profile_worker(worker.pid, seconds, profile)
                sent = [p.video.sent for p in peers]
            stopped = await worker.stop("bench")
            received = await baseline.stop()
    finally:
        await asyncio.gather(worker.close(), baseline.close())
    with RecordingReader.open(out, keyring) as reader:
        counts = video_packet_counts(b"".join(reader))
    print(
        f"  passthrough file: {stopped.bytes / 1e6:.1f} MB, {stopped.duration:.1f} s, "
        f"video frames per participant {counts} of {sent[:2]} sent; baseline received "
        f"{received} of {sent[2:]}"
    )
    wall = t1 - t0
    return (
        Measured((cpu1[0] - cpu0[0]) / wall, min(1.0, sum(counts) / sum(sent[:2]))),
        Measured((cpu1[1] - cpu0[1]) / wall, min(1.0, sum(received) / sum(sent[2:]))),
    )


async def measure_mediarecorder(
    seconds: float, video: Sequence[bytes], audio: Sequence[bytes], out: Path
) -> Measured:
    child = await ReceiverChild.spawn("mediarecorder", out)
    try:
        async with senders(2, video, audio) as peers:
            for peer in peers:
                await peer.answer(await child.offer(await peer.offer()))
            await asyncio.sleep(SETTLE)
            cpu0, t0 = cpu_seconds(child.pid), time.monotonic()
            await asyncio.sleep(seconds)
            cpu1, t1 = cpu_seconds(child.pid), time.monotonic()
            sent = [p.video.sent for p in peers]
            await child.stop()
    finally:
        await child.close()
    files = [mediarecorder_path(out, n).read_bytes() for n in range(len(ROLES))]
    counts = [count for data in files for count in video_packet_counts(data)]
    print(
        f"  MediaRecorder files: {sum(map(len, files)) / 1e6:.1f} MB, video frames per "
        f"participant {counts} of {sent} sent"
    )
    return Measured((cpu1 - cpu0) / (t1 - t0), min(1.0, sum(counts) / sum(sent)))


# -- profile ---------------------------------------------------------------------------------


PROFILE_TOP = 25
PROFILE_RATE = 200  # samples per second


def find_py_spy() -> str | None:
    """py-spy beside this interpreter (the venv) or on PATH."""
    return shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")


async def profile_worker(pid: int, seconds: float, raw: Path) -> None:
    """Sample the worker with py-spy for ``seconds`` (the thread holding the GIL: Python's
    own CPU; C code that releases the GIL, such as SRTP, goes unseen)."""
    py_spy = find_py_spy()
    assert py_spy is not None  # checked before the run
    dump = await asyncio.create_subprocess_exec(
        py_spy, "dump", "--pid", str(pid), stdout=asyncio.subprocess.PIPE
    )
    snapshot, _ = await dump.communicate()
    print("  py-spy dump of the worker (one instant):")
    print("\n".join("    " + line for line in snapshot.decode(errors="replace").splitlines()))
    record = await asyncio.create_subprocess_exec(
        py_spy,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, round(seconds))),
        "--rate",
        str(PROFILE_RATE),
        "--threads",
        "--gil",  # py-spy's idle detection counts lock waits as busy here; GIL holders only
        "--format",
        "raw",
        "--output",
        str(raw),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await record.wait()


def print_profile(raw: Path, seconds: float) -> None:
    """Summarise py-spy's collapsed stacks: busy samples per thread, self and total per
    function (idle samples are not recorded), as shares of the busy samples and as cores
    (samples / (rate x seconds), a rough CPU-s per wall-s)."""
    threads: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        threads[frames[0].partition(": ")[2] or frames[0]] += count
        own[frames[-1]] += count
        for frame in set(frames[1:]):
            total[frame] += count
    samples = sum(threads.values()) or 1
    per_core = PROFILE_RATE * max(1, round(seconds))
    print(
        f"  py-spy record: {samples} busy samples ~ {samples / per_core:.3f} cores; "
        "share, cores, by thread:"
    )
    for name, count in threads.most_common(8):
        print(f"    {count / samples:6.1%} {count / per_core:.3f}  {name}")
    for title, counter in (("self", own), ("total", total)):
        print(f"  by function ({title}):")
        for frame, count in counter.most_common(PROFILE_TOP):
            print(f"    {count / samples:6.1%} {count / per_core:.3f}  {frame}")
    print(f"  collapsed stacks kept in {raw} (flamegraph.pl or speedscope read them)")


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


async def capacity_step(count: int, seconds: float, bench: BenchInput) -> tuple[bool, str, float]:
    workers = await asyncio.gather(
        *(RecorderProcess.spawn(loopback="only", log_level="WARNING") for _ in range(count))
    )
    paths = [bench.directory / f"cap-{count}-{i}.enc" for i in range(count)]
    try:
        for i, worker in enumerate(workers):
            await worker.start_recording(f"r{i}", paths[i], bench.key_file)
        async with senders(2 * count, bench.video, bench.audio) as peers:
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
        with RecordingReader.open(path, bench.keyring) as reader:
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
    return ok, detail, per_worker


# -- main ------------------------------------------------------------------------------------------

PARTS = ("cpu", "encryption", "capacity")
BASELINE_GOAL = 1.2  # the worker's CPU against the receive-and-discard baseline's
MEDIARECORDER_GOAL = 0.2


async def run_cpu(args: argparse.Namespace, bench: BenchInput) -> Measured:
    print(f"\n1. one recording, two participants, {args.seconds:.0f} s each recorder")
    worker, baseline = await measure_worker_and_baseline(
        args.seconds,
        bench.video,
        bench.audio,
        bench.key_file,
        bench.keyring,
        bench.directory / "passthrough.enc",
        args.profile_output if args.profile else None,
    )
    print(worker.describe("passthrough worker", "recorded"))
    print(baseline.describe("receive-and-discard", "received"))
    ratio = worker.per_media_second / baseline.per_media_second
    print(
        f"  worker / baseline: {ratio:.2f}x per media-s "
        f"({worker.cpu / baseline.cpu:.2f}x per wall-s), goal <= {BASELINE_GOAL}x: "
        f"{'met' if ratio <= BASELINE_GOAL else 'NOT met'}"
    )
    if not args.no_mediarecorder:
        reference = await measure_mediarecorder(
            args.seconds, bench.video, bench.audio, bench.directory / "mediarecorder.webm"
        )
        print(reference.describe("aiortc MediaRecorder", "recorded"))
        print(
            f"  worker / MediaRecorder: {worker.cpu / reference.cpu:.3f}x per wall-s, "
            f"{worker.per_media_second / reference.per_media_second:.3f}x per recorded "
            f"media-s (goal <= {MEDIARECORDER_GOAL}x; MediaRecorder falling behind means it "
            "could not record this input in real time)"
        )
    if args.profile:
        print_profile(args.profile_output, args.seconds)
    return worker


def run_encryption(bench: BenchInput, worker: Measured | None) -> None:
    print("\n2. encryption overhead (same muxer, same frames, 60 s of media)")
    frames = call_frames(60, bench.video, bench.audio)
    encrypted, plain = [], []
    for _ in range(5):
        encrypted.append(mux_cpu(frames, bench.directory, bench.keyring))
        plain.append(mux_cpu(frames, bench.directory, None))
    enc, pln = sorted(encrypted)[2], sorted(plain)[2]  # medians
    print(f"  mux + RecordingWriter: {enc / 60:.4f} CPU-s per media-s")
    print(f"  mux + plain file     : {pln / 60:.4f} CPU-s per media-s")
    extra = (enc - pln) / 60
    of_worker = (
        f"{extra / worker.cpu:.1%} of the whole recording worker"
        if worker is not None
        else "(run the cpu part too for the share of the whole worker)"
    )
    print(
        f"  encryption: +{extra:.4f} CPU-s per media-s = {extra / pln * 60:.1%} of the mux, "
        f"{of_worker} (goal <= 2 %)"
    )


async def run_capacity(args: argparse.Namespace, bench: BenchInput) -> None:
    print(f"\n3. simultaneous recordings ({args.capacity_seconds:.0f} s per step)")
    sustained = 0
    per_worker = 0.0
    for count in (1, 2, 4, 6, 8, 12, 16, 24, 32):
        if count > args.max_recordings:
            break
        ok, detail, per_worker = await capacity_step(count, args.capacity_seconds, bench)
        print(f"  {count:2d} recordings: {'ok  ' if ok else 'FAIL'} {detail}")
        if not ok:
            break
        sustained = count
    cores = os.cpu_count() or 1
    print(
        f"  sustained in real time: {sustained} recordings, goal >= 24 on 2 cores "
        f"(senders share this {cores}-core machine; at the last step's CPU per worker, "
        f"CPU alone would allow ~{cores / max(per_worker, 1e-3):.0f})"
    )


async def run(args: argparse.Namespace) -> None:
    use_loopback_only()
    load = os.getloadavg()
    print(
        f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
        "(other work skews the figures)"
    )
    print(f"pre-encoding {LOOP_SECONDS} s of {WIDTH}x{HEIGHT}@{FPS} VP8 and Opus...")
    video_packets = encode_video()
    video = [data for data, _ in video_packets]
    audio = encode_audio()
    kbps = sum(map(len, video)) * 8 / LOOP_SECONDS / 1000
    print(f"  video {kbps:.0f} kbit/s per participant, {len(audio)} Opus packets")
    with tempfile.TemporaryDirectory(prefix="bench-recording-") as tmp:
        directory = Path(tmp)
        key_file = directory / "keys" / "recording-master.key"
        bench = BenchInput(video, audio, key_file, load_keyring(key_file, create=True), Path(tmp))
        worker = None
        if "cpu" in args.parts:
            worker = await run_cpu(args, bench)
        if "encryption" in args.parts:
            run_encryption(bench, worker)
        if "capacity" in args.parts:
            await run_capacity(args, bench)
    load = os.getloadavg()
    print(f"\nload average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def parse_parts(text: str) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        raise argparse.ArgumentTypeError(
            f"unknown part(s) {', '.join(unknown) or '(none)'}; choose among {', '.join(PARTS)}"
        )
    return parts


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == RECEIVER_CHILD:
        mode = cast(ReceiverMode, sys.argv[2])
        asyncio.run(receiver_child(mode, sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--capacity-seconds", type=float, default=10.0)
    parser.add_argument("--max-recordings", type=int, default=24)
    parser.add_argument(
        "--parts",
        type=parse_parts,
        default=PARTS,
        help=f"comma-separated measures to run, among {','.join(PARTS)} (default: all)",
    )
    parser.add_argument(
        "--no-mediarecorder",
        action="store_true",
        help="skip the (slow) aiortc MediaRecorder comparison in the cpu part",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the recording worker with py-spy after the cpu measure (needs py-spy)",
    )
    parser.add_argument(
        "--profile-output",
        type=Path,
        default=Path(tempfile.gettempdir()) / "bench-recording-worker.pyspy.txt",
        help="where --profile keeps py-spy's collapsed stacks",
    )
    args = parser.parse_args()
    if args.profile and "cpu" not in args.parts:
        parser.error("--profile samples the worker during the cpu part: add cpu to --parts")
    if args.profile and find_py_spy() is None:
        parser.error(
            "--profile needs py-spy, which is not a dependency of the project; install it "
            "for the bench only: .venv/bin/python -m pip install py-spy"
        )
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
