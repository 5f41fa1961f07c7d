"""A doctor changes their own password on the account page, in a real Chromium: told so,
their other browser is signed out, and only the new password opens the service."""

from __future__ import annotations

import time

import pyotp
import pytest
from playwright.sync_api import Page, expect

from tests.conftest import PASSWORD

from .conftest import Contexts, LiveServer, assert_no_page_errors, snap

pytestmark = pytest.mark.browser
NEW_PASSWORD = "a brand new long passphrase"
STEP = 30


class StepCodes:
    """Codes for strictly increasing time steps: the server accepts each step once and one
    step of drift either way, so a few sign-ins fit in one window; past that, wait."""

    def __init__(self, secret: str) -> None:
        self.totp = pyotp.TOTP(secret)
        self.last = -1

    def next(self) -> str:
        current = int(time.time()) // STEP
        step = max(self.last + 1, current - 1)
        if step == current - 1 and time.time() % STEP > STEP - 8:
            step = current  # the previous step's code would expire while it is typed
        if step > current + 1:  # the code becomes valid one step ahead of its own
            time.sleep((step - 1) * STEP - time.time() + 0.5)
        self.last = step
        return str(self.totp.at(step * STEP))


def enrolled_doctor(server: LiveServer) -> StepCodes:
    accounts = server.services.accounts

    async def create() -> str:
        user = await accounts.create_user("dr.martin", PASSWORD, "doctor", "Dr Claire Martin")
        enrolment = await accounts.start_enrolment(user)
        enrolled = await accounts.store.get_user(user.id)
        await accounts.store.update_user(enrolled.evolve(totp_confirmed=True))
        return str(enrolment.secret)

    return StepCodes(server.call(create()))


def sign_in(page: Page, codes: StepCodes, password: str = PASSWORD) -> None:
    page.goto("/")
    page.fill("#username", "dr.martin")
    page.fill("#password", password)
    page.click("#signin-form button[type=submit]")
    page.fill("#totp-code", codes.next())
    page.click("#totp-form button[type=submit]")
    expect(page.locator("#greeting")).to_have_text("Bonjour, Dr Claire Martin")


def fill_change(page: Page, current: str, new: str, repeat: str, code: str) -> None:
    page.fill("#current-password", current)
    page.fill("#new-password", new)
    page.fill("#repeat-password", repeat)
    page.fill("#account-code", code)
    page.press("#account-code", "Enter")  # the keyboard submits the form


@pytest.mark.slow
def test_doctor_changes_password_and_other_browser_is_signed_out(
    live_server: LiveServer, contexts: Contexts
) -> None:
    codes = enrolled_doctor(live_server)
    page = contexts.new_page()
    sign_in(page, codes)
    elsewhere = contexts.new_page()
    sign_in(elsewhere, codes)

    expect(page.locator("#account-link")).to_have_text("Mon compte")
    snap(page, "account-link-dashboard")  # the top bar with one more entry, at 360 px too
    page.locator("#account-link").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#account h1")).to_have_text("Mon compte")
    expect(page.locator("#account-identity")).to_have_text("Identifiant : dr.martin · Médecin")
    expect(page.locator("#new-password-hint")).to_contain_text("Au moins 12 caractères")
    snap(page, "account")
    error = page.locator("#password-form .alert-error")

    # Checked in the page: the two new passwords differ.
    fill_change(page, PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "!", "123456")
    expect(error).to_have_text("Les deux nouveaux mots de passe ne sont pas identiques.")
    expect(page.locator("#repeat-password")).to_be_focused()
    # Checked by the server: a wrong current password.
    fill_change(page, "not my password!", NEW_PASSWORD, NEW_PASSWORD, "123456")
    expect(error).to_have_text("Le mot de passe actuel est incorrect.")
    expect(page.locator("#current-password")).to_be_focused()
    snap(page, "account-error")
    # A refusal already on screen changes language with the page, and back.
    page.click("[data-lang=en]")
    expect(error).to_have_text("The current password is wrong.")
    page.click("[data-lang=fr]")
    expect(error).to_have_text("Le mot de passe actuel est incorrect.")

    fill_change(page, PASSWORD, NEW_PASSWORD, NEW_PASSWORD, codes.next())
    done = page.locator("#password-done")
    expect(done).to_have_text(
        "Votre mot de passe est changé. Votre autre session a été déconnectée."
    )
    expect(error).to_be_hidden()
    expect(page.locator("#current-password")).to_have_value("")
    snap(page, "account-changed")
    page.click("[data-lang=en]")
    expect(done).to_contain_text("Your password is changed.")
    page.click("[data-lang=fr]")

    # This browser stays signed in; the other one is back at the sign-in form.
    page.reload()
    expect(page.locator("#account h1")).to_be_visible()
    elsewhere.reload()
    expect(elsewhere.locator("#signin h1")).to_be_visible()
    elsewhere.goto("/account")
    expect(elsewhere.locator("#signin h1")).to_be_visible()

    # The old password is refused, the new one opens the service.
    fresh = contexts.new_page()
    fresh.goto("/")
    fresh.fill("#username", "dr.martin")
    fresh.fill("#password", PASSWORD)
    fresh.click("#signin-form button[type=submit]")
    expect(fresh.locator("#signin-form .alert-error")).to_have_text(
        "Identifiant ou mot de passe incorrect."
    )
    sign_in(fresh, codes, NEW_PASSWORD)
    for each in (page, elsewhere, fresh):
        assert_no_page_errors(each)


def test_account_page_speaks_english(live_server: LiveServer, contexts: Contexts) -> None:
    codes = enrolled_doctor(live_server)
    page = contexts.new_page()
    sign_in(page, codes)
    page.click("#account-link")
    page.click("[data-lang=en]")
    expect(page.locator("#account h1")).to_have_text("My account")
    expect(page.locator("#password-form button[type=submit]")).to_have_text("Change password")
    fill_change(page, PASSWORD, "short", "short", "123456")
    expect(page.locator("#password-form .alert-error")).to_contain_text("12 characters")
    expect(page.locator("#new-password")).to_be_focused()
    snap(page, "account-en")
    assert_no_page_errors(page)
