// The dashboard's live waiting room: every patient of the doctor who waits now, with "let in"
// (opens that consultation's call page, which admits them as soon as it has joined the room)
// and "decline" (a short signaling connection that turns the patient away).
//
// Why polling: the WebSockets live on the call pages, one per open consultation, and a doctor
// seat taken here would push a call page out of its room. GET /api/waiting reads the rooms'
// presence and does not extend the session, so an unattended dashboard still signs out.
// Browsers slow timers in background tabs (down to once a minute after a few minutes hidden):
// a patient may then be announced a little later, never missed.
import { t } from "./i18n.js";
import { api } from "./api.js";
import { $, confirmDialog } from "./ui.js";
import {
  renderWaiting,
  knock,
  showWaitingCount,
  notificationPermission,
  askNotificationPermission,
  notifyArrival,
} from "./waiting-list.js";
import { SignalingClient } from "/protocol.js";

const POLL_MS = 3000;
const DENY_TIMEOUT_MS = 5000;

let patients = [];
let announced = new Set(); // consultation ids already announced (knock, notification)
let timer = null;
let first = true;
let listeners = { onChange: () => {}, onSignedOut: () => {} };

/** Consultation ids whose patient waits now. */
export function waitingIds() {
  return new Set(patients.map((p) => p.consultationId));
}

/** Start (or restart) watching; onChange(waitingIds) after each change, onSignedOut() once
 * the session is gone. */
export function watchWaitingRoom({ onChange, onSignedOut }) {
  listeners = { onChange, onSignedOut };
  wireNotifications();
  stopWatching();
  first = true;
  poll();
}

export function stopWatching() {
  clearTimeout(timer);
  timer = null;
}

/** Re-render after a language change (texts, title badge). */
export function renderWaitingRoom() {
  renderWaiting(patients, { onAdmit: admit, onDeny: deny });
  showWaitingCount(patients.length);
  renderNotificationState();
}

async function poll() {
  timer = null;
  try {
    const answer = await api("/api/waiting");
    $("#waiting-error").hidden = true;
    update(answer.waiting);
  } catch (error) {
    if (error.code === "not_authenticated") {
      listeners.onSignedOut();
      return;
    }
    $("#waiting-error").textContent = t("dash.waiting_error");
    $("#waiting-error").hidden = false;
  }
  timer = setTimeout(poll, POLL_MS);
}

function update(waiting) {
  const next = waiting.map((w) => ({
    consultationId: w.consultation_id,
    patientName: w.patient_name,
    scheduledStart: w.scheduled_start,
    waitingSince: w.waiting_since,
  }));
  const changed = JSON.stringify(next) !== JSON.stringify(patients);
  patients = next;
  // Announce arrivals only: not the patients already there when the page opened, nor twice.
  const arrivals = next.filter((p) => !announced.has(p.consultationId));
  announced = new Set(next.map((p) => p.consultationId));
  if (arrivals.length && !first) {
    knock();
    notifyArrival();
  }
  first = false;
  if (changed) {
    renderWaitingRoom();
    listeners.onChange(waitingIds());
  }
}

function admit(patient) {
  // The call page joins the room and lets the patient in as soon as it sees them waiting.
  location.assign(`/call/${encodeURIComponent(patient.consultationId)}#admit`);
}

async function deny(patient) {
  const name = patient.patientName;
  if (!(await confirmDialog(t("dash.deny_title"), t("dash.deny_body", { name }), t("dash.deny_confirm")))) return;
  try {
    await denyOverSignaling(patient.consultationId);
    patients = patients.filter((p) => p.consultationId !== patient.consultationId);
    renderWaitingRoom();
    listeners.onChange(waitingIds());
  } catch {
    $("#waiting-error").textContent = t("dash.deny_failed");
    $("#waiting-error").hidden = false;
  }
}

/** Join the room as its doctor, decline the waiting patient, leave. */
async function denyOverSignaling(consultationId) {
  const client = new SignalingClient();
  const firstLobby = new Promise((resolve) => client.addEventListener("lobby", (e) => resolve(e.detail), { once: true }));
  const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error("timeout")), DENY_TIMEOUT_MS));
  try {
    const { room_token: token } = await api("/api/room-tokens", { method: "POST", body: { consultation_id: consultationId } });
    await Promise.race([client.join(token), timeout]);
    const lobby = await Promise.race([firstLobby, timeout]);
    if (!lobby.waiting) return; // the patient left meanwhile: nothing to decline
    const emptied = new Promise((resolve) => client.addEventListener("lobby", (e) => !e.detail.waiting && resolve(), { once: false }));
    client.deny();
    await Promise.race([emptied, timeout]);
  } finally {
    if (client.socket) {
      try {
        client.hangUp(false);
      } catch {
        /* already closed */
      }
    }
  }
}

// -- notifications: asked on a click, never on load

function wireNotifications() {
  const button = $("#notify-enable");
  if (button.dataset.wired) return;
  button.dataset.wired = "true";
  button.addEventListener("click", async () => {
    await askNotificationPermission();
    renderNotificationState();
  });
  renderNotificationState();
}

function renderNotificationState() {
  const permission = notificationPermission();
  $("#notify-enable").hidden = permission !== "default";
  const state = $("#notify-state");
  const key = { granted: "dash.notify_on", denied: "dash.notify_blocked", unsupported: "dash.notify_unsupported" }[permission];
  state.hidden = !key;
  state.textContent = key ? t(key) : "";
}
