"""The call screen's features, in two Chromium contexts on a real call: the security code
derived from both DTLS fingerprints, chat and a file over the data channel (never through the
server), the connection-quality indicator, device switch with replaceTrack, the doctor's
screen share, and "reconnecting…" with an ICE restart when the media path breaks."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import FilePayload, Page, ViewportSize, expect

from tests.conftest import deadline_ms

from .conftest import DESKTOP, PHONE, Contexts, LiveServer, assert_no_page_errors, snap
from .test_call import (
    assert_encrypted,
    assert_remote_video_plays,
    doctor_with_consultation,
    open_the_call,
    patient_to_waiting_room,
)

pytestmark = pytest.mark.browser

# Every frame the page's signaling sockets send or receive, to show what the server saw.
RECORD_SIGNALING = """
window.__frames = [];
const NativeSocketForRecord = window.WebSocket;
window.WebSocket = class extends NativeSocketForRecord {
  constructor(...args) {
    super(...args);
    this.addEventListener("message", (event) => window.__frames.push(String(event.data)));
  }
  send(data) { window.__frames.push(String(data)); return super.send(data); }
};
"""

# Each RTCRtpSender.replaceTrack() call: the kind of the new track (or null).
COUNT_REPLACE_TRACK = """
window.__replaced = [];
const nativeReplaceTrack = RTCRtpSender.prototype.replaceTrack;
RTCRtpSender.prototype.replaceTrack = function (track) {
  window.__replaced.push(track ? track.kind : null);
  return nativeReplaceTrack.call(this, track);
};
"""

LIVE_PEER = "window.__peers.filter((p) => p.connectionState !== 'closed').pop()"

_FINGERPRINT = re.compile(r"^a=fingerprint:(\S+)\s+(\S+)\s*$", re.MULTILINE | re.IGNORECASE)


def fingerprint(sdp: str) -> str:
    match = _FINGERPRINT.search(sdp)
    assert match, "no a=fingerprint line in the SDP"
    return f"{match[1].lower()} {match[2].upper()}"


def short_code(sdp_a: str, sdp_b: str) -> str:
    """The code as web/static/call-code.js computes it, from the two SDPs."""
    data = "\n".join(sorted([fingerprint(sdp_a), fingerprint(sdp_b)])).encode()
    number = int.from_bytes(hashlib.sha256(data).digest()[:4], "big") % 1_000_000
    digits = f"{number:06d}"
    return f"{digits[:3]} {digits[3:]}"


def descriptions(page: Page) -> dict[str, str]:
    return dict(
        page.evaluate(
            f"""() => {{
              const pc = {LIVE_PEER};
              return {{ local: pc.localDescription.sdp, remote: pc.remoteDescription.sdp }};
            }}"""
        )
    )


def start_call(
    live_server: LiveServer, contexts: Contexts, init_script: str = ""
) -> tuple[Page, Page]:
    """Doctor and patient in a call, both seeing the other's video."""
    doctor, url, code = doctor_with_consultation(live_server, contexts)
    doctor.add_init_script(init_script)  # for the call page the doctor opens next
    open_the_call(doctor)
    patient = patient_to_waiting_room(contexts, url, code, init_script=init_script)
    doctor.locator("#lobby").get_by_role("button", name="Faire entrer").click()
    assert_remote_video_plays(patient, "#patient-remote")
    assert_remote_video_plays(doctor, "#remote-video")
    return doctor, patient


