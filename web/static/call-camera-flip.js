// "Switch camera" on a phone or tablet: from the front camera to the back one and back, to
// show a wound, a rash or a box of medicine. Shown only when the device has more than one
// camera. The new track replaces the old one on the sender (CallDevices.replaceWith, no
// renegotiation). Phones name their cameras by facingMode; a device that does not say which
// way its camera faces (a laptop with a second webcam) goes to the next camera in the list.
// If nothing opens, the devices panel opens with the reason and the list to choose from.

/** The videoinput after `currentId` in the list, round and round (null if there is no other). */
export function nextCamera(cameras, currentId) {
  if (cameras.length < 2) return null;
  const index = cameras.findIndex((camera) => camera.deviceId === currentId);
  return cameras[(index + 1) % cameras.length];
}

export class CameraFlip {
  /**
   * @param {object} options
   * @param {HTMLButtonElement} options.button
   * @param {import("./call-devices.js").CallDevices} options.devices
   * @param {() => MediaStream|null} options.getStream
   */
  constructor({ button, devices, getStream }) {
    this.button = button;
    this.devices = devices;
    this.getStream = getStream;
    this.busy = false;
    button.addEventListener("click", () => this.flip());
    navigator.mediaDevices.addEventListener("devicechange", () => this.refresh());
    this.refresh();
  }

  async cameras() {
    const devices = await navigator.mediaDevices.enumerateDevices();
    return devices.filter((device) => device.kind === "videoinput");
  }

  /** Show the button only where there is another camera to switch to. */
  async refresh() {
    this.button.hidden = (await this.cameras()).length < 2;
  }

  async flip() {
    const stream = this.getStream();
    const track = stream && stream.getVideoTracks()[0];
    if (!track || this.busy) return;
    this.busy = true;
    this.button.setAttribute("aria-busy", "true");
    try {
      const settings = track.getSettings();
      let done = false;
      if (settings.facingMode === "user" || settings.facingMode === "environment") {
        const facing = settings.facingMode === "user" ? "environment" : "user";
        done = await this.devices.replaceWith("video", { video: { facingMode: { exact: facing } } });
      }
      if (!done) {
        const next = nextCamera(await this.cameras(), settings.deviceId);
        if (next) done = await this.devices.replaceWith("video", { video: { deviceId: { exact: next.deviceId } } });
      }
      if (!done) this.devices.setPanelOpen(true);
    } finally {
      this.busy = false;
      this.button.removeAttribute("aria-busy");
    }
  }
}
