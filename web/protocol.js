// Signaling protocol client, version 1 (see docs/protocol.md, which this file follows).
//
//   import { SignalingClient } from "/static/protocol.js";   // or wherever it is served
//   const client = new SignalingClient();
//   client.addEventListener("welcome", (e) => console.log(e.detail.ice_servers));
//   client.addEventListener("offer", async (e) => { ... e.detail.sdp ... });
//   client.addEventListener("closed", (e) => console.log(e.detail.code, e.detail.reason));
//   await client.join(roomToken);   // resolves with the welcome message
//
// Every server message is dispatched as a CustomEvent named after its type ("welcome",
// "lobby", "waiting", "admitted", "denied", "peer_joined", "peer_left", "offer", "answer",
// "candidate", "end_of_candidates", "ended", "pong", "error", "recording_state",
// "recording_answer", "staff_message") with the message as `detail`;
// "message" is dispatched for every message, "closed" once when the socket closes.
// Unknown server message types are dispatched too and otherwise ignored (forward compatible).

export const PROTOCOL_VERSION = 1;

/** Close codes of the protocol and what they mean for a client. */
export const CloseCode = Object.freeze({
  NORMAL: 1000, // after hang_up
  GOING_AWAY: 1001, // server shutdown: resume after a moment
  BINARY_REFUSED: 1003,
  ABNORMAL: 1006, // no close frame: network loss, or dropped by the server
  TOO_LARGE: 1009,
  REPLACED: 4000, // a newer connection took this seat (another tab, a reload)
  DENIED: 4003, // the doctor turned the patient away
  PROTOCOL_ERROR: 4400, // malformed first message, not a join, unsupported version
  TOKEN_REFUSED: 4401, // invalid, expired or replayed token; unknown resume secret
  FORBIDDEN: 4403,
  NOT_FOUND: 4404,
  JOIN_TIMEOUT: 4408,
  CONSULTATION_OVER: 4410, // ended or cancelled
  RATE_LIMITED: 4429,
});

/** Close codes after which reconnecting (resume) makes sense. */
const RESUMABLE = new Set([CloseCode.GOING_AWAY, CloseCode.ABNORMAL]);

/** The URL of the signaling endpoint on the page's own origin. */
export function signalingUrl(location = window.location) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}

export class SignalingError extends Error {
  constructor(code, message, ref, at) {
    super(message);
    this.name = "SignalingError";
    this.code = code;
    this.ref = ref ?? null;
    this.at = at ?? null;
  }
}

export class SignalingClient extends EventTarget {
  /**
   * @param {object} [options]
   * @param {string} [options.url] the /ws URL (default: this page's origin)
   * @param {typeof WebSocket} [options.WebSocketImpl] for tests outside a browser
   */
  constructor({ url = undefined, WebSocketImpl = globalThis.WebSocket } = {}) {
    super();
    this.url = url ?? signalingUrl();
    this.WebSocketImpl = WebSocketImpl;
    this.socket = null;
    /** The last welcome message (role, room, state, ice_servers, ...). */
    this.welcome = null;
    this.closeCode = null;
    this._resume = null;
    this._pingId = 0;
  }

  get role() {
    return this.welcome?.role ?? null;
  }

  get iceServers() {
    return this.welcome?.ice_servers ?? [];
  }

  /** True when the last close allows taking the seat back with resume(). */
  get canResume() {
    return this._resume !== null && RESUMABLE.has(this.closeCode);
  }

  /** Open a socket and join with a room token; resolves with the welcome message. */
  join(token) {
    return this._open({ type: "join", v: PROTOCOL_VERSION, token });
  }

  /** Take the seat back after a dropped connection (within resume_grace_seconds). */
  resume() {
    if (this._resume === null) {
      return Promise.reject(new SignalingError("token_invalid", "Nothing to resume."));
    }
    return this._open({ type: "resume", v: PROTOCOL_VERSION, resume: this._resume });
  }

  // -- typed send helpers

  admit() {
    this._send({ type: "admit" });
  }

  deny() {
    this._send({ type: "deny" });
  }

  /** @param {RTCSessionDescriptionInit} description @param {boolean} [iceRestart] */
  offer(description, iceRestart = false) {
    const message = { type: "offer", sdp: description.sdp };
    if (iceRestart) message.ice_restart = true;
    this._send(message);
  }

