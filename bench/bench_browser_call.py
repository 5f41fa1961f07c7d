"""Chromium benchmark: from the doctor's click on "let in" to the first remote video frame.

    python bench/bench_browser_call.py [--calls 12] [--firefox]

Two headless Chromium contexts (Debian's /usr/bin/chromium, the browser tests' flags, fake
camera and microphone) place ``--calls`` whole consultations through the real service on
127.0.0.1: the doctor on the call page, the patient through link, code, device check and
waiting room. For each call it measures, from the click on the doctor's "let in" button, the
first frame of the other side's video on each page (``requestVideoFrameCallback`` on the
remote <video>). Times are read as ``performance.timeOrigin + performance.now()`` in each
page: both pages run in one browser on one machine, so that is one clock.

Baseline, measured in the same run: two pages on the same origin with a bare
RTCPeerConnection each, same camera, same browser, trickle ICE carried by a BroadcastChannel
between the pages (next to no signaling delay), no service and no waiting room. Its clock
starts right before ``createOffer``. The ratio service/baseline of the medians says what the
service adds (the admit message and its relay, the patient's switch to the call view, every
offer, answer and candidate through the server's WebSocket).

With ``--firefox`` the patient is on Firefox ESR (tests/browser/firefox.py, over WebDriver
BiDi) and the doctor on Chromium, and the baseline is a bare Chromium<->Firefox pair: the two
browsers share no BroadcastChannel, so the bench itself carries a complete offer and a complete
answer (ICE gathered first, no trickle) between them. Both browsers stamp times from the same
system clock (``performance.timeOrigin + performance.now()``).

Prints median and p95 per side (doctor sees patient, patient sees doctor) and for the later
of the two (both see each other), for the service and the baseline. Goal: service median
<= 1.0 s on loopback.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.browser.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    LiveServer,
    start_server,
)
from tests.browser.firefox import FIREFOX, Firefox, FirefoxPage
from tests.browser.journey import CallPage, wait_attribute
from tests.browser.test_staff_pages import create_doctor, enrol_with_page_secret, sign_in
from tests.conftest import PASSWORD, deadline_ms

# Armed on a page before the clock starts: the first frame the remote <video> presents.
ARM_FIRST_FRAME = """(selector) => {
  window.__firstFrame = null;
  const video = document.querySelector(selector);
  video.requestVideoFrameCallback((now) => { window.__firstFrame = performance.timeOrigin + now; });
}"""

# The doctor's click, on the page's clock (the event's own time stamp).
RECORD_ADMIT_CLICK = """() => {
  window.__admitAt = null;
  document.addEventListener("click", (event) => {
    if (event.target.closest("#lobby .waiting-item .btn-primary")) {
      window.__admitAt = performance.timeOrigin + event.timeStamp;
    }
  }, { capture: true, once: true });
}"""

# The call's own timeline (web/static/call-timeline.js): every "call:<step>" mark since the
# click, as absolute times on the page's clock; the first of each step counts.
READ_TIMELINE = """(since) => {
  const steps = {};
  for (const mark of performance.getEntriesByType("mark")) {
    const at = performance.timeOrigin + mark.startTime;
    if (!mark.name.startsWith("call:") || at < since) continue;
    const step = mark.name.slice("call:".length);
    if (!(step in steps)) steps[step] = at;
  }
  return steps;
}"""
# In the order a call goes through them; each side shows those it has.
TIMELINE_STEPS = (
    "admit-sent",
    "admitted",
    "peer-joined",
    "pc-created",
    "offer-created",
    "offer-sent",
    "offer-received",
    "answer-created",
    "answer-sent",
    "answer-received",
    "answer-applied",
    "candidate-sent",
    "candidate-received",
    "ice-connected",
    "connected",
    "track",
    "first-frame",
)

# Both baselines' pages: camera on, a remote <video>, one RTCPeerConnection without ICE servers.
MEDIA_AND_PEER = """
  document.body.replaceChildren();
  const video = document.createElement("video");
  video.id = "remote"; video.autoplay = true; video.muted = true; video.playsInline = true;
  document.body.append(video);
  const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
  const pc = new RTCPeerConnection({ iceServers: [] });
  for (const track of stream.getTracks()) pc.addTrack(track, stream);
  pc.addEventListener("track", (e) => {
    if (video.srcObject !== e.streams[0]) video.srcObject = e.streams[0];
  });
