// The doctor's call screen: local camera, mute/camera toggles that act on the local tracks,
// the room's waiting room (who knocks, let in / decline), the call itself (startCall() in
// call-session.js) and hang up, which ends the consultation.
import { initI18n, t } from "./i18n.js";
import { api, setCsrf } from "./api.js";
import { $, confirmDialog } from "./ui.js";
import { startCall } from "./call-session.js";
import { attachCallFeatures } from "./call-features.js";
import { renderPrivacy } from "./call-privacy.js";
import { renderWaiting, announceArrival, clearArrival, knock } from "./waiting-list.js";
import { attachRecording } from "./recording-room.js";

const consultationId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
let stream = null;
let session = null;
let state = "connecting";
let patientName = "";
let scheduledStart = null;
let latestInviteGeneration = 0; // the consultation's current invite link, as loaded
let waiting = null; // {name, since, invite_generation} from the lobby message
// {reason, may_return, fromCall} once the patient's seat was freed (the lobby's "left"), until
// someone waits again: said instead of a bare "waiting for the patient".
let patientLeft = null;
let hadCall = false; // the patient was in the call since they last waited
let cipher = null;
let features = null; // code, chat, quality, devices, screen share (call-features.js)
let mediaProblem = null; // {missing: ["video", "audio"], reason}: what failed to start, and why

const MEDIA_REASONS = { NotAllowedError: "call.media_denied", NotFoundError: "call.media_missing", NotReadableError: "call.media_busy" };

/** The doctor's camera and microphone. One that fails does not take the other with it, and a
 * failure is said on the page and in the console (never swallowed). */
async function openLocalMedia() {
  try {
    return { stream: await navigator.mediaDevices.getUserMedia({ video: true, audio: true }), problem: null };
  } catch (error) {
    const tracks = [];
    const missing = [];
    for (const kind of ["video", "audio"]) {
      try {
        tracks.push(...(await navigator.mediaDevices.getUserMedia({ [kind]: true })).getTracks());
      } catch {
        missing.push(kind);
      }
    }
    console.warn(`call: camera or microphone unavailable (${error.name}: ${error.message})`);
    const partial = tracks.length ? new MediaStream(tracks) : null;
    return { stream: partial, problem: missing.length ? { missing, reason: MEDIA_REASONS[error.name] || "call.media_other" } : null };
  }
}

function renderMediaProblem() {
  $("#media-problem").hidden = !mediaProblem;
  if (!mediaProblem) return;
  const { missing, reason } = mediaProblem;
  const what = missing.length === 2 ? "call.media_none" : missing[0] === "video" ? "call.media_no_camera" : "call.media_no_mic";
  $("#media-problem-text").textContent = `${t(what)} ${t(reason)}`;
}

async function retryMedia(button) {
  button.disabled = true;
  const opened = await openLocalMedia();
  button.disabled = false;
  const count = (media) => (media ? media.getTracks().length : 0);
  if (count(opened.stream) <= count(stream)) {
    // No better than what runs: keep it, and the message that says what is missing.
    if (opened.stream) for (const track of opened.stream.getTracks()) track.stop();
    return;
  }
  if (stream) for (const track of stream.getTracks()) track.stop();
  stream = opened.stream;
  mediaProblem = opened.problem;
  // The mute and camera buttons keep their word over the new tracks.
  for (const track of stream.getAudioTracks()) track.enabled = $("#toggle-mic").getAttribute("aria-pressed") !== "true";
  for (const track of stream.getVideoTracks()) track.enabled = $("#toggle-camera").getAttribute("aria-pressed") !== "true";
  $("#self-video").srcObject = stream;
  renderMediaProblem();
  if (session) session.setLocalStream(stream); // a connection in place starts afresh with them
}

function renderState() {
  $("#call-status").dataset.state = state;
  // Someone in the waiting room is not "waiting for the patient" any more.
  let key = `call.state_${state}`;
  if (state === "waiting" && waiting) key = "call.state_patient_waiting";
  else if (state === "waiting" && patientLeft) key = leftKey(patientLeft);
  $("#call-status").dataset.left = state === "waiting" && patientLeft ? patientLeft.reason : "";
  $("#call-status").textContent = state === "in_call" ? "" : t(key, { name: patientName || t("call.chat_peer_patient") });
  renderPrivacy($("#call-encryption"), cipher);
}

function leftKey(left) {
  if (!left.may_return) return "call.state_patient_superseded";
  if (left.reason === "disconnected") return "call.state_patient_dropped";
  return left.fromCall ? "call.state_patient_left_call" : "call.state_patient_left";
}

function renderLobby() {
  $("#lobby").hidden = !waiting || state === "ended";
  if (!waiting) return;
  const patient = {
    consultationId,
    patientName: waiting.name || patientName,
    scheduledStart,
    waitingSince: new Date(waiting.since * 1000).toISOString(),
    inviteGeneration: waiting.invite_generation || 0,
    latestInviteGeneration,
  };
  renderWaiting([patient], {
    onAdmit: () => {
      if (session) session.admit();
    },
    onDeny: () => {
      if (session) session.deny();
    },
  });
}

