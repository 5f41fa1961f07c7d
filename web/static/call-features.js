// The call screen's features around the media, shared by the doctor's page (call.js) and the
// patient's (join.js): encryption short code, chat and files over a data channel, connection
// quality, device switch, front/back camera, the movable self view and, for the doctor,
// screen share. Both pages carry the same markup
// (same ids, built by call-panels.js) for them.
//
// The RoomSession calls onPeer(pc) with each fresh RTCPeerConnection (before any offer or
// answer, so the negotiated data channel is part of it) and onPeer(null) when it is closed.
import { CallCode } from "./call-code.js";
import { CallChat } from "./call-chat.js";
import { CallQuality } from "./call-quality.js";
import { CallDevices } from "./call-devices.js";
import { ScreenShare } from "./call-screen-share.js";
import { buildCallPanels } from "./call-panels.js";
import { PeerMediaState } from "./call-peer-state.js";
import { SelfView } from "./call-self-view.js";
import { CameraFlip } from "./call-camera-flip.js";

const byId = (id) => document.getElementById(id);

/**
 * @param {object} options
 * @param {"doctor"|"patient"} options.role
 * @param {() => MediaStream|null} options.getStream the local camera and microphone
 * @param {HTMLVideoElement} options.selfVideo
 * @param {HTMLVideoElement} options.remoteVideo
 * @param {() => string} options.peerLabel who the other participant is, in the chat
 * @param {HTMLElement} options.encryption the page's encryption badge
 * @param {HTMLElement} options.controls the call's toolbar
 * @param {HTMLElement} options.hangUp the hang-up button (the new buttons go before it)
 * @param {(size: number) => void} [options.onFile] a chat file went through, either way
 * @param {{audio: HTMLElement, video: HTMLElement}} options.mediaButtons the mute and camera
 *   toggles (aria-pressed="true": off), whose state the other participant is told
 * @returns {{onPeer(pc: RTCPeerConnection|null): void, onSignaling(client): void, stop(): void}}
 */
export function attachCallFeatures({ role, getStream, selfVideo, remoteVideo, peerLabel, encryption, controls, hangUp, onFile, mediaButtons }) {
  buildCallPanels({ encryption, controls, before: hangUp, cameraButton: mediaButtons.video });
  const selfView = new SelfView(selfVideo);
  const code = new CallCode({ container: byId("call-code"), value: byId("call-code-value") });
  const chat = new CallChat({
    peerLabel,
    onFile,
    elements: {
      toggle: byId("chat-toggle"),
      unread: byId("chat-unread"),
      panel: byId("chat-panel"),
      close: byId("chat-close"),
      log: byId("chat-log"),
      form: byId("chat-form"),
      input: byId("chat-input"),
      send: byId("chat-send"),
      fileButton: byId("chat-file-button"),
      fileInput: byId("chat-file"),
      status: byId("chat-status"),
      news: byId("chat-news"),
    },
  });
  const quality = new CallQuality({
    container: byId("call-quality"),
    button: byId("call-quality-button"),
    label: byId("call-quality-label"),
    figures: byId("call-quality-figures"),
  });
  const screen =
    role === "doctor"
      ? new ScreenShare({
          getStream,
          elements: { button: byId("share-screen"), banner: byId("share-banner"), stop: byId("share-stop") },
        })
      : null;
  const devices = new CallDevices({
    getStream,
    selfVideo,
    remoteVideo,
    isSharingScreen: () => Boolean(screen && screen.active),
    // Mirrored like a mirror for the front camera only: the back one shows the world as it is.
    onVideoTrack: (track) => selfView.setMirrored(track.getSettings().facingMode !== "environment"),
    elements: {
      toggle: byId("devices-toggle"),
      panel: byId("devices-panel"),
      close: byId("devices-close"),
      camera: byId("call-camera"),
      mic: byId("call-mic"),
      speaker: byId("call-speaker"),
      speakerField: byId("call-speaker-field"),
      status: byId("devices-status"),
    },
  });
  new CameraFlip({ button: byId("camera-flip"), devices, getStream });
  const peerState = new PeerMediaState({ tile: remoteVideo.parentElement, peerLabel, getStream, buttons: mediaButtons });
  document.addEventListener("langchange", () => {
    peerState.relabel();
    chat.relabel();
    quality.relabel();
    devices.relabel();
    selfView.relabel();
  });
  return {
    onPeer(pc) {
      code.attach(pc);
      chat.attach(pc);
      quality.attach(pc);
      devices.attach(pc);
      if (screen) screen.attach(pc);
      peerState.onPeer(pc);
    },
    onSignaling(client) {
      peerState.watch(client);
    },
    stop() {
      if (screen) screen.stop();
      this.onPeer(null);
    },
  };
}
