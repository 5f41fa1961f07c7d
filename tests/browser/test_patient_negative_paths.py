"""What a patient sees when things do not go to plan: a wrong access code, an expired link, a
cancelled consultation (before opening the link, and while waiting), and a patient who waits
or tries the doctor's own page before being let in. In every case: a clear text, and never
the doctor's video (no camera opened where none is needed)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from .conftest import Contexts, LiveServer, assert_no_page_errors, snap
from .test_call import TRACK_PEERS, doctor_with_consultation, patient_to_waiting_room
from .test_join_page import enter_code, make_invite, wrong_code

pytestmark = pytest.mark.browser

# Counts the page's camera/microphone requests (the real ones still happen).
COUNT_MEDIA_REQUESTS = """
window.__mediaRequests = 0;
const nativeGetUserMedia = MediaDevices.prototype.getUserMedia;
MediaDevices.prototype.getUserMedia = function (...args) {
  window.__mediaRequests += 1;
  return nativeGetUserMedia.apply(this, args);
};
"""

# Every <video> on the page fed by a live video track (a camera that is on, or a remote one).
VIDEOS_SHOWING = """() => [...document.querySelectorAll("video")]
  .filter((v) => v.srcObject && v.srcObject.getVideoTracks().some((t) => t.readyState === "live"))
  .map((v) => v.id)"""


# Connections may be made ahead while the patient waits (web/static/call-session.js), but
# none is negotiated before admission: no remote description, no ICE connection.
NEGOTIATED = """() => window.__peers.filter(
  (p) => p.remoteDescription || !["new", "closed"].includes(p.connectionState)).length"""
# The waiting patient's connection holds no description at all (it only answers an offer).
DESCRIBED = "() => window.__peers.filter((p) => p.localDescription || p.remoteDescription).length"
STILL_OPEN = "() => window.__peers.filter((p) => p.connectionState !== 'closed').length"


def watched_patient(contexts: Contexts, locale: str = "fr-FR") -> Page:
    page = contexts.new_page(locale=locale)
    page.add_init_script(TRACK_PEERS + COUNT_MEDIA_REQUESTS)
    return page


def assert_no_video_and_no_camera(page: Page) -> None:
    assert page.evaluate(VIDEOS_SHOWING) == []
    assert page.evaluate("() => window.__mediaRequests") == 0
    assert page.evaluate("() => window.__peers.length") == 0


def cancel(server: LiveServer, consultation_id: str) -> None:
    services = server.services

    async def run() -> None:
        consultation = await services.store.get_consultation(consultation_id)
        await services.consultations.cancel(consultation)

    server.call(run())


def test_wrong_access_code_keeps_the_patient_at_the_code_step(
    live_server: LiveServer, contexts: Contexts
) -> None:
    invite = make_invite(live_server)
    page = watched_patient(contexts)
    page.goto(invite.path)
    enter_code(page, wrong_code(invite.code))
    expect(page.locator("#code-form .alert-error")).to_have_text(
        "Code d'accès incorrect. Il vous reste 4 essais."
    )
    expect(page.locator("#access-code")).to_be_visible()
    expect(page.locator("#devices-step")).to_be_hidden()
    expect(page.locator("#waiting-step")).to_be_hidden()
    assert_no_video_and_no_camera(page)
    assert_no_page_errors(page)


def test_expired_link_says_so_and_opens_no_camera(
    live_server: LiveServer, contexts: Contexts
) -> None:
    invite = make_invite(live_server, starts_in_minutes=-180)
    page = watched_patient(contexts)
    page.goto(invite.path)
    expect(page.locator("#problem-title")).to_have_text("Ce lien a expiré")
    expect(page.locator("#problem-action")).to_contain_text("nouveau lien")
    expect(page.locator("#code-step")).to_be_hidden()
    expect(page.locator("#waiting-step")).to_be_hidden()
    assert_no_video_and_no_camera(page)
    assert_no_page_errors(page)


def test_cancelled_consultation_says_so_and_opens_no_camera(
    live_server: LiveServer, contexts: Contexts
) -> None:
    invite = make_invite(live_server)
    cancel(live_server, invite.consultation_id)
    page = watched_patient(contexts, locale="en-US")
    page.goto(invite.path)
    expect(page.locator("#problem-title")).to_have_text("This appointment was cancelled")
    expect(page.locator("#code-step")).to_be_hidden()
    assert_no_video_and_no_camera(page)
    snap(page, "patient-cancelled")
    assert_no_page_errors(page)


def test_waiting_patient_never_gets_the_doctors_video_before_admission(
    live_server: LiveServer, contexts: Contexts
) -> None:
    doctor, url, code = doctor_with_consultation(live_server, contexts)
    doctor.get_by_role("link", name="Démarrer la consultation avec Alice Dupont").click()
    # The doctor's camera is on and the doctor is in the room.
    doctor.wait_for_function("() => document.querySelector('#self-video').videoWidth > 0")
    patient = patient_to_waiting_room(contexts, url, code)
    expect(patient.locator("#connection-state")).to_have_attribute("data-state", "waiting")
    expect(doctor.locator("#lobby .waiting-item")).to_contain_text("Alice Dupont")
    # A while in the waiting room: still only the waiting room, no connection, no video.
    patient.wait_for_timeout(3000)
    expect(patient.locator("#waiting-step h1")).to_have_text("Vous êtes en salle d'attente")
    expect(patient.locator("#call-step")).to_be_hidden()
    assert patient.evaluate(DESCRIBED) == 0
    assert patient.evaluate("() => document.querySelector('#patient-remote').srcObject") is None
    assert patient.evaluate("() => document.querySelector('#patient-remote').videoWidth") == 0
    # The doctor's page has no connection to the patient either (its offer, made ahead, was
    # never sent: nothing answered it).
    assert doctor.evaluate(NEGOTIATED) == 0
    assert_no_page_errors(doctor)
    assert_no_page_errors(patient)


def test_patient_cannot_open_the_doctors_call_page(
    live_server: LiveServer, contexts: Contexts
) -> None:
    doctor, url, code = doctor_with_consultation(live_server, contexts)
    call_path = doctor.get_by_role(
        "link", name="Démarrer la consultation avec Alice Dupont"
    ).get_attribute("href")
    assert call_path is not None
    patient = patient_to_waiting_room(contexts, url, code)
    # The patient (signed in to this consultation only) tries the doctor's page of it.
    intruder = patient.context.new_page()
    intruder.add_init_script(TRACK_PEERS + COUNT_MEDIA_REQUESTS)
    intruder.goto(call_path)
    expect(intruder.locator("#signin-title")).to_have_text("Connexion de l'espace soignant")
    assert intruder.url == f"{live_server.url}/"
    assert intruder.evaluate(VIDEOS_SHOWING) == []
    assert intruder.evaluate("() => window.__peers.length") == 0
    # The waiting room is untouched: still waiting, not admitted.
    expect(patient.locator("#connection-state")).to_have_attribute("data-state", "waiting")
    expect(patient.locator("#call-step")).to_be_hidden()


def test_consultation_cancelled_while_the_patient_waits(
    live_server: LiveServer, contexts: Contexts
) -> None:
    doctor, url, code = doctor_with_consultation(live_server, contexts)
    patient = patient_to_waiting_room(contexts, url, code)
    expect(patient.locator("#connection-state")).to_have_attribute("data-state", "waiting")
    row = doctor.locator("#list-today .consult-item", has_text="Alice Dupont")
    row.get_by_role("button", name="Annuler la consultation avec Alice Dupont").click()
    doctor.locator("#confirm-ok").click()
    # The patient is told it was cancelled (not that it ended); camera off, nothing shows.
    expect(patient.locator("#connection-state")).to_have_attribute("data-state", "cancelled")
    expect(patient.locator("#waiting-title")).to_have_text("Consultation annulée")
    expect(patient.locator("#connection-state")).to_have_text(
        "Votre médecin a annulé cette consultation. Vous pouvez fermer cette page ; "
        "contactez le cabinet pour un nouveau rendez-vous."
    )
    snap(patient, "patient-cancelled-while-waiting")
    # The same in English once the patient switches language.
    patient.get_by_role("button", name="EN", exact=True).click()
    expect(patient.locator("#waiting-title")).to_have_text("Consultation cancelled")
    expect(patient.locator("#connection-state")).to_contain_text(
        "Your doctor cancelled this consultation."
    )
    expect(patient.locator("#rejoin")).to_be_hidden()
    expect(patient.locator("#call-step")).to_be_hidden()
    assert patient.evaluate(VIDEOS_SHOWING) == []
    assert patient.evaluate(DESCRIBED) == 0 and patient.evaluate(STILL_OPEN) == 0
    # The link no longer opens anything (the language chosen stays).
    patient.goto(url)
    expect(patient.locator("#problem-title")).to_have_text("This appointment was cancelled")
    assert_no_page_errors(patient)
