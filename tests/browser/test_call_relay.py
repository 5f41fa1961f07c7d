"""The whole consultation again, with the service set to relay-only (``turn.relay_only``):
both pages gather TURN relay candidates only, from a real coturn on loopback with the
credentials the welcome message hands out, and the media goes through it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

from config import SecuritySettings, TurnSettings
from tests import test_turn
from tests.conftest import deadline_ms
from tests.rtc import Coturn

from .conftest import Contexts, LiveServer, assert_no_page_errors
from .test_call import (
    assert_encrypted,
    assert_remote_video_plays,
    doctor_with_consultation,
    open_the_call,
    patient_to_waiting_room,
)

pytestmark = pytest.mark.browser

coturn = test_turn.coturn  # the real coturn of the aiortc TURN tests, same secret

# The candidate pair ICE selected, and the policy the page's RTCPeerConnection runs with.
SELECTED_PAIR = """async () => {
  const pc = window.__peers.find((p) => p.connectionState === "connected");
  if (!pc) return null;
  const stats = await pc.getStats();
  let pair = null;
  for (const report of stats.values()) {
    if (report.type === "transport" && report.selectedCandidatePairId) {
      pair = stats.get(report.selectedCandidatePairId);
    }
  }
  if (!pair) return null;
  const local = stats.get(pair.localCandidateId);
  const remote = stats.get(pair.remoteCandidateId);
  return {
    policy: pc.getConfiguration().iceTransportPolicy,
    local: local.candidateType,
    remote: remote.candidateType,
    relayProtocol: local.relayProtocol || null,
    turnUrl: local.url || null,
    bytesReceived: pair.bytesReceived,
    offered: (pc.localDescription.sdp.match(/a=candidate:.*/g) || []),
  };
}"""


@pytest.fixture
def live_server(tmp_path: Path, coturn: Coturn) -> Iterator[LiveServer]:
    """The app with TURN configured and relay-only on (the contexts fixture uses this one)."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    secret_file = tmp_path / "turn.key"
    fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, test_turn.SECRET_TEXT.encode() + b"\n")
    os.close(fd)
    server = LiveServer(data_dir, SecuritySettings())
    turn = TurnSettings(turn_urls=(coturn.url,), secret_file=str(secret_file), relay_only=True)
    server.settings = server.settings.replace(turn=turn).validate()
    server.start()
    yield server
    server.stop()


def relayed_pair(page: Page) -> dict[str, object]:
    page.wait_for_function(
        f"async () => Boolean(await ({SELECTED_PAIR})())", timeout=deadline_ms(20)
    )
    pair = page.evaluate(SELECTED_PAIR)
    assert isinstance(pair, dict)
    return pair


def test_relay_only_call_goes_through_turn_on_both_sides(
    live_server: LiveServer, contexts: Contexts, coturn: Coturn
) -> None:
    doctor, url, code = doctor_with_consultation(live_server, contexts)
    open_the_call(doctor)
    patient = patient_to_waiting_room(contexts, url, code)
    doctor.locator("#lobby").get_by_role("button", name="Faire entrer").click()

    assert_remote_video_plays(patient, "#patient-remote")
    assert_remote_video_plays(doctor, "#remote-video")
    assert_encrypted(doctor)
    assert_encrypted(patient)
    for page in (doctor, patient):
        pair = relayed_pair(page)
        assert pair["policy"] == "relay", pair
        assert pair["local"] == "relay", pair
        assert pair["remote"] == "relay", pair
        assert pair["relayProtocol"] == "udp", pair
        # The relay is the fixture's coturn, reached with the welcome's credentials.
        assert pair["turnUrl"] == coturn.url, pair
        offered = pair["offered"]
        assert isinstance(offered, list)
        # Nothing but relay candidates ever left the page: no host address to reveal.
        assert all(" typ relay" in line for line in offered), offered
    assert_no_page_errors(doctor)
    assert_no_page_errors(patient)
