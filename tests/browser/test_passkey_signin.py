"""Passkeys beyond the second factor, in a real Chromium with its virtual authenticator (a
platform one holding discoverable credentials and verifying its user): an admin turns on
sign-in with a passkey alone on the admin page; a doctor then signs in with "Sign in with a
passkey" and nothing typed; a clinic that keeps no code fallback hides the code field; My
account's password changes with a passkey instead of the current password and a code. (The
locked dashboard's "Unlock with my passkey": test_passkey_unlock.py.)"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from signaling.accounts.passkey_policy import PasskeyPolicy, passkey_policy, save_passkey_policy
from signaling.accounts.passwords import verify_password
from tests.conftest import PASSWORD

from . import test_passkeys
from .conftest import Contexts, LiveServer, assert_no_page_errors
from .test_account import NEW_PASSWORD, StepCodes, enrolled_doctor, sign_in
from .test_passkeys import (
    Authenticator,
    enrol_laptop,
    password_step,
    sign_out,
    snap_phones,
    stored_doctor,
    virtual_authenticator,
)
from .test_staff_pages import signed_in

pytestmark = pytest.mark.browser
# The server at localhost (a passkey's RP ID is a host name), as test_passkeys.py has it.
live_server = test_passkeys.live_server


def policy_in_effect(server: LiveServer) -> PasskeyPolicy:
    return server.call(passkey_policy(server.services.store, server.settings.security))


def doctor_with_passkey(
    server: LiveServer, contexts: Contexts
) -> tuple[Page, Authenticator, StepCodes]:
    """dr.martin, signed in with the password and a code, with the passkey "Laptop" made by
    this page's virtual authenticator; the page is left on My account, in French."""
    codes = enrolled_doctor(server)
    page = contexts.new_page()
    authenticator = virtual_authenticator(page)
    sign_in(page, codes)
    enrol_laptop(page)
    return page, authenticator, codes


@pytest.mark.slow
def test_admin_allows_passwordless_and_a_doctor_signs_in_with_the_passkey_alone(
    live_server: LiveServer, contexts: Contexts
) -> None:
    admin_account = live_server.services.accounts.create_user(
        "admin", PASSWORD, "admin", "Accueil du cabinet"
    )
    live_server.call(admin_account)
    admin = signed_in(contexts, "admin")  # enrols the code on the way

    # (a) The admin page's Passkeys card: the settings' defaults, then passwordless on.
    admin.goto("/admin")
    card = admin.locator(".passkey-policy-card")
    expect(card.locator("h2")).to_have_text("Clés d'accès")
    expect(admin.locator("#passkey-required-for")).to_have_value("nobody")
    expect(admin.locator("#passkey-totp-fallback")).to_be_checked()
    expect(admin.locator("#passkey-passwordless")).not_to_be_checked()
    admin.check("#passkey-passwordless")
    card.get_by_role("button", name="Enregistrer").click()
    status = admin.locator("#passkey-policy-status")
    expect(status).to_have_text("Les règles des clés d'accès sont enregistrées.")
    assert policy_in_effect(live_server) == PasskeyPolicy(passwordless=True)
    card.scroll_into_view_if_needed()
    snap_phones(admin, "passkey-policy-card-fr")
    admin.click("[data-lang=en]")
    expect(card.locator("h2")).to_have_text("Passkeys")
    expect(card.get_by_label("Passkey required for")).to_have_value("nobody")
    expect(status).to_have_text("The passkey rules are saved.")  # re-worded, not left in French
    snap_phones(admin, "passkey-policy-card-en")
    # Read back: a fresh page shows what was saved.
    admin.reload()
    expect(admin.locator("#passkey-passwordless")).to_be_checked()
    expect(admin.locator("#passkey-totp-fallback")).to_be_checked()
    expect(admin.locator("#passkey-required-for")).to_have_value("nobody")
    assert_no_page_errors(admin)

    # (b) A doctor enrols a passkey, signs out, and signs in with it alone.
    page, _, _ = doctor_with_passkey(live_server, contexts)
    enrolled = stored_doctor(live_server).passkeys[0]
    sign_out(page)
    passwordless = page.locator("#passwordless-use")
    expect(passwordless).to_have_text("Se connecter avec une clé d'accès")
    expect(page.locator("#username")).to_have_value("")
    snap_phones(page, "passkey-passwordless-fr")
    page.click("[data-lang=en]")
    expect(passwordless).to_have_text("Sign in with a passkey")
    snap_phones(page, "passkey-passwordless-en")
    page.click("[data-lang=fr]")
    passwordless.click()
    expect(page.locator("#greeting")).to_have_text("Bonjour, Dr Claire Martin")
    assert page.locator("#username").input_value() == ""
    assert page.locator("#password").input_value() == ""
    [used] = stored_doctor(live_server).passkeys
    assert used.last_used_at is not None and used.sign_count > enrolled.sign_count
    assert_no_page_errors(page)


