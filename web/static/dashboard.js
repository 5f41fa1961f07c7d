// The doctor's dashboard: today's and upcoming consultations, create, new link, move, cancel,
// send the link by email (dashboard-mail.js), and the live waiting room (dashboard-waiting.js).
// The secretariat's differences (a doctor picker, no notes, no call) are in
// dashboard-assistant.js.
import { t } from "./i18n.js";
import { api, setCsrf } from "./api.js";
import {
  $,
  $$,
  el,
  showError,
  setBusy,
  formatDateTime,
  formatTime,
  sameLocalDay,
  isoWithOffset,
  copyText,
  confirmDialog,
} from "./ui.js";
import { watchWaitingRoom, stopWatching, renderWaitingRoom, waitingIds } from "./dashboard-waiting.js";
import { showStaffTopbar } from "./staff-session.js";
import { watchSessionLock, showSessionEnded, pageLocked } from "./staff-lock.js";
import { showInviteMail, wireInviteMail, mailControls } from "./dashboard-mail.js";
import { isAssistant, prepareCreateForm, bookingFor, doctorLine, forDoctorText } from "./dashboard-assistant.js";
import { editButton } from "./dashboard-edit.js";
import { callSummary } from "./dashboard-call-summary.js";

let user = null;
let consultations = [];
let wired = false;

export function startDashboard(me) {
  user = me;
  renderHeader();
  if (!wired) {
    wire();
    wired = true;
  }
  resetCreateForm();
  const prepared = prepareCreateForm(user);
  prepared.then(loadList, listError);
  if (isAdmin()) stopWatching();
  else prepared.then(watchWaiting, watchWaiting); // after the doctors are known, to name them
  // Locked after the idle time: the dashboard waits off the page, then comes back as it was.
  watchSessionLock({
    content: $("#dashboard"),
    onUnlocked: () => (loadList(), isAdmin() || watchWaiting()),
    waitingCount: () => (isAdmin() ? null : waitingIds().size),
  });
}

function watchWaiting() {
  const seats = !isAssistant(user);
  const doctorOf = (id) => forDoctorText(user, id);
  watchWaitingRoom({ onChange: () => renderList(), onSignedOut: showSessionEnded, seats, doctorOf });
}

function isAdmin() {
  return user && user.role === "admin";
}

function renderHeader() {
  const name = user.display_name || user.username;
  showStaffTopbar(user); // doctors too see the audit link: the trail of their own consultations
  $("#admin-note").hidden = !isAdmin();
  $("#create").hidden = isAdmin();
  $("#jump-create").hidden = isAdmin();
  $("#greeting").textContent = t("dash.hello", { name });
  $("#today-line").textContent = formatDateTime(new Date(), { dateStyle: "full" });
  // Admins see every doctor's consultations but hold none: no waiting room for them.
  $("#waiting-panel").hidden = isAdmin();
}

function resetCreateForm() {
  const form = $("#create-form");
  form.reset();
  // Next quarter hour, today.
  const now = new Date();
  now.setSeconds(0, 0);
  now.setMinutes(Math.ceil((now.getMinutes() + 1) / 15) * 15);
  const pad = (n) => String(n).padStart(2, "0");
  $("#date").value = `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
  $("#time").value = `${pad(now.getHours())}:${pad(now.getMinutes())}`;
  $("#duration").value = "30";
  showError(form, "");
}

async function loadList() {
  const box = $("#list-error");
  try {
    const answer = await api("/api/consultations");
    consultations = answer.consultations;
    box.hidden = true;
    renderList();
  } catch (error) {
    if (error.code === "not_authenticated") return showSessionEnded();
    if (error.code === "session_locked") return; // the lock screen is up (staff-lock.js)
    box.textContent = error.userMessage;
    box.hidden = false;
  }
}

function isOver(c, now) {
  return c.status !== "scheduled" || new Date(c.scheduled_end) < now;
}

function renderList() {
  const now = new Date();
  const groups = { today: [], upcoming: [], past: [] };
  for (const c of consultations) {
    const start = new Date(c.scheduled_start);
    if (isOver(c, now)) groups.past.push(c);
    else if (sameLocalDay(start, now) || start < now) groups.today.push(c);
    else groups.upcoming.push(c);
  }
  groups.past.reverse(); // most recent first
  for (const [name, items] of Object.entries(groups)) {
    const list = $(`#list-${name}`);
    list.replaceChildren(...items.map((c) => renderItem(c, now)));
    $(`#empty-${name}`).hidden = items.length > 0;
  }
}

