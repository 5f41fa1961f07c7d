"""The ``/ws`` endpoint: one connection's loop, its writer task and the dispatch table.

A connection reads frames in its own handler task and writes through one writer task fed by a
bounded queue, so a slow reader only ever stalls itself: when its queue is full it is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from signaling.bus import Bus
from signaling.errors import AppError
from signaling.http_api import client_address
from signaling.keys import Services
from signaling.models import Consultation
from signaling.models import SeatRole as Role
from signaling.protocol import (
    PROTOCOL_VERSION,
    SUPPORTED_VERSIONS,
    Admit,
    Answer,
    Candidate,
    Deny,
    EndOfCandidates,
    ErrorMessage,
    HangUp,
    Join,
    MalformedMessage,
    Offer,
    Ping,
    Pong,
    RecordingConsent,
    RecordingOffer,
    RecordingRequest,
    RecordingWithdraw,
    RelayedAnswer,
    RelayedCandidate,
    RelayedEndOfCandidates,
    RelayedOffer,
    Resume,
    Welcome,
    decode_client,
    encode,
    message_type,
)
from signaling.rate_limit import TokenBucket
from signaling.recording_routing import RecordingMessage, RoomRecordings
from signaling.rooms import JoinResult, Room, RoomRegistry, Seat
from signaling.sdp import MAX_TRICKLE_CANDIDATES, validate_candidate, validate_sdp
from signaling.store.base import StoreUnavailable
from signaling.turn import credential_expiry, ice_servers

log = logging.getLogger("teleconsult.ws")

# Close code for an error during the join phase whose kind has no close code of its own.
CLOSE_PROTOCOL_ERROR = 4400
# How long a close waits for the client's answering close frame (aiohttp's close timeout).
CLOSE_TIMEOUT = 2.0
# How long a join waits for the bus to be subscribed again (Redis just came back).
BUS_WAIT_SECONDS = 2.0


@dataclass
class Signaling:
    """What the signaling endpoint shares between connections of one application."""

    services: Services
    bus: Bus
    rooms: RoomRegistry
    # The recording sessions of this process, and where a room's recording runs.
    recordings: RoomRecordings
    sockets: weakref.WeakSet[web.WebSocketResponse] = field(default_factory=weakref.WeakSet)
    per_address: dict[str, int] = field(default_factory=dict)
    # Shared rooms: connection losses to save once Redis answers again (room, id, role).
    lost_later: list[tuple[Room, str, Role]] = field(default_factory=list)

    def acquire_address(self, address: str) -> bool:
        count = self.per_address.get(address, 0)
        if count >= self.services.settings.signaling.connections_per_address:
            return False
        self.per_address[address] = count + 1
        return True

    def release_address(self, address: str) -> None:
        count = self.per_address.get(address, 0) - 1
        if count <= 0:
            self.per_address.pop(address, None)
        else:
            self.per_address[address] = count


SIGNALING = web.AppKey("signaling", Signaling)


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
        "_consultation_end",
        "_loop_task",
        "_reading",
        "_woken",
        "_writer",
        "address",
        "bucket",
        "candidates",
        "closing",
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

    def __init__(self, signaling: Signaling, ws: web.WebSocketResponse, address: str) -> None:
        settings = signaling.services.settings.signaling
        self.id = signaling.bus.new_connection_id()
        self.signaling = signaling
        self.services = signaling.services
        self.ws = ws
        self.address = address
        self.outbox: deque[tuple[bytes, int | None]] = deque()
        self.limit = settings.send_queue_size
        loop = asyncio.get_running_loop()
        self.bucket = TokenBucket(settings.messages_per_second, settings.message_burst, loop.time())
        self.room: Room | None = None
        self.role: Role = "patient"
        self.closing = False
        self.hung_up = False
        self._writer: asyncio.Task[None] | None = None
        # The task running ``run`` (this is made in it), and while it waits in receive(), a
        # future done when it stops waiting; _woken: the writer interrupted that wait.
        self._loop_task = asyncio.current_task()
        self._reading: asyncio.Future[None] | None = None
        self._woken = False
        self._consultation_end = 0.0
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
                    self.signaling.lost_later.append((self.room, self.id, self.role))
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
            if isinstance(message, Join):
                await self._join(message)
            elif isinstance(message, Resume):
                await self._resume(message)
            else:
                raise AppError("not_joined", "The first message must be join or resume.")
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
        handlers = _HANDLERS
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
                kind = type(message)
                if kind in _RELAYED:
                    started = loop.time()
                    await handlers[kind](self, message)
                    relay_seconds.observe(loop.time() - started)
                else:
                    await handlers[kind](self, message)
            except AppError as error:
                self.send_error(error, ref=message_type(message))
            except StoreUnavailable:
                self.services.metrics.store_errors.inc()
                self.send_error(AppError("unavailable"), ref=message_type(message))
            except Exception:
                log.exception("connection %s: unhandled error", self.id)
                self.send_error(AppError("internal_error"), ref=message_type(message))

    # -- join and resume

    async def _audit_refusal(self, reason: str, **details: Any) -> None:
        await self.services.audit.record(
            "signaling.token_refused",
            actor="unknown",
            actor_role="unknown",
            outcome="refused",
            address=self.address,
            reason=reason,
            **details,
        )

    def _welcome(self, room: Room, resumed: bool) -> Callable[[JoinResult], None]:
        services = self.services
        settings = services.settings
        consultation_end = self._consultation_end

        def send(result: JoinResult) -> None:
            expires = credential_expiry(
                services.clock.now(),
                consultation_end,
                settings.security.invite_grace_minutes * 60,
                settings.turn.max_credential_hours,
            )
            servers, ice_expires = ice_servers(
                settings.turn, services.turn_secret, f"{self.role}.{room.id}", expires
            )
            welcome = Welcome(
                v=PROTOCOL_VERSION,
                room=room.id,
                role=self.role,
                state=result.state.value,
                ice_servers=servers,
                resume=result.resume_secret,
                resume_grace_seconds=settings.signaling.resume_grace_seconds,
                ice_expires_at=ice_expires,
                resumed=resumed,
                recording_available=settings.recording.enabled,
                recording_retention_days=settings.recording.retention_days,
            )
            self.deliver(encode(welcome), None)

        return send

    async def _open_consultation(self, room_id: str) -> Consultation:
        consultation = await self.services.store.get_consultation(room_id)
        if consultation is None:
            raise AppError("consultation_not_found")
        self.services.consultations.ensure_open(consultation)
        self._consultation_end = consultation.scheduled_end
        return consultation

    async def _join(self, message: Join) -> None:
        if message.v not in SUPPORTED_VERSIONS:
            raise AppError("unsupported_version", details={"supported": [PROTOCOL_VERSION]})
        try:
            claims = await self.services.room_tokens.redeem(message.token)
            consultation = await self._open_consultation(claims.room)
            if claims.role == "patient" and claims.generation != consultation.invite_generation:
                # Minted before the doctor re-issued the invite (a leaked link's token lives
                # up to 120 s): it must not take, nor push anyone out of, the patient seat.
                raise AppError("invite_superseded")
        except AppError as error:
            await self._audit_refusal(error.code)
            raise
        room = self.signaling.rooms.get_or_create(claims.room, consultation.patient_name)
        # Known before the first await of the join: if this task dies there (the client drops
        # and aiohttp cancels the handler), run() still frees the seat.
        self.role = claims.role
        self.room = room
        await room.join(
            self.id,
            claims.role,
            claims.subject,
            self.address,
            self._welcome(room, False),
            claims.generation,
        )
        if claims.role == "patient":
            # A re-issue between the check above and the seat: its show-out may have found
            # the room without this seat, so look again now that the seat is saved.
            now = await self.services.store.get_consultation(claims.room)
            if now is not None and now.invite_generation != claims.generation:
                await self.signaling.rooms.supersede_patient(room.id, now.invite_generation)

    async def _resume(self, message: Resume) -> None:
        if message.v not in SUPPORTED_VERSIONS:
            raise AppError("unsupported_version", details={"supported": [PROTOCOL_VERSION]})
        found = await self.signaling.rooms.find_resume(message.resume)
        if found is None:
            await self._audit_refusal("resume_invalid")
            raise AppError("token_invalid", "This place can no longer be resumed.")
        room, role, secret_hash = found
        try:
            consultation = await self._open_consultation(room.id)
        except AppError as error:
            await self._audit_refusal(error.code)
            raise
        self.role = role
        self.room = room
        try:
            await room.resume(
                self.id,
                role,
                self._welcome(room, True),
                secret_hash,
                consultation.invite_generation,
            )
        except AppError as error:
            if error.code == "invite_superseded":  # the seat of a replaced link
                await self._audit_refusal(error.code)
            raise

    async def _on_second_join(self, message: Join | Resume) -> None:
        raise AppError("already_joined")

    # -- in the room

    def _joined(self) -> Room:
        if self.room is None:
            raise AppError("not_joined")
        return self.room

    async def _seat(self) -> Seat:
        room = self._joined()
        await room.refresh()  # shared rooms: as saved, not as this handle last saw them
        seat = room.seats.get(self.role)
        if seat is None or seat.connection_id != self.id:
            raise AppError("not_joined")
        return seat

    async def _on_admit(self, message: Admit) -> None:
        await self._seat()
        await self._joined().admit(self.role)

    async def _on_deny(self, message: Deny) -> None:
        await self._seat()
        await self._joined().deny(self.role)

    async def _on_offer(self, message: Offer) -> None:
        await self._seat()
        room = self._joined()
        peer = room.relay_target(self.role)
        self.candidates = validate_sdp(message.sdp)
        room.send_raw(peer, encode(RelayedOffer(sdp=message.sdp, ice_restart=message.ice_restart)))

    async def _on_answer(self, message: Answer) -> None:
        await self._seat()
        room = self._joined()
        peer = room.relay_target(self.role)
        self.candidates = validate_sdp(message.sdp)
        room.send_raw(peer, encode(RelayedAnswer(sdp=message.sdp)))

    async def _on_candidate(self, message: Candidate) -> None:
        await self._seat()
        room = self._joined()
        peer = room.relay_target(self.role)
        validate_candidate(message.candidate, message.sdp_mid)
        if self.candidates >= MAX_TRICKLE_CANDIDATES:
            raise AppError(
                "too_many_candidates",
                f"More than {MAX_TRICKLE_CANDIDATES} candidates for one description.",
            )
        self.candidates += 1
        relayed = RelayedCandidate(
            candidate=message.candidate,
            sdp_mid=message.sdp_mid,
            sdp_mline_index=message.sdp_mline_index,
        )
        room.send_raw(peer, encode(relayed))

    async def _on_end_of_candidates(self, message: EndOfCandidates) -> None:
        await self._seat()
        room = self._joined()
        room.send_raw(room.relay_target(self.role), encode(RelayedEndOfCandidates()))

    async def _on_hang_up(self, message: HangUp) -> None:
        seat = await self._seat()
        room = self._joined()
        if message.end and self.role == "doctor":
            consultation = await self.services.store.get_consultation(room.id)
            if consultation is not None:
                await self.services.consultations.end(consultation)
            self.hung_up = True
            await room.end("ended_by_doctor", seat)
            return
        if message.end:
            raise AppError("forbidden", "Only the doctor ends the consultation.")
        self.hung_up = True
        await room.hang_up(self.id, self.role)

    async def _on_ping(self, message: Ping) -> None:
        self.deliver(encode(Pong(id=message.id)), None)

    # -- recording consent: the role is the connection's, never taken from a message

    async def _on_recording(self, message: RecordingMessage) -> None:
        seat = await self._seat()
        await self.signaling.recordings.receive(
            self._joined(), self.id, self.role, seat.subject, message, self.deliver
        )


# Messages relayed to the other participant: their handling time feeds the relay histogram.
_RELAYED = frozenset({Offer, Answer, Candidate, EndOfCandidates})

# The dispatch table: one handler per client message type (join/resume only come first).
_HANDLERS: dict[type[Any], Callable[[Connection, Any], Awaitable[None]]] = {
    Admit: Connection._on_admit,
    Deny: Connection._on_deny,
    Offer: Connection._on_offer,
    Answer: Connection._on_answer,
    Candidate: Connection._on_candidate,
    EndOfCandidates: Connection._on_end_of_candidates,
    HangUp: Connection._on_hang_up,
    Ping: Connection._on_ping,
    Join: Connection._on_second_join,
    Resume: Connection._on_second_join,
    RecordingRequest: Connection._on_recording,
    RecordingConsent: Connection._on_recording,
    RecordingWithdraw: Connection._on_recording,
    RecordingOffer: Connection._on_recording,
}


async def websocket_handler(request: web.Request) -> web.StreamResponse:
    signaling = request.app[SIGNALING]
    settings = signaling.services.settings
    # Refused before the upgrade: no WebSocket is ever opened for a foreign page.
    if request.headers.get("Origin") != settings.server.origin:
        signaling.services.metrics.refusals.labels("origin_refused").inc()
        raise AppError("origin_refused")
    address = client_address(request)
    if not signaling.acquire_address(address):
        signaling.services.metrics.refusals.labels("too_many_connections").inc()
        raise AppError("too_many_connections")
    try:
        ws = web.WebSocketResponse(
            # How long a close waits for the client's answering close frame.
            timeout=CLOSE_TIMEOUT,
            heartbeat=settings.signaling.heartbeat_seconds,
            max_msg_size=settings.signaling.max_message_bytes,
            compress=False,
            decode_text=False,
        )
        await ws.prepare(request)
        signaling.sockets.add(ws)
        await Connection(signaling, ws, address).run()
        return ws
    finally:
        signaling.release_address(address)


def setup_websocket(app: web.Application, signaling: Signaling) -> None:
    """Serve ``/ws`` with ``signaling``; its sockets close (going away) at shutdown."""
    app[SIGNALING] = signaling
    app.router.add_get("/ws", websocket_handler)

    async def close_sockets(app: web.Application) -> None:
        sockets = list(app[SIGNALING].sockets)
        await asyncio.gather(
            *(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown") for ws in sockets),
            return_exceptions=True,
        )

    app.on_shutdown.append(close_sockets)
