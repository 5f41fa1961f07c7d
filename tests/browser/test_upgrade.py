"""An upgrade in the browser: a page and every module it runs come from one version. Version A
serves a page; a module changes and version B replaces A on the same address; a fresh load runs
B only; HTML of A that reaches the browser after the switch finds its modules gone (404), and
the page loads again as B instead of running a mix; if that keeps happening, it says so."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Request, Response, Route, expect

from signaling.app import WEB_ROOT
from signaling.keys import SITE
from tests.conftest import deadline_ms

from .conftest import (
    Contexts,
    LiveServer,
    assert_no_page_errors,
    expect_console,
    expected_console_seen,
    snap,
    start_server,
)

pytestmark = pytest.mark.browser

_VERSIONED = re.compile(r"/v/([0-9a-f]+)/")
MARK_B = '\ndocument.documentElement.dataset.release = "B"; // the upgrade\n'


def version_of(url: str) -> str | None:
    match = _VERSIONED.search(url)
    return match[1] if match else None


class Traffic:
    """The asset requests and answers of a page."""

    def __init__(self, page: Page) -> None:
        self.requested: list[str] = []
        self.answered: list[tuple[str, int]] = []
        page.on("request", self._request)
        page.on("response", self._response)

    def _request(self, request: Request) -> None:
        if version_of(request.url):
            self.requested.append(request.url)

    def _response(self, response: Response) -> None:
        if version_of(response.url):
            self.answered.append((response.url, response.status))

    def versions(self, status: int) -> set[str | None]:
        return {version_of(url) for url, code in self.answered if code == status}


class StaleHtml:
    """Answers the page's address with HTML of the old version (as if it was fetched just before
    the switch), ``times`` times, then lets the server answer."""

    def __init__(self, html: bytes, headers: dict[str, str], times: int) -> None:
        self.html, self.headers, self.times, self.served = html, headers, times, 0

    def __call__(self, route: Route) -> None:
        if self.served >= self.times:
            route.continue_()
            return
        self.served += 1
        route.fulfill(status=200, body=self.html, headers=self.headers)


@pytest.fixture
def web_copy(tmp_path: Path) -> Path:
    root = tmp_path / "web"
    shutil.copytree(WEB_ROOT, root)
    return root


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[LiveServer]]:
    running: list[LiveServer] = []
    yield running
    for server in running:
        if server.runner is not None and server.thread.is_alive():
            server.stop()


def test_after_an_upgrade_a_page_runs_one_version_never_a_mix(
    browser: Browser, tmp_path: Path, web_copy: Path, servers: list[LiveServer]
) -> None:
    version_a_server = start_server(tmp_path, web_root=web_copy)
    servers.append(version_a_server)
    version_a = version_a_server.app[SITE].version if version_a_server.app else ""
    contexts = Contexts(browser, version_a_server.url)
    try:
        page = contexts.new_page()
        traffic = Traffic(page)
        page.goto("/")
        expect(page.locator("#signin")).to_be_visible()
        # Every asset of the page, its module graph included, is of version A.
        assert traffic.versions(200) == {version_a}
        assert any(url.endswith("/static/i18n-dict.js") for url in traffic.requested)
        assert any(url.endswith("/protocol.js") for url in traffic.requested)
        answer = page.request.get(version_a_server.url + "/")
        stale_html, stale_headers = answer.body(), answer.headers

        # The upgrade: one module changes, version B takes A's place on the same address.
        version_a_server.stop()
        ui = web_copy / "static" / "ui.js"
        ui.write_text(ui.read_text() + MARK_B)
        version_b_server = start_server(tmp_path, web_root=web_copy, port=version_a_server.port)
        servers.append(version_b_server)
        version_b = version_b_server.app[SITE].version if version_b_server.app else ""
        assert version_b != version_a

        # HTML of A arrives after the switch: A's modules are a 404 on B, nothing of A runs, and
        # the page loads again, as B, by itself.
        # Chromium also says it refused A's stylesheet: the 404 is not CSS.
        old_stylesheet = f"/v/{version_a}/static/app.css"
        expect_console(page, "asset-guard:", old_stylesheet)
        stale = StaleHtml(stale_html, stale_headers, times=1)
        page.route(version_b_server.url + "/", stale)
        traffic.answered.clear()
        page.reload()
        expect(page.locator("html[data-release=B]")).to_have_count(1, timeout=deadline_ms(15))
        expect(page.locator("#signin")).to_be_visible()
        assert stale.served == 1
        assert traffic.versions(404) == {version_a}
        assert traffic.versions(200) == {version_b}
        assert [m for m in expected_console_seen(page) if "asset-guard:" in m]
        assert_no_page_errors(page)

        # A fresh page (no reload yet in this tab) that keeps getting A's HTML reloads once, then
        # says so rather than reloading in a loop.
        stuck = contexts.new_page()
        expect_console(stuck, "asset-guard:", old_stylesheet)
        always_stale = StaleHtml(stale_html, stale_headers, times=100)
        stuck.route(version_b_server.url + "/", always_stale)
        stuck.goto("/")
        message = stuck.locator("#asset-guard-message")
        expect(message).to_be_visible(timeout=deadline_ms(15))
        expect(message).to_contain_text("Le service vient d'être mis à jour")
        expect(message).to_contain_text("The service was just updated")
        assert always_stale.served == 2
        # Styled by the unversioned stylesheet (its own version's failed too).
        stuck.wait_for_function(
            """() => getComputedStyle(
              document.querySelector('#asset-guard-message').closest('.card')
              ).borderRadius !== '0px'
            """
        )
        snap(stuck, "upgrade-reload-message")
        stuck.unroute(version_b_server.url + "/")
        stuck.get_by_role("button", name="Recharger / Reload").click()
        expect(stuck.locator("html[data-release=B]")).to_have_count(1)
        expect(stuck.locator("#signin")).to_be_visible()
        assert_no_page_errors(stuck)
    finally:
        contexts.close()
