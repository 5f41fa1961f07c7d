"""The HTTP edge with no proxy in front (signaling/api/edge.py): slow clients, oversized bodies,
too many connections, the parser's own answers and the Server header.

Each test speaks raw HTTP over an asyncio socket to the service served on a free port by
``start_edge``, the function ``run.py serve`` calls; the last ones run ``run.py serve`` itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from config import ConfigError, Settings, load_settings
from signaling.api.edge import start_edge
from signaling.api.routes_live import STREAM_TIMING, StreamTiming
from signaling.app import create_app
from signaling.clock import ManualClock
from tests.cli import command_env
from tests.conftest import Accounts, deadline, wait_until
from tests.servers import free_port, stop_process, wait_for_port

ROOT = Path(__file__).resolve().parent.parent

SECURITY_HEADERS = {
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
}


@dataclasses.dataclass
class Edge:
    app: web.Application
    settings: Settings

    @property
    def port(self) -> int:
        return self.settings.server.port

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)


def edge_settings(settings: Settings, **server: Any) -> Settings:
    return settings.replace(
        server=dataclasses.replace(settings.server, port=free_port(), **server)
    ).validate()


@asynccontextmanager
async def serving(
    settings: Settings, clock: ManualClock | None = None, **server: Any
) -> AsyncIterator[Edge]:
    settings = edge_settings(settings, **server)
    app = create_app(settings, clock=clock)
    app[STREAM_TIMING] = StreamTiming(poll_seconds=0.05, heartbeat_seconds=0.2)
    runner = await start_edge(app, settings.server)
    try:
        yield Edge(app, settings)
    finally:
        await runner.cleanup()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="teleconsult.edge")
    caplog.set_level(logging.INFO)
    return caplog


def edge_lines(caplog: pytest.LogCaptureFixture, level: int = logging.INFO) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "teleconsult.edge" and r.levelno >= level
    ]


def access_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "teleconsult.access"]


def assert_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    with_traceback = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.exc_info]
    assert not with_traceback
    assert "Traceback" not in caplog.text


async def read_response(
    reader: asyncio.StreamReader, within: float = 5.0
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of one HTTP response."""
    async with asyncio.timeout(deadline(within)):
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = await reader.readexactly(length) if length else b""
    return int(status_line.split()[1]), headers, body


async def closed_within(reader: asyncio.StreamReader, within: float) -> bytes:
    """Wait for the server to close the connection; what it sent before."""
    received = b""
    async with asyncio.timeout(deadline(within)):
        while True:
            try:
                chunk = await reader.read(65536)
            except ConnectionResetError:
                return received
            if not chunk:
                return received
            received += chunk


async def trickle(writer: asyncio.StreamWriter, data: bytes, interval: float = 0.1) -> None:
    """Send ``data`` a byte at a time until it ends or the server closes the connection."""
    for byte in data:
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except ConnectionError:
            return
        await asyncio.sleep(interval)


def assert_security_headers(headers: dict[str, str], *, hsts: bool = False) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name) == value, name
    csp = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert ("strict-transport-security" in headers) is hsts
    # A bare product name: no Python or aiohttp version to look vulnerabilities up with.
    assert headers["server"] == "teleconsult"


# -- bodies


async def test_a_body_announced_above_the_limit_is_refused_at_once(
    settings: Settings, logs: pytest.LogCaptureFixture
) -> None:
    async with serving(settings, header_timeout_seconds=30, body_timeout_seconds=30) as edge:
        reader, writer = await edge.connect()
        started = time.monotonic()
        writer.write(
            b"POST /api/auth/login HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n{"
        )
        status, headers, body = await read_response(reader, within=5)
        # Answered before a byte more of the body: far within any timeout.
        assert time.monotonic() - started < deadline(5)
        assert status == 413
        assert json.loads(body)["error"]["code"] == "payload_too_large"
        assert_security_headers(headers)
        writer.close()
    assert_no_traceback(logs)


