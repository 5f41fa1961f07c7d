"""HTTP views of the live rooms, for pages that hold no WebSocket of their own.

* ``GET /api/waiting``: which of the doctor's patients (an assistant: of its doctors) are in
  a waiting room right now. The
  dashboard polls it (one socket per open consultation lives on the call page, never on the
  dashboard). It reads presence from the room registry: this process's rooms on one instance,
  every instance's waiting index when rooms are shared through Redis.
  Its authentication leaves the session's idle timer alone: a dashboard left open must not
  keep a session alive past ``security.session_idle_minutes`` (then it is locked, and this
  answers ``session_locked``).
* ``GET /api/waiting/events``: the same list as Server-Sent Events, sent at connect and on
  every change. Browsers throttle the timers of hidden tabs (once a minute after five
  minutes in Chromium), so a doctor sharing a screen or working in another tab would hear
  of an arrival late by polling; an EventSource is not throttled. Same authentication as
  ``/api/waiting``; the stream ends when the session does. While the session is locked it
  stays open and sends only how many patients wait, never who.
* ``GET /api/ice-policy``: whether the pages must send media through the TURN relay only
  (``turn.relay_only``), so neither side's address reaches the other.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Literal

import msgspec
from aiohttp import web

from signaling.api.http_api import (
    LOCKED_KEY,
    SESSION_COOKIE,
    SESSION_KEY,
    USER_KEY,
    ApiRegistry,
    json_response,
)
from signaling.api.views import iso
from signaling.consultations import permissions
from signaling.errors import AppError
from signaling.keys import SERVICES
from signaling.live.room_registry import RoomRegistry
from signaling.live.room_state import WaitingEntry
from signaling.live.signaling_state import SIGNALING
from signaling.models import User

routes = ApiRegistry()


class WaitingPatientView(msgspec.Struct):
    consultation_id: str
    # Whose waiting room: an assistant watches those of several doctors.
    doctor_id: str
    patient_name: str
    scheduled_start: str
    waiting_since: str
    # The invite link the patient came through (1 for the first, +1 per re-issue), and the
    # consultation's latest: a lower one means a replaced link (shown on the page).
    invite_generation: int
    latest_invite_generation: int


class WaitingList(msgspec.Struct):
    waiting: list[WaitingPatientView]


class WaitingCount(msgspec.Struct):
    # The stream's event while the session is locked: a count, no name.
    waiting_count: int


class IcePolicy(msgspec.Struct):
    ice_transport_policy: Literal["all", "relay"]


async def waiting_for(request: web.Request, user: User) -> WaitingList:
    """The patients waiting now for the doctors ``user`` schedules for (itself for a
    doctor), earliest arrival first."""
    signaling = request.app.get(SIGNALING)
    # Every instance's waiting patients when rooms are shared through Redis.
    rooms = {} if signaling is None else await signaling.rooms.waiting()
    return await _resolve(request, user, rooms)


def _watcher(request: web.Request) -> User:
    """The caller, if it has waiting rooms to watch (a doctor, an assistant)."""
    user = request[USER_KEY]
    if user.role == "admin":
        raise permissions.refuse_feature(
            user, "Only doctors and their assistants have waiting rooms."
        )
    return user


async def _resolve(request: web.Request, user: User, rooms: dict[str, WaitingEntry]) -> WaitingList:
    store = request.app[SERVICES].store
    found: list[WaitingPatientView] = []
    for room_id, entry in rooms.items():
        consultation = await store.get_consultation(room_id)
        if consultation is None or not permissions.may_manage(user, consultation):
            continue
        found.append(
            WaitingPatientView(
                consultation_id=consultation.id,
                doctor_id=consultation.doctor_id,
                patient_name=consultation.patient_name,
                scheduled_start=iso(consultation.scheduled_start),
                waiting_since=iso(entry.since),
                invite_generation=entry.generation,
                latest_invite_generation=consultation.invite_generation,
            )
        )
    found.sort(key=lambda view: view.waiting_since)
    return WaitingList(waiting=found)


@routes.route(
    "GET",
    "/api/waiting",
    summary="The patients who wait in a waiting room now, a doctor's own or an assistant's "
    "doctors' (does not extend the session)",
    auth="staff_quiet",
    response=WaitingList,
    errors=("not_authenticated", "forbidden"),
    tag="consultations",
)
async def list_waiting(request: web.Request) -> web.Response:
    return json_response(await waiting_for(request, _watcher(request)))


@dataclass(frozen=True)
class StreamTiming:
    """How often an open waiting stream looks for changes and proves it is alive."""

    # The registry offers no change notification across instances (a Redis index), so the
    # streams read it (one read shared by all, see WaitingStreams.waiting); one read a second
    # keeps an arrival's alert within a second or so.
    poll_seconds: float = 1.0
    # A comment line this often keeps proxies from closing an idle stream; the session is
    # re-checked at each one, so an expired session ends the stream within this delay.
    heartbeat_seconds: float = 15.0


STREAM_TIMING = web.AppKey("waiting_stream_timing", StreamTiming)
# A dashboard opens one stream; a few tabs are fine, a runaway page is not.
MAX_STREAMS_PER_USER = 5


@dataclass
class WaitingStreams:
    """Open streams by user, so a user's count is bounded and shutdown can end them all."""

    by_user: dict[str, set[web.StreamResponse]] = field(default_factory=dict)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # One registry read (a Redis read with shared rooms) serves every open stream, instead
    # of one read per stream per poll.
    _reading: asyncio.Lock = field(default_factory=asyncio.Lock)
    _waiting: dict[str, WaitingEntry] = field(default_factory=dict)
    _read_at: float = float("-inf")

    async def waiting(self, registry: RoomRegistry, max_age: float) -> dict[str, WaitingEntry]:
        """Room id → its waiting patient, read at most ``max_age`` seconds ago."""
        async with self._reading:
            now = asyncio.get_running_loop().time()
            if now - self._read_at >= max_age:
                self._waiting = await registry.waiting()
                self._read_at = now
            return self._waiting

    def count(self, user_id: str) -> int:
        return len(self.by_user.get(user_id, ()))

    def add(self, user_id: str, stream: web.StreamResponse) -> None:
        self.by_user.setdefault(user_id, set()).add(stream)

    def remove(self, user_id: str, stream: web.StreamResponse) -> None:
        streams = self.by_user.get(user_id)
        if streams is not None:
            streams.discard(stream)
            if not streams:
                del self.by_user[user_id]


