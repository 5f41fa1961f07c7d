"""Redis stops: /healthz stays up, /readyz fails, joins get a clear 'unavailable'; Redis
comes back on the same data and everything works again, nothing stored lost."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from config import Settings
from signaling.app import create_app
from signaling.clock import ManualClock
from signaling.store.short_lived_redis import RedisShortLivedStore
from tests.conftest import Accounts
from tests.rtc import book, connect
from tests.servers import RedisServer


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def app(settings: Settings, clock: ManualClock, own_redis: RedisServer) -> web.Application:
    storage = dataclasses.replace(settings.storage, backend="redis", redis_url=own_redis.url)
    return create_app(dataclasses.replace(settings, storage=storage), clock=clock)


async def test_a_redis_outage_is_answered_clearly_and_nothing_is_lost(
    app: web.Application,
    client: TestClient[Any, Any],
    accounts: Accounts,
    clock: ManualClock,
    own_redis: RedisServer,
) -> None:
    await accounts.create("dr.outage")
    doctor = await accounts.sign_in("dr.outage")
    booking = await book(accounts, doctor, clock)
    token = await booking.doctor_token()
    port = own_redis.port
    own_redis.stop()
    assert (await client.get("/healthz")).status == 200
    resp = await client.get("/readyz")
    assert resp.status == 503
    assert (await resp.json())["error"]["code"] == "unavailable"
    resp = await doctor.client.get("/api/consultations")
    assert resp.status == 503
    ws = await connect(client)
    await ws.send({"type": "join", "v": 1, "token": token})
    error = await ws.expect_error("unavailable")
    assert error.code == "unavailable"
    assert await ws.closed_with() == 1013
    # Back on the same directory: the AOF replays, the data is all there.
    own_redis.port = port
    own_redis.start()
    # Ready again within the 10 s the issue allows: the store answers at once, the bus
    # channel is subscribed again a moment later (its reconnect loop), and /readyz waits
    # for both.
    back_at = time.monotonic()
    while (await client.get("/readyz")).status != 200:
        assert time.monotonic() - back_at < 10.0, "not ready 10 s after Redis returned"
        await asyncio.sleep(0.1)
    listed = await (await doctor.client.get("/api/consultations")).json()
    assert [c["id"] for c in listed["consultations"]] == [booking.consultation_id]
    ws = await connect(client)
    await ws.send({"type": "join", "v": 1, "token": await booking.doctor_token()})
    from signaling.live.protocol import Welcome

    assert (await ws.expect(Welcome)).role == "doctor"
    await ws.close()


async def test_short_lived_keys_answer_at_once_when_redis_is_back(own_redis: RedisServer) -> None:
    # PostgreSQL + Redis: the short-lived keys' own client sits idle through an outage (no
    # readiness check goes through it), so its pooled connection is dead when Redis returns;
    # the first claim after must still answer, not `unavailable` (a patient's first join).
    keys = RedisShortLivedStore(own_redis.url)
    await keys.open()
    try:
        assert await keys.claim_once("before", 60, time.time())
        port = own_redis.port
        own_redis.stop()  # and nothing asks it anything meanwhile
        own_redis.port = port
        own_redis.start()
        assert await keys.claim_once("after", 60, time.time())
        assert not await keys.claim_once("before", 60, time.time())  # kept through the outage
    finally:
        await keys.close()
