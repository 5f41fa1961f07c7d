"""A whole consultation in two Chromium contexts: the doctor opens the call page, the patient
goes through the invite link, the code and the device check into the waiting room, the doctor
lets them in, both see and hear each other over DTLS-SRTP, the doctor ends it."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import deadline_ms

from .conftest import Contexts, LiveServer, assert_no_page_errors, snap
from .test_staff_pages import create_doctor, enrol_with_page_secret, sign_in

pytestmark = pytest.mark.browser

# The other participant's video is playing: it has a size and its frames keep coming.
FRAMES = """(selector) => {
  const video = document.querySelector(selector);
  return video && video.videoWidth > 0 ? video.getVideoPlaybackQuality().totalVideoFrames : -1;
}"""

# The DTLS transport of the page's RTCPeerConnection, as getStats() reports it.
TRANSPORT = """async () => {
  const pc = window.__peers.find((p) => p.connectionState !== "closed");
  if (!pc) return null;
  const stats = await pc.getStats();
  for (const report of stats.values()) {
    if (report.type === "transport") {
      return { dtlsState: report.dtlsState, srtpCipher: report.srtpCipher || null };
    }
  }
  return null;
}"""

# Keep a handle on every RTCPeerConnection the page makes, for getStats() from the test.
TRACK_PEERS = """
window.__peers = [];
const Native = window.RTCPeerConnection;
window.RTCPeerConnection = class extends Native {
  constructor(...args) { super(...args); window.__peers.push(this); }
};
"""


# Lets a test cut the page's signaling socket the way a network loss does: the server sees the
# socket go without a hang_up, the page's close handlers see 1006 (abnormal closure).
DROPPABLE_SOCKETS = """
window.__sockets = [];
const NativeSocket = window.WebSocket;
window.WebSocket = class extends NativeSocket {
  constructor(...args) { super(...args); this.__dropped = false; window.__sockets.push(this); }
  addEventListener(type, listener, options) {
    if (type !== "close") return super.addEventListener(type, listener, options);
    return super.addEventListener(type, (event) => listener(
      this.__dropped ? new CloseEvent("close", { code: 1006, reason: "" }) : event), options);
  }
};
window.__dropSignaling = () => {
  for (const socket of window.__sockets) {
    if (socket.readyState === NativeSocket.OPEN) { socket.__dropped = true; socket.close(3000); }
  }
};
"""


# Counts the tones the page generates with WebAudio (the knock).
COUNT_TONES = """
window.__tones = 0;
const nativeOscillator = AudioContext.prototype.createOscillator;
AudioContext.prototype.createOscillator = function () {
  window.__tones += 1;
  return nativeOscillator.call(this);
};
"""


def doctor_with_consultation(
    live_server: LiveServer, contexts: Contexts, init_script: str = ""
) -> tuple[Page, str, str]:
    """The doctor signs in through the pages, creates a consultation and keeps the dashboard
    open; returns the page, the patient's link (path) and the access code."""
    create_doctor(live_server)
    doctor = contexts.new_page()
    doctor.add_init_script(TRACK_PEERS + COUNT_TONES + init_script)
    doctor.goto("/")
    sign_in(doctor, "dr.martin")
    enrol_with_page_secret(doctor)
    url, code = book_on_dashboard(doctor, live_server)
    return doctor, url, code


def book_on_dashboard(doctor: Page, live_server: LiveServer) -> tuple[str, str]:
    """The doctor books a consultation for Alice Dupont on the dashboard; returns the
    patient's link (path) and the access code."""
    doctor.fill("#patient-name", "Alice Dupont")
    doctor.click("#create-form button[type=submit]")
    expect(doctor.locator("#invite-result")).to_be_visible()
    url = doctor.locator("#invite-url").input_value().removeprefix(live_server.url)
    code = doctor.locator("#invite-code").input_value()
    doctor.click("#invite-done")
    return url, code


def patient_to_waiting_room(contexts: Contexts, url: str, code: str, init_script: str = "") -> Page:
    patient = contexts.new_page(locale="fr-FR")
    patient.add_init_script(TRACK_PEERS + init_script)
    patient.goto(url)
    enter_with_code(patient, code)
    return patient


def enter_with_code(patient: Page, code: str) -> None:
    """On the invite page, the patient types the access code, sees the camera preview and
    goes on to the waiting room."""
    patient.fill("#access-code", code)
    patient.click("#code-form button[type=submit]")
    expect(patient.locator("#devices-step h1")).to_be_visible()
    patient.wait_for_function("() => document.querySelector('#preview').videoWidth > 0")
    patient.click("#ready")
    expect(patient.locator("#waiting-step h1")).to_be_visible()


