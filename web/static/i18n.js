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
    /* storage may be blocked (or absent: Node runs this module in the unit tests) */
  }
  const nav = globalThis.navigator || {};
  for (const wanted of nav.languages || [nav.language || "fr"]) {
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

// The plural forms of a text, "one|other", in the order of each language's categories below.
// Which form a number takes is the language's rule (Intl.PluralRules), not `count === 1`:
// French says "0 patient", "1,5 heure" (category "one"), English "0 patients".
const PLURAL_FORMS = { fr: ["one", "other"], en: ["one", "other"] };
const pluralRules = new Map();

/** The form of `forms` ("one|other") that `count` takes in `language`. */
export function plural(count, forms, language = lang) {
  const texts = forms.split("|");
  if (!pluralRules.has(language)) pluralRules.set(language, new Intl.PluralRules(language));
  // A category a language's texts do not spell out (French "many": "1 000 000 de patients")
  // reads as its last form.
  const index = (PLURAL_FORMS[language] || PLURAL_FORMS.en).indexOf(pluralRules.get(language).select(Number(count)));
  return texts[index === -1 ? texts.length - 1 : Math.min(index, texts.length - 1)];
}

// t("error.invalid_access_code", {attempts_left: 2}); "{name}" placeholders, and
// "one|other" plural forms chosen by the `count` variable (plural() above).
export function t(key, vars = {}) {
  const language = key in DICTIONARY[lang] ? lang : "en";
  let text = DICTIONARY[language][key];
  if (text === undefined) {
    console.warn(`i18n: missing key ${key}`);
    return key;
  }
  if (text.includes("|") && "count" in vars) text = plural(vars.count, text, language);
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
