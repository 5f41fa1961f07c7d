"""The dashboard's idle lock, with a one-minute idle setting: a minute before, a warning; at
the idle limit the page locks in place (the patients' names leave the page), a patient who
arrives meanwhile is still announced (title badge, the lock screen's line, a knock, a
notification) without a name; the password and a code unlock it and the dashboard comes back
as it was, now naming the patient. A session that ends says so loudly, with its own sound."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from config import SecuritySettings
from tests.conftest import PASSWORD, deadline_ms

from .conftest import Contexts, LiveServer, assert_no_page_errors, snap, start_server
from .test_account import StepCodes, enrolled_doctor
from .test_call import COUNT_TONES, book_on_dashboard, patient_to_waiting_room
from .test_dashboard_waiting import RECORD_NOTIFICATIONS

pytestmark = [pytest.mark.browser, pytest.mark.slow]
# One minute: the shortest idle setting, so the warning shows at once and the lock follows.
IDLE = SecuritySettings(session_idle_minutes=1)
TITLES = {"fr": "Téléconsultation — Espace soignant", "en": "Teleconsultation — Clinician area"}
LOCALES = {"fr": "fr-FR", "en": "en-GB"}


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    server = start_server(tmp_path, security=IDLE)
    yield server
    server.stop()


def signed_in_dashboard(contexts: Contexts, codes: StepCodes, lang: str) -> Page:
    page = contexts.new_page(locale=LOCALES[lang])
    page.add_init_script(COUNT_TONES + RECORD_NOTIFICATIONS)
    page.goto("/")
    page.fill("#username", "dr.martin")
    page.fill("#password", PASSWORD)
    page.click("#signin-form button[type=submit]")
    page.fill("#totp-code", codes.next())
    page.click("#totp-form button[type=submit]")
    expect(page.locator("#greeting")).to_be_visible()
    return page


def expect_locked(page: Page) -> None:
    # The idle minute runs from the sign-in: the page locks within its check's half second.
    expect(page.locator("body")).to_have_attribute(
        "data-session-lock", "locked", timeout=deadline_ms(80_000)
    )
    expect(page.locator("#lock-title")).to_be_visible()
    expect(page.locator("#dashboard")).to_have_count(0)  # off the page, not merely hidden


def test_dashboard_locks_announces_an_arrival_without_a_name_and_unlocks(
    live_server: LiveServer, contexts: Contexts
) -> None:
    codes = enrolled_doctor(live_server)
    doctor = signed_in_dashboard(contexts, codes, "fr")
    doctor.context.grant_permissions(["notifications"], origin=live_server.url)
    url, code = book_on_dashboard(doctor, live_server)
    # The same doctor's other tab, in English (its own session, locked at the same time).
    english = signed_in_dashboard(contexts, codes, "en")
    # Page state to keep through the lock: a half-typed booking.
    doctor.fill("#patient-name", "Bernard Half-typed")

    # One minute of idle setting: the warning shows at once, with its way out.
    warning = doctor.locator("#lock-warning")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("se verrouille dans 1 minute")
    expect(warning.get_by_role("button", name="Garder la session ouverte")).to_be_visible()
    expect(english.locator("#lock-warning")).to_contain_text("locks in 1 minute")

    expect_locked(doctor)
    expect(doctor.locator("#lock-waiting")).to_have_text("Personne n'attend en salle d'attente.")
    expect(doctor.locator("#lock-warning")).to_be_hidden()
    tones_before = doctor.evaluate("() => window.__tones")

    patient = patient_to_waiting_room(contexts, url, code)
    expect(patient.locator("#connection-state")).to_have_attribute("data-state", "waiting")
    line = doctor.locator("#lock-waiting")
    expect(line).to_have_text("1 patient attend en salle d'attente.")
    expect(doctor).to_have_title(f"(1) {TITLES['fr']}")
    doctor.wait_for_function("() => window.__notifications.length === 1")
    notification = doctor.evaluate("() => window.__notifications[0]")
    assert notification["title"] == "Un patient est en salle d'attente"
    assert "Alice" not in notification["body"]
    assert doctor.evaluate("() => window.__tones") == tones_before + 2  # the knock
    # Nobody's name or note anywhere in the page, nor the half-typed one.
    html = doctor.evaluate("() => document.documentElement.outerHTML")
    assert "Alice" not in html and "Bernard" not in html
    snap(doctor, "dashboard-locked-fr")

    expect_locked(english)
    expect(english.locator("#lock-title")).to_have_text("Session locked")
    expect(english.locator("#lock-waiting")).to_have_text("1 patient is in the waiting room.")
    expect(english).to_have_title(f"(1) {TITLES['en']}")
    assert "Alice" not in english.evaluate("() => document.documentElement.outerHTML")
    snap(english, "dashboard-locked-en")

    # A wrong code is refused, and the page stays locked.
    doctor.fill("#unlock-password", PASSWORD)
    doctor.fill("#unlock-code", "000000")
    doctor.click("#unlock-form button[type=submit]")
    expect(doctor.locator("#unlock-form .alert-error")).to_contain_text("Code incorrect")
    expect(doctor.locator("#dashboard")).to_have_count(0)
    snap(doctor, "dashboard-locked-wrong-code-fr")

    doctor.fill("#unlock-password", PASSWORD)
    doctor.fill("#unlock-code", codes.next())
    doctor.click("#unlock-form button[type=submit]")
    expect(doctor.locator("#session-lock")).to_have_count(0)
    # Unlocked: with a one-minute idle setting, already within the warning's minute again.
    expect(doctor.locator("body")).to_have_attribute("data-session-lock", re.compile("open|warned"))
    # Back as it was, and now the patient is named.
    expect(doctor.locator("#patient-name")).to_have_value("Bernard Half-typed")
    expect(doctor.locator("#waiting-list .waiting-item")).to_contain_text("Alice Dupont")
    expect(doctor).to_have_title(f"(1) {TITLES['fr']}")
    row = doctor.locator("#list-today .consult-item", has_text="Alice Dupont")
    expect(row).to_have_attribute("data-waiting", "true")
    # Still locked in the other tab, whose session is its own.
    expect(english.locator("#dashboard")).to_have_count(0)
    assert_no_page_errors(doctor)
    assert_no_page_errors(english)
    assert_no_page_errors(patient)


def test_a_session_that_ends_is_said_loudly_with_its_own_sound(
    live_server: LiveServer, contexts: Contexts
) -> None:
    codes = enrolled_doctor(live_server)
    doctor = signed_in_dashboard(contexts, codes, "fr")
    tones_before = doctor.evaluate("() => window.__tones")
    store = live_server.services.store
    user = live_server.call(store.get_user_by_username("dr.martin"))
    # Signed out elsewhere (every session of the account ended, as a disabled account's).
    live_server.call(store.delete_user_sessions(user.id))
    # The waiting stream re-checks the session at each heartbeat (15 s).
    expect(doctor.locator("body")).to_have_attribute(
        "data-session-lock", "ended", timeout=deadline_ms(30_000)
    )
    ended = doctor.get_by_role("alertdialog")
    expect(ended).to_contain_text("Votre session est terminée")
    expect(ended).to_contain_text("ne vous sont plus annoncés")
    expect(ended.get_by_role("link", name="Se reconnecter")).to_be_focused()
    expect(doctor).to_have_title("⚠ Votre session est terminée — Téléconsultation")
    assert doctor.evaluate("() => window.__tones") == tones_before + 3  # not the knock's 2
    expect(doctor.locator("#dashboard")).to_have_count(0)
    snap(doctor, "dashboard-session-ended-fr")
    ended.get_by_role("link", name="Se reconnecter").click()
    expect(doctor.locator("#signin h1")).to_be_visible()
    assert_no_page_errors(doctor)
