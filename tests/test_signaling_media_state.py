"""media_state: each participant tells the other whether its microphone and camera send, so
the other page can say "Dr Martin has turned her camera off" instead of a black tile."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from signaling.clock import ManualClock
from signaling.live.protocol import PeerLeft, RelayedMediaState, Waiting, encode
from tests.conftest import Accounts, Staff
from tests.rtc import book, enter_call, join, silent

pytestmark = pytest.mark.both_stores


async def test_each_side_hears_the_others_microphone_and_camera_as_said(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    doctor_ws, _, patient_ws, _ = await enter_call(client, booking)
    await doctor_ws.send({"type": "media_state", "audio": False, "video": True})
    said = await patient_ws.expect(RelayedMediaState)
    assert (said.audio, said.video) == (False, True)
    await patient_ws.send({"type": "media_state", "audio": True, "video": False})
    said = await doctor_ws.expect(RelayedMediaState)
    assert (said.audio, said.video) == (True, False)
    # Nothing echoes back to the sender.
    assert await silent(doctor_ws)
    assert await silent(patient_ws)


async def test_a_participant_without_a_camera_or_microphone_says_so(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    doctor_ws, _, patient_ws, _ = await enter_call(client, booking)
    # The patient joined without a camera (refused or none): the doctor learns it is missing,
    # not turned off; repeated kinds count once, in a stable order.
    await patient_ws.send(
        {
            "type": "media_state",
            "audio": False,
            "video": False,
            "missing": ["video", "audio", "video"],
        }
    )
    said = await doctor_ws.expect(RelayedMediaState)
    assert (said.audio, said.video, said.missing) == (False, False, ("audio", "video"))
    await patient_ws.send(
        {"type": "media_state", "audio": True, "video": False, "missing": ["video"]}
    )
    said = await doctor_ws.expect(RelayedMediaState)
    assert (said.audio, said.video, said.missing) == (True, False, ("video",))
    assert await silent(patient_ws)
    # Nothing missing: the field is left out, so the message is what older pages knew.
    assert b"missing" not in encode(RelayedMediaState(audio=True, video=False))


async def test_a_malformed_media_state_is_refused_and_not_relayed(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    doctor_ws, _, patient_ws, _ = await enter_call(client, booking)
    refusals = [
        ({"type": "media_state", "audio": True}, "$.video"),
        ({"type": "media_state", "audio": "off", "video": True}, "$.audio"),
        ({"type": "media_state", "audio": True, "video": 0}, "$.video"),
        # A message cannot speak for the other participant.
        ({"type": "media_state", "audio": True, "video": True, "role": "doctor"}, "$.role"),
        # A device that is not there cannot send, nor can an unknown kind be missing.
        ({"type": "media_state", "audio": True, "video": True, "missing": ["video"]}, "$.missing"),
        (
            {"type": "media_state", "audio": True, "video": False, "missing": ["screen"]},
            "$.missing[0]",
        ),
        ({"type": "media_state", "audio": True, "video": False, "missing": "video"}, "$.missing"),
    ]
    for message, where in refusals:
        await patient_ws.send(message)
        error = await patient_ws.expect_error("malformed_message")
        assert error.at == where
    assert await silent(doctor_ws)
    # The socket stays: a valid one still goes through.
    await patient_ws.send({"type": "media_state", "audio": True, "video": True})
    assert (await doctor_ws.expect(RelayedMediaState)).video is True


async def test_media_state_outside_a_call_is_refused(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    doctor_ws, _ = await join(client, await booking.doctor_token())
    patient_ws, _ = await join(client, await booking.patient_token())
    await patient_ws.expect(Waiting)
    # In the waiting room nothing is relayed: the doctor learns nothing of the patient's camera.
    await patient_ws.send({"type": "media_state", "audio": True, "video": False})
    assert (await patient_ws.expect_error("invalid_state")).ref == "media_state"
    await doctor_ws.close()
    await patient_ws.close()


async def test_media_state_to_a_dropped_peer_is_refused_with_peer_absent(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    doctor_ws, _, patient_ws, _ = await enter_call(client, booking)
    patient_ws.drop()
    left = await doctor_ws.expect(PeerLeft)
    assert left.reason == "disconnected"
    await doctor_ws.send({"type": "media_state", "audio": False, "video": False})
    assert (await doctor_ws.expect_error("peer_absent")).ref == "media_state"
