// What to do when the camera or microphone does not start, for the device in the patient's
// hand: on an Android phone the site's permissions sit behind the icon left of the address,
// on an iPhone or iPad behind "aA" (Website Settings), on a computer behind the camera or
// padlock icon of the address bar. Steps for another device would only confuse a worried
// patient, so the page shows the ones that fit.
import { t } from "./i18n.js";
import { el } from "./ui.js";

/**
 * "android", "ios", "phone" (another touch device) or "desktop", from the user agent and
 * the pointer. iPadOS says "Macintosh" but has a touch screen; a coarse pointer without hover
 * is a phone or tablet whatever its browser calls itself.
 */
export function devicePlatform(nav = globalThis.navigator, matches = (query) => globalThis.matchMedia(query).matches) {
  const agent = (nav && nav.userAgent) || "";
  if (/Android/i.test(agent)) return "android";
  if (/iPhone|iPad|iPod/i.test(agent) || (/Macintosh/.test(agent) && nav.maxTouchPoints > 1)) return "ios";
  if (matches("(pointer: coarse)") && !matches("(hover: hover)")) return "phone";
  return "desktop";
}

const STEPS = {
  android: ["devicehelp.android_1", "devicehelp.android_2", "devicehelp.retry_tap"],
  ios: ["devicehelp.ios_1", "devicehelp.ios_2", "devicehelp.retry_tap"],
  phone: ["devicehelp.phone_1", "devicehelp.phone_2", "devicehelp.retry_tap"],
  desktop: ["devicehelp.desktop_1", "devicehelp.desktop_2", "devicehelp.retry_click"],
};
// When the site's own permission is not the whole story: the phone can refuse the browser.
const STILL_BLOCKED = { android: "devicehelp.android_still", ios: "devicehelp.ios_still" };
const PHONES = new Set(["android", "ios", "phone"]);

/**
 * The texts for a device check error (DeviceCheck.error: "NotAllowedError",
 * "Partial:NotFoundError"...): {lead, steps, note}, each a dictionary key (steps a list,
 * note possibly null). Only a refusal has steps: the other errors say what to do in one line.
 */
export function deviceHelp(error, platform) {
  const partial = error.startsWith("Partial:");
  const kind = error.replace(/^Partial:/, "");
  const onPhone = PHONES.has(platform);
  if (kind === "NotAllowedError") {
    return {
      lead: partial ? "devicehelp.denied_one" : "devicehelp.denied",
      steps: STEPS[platform],
      note: STILL_BLOCKED[platform] || null,
    };
  }
  if (partial) return { lead: "devices.error_partial", steps: [], note: null };
  const lead =
    {
      NotFoundError: onPhone ? "devicehelp.missing_phone" : "devices.error_missing",
      NotReadableError: onPhone ? "devicehelp.busy_phone" : "devices.error_busy",
    }[kind] || "devices.error_other";
  return { lead, steps: [], note: null };
}

/** Fill the error box's parts: the lead sentence, the numbered steps and the note. */
export function renderDeviceHelp({ lead, list, note }, help) {
  lead.dataset.i18n = help.lead;
  lead.textContent = t(help.lead);
  list.replaceChildren(...help.steps.map((key) => el("li", { "data-i18n": key }, t(key))));
  list.hidden = help.steps.length === 0;
  note.hidden = !help.note;
  if (help.note) note.dataset.i18n = help.note;
  else delete note.dataset.i18n;
  note.textContent = help.note ? t(help.note) : "";
}
