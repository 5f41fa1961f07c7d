"""Debian's WebKitGTK (MiniBrowser under Xvfb, driven by WebKitWebDriver over classic WebDriver)
is a real browser without WebRTC: Debian builds it without it (RTCPeerConnection is undefined,
getUserMedia works with mock devices). The invite page tells it, before the code, that it
cannot do a video consultation and which browsers can."""

from __future__ import annotations

import base64
import http.client
import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import wait_until_sync
from tests.servers import free_port, stop_process, wait_for_port

from .conftest import SCREENSHOTS, LiveServer
from .test_join_page import make_invite

pytestmark = pytest.mark.browser

MINIBROWSER = "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser"
CAPABILITIES = {
    "capabilities": {
        "alwaysMatch": {
            "webkitgtk:browserOptions": {
                "binary": MINIBROWSER,
                "args": [
                    "--automation",
                    "--enable-media-stream=true",
                    "--enable-mock-capture-devices=true",
                    "--enable-webrtc=true",
                ],
            }
        }
    }
}


class WebKit:
    """One WebDriver session on WebKitWebDriver (the W3C HTTP protocol, a few commands)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.session = str(self.command("POST", "/session", CAPABILITIES)["sessionId"])

    def command(self, method: str, path: str, body: Any = None) -> Any:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            data = None if body is None else json.dumps(body)
            connection.request(
                method, path, body=data, headers={"Content-Type": "application/json"}
            )
            return json.loads(connection.getresponse().read())["value"]
        finally:
            connection.close()

    def run(self, script: str) -> Any:
        body = {"script": script, "args": []}
        return self.command("POST", f"/session/{self.session}/execute/sync", body)


@pytest.fixture
def webkit() -> Iterator[WebKit]:
    port = free_port()
    driver = subprocess.Popen(
        ["xvfb-run", "-a", "WebKitWebDriver", f"--port={port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, driver)
        browser = WebKit(port)
        yield browser
        browser.command("DELETE", f"/session/{browser.session}")
    finally:
        stop_process(driver)


PAGE_STATE = """if (!document.querySelector("#problem-title")) return {};
return {
  webrtc: typeof RTCPeerConnection,
  camera: Boolean(navigator.mediaDevices && navigator.mediaDevices.getUserMedia),
  problem: document.querySelector("#problem").hidden ? null
    : document.querySelector("#problem-title").textContent,
  codeStep: !document.querySelector("#code-step").hidden,
  action: document.querySelector("#problem-action").textContent,
};"""


def test_webkit_without_webrtc_is_told_it_cannot_do_a_consultation(
    live_server: LiveServer, webkit: WebKit
) -> None:
    invite = make_invite(live_server)
    webkit.command("POST", f"/session/{webkit.session}/url", {"url": live_server.url + invite.path})
    state = wait_until_sync(lambda: (s := webkit.run(PAGE_STATE)).get("problem") and s, within=20)
    assert state["webrtc"] == "undefined"  # Debian's WebKitGTK: no WebRTC
    assert state["camera"] is True
    assert state["problem"] == "Ce navigateur ne permet pas la consultation vidéo"
    assert "Firefox, Chrome, Edge ou Safari" in state["action"]
    assert state["codeStep"] is False
    # Let the page paint before the screenshot (WebKitGTK under Xvfb paints late).
    webkit.run("return new Promise((done) => requestAnimationFrame(() => setTimeout(done, 500)));")
    shot = webkit.command("GET", f"/session/{webkit.session}/screenshot")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / "webkit-patient-browser-unsupported-desktop.png").write_bytes(
        base64.b64decode(shot)
    )
