"""The whole path through the pages: first-run setup, the admin creates a doctor, the doctor
creates a consultation, the patient opens the link and reaches the waiting room."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.conftest import PASSWORD

from .conftest import Contexts, LiveServer, assert_no_page_errors, snap
from .test_account_links import use_link
from .test_call import enter_with_code
from .test_staff_pages import UPCOMING, enrol_with_page_secret, signed_in

pytestmark = pytest.mark.browser


def test_setup_admin_doctor_patient_end_to_end(live_server: LiveServer, contexts: Contexts) -> None:
    # First run: the setup link creates the administrator, who enrols an authenticator.
    admin = contexts.new_page()
    admin.goto(live_server.setup_path())
    admin.fill("#display-name", "Accueil")
    admin.fill("#username", "admin")
    admin.fill("#password", PASSWORD)
    admin.fill("#password2", PASSWORD)
    admin.click("#setup-form button[type=submit]")
    enrol_with_page_secret(admin)
    expect(admin.locator("#greeting")).to_have_text("Bonjour, Accueil")

    # The administrator creates the doctor's account.
    admin.click("#admin-link")
    expect(admin.locator("#admin h1")).to_have_text("Comptes du personnel")
    admin.fill("#new-display-name", "Dr Claire Martin")
    admin.fill("#new-username", "dr.martin")
    admin.select_option("#new-role", "doctor")
    admin.click("#user-form button[type=submit]")
    row = admin.locator("#users-body tr[data-username='dr.martin']")
    expect(row).to_contain_text("Dr Claire Martin")
    expect(row).to_contain_text("Médecin")
    expect(row).to_contain_text("Activation en attente")
    expect(admin.locator("#users-status")).to_contain_text("Compte de Dr Claire Martin créé")
    link = admin.locator("#issued-link").input_value()
    snap(admin, "admin")
    assert_no_page_errors(admin)

    # The doctor opens their one-time link: chooses a password, enrols an authenticator.
    doctor = contexts.new_page()
    use_link(doctor, link.removeprefix(live_server.url), PASSWORD)
    expect(doctor.locator("#greeting")).to_have_text("Bonjour, Dr Claire Martin")
    doctor.fill("#patient-name", "Alice Dupont")
    doctor.select_option("#duration", "20")
    doctor.click("#create-form button[type=submit]")
    expect(doctor.locator("#invite-result")).to_be_visible()
    url = doctor.locator("#invite-url").input_value()
    code = doctor.locator("#invite-code").input_value()
    assert re.fullmatch(r"\d{6}", code)
    expect(doctor.locator(UPCOMING, has_text="Alice Dupont")).to_contain_text("20 min")
    assert_no_page_errors(doctor)

    # The patient, in another browser, opens the link.
    patient = contexts.new_page(locale="fr-FR")
    patient.goto(url.removeprefix(live_server.url))
    expect(patient.locator("#doctor-name")).to_have_text("Dr Claire Martin")
    patient.fill("#access-code", f"{(int(code) + 7) % 1_000_000:06d}")
    patient.click("#code-form button[type=submit]")
    expect(patient.locator("#code-form .alert-error")).to_contain_text("Il vous reste 4 essais")
    enter_with_code(patient, code)
    expect(patient.locator("#waiting-doctor")).to_contain_text("Dr Claire Martin")
    assert_no_page_errors(patient)

    # Back in administration: the doctor is now enrolled; a reset link and disable work.
    admin.reload()
    expect(row).to_contain_text("Activée")
    reset_button = "Réinitialiser l'accès de Dr Claire Martin : créer un lien"
    row.get_by_role("button", name=reset_button).click()
    admin.locator("#confirm-ok").click()
    expect(row).to_contain_text("Réinitialisation en attente")
    row.get_by_role("button", name="Désactiver le compte de Dr Claire Martin").click()
    admin.locator("#confirm-ok").click()
    expect(row).to_contain_text("Désactivé")
    # A disabled doctor is signed out: the dashboard sends them back to sign-in.
    doctor.reload()
    expect(doctor.locator("#signin h1")).to_be_visible()
    row.get_by_role("button", name="Réactiver le compte de Dr Claire Martin").click()
    expect(row).to_contain_text("Réinitialisation en attente")
    assert_no_page_errors(admin)


def test_doctor_cannot_use_the_admin_page(live_server: LiveServer, contexts: Contexts) -> None:
    live_server.call(live_server.services.accounts.create_user("dr.b", PASSWORD, "doctor", "Dr B"))
    page = signed_in(contexts, "dr.b")
    page.goto("/admin")
    expect(page.locator("#denied h1")).to_have_text("Réservé aux administrateurs")
    expect(page.locator("#admin")).to_be_hidden()
