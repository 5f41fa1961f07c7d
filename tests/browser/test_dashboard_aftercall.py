"""After the call, in a real Chromium: a past consultation's row says when its call ran, how
many files went through it and who ended it; "Edit" changes the time, the duration, the name
and the note of an upcoming one without a new link. French and English, desktop and phone."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .conftest import Contexts, LiveServer, assert_no_page_errors, snap
from .test_staff_pages import create_doctor, signed_in

pytestmark = pytest.mark.browser


def book_the_day(live_server: LiveServer) -> None:
    create_doctor(live_server)
    services = live_server.services
    doctor = live_server.call(services.store.get_user_by_username("dr.martin"))
    now = services.clock.now()
    consultations = services.consultations
    past = live_server.call(
        consultations.create(doctor, "Léa Bernard", now - 7200, 30, "")
    ).consultation
    # What the room writes when a call runs (tests/test_call_summary.py runs a real one).
    started = now - 7000
    live_server.call(
        services.store.update_consultation(
            past.evolve(
                status="ended",
                ended_at=started + 17 * 60,
                call_started_at=started,
                call_ended_at=started + 17 * 60,
                call_end="doctor",
                files_exchanged=2,
            )
        )
    )
    live_server.call(
        consultations.create(doctor, "Bruno Petit", now + 7200, 30, "Revoir la tension")
    )


def test_the_row_tells_the_call_and_edit_changes_the_appointment(
    live_server: LiveServer, contexts: Contexts
) -> None:
    book_the_day(live_server)
    page = signed_in(contexts, "dr.martin")
    page.locator("#past-block > summary").click()
    past = page.locator(".consult-item", has_text="Léa Bernard")
    expect(past).to_be_visible()
    summary = past.locator(".consult-call")
    expect(summary).to_contain_text("Appel ")
    expect(summary).to_contain_text("(17 min)")
    expect(summary).to_contain_text("2 fichiers échangés · terminé par le médecin")
    snap(page, "aftercall-row")
    page.locator('.lang-switch button[data-lang="en"]').click()
    expect(summary).to_contain_text("(17 min) · 2 files exchanged · ended by the doctor")
    snap(page, "aftercall-row-en")

    page.get_by_role("button", name="Edit Bruno Petit's appointment").click()
    dialog = page.locator("dialog.form-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#edit-note")).to_have_value("Revoir la tension")
    dialog.locator("#edit-name").fill("Bruno Petit-Jean")
    dialog.locator("#edit-duration").select_option("45")
    dialog.locator("#edit-note").fill("Revoir la tension et le traitement")
    snap(page, "aftercall-edit-en")
    dialog.get_by_role("button", name="Save").click()
    expect(page.locator("#list-notice")).to_contain_text("Bruno Petit-Jean's appointment saved")
    row = page.locator(".consult-item", has_text="Bruno Petit-Jean")
    expect(row).to_contain_text("45 min")
    expect(row).to_contain_text("Revoir la tension et le traitement")
    page.locator('.lang-switch button[data-lang="fr"]').click()
    row.get_by_role("button", name="Modifier le rendez-vous de Bruno Petit-Jean").click()
    expect(dialog).to_be_visible()
    expect(dialog.locator("#edit-name")).to_have_value("Bruno Petit-Jean")
    snap(page, "aftercall-edit")
    dialog.locator("button[value=cancel]").click()
    expect(dialog).to_have_count(0)
    assert_no_page_errors(page)
