"""Signaling while recordings run: ``.venv/bin/python bench/bench_recording_signaling.py``.

Measures, in one run, the relay latency of signaling messages (an offer, answer or candidate
sent by one participant until the other receives it, one in flight at a time, spread over
``--rooms`` rooms in a call) in alternating phases: none recording, then ``--recordings``
recordings running, ``--rounds`` times (alternating, so a drift of the shared machine hits
both sides alike). Prints p50/p99 of each phase and of all, and the p99 ratio (goal <= 1.2x).

The recordings go through the whole production path: in a process of their own (so their
CPU is not the measuring client's), each recording room's doctor and patient join, the doctor
asks, both consent over the WebSocket, each sends a send-only aiortc offer (640x480@30 VP8 at
~1 Mbit/s plus Opus, pre-encoded once by bench_recording.py and replayed, so the senders cost
little) in ``recording_offer`` and media flows to the server's recording workers. At the end
each recording file is decrypted and its video frames counted against those sent, so the
loaded phase is known to have recorded in real time.

How many simultaneous recordings the machine sustains is section 3 of bench_recording.py.

``--nice-workers N`` renices the recording workers (a what-if, not a setting): measured
2026-11-25 on the shared 2-core machine, five runs each in alternation, the p99 ratio was
1.14/1.20/0.91/0.97/1.63x at normal priority and 1.44/0.96/0.65/1.06/1.60x at nice 10 -
the same within the machine's noise; on a quiet machine both gave ~1.6x p99 and ~1.5x p50.
The 4 workers use ~0.3 CPU-s/s of 2 cores, so scheduling priority is not what slows
signaling there (likely the kernel's packet work for the loopback media, which nice does
not touch, an untested guess); the service therefore starts its workers at normal priority.
Everything listens on and talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

import aiohttp  # noqa: E402
import msgspec  # noqa: E402
from bench_recording import (  # noqa: E402
    Sender,
    cpu_seconds,
    encode_audio,
    encode_video,
    machine_busy,
    video_packet_counts,
)
from bench_signaling import (  # noqa: E402
    CANDIDATE,
    ORIGIN_HOST,
    Signaling,
    pct,
    raise_fd_limit,
    sdp_of_size,
    serve_signaling,
    wait_listening,
)

from media.encrypted_recording import RecordingReader  # noqa: E402
from media.keyring import load_keyring  # noqa: E402
from signaling.recording.recordings import recording_context  # noqa: E402
from tests.loopback import use_loopback_only  # noqa: E402
from tests.servers import free_port  # noqa: E402

Socket = aiohttp.ClientWebSocketResponse


async def expect(ws: Socket, kind: str, within: float = 60) -> dict[str, Any]:
    """The next message of type ``kind`` (others skipped); an error message fails the run."""
    while True:
        msg = await ws.receive(timeout=within)
        if msg.type is not aiohttp.WSMsgType.TEXT:
            raise RuntimeError(f"socket closed ({ws.close_code}) waiting for {kind}")
        message: dict[str, Any] = msgspec.json.decode(msg.data)
        if message["type"] == "error":
            raise RuntimeError(f"waiting for {kind}: {message}")
        if message["type"] == kind:
            return message


async def send(ws: Socket, message: dict[str, Any]) -> None:
    await ws.send_str(msgspec.json.encode(message).decode())


# -- the recordings (a child process) ----------------------------------------------------------


async def start_recording(
    room: tuple[Socket, Socket], video: list[bytes], audio: list[bytes]
) -> list[Sender]:
    """The doctor asks, both consent, each sends its send-only offer: two connected senders."""
    doctor, patient = room
    await send(doctor, {"type": "recording_request"})
    for ws in (doctor, patient):
        await expect(ws, "recording_state")  # asked
        await send(ws, {"type": "recording_consent", "granted": True})
    for ws in (doctor, patient):
        while (await expect(ws, "recording_state"))["state"] != "recording":
            pass
    senders = []
    for ws in (doctor, patient):
        sender = Sender(video, audio)
        await send(ws, {"type": "recording_offer", "sdp": await sender.offer()})
        await sender.answer((await expect(ws, "recording_answer"))["sdp"])
        senders.append(sender)
    return senders


async def record_rooms(port: int, count: int, commands: Any, replies: Any) -> None:
    """Serve the parent's commands: "start" (all recordings, answered "ready" once every
    sender is connected), "stop" (answered with the frames sent), "quit"."""
    use_loopback_only()
    video = [data for data, _ in encode_video()]
    audio = encode_audio()
    async with aiohttp.ClientSession() as session:
        sig = Signaling(f"ws://{ORIGIN_HOST}:{port}", session)
        rooms = [(d, p) for d, p, _ in [await sig.room_in_call(t) for t in await sig.tokens(count)]]
        replies.put("joined")
        while (command := await asyncio.to_thread(commands.get)) == "start":
            senders = [s for room in rooms for s in await start_recording(room, video, audio)]
            deadline = time.monotonic() + 30
            while any(s.pc.connectionState != "connected" for s in senders):
                if time.monotonic() > deadline:
                    raise RuntimeError("the recording peers did not connect")
                await asyncio.sleep(0.05)
            replies.put("ready")
            if await asyncio.to_thread(commands.get) != "stop":
                raise RuntimeError("expected stop")
            on_time = min(min(s.video.on_time for s in senders), 1.0)
            for doctor, patient in rooms:
                await send(doctor, {"type": "recording_withdraw"})
                for ws in (doctor, patient):
                    await expect(ws, "recording_state")  # idle
            sent = [s.video.sent for s in senders]  # after the stop: nothing more is recorded
            await asyncio.gather(*(s.pc.close() for s in senders))
            replies.put({"sent": sent, "on_time": on_time})
        if command != "quit":
            raise RuntimeError(f"unknown command {command!r}")
        for doctor, patient in rooms:
            await doctor.close()
            await patient.close()


def recordings_child(port: int, count: int, commands: Any, replies: Any) -> None:
    try:
        asyncio.run(record_rooms(port, count, commands, replies))
    except BaseException as exc:  # reported to the parent, which waits for a reply
        replies.put({"error": repr(exc)})
        raise


# -- measuring -----------------------------------------------------------------------------------


def negotiation_messages() -> dict[str, list[str]]:
    """What each side sends in a negotiation: a ~5 KB description, then eight candidates
    (a new description also resets the server's per-description candidate limit)."""
    candidate = msgspec.json.encode(
        {"type": "candidate", "candidate": CANDIDATE, "sdp_mid": "0", "sdp_mline_index": 0}
    ).decode()
    offer = msgspec.json.encode({"type": "offer", "sdp": sdp_of_size("offer", 5000)}).decode()
    answer = msgspec.json.encode({"type": "answer", "sdp": sdp_of_size("answer", 4500)}).decode()
    return {"doctor": [offer, *[candidate] * 8], "patient": [answer, *[candidate] * 8]}


async def relay_latencies(pairs: list[tuple[Socket, Socket]], seconds: float) -> list[float]:
    """Seconds from send to arrival of a relayed offer, answer or candidate, one in flight at
    a time, both directions, round robin over the rooms; a short pause between samples keeps
    the measuring client light."""
    messages = negotiation_messages()
    samples: list[float] = []
    deadline = time.monotonic() + seconds
    index = 0
    while time.monotonic() < deadline:
        doctor, patient = pairs[index % len(pairs)]
        turn = index // len(pairs)  # how many times this room was used
        if turn % 2 == 0:
            sender, receiver, sent = doctor, patient, messages["doctor"]
        else:
            sender, receiver, sent = patient, doctor, messages["patient"]
        started = time.perf_counter()
        await sender.send_str(sent[(turn // 2) % len(sent)])
        msg = await receiver.receive(timeout=10)
        samples.append(time.perf_counter() - started)
        if msg.type is not aiohttp.WSMsgType.TEXT:
            raise RuntimeError("a measuring socket closed")
        index += 1
        await asyncio.sleep(0.002)
    return samples


def children_of(pid: int) -> list[int]:
    """The direct children of a process (the server's recording workers)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


def deprioritise(pid: int, nice: int, batch: bool) -> None:
    """Renice and/or put under SCHED_BATCH every thread of ``pid``: on Linux both are per
    thread, and a worker's decoder and muxer threads are threads of their own."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        tid = int(task.name)
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            if nice:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
            if batch:
                os.sched_setscheduler(tid, os.SCHED_BATCH, os.sched_param(0))


def cpu_or_zero(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except OSError:  # gone meanwhile
        return 0.0


class CpuMeter:
    """CPU-s per second over one phase: signaling process, its recording workers, the media
    senders (standing in for the browsers, which would be on other machines), the machine."""

    def __init__(self, server: int, senders: int) -> None:
        self.server, self.senders = server, senders
        self.workers = children_of(server)
        self.start = self._read()
        self.workers_start = {pid: cpu_or_zero(pid) for pid in self.workers}

    def _read(self) -> tuple[float, ...]:
        busy, total = machine_busy()
        return (
            time.monotonic(),
            cpu_or_zero(self.server),
            sum(cpu_or_zero(pid) for pid in self.workers),
            cpu_or_zero(self.senders),
            busy,
            total,
        )

    def summary(self) -> str:
        end = self._read()
        wall = max(end[0] - self.start[0], 1e-6)
        server, senders = ((end[i] - self.start[i]) / wall for i in (1, 3))
        # Per worker, and only what it spent here: a worker that exited during the phase
        # (the last recordings closing) counts for nothing rather than a negative share.
        workers = (
            sum(max(0.0, cpu_or_zero(pid) - used) for pid, used in self.workers_start.items())
            / wall
        )
        machine = (end[4] - self.start[4]) / max(1, end[5] - self.start[5])
        text = f"signaling {server:.2f}"
        if self.workers:
            text += f", {len(self.workers)} workers {workers:.2f}, senders {senders:.2f}"
        return f"CPU-s/s: {text}; machine {machine:.0%} busy"


def describe(name: str, samples: list[float], meter: CpuMeter) -> str:
    return (
        f"  {name:<16} p50 {pct(samples, 0.5) * 1000:5.2f} ms  p99 {pct(samples, 0.99) * 1000:5.2f}"
        f" ms  ({len(samples)} samples; {meter.summary()})"
    )


def recorded_frames(data_dir: Path) -> list[int]:
    """Video frames in each recording file (decrypted in memory)."""
    keyring = load_keyring(data_dir / "keys" / "recording-master.key", create=False)
    counts: list[int] = []
    for path in sorted((data_dir / "recordings").glob("*.tcrec")):
        context = recording_context(path.stem)
        with RecordingReader.open(path, keyring, context=context) as reader:
            counts.extend(video_packet_counts(b"".join(reader)))
    return counts


async def reply(replies: Any, within: float) -> Any:
    """The recording child's next reply; its failure fails the run."""
    answer = await asyncio.to_thread(replies.get, True, within)
    if isinstance(answer, dict) and "error" in answer:
        raise RuntimeError(f"recordings failed: {answer['error']}")
    return answer


async def run(args: argparse.Namespace) -> None:
    raise_fd_limit()
    load = os.getloadavg()
    print(
        f"{os.cpu_count()} CPUs, load average {load[0]:.1f} before the run (a shared machine:"
        " quiet and loaded phases alternate so that other work hits both alike)"
    )
    context = multiprocessing.get_context("spawn")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-recording-signaling-") as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir(mode=0o700)
        server = context.Process(
            target=serve_signaling, args=(port, str(data_dir), "only"), daemon=True
        )
        server.start()
        assert server.pid is not None
        commands, replies = context.Queue(), context.Queue()
        child = context.Process(
            target=recordings_child, args=(port, args.recordings, commands, replies), daemon=True
        )
        try:
            await wait_listening(port)
            child.start()
            assert child.pid is not None
            sender_pid = child.pid
            await reply(replies, 120)  # joined (and media pre-encoded)
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
                sig = Signaling(f"ws://{ORIGIN_HOST}:{port}", session)
                pairs = [
                    (doctor, patient)
                    for doctor, patient, _ in [
                        await sig.room_in_call(tokens) for tokens in await sig.tokens(args.rooms)
                    ]
                ]
                print(
                    f"relay latency over {len(pairs)} rooms in a call; {args.rounds} rounds of"
                    f" {args.seconds:.0f} s without, then with, {args.recordings} recordings of"
                    " two 640x480@30 participants"
                )
                await relay_latencies(pairs, 1.0)  # warm-up
                quiet: list[float] = []
                loaded: list[float] = []
                sent: list[int] = []
                on_time = 1.0
                for round_number in range(1, args.rounds + 1):
                    meter = CpuMeter(server.pid, sender_pid)
                    samples = await relay_latencies(pairs, args.seconds)
                    print(describe(f"{round_number}. none", samples, meter))
                    quiet += samples
                    commands.put("start")
                    await reply(replies, 120)  # ready
                    await asyncio.sleep(1.0)  # the workers settle (first keyframes, muxers open)
                    if args.nice_workers or args.batch_workers:
                        # What-if only: the service runs its workers at the normal priority.
                        for pid in children_of(server.pid):
                            deprioritise(pid, args.nice_workers, args.batch_workers)
                    meter = CpuMeter(server.pid, sender_pid)
                    samples = await relay_latencies(pairs, args.seconds)
                    print(describe(f"{round_number}. {args.recordings} recording", samples, meter))
                    loaded += samples
                    commands.put("stop")
                    outcome = await reply(replies, 60)
                    sent += outcome["sent"]
                    on_time = min(on_time, outcome["on_time"])
                commands.put("quit")
                await asyncio.to_thread(child.join, 30)
                for doctor, patient in pairs:
                    await doctor.close()
                    await patient.close()

            ratio = pct(loaded, 0.99) / pct(quiet, 0.99)
            print(
                f"  all rounds: p99 with {args.recordings} recordings / without: "
                f"{pct(loaded, 0.99) * 1000:.2f} / {pct(quiet, 0.99) * 1000:.2f} ms"
                f" -> {ratio:.2f}x (goal <= 1.2x); p50 {pct(loaded, 0.5) * 1000:.2f} / "
                f"{pct(quiet, 0.5) * 1000:.2f} ms -> {pct(loaded, 0.5) / pct(quiet, 0.5):.2f}x"
            )
            recorded = recorded_frames(data_dir)
            print(
                f"  recordings: {len(recorded) // 2} files, {sum(recorded)} video frames recorded"
                f" of {sum(sent)} sent ({sum(recorded) / max(1, sum(sent)):.1%}); senders on time "
                f"{on_time:.0%}"
            )
        finally:
            if child.is_alive():
                child.terminate()
                child.join(5)
            server.terminate()
            server.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rooms", type=int, default=20, help="rooms whose relay is measured")
    parser.add_argument("--recordings", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each phase")
    parser.add_argument("--rounds", type=int, default=3, help="quiet + loaded phase pairs")
    parser.add_argument(
        "--nice-workers",
        type=int,
        default=0,
        help="what-if: renice the recording workers by this much during the loaded phases",
    )
    parser.add_argument(
        "--batch-workers",
        action="store_true",
        help="what-if: every thread of the recording workers under SCHED_BATCH (no wake-up "
        "preemption, the same CPU share) during the loaded phases",
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
