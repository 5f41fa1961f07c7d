"""What a clinician reads when sign-in goes wrong: lockout, expired step, reused code."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from config import SecuritySettings

from .conftest import (
    Contexts,
    LiveServer,
    assert_no_page_errors,
    fresh_code,
    start_server,
)
from .test_staff_pages import create_doctor, sign_in, signed_in

pytestmark = pytest.mark.browser


@pytest.fixture
def strict_server(tmp_path: Path) -> Iterator[LiveServer]:
    server = start_server(tmp_path, SecuritySettings(lockout_threshold=2, lockout_minutes=15))
    yield server
    server.stop()


def test_lockout_says_how_long_to_wait(strict_server: LiveServer, browser: Browser) -> None:
    create_doctor(strict_server)
    contexts = Contexts(browser, strict_server.url)
    try:
        page = contexts.new_page()
        page.goto("/")
        for _ in range(2):
            sign_in(page, "dr.martin", "not the password")
            expect(page.locator("#signin-form .alert-error")).to_have_text(
                "Identifiant ou mot de passe incorrect."
            )
        sign_in(page, "dr.martin")
        expect(page.locator("#signin-form .alert-error")).to_have_text(
            "Trop d'essais infructueux : ce compte est bloqué pendant 15 minutes. "
            "Réessayez ensuite."
        )
        assert_no_page_errors(page)
    finally:
        contexts.close()


def test_an_expired_password_step_leads_back_to_the_password(
    live_server: LiveServer, contexts: Contexts
) -> None:
    create_doctor(live_server)
    page = contexts.new_page()
    page.goto("/")
    sign_in(page, "dr.martin")
    expect(page.locator("#enrol h1")).to_be_visible()
    secret = page.locator("#secret").inner_text()
    page.context.clear_cookies()  # as if the pending sign-in had expired
    page.fill("#enrol-code", fresh_code(secret))
    page.click("#enrol-form button[type=submit]")
    expect(page.locator("#signin h1")).to_be_visible()
    expect(page.locator("#signin-notice")).to_have_text(
        "La connexion a pris trop de temps. Saisissez à nouveau votre mot de passe."
    )
    assert_no_page_errors(page)


def test_a_code_used_once_is_refused_the_second_time(
    live_server: LiveServer, contexts: Contexts
) -> None:
    create_doctor(live_server)
    page = signed_in(contexts, "dr.martin")
    used = page.locator("#enrol-code").input_value()
    assert len(used) == 6
    page.click("#signout")
    sign_in(page, "dr.martin")
    expect(page.locator("#totp h1")).to_have_text("Code de vérification")
    # The code of the enrolment step (or the one before it) was already accepted once.
    page.fill("#totp-code", used)
    page.click("#totp-form button[type=submit]")
    expect(page.locator("#totp-form .alert-error")).to_contain_text("déjà servi")
    assert_no_page_errors(page)
