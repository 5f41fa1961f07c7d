// Patient page /join/<token>: check the link, enter the access code, check devices,
// then wait in the waiting room (whose connection lives in patient-room.js).
//
// Never lose your place: once the code is proved, the server keeps a patient session for this
// consultation (an HttpOnly cookie, ended by a re-issued link or a cancellation). A reload, or
// a patient who left, goes back with one tap and the devices last chosen; nothing secret is
// stored by the page (only device ids, in localStorage).
import { initI18n, t } from "./i18n.js";
import { api, setCsrf, ApiError } from "./api.js";
import { $, $$, el, showOnly, focusHeading, showError, setBusy, formatDateTime, formatTime, confirmDialog } from "./ui.js";
import { DeviceCheck, renderLevel, speakerSelectionSupported } from "./devices.js";
import { devicePlatform, deviceHelp, renderDeviceHelp } from "./device-help.js";
import { enterWaitingRoom } from "./patient-room.js";
import { attachCallFeatures } from "./call-features.js";
import { renderPrivacy } from "./call-privacy.js";
import { missingForCall } from "./browser-support.js";
import { receiveStaffMessage, renderStaffMessages, hideStaffMessages } from "./waiting-messages.js";
import { showClinic, renderClinic } from "./patient-clinic.js";

const SECTIONS = ["checking", "problem", "code-step", "return-step", "left-step", "devices-step", "waiting-step", "call-step"];
// The camera, microphone and speaker last used in this browser (device ids: no secret).
const DEVICES_KEY = "teleconsult.patient.devices";
const PROBLEMS = new Set([
  "invite_expired",
  "invite_locked",
  "invite_invalid",
  "consultation_cancelled",
  "consultation_ended",
  // The doctor issued a new link (and code): this one's session and seat are over.
  "invite_superseded",
  // Found by the page itself: this browser lacks what a video consultation needs.
  "browser_unsupported",
]);
const invite = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");

let consultation = null; // InviteInfo
let current = "checking";
let check = null;
let waitingSince = null;
let connectionState = "connecting";
let session = null; // what enterWaitingRoom() returned
let callState = "admitted";
let callViewFrame = 0; // the switch to the call view, waiting for the next frame
let cipher = null;
let features = null; // code, chat, quality, devices in the call (call-features.js)
let leftState = "left"; // why the patient is out of the room: "left", "left_call" or "error"
let waitingTimer = null;
let speakerId = ""; // the speaker chosen in the check, or remembered

function show(section) {
  current = section;
  showOnly(SECTIONS, section);
  const inCall = section === "call-step";
  document.body.classList.toggle("call-body", inCall);
  $("#main").classList.toggle("call-main", inCall);
  const step = { "code-step": "code", "devices-step": "devices", "waiting-step": "waiting" }[section];
  $("#progress").hidden = !step;
  let passed = true;
  for (const item of $$("#progress li")) {
    const isCurrent = item.dataset.step === step;
    if (isCurrent) passed = false;
    item.classList.toggle("done", passed && !isCurrent);
    if (isCurrent) item.setAttribute("aria-current", "step");
    else item.removeAttribute("aria-current");
  }
  focusHeading(document.getElementById(section));
}

function showProblem(code, retry) {
  const known = PROBLEMS.has(code) ? code : "unreachable";
  for (const part of ["title", "body", "action"]) {
    const node = $(`#problem-${part}`);
    node.dataset.i18n = `problem.${known}.${part}`;
    node.textContent = t(node.dataset.i18n);
  }
  $("#problem-retry").hidden = !retry;
  show("problem");
}

function renderAppointment() {
  if (!consultation) return;
  const doctor = consultation.doctor_name || t("join.your_doctor");
  $("#doctor-name").textContent = doctor;
  $("#return-doctor").textContent = doctor;
  $("#appointment-time").textContent = formatDateTime(consultation.scheduled_start);
  $("#return-time").textContent = formatDateTime(consultation.scheduled_start);
  $("#waiting-doctor").textContent = t("waiting.doctor", {
    doctor,
    time: formatTime(consultation.scheduled_start),
  });
  renderWaitingSince();
}

function renderWaitingSince() {
  if (!waitingSince) return;
  const minutes = Math.floor((Date.now() - waitingSince) / 60000);
  $("#waiting-since").textContent =
    minutes < 1 ? t("waiting.since_now") : t("waiting.since", { count: minutes });
}

