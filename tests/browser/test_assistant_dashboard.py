"""The secretariat in a real Chromium: an admin attaches an assistant to a doctor on the admin
page; the assistant books for that doctor (no note field), sees the doctor's list without its
private notes, moves an appointment, and watches the waiting room without a way into the
call; French and English, desktop and phone screenshots."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import PASSWORD

from .conftest import Contexts, LiveServer, assert_no_page_errors, snap
from .test_call import patient_to_waiting_room
from .test_staff_pages import signed_in

pytestmark = pytest.mark.browser
NOTE = "Hypertension suspectée, revoir le traitement"


def open_clinic(live_server: LiveServer) -> None:
    accounts = live_server.services.accounts
    for username, role, name in (
        ("admin", "admin", "Accueil du cabinet"),
        ("dr.martin", "doctor", "Dr Claire Martin"),
        ("dr.roux", "doctor", "Dr Paul Roux"),
        ("sec.anne", "assistant", "Anne Lefèvre"),
    ):
        live_server.call(accounts.create_user(username, PASSWORD, role, name))
    martin = live_server.call(live_server.services.store.get_user_by_username("dr.martin"))
    # The doctor's own appointment, with a private note the assistant must never see.
    consultations = live_server.services.consultations
    now = live_server.services.clock.now()
    live_server.call(consultations.create(martin, "Bruno Petit", now + 7200, 30, NOTE))


def admin_attaches_the_assistant(contexts: Contexts) -> None:
    page = signed_in(contexts, "admin")
    page.goto("/admin")
    row = page.locator('tr[data-username="sec.anne"]')
    expect(row.get_by_role("combobox", name="Rôle de Anne Lefèvre")).to_have_value("assistant")
    expect(row).to_contain_text("Rattaché à aucun médecin")
    row.get_by_role("button", name="Choisir les médecins pour Anne Lefèvre").click()
    dialog = page.locator("dialog.form-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Dr Claire Martin").check()
    snap(page, "admin-assistant-doctors")
    dialog.get_by_role("button", name="Enregistrer").click()
    expect(page.locator("#users-status")).to_have_text("Médecins enregistrés pour Anne Lefèvre.")
    expect(page.locator('tr[data-username="sec.anne"]')).to_contain_text(
        "Planifie pour : Dr Claire Martin"
    )
    page.locator('.lang-switch button[data-lang="en"]').click()
    expect(page.locator('tr[data-username="sec.anne"]')).to_contain_text(
        "Schedules for: Dr Claire Martin"
    )
    snap(page, "admin-assistant-doctors-en")
    assert_no_page_errors(page)


def assistant_books(page: Page) -> tuple[str, str]:
    """The assistant books Alice Dupont for Dr Claire Martin; the patient's link and code."""
    expect(page.locator("#doctor")).to_be_visible()
    expect(page.locator("#doctor option")).to_have_text(["Dr Claire Martin"])
    expect(page.locator("#note")).to_be_hidden()
    page.fill("#patient-name", "Alice Dupont")
    page.click("#create-form button[type=submit]")
    expect(page.locator("#invite-result")).to_be_visible()
    url = page.locator("#invite-url").input_value()
    code = page.locator("#invite-code").input_value()
    snap(page, "assistant-dashboard-invite")
    page.click("#invite-done")
    return url, code


@pytest.mark.slow
def test_an_assistant_schedules_for_its_doctor_and_watches_the_waiting_room(
    live_server: LiveServer, contexts: Contexts
) -> None:
    open_clinic(live_server)
    admin_attaches_the_assistant(contexts)
    page = signed_in(contexts, "sec.anne")
    url, code = assistant_books(page)

    # The list: both of the doctor's appointments, its name on each, no note, no call.
    items = page.locator(".consult-item")
    expect(items).to_have_count(2)
    for name in ("Alice Dupont", "Bruno Petit"):
        item = page.locator(".consult-item", has_text=name)
        expect(item).to_contain_text("Pour Dr Claire Martin")
        relink = item.get_by_role("button", name=f"Nouveau lien et nouveau code pour {name}")
        expect(relink).to_be_visible()
    expect(page.get_by_text(NOTE)).to_have_count(0)
    expect(
        page.get_by_role("link", name="Démarrer la consultation avec Alice Dupont")
    ).to_have_count(0)
    expect(page.locator('a[href^="/call/"]')).to_have_count(0)

    # Editing an appointment keeps the patient's link; the doctor's note is not offered.
    page.get_by_role("button", name="Modifier le rendez-vous de Bruno Petit").click()
    dialog = page.locator("dialog.form-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#edit-note")).to_have_count(0)
    dialog.locator("#edit-duration").select_option("45")
    snap(page, "assistant-reschedule")
    dialog.get_by_role("button", name="Enregistrer").click()
    expect(page.locator("#list-notice")).to_contain_text("Rendez-vous de Bruno Petit enregistré")
    expect(page.locator(".consult-item", has_text="Bruno Petit")).to_contain_text("45")

    # The patient arrives: the assistant sees it waiting, and may write to them.
    patient = patient_to_waiting_room(contexts, url.removeprefix(live_server.url), code)
    expect(patient.locator("#connection-state")).to_have_attribute("data-state", "waiting")
    waiting = page.locator("#waiting-list .waiting-item")
    expect(waiting).to_contain_text("Alice Dupont")
    expect(waiting).to_contain_text("Pour Dr Claire Martin")
    # Nothing to let them in or turn them away with: a message is all the secretariat sends.
    expect(waiting.get_by_role("button")).to_have_count(1)
    waiting.get_by_role("button", name="Message à Alice Dupont en salle d'attente").click()
    dialog = page.get_by_role("dialog", name="Message à Alice Dupont")
    dialog.get_by_role("radio", name="J'ai un peu de retard, merci de votre patience.").check()
    dialog.get_by_role("button", name="Envoyer").click()
    expect(page.locator("#waiting-message-status")).to_contain_text("Message remis à Alice Dupont")
    message = patient.locator("#staff-message-list .staff-message")
    expect(message).to_contain_text("Le secrétariat")
    expect(message).to_contain_text("J'ai un peu de retard, merci de votre patience.")
    expect(page.locator("#waiting-seat-hint")).to_be_visible()
    row = page.locator(".consult-item", has_text="Alice Dupont")
    expect(row).to_have_attribute("data-waiting", "true")
    snap(page, "assistant-dashboard-waiting")
    page.locator('.lang-switch button[data-lang="en"]').click()
    expect(page.locator("#waiting-seat-hint")).to_have_text(
        "The doctor lets the patient in from their own screen."
    )
    expect(row).to_contain_text("For Dr Claire Martin")
    expect(waiting).to_contain_text("For Dr Claire Martin")
    snap(page, "assistant-dashboard-waiting-en")
    assert_no_page_errors(page)

    # Every action was recorded with the doctor it was done for.
    store = live_server.services.store
    anne = live_server.call(store.get_user_by_username("sec.anne"))
    martin = live_server.call(store.get_user_by_username("dr.martin"))
    assert anne is not None and martin is not None
    mine = [
        e
        for e in live_server.call(store.all_audit())
        if e.actor == anne.id and e.action.startswith(("consultation.", "invite."))
    ]
    assert {e.action for e in mine} == {
        "consultation.created",
        "invite.created",
        "consultation.edited",
    }
    assert all(json.loads(e.details)["for_doctor"] == martin.id for e in mine)
