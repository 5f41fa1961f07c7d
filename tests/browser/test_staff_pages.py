"""Setup link, sign-in with TOTP enrolment and the doctor's dashboard, in a real Chromium."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import PASSWORD

from .conftest import Contexts, LiveServer, assert_no_page_errors, fresh_code, snap

pytestmark = pytest.mark.browser
# Today's list, or the upcoming one when the next quarter hour is past midnight.
UPCOMING = "#list-today .consult-item, #list-upcoming .consult-item"


def enrol_with_page_secret(page: Page) -> str:
    """Read the manual key shown on the enrolment step and answer with its current code."""
    expect(page.locator("#enrol h1")).to_be_visible()
    secret = page.locator("#secret").inner_text()
    assert re.fullmatch(r"([A-Z2-7]{4} )*[A-Z2-7]{1,4}", secret), secret
    qr = page.locator("#qr")
    src = qr.get_attribute("src")
    assert src is not None and src.startswith("data:image/svg+xml;base64,"), src
    page.wait_for_function("() => document.querySelector('#qr').naturalWidth > 0")
    page.fill("#enrol-code", fresh_code(secret))
    page.click("#enrol-form button[type=submit]")
    return secret.replace(" ", "")


def sign_in(page: Page, username: str, password: str = PASSWORD) -> None:
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#signin-form button[type=submit]")


def signed_in(contexts: Contexts, username: str) -> Page:
    """A new person's page, signed in as ``username`` (enrolled on the way) on the dashboard."""
    page = contexts.new_page()
    page.goto("/")
    sign_in(page, username)
    enrol_with_page_secret(page)
    expect(page.locator("#greeting")).to_be_visible()
    return page


def create_doctor(server: LiveServer, username: str = "dr.martin") -> None:
    server.call(
        server.services.accounts.create_user(username, PASSWORD, "doctor", "Dr Claire Martin")
    )


def test_setup_link_creates_admin_who_enrols_and_sees_admin_dashboard(
    live_server: LiveServer, contexts: Contexts
) -> None:
    setup = live_server.setup_path()
    page = contexts.new_page()
    page.goto(setup)
    expect(page.locator("#setup h1")).to_have_text("Créer le compte administrateur")
    page.fill("#display-name", "Accueil du cabinet")
    page.fill("#username", "admin")
    page.fill("#password", "short")
    page.fill("#password2", "short")
    page.click("#setup-form button[type=submit]")
    expect(page.locator("#setup-form .alert-error")).to_contain_text("12 caractères")
    snap(page, "setup")
    page.fill("#password", PASSWORD)
    page.fill("#password2", PASSWORD)
    page.click("#setup-form button[type=submit]")
    enrol_with_page_secret(page)
    expect(page.locator("#greeting")).to_have_text("Bonjour, Accueil du cabinet")
    expect(page.locator("#admin-link")).to_be_visible()
    expect(page.locator("#create")).to_be_hidden()
    assert_no_page_errors(page)

    # The link is single use: opened again, it says so instead of showing the form.
    other = contexts.new_page()
    other.goto(setup)
    expect(other.locator("#setup-failed")).to_be_visible()
    expect(other.locator("#setup-failed-body")).to_contain_text("déjà configuré")


def test_doctor_enrols_then_creates_a_consultation_and_gets_link_and_code(
    live_server: LiveServer, contexts: Contexts
) -> None:
    create_doctor(live_server)
    page = contexts.new_page()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto("/")
    expect(page.locator("#signin h1")).to_be_visible()
    snap(page, "signin")
    sign_in(page, "dr.martin", "wrong password!")
    expect(page.locator("#signin-form .alert-error")).to_have_text(
        "Identifiant ou mot de passe incorrect."
    )
    sign_in(page, "dr.martin")
    expect(page.locator("#enrol h1")).to_be_visible()
    snap(page, "enrolment")
    # A wrong code is refused with a message, and the person stays on the step.
    secret = page.locator("#secret").inner_text()
    wrong = f"{(int(fresh_code(secret)) + 500_000) % 1_000_000:06d}"
    page.fill("#enrol-code", wrong)
    page.click("#enrol-form button[type=submit]")
    expect(page.locator("#enrol-form .alert-error")).to_contain_text("Code incorrect")
    enrol_with_page_secret(page)
    expect(page.locator("#greeting")).to_have_text("Bonjour, Dr Claire Martin")
    expect(page.locator("#admin-link")).to_be_hidden()
    expect(page.locator("#empty-today")).to_be_visible()

    page.fill("#patient-name", "Alice Dupont")
    page.fill("#note", "Suivi tension")
    page.click("#create-form button[type=submit]")
    expect(page.locator("#invite-result")).to_be_visible()
    url = page.locator("#invite-url").input_value()
    code = page.locator("#invite-code").input_value()
    assert url.startswith(f"{live_server.url}/join/")
    assert re.fullmatch(r"\d{6}", code)
    page.click("#invite-result .copy-btn[data-copy=invite-code]")
    expect(page.locator("#invite-result .copy-feedback")).to_have_text(
        "Copié dans le presse-papiers."
    )
    assert page.evaluate("navigator.clipboard.readText()") == code
    item = page.locator(UPCOMING, has_text="Alice Dupont")
    expect(item).to_be_visible()
    start = item.get_by_role("link", name="Démarrer la consultation avec Alice Dupont")
    expect(start).to_have_attribute("href", re.compile(r"^/call/[0-9a-f]+$"))
    snap(page, "dashboard-invite")
    page.click("#invite-done")
    expect(page.locator("#invite-result")).to_be_hidden()
    assert page.locator("#invite-code").input_value() == ""
    snap(page, "dashboard")

    # A new link replaces the old one, with a new code shown once.
    item.get_by_role("button", name="Nouveau lien et nouveau code pour Alice Dupont").click()
    expect(page.locator("#confirm-title")).to_have_text("Créer un nouveau lien ?")
    page.locator("#confirm-ok").click()
    expect(page.locator("#invite-result")).to_be_visible()
    assert page.locator("#invite-url").input_value() not in ("", url)
    assert re.fullmatch(r"\d{6}", page.locator("#invite-code").input_value())
    page.click("#invite-done")

    # Cancel, after confirming in the dialog: the consultation moves to past and cancelled.
    item.get_by_role("button", name="Annuler la consultation avec Alice Dupont").click()
    page.locator("#confirm-ok").click()
    expect(page.locator(UPCOMING)).to_have_count(0)
    expect(page.locator("#list-past .consult-item", has_text="Alice Dupont")).to_contain_text(
        "Annulée"
    )
    assert_no_page_errors(page)

    # Signing out ends the session: a reload shows the sign-in form again.
    page.click("#signout")
    expect(page.locator("#signin h1")).to_be_visible()
    page.reload()
    expect(page.locator("#signin h1")).to_be_visible()


