"""Which page origins the service answers for: with no public_url, every loopback alias of its
own port (a newcomer opens the 127.0.0.1 address the service prints); with one, only it."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from config import ServerSettings, Settings
from signaling.errors import KINDS

PORT = 8080


def test_loopback_aliases_are_allowed_without_a_public_url() -> None:
    server = ServerSettings(host="127.0.0.1", port=PORT)
    assert server.allowed_origins == {
        "http://localhost:8080",
        "http://127.0.0.1:8080",
        "http://[::1]:8080",
    }
    assert server.origin == "http://localhost:8080"  # links keep one form


def test_a_public_url_is_the_only_origin() -> None:
    server = ServerSettings(host="127.0.0.1", port=PORT, public_url="https://visio.clinic.example")
    assert server.allowed_origins == {"https://visio.clinic.example"}


def test_a_named_host_is_the_only_origin() -> None:
    server = ServerSettings(host="visio.lan", port=PORT)
    assert server.allowed_origins == {"http://visio.lan:8080"}


async def test_a_form_posted_from_127_0_0_1_is_not_refused_for_its_origin(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    port = settings.server.port
    for origin in (f"http://127.0.0.1:{port}", f"http://[::1]:{port}", f"http://localhost:{port}"):
        resp = await client.post(
            "/api/auth/login",
            json={"username": "nobody.here", "password": "not the password"},
            headers={"Origin": origin},
        )
        assert resp.status == 401, origin
        assert (await resp.json())["error"]["code"] == "invalid_credentials"


async def test_a_foreign_origin_is_refused_with_what_to_do(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    port = settings.server.port
    for origin in (
        f"http://127.0.0.2:{port}",
        f"http://127.0.0.1:{port + 1}",
        "https://evil.example",
    ):
        resp = await client.post(
            "/api/auth/login",
            json={"username": "nobody.here", "password": "not the password"},
            headers={"Origin": origin},
        )
        assert resp.status == 403, origin
        body = await resp.json()
        assert body["error"]["code"] == "origin_refused"
        assert "server.public_url" in body["error"]["message"]
        assert "expired" not in body["error"]["message"]
    assert "server.public_url" in KINDS["origin_refused"].message


async def test_the_websocket_accepts_every_loopback_alias_and_refuses_others(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    port = settings.server.port
    ws = await client.ws_connect("/ws", headers={"Origin": f"http://127.0.0.1:{port}"})
    assert not ws.closed
    await ws.close()
    try:
        await client.ws_connect("/ws", headers={"Origin": f"http://127.0.0.2:{port}"})
    except aiohttp.WSServerHandshakeError as refused:
        assert refused.status == 403
    else:
        raise AssertionError("a foreign origin was upgraded")
