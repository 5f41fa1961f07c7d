// Device check: camera preview, microphone level (WebAudio AnalyserNode), a generated test tone
// for the speaker, and device pickers. No audio file: the tone is synthesised.

const LEVEL_BARS = 12;
// A level above this is a voice (or a clap), not the room's hum.
const SPEECH_LEVEL = 0.3;
// "We hear you" stays this long after the last sound, so words and their short pauses keep it
// on; then it goes, so a microphone that stopped picking anything up does not keep saying so.
export const HEARD_HOLD_MS = 1500;

/** Whether the microphone is heard now: a level above SPEECH_LEVEL within HEARD_HOLD_MS. */
export class VoiceActivity {
  constructor() {
    this.lastHeardAt = null;
    this.heard = false;
  }

  /** A new level (0..1) at `now` (ms); true when `heard` changed. */
  update(level, now) {
    if (level > SPEECH_LEVEL) this.lastHeardAt = now;
    const heard = this.lastHeardAt !== null && now - this.lastHeardAt < HEARD_HOLD_MS;
    const changed = heard !== this.heard;
    this.heard = heard;
    return changed;
  }
}

export class DeviceCheck {
  constructor({ video, onChange }) {
    this.video = video;
    this.onChange = onChange || (() => {});
    this.stream = null;
    this.audioContext = null;
    this.analyser = null;
    this.source = null;
    this.meterTimer = null;
    this.heardSound = false; // the microphone picks up a voice now (VoiceActivity)
    this.voice = new VoiceActivity();
    this.cameraOk = false;
    this.micOk = false;
    this.error = null;
  }

  // Call from a click or submit handler: browsers only start audio after a user gesture.
  unlockAudio() {
    if (!this.audioContext) this.audioContext = new AudioContext();
    if (this.audioContext.state === "suspended") this.audioContext.resume();
  }

  async start({ cameraId, micId } = {}) {
    this.stopTracks();
    this.error = null;
    this.cameraOk = false;
    this.micOk = false;
    this.onChange();
    const video = cameraId ? { deviceId: { exact: cameraId } } : { width: { ideal: 1280 }, height: { ideal: 720 } };
    const audio = micId
      ? { deviceId: { exact: micId }, echoCancellation: true, noiseSuppression: true }
      : { echoCancellation: true, noiseSuppression: true };
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({ video, audio });
    } catch (error) {
      // Try each device alone: one missing or busy device should not hide the other.
      this.stream = await this.partialStream(video, audio, error);
    }
    if (this.stream) {
      this.video.srcObject = this.stream;
      this.cameraOk = this.stream.getVideoTracks().length > 0;
      this.micOk = this.stream.getAudioTracks().length > 0;
      this.startMeter();
    }
    this.onChange();
    return this.stream;
  }

  async partialStream(video, audio, firstError) {
    const parts = [];
    for (const constraints of [{ video }, { audio }]) {
      try {
        parts.push(await navigator.mediaDevices.getUserMedia(constraints));
      } catch {
        /* reported below */
      }
    }
    if (!parts.length) {
      this.error = firstError.name || "Error";
      return null;
    }
    this.error = parts.length === 1 ? `Partial:${firstError.name}` : null;
    return new MediaStream(parts.flatMap((s) => s.getTracks()));
  }

  async devices() {
    const all = await navigator.mediaDevices.enumerateDevices();
    return {
      cameras: all.filter((d) => d.kind === "videoinput"),
      mics: all.filter((d) => d.kind === "audioinput"),
      speakers: all.filter((d) => d.kind === "audiooutput"),
    };
  }

  currentDeviceId(kind) {
    const track = this.stream && (kind === "video" ? this.stream.getVideoTracks()[0] : this.stream.getAudioTracks()[0]);
    return track ? track.getSettings().deviceId : "";
  }

  startMeter() {
    this.stopMeter();
    // Another microphone (or the same again): heard only once it is.
    this.voice = new VoiceActivity();
    if (this.heardSound) {
      this.heardSound = false;
      this.onChange();
    }
    const track = this.stream.getAudioTracks()[0];
    if (!track) return;
    this.unlockAudio();
    const ctx = this.audioContext;
    this.source = ctx.createMediaStreamSource(new MediaStream([track]));
    this.analyser = ctx.createAnalyser();
    this.analyser.fftSize = 1024;
    this.source.connect(this.analyser);
    const samples = new Float32Array(this.analyser.fftSize);
    this.meterTimer = setInterval(() => {
      this.analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const s of samples) sum += s * s;
      const rms = Math.sqrt(sum / samples.length);
      // Speech sits around 0.02-0.2 RMS: map it onto 0..1 on a rough log scale.
      const level = Math.max(0, Math.min(1, (20 * Math.log10(rms + 1e-8) + 60) / 50));
      if (this.voice.update(level, performance.now())) {
        this.heardSound = this.voice.heard;
        this.onChange();
      }
      this.onLevel && this.onLevel(level);
    }, 80);
  }

  stopMeter() {
    clearInterval(this.meterTimer);
    this.meterTimer = null;
    if (this.source) this.source.disconnect();
    this.source = null;
  }

  stopTracks() {
    this.stopMeter();
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    this.stream = null;
  }

  // A short two-note chime on the chosen output. Resolves when it has finished playing.
  async playTestTone(speakerId) {
    const ctx = new AudioContext();
    if (speakerId && typeof ctx.setSinkId === "function") {
      try {
        await ctx.setSinkId(speakerId);
      } catch {
        /* default output */
      }
    }
    await ctx.resume();
    const gain = ctx.createGain();
    gain.connect(ctx.destination);
    const t0 = ctx.currentTime + 0.05;
    const notes = [
      [659.25, 0],
      [880, 0.35],
      [1046.5, 0.7],
    ];
    gain.gain.setValueAtTime(0, t0);
    for (const [freq, at] of notes) {
      const osc = ctx.createOscillator();
      osc.type = "sine";
      osc.frequency.value = freq;
      osc.connect(gain);
      gain.gain.setValueAtTime(0, t0 + at);
      gain.gain.linearRampToValueAtTime(0.25, t0 + at + 0.03);
      gain.gain.exponentialRampToValueAtTime(0.001, t0 + at + 0.6);
      osc.start(t0 + at);
      osc.stop(t0 + at + 0.65);
    }
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await ctx.close();
  }
}

export function renderLevel(container, level) {
  if (container.children.length !== LEVEL_BARS) {
    container.replaceChildren(...Array.from({ length: LEVEL_BARS }, () => document.createElement("span")));
  }
  const lit = Math.round(level * LEVEL_BARS);
  [...container.children].forEach((bar, i) => bar.classList.toggle("on", i < lit));
  container.setAttribute("aria-valuenow", String(Math.round(level * 100)));
}

export function speakerSelectionSupported() {
  return typeof AudioContext !== "undefined" && typeof AudioContext.prototype.setSinkId === "function";
}