WAITING_STREAMS = web.AppKey("waiting_streams", WaitingStreams)


def setup_waiting_streams(app: web.Application) -> None:
    app[WAITING_STREAMS] = WaitingStreams()

    async def end_streams(app: web.Application) -> None:
        # Handlers return at their next wake-up instead of holding shutdown for its timeout.
        app[WAITING_STREAMS].stopping.set()

    app.on_shutdown.append(end_streams)


def sse_event(event: str, data: bytes) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


@routes.route(
    "GET",
    "/api/waiting/events",
    summary=(
        "The waiting patients (as GET /api/waiting sees them) as Server-Sent Events: a "
        "'waiting' event (same JSON as GET /api/waiting) at connect and on each change, a "
        "comment every 15 s, and "
        "'session_ended' before the stream closes when the session ends (does not extend "
        "the session); while the session is locked, 'waiting_count' events instead"
    ),
    auth="staff_quiet",
    errors=("not_authenticated", "forbidden", "too_many_connections"),
    tag="consultations",
    produces="text/event-stream",
    while_locked=True,
    description=(
        "While the session is locked by inactivity (see `POST /api/auth/unlock`) the stream "
        "stays open: it sends `session_locked` (data `{}`), then `waiting_count` events "
        '(`{"waiting_count": 2}`) at each change instead of `waiting`, so a locked dashboard '
        "still announces an arrival without naming anyone. Once unlocked (seen at the next "
        "heartbeat; a page may reconnect at once) it sends `session_unlocked` and the full "
        "`waiting` list again. A session that ends, locked or not, gets `session_ended`."
    ),
)
async def waiting_events(request: web.Request) -> web.StreamResponse:
    doctor = _watcher(request)
    streams = request.app[WAITING_STREAMS]
    if streams.count(doctor.id) >= MAX_STREAMS_PER_USER:
        raise AppError(
            "too_many_connections",
            f"At most {MAX_STREAMS_PER_USER} waiting-room streams per account: "
            "close another dashboard tab.",
        )
    timing = request.app.get(STREAM_TIMING, StreamTiming())
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            # Tells nginx not to buffer even where the location forgot proxy_buffering off.
            "X-Accel-Buffering": "no",
        }
    )
    streams.add(doctor.id, response)
    try:
        await response.prepare(request)
        await _stream(request, response, doctor, timing, streams)
        await response.write_eof()
    except ConnectionResetError:
        pass  # the page went away; nothing to tell it
    finally:
        streams.remove(doctor.id, response)
    return response


