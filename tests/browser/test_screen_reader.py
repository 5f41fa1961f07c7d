"""What a screen reader gets in the waiting room and in the call, read from Chromium's
accessibility tree over the DevTools protocol (Accessibility.getFullAXTree), the tree screen
readers are given: every control has a name, the live regions are there with the politeness
they need, and they receive the admission, the chat's news and the other person's microphone
state as they happen."""

from __future__ import annotations

import time
from typing import Any

import pytest
from playwright.sync_api import CDPSession, Page, expect

from tests.conftest import deadline

from .conftest import Contexts, LiveServer, assert_no_page_errors
from .test_call import assert_in_call, doctor_on_the_call_page, patient_to_waiting_room

pytestmark = pytest.mark.browser

# The roles a person operates: each must have a name a screen reader can say.
CONTROL_ROLES = {
    "button",
    "link",
    "textbox",
    "searchbox",
    "combobox",
    "listbox",
    "checkbox",
    "radio",
    "switch",
    "slider",
    "spinbutton",
    "menuitem",
    "tab",
    "DisclosureTriangle",
}


class AXTree:
    """One snapshot of a page's accessibility tree, its nodes by id and by DOM node."""

    def __init__(self, session: CDPSession) -> None:
        self.session = session
        nodes = session.send("Accessibility.getFullAXTree")["nodes"]
        self.nodes: dict[str, dict[str, Any]] = {node["nodeId"]: node for node in nodes}
        self.by_dom: dict[int, dict[str, Any]] = {
            node["backendDOMNodeId"]: node for node in nodes if "backendDOMNodeId" in node
        }

    def of(self, selector: str) -> dict[str, Any]:
        """The accessibility node of the element the CSS selector finds."""
        root = self.session.send("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
        found = self.session.send("DOM.querySelector", {"nodeId": root, "selector": selector})
        assert found["nodeId"], f"no element {selector}"
        described = self.session.send("DOM.describeNode", {"nodeId": found["nodeId"]})
        backend = described["node"]["backendNodeId"]
        assert backend in self.by_dom, f"{selector} is not in the accessibility tree"
        return self.by_dom[backend]

    def text(self, node: dict[str, Any]) -> str:
        """What the node's subtree says (its static texts, in order)."""
        parts: list[str] = []
        for child_id in node.get("childIds", []):
            child = self.nodes.get(child_id)
            if child is None:
                continue
            # An ignored node (a plain div) may hold what is said; an ignored text is not said
            # (hidden, aria-hidden).
            if role(child) in ("StaticText", "InlineTextBox"):
                if not child.get("ignored"):
                    parts.append(name(child))
                continue
            parts.append(self.text(child))
        return " ".join(part for part in parts if part).strip()

    def unnamed_controls(self) -> list[str]:
        return [
            f"{role(node)} (DOM node {node.get('backendDOMNodeId')})"
            for node in self.nodes.values()
            if not node.get("ignored") and role(node) in CONTROL_ROLES and not name(node)
        ]

    def controls(self) -> dict[str, str]:
        """The named controls, name → role."""
        return {
            name(node): role(node)
            for node in self.nodes.values()
            if not node.get("ignored") and role(node) in CONTROL_ROLES and name(node)
        }


def role(node: dict[str, Any]) -> str:
    return str(node.get("role", {}).get("value", ""))


def name(node: dict[str, Any]) -> str:
    return str(node.get("name", {}).get("value", "")).strip()


def prop(node: dict[str, Any], key: str) -> Any:
    for entry in node.get("properties", []):
        if entry["name"] == key:
            return entry["value"].get("value")
    return None


def ax_session(page: Page) -> CDPSession:
    session = page.context.new_cdp_session(page)
    session.send("DOM.enable")
    session.send("Accessibility.enable")
    return session


def assert_live(tree: AXTree, selector: str, politeness: str) -> dict[str, Any]:
    node = tree.of(selector)
    assert prop(node, "live") == politeness, (selector, node.get("properties"))
    return node


def wait_said(session: CDPSession, selector: str, expected: str) -> None:
    """The live region's text (in the accessibility tree) becomes ``expected``."""
    said = ""
    end = time.monotonic() + deadline(10)
    while time.monotonic() < end:
        tree = AXTree(session)
        said = tree.text(tree.of(selector))
        if said == expected:
            return
        time.sleep(0.1)
    raise AssertionError(f"{selector} says {said!r}, not {expected!r}")


def test_the_waiting_room_and_the_call_read_well_in_a_screen_reader(
    live_server: LiveServer, contexts: Contexts
) -> None:
    doctor, url, code = doctor_on_the_call_page(live_server, contexts)
    patient = patient_to_waiting_room(contexts, url, code)
    expect(patient.locator("#connection-state")).to_have_attribute("data-state", "waiting")
    patient_ax = ax_session(patient)
    doctor_ax = ax_session(doctor)

    # The patient's waiting room: named controls, the state and the staff's messages said
    # politely, the admission region ready before it is needed.
    tree = AXTree(patient_ax)
    assert not tree.unnamed_controls(), tree.unnamed_controls()
    assert tree.controls()["Quitter la salle d'attente"] == "button"
    waiting = assert_live(tree, "#connection-state", "polite")
    assert role(waiting) == "status"
    assert tree.text(waiting) == "Votre médecin sait que vous êtes là."
    assert_live(tree, "#staff-message-live", "polite")
    assert role(assert_live(tree, "#patient-announce", "polite")) == "status"
    assert name(tree.of("#waiting-title")) == "Vous êtes en salle d'attente"

    # The doctor's side of the waiting room: the knock is said in the list's live region,
    # and each action names the patient.
    expect(doctor.locator("#lobby .waiting-item")).to_contain_text("Alice Dupont")
    tree = AXTree(doctor_ax)
    assert not tree.unnamed_controls(), tree.unnamed_controls()
    lobby = assert_live(tree, "#waiting-list", "polite")
    assert "Alice Dupont" in tree.text(lobby)
    controls = tree.controls()
    assert controls["Faire entrer Alice Dupont"] == "button"
    assert controls["Refuser Alice Dupont"] == "button"
    assert role(assert_live(tree, "#call-status", "polite")) == "status"

    # Let in: the patient's page says so.
    doctor.locator("#lobby").get_by_role("button", name="Faire entrer Alice Dupont").click()
    wait_said(
        patient_ax,
        "#patient-announce",
        "Votre médecin vous a fait entrer : la consultation commence.",
    )
    assert_in_call(doctor, patient)

    # The call, both sides: every control named, the toolbar too, the regions in place.
    for session, hang_up in ((patient_ax, "Quitter"), (doctor_ax, "Terminer la consultation")):
        tree = AXTree(session)
        assert not tree.unnamed_controls(), tree.unnamed_controls()
        controls = tree.controls()
        for control in ("Couper le micro", "Couper la caméra", "Messages", hang_up):
            assert controls.get(control) == "button", (control, controls)
        toolbar = tree.of(".call-controls")
        assert role(toolbar) == "toolbar" and name(toolbar) == "Commandes de l'appel"
        assert_live(tree, "#peer-state", "polite")
        # The chat's news region, not its log: the log is out of the tree while its panel
        # is closed.
        assert_live(tree, "#chat-news", "polite")

    # A message while the patient's chat is closed: the news region says who wrote, the
    # toggle's name counts it.
    doctor.click("#chat-toggle")
    doctor.fill("#chat-input", "Bonjour Alice")
    doctor.press("#chat-input", "Enter")
    wait_said(patient_ax, "#chat-news", "Nouveau message de Dr Claire Martin : 1 non lu")
    tree = AXTree(patient_ax)
    assert name(tree.of("#chat-toggle")) == "Messages, 1 non lu"
    # Opened, the log (a polite live region) holds the message, the news region is quiet.
    patient.click("#chat-toggle")
    wait_said(patient_ax, "#chat-news", "")
    tree = AXTree(patient_ax)
    assert "Bonjour Alice" in tree.text(assert_live(tree, "#chat-log", "polite"))
    assert name(tree.of("#chat-log")) == "Messages échangés"

    # The doctor turns the microphone off: the patient's page says it.
    doctor.click("#toggle-mic")
    wait_said(patient_ax, "#peer-state", "Dr Claire Martin a coupé son micro")
    doctor.click("#toggle-mic")
    wait_said(patient_ax, "#peer-state", "")
    assert_no_page_errors(doctor)
    assert_no_page_errors(patient)
