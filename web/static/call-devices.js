// Switching camera, microphone and speaker during the call. The new track replaces the old
// one on the RTCRtpSender (replaceTrack: no renegotiation, the other side sees no gap in the
// signaling) and in the local stream, so the self view and any later RTCPeerConnection (a
// resume) use it too. The speaker is the remote video's audio output (setSinkId, where the
// browser has it).
import { t } from "./i18n.js";
import { el } from "./ui.js";

/** The sender of the kind ("audio" | "video") in a connection, even while its track is null. */
export function senderOf(pc, kind) {
  if (!pc || pc.connectionState === "closed") return null;
  const transceiver = pc.getTransceivers().find((tr) => tr.receiver.track && tr.receiver.track.kind === kind);
  return transceiver ? transceiver.sender : null;
}

export function speakerChoiceSupported() {
  return typeof HTMLMediaElement !== "undefined" && "setSinkId" in HTMLMediaElement.prototype;
}

const KINDS = { video: "videoinput", audio: "audioinput" };

/**
 * `elements`: {toggle, panel, camera, mic, speaker, speakerField, status} (selects for the three)
 * `getStream`: () => MediaStream | null, the local camera and microphone stream
 * `isSharingScreen`: () => boolean, true while the video sender carries a screen instead
 */
export class CallDevices {
  constructor({ elements, getStream, selfVideo, remoteVideo, isSharingScreen, onVideoTrack }) {
    this.ui = elements;
    this.getStream = getStream;
    this.selfVideo = selfVideo;
    this.remoteVideo = remoteVideo;
    this.isSharingScreen = isSharingScreen || (() => false);
    // (track) => void: a new camera track is in use (the self view mirrors only a front camera).
    this.onVideoTrack = onVideoTrack || (() => {});
    this.pc = null;
    this.ui.speakerField.hidden = !speakerChoiceSupported();
    this._wire();
  }

  attach(pc) {
    this.pc = pc;
  }

  relabel() {
    if (!this.ui.panel.hidden) this.refresh();
  }

  setPanelOpen(open) {
    this.ui.panel.hidden = !open;
    this.ui.toggle.setAttribute("aria-expanded", String(open));
    if (open) this.refresh().then(() => this.ui.camera.focus());
  }

  /** Fill the three lists, the devices in use selected. */
  async refresh() {
    const devices = await navigator.mediaDevices.enumerateDevices();
    const stream = this.getStream();
    const inUse = (kind) => {
      const track = stream && (kind === "video" ? stream.getVideoTracks()[0] : stream.getAudioTracks()[0]);
      return track ? track.getSettings().deviceId : "";
    };
    fill(this.ui.camera, devices.filter((d) => d.kind === KINDS.video), inUse("video"), "call.devices_camera_n");
    fill(this.ui.mic, devices.filter((d) => d.kind === KINDS.audio), inUse("audio"), "call.devices_mic_n");
    if (speakerChoiceSupported()) {
      const current = this.remoteVideo ? this.remoteVideo.sinkId : "";
      fill(this.ui.speaker, devices.filter((d) => d.kind === "audiooutput"), current, "call.devices_speaker_n");
    }
  }

  /** Use another camera ("video") or microphone ("audio") from now on. */
  async switchTo(kind, deviceId) {
    const constraints =
      kind === "video"
        ? { video: { deviceId: { exact: deviceId } } }
        : { audio: { deviceId: { exact: deviceId }, echoCancellation: true, noiseSuppression: true } };
    return this.replaceWith(kind, constraints);
  }

  /**
   * Open a new track of the kind with these getUserMedia constraints and send and show it
   * instead of the current one. Returns false (and says so) when no such track could open.
   */
  async replaceWith(kind, constraints) {
    const stream = this.getStream();
    if (!stream) return false;
    const old = kind === "video" ? stream.getVideoTracks()[0] : stream.getAudioTracks()[0];
    let fresh;
    try {
      fresh = (await navigator.mediaDevices.getUserMedia(constraints)).getTracks()[0];
    } catch {
      // Phones often open one camera at a time: free the old one and try once more.
      if (old) old.stop();
      try {
        fresh = (await navigator.mediaDevices.getUserMedia(constraints)).getTracks()[0];
      } catch {
        this.ui.status.textContent = t("call.devices_failed");
        return false;
      }
    }
    // Muted or camera off stays so on the new device.
    if (old) fresh.enabled = old.enabled;
    const sender = senderOf(this.pc, kind);
    if (sender && !(kind === "video" && this.isSharingScreen())) await sender.replaceTrack(fresh);
    if (old) {
      stream.removeTrack(old);
      old.stop();
    }
    stream.addTrack(fresh);
    if (kind === "video" && this.selfVideo) this.selfVideo.srcObject = stream;
    if (kind === "video") this.onVideoTrack(fresh);
    this.ui.status.textContent = "";
    return true;
  }

  async useSpeaker(deviceId) {
    if (!this.remoteVideo || !speakerChoiceSupported()) return;
    try {
      await this.remoteVideo.setSinkId(deviceId);
    } catch {
      this.ui.status.textContent = t("call.devices_failed");
    }
  }

  _wire() {
    const { toggle, panel, camera, mic, speaker, close } = this.ui;
    toggle.addEventListener("click", () => this.setPanelOpen(panel.hidden));
    close.addEventListener("click", () => {
      this.setPanelOpen(false);
      toggle.focus();
    });
    panel.addEventListener("keydown", (event) => {
      if (event.key !== "Escape") return;
      this.setPanelOpen(false);
      toggle.focus();
    });
    camera.addEventListener("change", () => this.switchTo("video", camera.value));
    mic.addEventListener("change", () => this.switchTo("audio", mic.value));
    speaker.addEventListener("change", () => this.useSpeaker(speaker.value));
    navigator.mediaDevices.addEventListener("devicechange", () => {
      if (!panel.hidden) this.refresh();
    });
  }
}

function fill(select, devices, selectedId, fallbackKey) {
  select.replaceChildren(
    ...devices.map((device, index) =>
      el("option", { value: device.deviceId }, device.label || t(fallbackKey, { n: index + 1 })),
    ),
  );
  if (devices.some((d) => d.deviceId === selectedId)) select.value = selectedId;
  select.disabled = devices.length === 0;
}
