// The live room: one WebSocket (web/protocol.js) and, once both participants are in the call,
// one RTCPeerConnection. Used by the doctor's /call/<id> page (startCall) and by the
// patient's waiting room (patient-room.js, through RoomSession).
//
// Negotiation: the doctor makes the offer after each peer_joined; the patient answers.
// A fresh RTCPeerConnection is made for each peer_joined (a rejoin or a resume), so no ICE
// state is carried over. Candidates trickle both ways; every signaling step runs in order
// on one promise chain so a candidate is never added before its description.
import { SignalingClient, CloseCode } from "../protocol.js";
import { fingerprintOf } from "./call-code.js";

const OVER_CODES = new Set([CloseCode.CONSULTATION_OVER]);
// ICE "disconnected" often heals by itself within a few seconds (a Wi-Fi hiccup): the doctor
// waits this long before restarting ICE, then this long again before starting afresh.
const ICE_RESTART_DELAY_MS = 2000;
const ICE_RESTART_GIVE_UP_MS = 8000;

export class RoomSession {
  /**
   * @param {object} options
   * @param {"doctor"|"patient"} options.role
   * @param {() => Promise<string>} options.getRoomToken
   * @param {MediaStream|null} options.localStream
   * @param {HTMLVideoElement|null} options.remoteVideo
   * @param {(state: string, details?: object) => void} options.onState
   *   "connecting" | "waiting" | "admitted" | "in_call" | "denied" | "ended" | "reconnecting" |
   *   "left" | "error" | "negotiation_failed" (a description step failed: the connection will
   *   not come up by itself; details.step names it)
   * @param {(waiting: {name: string, since: number} | null,
   *   left: {reason: string, may_return: boolean} | null) => void} [options.onLobby] doctor;
   *   left: the patient's seat was just freed, why and whether their link lets them back
   * @param {(cipher: string | null) => void} [options.onEncrypted]
   * @param {(pc: RTCPeerConnection | null) => void} [options.onPeer] each fresh connection,
   *   before its offer or answer (call-features.js adds its data channel), then null once closed
   * @param {(client: SignalingClient) => void} [options.onSignaling] the room's socket, before
   *   it joins, for what listens to messages of its own (call-peer-state.js: media_state)
   */
  constructor({ role, getRoomToken, localStream, remoteVideo, onState, onLobby, onEncrypted, onPeer, onSignaling }) {
    this.role = role;
    this.getRoomToken = getRoomToken;
    this.localStream = localStream;
    this.remoteVideo = remoteVideo;
    this.onState = onState;
    this.onLobby = onLobby || (() => {});
    this.onEncrypted = onEncrypted || (() => {});
    this.onPeer = onPeer || (() => {});
    this.iceRestartTimer = null;
    this.client = new SignalingClient();
    if (onSignaling) onSignaling(this.client);
    this.pc = null;
    this.chain = Promise.resolve();
    this.finished = false;
    this.statsTimer = null;
    this.retries = 0;
    // The code of the error message just received, if the last message was one: a close
    // (4410) right after it says why the room is over for this page.
    this.lastError = null;
    this._wire();
  }

  async start() {
    this.onState("connecting");
    try {
      const [token, policy] = await Promise.all([this.getRoomToken(), iceTransportPolicy()]);
      this.iceTransportPolicy = policy;
      this._welcomed(await this.client.join(token));
    } catch (error) {
      this._failed(error);
    }
    return this;
  }

  admit() {
    this._safe(() => this.client.admit());
  }

  deny() {
    this._safe(() => this.client.deny());
  }

  /** The camera and microphone came (back) after the connection was made: the doctor starts a
   * fresh connection that carries them (the patient answers whatever offer comes). */
  setLocalStream(stream) {
    this.localStream = stream;
    if (this.role === "doctor" && this.pc && !this.finished) this._queue(() => this._peerJoined(), "offer");
  }

  /** Leave; end=true (doctor) ends the consultation for both. */
  fileExchanged(size) {
    this._safe(() => this.client.fileExchanged(size));
  }

  hangUp(end = false) {
    this.finished = true;
    this._closePeer();
    if (!this.client.socket) return Promise.resolve();
    // Resolves once the server closed the socket (so the message is not lost to a page
    // change), or after a short while.
    const closed = new Promise((resolve) => {
      this.client.addEventListener("closed", () => resolve(), { once: true });
      setTimeout(resolve, 2000);
    });
    this._safe(() => this.client.hangUp(end));
    return closed;
  }

  // -- internals

  _safe(fn) {
    try {
      fn();
    } catch {
      // the socket is gone: the closed handler reports it
    }
  }

  _queue(step, what) {
    this.chain = this.chain.then(step).catch((error) => this._stepFailed(what, error));
  }

  // Said where people and tests look: the console (error, or warning for a candidate), and the
  // page through onState for a description, since the call cannot connect without it.
  _stepFailed(what, error) {
    if (what === "candidate") {
      // One refused candidate leaves the others: ICE fails (and says so) only if all do.
      console.warn(`signaling: a candidate was refused`, error);
      return;
    }
    console.error(`signaling: the ${what} step failed`, error);
    if (!this.finished) this.onState("negotiation_failed", { step: what });
  }

