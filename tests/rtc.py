"""Helpers for signaling tests: tokens through the real HTTP API, a typed WebSocket client,
aiortc peers with synthetic tracks, and the loopback patch aioice needs."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp
import aioice.ice
import msgspec
import pytest
from aiohttp.test_utils import TestClient
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack, VideoStreamTrack

from signaling.clock import ManualClock
from signaling.protocol import (
    SERVER_DECODER,
    ErrorMessage,
    IceServer,
    ServerMessage,
    Welcome,
)
from tests.conftest import ORIGIN, Accounts, Staff

M = TypeVar("M")
RECEIVE_TIMEOUT = 5.0


def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice drops 127.0.0.1 from its host candidates: put it back, and only it."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


# -- tokens through the real API ----------------------------------------------------------


@dataclasses.dataclass
class Booking:
    """A consultation created by a signed-in doctor, and a patient who redeemed the invite."""

    consultation_id: str
    doctor: Staff
    patient: aiohttp.ClientSession
    patient_csrf: str
    first_patient_token: str | None

    async def doctor_token(self) -> str:
        resp = await self.doctor.post(
            "/api/room-tokens", json={"consultation_id": self.consultation_id}
        )
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["room_token"])

    async def patient_token(self) -> str:
        if self.first_patient_token is not None:
            token, self.first_patient_token = self.first_patient_token, None
            return token
        resp = await self.patient.post(
            "/api/room-tokens",
            json={"consultation_id": self.consultation_id},
            headers={"X-CSRF-Token": self.patient_csrf},
        )
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["room_token"])

    async def token(self, role: str) -> str:
        return await (self.doctor_token() if role == "doctor" else self.patient_token())


async def book(
    accounts: Accounts, doctor: Staff, clock: ManualClock, patient_name: str = "Alice Patient"
) -> Booking:
    start = datetime.fromtimestamp(clock.now(), UTC).isoformat()
    resp = await doctor.post(
        "/api/consultations",
        json={"patient_name": patient_name, "scheduled_start": start, "duration_minutes": 30},
    )
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    invite = created["invite_url"].rsplit("/join/", 1)[1]
    patient = accounts.new_session()
    resp = await patient.post(
        "/api/invites/redeem", json={"invite": invite, "access_code": created["access_code"]}
    )
    assert resp.status == 200, await resp.text()
    redeemed = await resp.json()
    return Booking(
        created["consultation"]["id"],
        doctor,
        patient,
        redeemed["csrf_token"],
        redeemed["room_token"],
    )


# -- a typed signaling client -------------------------------------------------------------


class Closed(Exception):
    def __init__(self, code: int | None) -> None:
        super().__init__(f"closed with {code}")
        self.code = code


class SignalClient:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_str(msgspec.json.encode(message).decode())

    async def send_raw(self, text: str) -> None:
        await self.ws.send_str(text)

    async def recv(self, within: float = RECEIVE_TIMEOUT) -> ServerMessage:
        msg = await self.ws.receive(timeout=within)
        if msg.type is aiohttp.WSMsgType.TEXT:
            return SERVER_DECODER.decode(msg.data)
        raise Closed(self.ws.close_code)

    async def expect(self, kind: type[M], within: float = RECEIVE_TIMEOUT) -> M:
        message = await self.recv(within)
        assert isinstance(message, kind), f"expected {kind.__name__}, got {message!r}"
        return message

    async def expect_error(self, code: str) -> ErrorMessage:
        error = await self.expect(ErrorMessage)
        assert error.code == code, error
        return error

    async def closed_with(self, within: float = RECEIVE_TIMEOUT) -> int | None:
        """Read until the server closes; answer the close code (messages on the way dropped)."""
        async with asyncio.timeout(within):
            while True:
                msg = await self.ws.receive()
                if msg.type in (
                    aiohttp.WSMsgType.CLOSE,
                    aiohttp.WSMsgType.CLOSED,
                    aiohttp.WSMsgType.CLOSING,
                    aiohttp.WSMsgType.ERROR,
                ):
                    return self.ws.close_code

    async def close(self) -> None:
        await self.ws.close()

    def drop(self) -> None:
        """Lose the connection without a close frame, as a network change does."""
        connection = self.ws._response.connection
        assert connection is not None and connection.transport is not None
        connection.transport.abort()


async def connect(client: TestClient[Any, Any], origin: str = ORIGIN) -> SignalClient:
    ws = await client.ws_connect("/ws", origin=origin, autoping=True)
    return SignalClient(ws)


async def join(
    client: TestClient[Any, Any], token: str, version: int = 1
) -> tuple[SignalClient, Welcome]:
    signal = await connect(client)
    await signal.send({"type": "join", "v": version, "token": token})
    welcome = await signal.expect(Welcome)
    return signal, welcome


# -- aiortc peers --------------------------------------------------------------------------


def rtc_config(servers: list[IceServer], relay_only: bool = False) -> RTCConfiguration:
    ice = [RTCIceServer(urls=s.urls, username=s.username, credential=s.credential) for s in servers]
    config = RTCConfiguration(iceServers=ice)
    if relay_only:
        from aiortc.rtcconfiguration import RTCIceTransportPolicy

        config.iceTransportPolicy = RTCIceTransportPolicy.RELAY
    return config


class Peer:
    """An aiortc peer sending synthetic audio and video, counting the frames it receives."""

    def __init__(self, config: RTCConfiguration) -> None:
        self.pc = RTCPeerConnection(config)
        self.pc.addTrack(AudioStreamTrack())
        self.pc.addTrack(VideoStreamTrack())
        self.frames: dict[str, int] = {"audio": 0, "video": 0}
        self._readers: list[asyncio.Task[None]] = []
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._readers.append(asyncio.ensure_future(self._read(track)))

    async def _read(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(Exception):
            while True:
                await track.recv()
                self.frames[track.kind] += 1

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def answer(self, offer_sdp: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return str(self.pc.localDescription.sdp)

    async def accept(self, answer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(answer_sdp, "answer"))

    async def wait_connected(self, within: float = 10.0) -> None:
        async with asyncio.timeout(within):
            while self.pc.connectionState != "connected":
                if self.pc.connectionState == "failed":
                    raise AssertionError("peer connection failed")
                await asyncio.sleep(0.05)

    async def wait_frames(self, count: int = 3, within: float = 10.0) -> None:
        async with asyncio.timeout(within):
            while min(self.frames.values()) < count:  # noqa: ASYNC110 - counters, no event
                await asyncio.sleep(0.05)

    def srtp_profile(self) -> str:
        transport = self.pc.getSenders()[0].transport
        assert transport.state == "connected"
        ssl = transport._ssl
        assert ssl is not None
        return str(ssl.get_selected_srtp_profile().decode())

    async def close(self) -> None:
        await self.pc.close()
        for task in self._readers:
            task.cancel()
        for task in self._readers:
            with contextlib.suppress(asyncio.CancelledError):
                await task


@contextlib.asynccontextmanager
async def peers(*configs: RTCConfiguration) -> AsyncIterator[list[Peer]]:
    made = [Peer(config) for config in configs]
    try:
        yield made
    finally:
        for peer in made:
            await peer.close()