def test_language_switch_is_remembered(live_server: LiveServer, contexts: Contexts) -> None:
    page = contexts.new_page(locale="fr-FR")
    page.goto("/")
    expect(page.locator("#signin h1")).to_have_text("Connexion de l'espace soignant")
    page.get_by_role("button", name="EN", exact=True).click()
    expect(page.locator("#signin h1")).to_have_text("Clinician sign-in")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.reload()
    expect(page.locator("#signin h1")).to_have_text("Clinician sign-in")
    english = contexts.new_page(locale="en-GB")
    english.goto("/")
    expect(english.locator("#signin h1")).to_have_text("Clinician sign-in")
    assert_no_page_errors(page)


def test_start_opens_the_call_screen_with_the_local_camera(
    live_server: LiveServer, contexts: Contexts
) -> None:
    create_doctor(live_server)
    page = signed_in(contexts, "dr.martin")
    page.fill("#patient-name", "Bob Durand")
    page.click("#create-form button[type=submit]")
    page.click("#invite-done")
    page.get_by_role("link", name="Démarrer la consultation avec Bob Durand").click()
    expect(page.locator("#call-title")).to_have_text("Bob Durand")
    page.wait_for_function("() => document.querySelector('#self-video').videoWidth > 0")
    # Joined the room as doctor: nobody waits yet.
    expect(page.locator("#call-status")).to_have_attribute("data-state", "waiting")
    expect(page.locator("#call-status")).to_have_text("En attente du patient…")
    expect(page.locator("#lobby")).to_be_hidden()
    snap(page, "call-shell")
    mute = page.locator("#toggle-mic")
    mute.click()
    expect(mute).to_have_attribute("aria-pressed", "true")
    expect(mute).to_have_text("Réactiver le micro")
    assert (
        page.evaluate(
            "() => document.querySelector('#self-video').srcObject.getAudioTracks()[0].enabled"
        )
        is False
    )
    # Ending the consultation is for good: the page asks first.
    page.click("#hang-up")
    expect(page.locator("#confirm-dialog")).to_be_visible()
    expect(page.locator("#confirm-title")).to_have_text("Terminer la consultation ?")
    page.locator("#confirm-ok").click()
    expect(page.locator("#greeting")).to_be_visible()
    assert_no_page_errors(page)


def test_sign_in_works_with_the_keyboard_alone(live_server: LiveServer, contexts: Contexts) -> None:
    create_doctor(live_server)
    page = contexts.new_page()
    page.goto("/")
    expect(page.locator("#username")).to_be_focused()
    page.keyboard.type("dr.martin")
    page.keyboard.press("Tab")
    expect(page.locator("#password")).to_be_focused()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.locator("#enrol h1")).to_be_focused()
    secret = page.locator("#secret").inner_text()
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.id") == "enrol-code":
            break
    expect(page.locator("#enrol-code")).to_be_focused()
    page.keyboard.type(fresh_code(secret))
    page.keyboard.press("Enter")
    expect(page.locator("#greeting")).to_be_visible()
    # The cancel dialog closes with Escape and leaves the consultation alone.
    page.locator("#patient-name").focus()
    page.keyboard.type("Chloé Bernard")
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")  # nothing open yet: harmless
    page.click("#invite-done")
    page.get_by_role("button", name="Annuler la consultation avec Chloé Bernard").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#confirm-dialog")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#confirm-dialog")).to_be_hidden()
    kept = page.locator(UPCOMING, has_text="Chloé Bernard")
    expect(kept).to_be_visible()
    expect(kept).not_to_contain_text("Annulée")
    assert_no_page_errors(page)
