"""The clinic's details in a real Chromium: an admin edits them on the admin page (a refused
phone is named, then a save), and the patient's page shows the new name, phone, hours and
emergency line, in French and in English, on the access-code step and on an error page."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import PASSWORD

from .conftest import (
    DESKTOP,
    SCREENSHOTS,
    Contexts,
    LiveServer,
    assert_no_page_errors,
    settled,
    snap,
)
from .test_join_page import make_invite
from .test_staff_pages import signed_in

pytestmark = pytest.mark.browser

NAME = "Maison de santé des Lilas"
PHONE = "01 98 76 54 32"
HOURS_FR = "Lun–ven 8h–19h, sam 9h–12h"
EMERGENCY_FR = "En cas d'urgence, appelez le 15 (SAMU) ou le 112."
EMERGENCY_EN = "In an emergency, call 15 (SAMU) or 112."


def snap_390(page: Page, name: str) -> None:
    """Also at 390×844 (a common phone), beside snap()'s desktop and 360 px widths."""
    page.set_viewport_size({"width": 390, "height": 844})
    settled(page)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-390.png"), full_page=True)
    page.set_viewport_size(DESKTOP)


def edit_on_the_admin_page(live_server: LiveServer, contexts: Contexts) -> None:
    """An admin signs in, is refused a phone that is not one, then saves the details."""
    accounts = live_server.services.accounts
    live_server.call(accounts.create_user("admin", PASSWORD, "admin", "Accueil du cabinet"))
    page = signed_in(contexts, "admin")
    page.goto("/admin")
    form = page.locator("#clinic-form")
    # The settings' defaults until a save: no name here, the default emergency lines.
    expect(page.get_by_label("Ligne d'urgence (français)")).to_have_value(
        "En cas d'urgence, appelez le 15 ou le 112."
    )
    page.get_by_label("Nom du cabinet").fill(NAME)
    page.get_by_label("Téléphone").fill("appelez l'accueil")
    page.get_by_label("Horaires").fill(HOURS_FR)
    page.get_by_label("Ligne d'urgence (français)").fill(EMERGENCY_FR)
    page.get_by_label("Ligne d'urgence (anglais)").fill(EMERGENCY_EN)
    form.get_by_role("button", name="Enregistrer").click()
    expect(form.locator(".alert-error")).to_contain_text("Ce numéro n'est pas valide")
    expect(page.get_by_label("Téléphone")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Téléphone")).to_be_focused()
    snap(page, "admin-clinic-refused-phone")

    page.get_by_label("Téléphone").fill(PHONE)
    form.get_by_role("button", name="Enregistrer").click()
    expect(page.locator("#clinic-status")).to_have_text(
        "Les informations du cabinet sont enregistrées."
    )
    expect(form.locator(".alert-error")).to_be_hidden()
    expect(page.get_by_label("Téléphone")).not_to_have_attribute("aria-invalid", "true")
    snap(page, "admin-clinic-saved")
    snap_390(page, "admin-clinic-saved")
    assert_no_page_errors(page)


def test_an_admin_edits_the_clinic_and_the_patient_page_shows_it_in_both_languages(
    live_server: LiveServer, contexts: Contexts
) -> None:
    edit_on_the_admin_page(live_server, contexts)
    entries = live_server.call(live_server.services.store.all_audit())
    [saved] = [json.loads(e.details) for e in entries if e.action == "clinic.updated"]
    assert saved["new"]["phone"] == PHONE
    assert saved["fields"] == ["name", "phone", "hours", "emergency_fr", "emergency_en"]

    invite = make_invite(live_server)
    for locale, emergency, line in (
        ("fr-FR", EMERGENCY_FR, f"{NAME} · Téléphone : {PHONE}"),
        ("en-US", EMERGENCY_EN, f"{NAME} · Phone: {PHONE}"),
    ):
        patient = contexts.new_page(locale=locale)
        patient.goto(invite.path)
        expect(patient.locator("#code-step")).to_be_visible()
        expect(patient.locator("#emergency-text")).to_have_text(emergency)
        expect(patient.locator("#clinic-line")).to_have_text(line)
        expect(patient.locator("#clinic-line a")).to_have_attribute("href", "tel:0198765432")
        hours = "Horaires : " if locale == "fr-FR" else "Opening hours: "
        expect(patient.locator("#clinic-hours")).to_have_text(hours + HOURS_FR)
        # The emergency line comes before the step's heading: read first, seen first.
        above = patient.evaluate(
            "() => document.querySelector('#emergency-line').getBoundingClientRect().bottom"
            " <= document.querySelector('#code-title').getBoundingClientRect().top"
        )
        assert above
        snap(patient, f"join-clinic-details-{locale[:2]}")
        snap_390(patient, f"join-clinic-details-{locale[:2]}")
        assert_no_page_errors(patient)

    # The language switch follows on the same page.
    patient.locator('.lang-switch button[data-lang="fr"]').click()
    expect(patient.locator("#emergency-text")).to_have_text(EMERGENCY_FR)
    expect(patient.locator("#clinic-line")).to_have_text(f"{NAME} · Téléphone : {PHONE}")


def test_an_error_page_gives_the_emergency_line_and_the_clinics_phone(
    live_server: LiveServer, contexts: Contexts
) -> None:
    edit_on_the_admin_page(live_server, contexts)
    expired = make_invite(live_server, starts_in_minutes=-180)
    patient = contexts.new_page()
    patient.goto(expired.path)
    expect(patient.locator("#problem-title")).to_have_text("Ce lien a expiré")
    expect(patient.locator("#emergency-text")).to_have_text(EMERGENCY_FR)
    expect(patient.locator("#clinic-line")).to_have_text(f"{NAME} · Téléphone : {PHONE}")
    expect(patient.locator("#clinic-hours")).to_be_visible()
    snap(patient, "join-clinic-expired")
    snap_390(patient, "join-clinic-expired")
    assert_no_page_errors(patient)
