"""Cluster benchmark: two signaling instances sharing one Redis, against one instance.

    python bench/bench_cluster.py [--rooms 200] [--samples 1500]

Prints, in one run (servers in their own processes, clients here, loopback only):

* relay latency, one message in flight, samples interleaved: doctor on A and patient on B
  (cross-instance, through Redis pub/sub) against both on A (same instance, same Redis
  deployment) — goal: cross p99 <= 1.5x single p99; for reference, the default single
  process (SQLite store, in-process bus), and one bare redis-py PUBLISH-to-subscriber hop
  (the floor of what crossing instances adds);
* rooms and sockets held: ``--rooms`` rooms in call (2 sockets each) held by one instance,
  then the same number of rooms spread over two instances; for each layout the relay p99
  while ``--busy`` pairs keep relaying negotiation-sized messages (the fixed load), and the
  memory each instance holds. A shared machine: two instances on two cores share the same
  CPUs, so this shows the cost of spreading (the Redis hop), not the capacity gained;
* join latency: token in hand to "admitted", patient on B and doctor on A, against both on A.

Reuses bench_signaling's servers, clients and measurements.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_signaling import (
    ORIGIN_HOST,
    Signaling,
    latencies,
    message_mix,
    pct,
    pump,
    raise_fd_limit,
    rss_kib,
    serve_signaling,
    wait_listening,
)

from tests.servers import free_port

Pair = tuple[aiohttp.ClientWebSocketResponse, aiohttp.ClientWebSocketResponse]


def serve_instance(port: int, data_dir: str, redis_url: str) -> None:
    """bench_signaling's server with the Redis store (so the Redis bus and shared rooms)."""
    import config

    # serve_signaling builds its settings from config.StorageSettings(data_dir=...): in this
    # child process only, that constructor now also says "Redis".
    config.StorageSettings = functools.partial(  # type: ignore[assignment,misc]
        config.StorageSettings, backend="redis", redis_url=redis_url
    )
    serve_signaling(port, data_dir)


class Across(Signaling):
    """Joins a room's doctor on one instance and its patient on another."""

    def __init__(self, doctor_side: Signaling, patient_side: Signaling) -> None:
        super().__init__(doctor_side.base, doctor_side.session)
        self.patient_side = patient_side
        self.patient_tokens: set[str] = set()

    async def join(self, token: str) -> aiohttp.ClientWebSocketResponse:
        if token in self.patient_tokens:
            return await self.patient_side.join(token)
        return await super().join(token)


async def rooms_in_call(
    sig: Signaling, count: int, tokens_from: Signaling
) -> tuple[list[Pair], list[float]]:
    """``count`` rooms admitted through ``sig``; the pairs and each token-to-admitted time."""
    pairs: list[Pair] = []
    times: list[float] = []
    for room_tokens in await tokens_from.tokens(count):
        if isinstance(sig, Across):
            sig.patient_tokens.add(room_tokens[1])
        doctor, patient, elapsed = await sig.room_in_call(room_tokens)
        pairs.append((doctor, patient))
        times.append(elapsed)
    return pairs, times


async def close_all(pairs: list[Pair]) -> None:
    for doctor, patient in pairs:
        await doctor.close()
        await patient.close()


