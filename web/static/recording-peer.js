// The send-only RTCPeerConnection to the server's recording peer (docs/protocol.md,
// "Recording"). It is a second connection beside the call's: the browser-to-browser call is
// never touched. The server wants one complete offer (no trickle), so the offer is sent only
// once ICE gathering is complete; the answer comes back as recording_answer.

// Gathering host candidates takes milliseconds; a STUN or TURN server that does not answer
// must not hold the recording back for long: send what was gathered by then.
const GATHERING_LIMIT_MS = 5000;
const TRACK_CHECK_MS = 1000;

export class RecordingPeer {
  /**
   * @param {object} options
   * @param {MediaStream} options.stream the camera and microphone the call sends
   * @param {RTCIceServer[]} options.iceServers the same servers as the call (welcome)
   * @param {RTCIceTransportPolicy} [options.iceTransportPolicy] the call's policy: "relay"
   *   under turn.relay_only, so no host address of this side reaches the recording peer either
   * @param {(state: RTCPeerConnectionState) => void} [options.onConnectionState]
   */
  constructor({ stream, iceServers, iceTransportPolicy = "all", onConnectionState }) {
    this.pc = new RTCPeerConnection({ iceServers, iceTransportPolicy });
    this.stream = stream;
    for (const track of stream.getTracks()) {
      // Send-only: the recording peer never sends media back.
      this.pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
    }
    if (onConnectionState) {
      this.pc.addEventListener("connectionstatechange", () => onConnectionState(this.pc.connectionState));
    }
    // A device switch during the call swaps the stream's tracks (call-devices.js) without any
    // event a page can hear (addtrack/removetrack are for changes the browser makes): follow it.
    this.trackTimer = setInterval(() => this._followStream(), TRACK_CHECK_MS);
  }

  /** The complete local offer (every candidate in it), ready for recording_offer. */
  async offer() {
    await this.pc.setLocalDescription(await this.pc.createOffer());
    await gatheringComplete(this.pc, GATHERING_LIMIT_MS);
    return this.pc.localDescription;
  }

  /** Apply the recording peer's answer (recording_answer). */
  async accept(sdp) {
    if (this.pc.signalingState === "closed") return;
    await this.pc.setRemoteDescription({ type: "answer", sdp });
  }

  close() {
    clearInterval(this.trackTimer);
    // Closing stops the senders only: the tracks stay live for the call.
    this.pc.close();
  }

  _followStream() {
    if (this.pc.signalingState === "closed") return;
    for (const sender of this.pc.getSenders()) {
      if (!sender.track) continue;
      const current = this.stream.getTracks().find((track) => track.kind === sender.track.kind);
      if (current && current !== sender.track) sender.replaceTrack(current).catch(() => {});
    }
  }
}

/** Resolves once pc's ICE gathering is complete, or after limitMs. */
export function gatheringComplete(pc, limitMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === "complete") done();
    };
    const timer = setTimeout(done, limitMs);
    pc.addEventListener("icegatheringstatechange", check);
  });
}