def open_the_call(doctor: Page) -> None:
    """From the dashboard, the doctor opens the call page of Alice Dupont's consultation
    (doctor_with_consultation's) and waits there for the patient."""
    doctor.get_by_role("link", name="Démarrer la consultation avec Alice Dupont").click()
    expect(doctor.locator("#call-status")).to_have_attribute("data-state", "waiting")


def doctor_on_the_call_page(live_server: LiveServer, contexts: Contexts) -> tuple[Page, str, str]:
    """doctor_with_consultation(), then the doctor opens the call page and waits there."""
    doctor, url, code = doctor_with_consultation(live_server, contexts)
    open_the_call(doctor)
    return doctor, url, code


def assert_in_call(doctor: Page, patient: Page) -> None:
    """Both see the other's camera, frames advancing, over DTLS-SRTP, and both pages say so."""
    expect(patient.locator("#call-step")).to_be_visible()
    assert_remote_video_plays(patient, "#patient-remote")
    assert_remote_video_plays(doctor, "#remote-video")
    assert_encrypted(patient)
    assert_encrypted(doctor)
    expect(doctor.locator("#call-status")).to_have_attribute("data-state", "in_call")
    expect(patient.locator("#patient-call-status")).to_have_attribute("data-state", "in_call")


def assert_remote_video_plays(page: Page, selector: str) -> None:
    page.wait_for_function(f"() => ({FRAMES})({selector!r}) > 0", timeout=deadline_ms(20))
    first = page.evaluate(FRAMES, selector)
    page.wait_for_function(f"() => ({FRAMES})({selector!r}) > {first}", timeout=deadline_ms(10))


def assert_encrypted(page: Page) -> None:
    page.wait_for_function(
        f"""async () => {{
          const t = await ({TRANSPORT})();
          return Boolean(t && t.dtlsState === "connected" && t.srtpCipher);
        }}""",
        timeout=deadline_ms(20),
    )
    transport = page.evaluate(TRANSPORT)
    assert transport["dtlsState"] == "connected"
    assert transport["srtpCipher"]


def test_doctor_admits_patient_and_they_talk_over_encrypted_video(
    live_server: LiveServer, contexts: Contexts
) -> None:
    doctor, url, code = doctor_with_consultation(live_server, contexts)
    doctor.get_by_role("link", name="Démarrer la consultation avec Alice Dupont").click()
    expect(doctor.locator("#call-title")).to_have_text("Alice Dupont")
    expect(doctor.locator("#call-status")).to_have_attribute("data-state", "waiting")
    expect(doctor.locator("#lobby")).to_be_hidden()
    # A page may only play sound after an interaction: the doctor picks the language.
    doctor.get_by_role("button", name="FR", exact=True).click()
    assert doctor.evaluate("() => window.__tones") == 0

    patient = patient_to_waiting_room(contexts, url, code)
    expect(patient.locator("#connection-state")).to_have_attribute("data-state", "waiting")
    expect(patient.locator("#connection-state")).to_have_text(
        "Votre médecin sait que vous êtes là."
    )

    # The doctor sees who knocks, with a badge in the tab title.
    item = doctor.locator("#lobby .waiting-item")
    expect(item).to_contain_text("Alice Dupont")
    expect(item).to_contain_text("attend depuis")
    expect(doctor.locator("#call-status")).to_have_text("Le patient est en salle d'attente.")
    expect(doctor).to_have_title("(patient en attente) Téléconsultation — Consultation en cours")
    # The knock: two generated tones.
    assert doctor.evaluate("() => window.__tones") == 2
    snap(doctor, "call-doctor-lobby")
    item.get_by_role("button", name="Faire entrer").click()
    expect(doctor.locator("#lobby")).to_be_hidden()
    expect(doctor).to_have_title("Téléconsultation — Consultation en cours")

    assert_in_call(doctor, patient)
    expect(doctor.locator("#call-encryption")).to_contain_text(
        "Votre appel est privé : chiffré de bout en bout"
    )
    expect(patient.locator("#patient-encryption")).to_contain_text("DTLS-SRTP")
    snap(doctor, "call-doctor")
    snap(patient, "call-patient")

    # Muting acts on the track the patient sends.
    patient.click("#patient-mic")
    expect(patient.locator("#patient-mic")).to_have_attribute("aria-pressed", "true")
    assert (
        patient.evaluate(
            "() => document.querySelector('#patient-self').srcObject.getAudioTracks()[0].enabled"
        )
        is False
    )

    # The doctor ends the consultation: the patient is told, camera off.
    doctor.click("#hang-up")
    doctor.locator("#confirm-dialog").get_by_role("button", name="Retour").click()
    expect(doctor.locator("#call-status")).to_have_attribute("data-state", "in_call")
    expect(patient.locator("#call-step")).to_be_visible()
    doctor.click("#hang-up")
    doctor.locator("#confirm-ok").click()
    expect(doctor.locator("#greeting")).to_be_visible()
    expect(patient.locator("#waiting-step")).to_be_visible()
    expect(patient.locator("#connection-state")).to_have_attribute("data-state", "ended")
    expect(patient.locator("#connection-state")).to_have_text(
        "La consultation est terminée. Vous pouvez fermer cette page."
    )
    expect(patient.locator("#rejoin")).to_be_hidden()
    expect(patient.locator("#waiting-title")).to_have_text("Consultation terminée")
    assert patient.evaluate("() => document.querySelector('#patient-self').srcObject") is None
    snap(patient, "call-patient-ended")
    assert_no_page_errors(doctor)
    assert_no_page_errors(patient)


