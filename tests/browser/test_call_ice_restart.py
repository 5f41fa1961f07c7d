"""A real network break on a relayed call: the coturn every packet goes through is frozen
(SIGSTOP), ICE stops getting answers on both sides, the pages say "reconnecting…", the
doctor restarts ICE on the same connection, coturn comes back (SIGCONT) and the call carries
on, without a fresh connection."""

from __future__ import annotations

import signal

import pytest
from playwright.sync_api import expect

from tests.conftest import deadline_ms
from tests.rtc import Coturn

from . import test_call_relay
from .conftest import Contexts, LiveServer, assert_no_page_errors
from .test_call import assert_encrypted, assert_remote_video_plays
from .test_call_features import RECORD_SIGNALING, start_call

pytestmark = pytest.mark.browser

coturn = test_call_relay.coturn  # the real coturn, same secret
live_server = test_call_relay.live_server  # the service in relay-only mode, through it

RESTART_OFFERS = """() => window.__frames.filter((frame) => {
  const message = JSON.parse(frame);
  return message.type === "offer" && message.ice_restart === true;
}).length"""


@pytest.mark.slow
def test_frozen_relay_shows_reconnecting_and_an_ice_restart_brings_the_call_back(
    live_server: LiveServer, contexts: Contexts, coturn: Coturn
) -> None:
    doctor, patient = start_call(live_server, contexts, init_script=RECORD_SIGNALING)
    assert_encrypted(doctor)
    peers_before = doctor.evaluate("() => window.__peers.length")
    code_before = str(doctor.locator("#call-code-value").text_content())
    assert doctor.evaluate(RESTART_OFFERS) == 0
    assert coturn.process is not None

    coturn.process.send_signal(signal.SIGSTOP)
    try:
        for page, status in ((doctor, "#call-status"), (patient, "#patient-call-status")):
            expect(page.locator(status)).to_have_attribute(
                "data-state", "reconnecting", timeout=deadline_ms(30)
            )
        # The doctor, who offers, restarts ICE (after a short wait, in case it heals).
        doctor.wait_for_function(f"() => ({RESTART_OFFERS})() > 0", timeout=deadline_ms(10))
    finally:
        coturn.process.send_signal(signal.SIGCONT)

    for page, status in ((doctor, "#call-status"), (patient, "#patient-call-status")):
        expect(page.locator(status)).to_have_attribute(
            "data-state", "in_call", timeout=deadline_ms(30)
        )
    assert_remote_video_plays(doctor, "#remote-video")
    assert_remote_video_plays(patient, "#patient-remote")
    assert_encrypted(patient)
    # The same connection throughout: same certificates, same code, chat still open.
    assert doctor.evaluate("() => window.__peers.length") == peers_before
    expect(patient.locator("#call-code-value")).to_have_text(code_before)
    doctor.locator("#chat-toggle").click()
    doctor.fill("#chat-input", "Vous m'entendez de nouveau ?")
    doctor.keyboard.press("Enter")
    expect(patient.locator("#chat-unread")).to_have_text("1")
    assert_no_page_errors(doctor)
    assert_no_page_errors(patient)
