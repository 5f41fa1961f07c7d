"""Soak benchmark: a long clinic day through one instance on SQLite; does the server grow?

    python bench/bench_soak.py [--consultations 2000] [--warmup 200] [--trace]

Drives whole consultations in a row through the real HTTP API and WebSocket, as the pages do
(no media): the doctor books, the patient redeems the link with the access code, both take a
room token and join, the patient waits, the doctor admits, offer and answer cross, the doctor
ends the consultation. The server runs in its own process; its RSS is read from /proc after the
warm-up and every ``--every`` consultations, and the growth per consultation after warm-up is
printed against the goal (<= 1 KiB per consultation) and against the server's RSS after the
warm-up measured in the same run (the baseline).

``--trace`` runs the server under tracemalloc and prints the allocation sites that grew the
most between the end of the warm-up and the end of the run: where a leak lives.

Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pyotp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_signaling import raise_fd_limit, rss_kib

from tests.servers import free_port

HOST = "127.0.0.1"
DOCTOR = "dr.soak"
PASSWORD = "soak bench password 1234"


def serve(port: int, data_dir: str, trace: bool) -> None:
    """The app on ``port``, a doctor account, and (bench only) a tracemalloc endpoint."""
    raise_fd_limit()
    if trace:
        import tracemalloc

        tracemalloc.start(12)
    from config import Settings, StorageSettings
    from signaling.app import create_app
    from signaling.keys import SERVICES

    settings = Settings(storage=StorageSettings(data_dir=data_dir))
    settings = settings.replace(
        server=replace(settings.server, host=HOST, port=port, public_url=f"http://{HOST}:{port}"),
        signaling=replace(settings.signaling, connections_per_address=100_000),
        security=replace(settings.security, address_failure_threshold=1_000_000),
    ).validate()
    app = create_app(settings)
    snapshots: dict[str, Any] = {}

    async def make_doctor(app: web.Application) -> None:
        services = app[SERVICES]
        if await services.store.get_user_by_username(DOCTOR) is None:
            await services.accounts.create_user(DOCTOR, PASSWORD, "doctor", "Dr Soak")

    async def snapshot(request: web.Request) -> web.Response:
        """Bench only: ``?name=`` takes a snapshot; ``?diff=a,b`` prints the top growth."""
        import tracemalloc

        gc.collect()
        if "name" in request.query:
            snapshots[request.query["name"]] = tracemalloc.take_snapshot()
            return web.Response(text="ok")
        first, second = request.query["diff"].split(",")
        stats = snapshots[second].compare_to(snapshots[first], "traceback")
        lines = []
        for stat in stats[:12]:
            lines.append(f"{stat.size_diff / 1024:+.1f} KiB in {stat.count_diff:+d} blocks")
            lines.extend("    " + line for line in stat.traceback.format()[-8:])
        return web.Response(text="\n".join(lines))

    async def memory(request: web.Request) -> web.Response:
        """Bench only: who holds the memory (SQLite's allocator, Python's, glibc's arenas)."""
        gc.collect()
        found: dict[str, Any] = dict(memory_accounts())
        # Objects the collector tracks, by type: what a growth is made of.
        found["types"] = Counter(type(o).__qualname__ for o in gc.get_objects())
        # Timers the loop holds, by what they will call: a timer keeps its callback's object.
        scheduled = getattr(asyncio.get_running_loop(), "_scheduled", [])
        found["timers"] = Counter(
            getattr(h._callback, "__qualname__", type(h._callback).__qualname__)
            for h in scheduled
            if not h.cancelled()
        )
        return web.json_response(found)

    app.on_startup.append(make_doctor)
    app.router.add_get("/bench/snapshot", snapshot)
    app.router.add_get("/bench/memory", memory)
    web.run_app(app, host=HOST, port=port, print=None, access_log=None)


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
            "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def memory_accounts() -> dict[str, int]:
    """Bytes held, by holder: SQLite's own count (sqlite3_memory_used, the library the
    ``sqlite3`` module uses), Python's small-object blocks, and glibc's view of every arena
    (``mallinfo2``: in use, free but kept, and mmapped blocks)."""
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _Mallinfo2
    info = libc.mallinfo2()
    found = {"python_blocks": sys.getallocatedblocks()}
    try:
        lib = ctypes.CDLL("libsqlite3.so.0")
        lib.sqlite3_memory_used.restype = ctypes.c_int64
        found["sqlite_used"] = lib.sqlite3_memory_used()
    except OSError:  # a Python built with SQLite linked in: no shared library to ask
        pass
    found.update(
        malloc_in_use=info.uordblks, malloc_free_kept=info.fordblks, malloc_mmapped=info.hblkhd
    )
    return found


class Clinic:
    """The doctor's signed-in browser, and a fresh browser per patient."""

    def __init__(self, base: str, offer: str, answer: str) -> None:
        self.base = base
        self.offer, self.answer = offer, answer
        self.headers = {"Origin": base}
        self.doctor = self.browser()
        self.csrf = ""

    def browser(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            base_url=self.base, cookie_jar=aiohttp.CookieJar(unsafe=True), headers=self.headers
        )

    async def sign_in(self) -> None:
        resp = await self.doctor.post(
            "/api/auth/login", json={"username": DOCTOR, "password": PASSWORD}
        )
        assert resp.status == 200, await resp.text()
        resp = await self.doctor.post("/api/auth/enrol")
        assert resp.status == 200, await resp.text()
        totp = pyotp.TOTP((await resp.json())["secret"])
        resp = await self.doctor.post("/api/auth/totp", json={"code": totp.now()})
        assert resp.status == 200, await resp.text()
        self.csrf = (await resp.json())["csrf_token"]

    async def post(self, session: aiohttp.ClientSession, path: str, body: Any, csrf: str) -> Any:
        resp = await session.post(path, json=body, headers={"X-CSRF-Token": csrf} if csrf else {})
        assert resp.status in (200, 201), f"{path}: {resp.status} {await resp.text()}"
        return await resp.json()

    async def join(self, session: aiohttp.ClientSession, token: str) -> Any:
        ws = await session.ws_connect("/ws", origin=self.base)
        await ws.send_json({"type": "join", "v": 1, "token": token})
        await until(ws, "welcome")
        return ws

    async def consultation(self, index: int) -> None:
        created = await self.post(
            self.doctor,
            "/api/consultations",
            {
                "patient_name": f"Patient {index}",
                "scheduled_start": datetime.now(UTC).isoformat(),
                "duration_minutes": 30,
            },
            self.csrf,
        )
        consultation_id = created["consultation"]["id"]
        invite = created["invite_url"].rsplit("/join/", 1)[1]
        async with self.browser() as patient:
            redeemed = await self.post(
                patient,
                "/api/invites/redeem",
                {"invite": invite, "access_code": created["access_code"]},
                "",
            )
            doctor_token = (
                await self.post(
                    self.doctor, "/api/room-tokens", {"consultation_id": consultation_id}, self.csrf
                )
            )["room_token"]
            doctor_ws = await self.join(self.doctor, doctor_token)
            patient_ws = await self.join(patient, redeemed["room_token"])
            await until(patient_ws, "waiting")
            await until(doctor_ws, "lobby", lambda m: m.get("waiting") is not None)
            await doctor_ws.send_json({"type": "admit"})
            await until(patient_ws, "peer_joined")
            await until(doctor_ws, "peer_joined")
            await doctor_ws.send_json({"type": "offer", "sdp": self.offer})
            await until(patient_ws, "offer")
            await patient_ws.send_json({"type": "answer", "sdp": self.answer})
            await until(doctor_ws, "answer")
            await doctor_ws.send_json({"type": "hang_up", "end": True})
            await until(patient_ws, "ended")
            await until(doctor_ws, "ended")
            await patient_ws.close()
            await doctor_ws.close()


async def real_sdp() -> tuple[str, str]:
    """An offer and its answer from two aiortc peers (audio and video): what a browser sends,
    in size and shape; the server checks them."""
    from aiortc import RTCPeerConnection

    offerer, answerer = RTCPeerConnection(), RTCPeerConnection()
    try:
        offerer.addTransceiver("audio")
        offerer.addTransceiver("video")
        await offerer.setLocalDescription(await offerer.createOffer())
        await answerer.setRemoteDescription(offerer.localDescription)
        await answerer.setLocalDescription(await answerer.createAnswer())
        return offerer.localDescription.sdp, answerer.localDescription.sdp
    finally:
        await offerer.close()
        await answerer.close()


async def until(ws: Any, kind: str, check: Any = None) -> dict[str, Any]:
    async with asyncio.timeout(30):
        while True:
            msg = await ws.receive()
            if msg.type is not aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"waiting for {kind}: {msg.type} {ws.close_code}")
            data: dict[str, Any] = msg.json()
            if data["type"] == kind and (check is None or check(data)):
                return data
            if data["type"] == "error":
                raise RuntimeError(f"waiting for {kind}: {data}")


