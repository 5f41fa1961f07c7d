// The self view as a small tile in one corner of the call, which the person can move when it
// covers something they want to see (the doctor's face, the doctor's hand showing a document):
// drag it with a finger, a mouse or a pen and it snaps to the nearest corner; or press its
// "Move my picture" button (keyboard, switch access, screen readers) to send it to the next
// corner. The corner is a data attribute: the CSS places the tile, so a resize keeps it right.
import { t } from "./i18n.js";
import { el } from "./ui.js";

// Clockwise from the usual place, so repeated presses visit every corner.
export const CORNERS = ["bottom-right", "bottom-left", "top-left", "top-right"];

const SVG = "http://www.w3.org/2000/svg";
// Four arrows out of the middle: "move this".
const MOVE_PATH = "M12 2v20M2 12h20M12 2l-3 3M12 2l3 3M12 22l-3-3M12 22l3-3M2 12l3-3M2 12l3 3M22 12l-3-3M22 12l-3 3";

function moveIcon() {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", MOVE_PATH);
  svg.append(path);
  return svg;
}

/** The corner of `box` nearest to the point (x, y), in the same coordinates. */
export function nearestCorner(box, x, y) {
  const vertical = y < box.top + box.height / 2 ? "top" : "bottom";
  const horizontal = x < box.left + box.width / 2 ? "left" : "right";
  return `${vertical}-${horizontal}`;
}

export class SelfView {
  /** `video`: the self <video>, inside the call's view (its offset parent). */
  constructor(video) {
    this.video = video;
    this.tile = el("div", { class: "call-self-tile", "data-corner": CORNERS[0] });
    this.button = el(
      "button",
      { type: "button", class: "call-self-move", "aria-label": t("selfview.move"), title: t("selfview.move"), "data-i18n-attr": "aria-label=selfview.move,title=selfview.move" },
      moveIcon(),
    );
    // Says where the picture went (the button's own name does not change).
    this.status = el("p", { class: "visually-hidden", role: "status", "aria-live": "polite" });
    video.replaceWith(this.tile);
    this.tile.append(video, this.button, this.status);
    this.drag = null;
    this._wire();
  }

  get corner() {
    return this.tile.dataset.corner;
  }

  moveTo(corner, announce) {
    this.tile.dataset.corner = corner;
    if (announce) this.status.textContent = t(`selfview.now_${corner.replace("-", "_")}`);
  }

  /** The back camera is not mirrored: what the patient shows must read the right way round. */
  setMirrored(mirrored) {
    this.video.classList.toggle("call-self-unmirrored", !mirrored);
  }

  relabel() {
    if (this.status.textContent) this.status.textContent = t(`selfview.now_${this.corner.replace("-", "_")}`);
  }

  _wire() {
    this.button.addEventListener("click", () => {
      this.moveTo(CORNERS[(CORNERS.indexOf(this.corner) + 1) % CORNERS.length], true);
    });
    this.tile.addEventListener("pointerdown", (event) => this._start(event));
    this.tile.addEventListener("pointermove", (event) => this._move(event));
    this.tile.addEventListener("pointerup", (event) => this._end(event));
    this.tile.addEventListener("pointercancel", (event) => this._end(event));
  }

  _start(event) {
    if (event.button !== 0 || this.button.contains(event.target)) return;
    const tile = this.tile.getBoundingClientRect();
    this.drag = { id: event.pointerId, dx: event.clientX - tile.left, dy: event.clientY - tile.top, moved: false };
    this.tile.setPointerCapture(event.pointerId);
    event.preventDefault();
  }

  _move(event) {
    if (!this.drag || event.pointerId !== this.drag.id) return;
    const view = this.tile.offsetParent.getBoundingClientRect();
    const { width, height } = this.tile.getBoundingClientRect();
    // Follow the finger, kept inside the view.
    const left = Math.min(Math.max(event.clientX - this.drag.dx - view.left, 0), view.width - width);
    const top = Math.min(Math.max(event.clientY - this.drag.dy - view.top, 0), view.height - height);
    this.drag.moved = true;
    this.tile.classList.add("dragging");
    Object.assign(this.tile.style, { left: `${left}px`, top: `${top}px`, right: "auto", bottom: "auto" });
  }

  _end(event) {
    if (!this.drag || event.pointerId !== this.drag.id) return;
    const moved = this.drag.moved;
    this.drag = null;
    if (this.tile.hasPointerCapture(event.pointerId)) this.tile.releasePointerCapture(event.pointerId);
    if (!moved) return;
    // Snap: the corner nearest to where the tile's centre was let go.
    const view = this.tile.offsetParent.getBoundingClientRect();
    const tile = this.tile.getBoundingClientRect();
    this.tile.classList.remove("dragging");
    this.tile.removeAttribute("style");
    this.moveTo(nearestCorner(view, tile.left + tile.width / 2, tile.top + tile.height / 2), true);
  }
}
