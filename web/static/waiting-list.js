// The waiting room, as a list with "let in" / "decline" buttons, and the ways a doctor is told
// that someone arrived: a generated knock, a title badge and a system notification.
//
// Used by the doctor's call page (call.js: one room, fed by its WebSocket's lobby messages) and
// by the dashboard (dashboard-waiting.js: every room of the doctor, from GET /api/waiting).
//   renderWaiting(patients, { onAdmit, onDeny, onMessage }) on every change (onMessage: write
//     to the patient in the waiting room, waiting-message-dialog.js);
//     patients = [{ consultationId, patientName, scheduledStart (ISO), waitingSince (ISO),
//                   inviteGeneration, latestInviteGeneration, forDoctor }] (the link the
//                   patient came through, and the consultation's latest when known: an older
//                   link shows; whose waiting room, on an assistant's dashboard);
//   announceArrival(patient) / clearArrival(): the call page's title badge;
//   showWaitingCount(n): the dashboard's "(n) …" title badge;
//   notifyArrival(): a system notification, once the doctor allowed them (never asked on load).
import { t } from "./i18n.js";
import { el, formatTime } from "./ui.js";

let baseTitle = "";

export function renderWaiting(patients, { onAdmit, onDeny, onMessage } = {}) {
  const box = document.getElementById("waiting-list");
  if (!box) return;
  box.replaceChildren();
  if (!patients.length) {
    box.append(el("p", { class: "muted", text: t("dash.waiting_empty") }));
    return;
  }
  const list = el("ul", { class: "waiting-list" });
  for (const patient of patients) {
    const name = patient.patientName;
    // Without admit and deny (the secretariat's dashboard) there is nobody to let in from here.
    const actions = [];
    if (onAdmit) {
      const admit = el("button", { class: "btn btn-primary btn-small", type: "button", "aria-label": t("dash.admit_for", { name }) }, t("dash.admit"));
      admit.addEventListener("click", () => onAdmit(patient));
      actions.push(admit);
    }
    if (onMessage) {
      const write = el("button", { class: "btn btn-secondary btn-small", type: "button", "aria-label": t("staffmsg.action_for", { name }), dataset: { action: "message" } }, t("staffmsg.action"));
      write.addEventListener("click", () => onMessage(patient));
      actions.push(write);
    }
    if (onDeny) {
      const deny = el("button", { class: "btn btn-ghost btn-small", type: "button", "aria-label": t("dash.deny_for", { name }) }, t("dash.deny"));
      deny.addEventListener("click", () => onDeny(patient));
      actions.push(deny);
    }
    list.append(
      el(
        "li",
        { class: "waiting-item", dataset: { consultation: patient.consultationId || "" } },
        el("span", { class: "pulse-dot", "aria-hidden": "true" }),
        el(
          "span",
          { class: "waiting-who" },
          el("strong", {}, patient.patientName),
          el("span", { class: "muted small" }, t("dash.waiting_since", { time: formatTime(patient.waitingSince) })),
          patient.scheduledStart ? el("span", { class: "muted small" }, t("dash.waiting_appointment", { time: formatTime(patient.scheduledStart) })) : null,
          patient.forDoctor ? el("span", { class: "muted small" }, patient.forDoctor) : null,
          linkLabel(patient),
        ),
        actions.length ? el("span", { class: "actions" }, ...actions) : null,
      ),
    );
  }
  box.append(list);
}

/** Which invite link the patient came through ("link #2"), and whether the doctor has replaced
 * it since: a patient of a replaced link is shown out by the server, but the list may show
 * one for a moment, and the doctor should see it is not the latest link. */
function linkLabel(patient) {
  const n = patient.inviteGeneration;
  if (!n) return null;
  const latest = patient.latestInviteGeneration || n;
  const replaced = n < latest;
  return el(
    "span",
    { class: replaced ? "small waiting-link waiting-link-replaced" : "muted small waiting-link", dataset: { linkGeneration: String(n), linkReplaced: String(replaced) } },
    replaced ? t("dash.waiting_link_replaced", { n, latest }) : t("dash.waiting_link", { n }),
  );
}

let audio = null;

/** A soft double knock, generated with WebAudio (no sound file). Browsers only let a page
 * play sound after the person interacted with it; before that the knock is silent and the
 * title badge and the list do the telling. */
export function knock() {
  const Context = window.AudioContext || window.webkitAudioContext;
  if (!Context || !navigator.userActivation || !navigator.userActivation.hasBeenActive) return false;
  audio = audio || new Context();
  if (audio.state === "suspended") audio.resume().catch(() => {});
  const start = audio.currentTime + 0.05;
  for (const offset of [0, 0.18]) {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.type = "sine";
    osc.frequency.setValueAtTime(180, start + offset);
    osc.frequency.exponentialRampToValueAtTime(90, start + offset + 0.12);
    gain.gain.setValueAtTime(0.0001, start + offset);
    gain.gain.exponentialRampToValueAtTime(0.6, start + offset + 0.01);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + offset + 0.14);
    osc.connect(gain).connect(audio.destination);
    osc.start(start + offset);
    osc.stop(start + offset + 0.15);
  }
  return true;
}

/** Put the page title back (the patient was let in or left). */
export function clearArrival() {
  if (baseTitle) document.title = baseTitle;
}

export function announceArrival(patient) {
  if (!baseTitle) baseTitle = document.title;
  document.title = `(${t("dash.waiting_badge")}) ${baseTitle}`;
  document.addEventListener(
    "visibilitychange",
    () => {
      if (!document.hidden) document.title = baseTitle;
    },
    { once: true },
  );
  return patient;
}

/** The dashboard's title badge: "(2) Téléconsultation — …" while two patients wait. */
export function showWaitingCount(count) {
  const base = document.title.replace(/^\(\d+\) /, "");
  document.title = count > 0 ? `(${count}) ${base}` : base;
}

/** Whether this browser can show notifications and what the doctor decided about them:
 * "unsupported", "default" (not asked yet), "granted" or "denied". */
export function notificationPermission() {
  return "Notification" in window ? Notification.permission : "unsupported";
}

/** Ask for notifications. Browsers only allow it from a click: call it from one. */
export async function askNotificationPermission() {
  if (!("Notification" in window)) return "unsupported";
  try {
    return await Notification.requestPermission();
  } catch {
    return Notification.permission;
  }
}

/** A system notification that a patient arrived; it names nobody, because it may show on a
 * screen others can see (lock screen, shared screen): the page itself says who. Clicking it
 * brings the dashboard forward. */
export function notifyArrival() {
  if (notificationPermission() !== "granted") return null;
  try {
    const notification = new Notification(t("dash.notify_title"), {
      body: t("dash.notify_body"),
      tag: "teleconsult-waiting",
      icon: "/static/logo.svg",
    });
    notification.addEventListener("click", () => {
      window.focus();
      notification.close();
    });
    return notification;
  } catch {
    return null; // e.g. Android Chrome allows notifications from service workers only
  }
}
