"""Property-based: random and mutated frames never break the server, and other rooms carry on.

The server runs on its own event loop in a thread so that hypothesis drives it from a plain
synchronous test; after all the examples, a real aiortc call in another room must work.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config import Settings, SignalingSettings, StorageSettings
from signaling.app import create_app
from signaling.clock import ManualClock
from signaling.errors import KINDS
from signaling.live.protocol import (
    SERVER_DECODER,
    ErrorMessage,
    Lobby,
    Pong,
    RelayedCandidate,
    RelayedEndOfCandidates,
    RelayedOffer,
)
from tests.conftest import Accounts, Staff, deadline
from tests.rtc import (
    FINGERPRINT_256,
    Booking,
    SignalClient,
    book,
    connect,
    enter_call,
    join,
    make_sdp,
    peers,
    rtc_config,
)

T = TypeVar("T")

DOCUMENTED_CLOSE_CODES = {1000, 1003, 1009, 4000, 4003, 4400, 4401, 4403, 4404, 4408, 4410, 4429}
TYPES = [
    "join",
    "resume",
    "admit",
    "deny",
    "offer",
    "answer",
    "candidate",
    "end_of_candidates",
    "hang_up",
    "ping",
    "pong",
    "welcome",
    "consent",
    "",
    "JOIN",
]
FIELDS = ["v", "token", "resume", "sdp", "candidate", "sdp_mid", "sdp_mline_index", "end", "id"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
sdp_texts = st.sampled_from(
    [
        make_sdp(),
        make_sdp(profile="RTP/AVP"),
        make_sdp(fingerprint=None),
        make_sdp(setup=None),
        make_sdp(fingerprint="sha-1 " + ":".join(["AB"] * 20)),
        make_sdp(media=20),
        make_sdp(candidates=70),
        f"v=0\r\na=fingerprint:sha-256 {FINGERPRINT_256}\r\n",
    ]
)
typed_messages = st.builds(
    lambda kind, fields: {"type": kind, **fields},
    st.sampled_from(TYPES),
    st.dictionaries(st.sampled_from(FIELDS), json_values | sdp_texts, max_size=4),
)
frames = st.one_of(
    typed_messages.map(lambda m: msgspec.json.encode(m).decode()),
    json_values.map(lambda v: msgspec.json.encode(v).decode()),
    st.text(max_size=200),
    st.binary(max_size=64),
    typed_messages.map(lambda m: msgspec.json.encode(m).decode()[:-1]),  # truncated
)


class ServerThread:
    """The real app behind a real test server, on an event loop of its own."""

    def __init__(self, data_dir: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.clock = ManualClock(1_800_000_000.0)
        # Room for every example's messages on one socket (the relay test keeps its call).
        signaling = SignalingSettings(messages_per_second=1000, message_burst=1000)
        storage = StorageSettings(data_dir=str(data_dir))
        self.settings = Settings(storage=storage, signaling=signaling).validate()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def start(self) -> None:
        app = create_app(self.settings, clock=self.clock)
        self.client: TestClient[Any, Any] = TestClient(TestServer(app))
        await self.client.start_server()
        self.accounts = Accounts(app, self.clock, self.client)
        await self.accounts.create("dr.fuzz")
        self.doctor: Staff = await self.accounts.sign_in("dr.fuzz")
        self.target: Booking = await book(self.accounts, self.doctor, self.clock)
        self.bystander: Booking = await book(
            self.accounts, self.doctor, self.clock, "Eve Bystander"
        )

    async def stop(self) -> None:
        for session in self.accounts.sessions:
            await session.close()
        await self.client.close()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def server(tmp_path: Path, loopback_only: None) -> Iterator[ServerThread]:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    server = ServerThread(data)
    server.run(server.start())
    yield server
    server.run(server.stop())
    server.close()


async def throw(server: ServerThread, joined: bool, sent: list[str | bytes]) -> None:
    signal = await connect(server.client)
    if joined:
        token = await server.target.doctor_token()
        await signal.send({"type": "join", "v": 1, "token": token})
    for frame in sent:
        if signal.ws.closed:
            break
        if isinstance(frame, bytes):
            await signal.ws.send_bytes(frame)
        else:
            await signal.ws.send_str(frame)
    if not signal.ws.closed:
        await signal.send({"type": "ping", "id": 424242})
    # Read everything the server answers: each frame a valid server message, no internal error.
    while True:
        try:
            msg = await signal.ws.receive(timeout=deadline(2))
        except TimeoutError:
            pytest.fail("the server neither answered the ping nor closed the socket")
        if msg.type is not aiohttp.WSMsgType.TEXT:
            break
        message = SERVER_DECODER.decode(msg.data)
        if isinstance(message, ErrorMessage):
            assert message.code in KINDS and message.code != "internal_error", message
        if isinstance(message, Pong) and message.id == 424242:
            break
    if not signal.ws.closed:
        await signal.close()
    else:
        assert signal.ws.close_code in DOCUMENTED_CLOSE_CODES


async def normal_call_still_works(server: ServerThread) -> None:
    doctor_ws, _, patient_ws, _ = await enter_call(server.client, server.bystander)
    async with peers(rtc_config([]), rtc_config([])) as (doctor_peer, patient_peer):
        await doctor_ws.send({"type": "offer", "sdp": await doctor_peer.offer()})
        offer = await patient_ws.expect(RelayedOffer)
        await patient_ws.send({"type": "answer", "sdp": await patient_peer.answer(offer.sdp)})
        answer = await doctor_ws.recv()
        await doctor_peer.accept(getattr(answer, "sdp"))  # noqa: B009 - typed as the union
        await doctor_peer.wait_frames()
        await patient_peer.wait_frames()
    await doctor_ws.close()
    await patient_ws.close()


async def room_still_answers(server: ServerThread) -> None:
    signal, _ = await join(server.client, await server.target.doctor_token())
    await signal.expect(Lobby)
    await signal.send({"type": "ping", "id": 1})
    assert (await signal.expect(Pong)).id == 1
    await signal.close()


def test_random_and_mutated_frames_never_break_the_server(server: ServerThread) -> None:
    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(joined=st.booleans(), sent=st.lists(frames, min_size=1, max_size=8))
    def fuzz(joined: bool, sent: list[str | bytes]) -> None:
        server.run(throw(server, joined, sent))

    fuzz()
    server.run(room_still_answers(server))
    server.run(normal_call_still_works(server))


# -- control characters: a mutated candidate or description never reaches the peer ----------

CHROMIUM = json.loads((Path(__file__).parent / "fixtures" / "chromium_sdp.json").read_text())
VALID_CANDIDATES = [
    *(c["candidate"] for c in CHROMIUM["no_camera"]["candidates"]),
    "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host",
    "a=candidate:2 1 UDP 1686052607 203.0.113.7 3478 typ srflx raddr 0.0.0.0 rport 0",
]
VALID_SDPS = [make_sdp(), CHROMIUM["no_camera"]["offer"], CHROMIUM["camera"]["answer"]]
# What may never sit inside a line: C0 controls (among them a lone CR, and an LF inside a
# candidate or a media id), DEL, C1 controls, the Unicode line separators.
control_characters = st.one_of(
    st.characters(min_codepoint=0, max_codepoint=0x1F),
    st.characters(min_codepoint=0x7F, max_codepoint=0x9F),
    st.sampled_from(["\u2028", "\u2029"]),
)
# In a candidate, also a whole smuggled second line. (In an SDP an LF, or a CRLF line, may
# legitimately split a line in two well-formed ones: only the other characters are drawn.)
SMUGGLED = "\r\na=candidate:9 1 udp 1 203.0.113.9 9 typ host"


def inserted(text: str, data: st.DataObject, strategy: st.SearchStrategy[str]) -> str:
    control = data.draw(strategy)
    at = data.draw(st.integers(min_value=0, max_value=len(text)))
    return text[:at] + control + text[at:]


async def in_call(server: ServerThread) -> tuple[SignalClient, SignalClient]:
    booking = await book(server.accounts, server.doctor, server.clock, "Carol Fuzz")
    doctor_ws, _, patient_ws, _ = await enter_call(server.client, booking)
    return doctor_ws, patient_ws


async def refused_and_not_relayed(
    doctor_ws: SignalClient, patient_ws: SignalClient, message: dict[str, Any]
) -> None:
    await doctor_ws.send(message)
    assert (await doctor_ws.expect_error("invalid_sdp")).ref == message["type"]
    # end_of_candidates is relayed in order: had the refused message gone through, the peer
    # would read it first.
    await doctor_ws.send({"type": "end_of_candidates"})
    await patient_ws.expect(RelayedEndOfCandidates)


def test_control_characters_in_candidates_and_sdps_are_never_relayed(
    server: ServerThread,
) -> None:
    doctor_ws, patient_ws = server.run(in_call(server))

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(data=st.data(), candidate=st.booleans(), sdp_mid=st.sampled_from(["0", "1", None]))
    def fuzz(data: st.DataObject, candidate: bool, sdp_mid: str | None) -> None:
        if candidate:
            line = data.draw(st.sampled_from(VALID_CANDIDATES))
            if sdp_mid is not None and data.draw(st.booleans()):
                sdp_mid = inserted(sdp_mid, data, control_characters)
            else:
                line = inserted(line, data, control_characters | st.just(SMUGGLED))
            message: dict[str, Any] = {"type": "candidate", "candidate": line, "sdp_mid": sdp_mid}
        else:
            in_line = control_characters.filter(lambda c: c != "\n")
            sdp = inserted(data.draw(st.sampled_from(VALID_SDPS)), data, in_line)
            message = {"type": "offer", "sdp": sdp}
        server.run(refused_and_not_relayed(doctor_ws, patient_ws, message))

    fuzz()

    async def unmutated_still_relayed() -> None:
        for line in VALID_CANDIDATES:
            await doctor_ws.send({"type": "candidate", "candidate": line, "sdp_mid": "0"})
            assert (await patient_ws.expect(RelayedCandidate)).candidate == line
        await doctor_ws.close()
        await patient_ws.close()

    server.run(unmutated_still_relayed())
