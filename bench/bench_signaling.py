"""Signaling benchmark: relay against a bare aiohttp WebSocket echo server, on loopback.

    python bench/bench_signaling.py [--rooms 1000] [--seconds 5]

Prints, in one run:

* relay throughput: offer/answer/candidate-sized messages relayed between joined, admitted
  peers (auth, validation, room lookup and the per-connection writer on the way) as a ratio of
  the echo server's messages/s with the same clients and messages (goal >= 0.70);
* p50/p99 relay latency with ``--rooms`` rooms connected (2 sockets each) against the echo
  server's round trip with as many sockets (goal: p99 <= 2x);
* memory per idle joined connection against a bare aiohttp WebSocket (goal <= 1.5x);
* the median time from a room token in hand to "admitted" (patient join, waiting room,
  doctor's admit, patient told).

Each server runs in its own process (so the client harness does not share its CPU); clients
live in this process. Everything listens on 127.0.0.1 only.
A bench script, over 400 lines: its servers, clients and the four measures live in one file
so it runs with one command and no project import beyond what it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.servers import free_port

ORIGIN_HOST = "127.0.0.1"


def raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


# -- the servers (child processes) -----------------------------------------------------------


def serve_echo(port: int) -> None:
    raise_fd_limit()

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                await ws.send_str(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/ws", echo)
    web.run_app(app, host=ORIGIN_HOST, port=port, print=None, access_log=None)


def serve_signaling(port: int, data_dir: str, worker_loopback: str = "include") -> None:
    """The app on ``port``; ``worker_loopback`` is its recording peer's candidate setting
    (``"only"`` when the benchmark records: loopback is the only allowed target)."""
    raise_fd_limit()
    from config import Settings, StorageSettings
    from signaling.app import create_app
    from signaling.keys import SERVICES

    settings = Settings(storage=StorageSettings(data_dir=data_dir))
    settings = settings.replace(
        server=replace(
            settings.server, host=ORIGIN_HOST, port=port, public_url=f"http://{ORIGIN_HOST}:{port}"
        ),
        signaling=replace(
            settings.signaling,
            messages_per_second=1_000_000,
            message_burst=1_000_000,
            connections_per_address=100_000,
            send_queue_size=4096,
        ),
        recording=replace(settings.recording, worker_loopback=worker_loopback),
    ).validate()
    app = create_app(settings)

    async def tokens(request: web.Request) -> web.Response:
        """Bench only: ``n`` new consultations and a doctor + patient token for each."""
        services = request.app[SERVICES]
        count = int(request.query["n"])
        doctor = await services.store.get_user_by_username("dr.bench")
        if doctor is None:
            await services.accounts.create_user("dr.bench", "bench password 1234", "doctor", "B")
            doctor = await services.store.get_user_by_username("dr.bench")
        assert doctor is not None
        pairs = []
        for index in range(count):
            issued = await services.consultations.create(
                doctor, f"Patient {index}", services.clock.now(), 60, ""
            )
            room = issued.consultation.id
            pairs.append(
                [
                    services.room_tokens.issue(room, "doctor", f"user:{doctor.id}"),
                    services.room_tokens.issue(
                        room,
                        "patient",
                        f"patient:{room}",
                        generation=issued.consultation.invite_generation,
                    ),
                ]
            )
        return web.json_response(pairs)

    app.router.add_get("/bench/tokens", tokens)
    web.run_app(app, host=ORIGIN_HOST, port=port, print=None, access_log=None)


# -- messages ---------------------------------------------------------------------------------


def sdp_of_size(kind: str, size: int) -> str:
    fingerprint = ":".join(["AB"] * 32)
    lines = ["v=0", "o=- 1 2 IN IP4 127.0.0.1", "s=-", "t=0 0", "a=group:BUNDLE 0 1"]
    for mid, media in enumerate(("audio", "video")):
        lines += [
            f"m={media} 9 UDP/TLS/RTP/SAVPF 96 97 98 99 100 101",
            "c=IN IP4 0.0.0.0",
            "a=ice-ufrag:abcd",
            "a=ice-pwd:abcdefghijklmnopqrstuvwx",
            f"a=fingerprint:sha-256 {fingerprint}",
            f"a=setup:{'actpass' if kind == 'offer' else 'active'}",
            f"a=mid:{mid}",
            "a=rtcp-mux",
        ]
    while sum(len(line) + 2 for line in lines) < size:
        lines.append("a=rtcp-fb:96 goog-remb transport-cc ccm fir nack pli")
    return "\r\n".join(lines) + "\r\n"


CANDIDATE = "candidate:842163049 1 udp 1677729535 203.0.113.7 58112 typ srflx raddr 0.0.0.0"


def message_mix() -> list[str]:
    """What a negotiation sends: one ~5 KB offer or answer for every eight candidates."""
    offer = msgspec.json.encode({"type": "offer", "sdp": sdp_of_size("offer", 5000)}).decode()
    answer = msgspec.json.encode({"type": "answer", "sdp": sdp_of_size("answer", 4500)}).decode()
    candidate = msgspec.json.encode(
        {"type": "candidate", "candidate": CANDIDATE, "sdp_mid": "0", "sdp_mline_index": 0}
    ).decode()
    return [offer, *([candidate] * 8), answer, *([candidate] * 8)]


# -- clients ----------------------------------------------------------------------------------


class Signaling:
    def __init__(self, base: str, session: aiohttp.ClientSession) -> None:
        self.base = base
        self.session = session
        self.origin = base.replace("ws://", "http://")

    async def tokens(self, count: int) -> list[list[str]]:
        async with self.session.get(f"{self.origin}/bench/tokens", params={"n": count}) as r:
            result: list[list[str]] = await r.json()
            return result

    async def connect(self) -> aiohttp.ClientWebSocketResponse:
        return await self.session.ws_connect(f"{self.base}/ws", origin=self.origin)

    async def join(self, token: str) -> aiohttp.ClientWebSocketResponse:
        ws = await self.connect()
        await ws.send_str(msgspec.json.encode({"type": "join", "v": 1, "token": token}).decode())
        return ws

    async def until(self, ws: aiohttp.ClientWebSocketResponse, kind: str) -> None:
        while True:
            msg = await ws.receive(timeout=30)
            if msg.type is not aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"socket closed ({ws.close_code}) waiting for {kind}")
            if msgspec.json.decode(msg.data)["type"] == kind:
                return

    async def room_in_call(
        self, tokens: list[str]
    ) -> tuple[aiohttp.ClientWebSocketResponse, aiohttp.ClientWebSocketResponse, float]:
        """Doctor joins, then the patient; answers both sockets and token-to-admitted seconds."""
        doctor = await self.join(tokens[0])
        await self.until(doctor, "lobby")
        started = time.perf_counter()
        patient = await self.join(tokens[1])
        await self.until(patient, "waiting")
        await self.until(doctor, "lobby")  # the patient appears in the waiting room
        await doctor.send_str('{"type":"admit"}')
        await self.until(patient, "admitted")
        elapsed = time.perf_counter() - started
        await self.until(patient, "peer_joined")
        await self.until(doctor, "peer_joined")
        return doctor, patient, elapsed


async def pump(
    sender: aiohttp.ClientWebSocketResponse,
    receiver: aiohttp.ClientWebSocketResponse,
    messages: list[str],
    deadline: float,
    window: int = 32,
) -> int:
    """Send while fewer than ``window`` are in flight; count what arrives before ``deadline``."""
    in_flight = asyncio.Semaphore(window)
    received = 0
    done = False

    async def send() -> None:
        index = 0
        while not done and time.perf_counter() < deadline:
            await in_flight.acquire()
            await sender.send_str(messages[index % len(messages)])
            index += 1

    async def receive() -> None:
        nonlocal received, done
        while time.perf_counter() < deadline:
            try:
                msg = await receiver.receive(timeout=max(deadline - time.perf_counter(), 0.01))
            except TimeoutError:
                break
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            received += 1
            in_flight.release()
        done = True

    sending = asyncio.ensure_future(send())
    await receive()
    sending.cancel()
    try:
        await sending
    except asyncio.CancelledError:
        pass
    return received


async def drain(ws: aiohttp.ClientWebSocketResponse) -> None:
    while True:
        try:
            await ws.receive(timeout=0.2)
        except TimeoutError:
            return


async def throughput(pairs: list[tuple[Any, Any]], seconds: float) -> float:
    messages = message_mix()
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    counts = await asyncio.gather(*(pump(a, b, messages, deadline) for a, b in pairs))
    elapsed = time.perf_counter() - started
    for a, b in pairs:
        await drain(b)
        await drain(a)
    return sum(counts) / elapsed


async def latencies(
    relay: list[tuple[Any, Any]], echo: list[tuple[Any, Any]], samples: int
) -> tuple[list[float], list[float]]:
    """One message in flight at a time, alternating relay and echo so both see the same
    machine; seconds from send to arrival, spread over every room / socket."""
    candidate = msgspec.json.encode(
        {"type": "candidate", "candidate": CANDIDATE, "sdp_mid": "0", "sdp_mline_index": 0}
    ).decode()
    results: tuple[list[float], list[float]] = ([], [])
    for index in range(samples):
        for pairs, result in ((relay, results[0]), (echo, results[1])):
            sender, receiver = pairs[(index * 7919) % len(pairs)]
            started = time.perf_counter()
            await sender.send_str(candidate)
            msg = await receiver.receive(timeout=10)
            result.append(time.perf_counter() - started)
            assert msg.type is aiohttp.WSMsgType.TEXT
    return results


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(args: argparse.Namespace) -> None:
    raise_fd_limit()
    context = multiprocessing.get_context("spawn")
    echo_port, app_port = free_port(), free_port()
    data = tempfile.TemporaryDirectory(prefix="bench-signaling-")
    data_dir = Path(data.name) / "data"
    data_dir.mkdir(mode=0o700)
    echo_proc = context.Process(target=serve_echo, args=(echo_port,), daemon=True)
    app_proc = context.Process(target=serve_signaling, args=(app_port, str(data_dir)), daemon=True)
    echo_proc.start()
    app_proc.start()
    connector = aiohttp.TCPConnector(limit=0)
    session = aiohttp.ClientSession(connector=connector)
    try:
        await wait_listening(echo_port)
        await wait_listening(app_port)
        await run(args, session, echo_port, app_port, echo_proc.pid, app_proc.pid)
    finally:
        await session.close()
        for proc in (echo_proc, app_proc):
            proc.terminate()
            proc.join(5)
        data.cleanup()


async def wait_listening(port: int) -> None:
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection(ORIGIN_HOST, port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise RuntimeError(f"nothing listens on {port}")


async def run(
    args: argparse.Namespace,
    session: aiohttp.ClientSession,
    echo_port: int,
    app_port: int,
    echo_pid: int | None,
    app_pid: int | None,
) -> None:
    assert echo_pid is not None and app_pid is not None
    sig = Signaling(f"ws://{ORIGIN_HOST}:{app_port}", session)
    echo_url = f"ws://{ORIGIN_HOST}:{echo_port}/ws"
    print(
        f"signaling bench: {args.rooms} rooms, {args.pairs} busy pairs, {args.seconds:.0f} s runs"
    )

    # -- memory: idle sockets, before anything else grows the heaps
    idle = args.idle
    base_echo = rss_kib(echo_pid)
    echo_idle = [await session.ws_connect(echo_url) for _ in range(idle)]
    await asyncio.sleep(0.5)
    echo_per = (rss_kib(echo_pid) - base_echo) / idle
    for ws in echo_idle:
        await ws.close()
    tokens = await sig.tokens(idle // 2)
    warm = await sig.join(tokens[0][0])  # imports, first room, first audit write
    await sig.until(warm, "lobby")
    await warm.close()
    await asyncio.sleep(0.3)
    base_app = rss_kib(app_pid)
    joined = []
    for doctor_token, patient_token in tokens[1:]:
        for token in (doctor_token, patient_token):
            ws = await sig.join(token)
            await sig.until(ws, "welcome")
            joined.append(ws)
    await asyncio.sleep(0.5)
    app_per = (rss_kib(app_pid) - base_app) / len(joined)
    for ws in joined:
        await ws.close()
    print(
        f"memory per idle connection: joined {app_per:.1f} KiB, bare aiohttp {echo_per:.1f} KiB"
        f" -> ratio {app_per / max(echo_per, 0.1):.2f} (goal <= 1.5)"
    )

    # -- rooms in call: the busy pairs first, then the rest up to --rooms
    admitted_times = []
    pairs = []
    remaining = args.rooms
    while remaining > 0:
        batch = await sig.tokens(min(remaining, 200))
        for room_tokens in batch:
            doctor, patient, elapsed = await sig.room_in_call(room_tokens)
            admitted_times.append(elapsed)
            pairs.append((doctor, patient))
        remaining -= len(batch)
    print(
        f"token to admitted: median {statistics.median(admitted_times) * 1000:.1f} ms"
        f" (p99 {pct(admitted_times, 0.99) * 1000:.1f} ms, {len(admitted_times)} rooms)"
    )

    # -- latency, with every room connected
    echo_sockets = [await session.ws_connect(echo_url) for _ in range(2 * args.rooms)]
    echo_pairs = [(ws, ws) for ws in echo_sockets]
    app_lat, echo_lat = await latencies(pairs, echo_pairs, args.samples)
    app_p50, app_p99 = pct(app_lat, 0.5) * 1000, pct(app_lat, 0.99) * 1000
    echo_p50, echo_p99 = pct(echo_lat, 0.5) * 1000, pct(echo_lat, 0.99) * 1000
    print(
        f"latency with {len(pairs)} rooms ({2 * len(pairs)} sockets): relay p50 {app_p50:.2f} ms"
        f" p99 {app_p99:.2f} ms; echo p50 {echo_p50:.2f} ms p99 {echo_p99:.2f} ms"
        f" -> p99 ratio {app_p99 / echo_p99:.2f} (goal <= 2)"
    )

    # -- throughput: a few busy pairs pushing negotiation-sized messages
    # Alternating rounds, best of each: a shared machine's noise hits both alike.
    busy = pairs[: args.pairs]
    relay_rates, echo_rates = [], []
    for _ in range(args.rounds):
        relay_rates.append(await throughput(busy + [(b, a) for a, b in busy], args.seconds))
        echo_rates.append(await throughput(echo_pairs[: 2 * args.pairs], args.seconds))
    relay_rate, echo_rate = max(relay_rates), max(echo_rates)
    print(
        f"throughput (best of {args.rounds}): relay {relay_rate:,.0f} msg/s,"
        f" echo {echo_rate:,.0f} msg/s -> ratio {relay_rate / echo_rate:.2f} (goal >= 0.70);"
        f" medians {statistics.median(relay_rates):,.0f} / {statistics.median(echo_rates):,.0f}"
    )
    for ws in echo_sockets:
        await ws.close()
    for doctor, patient in pairs:
        await doctor.close()
        await patient.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rooms", type=int, default=1000)
    parser.add_argument("--pairs", type=int, default=8, help="busy pairs in the throughput run")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each throughput run")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds of each kind")
    parser.add_argument("--samples", type=int, default=2000, help="latency samples")
    parser.add_argument("--idle", type=int, default=400, help="idle sockets for the memory test")
    os.environ.setdefault("PYTHONHASHSEED", "0")
    asyncio.run(main(parser.parse_args()))
