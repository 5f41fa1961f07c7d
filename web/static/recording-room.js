// Recording in the live room, for both pages: follows the server's recording_state messages
// (docs/protocol.md, "Recording") on a RoomSession's signaling client, shows them through
// RecordingView, and sends this participant's camera and microphone to the server's
// recording peer over a second, send-only RTCPeerConnection (RecordingPeer) while the server
// records. The server alone decides: this page only answers for its own participant.
//
//   attachRecording(session, stage)   // session: a RoomSession; stage: the call's <main>/<section>
import { RecordingView } from "./recording-consent.js";
import { RecordingPeer } from "./recording-peer.js";

// Why a recording went back to idle (recording_state reason) -> what both are told.
const STOPPED = {
  consent_withdrawn: "recording.stopped",
  stopped_by_doctor: "recording.stopped",
  stopped_by_patient: "recording.stopped",
  participant_left: "recording.stopped_participant_left",
  cancelled: "recording.stopped",
  call_ended: "recording.stopped",
};
// Reasons that are failures: said as errors (role=alert), not as news.
const FAILED = {
  write_error: "recording.failed_write",
  recorder_exited: "recording.failed_recorder",
  recorder_unavailable: "recording.failed_unavailable",
  io_error: "recording.failed_write",
  key_error: "recording.failed_recorder",
  internal: "recording.failed_recorder",
};

export class RoomRecording {
  /**
   * @param {import("./call-session.js").RoomSession} session
   * @param {HTMLElement} stage the call's stage (.call-view and .call-controls inside)
   */
  constructor(session, stage) {
    this.session = session;
    this.client = session.client;
    this.role = session.role;
    /** "idle" | "asked" | "answered" | "recording" (as far as this page knows) */
    this.state = "idle";
    this.peerPresent = false;
    this.peer = null;
    this.view = new RecordingView(stage, {
      role: this.role,
      onRecord: () => this._request(),
      // The doctor stops; for the patient the same button withdraws consent, which is what
      // the consent prompt promised them.
      onStop: () => (this.role === "patient" ? this._withdraw() : this._stop()),
    });
    this._wire();
    this._render();
  }

  get available() {
    return Boolean(this.client.welcome && this.client.welcome.recording_available);
  }

  get retentionDays() {
    return (this.client.welcome && this.client.welcome.recording_retention_days) || 0;
  }

  /** Stop following this session and take the view off the page. */
  detach() {
    this.listening.abort();
    this._closePeer();
    this.view.remove();
  }

  _wire() {
    this.listening = new AbortController();
    const { signal } = this.listening;
    const on = (type, handler) => this.client.addEventListener(type, (e) => handler(e.detail), { signal });
    on("welcome", () => {
      // A new connection: whatever ran on the old one was stopped by the server.
      this.peerPresent = false;
      this._reset(this.state === "recording" ? "recording.stopped_participant_left" : null);
    });
    on("peer_joined", () => {
      this.peerPresent = true;
      this._render();
    });
    on("peer_left", () => {
      this.peerPresent = false;
      // The server drops a pending request (or stops the recording) when a participant goes.
      if (this.state === "asked" || this.state === "answered") this._reset("recording.request_cancelled");
      else this._render();
    });
    for (const type of ["ended", "denied", "closed"]) {
      on(type, () => {
        this.peerPresent = false;
        this._reset(this.state === "recording" ? "recording.stopped" : null);
      });
    }
    on("recording_state", (m) => this._onState(m));
    on("recording_answer", (m) => this._onAnswer(m));
    on("error", (m) => {
      if (typeof m.ref === "string" && m.ref.startsWith("recording_")) this._onError(m);
    });
  }