async function inspect() {
  // Before the code is asked for: a browser that cannot take part is told at once, with
  // the browsers that can.
  if (missingForCall().length) {
    showProblem("browser_unsupported", false);
    return;
  }
  show("checking");
  try {
    consultation = await api("/api/invites/inspect", { method: "POST", body: { invite } });
  } catch (error) {
    showProblem(error.code, !PROBLEMS.has(error.code));
    return;
  }
  renderAppointment();
  if (await rememberedSession()) {
    show("return-step");
    $("#return-go").focus();
    return;
  }
  show("code-step");
  $("#access-code").focus();
}

/** Whether this browser's patient session (proved with the code earlier) still holds for the
 * consultation this link leads to; a re-issued link or a cancellation shows its problem. */
async function rememberedSession() {
  let answer;
  try {
    answer = await api("/api/patient/session");
  } catch {
    // None, or one a new link or a cancellation ended: the code is asked (the link's own
    // check, just before, already said whether this link still works).
    return false;
  }
  if (answer.consultation.consultation_id !== consultation.consultation_id) return false;
  setCsrf(answer.csrf_token);
  consultation = answer.consultation;
  return true;
}

function rememberedDevices() {
  try {
    return JSON.parse(localStorage.getItem(DEVICES_KEY) || "{}") || {};
  } catch {
    return {};
  }
}

function rememberDevices(ids) {
  try {
    localStorage.setItem(DEVICES_KEY, JSON.stringify(ids));
  } catch {
    // storage refused (private mode): the next return asks the browser's default devices
  }
}

/** One tap back into the waiting room: the devices last used, no code, no device check
 * unless a device does not start (then the check shows what is wrong). */
async function returnToRoom(button) {
  check.unlockAudio(); // this click is the gesture audio needs
  button.disabled = true;
  $("#return-busy").textContent = t("return.starting");
  const ids = rememberedDevices();
  try {
    await check.start({ cameraId: ids.cameraId, micId: ids.micId });
    if (!check.stream && (ids.cameraId || ids.micId)) await check.start(); // a device gone since
  } finally {
    button.disabled = false;
    $("#return-busy").textContent = "";
  }
  if (check.error || !check.cameraOk || !check.micOk) {
    show("devices-step");
    await fillPickers();
    renderDeviceStatus();
    return;
  }
  speakerId = ids.speakerId || "";
  enterWaiting();
}

/** The device check, on the patient's own request, before going back. */
function checkDevicesFirst() {
  check.unlockAudio();
  const ids = rememberedDevices();
  show("devices-step");
  startDevices({ cameraId: ids.cameraId, micId: ids.micId });
}

async function redeem(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const code = $("#access-code").value.replace(/\s+/g, "");
  if (!/^\d{4,8}$/.test(code)) {
    showError(form, t("join.code_format"));
    $("#access-code").focus();
    return;
  }
  // This submit is a user gesture: let the device check start audio later.
  check.unlockAudio();
  showError(form, "");
  setBusy(form, true);
  try {
    const answer = await api("/api/invites/redeem", {
      method: "POST",
      body: { invite, access_code: code },
    });
    setCsrf(answer.csrf_token);
    consultation = answer.consultation;
    renderAppointment();
    show("devices-step");
    startDevices();
  } catch (error) {
    if (PROBLEMS.has(error.code)) return showProblem(error.code, false);
    let message = error.userMessage;
    if (error.code === "invalid_access_code" && error.details.attempts_left !== undefined) {
      message = t("join.wrong_code", { count: error.details.attempts_left });
    }
    showError(form, message);
    $("#access-code").select();
  } finally {
    setBusy(form, false);
  }
}

// -- device check

async function startDevices(ids = {}) {
  $("#preview-message").hidden = false;
  $("#preview-message").textContent = t("devices.starting");
  await check.start(ids);
  await fillPickers();
  renderDeviceStatus();
}

async function fillPickers() {
  const { cameras, mics, speakers } = await check.devices();
  fill($("#camera-select"), cameras, check.currentDeviceId("video"), "devices.camera_n");
  fill($("#mic-select"), mics, check.currentDeviceId("audio"), "devices.microphone_n");
  const canPickSpeaker = speakerSelectionSupported() && speakers.length > 0;
  $("#speaker-select").hidden = !canPickSpeaker;
  if (canPickSpeaker) fill($("#speaker-select"), speakers, "default", "devices.speaker_n");
  // Without a picker the label names the test button instead of an empty select.
  $("#speaker-label").htmlFor = canPickSpeaker ? "speaker-select" : "speaker-test";
}

