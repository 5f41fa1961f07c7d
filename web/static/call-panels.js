// The call screen's shared markup: security code and quality beside the encryption badge,
// the chat and devices panels, and their two buttons. Both call pages (call.html for the
// doctor, join.html for the patient) need exactly the same, so it is built here once rather
// than written twice. Texts carry data-i18n, so the language switch re-labels them.
import { t } from "./i18n.js";
import { el } from "./ui.js";

/** An element whose text is the key's translation (and follows the language switch). */
function text(tag, key, attrs = {}) {
  return el(tag, { ...attrs, "data-i18n": key }, t(key));
}

function closeButton(id) {
  return text("button", "call.panel_close", { id, type: "button", class: "btn btn-ghost btn-small" });
}

function panelHead(titleId, titleKey, closeId) {
  return el("div", { class: "panel-head" }, text("h2", titleKey, { id: titleId }), closeButton(closeId));
}

function securityExtras() {
  const code = el(
    "details",
    { id: "call-code", class: "call-code", hidden: true },
    // An optional check, worded calmly: what to do, what it shows, and what a difference
    // would mean before what to do then.
    el("summary", {}, text("span", "callscreen.code_summary")),
    text("p", "callscreen.code_how"),
    el("p", { class: "call-code-line" }, text("span", "callscreen.code_label"), " ", el("strong", { id: "call-code-value", class: "call-code-value" })),
    text("p", "callscreen.code_why"),
  );
  const bars = el("span", { class: "quality-bars", "aria-hidden": "true" }, el("span"), el("span"), el("span"));
  const quality = el(
    "div",
    { id: "call-quality", class: "call-quality", hidden: true },
    el(
      "button",
      { id: "call-quality-button", type: "button", class: "call-quality-button", "aria-expanded": "false", "aria-describedby": "call-quality-figures" },
      bars,
      " ",
      el("span", { id: "call-quality-label" }),
    ),
    el("span", { id: "call-quality-figures", class: "call-quality-figures", role: "tooltip" }),
  );
  return [code, quality];
}

function chatPanel() {
  // A section (a region named by its title), not an aside: a complementary landmark may not
  // sit inside the page's main one.
  return el(
    "section",
    { id: "chat-panel", class: "chat-panel", hidden: true, "aria-labelledby": "chat-title" },
    panelHead("chat-title", "call.chat_title", "chat-close"),
    text("p", "call.chat_note", { class: "chat-note" }),
    // tabindex: a log taller than its box scrolls with the arrow keys too.
    el("ol", { id: "chat-log", class: "chat-log", tabindex: "0", "aria-live": "polite", "aria-label": t("call.chat_log_label"), "data-i18n-attr": "aria-label=call.chat_log_label" }),
    el("p", { id: "chat-status", class: "chat-status", role: "status" }),
    el(
      "form",
      { id: "chat-form", class: "chat-form" },
      text("label", "call.chat_input_label", { for: "chat-input", class: "visually-hidden" }),
      el("textarea", { id: "chat-input", rows: "2", maxlength: "2000" }),
      el(
        "div",
        { class: "chat-actions" },
        text("button", "call.file_send", { id: "chat-file-button", type: "button", class: "btn btn-ghost btn-small" }),
        el("input", { id: "chat-file", type: "file", hidden: true }),
        text("button", "call.chat_send", { id: "chat-send", type: "submit", class: "btn btn-primary btn-small" }),
      ),
    ),
  );
}

function deviceChoice(id, key) {
  return [text("label", key, { for: id }), el("select", { id })];
}

function devicesPanel() {
  return el(
    "section",
    { id: "devices-panel", class: "devices-panel", hidden: true, "aria-labelledby": "call-devices-title" },
    panelHead("call-devices-title", "call.devices_title", "devices-close"),
    ...deviceChoice("call-camera", "call.devices_camera"),
    ...deviceChoice("call-mic", "call.devices_mic"),
    el("div", { id: "call-speaker-field" }, ...deviceChoice("call-speaker", "call.devices_speaker")),
    el("p", { id: "devices-status", class: "devices-status", role: "status" }),
  );
}

function toggles() {
  const chat = el(
    "button",
    { id: "chat-toggle", type: "button", class: "btn btn-secondary", "aria-expanded": "false", "aria-controls": "chat-panel" },
    text("span", "call.chat_toggle"),
    " ",
    el("span", { id: "chat-unread", class: "chat-unread", hidden: true, "aria-hidden": "true" }),
  );
  const devices = text("button", "call.devices_toggle", {
    id: "devices-toggle",
    type: "button",
    class: "btn btn-secondary",
    "aria-expanded": "false",
    "aria-controls": "devices-panel",
  });
  return [chat, devices];
}

/** Front/back camera (call-camera-flip.js), hidden until there is a second camera. */
function flipButton() {
  return text("button", "phone.switch_camera", { id: "camera-flip", type: "button", class: "btn btn-secondary", hidden: true });
}

/**
 * Adds the shared parts to a call stage: `encryption` is the page's encryption badge (it moves
 * into a column with the code and the quality), `controls` the toolbar, `before` the button
 * the chat and devices buttons go in front of (hang up) and `cameraButton` the camera toggle
 * (the front/back switch goes after it).
 */
export function buildCallPanels({ encryption, controls, before, cameraButton }) {
  const security = el("div", { class: "call-security" });
  encryption.replaceWith(security);
  security.append(encryption, ...securityExtras());
  // The chat log's own live region is silent while its panel is closed: news of a message
  // that came then is told here.
  const news = el("p", { id: "chat-news", class: "visually-hidden", role: "status", "aria-live": "polite" });
  controls.before(chatPanel(), devicesPanel(), news);
  before.before(...toggles());
  if (cameraButton) cameraButton.after(flipButton());
  else before.before(flipButton());
}
