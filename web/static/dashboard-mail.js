// Invitations by email on the dashboard: the "Send by email" button of the new link's panel
// and of each consultation with an address (POST /api/consultations/<id>/email). The email
// carries the link only: the panel keeps saying that the access code goes by phone or SMS.
import { t } from "./i18n.js";
import { api } from "./api.js";
import { $, el, formatDateTime } from "./ui.js";

let shown = null; // the consultation of the open invite panel

function sentLine(c) {
  return t("mail.sent", {
    email: c.patient_email,
    when: formatDateTime(c.invite_emailed_at, { dateStyle: "medium", timeStyle: "short" }),
  });
}

async function send(c) {
  return api(`/api/consultations/${encodeURIComponent(c.id)}/email`, { method: "POST", body: {} });
}

function renderPanel() {
  const box = $("#invite-mail");
  box.hidden = !(shown && shown.patient_email);
  if (box.hidden) return;
  $("#invite-mail-send").textContent = t(shown.invite_emailed_at ? "mail.resend" : "mail.send");
  $("#invite-mail-status").textContent = shown.invite_emailed_at ? sentLine(shown) : "";
}

// The invite panel opened on a consultation (created, or given a new link).
export function showInviteMail(consultation) {
  shown = consultation;
  $("#invite-mail-error").hidden = true;
  renderPanel();
}

export function wireInviteMail({ onSent, onSignedOut }) {
  const button = $("#invite-mail-send");
  button.addEventListener("click", async () => {
    if (!shown) return;
    const error = $("#invite-mail-error");
    error.hidden = true;
    button.disabled = true;
    $("#invite-mail-status").textContent = t("mail.sending");
    try {
      shown = await send(shown);
      await onSent();
    } catch (failure) {
      if (failure.code === "not_authenticated") return onSignedOut();
      error.textContent = failure.userMessage;
      error.hidden = false;
    } finally {
      button.disabled = false;
      renderPanel();
    }
  });
  document.addEventListener("langchange", () => shown && renderPanel());
}

// A consultation row's button and the line saying when the link was emailed.
export function mailControls(c, { onSent, onError }) {
  if (!c.patient_email) return { button: null, line: null };
  const button = el("button", { type: "button", class: "btn btn-secondary btn-small" });
  // The name says whose link, and holds the visible text (speech input says what it sees).
  const label = (sending) => {
    const key = sending ? "mail.sending" : c.invite_emailed_at ? "mail.resend" : "mail.send";
    button.textContent = t(key);
    if (sending) button.removeAttribute("aria-label");
    else button.setAttribute("aria-label", t(`${key}_for`, { name: c.patient_name }));
  };
  label(false);
  button.addEventListener("click", async () => {
    button.disabled = true;
    label(true);
    try {
      await send(c);
      await onSent();
    } catch (failure) {
      button.disabled = false;
      label(false);
      onError(failure);
    }
  });
  const line = c.invite_emailed_at
    ? el("p", { class: "muted small consult-mailed" }, t("mail.sent_short", { when: formatDateTime(c.invite_emailed_at, { dateStyle: "medium", timeStyle: "short" }) }))
    : null;
  return { button, line };
}
