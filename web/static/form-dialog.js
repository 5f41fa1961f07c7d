// A modal form made for one question (choose doctors, move an appointment): built when asked,
// removed when closed, so each page holds no markup for the dialogs it may never open.
import { t } from "./i18n.js";
import { el } from "./ui.js";

/** Resolve to the dialog's form once the person confirms, or null when they go back. */
export function formDialog(title, body, fields, okLabel) {
  const heading = el("h2", { id: "form-dialog-title" }, title);
  const form = el(
    "form",
    { method: "dialog" },
    heading,
    body ? el("p", { class: "muted" }, body) : null,
    ...fields,
    el(
      "div",
      { class: "dialog-actions" },
      el("button", { value: "cancel", class: "btn btn-secondary", formnovalidate: true }, t("common.back")),
      el("button", { value: "ok", class: "btn btn-primary", id: "form-dialog-ok" }, okLabel),
    ),
  );
  const dialog = el("dialog", { class: "form-dialog", "aria-labelledby": "form-dialog-title" }, form);
  document.body.append(dialog);
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        dialog.remove();
        resolve(dialog.returnValue === "ok" ? form : null);
      },
      { once: true },
    );
    dialog.showModal();
  });
}
