// "Message" on a waiting patient (dashboard): a small dialog with the ready-made messages and
// one line of free text, sent with POST /api/consultations/<id>/waiting-message. The patient's
// page words a ready-made message in the patient's own language (waiting-messages.js), so
// only its id travels; the staff member reads it here in theirs. The answer says whether the
// message reached the patient (or why not) in the status line the caller gives.
import { t } from "./i18n.js";
import { api } from "./api.js";
import { el, formatTime } from "./ui.js";
import { formDialog } from "./form-dialog.js";

// As signaling/live/staff_messages.py (StaffPreset), in the order offered.
export const PRESETS = ["soon_10", "few_minutes", "running_late", "check_microphone", "check_camera"];
const MAX_TEXT_CHARS = 280;
const FREE = "free";

function choice(value, label, checked) {
  return el(
    "label",
    { class: "check-line" },
    el("input", { type: "radio", name: "kind", value, checked, required: true }),
    ` ${label}`,
  );
}

/** The dialog's fields: the presets, "write a short message" and its line of text. */
function messageFields() {
  const text = el("input", {
    id: "staffmsg-text",
    name: "text",
    type: "text",
    maxlength: String(MAX_TEXT_CHARS),
    autocomplete: "off",
    "aria-describedby": "staffmsg-text-hint",
  });
  const choices = [...PRESETS.map((id, i) => choice(id, t(`staffmsg.preset.${id}`), i === 0)), choice(FREE, t("staffmsg.free"), false)];
  const group = el("fieldset", { class: "doctor-choice staffmsg-choice" }, el("legend", { class: "visually-hidden" }, t("staffmsg.choose")), ...choices);
  const free = group.querySelector(`input[value="${FREE}"]`);
  // Typing chooses "write"; "write" needs words (the browser says so before sending).
  const follow = () => {
    text.required = free.checked;
  };
  group.addEventListener("change", follow);
  text.addEventListener("input", () => {
    if (text.value && !free.checked) {
      free.checked = true;
      follow();
    }
  });
  const field = el(
    "div",
    { class: "field" },
    el("label", { for: "staffmsg-text" }, t("staffmsg.free_label")),
    text,
    el("p", { class: "hint", id: "staffmsg-text-hint" }, t("staffmsg.free_hint")),
  );
  return [group, field];
}

/** Show `message` in the status line: kind "success", "error" or "info". */
function say(status, kind, message) {
  status.className = `alert alert-${kind}`;
  status.textContent = message;
  status.hidden = false;
}

/** Ask what to write to `patient` ({consultationId, patientName}), send it, and report
 * the outcome in `status` (an element with role="status"). */
export async function writeToWaitingPatient(patient, status) {
  const name = patient.patientName;
  const form = await formDialog(t("staffmsg.dialog_title", { name }), t("staffmsg.dialog_body"), messageFields(), t("staffmsg.send"));
  if (!form) return;
  const kind = form.elements.kind.value;
  const body = kind === FREE ? { text: form.elements.text.value } : { preset: kind };
  say(status, "info", t("staffmsg.sending", { name }));
  try {
    const sent = await api(`/api/consultations/${encodeURIComponent(patient.consultationId)}/waiting-message`, { method: "POST", body });
    say(status, "success", t("staffmsg.sent", { name, time: formatTime(sent.sent_at) }));
  } catch (error) {
    say(status, "error", t("staffmsg.failed", { name, reason: error.userMessage }));
  }
}
