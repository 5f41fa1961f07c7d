"""The rooms of this process and the machinery around their rules (signaling.live.room).

* The registry: the rooms this process holds a handle on, the resume-secret index (on one
  instance; the shared index is in the room states), the resume-grace timers of dropped seats
  and the background work they start, and the audit hook.
* Changes: every change of a room runs as one transaction (:meth:`RoomRegistry.change`). On
  one instance it is plain in-memory code: the rules run, then their messages are sent and
  their resume edits applied. With shared state (``states``, several instances) the room is
  taken alone and re-read, the same rules run, the snapshot is saved, and only then are its
  messages sent; the other instances with a participant in it are told it changed, so their
  handles read it again before relying on it (and not before: a relay on a fresh handle
  costs no read).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Protocol

from signaling.audit.trail import AuditTrail
from signaling.audit_actions import AuditAction
from signaling.clock import Clock
from signaling.live.bus import Bus
from signaling.live.protocol import EndReason
from signaling.live.room import Change, InvalidTransition, Room, RoomState, Seat, hash_secret
from signaling.live.room_state import (
    ResumeChanges,
    RoomSnapshot,
    RoomStates,
    SeatRecord,
    WaitingEntry,
)
from signaling.models import SeatRole

log = logging.getLogger("teleconsult.rooms")

# How long a shared room outlives its last change (a consultation is shorter), and how long
# an ended room is remembered as ended by the instances that still hold a handle on it.
ROOM_TTL_SECONDS = 12 * 3600.0
ENDED_TTL_SECONDS = 600.0


class AuditHook(Protocol):
    """Writes an audit entry about ``room`` as done by ``seat``'s holder."""

    def __call__(
        self, room: Room, action: AuditAction, seat: Seat, **details: Any
    ) -> Awaitable[None]: ...


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


def snapshot_of(room: Room) -> RoomSnapshot | None:
    """The room as saved for the other instances; None when there is nothing to keep (an
    ended room keeps its state only, so that every instance knows it ended)."""
    if room.state is RoomState.WAITING and not room.seats:
        return None
    ended = room.state is RoomState.ENDED
    seats = {} if ended else {role: _record(seat) for role, seat in room.seats.items()}
    return RoomSnapshot(room.state.value, room.patient_name, seats)


def _record(seat: Seat) -> SeatRecord:
    return SeatRecord(
        subject=seat.subject,
        connection_id=seat.connection_id,
        resume_hash=seat.resume_hash,
        since=seat.since,
        address=seat.address,
        lost_at=seat.lost_at,
        generation=seat.generation,
    )


def restore(room: Room, snapshot: RoomSnapshot | None) -> None:
    """Take the saved state over this handle's (which may be stale)."""
    if snapshot is None:
        # Nothing saved: empty, unless this handle saw the end (ended is terminal).
        if room.state is not RoomState.ENDED:
            room.state = RoomState.WAITING
            room.seats = {}
        return
    room.state = RoomState(snapshot.state)
    room.patient_name = snapshot.name
    room.seats = {
        role: Seat(
            role,
            subject=s.subject,
            connection_id=s.connection_id,
            resume_hash=s.resume_hash,
            since=s.since,
            address=s.address,
            lost_at=s.lost_at,
            generation=s.generation,
        )
        for role, s in snapshot.seats.items()
    }


