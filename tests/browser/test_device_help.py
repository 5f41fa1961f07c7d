"""A patient whose camera or microphone does not start gets the help that fits the device in
their hand (an Android phone's site permissions, an iPhone's "aA" menu, a computer's address
bar), in plain words and both languages; they can still go in with what works, and the
doctor's tile says the patient joined without a camera instead of a bare black box.

The refusals are real: a second Chromium without --use-fake-ui-for-media-stream, where what
the context's permissions do not grant is refused as a headless browser refuses an unanswered
prompt (NotAllowedError), the same error a patient's "Block" gives.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect

from . import conftest as shared
from .axe import assert_accessible
from .conftest import Contexts, LiveServer, assert_no_page_errors
from .test_call import doctor_with_consultation, open_the_call

pytestmark = pytest.mark.browser

PHONE_390: ViewportSize = {"width": 390, "height": 844}
ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


def phone(user_agent: str) -> dict[str, Any]:
    return {
        "viewport": PHONE_390,
        "user_agent": user_agent,
        "is_mobile": True,
        "has_touch": True,
    }


@pytest.fixture(scope="module")
def asking_browser(browser: Browser) -> Iterator[Browser]:
    """Chromium with fake devices but no fake permission prompt: only what a context's
    permissions grant is allowed. Launched by the same Playwright as the package's browser
    (one sync Playwright per thread)."""
    args = [arg for arg in shared.CHROMIUM_ARGS if arg != "--use-fake-ui-for-media-stream"]
    launched = browser.browser_type.launch(executable_path=shared.CHROMIUM, args=args)
    try:
        yield launched
    finally:
        launched.close()


@pytest.fixture
def asking(asking_browser: Browser, live_server: LiveServer) -> Iterator[Contexts]:
    with closing(Contexts(asking_browser, live_server.url)) as helper:
        yield helper


def shot(page: Page, name: str) -> None:
    """Check the page as it is with axe-core and keep a screenshot at its own (phone) size."""
    assert_accessible(page)
    shared.SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shared.settled(page)
    page.screenshot(path=str(shared.SCREENSHOTS / f"{name}.png"), full_page=True)


def at_device_check(
    live_server: LiveServer, contexts: Contexts, asking: Contexts, locale: str, **options: Any
) -> tuple[Page, Page]:
    """The doctor books a consultation (and keeps the dashboard); the patient, in a browser
    that allows only ``options["permissions"]``, types the code and reaches the device check.
    Returns (doctor, patient)."""
    doctor, path, code = doctor_with_consultation(live_server, contexts)
    patient = asking.new_page(locale=locale, **options)
    patient.goto(path)
    patient.fill("#access-code", code)
    patient.click("#code-form button[type=submit]")
    expect(patient.locator("#devices-step h1")).to_be_visible()
    return doctor, patient


def help_text(page: Page) -> str:
    return str(page.locator("#devices-error").inner_text())


def test_an_android_phone_without_permission_gets_the_phones_steps_in_both_languages(
    live_server: LiveServer, contexts: Contexts, asking: Contexts
) -> None:
    doctor, patient = at_device_check(
        live_server, contexts, asking, "fr-FR", permissions=[], **phone(ANDROID)
    )
    box = patient.locator("#devices-error")
    expect(box).to_be_visible()
    expect(box).to_have_attribute("data-platform", "android")
    expect(patient.locator("#devices-error-text")).to_have_text(
        "Votre navigateur n'a pas l'autorisation d'utiliser la caméra et le micro. "
        "Pour la lui donner :"
    )
    steps = patient.locator("#devices-help-steps li")
    expect(steps).to_have_count(3)
    expect(steps.nth(0)).to_contain_text("à gauche de l'adresse du site")
    expect(steps.nth(1)).to_have_text(
        "Touchez « Autorisations », puis activez « Caméra » et « Micro »."
    )
    expect(patient.locator("#devices-help-note")).to_contain_text("Paramètres du téléphone")
    # Nothing of a computer's words on a phone.
    for desktop_word in ("Cliquez", "barre d'adresse", "fenêtre"):
        assert desktop_word not in help_text(patient)
    # The retry button the steps point at is right below them, and big enough for a thumb.
    retry = patient.get_by_role("button", name="Réessayer")
    expect(retry).to_be_visible()
    box_size = retry.bounding_box()
    assert box_size is not None and box_size["height"] >= 44, box_size
    expect(patient.locator("#ready-warning")).to_contain_text("Sans caméra ni micro")
    shot(patient, "device-help-android-fr-phone390")

    patient.get_by_role("button", name="EN", exact=True).click()
    expect(steps.nth(1)).to_have_text("Tap “Permissions”, then turn on “Camera” and “Microphone”.")
    expect(patient.locator("#devices-help-note")).to_contain_text("phone's Settings")
    for french in ("Touchez", "Autorisations", "Réessayer", "Sans caméra"):
        assert french not in help_text(patient), help_text(patient)
    expect(patient.locator("#ready-warning")).to_contain_text("Without camera or microphone")
    shot(patient, "device-help-android-en-phone390")

    # The patient may still go in with nothing: the doctor will be told.
    patient.get_by_role("button", name="Go to the waiting room").click()
    expect(patient.locator("#waiting-step h1")).to_be_visible()
    shot(patient, "device-help-android-waiting-en-phone390")
    assert_no_page_errors(patient)
    assert_no_page_errors(doctor)


def test_a_computer_gets_the_address_bar_steps(
    live_server: LiveServer, contexts: Contexts, asking: Contexts
) -> None:
    doctor, patient = at_device_check(live_server, contexts, asking, "en-GB", permissions=[])
    expect(patient.locator("#devices-error")).to_have_attribute("data-platform", "desktop")
    steps = patient.locator("#devices-help-steps li")
    expect(steps.nth(0)).to_have_text(
        "Click the camera or padlock icon in the address bar, at the top of the window."
    )
    expect(steps.nth(2)).to_have_text("Click “Try again” below.")
    expect(patient.locator("#devices-help-note")).to_be_hidden()
    for phone_word in ("Tap", "Settings", "aA"):
        assert phone_word not in help_text(patient)
    assert_no_page_errors(patient)
    assert_no_page_errors(doctor)


def test_an_iphone_without_the_camera_goes_in_and_the_doctor_is_told(
    live_server: LiveServer, contexts: Contexts, asking: Contexts
) -> None:
    # The microphone allowed, the camera refused.
    doctor, patient = at_device_check(
        live_server, contexts, asking, "fr-FR", permissions=["microphone"], **phone(IPHONE)
    )
    expect(patient.locator("#devices-error")).to_have_attribute("data-platform", "ios")
    expect(patient.locator("#devices-error-text")).to_contain_text("la caméra ou le micro")
    expect(patient.locator("#devices-help-steps li").nth(0)).to_contain_text("« aA »")
    expect(patient.locator("#devices-help-note")).to_contain_text("Réglages, puis Safari")
    expect(patient.locator("#ready-warning")).to_have_text(
        "Sans caméra, votre médecin ne vous verra pas, mais vous pourrez lui parler."
    )
    expect(patient.locator("#mic-status")).not_to_have_text("Indisponible")
    shot(patient, "device-help-ios-no-camera-fr-phone390")
    patient.get_by_role("button", name="Entrer en salle d'attente").click()
    expect(patient.locator("#waiting-step h1")).to_be_visible()

    open_the_call(doctor)
    doctor.locator("#lobby").get_by_role("button", name="Faire entrer").click()
    expect(patient.locator("#call-step")).to_be_visible()
    # The doctor's tile: joined without a camera, not "turned it off", read to screen readers.
    state = doctor.locator("#peer-state")
    expect(state).to_have_text("Alice Dupont participe sans caméra")
    expect(state).to_have_attribute("data-missing", "video")
    expect(state).to_have_attribute("role", "status")
    expect(doctor.get_by_role("status").filter(has_text="participe sans caméra")).to_have_count(1)
    # Muting the microphone she has adds to it.
    patient.locator("#patient-mic").click()
    expect(state).to_have_text("Alice Dupont participe sans caméra et a coupé son micro")
    patient.locator("#patient-mic").click()
    expect(state).to_have_text("Alice Dupont participe sans caméra")
    # The patient's own camera button does not pretend there is a camera to turn off.
    expect(patient.locator("#patient-camera")).to_be_disabled()
    expect(patient.locator("#patient-camera")).to_have_text("Pas de caméra")
    expect(patient.locator("#patient-mic")).to_be_enabled()
    shot(patient, "device-help-ios-no-camera-call-fr-phone390")
    shot(doctor, "device-help-doctor-told-no-camera-fr-desktop")
    doctor.get_by_role("button", name="EN", exact=True).click()
    expect(state).to_have_text("Alice Dupont joined without a camera")
    assert_no_page_errors(patient)
    assert_no_page_errors(doctor)
