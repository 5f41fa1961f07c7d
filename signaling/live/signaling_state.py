"""The live side of one application, shared by its WebSocket connections: the bus, the room
registry, the recordings, the open sockets and the connection count per address."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

from aiohttp import web

from signaling.keys import Services
from signaling.live.bus import Bus
from signaling.live.recording_routing import RoomRecordings
from signaling.live.room_registry import RoomRegistry


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
