// The doctor's screen share: getDisplayMedia, then replaceTrack on the video sender (no
// renegotiation); when the share ends (the button, or the browser's own "stop sharing" that
// ends the track) the camera goes back on the sender.
import { senderOf } from "./call-devices.js";

/**
 * `elements`: {button, banner, stop, status}
 * `getStream`: () => MediaStream | null, the camera and microphone stream
 */
export class ScreenShare {
  constructor({ elements, getStream }) {
    this.ui = elements;
    this.getStream = getStream;
    this.pc = null;
    this.track = null;
    this.ui.button.hidden = !(navigator.mediaDevices && "getDisplayMedia" in navigator.mediaDevices);
    this.ui.button.addEventListener("click", () => (this.active ? this.stop() : this.start()));
    this.ui.stop.addEventListener("click", () => this.stop());
    this._render();
  }

  get active() {
    return Boolean(this.track);
  }

  /** A new RTCPeerConnection (a resume): it sends the screen too while sharing. */
  attach(pc) {
    this.pc = pc;
    const sender = senderOf(pc, "video");
    if (sender && this.track) sender.replaceTrack(this.track).catch(() => {});
  }

  async start() {
    if (this.track) return true;
    let display;
    try {
      display = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    } catch {
      return false; // the doctor cancelled the browser's picker: nothing to say
    }
    const track = display.getVideoTracks()[0];
    // Sharp text matters more than motion for documents and results.
    if ("contentHint" in track) track.contentHint = "detail";
    track.addEventListener("ended", () => {
      if (this.track === track) this.stop();
    });
    this.track = track;
    const sender = senderOf(this.pc, "video");
    if (sender) await sender.replaceTrack(track);
    this._render();
    return true;
  }

  async stop() {
    const track = this.track;
    if (!track) return;
    this.track = null;
    const stream = this.getStream();
    const camera = stream ? stream.getVideoTracks()[0] || null : null;
    const sender = senderOf(this.pc, "video");
    if (sender) await sender.replaceTrack(camera).catch(() => {});
    track.stop();
    this._render();
    this.ui.button.focus();
  }

  _render() {
    const { button, banner } = this.ui;
    button.setAttribute("aria-pressed", String(this.active));
    banner.hidden = !this.active;
    document.body.classList.toggle("sharing-screen", this.active);
  }
}
