"""The whole consultation across engines: the patient on Firefox ESR and the doctor on Chromium,
then the reverse. Link, code, device check, waiting room, admission, both videos, DTLS connected
in getStats() on both sides, the same security code on both, chat and a file over the data
channel, mute, hang-up and the end, with screenshots of the Firefox pages."""

from __future__ import annotations

import pytest

from .conftest import Contexts, LiveServer
from .firefox import FirefoxPages
from .journey import (
    CallPage,
    assert_no_errors,
    into_the_call,
    send_chat,
    send_file,
    snap_both_widths,
    wait_attribute,
    wait_text,
    wait_visible,
)

pytestmark = pytest.mark.browser


SENDS_AUDIO = "(s) => document.querySelector(s).srcObject.getAudioTracks()[0].enabled"


def talk_then_hang_up(doctor: CallPage, patient: CallPage) -> None:
    """Chat both ways, a file each way, mute states, then the doctor ends the consultation."""
    send_chat(doctor, "Bonjour, comment allez-vous ?")
    wait_text(patient, "#chat-unread", "^1$")
    send_chat(patient, "Bien, merci.")
    wait_text(doctor, "#chat-log .chat-from-peer", "Bien, merci.")
    wait_text(patient, "#chat-log .chat-from-peer", "comment allez-vous")
    send_file(patient, doctor, "resultats-analyse.pdf", 200 * 1024 + 17)
    send_file(doctor, patient, "ordonnance.pdf", 40 * 1024)

    # Muting acts on the track each sends (the other side is told nothing: no mute message).
    for page, button, own_video in (
        (patient, "#patient-mic", "#patient-self"),
        (doctor, "#toggle-mic", "#self-video"),
    ):
        page.click(button)
        wait_attribute(page, button, "aria-pressed", "true")
        assert page.evaluate(SENDS_AUDIO, own_video) is False

    doctor.click("#hang-up")
    doctor.click("#confirm-ok")
    wait_visible(doctor, "#greeting")
    wait_attribute(patient, "#connection-state", "data-state", "ended")
    wait_text(patient, "#waiting-title", "Consultation terminée")
    assert patient.evaluate("() => document.querySelector('#patient-self').srcObject") is None


@pytest.mark.parametrize("on_firefox", ["patient", "doctor"])
def test_a_whole_consultation_with_one_side_on_firefox_and_the_other_on_chromium(
    live_server: LiveServer, contexts: Contexts, firefox_pages: FirefoxPages, on_firefox: str
) -> None:
    firefox, chromium = firefox_pages.new_page(), contexts.new_page()
    doctor, patient = (chromium, firefox) if on_firefox == "patient" else (firefox, chromium)
    into_the_call(live_server, doctor, patient)
    snap_both_widths(firefox, f"firefox-call-{on_firefox}")
    talk_then_hang_up(doctor, patient)
    snap_both_widths(firefox, f"firefox-call-{on_firefox}-ended")
    assert_no_errors(chromium, firefox)