  _welcomed(welcome) {
    this.retries = 0;
    if (welcome.state === "in_call" && this.role === "patient") this.onState("admitted");
    else if (welcome.state === "waiting") this.onState("waiting");
  }

  _failed(error) {
    if (this.finished) return;
    const code = error && error.code;
    if (code === "consultation_ended" || code === "consultation_cancelled" || code === "invite_superseded") {
      this.finished = true;
      this.onState("ended", { code });
    } else {
      this.onState("error", { code });
    }
  }

  _wire() {
    const on = (type, handler) => this.client.addEventListener(type, (e) => handler(e.detail));
    on("message", (m) => {
      this.lastError = m.type === "error" ? m.code || null : null;
    });
    on("waiting", () => this.onState("waiting"));
    on("lobby", (m) => this.onLobby(m.waiting || null, m.left || null));
    on("admitted", () => this.onState("admitted"));
    on("denied", () => {
      this.finished = true;
      this._closePeer();
      this.onState("denied");
    });
    on("ended", (m) => {
      this.finished = true;
      this._closePeer();
      this.onState("ended", { reason: m.reason });
    });
    on("peer_joined", () => this._queue(() => this._peerJoined(), "offer"));
    on("peer_left", () => {
      this._queue(async () => this._closePeer(), "close");
      if (!this.finished) this.onState(this.role === "doctor" ? "waiting" : "admitted");
    });
    on("offer", (m) => this._queue(() => this._offer(m), "answer"));
    on("answer", (m) => this._queue(() => this._answer(m), "answer"));
    on("candidate", (m) =>
      this._queue(async () => {
        if (!this.pc || !this.pc.remoteDescription) return;
        await this.pc.addIceCandidate({ candidate: m.candidate, sdpMid: m.sdp_mid, sdpMLineIndex: m.sdp_mline_index });
      }, "candidate"),
    );
    on("end_of_candidates", () =>
      this._queue(async () => {
        if (this.pc && this.pc.remoteDescription) await this.pc.addIceCandidate();
      }, "candidate"),
    );
    on("closed", (detail) => this._closed(detail));
  }