class RoomRegistry:
    """The rooms this process has a handle on, the resume-secret index and the audit hooks.

    With ``states`` (several instances), ``rooms`` holds handles on the rooms that have a
    participant here; the truth is in ``states`` and every change re-reads it.
    """

    def __init__(
        self,
        bus: Bus,
        clock: Clock,
        resume_grace: float,
        audit_hook: AuditHook,
        states: RoomStates | None = None,
    ) -> None:
        self.bus = bus
        self.clock = clock
        self.resume_grace = resume_grace
        self.states = states
        self._audit_hook = audit_hook
        self.rooms: dict[str, Room] = {}
        self._resume_index: dict[str, tuple[str, SeatRole]] = {}
        self._expiries: dict[tuple[str, SeatRole], asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # Shared rooms: connection losses to save once the states answer again.
        self.lost_later: list[tuple[Room, str, SeatRole]] = []

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
        if self.states is None or room.state is RoomState.ENDED:
            return
        if not any(
            s.connection_id is not None and self.bus.is_local(s.connection_id)
            for s in room.seats.values()
        ) and not any((room.id, role) in self._expiries for role in room.seats):
            self.discard(room)

    # -- changes

    @contextlib.asynccontextmanager
    async def change(self, room: Room) -> AsyncIterator[Change]:
        """One change of ``room``. Shared: alone on it, re-read, saved, then sent."""
        change = Change(self.bus)
        states = self.states
        if states is None:
            yield change
            self._apply_resume(room.id, change.resume)
            for send in change.sends:
                send()
            return
        token, snapshot = await states.begin(room.id)
        # No await from here to the end of the body: the change is synchronous. Its sends
        # and resume edits are its own (the next change may begin before this one resumes).
        room.changes += 1  # a read in flight is older than this: it must not be restored
        restore(room, snapshot)
        before = [s.connection_id for s in room.seats.values() if s.connection_id]
        try:
            yield change
            ttl = ENDED_TTL_SECONDS if room.state is RoomState.ENDED else ROOM_TTL_SECONDS
            after = [s.connection_id for s in room.seats.values() if s.connection_id]
            await states.commit(
                room.id, token, snapshot_of(room), change.resume, ttl, room.waiting_entry()
            )
        except BaseException:
            # This handle may now hold changes that were never saved: read again next time.
            room.changes += 1
            with contextlib.suppress(Exception):
                await asyncio.shield(states.release(room.id, token))
            raise
        room.changes += 1
        room.fresh_at = room.changes
        # The other instances with a participant here hear of it before any of its messages.
        states.changed(room.id, before + after)
        for send in change.sends:
            send()
        self.forget_if_idle(room)

    async def refresh(self, room: Room) -> None:
        """Shared: read ``room`` as saved unless its handle is known fresh (before a relay);
        on one instance, nothing to do."""
        states = self.states
        for _ in range(3):
            if states is None or room.fresh_at == room.changes:
                return
            at = room.changes
            self.accept(room, await states.read(room.id), at)

    def accept(self, room: Room, snapshot: RoomSnapshot | None, at: int) -> None:
        """Take a snapshot read when ``room.changes`` was ``at``, unless the room changed
        since (then it is older than what this handle knows, or about to be re-read)."""
        if room.changes == at:
            restore(room, snapshot)
            room.fresh_at = at

    def room_changed(self, room_id: str | None) -> None:
        """Shared: another instance changed ``room_id`` (None: perhaps any room, e.g. after
        the bus missed messages): the handle must read it again before relying on it."""
        rooms = self.rooms.values() if room_id is None else [self.rooms.get(room_id)]
        for room in rooms:
            if room is not None:
                room.changes += 1

    # -- from outside the room's connections

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

    async def rename_patient(self, room_id: str, name: str) -> None:
        """The patient's name was edited: the open room, whoever holds it, says the new one."""
        room = self.rooms.get(room_id)
        if room is None and self.states is not None:
            room = self.get_or_create(room_id, name)
        if room is None:
            return
        try:
            await room.rename_patient(name)
        finally:
            self.forget_if_idle(room)

    async def tell_waiting_patient(self, room_id: str, payload: bytes) -> bool:
        """Relay ``payload`` to the patient waiting in ``room_id``, whichever instance holds
        its socket (as ``end_room``); False when nobody waits there."""
        room = self.rooms.get(room_id)
        if room is None and self.states is not None:
            room = self.get_or_create(room_id, "")
        if room is None:
            return False
        try:
            return await room.tell_waiting_patient(payload)
        finally:
            # A handle made only for this message is not kept (nobody takes part here).
            self.forget_if_idle(room)

    async def waiting(self) -> dict[str, WaitingEntry]:
        """Room id → its patient who waits (connected, not admitted): this process's rooms on
        one instance, every instance's with shared state."""
        if self.states is not None:
            return await self.states.waiting()
        found = ((room.id, room.waiting_entry()) for room in list(self.rooms.values()))
        return {room_id: entry for room_id, entry in found if entry is not None}

    # -- the resume index

    def _apply_resume(self, room_id: str, changes: ResumeChanges) -> None:
        # As the shared states' commit applies them: forgotten first, then remembered.
        for secret_hash in changes.forgotten:
            self._resume_index.pop(secret_hash, None)
        for secret_hash, role in changes.remembered.items():
            self._resume_index[secret_hash] = (room_id, role)

    async def find_resume(self, secret: str) -> tuple[Room, SeatRole, str] | None:
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

    # -- resume grace timers and background work

    def arm_expiry(self, room: Room, role: SeatRole, resume_hash: str, delay: float) -> None:
        self.cancel_expiry(room.id, role)
        loop = asyncio.get_running_loop()
        self._expiries[(room.id, role)] = loop.call_later(
            max(delay, 0.0), self._spawn_expiry, room, role, resume_hash
        )

    def cancel_expiry(self, room_id: str, role: SeatRole) -> None:
        handle = self._expiries.pop((room_id, role), None)
        if handle is not None:
            handle.cancel()

    def _spawn_expiry(self, room: Room, role: SeatRole, resume_hash: str) -> None:
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

    # -- audit

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
