// INTEGRATION POINT (WebSocket work): the patient's waiting-room connection.
//
// join.js calls enterWaitingRoom() once the patient has entered the code, checked their
// devices and pressed "ready". It shows the calm waiting screen and reports every state the
// function passes to onState. Replace the body below with the WebSocket client
// (web/protocol.js): open /ws, send {type: "join", v, token: await getRoomToken()},
// then report the room's states, and on admission start the call with `media`.
//
// Arguments:
//   consultation  {consultation_id, doctor_name, scheduled_start, scheduled_end}
//   getRoomToken  async () => string: a fresh single-use room token (POST /api/room-tokens,
//                 patient cookie + CSRF); the one from the redeem answer may have expired.
//   media         {stream, cameraId, micId, speakerId}: the devices the patient checked.
//   onState       (state, details?) => void, state one of:
//                   "connecting" | "waiting" | "admitted" | "denied" | "ended" |
//                   "reconnecting" | "unavailable" | "error" (details.code: an error code)
// Returns {leave(): void}.
export async function enterWaitingRoom({ consultation, getRoomToken, media, onState }) {
  void consultation;
  void getRoomToken;
  void media;
  // Not connected yet: say so honestly rather than pretend the doctor was told.
  onState("unavailable");
  return { leave() {} };
}
