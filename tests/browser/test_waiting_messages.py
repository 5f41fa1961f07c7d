"""The doctor writes to the waiting room from the dashboard: a ready-made message and a line of
free text reach the patient's waiting room, listed with their time, announced to screen
readers (a polite status region) and with a soft chime; a ready-made message shows in the
patient's own language (English here) whatever the doctor's (French); the dashboard says the
message was delivered, or why not."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from .conftest import Contexts, LiveServer, assert_no_page_errors, snap
from .test_call import doctor_with_consultation, enter_with_code

pytestmark = pytest.mark.browser

FREE_TEXT = "Le cabinet a pris un peu de retard, merci de rester connectée."


def patient_waiting(contexts: Contexts, url: str, code: str, locale: str) -> Page:
    patient = contexts.new_page(locale=locale)
    patient.goto(url)
    enter_with_code(patient, code)
    expect(patient.locator("#connection-state")).to_have_attribute("data-state", "waiting")
    return patient


def send_from_dashboard(doctor: Page, text: str | None = None, preset: str = "") -> None:
    """On the dashboard's waiting list, "Message" on Alice Dupont: a preset (the first one
    offered when none is named) or, with ``text``, a line of free text; then "Send"."""
    item = doctor.locator("#waiting-list .waiting-item", has_text="Alice Dupont")
    item.get_by_role("button", name="Message à Alice Dupont en salle d'attente").click()
    dialog = doctor.get_by_role("dialog", name="Message à Alice Dupont")
    expect(dialog).to_be_visible()
    if text is not None:
        dialog.get_by_label("Votre message (une ligne)").fill(text)
        expect(dialog.get_by_role("radio", name="Écrire un court message")).to_be_checked()
    elif preset:
        dialog.get_by_role("radio", name=preset).check()
    dialog.get_by_role("button", name="Envoyer").click()
    expect(dialog).to_be_hidden()
    expect(doctor.locator("#waiting-message-status")).to_contain_text(
        "Message remis à Alice Dupont à"
    )


@pytest.mark.slow
def test_the_doctor_writes_a_preset_and_a_free_text_the_patient_reads_both_in_french(
    live_server: LiveServer, contexts: Contexts
) -> None:
    doctor, url, code = doctor_with_consultation(live_server, contexts)
    patient = patient_waiting(contexts, url, code, "fr-FR")
    expect(patient.locator("#staff-messages")).to_be_hidden()
    item = doctor.locator("#waiting-list .waiting-item", has_text="Alice Dupont")
    expect(item).to_be_visible()

    # The dialog offers the ready-made messages in the doctor's language, the first chosen.
    item.get_by_role("button", name="Message à Alice Dupont en salle d'attente").click()
    dialog = doctor.get_by_role("dialog", name="Message à Alice Dupont")
    expect(
        dialog.get_by_role("radio", name="Je suis à vous dans 10 minutes environ.")
    ).to_be_checked()
    snap(doctor, "waiting-message-dialog")
    dialog.get_by_role("button", name="Retour").click()
    expect(dialog).to_be_hidden()

    send_from_dashboard(doctor)
    messages = patient.locator("#staff-message-list .staff-message")
    expect(messages).to_have_count(1)
    expect(messages.first).to_contain_text("Votre médecin")
    expect(messages.first).to_contain_text("Je suis à vous dans 10 minutes environ.")
    expect(patient.locator("#staff-message-live")).to_have_text(
        "Message de votre médecin : Je suis à vous dans 10 minutes environ."
    )
    expect(patient.locator("#staff-message-live")).to_have_attribute("role", "status")
    expect(patient.locator("body")).to_have_attribute("data-staff-chime", "1")

    send_from_dashboard(doctor, text=FREE_TEXT)
    expect(messages).to_have_count(2)
    # The newest first, as typed (plain text), with the time it was sent.
    expect(messages.first.locator(".staff-message-text")).to_have_text(FREE_TEXT)
    expect(messages.first.locator("time")).to_contain_text("à ")
    expect(messages.nth(1)).to_contain_text("Je suis à vous dans 10 minutes environ.")
    expect(patient.locator("#staff-message-live")).to_contain_text(FREE_TEXT)
    expect(patient.locator("body")).to_have_attribute("data-staff-chime", "2")
    snap(patient, "waiting-room-message-fr")
    snap(doctor, "dashboard-waiting-message-sent")

    # Once the patient left, the row and its "Message" go.
    patient.get_by_role("button", name="Quitter la salle d'attente").click()
    patient.click("#confirm-ok")  # leaving asks first
    expect(item).to_have_count(0)
    assert_no_page_errors(doctor)
    assert_no_page_errors(patient)


def test_a_preset_reaches_an_english_patient_in_english(
    live_server: LiveServer, contexts: Contexts
) -> None:
    doctor, url, code = doctor_with_consultation(live_server, contexts)
    patient = patient_waiting(contexts, url, code, "en-US")
    send_from_dashboard(doctor, preset="Merci de vérifier votre micro.")
    message = patient.locator("#staff-message-list .staff-message")
    expect(message).to_have_count(1)
    expect(message).to_contain_text("Your doctor")
    expect(message).to_contain_text("Please check your microphone.")
    expect(patient.locator("#staff-messages h2")).to_have_text("Messages from the practice")
    expect(patient.locator("#staff-message-live")).to_have_text(
        "Message from your doctor: Please check your microphone."
    )
    # The page's own language switch words it again.
    patient.locator("[data-lang=fr]").first.click()
    expect(message).to_contain_text("Merci de vérifier votre micro.")
    patient.locator("[data-lang=en]").first.click()
    expect(message).to_contain_text("Please check your microphone.")
    snap(patient, "waiting-room-message-en")
    assert_no_page_errors(doctor)
    assert_no_page_errors(patient)
