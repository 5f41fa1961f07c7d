// INTEGRATION POINT (WebSocket work): the doctor's live waiting room.
//
// The dashboard shows a "Salle d'attente / Waiting room" panel (#waiting-panel). Nothing in it
// is simulated: until a WebSocket client calls the functions below, it only says where
// patients will appear. The client is expected to:
//   1. import { renderWaiting, announceArrival } from "/static/waiting-list.js";
//   2. call renderWaiting(patients, { onAdmit, onDeny }) on every change of the room state;
//      patients = [{ consultationId, patientName, scheduledStart (ISO), waitingSince (ISO) }];
//   3. call announceArrival(patient) when a patient knocks (knock sound + notification are the
//      WebSocket work's; this only updates the page title so a background tab shows it).
import { t } from "./i18n.js";
import { el, formatTime } from "./ui.js";

let baseTitle = "";

export function renderWaiting(patients, { onAdmit, onDeny } = {}) {
  const box = document.getElementById("waiting-list");
  if (!box) return;
  box.replaceChildren();
  if (!patients.length) {
    box.append(el("p", { class: "muted", text: t("dash.waiting_empty") }));
    return;
  }
  const list = el("ul", { class: "waiting-list" });
  for (const patient of patients) {
    const admit = el("button", { class: "btn btn-primary btn-small", type: "button" }, t("dash.admit"));
    const deny = el("button", { class: "btn btn-ghost btn-small", type: "button" }, t("dash.deny"));
    if (onAdmit) admit.addEventListener("click", () => onAdmit(patient));
    if (onDeny) deny.addEventListener("click", () => onDeny(patient));
    list.append(
      el(
        "li",
        { class: "waiting-item" },
        el("span", { class: "pulse-dot", "aria-hidden": "true" }),
        el(
          "span",
          { class: "waiting-who" },
          el("strong", {}, patient.patientName),
          el("span", { class: "muted small" }, t("dash.waiting_since", { time: formatTime(patient.waitingSince) })),
        ),
        el("span", { class: "actions" }, admit, deny),
      ),
    );
  }
  box.append(list);
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
