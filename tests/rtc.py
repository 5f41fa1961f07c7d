"""Helpers for signaling tests: tokens through the real HTTP API, a typed WebSocket client,
aiortc peers with synthetic tracks (the loopback_only fixture of tests/conftest.py keeps their
candidates on this machine)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import msgspec
from aiohttp.test_utils import TestClient
from aioice import stun
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack, VideoStreamTrack

from signaling.clock import ManualClock
from signaling.live.protocol import (
    SERVER_DECODER,
    Admitted,
    ErrorMessage,
    IceServer,
    Lobby,
    PeerJoined,
    RelayedAnswer,
    RelayedOffer,
    ServerMessage,
    Waiting,
    Welcome,
)
from tests.conftest import ORIGIN, Accounts, Staff, deadline

M = TypeVar("M")
RECEIVE_TIMEOUT = 10.0  # seconds on an ordinary machine: deadline() scales it


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
        msg = await self.ws.receive(timeout=deadline(within))
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
        """Read until the server closes; answer the code of its close frame (1006 when the
        connection ended without one; messages on the way dropped). Read from the frame:
        aiohttp's own close_code turns into 1006 when its answering close frame finds the
        connection gone, e.g. when this test read the frame after the server's close timeout."""
        async with asyncio.timeout(deadline(within)):
            while True:
                msg = await self.ws.receive()
                if msg.type is aiohttp.WSMsgType.CLOSE:
                    return int(msg.data)
                if msg.type in (
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


async def enter_call(
    client: TestClient[Any, Any], booking: Booking, patient_name: str | None = None
) -> tuple[SignalClient, Welcome, SignalClient, Welcome]:
    """Doctor joins, patient joins and waits, doctor admits: both are in the call.
    ``patient_name``: the name the doctor's lobby must show for the patient, when given."""
    doctor, doctor_welcome, patient, patient_welcome = await knocking(client, booking, patient_name)
    await let_in(doctor, patient)
    return doctor, doctor_welcome, patient, patient_welcome


async def knocking(
    client: TestClient[Any, Any], booking: Booking, patient_name: str | None = None
) -> tuple[SignalClient, Welcome, SignalClient, Welcome]:
    """The doctor joins (an empty lobby), then the patient, who waits: the doctor's lobby
    shows them (named ``patient_name``, when given)."""
    doctor, doctor_welcome = await join(client, await booking.doctor_token())
    assert doctor_welcome.role == "doctor"
    assert doctor_welcome.state == "waiting"
    assert (await doctor.expect(Lobby)).waiting is None
    patient, patient_welcome = await join(client, await booking.patient_token())
    assert patient_welcome.role == "patient"
    await sees_knock(doctor, patient, patient_name)
    return doctor, doctor_welcome, patient, patient_welcome


async def admit(
    doctor: SignalClient, patient: SignalClient, patient_name: str | None = None
) -> None:
    """The patient, just welcomed, waits; the doctor's lobby shows them (named
    ``patient_name``, when given) and the doctor admits them: both are in the call."""
    await sees_knock(doctor, patient, patient_name)
    await let_in(doctor, patient)


async def sees_knock(
    doctor: SignalClient, patient: SignalClient, patient_name: str | None = None
) -> None:
    """The patient, just welcomed, waits; the doctor's lobby shows them (named
    ``patient_name``, when given)."""
    await patient.expect(Waiting)
    lobby = await doctor.expect(Lobby)
    assert lobby.waiting is not None
    if patient_name is not None:
        assert lobby.waiting.name == patient_name


async def let_in(doctor: SignalClient, patient: SignalClient) -> None:
    """The doctor admits the waiting patient: both are in the call."""
    await doctor.send({"type": "admit"})
    await patient.expect(Admitted)
    assert (await patient.expect(PeerJoined)).role == "doctor"
    assert (await doctor.expect(Lobby)).waiting is None
    assert (await doctor.expect(PeerJoined)).role == "patient"


async def silent(signal: SignalClient, within: float = 0.3) -> bool:
    """True when nothing arrives for ``within`` seconds."""
    try:
        message = await signal.recv(within)
    except TimeoutError:
        return True
    raise AssertionError(f"expected silence, got {message!r}")


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
        async with asyncio.timeout(deadline(within)):
            while self.pc.connectionState != "connected":
                if self.pc.connectionState == "failed":
                    raise AssertionError("peer connection failed")
                await asyncio.sleep(0.05)

    async def wait_frames(self, count: int = 3, within: float = 10.0) -> None:
        async with asyncio.timeout(deadline(within)):
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


async def negotiate(
    offerer: SignalClient, offer_peer: Peer, answerer: SignalClient, answer_peer: Peer
) -> None:
    """``offer_peer``'s offer relayed to ``answer_peer``, whose answer comes back relayed."""
    await offerer.send({"type": "offer", "sdp": await offer_peer.offer()})
    offer = await answerer.expect(RelayedOffer)
    await answerer.send({"type": "answer", "sdp": await answer_peer.answer(offer.sdp)})
    await offer_peer.accept((await offerer.expect(RelayedAnswer)).sdp)


async def connect_media(
    doctor: SignalClient, doctor_peer: Peer, patient: SignalClient, patient_peer: Peer
) -> None:
    """The doctor offers, the patient answers; both peers connect and receive audio and video."""
    await negotiate(doctor, doctor_peer, patient, patient_peer)
    await doctor_peer.wait_connected()
    await patient_peer.wait_connected()
    await doctor_peer.wait_frames()
    await patient_peer.wait_frames()


# -- session descriptions ------------------------------------------------------------------

FINGERPRINT_256 = ":".join(["AB"] * 32)


def make_sdp(
    *,
    profile: str = "UDP/TLS/RTP/SAVPF",
    fingerprint: str | None = f"sha-256 {FINGERPRINT_256}",
    setup: str | None = "actpass",
    media: int = 2,
    candidates: int = 1,
    data_channel: bool = False,
    padding: int = 0,
) -> str:
    """A browser-like offer; each keyword breaks one property the server checks."""
    lines = [
        "v=0",
        "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE " + " ".join(str(i) for i in range(media)),
        "a=msid-semantic: WMS",
    ]
    for index in range(media):
        kind = "audio" if index % 2 == 0 else "video"
        payload = "111" if kind == "audio" else "96"
        lines += [
            f"m={kind} 9 {profile} {payload}",
            "c=IN IP4 0.0.0.0",
            "a=rtcp:9 IN IP4 0.0.0.0",
            "a=ice-ufrag:abcd",
            "a=ice-pwd:abcdefghijklmnopqrstuvwx",
        ]
        if fingerprint is not None:
            lines.append(f"a=fingerprint:{fingerprint}")
        if setup is not None:
            lines.append(f"a=setup:{setup}")
        lines += [f"a=mid:{index}", "a=sendrecv", "a=rtcp-mux"]
        if kind == "audio":
            lines.append("a=rtpmap:111 opus/48000/2")
        else:
            lines.append("a=rtpmap:96 VP8/90000")
        if index == 0:
            lines += [
                f"a=candidate:{n} 1 udp 2122260223 127.0.0.1 {50000 + n} typ host"
                for n in range(candidates)
            ]
    if data_channel:
        lines += [
            "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
            "c=IN IP4 0.0.0.0",
            f"a=fingerprint:{fingerprint}" if fingerprint else "a=ice-options:trickle",
            f"a=setup:{setup}" if setup else "a=ice-options:trickle",
            f"a=mid:{media}",
            "a=sctp-port:5000",
        ]
    lines += [f"a=x-padding:{'p' * 990}" for _ in range(padding)]
    return "\r\n".join(lines) + "\r\n"


# -- a real coturn -------------------------------------------------------------------------

TURN_REALM = "teleconsult.test"


def free_udp_port() -> int:
    """A loopback port free for both UDP and TCP (turnserver listens on both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port


def stun_answers(port: int, within: float = 0.3) -> bool:
    """Send a STUN binding request to 127.0.0.1:port; True when a response comes back."""
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.settimeout(within)
        probe.sendto(bytes(request), ("127.0.0.1", port))
        try:
            probe.recvfrom(2048)
        except OSError:
            return False
    return True


@dataclasses.dataclass
class Coturn:
    """turnserver on a free loopback port with use-auth-secret (TURN REST credentials)."""

    directory: Path
    secret_text: str
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    # A production config to run instead of the test flags (its ports and paths overridden).
    config: str | None = None

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    def start(self) -> Coturn:
        self.port = free_udp_port()
        relay = free_udp_port()
        log = (self.directory / "turnserver.log").open("wb")
        self.process = subprocess.Popen(
            self._config_command(relay)
            if self.config is not None
            else [
                "turnserver",
                "-n",
                "--listening-ip=127.0.0.1",
                "--relay-ip=127.0.0.1",
                f"--listening-port={self.port}",
                f"--min-port={max(relay - 50, 1024)}",
                f"--max-port={relay + 50}",
                "--use-auth-secret",
                f"--static-auth-secret={self.secret_text}",
                f"--realm={TURN_REALM}",
                "--no-cli",
                "--no-tls",
                "--no-dtls",
                "--no-rfc5780",
                "--allow-loopback-peers",  # tests only: peers are on 127.0.0.1 here
                f"--db={self.directory / 'turndb'}",
                f"--pidfile={self.directory / 'turnserver.pid'}",
                "--log-file=stdout",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 20
        while not stun_answers(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = (self.directory / "turnserver.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"turnserver did not start:\n{tail}")
        return self

    def _config_command(self, relay: int) -> list[str]:
        """The shipped config with this machine's ports, paths and secret, no TLS, no root."""
        assert self.config is not None
        dropped = (
            "listening-port", "tls-listening-port", "listening-ip", "relay-ip", "external-ip",
            "min-port", "max-port", "cert", "pkey", "cipher-list", "static-auth-secret",
            "log-file", "simple-log", "proc-user", "proc-group", "userdb", "db",
        )  # fmt: skip
        lines = [
            line
            for line in self.config.splitlines()
            if line.strip().partition("=")[0].strip() not in dropped
        ]
        lines += [
            "listening-ip=127.0.0.1",
            "relay-ip=127.0.0.1",
            f"listening-port={self.port}",
            f"min-port={max(relay - 50, 1024)}",
            f"max-port={relay + 50}",
            f"static-auth-secret={self.secret_text}",
            "no-tls",
            "no-rfc5780",
            f"db={self.directory / 'turndb'}",
            f"pidfile={self.directory / 'turnserver.pid'}",
            "log-file=stdout",
            "verbose",  # so a test can read why a request was refused
        ]
        path = self.directory / "turnserver.conf"
        path.write_text("\n".join(lines) + "\n")
        return ["turnserver", "-c", str(path)]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
