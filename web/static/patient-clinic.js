// The clinic on the patient's page (join.js): the emergency line at the top of every step, and
// the clinic's name, phone (a tap calls it) and opening hours at the bottom, the error states
// included. From GET /api/clinic (the admin's saved details, else the settings' [clinic]);
// until it answers, or if it never does, the emergency line is the default one of the page's
// texts: a worried patient always reads what to do.
import { t, currentLang } from "./i18n.js";
import { api } from "./api.js";
import { $, el } from "./ui.js";

let clinic = null;

export async function showClinic() {
  try {
    clinic = await api("/api/clinic");
  } catch {
    return; // the page works without it, with the default emergency line
  }
  renderClinic();
}

// "tel:" wants the digits (and a leading +) alone.
function telHref(phone) {
  return `tel:${phone.replace(/[^\d+]/g, "")}`;
}

/** The clinic's line: "{name} · Phone: {phone}", the phone a link, built without markup. */
function clinicLine() {
  if (!clinic.phone) return [clinic.name];
  const mark = "\u0000";
  const [before, after] = t("clinic.line_phone", { name: clinic.name, phone: mark }).split(mark);
  return [before, el("a", { href: telHref(clinic.phone) }, clinic.phone), after];
}

export function renderClinic() {
  if (!clinic) return;
  const emergency = currentLang() === "fr" ? clinic.emergency_fr : clinic.emergency_en;
  const text = $("#emergency-text");
  if (emergency) {
    delete text.dataset.i18n; // the clinic's own words, not the page's default
    text.textContent = emergency;
  }
  if (!clinic.name) return;
  $("#clinic-line").replaceChildren(...clinicLine());
  const hours = $("#clinic-hours");
  hours.textContent = clinic.hours ? t("clinic.hours_line", { hours: clinic.hours }) : "";
  hours.hidden = !clinic.hours;
  $("#clinic-box").hidden = false;
}
