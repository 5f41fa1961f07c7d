"""A consultation room: one doctor seat, one patient seat, a waiting room and a state machine.

Over 400 lines on purpose: this is one state machine, its transitions and the rules of its two
seats, which read together (a rule split from its exceptions would be harder to check).

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
Every public change runs as one *change* of its host (``RoomHost.change``, the registry of
:mod:`signaling.live.room_registry`), which holds the transaction machinery: the rules below run
synchronously inside it and leave what they send and the resume-index edits in the
:class:`Change`, done once the change is over (with shared state: once it is saved). Audit
entries are written after the change, never while the room is held.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol

from signaling.audit_actions import AuditAction
from signaling.clock import Clock
from signaling.errors import AppError, ErrorCode
from signaling.live.bus import Bus
from signaling.live.protocol import (
    Admitted,
    Denied,
    Ended,
    EndReason,
    ErrorMessage,
    Lobby,
    PatientLeft,
    PatientLeftReason,
    PeerJoined,
    PeerLeft,
    ServerBase,
    Waiting,
    WaitingPatient,
    encode,
)
from signaling.live.room_state import ResumeChanges, WaitingEntry
from signaling.models import SEAT_ROLES, SeatRole

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


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def other(role: SeatRole) -> SeatRole:
    return "patient" if role == "doctor" else "doctor"


@dataclass(slots=True)
class Seat:
    role: SeatRole
    subject: str
    connection_id: str | None
    resume_hash: str
    since: float  # when the seat was taken, by the service clock (shown to the doctor)
    address: str = ""
    # When its connection dropped, by the service clock (0: connected or never lost).
    lost_at: float = 0.0
    # A patient's invite generation (the link it came through); 0 for the doctor.
    generation: int = 0

    @property
    def connected(self) -> bool:
        return self.connection_id is not None


@dataclass
class JoinResult:
    seat: Seat
    resume_secret: str
    state: RoomState


# Work left for after a change: audit writes (awaited once the room is let go).
Pending = list[Callable[[], Awaitable[None]]]


@dataclass
class Change:
    """What one change of a room does outside the room, once the change is over (with shared
    state: once it is saved): the messages to send, in order, and the resume-index edits."""

    bus: Bus
    sends: list[Callable[[], None]] = field(default_factory=list)
    resume: ResumeChanges = field(default_factory=ResumeChanges)

    def later(self, send: Callable[[], None]) -> None:
        self.sends.append(send)

    def publish(self, connection_id: str, payload: bytes, close_code: int | None) -> None:
        bus = self.bus

        def send() -> None:
            bus.publish(connection_id, payload, close_code)

        self.sends.append(send)


class RoomHost(Protocol):
    """What a room needs of the registry that holds it (signaling.live.room_registry)."""

    bus: Bus
    clock: Clock
    resume_grace: float

    def change(self, room: Room) -> AbstractAsyncContextManager[Change]:
        """One change of ``room``: the rules run inside, synchronously."""

    async def refresh(self, room: Room) -> None:
        """Shared state: read ``room`` as saved unless its handle is known fresh."""

    def arm_expiry(self, room: Room, role: SeatRole, resume_hash: str, delay: float) -> None: ...

    def cancel_expiry(self, room_id: str, role: SeatRole) -> None: ...

    def discard(self, room: Room) -> None: ...

    def discard_if_empty(self, room: Room) -> None: ...

    async def audit(self, room: Room, action: AuditAction, seat: Seat, **details: Any) -> None: ...

    async def audit_call_end(self, room: Room, reason: str, by: Seat | None = None) -> None: ...


@dataclass
class Room:
    id: str
    patient_name: str
    host: RoomHost
    state: RoomState = RoomState.WAITING
    seats: dict[SeatRole, Seat] = field(default_factory=dict)
    # Shared state, kept by the host: bumped whenever the saved room may differ from this
    # handle (a change by another instance was announced, or a change here began); the
    # handle is fresh while ``fresh_at == changes``, so relays need no read.
    changes: int = field(default=0, repr=False)
    fresh_at: int = field(default=-1, repr=False)

    # -- state machine

    def _transition(self, new: RoomState) -> None:
        if new not in _TRANSITIONS[self.state]:
            raise InvalidTransition(self.state, new)
        log.info("room %s: state %s -> %s", self.id, self.state.value, new.value)
        self.state = new

    def require(self, *states: RoomState, action: str) -> None:
        if self.state not in states:
            raise InvalidTransition(self.state, action)

    async def refresh(self) -> None:
        """Shared state: read the room as saved unless this handle is known fresh (before a
        relay); on one instance, nothing to do."""
        await self.host.refresh(self)

    # -- delivery

    def _send(
        self, change: Change, role: SeatRole, message: ServerBase, close_code: int | None = None
    ) -> None:
        seat = self.seats.get(role)
        if seat is not None and seat.connection_id is not None:
            change.publish(seat.connection_id, encode(message), close_code)

    def send_raw(self, role: SeatRole, payload: bytes) -> bool:
        seat = self.seats.get(role)
        if seat is None or seat.connection_id is None:
            return False
        return self.host.bus.publish(seat.connection_id, payload, None)

    def _lobby(self, left: PatientLeftReason | None = None) -> Lobby:
        """The waiting room as the doctor sees it; ``left``: the patient's seat was just freed,
        for that reason (said once, in this message)."""
        if left is not None:
            return Lobby(left=PatientLeft(reason=left, may_return=left != "superseded"))
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

    def connected(self, role: SeatRole) -> bool:
        seat = self.seats.get(role)
        return seat is not None and seat.connected

    def waiting_entry(self) -> WaitingEntry | None:
        """Its patient, if one waits now (connected, not admitted): since when, which link."""
        patient = self.seats.get("patient")
        if self.state is RoomState.WAITING and patient is not None and patient.connected:
            return WaitingEntry(patient.since, patient.generation)
        return None

    # -- joining, resuming, leaving

    def _new_secret(self, change: Change, seat: Seat) -> str:
        secret = secrets.token_urlsafe(32)
        change.resume.forget(seat.resume_hash)
        seat.resume_hash = hash_secret(secret)
        change.resume.remember(seat.resume_hash, seat.role)
        return secret

    async def join(
        self,
        connection_id: str,
        role: SeatRole,
        subject: str,
        address: str,
        welcome: Callable[[JoinResult], None],
        generation: int = 0,
    ) -> JoinResult:
        """Seat a fresh connection for ``role`` (a valid room token was redeemed for it;
        ``generation``: a patient token's invite generation)."""
        pending: Pending = []
        async with self.host.change(self) as change:
            result = self._join(
                change, connection_id, role, subject, address, welcome, pending, generation
            )
        for write in pending:
            await write()
        return result

    def _join(
        self,
        change: Change,
        connection_id: str,
        role: SeatRole,
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
                self._send(change, other(role), PeerLeft(role=role, reason="replaced"))
            self._release(change, old, close=True)
            if role == "patient" and self.state is RoomState.IN_CALL:
                self._transition(RoomState.WAITING)
                pending.append(lambda: self.host.audit_call_end(self, "replaced"))
        since = self.host.clock.now()
        seat = Seat(role, subject, connection_id, "", since, address, generation=generation)
        self.seats[role] = seat
        result = JoinResult(seat, self._new_secret(change, seat), self.state)
        change.later(lambda: welcome(result))
        if role == "patient":
            self._send(change, "patient", Waiting())
            self._send(change, "doctor", self._lobby())
        else:
            self._send(change, "doctor", self._lobby())
            if self.state is RoomState.IN_CALL and self.connected("patient"):
                self._send(change, "doctor", PeerJoined(role="patient"))
                self._send(change, "patient", PeerJoined(role="doctor"))
        state = result.state.value
        pending.append(
            lambda: self.host.audit(self, "signaling.join", seat, replaced=replaced, state=state)
        )
        if role == "patient":
            pending.append(lambda: self.host.audit(self, "signaling.waiting", seat))
        return result

    async def resume(
        self,
        connection_id: str,
        role: SeatRole,
        welcome: Callable[[JoinResult], None],
        secret_hash: str | None = None,
        generation: int | None = None,
    ) -> JoinResult:
        """Give a seat back to a new connection that proved it held it (resume secret).
        ``generation``: the consultation's invite generation now; a patient seat of an
        earlier one is not given back (its link was replaced)."""
        async with self.host.change(self) as change:
            self.require(RoomState.WAITING, RoomState.IN_CALL, action="resume")
            seat = self.seats.get(role)
            if seat is None or (secret_hash is not None and seat.resume_hash != secret_hash):
                raise AppError("token_invalid", "This place can no longer be resumed.")
            if role == "patient" and generation is not None and seat.generation != generation:
                raise AppError("invite_superseded")
            self.host.cancel_expiry(self.id, role)
            was_connected = seat.connected
            if seat.connection_id is not None:
                # A half-open socket the server had not noticed yet: the new one wins.
                self._close_connection(change, seat.connection_id, "replaced")
            seat.connection_id = connection_id
            seat.lost_at = 0.0
            result = JoinResult(seat, self._new_secret(change, seat), self.state)
            change.later(lambda: welcome(result))
            peer = other(role)
            if self.state is RoomState.IN_CALL:
                if self.connected(peer):
                    if was_connected:
                        self._send(change, peer, PeerLeft(role=role, reason="disconnected"))
                    self._send(change, peer, PeerJoined(role=role, resumed=True))
                    self._send(change, role, PeerJoined(role=peer))
            elif role == "patient":
                self._send(change, "patient", Waiting())
            else:
                self._send(change, "doctor", self._lobby())
        await self.host.audit(self, "signaling.resume", seat, state=self.state.value)
        return result

    def _close_connection(self, change: Change, connection_id: str, code: ErrorCode) -> None:
        error = AppError(code)
        payload = encode(ErrorMessage(code=error.code, message=error.message))
        change.publish(connection_id, payload, error.close_code or CLOSE_NORMAL)

    def _release(self, change: Change, seat: Seat, *, close: bool) -> None:
        """Free a seat; with ``close``, the connection still holding it is closed (replaced)."""
        self.host.cancel_expiry(self.id, seat.role)
        if close and seat.connection_id is not None:
            self._close_connection(change, seat.connection_id, "replaced")
        change.resume.forget(seat.resume_hash)
        if self.seats.get(seat.role) is seat:
            del self.seats[seat.role]

    def _leave(
        self, change: Change, seat: Seat, reason: Literal["left", "disconnected"], pending: Pending
    ) -> None:
        role = seat.role
        self._release(change, seat, close=False)
        if role == "patient":
            call_ended = self.state is RoomState.IN_CALL
            if call_ended:
                self._transition(RoomState.WAITING)
                if reason != "disconnected":  # the doctor heard that when the socket dropped
                    self._send(change, "doctor", PeerLeft(role="patient", reason=reason))
            self._send(change, "doctor", self._lobby(left=reason))
            self.host.discard_if_empty(self)
            if call_ended:
                pending.append(lambda: self.host.audit_call_end(self, reason))
            return
        if self.state is RoomState.IN_CALL and reason != "disconnected":
            self._send(change, "patient", PeerLeft(role="doctor", reason=reason))
        self.host.discard_if_empty(self)

    async def hang_up(self, connection_id: str, role: SeatRole) -> None:
        """The participant leaves for good (its connection is then closed normally)."""
        pending: Pending = []
        async with self.host.change(self) as change:
            seat = self.seats.get(role)
            if seat is None or seat.connection_id != connection_id:
                return
            change.publish(connection_id, b"", CLOSE_NORMAL)
            seat.connection_id = None
            self._leave(change, seat, "left", pending)
        for write in pending:
            await write()

    async def connection_lost(self, connection_id: str, role: SeatRole) -> None:
        """The socket dropped without a hang-up: keep the seat for the resume grace period."""
        async with self.host.change(self) as change:
            seat = self.seats.get(role)
            if seat is None or seat.connection_id != connection_id:
                return  # replaced, released or ended already
            seat.connection_id = None
            seat.lost_at = self.host.clock.now()
            if self.state is RoomState.IN_CALL:
                self._send(change, other(role), PeerLeft(role=role, reason="disconnected"))
            self.host.arm_expiry(self, role, seat.resume_hash, self.host.resume_grace)
        await self.host.audit(self, "signaling.disconnected", seat)

    async def expire(self, role: SeatRole, resume_hash: str) -> None:
        """The grace period of a dropped seat is over: free it unless it came back."""
        pending: Pending = []
        async with self.host.change(self) as change:
            seat = self.seats.get(role)
            if seat is None or seat.connected or seat.resume_hash != resume_hash:
                return
            log.info("room %s: %s did not come back", self.id, role)
            self._leave(change, seat, "disconnected", pending)
        for write in pending:
            await write()

    async def supersede_patient(self, generation: int) -> Seat | None:
        """A new invite link (``generation``) was issued: the patient of an earlier link is
        shown out (told ``invite_superseded``, closed 4410), waiting, in the call or dropped
        within its grace. The doctor stays and sees the waiting room empty. Answers the seat
        that was ended, if any."""
        pending: Pending = []
        async with self.host.change(self) as change:
            seat = self.seats.get("patient")
            if self.state is RoomState.ENDED or seat is None or seat.generation >= generation:
                return None
            was_in_call = self.state is RoomState.IN_CALL
            if seat.connection_id is not None:
                if was_in_call:
                    self._send(change, "doctor", PeerLeft(role="patient", reason="superseded"))
                self._close_connection(change, seat.connection_id, "invite_superseded")
            self._release(change, seat, close=False)
            if was_in_call:
                self._transition(RoomState.WAITING)
                pending.append(lambda: self.host.audit_call_end(self, "superseded"))
            self._send(change, "doctor", self._lobby(left="superseded"))
            self.host.discard_if_empty(self)
        await self.host.audit(
            self, "signaling.superseded", seat, outcome="ended", generation=seat.generation
        )
        for write in pending:
            await write()
        return seat

    # -- the doctor's decisions

    async def admit(self, role: SeatRole) -> None:
        if role != "doctor":
            raise AppError("forbidden", "Only the doctor admits.")
        async with self.host.change(self) as change:
            self.require(RoomState.WAITING, action="admit")
            if not self.connected("patient"):
                raise AppError("peer_absent", "Nobody is in the waiting room.")
            self._transition(RoomState.IN_CALL)
            patient = self.seats["patient"]
            doctor = self.seats["doctor"]
            self._send(change, "patient", Admitted())
            self._send(change, "doctor", Lobby())
            self._send(change, "patient", PeerJoined(role="doctor"))
            self._send(change, "doctor", PeerJoined(role="patient"))
        await self.host.audit(self, "signaling.admitted", patient)
        await self.host.audit(self, "call.started", doctor)

    async def deny(self, role: SeatRole) -> None:
        if role != "doctor":
            raise AppError("forbidden", "Only the doctor denies.")
        async with self.host.change(self) as change:
            self.require(RoomState.WAITING, action="deny")
            patient = self.seats.get("patient")
            if patient is None:
                raise AppError("peer_absent", "Nobody is in the waiting room.")
            if patient.connection_id is not None:
                denied = AppError("denied").close_code
                self._send(change, "patient", Denied(), close_code=denied)
            self._release(change, patient, close=False)
            self._send(change, "doctor", self._lobby())
        await self.host.audit(self, "signaling.denied", patient, outcome="denied")

    async def end(self, reason: EndReason, by: Seat | None) -> None:
        """The consultation is over: tell everyone, close every connection, forget the room."""
        async with self.host.change(self) as change:
            was_in_call = self.state is RoomState.IN_CALL
            self._transition(RoomState.ENDED)
            close_code = AppError("consultation_ended").close_code
            for role in SEAT_ROLES:
                self._send(change, role, Ended(reason=reason), close_code=close_code)
            for seat in list(self.seats.values()):
                self._release(change, seat, close=False)
            self.host.discard(self)

        async def record() -> None:
            if was_in_call:
                await self.host.audit_call_end(self, reason, by)
            if by is not None:
                await self.host.audit(self, "consultation.ended", by, reason=reason)

        # The sockets are already told to close: the handler running this may be cancelled
        # when its client goes, but the audit entries must still be written.
        if was_in_call or by is not None:
            await asyncio.shield(record())

    # -- from the staff, outside the room's connections

    async def rename_patient(self, name: str) -> None:
        """The consultation's patient name was edited: the room says the new one from now on,
        and a doctor who sees this patient waiting sees it at once."""
        async with self.host.change(self) as change:
            if self.state is RoomState.ENDED or self.patient_name == name:
                return
            self.patient_name = name
            if self.waiting_entry() is not None:
                self._send(change, "doctor", self._lobby())

    async def tell_waiting_patient(self, payload: bytes) -> bool:
        """Relay an encoded message to the patient who waits now (connected, not admitted);
        False when nobody waits. Nothing of the room changes, so no change is needed: the
        room is read as saved (shared state) and the message published to the patient's
        connection, on whichever instance it lives."""
        await self.refresh()
        if self.waiting_entry() is None:
            return False
        return self.send_raw("patient", payload)

    # -- relay

    def relay_target(self, role: SeatRole) -> SeatRole:
        if self.state is not RoomState.IN_CALL:
            raise InvalidTransition(self.state, "relay")
        peer = other(role)
        if not self.connected(peer):
            raise AppError("peer_absent")
        return peer
