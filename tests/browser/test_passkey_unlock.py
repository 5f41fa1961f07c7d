"""The locked dashboard opens with "Unlock with my passkey" (the fingerprint or PIN stands for
the password and the code), in a real Chromium with its virtual authenticator, in French and
English: two tabs of the same doctor, each its own session, lock at the idle minute."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from .conftest import Contexts, LiveServer, assert_no_page_errors
from .test_dashboard_lock import IDLE, expect_locked, signed_in_dashboard
from .test_passkey_signin import doctor_with_passkey
from .test_passkeys import localhost_server, snap_phones, stored_doctor, virtual_authenticator

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    server = localhost_server(tmp_path, IDLE)
    yield server
    server.stop()


def unlock_with_passkey(page: Page) -> None:
    page.click("#unlock-passkey")
    expect(page.locator("#session-lock")).to_have_count(0)
    expect(page.locator("body")).to_have_attribute("data-session-lock", re.compile("open|warned"))
    expect(page.locator("#greeting")).to_be_visible()


def test_the_locked_dashboard_unlocks_with_the_passkey(
    live_server: LiveServer, contexts: Contexts
) -> None:
    doctor, authenticator, codes = doctor_with_passkey(live_server, contexts)
    doctor.goto("/")
    doctor.fill("#patient-name", "Bernard Half-typed")
    # The same doctor's other tab, in English (its own session, locked at the same time).
    english = signed_in_dashboard(contexts, codes, "en")

    expect_locked(doctor)
    unlock = doctor.locator("#unlock-passkey")
    expect(unlock).to_have_text("Déverrouiller avec ma clé d'accès")
    expect(unlock).to_be_focused()  # the account has one: offered first
    expect(doctor.locator("#lock-lead")).to_contain_text("Utilisez votre clé d'accès, ou votre")
    expect(doctor.locator(".lock-passkey .passkey-or")).to_have_text(
        "ou saisissez votre mot de passe et le code de votre application"
    )
    expect(doctor.locator("#unlock-password")).to_be_visible()  # still there
    snap_phones(doctor, "passkey-unlock-fr")
    expect_locked(english)
    expect(english.locator("#unlock-passkey")).to_have_text("Unlock with my passkey")
    snap_phones(english, "passkey-unlock-en")

    before = stored_doctor(live_server).passkeys[0].sign_count
    unlock_with_passkey(doctor)
    expect(doctor.locator("#patient-name")).to_have_value("Bernard Half-typed")
    expect(english.locator("#dashboard")).to_have_count(0)  # its own session, still locked
    # The same laptop's key on that tab: each page has its own virtual authenticator here, so
    # it gets a copy, taken now that the counter has risen (an older copy is what a cloned
    # key looks like, and the server refuses it).
    other_key = virtual_authenticator(english)
    for credential in authenticator.credentials():
        other_key.add(credential)
    unlock_with_passkey(english)
    assert stored_doctor(live_server).passkeys[0].sign_count > before
    for page in (doctor, english):
        assert_no_page_errors(page)
