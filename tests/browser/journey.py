"""The consultation journey as steps that run the same on Chromium (a Playwright ``Page``) and
on Firefox (``FirefoxPage``): both satisfy ``CallPage``, and every check is a condition read in
the page and waited for with a deadline. Used by the cross-browser tests (test_firefox_*.py)."""

from __future__ import annotations

import re
import time
from typing import Any, Literal, Protocol

from playwright.sync_api import ViewportSize

from tests.conftest import PASSWORD, deadline, deadline_ms

from .conftest import DESKTOP, PHONE, SCREENSHOTS, LiveServer, fresh_code
from .firefox import VISIBLE
from .test_call import TRACK_PEERS, TRANSPORT
from .test_staff_pages import create_doctor

# Stays in step with test_call.TRACK_PEERS, under another name so both can run on one page.
LIVE_PEER = "window.__peers.filter((p) => p.connectionState !== 'closed').pop()"


class CallPage(Protocol):
    """What a journey needs of a page: Playwright ``Page``'s own signatures."""

    def goto(self, url: str) -> Any: ...
    def add_init_script(self, script: str) -> Any: ...
    def evaluate(self, expression: str, arg: Any = None) -> Any: ...
    def wait_for_function(
        self,
        expression: str,
        *,
        arg: Any = None,
        timeout: float | None = None,
        polling: float | Literal["raf"] | None = None,
    ) -> Any: ...
    def click(self, selector: str) -> None: ...
    def fill(self, selector: str, value: str) -> None: ...
    def screenshot(self, *, path: str, full_page: bool = False) -> Any: ...
    def set_viewport_size(self, viewport_size: ViewportSize) -> None: ...


# Conditions are polled on a timer, not on animation frames: a Chromium starved of CPU by a
# busy machine (and a Firefox beside it) was seen to stop producing frames for a while, and a
# requestAnimationFrame poll then never came.
POLL_MS = 100
HIDDEN = f"(selector) => !({VISIBLE})(selector)"
ATTRIBUTE = """([selector, name]) => {
  const element = document.querySelector(selector);
  return element ? element.getAttribute(name) : null;
}"""
TEXT = """(selector) => {
  const element = document.querySelector(selector);
  return element ? element.textContent.trim().replace(/\\s+/g, " ") : null;
}"""
VALUE = "(selector) => document.querySelector(selector).value"


def wait_answer(page: CallPage, expression: str, arg: Any = None, seconds: float = 10) -> Any:
    """Evaluate an async function in the page until it answers something true, and return that
    (wait_for_function would take the promise itself for the answer)."""
    limit = time.monotonic() + deadline(seconds)
    while not (answer := page.evaluate(expression, arg)):
        if time.monotonic() >= limit:
            raise TimeoutError(f"no answer within {deadline(seconds):.0f} s: {expression[:200]}")
        time.sleep(0.1)
    return answer


def wait_visible(page: CallPage, selector: str, seconds: float = 10) -> None:
    page.wait_for_function(VISIBLE, arg=selector, polling=POLL_MS, timeout=deadline_ms(seconds))


def wait_hidden(page: CallPage, selector: str, seconds: float = 10) -> None:
    page.wait_for_function(HIDDEN, arg=selector, polling=POLL_MS, timeout=deadline_ms(seconds))


def wait_attribute(
    page: CallPage, selector: str, name: str, value: str, seconds: float = 10
) -> None:
    page.wait_for_function(
        f"(args) => ({ATTRIBUTE})([args[0], args[1]]) === args[2]",
        arg=[selector, name, value],
        polling=POLL_MS,
        timeout=deadline_ms(seconds),
    )


def wait_text(page: CallPage, selector: str, pattern: str, seconds: float = 10) -> str:
    """Wait until the element's text (spaces collapsed) matches the regular expression."""
    page.wait_for_function(
        f"(args) => new RegExp(args[1]).test(({TEXT})(args[0]) || '')",
        arg=[selector, pattern],
        polling=POLL_MS,
        timeout=deadline_ms(seconds),
    )
    return str(page.evaluate(TEXT, selector))


