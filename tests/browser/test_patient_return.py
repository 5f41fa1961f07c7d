"""Never lose your place: a patient who proved the access code comes back to the waiting room
with one tap after a reload or after leaving (same browser, no code), leaving asks first and
ends on one clear state, the doctor's call page says the patient left and whether their link
lets them back, and a re-issued link ends the way back."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from .conftest import SCREENSHOTS, Contexts, LiveServer, assert_no_page_errors, settled, snap
from .test_call import doctor_with_consultation, open_the_call, patient_to_waiting_room
from .test_join_page import enter_code, make_invite

pytestmark = pytest.mark.browser

# The phone the issue was tried on (the common snap() also saves its own phone width).
PHONE_390: ViewportSize = {"width": 390, "height": 844}


def snap_390(page: Page, name: str) -> None:
    """snap(), plus the page at 390×844 as the issue looked at it."""
    snap(page, name)
    size = page.viewport_size
    page.set_viewport_size(PHONE_390)
    settled(page)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-phone390.png"), full_page=True)
    if size:
        page.set_viewport_size(size)


def nothing_secret_kept(page: Page, code: str) -> None:
    """The page keeps no code and no session in reach of scripts or the address bar."""
    stored = page.evaluate("() => JSON.stringify({...localStorage, ...sessionStorage})")
    assert code not in stored, stored
    assert "tc_patient" not in page.evaluate("() => document.cookie")  # HttpOnly
    assert code not in page.url


def into_waiting_room(page: Page, code: str) -> None:
    """Code, device check (camera seen), ready: the server says the patient waits."""
    enter_code(page, code)
    page.wait_for_function("() => document.querySelector('#preview').videoWidth > 0")
    page.click("#ready")
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "waiting")


def leave_and_confirm(patient: Page, title: str, stay: str) -> None:
    """Leave asks first: the way out of the question keeps the place; then leave for real."""
    patient.click("#leave")
    dialog = patient.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#confirm-title")).to_have_text(title)
    dialog.get_by_role("button", name=stay).click()
    expect(dialog).to_be_hidden()
    expect(patient.locator("#connection-state")).to_have_attribute("data-state", "waiting")
    patient.click("#leave")
    patient.click("#confirm-ok")


def test_reload_then_leave_then_return_without_the_code_and_the_doctor_sees_it(
    live_server: LiveServer, contexts: Contexts
) -> None:
    doctor, url, code = doctor_with_consultation(live_server, contexts)
    open_the_call(doctor)
    patient = patient_to_waiting_room(contexts, url, code)
    expect(doctor.locator("#lobby .waiting-item")).to_contain_text("Alice Dupont")

    # A reload: no code, one tap back.
    patient.reload()
    expect(patient.locator("#return-step h1")).to_have_text("Bon retour")
    expect(patient.locator("#return-doctor")).to_have_text("Dr Claire Martin")
    expect(patient.locator("#code-step")).to_be_hidden()
    nothing_secret_kept(patient, code)
    snap_390(patient, "patient-return")
    patient.click("#return-go")
    expect(patient.locator("#connection-state")).to_have_attribute("data-state", "waiting")
    patient.wait_for_function("() => document.querySelector('#waiting-self').videoWidth > 0")
    expect(patient.locator("#access-code")).to_have_value("")
    expect(doctor.locator("#lobby .waiting-item")).to_contain_text("Alice Dupont")

    # Leave asks first; then one clear state and one action.
    leave_and_confirm(patient, "Quitter la salle d'attente ?", "Rester")
    expect(patient.locator("#left-step h1")).to_have_text("Vous avez quitté la salle d'attente")
    expect(patient.locator("#waiting-step")).to_be_hidden()
    expect(patient.locator("#left-step button")).to_have_count(1)
    assert patient.evaluate("() => document.querySelector('#waiting-self').srcObject") is None
    snap_390(patient, "patient-left")

    # The doctor is told, instead of a bare "waiting for the patient".
    status = doctor.locator("#call-status")
    expect(status).to_have_attribute("data-left", "left")
    expect(status).to_have_text(
        "Alice Dupont a quitté la salle d'attente et peut revenir avec son lien."
    )
    expect(doctor.locator("#lobby")).to_be_hidden()
    snap(doctor, "doctor-patient-left")

    # One tap back, still without the code; the doctor sees the patient wait again.
    patient.click("#rejoin")
    expect(patient.locator("#connection-state")).to_have_attribute("data-state", "waiting")
    expect(doctor.locator("#lobby .waiting-item")).to_contain_text("Alice Dupont")
    expect(status).to_have_attribute("data-left", "")
    assert_no_page_errors(patient)
    assert_no_page_errors(doctor)


def test_return_prompt_and_after_leave_state_in_english(
    live_server: LiveServer, contexts: Contexts
) -> None:
    invite = make_invite(live_server)
    page = contexts.new_page(locale="en-US")
    page.goto(invite.path)
    into_waiting_room(page, invite.code)

    page.reload()
    expect(page.locator("#return-step h1")).to_have_text("Welcome back")
    expect(page.locator("#return-go")).to_have_text("Return to the waiting room")
    snap_390(page, "patient-return-en")
    # The device check stays at hand, with the devices last used.
    page.click("#return-check")
    expect(page.locator("#devices-step h1")).to_be_visible()
    page.wait_for_function("() => document.querySelector('#preview').videoWidth > 0")
    page.click("#ready")
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "waiting")

    leave_and_confirm(page, "Leave the waiting room?", "Stay")
    expect(page.locator("#left-step h1")).to_have_text("You left the waiting room")
    expect(page.locator("#rejoin")).to_have_text("Return to the waiting room")
    snap_390(page, "patient-left-en")
    # The language switch rewords the state already on screen.
    page.get_by_role("button", name="FR", exact=True).click()
    expect(page.locator("#left-step h1")).to_have_text("Vous avez quitté la salle d'attente")
    assert_no_page_errors(page)


def test_a_reissued_link_ends_the_way_back(live_server: LiveServer, contexts: Contexts) -> None:
    invite = make_invite(live_server)
    page = contexts.new_page()
    page.goto(invite.path)
    into_waiting_room(page, invite.code)
    leave_and_confirm(page, "Quitter la salle d'attente ?", "Rester")
    expect(page.locator("#left-step")).to_be_visible()
    services = live_server.services

    async def reissue() -> str:
        consultation = await services.store.get_consultation(invite.consultation_id)
        assert consultation is not None
        return str((await services.consultations.reissue_invite(consultation)).invite_token)

    new_token = live_server.call(reissue())
    # The way back is refused: the page says the link was replaced.
    page.click("#rejoin")
    expect(page.locator("#problem-title")).to_have_text("Ce lien a été remplacé")
    # The new link, in the same browser, asks for its code: the old proof does not carry over.
    page.goto(f"/join/{new_token}")
    expect(page.locator("#code-step h1")).to_be_visible()
    expect(page.locator("#return-step")).to_be_hidden()
    assert_no_page_errors(page)
