"""Room rules: waiting room, admission, replacement, resume, ending, audit, slow clients."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from signaling.clock import ManualClock
from signaling.keys import SERVICES
from signaling.live import connection as connection_module
from signaling.live.bus import LocalBus
from signaling.live.protocol import (
    Admitted,
    Denied,
    Ended,
    Lobby,
    PatientLeft,
    PeerJoined,
    PeerLeft,
    Pong,
    RelayedOffer,
    Waiting,
    Welcome,
)
from signaling.live.room import InvalidTransition, RoomState
from signaling.live.room_registry import RoomRegistry
from signaling.live.signaling_state import SIGNALING
from signaling.store.sqlite import SqliteStore
from tests.conftest import ORIGIN, Accounts, Staff, deadline, wait_until, with_limits
from tests.rtc import SignalClient, book, connect, enter_call, join, knocking, make_sdp, silent


async def resume(client: TestClient[Any, Any], secret: str) -> tuple[SignalClient, Welcome]:
    signal = await connect(client)
    await signal.send({"type": "resume", "v": 1, "resume": secret})
    return signal, await signal.expect(Welcome)


async def test_the_doctor_sees_who_waits_and_the_patient_learns_nothing(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock, patient_name="Bob Waiting")
    patient_ws, welcome = await join(client, await booking.patient_token())
    assert welcome.state == "waiting"
    await patient_ws.expect(Waiting)
    doctor_ws, _ = await join(client, await booking.doctor_token())
    lobby = await doctor_ws.expect(Lobby)
    assert lobby.waiting is not None and lobby.waiting.name == "Bob Waiting"
    # The doctor coming and going is not the patient's business before admission.
    await doctor_ws.close()
    assert await silent(patient_ws)
    other, _ = await join(client, await booking.doctor_token())
    await other.expect(Lobby)
    assert await silent(patient_ws)


async def test_a_waiting_patient_is_dated_by_the_service_clock(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    """The room's times come from the application's clock, as every other time does."""
    booking = await book(accounts, doctor, clock)
    clock.advance(90)
    patient_ws, _ = await join(client, await booking.patient_token())
    await patient_ws.expect(Waiting)
    doctor_ws, _ = await join(client, await booking.doctor_token())
    lobby = await doctor_ws.expect(Lobby)
    assert lobby.waiting is not None and lobby.waiting.since == clock.now()


async def test_a_second_doctor_tab_replaces_the_first_with_4000(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    first_doctor, _, patient_ws, _ = await enter_call(client, booking)
    second_doctor, welcome = await join(client, await booking.doctor_token())
    assert welcome.state == "in_call"
    await first_doctor.expect_error("replaced")
    assert await first_doctor.closed_with() == 4000
    left = await patient_ws.expect(PeerLeft)
    assert (left.role, left.reason) == ("doctor", "replaced")
    assert (await patient_ws.expect(PeerJoined)).role == "doctor"
    await second_doctor.expect(Lobby)
    assert (await second_doctor.expect(PeerJoined)).role == "patient"
    # The new tab is in the call: offers flow.
    await second_doctor.send({"type": "offer", "sdp": make_sdp()})
    await patient_ws.expect(RelayedOffer)


async def test_a_reloading_patient_replaces_its_old_socket_and_waits_again(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    doctor_ws, _, old_patient, _ = await enter_call(client, booking)
    new_patient, welcome = await join(client, await booking.patient_token())
    assert welcome.state == "waiting"
    await new_patient.expect(Waiting)
    await old_patient.expect_error("replaced")
    assert await old_patient.closed_with() == 4000
    left = await doctor_ws.expect(PeerLeft)
    assert (left.role, left.reason) == ("patient", "replaced")
    lobby = await doctor_ws.expect(Lobby)
    assert lobby.waiting is not None
    # Back in the waiting room: nothing is relayed until the doctor admits again.
    await doctor_ws.send({"type": "offer", "sdp": make_sdp()})
    await doctor_ws.expect_error("invalid_state")
    await doctor_ws.send({"type": "admit"})
    await new_patient.expect(Admitted)


async def test_a_token_for_another_consultation_seats_nobody_here(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    """A third person needs a token, and a token only ever takes its own role's seat."""
    first = await book(accounts, doctor, clock)
    second = await book(accounts, doctor, clock, patient_name="Carol Elsewhere")
    doctor_ws, _ = await join(client, await first.doctor_token())
    await doctor_ws.expect(Lobby)
    stranger, welcome = await join(client, await second.patient_token())
    assert welcome.room == second.consultation_id
    await stranger.expect(Waiting)
    assert await silent(doctor_ws)