def assert_no_errors(*pages: CallPage) -> None:
    """No script error, console error or warning the test did not expect, on any of the pages
    (conftest's Chromium pages and FirefoxPage both keep them in ``errors``)."""
    for page in pages:
        errors = vars(page)["errors"]
        assert not errors, errors


# Staff


def sign_in_and_enrol(page: CallPage, username: str) -> None:
    """On the sign-in page: password, then the TOTP enrolment with the key the page shows."""
    page.goto("/")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#signin-form button[type=submit]")
    wait_visible(page, "#enrol h1")
    secret = wait_text(page, "#secret", r"^([A-Z2-7]{4} )*[A-Z2-7]{1,4}$")
    page.fill("#enrol-code", fresh_code(secret))
    page.click("#enrol-form button[type=submit]")
    wait_visible(page, "#greeting")


def create_consultation(page: CallPage, patient_name: str) -> tuple[str, str, str]:
    """From the dashboard: (call page path, patient link path, access code)."""
    page.fill("#patient-name", patient_name)
    page.click("#create-form button[type=submit]")
    wait_visible(page, "#invite-result")
    url = str(page.evaluate(VALUE, "#invite-url"))
    code = str(page.evaluate(VALUE, "#invite-code"))
    page.click("#invite-done")
    start = f'a[aria-label="Démarrer la consultation avec {patient_name}"]'
    wait_visible(page, start)
    call_path = str(page.evaluate("(s) => document.querySelector(s).getAttribute('href')", start))
    return call_path, re.sub(r"^https?://[^/]+", "", url), code


def open_the_call(page: CallPage, call_path: str) -> None:
    page.goto(call_path)
    wait_attribute(page, "#call-status", "data-state", "waiting")


def admit(doctor: CallPage) -> None:
    wait_visible(doctor, "#lobby .waiting-item .btn-primary")
    doctor.click("#lobby .waiting-item .btn-primary")
    wait_hidden(doctor, "#lobby")


# Patient


def patient_to_waiting_room(patient: CallPage, link: str, code: str) -> None:
    """Link, access code, device check (own camera seen), then the waiting room."""
    patient.goto(link)
    patient.fill("#access-code", code)
    patient.click("#code-form button[type=submit]")
    wait_visible(patient, "#devices-step h1")
    patient.wait_for_function(
        "() => document.querySelector('#preview').videoWidth > 0",
        polling=POLL_MS,
        timeout=deadline_ms(15),
    )
    patient.click("#ready")
    wait_visible(patient, "#waiting-step h1")
    wait_attribute(patient, "#connection-state", "data-state", "waiting")


# In the call


# Frames the <video> presented, counted with requestVideoFrameCallback from the first call on
# (Firefox's getVideoPlaybackQuality() counts no frame of a MediaStream); -1 until it has a size.
FRAMES = """(selector) => {
  const video = document.querySelector(selector);
  if (!video || video.videoWidth === 0) return -1;
  if (video.__presented === undefined) {
    video.__presented = 0;
    const count = () => { video.__presented += 1; video.requestVideoFrameCallback(count); };
    video.requestVideoFrameCallback(count);
  }
  return video.__presented;
}"""


def remote_video_plays(page: CallPage, selector: str) -> None:
    """The other's video has a size, plays, and its frames keep coming."""
    page.wait_for_function(
        f"(s) => ({FRAMES})(s) > 0", arg=selector, polling=POLL_MS, timeout=deadline_ms(20)
    )
    first = page.evaluate(FRAMES, selector)
    page.wait_for_function(
        f"(args) => ({FRAMES})(args[0]) > args[1]",
        arg=[selector, first],
        polling=POLL_MS,
        timeout=deadline_ms(10),
    )


def dtls_connected(page: CallPage) -> dict[str, Any]:
    """getStats() of the page's live connection: DTLS connected, with an SRTP cipher."""
    wait_answer(
        page,
        f"""async () => {{
          const t = await ({TRANSPORT})();
          return Boolean(t && t.dtlsState === "connected" && t.srtpCipher);
        }}""",
        seconds=20,
    )
    return dict(page.evaluate(TRANSPORT))