def test_both_sides_show_the_same_security_code_from_both_fingerprints(
    live_server: LiveServer, contexts: Contexts
) -> None:
    doctor, patient = start_call(live_server, contexts)
    assert_encrypted(doctor)
    for page in (doctor, patient):
        expect(page.locator("#call-code")).to_be_visible()
        expect(page.locator("#call-code-value")).to_have_text(re.compile(r"^\d{3} \d{3}$"))
    shown = str(doctor.locator("#call-code-value").text_content())
    assert patient.locator("#call-code-value").text_content() == shown

    # The test computes it itself from the certificates each side really uses.
    doctor_sdp, patient_sdp = descriptions(doctor), descriptions(patient)
    assert fingerprint(doctor_sdp["local"]) == fingerprint(patient_sdp["remote"])
    assert fingerprint(patient_sdp["local"]) == fingerprint(doctor_sdp["remote"])
    assert fingerprint(doctor_sdp["local"]) != fingerprint(patient_sdp["local"])
    assert short_code(doctor_sdp["local"], doctor_sdp["remote"]) == shown

    # An optional check: what to do and what it shows are one click (or Enter) away.
    expect(patient.locator("#call-code summary")).to_have_text("Vérifier ensemble (facultatif)")
    patient.locator("#call-code summary").focus()
    patient.keyboard.press("Enter")
    expect(patient.locator("#call-code-value")).to_be_visible()
    expect(patient.locator("#call-code")).to_contain_text("lisez ce code à voix haute")

    # Quality: measured every 2 s, "good" on loopback, the figures in the tooltip.
    for page in (doctor, patient):
        expect(page.locator("#call-quality")).to_have_attribute(
            "data-quality", "good", timeout=deadline_ms(20)
        )
        expect(page.locator("#call-quality-label")).to_have_text("Connexion : bonne")
        figures = page.locator("#call-quality-figures")
        page.mouse.move(0, 0)  # not hovering the indicator
        expect(figures).to_be_hidden()
        page.locator("#call-quality-button").focus()
        expect(figures).to_be_visible()
        expect(figures).to_contain_text(re.compile(r"Aller-retour \d+ ms · pertes \d+,\d %"))
        expect(figures).to_contain_text(re.compile(r"gigue \d+ ms"))
        expect(figures).to_contain_text(re.compile(r"\d+ img/s"))
    snap(patient, "call-features-patient-quality")

    # The grading thresholds, on the page's own module (every rule: tests/test_call_screen_js.py).
    grades = doctor.evaluate(
        """async () => {
          const { grade } = await import("/static/call-quality.js");
          const base = { rttMs: 20, lossPercent: 0, jitterMs: 5, fps: 30, outgoingKbps: 2000 };
          return [
            grade(base),
            grade({ ...base, fps: 2, outgoingKbps: 100 }),
            grade({ ...base, rttMs: 400 }),
            grade({ ...base, lossPercent: 3 }),
            grade({ ...base, jitterMs: 50 }),
            grade({ ...base, rttMs: 900 }),
            grade({ ...base, lossPercent: 12 }),
            grade({ ...base, jitterMs: 150 }),
            grade({ ...base, rttMs: null, jitterMs: null, fps: null, outgoingKbps: null }),
          ];
        }"""
    )
    assert grades == ["good"] * 2 + ["fair"] * 3 + ["poor"] * 3 + ["good"]

    # In English too, once the doctor switches.
    doctor.get_by_role("button", name="EN", exact=True).click()
    expect(doctor.locator("#call-quality-label")).to_have_text("Connection: good")
    expect(doctor.locator("#call-code summary")).to_contain_text("Check together (optional)")
    expect(doctor.get_by_role("button", name="Devices")).to_be_visible()
    assert_no_page_errors(doctor)
    assert_no_page_errors(patient)


