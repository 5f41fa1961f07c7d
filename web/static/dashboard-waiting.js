// The dashboard's live waiting room: every patient of the doctor who waits now, with "let in"
// (opens that consultation's call page, which admits them as soon as it has joined the room),
// "message" (a short text to the waiting room, over HTTP) and "decline" (a short signaling
// connection that turns the patient away).
//
// Why a server-sent event stream and no WebSocket: the WebSockets live on the call pages, one
// per open consultation, and a doctor seat taken here would push a call page out of its room.
// GET /api/waiting/events sends the list at connect and on each change, does not extend the
// session (an unattended dashboard still signs out) and says "session_ended" when it is gone.
// Why not timers: browsers slow the timers of hidden tabs (once a minute after five minutes
// hidden in Chromium), and a doctor sharing a screen would hear of an arrival a minute late;
// an EventSource's messages are not throttled. If the stream fails again and again (a proxy
// that buffers it, too many tabs), the page falls back to polling GET /api/waiting: arrivals
// may then be announced later when the tab is hidden, never missed.
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
import { SignalingClient } from "../protocol.js";
import { writeToWaitingPatient } from "./waiting-message-dialog.js";

const POLL_MS = 3000;
const DENY_TIMEOUT_MS = 5000;
const STREAM_URL = "/api/waiting/events";
// Consecutive stream failures (no event between them) before polling takes over for good.
const MAX_STREAM_FAILURES = 4;
const RECONNECT_BASE_MS = 1000;
const RECONNECT_MAX_MS = 15000;

let patients = [];
let announced = new Set(); // consultation ids already announced (knock, notification)
let timer = null;
let source = null;
let streamFailures = 0;
let first = true;
let listeners = { onChange: () => {}, onSignedOut: () => {}, doctorOf: () => "" };
// Whether this user takes a doctor's seat (let in, decline): never an assistant.
let seats = true;

/** Consultation ids whose patient waits now. */
export function waitingIds() {
  return new Set(patients.map((p) => p.consultationId));
}

/** Start (or restart) watching; onChange(waitingIds) after each change, onSignedOut() once
 * the session is gone; ``seats`` false: the list without "let in" and "decline";
 * doctorOf(doctorId): a line naming whose waiting room it is (an assistant's several). */
export function watchWaitingRoom({ onChange, onSignedOut, seats: takesSeats = true, doctorOf = () => "" }) {
  listeners = { onChange, onSignedOut, doctorOf };
  seats = takesSeats;
  wireNotifications();
  stopWatching();
  first = true;
  streamFailures = 0;
  if (window.EventSource) openStream();
  else poll();
}

export function stopWatching() {
  clearTimeout(timer);
  timer = null;
  closeStream();
}

/** How the list arrives now, for people and tests: "stream" or "polling". */
function showFeed(feed) {
  document.body.dataset.waitingFeed = feed;
}

function openStream() {
  timer = null;
  closeStream();
  source = new EventSource(STREAM_URL);
  showFeed("stream");
  source.addEventListener("waiting", (event) => {
    streamFailures = 0;
    $("#waiting-error").hidden = true;
    update(JSON.parse(event.data).waiting);
  });
  source.addEventListener("session_locked", () => {
    stopWatching(); // the lock screen (staff-lock.js) counts arrivals until it is unlocked
    window.dispatchEvent(new Event("staff-session-locked"));
  });
  source.addEventListener("session_ended", () => {
    stopWatching();
    listeners.onSignedOut();
  });
  source.addEventListener("error", onStreamError);
}

function closeStream() {
  if (!source) return;
  source.close();
  source = null;
}

async function onStreamError() {
  // EventSource retries by itself after a dropped connection but gives up on an HTTP error;
  // retrying here with a growing delay covers both, and a poll tells a sign-out apart.
  closeStream();
  streamFailures += 1;
  const signedIn = await pollOnce();
  if (!signedIn) return;
  if (streamFailures >= MAX_STREAM_FAILURES) {
    poll(); // the stream keeps failing here: timers it is
    return;
  }
  const delay = Math.min(RECONNECT_BASE_MS * 2 ** (streamFailures - 1), RECONNECT_MAX_MS);
  timer = setTimeout(openStream, delay);
}

/** Re-render after a language change (texts, title badge). */
export function renderWaitingRoom() {
  // Named at each render: the name's wording follows the page's language.
  const shown = patients.map((p) => ({ ...p, forDoctor: listeners.doctorOf(p.doctorId) }));
  renderWaiting(shown, seats ? { onAdmit: admit, onDeny: deny, onMessage: write } : { onMessage: write });
  showWaitingCount(patients.length);
  renderNotificationState();
}

async function poll() {
  timer = null;
  showFeed("polling");
  if (await pollOnce()) timer = setTimeout(poll, POLL_MS);
}

/** One read of GET /api/waiting; false once the session is gone (the page signs out). */
async function pollOnce() {
  try {
    const answer = await api("/api/waiting");
    $("#waiting-error").hidden = true;
    update(answer.waiting);
  } catch (error) {
    if (error.code === "session_locked") {
      stopWatching(); // api.js told the lock screen (staff-lock.js)
      return false;
    }
    if (error.code === "not_authenticated") {
      stopWatching();
      listeners.onSignedOut();
      return false;
    }
    $("#waiting-error").textContent = t("dash.waiting_error");
    $("#waiting-error").hidden = false;
  }
  return true;
}

function update(waiting) {
  const next = waiting.map((w) => ({
    consultationId: w.consultation_id,
    patientName: w.patient_name,
    doctorId: w.doctor_id,
    scheduledStart: w.scheduled_start,
    waitingSince: w.waiting_since,
    inviteGeneration: w.invite_generation,
    latestInviteGeneration: w.latest_invite_generation,
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

function write(patient) {
  // The doctor and the secretariat alike: a message takes no seat in the room.
  return writeToWaitingPatient(patient, $("#waiting-message-status"));
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
