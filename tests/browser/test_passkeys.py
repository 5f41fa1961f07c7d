"""A doctor enrols a passkey on My account and signs in with the password and that passkey,
in a real Chromium with its virtual authenticator (the DevTools protocol's WebAuthn domain):
no code typed. The page at http://localhost (an IP address is no RP ID), in French and
English; a passkey the server refuses says so; removal empties the list. At an IP address, or
in a browser without WebAuthn, the pages say why there is no passkey and keep the code."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from playwright.sync_api import Browser, CDPSession, Page, expect

from config import SecuritySettings
from signaling.models import Passkey, User
from tests.conftest import PASSWORD

from .conftest import Contexts, LiveServer, assert_no_page_errors, snap, start_server
from .test_account import StepCodes, enrolled_doctor, sign_in
from .test_clinic_details import snap_390

pytestmark = pytest.mark.browser


def localhost_server(tmp_path: Path, security: SecuritySettings | None = None) -> LiveServer:
    """A started live server with http://localhost:PORT as its public URL: the RP ID of a
    passkey is the page's host name, and the usual 127.0.0.1 would be refused
    (passkey_unavailable). It still listens on 127.0.0.1, where localhost leads."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    server = LiveServer(data_dir, security or SecuritySettings())
    server.url = f"http://localhost:{server.port}"
    server.settings = dataclasses.replace(
        server.settings, server=dataclasses.replace(server.settings.server, public_url=server.url)
    ).validate()
    server.start()
    return server


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """Here (and so for the `contexts` fixture's pages), the live server at localhost."""
    server = localhost_server(tmp_path)
    yield server
    server.stop()


@dataclasses.dataclass
class Authenticator:
    """A virtual authenticator attached to one page, through its DevTools session."""

    cdp: CDPSession
    id: str

    def credentials(self) -> list[dict[str, Any]]:
        """The passkeys it holds, private keys included (to hand to another page's)."""
        answer = self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.id})
        return cast(list[dict[str, Any]], answer["credentials"])

    def add(self, credential: dict[str, Any]) -> None:
        self.cdp.send(
            "WebAuthn.addCredential", {"authenticatorId": self.id, "credential": credential}
        )


def virtual_authenticator(page: Page) -> Authenticator:
    """A platform authenticator (like a laptop's fingerprint reader) that keeps discoverable
    passkeys and always finds its user present and verified, attached to this page."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return Authenticator(cdp, str(added["authenticatorId"]))


def snap_phones(page: Page, name: str) -> None:
    snap(page, name)
    snap_390(page, name)


def sign_out(page: Page) -> None:
    page.click("#signout")
    expect(page.locator("#signin h1")).to_be_visible()  # at / once the page has moved


def password_step(page: Page) -> None:
    page.goto("/")
    page.fill("#username", "dr.martin")
    page.fill("#password", PASSWORD)
    page.click("#signin-form button[type=submit]")


def stored_doctor(server: LiveServer) -> User:
    user = server.call(server.services.accounts.store.get_user_by_username("dr.martin"))
    assert isinstance(user, User)
    return user


def set_counter(server: LiveServer, count: int) -> None:
    """Write the passkey's last seen signature counter as the store keeps it."""
    store = server.services.accounts.store

    def change(user: User) -> User:
        return user.evolve(passkeys=tuple(p.evolve(sign_count=count) for p in user.passkeys))

    server.call(store.change_user(stored_doctor(server).id, change))


def enrol_laptop(page: Page) -> None:
    page.goto("/account")
    expect(page.locator("#passkeys-title")).to_have_text("Clés d'accès")
    expect(page.locator("#passkeys-none")).to_be_visible()
    page.click("#passkey-form button[type=submit]")  # no name yet
    expect(page.locator("#passkey-form .alert-error")).to_have_text(
        "Donnez un nom à cette clé d'accès."
    )
    page.fill("#passkey-name", "Laptop")
    page.click("#passkey-form button[type=submit]")
    expect(page.locator("#passkeys-done")).to_contain_text("La clé d'accès « Laptop » est ajoutée")
    item = page.locator(".passkey-item")
    expect(item).to_have_count(1)
    expect(item.locator(".passkey-name")).to_have_text("Laptop")
    expect(item).to_contain_text("Ajoutée le")
    expect(item.locator(".passkey-used")).to_have_text("Pas encore utilisée")
    expect(page.locator("#passkeys-none")).to_be_hidden()
    expect(page.locator("#passkey-name")).to_have_value("")