async def p99_under_load(pairs: list[Pair], busy: int, samples: int, seconds: float) -> float:
    """Relay p99 (ms) of single messages while ``busy`` pairs pump negotiation traffic."""
    messages = message_mix()
    loaded, quiet = pairs[:busy], pairs[busy:]
    deadline = time.perf_counter() + seconds
    pumping = [asyncio.ensure_future(pump(a, b, messages, deadline, window=4)) for a, b in loaded]
    measured, _ = await latencies(quiet, quiet, samples // 2)
    await asyncio.gather(*pumping)
    for a, b in loaded:
        for ws in (a, b):
            while True:
                try:
                    await ws.receive(timeout=0.2)
                except TimeoutError:
                    break
    return pct(measured, 0.99) * 1000


async def pubsub_hop(redis_url: str, samples: int) -> list[float]:
    """The floor of a cross-instance relay: one PUBLISH reaching a redis-py subscriber."""
    import redis.asyncio as aioredis

    publisher, subscriber = aioredis.from_url(redis_url), aioredis.from_url(redis_url)
    channel = subscriber.pubsub()
    await channel.subscribe("bench:hop")
    await channel.get_message(timeout=1)  # the subscription confirmation
    seconds = []
    for _ in range(samples):
        started = time.perf_counter()
        await publisher.publish("bench:hop", b"x" * 200)
        while await channel.get_message(ignore_subscribe_messages=True, timeout=5) is None:
            pass
        seconds.append(time.perf_counter() - started)
    await channel.aclose()  # type: ignore[no-untyped-call]
    await publisher.aclose()
    await subscriber.aclose()
    return seconds


def start_redis(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", ORIGIN_HOST, "--dir", str(directory),
         "--save", "", "--appendonly", "yes", "--appendfsync", "everysec"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return proc, f"redis://{ORIGIN_HOST}:{port}/0"


async def main(args: argparse.Namespace) -> None:
    raise_fd_limit()
    context = multiprocessing.get_context("spawn")
    work = tempfile.TemporaryDirectory(prefix="bench-cluster-")
    root = Path(work.name)
    for sub in ("data", "local", "redis"):
        (root / sub).mkdir(mode=0o700)
    redis_proc, redis_url = start_redis(root / "redis")
    await wait_listening(int(redis_url.rsplit(":", 1)[1].split("/")[0]))
    ports = [free_port() for _ in range(3)]
    procs: list[Any] = []
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    try:
        # A first: it writes the shared secret key that B then reads.
        for port, target, extra in (
            (ports[0], serve_instance, (str(root / "data"), redis_url)),
            (ports[1], serve_instance, (str(root / "data"), redis_url)),
            (ports[2], serve_signaling, (str(root / "local"),)),
        ):
            proc = context.Process(target=target, args=(port, *extra), daemon=True)
            proc.start()
            procs.append(proc)
            await wait_listening(port)
        await run(args, session, ports, [p.pid for p in procs], redis_url)
    finally:
        await session.close()
        for proc in procs:
            proc.terminate()
            proc.join(5)
        redis_proc.terminate()
        redis_proc.wait(10)
        work.cleanup()


async def run(
    args: argparse.Namespace,
    session: aiohttp.ClientSession,
    ports: list[int],
    pids: list[int],
    redis_url: str,
) -> None:
    a, b, local = (Signaling(f"ws://{ORIGIN_HOST}:{port}", session) for port in ports)
    across = Across(a, b)
    print(
        f"cluster bench: 2 instances on one Redis vs 1; {args.samples} latency samples,"
        f" {args.rooms} rooms for the load layouts, {os.cpu_count()} CPUs (shared machine)"
    )

    # -- relay latency and join latency: same-instance, cross-instance and in-process rooms
    same, same_join = await rooms_in_call(a, args.latency_rooms, a)
    cross, cross_join = await rooms_in_call(across, args.latency_rooms, a)
    alone, alone_join = await rooms_in_call(local, args.latency_rooms, local)
    cross_lat, same_lat = await latencies(cross, same, args.samples)
    alone_lat, _ = await latencies(alone, alone, args.samples // 2)
    c50, c99 = pct(cross_lat, 0.5) * 1000, pct(cross_lat, 0.99) * 1000
    s50, s99 = pct(same_lat, 0.5) * 1000, pct(same_lat, 0.99) * 1000
    l50, l99 = pct(alone_lat, 0.5) * 1000, pct(alone_lat, 0.99) * 1000
    print(
        f"relay latency: cross-instance p50 {c50:.2f} ms p99 {c99:.2f} ms;"
        f" same instance (Redis) p50 {s50:.2f} ms p99 {s99:.2f} ms"
        f" -> p99 ratio {c99 / s99:.2f} (goal <= 1.5)"
    )
    print(
        f"  reference, one process with SQLite and the in-process bus: p50 {l50:.2f} ms"
        f" p99 {l99:.2f} ms -> cross-instance p99 ratio {c99 / l99:.2f}"
    )
    hop = await pubsub_hop(redis_url, args.samples)
    print(
        f"  the Redis pub/sub hop alone (redis-py, this machine): p50"
        f" {pct(hop, 0.5) * 1000:.2f} ms p99 {pct(hop, 0.99) * 1000:.2f} ms"
    )
    print(
        f"join (token to admitted): across median {statistics.median(cross_join) * 1000:.1f} ms"
        f" p99 {pct(cross_join, 0.99) * 1000:.1f} ms; same instance median"
        f" {statistics.median(same_join) * 1000:.1f} ms p99 {pct(same_join, 0.99) * 1000:.1f} ms"
        f" -> median ratio {statistics.median(cross_join) / statistics.median(same_join):.2f};"
        f" one process (SQLite) median {statistics.median(alone_join) * 1000:.1f} ms"
    )
    for pairs in (same, cross, alone):
        await close_all(pairs)

    # -- rooms and sockets: all rooms on A, then half on A and half on B (each room local)
    base = [rss_kib(pid) for pid in pids[:2]]
    one, _ = await rooms_in_call(a, args.rooms, a)
    await asyncio.sleep(0.5)
    one_rss = rss_kib(pids[0]) - base[0]
    one_p99 = await p99_under_load(one, args.busy, args.samples // 2, args.seconds)
    await close_all(one)
    await asyncio.sleep(1.0)
    base = [rss_kib(pid) for pid in pids[:2]]
    half_a, _ = await rooms_in_call(a, args.rooms // 2, a)
    half_b, _ = await rooms_in_call(b, args.rooms - args.rooms // 2, a)
    await asyncio.sleep(0.5)
    two_rss = [rss_kib(pid) - base[i] for i, pid in enumerate(pids[:2])]
    spread = [pair for duo in zip(half_a, half_b, strict=False) for pair in duo]
    two_p99 = await p99_under_load(spread, args.busy, args.samples // 2, args.seconds)
    await close_all(half_a + half_b)
    print(
        f"{args.rooms} rooms in call ({2 * args.rooms} sockets), {args.busy} pairs relaying"
        f" negotiation traffic: one instance p99 {one_p99:.2f} ms, +{one_rss / 1024:.1f} MiB;"
        f" two instances p99 {two_p99:.2f} ms, +{two_rss[0] / 1024:.1f} / +{two_rss[1] / 1024:.1f}"
        f" MiB -> p99 ratio {two_p99 / one_p99:.2f}, sockets per instance"
        f" {2 * args.rooms} vs {2 * (args.rooms // 2)}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rooms", type=int, default=200, help="rooms for the load layouts")
    # At most 64 candidates per description and connection: keep samples per room below.
    parser.add_argument("--latency-rooms", type=int, default=40, help="rooms per latency kind")
    parser.add_argument("--busy", type=int, default=8, help="pairs pumping during the load run")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of the load run")
    parser.add_argument("--samples", type=int, default=1500, help="latency samples")
    os.environ.setdefault("PYTHONHASHSEED", "0")
    asyncio.run(main(parser.parse_args()))