def test_chat_and_a_file_cross_over_the_data_channel_not_the_server(
    live_server: LiveServer, contexts: Contexts, tmp_path: Path
) -> None:
    doctor, patient = start_call(live_server, contexts, init_script=RECORD_SIGNALING)
    phone: ViewportSize = {"width": PHONE["width"], "height": PHONE["height"]}
    patient.set_viewport_size(phone)

    # The doctor writes; the patient (phone, panel closed) gets an unread badge.
    doctor.get_by_role("button", name="Messages").click()
    expect(doctor.locator("#chat-panel")).to_be_visible()
    expect(doctor.locator("#chat-input")).to_be_focused()
    expect(doctor.locator("#chat-send")).to_be_enabled()
    doctor.keyboard.type("Bonjour, comment allez-vous ?")
    doctor.keyboard.press("Enter")
    expect(doctor.locator("#chat-input")).to_have_value("")
    mine = doctor.locator("#chat-log .chat-from-me")
    expect(mine).to_contain_text("Vous")
    expect(mine).to_contain_text("Bonjour, comment allez-vous ?")
    expect(mine.locator("time")).to_have_text(re.compile(r"^\d{2}:\d{2}$"))

    expect(patient.locator("#chat-panel")).to_be_hidden()
    expect(patient.locator("#chat-unread")).to_have_text("1")
    expect(patient.locator("#chat-toggle")).to_have_attribute("aria-label", "Messages, 1 non lu")
    patient.locator("#chat-toggle").click()
    expect(patient.locator("#chat-unread")).to_be_hidden()
    received = patient.locator("#chat-log .chat-from-peer")
    expect(received).to_contain_text("Dr")  # the doctor's name, as the link page gives it
    expect(received).to_contain_text("Bonjour, comment allez-vous ?")
    patient.fill("#chat-input", "Bien, merci.\nJ'ai mes résultats.")
    patient.get_by_role("button", name="Envoyer", exact=True).click()
    expect(doctor.locator("#chat-log .chat-from-peer")).to_contain_text("J'ai mes résultats.")
    expect(doctor.locator("#chat-log .chat-from-peer")).to_contain_text("Alice Dupont")

    # A file of a few hundred kB, patient to doctor, offered as a download link (not opened).
    payload = os.urandom(300 * 1024 + 123)
    patient.set_input_files(
        "#chat-file",
        files=[
            FilePayload(name="resultats-analyse.pdf", mimeType="application/pdf", buffer=payload)
        ],
    )
    expect(patient.locator("#chat-log")).to_contain_text("Fichier envoyé.")
    link = doctor.get_by_role("link", name="Enregistrer resultats-analyse.pdf")
    expect(link).to_be_visible(timeout=deadline_ms(20))
    assert link.get_attribute("download") == "resultats-analyse.pdf"
    with doctor.expect_download() as download_info:
        link.click()
    download = download_info.value
    assert download.suggested_filename == "resultats-analyse.pdf"
    saved = tmp_path / "received.bin"
    download.save_as(saved)
    assert saved.read_bytes() == payload

    # Too large a file is refused before anything is sent.
    patient.set_input_files(
        "#chat-file",
        files=[
            FilePayload(
                name="scanner.zip",
                mimeType="application/zip",
                buffer=b"\0" * (10 * 1024 * 1024 + 1),
            )
        ],
    )
    expect(patient.locator("#chat-status")).to_have_text(
        "scanner.zip est trop gros : 10 Mo au plus."
    )

    # It all went over SCTP inside the DTLS connection: the data channel carried the bytes...
    channel = patient.evaluate(
        f"""async () => {{
          const pc = {LIVE_PEER};
          const stats = [...(await pc.getStats()).values()].find((r) => r.type === "data-channel");
          return {{ sctp: pc.sctp !== null, sent: stats.bytesSent, label: stats.label }};
        }}"""
    )
    assert channel["sctp"] is True
    assert channel["label"] == "chat"
    assert channel["sent"] > len(payload)
    # ...and no signaling frame, either way, on either side, held a message or the file name.
    for page in (doctor, patient):
        frames = "\n".join(page.evaluate("() => window.__frames"))
        assert '"offer"' in frames  # the recorder saw the signaling itself
        for secret in (
            "comment allez-vous",
            "mes résultats",
            "mes r\\u00e9sultats",
            "resultats-analyse",
        ):
            assert secret not in frames

    snap(doctor, "call-features-doctor-chat")
    patient.set_viewport_size({"width": DESKTOP["width"], "height": DESKTOP["height"]})
    snap(patient, "call-features-patient-chat")
    assert_no_page_errors(doctor)
    assert_no_page_errors(patient)


def test_switching_camera_and_microphone_replaces_the_tracks_without_renegotiation(
    live_server: LiveServer, contexts: Contexts
) -> None:
    doctor, patient = start_call(
        live_server, contexts, init_script=RECORD_SIGNALING + COUNT_REPLACE_TRACK
    )
    offers_before = doctor.evaluate(
        "() => window.__frames.filter((f) => f.includes('\"offer\"')).length"
    )
    old_track = doctor.evaluate(
        "() => document.querySelector('#self-video').srcObject.getVideoTracks()[0].id"
    )

    doctor.get_by_role("button", name="Appareils").click()
    panel = doctor.locator("#devices-panel")
    expect(panel).to_be_visible()
    camera = doctor.get_by_label("Caméra", exact=True)
    expect(camera).to_be_focused()
    expect(camera.locator("option")).not_to_have_count(0)
    expect(doctor.get_by_label("Micro", exact=True).locator("option")).not_to_have_count(0)
    snap(doctor, "call-features-doctor-devices")
    # Chromium's fake devices give one camera: switching to it again still opens a new track.
    camera.select_option(index=0)
    doctor.wait_for_function("() => window.__replaced.includes('video')")
    doctor.get_by_label("Micro", exact=True).select_option(index=0)
    doctor.wait_for_function("() => window.__replaced.includes('audio')")

    new_track = doctor.evaluate(
        "() => document.querySelector('#self-video').srcObject.getVideoTracks()[0].id"
    )
    assert new_track != old_track
    sent = doctor.evaluate(f"""() => {LIVE_PEER}.getSenders().map((s) => s.track && s.track.id)""")
    assert new_track in sent
    # No new offer: replaceTrack needs no negotiation. The patient keeps receiving frames.
    offers_after = doctor.evaluate(
        "() => window.__frames.filter((f) => f.includes('\"offer\"')).length"
    )
    assert offers_after == offers_before
    assert_remote_video_plays(patient, "#patient-remote")
    expect(doctor.locator("#call-status")).to_have_attribute("data-state", "in_call")

    doctor.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(doctor.get_by_role("button", name="Appareils")).to_be_focused()
    assert_no_page_errors(doctor)
    assert_no_page_errors(patient)


