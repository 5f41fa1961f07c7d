"""Nobody knows anyone else's password, in Chromium: an admin creates an account and hands over
its one-time link; the newcomer chooses a password and enrols an authenticator; locked out by
failed attempts, they are unlocked by the admin, who later issues a reset link they use."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import PASSWORD

from .conftest import Contexts, LiveServer, assert_no_page_errors, fresh_code, snap
from .test_staff_pages import sign_in, signed_in

pytestmark = pytest.mark.browser
OWN_PASSWORD = "ma phrase de passe à moi"
NEW_PASSWORD = "une toute nouvelle phrase"
ROW = "#users-body tr[data-username='dr.martin']"


def use_link(page: Page, link: str, password: str, shot: str | None = None) -> None:
    """Open ``link``, check the page offers the QR code, the key and the `otpauth://` link,
    then choose ``password`` and confirm with the authenticator's current code."""
    page.goto(link)
    expect(page.locator("#link-enrol h1")).to_be_visible()
    page.wait_for_function("() => document.querySelector('#qr').naturalWidth > 0")
    href = page.locator("#otpauth-link").get_attribute("href")
    assert href is not None and href.startswith("otpauth://totp/"), href
    secret = page.locator("#secret").inner_text()
    assert re.fullmatch(r"([A-Z2-7]{4} )*[A-Z2-7]{1,4}", secret), secret
    if shot:
        snap(page, shot)
    page.fill("#password", password)
    page.fill("#password2", password)
    page.fill("#link-code", fresh_code(secret))
    page.click("#link-form button[type=submit]")
    expect(page.locator("#greeting")).to_have_text(re.compile("Dr Claire Martin"))
    assert "#" not in page.url  # the used link left the address bar