async def test_a_client_trickling_its_body_is_disconnected_after_the_body_timeout(
    settings: Settings, logs: pytest.LogCaptureFixture
) -> None:
    async with serving(settings, header_timeout_seconds=30, body_timeout_seconds=1) as edge:
        reader, writer = await edge.connect()
        body = json.dumps({"username": "someone", "password": "x" * 200}).encode()
        writer.write(
            b"POST /api/auth/login HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/json\r\n" + f"Content-Length: {len(body)}\r\n\r\n".encode()
        )
        sender = asyncio.create_task(trickle(writer, body))
        started = time.monotonic()
        received = await closed_within(reader, within=10)
        elapsed = time.monotonic() - started
        sender.cancel()
        writer.close()
        assert received == b""  # closed without an answer: nobody is waiting for one
        assert elapsed >= 0.9
        await wait_until(lambda: edge_lines(logs), within=5)
    [line] = edge_lines(logs)
    assert "no whole request body within 1 s" in line and "127.0.0.1" in line
    assert access_lines(logs) == []  # the edge's line is the connection's only one
    assert_no_traceback(logs)


async def test_a_client_leaving_mid_body_logs_one_line_and_no_traceback(
    settings: Settings, logs: pytest.LogCaptureFixture
) -> None:
    async with serving(settings) as edge:
        reader, writer = await edge.connect()
        writer.write(
            b"POST /api/auth/login HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        )
        # "100 Continue" comes once the request is being handled: then a part, and leave.
        async with asyncio.timeout(deadline(5)):
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 100")
        writer.write(b'{"user')
        await writer.drain()
        writer.close()
        await wait_until(lambda: edge_lines(logs), within=5)
    [line] = edge_lines(logs)
    assert "left before sending its whole request body" in line
    assert access_lines(logs) == []
    assert_no_traceback(logs)


# -- heads


async def test_a_client_trickling_its_head_is_disconnected_after_the_header_timeout(
    settings: Settings, logs: pytest.LogCaptureFixture
) -> None:
    async with serving(settings, header_timeout_seconds=1) as edge:
        started = time.monotonic()  # before the server's clock starts: at its accept
        reader, writer = await edge.connect()
        sender = asyncio.create_task(
            trickle(writer, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 200)
        )
        received = await closed_within(reader, within=10)
        elapsed = time.monotonic() - started
        sender.cancel()
        writer.close()
        assert received == b""
        assert 0.9 <= elapsed
        await wait_until(lambda: edge_lines(logs), within=5)
    [line] = edge_lines(logs)
    assert "no whole request head within 1 s" in line and "127.0.0.1" in line
    assert_no_traceback(logs)


async def test_a_connection_that_sends_nothing_is_closed_quietly_after_the_header_timeout(
    settings: Settings, logs: pytest.LogCaptureFixture
) -> None:
    async with serving(settings, header_timeout_seconds=0.5) as edge:
        reader, writer = await edge.connect()
        assert await closed_within(reader, within=5) == b""
        writer.close()
    assert edge_lines(logs) == []  # a browser's unused spare connection is no event
    assert_no_traceback(logs)


async def test_a_kept_alive_connection_gets_the_header_timeout_for_its_next_head(
    settings: Settings, logs: pytest.LogCaptureFixture
) -> None:
    async with serving(settings, header_timeout_seconds=1, keepalive_timeout_seconds=60) as edge:
        reader, writer = await edge.connect()
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        status, _, _ = await read_response(reader)
        assert status == 200
        sender = asyncio.create_task(
            trickle(writer, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 200)
        )
        assert await closed_within(reader, within=10) == b""
        sender.cancel()
        writer.close()
        await wait_until(lambda: edge_lines(logs), within=5)
    assert "no whole request head" in edge_lines(logs)[0]


async def test_an_idle_kept_alive_connection_is_closed_after_the_keepalive_timeout(
    settings: Settings,
) -> None:
    async with serving(settings, keepalive_timeout_seconds=0.5) as edge:
        reader, writer = await edge.connect()
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        status, _, _ = await read_response(reader)
        assert status == 200
        assert await closed_within(reader, within=5) == b""
        writer.close()


# -- connections


async def test_connections_beyond_the_limit_are_closed_while_admitted_ones_work(
    settings: Settings, logs: pytest.LogCaptureFixture
) -> None:
    async with serving(settings, max_connections=2, header_timeout_seconds=30) as edge:
        admitted = [await edge.connect(), await edge.connect()]
        for reader, writer in admitted:  # answered: surely counted by the server
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert (await read_response(reader))[0] == 200
        extra_reader, extra_writer = await edge.connect()
        assert await closed_within(extra_reader, within=2) == b""
        extra_writer.close()
        # The admitted ones still work.
        reader, writer = admitted[0]
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert (await read_response(reader))[0] == 200
        # One closed, a new connection is admitted again.
        admitted[1][1].close()

        async def a_new_connection_works() -> bool:
            reader, writer = await edge.connect()
            try:
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
                return (await read_response(reader))[0] == 200
            except (asyncio.IncompleteReadError, ConnectionError):
                return False
            finally:
                writer.close()

        await wait_until(a_new_connection_works, within=5)
        writer.close()
    limit_lines = [line for line in edge_lines(logs) if "connection limit" in line]
    assert len(limit_lines) == 1 and "max_connections = 2" in limit_lines[0]
    assert_no_traceback(logs)


# -- the parser's own answers


@pytest.mark.parametrize(
    "request_head",
    [
        b"GET /join/" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"b" * 20_000 + b"\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nBad Header\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n",
    ],
    ids=["20kb-request-line", "20kb-header", "bad-header", "200-headers"],
)
async def test_a_request_the_parser_refuses_gets_400_with_the_security_headers(
    settings: Settings, logs: pytest.LogCaptureFixture, request_head: bytes
) -> None:
    async with serving(settings) as edge:
        reader, writer = await edge.connect()
        writer.write(request_head)
        status, headers, body = await read_response(reader)
        writer.close()
        await wait_until(lambda: access_lines(logs), within=5)
    assert status == 400
    assert json.loads(body)["error"]["code"] == "bad_request"
    assert_security_headers(headers)
    for leak in (b"Traceback", b"aiohttp", b"Python", b"aaaa", b"bbbb", b"Bad Header"):
        assert leak not in body
    [line] = access_lines(logs)
    assert " 400 " in line and "aaaa" not in line
    assert_no_traceback(logs)


async def test_the_parsers_answer_carries_hsts_when_the_service_is_https(
    settings: Settings,
) -> None:
    async with serving(settings, public_url="https://visio.clinic.example") as edge:
        reader, writer = await edge.connect()
        writer.write(b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n")
        status, headers, _ = await read_response(reader)
        writer.close()
    assert status == 400
    assert_security_headers(headers, hsts=True)


async def test_every_answer_names_the_server_without_a_version(settings: Settings) -> None:
    async with serving(settings) as edge:
        for path in ("/healthz", "/", "/api/nothing", "/nothing"):
            reader, writer = await edge.connect()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
            _, headers, _ = await read_response(reader)
            writer.close()
            assert headers["server"] == "teleconsult", path
        reader, writer = await edge.connect()
        writer.write(
            b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            + f"Origin: {edge.settings.server.origin}\r\n\r\n".encode()
        )
        async with asyncio.timeout(deadline(5)):
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        writer.close()
    assert head.startswith("HTTP/1.1 101")
    assert re.search(r"(?im)^server: teleconsult\r$", head), head


# -- long-lived connections


async def test_websockets_and_event_streams_outlive_every_timeout(
    settings: Settings, clock: ManualClock
) -> None:
    settings = settings.replace(
        signaling=dataclasses.replace(
            settings.signaling, heartbeat_seconds=0.4, join_timeout_seconds=60
        )
    )
    short = {
        "header_timeout_seconds": 0.3,
        "body_timeout_seconds": 0.3,
        "keepalive_timeout_seconds": 0.3,
    }
    async with serving(settings, clock, **short) as edge:
        accounts = Accounts(edge.app, clock, cast(TestClient[Any, Any], BaseUrl(edge.base)))
        try:
            await accounts.create("dr.edge")
            doctor = await accounts.sign_in("dr.edge")
            stream = await doctor.client.get("/api/waiting/events")
            assert stream.status == 200
            async with aiohttp.ClientSession() as http:
                ws = await http.ws_connect(
                    f"{edge.base}/ws", origin=edge.settings.server.origin, autoping=False
                )
                started = time.monotonic()
                # Both stay open well past every timeout: heartbeats keep coming on each.
                while time.monotonic() - started < 1.5:
                    message = await ws.receive(timeout=deadline(5))
                    assert message.type == aiohttp.WSMsgType.PING, message
                    await ws.pong(message.data)
                    line = await asyncio.wait_for(stream.content.readline(), deadline(5))
                    assert line, "the event stream was closed"
                assert not ws.closed
                await ws.close()
            stream.close()
        finally:
            for session in accounts.sessions:
                await session.close()


class BaseUrl:
    """What ``tests.conftest.new_session`` needs of a test client: the server's base URL."""

    def __init__(self, base: str) -> None:
        self.base = base

    def make_url(self, path: str) -> str:
        return self.base + path


# -- settings


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TELECONSULT_SERVER_HEADER_TIMEOUT_SECONDS", "0"),
        ("TELECONSULT_SERVER_BODY_TIMEOUT_SECONDS", "-1"),
        ("TELECONSULT_SERVER_KEEPALIVE_TIMEOUT_SECONDS", "soon"),
        ("TELECONSULT_SERVER_MAX_CONNECTIONS", "0"),
    ],
)
def test_edge_settings_are_checked(name: str, value: str) -> None:
    key = "server." + name.removeprefix("TELECONSULT_SERVER_").lower()
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_settings(environ={name: value})


