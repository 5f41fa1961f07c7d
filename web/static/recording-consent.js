// What a participant sees of a recording: the doctor's "Record" button, the consent prompt
// (a modal <dialog>: what is recorded, who can see it, for how long, encrypted, can be
// stopped), the red "Recording" indicator, the "Stop recording" button and plain messages.
// It only shows things and reports clicks; recording-room.js decides when (server messages).
//
// Everything is built here inside the call's stage (its .call-view and .call-controls), so
// the pages' HTML stays untouched. Texts: i18n-dict-recording.js ("recording.*").
import { t } from "./i18n.js";
import { el } from "./ui.js";
import { canBeRecorded } from "./browser-support.js";

let dialogCount = 0;
// How long news ("recording started", "refused") stays on screen.
const NEWS_MS = 10000;

export class RecordingView {
  /**
   * @param {HTMLElement} stage the call's stage, holding .call-view and .call-controls
   * @param {object} options
   * @param {"doctor"|"patient"} options.role
   * @param {() => void} options.onRecord the doctor asks to record
   * @param {() => void} options.onStop either participant stops (withdraws consent)
   */
  constructor(stage, { role, onRecord, onStop }) {
    this.role = role;
    this.retentionDays = 0;
    const view = stage.querySelector(".call-view") || stage;
    const controls = stage.querySelector(".call-controls") || stage;

    this.indicator = el(
      "p",
      { class: "recording-indicator", hidden: true },
      el("span", { class: "recording-dot", "aria-hidden": "true" }),
      el("span", { dataset: { i18n: "recording.indicator" } }, t("recording.indicator")),
    );
    // Polite announcements (asked, started, stopped, refused) and errors said at once.
    this.status = el("p", { class: "recording-status", role: "status", "aria-live": "polite" });
    this.alert = el("p", { class: "recording-alert", role: "alert", hidden: true });
    // One corner for all three (bottom left: the top holds the call's own badges).
    this.notices = el("div", { class: "recording-notices" }, this.alert, this.indicator, this.status);
    view.append(this.notices);
    this.statusTimer = null;

    this.recordButton = el(
      "button",
      { type: "button", class: "btn btn-secondary recording-record", hidden: true, dataset: { i18n: "recording.record" } },
      t("recording.record"),
    );
    this.stopButton = el(
      "button",
      { type: "button", class: "btn btn-secondary recording-stop", hidden: true, dataset: { i18n: "recording.stop" } },
      t("recording.stop"),
    );
    this.recordButton.addEventListener("click", () => onRecord());
    this.stopButton.addEventListener("click", () => onStop());
    // Before the last control (hang up / leave stays last).
    const last = controls.lastElementChild;
    for (const button of [this.recordButton, this.stopButton]) {
      if (last) controls.insertBefore(button, last);
      else controls.append(button);
    }

    this.dialog = this._buildDialog();
    document.body.append(this.dialog);
    this.onLangChange = () => this._renderRetention();
    document.addEventListener("langchange", this.onLangChange);
  }

  /** Take everything this view added off the page. */
  remove() {
    clearTimeout(this.statusTimer);
    this.closePrompt();
    document.removeEventListener("langchange", this.onLangChange);
    document.body.classList.remove("is-recording");
    for (const node of [this.notices, this.recordButton, this.stopButton, this.dialog]) node.remove();
  }

  /** Doctor: the Record button, shown while a recording may be asked for. */
  showRecord(visible) {
    this.recordButton.hidden = !visible || this.role !== "doctor";
    this.recordButton.disabled = false;
  }

  recordPending() {
    this.recordButton.disabled = true;
  }

