// The dashboard's idle lock. After security.session_idle_minutes without a request the server
// locks the staff session (every data endpoint answers "session_locked"): the page then locks
// in place instead of going back to the sign-in page. The dashboard is taken off the page (the
// patients' names and notes are no longer in the DOM) and put back as it was after the
// password and a code unlock the session (POST /api/auth/unlock). While locked, the
// waiting-room stream sends only how many patients wait: an arrival still knocks, badges the
// title and shows a notification, naming nobody.
//
// A minute before the lock a banner warns, with "Stay signed in" (a request that keeps the
// session alive). The timing comes from GET /api/auth/session, asked again before acting: a
// request from another tab may have kept the session alive meanwhile.
//
// If the session ends (absolute limit, sign-out elsewhere, account disabled), the page says
// so loudly, with a sound unlike the knock: no arrival can be announced any more.
import { t } from "./i18n.js";
import { api, setCsrf } from "./api.js";
import { $, el, showError, setBusy, wirePasswordToggles } from "./ui.js";
import { knock, notifyArrival, showWaitingCount } from "./waiting-list.js";
import { passkeyProblem, signWithPasskey, passkeyFailureMessage } from "./passkey-ceremony.js";

const WARN_SECONDS = 60;
const RECHECK_MS = 30000;
const STREAM_URL = "/api/waiting/events";

let options = { content: null, onUnlocked: () => {}, waitingCount: () => null };
let timer = null;
let state = "open"; // "open" | "warned" | "locked" | "ended"
let parked = null; // { content, placeholder, scrollY } while locked or ended
let source = null;
let lockedCount = null;
let started = false;
// Whether the account has a passkey (read once while the session is open: a locked session
// cannot list them). Without one, the lock screen does not offer it.
let hasPasskey = false;

async function readPasskeys() {
  try {
    hasPasskey = (await api("/api/me/passkeys")).passkeys.length > 0;
  } catch {
    hasPasskey = false; // the password and the code still unlock
  }
}

/** Watch the session of this page: ``content`` is the element taken off the page while it is
 * locked (the dashboard), ``onUnlocked()`` is called once it is back (reload what it shows),
 * ``waitingCount()`` is how many patients the page knew of (an arrival is a count above it). */
export function watchSessionLock({ content, onUnlocked, waitingCount = () => null }) {
  options = { content, onUnlocked, waitingCount };
  if (!started) {
    started = true;
    // Any API answer "session_locked" (api.js) locks the page at once.
    window.addEventListener("staff-session-locked", () => lockPage());
    readPasskeys();
  }
  if (state === "open" || state === "warned") scheduleCheck(0);
}

/** Whether the dashboard is off the page (locked, or the session ended). */
export function pageLocked() {
  return state === "locked" || state === "ended";
}

function setState(next) {
  state = next;
  document.body.dataset.sessionLock = next;
}

function scheduleCheck(ms) {
  clearTimeout(timer);
  timer = setTimeout(check, Math.max(ms, 0));
}

async function check() {
  timer = null;
  if (state === "locked" || state === "ended") return;
  let session;
  try {
    session = await api("/api/auth/session");
  } catch (error) {
    if (error.code === "not_authenticated") showSessionEnded();
    else scheduleCheck(RECHECK_MS); // a network blip: ask again later
    return;
  }
  if (session.locked) {
    lockPage();
    return;
  }
  const left = session.locks_in_seconds;
  if (left <= WARN_SECONDS) {
    showWarning(left);
    scheduleCheck(left * 1000 + 500);
  } else {
    hideWarning();
    scheduleCheck((left - WARN_SECONDS) * 1000);
  }
}

// -- the warning a minute before

function showWarning(secondsLeft) {
  let banner = $("#lock-warning");
  if (!banner) {
    const stay = el("button", { type: "button", class: "btn btn-primary btn-small", id: "lock-stay" }, t("lock.stay"));
    stay.addEventListener("click", stayOpen);
    banner = el("div", { id: "lock-warning", class: "lock-warning", role: "alert" }, el("p", { id: "lock-warning-text" }), stay);
    document.body.append(banner);
  }
  const minutes = Math.max(1, Math.round(secondsLeft / 60));
  $("#lock-warning-text").textContent = t("lock.warning", { count: minutes });
  banner.hidden = false;
  setState("warned");
}

function hideWarning() {
  const banner = $("#lock-warning");
  if (banner) banner.hidden = true;
  if (state === "warned") setState("open");
}

async function stayOpen() {
  try {
    await api("/api/me"); // an ordinary request: it keeps the session alive
  } catch {
    /* locked or ended meanwhile: the check below tells which */
  }
  hideWarning();
  scheduleCheck(0);
}

// -- locked

function lockPage() {
  if (state === "locked" || state === "ended") return;
  clearTimeout(timer);
  hideWarning();
  setState("locked");
  park();
  lockedCount = options.waitingCount();
  showOverlay(lockScreen());
  openLockedStream();
  ($("#unlock-passkey:not([hidden])") || $("#unlock-password")).focus();
}

