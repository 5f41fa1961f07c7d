"""The call screen for a worried, non-technical person, in two Chromium contexts on a real call:
who is on the other tile, and what they turned off (media_state over the signaling socket),
said with an icon and a sentence read to screen readers instead of a bare black box; the
privacy line in plain words with the technical details behind a disclosure; the security code
as an optional check."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import deadline_ms

from .conftest import Contexts, LiveServer, assert_no_page_errors
from .test_call import doctor_with_consultation
from .test_call_features import RECORD_SIGNALING, start_call
from .test_patient_return import snap_390

pytestmark = pytest.mark.browser


def sent_media_states(page: Page) -> list[dict[str, object]]:
    """The media_state messages the page's socket sent, in order."""
    frames = page.evaluate("() => window.__frames")
    messages = [json.loads(frame) for frame in frames if '"media_state"' in frame]
    return [m for m in messages if "audio" in m and m.get("type") == "media_state"]


def test_the_patient_sees_when_the_doctor_mutes_or_turns_the_camera_off(
    live_server: LiveServer, contexts: Contexts
) -> None:
    doctor, patient = start_call(live_server, contexts, init_script=RECORD_SIGNALING)
    state = patient.locator("#peer-state")
    # Both on: nothing said, but the live region is there to be read when it changes.
    expect(state).to_have_attribute("role", "status")
    expect(state).to_have_attribute("aria-live", "polite")
    expect(state).to_have_text("")
    # Who is on each tile.
    expect(patient.locator("#peer-name")).to_have_text("Dr Claire Martin")
    expect(doctor.locator("#peer-name")).to_have_text("Alice Dupont")

    doctor.locator("#toggle-mic").click()
    expect(state).to_have_text("Dr Claire Martin a coupé son micro")
    expect(state).to_have_attribute("data-off", "audio")
    expect(state.locator("svg[data-kind=audio]")).to_be_visible()
    expect(state.locator("svg[data-kind=video]")).to_be_hidden()
    # Screen readers get the sentence, not the icon.
    expect(patient.get_by_role("status").filter(has_text="a coupé son micro")).to_have_count(1)
    assert state.locator("svg").first.get_attribute("aria-hidden") == "true"
    snap_390(patient, "call-screen-doctor-muted")

    doctor.locator("#toggle-camera").click()
    expect(state).to_have_text("Dr Claire Martin a coupé sa caméra et son micro")
    expect(state).to_have_attribute("data-off", "both")
    doctor.locator("#toggle-mic").click()
    expect(state).to_have_text("Dr Claire Martin a coupé sa caméra")
    expect(state).to_have_attribute("data-off", "video")
    snap_390(patient, "call-screen-doctor-camera-off")

    # English on the patient's side: the text already on screen follows.
    patient.get_by_role("button", name="EN", exact=True).click()
    expect(state).to_have_text("Dr Claire Martin has turned their camera off")
    snap_390(patient, "call-screen-doctor-camera-off-en")

    doctor.locator("#toggle-camera").click()
    expect(state).to_have_text("")
    expect(state).to_have_attribute("data-off", "")
    # What went over the wire: the doctor's state at each change, as the protocol says.
    said = [(m["audio"], m["video"]) for m in sent_media_states(doctor)]
    assert said[-4:] == [(False, True), (False, False), (True, False), (True, True)]

    # The other way round: the patient mutes, the doctor's tile says so with the patient's name.
    patient.locator("#patient-mic").click()
    expect(doctor.locator("#peer-state")).to_have_text("Alice Dupont a coupé son micro")
    patient.locator("#patient-mic").click()
    expect(doctor.locator("#peer-state")).to_have_text("")
    assert_no_page_errors(doctor)
    assert_no_page_errors(patient)


def test_a_doctor_who_reloads_still_learns_the_patient_camera_is_off(
    live_server: LiveServer, contexts: Contexts
) -> None:
    doctor, patient = start_call(live_server, contexts)
    patient.locator("#patient-camera").click()
    expect(doctor.locator("#peer-state")).to_have_text("Alice Dupont a coupé sa caméra")
    # The server keeps nothing: the patient says it again when the doctor's new page joins.
    doctor.reload()
    expect(doctor.locator("#peer-state")).to_have_text(
        re.compile("^Alice Dupont a coupé sa caméra$"), timeout=deadline_ms(20)
    )
    expect(patient.locator("#peer-state")).to_have_text("")
    assert_no_page_errors(patient)


