"""Short-lived keys in Redis (used token ids, used TOTP steps, failure counters, lockouts),
each with the TTL it is given: the part of the Store protocol that the Redis store answers
itself and that the PostgreSQL store hands to Redis when several instances share one.

Expiry follows the application's clock (passed in as ``now``), with a Redis TTL on top so
that nothing lingers. Each operation is one Lua script: never a read-modify-write left open.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError

from signaling.store.base import StoreUnavailable
from signaling.store.redis_client import close_redis, open_redis

T = TypeVar("T")

_CLAIM_ONCE = """
local expires = tonumber(redis.call('GET', KEYS[1]) or '0')
if expires > tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""

_INCR = """
local expires = tonumber(redis.call('HGET', KEYS[1], 'expires') or '0')
if expires > tonumber(ARGV[1]) then
  return redis.call('HINCRBY', KEYS[1], 'count', 1)
end
redis.call('HSET', KEYS[1], 'count', 1, 'expires', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

_GET_COUNT = """
local expires = tonumber(redis.call('HGET', KEYS[1], 'expires') or '0')
if expires > tonumber(ARGV[1]) then
  return tonumber(redis.call('HGET', KEYS[1], 'count'))
end
return 0
"""


def ttl_ms(seconds: float) -> int:
    # Redis-side TTL: the logical expiry plus a margin for clock skew between instances.
    return max(int((seconds + 60) * 1000), 1000)


async def redis_call(awaitable: Awaitable[T]) -> T:
    """Await a Redis command; a lost server is StoreUnavailable (503), like every backend's."""
    try:
        return await awaitable
    except (RedisConnectionError, TimeoutError, OSError) as exc:
        raise StoreUnavailable(str(exc)) from exc


class RedisShortLivedKeys:
    """claim_once, incr, get_count and delete_key of the Store protocol, on a Redis client
    that its owner opens and closes (``client`` answers it, or raises StoreUnavailable)."""

    def __init__(self, client: Callable[[], aioredis.Redis], prefix: str) -> None:
        self._client = client
        self.p = prefix

    async def claim_once(self, key: str, ttl: float, now: float) -> bool:
        result = await redis_call(
            self._client().eval(
                _CLAIM_ONCE, 1, f"{self.p}eph:{key}", repr(now), repr(now + ttl), str(ttl_ms(ttl))
            )
        )
        return int(result) == 1

    async def incr(self, key: str, ttl: float, now: float) -> int:
        result = await redis_call(
            self._client().eval(
                _INCR, 1, f"{self.p}cnt:{key}", repr(now), repr(now + ttl), str(ttl_ms(ttl))
            )
        )
        return int(result)

    async def get_count(self, key: str, now: float) -> int:
        # claim_once keys count as 1 while live, so a lock set with claim_once reads as set.
        claimed = await redis_call(self._client().get(f"{self.p}eph:{key}"))
        if claimed is not None and float(claimed) > now:
            return 1
        result = await redis_call(
            self._client().eval(_GET_COUNT, 1, f"{self.p}cnt:{key}", repr(now))
        )
        return int(result)

    async def delete_key(self, key: str) -> None:
        await redis_call(self._client().delete(f"{self.p}eph:{key}", f"{self.p}cnt:{key}"))


class RedisShortLivedStore(RedisShortLivedKeys):
    """Short-lived keys on a Redis client of their own: the PostgreSQL store's, when several
    instances share a Redis (the one of their bus and room states)."""

    def __init__(self, url: str, prefix: str = "tc:") -> None:
        super().__init__(self._connected, prefix)
        self.url = url
        self._redis: aioredis.Redis | None = None

    def _connected(self) -> aioredis.Redis:
        if self._redis is None:
            raise StoreUnavailable("short-lived keys are closed")
        return self._redis

    async def open(self) -> None:
        self._redis = open_redis(
            self.url,
            decode_responses=True,
            socket_timeout=5,
            socket_connect_timeout=5,
            health_check_interval=10,
            # One retry on a fresh connection, for a lost connection only: after Redis comes
            # back, the idle pooled connection is dead and nothing touched it during the
            # outage (no /readyz ping goes through here), so without it the first join after
            # the outage answered `unavailable`. A timeout is not retried (the command may
            # have run); a connection lost mid-reply can at worst run a script twice, which
            # refuses a claim or counts one failure more: never lets anything through.
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )

    async def close(self) -> None:
        if self._redis is not None:
            await close_redis(self._redis)
            self._redis = None
