"""The patient's whole journey with the keyboard alone (Tab, Shift+Tab, Enter, Space, Escape):
the link, the access code, the device check, the waiting room, the call once the doctor lets
them in, the chat, and leaving with its confirmation. Every step checks where the focus lands
and that it can be seen."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from .conftest import Contexts, LiveServer, assert_no_page_errors
from .test_call import TRACK_PEERS, assert_in_call, doctor_on_the_call_page

pytestmark = pytest.mark.browser

# Where the focus is, and whether a person sees it: the element matches :focus-visible and
# draws an outline (or a focus shadow) at least 2 px wide.
FOCUS = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const outline = style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2;
  const shadow = style.boxShadow !== "none";
  return {
    id: el.id,
    tag: el.tagName.toLowerCase(),
    text: (el.getAttribute("aria-label") || el.textContent || "").trim().slice(0, 60),
    visible: el.matches(":focus-visible") && (outline || shadow),
  };
}"""


def focused(page: Page) -> dict[str, object]:
    now = page.evaluate(FOCUS)
    assert now is not None, "the focus is nowhere (on the page's body)"
    return dict(now)


def tab_to(page: Page, element_id: str, *, backwards: bool = False, limit: int = 40) -> None:
    """Press Tab (or Shift+Tab) until the element has the focus; every stop on the way must
    show its focus."""
    key = "Shift+Tab" if backwards else "Tab"
    stops = []
    for _ in range(limit):
        page.keyboard.press(key)
        now = focused(page)
        stops.append(now["id"] or now["tag"])
        assert now["visible"], f"focus not visible on {now}"
        if now["id"] == element_id:
            return
    raise AssertionError(f"#{element_id} not reached with {key}; the stops: {stops}")


def test_the_patient_goes_from_the_link_to_the_call_and_out_with_the_keyboard_alone(
    live_server: LiveServer, contexts: Contexts
) -> None:
    doctor, url, code = doctor_on_the_call_page(live_server, contexts)

    patient = contexts.new_page(locale="fr-FR")
    patient.add_init_script(TRACK_PEERS)
    patient.goto(url)
    # The link: the code field waits with the focus.
    expect(patient.locator("#access-code")).to_be_focused()
    assert focused(patient)["visible"]
    patient.keyboard.type(code)
    patient.keyboard.press("Enter")

    # The device check: its heading takes the focus (read first), then Tab through it.
    expect(patient.locator("#devices-title")).to_be_focused()
    patient.wait_for_function("() => document.querySelector('#preview').videoWidth > 0")
    tab_to(patient, "speaker-test")
    patient.keyboard.press("Space")
    expect(patient.locator("#speaker-question")).to_be_visible()
    tab_to(patient, "heard-yes")
    patient.keyboard.press("Enter")
    expect(patient.locator("#speaker-status")).to_have_text("✓ Fonctionne")
    tab_to(patient, "ready")
    patient.keyboard.press("Enter")

    # The waiting room: its heading has the focus; the way out is one Tab stop away.
    expect(patient.locator("#waiting-title")).to_be_focused()
    expect(patient.locator("#connection-state")).to_have_attribute("data-state", "waiting")
    tab_to(patient, "leave")

    # Let in: the call's heading takes the focus, the admission is announced.
    doctor.locator("#lobby").get_by_role("button", name="Faire entrer").click()
    expect(patient.locator("#patient-call-title")).to_be_focused()
    expect(patient.locator("#patient-announce")).to_have_text(
        "Votre médecin vous a fait entrer : la consultation commence."
    )
    assert_in_call(doctor, patient)

    # The chat: open it, write, send with Enter; Escape closes it and gives the focus back.
    tab_to(patient, "chat-toggle")
    patient.keyboard.press("Enter")
    expect(patient.locator("#chat-input")).to_be_focused()
    assert focused(patient)["visible"]
    patient.locator("#chat-send").wait_for(state="visible")
    expect(patient.locator("#chat-send")).to_be_enabled()
    patient.keyboard.type("Bonjour docteur")
    patient.keyboard.press("Enter")
    expect(patient.locator("#chat-log")).to_contain_text("Bonjour docteur")
    expect(doctor.locator("#chat-unread")).to_have_text("1")
    # The log scrolls with the keyboard: it is a Tab stop before the input.
    tab_to(patient, "chat-log", backwards=True)
    patient.keyboard.press("Escape")
    expect(patient.locator("#chat-panel")).to_be_hidden()
    expect(patient.locator("#chat-toggle")).to_be_focused()
    assert focused(patient)["visible"]

    # Leaving asks first: the dialog opens on "Rester", which keeps the call.
    tab_to(patient, "patient-hang-up")
    patient.keyboard.press("Enter")
    dialog = patient.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("button[value=cancel]")).to_be_focused()
    patient.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(patient.locator("#call-step")).to_be_visible()
    expect(patient.locator("#patient-hang-up")).to_be_focused()
    # Then out for good: Enter, Tab to the confirmation, Enter.
    patient.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    tab_to(patient, "confirm-ok")
    patient.keyboard.press("Enter")
    try:
        expect(patient.locator("#left-step")).to_be_visible()
    except AssertionError:
        # Seen once in a full run: say what the page knew (its errors, the dialog's answer).
        assert_no_page_errors(patient)
        answer = patient.evaluate("() => document.querySelector('#confirm-dialog').returnValue")
        raise AssertionError(f"still in the call; the dialog answered {answer!r}") from None
    expect(patient.locator("#rejoin")).to_be_focused()
    assert focused(patient)["visible"]
    expect(doctor.locator("#call-status")).to_have_attribute("data-state", "waiting")
    assert_no_page_errors(doctor)
    assert_no_page_errors(patient)
