"""web/static/i18n.js in Node: plural forms follow each language's rule (Intl.PluralRules), so
French says "0 octet" where English says "0 bytes"."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import deadline

STATIC = Path(__file__).resolve().parent.parent / "web" / "static"

# Runs i18n.js as the pages do, its language chosen by the saved choice (localStorage).
SCRIPT = """
const lang = process.argv[2];
globalThis.localStorage = { getItem: () => lang, setItem() {} };
const { t, plural, currentLang } = await import("./static/i18n.js");
const { DICTIONARY } = await import("./static/i18n-dict.js");
const bytes = [0, 1, 2, 1.5].map((count) => t("call.file_size_bytes", { count }));
const entries = [0, 1, 7].map((count) => t("audit.verify_ok", { count }));
const plurals = Object.entries(DICTIONARY[lang]).filter(([, text]) => text.includes("|"));
console.log(JSON.stringify({
  lang: currentLang(),
  bytes,
  entries,
  million: plural(1000000, "one|other", lang),
  plurals: Object.fromEntries(plurals),
}));
"""


def run_i18n(tmp_path: Path, lang: str) -> Any:
    shutil.copytree(STATIC, tmp_path / "static", dirs_exist_ok=True)
    (tmp_path / "package.json").write_text('{"type": "module"}')
    (tmp_path / "run.mjs").write_text(SCRIPT)
    done = subprocess.run(
        ["node", "run.mjs", lang],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=deadline(30),
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_french_plural_takes_the_singular_for_zero(tmp_path: Path) -> None:
    fr = run_i18n(tmp_path, "fr")
    assert fr["lang"] == "fr"
    assert fr["bytes"] == ["0 octet", "1 octet", "2 octets", "1.5 octet"]
    assert fr["entries"] == [
        "Chaîne intacte : 0 entrée vérifiée.",
        "Chaîne intacte : 1 entrée vérifiée.",
        "Chaîne intacte : 7 entrées vérifiées.",
    ]
    assert fr["million"] == "other"  # French "many" reads as the plural form


def test_english_plural_takes_the_plural_for_zero(tmp_path: Path) -> None:
    en = run_i18n(tmp_path, "en")
    assert en["lang"] == "en"
    assert en["bytes"] == ["0 bytes", "1 byte", "2 bytes", "1.5 bytes"]
    assert en["entries"] == [
        "Chain intact: 0 entries checked.",
        "Chain intact: 1 entry checked.",
        "Chain intact: 7 entries checked.",
    ]


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_every_plural_text_has_two_forms_and_spells_no_number(tmp_path: Path, lang: str) -> None:
    # A "one" form that writes "1" is wrong wherever that form also covers 0 (French).
    plurals = run_i18n(tmp_path, lang)["plurals"]
    assert len(plurals) >= 8
    for key, text in plurals.items():
        forms = text.split("|")
        assert len(forms) == 2, key
        assert not any(re.search(r"\b1\b", form) for form in forms), key
