"""An admin changes a doctor's role on the admin page, in a real Chromium: a confirmation,
the list shows the new role, the change is audited, and the own role is not offered."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from tests.conftest import PASSWORD

from .conftest import Contexts, LiveServer, assert_no_page_errors, snap
from .foreign_text import switch_and_check
from .test_staff_pages import signed_in

pytestmark = pytest.mark.browser


def test_admin_promotes_a_doctor_and_the_list_shows_it(
    live_server: LiveServer, contexts: Contexts
) -> None:
    accounts = live_server.services.accounts
    live_server.call(accounts.create_user("admin", PASSWORD, "admin", "Accueil du cabinet"))
    live_server.call(accounts.create_user("dr.martin", PASSWORD, "doctor", "Dr Claire Martin"))
    page = signed_in(contexts, "admin")
    page.goto("/admin")
    martin = page.locator('tr[data-username="dr.martin"]')
    select = martin.get_by_role("combobox", name="Rôle de Dr Claire Martin")
    expect(select).to_have_value("doctor")
    # The admin's own role is text, not a choice.
    expect(page.locator('tr[data-username="admin"] select')).to_have_count(0)

    # Cancelled: nothing changes, the selector shows the role again.
    select.select_option("admin")
    expect(page.locator("#confirm-dialog")).to_be_visible()
    expect(page.locator("#confirm-title")).to_have_text(
        "Changer le rôle de Dr Claire Martin en « Administrateur » ?"
    )
    snap(page, "admin-role-confirm")
    page.locator("#confirm-dialog button[value=cancel]").click()
    expect(select).to_have_value("doctor")

    select.select_option("admin")
    page.locator("#confirm-ok").click()
    expect(page.locator("#users-status")).to_contain_text(
        "Le rôle de Dr Claire Martin est maintenant « Administrateur »"
    )
    expect(
        page.locator('tr[data-username="dr.martin"]').get_by_role(
            "combobox", name="Rôle de Dr Claire Martin"
        )
    ).to_have_value("admin")
    snap(page, "admin-role-changed")
    assert_no_page_errors(page)

    user = live_server.call(live_server.services.store.get_user_by_username("dr.martin"))
    assert user is not None and user.role == "admin"
    entries = live_server.call(live_server.services.store.all_audit())
    changes = [json.loads(e.details) for e in entries if e.action == "user.role_changed"]
    assert changes == [{"old_role": "doctor", "new_role": "admin"}]

    # In English, the same choice is named in English, and the confirmation already on
    # screen is said again in English (nothing left in French: foreign_text.py).
    switch_and_check(page, "en")
    expect(page.locator("#users-status")).to_contain_text("Dr Claire Martin")
    expect(
        page.locator('tr[data-username="dr.martin"]').get_by_role(
            "combobox", name="Dr Claire Martin's role"
        )
    ).to_have_value("admin")