def test_edge_settings_have_sane_defaults_and_come_from_the_environment() -> None:
    server = load_settings(environ={}).server
    assert (server.header_timeout_seconds, server.body_timeout_seconds) == (10, 30)
    assert server.keepalive_timeout_seconds > 60  # above nginx's upstream keepalive_timeout
    assert server.max_connections == 1024
    server = load_settings(
        environ={
            "TELECONSULT_SERVER_HEADER_TIMEOUT_SECONDS": "2.5",
            "TELECONSULT_SERVER_MAX_CONNECTIONS": "64",
        }
    ).server
    assert (server.header_timeout_seconds, server.max_connections) == (2.5, 64)


# -- run.py serve itself


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes], Path]]:
    port = free_port()
    output = tmp_path / "output.log"
    env = {
        **command_env(),
        "PYTHONUNBUFFERED": "1",
        "TELECONSULT_SERVER_HEADER_TIMEOUT_SECONDS": "1",
        "TELECONSULT_SERVER_MAX_CONNECTIONS": "64",
    }
    with output.open("wb") as sink:
        proc = subprocess.Popen(
            [
                sys.executable,
                "run.py",
                "serve",
                "--port",
                str(port),
                "--no-setup-link",
                "--data-dir",
                str(tmp_path / "data"),
            ],
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        wait_for_port(port, proc, limit=deadline(30))
        yield port, proc, output
    finally:
        stop_process(proc)


async def test_run_py_serve_refuses_bad_and_slow_requests_with_one_line_each(
    served: tuple[int, subprocess.Popen[bytes], Path],
) -> None:
    port, proc, output = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n")
    status, headers, body = await read_response(reader)
    writer.close()
    assert status == 400 and json.loads(body)["error"]["code"] == "bad_request"
    assert_security_headers(headers)

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sender = asyncio.create_task(
        trickle(writer, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 200)
    )
    assert await closed_within(reader, within=10) == b""
    sender.cancel()
    writer.close()

    def closing_lines() -> list[str]:
        text = output.read_text(errors="replace")
        return [line for line in text.splitlines() if "closed the connection" in line]

    await wait_until(closing_lines, within=5)
    stop_process(proc)
    text = output.read_text(errors="replace")
    assert len(closing_lines()) == 1, text
    assert "no whole request head within 1 s" in closing_lines()[0]
    assert "Traceback" not in text and "aiohttp.server" not in text, text
