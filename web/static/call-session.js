// The live room: one WebSocket (web/protocol.js) and, once both participants are in the call,
// one RTCPeerConnection. Used by the doctor's /call/<id> page (startCall) and by the
// patient's waiting room (patient-room.js, through RoomSession).
//
// Negotiation: the doctor makes the offer after each peer_joined; the patient answers.
// A fresh RTCPeerConnection is made for each peer_joined (a rejoin or a resume), so no ICE
// state is carried over. Candidates trickle both ways; every signaling step runs in order
// on one promise chain so a candidate is never added before its description.
//
// Ready before the click (nothing of it leaves the page before admission): while a patient
// waits, the doctor's page makes its next connection and sets its offer, so ICE gathers
// meanwhile, and sends that offer right behind `admit` (the server handles a connection's
// messages in order, so it is relayed only once the patient is admitted; docs/protocol.md,
// "Offerer"). The waiting patient makes its connection (tracks, data channel) ahead too and
// answers with it. Left from "let in" to the first frame is one relay each way and the
// browsers' own work, as between two bare RTCPeerConnections.
import { SignalingClient, CloseCode } from "../protocol.js";
import { fingerprintOf } from "./call-code.js";
import { markStep } from "./call-timeline.js";

const OVER_CODES = new Set([CloseCode.CONSULTATION_OVER]);
// ICE "disconnected" often heals by itself within a few seconds (a Wi-Fi hiccup): the doctor
// waits this long before restarting ICE, then this long again before starting afresh.
const ICE_RESTART_DELAY_MS = 2000;
const ICE_RESTART_GIVE_UP_MS = 8000;
// A connection made ahead is made afresh after this long: its TURN allocation and host
// candidates were gathered with the welcome's credentials, and a long wait may outlive them.
const PREPARED_MAX_AGE_MS = 4 * 60 * 1000;
// Errors that say the doctor's admit (and so the offer sent behind it) was refused.
const ADMIT_REFUSALS = new Set(["peer_absent", "invalid_state"]);

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
    // The next connection, made ahead while the patient waits: {pc, ready, timer}, or null.
    this.prepared = null;
    // Doctor: the connection whose offer went out behind `admit`, until its peer_joined.
    this.offeredEarly = null;
    this.patientWaits = false;
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
    const prepared = this._takePrepared();
    try {
      this.client.admit();
    } catch {
      if (prepared) this._discard(prepared);
      return; // the socket is gone: the closed handler reports it
    }
    markStep("admit-sent");
    if (prepared) this._offerEarly(prepared.pc);
  }

  deny() {
    this._safe(() => this.client.deny());
  }

  /** The camera and microphone came (back) after the connection was made: the doctor starts a
   * fresh connection that carries them (the patient answers whatever offer comes). */
  setLocalStream(stream) {
    this.localStream = stream;
    if (this.prepared) {
      this._discard(this.prepared);
      this._prepare();
    }
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
    else if (welcome.state === "waiting") {
      this._prepare();
      this.onState("waiting");
    }
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
    on("waiting", () => {
      this._prepare();
      this.onState("waiting");
    });
    on("lobby", (m) => {
      this.patientWaits = Boolean(m.waiting);
      if (m.waiting && this.offeredEarly) this._admitRefused();
      if (m.waiting) this._prepare();
      else if (this.prepared) this._discard(this.prepared);
      this.onLobby(m.waiting || null, m.left || null);
    });
    on("error", (m) => {
      if (this.offeredEarly && ADMIT_REFUSALS.has(m.code)) this._admitRefused();
    });
    on("admitted", () => {
      markStep("admitted");
      this.onState("admitted");
    });
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
    on("peer_joined", () => {
      markStep("peer-joined");
      this._queue(() => this._peerJoined(), "offer");
    });
    on("peer_left", () => {
      this._queue(async () => this._closePeer(), "close");
      if (!this.finished) this.onState(this.role === "doctor" ? "waiting" : "admitted");
    });
    on("offer", (m) => {
      markStep("offer-received");
      this._queue(() => this._offer(m), "answer");
    });
    on("answer", (m) => {
      markStep("answer-received");
      this._queue(() => this._answer(m), "answer");
    });
    on("candidate", (m) => {
      markStep("candidate-received");
      this._queue(async () => {
        if (!this.pc || !this.pc.remoteDescription) return;
        await this.pc.addIceCandidate({ candidate: m.candidate, sdpMid: m.sdp_mid, sdpMLineIndex: m.sdp_mline_index });
      }, "candidate");
    });
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

  /** This call's connection: the one made ahead if there is one, else a fresh one. */
  _newPeer() {
    this._closePeer(true);
    const prepared = this._takePrepared();
    if (prepared) {
      this.pc = prepared.pc;
      return prepared.pc;
    }
    const pc = this._makePeer();
    this.pc = pc;
    return pc;
  }

  /** A connection with the local tracks, wired to this session: it acts (sends candidates,
   * reports its state) only once it is this.pc. */
  _makePeer() {
    const pc = new RTCPeerConnection({ iceServers: this.client.iceServers, iceTransportPolicy: this.iceTransportPolicy || "all" });
    markStep("pc-created");
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
      if (this.pc !== pc) return;
      this._safe(() => this.client.candidate(e.candidate));
      if (e.candidate && e.candidate.candidate) markStep("candidate-sent");
    });
    pc.addEventListener("track", (e) => {
      markStep("track");
      if (!this.remoteVideo) return;
      const stream = e.streams[0] || new MediaStream([e.track]);
      if (this.remoteVideo.srcObject !== stream) this.remoteVideo.srcObject = stream;
    });
    pc.addEventListener("connectionstatechange", () => {
      if (this.pc !== pc) return;
      if (pc.connectionState === "connected") {
        markStep("connected");
        this.onState("in_call");
        this._watchEncryption(pc);
      } else {
        this._watchPath(pc);
      }
    });
    pc.addEventListener("iceconnectionstatechange", () => {
      if (this.pc === pc && ["connected", "completed"].includes(pc.iceConnectionState)) markStep("ice-connected");
      this._watchPath(pc);
    });
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

  /**
   * While the patient waits and no call runs, make the next connection ahead: the doctor sets
   * its offer too (ICE gathers now rather than after the click). Nothing of it is sent before
   * admission. A failure here only costs the head start: the call makes its connection then.
   */
  _prepare() {
    if (this.finished || this.pc || this.prepared || this.offeredEarly) return;
    if (this.role === "doctor" && !this.patientWaits) return;
    const pc = this._makePeer();
    const prepared = { pc, ready: this.role !== "doctor", timer: null };
    this.prepared = prepared;
    if (this.role !== "doctor") return; // the answerer gathers nothing before the offer
    // Made afresh now and then: a long wait may outlive what it gathered.
    prepared.timer = setTimeout(() => {
      if (this.prepared !== prepared) return;
      this._discard(prepared);
      this._prepare();
    }, PREPARED_MAX_AGE_MS);
    this.chain = this.chain.then(async () => {
      if (this.prepared !== prepared) return;
      try {
        await pc.setLocalDescription(await pc.createOffer());
        markStep("offer-created");
        prepared.ready = true;
      } catch (error) {
        console.warn("signaling: the offer made ahead failed; the call makes its own", error);
        if (this.prepared === prepared) this._discard(prepared);
      }
    });
  }

  /** The connection made ahead, now this call's, if it is ready; else null (and it is gone). */
  _takePrepared() {
    const prepared = this.prepared;
    if (!prepared) return null;
    if (!prepared.ready) {
      this._discard(prepared);
      return null;
    }
    clearTimeout(prepared.timer);
    this.prepared = null;
    return prepared;
  }

  _discard(prepared) {
    clearTimeout(prepared.timer);
    if (this.prepared === prepared) this.prepared = null;
    prepared.pc.close();
    if (!this.pc) this.onPeer(null);
  }

  /** Doctor, right behind `admit`: the offer made ahead, with the candidates it holds. */
  _offerEarly(pc) {
    this._closePeer(true);
    this.pc = pc; // its features were attached when it was made
    this.offeredEarly = pc;
    this._safe(() => {
      this.client.offer(pc.localDescription);
      if (pc.iceGatheringState === "complete") this.client.endOfCandidates();
    });
    markStep("offer-sent");
  }

  /** The admit went unheard (nobody to let in any more): so did the offer behind it. */
  _admitRefused() {
    this.offeredEarly = null;
    this._closePeer();
    this._prepare();
  }

  /** Close the call's connection, and the one made ahead unless keepPrepared. */
  _closePeer(keepPrepared = false) {
    if (this.prepared && !keepPrepared) this._discard(this.prepared);
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
    if (this.offeredEarly && this.offeredEarly === this.pc) {
      this.offeredEarly = null; // its offer went out behind the admit
      return;
    }
    this.offeredEarly = null;
    const pc = this._newPeer();
    if (this.role !== "doctor") return; // the doctor offers; the patient waits for it
    const offer = await pc.createOffer();
    markStep("offer-created");
    await pc.setLocalDescription(offer);
    this.client.offer(pc.localDescription);
    markStep("offer-sent");
  }

  async _answer(message) {
    const pc = this.pc;
    if (!pc) return;
    const before = pc.remoteDescription ? fingerprintOf(pc.remoteDescription.sdp) : null;
    let fresh = false;
    try {
      await pc.setRemoteDescription({ type: "answer", sdp: message.sdp });
      markStep("answer-applied");
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
    const answer = await pc.createAnswer();
    markStep("answer-created");
    await pc.setLocalDescription(answer);
    this.client.answer(pc.localDescription);
    markStep("answer-sent");
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
