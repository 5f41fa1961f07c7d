"""Every text the pages ask for exists in French and English (a static check, no browser)."""

from __future__ import annotations

import re
from pathlib import Path

from signaling.api.site import load_site
from signaling.app import all_routes

WEB = Path(__file__).resolve().parents[2] / "web"
_ENTRY = re.compile(r'^\s*"([\w.]+)":', re.MULTILINE)


DICTIONARY_FILES = sorted((WEB / "static").glob("i18n-dict*.js"))


def dictionary() -> dict[str, set[str]]:
    words: dict[str, set[str]] = {"fr": set(), "en": set()}
    for path in DICTIONARY_FILES:
        fr_part, en_part = path.read_text().split("\n  en: {", 1)
        words["fr"].update(_ENTRY.findall(fr_part))
        words["en"].update(_ENTRY.findall(en_part))
    return words


def served_pages() -> dict[str, str]:
    """The pages as the server sends them: the shell around each page's body."""
    return {name: html.decode() for name, html in load_site(WEB).pages.items()}


def used_keys() -> set[str]:
    keys: set[str] = set()
    for html in served_pages().values():
        keys.update(re.findall(r'data-i18n="([\w.]+)"', html))
        for attrs in re.findall(r'data-i18n-attr="([^"]+)"', html):
            keys.update(pair.split("=")[1].strip() for pair in attrs.split(","))
    for module in (WEB / "static").glob("*.js"):
        keys.update(re.findall(r'\bt\(\s*"([\w.]+)"', module.read_text()))
        keys.update(
            re.findall(r'"((?:devices|dash|join|admin|error|status)\.[\w]+)"', module.read_text())
        )
    return keys


def test_no_key_is_written_twice() -> None:
    # Across files too: a later file would silently override an earlier one's text.
    for half in (0, 1):
        keys = [
            key
            for path in DICTIONARY_FILES
            for key in _ENTRY.findall(path.read_text().split("\n  en: {", 1)[half])
        ]
        assert len(keys) == len(set(keys)), sorted({k for k in keys if keys.count(k) > 1})


def test_french_and_english_have_the_same_keys() -> None:
    words = dictionary()
    assert words["fr"] == words["en"]
    assert len(words["fr"]) > 200


def test_every_key_used_by_the_pages_is_translated() -> None:
    missing = used_keys() - dictionary()["fr"]
    assert not missing, sorted(missing)


# The API paths the pages call; errors of other endpoints fall back to the server's message.
PAGE_PATHS: tuple[str, ...] = (
    "/api/setup",
    "/api/auth/",
    "/api/me",
    "/api/users",
    "/api/consultations",
)
PAGE_PATHS += ("/api/invites/", "/api/room-tokens", "/api/account-link")


def test_every_error_the_pages_may_meet_has_a_message_for_people() -> None:
    codes = {
        code
        for endpoint in all_routes().endpoints
        if endpoint.path.startswith(PAGE_PATHS)
        for code in endpoint.errors
    }
    missing = {f"error.{code}" for code in codes} - dictionary()["fr"]
    assert not missing, sorted(missing)


def test_pages_have_no_inline_script_style_or_handler() -> None:
    for name, html in served_pages().items():
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), name
        assert not re.search(r"\sstyle=", html), name
        assert not re.search(r"\son[a-z]+=", html), name
        assert "<style" not in html, name
