"""Recording through the real pages: in a call between two Chromium pages, the doctor clicks
Record, both consent in the prompt, both see the indicator while each page sends its camera
and microphone to the server's recording peer over a second, send-only connection; one of
them stops it from the page; the doctor downloads the recording (decrypted by the server
while it streams) and PyAV finds both participants' audio and video in it. A refusal
records nothing and both are told."""

from __future__ import annotations

import dataclasses
import io
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import pytest
from playwright.sync_api import Locator, Page, expect

from config import SecuritySettings, TurnSettings
from signaling.live.signaling_state import SIGNALING
from tests import test_turn
from tests.conftest import deadline, deadline_ms
from tests.rtc import Coturn

from .conftest import SCREENSHOTS, Contexts, LiveServer, assert_no_page_errors, snap
from .test_call import (
    assert_remote_video_plays,
    doctor_with_consultation,
    open_the_call,
    patient_to_waiting_room,
)
from .test_call_relay import SELECTED_PAIR

pytestmark = pytest.mark.browser

coturn = test_turn.coturn  # the real coturn of the aiortc TURN tests, same secret

# The page's send-only connection to the recording peer is connected (TRACK_PEERS of
# test_call keeps every RTCPeerConnection the page makes in window.__peers).
RECORDING_PEER_CONNECTED = """() => window.__peers.some((pc) => {
  const transceivers = pc.getTransceivers();
  return pc.connectionState === "connected" && transceivers.length > 0 &&
    transceivers.every((t) => t.direction === "sendonly");
})"""
# The call's own connection (send and receive) is still there and connected.
CALL_PEER_CONNECTED = """() => window.__peers.some((pc) =>
  pc.connectionState === "connected" &&
  pc.getTransceivers().some((t) => t.direction === "sendrecv"))"""

# What the devices panel does on a camera change: a fresh track in the page's stream, the
# old one stopped.
SWAP_CAMERA = """() => {
  const stream = document.querySelector("#patient-self").srcObject;
  const old = stream.getVideoTracks()[0];
  const fresh = old.clone();
  stream.removeTrack(old);
  stream.addTrack(fresh);
  old.stop();
  window.__freshCamera = fresh;
}"""
RECORDING_SENDS_CURRENT_CAMERA = """() => window.__peers.some((pc) =>
  pc.connectionState === "connected" &&
  pc.getTransceivers().every((t) => t.direction === "sendonly") &&
  pc.getSenders().some((s) => s.track === window.__freshCamera))"""
# The recording connection's selected candidate pair, its policy and what it offered: the
# call's probe (test_call_relay) pointed at the send-only connection instead.
CALL_PEER = '(p) => p.connectionState === "connected"'
assert CALL_PEER in SELECTED_PAIR
RECORDING_PAIR = SELECTED_PAIR.replace(
    CALL_PEER,
    f"{CALL_PEER} && p.getTransceivers().length > 0 &&"
    ' p.getTransceivers().every((t) => t.direction === "sendonly")',
)


