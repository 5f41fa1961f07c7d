// Connection quality from getStats() every 2 s: round-trip time and available outgoing
// bitrate of the selected candidate pair, packet loss and frames per second of what arrives.
// Rendered as good / fair / poor on a button whose tooltip (hover, keyboard focus, or a tap
// that pins it open on touch screens) gives the figures; the button is described by them.
import { t, currentLang } from "./i18n.js";

const INTERVAL_MS = 2000;

/** The figures of one getStats() report, loss counted since the previous sample. */
export function sample(stats, previous) {
  let rttMs = null;
  let outgoingKbps = null;
  let lost = 0;
  let received = 0;
  let fps = null;
  for (const report of stats.values()) {
    if (report.type === "candidate-pair" && report.nominated && report.state === "succeeded") {
      if (typeof report.currentRoundTripTime === "number") rttMs = report.currentRoundTripTime * 1000;
      if (typeof report.availableOutgoingBitrate === "number") outgoingKbps = report.availableOutgoingBitrate / 1000;
    } else if (report.type === "inbound-rtp") {
      lost += report.packetsLost || 0;
      received += report.packetsReceived || 0;
      if (report.kind === "video" && typeof report.framesPerSecond === "number") fps = report.framesPerSecond;
    }
  }
  const lostNow = previous ? Math.max(0, lost - previous.lost) : 0;
  const receivedNow = previous ? Math.max(0, received - previous.received) : received;
  const lossPercent = lostNow + receivedNow > 0 ? (100 * lostNow) / (lostNow + receivedNow) : 0;
  return { rttMs, outgoingKbps, fps, lossPercent, lost, received };
}

/** "good" | "fair" | "poor" from a sample (thresholds of what a consultation tolerates). */
export function grade({ rttMs, lossPercent, fps, outgoingKbps }) {
  if ((rttMs !== null && rttMs > 700) || lossPercent > 8 || (fps !== null && fps < 5)) return "poor";
  if ((rttMs !== null && rttMs > 300) || lossPercent > 2 || (fps !== null && fps < 15)) return "fair";
  if (outgoingKbps !== null && outgoingKbps < 150) return "fair";
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
    const { quality, rttMs, lossPercent, fps, outgoingKbps } = this.last;
    container.dataset.quality = quality;
    label.textContent = t(`call.quality_${quality}`);
    const dash = t("call.quality_unknown");
    const whole = new Intl.NumberFormat(currentLang(), { maximumFractionDigits: 0 });
    const tenth = new Intl.NumberFormat(currentLang(), { minimumFractionDigits: 1, maximumFractionDigits: 1 });
    const number = (value) => (value === null ? dash : whole.format(value));
    figures.textContent = t("call.quality_figures", {
      rtt: number(rttMs),
      loss: tenth.format(lossPercent),
      fps: number(fps),
      bitrate: number(outgoingKbps),
    });
  }
}