  _onState(message) {
    if (message.state === "asked") {
      this.state = "asked";
      this.view.fail(null);
      this.view.say(this.role === "doctor" ? "recording.asked_doctor" : "recording.asked_patient", { sticky: true });
      this._render();
      this._prompt();
    } else if (message.state === "recording") {
      this.view.closePrompt();
      this.state = "recording";
      this.view.say("recording.started");
      this._render();
      this._sendMedia();
    } else if (message.state === "idle") {
      const reason = message.reason || "";
      const wasRecording = this.state === "recording";
      this._reset(null);
      if (FAILED[reason]) {
        this.view.say(null);
        this.view.fail(FAILED[reason]);
      } else if (reason.startsWith("declined_by_")) {
        const who = reason.slice("declined_by_".length);
        if (who === this.role) this.view.say("recording.declined_by_you");
        else this.view.say(who === "doctor" ? "recording.declined_by_doctor" : "recording.declined_by_patient");
      } else if (wasRecording) {
        this.view.say(STOPPED[reason] || "recording.stopped");
      } else {
        // A request that never started (a participant left or withdrew meanwhile): nothing
        // was recorded, so never say a recording stopped.
        this.view.say("recording.request_cancelled");
      }
    }
  }

  async _prompt() {
    const granted = await this.view.ask(this.retentionDays);
    if (granted === null || this.state !== "asked") return; // the request went away meanwhile
    this.state = "answered";
    this._send(() => this.client.consentToRecording(granted));
    if (granted) this.view.say("recording.waiting_other", { sticky: true });
    this._render();
  }

  async _sendMedia() {
    const stream = this.session.localStream;
    if (!stream || stream.getTracks().length === 0) {
      // Nothing to send (no camera or microphone): a recording without this side is not
      // what was agreed to, so stop it rather than record half the consultation.
      this.view.fail("recording.failed_no_media");
      this._stop();
      return;
    }
    this._closePeer();
    const peer = new RecordingPeer({
      stream,
      iceServers: this.client.iceServers,
      iceTransportPolicy: this.session.iceTransportPolicy || "all",
      onConnectionState: (state) => {
        if (state === "failed" && this.peer === peer) {
          this.view.fail("recording.failed_connection");
          this._stop();
        }
      },
    });
    this.peer = peer;
    try {
      const offer = await peer.offer();
      if (this.peer !== peer) return; // stopped while gathering
      this.client.recordingOffer(offer);
    } catch (error) {
      console.info("recording offer failed", error);
      if (this.peer === peer) {
        this.view.fail("recording.failed_connection");
        this._stop();
      }
    }
  }

  async _onAnswer(message) {
    if (!this.peer) return;
    try {
      await this.peer.accept(message.sdp);
    } catch (error) {
      console.info("recording answer refused", error);
      this.view.fail("recording.failed_connection");
      this._stop();
    }
  }

  _onError(message) {
    const known = {
      forbidden: "recording.error_forbidden",
      unavailable: "recording.failed_unavailable",
      consent_required: "recording.error_consent_required",
      invalid_sdp: "recording.failed_connection",
      insecure_sdp: "recording.failed_connection",
    };
    this.view.fail(known[message.code] || "recording.error_generic");
    if (message.ref === "recording_offer") {
      this._closePeer();
      if (this.state === "recording") this._stop();
    } else if (message.ref === "recording_request" && this.state === "idle") {
      this._render();
    }
  }

  _request() {
    this.view.fail(null);
    this.view.recordPending();
    this._send(() => this.client.requestRecording());
  }

  _withdraw() {
    this.view.stopPending();
    this._send(() => this.client.withdrawRecordingConsent());
  }

  /** A stop that is not a consent decision (the doctor's button, a failure on this page). */
  _stop() {
    this.view.stopPending();
    this._send(() => this.client.stopRecording());
  }

  _send(fn) {
    try {
      fn();
    } catch {
      // The socket is gone: its "closed" event resets everything.
    }
  }

  _reset(messageKey) {
    this.view.closePrompt();
    this._closePeer();
    this.state = "idle";
    if (messageKey) this.view.say(messageKey);
    this._render();
  }

  _closePeer() {
    if (this.peer) {
      this.peer.close();
      this.peer = null;
    }
  }

  _render() {
    this.view.setRecording(this.state === "recording");
    this.view.showRecord(this.available && this.peerPresent && this.state === "idle");
  }
}

const attached = new WeakMap(); // stage -> RoomRecording

/** Follow recording on a RoomSession's connection, inside the call's stage (one per stage:
 * a new session on the same page replaces the previous one's controls). */
export function attachRecording(session, stage) {
  const previous = attached.get(stage);
  if (previous) previous.detach();
  const recording = new RoomRecording(session, stage);
  attached.set(stage, recording);
  return recording;
}
