"""Every refusal of the signaling endpoint: one test each, with its documented code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from signaling.clock import ManualClock
from signaling.keys import SERVICES
from signaling.live.protocol import (
    ErrorMessage,
    Lobby,
    Pong,
    RelayedCandidate,
    RelayedOffer,
    Waiting,
)
from signaling.live.signaling_state import SIGNALING
from tests.conftest import ORIGIN, Accounts, Staff, wait_until, with_limits
from tests.rtc import book, connect, enter_call, join, knocking, make_sdp, silent


async def audit_actions(client: TestClient[Any, Any]) -> list[tuple[str, str, str]]:
    assert client.app is not None
    entries = await client.app[SERVICES].store.all_audit()
    return [(e.action, e.outcome, e.details) for e in entries]


# -- before the socket opens ----------------------------------------------------------------


async def test_a_foreign_origin_is_refused_before_the_upgrade(
    client: TestClient[Any, Any],
) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await client.ws_connect("/ws", origin="https://evil.example")
    assert caught.value.status == 403


async def test_a_missing_origin_is_refused_before_the_upgrade(
    client: TestClient[Any, Any],
) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await client.ws_connect("/ws")
    assert caught.value.status == 403


@with_limits(connections_per_address=2)
async def test_connections_per_address_are_limited(client: TestClient[Any, Any]) -> None:
    first = await connect(client)
    second = await connect(client)
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await connect(client)
    assert caught.value.status == 429
    await first.close()
    assert client.app is not None
    per_address = client.app[SIGNALING].per_address
    await wait_until(lambda: per_address.get("127.0.0.1") == 1, within=10)
    third = await connect(client)  # a slot is free again
    await third.send({"type": "ping"})
    await second.close()
    await third.close()


# -- the join phase -------------------------------------------------------------------------


@with_limits(join_timeout_seconds=0.3)
async def test_no_join_in_time_closes_with_4408(client: TestClient[Any, Any]) -> None:
    signal = await connect(client)
    await signal.expect_error("join_timeout")
    assert await signal.closed_with() == 4408


async def test_an_invalid_token_closes_with_4401_and_is_audited(
    client: TestClient[Any, Any],
) -> None:
    signal = await connect(client)
    await signal.send({"type": "join", "v": 1, "token": "not-a-token"})
    error = await signal.expect_error("token_invalid")
    assert "not-a-token" not in error.message
    assert await signal.closed_with() == 4401
    assert ("signaling.token_refused", "refused", '{"reason":"token_invalid"}') in (
        await audit_actions(client)
    )


async def test_an_expired_token_closes_with_4401(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    token = await booking.doctor_token()
    clock.advance(121)
    signal = await connect(client)
    await signal.send({"type": "join", "v": 1, "token": token})
    await signal.expect_error("token_expired")
    assert await signal.closed_with() == 4401


async def test_a_replayed_token_closes_with_4401(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    token = await booking.doctor_token()
    first, _ = await join(client, token)
    signal = await connect(client)
    await signal.send({"type": "join", "v": 1, "token": token})
    await signal.expect_error("token_replayed")
    assert await signal.closed_with() == 4401
    await first.close()


async def test_an_unsupported_protocol_version_closes_with_4400(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    signal = await connect(client)
    await signal.send({"type": "join", "v": 2, "token": await booking.doctor_token()})
    await signal.expect_error("unsupported_version")
    assert await signal.closed_with() == 4400


async def test_a_first_message_other_than_join_closes_with_4400(
    client: TestClient[Any, Any],
) -> None:
    signal = await connect(client)
    await signal.send({"type": "admit"})
    await signal.expect_error("not_joined")
    assert await signal.closed_with() == 4400


async def test_malformed_json_as_first_message_closes_with_4400(
    client: TestClient[Any, Any],
) -> None:
    signal = await connect(client)
    await signal.send_raw('{"type": "join", ')
    await signal.expect_error("malformed_message")
    assert await signal.closed_with() == 4400


async def test_an_unknown_resume_secret_closes_with_4401(client: TestClient[Any, Any]) -> None:
    signal = await connect(client)
    await signal.send({"type": "resume", "v": 1, "resume": "made-up"})
    await signal.expect_error("token_invalid")
    assert await signal.closed_with() == 4401


async def test_joining_an_ended_consultation_closes_with_4410(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    token = await booking.patient_token()
    doctor_ws, _ = await join(client, await booking.doctor_token())
    await doctor_ws.send({"type": "hang_up", "end": True})
    assert await doctor_ws.closed_with() == 4410
    signal = await connect(client)
    await signal.send({"type": "join", "v": 1, "token": token})
    await signal.expect_error("consultation_ended")
    assert await signal.closed_with() == 4410


async def test_joining_a_cancelled_consultation_closes_with_4410(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    token = await booking.patient_token()
    resp = await doctor.post(f"/api/consultations/{booking.consultation_id}/cancel")
    assert resp.status == 200
    signal = await connect(client)
    await signal.send({"type": "join", "v": 1, "token": token})
    await signal.expect_error("consultation_cancelled")
    assert await signal.closed_with() == 4410


# -- frames after the join ------------------------------------------------------------------


async def joined_doctor(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> Any:
    booking = await book(accounts, doctor, clock)
    signal, _ = await join(client, await booking.doctor_token())
    await signal.expect(Lobby)
    return signal


async def test_malformed_json_is_reported_and_the_socket_kept(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    signal = await joined_doctor(client, accounts, doctor, clock)
    await signal.send_raw("{not json")
    error = await signal.expect_error("malformed_message")
    assert error.at is None
    await signal.send({"type": "ping", "id": 7})
    assert (await signal.expect(Pong)).id == 7


async def test_an_unknown_type_is_reported_with_its_path(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    signal = await joined_doctor(client, accounts, doctor, clock)
    await signal.send({"type": "teleport", "where": "moon"})
    error = await signal.expect_error("malformed_message")
    assert error.at == "$.type"
    assert "teleport" not in error.message


async def test_a_wrong_field_type_is_reported_with_its_path(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    signal = await joined_doctor(client, accounts, doctor, clock)
    await signal.send({"type": "ping", "id": "seven"})
    assert (await signal.expect_error("malformed_message")).at == "$.id"
    await signal.send({"type": "ping", "id": 1, "extra": True})
    assert (await signal.expect_error("malformed_message")).at == "$.extra"


async def test_a_second_join_on_the_same_socket_is_refused(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    signal = await joined_doctor(client, accounts, doctor, clock)
    await signal.send({"type": "join", "v": 1, "token": "x"})
    error = await signal.expect_error("already_joined")
    assert error.ref == "join"


async def test_a_binary_frame_closes_with_1003(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    signal = await joined_doctor(client, accounts, doctor, clock)
    await signal.ws.send_bytes(b'{"type": "ping"}')
    await signal.expect_error("binary_not_supported")
    assert await signal.closed_with() == 1003


async def test_a_message_above_the_size_limit_closes_with_1009(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    signal = await joined_doctor(client, accounts, doctor, clock)
    await signal.send({"type": "offer", "sdp": "x" * (64 * 1024 + 1)})
    assert await signal.closed_with() == 1009


@with_limits(messages_per_second=1, message_burst=3)
async def test_too_many_messages_close_with_4429(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    signal = await joined_doctor(client, accounts, doctor, clock)
    for number in range(6):
        await signal.send({"type": "ping", "id": number})
    for number in range(3):
        assert (await signal.expect(Pong)).id == number
    await signal.expect_error("rate_limited")
    assert await signal.closed_with() == 4429


# -- the room's rules -----------------------------------------------------------------------


async def test_nothing_is_relayed_before_admission(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    doctor_ws, _, patient_ws, _ = await knocking(client, booking)
    await doctor_ws.send({"type": "offer", "sdp": make_sdp()})
    assert (await doctor_ws.expect_error("invalid_state")).ref == "offer"
    await patient_ws.send({"type": "offer", "sdp": make_sdp()})
    await patient_ws.expect_error("invalid_state")
    line = "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host"
    await patient_ws.send({"type": "candidate", "candidate": line})
    await patient_ws.expect_error("invalid_state")
    assert await silent(doctor_ws)
    assert await silent(patient_ws)


async def test_only_the_doctor_admits_denies_or_ends(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    patient_ws, _ = await join(client, await booking.patient_token())
    await patient_ws.expect(Waiting)
    for message in ({"type": "admit"}, {"type": "deny"}, {"type": "hang_up", "end": True}):
        await patient_ws.send(message)
        await patient_ws.expect_error("forbidden")


async def test_admitting_an_empty_waiting_room_is_refused(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    signal = await joined_doctor(client, accounts, doctor, clock)
    await signal.send({"type": "admit"})
    await signal.expect_error("peer_absent")
    await signal.send({"type": "deny"})
    await signal.expect_error("peer_absent")


async def test_an_insecure_offer_is_refused_and_not_relayed(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    doctor_ws, _, patient_ws, _ = await enter_call(client, booking)
    refusals = [
        (make_sdp(profile="RTP/AVP"), "insecure_sdp"),
        (make_sdp(fingerprint=None), "insecure_sdp"),
        (make_sdp(fingerprint="sha-1 " + ":".join(["AB"] * 20)), "insecure_sdp"),
        (make_sdp(setup=None), "insecure_sdp"),
        (make_sdp(media=17), "invalid_sdp"),
        (make_sdp(candidates=65), "too_many_candidates"),
    ]
    for sdp, code in refusals:
        await doctor_ws.send({"type": "offer", "sdp": sdp})
        assert (await doctor_ws.expect_error(code)).ref == "offer"
    await doctor_ws.send({"type": "answer", "sdp": make_sdp(profile="RTP/AVP")})
    await doctor_ws.expect_error("insecure_sdp")
    assert await silent(patient_ws)
    await doctor_ws.send({"type": "offer", "sdp": make_sdp()})
    assert isinstance(await patient_ws.expect(RelayedOffer), RelayedOffer)


@with_limits(max_message_bytes=256 * 1024)
async def test_an_sdp_above_64_kib_is_refused_even_under_the_message_limit(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    doctor_ws, _, patient_ws, _ = await enter_call(client, booking)
    await doctor_ws.send({"type": "offer", "sdp": make_sdp(padding=70)})
    await doctor_ws.expect_error("malformed_message")  # longer than the field allows
    await doctor_ws.send({"type": "offer", "sdp": make_sdp(padding=66)[: 64 * 1024 + 1]})
    await doctor_ws.expect_error("invalid_sdp")
    assert await silent(patient_ws)


@with_limits(messages_per_second=1000, message_burst=1000)
async def test_too_many_trickled_candidates_are_refused(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    doctor_ws, _, patient_ws, _ = await enter_call(client, booking)
    await doctor_ws.send({"type": "offer", "sdp": make_sdp(candidates=0)})
    await patient_ws.expect(RelayedOffer)
    for port in range(64):
        line = f"candidate:{port} 1 udp 2122260223 127.0.0.1 {50000 + port} typ host"
        await doctor_ws.send({"type": "candidate", "candidate": line, "sdp_mid": "0"})
    for _ in range(64):
        await patient_ws.expect(RelayedCandidate)
    await doctor_ws.send({"type": "candidate", "candidate": line})
    await doctor_ws.expect_error("too_many_candidates")
    await doctor_ws.send({"type": "candidate", "candidate": "not a candidate"})
    await doctor_ws.expect_error("invalid_sdp")
    assert await silent(patient_ws)


async def test_errors_never_carry_a_traceback_or_a_token(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    token = await booking.doctor_token()
    signal = await connect(client)
    await signal.send({"type": "join", "v": "1", "token": token})
    error = await signal.expect(ErrorMessage)
    assert error.code == "malformed_message" and error.at == "$.v"
    text = repr(error)
    assert token not in text and "Traceback" not in text


async def test_per_message_compression_is_never_negotiated(client: TestClient[Any, Any]) -> None:
    ws = await client.ws_connect("/ws", origin=ORIGIN, compress=15)
    assert ws.compress == 0
    await ws.close()


CHROMIUM = json.loads((Path(__file__).parent / "fixtures" / "chromium_sdp.json").read_text())


@with_limits(messages_per_second=1000, message_burst=1000)
async def test_candidates_and_sdps_with_control_characters_never_reach_the_peer(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    doctor_ws, _, patient_ws, _ = await enter_call(client, booking)
    line = "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host"
    refused_candidates = [
        {"candidate": line + "\r\na=candidate:2 1 udp 1 203.0.113.9 9 typ host", "sdp_mid": "0"},
        {"candidate": line + "\n", "sdp_mid": "0"},
        {"candidate": line.replace(" typ", "\x00 typ"), "sdp_mid": "0"},
        {"candidate": line + " generation 0\x7f", "sdp_mid": "0"},
        {"candidate": line, "sdp_mid": "0\r\na=setup:passive"},
        {"candidate": line, "sdp_mid": "0\x00"},
    ]
    for fields in refused_candidates:
        await doctor_ws.send({"type": "candidate", **fields})
        assert (await doctor_ws.expect_error("invalid_sdp")).ref == "candidate"
    chromium = CHROMIUM["camera"]["offer"]
    refused_sdps = [
        chromium.replace("a=mid:0\r\n", "a=mid:0\ra=fingerprint:sha-1 AB:CD\r\n", 1),
        chromium.replace("s=-", "s=-\x00", 1),
        chromium + "\x1b",
        make_sdp().replace("t=0 0", "t=0\u2028 0"),
    ]
    for sdp in refused_sdps:
        await doctor_ws.send({"type": "offer", "sdp": sdp})
        assert (await doctor_ws.expect_error("invalid_sdp")).ref == "offer"
        await patient_ws.send({"type": "answer", "sdp": sdp})
        assert (await patient_ws.expect_error("invalid_sdp")).ref == "answer"
    assert await silent(patient_ws)
    assert await silent(doctor_ws)

    # Real Chromium descriptions and candidates still pass, unchanged.
    await doctor_ws.send({"type": "offer", "sdp": chromium})
    assert (await patient_ws.expect(RelayedOffer)).sdp == chromium
    for candidate in CHROMIUM["camera"]["candidates"][:8]:
        fields = {k: candidate[k] for k in ("candidate", "sdp_mid", "sdp_mline_index")}
        await doctor_ws.send({"type": "candidate", **fields})
        relayed = await patient_ws.expect(RelayedCandidate)
        assert (relayed.candidate, relayed.sdp_mid) == (fields["candidate"], fields["sdp_mid"])
    answer = CHROMIUM["camera"]["answer"]
    await patient_ws.send({"type": "answer", "sdp": answer})
    assert getattr(await doctor_ws.recv(), "sdp", None) == answer
