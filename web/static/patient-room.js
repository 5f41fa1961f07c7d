// The patient's waiting room and call over the WebSocket (web/protocol.js, through the
// RoomSession of call-session.js).
//
// join.js calls enterWaitingRoom() once the patient has entered the code, checked their
// devices and pressed "ready".
//
// Arguments:
//   consultation  {consultation_id, doctor_name, scheduled_start, scheduled_end}
//   getRoomToken  async () => string: a fresh single-use room token (POST /api/room-tokens,
//                 patient cookie + CSRF); the one from the redeem answer may have expired.
//   media         {stream, cameraId, micId, speakerId}: the devices the patient checked.
//   remoteVideo   the <video> that shows the doctor once admitted
//   onState       (state, details?) => void, state one of:
//                   "connecting" | "waiting" | "admitted" | "in_call" | "denied" | "ended" |
//                   "reconnecting" | "error" (details.code: an error code)
//   onEncrypted   (cipher | null) => void: the SRTP cipher once DTLS is connected
//   onPeer        (RTCPeerConnection | null) => void: each fresh connection (call-features.js)
//   onSignaling   (SignalingClient) => void: the room's socket before it joins (call-features.js)
//   onStaffMessage (message) => void: a staff_message (docs/protocol.md) while the patient
//                 waits: what the doctor or the secretariat wrote (waiting-messages.js)
// Returns {leave(): void}.
import { RoomSession } from "./call-session.js";
import { attachRecording } from "./recording-room.js";

export async function enterWaitingRoom({ consultation, getRoomToken, media, remoteVideo, onState, onEncrypted, onPeer, onSignaling, onStaffMessage }) {
  void consultation;
  const session = new RoomSession({
    role: "patient",
    getRoomToken,
    localStream: media.stream || null,
    remoteVideo: remoteVideo || null,
    onState,
    onEncrypted,
    onPeer,
    onSignaling,
  });
  if (remoteVideo && media.speakerId && typeof remoteVideo.setSinkId === "function") {
    remoteVideo.setSinkId(media.speakerId).catch(() => {});
  }
  if (remoteVideo) attachRecording(session, remoteVideo.closest(".call-stage"));
  if (onStaffMessage) session.client.addEventListener("staff_message", (e) => onStaffMessage(e.detail));
  await session.start();
  return {
    leave() {
      session.hangUp(false);
    },
  };
}
