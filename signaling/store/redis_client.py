"""A Redis client that opens no socket once it is closed.

redis-py's ``aclose()`` disconnects the connections its pool holds at that moment, but leaves
the pool usable: a command that starts while the close is under way (a task finishing its
last write as the service stops), or a retry that reconnects the connection in its hands,
opens a fresh socket that nobody closes. It lives until the garbage collector meets it, after
the event loop has gone (seen as "unclosed Connection" warnings in the test suite, once in a
few hundred app shutdowns). The pool here refuses new connections once closed, and closes
whatever is handed back to it after that.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError


class ClosingPool(aioredis.ConnectionPool):
    closed = False

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
        if self.closed:
            raise RedisConnectionError("the Redis client is closed")
        connection: AbstractConnection = await super().get_connection(  # type: ignore[no-untyped-call]
            *args, **kwargs
        )
        return connection

    async def release(self, connection: AbstractConnection) -> None:
        await super().release(connection)
        if self.closed:
            # In use during the close (its command may have reconnected it since).
            await connection.disconnect(nowait=True)

    async def aclose(self) -> None:
        self.closed = True
        await super().aclose()


def open_redis(url: str, **options: Any) -> aioredis.Redis:
    """A client for ``url`` (options as for ``redis.asyncio.from_url``). Close it with
    :func:`close_redis`."""
    return aioredis.Redis(connection_pool=ClosingPool.from_url(url, **options))


async def close_redis(client: aioredis.Redis) -> None:
    await client.aclose()
    pool = client.connection_pool
    await pool.aclose()
