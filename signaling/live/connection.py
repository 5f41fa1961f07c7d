"""One WebSocket connection: its reader loop, its writer, and the table it dispatches through.

A connection reads frames in its own handler task and writes through one writer task fed by a
bounded queue, so a slow reader only ever stalls itself: when its queue is full it is dropped.
What each client message does is in :mod:`signaling.live.handlers`, registered by message type in
a :class:`MessageTable`; the loop here decodes, rate-limits, dispatches and answers errors.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import WSMsgType, web

from config.settings import SignalingSettings
from signaling.errors import AppError
from signaling.live.protocol import (
    ClientBase,
    ClientMessage,
    ErrorMessage,
    MalformedMessage,
    decode_client,
    encode,
    message_type,
)
from signaling.live.rate_limit import TokenBucket
from signaling.live.room import Room
from signaling.live.signaling_state import Signaling
from signaling.models import SeatRole
from signaling.store.base import StoreUnavailable

log = logging.getLogger("teleconsult.ws")

# Close code for an error during the join phase whose kind has no close code of its own.
CLOSE_PROTOCOL_ERROR = 4400
# How long a close waits for the client's answering close frame (aiohttp's close timeout).
CLOSE_TIMEOUT = 2.0
# How long a join waits for the bus to be subscribed again (Redis just came back).
BUS_WAIT_SECONDS = 2.0

M = TypeVar("M", bound=ClientBase)
# A handler of one client message type.
Handler = Callable[["Connection", M], Awaitable[None]]
_Dispatched = Callable[["Connection", ClientMessage], Awaitable[None]]


class MessageTable:
    """Client message type → its handler, each handler typed by the message it takes."""

    def __init__(self) -> None:
        self._handlers: dict[type[ClientBase], _Dispatched] = {}

    def add(self, message_type: type[M], handler: Handler[M]) -> None:
        async def dispatch(connection: Connection, message: ClientMessage) -> None:
            # Always true (the table is keyed by the type): it tells mypy what handler takes.
            if not isinstance(message, message_type):
                raise TypeError(f"{type(message).__name__} is not {message_type.__name__}")
            await handler(connection, message)

        self._handlers[message_type] = dispatch

    def on(self, message_type: type[M]) -> Callable[[Handler[M]], Handler[M]]:
        """Decorator: ``handler`` handles ``message_type``."""

        def register(handler: Handler[M]) -> Handler[M]:
            self.add(message_type, handler)
            return handler

        return register

    def handler_for(self, message: ClientMessage) -> _Dispatched | None:
        return self._handlers.get(type(message))


@dataclass(frozen=True)
class Dispatch:
    """How a connection handles client messages: ``first`` takes the first one (join or
    resume), ``in_room`` every one after; the handling time of the ``relayed`` types feeds
    the relay histogram."""

    first: MessageTable
    in_room: MessageTable
    relayed: frozenset[type[ClientBase]]


class _Socket(web.WebSocketResponse):
    """aiohttp's WebSocket, with its heartbeat kept off once closed.

    aiohttp (3.13, 3.14) re-arms the heartbeat when bytes arrive, closed or not: the client's
    answering close frame schedules a ping ``heartbeat`` seconds later, then a pong deadline,
    and those timers hold the closed socket, its request and its buffers that long (measured
    by bench/bench_soak.py: every socket of the last ~20 s kept, hundreds of KiB at a busy
    pace). Nothing is sent on a closed socket anyway."""

    def _reset_heartbeat(self) -> None:
        if not self.closed:
            super()._reset_heartbeat()


def new_socket(settings: SignalingSettings) -> web.WebSocketResponse:
    return _Socket(
        # How long a close waits for the client's answering close frame.
        timeout=CLOSE_TIMEOUT,
        heartbeat=settings.heartbeat_seconds,
        max_msg_size=settings.max_message_bytes,
        compress=False,
        decode_text=False,
    )


class Connection:
    """One WebSocket: its reader loop (``run``) and, while it has something to send, its writer.

    Outgoing messages wait in a bounded deque; at most one writer task drains it, started when
    the first message arrives and ending when the deque is empty, so an idle connection holds
    no task. Order is kept and nobody else ever writes to the socket.

    Only the writer closes the socket, and only once the loop has stopped reading: aiohttp
    takes a close made while ``receive()`` waits as already answered by the client and drops
    the TCP connection right after the close frame, so the client could not send its own
    close frame back (an aiohttp client then reports 1006 instead of the code it was sent).
    """

    __slots__ = (
        "_loop_task",
        "_reading",
        "_woken",
        "_writer",
        "address",
        "bucket",
        "candidates",
        "closing",
        "consultation_end",
        "dispatch",
        "hung_up",
        "id",
        "limit",
        "outbox",
        "role",
        "room",
        "services",
        "signaling",
        "ws",
    )

    def __init__(
        self,
        signaling: Signaling,
        ws: web.WebSocketResponse,
        address: str,
        dispatch: Dispatch,
    ) -> None:
        settings = signaling.services.settings.signaling
        self.id = signaling.bus.new_connection_id()
        self.signaling = signaling
        self.services = signaling.services
        self.ws = ws
        self.address = address
        self.dispatch = dispatch
        self.outbox: deque[tuple[bytes, int | None]] = deque()
        self.limit = settings.send_queue_size
        loop = asyncio.get_running_loop()
        self.bucket = TokenBucket(settings.messages_per_second, settings.message_burst, loop.time())
        self.room: Room | None = None
        self.role: SeatRole = "patient"
        self.closing = False
        self.hung_up = False
        self._writer: asyncio.Task[None] | None = None
        # The task running ``run`` (this is made in it), and while it waits in receive(), a
        # future done when it stops waiting; _woken: the writer interrupted that wait.
        self._loop_task = asyncio.current_task()
        self._reading: asyncio.Future[None] | None = None
        self._woken = False
        # The scheduled end of the consultation joined (for the TURN credentials' expiry).
        self.consultation_end = 0.0
        # Trickled candidates since this connection's last description.
        self.candidates = 0

    # -- writing

    def deliver(self, payload: bytes, close_code: int | None) -> None:
        """Queue a message (and maybe a close) without waiting: the Bus inbox of this connection."""
        if self.closing:
            return
        if close_code is not None:
            self.closing = True
        if len(self.outbox) >= self.limit:
            # The client does not read what it is sent: drop it rather than buffer forever.
            log.warning("connection %s: send queue full, dropping the client", self.id)
            self.closing = True
            self.outbox.clear()
            transport = self.ws._req.transport if self.ws._req is not None else None
            if transport is not None:
                transport.abort()
            return
        self.outbox.append((payload, close_code))
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        ws = self.ws
        outbox = self.outbox
        try:
            while outbox:
                payload, close_code = outbox.popleft()
                if ws.closed:
                    outbox.clear()
                    return
                if payload:
                    await ws.send_frame(payload, WSMsgType.TEXT)
                if close_code is not None:
                    outbox.clear()
                    await self._stop_reading()
                    await ws.close(code=close_code)
                    return
        except ConnectionError:
            # The peer went away while we wrote: the reader loop sees it and cleans up.
            self.closing = True
            outbox.clear()
        finally:
            self._writer = None

    async def _stop_reading(self) -> None:
        """Before the writer closes: get the loop out of receive() (see the class doc); it
        reads nothing more, as ``closing`` is set."""
        reading = self._reading
        if reading is None or self._loop_task is None:
            return
        if not reading.done():
            self._woken = True
            self._loop_task.cancel()
        await asyncio.shield(reading)

    def send_error(self, error: AppError, ref: str | None = None, at: str | None = None) -> None:
        payload = encode(ErrorMessage(code=error.code, message=error.message, ref=ref, at=at))
        self.deliver(payload, error.close_code)

    # -- the loop

    async def run(self) -> None:
        self.signaling.bus.attach(self.id, self.deliver)
        try:
            if await self._join_phase():
                await self._message_loop()
        finally:
            self.signaling.bus.detach(self.id)
            # aiohttp may cancel this handler as soon as the client's TCP connection is gone
            # (handler_cancellation; a shutdown does too): what follows the connection (the
            # recording stopped, the seat kept for a resume, its audit entry, the close
            # handshake) runs as a task of its own, which that cancellation does not cut short.
            await asyncio.shield(self.signaling.rooms.spawn(self._leave()))

    async def _leave(self) -> None:
        try:
            if self.room is not None:
                await self.signaling.recordings.participant_left(self.room, self.id, self.role)
            if self.room is not None and not self.hung_up:
                try:
                    await self.room.connection_lost(self.id, self.role)
                except StoreUnavailable:
                    # Shared rooms while Redis is away: saved once it is back.
                    self.signaling.rooms.lost_later.append((self.room, self.id, self.role))
            await self._finish_writer()
        finally:
            # Cancelled itself (server shutdown): never leave the writer behind.
            writer = self._writer
            if writer is not None and not writer.done():
                writer.cancel()

    async def _finish_writer(self) -> None:
        writer = self._writer
        if writer is not None:
            # Let queued messages (an error, a close) go out, but not forever. Even when the
            # socket is closed already the writer may be closing it, waiting for the client's
            # answering close frame: cutting that short would drop the connection under it.
            # So: CLOSE_TIMEOUT for the queued messages, CLOSE_TIMEOUT for the handshake.
            try:
                await asyncio.wait_for(asyncio.shield(writer), timeout=2 * CLOSE_TIMEOUT)
            except TimeoutError:
                writer.cancel()
            except (ConnectionError, RuntimeError):
                pass
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # this connection is cancelled itself (shutdown), not its writer
        if not self.ws.closed:
            await self.ws.close()

    async def _receive_frame(self, deadline: float | None = None) -> bytes | None:
        """The next text frame; None when the socket is closing (or was closed for a reason)."""
        if self.closing:
            return None  # the writer closes the socket: nothing more is read
        reading = self._reading = asyncio.get_running_loop().create_future()
        try:
            msg = await self.ws.receive(deadline)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._woken and task is not None and task.uncancel() == 0:
                return None  # the writer is about to close the socket
            raise
        finally:
            self._woken = False
            self._reading = None
            reading.set_result(None)
        if msg.type is WSMsgType.TEXT:
            data: bytes = msg.data if isinstance(msg.data, bytes) else msg.data.encode()
            return data
        if msg.type is WSMsgType.BINARY:
            self.send_error(AppError("binary_not_supported"))
            return None
        # CLOSE, CLOSING, CLOSED or ERROR (1009 for a frame above max_msg_size, sent by aiohttp).
        return None

    async def _join_phase(self) -> bool:
        timeout = self.services.settings.signaling.join_timeout_seconds
        metrics = self.services.metrics
        try:
            frame = await self._receive_frame(timeout)
        except TimeoutError:
            metrics.refusals.labels("join_timeout").inc()
            self.send_error(AppError("join_timeout"))
            return False
        if frame is None:
            return False
        try:
            message = decode_client(frame)
            if not await self.signaling.bus.wait_ready(BUS_WAIT_SECONDS):
                # Several instances: until our channel is subscribed again (after a Redis
                # outage) the other participant could not reach this connection.
                raise StoreUnavailable("the bus is not subscribed")
            handler = self.dispatch.first.handler_for(message)
            if handler is None:
                raise AppError("not_joined", "The first message must be join or resume.")
            await handler(self, message)
        except MalformedMessage as exc:
            metrics.refusals.labels("malformed_message").inc()
            self._close_with(AppError("malformed_message"), at=exc.at)
            return False
        except AppError as error:
            metrics.refusals.labels(error.code).inc()
            self._close_with(error)
            return False
        except StoreUnavailable:
            # The store (Redis) is away: a clear "try again" rather than an internal error.
            metrics.refusals.labels("unavailable").inc()
            metrics.store_errors.inc()
            self._close_with(AppError("unavailable"))
            return False
        metrics.joins.labels(self.role).inc()
        return True

    def _close_with(self, error: AppError, at: str | None = None) -> None:
        payload = encode(ErrorMessage(code=error.code, message=error.message, at=at))
        self.deliver(payload, error.close_code or CLOSE_PROTOCOL_ERROR)

    async def _message_loop(self) -> None:
        loop = asyncio.get_running_loop()
        table = self.dispatch.in_room
        relayed = self.dispatch.relayed
        relay_seconds = self.services.metrics.relay_seconds
        while not self.closing:
            frame = await self._receive_frame()
            if frame is None:
                return
            if not self.bucket.take(loop.time()):
                self.send_error(AppError("rate_limited"))
                return
            try:
                message = decode_client(frame)
            except MalformedMessage as exc:
                self.send_error(AppError("malformed_message"), at=exc.at)
                continue
            try:
                handler = table.handler_for(message)
                if handler is None:
                    raise TypeError(f"no handler for {type(message).__name__}")
                if type(message) in relayed:
                    started = loop.time()
                    await handler(self, message)
                    relay_seconds.observe(loop.time() - started)
                else:
                    await handler(self, message)
            except AppError as error:
                self.send_error(error, ref=message_type(message))
            except StoreUnavailable:
                self.services.metrics.store_errors.inc()
                self.send_error(AppError("unavailable"), ref=message_type(message))
            except Exception:
                log.exception("connection %s: unhandled error", self.id)
                self.send_error(AppError("internal_error"), ref=message_type(message))