function fill(select, devices, selectedId, labelKey) {
  const options = devices.map((device, i) =>
    el("option", { value: device.deviceId }, device.label || t(labelKey, { n: i + 1 })),
  );
  if (!options.length) options.push(el("option", { value: "" }, t("devices.none")));
  select.replaceChildren(...options);
  if (selectedId && devices.some((d) => d.deviceId === selectedId)) select.value = selectedId;
  select.disabled = devices.length === 0;
}

function setStatus(node, ok, key) {
  if (key) node.dataset.i18n = key;
  else delete node.dataset.i18n;
  node.textContent = key ? t(key) : "";
  node.className = ok ? "status-ok" : key ? "status-bad" : "";
}

function renderDeviceStatus() {
  const video = $("#preview");
  const cameraLive = check.cameraOk && video.videoWidth > 0;
  setStatus($("#camera-status"), cameraLive, check.cameraOk ? (cameraLive ? "devices.ok" : "") : "devices.not_available");
  setStatus($("#mic-status"), check.heardSound, check.micOk ? (check.heardSound ? "devices.mic_heard" : "") : "devices.not_available");
  if (check.cameraOk) {
    $("#preview-message").hidden = cameraLive;
  } else {
    $("#preview-message").hidden = false;
    $("#preview-message").textContent = t("devices.no_camera_preview");
  }
  const box = $("#devices-error");
  if (check.error) {
    // The steps for this device: a phone's settings, not a computer's address bar.
    box.dataset.platform = devicePlatform();
    renderDeviceHelp(
      { lead: $("#devices-error-text"), list: $("#devices-help-steps"), note: $("#devices-help-note") },
      deviceHelp(check.error, box.dataset.platform),
    );
    box.hidden = false;
  } else {
    box.hidden = true;
  }
  const warn = $("#ready-warning");
  warn.hidden = check.cameraOk && check.micOk;
  if (!warn.hidden) {
    const key = !check.micOk && !check.cameraOk ? "devices.warn_no_devices" : check.micOk ? "devices.warn_no_camera" : "devices.warn_no_mic";
    warn.textContent = t(key);
  }
}

function wireDevices() {
  check = new DeviceCheck({ video: $("#preview"), onChange: () => current === "devices-step" && renderDeviceStatus() });
  check.onLevel = (level) => renderLevel($("#mic-level"), level);
  renderLevel($("#mic-level"), 0);
  $("#preview").addEventListener("loadedmetadata", renderDeviceStatus);
  $("#preview").addEventListener("resize", renderDeviceStatus);
  $("#camera-select").addEventListener("change", () =>
    startDevices({ cameraId: $("#camera-select").value, micId: $("#mic-select").value }),
  );
  $("#mic-select").addEventListener("change", () =>
    startDevices({ cameraId: $("#camera-select").value, micId: $("#mic-select").value }),
  );
  $("#devices-retry").addEventListener("click", () => {
    check.unlockAudio();
    startDevices();
  });
  $("#speaker-test").addEventListener("click", async (event) => {
    const button = event.currentTarget;
    button.disabled = true;
    setStatus($("#speaker-status"), false, "");
    $("#speaker-help").hidden = true;
    try {
      await check.playTestTone($("#speaker-select").hidden ? "" : $("#speaker-select").value);
      button.dataset.played = "true";
      $("#speaker-question").hidden = false;
    } finally {
      button.disabled = false;
    }
  });
  $("#heard-yes").addEventListener("click", () => {
    setStatus($("#speaker-status"), true, "devices.ok");
    $("#speaker-question").hidden = true;
  });
  $("#heard-no").addEventListener("click", () => {
    setStatus($("#speaker-status"), false, "devices.speaker_not_heard");
    $("#speaker-question").hidden = true;
    $("#speaker-help").hidden = false;
  });
  $("#ready").addEventListener("click", () => {
    speakerId = $("#speaker-select").hidden ? "" : $("#speaker-select").value;
    enterWaiting();
  });
  $("#leave").addEventListener("click", () => confirmLeave("leave.confirm_title", "leave.confirm_body", "left"));
  $("#patient-hang-up").addEventListener("click", () =>
    confirmLeave("leave.confirm_title_call", "leave.confirm_body_call", "left_call"),
  );
  $("#patient-mic").addEventListener("click", (e) => toggleTrack(e.currentTarget, "audio", "call.mute", "call.unmute"));
  $("#patient-camera").addEventListener("click", (e) =>
    toggleTrack(e.currentTarget, "video", "call.camera_off", "call.camera_on"),
  );
  $("#rejoin").addEventListener("click", (e) => returnToRoom(e.currentTarget));
  $("#return-go").addEventListener("click", (e) => returnToRoom(e.currentTarget));
  $("#return-check").addEventListener("click", checkDevicesFirst);
}