def test_the_call_is_said_private_in_plain_words_with_details_behind_a_disclosure(
    live_server: LiveServer, contexts: Contexts
) -> None:
    doctor, patient = start_call(live_server, contexts)
    privacy = patient.locator("#patient-encryption")
    summary = privacy.locator("summary")
    expect(summary).to_have_text("Votre appel est privé : chiffré de bout en bout")
    expect(patient.locator("#call-quality")).to_have_attribute(
        "data-quality", "good", timeout=deadline_ms(20)
    )
    snap_390(patient, "call-screen-patient")
    # The technical words wait behind the disclosure, closed at first.
    tech = privacy.locator(".call-privacy-tech")
    expect(tech).to_be_hidden()
    cipher = patient.evaluate(
        """async () => {
          const pc = window.__peers.filter((p) => p.connectionState === "connected").pop();
          const { encryptionOf } = await import("/static/call-session.js");
          return encryptionOf(pc);
        }"""
    )
    assert cipher
    summary.focus()
    patient.keyboard.press("Enter")
    expect(tech).to_be_visible()
    expect(tech).to_have_text(f"Détails techniques : DTLS-SRTP, chiffrement {cipher}.")
    expect(privacy.locator(".call-privacy-how")).to_contain_text("ne sont déchiffrés que sur")
    # Re-worded every 2 s with the cipher: after two rounds it is still open, focus kept.
    patient.evaluate(
        """() => {
          window.__reworded = 0;
          new MutationObserver(() => { window.__reworded += 1; }).observe(
            document.querySelector("#patient-encryption .call-privacy-tech"), { childList: true });
        }"""
    )
    patient.wait_for_function("() => window.__reworded >= 2", timeout=deadline_ms(10))
    assert patient.evaluate("() => document.querySelector('#patient-encryption').open")
    expect(summary).to_be_focused()
    # The security code is an optional check, worded calmly, closed at first.
    code = patient.locator("#call-code")
    expect(code.locator("summary")).to_have_text("Vérifier ensemble (facultatif)")
    expect(code.locator("#call-code-value")).to_be_hidden()
    code.locator("summary").click()
    expect(code).to_contain_text("personne ne se trouve entre vous")
    snap_390(patient, "call-screen-privacy")

    patient.get_by_role("button", name="EN", exact=True).click()
    expect(summary).to_have_text("Your call is private: encrypted from end to end")
    expect(tech).to_have_text(f"Technical details: DTLS-SRTP, cipher {cipher}.")
    expect(code.locator("summary")).to_have_text("Check together (optional)")
    snap_390(patient, "call-screen-privacy-en")
    # The doctor's page says the same, in the doctor's language.
    expect(doctor.locator("#call-encryption summary")).to_have_text(
        "Votre appel est privé : chiffré de bout en bout"
    )
    assert_no_page_errors(doctor)
    assert_no_page_errors(patient)


def test_we_hear_you_shows_only_while_the_microphone_picks_something_up(
    live_server: LiveServer, contexts: Contexts
) -> None:
    _, url, code = doctor_with_consultation(live_server, contexts)
    patient = contexts.new_page()
    patient.goto(url)
    patient.fill("#access-code", code)
    patient.click("#code-form button[type=submit]")
    status = patient.locator("#mic-status")
    # Chromium's fake microphone beeps: heard.
    expect(status).to_have_text("✓ Nous vous entendons", timeout=deadline_ms(10))
    # Silence (the track gives zeros when disabled): the reassurance goes.
    patient.evaluate(
        "() => { for (const t of document.querySelector('#preview').srcObject"
        ".getAudioTracks()) t.enabled = false; }"
    )
    expect(status).to_have_text("", timeout=deadline_ms(10))
    patient.evaluate(
        "() => { for (const t of document.querySelector('#preview').srcObject"
        ".getAudioTracks()) t.enabled = true; }"
    )
    expect(status).to_have_text("✓ Nous vous entendons", timeout=deadline_ms(10))
    assert_no_page_errors(patient)
