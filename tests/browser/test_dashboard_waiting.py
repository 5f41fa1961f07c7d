"""The doctor's dashboard shows the waiting room live: a patient arrives while the doctor is on
the dashboard, the row and the waiting panel say so, the tab title gets a "(1)" badge, a knock
plays and a system notification is shown; the doctor lets the patient in (or declines) from
there."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from .conftest import Contexts, LiveServer, assert_no_page_errors, snap
from .test_call import assert_remote_video_plays, doctor_with_consultation, patient_to_waiting_room

pytestmark = pytest.mark.browser

# Records every Notification the page constructs and every permission request, and lets the
# real ones happen (observing, not replacing: the page still talks to Chromium's own API).
RECORD_NOTIFICATIONS = """
window.__notifications = [];
window.__permissionRequests = 0;
const NativeNotification = window.Notification;
window.Notification = class extends NativeNotification {
  constructor(title, options) {
    super(title, options);
    window.__notifications.push({ title, body: (options && options.body) || "" });
  }
  static requestPermission(...args) {
    window.__permissionRequests += 1;
    return NativeNotification.requestPermission(...args);
  }
};
"""

DASHBOARD_TITLE = "Téléconsultation — Espace soignant"


def doctor_on_dashboard(live_server: LiveServer, contexts: Contexts) -> tuple[Page, str, str]:
    doctor, url, code = doctor_with_consultation(live_server, contexts)
    doctor.add_init_script(RECORD_NOTIFICATIONS)
    # The fixture's camera/microphone grant leaves every other permission "denied"; a new
    # profile's "not asked yet" is what a doctor meets (the fake UI still answers camera asks).
    doctor.context.clear_permissions()
    doctor.reload()
    expect(doctor.locator("#greeting")).to_be_visible()
    expect(doctor.locator("#waiting-list")).to_have_text("Personne n'attend pour le moment.")
    return doctor, url, code


def test_patient_arrival_is_announced_on_the_dashboard_and_the_doctor_lets_them_in(
    live_server: LiveServer, contexts: Contexts
) -> None:
    doctor, url, code = doctor_on_dashboard(live_server, contexts)
    expect(doctor).to_have_title(DASHBOARD_TITLE)
    # Notifications are asked for on a click, never on load.
    enable = doctor.locator("#notify-enable")
    expect(enable).to_be_visible()
    assert doctor.evaluate("() => window.__permissionRequests") == 0
    doctor.context.grant_permissions(["notifications"], origin=live_server.url)
    enable.click()  # also the interaction browsers require before a page may play sound
    expect(enable).to_be_hidden()
    expect(doctor.locator("#notify-state")).to_contain_text("Vous recevrez une notification")
    assert doctor.evaluate("() => window.__permissionRequests") == 1
    assert doctor.evaluate("() => window.__notifications.length") == 0
    assert doctor.evaluate("() => window.__tones") == 0

    patient = patient_to_waiting_room(contexts, url, code)
    expect(patient.locator("#connection-state")).to_have_attribute("data-state", "waiting")

    item = doctor.locator("#waiting-list .waiting-item")
    expect(item).to_contain_text("Alice Dupont")
    expect(item).to_contain_text("attend depuis")
    row = doctor.locator("#list-today .consult-item", has_text="Alice Dupont")
    expect(row).to_have_attribute("data-waiting", "true")
    expect(row.locator(".badge-waiting")).to_have_text("En salle d'attente")
    expect(doctor).to_have_title(f"(1) {DASHBOARD_TITLE}")
    doctor.wait_for_function("() => window.__notifications.length === 1")
    notification = doctor.evaluate("() => window.__notifications[0]")
    assert notification["title"] == "Un patient est en salle d'attente"
    assert "Alice" not in notification["body"]  # a notification may show on a shared screen
    assert doctor.evaluate("() => window.__tones") == 2  # the knock
    snap(doctor, "dashboard-waiting")
    # Still waiting at the next polls: announced once, not again.
    doctor.wait_for_timeout(3500)
    assert doctor.evaluate("() => window.__notifications.length") == 1

    # The patient still sees the waiting room, never the doctor's video.
    expect(patient.locator("#call-step")).to_be_hidden()
    assert patient.evaluate("() => window.__peers.length") == 0

    consultation_id = row.get_attribute("data-id")
    item.get_by_role("button", name="Faire entrer Alice Dupont").click()
    # The call page lets the patient in by itself, and drops the intent from its address.
    expect(doctor).to_have_url(f"{live_server.url}/call/{consultation_id}")
    expect(patient.locator("#call-step")).to_be_visible()
    assert_remote_video_plays(patient, "#patient-remote")
    assert_remote_video_plays(doctor, "#remote-video")
    expect(doctor.locator("#lobby")).to_be_hidden()
    assert_no_page_errors(doctor)
    assert_no_page_errors(patient)


def test_doctor_declines_from_the_dashboard(live_server: LiveServer, contexts: Contexts) -> None:
    doctor, url, code = doctor_on_dashboard(live_server, contexts)
    patient = patient_to_waiting_room(contexts, url, code)
    item = doctor.locator("#waiting-list .waiting-item")
    expect(item).to_contain_text("Alice Dupont")
    expect(doctor).to_have_title(f"(1) {DASHBOARD_TITLE}")
    # No permission was given: no notification, and the page says how it will tell instead.
    assert doctor.evaluate("() => window.__notifications.length") == 0

    item.get_by_role("button", name="Refuser Alice Dupont").click()
    doctor.locator("#confirm-ok").click()
    expect(patient.locator("#connection-state")).to_have_attribute("data-state", "denied")
    expect(patient.locator("#waiting-title")).to_have_text("Le médecin n'a pas pu vous recevoir.")
    expect(doctor.locator("#waiting-list")).to_have_text("Personne n'attend pour le moment.")
    expect(doctor).to_have_title(DASHBOARD_TITLE)
    row = doctor.locator("#list-today .consult-item", has_text="Alice Dupont")
    expect(row).to_have_attribute("data-waiting", "false")
    expect(doctor.locator("#greeting")).to_be_visible()  # still on the dashboard
    assert_no_page_errors(doctor)
    assert_no_page_errors(patient)


def test_waiting_room_panel_in_english_on_a_phone(
    live_server: LiveServer, contexts: Contexts
) -> None:
    doctor, url, code = doctor_on_dashboard(live_server, contexts)
    doctor.get_by_role("button", name="EN", exact=True).click()
    patient_to_waiting_room(contexts, url, code)
    item = doctor.locator("#waiting-list .waiting-item")
    expect(item).to_contain_text("waiting since")
    expect(item.get_by_role("button", name="Let Alice Dupont in")).to_be_visible()
    expect(doctor).to_have_title("(1) Teleconsultation — Clinician area")
    assert_no_page_errors(doctor)
