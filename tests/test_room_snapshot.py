"""The shared room snapshot is a typed, versioned record, and a room saved in the first form
(no version, seats as positional lists: what releases before it wrote into Redis) is still
read, so a room in progress carries on across an upgrade."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient

from config import Settings, StorageSettings
from signaling.clock import ManualClock
from signaling.live.protocol import PeerJoined, Welcome
from signaling.live.room_state import (
    SNAPSHOT_VERSION,
    RoomSnapshot,
    SeatRecord,
    UnreadableSnapshot,
    decode_snapshot,
    encode_snapshot,
)
from tests.conftest import Accounts, Staff
from tests.rtc import SignalClient, book, connect
from tests.servers import RedisServer

ROOM_TTL_MS = 12 * 3600 * 1000


@pytest.fixture
def settings(data_dir: Path, redis_server: RedisServer) -> Settings:
    flush = redis.Redis.from_url(redis_server.url)
    flush.flushdb()
    flush.close()
    storage = StorageSettings(data_dir=str(data_dir), backend="redis", redis_url=redis_server.url)
    return Settings(storage=storage).validate()


def first_form(snapshot: dict[str, object]) -> bytes:
    """A snapshot encoded as version 1 saved it (json.dumps, compact separators)."""
    return json.dumps(snapshot, separators=(",", ":")).encode()


def test_a_snapshot_of_the_first_form_reads_as_the_typed_record() -> None:
    raw = first_form(
        {
            "state": "in_call",
            "name": "Alice Patient",
            "seats": {
                "doctor": ["user:d1", "a1b2.c3", "hash-d", 1_800_000_010.5, "10.0.0.1", 0.0, 0],
                # Saved before invite generations existed: six fields.
                "patient": ["patient:r1", None, "hash-p", 1_800_000_000.0, "10.0.0.2", 17.0],
            },
        }
    )
    assert decode_snapshot(raw) == RoomSnapshot(
        state="in_call",
        name="Alice Patient",
        seats={
            "doctor": SeatRecord("user:d1", "a1b2.c3", "hash-d", 1_800_000_010.5, "10.0.0.1"),
            "patient": SeatRecord(
                "patient:r1", None, "hash-p", 1_800_000_000.0, "10.0.0.2", lost_at=17.0
            ),
        },
    )


def test_a_snapshot_is_saved_with_its_version_and_named_fields() -> None:
    snapshot = RoomSnapshot(
        "waiting", "Bob", {"patient": SeatRecord("patient:r2", "x.y", "h", 1.0, generation=3)}
    )
    saved = json.loads(encode_snapshot(snapshot))
    assert saved["v"] == SNAPSHOT_VERSION == 2
    assert saved["seats"]["patient"]["resume_hash"] == "h"
    assert decode_snapshot(encode_snapshot(snapshot)) == snapshot


def test_a_snapshot_of_a_later_version_is_refused_by_name() -> None:
    with pytest.raises(UnreadableSnapshot, match="version 3"):
        decode_snapshot(b'{"v":3,"state":"waiting"}')


async def test_a_call_saved_in_the_first_form_is_resumed_after_the_upgrade(
    settings: Settings,
    client: TestClient[Any, Any],
    accounts: Accounts,
    doctor: Staff,
    clock: ManualClock,
) -> None:
    """Both participants of a call dropped just before the instances were upgraded: the room,
    saved in the first form straight into Redis as the earlier release did, is resumed by
    both on the new release, which then saves it in the current form."""
    booking = await book(accounts, doctor, clock)
    room = booking.consultation_id
    secrets = {"doctor": "doctor-resume-secret", "patient": "patient-resume-secret"}
    hashes = {role: hashlib.sha256(s.encode()).hexdigest() for role, s in secrets.items()}
    since = clock.now() - 300
    old = first_form(
        {
            "state": "in_call",
            "name": "Alice Patient",
            "seats": {
                "doctor": [f"user:{doctor.user['id']}", None, hashes["doctor"], since, "", since],
                "patient": [f"patient:{room}", None, hashes["patient"], since, "", since, 1],
            },
        }
    )
    r = redis.Redis.from_url(settings.storage.redis_url)
    try:
        r.set(f"tc:room:{room}", old, px=ROOM_TTL_MS)
        for role, secret_hash in hashes.items():
            r.set(f"tc:resume:{secret_hash}", f"{room} {role}", px=ROOM_TTL_MS)

        patient = await resume(client, secrets["patient"])
        welcome = await patient.expect(Welcome)
        assert (welcome.role, welcome.state, welcome.resumed) == ("patient", "in_call", True)
        doctor_ws = await resume(client, secrets["doctor"])
        welcome = await doctor_ws.expect(Welcome)
        assert (welcome.role, welcome.state, welcome.resumed) == ("doctor", "in_call", True)
        assert (await doctor_ws.expect(PeerJoined)).role == "patient"
        assert (await patient.expect(PeerJoined)).role == "doctor"

        raw = r.get(f"tc:room:{room}")
        assert isinstance(raw, bytes)
        assert json.loads(raw)["v"] == SNAPSHOT_VERSION
        saved = decode_snapshot(raw)
        assert saved.state == "in_call"
        assert saved.seats["doctor"].subject == f"user:{doctor.user['id']}"
        assert saved.seats["patient"].generation == 1
        assert all(seat.connection_id for seat in saved.seats.values())
    finally:
        r.close()


async def resume(client: TestClient[Any, Any], secret: str) -> SignalClient:
    signal = await connect(client)
    await signal.send({"type": "resume", "v": 1, "resume": secret})
    return signal
