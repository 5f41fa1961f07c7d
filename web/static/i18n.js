// French and English texts, chosen from the saved choice, else the browser's languages.
// Elements carry data-i18n="key" (text) and data-i18n-attr="attr=key,attr2=key2".
import { DICTIONARY } from "./i18n-dict.js";

const STORAGE_KEY = "tc.lang";
export const LANGUAGES = ["fr", "en"];
let lang = detect();

function detect() {
  try {
    const saved = localStorage.getItem(STORAGE_KEY);
    if (LANGUAGES.includes(saved)) return saved;
  } catch {
    /* storage may be blocked */
  }
  for (const wanted of navigator.languages || [navigator.language || "fr"]) {
    const base = String(wanted).slice(0, 2).toLowerCase();
    if (LANGUAGES.includes(base)) return base;
  }
  return "fr";
}

export function currentLang() {
  return lang;
}

export function has(key) {
  return key in DICTIONARY[lang] || key in DICTIONARY.en;
}

// t("error.invalid_access_code", {attempts_left: 2}); "{name}" placeholders, and
// "one|many" plural forms chosen by the `count` variable.
export function t(key, vars = {}) {
  let text = DICTIONARY[lang][key] ?? DICTIONARY.en[key];
  if (text === undefined) {
    console.warn(`i18n: missing key ${key}`);
    return key;
  }
  if (text.includes("|") && "count" in vars) {
    const [one, many] = text.split("|");
    text = Number(vars.count) === 1 ? one : many;
  }
  return text.replace(/\{(\w+)\}/g, (match, name) => (name in vars ? String(vars[name]) : match));
}

export function applyTranslations(root = document) {
  for (const node of root.querySelectorAll("[data-i18n]")) {
    node.textContent = t(node.dataset.i18n);
  }
  for (const node of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of node.dataset.i18nAttr.split(",")) {
      const [attr, key] = pair.split("=").map((s) => s.trim());
      node.setAttribute(attr, t(key));
    }
  }
  document.documentElement.lang = lang;
  for (const button of document.querySelectorAll("[data-lang]")) {
    button.setAttribute("aria-pressed", String(button.dataset.lang === lang));
  }
}

export function setLang(next) {
  if (!LANGUAGES.includes(next) || next === lang) return;
  lang = next;
  try {
    localStorage.setItem(STORAGE_KEY, next);
  } catch {
    /* not remembered, still applied */
  }
  applyTranslations();
  document.dispatchEvent(new CustomEvent("langchange", { detail: { lang } }));
}

// Translate the page now and wire the FR/EN buttons.
export function initI18n() {
  applyTranslations();
  for (const button of document.querySelectorAll("[data-lang]")) {
    button.addEventListener("click", () => setLang(button.dataset.lang));
  }
}
