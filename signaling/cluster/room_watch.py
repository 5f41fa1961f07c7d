"""Shared rooms: what no socket event tells an instance, found by looking once a beat.

* A connection that dropped while Redis was away could not be saved as lost: it is now.
* An instance that died (SIGKILL, power) never says its connections dropped. Each instance
  watches the rooms it takes part in: a seat held by a connection of an instance whose
  heartbeat key expired is treated as a dropped connection (the peer here is told, the seat
  waits for a resume as usual).
* A dropped seat whose grace timer lived on a dead instance is freed here once overdue.

Nothing is declared dead until this instance's own heartbeat has answered for a whole TTL:
after a Redis outage, the other instances need one beat to show they are still there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from signaling.live.room import Room
from signaling.live.room_registry import RoomRegistry
from signaling.live.room_state import RoomStates
from signaling.store.base import StoreUnavailable

log = logging.getLogger("teleconsult.rooms")


class RoomWatch:
    def __init__(self, registry: RoomRegistry, states: RoomStates) -> None:
        self.registry = registry
        self.bus = registry.bus
        self.states = states
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.states.beat)
            try:
                await self.sweep()
            except StoreUnavailable:
                pass  # Redis is away: next beat
            except Exception:
                log.exception("room watch failed")

    async def sweep(self) -> None:
        lost_later = self.registry.lost_later
        while lost_later:
            room, connection_id, role = lost_later[0]
            await room.connection_lost(connection_id, role)
            lost_later.pop(0)
        if not self.states.alive_is_known():
            return
        rooms = list(self.registry.rooms.values())
        seen = [room.changes for room in rooms]
        snapshots = await self.states.read_many([room.id for room in rooms])
        for room, snapshot, at in zip(rooms, snapshots, seen, strict=True):
            self.registry.accept(room, snapshot, at)
            await self._check(room)
            self.registry.forget_if_idle(room)

    async def _check(self, room: Room) -> None:
        remote = [
            (role, seat.connection_id)
            for role, seat in room.seats.items()
            if seat.connection_id is not None and not self.bus.is_local(seat.connection_id)
        ]
        if remote:
            alive = await self.states.alive([connection_id for _, connection_id in remote])
            for (role, connection_id), up in zip(remote, alive, strict=True):
                if not up:
                    log.info("room %s: the %s's instance is gone", room.id, role)
                    await room.connection_lost(connection_id, role)
        overdue = self.registry.clock.now() - self.registry.resume_grace - self.states.beat
        for role, seat in list(room.seats.items()):
            if not seat.connected and 0 < seat.lost_at < overdue:
                await room.expire(role, seat.resume_hash)
