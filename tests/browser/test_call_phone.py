"""The patient's call on a phone held upright (390×844), in two Chromium contexts on a real
call: the doctor fills the screen, the self view is a small corner tile the patient moves by
dragging it or with its "Move my picture" button, every control is a 44 px target, the chat
sheet leaves the doctor's face in sight; and the front/back camera switch replaces the sent
track without renegotiation, the doctor receiving the new camera's frames."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from .conftest import SCREENSHOTS, Contexts, LiveServer, assert_no_page_errors, settled
from .test_call import assert_remote_video_plays
from .test_call_features import COUNT_REPLACE_TRACK, LIVE_PEER, RECORD_SIGNALING, start_call

pytestmark = pytest.mark.browser

PHONE_390: ViewportSize = {"width": 390, "height": 844}

# Chromium's --use-fake-device-for-media-stream gives one camera ("fake_device_0") that says
# nothing of its facingMode and refuses {facingMode: {exact: ...}}: no phone to switch on.
# This script makes the page see a phone: the fake camera is the front one ("user"), and a
# second, back camera ("environment") is a canvas painted magenta (a colour the fake camera
# never shows, so the doctor's side can tell which camera it receives) through captureStream.
PHONE_CAMERAS = """
(() => {
  const media = navigator.mediaDevices;
  if (!media) return;
  const BACK = "test-back-camera";
  const nativeEnumerate = media.enumerateDevices.bind(media);
  const nativeGetUserMedia = media.getUserMedia.bind(media);
  const withSettings = (track, extra) => {
    const settings = track.getSettings.bind(track);
    track.getSettings = () => ({ ...settings(), ...extra });
    return track;
  };
  media.enumerateDevices = async () => {
    const list = await nativeEnumerate();
    const back = {
      deviceId: BACK, groupId: BACK, kind: "videoinput", label: "Back camera (test)",
      toJSON() { return this; },
    };
    return list.some((d) => d.kind === "videoinput") ? [...list, back] : list;
  };
  function backCamera() {
    const canvas = document.createElement("canvas");
    canvas.width = 320;
    canvas.height = 240;
    const paint = canvas.getContext("2d");
    let n = 0;
    setInterval(() => {
      paint.fillStyle = "rgb(255, 0, 255)";
      paint.fillRect(0, 0, 320, 240);
      paint.fillStyle = "#fff";
      paint.fillRect((n += 8) % 300, 200, 20, 20);  // moving: every frame differs
    }, 40);
    const track = canvas.captureStream(25).getVideoTracks()[0];
    return withSettings(track, { deviceId: BACK, facingMode: "environment" });
  }
  media.getUserMedia = async (constraints) => {
    const video = constraints && constraints.video;
    const pick = (value) =>
      value && typeof value === "object" ? value.exact || value.ideal : value;
    const facing = video && pick(video.facingMode);
    if (facing === "environment" || (video && pick(video.deviceId) === BACK)) {
      window.__backCameraOpened = (window.__backCameraOpened || 0) + 1;
      return new MediaStream([backCamera()]);
    }
    const asked = facing === "user" ? { ...constraints, video: true } : constraints;
    const stream = await nativeGetUserMedia(asked);
    for (const track of stream.getVideoTracks()) withSettings(track, { facingMode: "user" });
    return stream;
  };
})();
"""

# The colour at the top-left of a video (a 16×16 average), drawn into a canvas.
VIDEO_COLOUR = """(selector) => {
  const video = document.querySelector(selector);
  const canvas = document.createElement("canvas");
  canvas.width = 16; canvas.height = 16;
  const paint = canvas.getContext("2d");
  paint.drawImage(video, 0, 0, video.videoWidth / 4, video.videoHeight / 4, 0, 0, 16, 16);
  const data = paint.getImageData(0, 0, 16, 16).data;
  const sum = [0, 0, 0];
  for (let i = 0; i < data.length; i += 4) for (let c = 0; c < 3; c++) sum[c] += data[i + c];
  return sum.map((s) => Math.round(s / 256));
}"""

MAGENTA = f"""() => {{
  const [r, g, b] = ({VIDEO_COLOUR})("#remote-video");
  return r > 180 && b > 180 && g < 90;
}}"""


def box(page: Page, selector: str) -> dict[str, float]:
    found = page.locator(selector).bounding_box()
    assert found, selector
    return {"x": found["x"], "y": found["y"], "width": found["width"], "height": found["height"]}


def corner_of(page: Page) -> str:
    """Which corner of the call view the self tile sits in, from where it is drawn."""
    view, tile = box(page, "#call-step .call-view"), box(page, ".call-self-tile")
    middle_x = tile["x"] + tile["width"] / 2
    middle_y = tile["y"] + tile["height"] / 2
    vertical = "top" if middle_y < view["y"] + view["height"] / 2 else "bottom"
    horizontal = "left" if middle_x < view["x"] + view["width"] / 2 else "right"
    # Inside the view, against its edges (a corner, not somewhere in the middle).
    assert view["x"] <= tile["x"] and tile["x"] + tile["width"] <= view["x"] + view["width"] + 0.5
    assert view["y"] <= tile["y"] and tile["y"] + tile["height"] <= view["y"] + view["height"] + 0.5
    gap_x = min(tile["x"] - view["x"], view["x"] + view["width"] - tile["x"] - tile["width"])
    gap_y = min(tile["y"] - view["y"], view["y"] + view["height"] - tile["y"] - tile["height"])
    assert gap_x <= 16 and gap_y <= 16, (gap_x, gap_y)
    return f"{vertical}-{horizontal}"


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    settled(page)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def test_on_an_upright_phone_the_doctor_fills_the_screen_and_the_self_view_moves(
    live_server: LiveServer, contexts: Contexts
) -> None:
    doctor, patient = start_call(live_server, contexts)
    shot(patient, "call-phone-patient-desktop")
    patient.set_viewport_size(PHONE_390)
    settled(patient)

    # The doctor's video covers most of the screen (under the top bar, above the controls).
    remote = box(patient, "#patient-remote")
    assert remote["width"] >= 389
    assert remote["width"] * remote["height"] >= 0.6 * 390 * 844, remote
    fit = patient.evaluate(
        "() => getComputedStyle(document.querySelector('#patient-remote')).objectFit"
    )
    assert fit == "cover"
    # Nothing below the controls: the page does not scroll on a phone.
    assert patient.evaluate("() => document.documentElement.scrollHeight") <= 844 + 1
    controls = box(patient, "#call-step .call-controls")
    assert controls["y"] + controls["height"] <= 844 + 1
    assert controls["y"] > 844 * 0.75  # at the bottom, where the thumb is

    # One camera (Chromium's fake one): no "Switch camera" to press for nothing.
    expect(patient.locator("#camera-flip")).to_be_hidden()
    # Every control is a 44 px target at least.
    buttons = patient.locator("#call-step button:visible")
    assert buttons.count() >= 5
    for i in range(buttons.count()):
        found = buttons.nth(i).bounding_box()
        name = buttons.nth(i).get_attribute("id") or buttons.nth(i).get_attribute("aria-label")
        assert found and found["width"] >= 44 and found["height"] >= 44, (name, found)

    # The self view: a small upright tile in the bottom-right corner, mirrored.
    tile = box(patient, ".call-self-tile")
    assert tile["width"] <= 0.3 * 390 + 1
    assert corner_of(patient) == "bottom-right"
    shot(patient, "call-phone-patient-fr")

    # Dragged near the top-left, it snaps into that corner.
    patient.mouse.move(tile["x"] + 20, tile["y"] + tile["height"] - 20)
    patient.mouse.down()
    for step in range(1, 11):
        patient.mouse.move(tile["x"] + 20 - step * 22, tile["y"] + tile["height"] - 20 - step * 50)
    patient.mouse.up()
    expect(patient.locator(".call-self-tile")).to_have_attribute("data-corner", "top-left")
    assert corner_of(patient) == "top-left"
    expect(patient.get_by_role("status").filter(has_text="en haut à gauche")).to_have_count(1)

    # By keyboard: the button sends it round the corners.
    move = patient.get_by_role("button", name="Déplacer mon image")
    move.focus()
    patient.keyboard.press("Enter")
    expect(patient.locator(".call-self-tile")).to_have_attribute("data-corner", "top-right")
    assert corner_of(patient) == "top-right"
    patient.keyboard.press("Enter")
    assert corner_of(patient) == "bottom-right"

    # The chat is a sheet over the lower part: the top of the doctor's video stays in sight.
    patient.locator("#chat-toggle").click()
    expect(patient.locator("#chat-panel")).to_be_visible()
    sheet = box(patient, "#chat-panel")
    remote = box(patient, "#patient-remote")
    assert sheet["y"] - remote["y"] >= 0.4 * remote["height"], (sheet, remote)
    for i in range(patient.locator("#chat-panel button:visible").count()):
        found = patient.locator("#chat-panel button:visible").nth(i).bounding_box()
        assert found and found["height"] >= 44, found
    shot(patient, "call-phone-patient-chat-fr")

    patient.get_by_role("button", name="EN", exact=True).click()
    expect(patient.get_by_role("button", name="Move my picture")).to_be_visible()
    shot(patient, "call-phone-patient-chat-en")
    patient.locator("#chat-close").click()
    shot(patient, "call-phone-patient-en")
    assert_no_page_errors(doctor)
    assert_no_page_errors(patient)


def test_the_patient_switches_to_the_back_camera_and_the_doctor_sees_it(
    live_server: LiveServer, contexts: Contexts
) -> None:
    doctor, patient = start_call(
        live_server, contexts, init_script=PHONE_CAMERAS + RECORD_SIGNALING + COUNT_REPLACE_TRACK
    )
    patient.set_viewport_size(PHONE_390)
    flip = patient.get_by_role("button", name="Changer de caméra")
    expect(flip).to_be_visible()

    sent = f"() => {LIVE_PEER}.getSenders().find((s) => s.track?.kind === 'video').track"
    before = patient.evaluate(f"() => ({sent})().id")
    offers_before = patient.evaluate(
        "() => window.__frames.filter((f) => f.includes('\"offer\"')).length"
    )
    assert not doctor.evaluate(MAGENTA)
    expect(patient.locator("#patient-self")).not_to_have_class("call-self call-self-unmirrored")

    flip.click()
    patient.wait_for_function(f"() => ({sent})().getSettings().facingMode === 'environment'")
    after = patient.evaluate(f"() => ({sent})().id")
    assert after != before
    assert patient.evaluate("() => window.__backCameraOpened") == 1
    # The self view shows the same track, not mirrored (the back camera shows things as they are).
    assert (
        patient.evaluate(
            "() => document.querySelector('#patient-self').srcObject.getVideoTracks()[0].id"
        )
        == after
    )
    expect(patient.locator("#patient-self")).to_have_class("call-self call-self-unmirrored")
    # The doctor receives the back camera's frames; no renegotiation was needed.
    doctor.wait_for_function(MAGENTA)
    assert_remote_video_plays(doctor, "#remote-video")
    assert patient.evaluate("() => window.__replaced").count("video") == 1
    assert (
        patient.evaluate("() => window.__frames.filter((f) => f.includes('\"offer\"')).length")
        == offers_before
    )
    shot(patient, "call-phone-patient-back-camera")

    # And back to the front camera: mirrored again, the doctor's side no longer magenta.
    flip.click()
    patient.wait_for_function(f"() => ({sent})().getSettings().facingMode === 'user'")
    expect(patient.locator("#patient-self")).to_have_class("call-self")
    doctor.wait_for_function(f"() => !({MAGENTA})()")
    assert_remote_video_plays(doctor, "#remote-video")
    assert_no_page_errors(doctor)
    assert_no_page_errors(patient)
