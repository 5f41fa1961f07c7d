"""The audit trail page in a real Chromium: filters, pages, exports (themselves audited), the
chain check, and a doctor who sees the trail of own consultations only."""

from __future__ import annotations

import csv
import io
import json
import re
from urllib.parse import parse_qsl, urlsplit

import pytest
from playwright.sync_api import Page, expect

from signaling.audit.trail import AUDITED_ACTIONS
from tests.conftest import PASSWORD

from .conftest import (
    SCREENSHOTS,
    Contexts,
    LiveServer,
    assert_no_page_errors,
    snap,
)
from .test_i18n_texts import dictionary
from .test_staff_pages import UPCOMING, enrol_with_page_secret, sign_in, signed_in

pytestmark = pytest.mark.browser
# What an export link may carry: filters only, never a token or a code.
EXPORT_PARAMS = {"consultation", "action", "actor", "outcome", "since", "until", "format", "limit"}


def create_consultation(page: Page, patient: str) -> str:
    page.fill("#patient-name", patient)
    page.click("#create-form button[type=submit]")
    expect(page.locator("#invite-result")).to_be_visible()
    page.click("#invite-done")
    item = page.locator(UPCOMING, has_text=patient)
    expect(item).to_be_visible()
    consultation_id = item.get_attribute("data-id")
    assert consultation_id
    return consultation_id


def shown_rows(page: Page) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = page.eval_on_selector_all(
        "#audit-body tr", "rows => rows.map(r => ({...r.dataset}))"
    )
    return rows


def download(page: Page, selector: str) -> str:
    href = page.locator(selector).get_attribute("href") or ""
    assert set(dict(parse_qsl(urlsplit(href).query))) <= EXPORT_PARAMS, href
    with page.expect_download() as info:
        page.click(selector)
    path = info.value.path()
    assert path is not None
    with open(path, encoding="utf-8") as f:
        return f.read()


def test_every_audited_action_has_a_name_in_french_and_english() -> None:
    words = dictionary()
    for lang in ("fr", "en"):
        missing = {f"audit.action.{a}" for a in AUDITED_ACTIONS} - words[lang]
        assert not missing, (lang, sorted(missing))


@pytest.mark.slow
def test_admin_filters_exports_and_verifies_the_trail(
    live_server: LiveServer, contexts: Contexts
) -> None:
    accounts = live_server.services.accounts
    live_server.call(accounts.create_user("admin", PASSWORD, "admin", "Accueil du cabinet"))
    live_server.call(accounts.create_user("dr.martin", PASSWORD, "doctor", "Dr Claire Martin"))
    live_server.call(accounts.create_user("dr.petit", PASSWORD, "doctor", "Dr Paul Petit"))

    martin = signed_in(contexts, "dr.martin")
    alice = create_consultation(martin, "Alice Dupont")
    create_consultation(martin, "Bruno Leroy")  # same doctor, filtered out below
    # A new link for Alice: two invite.created entries for her consultation.
    martin.locator(UPCOMING, has_text="Alice Dupont").get_by_role(
        "button", name="Nouveau lien et nouveau code pour Alice Dupont"
    ).click()
    martin.locator("#confirm-ok").click()
    expect(martin.locator("#invite-result")).to_be_visible()
    martin.click("#invite-done")
    petit = signed_in(contexts, "dr.petit")
    chloe = create_consultation(petit, "Chloé Petit")

    admin = signed_in(contexts, "admin")
    admin.locator("#audit-link").click()
    expect(admin).to_have_url(re.compile(r"/audit$"))
    expect(admin.locator("#audit h1")).to_have_text("Journal d'audit")
    expect(admin.locator("#audit-body tr").first).to_be_visible()
    # Newest first: the admin's own sign-in, then Chloé's invite.
    newest = shown_rows(admin)[:2]
    assert [r["action"] for r in newest] == ["login.success", "mfa.enrolled"]
    assert chloe in {r["target"] for r in shown_rows(admin)[:6]}

    # Filter by consultation and action: Alice's two invites, nothing else.
    admin.select_option("#f-consultation", alice)
    admin.select_option("#f-action", "invite.created")
    admin.click("#filter-form button[type=submit]")
    expect(admin.locator("#audit-body tr")).to_have_count(2)
    rows = shown_rows(admin)
    assert {(r["target"], r["action"]) for r in rows} == {(alice, "invite.created")}
    expect(admin.locator("#audit-body tr").first).to_contain_text("Lien d'invitation créé")
    expect(admin.locator("#audit-body tr").first).to_contain_text("Dr Claire Martin")
    expect(admin.locator("#audit-body tr").first).to_contain_text("médecin")
    expect(admin.locator("#audit-body tr").first).to_contain_text("127.0.0.1")
    # The filters stay in the address (not secrets), so a reload shows the same entries.
    admin.reload()
    expect(admin.locator("#audit-body tr")).to_have_count(2)
    expect(admin.locator("#f-consultation")).to_have_value(alice)

    # Both exports hold exactly the filtered rows.
    seqs = sorted(int(r["seq"]) for r in rows)
    lines = [json.loads(line) for line in download(admin, "#export-jsonl").splitlines()]
    assert sorted(e["seq"] for e in lines) == seqs
    assert {(e["target"], e["action"]) for e in lines} == {(alice, "invite.created")}
    table = list(csv.DictReader(io.StringIO(download(admin, "#export-csv"))))
    assert sorted(int(r["seq"]) for r in table) == seqs
    assert {(r["target"], r["action"], r["actor_role"]) for r in table} == {
        (alice, "invite.created", "doctor")
    }
    expect(admin.locator("#export-status")).to_contain_text("Téléchargement lancé")

    # Each export is itself in the trail, with its format and the filter it used.
    admin.select_option("#f-consultation", "")
    admin.select_option("#f-action", "audit.exported")
    admin.click("#filter-form button[type=submit]")
    expect(admin.locator("#audit-body tr")).to_have_count(2)
    # Two rows were shown before the filter too: wait for the exports' own.
    exported = "Journal d'audit exporté"
    expect(admin.locator("#audit-body tr")).to_contain_text([exported, exported])
    details = admin.locator("#audit-body tr .audit-details").all_inner_texts()
    assert sorted(json.loads(d)["format"] for d in details) == ["csv", "jsonl"]
    assert {r["target"] for r in shown_rows(admin)} == {alice}

    # Pages of 25: with a few more entries, the whole trail needs two.
    for _ in range(10):
        live_server.call(
            live_server.services.audit.record("recording.listed", actor="x", actor_role="doctor")
        )
    admin.click("#reset-filters")
    expect(admin.locator("#audit-body tr")).to_have_count(25)
    expect(admin.locator("#prev-page")).to_be_disabled()
    first_page = shown_rows(admin)
    admin.click("#next-page")
    expect(admin.locator("#results-range")).to_contain_text("Entrées 26 à")
    assert int(shown_rows(admin)[0]["seq"]) == int(first_page[-1]["seq"]) - 1

    admin.click("#verify")
    expect(admin.locator("#verify-status")).to_contain_text("Chaîne intacte")
    head = live_server.call(live_server.services.store.audit_head())
    expect(admin.locator("#chain-hash")).to_have_text(head.hash)
    admin.click("#prev-page")
    snap(admin, "audit-admin")
    assert_no_page_errors(admin)


