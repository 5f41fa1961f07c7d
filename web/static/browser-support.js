// What this browser can do for a consultation, checked before anything is asked of the
// patient: a secure context, RTCPeerConnection, getUserMedia, and the codecs the call (Opus
// with VP8 or H.264) and the recording (VP8 and Opus, as the recorder muxes them into WebM)
// need. Feature checks only, no user-agent sniffing: Safari, Firefox and Chromium-based
// browsers pass; a WebKit without WebRTC (or an old browser) is told so at once.

/** Video and audio codecs this browser can send, by MIME type ("video/VP8"); null when the
 * browser cannot tell (RTCRtpSender.getCapabilities is missing: nothing is ruled out). */
function sendableCodecs() {
  const sender = typeof RTCRtpSender !== "undefined" ? RTCRtpSender : null;
  if (!sender || typeof sender.getCapabilities !== "function") return null;
  const codecs = new Set();
  for (const kind of ["audio", "video"]) {
    const capabilities = sender.getCapabilities(kind);
    for (const codec of (capabilities && capabilities.codecs) || []) codecs.add(codec.mimeType.toLowerCase());
  }
  return codecs;
}

/** The names of what a call needs and this browser lacks (empty: it can take part). */
export function missingForCall() {
  const missing = [];
  if (!window.isSecureContext) missing.push("secure-context");
  if (typeof RTCPeerConnection === "undefined") missing.push("webrtc");
  if (!(navigator.mediaDevices && typeof navigator.mediaDevices.getUserMedia === "function")) missing.push("camera");
  const codecs = missing.includes("webrtc") ? null : sendableCodecs();
  if (codecs && !(codecs.has("audio/opus") && (codecs.has("video/vp8") || codecs.has("video/h264")))) {
    missing.push("codecs");
  }
  return missing;
}

/** Whether the recording can take this browser's media (it keeps VP8 and Opus as sent). */
export function canBeRecorded() {
  const codecs = sendableCodecs();
  return codecs === null || (codecs.has("video/vp8") && codecs.has("audio/opus"));
}
