"""Browser fixtures: the real app on a loopback port (own thread and event loop) and one
headless Chromium for the browser tests, with a fresh context (cookies, storage) per test."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pyotp
import pytest
from aiohttp import web
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    ViewportSize,
    expect,
    sync_playwright,
)
from playwright.sync_api import Error as PlaywrightError

from config import SecuritySettings, ServerSettings, Settings, StorageSettings
from signaling.app import WEB_ROOT, create_app, issue_setup_link
from signaling.keys import SERVICES
from tests.conftest import deadline, deadline_ms
from tests.servers import free_port

from . import axe
from .axe import assert_accessible_everywhere
from .firefox import Firefox, FirefoxPages

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 360, "height": 740}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
# How long a page action or an expect() waits by default (Playwright's own: 30 s and 5 s).
PAGE_TIMEOUT_MS = deadline_ms(10)
expect.set_options(timeout=PAGE_TIMEOUT_MS)

T = TypeVar("T")


class LiveServer:
    """create_app(settings) served by aiohttp on 127.0.0.1, on its own event loop thread."""

    def __init__(
        self,
        data_dir: Path,
        security: SecuritySettings,
        web_root: Path = WEB_ROOT,
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.web_root = web_root
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings = Settings(
            server=ServerSettings(host="127.0.0.1", port=self.port, public_url=self.url),
            storage=StorageSettings(data_dir=str(data_dir)),
            security=security,
        ).validate()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.app: web.Application | None = None
        self.runner: web.AppRunner | None = None

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the server's loop (to use its services) and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=deadline(30))

    async def _start(self) -> None:
        self.app = create_app(self.settings, web_root=self.web_root)
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def start(self) -> None:
        self.thread.start()
        self.call(self._start())

    def stop(self) -> None:
        if self.runner is not None:
            self.call(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=deadline(10))
        self.loop.close()

    @property
    def services(self) -> Any:
        assert self.app is not None
        return self.app[SERVICES]

    def setup_path(self) -> str:
        """The path of a fresh first-run setup link (the one run.py prints), made by the app."""
        assert self.app is not None
        link = self.call(issue_setup_link(self.app))
        assert link is not None and link.startswith(self.url), link
        return link.removeprefix(self.url)


def start_server(
    tmp_path: Path,
    security: SecuritySettings | None = None,
    web_root: Path = WEB_ROOT,
    port: int | None = None,
) -> LiveServer:
    """``web_root``: another copy of web/ (an upgrade test); ``port``: the port of a server
    this one replaces (same origin)."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700, exist_ok=True)
    server = LiveServer(data_dir, security or SecuritySettings(), web_root, port)
    server.start()
    return server


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    server = start_server(tmp_path)
    yield server
    server.stop()


# Package scope, not session: sync Playwright keeps an event loop running in this thread,
# which would break the asyncio tests that run after the browser tests.
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture(scope="package")
def firefox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Firefox]:
    """One Firefox ESR for the cross-browser tests (fresh profile; a user context per page)."""
    browser = Firefox(tmp_path_factory.mktemp("firefox-profile")).start()
    yield browser
    browser.stop()


@pytest.fixture
def firefox_pages(firefox: Firefox, live_server: LiveServer) -> Iterator[FirefoxPages]:
    """Firefox pages (a user context each) on the test's server, closed after the test."""
    pages = FirefoxPages(firefox, live_server.url)
    yield pages
    pages.close()


class Contexts:
    """Opens browser contexts (one per person) and closes them after the test."""

    def __init__(self, browser: Browser, base_url: str | None = None) -> None:
        self.browser = browser
        self.opened: list[BrowserContext] = []
        self.base_url = base_url

    def new_page(self, locale: str = "fr-FR", **options: Any) -> Page:
        """A page in a context of its own; ``options`` go to new_context (a phone's
        ``viewport``, ``user_agent``, ``is_mobile``; the ``permissions`` granted)."""
        settings: dict[str, Any] = {"viewport": DESKTOP, "permissions": ["camera", "microphone"]}
        settings.update(options)
        context = self.browser.new_context(locale=locale, base_url=self.base_url, **settings)
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        self.opened.append(context)
        page = context.new_page()
        # Any script error, console error or warning, or CSP violation fails the test that
        # caused it, unless the test said it expects it (expect_console()).
        errors: list[str] = []
        expected: list[str] = []
        seen: list[str] = []
        page.errors = errors  # type: ignore[attr-defined]
        page.expected_console = expected  # type: ignore[attr-defined]
        page.expected_console_seen = seen  # type: ignore[attr-defined]

        def on_page_error(exc: PlaywrightError) -> None:
            errors.append(str(exc))

        def on_console(msg: ConsoleMessage) -> None:
            if msg.type not in ("error", "warning") or _expected_console(msg.text):
                return
            if any(fragment in msg.text for fragment in expected):
                seen.append(msg.text)
            else:
                errors.append(msg.text)

        page.on("pageerror", on_page_error)
        page.on("console", on_console)
        return page

    def close(self) -> None:
        for context in self.opened:
            context.close()


def expect_console(page: Page, *fragments: str) -> None:
    """A negative-path test allows the console errors or warnings it causes on purpose (any
    message containing one of these fragments); expected_console_seen(page) lists them."""
    page.expected_console.extend(fragments)  # type: ignore[attr-defined]


def expected_console_seen(page: Page) -> list[str]:
    return list(page.expected_console_seen)  # type: ignore[attr-defined]


def _expected_console(text: str) -> bool:
    # The browser logs every 4xx answer of fetch(); the pages show those to the person.
    return "Failed to load resource" in text


@pytest.fixture
def contexts(browser: Browser, live_server: LiveServer) -> Iterator[Contexts]:
    helper = Contexts(browser, live_server.url)
    yield helper
    helper.close()


def snap(page: Page, name: str) -> None:
    """Save a full-page screenshot at desktop and at phone width, after axe-core has found
    nothing in this state, in French and English, at desktop and phone width (every
    screenshotted state is checked, once per test run: the screenshot's name is the state)."""
    assert_accessible_everywhere(page, name)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-desktop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    settled(page)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-phone.png"), full_page=True)
    page.set_viewport_size(DESKTOP)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if axe.spent:
        terminalreporter.write_line(
            f"axe-core: {len(axe.checked)} states, {len(axe.spent)} runs, "
            f"{sum(axe.spent):.1f} s in axe"
        )


def settled(page: Page) -> None:
    """Return once the page has laid out and painted what it has (two animation frames)."""
    page.evaluate(
        "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"
    )


def fresh_code(secret: str) -> str:
    """The current TOTP code for a secret read from the page (spaces allowed)."""
    return str(pyotp.TOTP(secret.replace(" ", "")).now())


def assert_no_page_errors(page: Page) -> None:
    errors = page.errors  # type: ignore[attr-defined]
    assert not errors, errors