def test_doctor_sees_only_the_trail_of_own_consultations(
    live_server: LiveServer, contexts: Contexts
) -> None:
    accounts = live_server.services.accounts
    live_server.call(accounts.create_user("dr.martin", PASSWORD, "doctor", "Dr Claire Martin"))
    live_server.call(accounts.create_user("dr.petit", PASSWORD, "doctor", "Dr Paul Petit"))
    petit = signed_in(contexts, "dr.petit")
    chloe = create_consultation(petit, "Chloé Petit")
    martin = signed_in(contexts, "dr.martin")
    alice = create_consultation(martin, "Alice Dupont")

    martin.locator("#audit-link").click()
    expect(martin.locator("#audit h1")).to_be_visible()
    expect(martin.locator("#audit-lead")).to_contain_text("vos consultations")
    expect(martin.locator("#chain-card")).to_be_hidden()
    expect(martin.locator("#audit-body tr").first).to_be_visible()
    rows = shown_rows(martin)
    assert {r["target"] for r in rows} == {alice}
    assert {"consultation.created", "invite.created"} <= {r["action"] for r in rows}
    # Only own consultations to choose from.
    options = martin.locator("#f-consultation option").evaluate_all(
        "options => options.map(o => o.value)"
    )
    assert options == ["", alice]
    snap(martin, "audit-doctor")

    # Asking for another doctor's consultation by address gives nothing, on screen and in
    # an export: the server enforces it, whatever the page sends.
    martin.goto(f"/audit?consultation={chloe}")
    expect(martin.locator("#results-empty")).to_be_visible()
    expect(martin.locator("#audit-body tr")).to_have_count(0)
    exported = download(martin, "#export-jsonl")
    assert exported == ""
    assert_no_page_errors(martin)


def test_the_audit_page_reads_well_in_english_on_a_phone(
    live_server: LiveServer, contexts: Contexts
) -> None:
    accounts = live_server.services.accounts
    live_server.call(accounts.create_user("admin", PASSWORD, "admin", "Front desk"))
    page = contexts.new_page(locale="en-GB")
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto("/")
    sign_in(page, "admin")
    enrol_with_page_secret(page)
    # Signed in (the enrolment's answer came back) before leaving the page: navigating
    # earlier aborts that request and /audit then asks to sign in again.
    expect(page.locator("#greeting")).to_be_visible()
    page.goto("/audit")
    expect(page.locator("#audit h1")).to_have_text("Audit trail")
    expect(page.locator("#audit-body tr").first).to_contain_text("Signed in")
    # Entries become cards: nothing sticks out past the phone's width.
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, overflow
    page.select_option("#f-action", "login.success")
    page.click("#filter-form button[type=submit]")
    expect(page.locator("#audit-body tr")).to_have_count(1)
    page.fill("#f-since", "2030-01-02")
    page.fill("#f-until", "2030-01-01")
    page.click("#filter-form button[type=submit]")
    expect(page.locator("#filter-form .alert-error")).to_have_text(
        "The end date must come after the start date."
    )
    page.screenshot(path=str(SCREENSHOTS / "audit-en-phone.png"), full_page=True)
    assert_no_page_errors(page)
