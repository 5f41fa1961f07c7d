// The admin page's part for the clinic's details (name, phone, hours, the emergency line in
// French and English): read from GET /api/clinic, saved with POST /api/clinic. The server
// checks each field (config/clinic_rules.py) and names a refused one in error.details.field,
// which the form marks; it audits the change (clinic.updated).
import { t } from "./i18n.js";
import { api } from "./api.js";
import { $, showError, setBusy } from "./ui.js";

const FIELDS = ["name", "phone", "hours", "emergency_fr", "emergency_en"];
let shown = {}; // the details as last read or saved

function input(field) {
  return $(`#clinic-form [name="${field}"]`);
}

function fill(details) {
  shown = details;
  for (const field of FIELDS) input(field).value = details[field] || "";
}

function markInvalid(field) {
  for (const name of FIELDS) input(name).removeAttribute("aria-invalid");
  if (!field) return;
  input(field).setAttribute("aria-invalid", "true");
  input(field).focus();
}

function say(key) {
  const status = $("#clinic-status");
  // Its key stays on it: a language switch says it again (applyTranslations).
  if (key) status.dataset.i18n = key;
  else delete status.dataset.i18n;
  status.textContent = key ? t(key) : "";
  status.hidden = !key;
}

async function save(event) {
  event.preventDefault();
  const form = $("#clinic-form");
  const body = Object.fromEntries(FIELDS.map((field) => [field, input(field).value.trim()]));
  showError(form, "");
  say("");
  markInvalid(null);
  setBusy(form, true);
  try {
    const before = shown;
    const saved = await api("/api/clinic", { method: "POST", body });
    fill(saved);
    say(FIELDS.some((field) => before[field] !== saved[field]) ? "admin_clinic.saved" : "admin_clinic.unchanged");
  } catch (error) {
    if (error.code === "not_authenticated") return location.assign("/");
    const field = error.details && FIELDS.includes(error.details.field) ? error.details.field : null;
    showError(form, field ? t(`admin_clinic.invalid_${field}`) : error.userMessage);
    markInvalid(field);
  } finally {
    setBusy(form, false);
  }
}

/** Called once the admin page is shown to an admin. */
export async function showClinicForm() {
  $("#clinic-form").addEventListener("submit", save);
  try {
    fill(await api("/api/clinic"));
  } catch (error) {
    showError($("#clinic-form"), error.userMessage);
  }
}
