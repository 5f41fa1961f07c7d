// The call screen's shell: local camera, mute/camera toggles that act on the local tracks,
// leave. The connection itself is startCall() in call-session.js (WebSocket work).
import { initI18n, t } from "./i18n.js";
import { api, setCsrf } from "./api.js";
import { $ } from "./ui.js";
import { startCall } from "./call-session.js";

const consultationId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
let stream = null;
let session = null;
let state = "connecting";

function renderState() {
  $("#call-status").dataset.state = state;
  $("#call-status").textContent = t(`call.state_${state}`);
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
  document.addEventListener("langchange", renderState);
  try {
    const me = await api("/api/me");
    setCsrf(me.csrf_token);
    const consultation = await api(`/api/consultations/${encodeURIComponent(consultationId)}`);
    $("#call-title").textContent = consultation.patient_name;
  } catch (error) {
    if (error.code === "not_authenticated") return location.assign("/");
    state = "error";
    $("#call-status").textContent = error.userMessage;
    return;
  }
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
    $("#self-video").srcObject = stream;
  } catch {
    stream = null;
  }
  $("#toggle-mic").addEventListener("click", (e) => toggle(e.currentTarget, "audio", "call.mute", "call.unmute"));
  $("#toggle-camera").addEventListener("click", (e) => toggle(e.currentTarget, "video", "call.camera_off", "call.camera_on"));
  $("#hang-up").addEventListener("click", () => {
    if (session) session.hangUp();
    if (stream) for (const track of stream.getTracks()) track.stop();
    location.assign("/");
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
      renderState();
    },
  });
}

start();
