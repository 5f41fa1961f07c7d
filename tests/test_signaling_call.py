"""Real calls through the real server: two aiortc peers join, get admitted and exchange media."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from signaling.clock import ManualClock
from signaling.keys import SERVICES
from signaling.live.protocol import (
    PeerJoined,
    PeerLeft,
    RelayedAnswer,
    RelayedOffer,
    Welcome,
)
from tests.conftest import Accounts, Staff
from tests.rtc import SignalClient, book, connect_media, enter_call, negotiate, peers, rtc_config

pytestmark = pytest.mark.usefixtures("loopback_only")


async def test_doctor_and_patient_exchange_audio_and_video_over_dtls_srtp(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    doctor_ws, doctor_welcome, patient_ws, _ = await enter_call(
        client, booking, patient_name="Alice Patient"
    )
    assert doctor_welcome.room == booking.consultation_id
    async with peers(rtc_config([]), rtc_config([])) as (doctor_peer, patient_peer):
        await connect_media(doctor_ws, doctor_peer, patient_ws, patient_peer)
        for peer in (doctor_peer, patient_peer):
            assert peer.srtp_profile().startswith("SRTP_")
    await doctor_ws.close()
    await patient_ws.close()


async def test_renegotiation_and_a_fresh_ice_session_after_resume_restore_media(
    client: TestClient[Any, Any], accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    booking = await book(accounts, doctor, clock)
    doctor_ws, doctor_welcome, patient_ws, _ = await enter_call(
        client, booking, patient_name="Alice Patient"
    )
    async with peers(rtc_config([]), rtc_config([])) as (doctor_peer, patient_peer):
        await negotiate(doctor_ws, doctor_peer, patient_ws, patient_peer)
        await doctor_peer.wait_connected()
        # Renegotiation inside the call: the patient offers this time.
        await negotiate(patient_ws, patient_peer, doctor_ws, doctor_peer)
    # The doctor's network changes: its socket drops, media is gone.
    doctor_ws.drop()
    left = await patient_ws.expect(PeerLeft)
    assert (left.role, left.reason) == ("doctor", "disconnected")
    resumed_ws = await _resume(client, doctor_welcome.resume)
    again = await patient_ws.expect(PeerJoined)
    assert again.role == "doctor" and again.resumed
    assert (await resumed_ws.expect(PeerJoined)).role == "patient"
    # A new ICE session (what an ICE restart gives a browser) over the resumed signaling.
    async with peers(rtc_config([]), rtc_config([])) as (doctor_peer, patient_peer):
        await resumed_ws.send(
            {"type": "offer", "sdp": await doctor_peer.offer(), "ice_restart": True}
        )
        offer = await patient_ws.expect(RelayedOffer)
        assert offer.ice_restart
        await patient_ws.send({"type": "answer", "sdp": await patient_peer.answer(offer.sdp)})
        await doctor_peer.accept((await resumed_ws.expect(RelayedAnswer)).sdp)
        await doctor_peer.wait_frames()
        await patient_peer.wait_frames()
    await resumed_ws.close()
    await patient_ws.close()
    assert client.app is not None
    assert client.app[SERVICES] is not None


async def _resume(client: TestClient[Any, Any], secret: str) -> SignalClient:
    from tests.rtc import connect

    signal = await connect(client)
    await signal.send({"type": "resume", "v": 1, "resume": secret})
    welcome = await signal.expect(Welcome)
    assert welcome.resumed
    assert welcome.state == "in_call"
    return signal
