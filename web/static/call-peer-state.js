// The other participant's tile: their name on their video ("Dr Claire Martin" for the patient,
// the patient's name for the doctor), and what they turned off, said with an icon and a
// sentence ("Dr Claire Martin has turned their camera off") rather than a black or silent
// tile that looks like a broken call; someone who has no camera or microphone at all (none, or
// the permission refused) "joined without a camera" rather than turned it off. Each page tells the other over the signaling socket (media_state, see
// docs/protocol.md "Microphone and camera state") when its own mute or camera button changes,
// when its camera and microphone change, and after each peer_joined; the server keeps nothing.
//
// The page's own state is read from its tracks and its two toggle buttons (aria-pressed="true"
// means muted / camera off), watched with a MutationObserver so the pages' toggle code needs
// no hook of its own.
import { t } from "./i18n.js";
import { el } from "./ui.js";

const SVG = "http://www.w3.org/2000/svg";
// Microphone and camera outlines, each crossed out (what the peer turned off).
const ICON_PATHS = {
  audio: ["M12 3a3 3 0 0 0-3 3v5a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3z", "M5 11a7 7 0 0 0 14 0", "M12 18v3", "M4 4l16 16"],
  video: ["M3 7h11a1 1 0 0 1 1 1v8a1 1 0 0 1-1 1H3a1 1 0 0 1-1-1V8a1 1 0 0 1 1-1z", "M15 10l6-3v10l-6-3", "M3 3l18 18"],
};

function icon(kind) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.dataset.kind = kind;
  for (const d of ICON_PATHS[kind]) {
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}

/**
 * What this page sends: a kind is on when it has a live track and its button is not pressed;
 * missing when the stream never had a track of that kind (no device, or the permission
 * refused: the page joined without it, there is nothing to turn back on).
 */
export function localMediaState(stream, buttons) {
  const tracks = (kind) => (stream ? stream.getTracks().filter((track) => track.kind === kind) : []);
  const on = (kind) => {
    const button = buttons[kind];
    const live = tracks(kind).filter((track) => track.readyState !== "ended");
    return live.length > 0 && !(button && button.getAttribute("aria-pressed") === "true");
  };
  const missing = ["audio", "video"].filter((kind) => tracks(kind).length === 0);
  return { audio: on("audio"), video: on("video"), missing };
}

/** The sentence key for a peer state, or null when both are on. */
export function peerStateKey({ audio, video, missing = [] }) {
  const noCamera = missing.includes("video");
  const noMic = missing.includes("audio");
  if (noCamera && noMic) return "peerstate.no_devices";
  if (noCamera) return audio ? "peerstate.no_camera" : "peerstate.no_camera_mic_off";
  if (noMic) return video ? "peerstate.no_mic" : "peerstate.no_mic_camera_off";
  if (!audio && !video) return "peerstate.both_off";
  if (!video) return "peerstate.camera_off";
  if (!audio) return "peerstate.mic_off";
  return null;
}

const sameKinds = (a, b) => a.length === b.length && a.every((kind) => b.includes(kind));

export class PeerMediaState {
  /**
   * @param {object} options
   * @param {HTMLElement} options.tile the box around the other participant's video
   * @param {() => string} options.peerLabel the other participant's name
   * @param {() => MediaStream|null} options.getStream this page's camera and microphone
   * @param {{audio: HTMLElement, video: HTMLElement}} options.buttons this page's toggles
   */
  constructor({ tile, peerLabel, getStream, buttons }) {
    this.peerLabel = peerLabel;
    this.getStream = getStream;
    this.buttons = buttons;
    this.client = null;
    this.present = false; // the other participant is in the call: media_state goes through
    this.remote = { audio: true, video: true, missing: [] }; // assumed on until told otherwise
    this.sent = null;
    this.text = el("span", { class: "peer-state-text" });
    // Polite: the doctor hears the change after what they were saying, not over it.
    this.node = el(
      "p",
      // Always in the page (empty while both are on): a live region that appears with its
      // text is not read reliably; one whose text changes is.
      { id: "peer-state", class: "peer-state", role: "status", "aria-live": "polite" },
      el("span", { class: "peer-state-icons" }, icon("video"), icon("audio")),
      this.text,
    );
    this.name = el("p", { id: "peer-name", class: "peer-name" });
    tile.append(this.name, this.node);
    const observer = new MutationObserver(() => this.announce());
    for (const button of Object.values(buttons)) {
      if (button) observer.observe(button, { attributes: true, attributeFilter: ["aria-pressed"] });
    }
    this._render();
  }

  /** The room's SignalingClient (web/protocol.js): hear the peer, and tell it ours. */
  watch(client) {
    this.client = client;
    const on = (type, handler) => client.addEventListener(type, (e) => handler(e.detail));
    on("media_state", (m) => {
      const missing = Array.isArray(m.missing) ? m.missing.filter((kind) => kind === "audio" || kind === "video") : [];
      this.remote = { audio: m.audio !== false, video: m.video !== false, missing };
      this._render();
    });
    on("peer_joined", () => {
      this.present = true;
      this.remote = { audio: true, video: true, missing: [] };
      this._render();
      this.announce(true);
    });
    on("peer_left", () => this._gone());
    on("closed", () => this._gone());
  }

  /** A fresh connection (or null): the tracks may have changed (new camera, media retried). */
  onPeer(pc) {
    if (pc) this.announce();
  }

  /** Send this page's state when it changed (or always, when `force`). */
  announce(force = false) {
    if (!this.client || !this.present) return;
    const state = localMediaState(this.getStream(), this.buttons);
    const same =
      this.sent && this.sent.audio === state.audio && this.sent.video === state.video && sameKinds(this.sent.missing, state.missing);
    if (!force && same) return;
    this.sent = state;
    try {
      this.client.mediaState(state.audio, state.video, state.missing);
    } catch {
      // the socket is gone: it is sent again after the next peer_joined
    }
  }

  relabel() {
    this._render();
  }

  _gone() {
    this.present = false;
    this.sent = null;
    this.remote = { audio: true, video: true, missing: [] };
    this._render();
  }

  _render() {
    const name = this.peerLabel();
    this.name.textContent = name;
    this.name.hidden = !name;
    const key = peerStateKey(this.remote);
    const { audio, video, missing } = this.remote;
    this.node.dataset.off = audio && video ? "" : !audio && !video ? "both" : audio ? "video" : "audio";
    // Which of those are not there at all (the sentence says "without", not "turned off").
    this.node.dataset.missing = [...missing].sort().join(" ");
    this.text.textContent = key ? t(key, { name }) : "";
  }
}
