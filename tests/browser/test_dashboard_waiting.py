"""The doctor's dashboard shows the waiting room live: a patient arrives while the doctor is on
the dashboard, the row and the waiting panel say so, the tab title gets a "(1)" badge, a knock
plays and a system notification is shown; the doctor lets the patient in (or declines) from
there. The list arrives through an EventSource on /api/waiting/events (hidden tabs' timers are
throttled, its messages are not), polling only when that stream keeps failing."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import deadline_ms

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

# Records every EventSource the page opens (the real one, observed).
RECORD_EVENT_SOURCES = """
window.__eventSources = [];
const NativeEventSource = window.EventSource;
window.EventSource = class extends NativeEventSource {
  constructor(url, options) {
    super(url, options);
    window.__eventSources.push(this);
  }
};
"""

DASHBOARD_TITLE = "Téléconsultation — Espace soignant"


def doctor_on_dashboard(live_server: LiveServer, contexts: Contexts) -> tuple[Page, str, str]:
    doctor, url, code = doctor_with_consultation(live_server, contexts)
    doctor.add_init_script(RECORD_NOTIFICATIONS)
    doctor.add_init_script(RECORD_EVENT_SOURCES)
    # The fixture's camera/microphone grant leaves every other permission "denied"; a new
    # profile's "not asked yet" is what a doctor meets (the fake UI still answers camera asks).
    doctor.context.clear_permissions()
    doctor.reload()
    expect(doctor.locator("#greeting")).to_be_visible()
    expect(doctor.locator("#waiting-list")).to_have_text("Personne n'attend pour le moment.")
    return doctor, url, code


@pytest.mark.slow
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
    # Still waiting a few seconds later: announced once, not again.
    doctor.wait_for_timeout(3500)
    assert doctor.evaluate("() => window.__notifications.length") == 1

    # The patient still sees the waiting room, never the doctor's video.
    expect(patient.locator("#call-step")).to_be_hidden()
    # Its connection may be made ahead (call-session.js), but nothing is negotiated before
    # admission: no description either way, so no media path can exist.
    negotiated = "() => window.__peers.filter((p) => p.localDescription || p.remoteDescription)"
    assert patient.evaluate(f"{negotiated}.length") == 0

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


def test_arrival_comes_through_the_event_stream_without_polling(
    live_server: LiveServer, contexts: Contexts
) -> None:
    doctor, url, code = doctor_on_dashboard(live_server, contexts)
    # Polling made impossible from here on: whatever arrives now came through the stream.
    polls: list[str] = []
    doctor.on("request", lambda r: polls.append(r.url) if r.url.endswith("/api/waiting") else None)
    doctor.route("**/api/waiting", lambda route: route.abort())
    expect(doctor.locator("body")).to_have_attribute("data-waiting-feed", "stream")
    sources = doctor.evaluate(
        "() => window.__eventSources.map((s) => ({ url: s.url, state: s.readyState }))"
    )
    assert sources == [{"url": f"{live_server.url}/api/waiting/events", "state": 1}]  # OPEN

    patient_to_waiting_room(contexts, url, code)
    item = doctor.locator("#waiting-list .waiting-item")
    expect(item).to_contain_text("Alice Dupont")
    expect(doctor).to_have_title(f"(1) {DASHBOARD_TITLE}")
    assert polls == []
    expect(doctor.locator("#waiting-error")).to_be_hidden()
    assert doctor.evaluate("() => window.__eventSources.length") == 1  # never reconnected
    assert_no_page_errors(doctor)


@pytest.mark.slow
def test_dashboard_falls_back_to_polling_when_the_stream_is_refused(
    live_server: LiveServer, contexts: Contexts
) -> None:
    doctor, url, code = doctor_with_consultation(live_server, contexts)
    # A proxy that refuses the stream: the page retries a few times, then polls.
    doctor.route("**/api/waiting/events", lambda route: route.fulfill(status=502, body=""))
    doctor.reload()
    expect(doctor.locator("body")).to_have_attribute(
        "data-waiting-feed", "polling", timeout=deadline_ms(30)
    )
    patient_to_waiting_room(contexts, url, code)
    expect(doctor.locator("#waiting-list .waiting-item")).to_contain_text("Alice Dupont")
    expect(doctor.locator("#waiting-error")).to_be_hidden()


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
    expect(item.get_by_role("button", name="Let in Alice Dupont")).to_be_visible()
    expect(doctor).to_have_title("(1) Teleconsultation — Clinician area")
    assert_no_page_errors(doctor)


@pytest.mark.slow
def test_a_new_link_shows_out_the_old_links_patient_and_the_list_names_each_link(
    live_server: LiveServer, contexts: Contexts
) -> None:
    doctor, url, code = doctor_on_dashboard(live_server, contexts)
    old = patient_to_waiting_room(contexts, url, code)
    item = doctor.locator("#waiting-list .waiting-item")
    expect(item.locator(".waiting-link")).to_have_text("lien n°1")
    # The doctor suspects the first link leaked and issues a new one from the dashboard.
    row = doctor.locator("#list-today .consult-item", has_text="Alice Dupont")
    row.get_by_role("button", name="Nouveau lien et nouveau code pour Alice Dupont").click()
    expect(doctor.locator("#confirm-dialog")).to_contain_text("quittera la salle d'attente")
    doctor.locator("#confirm-ok").click()
    expect(doctor.locator("#invite-result")).to_be_visible()
    new_url = doctor.locator("#invite-url").input_value().removeprefix(live_server.url)
    new_code = doctor.locator("#invite-code").input_value()
    doctor.click("#invite-done")
    # Whoever came through link #1 is shown out and told to use the new link.
    expect(old.locator("#problem-title")).to_have_text("Ce lien a été remplacé")
    expect(old.locator("#problem-action")).to_contain_text("dernier lien reçu")
    expect(doctor.locator("#waiting-list")).to_have_text("Personne n'attend pour le moment.")
    snap(old, "patient-link-replaced")
    # The patient with link #2 waits; the list says which link they came through.
    patient_to_waiting_room(contexts, new_url, new_code)
    expect(item.locator(".waiting-link")).to_have_text("lien n°2")
    expect(item.locator(".waiting-link")).to_have_attribute("data-link-replaced", "false")
    doctor.get_by_role("button", name="EN", exact=True).click()
    expect(item.locator(".waiting-link")).to_have_text("link #2")
    snap(doctor, "dashboard-waiting-link-2")
    assert_no_page_errors(doctor)
    assert_no_page_errors(old)
