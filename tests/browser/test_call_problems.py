"""What goes wrong in a call is said: on the page, in the person's language, and in the console
(where the browser tests' guard fails any test that did not expect it). The doctor's camera
refused; a signaling step the patient's browser refuses."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .conftest import (
    Contexts,
    LiveServer,
    assert_no_page_errors,
    expect_console,
    expected_console_seen,
    snap,
)
from .test_call import (
    assert_remote_video_plays,
    doctor_with_consultation,
    open_the_call,
    patient_to_waiting_room,
)

pytestmark = pytest.mark.browser

# The camera and microphone refused (as when the doctor clicked "Block"), until the test lifts it.
BLOCKED_MEDIA = """
window.__blockMedia = true;
const nativeGetUserMedia = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
navigator.mediaDevices.getUserMedia = (constraints) => window.__blockMedia
  ? Promise.reject(new DOMException("Permission denied", "NotAllowedError"))
  : nativeGetUserMedia(constraints);
"""

# The browser refuses the first offer it is given (a description it cannot apply).
REFUSE_FIRST_OFFER = """
window.__refuseOffers = 1;
const nativeSetRemote = RTCPeerConnection.prototype.setRemoteDescription;
RTCPeerConnection.prototype.setRemoteDescription = function (description) {
  if (description && description.type === "offer" && window.__refuseOffers > 0) {
    window.__refuseOffers -= 1;
    return Promise.reject(new DOMException("refused by the test", "OperationError"));
  }
  return nativeSetRemote.apply(this, arguments);
};
"""

CAMERA_WARNING = "call: camera or microphone unavailable (NotAllowedError"


def test_doctor_is_told_the_camera_did_not_start_still_sees_the_patient_and_retries(
    live_server: LiveServer, contexts: Contexts
) -> None:
    doctor, url, code = doctor_with_consultation(live_server, contexts, BLOCKED_MEDIA)
    expect_console(doctor, CAMERA_WARNING)
    doctor.get_by_role("link", name="Démarrer la consultation avec Alice Dupont").click()
    problem = doctor.locator("#media-problem")
    expect(problem).to_be_visible()
    expect(problem).to_have_attribute("role", "alert")
    expect(problem).to_contain_text(
        "Votre caméra et votre micro n'ont pas pu démarrer : le patient ne vous voit pas"
    )
    expect(problem).to_contain_text("Le navigateur en bloque l'accès")
    assert any(CAMERA_WARNING in text for text in expected_console_seen(doctor))
    doctor.get_by_role("button", name="EN", exact=True).click()
    expect(problem).to_contain_text("Your camera and microphone could not start")
    expect(problem).to_contain_text("The browser blocks access to it")
    snap(doctor, "call-doctor-camera-blocked")
    doctor.get_by_role("button", name="FR", exact=True).click()

    # Without a camera of their own, the doctor still sees and hears the patient.
    patient = patient_to_waiting_room(contexts, url, code)
    doctor.locator("#lobby .waiting-item").get_by_role("button", name="Faire entrer").click()
    expect(patient.locator("#call-step")).to_be_visible()
    assert_remote_video_plays(doctor, "#remote-video")
    expect(doctor.locator("#call-status")).to_have_attribute("data-state", "in_call")
    expect(problem).to_be_visible()

    # Allowed now: "Try again" starts the camera, and the call carries it to the patient.
    doctor.evaluate("() => { window.__blockMedia = false; }")
    problem.get_by_role("button", name="Réessayer").click()
    expect(problem).to_be_hidden()
    doctor.wait_for_function("() => document.querySelector('#self-video').videoWidth > 0")
    assert_remote_video_plays(patient, "#patient-remote")
    assert_remote_video_plays(doctor, "#remote-video")
    assert_no_page_errors(doctor)
    assert_no_page_errors(patient)


def test_a_signaling_step_the_browser_refuses_is_said_on_the_page_and_in_the_console(
    live_server: LiveServer, contexts: Contexts
) -> None:
    doctor, url, code = doctor_with_consultation(live_server, contexts)
    open_the_call(doctor)
    patient = patient_to_waiting_room(contexts, url, code, REFUSE_FIRST_OFFER)
    expect_console(patient, "signaling: the answer step failed")
    doctor.locator("#lobby .waiting-item").get_by_role("button", name="Faire entrer").click()

    status = patient.locator("#patient-call-status")
    expect(status).to_have_attribute("data-state", "negotiation_failed")
    expect(status).to_have_text(
        "La connexion vidéo n'a pas pu s'établir. Rechargez la page pour réessayer."
    )
    assert any("answer step" in m for m in expected_console_seen(patient))
    snap(patient, "call-patient-negotiation-failed")
    assert_no_page_errors(patient)
    assert_no_page_errors(doctor)
