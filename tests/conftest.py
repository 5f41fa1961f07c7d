"""Shared fixtures: settings on a temporary data dir, a manual clock, the app and its client."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import inspect
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, overload

import aiohttp
import aioice.ice
import pyotp
import pytest
import redis
from aiohttp import web
from aiohttp.test_utils import TestClient
from argon2.profiles import CHEAPEST

from config import Settings, StorageSettings
from signaling.accounts.passwords import PRODUCTION_PARAMETERS, use_parameters
from signaling.app import create_app, issue_setup_link
from signaling.clock import ManualClock
from signaling.keys import SERVICES
from signaling.models import StaffRole
from tests.loopback import loopback_host_addresses
from tests.postgres_cluster import PostgresCluster
from tests.servers import RedisServer

pytest_plugins = ["tests.log_scan"]

PASSWORD = "correct horse battery staple"
ORIGIN = "http://localhost:8080"

# Tests sign in hundreds of times: argon2 at its cheapest here, the service keeps its cost
# (test_passwords.py checks that default in a fresh interpreter).
use_parameters(CHEAPEST)

T = TypeVar("T")


def _read_time_factor() -> float:
    raw = os.environ.get("TELECONSULT_TEST_TIME_FACTOR", "1")
    try:
        factor = float(raw)
    except ValueError:
        raise pytest.UsageError(f"TELECONSULT_TEST_TIME_FACTOR={raw!r} is not a number")
    if not 1 <= factor <= 100:
        raise pytest.UsageError("TELECONSULT_TEST_TIME_FACTOR must be between 1 and 100")
    return factor


# The one knob for slow machines: every deadline of the tests is multiplied by it (read once).
TIME_FACTOR = _read_time_factor()


def deadline(seconds: float) -> float:
    """How long a test may wait for something that takes ``seconds`` on an ordinary machine."""
    return seconds * TIME_FACTOR


def deadline_ms(seconds: float) -> float:
    """``deadline`` in milliseconds, as Playwright takes its timeouts."""
    return deadline(seconds) * 1000


@overload
async def wait_until(
    predicate: Callable[[], Awaitable[T]], within: float, interval: float = ...
) -> T: ...


@overload
async def wait_until(predicate: Callable[[], T], within: float, interval: float = ...) -> T: ...


async def wait_until(predicate: Callable[[], Any], within: float, interval: float = 0.02) -> Any:
    """Poll ``predicate`` (plain or async) until it answers something true and return that;
    ``TimeoutError`` after ``deadline(within)`` seconds."""
    async with asyncio.timeout(deadline(within)):
        while True:
            answer = predicate()
            if inspect.isawaitable(answer):
                answer = await answer
            if answer:
                return answer
            await asyncio.sleep(interval)


def wait_until_sync(predicate: Callable[[], T], within: float, interval: float = 0.05) -> T:
    """``wait_until`` for code outside an event loop (browser tests, subprocess servers)."""
    limit = time.monotonic() + deadline(within)
    while not (answer := predicate()):
        if time.monotonic() >= limit:
            raise TimeoutError(f"not true within {deadline(within):.1f} s")
        time.sleep(interval)
    return answer


@pytest.fixture(autouse=True, scope="module")
def _collect_garbage_after_each_module() -> Iterator[None]:
    """A resource a test module leaves unclosed (an event loop, a socket, a response) is
    reported when the garbage collector meets it, which can be in any later test. Collecting
    at the end of each module reports it on that module's last test, where it was made."""
    yield
    gc.collect()


@pytest.fixture
def production_password_cost() -> Iterator[None]:
    """For a test about argon2's real cost (e.g. timing): the service's parameters."""
    use_parameters(PRODUCTION_PARAMETERS)
    yield
    use_parameters(CHEAPEST)


def pytest_report_header() -> str:
    return f"test deadlines x{TIME_FACTOR:g} (TELECONSULT_TEST_TIME_FACTOR)"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir(mode=0o700)
    return path


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Modules marked both_stores run every test on SQLite and on the two stores of several
    # instances: a real Redis, a real PostgreSQL.
    if "store_backend" in metafunc.fixturenames:
        every = metafunc.definition.get_closest_marker("both_stores") is not None
        metafunc.parametrize(
            "store_backend", ["sqlite", "redis", "postgres"] if every else ["sqlite"]
        )


