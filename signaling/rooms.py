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
* nothing is relayed between the peers unless the room is ``in_call`` and both are connected;
* a patient seat remembers the invite generation (which link) it came through: a re-issued
  invite shows that patient out (``supersede_patient``), whatever its state.

Rooms never touch a socket: they publish encoded messages to connection ids on the Bus.
Every public change runs as one *change* (``Room._change``): on one instance it is plain
in-memory code, as it always was; with shared state (``RoomRegistry.states``, several
instances) the room is taken alone, re-read, changed, saved, and only then are its messages
sent. Audit entries are written after the change, never while the room is held.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from signaling.audit import AuditTrail
from signaling.audit_actions import AuditAction
from signaling.bus import Bus
from signaling.errors import AppError, ErrorCode
from signaling.models import SeatRole as Role
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
    ServerBase,
    Waiting,
    WaitingPatient,
    encode,
)
from signaling.room_state import ResumeChanges, RoomStates, Snapshot, WaitingEntry

log = logging.getLogger("teleconsult.rooms")

CLOSE_NORMAL = 1000
# How long a shared room outlives its last change (a consultation is shorter), and how long
# an ended room is remembered as ended by the instances that still hold a handle on it.
ROOM_TTL_SECONDS = 12 * 3600.0
ENDED_TTL_SECONDS = 600.0


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


def hash_secret(secret: str) -> str:
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
    # Wall-clock time its connection dropped (0: connected or never lost).
    lost_at: float = 0.0
    # A patient's invite generation (the link it came through); 0 for the doctor.
    generation: int = 0

    @property
    def connected(self) -> bool:
        return self.connection_id is not None


AuditHook = Callable[..., Awaitable[Any]]


def seat_audit(trail: AuditTrail) -> AuditHook:
    """The rooms' audit hook: an entry on the room, written as by the seat's holder (a
    doctor's user id, or ``patient``)."""

    async def audit(room: Room, action: AuditAction, seat: Seat, **details: Any) -> None:
        outcome = details.pop("outcome", "success")
        actor = seat.subject.partition(":")[2] if seat.role == "doctor" else "patient"
        await trail.record(
            action,
            actor=actor or seat.role,
            actor_role=seat.role,
            target=room.id,
            outcome=outcome,
            address=seat.address,
            **details,
        )

    return audit