def test_doctor_declines_the_waiting_patient(live_server: LiveServer, contexts: Contexts) -> None:
    doctor, url, code = doctor_with_consultation(live_server, contexts)
    open_the_call(doctor)
    patient = patient_to_waiting_room(contexts, url, code)
    doctor.locator("#lobby").get_by_role("button", name="Refuser").click()
    expect(patient.locator("#connection-state")).to_have_attribute("data-state", "denied")
    expect(patient.locator("#waiting-title")).to_have_text("Le médecin n'a pas pu vous recevoir.")
    expect(doctor.locator("#lobby")).to_be_hidden()
    assert_no_page_errors(doctor)
    assert_no_page_errors(patient)


def test_patient_resumes_the_call_after_a_network_drop(
    live_server: LiveServer, contexts: Contexts
) -> None:
    doctor, url, code = doctor_with_consultation(live_server, contexts)
    open_the_call(doctor)
    patient = patient_to_waiting_room(contexts, url, code, init_script=DROPPABLE_SOCKETS)
    doctor.locator("#lobby").get_by_role("button", name="Faire entrer").click()
    assert_remote_video_plays(patient, "#patient-remote")

    # The patient's connection drops without a hang_up (the page sees 1006, as after a
    # network loss; DevTools' offline mode leaves open WebSockets alone).
    patient.evaluate("() => window.__dropSignaling()")
    expect(patient.locator("#patient-call-status")).to_have_attribute("data-state", "reconnecting")
    # resume keeps the admitted place: no second admission, the call comes back.
    expect(patient.locator("#patient-call-status")).to_have_attribute(
        "data-state", "in_call", timeout=deadline_ms(20)
    )
    expect(patient.locator("#call-step")).to_be_visible()
    expect(doctor.locator("#lobby")).to_be_hidden()
    assert_remote_video_plays(patient, "#patient-remote")
    assert_remote_video_plays(doctor, "#remote-video")
    assert_encrypted(patient)
    assert_no_page_errors(doctor)
    assert_no_page_errors(patient)


def test_doctor_leaves_the_call_and_comes_back_to_the_same_patient(
    live_server: LiveServer, contexts: Contexts
) -> None:
    """Leaving is not ending: the consultation stays open, the patient keeps their place, and
    the doctor's next visit to the call page brings them both back into the call."""
    doctor, url, code = doctor_with_consultation(live_server, contexts)
    open_the_call(doctor)
    patient = patient_to_waiting_room(contexts, url, code)
    doctor.locator("#lobby .waiting-item").get_by_role("button", name="Faire entrer").click()
    assert_in_call(doctor, patient)

    leave = doctor.get_by_role("button", name="Quitter l'appel — le patient peut revenir")
    expect(leave).to_be_visible()
    expect(doctor.locator("#hang-up")).to_have_text("Terminer la consultation")
    snap(doctor, "call-doctor-leave-or-end")
    leave.click()  # nothing is lost: no question asked
    expect(doctor.locator("#greeting")).to_be_visible()
    # The patient is not told the consultation ended: they wait for the doctor to return.
    expect(patient.locator("#connection-state")).not_to_have_attribute("data-state", "ended")
    expect(patient.locator("#left-step")).to_be_hidden()

    # Back on the call page: the patient is still let in, so the call starts at once.
    doctor.get_by_role("link", name="Démarrer la consultation avec Alice Dupont").click()
    assert_in_call(doctor, patient)
    assert_no_page_errors(doctor)
    assert_no_page_errors(patient)
