"""Recording with a Firefox participant: the doctor (Chromium) asks, both accept in their page's
prompt, both pages send to the server's recording peer, the doctor stops it, and the exported
file holds both participants' audio and video, every stream decoding."""

from __future__ import annotations

import io

import av
import pytest
from playwright.sync_api import Page

from tests.conftest import deadline_ms

from . import test_recording
from .conftest import Contexts, LiveServer
from .firefox import FirefoxPages
from .journey import (
    POLL_MS,
    CallPage,
    assert_no_errors,
    into_the_call,
    snap_both_widths,
    wait_answer,
    wait_hidden,
    wait_text,
    wait_visible,
)
from .test_recording import RECORDING_PEER_CONNECTED, settled_recordings

pytestmark = pytest.mark.browser

live_server = test_recording.live_server  # recording on, its peer on loopback

PROMPT = "dialog.recording-consent"
# Video frames the page's send-only connection to the recording peer has sent so far.
FRAMES_TO_RECORDER = """async () => {
  const pc = window.__peers.find((p) => p.connectionState === "connected" &&
    p.getTransceivers().length > 0 &&
    p.getTransceivers().every((t) => t.direction === "sendonly"));
  if (!pc) return 0;
  let frames = 0;
  for (const report of (await pc.getStats()).values()) {
    if (report.type === "outbound-rtp" && report.kind === "video") frames += report.framesSent || 0;
  }
  return frames;
}"""


def wait_frames_to_recorder(page: CallPage, at_least: int) -> None:
    """The page's send-only connection to the recording peer is up and has sent that many
    video frames (a few seconds of media, counted instead of slept)."""
    page.wait_for_function(RECORDING_PEER_CONNECTED, polling=POLL_MS, timeout=deadline_ms(20))
    wait_answer(page, f"async () => (await ({FRAMES_TO_RECORDER})()) >= {at_least}", seconds=30)


@pytest.mark.slow
def test_a_firefox_patient_is_recorded_with_the_chromium_doctor(
    live_server: LiveServer, contexts: Contexts, firefox_pages: FirefoxPages
) -> None:
    doctor: Page = contexts.new_page()
    patient = firefox_pages.new_page()
    into_the_call(live_server, doctor, patient)

    doctor.click(".recording-record")
    for page in (patient, doctor):
        wait_visible(page, PROMPT)
        wait_text(page, PROMPT, "chiffré")
    snap_both_widths(patient, "firefox-recording-consent-patient")
    for page in (patient, doctor):
        page.click(f"{PROMPT} button[value=accept]")
    for page in (doctor, patient):
        wait_visible(page, ".recording-indicator", seconds=20)
    # Both pages send their camera and microphone to the recording peer: a few seconds of it.
    for page in (doctor, patient):
        wait_frames_to_recorder(page, at_least=40)
    snap_both_widths(patient, "firefox-recording-on-patient")

    doctor.click(".recording-stop")
    for page in (patient, doctor):
        wait_hidden(page, ".recording-indicator", seconds=15)
        wait_text(page, ".recording-status", "L'enregistrement est arrêté.")

    listed = settled_recordings(doctor)
    assert len(listed) == 1 and listed[0]["status"] == "complete", listed
    download = doctor.request.get(f"/api/recordings/{listed[0]['id']}/download")
    assert download.status == 200
    webm = download.body()
    with av.open(io.BytesIO(webm), mode="r") as container:
        kinds = [s.type for s in container.streams]
    assert sorted(kinds) == ["audio", "audio", "video", "video"]  # both participants
    for index, kind in enumerate(kinds):
        # Every stream decodes from the start of the file, as a player reads it.
        with av.open(io.BytesIO(webm), mode="r") as container:
            decoded = len(list(container.decode(container.streams[index])))
        assert decoded > (10 if kind == "video" else 50), (index, kind, decoded)
    assert_no_errors(doctor, patient)
