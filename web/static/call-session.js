// INTEGRATION POINT (WebSocket work): the live call of /call/<consultation_id>.
//
// call.js shows the call screen, starts the local camera and calls startCall(). Replace the
// body with the WebSocket + RTCPeerConnection client (web/protocol.js): fetch a room token
// with getRoomToken(), join, admit the waiting patient (doctor), exchange offer/answer/ICE,
// and attach the remote stream to `remoteVideo`.
//
//   consultationId  the id from the URL
//   role            "doctor" (this page is reached from the dashboard)
//   getRoomToken    async () => string (POST /api/room-tokens with the session's CSRF token)
//   localStream     MediaStream from the camera and microphone (may be null)
//   remoteVideo     the <video> element for the other participant
//   onState         (state, details?) => void with state one of "connecting" | "waiting" |
//                   "in_call" | "reconnecting" | "ended" | "unavailable" | "error"
// Returns {hangUp(): void}.
export async function startCall({ consultationId, role, getRoomToken, localStream, remoteVideo, onState }) {
  void consultationId;
  void role;
  void getRoomToken;
  void localStream;
  void remoteVideo;
  onState("unavailable");
  return { hangUp() {} };
}