async def test_a_denied_patient_is_closed_with_4003(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    doctor_ws, _, patient_ws, _ = await knocking(client, booking)
    await doctor_ws.send({"type": "deny"})
    await patient_ws.expect(Denied)
    assert await patient_ws.closed_with() == 4003
    assert (await doctor_ws.expect(Lobby)).waiting is None


async def test_ending_the_consultation_closes_both_and_marks_it_ended(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    doctor_ws, _, patient_ws, _ = await enter_call(client, booking)
    await doctor_ws.send({"type": "hang_up", "end": True})
    assert (await patient_ws.expect(Ended)).reason == "ended_by_doctor"
    assert await patient_ws.closed_with() == 4410
    assert (await doctor_ws.expect(Ended)).reason == "ended_by_doctor"
    assert await doctor_ws.closed_with() == 4410
    resp = await doctor.client.get(f"/api/consultations/{booking.consultation_id}")
    assert (await resp.json())["status"] == "ended"
    expected = {
        "signaling.join",
        "signaling.waiting",
        "signaling.admitted",
        "call.started",
        "call.ended",
        "consultation.ended",
    }
    # The audit trail is written right after the sockets are told: give it a moment.
    assert client.app is not None
    store = client.app[SERVICES].store

    async def all_written() -> bool:
        return expected <= {e.action for e in await store.all_audit()}

    await wait_until(all_written, within=20)


async def test_a_patient_hang_up_leaves_and_the_doctor_is_told(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    doctor_ws, _, patient_ws, _ = await enter_call(client, booking)
    await patient_ws.send({"type": "hang_up"})
    assert await patient_ws.closed_with() == 1000
    left = await doctor_ws.expect(PeerLeft)
    assert (left.role, left.reason) == ("patient", "left")
    assert (await doctor_ws.expect(Lobby)).waiting is None
    resp = await doctor.client.get(f"/api/consultations/{booking.consultation_id}")
    assert (await resp.json())["status"] == "scheduled"


async def test_denial_and_refusals_are_audited(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    doctor_ws, _ = await join(client, await booking.doctor_token())
    patient_ws, _ = await join(client, await booking.patient_token())
    await patient_ws.expect(Waiting)
    await doctor_ws.send({"type": "deny"})
    await patient_ws.expect(Denied)
    assert client.app is not None
    entries = await client.app[SERVICES].store.all_audit()
    denied = [e for e in entries if e.action == "signaling.denied"]
    assert len(denied) == 1 and denied[0].outcome == "denied"
    assert denied[0].target == booking.consultation_id


async def test_a_patient_resumes_its_admitted_place_after_a_drop(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    doctor_ws, _, patient_ws, patient_welcome = await enter_call(client, booking)
    patient_ws.drop()
    left = await doctor_ws.expect(PeerLeft)
    assert (left.role, left.reason) == ("patient", "disconnected")
    back, welcome = await resume(client, patient_welcome.resume)
    assert welcome.resumed and welcome.state == "in_call" and welcome.role == "patient"
    assert welcome.resume != patient_welcome.resume
    joined = await doctor_ws.expect(PeerJoined)
    assert joined.role == "patient" and joined.resumed
    assert (await back.expect(PeerJoined)).role == "doctor"
    await doctor_ws.send({"type": "offer", "sdp": make_sdp()})
    await back.expect(RelayedOffer)
    # A resume secret is good once.
    again = await connect(client)
    await again.send({"type": "resume", "v": 1, "resume": patient_welcome.resume})
    await again.expect_error("token_invalid")
    assert await again.closed_with() == 4401


@with_limits(resume_grace_seconds=0.3)
async def test_a_place_not_resumed_within_the_grace_period_is_lost(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    doctor_ws, _, patient_ws, patient_welcome = await enter_call(client, booking)
    patient_ws.drop()
    left = await doctor_ws.expect(PeerLeft)
    assert (left.role, left.reason) == ("patient", "disconnected")
    lobby = await doctor_ws.expect(Lobby, within=10.0)  # the grace period ran out
    assert lobby.waiting is None
    assert lobby.left == PatientLeft(reason="disconnected", may_return=True)
    late = await connect(client)
    await late.send({"type": "resume", "v": 1, "resume": patient_welcome.resume})
    await late.expect_error("token_invalid")
    assert await late.closed_with() == 4401
    # With a fresh token the patient is back in the waiting room, not in the call.
    _, welcome = await join(client, await booking.patient_token())
    assert welcome.state == "waiting"


async def test_a_waiting_patient_resumes_into_the_waiting_room(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    patient_ws, welcome = await join(client, await booking.patient_token())
    await patient_ws.expect(Waiting)
    patient_ws.drop()
    back, resumed = await resume(client, welcome.resume)
    assert resumed.state == "waiting"
    await back.expect(Waiting)


@with_limits(
    send_queue_size=4,
    messages_per_second=100_000,
    message_burst=100_000,
    max_message_bytes=128 * 1024,
)
async def test_a_client_that_does_not_read_is_dropped_without_stalling_others(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    doctor_ws, _, _patient_ws, _ = await enter_call(client, booking)
    bystander = await book(accounts, doctor, clock, patient_name="Dan Bystander")
    other_ws, _ = await join(client, await bystander.doctor_token())
    await other_ws.expect(Lobby)
    big_offer = make_sdp(padding=60)
    # The patient never reads; the doctor keeps sending until the server gives up on it.
    disconnected = False
    for _ in range(2000):
        await doctor_ws.send({"type": "offer", "sdp": big_offer})
        await other_ws.send({"type": "ping", "id": 1})
        assert (await other_ws.expect(Pong)).id == 1
        if _patient_gone(client):
            disconnected = True
            break
    assert disconnected
    left = await doctor_ws.expect(PeerLeft)
    assert (left.role, left.reason) == ("patient", "disconnected")
    await other_ws.send({"type": "ping", "id": 2})
    assert (await other_ws.expect(Pong)).id == 2


def _patient_gone(client: TestClient[Any, Any]) -> bool:
    assert client.app is not None
    rooms = client.app[SIGNALING].rooms.rooms
    return any(
        seat.role == "patient" and not seat.connected
        for room in rooms.values()
        for seat in room.seats.values()
    )


async def test_shutdown_closes_open_sockets_with_going_away(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    doctor_ws, _ = await join(client, await booking.doctor_token())
    await doctor_ws.expect(Lobby)
    closing = asyncio.ensure_future(doctor_ws.closed_with())
    assert client.app is not None
    await client.app.shutdown()
    assert await closing == 1001


@with_limits(heartbeat_seconds=0.2)
async def test_a_client_that_stops_answering_pings_is_dropped(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    # A patient whose network died silently: it answers no ping.
    patient = await client.ws_connect("/ws", origin=ORIGIN, autoping=False)
    join_message = {"type": "join", "v": 1, "token": await booking.patient_token()}
    await patient.send_str(msgspec.json.encode(join_message).decode())
    kinds = []
    async with asyncio.timeout(deadline(10)):
        while True:
            msg = await patient.receive()
            kinds.append(msg.type)
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR):
                break
    assert WSMsgType.PING in kinds
    assert _patient_gone(client)  # the connection is gone, the seat waits for a resume


async def test_the_room_state_machine_refuses_bad_transitions_with_one_error_type() -> None:
    delivered: list[tuple[str, bytes, int | None]] = []
    bus = LocalBus()
    bus.attach("d1", lambda payload, code: delivered.append(("d1", payload, code)))
    bus.attach("p1", lambda payload, code: delivered.append(("p1", payload, code)))

    async def no_audit(*args: Any, **kwargs: Any) -> None:
        return None

    registry = RoomRegistry(bus, ManualClock(), 30.0, no_audit)
    room = registry.get_or_create("room-1", "Alice")
    await room.join("d1", "doctor", "user:1", "", lambda result: None)
    with pytest.raises(InvalidTransition):
        room.relay_target("doctor")  # waiting: nothing is relayed
    await room.join("p1", "patient", "patient:room-1", "", lambda result: None)
    await room.admit("doctor")
    # By value: an ``is`` would narrow room.state for mypy beyond the end() below.
    assert room.state == RoomState.IN_CALL.value
    assert room.relay_target("doctor") == "patient"
    with pytest.raises(InvalidTransition):
        await room.admit("doctor")  # already in the call
    await room.end("ended_by_doctor", None)
    assert room.state is RoomState.ENDED
    for attempt in (
        room.admit("doctor"),
        room.deny("doctor"),
        room.join("d2", "doctor", "user:1", "", lambda result: None),
        room.resume("d3", "doctor", lambda result: None),
    ):
        with pytest.raises(InvalidTransition) as caught:
            await attempt
        assert caught.value.code == "invalid_state"
    assert [code for _, _, code in delivered if code is not None] == [4410, 4410]
    assert "room-1" not in registry.rooms


async def test_cancelling_a_consultation_ends_its_open_room(
    client: Any, accounts: Any, doctor: Any, clock: Any
) -> None:
    from signaling.live.protocol import Ended
    from tests.rtc import book, join

    booking = await book(accounts, doctor, clock)
    doctor_ws, _ = await join(client, await booking.doctor_token())
    patient_ws, _ = await join(client, await booking.patient_token())
    resp = await doctor.post(f"/api/consultations/{booking.consultation_id}/cancel")
    assert resp.status == 200
    for ws in (doctor_ws, patient_ws):
        message = await ws.recv()
        while not isinstance(message, Ended):  # lobby and waiting updates come first
            message = await ws.recv()
        assert message.reason == "cancelled"
        assert await ws.closed_with() == 4410


async def test_a_room_that_ends_closes_its_sockets_with_a_full_closing_handshake(
    client: TestClient[Any, Any],
    accounts: Accounts,
    doctor: Staff,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The patient's connection sits waiting for a message when the consultation is
    cancelled: the server sends its close frame with 4410, then keeps the TCP connection
    until the client answers with its own close frame (RFC 6455's closing handshake), so no
    client sees 1006 for want of a place to send that answer."""
    # How long the server waits for the answer: ample on a slow machine too.
    monkeypatch.setattr(connection_module, "CLOSE_TIMEOUT", deadline(10))
    assert client.app is not None
    signaling = client.app[SIGNALING]
    booking = await book(accounts, doctor, clock)
    raw = await client.ws_connect("/ws", origin=ORIGIN, autoclose=False)
    patient = SignalClient(raw)
    await patient.send({"type": "join", "v": 1, "token": await booking.patient_token()})
    await patient.expect(Welcome)
    await patient.expect(Waiting)
    (server_side,) = list(signaling.sockets)
    resp = await doctor.post(f"/api/consultations/{booking.consultation_id}/cancel")
    assert resp.status == 200, await resp.text()
    assert (await patient.expect(Ended)).reason == "cancelled"
    frame = await raw.receive(timeout=deadline(10))
    assert (frame.type, frame.data) == (WSMsgType.CLOSE, 4410)
    # Our answer (1001) reaches the server: it had not dropped the connection after its frame.
    await raw.close(code=1001)
    assert raw.close_code == 4410
    await wait_until(lambda: not signaling.per_address, within=10)  # the handler is done
    assert server_side.close_code == 1001


async def test_a_connection_whose_handler_is_cancelled_still_leaves_its_seat_and_audit(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    """aiohttp cancels the handler of a connection once its TCP connection is gone (the test
    server does, and a deployment may): what follows the end of the connection (its seat
    kept for a resume, its signaling.disconnected entry) must not be cut short by that. The
    store's one thread is held busy, so the entry is still to be written at that moment."""
    assert client.app is not None
    signaling = client.app[SIGNALING]
    store = client.app[SERVICES].store
    assert isinstance(store, SqliteStore)
    booking = await book(accounts, doctor, clock)
    _, _, patient_ws, _ = await enter_call(client, booking)

    async def actions() -> list[str]:
        return [e.action for e in await store.all_audit()]

    # The joins and the admission are written (the patient's join waits for its entries).
    await wait_until(lambda: actions_include(actions, "call.started", "signaling.waiting"), 10)
    gate = threading.Event()
    busy = asyncio.ensure_future(store._run(lambda db: gate.wait(deadline(30))))
    try:
        # A binary frame ends the connection (1003): the server lets the seat go (waiting
        # for the store), closes, and drops the TCP connection once the client has answered
        # its close frame; aiohttp then cancels the handler.
        await patient_ws.ws.send_bytes(b"\x00")
        assert await patient_ws.closed_with() == 1003
        await wait_until(lambda: signaling.per_address.get("127.0.0.1") == 1, within=10)
    finally:
        gate.set()
        await busy

    await wait_until(lambda: actions_include(actions, "signaling.disconnected"), within=10)
    room = signaling.rooms.rooms[booking.consultation_id]
    assert room.seats["patient"].connection_id is None  # kept for a resume


async def actions_include(actions: Callable[[], Awaitable[list[str]]], *wanted: str) -> bool:
    return set(wanted) <= set(await actions())


async def test_an_offer_sent_right_behind_admit_reaches_the_patient_after_its_admission(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    # The doctor's page sends the offer it made while the patient waited right behind "admit"
    # (docs/protocol.md, "Offer behind the admit"): one connection's messages are handled in
    # order, so the patient is admitted first and hears the offer after it.
    doctor_ws, _, patient_ws, _ = await knocking(client, await book(accounts, doctor, clock))
    sdp = make_sdp()
    await doctor_ws.send({"type": "admit"})
    await doctor_ws.send({"type": "offer", "sdp": sdp})
    await patient_ws.expect(Admitted)
    assert (await patient_ws.expect(PeerJoined)).role == "doctor"
    assert (await patient_ws.expect(RelayedOffer)).sdp == sdp
    await doctor_ws.expect(Lobby)
    assert (await doctor_ws.expect(PeerJoined)).role == "patient"


async def test_an_offer_behind_a_refused_admit_is_refused_too(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    doctor_ws, _, patient_ws, _ = await knocking(client, booking)
    await patient_ws.send({"type": "hang_up"})  # the patient leaves just before the click
    assert (await doctor_ws.expect(Lobby)).waiting is None
    await doctor_ws.send({"type": "admit"})
    await doctor_ws.send({"type": "offer", "sdp": make_sdp()})
    await doctor_ws.expect_error("peer_absent")
    await doctor_ws.expect_error("invalid_state")
    # Back: the patient waits again, was told nothing, and the offer reached nobody.
    patient_ws, _ = await join(client, await booking.patient_token())
    await patient_ws.expect(Waiting)
    assert await silent(patient_ws)


@with_limits(heartbeat_seconds=600)
async def test_the_sockets_of_an_ended_consultation_are_let_go_at_once(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    """Nothing keeps a closed socket: aiohttp re-arms a socket's heartbeat when the client's
    closing frame arrives, and that timer would hold it (and its request) a heartbeat long."""
    booking = await book(accounts, doctor, clock)
    doctor_ws, _, patient_ws, _ = await enter_call(client, booking)
    assert client.app is not None
    sockets = client.app[SIGNALING].sockets
    assert len(sockets) == 2
    await doctor_ws.send({"type": "hang_up", "end": True})
    for ws in (doctor_ws, patient_ws):
        await ws.expect(Ended)
        await ws.closed_with()

    def released() -> bool:
        gc.collect()
        return len(sockets) == 0

    await wait_until(released, within=10)