/** Leave only once the patient confirms: a slip of the thumb must not end their place. */
async function confirmLeave(titleKey, bodyKey, state) {
  if (!(await confirmDialog(t(titleKey), t(bodyKey), t("leave.confirm_ok"), "leave.stay"))) return;
  // The room may have moved on while the dialog was open (ended, or the call started).
  if (current !== "waiting-step" && current !== "call-step") return;
  leaveRoom(state === "left" && current === "call-step" ? "left_call" : state, true);
}

function renderLeft() {
  const suffix = { left: "", left_call: "_call", error: "_error" }[leftState];
  for (const [node, key] of [
    [$("#left-title"), `left.title${suffix}`],
    [$("#left-body"), `left.body${suffix}`],
  ]) {
    node.dataset.i18n = key;
    node.textContent = t(key);
  }
}

// -- waiting room

/** Leave the room (or report that it is over): camera off; with canRejoin, the after-leave
 * screen and its one action, else the waiting screen says it is over. */
function leaveRoom(state, canRejoin) {
  cancelAnimationFrame(callViewFrame);
  callViewFrame = 0;
  if (session) session.leave();
  session = null;
  check.stopTracks();
  $("#waiting-self").srcObject = null;
  $("#patient-self").srcObject = null;
  $("#patient-remote").srcObject = null;
  $(".self-view").hidden = true;
  announce(null);
  if (canRejoin) {
    leftState = state;
    renderLeft();
    show("left-step");
    $("#rejoin").focus();
    return;
  }
  connectionState = state;
  if (current === "call-step") show("waiting-step");
  renderConnectionState();
  $("#leave").hidden = true;
  if (state === "ended" || state === "denied" || state === "cancelled") {
    // Over: the page no longer looks like a waiting room.
    const title = $("#waiting-title");
    title.dataset.i18n = state === "cancelled" ? "waiting.title_cancelled" : `call.state_${state}`;
    title.textContent = t(title.dataset.i18n);
    for (const node of $$("#waiting-step .calm-pulse, #waiting-step .tips, #waiting-doctor, #waiting-since")) {
      node.hidden = true;
    }
    hideStaffMessages();
    focusHeading($("#waiting-step"));
  }
}

function toggleTrack(button, kind, onKey, offKey) {
  const stream = check.stream;
  const tracks = stream ? (kind === "audio" ? stream.getAudioTracks() : stream.getVideoTracks()) : [];
  const off = button.getAttribute("aria-pressed") !== "true";
  for (const track of tracks) track.enabled = !off;
  button.setAttribute("aria-pressed", String(off));
  button.dataset.i18n = off ? offKey : onKey;
  button.textContent = t(button.dataset.i18n);
}

/** A device the patient joined without has no button to press: it says so instead. */
function renderMissingDevices() {
  const stream = check.stream;
  for (const [button, kind, onKey, noneKey] of [
    [$("#patient-mic"), "audio", "call.mute", "devicehelp.mic_none"],
    [$("#patient-camera"), "video", "call.camera_off", "devicehelp.camera_none"],
  ]) {
    const has = Boolean(stream && stream.getTracks().some((track) => track.kind === kind));
    if (has === !button.disabled) continue;
    button.disabled = !has;
    button.setAttribute("aria-pressed", "false");
    button.dataset.i18n = has ? onKey : noneKey;
    button.textContent = t(button.dataset.i18n);
  }
}

/** Tell a screen reader's user (#patient-announce, a status region); null clears it. The key
 * stays on the node, so the language switch says it in the other language. */
function announce(key) {
  const node = $("#patient-announce");
  if (key) node.dataset.i18n = key;
  else delete node.dataset.i18n;
  node.textContent = key ? t(key) : "";
}

function renderCallState() {
  const node = $("#patient-call-status");
  node.dataset.state = callState;
  node.textContent = callState === "in_call" ? "" : t(`call.state_${callState}`);
  renderPrivacy($("#patient-encryption"), cipher);
}

