"""Where a room's recording runs, and how the participants' recording messages reach it.

A recording session lives in one process: the one holding the doctor's socket (the doctor asks
to record, and the session owns a worker process there). A participant whose socket is in
another process (several instances) has its recording messages (request, consent, send-only
offer, withdrawal) and its departure handed over to that process on the bus
(``Bus.forward`` to the doctor's connection); the answers (the recorder's SDP answer, errors)
come back to the participant's socket with ``Bus.publish``, like any message.

Why the recorder is not a participant the room knows (Galène's ``diskwriter`` is one more
client of its group): there the media already flows through the server, and the disk writer is
one more receiver of it. Here media is peer to peer, and on the media side the recorder already
is a peer (each participant offers it a send-only connection). On the signaling side, a
recorder seat would add to the shared room state a seat that is no participant (no resume, no
waiting room, no audit as a person), created and removed in room transactions and freed by the
room watch when its process dies, while the routing it needs stays what is here: an envelope
(who sent it, from which connection) delivered to the process where the worker runs. More code
for the same routing, so the room stays two seats and the recording is reached through the bus.
"""

from __future__ import annotations

import asyncio

import msgspec

from signaling.errors import AppError
from signaling.keys import Services
from signaling.live.bus import Bus, Inbox
from signaling.live.protocol import (
    ErrorMessage,
    RecordingAnswer,
    RecordingConsent,
    RecordingOffer,
    RecordingRequest,
    RecordingState,
    RecordingStop,
    RecordingWithdraw,
    encode,
    message_type,
)
from signaling.live.room import Room, RoomState
from signaling.live.room_registry import RoomRegistry
from signaling.live.sdp import validate_sdp
from signaling.models import SeatRole
from signaling.recording.consent import ConsentState
from signaling.recording.recording_session import RecordingChange, RecordingSession
from signaling.store.base import StoreUnavailable

RecordingMessage = (
    RecordingRequest | RecordingConsent | RecordingWithdraw | RecordingStop | RecordingOffer
)
_DECODER: msgspec.json.Decoder[RecordingMessage] = msgspec.json.Decoder(RecordingMessage)


class ForwardedRecording(msgspec.Struct):
    """A participant's recording message sent to the instance its room records on."""

    room: str
    connection: str
    role: SeatRole
    message: bytes | None  # the client message as JSON; None: the participant left


class RoomRecordings:
    """The recording sessions of this process (one per room that ever asked to record) and
    the routing of recording messages to the process a room records in."""

    def __init__(self, services: Services, bus: Bus, rooms: RoomRegistry) -> None:
        self.services = services
        self.bus = bus
        self.rooms = rooms
        self.sessions: dict[str, RecordingSession] = {}
        self._forwarding = asyncio.Lock()

    # -- from a participant's connection (the role is the connection's, never the message's)

    async def receive(
        self,
        room: Room,
        connection_id: str,
        role: SeatRole,
        subject: str,
        message: RecordingMessage,
        reply: Inbox,
    ) -> None:
        home = self._home(room)
        if home is not None:
            # Several instances: the recording runs where the doctor's socket is.
            self._forward(home, room, connection_id, role, message)
            return
        await self._handle(room, role, subject, message, reply)

    async def participant_left(self, room: Room, connection_id: str, role: SeatRole) -> None:
        """A participant who can no longer withdraw is no longer recorded."""
        home = self._home(room)
        if home is None:
            await self.stop(room.id, "participant_left")
        else:
            self._forward(home, room, connection_id, role, None)

    async def stop(self, room_id: str, reason: str) -> None:
        session = self.sessions.get(room_id)
        if session is not None and session.state is not ConsentState.IDLE:
            await session.stop(reason)

    # -- where the recording runs

    def _home(self, room: Room) -> str | None:
        """Several instances: the doctor's connection when its socket is in another process
        (a room's recording runs in one process: the doctor's); None: here."""
        doctor = room.seats.get("doctor")
        if doctor is None or doctor.connection_id is None:
            return None
        return None if self.bus.is_local(doctor.connection_id) else doctor.connection_id

    def _forward(
        self,
        home: str,
        room: Room,
        connection_id: str,
        role: SeatRole,
        message: RecordingMessage | None,
    ) -> None:
        """Hand a recording message (None: the participant left) to the recording's home
        (``home``: the doctor's connection, in another process)."""
        forwarded = ForwardedRecording(
            room.id, connection_id, role, None if message is None else msgspec.json.encode(message)
        )
        self.bus.forward(home, msgspec.json.encode(forwarded))

    def forwarded(self, frame: bytes) -> None:
        """A recording message another instance handed over (bus callback: must not block)."""
        self.rooms.spawn(self._forwarded(msgspec.json.decode(frame, type=ForwardedRecording)))

    async def _forwarded(self, job: ForwardedRecording) -> None:
        # One at a time, in arrival order: a consent must not overtake the request before it.
        async with self._forwarding:
            room = self.rooms.get_or_create(job.room, "")
            if job.message is None:
                await self.stop(room.id, "participant_left")
                return
            message = _DECODER.decode(job.message)

            def reply(payload: bytes, close_code: int | None) -> None:
                self.bus.publish(job.connection, payload, close_code)

            try:
                await room.refresh()
                seat = room.seats.get(job.role)
                if seat is None or seat.connection_id != job.connection:
                    raise AppError("not_joined")
                await self._handle(room, job.role, seat.subject, message, reply)
            except AppError as error:
                ref = message_type(message)
                payload = encode(ErrorMessage(code=error.code, message=error.message, ref=ref))
                reply(payload, error.close_code)
            except StoreUnavailable:
                away = AppError("unavailable")
                reply(encode(ErrorMessage(code=away.code, message=away.message)), None)

    # -- where it runs: the session

    async def _handle(
        self,
        room: Room,
        role: SeatRole,
        subject: str,
        message: RecordingMessage,
        reply: Inbox,
    ) -> None:
        """One participant's recording message, handled where the room's recording runs."""
        if isinstance(message, RecordingWithdraw):
            # Withdrawing is always possible, whatever the room's state.
            await (await self._session_for(room)).withdraw(role, subject)
            return
        if isinstance(message, RecordingStop):
            # Like a withdrawal, possible whatever the room's state.
            await (await self._session_for(room)).stop_by(role, subject)
            return
        room.require(RoomState.IN_CALL, action="record")
        session = await self._session_for(room)
        if isinstance(message, RecordingRequest):
            await session.request(role, subject)
        elif isinstance(message, RecordingConsent):
            await session.answer(role, subject, message.granted)
        else:
            validate_sdp(message.sdp)
            reply(encode(RecordingAnswer(sdp=await session.offer(role, message.sdp))), None)

    async def _session_for(self, room: Room) -> RecordingSession:
        session = self.sessions.get(room.id)
        if session is None:
            consultation = await self.services.store.get_consultation(room.id)
            if consultation is None:
                raise AppError("consultation_not_found")

            async def announce(change: RecordingChange) -> None:
                message = encode(
                    RecordingState(
                        state=change.state,  # type: ignore[arg-type]
                        recording_id=change.recording_id,
                        reason=change.reason,
                    )
                )
                await room.refresh()  # shared rooms: the sockets as they are now
                room.send_raw("doctor", message)
                room.send_raw("patient", message)

            s = self.services
            session = RecordingSession(
                consultation,
                s.store,
                s.clock,
                s.settings,
                s.audit,
                announce,
                loopback=s.settings.recording.worker_loopback,
                turn_secret=s.turn_secret,
            )
            self.sessions[room.id] = session
        return session
