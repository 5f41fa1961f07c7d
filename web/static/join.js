// Patient page /join/<token>: check the link, enter the access code, check devices,
// then wait in the waiting room (whose connection lives in patient-room.js).
import { initI18n, t } from "./i18n.js";
import { api, setCsrf, ApiError } from "./api.js";
import { $, $$, el, showOnly, focusHeading, showError, setBusy, formatDateTime, formatTime } from "./ui.js";
import { DeviceCheck, renderLevel, speakerSelectionSupported } from "./devices.js";
import { enterWaitingRoom } from "./patient-room.js";
import { attachCallFeatures } from "./call-features.js";

const SECTIONS = ["checking", "problem", "code-step", "devices-step", "waiting-step", "call-step"];
const PROBLEMS = new Set([
  "invite_expired",
  "invite_locked",
  "invite_invalid",
  "consultation_cancelled",
  "consultation_ended",
  // The doctor issued a new link (and code): this one's session and seat are over.
  "invite_superseded",
]);
const invite = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");

let consultation = null; // InviteInfo
let current = "checking";
let check = null;
let waitingSince = null;
let connectionState = "connecting";
let session = null; // what enterWaitingRoom() returned
let callState = "admitted";
let cipher = null;
let features = null; // code, chat, quality, devices in the call (call-features.js)

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
  $("#appointment-time").textContent = formatDateTime(consultation.scheduled_start);
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
  show("checking");
  try {
    consultation = await api("/api/invites/inspect", { method: "POST", body: { invite } });
  } catch (error) {
    showProblem(error.code, !PROBLEMS.has(error.code));
    return;
  }
  renderAppointment();
  show("code-step");
  $("#access-code").focus();
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
    const kind = check.error.replace(/^Partial:/, "");
    const key = check.error.startsWith("Partial:")
      ? "devices.error_partial"
      : { NotAllowedError: "devices.error_denied", NotFoundError: "devices.error_missing", NotReadableError: "devices.error_busy" }[kind] || "devices.error_other";
    $("#devices-error-text").dataset.i18n = key;
    $("#devices-error-text").textContent = t(key);
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
  $("#ready").addEventListener("click", enterWaiting);
  $("#leave").addEventListener("click", () => leaveRoom("left", true));
  $("#patient-hang-up").addEventListener("click", () => leaveRoom("left", true));
  $("#patient-mic").addEventListener("click", (e) => toggleTrack(e.currentTarget, "audio", "call.mute", "call.unmute"));
  $("#patient-camera").addEventListener("click", (e) =>
    toggleTrack(e.currentTarget, "video", "call.camera_off", "call.camera_on"),
  );
  // Back through the code step: the access code is asked again.
  $("#rejoin").addEventListener("click", () => location.reload());
}

// -- waiting room

/** Leave the room (or report that it is over): camera off, back to the waiting screen. */
function leaveRoom(state, canRejoin) {
  if (session) session.leave();
  session = null;
  check.stopTracks();
  $("#waiting-self").srcObject = null;
  $("#patient-self").srcObject = null;
  $("#patient-remote").srcObject = null;
  $(".self-view").hidden = true;
  connectionState = state;
  if (current === "call-step") show("waiting-step");
  renderConnectionState();
  $("#leave").hidden = true;
  $("#rejoin").hidden = !canRejoin;
  if (state === "ended" || state === "denied" || state === "cancelled") {
    // Over: the page no longer looks like a waiting room.
    const title = $("#waiting-title");
    title.dataset.i18n = state === "cancelled" ? "waiting.title_cancelled" : `call.state_${state}`;
    title.textContent = t(title.dataset.i18n);
    for (const node of $$("#waiting-step .calm-pulse, #waiting-step .tips, #waiting-doctor, #waiting-since")) {
      node.hidden = true;
    }
    focusHeading($("#waiting-step"));
  }
  if (canRejoin) $("#rejoin").focus();
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

function renderCallState() {
  const node = $("#patient-call-status");
  node.dataset.state = callState;
  node.textContent = callState === "in_call" ? "" : t(`call.state_${callState}`);
  const badge = $("#patient-encryption");
  badge.hidden = !cipher;
  badge.textContent = cipher ? t("call.encrypted", { cipher }) : "";
}

function onRoomState(state, details = {}) {
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
    if (current !== "call-step") {
      $("#patient-self").srcObject = check.stream;
      show("call-step");
    }
    renderCallState();
    return;
  }
  if (current === "call-step" && state === "reconnecting") {
    callState = state;
    renderCallState();
    return;
  }
  if (current === "call-step" && state === "waiting") show("waiting-step");
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
  waitingSince = Date.now();
  $("#waiting-self").srcObject = check.stream;
  renderAppointment();
  show("waiting-step");
  setInterval(renderWaitingSince, 30000);
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
  });
  try {
    session = await enterWaitingRoom({
      consultation,
      getRoomToken,
      media: {
        stream: check.stream,
        cameraId: check.currentDeviceId("video"),
        micId: check.currentDeviceId("audio"),
        speakerId: $("#speaker-select").hidden ? "" : $("#speaker-select").value,
      },
      remoteVideo: $("#patient-remote"),
      onState: onRoomState,
      onPeer: (pc) => features.onPeer(pc),
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
    if (current === "devices-step") renderDeviceStatus();
    if (current === "waiting-step") renderConnectionState();
    if (current === "call-step") renderCallState();
  });
  inspect();
}

start();