def test_without_a_code_fallback_the_sign_in_hides_the_code(
    live_server: LiveServer, contexts: Contexts
) -> None:
    """(d) Passkeys required for everyone, the code not kept: a doctor with a passkey is
    offered the passkey alone after the password."""
    page, _, _ = doctor_with_passkey(live_server, contexts)
    sign_out(page)
    required = PasskeyPolicy(required_for="everyone", totp_fallback=False)
    live_server.call(save_passkey_policy(live_server.services.store, required))
    password_step(page)
    use = page.locator("#passkey-use")
    expect(use).to_be_visible()
    expect(use).to_be_focused()
    expect(page.locator("#totp-code")).to_be_hidden()
    expect(page.locator("#totp-form")).to_be_hidden()
    expect(page.locator("#passkey-choice .passkey-or")).to_be_hidden()
    expect(page.locator("#totp-back")).to_be_visible()  # a way back all the same
    snap_phones(page, "passkey-only-step-fr")
    use.click()
    expect(page.locator("#greeting")).to_have_text("Bonjour, Dr Claire Martin")
    assert_no_page_errors(page)


def test_a_doctor_changes_the_password_with_the_passkey(
    live_server: LiveServer, contexts: Contexts
) -> None:
    """My account's password form: "Confirm with my passkey" instead of the current password
    and a code; only the new password then signs in."""
    page, _, codes = doctor_with_passkey(live_server, contexts)
    use = page.locator("#password-passkey-use")
    expect(use).to_have_text("Confirmer avec ma clé d'accès")
    expect(page.locator("#password-passkey .passkey-or")).to_have_text(
        "ou, sans le mot de passe actuel ni le code\u00a0:"
    )
    page.fill("#new-password", NEW_PASSWORD)
    page.fill("#repeat-password", NEW_PASSWORD)
    page.locator("#passkey-name").scroll_into_view_if_needed()
    snap_phones(page, "passkey-password-change-fr")
    page.click("[data-lang=en]")
    expect(use).to_have_text("Confirm with my passkey")
    snap_phones(page, "passkey-password-change-en")
    page.click("[data-lang=fr]")
    # The new password is still checked first, before the browser asks for the passkey.
    page.fill("#repeat-password", NEW_PASSWORD + " typo")
    use.click()
    form = page.locator("#password-form")
    expect(form.locator(".alert-error")).to_have_text(
        "Les deux nouveaux mots de passe ne sont pas identiques."
    )
    expect(page.locator("#repeat-password")).to_be_focused()
    page.fill("#repeat-password", NEW_PASSWORD)
    before = stored_doctor(live_server).passkeys[0].sign_count
    use.click()
    expect(page.locator("#password-done")).to_contain_text("Votre mot de passe est changé")
    expect(page.locator("#new-password")).to_have_value("")
    stored = stored_doctor(live_server)
    assert live_server.call(verify_password(stored.password_hash, NEW_PASSWORD))
    assert stored.passkeys[0].sign_count > before

    sign_out(page)
    sign_in(page, codes, NEW_PASSWORD)
    assert_no_page_errors(page)
