// Connection quality from getStats() every 2 s: round-trip time and available outgoing
// bitrate of the selected candidate pair, packet loss, jitter and frames per second of what
// arrives. Rendered as good / fair / poor on a button whose tooltip (hover, keyboard focus, or
// a tap that pins it open on touch screens) gives the figures; the button is described by them.
//
// The grade judges the network only (round trip, loss, jitter): a low frame rate is what a
// camera turned off or a still picture gives on a perfect network, and the outgoing estimate
// starts low and climbs; both stay in the figures, neither makes a good connection "fair".
import { t, currentLang } from "./i18n.js";

const INTERVAL_MS = 2000;

/** The figures of one getStats() report, loss counted since the previous sample. */
export function sample(stats, previous) {
  let rttMs = null;
  let outgoingKbps = null;
  let lost = 0;
  let received = 0;
  let fps = null;
  const jitter = {}; // seconds, per kind
  for (const report of stats.values()) {
    if (report.type === "candidate-pair" && report.nominated && report.state === "succeeded") {
      if (typeof report.currentRoundTripTime === "number") rttMs = report.currentRoundTripTime * 1000;
      if (typeof report.availableOutgoingBitrate === "number") outgoingKbps = report.availableOutgoingBitrate / 1000;
    } else if (report.type === "inbound-rtp") {
      lost += report.packetsLost || 0;
      received += report.packetsReceived || 0;
      if (report.kind === "video" && typeof report.framesPerSecond === "number") fps = report.framesPerSecond;
      if (typeof report.jitter === "number") jitter[report.kind] = Math.max(jitter[report.kind] || 0, report.jitter);
    }
  }
  // Audio's jitter when there is audio: what a voice suffers from. Video's (frames sent as
  // bursts of packets with one timestamp) reads higher for the same network.
  const jitterSeconds = typeof jitter.audio === "number" ? jitter.audio : typeof jitter.video === "number" ? jitter.video : null;
  const jitterMs = jitterSeconds === null ? null : jitterSeconds * 1000;
  const lostNow = previous ? Math.max(0, lost - previous.lost) : 0;
  const receivedNow = previous ? Math.max(0, received - previous.received) : received;
  const lossPercent = lostNow + receivedNow > 0 ? (100 * lostNow) / (lostNow + receivedNow) : 0;
  return { rttMs, outgoingKbps, fps, jitterMs, lossPercent, lost, received };
}

/** "good" | "fair" | "poor" from a sample's round trip, loss and jitter (thresholds of what a
 * spoken consultation tolerates); an unknown figure (null) counts as fine. */
export function grade({ rttMs, lossPercent, jitterMs = null }) {
  const above = (value, limit) => value !== null && value !== undefined && value > limit;
  if (above(rttMs, 700) || above(lossPercent, 8) || above(jitterMs, 100)) return "poor";
  if (above(rttMs, 300) || above(lossPercent, 2) || above(jitterMs, 30)) return "fair";
  return "good";
}

/**
 * Watches the current RTCPeerConnection and renders into `container` (data-quality attribute),
 * `label` (the word on `button`) and `figures` (the tooltip text).
 */
export class CallQuality {
  constructor({ container, button, label, figures }) {
    this.ui = { container, button, label, figures };
    button.addEventListener("click", () => {
      const pinned = button.getAttribute("aria-expanded") !== "true";
      button.setAttribute("aria-expanded", String(pinned));
      container.classList.toggle("pinned", pinned);
    });
    this.pc = null;
    this.timer = null;
    this.last = null;
    this.previous = null;
    this._render();
  }

  attach(pc) {
    clearInterval(this.timer);
    this.timer = null;
    this.pc = pc;
    this.last = null;
    this.previous = null;
    this._render();
    if (!pc) return;
    this.timer = setInterval(() => this._measure(pc), INTERVAL_MS);
  }

  relabel() {
    this._render();
  }

  async _measure(pc) {
    if (this.pc !== pc) return;
    if (pc.connectionState !== "connected") {
      this.last = null;
      this._render();
      return;
    }
    const figures = sample(await pc.getStats(), this.previous);
    if (this.pc !== pc) return;
    this.previous = figures;
    this.last = { ...figures, quality: grade(figures) };
    this._render();
  }

  _render() {
    const { container, label, figures } = this.ui;
    container.hidden = !this.last;
    if (!this.last) return;
    const { quality, rttMs, lossPercent, jitterMs, fps, outgoingKbps } = this.last;
    container.dataset.quality = quality;
    label.textContent = t(`call.quality_${quality}`);
    const dash = t("call.quality_unknown");
    const whole = new Intl.NumberFormat(currentLang(), { maximumFractionDigits: 0 });
    const tenth = new Intl.NumberFormat(currentLang(), { minimumFractionDigits: 1, maximumFractionDigits: 1 });
    const number = (value) => (value === null ? dash : whole.format(value));
    figures.textContent = t("call.quality_figures", {
      rtt: number(rttMs),
      loss: tenth.format(lossPercent),
      jitter: number(jitterMs),
      fps: number(fps),
      bitrate: number(outgoingKbps),
    });
  }
}
