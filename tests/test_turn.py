"""TURN REST credentials, the ICE servers in the welcome, and relay-only calls through coturn."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp.test_utils import TestClient

from config import Settings, TurnSettings
from signaling.clock import ManualClock
from signaling.live.protocol import IceServer, RelayedAnswer, RelayedOffer
from signaling.live.turn import credential_expiry, ice_servers, turn_credential
from tests.conftest import Accounts, Staff
from tests.rtc import Coturn, book, enter_call, negotiate, peers, rtc_config

pytestmark = pytest.mark.usefixtures("loopback_only")

SECRET = bytes(range(32))
SECRET_TEXT = base64.b64encode(SECRET).decode()


def test_credentials_follow_the_turn_rest_scheme() -> None:
    credential = turn_credential(SECRET, "patient.abc123", 1_900_000_000)
    assert credential.username == "1900000000:patient.abc123"
    expected = hmac.new(SECRET_TEXT.encode(), credential.username.encode(), hashlib.sha1).digest()
    assert credential.password == base64.b64encode(expected).decode()


def test_the_subject_cannot_smuggle_a_separator() -> None:
    credential = turn_credential(SECRET, "user:42 x", 1_900_000_000)
    assert credential.username == "1900000000:user_42_x"


def test_credentials_last_until_the_scheduled_end_plus_grace() -> None:
    now = 1_000_000.0
    assert credential_expiry(now, now + 1800, 3600, 12) == int(now + 1800 + 3600)


def test_credentials_never_outlive_the_configured_cap() -> None:
    now = 1_000_000.0
    assert credential_expiry(now, now + 48 * 3600, 3600, 12) == int(now + 12 * 3600)


def test_credentials_for_a_late_consultation_still_last_a_few_minutes() -> None:
    now = 1_000_000.0
    assert credential_expiry(now, now - 7200, 3600, 12) == int(now + 600)


def test_ice_servers_hold_stun_and_turn_from_settings() -> None:
    settings = TurnSettings(
        stun_urls=("stun:stun.clinic.example:3478",),
        turn_urls=("turn:turn.clinic.example:3478?transport=udp", "turns:turn.clinic.example:5349"),
        secret_file="/unused",
    )
    servers, expires = ice_servers(settings, SECRET, "doctor.room", 1_900_000_000)
    assert expires == 1_900_000_000
    assert servers[0] == IceServer(urls=["stun:stun.clinic.example:3478"])
    assert servers[1].urls == list(settings.turn_urls)
    assert servers[1].username == "1900000000:doctor.room"
    assert servers[1].credential


def test_without_turn_there_are_no_credentials() -> None:
    servers, expires = ice_servers(TurnSettings(), SECRET, "doctor.room", 1_900_000_000)
    assert (servers, expires) == ([], 0)


# -- through the server and a real coturn ---------------------------------------------------


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[Coturn]:
    directory = tmp_path / "coturn"
    directory.mkdir()
    server = Coturn(directory, SECRET_TEXT).start()
    yield server
    server.stop()


@pytest.fixture
def settings(settings: Settings, coturn: Coturn, tmp_path: Path) -> Settings:
    secret_file = tmp_path / "turn.key"
    fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, SECRET_TEXT.encode() + b"\n")
    os.close(fd)
    turn = TurnSettings(
        stun_urls=(f"stun:127.0.0.1:{coturn.port}",),
        turn_urls=(coturn.url,),
        secret_file=str(secret_file),
    )
    return settings.replace(turn=turn).validate()


def relayed_only(sdp: str) -> bool:
    candidates = [line for line in sdp.splitlines() if line.startswith("a=candidate:")]
    return bool(candidates) and all(" typ relay" in line for line in candidates)


async def test_a_relay_only_call_works_with_the_credentials_the_server_hands_out(
    client: TestClient[Any, Any],
    accounts: Accounts,
    doctor: Staff,
    clock: ManualClock,
    coturn: Coturn,
) -> None:
    booking = await book(accounts, doctor, clock)
    doctor_ws, doctor_welcome, patient_ws, patient_welcome = await enter_call(client, booking)
    turn = [s for s in doctor_welcome.ice_servers if s.username]
    assert turn and turn[0].urls == [coturn.url]
    assert doctor_welcome.ice_expires_at == int(turn[0].username.split(":")[0])  # type: ignore[union-attr]
    assert patient_welcome.ice_servers[1].username != turn[0].username
    doctor_config = rtc_config(doctor_welcome.ice_servers, relay_only=True)
    patient_config = rtc_config(patient_welcome.ice_servers, relay_only=True)
    async with peers(doctor_config, patient_config) as (doctor_peer, patient_peer):
        await negotiate(doctor_ws, doctor_peer, patient_ws, patient_peer)
        assert relayed_only(doctor_peer.pc.localDescription.sdp)
        assert relayed_only(patient_peer.pc.localDescription.sdp)
        await doctor_peer.wait_connected(within=20)
        await doctor_peer.wait_frames(within=20)
        await patient_peer.wait_frames(within=20)
        assert doctor_peer.srtp_profile().startswith("SRTP_")


async def test_expired_credentials_get_no_relay(
    client: TestClient[Any, Any],
    accounts: Accounts,
    doctor: Staff,
    clock: ManualClock,
    coturn: Coturn,
    settings: Settings,
) -> None:
    booking = await book(accounts, doctor, clock)
    doctor_ws, doctor_welcome, patient_ws, patient_welcome = await enter_call(client, booking)
    # Same secret and subject as the server would use, but an expiry an hour ago (real time).
    expired = int(time.time()) - 3600
    servers = [
        msgspec.structs.replace(server, **_expired_fields(server, expired))
        for server in doctor_welcome.ice_servers
    ]
    assert servers[1].username is not None and servers[1].username.startswith(f"{expired}:")
    doctor_config = rtc_config(servers, relay_only=True)
    patient_config = rtc_config(patient_welcome.ice_servers, relay_only=True)
    async with peers(doctor_config, patient_config) as (doctor_peer, patient_peer):
        # aiortc fails silently when TURN refuses it: no relay candidate, and no connection.
        await doctor_ws.send({"type": "offer", "sdp": await doctor_peer.offer()})
        assert not relayed_only(doctor_peer.pc.localDescription.sdp)
        offer = await patient_ws.expect(RelayedOffer)
        await patient_ws.send({"type": "answer", "sdp": await patient_peer.answer(offer.sdp)})
        await doctor_peer.accept((await doctor_ws.expect(RelayedAnswer)).sdp)
        with pytest.raises(TimeoutError):
            await doctor_peer.wait_connected(within=3)
        assert doctor_peer.frames == {"audio": 0, "video": 0}


def _expired_fields(server: IceServer, expired: int) -> dict[str, Any]:
    if server.username is None:
        return {}
    subject = server.username.split(":", 1)[1]
    credential = turn_credential(SECRET, subject, expired)
    return {"username": credential.username, "credential": credential.password}


# -- the shipped coturn configuration ---------------------------------------------------------

SHIPPED = Path(__file__).resolve().parent.parent / "deploy" / "coturn" / "turnserver.conf"


def shipped_settings() -> list[tuple[str, str]]:
    pairs = []
    for raw in SHIPPED.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            pairs.append((name.strip(), value.strip()))
    return pairs


def test_the_shipped_coturn_config_uses_rest_credentials_and_no_cli() -> None:
    names = {name for name, _ in shipped_settings()}
    assert {"use-auth-secret", "static-auth-secret", "no-cli", "realm"} <= names
    assert "allow-loopback-peers" not in names
    assert "lt-cred-mech" not in names and "no-auth" not in names


def test_the_shipped_coturn_config_denies_internal_peers() -> None:
    denied = [value for name, value in shipped_settings() if name == "denied-peer-ip"]
    starts = {value.split("-")[0] for value in denied}
    for required in (
        "127.0.0.0",
        "::1",
        "0.0.0.0",
        "::",
        "10.0.0.0",
        "172.16.0.0",
        "192.168.0.0",
        "169.254.0.0",
        "169.254.169.254",
        "::ffff:0.0.0.0",
        "fc00::",
        "fe80::",
    ):
        assert required in starts, required


async def test_the_shipped_coturn_config_refuses_to_relay_to_loopback(
    client: TestClient[Any, Any],
    accounts: Accounts,
    doctor: Staff,
    clock: ManualClock,
    settings: Settings,
    tmp_path: Path,
) -> None:
    """Same call as the relay test above, through coturn run with deploy/coturn's config:
    its denied-peer-ip lines forbid the 127.0.0.1 peers, so no media may flow."""
    directory = tmp_path / "shipped"
    directory.mkdir()
    shipped = Coturn(directory, SECRET_TEXT, config=SHIPPED.read_text()).start()
    try:
        booking = await book(accounts, doctor, clock)
        doctor_ws, doctor_welcome, patient_ws, patient_welcome = await enter_call(client, booking)
        servers = [
            msgspec.structs.replace(server, urls=[shipped.url]) if server.username else server
            for server in doctor_welcome.ice_servers
        ]
        patient_servers = [
            msgspec.structs.replace(server, urls=[shipped.url]) if server.username else server
            for server in patient_welcome.ice_servers
        ]
        doctor_config = rtc_config(servers, relay_only=True)
        patient_config = rtc_config(patient_servers, relay_only=True)
        async with peers(doctor_config, patient_config) as (doctor_peer, patient_peer):
            await negotiate(doctor_ws, doctor_peer, patient_ws, patient_peer)
            # Allocation works (the credentials are good) ...
            assert relayed_only(doctor_peer.pc.localDescription.sdp)
            # ... but permissions towards loopback peers are refused.
            with pytest.raises(TimeoutError):
                await doctor_peer.wait_connected(within=4)
            assert doctor_peer.frames == {"audio": 0, "video": 0}
    finally:
        shipped.stop()
    log = (directory / "turnserver.log").read_text(errors="replace")
    assert "ALLOCATE processed, success" in log
    assert "error 403: Forbidden IP" in log
