"""The recordings page in a real Chromium: the doctor sees the recording of a consultation
(date, length, size, consents, retention), plays it in the page (the server decrypts range by
range), seeks to the middle and gets frames there; deletes it after a confirmation. French and
English, desktop and phone screenshots."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import PASSWORD, deadline_ms

from .conftest import Contexts, LiveServer, assert_no_page_errors, snap
from .test_audit_page import create_consultation
from .test_staff_pages import UPCOMING, signed_in

pytestmark = pytest.mark.browser

SECONDS = 20
# After a seek: the media time of the next frame the player presents.
FRAME_AFTER_SEEK = """async (target) => {
  const video = document.querySelector("#player");
  await new Promise((resolve) => {
    video.addEventListener("seeked", resolve, { once: true });
    video.currentTime = target;
  });
  return await new Promise((resolve) =>
    video.requestVideoFrameCallback((now, frame) => resolve(frame.mediaTime)));
}"""


def make_recording(live_server: LiveServer, doctor_id: str, consultation_id: str) -> None:
    from tests.test_media_recorder_units import encode_opus, encode_vp8
    from tests.test_recording_media import seekable_recording

    assert live_server.app is not None
    media = (encode_vp8(SECONDS * 30), encode_opus(SECONDS * 50))  # here, not on its loop
    live_server.call(
        seekable_recording(live_server.app, doctor_id, "rec-page", SECONDS, consultation_id, media)
    )


def make_empty_recording(live_server: LiveServer, doctor_id: str, consultation_id: str) -> None:
    """Stopped before any media arrived, through the pass a stop gives it (marked empty)."""
    from signaling.recording.recordings import RecordingLibrary
    from tests.test_recording_repair import empty_recording

    app = live_server.app
    assert app is not None
    services = live_server.services
    library = RecordingLibrary(services.store, services.clock, services.settings)

    async def make() -> None:
        made = await empty_recording(
            app, doctor_id, "rec-other", killed=False, consultation_id=consultation_id
        )
        done = await library.make_seekable(made, services.clock.now())
        assert done.empty
        await services.store.update_recording(done)

    live_server.call(make())


def open_recordings_from_the_row(page: Page, patient: str, consultation_id: str) -> None:
    """The dashboard row's link opens the recordings page filtered to that consultation."""
    page.click("#refresh")  # the recordings were made after the list was loaded
    row = page.locator(UPCOMING, has_text=patient)
    link = row.locator("a.consult-recordings")
    expect(link).to_have_text("1 enregistrement")
    expect(link).to_have_attribute("href", f"/recordings?consultation={consultation_id}")
    snap(page, "dashboard-recordings-link-fr")
    link.click()
    page.wait_for_url(f"**/recordings?consultation={consultation_id}")
    expect(page.locator("#recording-list .recording-item")).to_have_count(1)
    expect(page.locator("#show-all")).to_be_visible()


@pytest.mark.slow
def test_the_doctor_plays_seeks_and_deletes_a_recording_in_the_page(
    live_server: LiveServer, contexts: Contexts
) -> None:
    accounts = live_server.services.accounts
    doctor = live_server.call(
        accounts.create_user("dr.martin", PASSWORD, "doctor", "Dr Claire Martin")
    )
    page = signed_in(contexts, "dr.martin")
    consultation_id = create_consultation(page, "Alice Dupont")
    other_id = create_consultation(page, "Bruno Leroy")
    make_recording(live_server, doctor.id, consultation_id)
    make_empty_recording(live_server, doctor.id, other_id)

    open_recordings_from_the_row(page, "Alice Dupont", consultation_id)
    item = page.locator(".recording-item")
    expect(item).to_contain_text("Alice Dupont")  # Bruno Leroy's is not in this list
    expect(item).to_contain_text("0:20")
    expect(item).to_contain_text("Patient : accord donné le")
    expect(item).to_contain_text("supprimé automatiquement dans")
    snap(page, "recordings-list-fr")

    item.locator(".recording-play").click()
    video = page.locator("#player")
    expect(page.locator("#player-card")).to_be_visible()
    page.wait_for_function(
        "() => Number.isFinite(document.querySelector('#player').duration)",
        timeout=deadline_ms(20),
    )
    duration = video.evaluate("v => v.duration")
    assert duration == pytest.approx(SECONDS, rel=0.02)  # the file has its Duration
    video.evaluate("v => { v.muted = true; return v.play(); }")
    page.wait_for_function(
        "() => document.querySelector('#player').currentTime > 0.5", timeout=deadline_ms(20)
    )
    target = duration / 2
    landed = page.evaluate(FRAME_AFTER_SEEK, target)
    assert abs(landed - target) <= 1.0, (landed, target)
    video.evaluate("v => v.pause()")
    snap(page, "recordings-player-fr")

    page.locator('.lang-switch button[data-lang="en"]').click()
    expect(item).to_contain_text("Patient: consented on")
    expect(page.locator("h1")).to_have_text("Recordings")
    expect(page.locator("#player-title")).not_to_contain_text("déc.")  # dates follow too
    snap(page, "recordings-player-en")

    item.locator(".recording-delete").click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Alice Dupont")
    page.click("#confirm-ok")
    expect(page.locator(".recording-item")).to_have_count(0)
    expect(page.locator("#list-empty")).to_be_visible()
    expect(page.locator("#player-card")).to_be_hidden()
    snap(page, "recordings-empty-en")
    page.click("#show-all")  # every recording of the doctor: the other consultation's is there
    expect(page.locator(".recording-item")).to_have_count(1)
    empty = page.locator(".recording-item")
    expect(empty).to_contain_text("Bruno Leroy")
    expect(empty).to_contain_text("Empty: the recording stopped before any picture or sound")
    expect(empty.locator(".recording-facts")).not_to_contain_text("MB")  # no size of nothing
    expect(empty.locator(".recording-play")).to_be_disabled()
    expect(empty.locator(".recording-download")).to_be_hidden()
    snap(page, "recordings-without-media-en")

    trail = live_server.call(live_server.services.store.all_audit())
    actions = [e.action for e in trail if e.target == "rec-page"]
    assert actions.count("recording.viewed") == 1
    assert "recording.deleted" in actions
    assert_no_page_errors(page)
