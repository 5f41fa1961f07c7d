"""Where the rooms' state lives when several instances share it (the RoomStates seam).

A single instance keeps its rooms in process memory (``RoomRegistry(states=None)``): nothing
here is used. With several instances every change of a room is one *transaction*: ``begin``
takes the room alone for this instance (a lease every other instance waits for) and reads the
last saved snapshot; the room runs the same Python rules as on one instance; ``commit`` saves
the new snapshot and the resume-secret index and lets the room go, in one atomic step that
only succeeds while the lease is still held (a fenced write). Rooms never call Redis: they
see this protocol, implemented by :mod:`signaling.cluster.room_state_redis`.

The snapshot is a typed, versioned record (:class:`RoomSnapshot`, ``v`` = 2), saved as JSON.
Its first form (no ``v``: seats as positional lists, written by earlier releases) is still
read, so rooms saved before an upgrade carry on; a change saves them in the current form.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import msgspec

from signaling.live.protocol import RoomStateName
from signaling.models import SeatRole

SNAPSHOT_VERSION = 2


class SeatRecord(msgspec.Struct, frozen=True):
    """A seat as saved (see signaling.live.room.Seat)."""

    subject: str
    connection_id: str | None
    resume_hash: str
    since: float
    address: str = ""
    lost_at: float = 0.0
    generation: int = 0


class RoomSnapshot(msgspec.Struct, frozen=True):
    """A room as saved for the other instances."""

    state: RoomStateName
    name: str
    seats: dict[SeatRole, SeatRecord]
    v: int = SNAPSHOT_VERSION


class _SeatV1(msgspec.Struct, frozen=True, array_like=True):
    # Version 1 saved a seat as a list of these, in this order; one saved before invite
    # generations existed has six.
    subject: str
    connection_id: str | None
    resume_hash: str
    since: float
    address: str
    lost_at: float
    generation: int = 0


class _SnapshotV1(msgspec.Struct, frozen=True):
    state: RoomStateName
    name: str
    seats: dict[SeatRole, _SeatV1]


class _Version(msgspec.Struct):
    v: int = 1  # version 1 had no version field


class UnreadableSnapshot(ValueError):
    """A snapshot of a version this code does not know (saved by a later release)."""


_VERSION = msgspec.json.Decoder(_Version)
_V1 = msgspec.json.Decoder(_SnapshotV1)
_CURRENT = msgspec.json.Decoder(RoomSnapshot)


def encode_snapshot(snapshot: RoomSnapshot) -> bytes:
    return msgspec.json.encode(snapshot)


def decode_snapshot(raw: bytes | str) -> RoomSnapshot:
    version = _VERSION.decode(raw).v
    if version == SNAPSHOT_VERSION:
        return _CURRENT.decode(raw)
    if version == 1:
        old = _V1.decode(raw)
        seats = {
            role: SeatRecord(
                s.subject,
                s.connection_id,
                s.resume_hash,
                s.since,
                s.address,
                s.lost_at,
                s.generation,
            )
            for role, s in old.seats.items()
        }
        return RoomSnapshot(old.state, old.name, seats)
    raise UnreadableSnapshot(f"room snapshot version {version} (this release reads 1 and 2)")


@dataclass(frozen=True)
class WaitingEntry:
    """A patient in a waiting room now: since when, and through which invite link."""

    since: float
    generation: int

    def encode(self) -> str:
        return f"{self.since!r} {self.generation}"

    @classmethod
    def decode(cls, text: str) -> WaitingEntry:
        # An index value written before generations existed holds only the time.
        since, _, generation = text.partition(" ")
        return cls(float(since), int(generation or 0))


@dataclass
class ResumeChanges:
    """Resume-index edits made by one change of a room, written with its snapshot."""

    forgotten: list[str] = field(default_factory=list)
    remembered: dict[str, SeatRole] = field(default_factory=dict)

    def forget(self, secret_hash: str) -> None:
        if secret_hash:
            self.remembered.pop(secret_hash, None)
            self.forgotten.append(secret_hash)

    def remember(self, secret_hash: str, role: SeatRole) -> None:
        self.remembered[secret_hash] = role


class RoomStates(Protocol):
    async def begin(self, room_id: str) -> tuple[str, RoomSnapshot | None]:
        """Take the room (waiting for another holder) and read it: (lease token, snapshot)."""

    async def commit(
        self,
        room_id: str,
        token: str,
        snapshot: RoomSnapshot | None,
        resume: ResumeChanges,
        ttl: float,
        waiting: WaitingEntry | None,
    ) -> None:
        """Save ``snapshot`` (None: the room is gone) and let the room go; raises
        StoreUnavailable when the lease was lost meanwhile (nothing is written then).
        ``waiting``: the patient who waits now (None: nobody waits)."""

    async def release(self, room_id: str, token: str) -> None:
        """Let the room go without saving (the change failed)."""

    async def read(self, room_id: str) -> RoomSnapshot | None:
        """The last saved snapshot, without taking the room (relays, watchers)."""

    async def read_many(self, room_ids: list[str]) -> list[RoomSnapshot | None]:
        """``read`` for several rooms at once (the room watch)."""

    async def find_resume(self, secret_hash: str) -> tuple[str, SeatRole] | None: ...

    async def waiting(self) -> dict[str, WaitingEntry]:
        """Room id → the patient who waits there, over every instance."""

    def changed(self, room_id: str, connection_ids: Sequence[str | None]) -> None:
        """Tell the instances holding these connections that the room changed (in order
        with the messages published after)."""

    async def alive(self, connection_ids: list[str]) -> list[bool]:
        """For each connection id: is the instance holding it still alive?"""

    @property
    def beat(self) -> float:
        """Seconds between two signs of life of an instance (how often to look again)."""

    def alive_is_known(self) -> bool:
        """True when ``alive`` can be believed: this instance has itself been heard for a
        whole lifetime of a sign of life (after an outage, the others need a beat to show
        they are still there)."""
