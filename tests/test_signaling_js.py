"""web/protocol.js against the real server, in Node (its WebSocket is the browser's API)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from signaling.clock import ManualClock
from signaling.live.protocol import (
    Lobby,
    PeerJoined,
    PeerLeft,
    RelayedAnswer,
    RelayedCandidate,
    RelayedEndOfCandidates,
)
from tests.conftest import ORIGIN, Accounts, Staff, deadline
from tests.rtc import book, join, make_sdp

PROTOCOL_JS = Path(__file__).resolve().parent.parent / "web" / "protocol.js"

PATIENT_SCRIPT = """
import { SignalingClient, SignalingError, CloseCode } from "./protocol.mjs";
const [url, origin, token, answerSdp, badToken] = JSON.parse(process.argv[2]);
class OriginWebSocket extends WebSocket {
  constructor(target) { super(target, { headers: { Origin: origin } }); }
}
const say = (event, detail = {}) => console.log(JSON.stringify({ event, ...detail }));
const next = (client, type) =>
  new Promise((resolve) => client.addEventListener(type, (e) => resolve(e.detail), { once: true }));

const refused = new SignalingClient({ url, WebSocketImpl: OriginWebSocket });
try {
  await refused.join(badToken);
  say("unexpected-welcome");
} catch (error) {
  const closed = refused.closeCode ?? (await next(refused, "closed")).code;
  say("refused", { code: error.code, isError: error instanceof SignalingError, closed,
                   canResume: refused.canResume });
}

const client = new SignalingClient({ url, WebSocketImpl: OriginWebSocket });
const admitted = next(client, "admitted");
const offered = next(client, "offer");
const welcome = await client.join(token);
say("welcome", { role: welcome.role, state: welcome.state, servers: client.iceServers.length });
await admitted;
say("admitted");
const offer = await offered;
client.answer({ type: "answer", sdp: answerSdp });
client.candidate({ candidate: "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host",
                   sdpMid: "0", sdpMLineIndex: 0 });
client.candidate(null);
say("offer", { restart: offer.ice_restart === true, length: offer.sdp.length });
const id = client.ping();
const pong = await next(client, "pong");
say("pong", { same: pong.id === id });
const closed = next(client, "closed");
client.hangUp();
const { code } = await closed;
say("closed", { code, normal: code === CloseCode.NORMAL });
"""


async def test_protocol_js_joins_waits_is_admitted_answers_and_hangs_up(
    client: TestClient[Any, Any],
    accounts: Accounts,
    doctor: Staff,
    clock: ManualClock,
    tmp_path: Path,
) -> None:
    (tmp_path / "protocol.mjs").write_text(PROTOCOL_JS.read_text())
    (tmp_path / "patient.mjs").write_text(PATIENT_SCRIPT)
    booking = await book(accounts, doctor, clock)
    doctor_ws, _ = await join(client, await booking.doctor_token())
    await doctor_ws.expect(Lobby)
    url = str(client.make_url("/ws")).replace("http://", "ws://")
    answer = make_sdp(setup="active")
    args = json.dumps([url, ORIGIN, await booking.patient_token(), answer, "forged-token"])
    node = await asyncio.create_subprocess_exec(
        "node",
        "--experimental-websocket",
        "--no-warnings",
        str(tmp_path / "patient.mjs"),
        args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=tmp_path,
    )
    try:
        assert node.stdout is not None
        lobby = await doctor_ws.expect(Lobby)
        assert lobby.waiting is not None
        await doctor_ws.send({"type": "admit"})
        await doctor_ws.expect(Lobby)
        assert (await doctor_ws.expect(PeerJoined)).role == "patient"
        await doctor_ws.send({"type": "offer", "sdp": make_sdp(), "ice_restart": True})
        assert (await doctor_ws.expect(RelayedAnswer)).sdp == answer
        candidate = await doctor_ws.expect(RelayedCandidate)
        assert (candidate.sdp_mid, candidate.sdp_mline_index) == ("0", 0)
        await doctor_ws.expect(RelayedEndOfCandidates)
        left = await doctor_ws.expect(PeerLeft)
        assert (left.role, left.reason) == ("patient", "left")
        stdout, stderr = await asyncio.wait_for(node.communicate(), timeout=deadline(20))
    finally:
        if node.returncode is None:
            node.kill()
            await node.wait()
    assert node.returncode == 0, stderr.decode()
    events = [json.loads(line) for line in stdout.decode().splitlines()]
    assert events == [
        {
            "event": "refused",
            "code": "token_invalid",
            "isError": True,
            "closed": 4401,
            "canResume": False,
        },
        {"event": "welcome", "role": "patient", "state": "waiting", "servers": 0},
        {"event": "admitted"},
        {"event": "offer", "restart": True, "length": len(make_sdp())},
        {"event": "pong", "same": True},
        {"event": "closed", "code": 1000, "normal": True},
    ]


async def test_protocol_js_is_served_to_the_pages(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/protocol.js")
    assert resp.status == 200
    assert "javascript" in resp.content_type
    assert "export class SignalingClient" in await resp.text()
