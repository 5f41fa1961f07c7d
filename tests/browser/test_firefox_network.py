"""Firefox on one side of a call when the network gets in the way: relay-only through the real
coturn, a dropped signaling WebSocket that resumes the call, and a frozen relay brought back by
an ICE restart (Firefox offering it). The other side is Chromium."""

from __future__ import annotations

import signal

import pytest

from tests.conftest import deadline_ms
from tests.rtc import Coturn

from . import test_call_relay
from .conftest import Contexts, LiveServer
from .firefox import FirefoxPages
from .journey import (
    LIVE_PEER,
    POLL_MS,
    CallPage,
    assert_no_errors,
    dtls_connected,
    into_the_call,
    remote_video_plays,
    security_code,
    wait_answer,
    wait_attribute,
)
from .test_call import DROPPABLE_SOCKETS
from .test_call_features import RECORD_SIGNALING
from .test_call_ice_restart import RESTART_OFFERS

pytestmark = pytest.mark.browser

coturn = test_call_relay.coturn  # the real coturn of the aiortc TURN tests, same secret
live_server = test_call_relay.live_server  # the service in relay-only mode, through it

# The candidate pair ICE selected, read the way each engine reports it (Chromium names it on
# the transport, Firefox marks the pair "selected"), and what the page offered.
SELECTED_PAIR = f"""async () => {{
  const pc = {LIVE_PEER};
  if (!pc || pc.connectionState !== "connected") return null;
  const stats = await pc.getStats();
  let pair = null;
  for (const report of stats.values()) {{
    if (report.type === "transport" && report.selectedCandidatePairId) {{
      pair = stats.get(report.selectedCandidatePairId);
    }}
  }}
  for (const report of stats.values()) {{
    if (!pair && report.type === "candidate-pair" && report.selected) pair = report;
  }}
  if (!pair) return null;
  return {{
    policy: pc.getConfiguration().iceTransportPolicy,
    local: stats.get(pair.localCandidateId).candidateType,
    remote: stats.get(pair.remoteCandidateId).candidateType,
    offered: pc.localDescription.sdp.match(/a=candidate:.*/g) || [],
  }};
}}"""

STATUS = {"doctor": "#call-status", "patient": "#patient-call-status"}
REMOTE = {"doctor": "#remote-video", "patient": "#patient-remote"}


def sides(
    on_firefox: str, firefox_pages: FirefoxPages, contexts: Contexts
) -> tuple[CallPage, CallPage]:
    """(doctor, patient), the one named on Firefox, the other on Chromium."""
    firefox, chromium = firefox_pages.new_page(), contexts.new_page()
    return (firefox, chromium) if on_firefox == "doctor" else (chromium, firefox)


def call_comes_back(doctor: CallPage, patient: CallPage, seconds: float = 30) -> None:
    for role, page in (("doctor", doctor), ("patient", patient)):
        wait_attribute(page, STATUS[role], "data-state", "in_call", seconds=seconds)
    for role, page in (("doctor", doctor), ("patient", patient)):
        remote_video_plays(page, REMOTE[role])
        dtls_connected(page)


def test_relay_only_call_with_firefox_goes_through_turn_on_both_sides(
    live_server: LiveServer, contexts: Contexts, firefox_pages: FirefoxPages
) -> None:
    doctor, patient = sides("patient", firefox_pages, contexts)
    into_the_call(live_server, doctor, patient)
    for page in (doctor, patient):
        pair = wait_answer(page, SELECTED_PAIR, seconds=20)
        assert pair["policy"] == "relay", pair
        # Each side sends from its own relay, so every packet goes through coturn. The remote
        # end may show as "prflx": the other side's relay address, learned from its first
        # check before its candidate came through signaling (seen with Firefox, trickle race).
        assert pair["local"] == "relay" and pair["remote"] in ("relay", "prflx"), pair
        # Nothing but relay candidates ever left either page.
        assert all(" typ relay" in line for line in pair["offered"]), pair
    assert_no_errors(doctor, patient)


def test_firefox_patient_resumes_the_call_after_its_websocket_drops(
    live_server: LiveServer, contexts: Contexts, firefox_pages: FirefoxPages
) -> None:
    doctor, patient = sides("patient", firefox_pages, contexts)
    into_the_call(live_server, doctor, patient, init_script=DROPPABLE_SOCKETS)
    # The page's signaling socket goes without a hang_up (1006, as after a network loss).
    patient.evaluate("() => window.__dropSignaling()")
    wait_attribute(patient, STATUS["patient"], "data-state", "reconnecting")
    # resume keeps the admitted place: no second admission, the call comes back.
    call_comes_back(doctor, patient)
    assert_no_errors(doctor, patient)


@pytest.mark.slow
def test_firefox_doctor_restarts_ice_when_the_relay_freezes(
    live_server: LiveServer, contexts: Contexts, firefox_pages: FirefoxPages, coturn: Coturn
) -> None:
    doctor, patient = sides("doctor", firefox_pages, contexts)
    into_the_call(live_server, doctor, patient, init_script=RECORD_SIGNALING)
    code_before = security_code(doctor)
    peers_before = doctor.evaluate("() => window.__peers.length")
    assert doctor.evaluate(RESTART_OFFERS) == 0
    assert coturn.process is not None

    coturn.process.send_signal(signal.SIGSTOP)
    try:
        for role, page in (("doctor", doctor), ("patient", patient)):
            wait_attribute(page, STATUS[role], "data-state", "reconnecting", seconds=30)
        # The doctor, who offers, restarts ICE (after a short wait, in case it heals).
        doctor.wait_for_function(
            f"() => ({RESTART_OFFERS})() > 0", polling=POLL_MS, timeout=deadline_ms(10)
        )
    finally:
        coturn.process.send_signal(signal.SIGCONT)

    call_comes_back(doctor, patient)
    # The same connection throughout: same certificates, same code.
    assert doctor.evaluate("() => window.__peers.length") == peers_before
    assert security_code(patient) == code_before
    assert_no_errors(doctor, patient)