  async _closed({ code, resumable }) {
    if (this.finished) return;
    if (code === CloseCode.DENIED) {
      this.finished = true;
      this.onState("denied");
      return;
    }
    if (OVER_CODES.has(code)) {
      this.finished = true;
      this._closePeer();
      // e.g. invite_superseded: the doctor issued a new link, so the page says to use it.
      this.onState("ended", this.lastError ? { code: this.lastError } : {});
      return;
    }
    if (code === CloseCode.REPLACED) {
      // Another tab took this seat: stop here rather than fight over it.
      this.finished = true;
      this._closePeer();
      this.onState("error", { code: "replaced" });
      return;
    }
    this.onState("reconnecting");
    this.retries += 1;
    if (this.retries > 6) {
      this.onState("error", { code: "unreachable" });
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(500 * 2 ** (this.retries - 1), 8000)));
    if (this.finished) return;
    try {
      const welcome = resumable ? await this.client.resume() : await this.client.join(await this.getRoomToken());
      this._welcomed(welcome);
    } catch (error) {
      if (error && error.code === "closed") return; // the closed event retries
      if (error && error.code === "token_invalid" && resumable) {
        // The grace period is over: a fresh join (the patient goes back to the waiting room).
        try {
          this._welcomed(await this.client.join(await this.getRoomToken()));
          return;
        } catch (again) {
          if (again && again.code === "closed") return;
          this._failed(again);
          return;
        }
      }
      this._failed(error);
    }
  }

  _newPeer() {
    this._closePeer();
    const pc = new RTCPeerConnection({ iceServers: this.client.iceServers, iceTransportPolicy: this.iceTransportPolicy || "all" });
    this.pc = pc;
    if (this.localStream) {
      for (const track of this.localStream.getTracks()) pc.addTrack(track, this.localStream);
    }
    if (this.role === "doctor") {
      // The offer decides which media the call has: without a camera (or microphone) of the
      // doctor's own, still receive the patient's.
      for (const kind of ["audio", "video"]) {
        const own = this.localStream ? this.localStream.getTracks().some((track) => track.kind === kind) : false;
        if (!own) pc.addTransceiver(kind, { direction: "recvonly" });
      }
    }
    this.onPeer(pc);
    pc.addEventListener("icecandidate", (e) => {
      if (this.pc === pc) this._safe(() => this.client.candidate(e.candidate));
    });
    pc.addEventListener("track", (e) => {
      if (!this.remoteVideo) return;
      const stream = e.streams[0] || new MediaStream([e.track]);
      if (this.remoteVideo.srcObject !== stream) this.remoteVideo.srcObject = stream;
    });
    pc.addEventListener("connectionstatechange", () => {
      if (this.pc !== pc) return;
      if (pc.connectionState === "connected") {
        this.onState("in_call");
        this._watchEncryption(pc);
      } else {
        this._watchPath(pc);
      }
    });
    pc.addEventListener("iceconnectionstatechange", () => this._watchPath(pc));
    return pc;
  }

  /** "reconnecting…" while the media path is broken, "in_call" once it is back. */
  _watchPath(pc) {
    if (this.pc !== pc || this.finished) return;
    const ice = pc.iceConnectionState;
    const failed = ice === "failed" || pc.connectionState === "failed";
    if (failed || ice === "disconnected") {
      // The network path broke while both are still in the room.
      this.onState("reconnecting");
      if (this.role === "doctor") this._restartIceLater(pc, failed ? 0 : ICE_RESTART_DELAY_MS);
    } else if ((ice === "connected" || ice === "completed") && pc.connectionState === "connected") {
      this.onState("in_call");
    }
  }

  /**
   * The doctor (the offerer) restarts ICE on the same connection; if that did not bring it
   * back (the other side lost its connection object, say), a fresh connection and offer.
   */
  _restartIceLater(pc, delay, attempt = 1) {
    if (this.iceRestartTimer) return;
    this.iceRestartTimer = setTimeout(() => {
      this.iceRestartTimer = null;
      if (this.pc !== pc || this.finished || this.client.socket === null) return;
      if (pc.connectionState === "connected") return; // back by itself, or the restart did it
      if (attempt > 1) {
        this._queue(() => this._peerJoined(), "offer");
        return;
      }
      this._queue(async () => {
        if (this.pc !== pc) return;
        await pc.setLocalDescription(await pc.createOffer({ iceRestart: true }));
        this.client.offer(pc.localDescription, true);
      }, "offer");
      this._restartIceLater(pc, ICE_RESTART_GIVE_UP_MS, attempt + 1);
    }, delay);
  }

  _closePeer() {
    clearInterval(this.statsTimer);
    this.statsTimer = null;
    clearTimeout(this.iceRestartTimer);
    this.iceRestartTimer = null;
    if (this.pc) {
      this.pc.close();
      this.pc = null;
      this.onPeer(null);
    }
    if (this.remoteVideo) this.remoteVideo.srcObject = null;
    this.onEncrypted(null);
  }

  async _peerJoined() {
    const pc = this._newPeer();
    if (this.role !== "doctor") return; // the doctor offers; the patient waits for it
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    this.client.offer(pc.localDescription);
  }

  async _answer(message) {
    const pc = this.pc;
    if (!pc) return;
    const before = pc.remoteDescription ? fingerprintOf(pc.remoteDescription.sdp) : null;
    let fresh = false;
    try {
      await pc.setRemoteDescription({ type: "answer", sdp: message.sdp });
      fresh = before !== null && fingerprintOf(message.sdp) !== before;
    } catch (error) {
      if (before === null) throw error;
      fresh = true;
    }
    // An answer to an ICE restart from another certificate: the other side lost its connection
    // and answered from a new one, whose DTLS session and data channel cannot continue ours.
    if (fresh && this.pc === pc) await this._peerJoined();
  }

  async _offer(message) {
    // The patient is the polite peer: it never offers by itself, so an offer is answered.
    // An ICE restart keeps the connection (and its certificates); any other offer after one
    // was answered is a fresh start by the doctor, so it gets a fresh connection too.
    const current = this.pc && this.pc.signalingState === "stable" ? this.pc : null;
    const reusable = current && (message.ice_restart || !current.remoteDescription);
    const pc = reusable ? current : this._newPeer();
    await pc.setRemoteDescription({ type: "offer", sdp: message.sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    this.client.answer(pc.localDescription);
  }

  _watchEncryption(pc) {
    clearInterval(this.statsTimer);
    const check = async () => {
      if (this.pc !== pc) return;
      const cipher = await encryptionOf(pc);
      this.onEncrypted(cipher);
    };
    check();
    this.statsTimer = setInterval(check, 2000);
  }
}

/** "relay" when the service sends media through its TURN server only (turn.relay_only), so
 * neither side learns the other's address; "all" otherwise. Fails rather than guess. */
async function iceTransportPolicy() {
  const response = await fetch("/api/ice-policy", { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!response.ok) {
    // Asked alongside the room token: its refusal (invite_superseded, consultation_cancelled…)
    // must say why as the token's would, whichever of the two answers first.
    const answer = await response.json().catch(() => null);
    const code = (answer && answer.error && answer.error.code) || "unavailable";
    throw Object.assign(new Error("ICE policy unavailable"), { code });
  }
  return (await response.json()).ice_transport_policy;
}

/** The SRTP cipher of a connected DTLS transport, or null while there is none. */
export async function encryptionOf(pc) {
  const stats = await pc.getStats();
  for (const report of stats.values()) {
    if (report.type === "transport" && report.dtlsState === "connected" && report.srtpCipher) {
      return report.srtpCipher;
    }
  }
  return null;
}

/**
 * The doctor's call on /call/<consultation_id>: joins as doctor, reports the waiting room
 * through onLobby, and runs the call once the patient is admitted.
 * Returns the RoomSession ({admit(), deny(), hangUp(end)}).
 */
export async function startCall(options) {
  const session = new RoomSession({ role: "doctor", ...options });
  return session.start();
}