"""

# Baseline page: camera on, a remote <video>, one RTCPeerConnection without ICE servers, and
# signaling over a BroadcastChannel between the two pages (same browser context): trickle ICE
# with next to no signaling delay, the best this browser can do on this machine.
BASELINE_SETUP = (
    """async (channelName) => {
"""
    + MEDIA_AND_PEER
    + """
  const channel = new BroadcastChannel(channelName);
  pc.addEventListener("icecandidate", (e) => {
    channel.postMessage({ candidate: e.candidate ? e.candidate.toJSON() : null });
  });
  let early = [];  // candidates that came before the remote description
  let chain = Promise.resolve();
  channel.addEventListener("message", ({ data }) => {
    chain = chain.then(async () => {
      if (data.offer) {
        await pc.setRemoteDescription({ type: "offer", sdp: data.offer });
        await pc.setLocalDescription(await pc.createAnswer());
        channel.postMessage({ answer: pc.localDescription.sdp });
      } else if (data.answer) {
        await pc.setRemoteDescription({ type: "answer", sdp: data.answer });
      } else if ("candidate" in data) {
        if (!pc.remoteDescription) { early.push(data.candidate); return; }
        await pc.addIceCandidate(data.candidate || undefined);
        return;
      }
      for (const candidate of early) await pc.addIceCandidate(candidate || undefined);
      early = [];
    });
  });
  window.__pc = pc;
  window.__stream = stream;
  window.__channel = channel;
}"""
)
# Cross-browser baseline: no shared channel, so each side gathers all its candidates before
# its description is read (the bench carries offer and answer between the browsers).
DIRECT_SETUP = (
    """async () => {
"""
    + MEDIA_AND_PEER
    + """
  const gathered = () => new Promise((done) => {
    if (pc.iceGatheringState === "complete") return done();
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") done();
    });
  });
  window.__offer = async () => {
    window.__startAt = performance.timeOrigin + performance.now();
    await pc.setLocalDescription(await pc.createOffer());
    await gathered();
    return pc.localDescription.sdp;
  };
  window.__answer = async (sdp) => {
    await pc.setRemoteDescription({ type: "offer", sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    await gathered();
    return pc.localDescription.sdp;
  };
  window.__accept = (sdp) => pc.setRemoteDescription({ type: "answer", sdp });
  window.__pc = pc;
  window.__stream = stream;
}"""
)
DIRECT_CLOSE = """() => {
  window.__pc.close();
  for (const t of window.__stream.getTracks()) t.stop();
}"""
BASELINE_START = """async () => {
  window.__startAt = performance.timeOrigin + performance.now();
  await window.__pc.setLocalDescription(await window.__pc.createOffer());
  window.__channel.postMessage({ offer: window.__pc.localDescription.sdp });
}"""
BASELINE_CLOSE = """() => {
  window.__pc.close();
  window.__channel.close();
  for (const t of window.__stream.getTracks()) t.stop();
}"""

# Page waits grow with TELECONSULT_TEST_TIME_FACTOR, as the tests' do, on a busy machine.
FIRST_FRAME_TIMEOUT_MS = deadline_ms(20)
VIEWPORT: ViewportSize = {"width": DESKTOP["width"], "height": DESKTOP["height"]}


class Sample:
    def __init__(
        self,
        doctor_ms: float,
        patient_ms: float,
        timeline: dict[str, dict[str, float]] | None = None,
    ) -> None:
        self.doctor_ms = doctor_ms  # the doctor sees the patient
        self.patient_ms = patient_ms  # the patient sees the doctor
        # side ("doctor", "patient") -> step -> ms after the click (service calls only)
        self.timeline = timeline or {}

    @property
    def both_ms(self) -> float:
        return max(self.doctor_ms, self.patient_ms)


def first_frame_at(page: CallPage) -> float:
    page.wait_for_function("() => window.__firstFrame !== null", timeout=FIRST_FRAME_TIMEOUT_MS)
    return float(page.evaluate("() => window.__firstFrame"))


def new_page(browser: Browser, base_url: str) -> Page:
    context = browser.new_context(
        viewport=VIEWPORT, locale="fr-FR", base_url=base_url, permissions=["camera", "microphone"]
    )
    context.set_default_timeout(deadline_ms(15))
    return context.new_page()


def make_invite(server: LiveServer) -> tuple[str, str, str]:
    """A consultation starting now for the benchmark doctor: (id, link path, access code)."""
    services = server.services

    async def create() -> tuple[str, str, str]:
        doctor = await services.store.get_user_by_username("dr.martin")
        assert doctor is not None
        issued = await services.consultations.create(doctor, "Alice Dupont", time.time(), 30, "")
        return issued.consultation.id, f"/join/{issued.invite_token}", issued.access_code

    return server.call(create())


def signed_in_doctor(browser: Browser, server: LiveServer) -> Page:
    create_doctor(server)
    doctor = new_page(browser, server.url)
    doctor.goto("/")
    sign_in(doctor, "dr.martin", PASSWORD)
    enrol_with_page_secret(doctor)
    expect(doctor.locator("#greeting")).to_be_visible()
    return doctor


def service_call(
    browser: Browser, server: LiveServer, doctor: Page, firefox: Firefox | None
) -> Sample:
    consultation_id, path, code = make_invite(server)
    doctor.goto(f"/call/{consultation_id}")
    expect(doctor.locator("#call-status")).to_have_attribute("data-state", "waiting")
    patient: CallPage = firefox.new_page(server.url) if firefox else new_page(browser, server.url)
    try:
        patient.goto(path)
        patient.fill("#access-code", code)
        patient.click("#code-form button[type=submit]")
        patient.wait_for_function("() => document.querySelector('#preview').videoWidth > 0")
        patient.click("#ready")
        wait_attribute(patient, "#connection-state", "data-state", "waiting")
        admit = doctor.locator("#lobby .waiting-item").get_by_role("button", name="Faire entrer")
        expect(admit).to_be_visible()
        doctor.evaluate(ARM_FIRST_FRAME, "#remote-video")
        patient.evaluate(ARM_FIRST_FRAME, "#patient-remote")
        doctor.evaluate(RECORD_ADMIT_CLICK)
        admit.click()
        doctor_frame = first_frame_at(doctor)
        patient_frame = first_frame_at(patient)
        clicked = float(doctor.evaluate("() => window.__admitAt"))
        timeline: dict[str, dict[str, float]] = {}
        for side, page, frame in (
            ("doctor", doctor, doctor_frame),
            ("patient", patient, patient_frame),
        ):
            steps = page.evaluate(READ_TIMELINE, clicked)
            steps["first-frame"] = frame
            timeline[side] = {step: float(at) - clicked for step, at in steps.items()}
        return Sample(doctor_frame - clicked, patient_frame - clicked, timeline)
    finally:
        # End the consultation so the next call starts from a quiet service.
        doctor.click("#hang-up")
        doctor.locator("#confirm-ok").click()
        expect(doctor.locator("#greeting")).to_be_visible()
        if isinstance(patient, FirefoxPage):
            patient.close()
        else:
            patient.context.close()  # type: ignore[attr-defined]


def baseline_call(browser: Browser, server: LiveServer, number: int) -> Sample:
    context = browser.new_context(
        viewport=VIEWPORT, base_url=server.url, permissions=["camera", "microphone"]
    )
    context.set_default_timeout(deadline_ms(15))
    try:
        offerer, answerer = context.new_page(), context.new_page()  # doctor, patient
        for page in (offerer, answerer):
            page.goto("/healthz")  # same origin as the service: a secure context on 127.0.0.1
            page.evaluate(BASELINE_SETUP, f"bench-{number}")
            page.evaluate(ARM_FIRST_FRAME, "#remote")
        offerer.evaluate(BASELINE_START)
        started = float(offerer.evaluate("() => window.__startAt"))
        sample = Sample(first_frame_at(offerer) - started, first_frame_at(answerer) - started)
        for page in (offerer, answerer):
            page.evaluate(BASELINE_CLOSE)
        return sample
    finally:
        context.close()


def baseline_call_with_firefox(browser: Browser, firefox: Firefox, server: LiveServer) -> Sample:
    """The bare pair across engines: Chromium offers (the doctor's side), Firefox answers."""
    offerer = new_page(browser, server.url)
    answerer = firefox.new_page(server.url)
    try:
        pages: tuple[CallPage, CallPage] = (offerer, answerer)
        for page in pages:
            page.goto("/healthz")  # same origin as the service: a secure context on 127.0.0.1
            page.evaluate(DIRECT_SETUP)
            page.evaluate(ARM_FIRST_FRAME, "#remote")
        offer = offerer.evaluate("() => window.__offer()")
        answer = answerer.evaluate("(sdp) => window.__answer(sdp)", offer)
        offerer.evaluate("(sdp) => window.__accept(sdp)", answer)
        started = float(offerer.evaluate("() => window.__startAt"))
        sample = Sample(first_frame_at(offerer) - started, first_frame_at(answerer) - started)
        for page in pages:
            page.evaluate(DIRECT_CLOSE)
        return sample
    finally:
        offerer.context.close()
        answerer.close()


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(math.ceil(0.95 * len(ordered)) - 1, 0)]


def summary(name: str, samples: list[Sample]) -> dict[str, float]:
    rows = {
        "doctor sees patient": [s.doctor_ms for s in samples],
        "patient sees doctor": [s.patient_ms for s in samples],
        "both see each other": [s.both_ms for s in samples],
    }
    print(f"{name} ({len(samples)} calls)")
    medians: dict[str, float] = {}
    for label, values in rows.items():
        medians[label] = statistics.median(values)
        print(f"  {label:22s} median {medians[label]:7.0f} ms   p95 {p95(values):7.0f} ms")
    return medians


def print_timeline(samples: list[Sample]) -> None:
    """Median ms after the click at which each side reached each step (the call's marks)."""
    print("service timeline: median ms after the click (doctor | patient)")
    for step in TIMELINE_STEPS:
        cells = []
        for side in ("doctor", "patient"):
            values = [s.timeline[side][step] for s in samples if step in s.timeline.get(side, {})]
            cells.append(f"{statistics.median(values):7.0f}" if values else "      -")
        print(f"  {step:20s} {cells[0]} | {cells[1]}")


def run(calls: int, with_firefox: bool) -> int:
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        server = start_server(Path(tmp))
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        firefox = Firefox(Path(tmp) / "firefox-profile").start() if with_firefox else None

        def baseline(number: int) -> Sample:
            if firefox is not None:
                return baseline_call_with_firefox(browser, firefox, server)
            return baseline_call(browser, server, number)

        try:
            doctor = signed_in_doctor(browser, server)
            # One unmeasured round of each warms the browsers (codec, first page loads).
            service_call(browser, server, doctor, firefox)
            baseline(0)
            service: list[Sample] = []
            base_samples: list[Sample] = []
            # Interleaved, so a busy moment of the machine falls on both alike.
            for number in range(1, calls + 1):
                service.append(service_call(browser, server, doctor, firefox))
                base_samples.append(baseline(number))
        finally:
            if firefox is not None:
                firefox.stop()
            browser.close()
            server.stop()
    if firefox is not None:
        print(f"doctor on Chromium {CHROMIUM}, patient on Firefox {FIREFOX} ({firefox.version})")
        print(f"loopback, {calls} calls each, fake camera")
    else:
        print(f"Chromium {CHROMIUM}, loopback, {calls} calls each, fake camera")
    ours = summary("service: doctor clicks 'let in' -> first remote frame", service)
    print_timeline(service)
    bare = "bare Chromium<->Firefox pair, complete offer/answer" if firefox else "bare pair"
    base = summary(f"baseline: {bare}, createOffer -> first frame", base_samples)
    print("ratio service/baseline (medians)")
    for label, value in ours.items():
        print(f"  {label:22s} {value / base[label]:5.2f}x")
    both = ours["both see each other"]
    verdict = "met" if both <= 1000 else "NOT met"
    print(f"goal: median <= 1000 ms for both sides: {both:.0f} ms, {verdict}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=12, help="measured calls (at least 10)")
    parser.add_argument(
        "--firefox", action="store_true", help="the patient on Firefox ESR, the doctor on Chromium"
    )
    args = parser.parse_args(argv)
    if args.calls < 10:
        parser.error("--calls: at least 10")
    return run(args.calls, args.firefox)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