function onRoomState(state, details = {}) {
  if (!["admitted", "in_call", "negotiation_failed"].includes(state)) {
    cancelAnimationFrame(callViewFrame); // admitted, then something else before the frame
    callViewFrame = 0;
  }
  if (PROBLEMS.has(details.code)) {
    leaveRoom("ended", false);
    return showProblem(details.code, false);
  }
  if (state === "ended" && details.reason === "cancelled") {
    // Cancelled by the doctor while the patient waited: not a consultation that took place.
    leaveRoom("cancelled", false);
    return;
  }
  if (state === "ended" || state === "denied") {
    leaveRoom(state, false);
    return;
  }
  if (state === "error") {
    // The room is out of reach (or another tab took this place): camera off, offer to retry.
    leaveRoom("error", true);
    return;
  }
  // negotiation_failed: the doctor's offer could not be answered (offers come once admitted).
  if (state === "admitted" || state === "in_call" || state === "negotiation_failed") {
    callState = state;
    if (current !== "call-step" && !callViewFrame) {
      // The view switches at the next frame: the doctor's offer, right behind `admitted`
      // on the socket, is taken up first, not after a layout of the whole call view.
      callViewFrame = requestAnimationFrame(() => {
        callViewFrame = 0;
        $("#patient-self").srcObject = check.stream;
        renderMissingDevices();
        show("call-step");
        announce("call.admitted_announce");
      });
    }
    renderCallState();
    return;
  }
  if (current === "call-step" && state === "reconnecting") {
    callState = state;
    renderCallState();
    return;
  }
  if (current === "call-step" && state === "waiting") {
    show("waiting-step");
    announce(null);
  }
  connectionState = state;
  renderConnectionState();
}

async function getRoomToken() {
  const answer = await api("/api/room-tokens", {
    method: "POST",
    body: { consultation_id: consultation.consultation_id },
  });
  return answer.room_token;
}

function renderConnectionState() {
  const node = $("#connection-state");
  node.dataset.state = connectionState;
  node.textContent = t(`waiting.state_${connectionState}`);
}

async function enterWaiting() {
  check.stopMeter();
  rememberDevices({
    cameraId: check.currentDeviceId("video"),
    micId: check.currentDeviceId("audio"),
    speakerId,
  });
  waitingSince = Date.now();
  $("#waiting-self").srcObject = check.stream;
  $(".self-view").hidden = false;
  $("#leave").hidden = false;
  renderAppointment();
  show("waiting-step");
  waitingTimer ??= setInterval(renderWaitingSince, 30000);
  connectionState = "connecting";
  renderConnectionState();
  features ??= attachCallFeatures({
    role: "patient",
    getStream: () => check.stream,
    selfVideo: $("#patient-self"),
    remoteVideo: $("#patient-remote"),
    peerLabel: () => consultation.doctor_name || t("call.chat_peer_doctor"),
    encryption: $("#patient-encryption"),
    controls: $("#call-step .call-controls"),
    hangUp: $("#patient-hang-up"),
    mediaButtons: { audio: $("#patient-mic"), video: $("#patient-camera") },
  });
  try {
    session = await enterWaitingRoom({
      consultation,
      getRoomToken,
      media: {
        stream: check.stream,
        cameraId: check.currentDeviceId("video"),
        micId: check.currentDeviceId("audio"),
        speakerId,
      },
      remoteVideo: $("#patient-remote"),
      onState: onRoomState,
      onPeer: (pc) => features.onPeer(pc),
      onSignaling: (client) => features.onSignaling(client),
      onStaffMessage: receiveStaffMessage,
      onEncrypted: (next) => {
        cipher = next;
        if (current === "call-step") renderCallState();
      },
    });
  } catch (error) {
    connectionState = "error";
    renderConnectionState();
    if (error instanceof ApiError && PROBLEMS.has(error.code)) showProblem(error.code, false);
  }
}

function start() {
  initI18n();
  wireDevices();
  $("#code-form").addEventListener("submit", redeem);
  $("#problem-retry").addEventListener("click", inspect);
  document.addEventListener("langchange", () => {
    renderAppointment();
    renderClinic();
    // The pickers' "Camera 1" or "No device found" are texts too.
    if (current === "devices-step") fillPickers().then(renderDeviceStatus);
    if (current === "waiting-step") renderConnectionState();
    if (current === "left-step") renderLeft();
    renderStaffMessages();
    if (current === "call-step") renderCallState();
  });
  showClinic(); // not awaited: the link's check does not wait for it
  inspect();
}

start();