/** Take the dashboard off the page, kept whole (open panels, typed text) to put back. */
function park() {
  if (parked || !options.content) return;
  // A dialog may name a patient ("decline Alice?"): it closes, as a cancel.
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
  const placeholder = document.createComment("locked");
  parked = { content: options.content, placeholder, scrollY: window.scrollY };
  options.content.replaceWith(placeholder);
  for (const node of document.body.children) if (node.id !== "session-lock") node.inert = true;
}

function unpark() {
  for (const node of document.body.children) node.inert = false;
  if (!parked) return;
  parked.placeholder.replaceWith(parked.content);
  window.scrollTo(0, parked.scrollY);
  parked = null;
}

function showOverlay(card) {
  const overlay = $("#session-lock") || el("div", { id: "session-lock", class: "lock-screen" });
  overlay.replaceChildren(card);
  document.body.append(overlay);
  for (const node of document.body.children) if (node !== overlay) node.inert = true;
}

const offered = () => hasPasskey && passkeyProblem() === null;

function lockScreen() {
  const form = el(
    "form",
    { id: "unlock-form", novalidate: true },
    el(
      "div",
      { class: "field" },
      el("label", { for: "unlock-password" }, t("signin.password")),
      el(
        "div",
        { class: "input-with-button" },
        el("input", { id: "unlock-password", type: "password", autocomplete: "current-password", required: true, maxlength: "1024" }),
        el("button", { type: "button", class: "btn btn-ghost btn-small toggle-password", "aria-controls": "unlock-password", "aria-pressed": "false", "data-i18n": "common.show" }, t("common.show")),
      ),
    ),
    el(
      "div",
      { class: "field" },
      el("label", { for: "unlock-code" }, t("totp.code_label")),
      el("input", { id: "unlock-code", class: "code-input", inputmode: "numeric", autocomplete: "one-time-code", pattern: "[0-9]{6}", maxlength: "6", required: true }),
    ),
    el("div", { class: "alert alert-error", role: "alert", hidden: true }),
    el("button", { class: `btn ${offered() ? "btn-secondary" : "btn-primary"} btn-block`, type: "submit" }, t("lock.unlock")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    unlock(form);
  });
  // A passkey (with the fingerprint or PIN) stands for the password and the code; the
  // server answers passkey_not_found for an account that has none here.
  const passkeyError = el("div", { id: "unlock-passkey-error", class: "alert alert-error", role: "alert", hidden: true });
  // Offered first, as the main way, to an account that has one (where this page can use it).
  const withPasskey = el("button", { type: "button", class: "btn btn-primary btn-block", id: "unlock-passkey", hidden: !offered() }, t("passkeys.unlock"));
  withPasskey.addEventListener("click", () => unlockWithPasskey(withPasskey, passkeyError));
  const passkeyPart = el("div", { class: "lock-passkey", hidden: !offered() }, passkeyError, withPasskey, el("p", { class: "muted passkey-or" }, t("passkeys.or_password")));
  const signOut = el("button", { type: "button", class: "btn-link", id: "lock-signout" }, t("lock.sign_out"));
  signOut.addEventListener("click", signOutFromLock);
  const card = el(
    "section",
    { class: "card card-narrow lock-card", role: "dialog", "aria-modal": "true", "aria-labelledby": "lock-title", "aria-describedby": "lock-lead" },
    padlock(),
    el("h1", { id: "lock-title" }, t("lock.title")),
    el("p", { id: "lock-lead", class: "lead" }, t(offered() ? "lock.lead_passkey" : "lock.lead")),
    el("p", { id: "lock-waiting", class: "lock-waiting", role: "status", "aria-live": "assertive", dataset: { count: "0" } }, t("lock.nobody")),
    passkeyPart,
    form,
    el("p", { class: "form-footer" }, signOut),
  );
  wirePasswordToggles(card);
  return card;
}

/** A padlock drawn in SVG (an emoji needs a font the computer may lack). */
function padlock() {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", "lock-icon");
  svg.setAttribute("aria-hidden", "true");
  for (const [tag, attrs] of [
    ["rect", { x: "4", y: "10", width: "16", height: "11", rx: "2" }],
    ["path", { d: "M8 10V7a4 4 0 0 1 8 0v3" }],
    ["circle", { cx: "12", cy: "15.5", r: "1.5" }],
  ]) {
    const shape = document.createElementNS(ns, tag);
    for (const [name, value] of Object.entries(attrs)) shape.setAttribute(name, value);
    svg.append(shape);
  }
  return svg;
}

/** While locked the stream counts waiting patients: an arrival knocks, badges the title and
 * notifies, naming nobody. */
