"""A newcomer's first contact, in Chromium: the service started as the README says prints where
to open it and a setup link; that link, opened at ``localhost`` as printed or at ``127.0.0.1``
(the other printed address), creates the first administrator, who enrols and reaches the
dashboard. Setup is single use, so each address gets a service of its own."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ViewportSize, expect

from tests.cli import read_until, start_service
from tests.conftest import PASSWORD, deadline_ms
from tests.servers import free_port, stop_process

from .conftest import (
    DESKTOP,
    SCREENSHOTS,
    Contexts,
    assert_no_page_errors,
    settled,
    snap,
)
from .test_staff_pages import enrol_with_page_secret

pytestmark = pytest.mark.browser
PHONE_390: ViewportSize = {"width": 390, "height": 844}


@pytest.fixture
def first_start(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, int]]:
    """``run.py --port P`` on a fresh data directory: the process, what it printed up to the
    setup link, and P."""
    port = free_port()
    proc = start_service("--port", str(port), data_dir=tmp_path / "data")
    try:
        yield proc, read_until(proc, r"/setup/\S+", limit=30), port
    finally:
        stop_process(proc)  # type: ignore[arg-type]
        assert proc.stdout is not None
        proc.stdout.close()


@pytest.mark.parametrize(
    ("host", "locale", "title", "greeting"),
    [
        ("localhost", "fr-FR", "Créer le compte administrateur", "Bonjour, Accueil du cabinet"),
        ("127.0.0.1", "en-GB", "Create the administrator account", "Hello, Accueil du cabinet"),
    ],
)
def test_a_newcomer_sets_up_the_service_at_the_printed_address(
    browser: Browser,
    first_start: tuple[subprocess.Popen[str], str, int],
    host: str,
    locale: str,
    title: str,
    greeting: str,
) -> None:
    _, printed, port = first_start
    assert (
        f"Open it in a browser on this computer: http://localhost:{port} "
        f"(or http://127.0.0.1:{port})"
    ) in printed
    link = re.search(rf"http://localhost:{port}(/setup/\S+)", printed)
    assert link, printed
    contexts = Contexts(browser)
    try:
        page = contexts.new_page(locale)
        page.goto(f"http://{host}:{port}{link.group(1)}")
        expect(page.locator("#setup h1")).to_have_text(title)
        page.fill("#display-name", "Accueil du cabinet")
        page.fill("#username", "admin")
        page.fill("#password", PASSWORD)
        page.fill("#password2", PASSWORD)
        snap(page, f"first-contact-setup-{locale[:2]}")
        # Also at the width of today's common phones (390 x 844), where a newcomer may well
        # open the link first.
        page.set_viewport_size(PHONE_390)
        settled(page)
        page.screenshot(path=str(SCREENSHOTS / f"first-contact-setup-{locale[:2]}-phone-390.png"))
        page.set_viewport_size(DESKTOP)
        page.click("#setup-form button[type=submit]")
        # A service started as the README says hashes with argon2's production profile (the
        # tests' cheap one is switched in this process only), twice here: the account, then
        # the sign-in that follows.
        expect(page.locator("#enrol h1")).to_be_visible(timeout=deadline_ms(60))
        enrol_with_page_secret(page)
        expect(page.locator("#greeting")).to_have_text(greeting)
        assert_no_page_errors(page)
    finally:
        contexts.close()