@pytest.fixture
def live_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    """The app with recording on (unless parametrized with False); its recording peer offers
    loopback candidates only (the browsers are on this machine and nothing else may be a
    target of traffic)."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    server = LiveServer(data_dir, SecuritySettings())
    param = getattr(request, "param", True)
    recording = dataclasses.replace(
        server.settings.recording,
        enabled=param is not False,
        worker_loopback="only",
        retention_days=30,
    )
    server.settings = dataclasses.replace(server.settings, recording=recording)
    if param == "relay_only":
        # turn.relay_only with the real coturn of the TURN tests (its secret).
        coturn: Coturn = request.getfixturevalue("coturn")
        secret_file = tmp_path / "turn.key"
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, test_turn.SECRET_TEXT.encode() + b"\n")
        os.close(fd)
        turn = TurnSettings(turn_urls=(coturn.url,), secret_file=str(secret_file), relay_only=True)
        server.settings = server.settings.replace(turn=turn).validate()
    server.start()
    yield server
    server.stop()


def in_call(live_server: LiveServer, contexts: Contexts) -> tuple[Page, Page]:
    doctor, url, code = doctor_with_consultation(live_server, contexts)
    open_the_call(doctor)
    # Before the patient is in the call there is nothing to record.
    expect(record_button(doctor)).to_be_hidden()
    patient = patient_to_waiting_room(contexts, url, code)
    doctor.locator("#lobby").get_by_role("button", name="Faire entrer").click()
    assert_remote_video_plays(patient, "#patient-remote")
    assert_remote_video_plays(doctor, "#remote-video")
    return doctor, patient


def consent_prompt(page: Page) -> Locator:
    return page.get_by_role("dialog", name="Enregistrer la consultation ?")


def record_button(page: Page) -> Locator:
    return page.get_by_role("button", name="Enregistrer", exact=True)


def indicator(page: Page) -> Locator:
    return page.locator(".recording-indicator")


def recordings(page: Page) -> list[dict[str, Any]]:
    """GET /api/recordings with the doctor's session (the page's cookies)."""
    response = page.request.get("/api/recordings")
    assert response.status == 200, response.text()
    return list(response.json()["recordings"])


def settled_recordings(page: Page) -> list[dict[str, Any]]:
    """The recordings once none is still being written: the room hears a stop as soon as
    media intake ends, and the record turns complete after the file is sealed (and made
    seekable), a moment later on a busy machine."""
    limit = time.monotonic() + deadline(20)
    while True:
        listed = recordings(page)
        if all(r["status"] != "recording" for r in listed) or time.monotonic() > limit:
            return listed
        page.wait_for_timeout(100)


def both_record(doctor: Page, patient: Page) -> None:
    """The doctor asks, both accept in the prompt, both pages send to the recording peer."""
    record_button(doctor).click()
    for page in (patient, doctor):
        consent_prompt(page).get_by_role("button", name="J'accepte").click()
    for page in (doctor, patient):
        expect(indicator(page)).to_be_visible()
        page.wait_for_function(RECORDING_PEER_CONNECTED, timeout=deadline_ms(20))


def media_seconds(packets: list[av.Packet[Any]]) -> float:
    stamps = [p.pts * p.time_base for p in packets if p.pts is not None and p.time_base]
    return float(max(stamps) - min(stamps)) if stamps else 0.0


@pytest.mark.slow
def test_both_consent_in_the_pages_and_the_recording_holds_both_participants(
    live_server: LiveServer, contexts: Contexts
) -> None:
    doctor, patient = in_call(live_server, contexts)
    record_button(doctor).click()

    # Both are asked, in a modal prompt saying what, who, how long, encrypted, stoppable.
    for page in (doctor, patient):
        prompt = consent_prompt(page)
        expect(prompt).to_be_visible()
        expect(prompt).to_contain_text("le son et l'image de vous deux")
        expect(prompt).to_contain_text("le médecin et les administrateurs du cabinet")
        expect(prompt).to_contain_text("30 jours")
        expect(prompt).to_contain_text("chiffré")
        expect(prompt).to_contain_text("à tout moment")
    expect(consent_prompt(patient)).to_contain_text("Votre médecin souhaite enregistrer")
    snap(patient, "recording-consent-patient")
    snap(doctor, "recording-consent-doctor")
    # One consent starts nothing.
    patient.get_by_role("button", name="J'accepte").click()
    expect(consent_prompt(patient)).to_be_hidden()
    expect(patient.locator(".recording-status")).to_contain_text("En attente de la réponse")
    doctor.wait_for_timeout(500)
    expect(indicator(patient)).to_be_hidden()
    assert recordings(doctor) == []

    # The doctor answers with the keyboard alone: the prompt holds the focus.
    expect(doctor.locator("dialog.recording-consent h2")).to_be_focused()
    doctor.keyboard.press("Tab")
    expect(doctor.get_by_role("button", name="Je refuse")).to_be_focused()
    doctor.keyboard.press("Tab")
    accept = doctor.get_by_role("button", name="J'accepte")
    expect(accept).to_be_focused()
    doctor.keyboard.press("Enter")
    accepted_at = time.monotonic()  # no media is taken before both consents

    for page in (doctor, patient):
        expect(indicator(page)).to_be_visible()
        expect(indicator(page)).to_have_text("Enregistrement en cours")
        expect(page.get_by_role("button", name="Arrêter l'enregistrement")).to_be_visible()
        expect(page.locator(".recording-status")).to_have_text("L'enregistrement a commencé.")
    expect(record_button(doctor)).to_be_hidden()
    # Each page sends to the recording peer over its own send-only connection; the call's
    # connection is untouched.
    for page in (doctor, patient):
        page.wait_for_function(RECORDING_PEER_CONNECTED, timeout=deadline_ms(20))
    connected_at = time.monotonic()
    for page in (doctor, patient):
        assert page.evaluate(CALL_PEER_CONNECTED)
    # The patient switches camera mid-way (the stream's track is swapped, as the devices
    # panel does): the recording follows the new track.
    patient.evaluate(SWAP_CAMERA)
    patient.wait_for_function(RECORDING_SENDS_CURRENT_CAMERA, timeout=deadline_ms(5))
    snap(doctor, "recording-on-doctor")
    snap(patient, "recording-on-patient")
    doctor.wait_for_timeout(5000 - (time.monotonic() - connected_at) * 1000)

    # The patient stops it: both see it stop. (The server bounds a stop at a second, then
    # kills the worker: media/recording_service.STOP_TIMEOUT; a shared 2-core machine is no
    # place to time the pages, hence the generous wait.)
    patient.get_by_role("button", name="Arrêter l'enregistrement").click()
    stopped_at = time.monotonic()
    for page in (patient, doctor):
        expect(indicator(page)).to_be_hidden(timeout=deadline_ms(5))
        expect(page.locator(".recording-status")).to_have_text("L'enregistrement est arrêté.")
        expect(page.get_by_role("button", name="Arrêter l'enregistrement")).to_be_hidden()
    expect(record_button(doctor)).to_be_visible()
    for page in (doctor, patient):
        page.wait_for_function(f"() => !({RECORDING_PEER_CONNECTED})()")
        assert page.evaluate(CALL_PEER_CONNECTED)  # the call goes on
    # At least from the moment both pages were seen connected to the recording peer; at most
    # from the consent (on a busy machine one page may connect, and send, seconds before the
    # test has seen the other connected).
    recorded_for = stopped_at - connected_at
    at_most = stopped_at - accepted_at

    # The doctor lists and downloads it; the server decrypts it while it streams.
    listed = settled_recordings(doctor)
    assert len(listed) == 1 and listed[0]["status"] == "complete", listed
    assert listed[0]["stop_reason"] == "consent_withdrawn"
    download = doctor.request.get(f"/api/recordings/{listed[0]['id']}/download")
    assert download.status == 200
    assert download.headers["content-type"] == "video/webm"
    webm = download.body()
    # Kept for a person to play when something below fails (test-artifacts/ is not in git).
    (SCREENSHOTS.parent / "recording-browser-test.webm").write_bytes(webm)
    with av.open(io.BytesIO(webm), mode="r") as container:
        kinds = [s.type for s in container.streams]
        assert sorted(kinds) == ["audio", "audio", "video", "video"]  # both participants
        packets: dict[int, list[av.Packet[Any]]] = {s.index: [] for s in container.streams}
        for packet in container.demux():
            if packet.size:
                packets[packet.stream.index].append(packet)
    for index, kind in enumerate(kinds):
        # Every stream's frames decode (each from the start of the file, as a player reads
        # it), and they cover the time media flowed.
        with av.open(io.BytesIO(webm), mode="r") as container:
            decoded = len(list(container.decode(container.streams[index])))
        assert decoded > (20 if kind == "video" else 100), (index, kind, decoded)
        seconds = media_seconds(packets[index])
        assert recorded_for * 0.8 - 0.5 <= seconds <= at_most + 1.5, (
            kind,
            seconds,
            recorded_for,
            at_most,
        )
    assert_no_page_errors(doctor)
    assert_no_page_errors(patient)


def test_the_patient_refuses_and_nothing_is_recorded(
    live_server: LiveServer, contexts: Contexts
) -> None:
    doctor, patient = in_call(live_server, contexts)
    record_button(doctor).click()
    expect(consent_prompt(doctor)).to_be_visible()
    expect(consent_prompt(patient)).to_be_visible()
    patient.get_by_role("button", name="Je refuse").click()
    # The doctor's prompt goes away unanswered: there is nothing left to consent to.
    expect(consent_prompt(doctor)).to_be_hidden()
    expect(doctor.locator(".recording-status")).to_have_text(
        "Le patient a refusé l'enregistrement. Rien n'est enregistré."
    )
    expect(patient.locator(".recording-status")).to_have_text(
        "Vous avez refusé l'enregistrement. Rien n'est enregistré."
    )
    for page in (doctor, patient):
        expect(indicator(page)).to_be_hidden()
    # The doctor may ask again later; nothing was recorded.
    expect(record_button(doctor)).to_be_visible()
    assert recordings(doctor) == []
    snap(doctor, "recording-refused-doctor")
    # Escape in the prompt is a refusal too (never a silent yes).
    record_button(doctor).click()
    expect(consent_prompt(patient)).to_be_visible()
    patient.keyboard.press("Escape")
    expect(doctor.locator(".recording-status")).to_have_text(
        "Le patient a refusé l'enregistrement. Rien n'est enregistré."
    )
    expect(consent_prompt(doctor)).to_be_hidden()
    assert recordings(doctor) == []
    assert_no_page_errors(doctor)
    assert_no_page_errors(patient)


def test_a_recorder_failure_is_told_to_both_and_the_indicator_goes_off(
    live_server: LiveServer, contexts: Contexts
) -> None:
    doctor, patient = in_call(live_server, contexts)
    both_record(doctor, patient)
    # The recording worker dies (as on a crash or an out-of-memory kill).
    sessions = list(live_server.app[SIGNALING].recordings.sessions.values())  # type: ignore[index]
    workers = [s.worker for s in sessions if s.worker is not None]
    assert len(workers) == 1
    os.kill(workers[0].pid, signal.SIGKILL)
    for page in (doctor, patient):
        expect(indicator(page)).to_be_hidden(timeout=deadline_ms(10))
        alert = page.get_by_role("alert")
        expect(alert).to_have_text(
            "L'enregistrement s'est arrêté : l'enregistreur du serveur a rencontré une erreur."
        )
        expect(page.get_by_role("button", name="Arrêter l'enregistrement")).to_be_hidden()
        assert page.evaluate(CALL_PEER_CONNECTED)  # the call goes on
    snap(patient, "recording-failed-patient")
    listed = recordings(doctor)
    assert [r["stop_reason"] for r in listed] == ["recorder_exited"]
    # A new request clears the error.
    record_button(doctor).click()
    expect(consent_prompt(patient)).to_be_visible()
    expect(patient.locator(".recording-alert")).to_be_hidden()
    assert_no_page_errors(doctor)
    assert_no_page_errors(patient)


@pytest.mark.parametrize("live_server", [False], indirect=True)
def test_no_record_button_when_the_service_does_not_record(
    live_server: LiveServer, contexts: Contexts
) -> None:
    doctor, patient = in_call(live_server, contexts)
    # In a call (the button would be there by now: see the tests above), yet nothing offered.
    expect(doctor.locator(".recording-record")).to_be_hidden()
    expect(patient.locator(".recording-record")).to_be_hidden()
    assert_no_page_errors(doctor)
    assert_no_page_errors(patient)


def recording_pair(page: Page) -> dict[str, Any]:
    """RECORDING_PAIR once the connected recording connection has selected its pair."""
    limit = time.monotonic() + deadline(10)
    while (pair := page.evaluate(RECORDING_PAIR)) is None and time.monotonic() < limit:
        page.wait_for_timeout(200)
    assert isinstance(pair, dict), "the recording connection selected no candidate pair"
    return pair


@pytest.mark.parametrize("live_server", ["relay_only"], indirect=True)
def test_under_relay_only_the_recording_connection_goes_through_turn_too(
    live_server: LiveServer, contexts: Contexts, coturn: Coturn
) -> None:
    # turn.relay_only keeps each side's address from the other; the recording connection
    # must not hand the recording peer a host address either.
    doctor, patient = in_call(live_server, contexts)
    both_record(doctor, patient)
    for page in (doctor, patient):
        pair = recording_pair(page)
        assert pair["policy"] == "relay", pair
        assert pair["local"] == "relay", pair
        assert pair["turnUrl"] == coturn.url, pair
        assert pair["offered"] and all(" typ relay" in c for c in pair["offered"]), pair
    doctor.wait_for_timeout(2000)
    doctor.get_by_role("button", name="Arrêter l'enregistrement").click()
    for page in (doctor, patient):
        expect(indicator(page)).to_be_hidden(timeout=deadline_ms(5))
    listed = settled_recordings(doctor)
    assert [r["status"] for r in listed] == ["complete"], listed
    assert_no_page_errors(doctor)
    assert_no_page_errors(patient)


def test_a_pending_request_is_cancelled_for_the_doctor_when_the_patient_leaves(
    live_server: LiveServer, contexts: Contexts
) -> None:
    doctor, patient = in_call(live_server, contexts)
    record_button(doctor).click()
    expect(consent_prompt(patient)).to_be_visible()
    consent_prompt(doctor).get_by_role("button", name="J'accepte").click()
    expect(doctor.locator(".recording-status")).to_contain_text("En attente de la réponse")
    # The patient leaves with the prompt still open: the server ends the request and says so;
    # the doctor is told nothing was recorded (not that a recording stopped).
    patient.close()
    expect(doctor.locator(".recording-status")).to_have_text(
        "La demande d'enregistrement est annulée. Rien n'est enregistré."
    )
    expect(consent_prompt(doctor)).to_be_hidden()
    expect(indicator(doctor)).to_be_hidden()
    snap(doctor, "recording-request-cancelled-doctor")
    assert recordings(doctor) == []
    assert_no_page_errors(doctor)