@pytest.mark.slow
def test_doctor_enrols_a_passkey_and_signs_in_with_it(
    live_server: LiveServer, contexts: Contexts
) -> None:
    codes: StepCodes = enrolled_doctor(live_server)
    page = contexts.new_page()
    virtual_authenticator(page)
    sign_in(page, codes)
    assert page.url.startswith("http://localhost:")

    enrol_laptop(page)
    [passkey] = stored_doctor(live_server).passkeys
    assert (passkey.name, passkey.rp_id, passkey.last_used_at) == ("Laptop", "localhost", None)
    snap_phones(page, "passkeys-account-fr")
    page.click("[data-lang=en]")
    expect(page.locator("#passkeys-title")).to_have_text("Passkeys")
    expect(page.locator(".passkey-used")).to_have_text("Not used yet")
    expect(page.locator("#account-identity")).to_have_text("Username: dr.martin · Doctor")
    expect(page.locator(".passkey-item button")).to_have_accessible_name(
        "Remove the passkey “Laptop”"
    )
    snap_phones(page, "passkeys-account-en")
    page.click("[data-lang=fr]")

    # Signed out, the password step now offers the passkey first, and still the code.
    sign_out(page)
    password_step(page)
    use = page.locator("#passkey-use")
    expect(use).to_have_text("Utiliser ma clé d'accès")
    expect(use).to_be_focused()
    expect(page.locator("#totp-code")).to_be_visible()
    expect(page.locator("#totp h1")).to_have_text("Confirmez votre identité")
    expect(page.locator("#totp-lead")).to_contain_text("Utilisez votre clé d'accès")
    snap_phones(page, "passkeys-signin-fr")
    page.click("[data-lang=en]")
    expect(use).to_have_text("Use my passkey")
    expect(page.locator("#passkey-choice")).to_contain_text("or enter the 6-digit code")
    snap_phones(page, "passkeys-signin-en")
    page.click("[data-lang=fr]")

    use.click()
    expect(page.locator("#greeting")).to_have_text("Bonjour, Dr Claire Martin")
    [used] = stored_doctor(live_server).passkeys
    assert used.last_used_at is not None and used.sign_count > passkey.sign_count

    # Removed after a confirmation; sign-in then asks for the code alone.
    page.goto("/account")
    expect(page.locator(".passkey-used")).to_contain_text("Dernière utilisation :")
    page.click(".passkey-item button")
    expect(page.locator("#confirm-title")).to_have_text("Retirer la clé d'accès « Laptop » ?")
    page.click("#confirm-ok")
    expect(page.locator("#passkeys-done")).to_have_text("La clé d'accès « Laptop » est retirée.")
    expect(page.locator(".passkey-item")).to_have_count(0)
    expect(page.locator("#passkeys-none")).to_be_visible()
    assert stored_doctor(live_server).passkeys == ()
    sign_out(page)
    password_step(page)
    expect(page.locator("#totp-code")).to_be_focused()
    expect(page.locator("#passkey-choice")).to_be_hidden()
    expect(page.locator("#totp h1")).to_have_text("Code de vérification")
    assert_no_page_errors(page)


def test_a_refused_passkey_says_so_and_leaves_the_code(
    live_server: LiveServer, contexts: Contexts
) -> None:
    codes = enrolled_doctor(live_server)
    page = contexts.new_page("en-US")
    virtual_authenticator(page)
    sign_in_english = page.locator("#greeting")
    page.goto("/")
    page.click("[data-lang=fr]")  # sign_in() reads the French greeting
    sign_in(page, codes)
    enrol_laptop(page)
    enrolled = stored_doctor(live_server).passkeys[0].sign_count
    sign_out(page)
    page.click("[data-lang=en]")

    # A counter that does not rise is what a cloned key shows: the server refuses it.
    set_counter(live_server, 1_000_000)
    password_step(page)
    page.click("#passkey-use")
    error = page.locator("#passkey-error")
    expect(error).to_have_text(
        "This passkey was not accepted. Try again, or enter the code from your app."
    )
    expect(page.locator("#totp h1")).to_be_visible()
    # Trying again once the server knows the right counter works: the code stays optional.
    set_counter(live_server, enrolled)
    page.click("#passkey-use")
    expect(sign_in_english).to_have_text("Hello, Dr Claire Martin")
    assert_no_page_errors(page)


