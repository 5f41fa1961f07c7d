// "Edit" on a dashboard row: time, duration, patient name and (the doctor only) the private
// note in one dialog, then POST …/edit with the fields that changed. The patient's link and
// code stay valid; their page shows the new time.
import { t } from "./i18n.js";
import { api } from "./api.js";
import { $, el, formatDateTime, isoWithOffset } from "./ui.js";
import { formDialog } from "./form-dialog.js";

function pad(n) {
  return String(n).padStart(2, "0");
}

function field(id, label, control) {
  return el("div", { class: "field" }, el("label", { for: id }, label), control);
}

/** `mayEditNote`: the doctor's private note is the doctor's; an assistant never sees it. */
export function editButton(c, { mayEditNote, onDone, onError }) {
  const button = el(
    "button",
    { type: "button", class: "btn btn-secondary btn-small consult-edit", "aria-label": t("edit.button_for", { name: c.patient_name }) },
    t("edit.button"),
  );
  button.addEventListener("click", async () => {
    const start = new Date(c.scheduled_start);
    const date = `${start.getFullYear()}-${pad(start.getMonth() + 1)}-${pad(start.getDate())}`;
    const time = `${pad(start.getHours())}:${pad(start.getMinutes())}`;
    const durations = [15, 20, 30, 45, 60];
    if (!durations.includes(c.duration_minutes)) durations.push(c.duration_minutes);
    const fields = [
      field("edit-name", t("create.patient"), el("input", { id: "edit-name", type: "text", required: true, maxlength: "120", autocomplete: "off", value: c.patient_name })),
      el(
        "div",
        { class: "field-row" },
        field("edit-date", t("create.date"), el("input", { id: "edit-date", type: "date", required: true, value: date })),
        field("edit-time", t("create.time"), el("input", { id: "edit-time", type: "time", required: true, step: "300", value: time })),
      ),
      field(
        "edit-duration",
        t("create.duration"),
        el("select", { id: "edit-duration" }, ...durations.map((m) => el("option", { value: m, selected: m === c.duration_minutes }, `${m} min`))),
      ),
      mayEditNote ? field("edit-note", t("create.note"), el("textarea", { id: "edit-note", rows: "3", maxlength: "2000" }, c.note)) : null,
    ];
    const form = await formDialog(t("edit.title", { name: c.patient_name }), t("edit.help"), fields, t("edit.save"));
    if (!form) return;
    const [y, m, d] = $("#edit-date", form).value.split("-").map(Number);
    const [hh, mm] = $("#edit-time", form).value.split(":").map(Number);
    const when = new Date(y, m - 1, d, hh, mm);
    const duration = Number($("#edit-duration", form).value);
    // Only what changed: an unchanged time that is already past stays as it is.
    const body = {};
    if (when.getTime() !== start.getTime() || duration !== c.duration_minutes) {
      body.scheduled_start = isoWithOffset(when);
      body.duration_minutes = duration;
    }
    const name = $("#edit-name", form).value.trim();
    if (name !== c.patient_name) body.patient_name = name;
    if (mayEditNote && $("#edit-note", form).value.trim() !== c.note) body.note = $("#edit-note", form).value;
    if (Object.keys(body).length === 0) return;
    try {
      const edited = await api(`/api/consultations/${encodeURIComponent(c.id)}/edit`, { method: "POST", body });
      onDone(t("edit.done", { name: edited.patient_name, when: formatDateTime(edited.scheduled_start) }));
    } catch (error) {
      onError(error);
    }
  });
  return button;
}