def security_code(page: CallPage) -> str:
    return wait_text(page, "#call-code-value", r"^\d{3} \d{3}$", seconds=20)


def send_chat(page: CallPage, text: str) -> None:
    page.click("#chat-toggle")
    wait_visible(page, "#chat-panel")
    page.wait_for_function("() => !document.querySelector('#chat-send').disabled", polling=POLL_MS)
    page.fill("#chat-input", text)
    page.click("#chat-send")


# A file made in the page (as a picked file would arrive), sent through the chat's file input;
# returns its SHA-256 so the other side's download can be compared.
ATTACH_FILE = """async ([selector, name, size]) => {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i += 1) bytes[i] = (i * 31 + 7) % 251;
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, { type: "application/pdf" }));
  const input = document.querySelector(selector);
  input.files = transfer.files;
  input.dispatchEvent(new Event("change", { bubbles: true }));
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}"""
# Every Blob the page hands out as a URL, kept by URL (the CSP lets no fetch() read a blob: URL).
KEEP_BLOBS = """
window.__blobs = new Map();
const nativeCreateObjectURL = URL.createObjectURL;
URL.createObjectURL = (blob) => {
  const url = nativeCreateObjectURL(blob);
  window.__blobs.set(url, blob);
  return url;
};
"""
# The received file behind the chat's download link, hashed in the page.
DOWNLOADED_FILE = """async ([name, size]) => {
  const link = [...document.querySelectorAll("#chat-log a.chat-download")]
    .find((a) => a.getAttribute("download") === name);
  if (!link) return null;
  const bytes = await window.__blobs.get(link.href).arrayBuffer();
  if (bytes.byteLength !== size) return `${bytes.byteLength} bytes`;
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}"""


def send_file(sender: CallPage, receiver: CallPage, name: str, size: int) -> None:
    """A file crosses the data channel and arrives byte for byte."""
    sent = sender.evaluate(ATTACH_FILE, ["#chat-file", name, size])
    wait_text(sender, "#chat-log", "Fichier envoyé", seconds=20)
    received = wait_answer(receiver, DOWNLOADED_FILE, [name, size], seconds=20)
    assert received == sent, (received, sent)


def snap_both_widths(page: CallPage, name: str) -> None:
    """Full-page screenshots at desktop and phone width (Firefox's own files)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-desktop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.evaluate(
        "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"
    )
    page.screenshot(path=str(SCREENSHOTS / f"{name}-phone.png"), full_page=True)
    page.set_viewport_size(DESKTOP)


def into_the_call(
    live_server: LiveServer, doctor: CallPage, patient: CallPage, init_script: str = ""
) -> None:
    """The doctor signs in, creates the consultation, opens the call; the patient goes through
    link, code and device check into the waiting room; the doctor lets them in; both see each
    other over DTLS-SRTP and show the same security code."""
    create_doctor(live_server)
    doctor.add_init_script(TRACK_PEERS + KEEP_BLOBS + init_script)
    patient.add_init_script(TRACK_PEERS + KEEP_BLOBS + init_script)
    sign_in_and_enrol(doctor, "dr.martin")
    call_path, link, code = create_consultation(doctor, "Alice Dupont")
    open_the_call(doctor, call_path)
    patient_to_waiting_room(patient, link, code)
    wait_text(doctor, "#lobby .waiting-item", "Alice Dupont")
    admit(doctor)
    wait_visible(patient, "#call-step")
    remote_video_plays(patient, "#patient-remote")
    remote_video_plays(doctor, "#remote-video")
    for page in (doctor, patient):
        transport = dtls_connected(page)
        assert transport["dtlsState"] == "connected" and transport["srtpCipher"], transport
    wait_attribute(doctor, "#call-status", "data-state", "in_call")
    wait_attribute(patient, "#patient-call-status", "data-state", "in_call")
    assert security_code(doctor) == security_code(patient)