def test_an_ip_address_or_a_browser_without_webauthn_is_told_why(
    tmp_path: Path, browser: Browser
) -> None:
    """At 127.0.0.1 (the service's own default here) no passkey can be made or used: My
    account and the sign-in step say to use the service's name, and the code still works."""
    server = start_server(tmp_path)
    at_ip = Contexts(browser, server.url)
    try:
        codes = enrolled_doctor(server)
        # A passkey made at the service's name: the account offers one at sign-in.
        made_elsewhere = Passkey(
            id="a2V5LW1hZGUtYXQtdGhlLW5hbWU",
            name="Laptop",
            public_key=b"\x00",
            rp_id="localhost",
            sign_count=0,
            created_at=time.time(),
        )
        server.call(
            server.services.accounts.store.change_user(
                stored_doctor(server).id, lambda u: u.evolve(passkeys=(made_elsewhere,))
            )
        )
        page = at_ip.new_page()
        password_step(page)
        expect(page.locator("#totp h1")).to_have_text("Code de vérification")
        expect(page.locator("#passkey-use")).to_be_hidden()
        expect(page.locator("#passkey-error")).to_contain_text("par son adresse IP")
        expect(page.locator("#totp-code")).to_be_focused()
        page.fill("#totp-code", codes.next())
        page.click("#totp-form button[type=submit]")
        expect(page.locator("#greeting")).to_have_text("Bonjour, Dr Claire Martin")

        page.goto("/account")
        problem = page.locator("#passkeys-problem")
        expect(problem).to_contain_text("ouvrez-le par son nom")
        expect(page.locator("#passkey-form")).to_be_hidden()
        expect(page.locator(".passkey-name")).to_have_text("Laptop")  # still removable here
        snap(page, "passkeys-account-ip")
        page.click("[data-lang=en]")
        expect(problem).to_contain_text("open it at its name")

        no_webauthn = at_ip.new_page("en-US")
        no_webauthn.add_init_script("delete window.PublicKeyCredential")
        no_webauthn.context.add_cookies(cast(Any, page.context.cookies()))
        no_webauthn.goto("/account")
        expect(no_webauthn.locator("#passkeys-problem")).to_have_text(
            "This browser does not support passkeys. Use a recent browser (Firefox, Chrome, "
            "Edge or Safari), or keep using the code from your app."
        )
        for each in (page, no_webauthn):
            assert_no_page_errors(each)
    finally:
        at_ip.close()
        server.stop()


def test_a_browser_without_the_json_helpers_converts_by_hand(
    live_server: LiveServer, contexts: Contexts
) -> None:
    """Browsers that predate parse*OptionsFromJSON and toJSON() (older Safari) get the same
    conversion from passkey-ceremony.js: enrol and sign in work the same."""
    codes = enrolled_doctor(live_server)
    page = contexts.new_page()
    page.add_init_script(
        "delete PublicKeyCredential.parseCreationOptionsFromJSON;"
        "delete PublicKeyCredential.parseRequestOptionsFromJSON;"
        "delete PublicKeyCredential.prototype.toJSON;"
    )
    virtual_authenticator(page)
    sign_in(page, codes)
    assert page.evaluate("typeof PublicKeyCredential.parseRequestOptionsFromJSON") == "undefined"
    enrol_laptop(page)
    sign_out(page)
    password_step(page)
    page.click("#passkey-use")
    expect(page.locator("#greeting")).to_have_text("Bonjour, Dr Claire Martin")
    assert stored_doctor(live_server).passkeys[0].last_used_at is not None
    assert_no_page_errors(page)