def rss_by_region(pid: int) -> dict[str, int]:
    """RSS in KiB of the main heap, of other anonymous mappings (thread arenas, mmapped
    blocks) and of file mappings, from /proc/PID/smaps: which allocator holds the growth."""
    regions = {"heap": 0, "anonymous": 0, "files": 0}
    current = "files"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5:  # a mapping's header line
            name = fields[5] if len(fields) > 5 else ""
            current = "heap" if name == "[heap]" else "anonymous" if not name else "files"
            if name.startswith("["):
                current = "heap" if name == "[heap]" else "files"
        elif fields[0] == "Rss:":
            regions[current] += int(fields[1])
    return regions


async def wait_listening(port: int, within: float = 120.0) -> None:
    """Until the server accepts connections (slow to start under tracemalloc)."""
    end = time.monotonic() + within
    while True:
        try:
            _, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            if time.monotonic() > end:
                raise
            await asyncio.sleep(0.1)
            continue
        writer.close()
        await writer.wait_closed()
        return


async def main(args: argparse.Namespace) -> None:
    raise_fd_limit()
    port = free_port()
    data = tempfile.TemporaryDirectory(prefix="bench-soak-")
    data_dir = Path(data.name) / "data"
    data_dir.mkdir(mode=0o700)
    context = multiprocessing.get_context("spawn")
    proc = context.Process(target=serve, args=(port, str(data_dir), args.trace), daemon=True)
    proc.start()
    assert proc.pid is not None
    clinic = Clinic(f"http://{HOST}:{port}", *await real_sdp())
    try:
        await wait_listening(port)
        await clinic.sign_in()
        print(f"soak bench: {args.warmup} warm-up + {args.consultations} whole consultations")
        durations: list[float] = []
        for index in range(args.warmup):
            await clinic.consultation(index)
        if args.trace:
            await clinic.doctor.get("/bench/snapshot", params={"name": "warm"})
        base = rss_kib(proc.pid)
        base_regions = rss_by_region(proc.pid)
        base_memory = await (await clinic.doctor.get("/bench/memory")).json()
        readings = [(0, base)]
        for index in range(1, args.consultations + 1):
            began = time.perf_counter()
            await clinic.consultation(args.warmup + index)
            durations.append(time.perf_counter() - began)
            if index % args.every == 0:
                readings.append((index, rss_kib(proc.pid)))
                print(f"  after {index:5d}: RSS {readings[-1][1] / 1024:.1f} MiB")
        end = rss_kib(proc.pid)
        # Least squares over the readings: one reading's allocator noise does not decide it.
        xs, ys = [r[0] for r in readings], [r[1] for r in readings]
        mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
        slope = sum((x - mean_x) * (y - mean_y) for x, y in readings) / sum(
            (x - mean_x) ** 2 for x in xs
        )
        print(
            f"consultation: median {statistics.median(durations) * 1000:.1f} ms,"
            f" p99 {sorted(durations)[int(len(durations) * 0.99)] * 1000:.1f} ms"
        )
        print(
            f"RSS after warm-up {base / 1024:.1f} MiB (baseline), at the end {end / 1024:.1f} MiB"
            f" -> {end / base:.3f}x the baseline; growth {slope:.2f} KiB per consultation"
            f" (least squares; goal <= 1 KiB)"
        )
        regions = rss_by_region(proc.pid)
        print(
            "growth by region: "
            + ", ".join(f"{k} {regions[k] - base_regions[k]:+d} KiB" for k in regions)
        )
        memory = await (await clinic.doctor.get("/bench/memory")).json()
        types, base_types = memory.pop("types"), base_memory.pop("types")
        timers, base_timers = memory.pop("timers"), base_memory.pop("timers")
        print(
            "growth by holder: "
            + ", ".join(
                f"{k} {(memory[k] - base_memory[k]) / (1 if k == 'python_blocks' else 1024):+.0f}"
                + ("" if k == "python_blocks" else " KiB")
                for k in memory
            )
        )
        timers_grown = Counter(timers)
        timers_grown.subtract(base_timers)
        print(
            "timers pending, most grown: "
            + ", ".join(f"{name} {n:+d}" for name, n in timers_grown.most_common(6) if n > 0)
        )
        grown = Counter(types)
        grown.subtract(base_types)
        print(
            "objects the collector tracks, most grown: "
            + ", ".join(f"{name} {n:+d}" for name, n in grown.most_common(12) if n > 0)
        )
        if args.trace:
            await clinic.doctor.get("/bench/snapshot", params={"name": "end"})
            resp = await clinic.doctor.get("/bench/snapshot", params={"diff": "warm,end"})
            print("largest growth between the warm-up and the end (tracemalloc):")
            print(await resp.text())
    finally:
        await clinic.doctor.close()
        proc.terminate()
        proc.join(5)
        data.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--consultations", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--every", type=int, default=250, help="RSS reading interval")
    parser.add_argument("--trace", action="store_true", help="tracemalloc the server")
    os.environ.setdefault("PYTHONHASHSEED", "0")
    asyncio.run(main(parser.parse_args()))
