"""The Redis client the service opens leaves no socket behind once closed: not for a command
that starts during the close, nor for one whose connection was reconnected meanwhile."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from signaling.store.redis_client import close_redis, open_redis
from tests.servers import RedisServer


async def connections_named(server: RedisServer, name: str) -> int:
    """Connections Redis still has open for clients named ``name`` (other tests' clients,
    sharing this server, have other names or none)."""
    probe = open_redis(server.url)
    try:
        return sum(1 for c in await probe.client_list() if c["name"] == name)
    finally:
        await close_redis(probe)


async def test_a_closed_client_refuses_commands_instead_of_reconnecting(
    redis_server: RedisServer,
) -> None:
    client = open_redis(redis_server.url, client_name="refuses")
    await client.ping()
    assert await connections_named(redis_server, "refuses") == 1
    await close_redis(client)
    with pytest.raises(RedisConnectionError, match="closed"):
        await client.ping()
    assert await connections_named(redis_server, "refuses") == 0


async def test_a_connection_in_use_during_the_close_is_closed_when_handed_back(
    redis_server: RedisServer,
) -> None:
    client = open_redis(redis_server.url, client_name="handed-back")
    await client.ping()
    pool = client.connection_pool
    # A command in flight when the service stops: its connection is in use...
    held = await pool.get_connection()  # type: ignore[no-untyped-call]
    await close_redis(client)
    # ... and its retry reconnects it after the pool disconnected everything.
    await held.connect()
    assert held.is_connected
    await pool.release(held)
    assert not held.is_connected
    assert await connections_named(redis_server, "handed-back") == 0