function openLockedStream() {
  closeLockedStream();
  if (!window.EventSource) return;
  source = new EventSource(STREAM_URL);
  source.addEventListener("waiting_count", (event) => showLockedCount(JSON.parse(event.data).waiting_count));
  source.addEventListener("session_unlocked", () => unlocked()); // another tab unlocked it
  source.addEventListener("session_ended", () => showSessionEnded());
  source.addEventListener("error", async () => {
    // EventSource retries by itself after a dropped connection, not after an HTTP error.
    if (source && source.readyState === EventSource.CLOSED) {
      closeLockedStream();
      try {
        await api("/api/auth/session");
        setTimeout(() => state === "locked" && openLockedStream(), 3000);
      } catch (error) {
        if (error.code === "not_authenticated") showSessionEnded();
        else setTimeout(() => state === "locked" && openLockedStream(), RECHECK_MS);
      }
    }
  });
}

function closeLockedStream() {
  if (source) source.close();
  source = null;
}

function showLockedCount(count) {
  const line = $("#lock-waiting");
  if (!line) return;
  const arrived = lockedCount !== null && count > lockedCount;
  lockedCount = count;
  line.dataset.count = String(count);
  line.textContent = count > 0 ? t("lock.waiting", { count }) : t("lock.nobody");
  line.classList.toggle("lock-waiting-someone", count > 0);
  showWaitingCount(count);
  if (arrived) {
    knock();
    notifyArrival();
  }
}

async function unlock(form) {
  const password = $("#unlock-password").value;
  const code = $("#unlock-code").value.replace(/\s+/g, "");
  if (!password || !/^\d{6}$/.test(code)) {
    showError(form, t("lock.fill_both"));
    return;
  }
  showError(form, "");
  setBusy(form, true);
  try {
    const me = await api("/api/auth/unlock", { method: "POST", body: { password, code } });
    setCsrf(me.csrf_token);
    unlocked();
  } catch (error) {
    $("#unlock-code").value = "";
    if (error.code === "not_authenticated") showSessionEnded();
    else {
      showError(form, error.userMessage);
      $(error.code === "wrong_password" ? "#unlock-password" : "#unlock-code").focus();
    }
  } finally {
    setBusy(form, false);
  }
}

async function unlockWithPasskey(button, errorBox) {
  errorBox.hidden = true;
  button.disabled = true;
  try {
    const credential = await signWithPasskey("/api/auth/reauth/options");
    const me = await api("/api/auth/unlock/passkey", { method: "POST", body: { credential } });
    setCsrf(me.csrf_token);
    unlocked();
  } catch (error) {
    if (error.code === "not_authenticated") showSessionEnded();
    else {
      errorBox.textContent = passkeyFailureMessage(error);
      errorBox.hidden = false;
    }
  } finally {
    button.disabled = false;
  }
}

function unlocked() {
  if (state !== "locked") return;
  closeLockedStream();
  $("#session-lock").remove();
  unpark();
  setState("open");
  options.onUnlocked();
  scheduleCheck(0);
}

async function signOutFromLock() {
  try {
    await api("/api/auth/logout", { method: "POST" });
  } finally {
    location.assign("/");
  }
}

// -- ended

/** The session is gone: say so loudly, with a sound unlike the knock. */
export function showSessionEnded() {
  if (state === "ended") return;
  clearTimeout(timer);
  closeLockedStream();
  hideWarning();
  setState("ended");
  setCsrf("");
  park();
  const again = el("a", { class: "btn btn-primary btn-block", href: "/", id: "ended-sign-in" }, t("lock.ended_sign_in"));
  showOverlay(
    el(
      "section",
      { class: "card card-narrow lock-card lock-ended", role: "alertdialog", "aria-modal": "true", "aria-labelledby": "ended-title", "aria-describedby": "ended-lead" },
      el("div", { class: "lock-icon", "aria-hidden": "true" }, "⚠"),
      el("h1", { id: "ended-title" }, t("lock.ended_title")),
      el("p", { id: "ended-lead", class: "lead" }, t("lock.ended_lead")),
      again,
    ),
  );
  document.title = `⚠ ${t("lock.ended_title")} — ${t("app.name")}`;
  alarm();
  again.focus();
}

let audio = null;

/** Three falling tones, harsher than the knock (square wave): nothing like an arrival. Silent
 * until the person has interacted with the page, as browsers require. */
function alarm() {
  const Context = window.AudioContext || window.webkitAudioContext;
  if (!Context || !navigator.userActivation || !navigator.userActivation.hasBeenActive) return false;
  audio = audio || new Context();
  if (audio.state === "suspended") audio.resume().catch(() => {});
  const start = audio.currentTime + 0.05;
  [880, 660, 440].forEach((frequency, i) => {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    const at = start + i * 0.3;
    osc.type = "square";
    osc.frequency.setValueAtTime(frequency, at);
    gain.gain.setValueAtTime(0.0001, at);
    gain.gain.exponentialRampToValueAtTime(0.25, at + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.26);
    osc.connect(gain).connect(audio.destination);
    osc.start(at);
    osc.stop(at + 0.27);
  });
  return true;
}