async def _stream(
    request: web.Request,
    response: web.StreamResponse,
    doctor: User,
    timing: StreamTiming,
    streams: WaitingStreams,
) -> None:
    signaling = request.app.get(SIGNALING)
    accounts = request.app[SERVICES].accounts
    cookie = request.cookies.get(SESSION_COOKIE)
    loop = asyncio.get_running_loop()
    locked = request[LOCKED_KEY]
    locks_at = accounts.locks_at(request[SESSION_KEY])
    last_rooms: dict[str, WaitingEntry] | None = None
    last_sent = b""
    next_heartbeat = loop.time() + timing.heartbeat_seconds
    stopping = streams.stopping
    if locked:
        await response.write(sse_event("session_locked", b"{}"))
    while not stopping.is_set():
        # Half a poll of age at most: an arrival reaches the page within 1.5 polls.
        rooms = (
            {}
            if signaling is None
            else await streams.waiting(signaling.rooms, timing.poll_seconds / 2)
        )
        heartbeat_due = loop.time() >= next_heartbeat
        # The session is read again at each heartbeat, and as soon as it is due to lock, so
        # that no name is sent past the lock.
        if heartbeat_due or (not locked and accounts.clock.now() > locks_at):
            staff = await accounts.staff_session(cookie, touch=False)
            if staff is None:
                await response.write(sse_event("session_ended", b"{}"))
                return
            locks_at = staff.locks_at
            if staff.locked != locked:
                locked = staff.locked
                last_rooms, last_sent = None, b""
                await response.write(
                    sse_event("session_locked" if locked else "session_unlocked", b"{}")
                )
        if rooms != last_rooms:  # resolve consultations only when presence moved
            last_rooms = rooms
            waiting = await _resolve(request, doctor, rooms)
            # Locked: how many wait, never who (the screen may be seen by anyone).
            event, payload = (
                ("waiting_count", msgspec.json.encode(WaitingCount(len(waiting.waiting))))
                if locked
                else ("waiting", msgspec.json.encode(waiting))
            )
            if payload != last_sent:
                last_sent = payload
                await response.write(sse_event(event, payload))
        if heartbeat_due:
            next_heartbeat = loop.time() + timing.heartbeat_seconds
            await response.write(b": heartbeat\n\n")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timing.poll_seconds)


@routes.route(
    "GET",
    "/api/ice-policy",
    summary="How the call pages gather ICE candidates: 'relay' sends media through TURN only",
    auth="staff_or_patient",
    response=IcePolicy,
    errors=(
        "not_authenticated",
        "consultation_not_found",
        "consultation_cancelled",
        "invite_superseded",
    ),
    tag="consultations",
)
async def ice_policy(request: web.Request) -> web.Response:
    turn = request.app[SERVICES].settings.turn
    return json_response(IcePolicy(ice_transport_policy="relay" if turn.relay_only else "all"))
