"""Which texts on a page are still in the other language after a language switch.

Read in the page itself from the dictionary the page uses (web/static/i18n-dict.js): every
text of the other language that differs from the current language's becomes a pattern (its
"{name}" placeholders match anything, each plural form on its own), and every visible line of
text, placeholder, aria-label and title on the page is matched whole against them. A text the
two languages share ("Messages", "Date") is not foreign; a pattern with fewer than four letters
of its own is too loose to judge and left out.
"""

from __future__ import annotations

from typing import Any, cast

from tests.conftest import wait_until_sync

FIND_FOREIGN = """async (lang) => {
  const { DICTIONARY } = await import("/static/i18n-dict.js");
  const other = lang === "fr" ? "en" : "fr";
  const mine = new Set(Object.values(DICTIONARY[lang]).flatMap((text) => text.split("|")));
  const escape = (text) => text.replace(/[.*+?^$()[\\]\\\\|]/g, "\\\\$&");
  const patterns = [];
  for (const [key, text] of Object.entries(DICTIONARY[other])) {
    if (DICTIONARY[lang][key] === text) continue;
    for (const form of text.split("|")) {
      if (mine.has(form)) continue;
      const letters = form.replace(/\\{\\w+\\}/g, "").replace(/[^\\p{L}]/gu, "");
      if (letters.length < 4) continue;
      const source = escape(form).replace(/\\\\?\\{\\w+\\\\?\\}/g, "[^]+?");
      patterns.push([key, new RegExp(`^${source}$`, "u")]);
    }
  }
  const visible = (node) =>
    node.checkVisibility ? node.checkVisibility() : node.offsetParent !== null;
  const said = [];
  for (const line of document.body.innerText.split("\\n")) said.push(line.trim());
  for (const node of document.querySelectorAll("[placeholder], [aria-label], [title]")) {
    if (!visible(node)) continue;
    for (const attr of ["placeholder", "aria-label", "title"]) {
      if (node.hasAttribute(attr)) said.push(node.getAttribute(attr).trim());
    }
  }
  const found = [];
  for (const text of said) {
    if (!text) continue;
    const match = patterns.find(([, pattern]) => pattern.test(text));
    if (match) found.push(`${match[0]}: ${text}`);
  }
  return [...new Set(found)];
}"""


def foreign_texts(page: Any, lang: str) -> list[str]:
    """The texts on the page in the language other than ``lang`` ("key: text" each)."""
    return cast(list[str], page.evaluate(FIND_FOREIGN, lang))


def switch_and_check(page: Any, lang: str) -> None:
    """Switch the page to ``lang`` with its FR/EN buttons and assert that no visible text,
    placeholder or accessible name is left in the other language."""
    page.click(f'.lang-switch button[data-lang="{lang}"]')
    page.wait_for_function("(lang) => document.documentElement.lang === lang", arg=lang)
    # Some texts follow a moment later (a list fetched again): give them that moment.
    try:
        wait_until_sync(lambda: not foreign_texts(page, lang), within=3)
    except TimeoutError:
        pass
    found = foreign_texts(page, lang)
    assert found == [], found
