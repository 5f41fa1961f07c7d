"""What the pages do in a browser that lacks something (web/static/browser-support.js): without
WebRTC the invite page says so in both languages, before asking for the code; a browser that
cannot send VP8 is told in the consent prompt that it cannot be recorded and may only refuse.
The missing parts are taken away by an init script from a real Chromium (Debian's WebKitGTK,
the one real browser here without WebRTC, cannot be driven through Playwright)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from . import test_recording
from .conftest import Contexts, LiveServer, assert_no_page_errors, snap
from .test_call import assert_remote_video_plays, doctor_with_consultation, open_the_call
from .test_call import patient_to_waiting_room as patient_in_waiting_room
from .test_join_page import make_invite
from .test_recording import consent_prompt, record_button, recordings

pytestmark = pytest.mark.browser

live_server = test_recording.live_server  # recording on (the join page does not mind)

WITHOUT_WEBRTC = "delete window.RTCPeerConnection; delete window.webkitRTCPeerConnection;"
# The browser still speaks VP8 on the wire; only what it says it can send leaves VP8 out.
WITHOUT_VP8 = """
const nativeCapabilities = RTCRtpSender.getCapabilities.bind(RTCRtpSender);
RTCRtpSender.getCapabilities = (kind) => {
  const capabilities = nativeCapabilities(kind);
  if (!capabilities) return capabilities;
  return { ...capabilities, codecs: capabilities.codecs.filter((c) => c.mimeType !== "video/VP8") };
};
"""


def test_a_browser_without_webrtc_is_told_before_the_code_in_both_languages(
    live_server: LiveServer, contexts: Contexts
) -> None:
    invite = make_invite(live_server)
    page = contexts.new_page()
    page.add_init_script(WITHOUT_WEBRTC)
    page.goto(invite.path)
    expect(page.locator("#problem-title")).to_have_text(
        "Ce navigateur ne permet pas la consultation vidéo"
    )
    expect(page.locator("#problem-action")).to_contain_text("Firefox, Chrome, Edge ou Safari")
    expect(page.locator("#code-step")).to_be_hidden()
    expect(page.locator("#problem-retry")).to_be_hidden()
    snap(page, "patient-browser-unsupported")
    page.get_by_role("button", name="EN", exact=True).click()
    expect(page.locator("#problem-title")).to_have_text(
        "This browser cannot do a video consultation"
    )
    expect(page.locator("#problem-action")).to_contain_text("Firefox, Chrome, Edge or Safari")
    snap(page, "patient-browser-unsupported-en")
    assert_no_page_errors(page)


def test_a_browser_without_vp8_is_told_in_the_consent_prompt_it_cannot_be_recorded(
    live_server: LiveServer, contexts: Contexts
) -> None:
    doctor, url, code = doctor_with_consultation(live_server, contexts)
    open_the_call(doctor)
    patient = patient_in_waiting_room(contexts, url, code, init_script=WITHOUT_VP8)
    doctor.locator("#lobby").get_by_role("button", name="Faire entrer").click()
    assert_remote_video_plays(patient, "#patient-remote")
    record_button(doctor).click()
    prompt = consent_prompt(patient)
    expect(prompt).to_be_visible()
    expect(prompt.locator(".recording-consent-unsupported")).to_have_text(
        "Ce navigateur ne peut pas être enregistré : il n'envoie pas la vidéo au format VP8. "
        "Vous pouvez seulement refuser ; la consultation continue normalement."
    )
    expect(prompt.get_by_role("button", name="J'accepte")).to_be_hidden()
    # The doctor's browser can: its prompt is the usual one.
    expect(consent_prompt(doctor).locator(".recording-consent-unsupported")).to_be_hidden()
    snap(patient, "recording-consent-patient-without-vp8")
    prompt.get_by_role("button", name="Je refuse").click()
    expect(patient.locator(".recording-status")).to_have_text(
        "Vous avez refusé l'enregistrement. Rien n'est enregistré."
    )
    assert recordings(doctor) == []
    assert_no_page_errors(doctor)
    assert_no_page_errors(patient)
