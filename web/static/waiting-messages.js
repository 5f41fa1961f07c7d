// The staff's messages in the patient's waiting room (staff_message, docs/protocol.md): the
// latest few with their time, a gentle chime, and one polite announcement for screen readers.
//
// A preset comes as an id and is worded here in the page's language (the patient's, not the
// sender's); a free text is shown as plain text (textContent, never markup). Messages live in
// this page's memory only: a reload, like the end of the room, forgets them.
import { t, has } from "./i18n.js";
import { $, el, formatTime } from "./ui.js";

const SHOWN = 5;
let messages = []; // newest first

function sender(message) {
  return t(message.from_role === "assistant" ? "staffmsg.from_assistant" : "staffmsg.from_doctor");
}

function wording(message) {
  if (!message.preset) return message.text || "";
  const key = `staffmsg.preset.${message.preset}`;
  return has(key) ? t(key) : t("staffmsg.preset_unknown");
}

function sentAt(message) {
  return new Date((Number(message.sent_at) || Date.now() / 1000) * 1000).toISOString();
}

/** A staff_message arrived: list it first, chime, and have screen readers say it. */
export function receiveStaffMessage(message) {
  messages = [message, ...messages].slice(0, SHOWN);
  renderStaffMessages();
  const announce = message.from_role === "assistant" ? "staffmsg.announce_assistant" : "staffmsg.announce_doctor";
  $("#staff-message-live").textContent = t(announce, { text: wording(message) });
  chime();
}

/** Render the list again (after a language change too: presets follow the page's language). */
export function renderStaffMessages() {
  const section = $("#staff-messages");
  section.hidden = messages.length === 0;
  $("#staff-message-list").replaceChildren(
    ...messages.map((message, i) =>
      el(
        "li",
        { class: i === 0 ? "staff-message staff-message-latest" : "staff-message", dataset: { preset: message.preset || "" } },
        el(
          "p",
          { class: "staff-message-meta" },
          el("strong", {}, sender(message)),
          " ",
          el("time", { datetime: sentAt(message) }, t("staffmsg.at", { time: formatTime(sentAt(message)) })),
        ),
        el("p", { class: "staff-message-text" }, wording(message)),
      ),
    ),
  );
}

/** Hide the messages (the room is over: the page no longer looks like a waiting room). */
export function hideStaffMessages() {
  messages = [];
  renderStaffMessages();
  $("#staff-message-live").textContent = "";
}

let audio = null;

/** Two soft rising notes, generated with Web Audio (no sound file). A browser may refuse
 * sound before the person interacted with the page: then the message shows, silently. */
function chime() {
  const Context = window.AudioContext || window.webkitAudioContext;
  if (!Context) return;
  try {
    audio = audio || new Context();
    if (audio.state === "suspended") audio.resume().catch(() => {});
    const start = audio.currentTime + 0.05;
    for (const [offset, frequency] of [
      [0, 659.25],
      [0.22, 880],
    ]) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.type = "sine";
      osc.frequency.setValueAtTime(frequency, start + offset);
      gain.gain.setValueAtTime(0.0001, start + offset);
      gain.gain.exponentialRampToValueAtTime(0.18, start + offset + 0.03);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + offset + 0.6);
      osc.connect(gain).connect(audio.destination);
      osc.start(start + offset);
      osc.stop(start + offset + 0.65);
    }
    document.body.dataset.staffChime = String(Number(document.body.dataset.staffChime || 0) + 1);
  } catch {
    // No sound here (autoplay policy, no output device): the message and its announcement
    // are what matter.
  }
}
