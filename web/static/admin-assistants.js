// The admin page's part for the secretariat: under each assistant's role, the doctors it
// schedules for, and a dialog to choose them (POST /api/users/{id}/assists). The server
// checks each id is a doctor's and records the change in the audit trail.
import { t } from "./i18n.js";
import { api } from "./api.js";
import { el } from "./ui.js";
import { formDialog } from "./form-dialog.js";

const ROLE_COLUMN = 1;

function nameOf(user) {
  return user.display_name || user.username;
}

/** Called after each render of the accounts table. */
export function showAssistants(users, { onSaved, onError }) {
  const doctors = users.filter((u) => u.role === "doctor");
  const byId = new Map(users.map((u) => [u.id, u]));
  for (const user of users) {
    if (user.role !== "assistant") continue;
    const row = document.querySelector(`#users-body tr[data-username="${CSS.escape(user.username)}"]`);
    if (!row) continue;
    const names = user.assists.map((id) => (byId.has(id) ? nameOf(byId.get(id)) : id));
    const choose = el(
      "button",
      { type: "button", class: "btn btn-ghost btn-small", "aria-label": t("assist.choose_for", { name: nameOf(user) }) },
      t("assist.choose"),
    );
    choose.addEventListener("click", () => chooseDoctors(user, doctors, { onSaved, onError }));
    row.cells[ROLE_COLUMN].append(
      el(
        "p",
        { class: "muted small assists-line" },
        names.length ? t("assist.schedules_for", { names: names.join(", ") }) : t("assist.schedules_for_none"),
      ),
      choose,
    );
  }
}

async function chooseDoctors(user, doctors, { onSaved, onError }) {
  const name = nameOf(user);
  const boxes = doctors.map((doctor) =>
    el(
      "label",
      { class: "check-line" },
      el("input", { type: "checkbox", value: doctor.id, checked: user.assists.includes(doctor.id) }),
      ` ${nameOf(doctor)}`,
    ),
  );
  const fields = boxes.length ? [el("fieldset", { class: "doctor-choice" }, ...boxes)] : [el("p", {}, t("assist.no_doctors"))];
  const form = await formDialog(t("assist.choose_title", { name }), t("assist.choose_body"), fields, t("assist.choose_save"));
  if (!form) return;
  const chosen = [...form.querySelectorAll("input[type=checkbox]:checked")].map((box) => box.value);
  try {
    await api(`/api/users/${encodeURIComponent(user.id)}/assists`, { method: "POST", body: { doctor_ids: chosen } });
    await onSaved(name);
  } catch (error) {
    onError(error);
  }
}