@pytest.fixture
def limits(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Signaling settings a test sets with ``with_limits`` (none by default)."""
    return dict(getattr(request, "param", {}))


def with_limits(**values: Any) -> pytest.MarkDecorator:
    """Run the test with these signaling settings (SignalingSettings fields)."""
    return pytest.mark.parametrize("limits", [values], indirect=True, ids=["limits"])


@pytest.fixture
def settings(
    data_dir: Path, store_backend: str, limits: dict[str, Any], request: pytest.FixtureRequest
) -> Settings:
    storage = StorageSettings(data_dir=str(data_dir), backend=store_backend)
    if store_backend == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        flush = redis.Redis.from_url(server.url)
        flush.flushdb()
        flush.close()
        storage = dataclasses.replace(storage, redis_url=server.url)
    if store_backend == "postgres":
        cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
        storage = dataclasses.replace(storage, postgres_dsn=cluster.new_database())
    settings = Settings(storage=storage).validate()
    if not limits:
        return settings
    signaling = dataclasses.replace(settings.signaling, **limits)
    return settings.replace(signaling=signaling).validate()


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice drops 127.0.0.1 from its host candidates: put it back, and only it (the aiortc
    peers of a test talk to this machine only)."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", loopback_host_addresses)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_800_000_000.0)


@pytest.fixture
def app(settings: Settings, clock: ManualClock) -> web.Application:
    return create_app(settings, clock=clock)


@pytest.fixture
async def client(
    aiohttp_client: Callable[[web.Application], Awaitable[TestClient[Any, Any]]],
    app: web.Application,
) -> TestClient[Any, Any]:
    return await aiohttp_client(app)


def new_session(client: TestClient[Any, Any]) -> aiohttp.ClientSession:
    """Another browser, in effect: its own cookie jar against the same test server."""
    return aiohttp.ClientSession(
        base_url=str(client.make_url("/")), cookie_jar=aiohttp.CookieJar(unsafe=True)
    )


@dataclasses.dataclass
class Staff:
    """A signed-in staff member: its own cookie jar and CSRF token."""

    client: aiohttp.ClientSession
    user: dict[str, Any]
    csrf: str
    totp: pyotp.TOTP
    password: str

    def post(self, path: str, json: Any = None) -> Any:
        return self.client.post(path, json=json, headers={"X-CSRF-Token": self.csrf})


class Accounts:
    """Drives the real API to make and sign in users (TOTP codes computed with pyotp)."""

    def __init__(
        self, app: web.Application, clock: ManualClock, client: TestClient[Any, Any]
    ) -> None:
        self.app = app
        self.clock = clock
        self.client = client
        self.sessions: list[aiohttp.ClientSession] = []

    def new_session(self) -> aiohttp.ClientSession:
        session = new_session(self.client)
        self.sessions.append(session)
        return session

    async def create(
        self, username: str, role: StaffRole = "doctor", password: str = PASSWORD
    ) -> None:
        services = self.app[SERVICES]
        await services.accounts.create_user(username, password, role, username.title())

    async def enrol(self, session: aiohttp.ClientSession) -> pyotp.TOTP:
        resp = await session.post("/api/auth/enrol")
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        return pyotp.TOTP(body["secret"])

    def next_code(self, totp: pyotp.TOTP) -> str:
        # A code is accepted once: each use moves the clock to a fresh 30 s step.
        self.clock.advance(30)
        return str(totp.at(self.clock.now()))

    async def sign_in(
        self, username: str, password: str = PASSWORD, totp: pyotp.TOTP | None = None
    ) -> Staff:
        session = self.new_session()
        resp = await session.post(
            "/api/auth/login", json={"username": username, "password": password}
        )
        assert resp.status == 200, await resp.text()
        step = await resp.json()
        if step["next"] == "enrol":
            totp = await self.enrol(session)
        assert totp is not None
        resp = await session.post("/api/auth/totp", json={"code": self.next_code(totp)})
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        return Staff(session, body["user"], body["csrf_token"], totp, password)


@pytest.fixture
async def accounts(
    app: web.Application, clock: ManualClock, client: TestClient[Any, Any]
) -> AsyncIterator[Accounts]:
    helper = Accounts(app, clock, client)
    yield helper
    for session in helper.sessions:
        await closed_with_every_response_read(session)


async def closed_with_every_response_read(session: aiohttp.ClientSession) -> None:
    """Close ``session``, failing the test that left a response unread: its connection would
    otherwise be reported unclosed whenever the garbage collector meets it, in some later
    test. A body still arriving is given its time."""
    connector = session.connector
    try:
        if connector is not None:
            await wait_until(lambda: not connector._acquired, within=5)
    except TimeoutError:
        raise AssertionError(
            f"{len(connector._acquired) if connector else 0} response(s) left unread: "
            "read each body (or close the response) before the test ends"
        ) from None
    finally:
        await session.close()


@pytest.fixture
async def doctor(accounts: Accounts) -> Staff:
    await accounts.create("dr.martin")
    return await accounts.sign_in("dr.martin")


@pytest.fixture
async def admin(accounts: Accounts) -> Staff:
    await accounts.create("admin.root", role="admin")
    return await accounts.sign_in("admin.root")


async def setup_link_token(app: web.Application) -> str:
    link = await issue_setup_link(app)
    assert link is not None
    match = re.search(r"/setup/(.+)$", link)
    assert match
    return match.group(1)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server (AOF on) for the session; tests flush it before use."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One real PostgreSQL cluster for the session; each test takes a new database of it."""
    cluster = PostgresCluster().start()
    yield cluster
    cluster.remove()
