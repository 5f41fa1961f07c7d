// The admin page's account care: each account's status (locked, pending link, disabled...),
// last sign-in and two-factor state, and the one-time enrolment/reset link box.
import { t } from "./i18n.js";
import { $, el, formatDateTime, copyText, focusHeading } from "./ui.js";

const STATUS_BADGE = {
  active: "badge-live",
  locked: "badge-danger",
  disabled: "badge-danger",
  enrolment_pending: "badge-warning",
  reset_pending: "badge-warning",
  link_expired: "badge-danger",
};

// Short: the column is narrow ("2 déc., 13:11").
const SHORT = { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" };

function when(seconds, options = { dateStyle: "medium", timeStyle: "short" }) {
  return formatDateTime(new Date(seconds * 1000), options);
}

// "until 13:19" today, "until 5 Dec 2026, 13:03" another day.
function until(seconds) {
  const date = new Date(seconds * 1000);
  return new Date().toDateString() === date.toDateString()
    ? t("admin.until_time", { when: when(seconds, { timeStyle: "short" }) })
    : t("admin.until_date", { when: when(seconds, SHORT) });
}

// The status word as a badge, and beneath it what it depends on (until when; what to do) and
// the last sign-in. A locked account is never shown as plainly "active".
export function statusCell(user) {
  const detail =
    user.status === "locked"
      ? until(user.locked_until)
      : user.status === "enrolment_pending" || user.status === "reset_pending"
        ? until(user.link_expires_at)
        : user.status === "link_expired"
          ? t("admin.link_expired_hint")
          : "";
  return [
    el("span", { class: `badge ${STATUS_BADGE[user.status] || ""}`, dataset: { status: user.status } }, t(`admin.status_${user.status}`)),
    detail ? el("span", { class: "status-detail small" }, detail) : null,
    el("span", { class: "status-detail muted small last-sign-in" }, lastSignIn(user)),
  ];
}

function lastSignIn(user) {
  return user.last_sign_in_at
    ? t("admin.last_sign_in", { when: when(user.last_sign_in_at, SHORT) })
    : t("admin.never_signed_in");
}

export function mfaText(user) {
  if (user.mfa_enrolled) return t("admin.mfa_on");
  return t(user.link_purpose ? "admin.mfa_by_link" : "admin.mfa_pending");
}

let shown = null;

function fillLinkBox(answer) {
  const user = answer.user;
  const name = user.display_name || user.username;
  const purpose = user.link_purpose === "reset" ? "reset" : "enrolment";
  $("#link-box-title").textContent = t(`admin.link_title_${purpose}`, { name });
  $("#link-box-lead").textContent = t("admin.link_lead", { name, when: when(answer.expires_at) });
  $("#issued-link").value = answer.link;
}

// Shows a link just made, the only time it is shown: the admin copies it and hands it over.
export function showLink(answer) {
  shown = answer;
  fillLinkBox(answer);
  const box = $("#link-box");
  box.hidden = false;
  focusHeading(box);
  $("#issued-link").select();
}

export function wireLinkBox() {
  $("#copy-link").addEventListener("click", (event) => {
    copyText($("#issued-link").value, event.target.nextElementSibling);
  });
  document.addEventListener("langchange", () => shown && fillLinkBox(shown));
}