// The dashboard's "let in" opens this page as /call/<id>#admit: the doctor already decided,
// so the patient waiting when this page joins is let in (only then: one who comes later, or
// after a reload, waits for the doctor's click again).
let admitOnArrival = location.hash === "#admit";
if (admitOnArrival) history.replaceState(null, "", location.pathname);

function onLobby(next, left) {
  if (left) patientLeft = { ...left, fromCall: hadCall };
  if (next) {
    patientLeft = null;
    hadCall = false;
  }
  const admitNow = admitOnArrival && next && session;
  admitOnArrival = false;
  if (admitNow) {
    waiting = next;
    session.admit();
    return;
  }
  const arrived = next && (!waiting || waiting.since !== next.since);
  waiting = next;
  renderLobby();
  renderState();
  if (arrived) {
    announceArrival({ patientName: next.name });
    knock();
  } else if (!next) {
    clearArrival();
  }
}

function toggle(button, kind, onKey, offKey) {
  const tracks = stream ? (kind === "audio" ? stream.getAudioTracks() : stream.getVideoTracks()) : [];
  const off = button.getAttribute("aria-pressed") !== "true";
  for (const track of tracks) track.enabled = !off;
  button.setAttribute("aria-pressed", String(off));
  button.dataset.i18n = off ? offKey : onKey;
  button.textContent = t(button.dataset.i18n);
}

async function start() {
  initI18n();
  renderState();
  document.addEventListener("langchange", () => {
    renderState();
    renderLobby();
    renderMediaProblem();
  });
  try {
    const me = await api("/api/me");
    setCsrf(me.csrf_token);
    const consultation = await api(`/api/consultations/${encodeURIComponent(consultationId)}`);
    $("#call-title").textContent = consultation.patient_name;
    patientName = consultation.patient_name;
    scheduledStart = consultation.scheduled_start;
    latestInviteGeneration = consultation.invite_generation || 0;
  } catch (error) {
    if (error.code === "not_authenticated") return location.assign("/");
    state = "error";
    $("#call-status").textContent = error.userMessage;
    return;
  }
  ({ stream, problem: mediaProblem } = await openLocalMedia());
  $("#self-video").srcObject = stream;
  renderMediaProblem();
  $("#media-retry").addEventListener("click", (e) => retryMedia(e.currentTarget));
  $("#toggle-mic").addEventListener("click", (e) => toggle(e.currentTarget, "audio", "call.mute", "call.unmute"));
  $("#toggle-camera").addEventListener("click", (e) => toggle(e.currentTarget, "video", "call.camera_off", "call.camera_on"));
  $("#hang-up").addEventListener("click", async (event) => {
    const button = event.currentTarget;
    // Ending is for good (the link stops working): ask first, unless it is over already.
    if (state !== "ended" && !(await confirmDialog(t("call.end_confirm_title"), t("call.end_confirm_body"), t("call.hang_up_end")))) {
      return;
    }
    button.disabled = true;
    // The doctor's hang up ends the consultation for both.
    if (session) await session.hangUp(true);
    features.stop();
    if (stream) for (const track of stream.getTracks()) track.stop();
    location.assign("/");
  });
  // Leaving keeps the consultation open (the same link lets the patient back, and the doctor
  // can come back from the dashboard): nothing is lost, so no question is asked.
  $("#leave-call").addEventListener("click", async (event) => {
    event.currentTarget.disabled = true;
    if (session) await session.hangUp(false);
    features.stop();
    if (stream) for (const track of stream.getTracks()) track.stop();
    location.assign("/");
  });
  features = attachCallFeatures({
    role: "doctor",
    onFile: (size) => session && state === "in_call" && session.fileExchanged(size),
    getStream: () => stream,
    selfVideo: $("#self-video"),
    remoteVideo: $("#remote-video"),
    peerLabel: () => patientName || t("call.chat_peer_patient"),
    encryption: $("#call-encryption"),
    controls: $("#main .call-controls"),
    hangUp: $("#hang-up"),
    mediaButtons: { audio: $("#toggle-mic"), video: $("#toggle-camera") },
  });
  session = await startCall({
    consultationId,
    role: "doctor",
    getRoomToken: async () =>
      (await api("/api/room-tokens", { method: "POST", body: { consultation_id: consultationId } })).room_token,
    localStream: stream,
    remoteVideo: $("#remote-video"),
    onState: (next) => {
      state = next;
      if (next === "in_call") hadCall = true;
      renderState();
      if (next === "ended") renderLobby();
    },
    onLobby,
    onPeer: (pc) => features.onPeer(pc),
    onSignaling: (client) => features.onSignaling(client),
    onEncrypted: (next) => {
      cipher = next;
      renderState();
    },
  });
  attachRecording(session, $("#main"));
}

start();
