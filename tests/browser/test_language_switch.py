"""Switching language says again, in the new language, every text already on screen: not only
the page's fixed texts but those the scripts wrote (the dashboard's invite panel, the call
page's chat placeholder, the patient's device check, waiting room and call; the admin page's
confirmations in test_admin_roles.py). foreign_text.py finds any visible text, placeholder or
accessible name left in the other language, from the dictionary the page uses."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from .conftest import SCREENSHOTS, Contexts, LiveServer, assert_no_page_errors, settled
from .foreign_text import foreign_texts, switch_and_check
from .test_call import TRACK_PEERS, doctor_with_consultation

pytestmark = pytest.mark.browser

PHONE_390: ViewportSize = {"width": 390, "height": 844}


def phone_shot(page: Page, name: str) -> None:
    """The page as a patient's upright phone shows it (390×844), for a person to look at."""
    size = page.viewport_size
    page.set_viewport_size(PHONE_390)
    settled(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-phone390.png"), full_page=True)
    if size:
        page.set_viewport_size(size)


def switch_and_shoot(page: Page, lang: str, state: str) -> None:
    switch_and_check(page, lang)
    phone_shot(page, f"patient-{state}-{lang}")


def test_dashboard_call_and_patient_pages_switch_every_text(
    live_server: LiveServer, contexts: Contexts
) -> None:
    doctor, path, code = doctor_with_consultation(live_server, contexts)
    # The invite panel of a new consultation, open.
    doctor.fill("#patient-name", "Bruno Petit")
    doctor.click("#create-form button[type=submit]")
    expect(doctor.locator("#invite-result")).to_be_visible()
    expect(doctor.locator("#invite-for")).to_contain_text("Bruno Petit")
    # The check sees the language a page is in: all of this page is "foreign" to English.
    assert any(found.startswith("invite.for: ") for found in foreign_texts(doctor, "en")), (
        foreign_texts(doctor, "en")
    )
    switch_and_check(doctor, "en")
    expect(doctor.locator("#invite-for")).to_contain_text("Bruno Petit")
    switch_and_check(doctor, "fr")

    # The patient: the device check, the waiting room, then the call.
    patient = contexts.new_page(locale="en-GB")
    patient.add_init_script(TRACK_PEERS)
    patient.goto(path)
    patient.fill("#access-code", code)
    patient.click("#code-form button[type=submit]")
    expect(patient.locator("#devices-step h1")).to_be_visible()
    patient.wait_for_function("() => document.querySelector('#preview').videoWidth > 0")
    patient.click("#speaker-test")
    patient.click("#heard-yes")
    switch_and_shoot(patient, "fr", "devices")
    switch_and_shoot(patient, "en", "devices")
    patient.click("#ready")
    expect(patient.locator("#waiting-step h1")).to_be_visible()
    switch_and_shoot(patient, "fr", "waiting")
    switch_and_shoot(patient, "en", "waiting")
    switch_and_check(patient, "fr")

    # The doctor's call page, the patient waiting: the chat is not open yet (its placeholder).
    doctor.click("#invite-done")
    doctor.get_by_role("link", name="Démarrer la consultation avec Alice Dupont").click()
    expect(doctor.locator("#lobby")).to_contain_text("Alice Dupont")
    switch_and_check(doctor, "en")
    doctor.locator("#lobby").get_by_role("button", name="Let in Alice Dupont").click()
    expect(patient.locator("#call-step")).to_be_visible()
    for page in (doctor, patient):
        page.locator("#chat-toggle").click()
    switch_and_check(doctor, "fr")
    switch_and_shoot(patient, "en", "call-chat")
    switch_and_shoot(patient, "fr", "call-chat")
    assert_no_page_errors(doctor)
    assert_no_page_errors(patient)
