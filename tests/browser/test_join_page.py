"""The patient's page: link check, access code, device check and the waiting screen."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import PASSWORD

from .conftest import Contexts, LiveServer, assert_no_page_errors, snap

pytestmark = pytest.mark.browser


@dataclass
class Invite:
    path: str
    code: str
    consultation_id: str


def make_invite(server: LiveServer, *, starts_in_minutes: float = 5, duration: int = 30) -> Invite:
    """A consultation of Dr Claire Martin made through the real services (not the HTTP API,
    which refuses one that is already over)."""
    services = server.services

    async def create() -> Invite:
        doctor = await services.store.get_user_by_username("dr.martin")
        if doctor is None:
            doctor = await services.accounts.create_user(
                "dr.martin", PASSWORD, "doctor", "Dr Claire Martin"
            )
        start = time.time() + starts_in_minutes * 60
        issued = await services.consultations.create(doctor, "Alice Dupont", start, duration, "")
        return Invite(f"/join/{issued.invite_token}", issued.access_code, issued.consultation.id)

    return server.call(create())


def wrong_code(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def enter_code(page: Page, code: str) -> None:
    page.fill("#access-code", code)
    page.click("#code-form button[type=submit]")


def test_patient_enters_code_checks_devices_and_waits(
    live_server: LiveServer, contexts: Contexts
) -> None:
    invite = make_invite(live_server)
    page = contexts.new_page(locale="fr-FR")
    page.goto(invite.path)
    expect(page.locator("#doctor-name")).to_have_text("Dr Claire Martin")
    expect(page.locator("#progress li[aria-current=step]")).to_have_text("Code d'accès")

    enter_code(page, wrong_code(invite.code))
    expect(page.locator("#code-form .alert-error")).to_have_text(
        "Code d'accès incorrect. Il vous reste 4 essais."
    )
    snap(page, "patient-code")
    enter_code(page, invite.code)

    expect(page.locator("#devices-step h1")).to_be_visible()
    page.wait_for_function("() => document.querySelector('#preview').videoWidth > 0")
    expect(page.locator("#camera-status")).to_have_text("✓ Fonctionne")
    # Chromium's fake microphone beeps: the level meter must notice it.
    expect(page.locator("#mic-status")).to_have_text("✓ Nous vous entendons")
    assert page.locator("#camera-select option").count() >= 1
    assert page.locator("#mic-select option").count() >= 1
    page.click("#speaker-test")
    expect(page.locator("#speaker-question")).to_be_visible()
    expect(page.locator("#speaker-test")).to_have_attribute("data-played", "true")
    page.click("#heard-yes")
    expect(page.locator("#speaker-status")).to_have_text("✓ Fonctionne")
    expect(page.locator(".privacy")).to_contain_text("DTLS-SRTP")
    snap(page, "patient-devices")

    page.click("#ready")
    expect(page.locator("#waiting-step h1")).to_have_text("Vous êtes en salle d'attente")
    expect(page.locator("#waiting-doctor")).to_contain_text("Dr Claire Martin")
    # The waiting room is live: the server confirmed the patient waits.
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "waiting")
    expect(page.locator("#connection-state")).to_have_text("Votre médecin sait que vous êtes là.")
    page.wait_for_function("() => document.querySelector('#waiting-self').videoWidth > 0")
    snap(page, "patient-waiting")

    # Leaving (once confirmed) stops the camera; coming back needs no code (the patient
    # session the code opened still holds: test_patient_return.py).
    page.click("#leave")
    page.click("#confirm-ok")
    expect(page.locator("#left-step h1")).to_have_text("Vous avez quitté la salle d'attente")
    # The camera is released as the leave completes (asynchronously): wait for it.
    page.wait_for_function("() => document.querySelector('#waiting-self').srcObject === null")
    page.click("#rejoin")
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "waiting")
    expect(page.locator("#code-step")).to_be_hidden()
    assert_no_page_errors(page)


def test_patient_page_in_english(live_server: LiveServer, contexts: Contexts) -> None:
    invite = make_invite(live_server)
    page = contexts.new_page(locale="en-US")
    page.goto(invite.path)
    expect(page.locator("#code-title")).to_have_text("Welcome")
    enter_code(page, wrong_code(invite.code))
    expect(page.locator("#code-form .alert-error")).to_have_text(
        "Wrong access code. 4 attempts left."
    )
    snap(page, "patient-code-en")
    page.get_by_role("button", name="FR", exact=True).click()
    expect(page.locator("#code-title")).to_have_text("Bienvenue")
    assert_no_page_errors(page)


def test_expired_link_is_explained(live_server: LiveServer, contexts: Contexts) -> None:
    invite = make_invite(live_server, starts_in_minutes=-180)
    page = contexts.new_page()
    page.goto(invite.path)
    expect(page.locator("#problem-title")).to_have_text("Ce lien a expiré")
    expect(page.locator("#problem-action")).to_contain_text("nouveau lien")
    expect(page.locator("#code-step")).to_be_hidden()
    snap(page, "patient-expired")


def test_cancelled_consultation_is_explained(live_server: LiveServer, contexts: Contexts) -> None:
    invite = make_invite(live_server)
    services = live_server.services

    async def cancel() -> None:
        consultation = await services.store.get_consultation(invite.consultation_id)
        await services.consultations.cancel(consultation)

    live_server.call(cancel())
    page = contexts.new_page()
    page.goto(invite.path)
    expect(page.locator("#problem-title")).to_have_text("Ce rendez-vous a été annulé")


def test_too_many_wrong_codes_lock_the_link(live_server: LiveServer, contexts: Contexts) -> None:
    invite = make_invite(live_server)
    page = contexts.new_page()
    page.goto(invite.path)
    for left in (4, 3, 2, 1):
        enter_code(page, wrong_code(invite.code))
        expect(page.locator("#code-form .alert-error")).to_contain_text(
            "1 essai avant le blocage" if left == 1 else f"{left} essais"
        )
    enter_code(page, wrong_code(invite.code))
    expect(page.locator("#problem-title")).to_have_text("Ce lien est bloqué")
    # Even the right code no longer opens it.
    page.reload()
    expect(page.locator("#problem-title")).to_have_text("Ce lien est bloqué")
    snap(page, "patient-locked")


def test_garbled_link_is_explained(live_server: LiveServer, contexts: Contexts) -> None:
    page = contexts.new_page(locale="en-US")
    page.goto("/join/not-a-real-invite")
    expect(page.locator("#problem-title")).to_have_text("This link is not valid")
    assert_no_page_errors(page)


def test_blocked_camera_and_microphone_are_explained(
    live_server: LiveServer, contexts: Contexts
) -> None:
    invite = make_invite(live_server)
    page = contexts.new_page()
    # --use-fake-ui-for-media-stream accepts every request, so the patient's "Block" is
    # played by answering getUserMedia the way Chromium does after a refusal.
    page.add_init_script(
        """
        const real = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
        window.blockMedia = true;
        navigator.mediaDevices.getUserMedia = (constraints) => window.blockMedia
          ? Promise.reject(new DOMException("Permission denied", "NotAllowedError"))
          : real(constraints);
        """
    )
    page.goto(invite.path)
    enter_code(page, invite.code)
    expect(page.locator("#devices-error")).to_be_visible()
    expect(page.locator("#devices-error-text")).to_contain_text("n'a pas l'autorisation")
    expect(page.locator("#devices-help-steps li").first).to_contain_text("barre d'adresse")
    expect(page.locator("#ready-warning")).to_contain_text("Sans caméra ni micro")
    expect(page.locator("#camera-status")).to_have_text("Indisponible")
    snap(page, "patient-devices-blocked")
    # Once allowed, "try again" starts the preview.
    page.evaluate("() => { window.blockMedia = false; }")
    page.click("#devices-retry")
    page.wait_for_function("() => document.querySelector('#preview').videoWidth > 0")
    expect(page.locator("#devices-error")).to_be_hidden()
    expect(page.locator("#ready-warning")).to_be_hidden()
    assert_no_page_errors(page)
