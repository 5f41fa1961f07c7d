"""Debian's Firefox ESR for the browser tests, driven over WebDriver BiDi (tests/bidi.py).

One headless process (fresh profile, fake camera and microphone, loopback ICE) on its own event
loop thread, like LiveServer; each page gets its own user context (cookies, storage), the way a
Playwright context isolates a person. ``FirefoxPage`` offers the few Playwright ``Page`` methods
the cross-browser journeys use (tests/browser/journey.py's ``CallPage``), with the same
signatures, so a journey step runs the same on Chromium and on Firefox.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import subprocess
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Literal, TypeVar

from playwright.sync_api import ViewportSize

from tests.bidi import BidiError, BidiSession, local_value, python_value
from tests.conftest import deadline, deadline_ms
from tests.servers import free_port, stop_process

FIREFOX = "/usr/bin/firefox-esr"
# Measured on this machine: fake devices without a prompt, and loopback host candidates,
# unobfuscated (no mDNS name) so that Chromium can pair with them. force_interface asks for the
# loopback interface; a call was still seen pairing on this machine's own IPv6 address
# (fd00::2), as Chromium pairs on its own IPv4 one: every target is this machine.
PREFS: dict[str, Any] = {
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    "media.peerconnection.ice.loopback": True,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    "media.peerconnection.ice.force_interface": "lo",
    # No download of the OpenH264 plugin and no other background traffic off the machine.
    "media.gmp-manager.updateEnabled": False,
    "media.gmp-gmpopenh264.enabled": False,
    "app.normandy.enabled": False,
    "browser.safebrowsing.update.enabled": False,
    "network.dns.disablePrefetch": True,
    "network.prefetch-next": False,
    "intl.accept_languages": "fr-FR, fr",
    # Firefox's own Picture-in-Picture button shows over a hovered <video>: browser UI, not the
    # page's, kept out of the screenshots.
    "media.videocontrols.picture-in-picture.video-toggle.enabled": False,
}
LISTENING = re.compile(r"WebDriver BiDi listening on (ws://\S+)")
# Console lines of Firefox itself, not of the pages' scripts.
BROWSER_NOISE = (
    "WebGL",
    "Content-Security-Policy: Ignoring",
)

T = TypeVar("T")


class Firefox:
    """One Firefox ESR process and its BiDi session."""

    def __init__(self, profile: Path) -> None:
        self.profile = profile
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.process: subprocess.Popen[bytes] | None = None
        self.session: BidiSession | None = None
        self.pages: dict[str, FirefoxPage] = {}
        self.version = ""
        self._drain: threading.Thread | None = None

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=deadline(60))

    def start(self) -> Firefox:
        self.profile.mkdir(parents=True, exist_ok=True)
        (self.profile / "user.js").write_text(
            "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in PREFS.items())
        )
        port = free_port()
        self.process = subprocess.Popen(
            [
                FIREFOX,
                "--headless",
                "--no-remote",
                "--profile",
                str(self.profile),
                "--remote-debugging-port",
                str(port),
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        url = self._read_listening_url()
        self.thread.start()
        self.session = self.call(BidiSession.connect(f"{url}/session"))
        self.version = str(self.session.capabilities.get("browserVersion", ""))
        self.session.on("log.entryAdded", self._on_log)
        self.call(self.session.command("session.subscribe", {"events": ["log.entryAdded"]}))
        return self

    def _read_listening_url(self) -> str:
        assert self.process is not None and self.process.stderr is not None
        limit = time.monotonic() + deadline(30)
        seen: list[str] = []
        while time.monotonic() < limit:
            line = self.process.stderr.readline().decode(errors="replace")
            if not line and self.process.poll() is not None:
                break
            seen.append(line)
            if match := LISTENING.search(line):
                # Keep reading stderr, or Firefox blocks once the pipe is full.
                self._drain = threading.Thread(target=self._drain_stderr, daemon=True)
                self._drain.start()
                return match.group(1)
        raise RuntimeError("Firefox did not open its BiDi port:\n" + "".join(seen[-20:]))

    def _drain_stderr(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        for _ in self.process.stderr:
            pass

    def _on_log(self, entry: dict[str, Any]) -> None:
        page = self.pages.get(entry.get("source", {}).get("context", ""))
        if page is not None:
            page.on_log(entry)

    def new_page(self, base_url: str, locale: str = "fr-FR") -> FirefoxPage:
        page = FirefoxPage(self, base_url, locale)
        page.open()
        self.pages[page.context] = page
        return page

    def command(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        assert self.session is not None
        return self.call(self.session.command(method, params))

    def stop(self) -> None:
        if self.session is not None:
            self.call(self.session.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=deadline(10))
        if not self.thread.is_alive():
            # Closed here, or the loop and its self-pipe are reported unclosed when the
            # garbage collector meets them, in whichever later test that happens.
            self.loop.close()
        if self.process is not None:
            stop_process(self.process)
            if self._drain is not None:
                self._drain.join(timeout=deadline(10))  # reads to the end of the pipe
            if self.process.stderr is not None:
                self.process.stderr.close()


class FirefoxPages:
    """Firefox pages (one user context each) for one test, closed after it."""

    def __init__(self, firefox: Firefox, base_url: str) -> None:
        self.firefox = firefox
        self.base_url = base_url
        self.opened: list[FirefoxPage] = []

    def new_page(self, locale: str = "fr-FR") -> FirefoxPage:
        page = self.firefox.new_page(self.base_url, locale)
        self.opened.append(page)
        return page

    def close(self) -> None:
        for page in self.opened:
            page.close()


class FirefoxPage:
    """A tab in its own user context, with the Playwright ``Page`` methods journeys use."""

    def __init__(self, browser: Firefox, base_url: str, locale: str) -> None:
        self.browser = browser
        self.base_url = base_url
        self.locale = locale
        self.user_context = ""
        self.context = ""
        self.errors: list[str] = []
        self.expected_console: list[str] = []
        self.expected_console_seen: list[str] = []

    def open(self) -> None:
        created = self.browser.command("browser.createUserContext", {})
        self.user_context = created["userContext"]
        tab = self.browser.command(
            "browsingContext.create", {"type": "tab", "userContext": self.user_context}
        )
        self.context = tab["context"]
        self.set_viewport_size({"width": 1280, "height": 800})
        try:
            self.browser.command(
                "emulation.setLocaleOverride", {"locale": self.locale, "contexts": [self.context]}
            )
        except BidiError:
            pass  # an older Firefox: the profile's intl.accept_languages (French) applies

    def close(self) -> None:
        self.browser.pages.pop(self.context, None)
        self.browser.command("browser.removeUserContext", {"userContext": self.user_context})

    def on_log(self, entry: dict[str, Any]) -> None:
        # Same rule as the Chromium pages: any script error, console error or warning fails the
        # test, unless the test said it expects it.
        text = str(entry.get("text") or "")
        if entry.get("level") not in ("error", "warn") or any(n in text for n in BROWSER_NOISE):
            return
        if any(fragment in text for fragment in self.expected_console):
            self.expected_console_seen.append(text)
        else:
            self.errors.append(text)

    # Playwright Page's signatures, the subset journeys use.

    def goto(self, url: str) -> None:
        target = url if "://" in url else self.base_url + url
        self.browser.command(
            "browsingContext.navigate", {"context": self.context, "url": target, "wait": "complete"}
        )

    def add_init_script(self, script: str) -> None:
        self.browser.command(
            "script.addPreloadScript",
            {"functionDeclaration": f"() => {{\n{script}\n}}", "userContexts": [self.user_context]},
        )

    def evaluate(self, expression: str, arg: Any = None) -> Any:
        return self._call(expression, [] if arg is None else [arg], user_activation=False)

    def wait_for_function(
        self,
        expression: str,
        *,
        arg: Any = None,
        timeout: float | None = None,
        polling: float | Literal["raf"] | None = None,
    ) -> Any:
        interval = polling / 1000 if isinstance(polling, int | float) else 0.05
        limit = time.monotonic() + (timeout or deadline_ms(10)) / 1000
        while True:
            answer = self.evaluate(expression, arg)
            if answer:
                return answer
            if time.monotonic() >= limit:
                raise TimeoutError(f"not true in Firefox within {timeout} ms: {expression[:200]}")
            time.sleep(interval)

    def click(self, selector: str) -> None:
        self.wait_for_function(VISIBLE, arg=selector)
        # A real mouse click in the middle of the element, as a person's: it gives the page a
        # user activation (which unlocks audio and media playback) and goes through hit testing.
        x, y = self._call(CENTRE, [selector], user_activation=False)
        mouse = [
            {"type": "pointerMove", "x": round(x), "y": round(y)},
            {"type": "pointerDown", "button": 0},
            {"type": "pointerUp", "button": 0},
        ]
        self.browser.command(
            "input.performActions",
            {
                "context": self.context,
                "actions": [
                    {
                        "type": "pointer",
                        "id": "mouse",
                        "parameters": {"pointerType": "mouse"},
                        "actions": mouse,
                    }
                ],
            },
        )

    def fill(self, selector: str, value: str) -> None:
        self.wait_for_function(VISIBLE, arg=selector)
        self._call(FILL, [selector, value], user_activation=True)

    def screenshot(self, *, path: str, full_page: bool = False) -> None:
        shot = self.browser.command(
            "browsingContext.captureScreenshot",
            {"context": self.context, "origin": "document" if full_page else "viewport"},
        )
        Path(path).write_bytes(base64.b64decode(shot["data"]))

    def set_viewport_size(self, viewport_size: ViewportSize) -> None:
        self.browser.command(
            "browsingContext.setViewport",
            {"context": self.context, "viewport": dict(viewport_size)},
        )

    def _call(self, function: str, args: list[Any], *, user_activation: bool) -> Any:
        answer = self.browser.command(
            "script.callFunction",
            {
                "functionDeclaration": function,
                "arguments": [local_value(a) for a in args],
                "target": {"context": self.context},
                "awaitPromise": True,
                "userActivation": user_activation,
                "resultOwnership": "none",
                "serializationOptions": {"maxObjectDepth": 8},
            },
        )
        if answer.get("type") == "exception":
            details = answer.get("exceptionDetails", {})
            raise BidiError(f"script threw in Firefox: {details.get('text')}")
        return python_value(answer["result"])


# Visible as Playwright means it: laid out with a box, and not visibility: hidden.
VISIBLE = """(selector) => {
  const element = document.querySelector(selector);
  return Boolean(element && element.getClientRects().length > 0
    && getComputedStyle(element).visibility !== "hidden");
}"""

# The element scrolled into view, and its centre in viewport coordinates.
CENTRE = """(selector) => {
  const element = document.querySelector(selector);
  element.scrollIntoView({ block: "center", inline: "center" });
  const box = element.getBoundingClientRect();
  return [box.left + box.width / 2, box.top + box.height / 2];
}"""

# What typing does to an input, as far as the pages listen: value, then input and change.
FILL = """(selector, value) => {
  const element = document.querySelector(selector);
  element.focus();
  element.value = value;
  element.dispatchEvent(new Event("input", { bubbles: true }));
  element.dispatchEvent(new Event("change", { bubbles: true }));
}"""