  /**
   * The consent prompt; resolves true (accept), false (refuse, Escape) or null when it was
   * closed by closePrompt() (the request went away) without an answer.
   */
  ask(retentionDays) {
    this.retentionDays = retentionDays;
    this._renderRetention();
    const intro = this.dialog.querySelector(".recording-consent-intro");
    intro.dataset.i18n = this.role === "doctor" ? "recording.prompt_intro_doctor" : "recording.prompt_intro_patient";
    intro.textContent = t(intro.dataset.i18n);
    // A browser that cannot send VP8 and Opus cannot be recorded: say so, and only a refusal
    // is offered (instead of a recording that would fail after both said yes).
    const recordable = canBeRecorded();
    this.dialog.querySelector(".recording-consent-unsupported").hidden = recordable;
    this.dialog.querySelector("button[value=accept]").hidden = !recordable;
    this.dialog.returnValue = "";
    if (!this.dialog.open) this.dialog.showModal();
    return new Promise((resolve) => {
      this.dialog.addEventListener(
        "close",
        () => {
          const answer = this.dialog.returnValue;
          resolve(answer === "accept" ? true : answer === "refuse" ? false : null);
        },
        { once: true },
      );
    });
  }

  closePrompt() {
    if (this.dialog.open) this.dialog.close("");
  }

  /** The indicator and the Stop button, while the server records. */
  setRecording(on) {
    this.indicator.hidden = !on;
    this.stopButton.hidden = !on;
    this.stopButton.disabled = false;
    document.body.classList.toggle("is-recording", on);
  }

  stopPending() {
    this.stopButton.disabled = true;
  }

  /**
   * A polite message (key in recording.*), or nothing with null. News fades after a while;
   * a sticky message (a question still open) stays until the next one.
   */
  say(key, { sticky = false } = {}) {
    clearTimeout(this.statusTimer);
    this.status.dataset.i18n = key || "";
    this.status.textContent = key ? t(key) : "";
    if (!key) delete this.status.dataset.i18n;
    if (key && !sticky) this.statusTimer = setTimeout(() => this.say(null), NEWS_MS);
  }

  /** An error said plainly, at once (role=alert); null hides it. */
  fail(key) {
    this.alert.hidden = !key;
    if (key) {
      this.alert.dataset.i18n = key;
      this.alert.textContent = t(key);
    } else {
      delete this.alert.dataset.i18n;
      this.alert.textContent = "";
    }
  }

  // -- internals

  _buildDialog() {
    dialogCount += 1;
    const titleId = `recording-consent-title-${dialogCount}`;
    const introId = `recording-consent-intro-${dialogCount}`;
    const item = (key) => el("li", { dataset: { i18n: key } }, t(key));
    const title = el("h2", { id: titleId, tabindex: "-1", autofocus: true, dataset: { i18n: "recording.prompt_title" } }, t("recording.prompt_title"));
    const dialog = el(
      "dialog",
      { class: "recording-consent", "aria-labelledby": titleId, "aria-describedby": introId },
      el(
        "form",
        { method: "dialog" },
        title,
        el("p", { id: introId, class: "recording-consent-intro" }),
        el(
          "ul",
          { class: "recording-consent-facts" },
          item("recording.prompt_what"),
          item("recording.prompt_who"),
          el("li", { class: "recording-consent-retention" }),
          item("recording.prompt_encrypted"),
          item("recording.prompt_stop"),
        ),
        el("p", { class: "muted small", dataset: { i18n: "recording.prompt_both" } }, t("recording.prompt_both")),
        el("p", { class: "alert alert-error recording-consent-unsupported", hidden: true, dataset: { i18n: "recording.prompt_unsupported" } }, t("recording.prompt_unsupported")),
        el(
          "div",
          { class: "dialog-actions" },
          el("button", { value: "refuse", class: "btn btn-secondary", dataset: { i18n: "recording.refuse" } }, t("recording.refuse")),
          el("button", { value: "accept", class: "btn btn-primary", dataset: { i18n: "recording.accept" } }, t("recording.accept")),
        ),
      ),
    );
    // Escape closes the prompt: that is a refusal, never a silent yes.
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      dialog.close("refuse");
    });
    return dialog;
  }

  _renderRetention() {
    const node = this.dialog.querySelector(".recording-consent-retention");
    node.textContent =
      this.retentionDays > 0
        ? t("recording.prompt_retention", { count: this.retentionDays })
        : t("recording.prompt_retention_unknown");
  }
}