def test_doctor_shares_the_screen_then_goes_back_to_the_camera(
    live_server: LiveServer, contexts: Contexts
) -> None:
    doctor, patient = start_call(live_server, contexts, init_script=COUNT_REPLACE_TRACK)
    camera_track = doctor.evaluate(
        "() => document.querySelector('#self-video').srcObject.getVideoTracks()[0].id"
    )
    video_sender_track = f"""() => {{
      const pc = {LIVE_PEER};
      const sender = pc.getTransceivers().find((t) => t.receiver.track.kind === "video").sender;
      return sender.track && sender.track.id;
    }}"""
    expect(patient.locator("#share-screen")).to_have_count(0)  # the doctor's feature only

    share = doctor.get_by_role("button", name="Partager l'écran")
    share.click()
    expect(doctor.locator("#share-banner")).to_be_visible()
    expect(doctor.locator("#share-banner")).to_contain_text("Vous partagez votre écran")
    expect(share).to_have_attribute("aria-pressed", "true")
    shared = doctor.evaluate(video_sender_track)
    assert shared and shared != camera_track
    assert_remote_video_plays(patient, "#patient-remote")
    snap(doctor, "call-features-doctor-sharing")

    doctor.get_by_role("button", name="Arrêter le partage").click()
    expect(doctor.locator("#share-banner")).to_be_hidden()
    expect(share).to_have_attribute("aria-pressed", "false")
    assert doctor.evaluate(video_sender_track) == camera_track
    assert_remote_video_plays(patient, "#patient-remote")

    # The browser's own "stop sharing" ends the track: back to the camera as well.
    share.click()
    expect(doctor.locator("#share-banner")).to_be_visible()
    doctor.evaluate(
        f"""() => {{
          const pc = {LIVE_PEER};
          const sender = pc.getTransceivers().find((t) => t.receiver.track.kind === "video").sender;
          sender.track.stop();
          sender.track.dispatchEvent(new Event("ended"));
        }}"""
    )
    expect(doctor.locator("#share-banner")).to_be_hidden()
    assert doctor.evaluate(video_sender_track) == camera_track
    assert_remote_video_plays(patient, "#patient-remote")
    assert_no_page_errors(doctor)
    assert_no_page_errors(patient)


@pytest.mark.slow
def test_a_broken_media_path_shows_reconnecting_and_the_call_comes_back(
    live_server: LiveServer, contexts: Contexts
) -> None:
    doctor, patient = start_call(live_server, contexts)
    expect(doctor.locator("#call-code-value")).not_to_be_empty()
    # The patient's side of the media path disappears (as when a phone drops off the network
    # while its signaling socket survives): the doctor's ICE checks go unanswered.
    patient.evaluate(f"() => {LIVE_PEER}.close()")
    expect(doctor.locator("#call-status")).to_have_attribute(
        "data-state", "reconnecting", timeout=deadline_ms(20)
    )
    expect(doctor.locator("#call-status")).to_have_text("Connexion perdue, nouvelle tentative…")
    # The doctor restarts ICE, then starts afresh: the call comes back on both sides.
    expect(doctor.locator("#call-status")).to_have_attribute(
        "data-state", "in_call", timeout=deadline_ms(30)
    )
    assert_remote_video_plays(doctor, "#remote-video")
    assert_remote_video_plays(patient, "#patient-remote")
    assert_encrypted(patient)
    for page in (doctor, patient):
        expect(page.locator("#call-code-value")).to_have_text(re.compile(r"^\d{3} \d{3}$"))
    doctor_sdp = descriptions(doctor)
    expect(patient.locator("#call-code-value")).to_have_text(
        short_code(doctor_sdp["local"], doctor_sdp["remote"])
    )
    # The data channel came back with the connection.
    doctor.get_by_role("button", name="Messages").click()
    expect(doctor.locator("#chat-send")).to_be_enabled()
    doctor.fill("#chat-input", "Vous m'entendez ?")
    doctor.keyboard.press("Enter")
    expect(patient.locator("#chat-unread")).to_have_text("1")
    assert_no_page_errors(doctor)
    assert_no_page_errors(patient)
