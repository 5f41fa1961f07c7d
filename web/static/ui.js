// Small DOM helpers shared by the pages (no framework, no innerHTML with data).
import { t, currentLang } from "./i18n.js";

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

// el("li", {class: "x", dataset: {id: 1}}, "text", child)
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Show exactly one of the given sections.
export function showOnly(ids, visible) {
  for (const id of ids) {
    const node = document.getElementById(id);
    if (node) node.hidden = id !== visible;
  }
}

export function focusHeading(section) {
  const heading = section && section.querySelector("h1, h2");
  if (!heading) return;
  heading.tabIndex = -1;
  heading.focus({ preventScroll: false });
}

export function showError(form, message) {
  const box = form.querySelector(".alert-error");
  if (!box) return;
  say(box, message);
  box.hidden = !box.textContent;
}

// Texts put on screen by a page's code, kept as the function that writes them, so that a
// language switch rewrites them too (a refusal already shown switches with the rest).
const liveTexts = new Map();

/** Write ``message`` (a string, or a function giving one) into ``node``; a function is called
 * again at each language switch, until something else is written there. */
export function say(node, message) {
  if (typeof message === "function") {
    if (liveTexts.size === 0) document.addEventListener("langchange", rewriteLiveTexts);
    liveTexts.set(node, message);
    node.textContent = message() || "";
  } else {
    liveTexts.delete(node);
    node.textContent = message || "";
  }
}

function rewriteLiveTexts() {
  for (const [node, message] of liveTexts) {
    if (node.isConnected) node.textContent = message() || "";
    else liveTexts.delete(node);
  }
}

export function setBusy(form, busy) {
  form.setAttribute("aria-busy", busy ? "true" : "false");
  for (const button of form.querySelectorAll("button[type=submit]")) button.disabled = busy;
}

export function formatDateTime(iso, options = { dateStyle: "full", timeStyle: "short" }) {
  const date = typeof iso === "string" ? new Date(iso) : iso;
  return new Intl.DateTimeFormat(currentLang(), options).format(date);
}

export function formatTime(iso) {
  return formatDateTime(iso, { hour: "2-digit", minute: "2-digit" });
}

export function sameLocalDay(a, b) {
  return (
    a.getFullYear() === b.getFullYear() &&
    a.getMonth() === b.getMonth() &&
    a.getDate() === b.getDate()
  );
}

// "2026-11-25T14:30:00+01:00": a local wall-clock time with its UTC offset.
export function isoWithOffset(date) {
  const pad = (n) => String(Math.abs(n)).padStart(2, "0");
  const offset = -date.getTimezoneOffset();
  const sign = offset >= 0 ? "+" : "-";
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}:00` +
    `${sign}${pad(Math.trunc(offset / 60))}:${pad(offset % 60)}`
  );
}

// Copy text and say so next to the button (for screen readers too).
export async function copyText(text, feedback) {
  let ok = false;
  try {
    await navigator.clipboard.writeText(text);
    ok = true;
  } catch {
    ok = false;
  }
  if (feedback) {
    feedback.textContent = ok ? t("common.copied") : t("common.copy_failed");
    clearTimeout(feedback._timer);
    feedback._timer = setTimeout(() => (feedback.textContent = ""), 4000);
  }
  return ok;
}

export function wirePasswordToggles(root = document) {
  for (const button of $$(".toggle-password", root)) {
    button.addEventListener("click", () => {
      const input = document.getElementById(button.getAttribute("aria-controls"));
      const show = input.type === "password";
      input.type = show ? "text" : "password";
      button.setAttribute("aria-pressed", String(show));
      button.dataset.i18n = show ? "common.hide" : "common.show";
      button.textContent = t(button.dataset.i18n);
    });
  }
}

// Resolve to true when the person confirms in the page's <dialog id="confirm-dialog">.
// cancelKey: the i18n key of the way out when "Back" would be unclear (e.g. "Stay").
export function confirmDialog(title, body, okLabel, cancelKey = "common.back") {
  const dialog = document.getElementById("confirm-dialog");
  $("#confirm-title", dialog).textContent = title;
  $("#confirm-body", dialog).textContent = body;
  $("#confirm-ok", dialog).textContent = okLabel;
  const cancel = $("button[value=cancel]", dialog);
  cancel.dataset.i18n = cancelKey;
  cancel.textContent = t(cancelKey);
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
  });
}
