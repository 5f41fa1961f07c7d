// What the dashboard changes for the secretariat (role "assistant"): the create form names
// the doctor the appointment is for and has no private note (the doctor's alone), each
// appointment shows its doctor, nobody is let into a call from here. "Move" (reschedule) is
// offered to doctors and assistants alike. The server decides all of it again
// (signaling/consultations/permissions.py); the page only leaves out what would be refused.
import { t } from "./i18n.js";
import { api } from "./api.js";
import { $, el } from "./ui.js";

let doctors = [];

export function isAssistant(user) {
  return Boolean(user) && user.role === "assistant";
}

/** The doctor picker and the note field, for this user; loads an assistant's doctors. */
export async function prepareCreateForm(user) {
  const assistant = isAssistant(user);
  $("#note-field").hidden = assistant;
  $("#doctor-field").hidden = !assistant;
  $("#waiting-seat-hint").hidden = !assistant;
  if (!assistant) return;
  doctors = (await api("/api/me/doctors")).doctors;
  const select = $("#doctor");
  const chosen = select.value;
  select.replaceChildren(...doctors.map((d) => el("option", { value: d.id }, d.display_name)));
  if (doctors.some((d) => d.id === chosen)) select.value = chosen;
  $("#no-doctor").hidden = doctors.length > 0;
}

/** What the create request adds for this user: the doctor an assistant books for. */
export function bookingFor(user) {
  return isAssistant(user) ? { doctor_id: $("#doctor").value } : {};
}

/** "For Dr …": whose appointment or waiting room, on an assistant's dashboard ("" else). */
export function forDoctorText(user, doctorId) {
  if (!isAssistant(user)) return "";
  const doctor = doctors.find((d) => d.id === doctorId);
  return t("assist.for_doctor", { name: doctor ? doctor.display_name : "" });
}

/** The doctor's name under an appointment, on an assistant's list. */
export function doctorLine(user, consultation) {
  const text = forDoctorText(user, consultation.doctor_id);
  return text ? el("span", { class: "consult-doctor small" }, text) : null;
}
