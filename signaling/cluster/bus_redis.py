"""The Bus for several instances: Redis pub/sub, one channel per instance.

Routing needs no lookup: a connection id is ``<instance id>.<random>``, so the instance (and
its channel ``tc:bus:<instance>``) is read from the id itself. The directory is therefore one
key per *instance*, ``tc:instance:<instance>``, with a TTL refreshed by a heartbeat: it says
whether the connections of that instance can still be alive (a SIGKILLed instance's key
expires after ``ttl`` seconds). A connection living in this process is delivered to in
process, without Redis.

Outgoing frames go through one sender task, in order, pipelined when they pile up; a frame
is ``connection id \\n close code (or nothing) \\n payload``. While Redis is away, frames for
other instances are dropped (counted), the subscriber reconnects, and peers already in a
call keep their media: it never passes through here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from signaling.live.bus import ForwardHandler, Inbox
from signaling.store.redis_client import close_redis, open_redis

log = logging.getLogger("teleconsult.bus")

RECONNECT_SECONDS = 0.2
# Frames waiting for Redis beyond this are dropped, oldest first (an outage must not grow the
# process without bound; they would be stale by the time Redis is back anyway).
MAX_PENDING = 10_000


class RedisBus:
    def __init__(self, url: str, prefix: str = "tc:", beat: float = 1.0) -> None:
        self.url = url
        self.p = prefix
        self.instance = secrets.token_hex(6)
        self.beat = beat
        # An instance silent for this long is taken for dead.
        self.ttl = 3 * beat
        self._inboxes: dict[str, Inbox] = {}
        self._outgoing: deque[tuple[str, bytes]] = deque(maxlen=MAX_PENDING)
        self._wake = asyncio.Event()
        self._redis: aioredis.Redis | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self.dropped = 0  # frames lost because Redis did not answer
        # Loop time since which the heartbeat succeeds without a gap (None: failing now).
        self.healthy_since: float | None = None
        # Whether our channel is subscribed: until it is, messages for us are lost.
        self.subscribed = False
        self._subscribed = asyncio.Event()
        # Told when another instance changed a shared room (None: any, messages were missed).
        self.on_room_changed: Callable[[str | None], None] = lambda room_id: None
        # Given the work another instance hands over (a recording message).
        self.on_forward: ForwardHandler = lambda frame: None

    # -- the Bus protocol

    def new_connection_id(self) -> str:
        return f"{self.instance}.{secrets.token_hex(8)}"

    @staticmethod
    def instance_of(connection_id: str) -> str:
        return connection_id.partition(".")[0]

    @property
    def ready(self) -> bool:
        return self.subscribed

    async def wait_ready(self, within: float) -> bool:
        """Wait (a little) for the subscription, e.g. just after Redis came back."""
        if not self.subscribed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._subscribed.wait(), within)
        return self.subscribed

    def is_local(self, connection_id: str) -> bool:
        return self.instance_of(connection_id) == self.instance

    def attach(self, connection_id: str, inbox: Inbox) -> None:
        self._inboxes[connection_id] = inbox

    def detach(self, connection_id: str) -> None:
        self._inboxes.pop(connection_id, None)

    def publish(self, connection_id: str, payload: bytes, close_code: int | None = None) -> bool:
        inbox = self._inboxes.get(connection_id)
        if inbox is not None:
            inbox(payload, close_code)
            return True
        instance = self.instance_of(connection_id)
        if not instance or instance == self.instance:
            return False  # one of ours, gone
        code = b"" if close_code is None else str(close_code).encode()
        self._outgoing.append((self._channel(instance), b"%s\n%s\n%s" % (
            connection_id.encode(), code, payload)))  # fmt: skip
        self._wake.set()
        return True

    def notify_room(self, instance: str, room_id: str) -> None:
        """A room changed: queued with the messages, so ``instance`` hears it before them."""
        self._outgoing.append((self._channel(instance), b"\nR\n" + room_id.encode()))
        self._wake.set()

    def forward(self, connection_id: str, frame: bytes) -> None:
        """Hand ``frame`` to the on_forward of ``connection_id``'s instance (in order with
        the messages)."""
        if self.is_local(connection_id):
            self.on_forward(frame)
            return
        channel = self._channel(self.instance_of(connection_id))
        self._outgoing.append((channel, b"\nF\n" + frame))
        self._wake.set()

    def __len__(self) -> int:
        return len(self._inboxes)

    # -- liveness

    def _channel(self, instance: str) -> str:
        return f"{self.p}bus:{instance}"

    def _instance_key(self, instance: str) -> str:
        return f"{self.p}instance:{instance}"

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            raise RuntimeError("the bus is not started")
        return self._redis

    async def alive(self, connection_ids: list[str]) -> list[bool]:
        """For each connection id: does its instance still beat? (Ours always does.)"""
        instances = [self.instance_of(c) for c in connection_ids]
        remote = sorted({i for i in instances if i != self.instance})
        found: dict[str, bool] = {self.instance: True}
        if remote:
            values = await self.redis.mget([self._instance_key(i) for i in remote])
            found.update({i: v is not None for i, v in zip(remote, values, strict=True)})
        return [found[i] for i in instances]

    def steady_for(self, seconds: float) -> bool:
        """True when Redis has answered every heartbeat for at least ``seconds`` (after an
        outage, other instances need a beat to show they are alive again)."""
        since = self.healthy_since
        return since is not None and asyncio.get_running_loop().time() - since >= seconds

    # -- lifecycle

    async def start(self) -> None:
        self._redis = open_redis(
            self.url,
            socket_timeout=2,
            socket_connect_timeout=2,
            # A silent connection (the subscriber's too) is found within a few seconds.
            health_check_interval=5,
            # One retry on a fresh connection: after an outage the pooled ones are all dead,
            # and a command must not fail for that once Redis is back.
            retry=Retry(NoBackoff(), 1),
        )
        loop = asyncio.get_running_loop()
        with contextlib.suppress(RedisError, OSError):
            await self._beat_once()
        self._tasks = [
            loop.create_task(self._send_loop()),
            loop.create_task(self._receive_loop()),
            loop.create_task(self._beat_loop()),
        ]
        # Serve only once our channel listens (when Redis answers): a socket taken before
        # could not hear its peer, and /readyz would say not ready.
        await self.wait_ready(2.0)

    async def close(self) -> None:
        # redis-py can swallow a cancellation that lands mid-command (seen when an app closes
        # right after start, its subscribe still in flight): the loops would then go on for
        # ever. So the loops also stop on a flag, and a task is cancelled again until done.
        self._closing = True
        self._wake.set()
        for task in self._tasks:
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=1)
        if self._redis is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._redis.delete(self._instance_key(self.instance))
            await close_redis(self._redis)
            self._redis = None

    async def _beat_once(self) -> None:
        await self.redis.set(self._instance_key(self.instance), b"1", px=int(self.ttl * 1000))
        if self.healthy_since is None:
            self.healthy_since = asyncio.get_running_loop().time()

    async def _beat_loop(self) -> None:
        while not self._closing:
            try:
                await self._beat_once()
            except (RedisError, OSError):
                self.healthy_since = None
            await asyncio.sleep(self.beat)

    async def _send_loop(self) -> None:
        outgoing = self._outgoing
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            while outgoing:
                batch = [outgoing.popleft() for _ in range(min(len(outgoing), 256))]
                try:
                    if len(batch) == 1:
                        await self.redis.publish(*batch[0])
                    else:
                        pipe = self.redis.pipeline(transaction=False)
                        for channel, frame in batch:
                            pipe.publish(channel, frame)
                        await pipe.execute()
                except (RedisError, OSError) as exc:
                    self.dropped += len(batch)
                    log.warning("bus: %d message(s) not sent: %s", len(batch), type(exc).__name__)

    async def _receive_loop(self) -> None:
        channel = self._channel(self.instance)
        while not self._closing:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(channel)
                self.subscribed = True
                self._subscribed.set()
                self.on_room_changed(None)  # whatever was said while unsubscribed is lost
                while not self._closing:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
                    if message is not None and message["type"] == "message":
                        self._deliver(message["data"])
            except (RedisError, OSError) as exc:
                if self.subscribed:
                    log.warning("bus: subscription lost (%s), reconnecting", type(exc).__name__)
            finally:
                self.subscribed = False
                self._subscribed.clear()
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            if not self._closing:
                await asyncio.sleep(RECONNECT_SECONDS)

    def _deliver(self, frame: bytes) -> None:
        connection_id, _, rest = frame.partition(b"\n")
        code, _, payload = rest.partition(b"\n")
        if not connection_id:
            if code == b"F":
                self.on_forward(payload)
            else:
                self.on_room_changed(payload.decode())
            return
        inbox = self._inboxes.get(connection_id.decode())
        if inbox is not None:
            inbox(payload, int(code) if code else None)
