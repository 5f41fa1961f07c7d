"""The dashboard's "Send by email": the new link's panel sends it (never the code), a
refusing mail server's error reads clearly, and a row sends it again; French and English."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from config import ClinicSettings, MailSettings, SecuritySettings
from tests.mail_server import SMTP_PASSWORD, SMTP_USER, SmtpServer, start_smtp_server

from .conftest import Contexts, LiveServer, assert_no_page_errors, expect_console, snap
from .test_staff_pages import UPCOMING, create_doctor, signed_in

pytestmark = pytest.mark.browser
PATIENT_EMAIL = "camille.durand@patient.example"
REFUSE = "550 5.1.1 mailbox unavailable"


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    server = start_smtp_server(tmp_path / "smtp", "starttls")
    yield server
    server.stop()


@pytest.fixture
def live_server(tmp_path: Path, smtp: SmtpServer) -> Iterator[LiveServer]:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    password_file = tmp_path / "smtp-password"
    password_file.write_text(SMTP_PASSWORD + "\n")
    os.chmod(password_file, 0o600)
    server = LiveServer(data_dir, SecuritySettings())
    server.settings = server.settings.replace(
        mail=MailSettings(
            host="127.0.0.1",
            port=smtp.port,
            username=SMTP_USER,
            password_file=str(password_file),
            ca_file=str(smtp.ca_file),
            from_address=f"Cabinet Dupont <{SMTP_USER}>",
        ),
        clinic=ClinicSettings(name="Cabinet Dupont", phone="01 23 45 67 89"),
    ).validate()
    server.start()
    yield server
    server.stop()


def book(page: Page, name: str, email: str, language: str) -> None:
    page.fill("#patient-name", name)
    page.fill("#patient-email", email)
    page.select_option("#patient-language", language)
    page.click("#create-form button[type=submit]")
    expect(page.locator("#invite-result")).to_be_visible()


def test_the_doctor_sends_the_link_by_email_and_reads_a_refusal_clearly(
    live_server: LiveServer, contexts: Contexts, smtp: SmtpServer
) -> None:
    create_doctor(live_server)
    page = signed_in(contexts, "dr.martin")
    # A bad address is refused in the page, before anything is created.
    page.fill("#patient-name", "Camille Durand")
    page.fill("#patient-email", "camille@")
    page.click("#create-form button[type=submit]")
    expect(page.locator("#create-form .alert-error")).to_have_text(
        "Cette adresse e-mail n'est pas valide."
    )
    book(page, "Camille Durand", PATIENT_EMAIL, "fr")
    expect(page.locator("#invite-mail")).to_contain_text("jamais dans l'e-mail")
    page.click("#invite-mail-send")
    expect(page.locator("#invite-mail-status")).to_contain_text(f"Lien envoyé à {PATIENT_EMAIL}")
    expect(page.locator("#invite-mail-send")).to_have_text("Renvoyer l'e-mail")
    [received] = smtp.received
    link = page.locator("#invite-url").input_value()
    code = page.locator("#invite-code").input_value()
    plain = received.message.get_body(preferencelist=("plain",))
    assert plain is not None and link in str(plain.get_content())
    assert code not in received.message.as_string()
    assert len(link.rsplit("/join/", 1)[1]) == 14  # XXXX-XXXX-XXXX
    snap(page, "invite-mail-sent-fr")

    smtp.handler.refuse = REFUSE
    expect_console(page, "502")
    page.click("#invite-mail-send")
    expect(page.locator("#invite-mail-error")).to_have_text(
        "Le serveur de messagerie a refusé l'e-mail : vérifiez l'adresse ou réessayez plus "
        "tard. La consultation et son lien sont inchangés."
    )
    snap(page, "invite-mail-refused-fr")
    assert len(smtp.received) == 1

    # The row says when it went, and sends again; in English this time.
    page.click("#invite-done")
    page.click(".lang-switch [data-lang=en]")
    row = page.locator(UPCOMING).first
    expect(row.locator(".consult-mailed")).to_contain_text("Email sent on")
    button = row.get_by_role("button", name="Send the email again with Camille Durand's link")
    expect(button).to_have_text("Send the email again")
    button.click()
    expect(page.locator("#list-error")).to_contain_text("The mail server refused the email")
    snap(page, "invite-mail-refused-en")
    smtp.handler.refuse = ""
    button.click()
    expect(page.locator("#list-error")).to_be_hidden()
    assert len(smtp.received) == 2
    assert_no_page_errors(page)


def test_an_english_invitation_is_sent_from_the_new_link_panel(
    live_server: LiveServer, contexts: Contexts, smtp: SmtpServer
) -> None:
    create_doctor(live_server)
    page = signed_in(contexts, "dr.martin")
    page.click(".lang-switch [data-lang=en]")
    book(page, "Sam Taylor", "sam@patient.example", "en")
    expect(page.locator("#invite-mail")).to_contain_text("never in the email")
    page.click("#invite-mail-send")
    expect(page.locator("#invite-mail-status")).to_contain_text("Link sent to sam@patient.example")
    [received] = smtp.received
    assert received.message["Content-Language"] == "en"
    assert received.message["Subject"].startswith("Your video consultation")
    snap(page, "invite-mail-sent-en")
    assert_no_page_errors(page)


def test_the_patient_opens_the_emailed_link_and_sees_the_clinic_named_as_in_the_email(
    live_server: LiveServer, contexts: Contexts, smtp: SmtpServer
) -> None:
    create_doctor(live_server)
    doctor = signed_in(contexts, "dr.martin")
    book(doctor, "Camille Durand", PATIENT_EMAIL, "fr")
    doctor.click("#invite-mail-send")
    expect(doctor.locator("#invite-mail-status")).to_contain_text("Lien envoyé")
    [received] = smtp.received
    plain = received.message.get_body(preferencelist=("plain",))
    assert plain is not None
    link = next(
        line
        for line in str(plain.get_content()).splitlines()
        if "/join/" in line and " " not in line
    )
    for locale, line in (
        ("fr-FR", "Cabinet Dupont · Téléphone : 01 23 45 67 89"),
        ("en-US", "Cabinet Dupont · Phone: 01 23 45 67 89"),
    ):
        patient = contexts.new_page(locale=locale)
        patient.goto(link.removeprefix(live_server.url))
        expect(patient.locator("#code-step")).to_be_visible()
        expect(patient.locator("#clinic-line")).to_have_text(line)
        snap(patient, f"join-clinic-{locale[:2]}")
        assert_no_page_errors(patient)