function statusBadge(c, now) {
  if (c.status === "cancelled") return el("span", { class: "badge badge-muted" }, t("status.cancelled"));
  if (c.status === "ended") return el("span", { class: "badge badge-muted" }, t("status.ended"));
  if (new Date(c.scheduled_end) < now) return el("span", { class: "badge badge-muted" }, t("status.past"));
  if (c.invite_locked) return el("span", { class: "badge badge-warning" }, t("status.locked"));
  if (new Date(c.scheduled_start) <= now) return el("span", { class: "badge badge-live" }, t("status.now"));
  return el("span", { class: "badge" }, t("status.scheduled"));
}

function renderItem(c, now) {
  const start = new Date(c.scheduled_start);
  const waiting = !isOver(c, now) && waitingIds().has(c.id);
  const when = sameLocalDay(start, now)
    ? `${formatTime(c.scheduled_start)} – ${formatTime(c.scheduled_end)}`
    : formatDateTime(c.scheduled_start, { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
  const item = el(
    "li",
    { class: waiting ? "consult-item consult-waiting" : "consult-item", dataset: { id: c.id, waiting: waiting ? "true" : "false" } },
    el(
      "div",
      { class: "consult-main" },
      el("span", { class: "consult-time" }, when),
      el("span", { class: "consult-patient" }, c.patient_name),
      el("span", { class: "consult-meta muted small" }, t("dash.duration", { count: c.duration_minutes, minutes: c.duration_minutes })),
      doctorLine(user, c),
      statusBadge(c, now),
      waiting ? el("span", { class: "badge badge-waiting" }, t("dash.badge_waiting")) : null,
    ),
  );
  if (c.note) item.append(el("p", { class: "consult-note muted small" }, c.note));
  const summary = callSummary(c);
  if (summary) item.append(summary);
  const recordings = recordingsLink(c);
  if (isOver(c, now)) {
    if (recordings) item.append(el("div", { class: "actions" }, recordings));
  } else {
    const actions = el("div", { class: "actions" });
    if (user.role === "doctor" && c.doctor_id === user.id) {
      actions.append(
        el("a", { class: "btn btn-primary btn-small", href: `/call/${encodeURIComponent(c.id)}`, "aria-label": t("dash.start_for", { name: c.patient_name }) }, t("dash.start")),
      );
    }
    if (!isAdmin()) {
      actions.append(editButton(c, { mayEditNote: user.role === "doctor", onDone: listNotice, onError: listError }));
      const relink = el("button", { type: "button", class: "btn btn-secondary btn-small", "aria-label": t("dash.new_link_for", { name: c.patient_name }) }, t("dash.new_link"));
      relink.addEventListener("click", () => reissue(c));
      actions.append(relink);
      const mail = mailControls(c, { onSent: loadList, onError: listError });
      if (mail.button) actions.append(mail.button);
      if (mail.line) item.append(mail.line);
    }
    if (recordings) actions.append(recordings);
    const cancel = el("button", { type: "button", class: "btn btn-ghost btn-small btn-danger-text", "aria-label": t("dash.cancel_for", { name: c.patient_name }) }, t("dash.cancel"));
    cancel.addEventListener("click", () => cancelConsultation(c));
    actions.append(cancel);
    item.append(actions);
    if (c.invite_locked) item.append(el("p", { class: "small warning-text" }, t("dash.locked_help")));
  }
  return item;
}

/** The way to this consultation's recordings, when it has some. The server counts them only
 * for those who may see them (its doctor, admins): the secretariat's views carry no count. */
function recordingsLink(c) {
  if (!c.recordings) return null;
  return el(
    "a",
    {
      class: "btn btn-secondary btn-small consult-recordings",
      href: `/recordings?consultation=${encodeURIComponent(c.id)}`,
      "aria-label": t("recordings.of_consultation_for", { count: c.recordings, name: c.patient_name }),
    },
    t("recordings.of_consultation", { count: c.recordings }),
  );
}

let invite = null; // the invite panel's answer, for its texts in the other language

function showInvite(answer) {
  const panel = $("#invite-result");
  invite = answer;
  $("#invite-url").value = answer.invite_url;
  $("#invite-code").value = answer.access_code;
  renderInvite(answer);
  showInviteMail(answer.consultation);
  panel.hidden = false;
  panel.scrollIntoView({ block: "start" });
  panel.focus();
}

/** Who and until when the invite panel's link is for, in the current language. */
function renderInvite(answer) {
  $("#invite-for").textContent = t("invite.for", {
    name: answer.consultation.patient_name,
    when: formatDateTime(answer.consultation.scheduled_start),
  });
  $("#invite-valid").textContent = t("invite.valid_until", {
    when: formatDateTime(answer.consultation.invite_expires, { dateStyle: "medium", timeStyle: "short" }),
  });
}

async function reissue(c) {
  const ok = await confirmDialog(t("dash.new_link_title"), t("dash.new_link_body", { name: c.patient_name }), t("dash.new_link"));
  if (!ok) return;
  try {
    showInvite(await api(`/api/consultations/${encodeURIComponent(c.id)}/invite`, { method: "POST" }));
    await loadList();
  } catch (error) {
    listError(error);
  }
}

async function cancelConsultation(c) {
  const ok = await confirmDialog(t("dash.cancel_title"), t("dash.cancel_body", { name: c.patient_name }), t("dash.cancel_confirm"));
  if (!ok) return;
  try {
    await api(`/api/consultations/${encodeURIComponent(c.id)}/cancel`, { method: "POST" });
    await loadList();
  } catch (error) {
    listError(error);
  }
}

function listNotice(message) {
  $("#list-error").hidden = true;
  const box = $("#list-notice");
  box.textContent = message;
  box.hidden = false;
  loadList();
}

function listError(error) {
  if (error.code === "not_authenticated") return showSessionEnded();
  if (error.code === "session_locked") return;
  const box = $("#list-error");
  box.textContent = error.userMessage;
  box.hidden = false;
}

function signedOut() {
  setCsrf("");
  location.assign("/");
}

function wire() {
  const form = $("#create-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = $("#patient-name").value.trim();
    const date = $("#date").value;
    const time = $("#time").value;
    if (!name) {
      showError(form, t("create.need_name"));
      $("#patient-name").focus();
      return;
    }
    if (!date || !time) {
      showError(form, t("create.need_when"));
      return;
    }
    if (isAssistant(user) && !$("#doctor").value) {
      showError(form, t("assist.need_doctor"));
      return;
    }
    const [y, m, d] = date.split("-").map(Number);
    const [hh, mm] = time.split(":").map(Number);
    const start = new Date(y, m - 1, d, hh, mm);
    const email = $("#patient-email");
    email.value = email.value.trim();
    if (!email.checkValidity()) {
      showError(form, t("create.bad_email"));
      email.focus();
      return;
    }
    const duration = Number($("#duration").value);
    if (start.getTime() + duration * 60000 < Date.now()) {
      showError(form, t("create.in_past"));
      return;
    }
    showError(form, "");
    setBusy(form, true);
    try {
      const answer = await api("/api/consultations", {
        method: "POST",
        body: {
          patient_name: name,
          scheduled_start: isoWithOffset(start),
          duration_minutes: duration,
          note: $("#note").value.trim(),
          patient_email: email.value,
          patient_language: $("#patient-language").value,
          ...bookingFor(user),
        },
      });
      resetCreateForm();
      showInvite(answer);
      await loadList();
    } catch (error) {
      if (error.code === "not_authenticated") return signedOut();
      showError(form, error.userMessage);
    } finally {
      setBusy(form, false);
    }
  });

  for (const button of $$(".copy-btn")) {
    button.addEventListener("click", () => {
      const input = document.getElementById(button.dataset.copy);
      copyText(input.value, $("#invite-result .copy-feedback"));
      input.select();
    });
  }
  $("#invite-done").addEventListener("click", () => {
    // The code is shown once: forget it when the doctor is done with it.
    $("#invite-url").value = "";
    $("#invite-code").value = "";
    $("#invite-result").hidden = true;
    invite = null;
    showInviteMail(null);
    $("#patient-name").focus();
  });
  wireInviteMail({ onSent: loadList, onSignedOut: signedOut });
  $("#refresh").addEventListener("click", loadList);
  $("#signout").addEventListener("click", async () => {
    try {
      await api("/api/auth/logout", { method: "POST" });
    } catch {
      /* signed out anyway below */
    }
    signedOut();
  });
  document.addEventListener("langchange", () => {
    if (!user || pageLocked()) return;
    $("#list-notice").hidden = true; // said in the language it was said in
    if (invite) renderInvite(invite);
    renderHeader();
    prepareCreateForm(user).then(renderList, listError);
    if (!isAdmin()) renderWaitingRoom();
  });
  // Keep the badges ("now", "past") honest while the page stays open, without asking the
  // server: a timer's requests would keep the session alive past its idle timeout.
  setInterval(() => user && !pageLocked() && renderList(), 60000);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && user && !pageLocked()) loadList();
  });
}