# Work left for after a change: audit writes (awaited once the room is let go).
Pending = list[Callable[[], Awaitable[Any]]]


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
    # Shared: bumped whenever the saved room may differ from this handle (a change by another
    # instance was announced, or a change here began); the handle is fresh while
    # ``_fresh_at == changes``, so relays need no read.
    changes: int = field(default=0, repr=False)
    _fresh_at: int = field(default=-1, repr=False)
    # During a shared change: what to send once saved, and the resume-index edits to save.
    _outbox: list[Callable[[], None]] | None = field(default=None, repr=False)
    _resume: ResumeChanges | None = field(default=None, repr=False)

    # -- state machine

    def _transition(self, new: RoomState) -> None:
        if new not in _TRANSITIONS[self.state]:
            raise InvalidTransition(self.state, new)
        log.info("room %s: state %s -> %s", self.id, self.state.value, new.value)
        self.state = new

    def require(self, *states: RoomState, action: str) -> None:
        if self.state not in states:
            raise InvalidTransition(self.state, action)

    # -- shared state

    def snapshot(self) -> Snapshot | None:
        """The room as saved for the other instances; None when there is nothing to keep."""
        if self.state is RoomState.WAITING and not self.seats:
            return None
        seats = {
            role: [
                s.subject,
                s.connection_id,
                s.resume_hash,
                s.since,
                s.address,
                s.lost_at,
                s.generation,
            ]
            for role, s in self.seats.items()
        }
        return {"state": self.state.value, "name": self.patient_name, "seats": seats}

    def restore(self, snapshot: Snapshot | None) -> None:
        """Take the saved state over this handle's (which may be stale)."""
        if snapshot is None:
            # Nothing saved: empty, unless this handle saw the end (ended is terminal).
            if self.state is not RoomState.ENDED:
                self.state = RoomState.WAITING
                self.seats = {}
            return
        self.state = RoomState(snapshot["state"])
        self.patient_name = snapshot["name"]
        # A seat saved by an instance that predates generations has six fields.
        self.seats = {
            role: Seat(role, s[0], s[1], s[2], s[3], s[4], s[5], s[6] if len(s) > 6 else 0)
            for role, s in snapshot["seats"].items()
        }

    @contextlib.asynccontextmanager
    async def _change(self) -> AsyncIterator[None]:
        """One change of the room. Shared: alone on it, re-read, saved, then sent."""
        states = self.registry.states
        if states is None:
            yield
            return
        token, snapshot = await states.begin(self.id)
        # No await from here to the end of the body: the change is synchronous. Its outbox
        # and resume edits are its own (the next change may begin before this one resumes).
        self.changes += 1  # a read in flight is older than this: it must not be restored
        self.restore(snapshot)
        before = [s.connection_id for s in self.seats.values() if s.connection_id]
        outbox: list[Callable[[], None]] = []
        resume = ResumeChanges()
        self._outbox, self._resume = outbox, resume
        try:
            yield
            self._outbox = self._resume = None
            ttl = ENDED_TTL_SECONDS if self.state is RoomState.ENDED else ROOM_TTL_SECONDS
            saved = (
                {"state": "ended", "name": self.patient_name, "seats": {}}
                if self.state is RoomState.ENDED
                else self.snapshot()
            )
            after = [s.connection_id for s in self.seats.values() if s.connection_id]
            await states.commit(self.id, token, saved, resume, ttl, self.waiting_entry())
        except BaseException:
            if self._outbox is outbox:
                self._outbox = self._resume = None
            # This handle may now hold changes that were never saved: read again next time.
            self.changes += 1
            with contextlib.suppress(Exception):
                await asyncio.shield(states.release(self.id, token))
            raise
        self.changes += 1
        self._fresh_at = self.changes
        # The other instances with a participant here hear of it before any of its messages.
        states.changed(self.id, before + after)
        for send in outbox:
            send()
        self.registry.forget_if_idle(self)

    async def refresh(self) -> None:
        """Shared: read the room as saved unless this handle is known fresh (before a
        relay); on one instance, nothing to do."""
        states = self.registry.states
        for _ in range(3):
            if states is None or self._fresh_at == self.changes:
                return
            at = self.changes
            self.accept(await states.read(self.id), at)

    def accept(self, snapshot: Snapshot | None, at: int) -> None:
        """Take a snapshot read when ``changes`` was ``at``, unless the room changed since
        (then it is older than what this handle knows, or about to be re-read)."""
        if self.changes == at:
            self.restore(snapshot)
            self._fresh_at = at

    # -- delivery

    def _later(self, send: Callable[[], None]) -> None:
        if self._outbox is None:
            send()
        else:
            self._outbox.append(send)

    def _publish(self, connection_id: str, payload: bytes, close_code: int | None) -> None:
        bus = self.registry.bus

        def send() -> None:
            bus.publish(connection_id, payload, close_code)

        self._later(send)

    def _send(self, role: Role, message: ServerBase, close_code: int | None = None) -> None:
        seat = self.seats.get(role)
        if seat is not None and seat.connection_id is not None:
            self._publish(seat.connection_id, encode(message), close_code)

    def send_raw(self, role: Role, payload: bytes) -> bool:
        seat = self.seats.get(role)
        if seat is None or seat.connection_id is None:
            return False
        return self.registry.bus.publish(seat.connection_id, payload, None)

    def _lobby(self) -> Lobby:
        patient = self.seats.get("patient")
        if self.state is RoomState.WAITING and patient is not None:
            return Lobby(
                waiting=WaitingPatient(
                    name=self.patient_name,
                    since=patient.since,
                    invite_generation=patient.generation,
                )
            )
        return Lobby()

    def connected(self, role: Role) -> bool:
        seat = self.seats.get(role)
        return seat is not None and seat.connected

    def waiting_entry(self) -> WaitingEntry | None:
        """Its patient, if one waits now (connected, not admitted): since when, which link."""
        patient = self.seats.get("patient")
        if self.state is RoomState.WAITING and patient is not None and patient.connected:
            return WaitingEntry(patient.since, patient.generation)
        return None

    # -- joining, resuming, leaving

    def _forget_resume(self, secret_hash: str) -> None:
        if self._resume is not None:
            self._resume.forget(secret_hash)
        else:
            self.registry.forget_resume(secret_hash)

    def _new_secret(self, seat: Seat) -> str:
        secret = secrets.token_urlsafe(32)
        self._forget_resume(seat.resume_hash)
        seat.resume_hash = hash_secret(secret)
        if self._resume is not None:
            self._resume.remember(seat.resume_hash, seat.role)
        else:
            self.registry.remember_resume(seat.resume_hash, self.id, seat.role)
        return secret

    async def join(
        self,
        connection_id: str,
        role: Role,
        subject: str,
        address: str,
        welcome: Callable[[JoinResult], None],
        generation: int = 0,
    ) -> JoinResult:
        """Seat a fresh connection for ``role`` (a valid room token was redeemed for it;
        ``generation``: a patient token's invite generation)."""
        pending: Pending = []
        async with self._change():
            result = self._join(connection_id, role, subject, address, welcome, pending, generation)
        for write in pending:
            await write()
        return result

    def _join(
        self,
        connection_id: str,
        role: Role,
        subject: str,
        address: str,
        welcome: Callable[[JoinResult], None],
        pending: Pending,
        generation: int,
    ) -> JoinResult:
        self.require(RoomState.WAITING, RoomState.IN_CALL, action="join")
        old = self.seats.get(role)
        replaced = old is not None
        if old is not None:
            # Told before the release, which forgets whether the old connection was live.
            if old.connected and self.state is RoomState.IN_CALL:
                self._send(other(role), PeerLeft(role=role, reason="replaced"))
            self._release(old, close=True)
            if role == "patient" and self.state is RoomState.IN_CALL:
                self._transition(RoomState.WAITING)
                pending.append(lambda: self.registry.audit_call_end(self, "replaced"))
        seat = Seat(role, subject, connection_id, "", time.time(), address, generation=generation)
        self.seats[role] = seat
        result = JoinResult(seat, self._new_secret(seat), self.state)
        self._later(lambda: welcome(result))
        if role == "patient":
            self._send("patient", Waiting())
            self._send("doctor", self._lobby())
        else:
            self._send("doctor", self._lobby())
            if self.state is RoomState.IN_CALL and self.connected("patient"):
                self._send("doctor", PeerJoined(role="patient"))
                self._send("patient", PeerJoined(role="doctor"))
        state = result.state.value
        pending.append(
            lambda: self.registry.audit(
                self, "signaling.join", seat, replaced=replaced, state=state
            )
        )
        if role == "patient":
            pending.append(lambda: self.registry.audit(self, "signaling.waiting", seat))
        return result

    async def resume(
        self,
        connection_id: str,
        role: Role,
        welcome: Callable[[JoinResult], None],
        secret_hash: str | None = None,
        generation: int | None = None,
    ) -> JoinResult:
        """Give a seat back to a new connection that proved it held it (resume secret).
        ``generation``: the consultation's invite generation now; a patient seat of an
        earlier one is not given back (its link was replaced)."""
        async with self._change():
            self.require(RoomState.WAITING, RoomState.IN_CALL, action="resume")
            seat = self.seats.get(role)
            if seat is None or (secret_hash is not None and seat.resume_hash != secret_hash):
                raise AppError("token_invalid", "This place can no longer be resumed.")
            if role == "patient" and generation is not None and seat.generation != generation:
                raise AppError("invite_superseded")
            self.registry.cancel_expiry(self.id, role)
            was_connected = seat.connected
            if seat.connection_id is not None:
                # A half-open socket the server had not noticed yet: the new one wins.
                self._close_connection(seat.connection_id, "replaced")
            seat.connection_id = connection_id
            seat.lost_at = 0.0
            result = JoinResult(seat, self._new_secret(seat), self.state)
            self._later(lambda: welcome(result))
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

    def _close_connection(self, connection_id: str, code: ErrorCode) -> None:
        error = AppError(code)
        payload = encode(ErrorMessage(code=error.code, message=error.message))
        self._publish(connection_id, payload, error.close_code or CLOSE_NORMAL)

    def _release(self, seat: Seat, *, close: bool) -> None:
        """Free a seat; with ``close``, the connection still holding it is closed (replaced)."""
        self.registry.cancel_expiry(self.id, seat.role)
        if close and seat.connection_id is not None:
            self._close_connection(seat.connection_id, "replaced")
        self._forget_resume(seat.resume_hash)
        if self.seats.get(seat.role) is seat:
            del self.seats[seat.role]

    def _leave(self, seat: Seat, reason: LeaveReason, pending: Pending) -> None:
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
                pending.append(lambda: self.registry.audit_call_end(self, reason))
            return
        if self.state is RoomState.IN_CALL and reason != "disconnected":
            self._send("patient", PeerLeft(role="doctor", reason=reason))
        self.registry.discard_if_empty(self)

    async def hang_up(self, connection_id: str, role: Role) -> None:
        """The participant leaves for good (its connection is then closed normally)."""
        pending: Pending = []
        async with self._change():
            seat = self.seats.get(role)
            if seat is None or seat.connection_id != connection_id:
                return
            self._publish(connection_id, b"", CLOSE_NORMAL)
            seat.connection_id = None
            self._leave(seat, "left", pending)
        for write in pending:
            await write()

    async def connection_lost(self, connection_id: str, role: Role) -> None:
        """The socket dropped without a hang-up: keep the seat for the resume grace period."""
        async with self._change():
            seat = self.seats.get(role)
            if seat is None or seat.connection_id != connection_id:
                return  # replaced, released or ended already
            seat.connection_id = None
            seat.lost_at = time.time()
            if self.state is RoomState.IN_CALL:
                self._send(other(role), PeerLeft(role=role, reason="disconnected"))
            self.registry.arm_expiry(self, role, seat.resume_hash, self.registry.resume_grace)
        await self.registry.audit(self, "signaling.disconnected", seat)

    async def expire(self, role: Role, resume_hash: str) -> None:
        """The grace period of a dropped seat is over: free it unless it came back."""
        pending: Pending = []
        async with self._change():
            seat = self.seats.get(role)
            if seat is None or seat.connected or seat.resume_hash != resume_hash:
                return
            log.info("room %s: %s did not come back", self.id, role)
            self._leave(seat, "disconnected", pending)
        for write in pending:
            await write()

    async def supersede_patient(self, generation: int) -> Seat | None:
        """A new invite link (``generation``) was issued: the patient of an earlier link is
        shown out (told ``invite_superseded``, closed 4410), waiting, in the call or dropped
        within its grace. The doctor stays and sees the waiting room empty. Answers the seat
        that was ended, if any."""
        pending: Pending = []
        async with self._change():
            seat = self.seats.get("patient")
            if self.state is RoomState.ENDED or seat is None or seat.generation >= generation:
                return None
            was_in_call = self.state is RoomState.IN_CALL
            if seat.connection_id is not None:
                if was_in_call:
                    self._send("doctor", PeerLeft(role="patient", reason="superseded"))
                self._close_connection(seat.connection_id, "invite_superseded")
            self._release(seat, close=False)
            if was_in_call:
                self._transition(RoomState.WAITING)
                pending.append(lambda: self.registry.audit_call_end(self, "superseded"))
            self._send("doctor", self._lobby())
            self.registry.discard_if_empty(self)
        await self.registry.audit(
            self, "signaling.superseded", seat, outcome="ended", generation=seat.generation
        )
        for write in pending:
            await write()
        return seat

    # -- the doctor's decisions

    async def admit(self, role: Role) -> None:
        if role != "doctor":
            raise AppError("forbidden", "Only the doctor admits.")
        async with self._change():
            self.require(RoomState.WAITING, action="admit")
            if not self.connected("patient"):
                raise AppError("peer_absent", "Nobody is in the waiting room.")
            self._transition(RoomState.IN_CALL)
            patient = self.seats["patient"]
            doctor = self.seats["doctor"]
            self._send("patient", Admitted())
            self._send("doctor", Lobby())
            self._send("patient", PeerJoined(role="doctor"))
            self._send("doctor", PeerJoined(role="patient"))
        await self.registry.audit(self, "signaling.admitted", patient)
        await self.registry.audit(self, "call.started", doctor)

    async def deny(self, role: Role) -> None:
        if role != "doctor":
            raise AppError("forbidden", "Only the doctor denies.")
        async with self._change():
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
        async with self._change():
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
    """The rooms this process has a handle on, the resume-secret index and the audit hooks.

    With ``states`` (several instances), ``rooms`` holds handles on the rooms that have a
    participant here; the truth is in ``states`` and every change re-reads it.
    """

    def __init__(
        self,
        bus: Bus,
        resume_grace: float,
        audit_hook: AuditHook,
        states: RoomStates | None = None,
    ) -> None:
        self.bus = bus
        self.resume_grace = resume_grace
        self.states = states
        self._audit_hook = audit_hook
        self.rooms: dict[str, Room] = {}
        self._resume_index: dict[str, tuple[str, Role]] = {}
        self._expiries: dict[tuple[str, Role], asyncio.TimerHandle] = {}
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

    def forget_if_idle(self, room: Room) -> None:
        """Shared: drop the handle of a room nobody here takes part in any more."""
        states = self.states
        if states is None or room.state is RoomState.ENDED:
            return
        if not any(
            s.connection_id is not None and self.bus.is_local(s.connection_id)
            for s in room.seats.values()
        ) and not any((room.id, role) in self._expiries for role in room.seats):
            self.discard(room)

    def room_changed(self, room_id: str | None) -> None:
        """Shared: another instance changed ``room_id`` (None: perhaps any room, e.g. after
        the bus missed messages): the handle must read it again before relying on it."""
        rooms = self.rooms.values() if room_id is None else [self.rooms.get(room_id)]
        for room in rooms:
            if room is not None:
                room.changes += 1

    async def end_room(self, room_id: str, reason: EndReason) -> None:
        """End a room whoever holds it (a cancelled consultation): with shared state, the
        participants on every instance are told and let go; no room, nothing to do."""
        room = self.rooms.get(room_id)
        if room is None and self.states is not None:
            room = self.get_or_create(room_id, "")
        if room is None:
            return
        try:
            await room.end(reason, None)
        except InvalidTransition:
            pass  # ended already
        finally:
            self.discard(room)

    async def supersede_patient(self, room_id: str, generation: int) -> bool:
        """A new invite link: show out the patient of an earlier one, whichever instance
        holds its socket (as ``end_room``); True when a patient was shown out."""
        room = self.rooms.get(room_id)
        if room is None and self.states is not None:
            room = self.get_or_create(room_id, "")
        if room is None:
            return False
        return await room.supersede_patient(generation) is not None

    async def waiting(self) -> dict[str, WaitingEntry]:
        """Room id → its patient who waits (connected, not admitted): this process's rooms on
        one instance, every instance's with shared state."""
        if self.states is not None:
            return await self.states.waiting()
        found = ((room.id, room.waiting_entry()) for room in list(self.rooms.values()))
        return {room_id: entry for room_id, entry in found if entry is not None}

    def remember_resume(self, secret_hash: str, room_id: str, role: Role) -> None:
        self._resume_index[secret_hash] = (room_id, role)

    def forget_resume(self, secret_hash: str) -> None:
        self._resume_index.pop(secret_hash, None)

    async def find_resume(self, secret: str) -> tuple[Room, Role, str] | None:
        """The room and role a resume secret gives back, and the secret's hash."""
        secret_hash = hash_secret(secret)
        if self.states is not None:
            found = await self.states.find_resume(secret_hash)
            if found is None:
                return None
            room = self.get_or_create(found[0], "")
            return room, found[1], secret_hash
        entry = self._resume_index.get(secret_hash)
        if entry is None:
            return None
        local = self.rooms.get(entry[0])
        return None if local is None else (local, entry[1], secret_hash)

    def arm_expiry(self, room: Room, role: Role, resume_hash: str, delay: float) -> None:
        self.cancel_expiry(room.id, role)
        loop = asyncio.get_running_loop()
        self._expiries[(room.id, role)] = loop.call_later(
            max(delay, 0.0), self._spawn_expiry, room, role, resume_hash
        )

    def cancel_expiry(self, room_id: str, role: Role) -> None:
        handle = self._expiries.pop((room_id, role), None)
        if handle is not None:
            handle.cancel()

    def _spawn_expiry(self, room: Room, role: Role, resume_hash: str) -> None:
        self._expiries.pop((room.id, role), None)
        self.spawn(room.expire(role, resume_hash))

    def spawn(self, work: Awaitable[None]) -> asyncio.Task[None]:
        """Run ``work`` in the background, kept until it ends (cancelled at close)."""

        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("room background work failed")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def audit(self, room: Room, action: AuditAction, seat: Seat, **details: Any) -> None:
        await self._audit_hook(room, action, seat, **details)

    async def audit_call_end(self, room: Room, reason: str, by: Seat | None = None) -> None:
        seat = by or room.seats.get("doctor") or Seat("doctor", "", None, "", 0.0)
        await self._audit_hook(room, "call.ended", seat, reason=reason)

    async def close(self) -> None:
        for handle in self._expiries.values():
            handle.cancel()
        self._expiries.clear()
        self.rooms.clear()
        self._resume_index.clear()
        for task in list(self._tasks):
            task.cancel()
