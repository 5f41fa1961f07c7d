"""Consultation rooms: one doctor seat, one patient seat, a waiting room and a state machine.

State machine (``Room.state``)::

    waiting ──admit──► in_call ──patient leaves / is replaced / times out──► waiting
       │                  │
       └──────end─────────┴──────► ended   (terminal: the consultation is over)

Presence is separate from state: a seat is *connected* (a live connection holds it) or
*disconnected* (its connection dropped; the seat is kept for ``resume_grace`` seconds and
can be taken back with the resume secret), or absent.

Rules (see docs/protocol.md, "Rooms"):

* the room token's role decides the seat, so there is no third person: a newer connection
  for a role replaces the older one, which is closed with 4000 "replaced";
* a patient joining with a fresh token always goes through the waiting room, even if an
  earlier connection of the patient was admitted; only ``resume`` keeps an admitted place;
* nothing is relayed between the peers unless the room is ``in_call`` and both are connected.

Rooms never touch a socket: they publish encoded messages to connection ids on the Bus.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from signaling.bus import Bus
from signaling.errors import AppError
from signaling.protocol import (
    Admitted,
    Denied,
    Ended,
    EndReason,
    ErrorMessage,
    LeaveReason,
    Lobby,
    PeerJoined,
    PeerLeft,
    Role,
    ServerBase,
    Waiting,
    WaitingPatient,
    encode,
)

log = logging.getLogger("teleconsult.rooms")

CLOSE_NORMAL = 1000


class RoomState(StrEnum):
    WAITING = "waiting"
    IN_CALL = "in_call"
    ENDED = "ended"


_TRANSITIONS: dict[RoomState, frozenset[RoomState]] = {
    RoomState.WAITING: frozenset({RoomState.IN_CALL, RoomState.ENDED}),
    RoomState.IN_CALL: frozenset({RoomState.WAITING, RoomState.ENDED}),
    RoomState.ENDED: frozenset(),
}


class InvalidTransition(AppError):
    """The one error for a move the room's state machine does not allow."""

    def __init__(self, current: RoomState, wanted: RoomState | str) -> None:
        super().__init__("invalid_state", details={"state": current.value})
        self.current = current
        self.wanted = wanted


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def other(role: Role) -> Role:
    return "patient" if role == "doctor" else "doctor"


@dataclass(slots=True)
class Seat:
    role: Role
    subject: str
    connection_id: str | None
    resume_hash: str
    since: float  # wall-clock time the seat was taken (shown to the doctor for a patient)
    address: str = ""
    expiry: asyncio.TimerHandle | None = None
    # Trickled candidates since this side's last description.
    candidates: int = 0

    @property
    def connected(self) -> bool:
        return self.connection_id is not None


AuditHook = Callable[..., Awaitable[Any]]


@dataclass
class JoinResult:
    seat: Seat
    resume_secret: str
    state: RoomState


