"""Accessibility checks run inside the page at every screenshot: text contrast (WCAG AA)
and a name for every control. audit.js is one function evaluated through Playwright (the
page's CSP forbids injected scripts, not evaluation over the DevTools protocol)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Page

AUDIT_JS = (Path(__file__).parent / "audit.js").read_text().split("\n", 1)[1]


def audit(page: Page) -> list[Any]:
    return list(page.evaluate(AUDIT_JS))