def test_enrol_lock_unlock_and_reset_without_anyone_knowing_another_password(
    live_server: LiveServer, contexts: Contexts
) -> None:
    live_server.call(
        live_server.services.accounts.create_user("admin", PASSWORD, "admin", "Accueil")
    )
    admin = signed_in(contexts, "admin")
    admin.goto("/admin")
    admin.fill("#new-display-name", "Dr Claire Martin")
    admin.fill("#new-username", "dr.martin")
    admin.select_option("#new-role", "doctor")
    expect(admin.locator("#new-password")).to_have_count(0)  # the admin types no password
    admin.click("#user-form button[type=submit]")
    expect(admin.locator("#link-box")).to_be_visible()
    link = admin.locator("#issued-link").input_value()
    assert re.fullmatch(rf"{re.escape(live_server.url)}/enrol#[0-9a-f]{{32}}\.\S+", link), link
    row = admin.locator(ROW)
    expect(row).to_contain_text("Activation en attente")
    expect(row).to_contain_text("Aucune connexion")
    snap(admin, "accounts-admin-link-fr")

    # The newcomer opens the link on their own device (a phone-sized page in English here,
    # the French one on a computer is shot below with the reset).
    newcomer = contexts.new_page(locale="en-GB")
    newcomer.set_viewport_size({"width": 390, "height": 844})
    newcomer.goto(link)
    expect(newcomer.locator("#link-enrol h1")).to_have_text("Activate my account")
    expect(newcomer.locator("#otpauth-link")).to_have_text("Open in authenticator app")
    newcomer.set_viewport_size({"width": 1280, "height": 900})
    use_link(newcomer, link, OWN_PASSWORD, "accounts-enrol-en")
    assert_no_page_errors(newcomer)
    # The link worked once: opened again, it says so.
    again = contexts.new_page()
    again.goto(link)
    expect(again.locator("#link-failed")).to_contain_text("déjà servi")

    # Failed sign-ins lock the account; the admin sees until when, and unlocks it.
    person = contexts.new_page()
    person.goto("/")
    for _ in range(5):
        sign_in(person, "dr.martin", "not my password at all")
        expect(person.locator("#signin-form .alert-error")).to_be_visible()
    admin.reload()
    expect(row.locator(".badge[data-status=locked]")).to_have_text("Verrouillé")
    expect(row).to_contain_text("jusqu'à")
    expect(row).not_to_contain_text("Actif")
    expect(row).to_contain_text("Dernière connexion")
    snap(admin, "accounts-admin-locked-fr")
    admin.locator('.lang-switch button[data-lang="en"]').click()
    expect(row.locator(".badge[data-status=locked]")).to_have_text("Locked")
    expect(row).to_contain_text("until")
    snap(admin, "accounts-admin-locked-en")
    # On a phone the table becomes labelled lines: no space before the colon in English.
    admin.set_viewport_size({"width": 390, "height": 844})
    label = row.locator("td[data-label]").first
    before = "(cell) => getComputedStyle(cell, '::before').content"
    assert label.evaluate(before).endswith(': "') and not label.evaluate(before).endswith(' : "')
    admin.set_viewport_size({"width": 1280, "height": 900})
    admin.locator('.lang-switch button[data-lang="fr"]').click()
    row.get_by_role("button", name="Débloquer le compte de Dr Claire Martin").click()
    expect(row).to_contain_text("Actif")
    expect(admin.locator("#users-status")).to_contain_text("débloqué")
    sign_in(person, "dr.martin", OWN_PASSWORD)
    expect(person.locator("#totp h1")).to_be_visible()  # the password step passes again

    # A reset link: the person is signed out at once and chooses new credentials.
    reset_button = "Réinitialiser l'accès de Dr Claire Martin : créer un lien"
    row.get_by_role("button", name=reset_button).click()
    admin.locator("#confirm-ok").click()
    expect(row).to_contain_text("Réinitialisation en attente")
    reset_link = admin.locator("#issued-link").input_value()
    assert reset_link != link
    newcomer.reload()
    expect(newcomer.locator("#signin h1")).to_be_visible()
    reset = contexts.new_page()
    use_link(reset, reset_link, NEW_PASSWORD, "accounts-reset-fr")
    expect(reset.locator("#greeting")).to_be_visible()
    assert_no_page_errors(reset)
    reset_en = contexts.new_page(locale="en-GB")
    reset_en.goto(reset_link)
    expect(reset_en.locator("#link-failed")).to_contain_text("already used")
    admin.reload()
    expect(row).to_contain_text("Actif")
    assert_no_page_errors(admin)


def test_the_reset_page_in_english_refuses_a_common_password(
    live_server: LiveServer, contexts: Contexts
) -> None:
    live_server.call(
        live_server.services.accounts.create_user("admin", PASSWORD, "admin", "Front desk")
    )
    admin = signed_in(contexts, "admin")
    services = live_server.services
    doctor = live_server.call(
        services.accounts.create_user("dr.martin", PASSWORD, "doctor", "Dr Claire Martin")
    )
    reset = live_server.call(services.account_links.issue_reset(doctor))
    page = contexts.new_page(locale="en-GB")
    page.goto(reset.url(live_server.url).removeprefix(live_server.url))
    expect(page.locator("#link-enrol h1")).to_have_text("Reset my access")
    snap(page, "accounts-reset-en")
    secret = page.locator("#secret").inner_text()
    page.fill("#password", "qwerty123456")
    page.fill("#password2", "qwerty123456")
    page.fill("#link-code", fresh_code(secret))
    page.click("#link-form button[type=submit]")
    expect(page.locator("#link-form .alert-error")).to_contain_text("most common")
    expect(page.locator("#password")).to_be_focused()
    snap(page, "accounts-enrol-refused-en")
    admin.goto("/admin")
    admin.locator('.lang-switch button[data-lang="en"]').click()
    expect(admin.locator(ROW)).to_contain_text("Reset pending")
    snap(admin, "accounts-admin-reset-pending-en")
    assert_no_page_errors(page)