@dataclass
class Room:
    id: str
    patient_name: str
    registry: RoomRegistry
    state: RoomState = RoomState.WAITING
    seats: dict[Role, Seat] = field(default_factory=dict)

    # -- state machine

    def _transition(self, new: RoomState) -> None:
        if new not in _TRANSITIONS[self.state]:
            raise InvalidTransition(self.state, new)
        log.info("room %s: state %s -> %s", self.id, self.state.value, new.value)
        self.state = new

    def require(self, *states: RoomState, action: str) -> None:
        if self.state not in states:
            raise InvalidTransition(self.state, action)

    # -- delivery

    def _send(self, role: Role, message: ServerBase, close_code: int | None = None) -> None:
        seat = self.seats.get(role)
        if seat is not None and seat.connection_id is not None:
            self.registry.bus.publish(seat.connection_id, encode(message), close_code)

    def send_raw(self, role: Role, payload: bytes) -> bool:
        seat = self.seats.get(role)
        if seat is None or seat.connection_id is None:
            return False
        return self.registry.bus.publish(seat.connection_id, payload, None)

    def _lobby(self) -> Lobby:
        patient = self.seats.get("patient")
        if self.state is RoomState.WAITING and patient is not None:
            return Lobby(waiting=WaitingPatient(name=self.patient_name, since=patient.since))
        return Lobby()

    def connected(self, role: Role) -> bool:
        seat = self.seats.get(role)
        return seat is not None and seat.connected

    # -- joining, resuming, leaving

    def _new_secret(self, seat: Seat) -> str:
        secret = secrets.token_urlsafe(32)
        self.registry.forget_resume(seat.resume_hash)
        seat.resume_hash = _hash_secret(secret)
        self.registry.remember_resume(seat.resume_hash, self.id, seat.role)
        return secret

    async def join(
        self,
        connection_id: str,
        role: Role,
        subject: str,
        address: str,
        welcome: Callable[[JoinResult], None],
    ) -> JoinResult:
        """Seat a fresh connection for ``role`` (a valid room token was redeemed for it)."""
        self.require(RoomState.WAITING, RoomState.IN_CALL, action="join")
        old = self.seats.get(role)
        replaced = old is not None
        call_ended = False
        if old is not None:
            # Told before the release, which forgets whether the old connection was live.
            if old.connected and self.state is RoomState.IN_CALL:
                self._send(other(role), PeerLeft(role=role, reason="replaced"))
            self._release(old, close=True)
            if role == "patient" and self.state is RoomState.IN_CALL:
                self._transition(RoomState.WAITING)
                call_ended = True
        seat = Seat(role, subject, connection_id, "", time.time(), address)
        self.seats[role] = seat
        result = JoinResult(seat, self._new_secret(seat), self.state)
        welcome(result)
        if role == "patient":
            self._send("patient", Waiting())
            self._send("doctor", self._lobby())
        else:
            self._send("doctor", self._lobby())
            if self.state is RoomState.IN_CALL and self.connected("patient"):
                self._send("doctor", PeerJoined(role="patient"))
                self._send("patient", PeerJoined(role="doctor"))
        # Audits last: the state above changed without an await in between.
        if call_ended:
            await self.registry.audit_call_end(self, "replaced")
        await self.registry.audit(
            self, "signaling.join", seat, replaced=replaced, state=result.state.value
        )
        if role == "patient":
            await self.registry.audit(self, "signaling.waiting", seat)
        return result

    async def resume(
        self, connection_id: str, role: Role, welcome: Callable[[JoinResult], None]
    ) -> JoinResult:
        """Give a seat back to a new connection that proved it held it (resume secret)."""
        self.require(RoomState.WAITING, RoomState.IN_CALL, action="resume")
        seat = self.seats.get(role)
        if seat is None:
            raise AppError("token_invalid", "This place can no longer be resumed.")
        if seat.expiry is not None:
            seat.expiry.cancel()
            seat.expiry = None
        was_connected = seat.connected
        if seat.connection_id is not None:
            # A half-open socket the server had not noticed yet: the new one wins.
            self._close_connection(seat.connection_id, "replaced")
        seat.connection_id = connection_id
        seat.candidates = 0
        result = JoinResult(seat, self._new_secret(seat), self.state)
        welcome(result)
        if self.state is RoomState.IN_CALL:
            if self.connected(other(role)):
                if was_connected:
                    self._send(other(role), PeerLeft(role=role, reason="disconnected"))
                self._send(other(role), PeerJoined(role=role, resumed=True))
                self._send(role, PeerJoined(role=other(role)))
        elif role == "patient":
            self._send("patient", Waiting())
        else:
            self._send("doctor", self._lobby())
        await self.registry.audit(self, "signaling.resume", seat, state=self.state.value)
        return result

    def _close_connection(self, connection_id: str, code: str) -> None:
        error = AppError(code)
        payload = encode(ErrorMessage(code=error.code, message=error.message))
        self.registry.bus.publish(connection_id, payload, error.close_code or CLOSE_NORMAL)

    def _release(self, seat: Seat, *, close: bool) -> None:
        """Free a seat; with ``close``, the connection still holding it is closed (replaced)."""
        if seat.expiry is not None:
            seat.expiry.cancel()
            seat.expiry = None
        if close and seat.connection_id is not None:
            self._close_connection(seat.connection_id, "replaced")
        self.registry.forget_resume(seat.resume_hash)
        if self.seats.get(seat.role) is seat:
            del self.seats[seat.role]

    async def _leave(self, seat: Seat, reason: LeaveReason) -> None:
        role = seat.role
        self._release(seat, close=False)
        if role == "patient":
            call_ended = self.state is RoomState.IN_CALL
            if call_ended:
                self._transition(RoomState.WAITING)
                if reason != "disconnected":  # the doctor heard that when the socket dropped
                    self._send("doctor", PeerLeft(role="patient", reason=reason))
            self._send("doctor", self._lobby())
            self.registry.discard_if_empty(self)
            if call_ended:
                await self.registry.audit_call_end(self, reason)
            return
        if self.state is RoomState.IN_CALL and reason != "disconnected":
            self._send("patient", PeerLeft(role="doctor", reason=reason))
        self.registry.discard_if_empty(self)

    async def hang_up(self, connection_id: str, role: Role) -> None:
        """The participant leaves for good (its connection is then closed normally)."""
        seat = self.seats.get(role)
        if seat is None or seat.connection_id != connection_id:
            return
        self.registry.bus.publish(connection_id, b"", CLOSE_NORMAL)
        seat.connection_id = None
        await self._leave(seat, "left")

    async def connection_lost(self, connection_id: str, role: Role) -> None:
        """The socket dropped without a hang-up: keep the seat for the resume grace period."""
        seat = self.seats.get(role)
        if seat is None or seat.connection_id != connection_id:
            return  # replaced, released or ended already
        seat.connection_id = None
        if self.state is RoomState.IN_CALL:
            self._send(other(role), PeerLeft(role=role, reason="disconnected"))
        loop = asyncio.get_running_loop()
        seat.expiry = loop.call_later(
            self.registry.resume_grace, self.registry.spawn_expiry, self, seat
        )
        await self.registry.audit(self, "signaling.disconnected", seat)

    async def expire(self, seat: Seat) -> None:
        seat.expiry = None
        if self.seats.get(seat.role) is not seat or seat.connected:
            return
        log.info("room %s: %s did not come back", self.id, seat.role)
        await self._leave(seat, "disconnected")

    # -- the doctor's decisions

    async def admit(self, role: Role) -> None:
        if role != "doctor":
            raise AppError("forbidden", "Only the doctor admits.")
        self.require(RoomState.WAITING, action="admit")
        if not self.connected("patient"):
            raise AppError("peer_absent", "Nobody is in the waiting room.")
        self._transition(RoomState.IN_CALL)
        patient = self.seats["patient"]
        self._send("patient", Admitted())
        self._send("doctor", Lobby())
        self._send("patient", PeerJoined(role="doctor"))
        self._send("doctor", PeerJoined(role="patient"))
        await self.registry.audit(self, "signaling.admitted", patient)
        await self.registry.audit(self, "call.started", self.seats["doctor"])

    async def deny(self, role: Role) -> None:
        if role != "doctor":
            raise AppError("forbidden", "Only the doctor denies.")
        self.require(RoomState.WAITING, action="deny")
        patient = self.seats.get("patient")
        if patient is None:
            raise AppError("peer_absent", "Nobody is in the waiting room.")
        if patient.connection_id is not None:
            self._send("patient", Denied(), close_code=AppError("denied").close_code)
        self._release(patient, close=False)
        self._send("doctor", self._lobby())
        await self.registry.audit(self, "signaling.denied", patient, outcome="denied")

    async def end(self, reason: EndReason, by: Seat | None) -> None:
        """The consultation is over: tell everyone, close every connection, forget the room."""
        was_in_call = self.state is RoomState.IN_CALL
        self._transition(RoomState.ENDED)
        close_code = AppError("consultation_ended").close_code
        for role in ("doctor", "patient"):
            self._send(role, Ended(reason=reason), close_code=close_code)
        for seat in list(self.seats.values()):
            self._release(seat, close=False)
        self.registry.discard(self)

        async def record() -> None:
            if was_in_call:
                await self.registry.audit_call_end(self, reason, by)
            if by is not None:
                await self.registry.audit(self, "consultation.ended", by, reason=reason)

        # The sockets are already told to close: the handler running this may be cancelled
        # when its client goes, but the audit entries must still be written.
        if was_in_call or by is not None:
            await asyncio.shield(record())

    # -- relay

    def relay_target(self, role: Role) -> Role:
        if self.state is not RoomState.IN_CALL:
            raise InvalidTransition(self.state, "relay")
        peer = other(role)
        if not self.connected(peer):
            raise AppError("peer_absent")
        return peer


