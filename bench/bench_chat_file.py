"""Chromium benchmark: a file sent over the call's chat data channel, patient to doctor.

    python bench/bench_chat_file.py [--runs 5] [--mib 10]

One real call through the service on 127.0.0.1 (two headless Chromium contexts, the browser
tests' flags): the patient picks a file of ``--mib`` MiB in the chat (web/static/call-chat.js:
header, 16 KiB chunks with backpressure, end marker) and the clock runs from the file input's
``change`` event on the patient's page to the download link appearing on the doctor's page
(both read as ``performance.timeOrigin + performance.now()``: one browser, one machine, one
clock).

Baseline, measured in the same run and the same browser: two RTCPeerConnections in one page
connected to each other directly (no server), one negotiated data channel, the same bytes in
the same 16 KiB chunks with the same backpressure thresholds, timed until the receiver holds
them all. The ratio chat/baseline says what the chat adds (file reading, the two renderer
processes, the page's own bookkeeping and the Blob at the end).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import FilePayload, Page, expect, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, Contexts, start_server
from tests.browser.test_call_features import start_call

# On the patient's page: the moment a file is chosen.
ARM_SENDER = """() => {
  window.__sentAt = null;
  document.querySelector("#chat-file").addEventListener("change", (event) => {
    window.__sentAt = performance.timeOrigin + event.timeStamp;
  }, { capture: true, once: true });
}"""

# On the doctor's page: the moment the n-th download link appears.
ARM_RECEIVER = """(count) => {
  window.__receivedAt = null;
  const log = document.querySelector("#chat-log");
  const observer = new MutationObserver(() => {
    if (log.querySelectorAll("a.chat-download").length >= count) {
      window.__receivedAt = performance.timeOrigin + performance.now();
      observer.disconnect();
    }
  });
  observer.observe(log, { childList: true, subtree: true });
}"""

# Two connections in one page, a negotiated channel, the same chunking and backpressure.
BASELINE = """async (bytes) => {
  const CHUNK = 16 * 1024, HIGH = 1024 * 1024, LOW = 256 * 1024;
  const a = new RTCPeerConnection(), b = new RTCPeerConnection();
  a.onicecandidate = (e) => e.candidate && b.addIceCandidate(e.candidate);
  b.onicecandidate = (e) => e.candidate && a.addIceCandidate(e.candidate);
  const send = a.createDataChannel("chat", { negotiated: true, id: 0, ordered: true });
  const receive = b.createDataChannel("chat", { negotiated: true, id: 0, ordered: true });
  send.bufferedAmountLowThreshold = LOW;
  receive.binaryType = "arraybuffer";
  await a.setLocalDescription(await a.createOffer());
  await b.setRemoteDescription(a.localDescription);
  await b.setLocalDescription(await b.createAnswer());
  await a.setRemoteDescription(b.localDescription);
  const opened = (resolve) => send.addEventListener("open", resolve, { once: true });
  if (send.readyState !== "open") await new Promise(opened);
  const data = new Uint8Array(bytes);
  let received = 0;
  const done = new Promise((resolve) => receive.addEventListener("message", (e) => {
    received += e.data.byteLength;
    if (received >= bytes) resolve();
  }));
  const start = performance.now();
  for (let sent = 0; sent < bytes; sent += CHUNK) {
    const drained = (r) => send.addEventListener("bufferedamountlow", r, { once: true });
    if (send.bufferedAmount > HIGH) await new Promise(drained);
    send.send(data.subarray(sent, Math.min(sent + CHUNK, bytes)));
  }
  await done;
  const ms = performance.now() - start;
  a.close(); b.close();
  return ms;
}"""


def chat_transfer_ms(doctor: Page, patient: Page, payload: bytes, number: int) -> float:
    patient.evaluate(ARM_SENDER)
    doctor.evaluate(ARM_RECEIVER, number)
    patient.set_input_files(
        "#chat-file",
        files=[
            FilePayload(
                name=f"bench-{number}.bin", mimeType="application/octet-stream", buffer=payload
            )
        ],
    )
    doctor.wait_for_function("() => window.__receivedAt !== null", timeout=120_000)
    sent_at = float(patient.evaluate("() => window.__sentAt"))
    return float(doctor.evaluate("() => window.__receivedAt")) - sent_at


def run(runs: int, mib: int) -> int:
    size = mib * 1024 * 1024
    payload = bytes(range(256)) * (size // 256)
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        server = start_server(Path(tmp))
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        contexts = Contexts(browser, server.url)
        try:
            doctor, patient = start_call(server, contexts)
            doctor.locator("#chat-toggle").click()
            expect(doctor.locator("#chat-send")).to_be_enabled()
            chat = [chat_transfer_ms(doctor, patient, payload, n + 1) for n in range(runs)]
            baseline = [float(patient.evaluate(BASELINE, size)) for _ in range(runs)]
        finally:
            contexts.close()
            browser.close()
            server.stop()
    chat_median, base_median = statistics.median(chat), statistics.median(baseline)
    print(f"{mib} MiB over the chat data channel, {runs} runs each, loopback")
    print(
        f"  chat (call-chat.js, patient -> doctor): median {chat_median:7.0f} ms  "
        f"({mib * 1000 / chat_median:5.1f} MiB/s)  runs {[round(x) for x in chat]}"
    )
    print(
        f"  baseline (bare channel, one page):      median {base_median:7.0f} ms  "
        f"({mib * 1000 / base_median:5.1f} MiB/s)  runs {[round(x) for x in baseline]}"
    )
    print(f"  ratio chat/baseline: {chat_median / base_median:.2f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--mib", type=int, default=10)
    args = parser.parse_args(argv)
    return run(args.runs, args.mib)


if __name__ == "__main__":
    raise SystemExit(main())