  /** @param {RTCSessionDescriptionInit} description */
  answer(description) {
    this._send({ type: "answer", sdp: description.sdp });
  }

  /**
   * A trickled candidate (from RTCPeerConnection "icecandidate"); a null or empty candidate
   * becomes end_of_candidates.
   * @param {RTCIceCandidate | RTCIceCandidateInit | null} candidate
   */
  candidate(candidate) {
    if (!candidate || !candidate.candidate) {
      this._send({ type: "end_of_candidates" });
      return;
    }
    this._send({
      type: "candidate",
      candidate: candidate.candidate.replace(/^a=/, ""),
      sdp_mid: candidate.sdpMid ?? null,
      sdp_mline_index: candidate.sdpMLineIndex ?? null,
    });
  }

  endOfCandidates() {
    this._send({ type: "end_of_candidates" });
  }

  /** Say whether this participant's microphone and camera send (in a call; relayed as is);
   * `missing`: the kinds ("audio", "video") it has no device for at all (left out when none). */
  mediaState(audio, video, missing = []) {
    const message = { type: "media_state", audio: Boolean(audio), video: Boolean(video) };
    if (missing.length) message.missing = [...missing];
    this._send(message);
  }

  /** Leave the room; with end=true (doctor only) the consultation ends for everyone. */
  /** Doctor: a chat file went through the call (its size only; the server counts it). */
  fileExchanged(size) {
    this._send({ type: "file_exchanged", size });
  }

  hangUp(end = false) {
    this._resume = null;
    this._send(end ? { type: "hang_up", end: true } : { type: "hang_up" });
  }

  /** Doctor: ask both participants to consent to a recording (answered by recording_state). */
  requestRecording() {
    this._send({ type: "recording_request" });
  }

  /** This participant's own answer; it never counts for the other participant. */
  consentToRecording(granted) {
    this._send({ type: "recording_consent", granted: Boolean(granted) });
  }

  /** Withdraw consent at any time: a running recording stops within a second. */
  withdrawRecordingConsent() {
    this._send({ type: "recording_withdraw" });
  }

  /** Stop a running recording, consent kept (either participant); stops within a second. */
  stopRecording() {
    this._send({ type: "recording_stop" });
  }

  /**
   * Send a complete (ICE gathering finished) send-only offer to the server's recording peer;
   * the server answers with recording_answer.
   */
  recordingOffer(description) {
    this._send({ type: "recording_offer", sdp: description.sdp });
  }

  ping() {
    this._pingId += 1;
    this._send({ type: "ping", id: this._pingId });
    return this._pingId;
  }

  close() {
    this._resume = null;
    if (this.socket) this.socket.close(1000);
  }

  // -- plumbing

  _open(first) {
    if (this.socket && this.socket.readyState <= 1) {
      return Promise.reject(new SignalingError("already_joined", "Already connected."));
    }
    return new Promise((resolve, reject) => {
      const socket = new this.WebSocketImpl(this.url);
      this.socket = socket;
      this.closeCode = null;
      let welcomed = false;
      socket.addEventListener("open", () => socket.send(JSON.stringify(first)));
      socket.addEventListener("message", (event) => {
        let message;
        try {
          message = JSON.parse(event.data);
        } catch {
          return; // the server only sends JSON; ignore anything else
        }
        if (message === null || typeof message.type !== "string") return;
        if (message.type === "welcome") {
          this.welcome = message;
          this._resume = message.resume ?? null;
          if (!welcomed) {
            welcomed = true;
            resolve(message);
          }
        } else if (message.type === "error" && !welcomed) {
          reject(new SignalingError(message.code, message.message, message.ref, message.at));
        }
        this._emit(message.type, message);
        this._emit("message", message);
      });
      socket.addEventListener("close", (event) => {
        if (this.socket === socket) this.socket = null;
        this.closeCode = event.code;
        if (!RESUMABLE.has(event.code)) this._resume = null;
        if (!welcomed) {
          reject(new SignalingError("closed", event.reason || `closed with ${event.code}`));
        }
        this._emit("closed", { code: event.code, reason: event.reason, resumable: this.canResume });
      });
    });
  }

  _send(message) {
    if (!this.socket || this.socket.readyState !== 1) {
      throw new SignalingError("not_joined", "The signaling connection is not open.");
    }
    this.socket.send(JSON.stringify(message));
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