class RoomRegistry:
    """Every room this process hosts, the resume-secret index and the audit hooks."""

    def __init__(self, bus: Bus, resume_grace: float, audit_hook: AuditHook) -> None:
        self.bus = bus
        self.resume_grace = resume_grace
        self._audit_hook = audit_hook
        self.rooms: dict[str, Room] = {}
        self._resume_index: dict[str, tuple[str, Role]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def get_or_create(self, room_id: str, patient_name: str) -> Room:
        room = self.rooms.get(room_id)
        if room is None:
            room = Room(room_id, patient_name, self)
            self.rooms[room_id] = room
        return room

    def discard(self, room: Room) -> None:
        if self.rooms.get(room.id) is room:
            del self.rooms[room.id]

    def discard_if_empty(self, room: Room) -> None:
        if not room.seats and room.state is RoomState.WAITING:
            self.discard(room)

    def remember_resume(self, secret_hash: str, room_id: str, role: Role) -> None:
        self._resume_index[secret_hash] = (room_id, role)

    def forget_resume(self, secret_hash: str) -> None:
        self._resume_index.pop(secret_hash, None)

    def find_resume(self, secret: str) -> tuple[Room, Role] | None:
        entry = self._resume_index.get(_hash_secret(secret))
        if entry is None:
            return None
        room = self.rooms.get(entry[0])
        return None if room is None else (room, entry[1])

    def spawn_expiry(self, room: Room, seat: Seat) -> None:
        task = asyncio.get_running_loop().create_task(room.expire(seat))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def audit(self, room: Room, action: str, seat: Seat, **details: Any) -> None:
        await self._audit_hook(room, action, seat, **details)

    async def audit_call_end(self, room: Room, reason: str, by: Seat | None = None) -> None:
        seat = by or room.seats.get("doctor") or Seat("doctor", "", None, "", 0.0)
        await self._audit_hook(room, "call.ended", seat, reason=reason)

    async def close(self) -> None:
        for room in list(self.rooms.values()):
            for seat in room.seats.values():
                if seat.expiry is not None:
                    seat.expiry.cancel()
        self.rooms.clear()
        self._resume_index.clear()
        for task in list(self._tasks):
            task.cancel()
