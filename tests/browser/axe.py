"""axe-core (tests/browser/axe/, pinned by its package-lock.json, installed by scripts/test.sh)
run in the page at every screenshotted state: both languages, desktop and phone width, zero
violations allowed.

axe.min.js goes in over the DevTools protocol (page.evaluate): the pages' CSP forbids injected
script tags, not evaluation by the browser's driver. It is injected once per document.
The language is switched with the page's own i18n module (the one the FR/EN buttons call),
imported from the URL the page loaded it from, so the page re-renders what it built, and then
switched back; the saved choice is restored as it was."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, ViewportSize

AXE_JS = Path(__file__).parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
# The phone the checks use (an iPhone 12 to 15's CSS size); the screenshots keep their own.
AXE_PHONE: ViewportSize = {"width": 390, "height": 844}
AXE_DESKTOP: ViewportSize = {"width": 1280, "height": 800}

# WCAG 2.0, 2.1 and 2.2 A and AA, and axe's best practices.
RUN_OPTIONS = {
    "runOnly": {
        "type": "tag",
        "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"],
    },
    # Off by default in axe (experimental), on here: a control's name holds its visible text
    # (speech input users say what they see), a paragraph does not pose as a heading, data
    # cells have headers.
    "rules": {
        rule: {"enabled": True}
        for rule in ("label-content-name-mismatch", "p-as-heading", "td-has-header")
    },
    "resultTypes": ["violations"],
    # axe would fetch every stylesheet again (for css-orientation-lock): app.css is one file
    # the tests read anyway, and the refetch costs time at every check.
    "preload": False,
}

RUN = """async (options) => {
  const result = await window.axe.run(document, options);
  return result.violations.map((v) => ({
    id: v.id,
    impact: v.impact,
    help: v.help,
    targets: v.nodes.map((n) => n.target.join(" ")),
    summary: v.nodes.length ? v.nodes[0].failureSummary : "",
  }));
}"""

# The page's i18n.js sits beside its module script (same versioned prefix): importing that
# URL gives the very module instance the page uses.
# Answers false when the page has no i18n module running (its scripts failed to load: the
# upgrade notice, written in both languages at once).
SET_LANG = """async (next) => {
  const script = document.querySelector('script[type="module"]');
  let i18n;
  try {
    i18n = await import(new URL("i18n.js", script.src).href);
  } catch {
    return false;
  }
  i18n.setLang(next);
  await new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
  return true;
}"""
SAVED_LANG = "() => { try { return localStorage.getItem('tc.lang'); } catch { return null; } }"
RESTORE_SAVED = """(saved) => {
  try {
    if (saved === null) localStorage.removeItem("tc.lang");
    else localStorage.setItem("tc.lang", saved);
  } catch { /* storage blocked: nothing was saved either */ }
}"""
SETTLED = "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"

_source: str | None = None
# The states already checked in this test run (page + state, e.g. "join-waiting"): a state
# screenshotted by several tests is checked once.
checked: set[str] = set()
# Seconds of each axe run, for the run's summary (what the checks cost the suite).
spent: list[float] = []


def _inject(page: Page) -> None:
    global _source
    if page.evaluate("() => typeof window.axe === 'object'"):
        return
    if _source is None:
        _source = AXE_JS.read_text()
    page.evaluate(_source)


def violations(page: Page) -> list[dict[str, Any]]:
    """axe's violations on the page as it is now (language, width)."""
    started = time.monotonic()
    _inject(page)
    found = list(page.evaluate(RUN, RUN_OPTIONS))
    spent.append(time.monotonic() - started)
    return found


def describe(found: list[dict[str, Any]], where: str) -> str:
    lines = []
    for v in found:
        lines.append(f"{where}: {v['id']} ({v['impact']}): {v['help']}")
        lines.extend(f"    {target}" for target in v["targets"])
        if v["summary"]:
            lines.append("    " + v["summary"].replace("\n", "\n    "))
    return "\n".join(lines)


def assert_accessible(page: Page) -> None:
    """Zero violations on the page as it is (one language, one width)."""
    found = violations(page)
    assert not found, describe(found, page.url)


def assert_accessible_everywhere(page: Page, state: str) -> None:
    """Zero violations in this state in French and in English, at desktop and at phone width
    (once per state per test run); the page is left in its language and at its size."""
    if state in checked:
        return
    checked.add(state)
    size = page.viewport_size or AXE_DESKTOP
    saved = page.evaluate(SAVED_LANG)
    first = page.evaluate("() => document.documentElement.lang")
    other = "en" if first == "fr" else "fr"
    report: list[str] = []

    def check(where: str) -> None:
        page.evaluate(SETTLED)
        found = violations(page)
        if found:
            report.append(describe(found, f"{state} [{where}]"))

    try:
        if size != AXE_DESKTOP:
            page.set_viewport_size(AXE_DESKTOP)
        check(f"{first}, desktop")
        if page.evaluate(SET_LANG, other):
            check(f"{other}, desktop")
            page.set_viewport_size(AXE_PHONE)
            check(f"{other}, phone")
            page.evaluate(SET_LANG, first)
        else:
            page.set_viewport_size(AXE_PHONE)
        check(f"{first}, phone")
    finally:
        page.set_viewport_size(size)
        page.evaluate(SET_LANG, first)
        page.evaluate(RESTORE_SAVED, saved)
    assert not report, "axe-core violations:\n" + "\n".join(report)
