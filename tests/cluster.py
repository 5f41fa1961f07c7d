"""Two real signaling instances (``run.py serve`` processes) sharing one real Redis (and, when
asked, one real PostgreSQL database for the records).

Both run on loopback ports with the same data directory (so the same secret key) and the same
public origin, as two instances behind one reverse proxy would. The doctor account is made
with the command line; people sign in and book through the HTTP API with the real clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import cast

import aiohttp
import pyotp

from signaling.clock import Clock, ManualClock
from tests.cli import command_env, run_cli
from tests.conftest import PASSWORD, Accounts, Staff, deadline
from tests.rtc import Booking, SignalClient, book
from tests.servers import RedisServer, free_port, stop_process, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
DOCTOR = "dr.cluster"


@dataclasses.dataclass
class Instance:
    name: str
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    # Settings of this instance alone (TELECONSULT_* variables), over the cluster's.
    env: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://localhost:{self.port}"

    def session(self) -> aiohttp.ClientSession:
        """A browser, in effect: its own cookie jar, speaking to this instance only."""
        return aiohttp.ClientSession(base_url=self.base, cookie_jar=aiohttp.CookieJar())

    def kill(self) -> None:
        """SIGKILL: no shutdown, no goodbye to Redis or to the sockets."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@dataclasses.dataclass
class _PatientBrowser:
    """What tests.rtc.book needs of Accounts: a new patient session, here on ``instance``."""

    instance: Instance

    def new_session(self) -> aiohttp.ClientSession:
        return self.instance.session()


@dataclasses.dataclass
class Cluster:
    redis: RedisServer
    instances: list[Instance]
    data_dir: Path
    origin: str
    env: dict[str, str]
    doctor_otpauth: str = ""

    @property
    def a(self) -> Instance:
        return self.instances[0]

    @property
    def b(self) -> Instance:
        return self.instances[1]

    def start(self, instance: Instance) -> None:
        common = ["--data-dir", str(self.data_dir)]
        with instance.log.open("ab") as out:
            instance.proc = subprocess.Popen(
                [sys.executable, "run.py", "serve", "--port", str(instance.port), *common],
                cwd=ROOT,
                env={**self.env, **instance.env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def add_doctor(self) -> None:
        added = run_cli(
            *("add-user", "--username", DOCTOR, "--role", "doctor", "--display-name", "Dr Cluster"),
            "--credentials-stdin",
            data_dir=self.data_dir,
            stdin=PASSWORD + "\n",
            env=self.env,
        )
        assert added.returncode == 0, added.stdout + added.stderr
        uri = re.search(r"otpauth://\S+", added.stdout)
        assert uri, added.stdout
        self.doctor_otpauth = uri.group(0)

    def stop(self) -> None:
        for instance in self.instances:
            instance.stop()

    async def sign_in(self, instance: Instance) -> Staff:
        totp = pyotp.parse_uri(self.doctor_otpauth)
        assert isinstance(totp, pyotp.TOTP)
        http = instance.session()
        resp = await http.post("/api/auth/login", json={"username": DOCTOR, "password": PASSWORD})
        assert resp.status == 200, await resp.text()
        resp = await http.post("/api/auth/totp", json={"code": totp.now()})
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        return Staff(http, body["user"], body["csrf_token"], totp, PASSWORD)

    async def book(self, doctor: Staff, patient_on: Instance) -> Booking:
        """tests.rtc.book with the real clock; the patient redeems the invite on
        ``patient_on`` (whatever instance the doctor used)."""
        return await book(
            cast(Accounts, _PatientBrowser(patient_on)), doctor, cast(ManualClock, Clock())
        )

    async def connect(self, instance: Instance, http: aiohttp.ClientSession) -> SignalClient:
        ws = await http.ws_connect(f"{instance.base}/ws", origin=self.origin, autoping=True)
        return SignalClient(ws)


def start_cluster(
    tmp: Path,
    redis: RedisServer,
    count: int = 2,
    postgres_dsn: str | None = None,
    settings: dict[str, str] | None = None,
) -> Cluster:
    """``count`` instances on one Redis, the first one's origin shared by all (the proxy's).
    With ``postgres_dsn``: records in that PostgreSQL database, the rest in Redis.
    ``settings``: more TELECONSULT_* variables, the same for every instance."""
    ports = [free_port() for _ in range(count)]
    origin = f"http://localhost:{ports[0]}"
    stores = (
        {
            "TELECONSULT_STORAGE_BACKEND": "postgres",
            "TELECONSULT_STORAGE_POSTGRES_DSN": postgres_dsn,
            "TELECONSULT_SIGNALING_BUS": "redis",
        }
        if postgres_dsn is not None
        else {"TELECONSULT_STORAGE_BACKEND": "redis"}
    )
    env = {
        **command_env(),
        "PYTHONUNBUFFERED": "1",
        "TELECONSULT_SERVER_PUBLIC_URL": origin,
        **stores,
        "TELECONSULT_STORAGE_REDIS_URL": redis.url,
        # A dropped seat is kept long enough for the tests' reconnections.
        "TELECONSULT_SIGNALING_RESUME_GRACE_SECONDS": "30",
        # The recording worker's only candidates: loopback (tests talk to nothing else).
        "TELECONSULT_RECORDING_WORKER_LOOPBACK": "only",
        **(settings or {}),
    }
    data_dir = tmp / "data"
    data_dir.mkdir(mode=0o700, exist_ok=True)
    instances = [
        Instance(name, port, tmp / f"instance-{name}.log")
        for name, port in zip("ABCDEFGH", ports, strict=False)
    ]
    cluster = Cluster(redis, instances, data_dir, origin, env)
    # The user (and the secret key, in the shared data directory) before any instance runs.
    cluster.add_doctor()
    try:
        for instance in instances:
            cluster.start(instance)
        for instance in instances:
            assert instance.proc is not None
            wait_for_port(instance.port, instance.proc, limit=deadline(60))
    except BaseException:
        cluster.stop()
        raise
    return cluster


async def alive_but_not_ready(cluster: Cluster) -> None:
    """Every instance answers /healthz, and /readyz with ``unavailable`` (503)."""
    async with aiohttp.ClientSession() as http:
        for instance in cluster.instances:
            async with http.get(f"{instance.base}/healthz") as resp:
                assert resp.status == 200
            async with http.get(f"{instance.base}/readyz") as resp:
                assert resp.status == 503
                assert (await resp.json())["error"]["code"] == "unavailable"


async def wait_until_ready(instance: Instance, within: float) -> float:
    """Poll /readyz until it answers 200; the seconds it took."""
    started = time.monotonic()
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(f"{instance.base}/readyz") as resp:
                    if resp.status == 200:
                        return time.monotonic() - started
            except aiohttp.ClientError:
                pass
            if time.monotonic() - started > within:
                raise AssertionError(f"{instance.name} not ready after {within} s")
            await asyncio.sleep(0.1)
