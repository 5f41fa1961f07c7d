// Chat and file sending over an RTCDataChannel: end to end between the two browsers, inside
// the DTLS connection of the call, never through the server.
//
// One negotiated channel (id 0) is made with each fresh RTCPeerConnection, on both sides, so
// neither waits for the other to announce it. Messages on the channel:
//   {"kind": "text", "text": "..."}                                   a chat message
//   {"kind": "file", "id": "...", "name": "...", "size": n, "type": "..."}  a file begins
//   binary chunks of at most CHUNK_BYTES                              its bytes, in order
//   {"kind": "file_end", "id": "..."}                                 it is complete
// The channel is ordered and reliable; files are sent one after the other.
import { t, currentLang } from "./i18n.js";
import { el } from "./ui.js";

export const MAX_FILE_BYTES = 10 * 1024 * 1024;
export const MAX_TEXT_CHARS = 2000;
const CHUNK_BYTES = 16 * 1024; // the size every browser's SCTP stack accepts in one message
const READ_BYTES = 16 * CHUNK_BYTES;
const HIGH_WATER_BYTES = 1024 * 1024; // stop queueing above this...
const LOW_WATER_BYTES = 256 * 1024; // ...and go on once the buffer drained to this
const MAX_NAME_CHARS = 200;

/** The channel for a fresh RTCPeerConnection (both sides call this, before any offer). */
export function openChatChannel(pc) {
  const channel = pc.createDataChannel("chat", { negotiated: true, id: 0, ordered: true });
  channel.binaryType = "arraybuffer";
  channel.bufferedAmountLowThreshold = LOW_WATER_BYTES;
  return channel;
}

/** A received file name that cannot be a path nor hide control characters. */
export function safeFileName(name) {
  const cleaned = String(name)
    .replace(/[\u0000-\u001f\u007f/\\]/g, "_")
    .replace(/^\.+/, "_")
    .slice(0, MAX_NAME_CHARS)
    .trim();
  return cleaned || "file";
}

function formatSize(bytes) {
  if (bytes < 1024) return t("call.file_size_bytes", { count: bytes });
  if (bytes < 1024 * 1024) return t("call.file_size_kib", { size: Math.ceil(bytes / 1024) });
  const mebibytes = new Intl.NumberFormat(currentLang(), { maximumFractionDigits: 1 }).format(bytes / (1024 * 1024));
  return t("call.file_size_mib", { size: mebibytes });
}

function formatClock(date) {
  return new Intl.DateTimeFormat(currentLang(), { timeStyle: "short" }).format(date);
}

/**
 * The chat panel: message list, input, file button, unread badge on the toggle button.
 * `elements`: {toggle, unread, panel, close, log, form, input, send, fileButton, fileInput, status,
 * news (the status region that tells of unread messages)}
 * `peerLabel`: () => string, who the other participant is ("Patient", "Your doctor").
 */
export class CallChat {
  constructor({ elements, peerLabel, onFile = () => {} }) {
    this.ui = elements;
    this.peerLabel = peerLabel;
    this.onFile = onFile; // (size) => void, once per file sent or received whole
    this.channel = null;
    this.unread = 0;
    this.incoming = null; // {id, name, size, type, chunks, received, item}
    this.sending = Promise.resolve(); // files go one after the other
    this._wire();
    this._renderAvailability();
  }

  /** A new RTCPeerConnection (or null when it is gone): a new channel with it. */
  attach(pc) {
    if (this.channel) this.channel.close();
    this.channel = null;
    this._abortIncoming();
    if (pc) {
      const channel = openChatChannel(pc);
      this.channel = channel;
      channel.addEventListener("open", () => this._renderAvailability());
      channel.addEventListener("close", () => {
        if (this.channel === channel) this._abortIncoming();
        this._renderAvailability();
      });
      channel.addEventListener("message", (event) => {
        if (this.channel === channel) this._received(event.data);
      });
    }
    this._renderAvailability();
  }

  get open() {
    return Boolean(this.channel && this.channel.readyState === "open");
  }

  setPanelOpen(open) {
    const { panel, toggle, input } = this.ui;
    panel.hidden = !open;
    toggle.setAttribute("aria-expanded", String(open));
    document.body.classList.toggle("chat-open", open);
    if (open) {
      this.unread = 0;
      this._renderUnread();
      input.focus();
    }
  }

  /** Texts built here follow the language switch. */
  relabel() {
    this._renderUnread();
    this._renderAvailability(); // the placeholder is a text too
    for (const who of this.ui.log.querySelectorAll("[data-from]")) {
      who.textContent = who.dataset.from === "me" ? t("call.chat_you") : this.peerLabel();
    }
  }

  // -- sending

  sendText(text) {
    const trimmed = text.trim();
    if (!trimmed || !this.open) return false;
    if (trimmed.length > MAX_TEXT_CHARS) {
      this._status("call.chat_too_long", { max: MAX_TEXT_CHARS });
      return false;
    }
    this.channel.send(JSON.stringify({ kind: "text", text: trimmed }));
    this._appendText("me", trimmed);
    return true;
  }

  sendFile(file) {
    if (file.size > MAX_FILE_BYTES) {
      this._status("call.file_too_large", { name: file.name, max: formatSize(MAX_FILE_BYTES) });
      return Promise.resolve(false);
    }
    if (!this.open) {
      this._status("call.chat_unavailable");
      return Promise.resolve(false);
    }
    const item = this._appendFile("me", { name: file.name, size: file.size });
    const channel = this.channel;
    const job = this.sending.then(() => this._streamFile(channel, file, item));
    this.sending = job.catch(() => {});
    return job;
  }

  async _streamFile(channel, file, item) {
    const id = crypto.randomUUID();
    try {
      channel.send(JSON.stringify({ kind: "file", id, name: file.name, size: file.size, type: file.type || "" }));
      // Read in blocks (one await per 256 KiB, not per chunk), send in chunks.
      for (let offset = 0; offset < file.size; offset += READ_BYTES) {
        const block = new Uint8Array(await file.slice(offset, offset + READ_BYTES).arrayBuffer());
        for (let start = 0; start < block.byteLength; start += CHUNK_BYTES) {
          if (channel.bufferedAmount > HIGH_WATER_BYTES) await drained(channel);
          channel.send(block.subarray(start, start + CHUNK_BYTES));
        }
        item.progress.value = offset + block.byteLength;
      }
      channel.send(JSON.stringify({ kind: "file_end", id }));
      this._fileDone(item, null);
      this.onFile(file.size);
      return true;
    } catch {
      this._fileFailed(item);
      return false;
    }
  }

  // -- receiving

  _received(data) {
    if (typeof data !== "string") return this._chunk(data);
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return; // not ours: ignored
    }
    if (message.kind === "text" && typeof message.text === "string" && message.text.trim()) {
      this._appendText("peer", message.text.slice(0, MAX_TEXT_CHARS));
      this._bumpUnread();
    } else if (message.kind === "file") {
      this._fileStarts(message);
    } else if (message.kind === "file_end" && this.incoming && message.id === this.incoming.id) {
      this._fileEnds();
    }
  }

  _fileStarts({ id, name, size, type }) {
    this._abortIncoming();
    const valid = typeof id === "string" && id.length <= 64 && typeof name === "string" && Number.isSafeInteger(size);
    if (!valid || size < 0 || size > MAX_FILE_BYTES) {
      this._status("call.file_refused");
      return;
    }
    const clean = { name: safeFileName(name), size };
    this.incoming = { id, ...clean, type: typeof type === "string" ? type : "", chunks: [], received: 0 };
    this.incoming.item = this._appendFile("peer", clean);
    this._bumpUnread();
  }

  _chunk(buffer) {
    const file = this.incoming;
    if (!file) return;
    file.received += buffer.byteLength;
    if (file.received > file.size) {
      this._abortIncoming();
      return;
    }
    file.chunks.push(buffer);
    file.item.progress.value = file.received;
  }

  _fileEnds() {
    const file = this.incoming;
    this.incoming = null;
    if (file.received !== file.size) {
      this._fileFailed(file.item);
      return;
    }
    // application/octet-stream whatever the sender said: the file is saved, never opened or
    // rendered inside this page's origin.
    const blob = new Blob(file.chunks, { type: "application/octet-stream" });
    this._fileDone(file.item, { url: URL.createObjectURL(blob), name: file.name });
    this.onFile(blob.size);
  }

  _abortIncoming() {
    if (this.incoming) this._fileFailed(this.incoming.item);
    this.incoming = null;
  }

  // -- rendering

  _appendItem(from, ...content) {
    const who = el("span", { class: "chat-who", "data-from": from }, from === "me" ? t("call.chat_you") : this.peerLabel());
    const now = new Date();
    const when = el("time", { datetime: now.toISOString() }, formatClock(now));
    const item = el("li", { class: `chat-msg chat-from-${from}` }, el("p", { class: "chat-meta" }, who, " ", when), ...content);
    this.ui.log.append(item);
    this.ui.log.scrollTop = this.ui.log.scrollHeight; // the newest stays in view
    return item;
  }

  _appendText(from, text) {
    return this._appendItem(from, el("p", { class: "chat-text" }, text));
  }

  _appendFile(from, { name, size }) {
    const label = el("p", { class: "chat-file-name" }, `${name} (${formatSize(size)})`);
    const progress = el("progress", { max: String(Math.max(size, 1)), value: "0", "aria-label": t("call.file_progress", { name }) });
    const item = this._appendItem(from, label, progress);
    return { item, progress, label, name };
  }

  _fileDone(entry, download) {
    entry.progress.value = entry.progress.max;
    entry.progress.hidden = true;
    if (!download) {
      entry.item.append(el("p", { class: "chat-file-state" }, t("call.file_sent")));
      return;
    }
    const link = el("a", { href: download.url, download: download.name, class: "chat-download" }, t("call.file_download", { name: download.name }));
    entry.item.append(link);
  }

  _fileFailed(entry) {
    entry.progress.hidden = true;
    entry.item.append(el("p", { class: "chat-file-state chat-file-failed" }, t("call.file_failed")));
  }

  _bumpUnread() {
    if (!this.ui.panel.hidden) return;
    this.unread += 1;
    this._renderUnread();
  }

  _renderUnread() {
    const { unread, toggle, news } = this.ui;
    unread.hidden = this.unread === 0;
    unread.textContent = String(this.unread);
    if (this.unread) toggle.setAttribute("aria-label", t("call.chat_toggle_unread", { count: this.unread }));
    else toggle.removeAttribute("aria-label");
    // Said by screen readers (a status region): who wrote and how many are unread.
    news.textContent = this.unread ? t("call.chat_news", { count: this.unread, name: this.peerLabel() }) : "";
  }

  _renderAvailability() {
    const { send, fileButton, input } = this.ui;
    send.disabled = !this.open;
    fileButton.disabled = !this.open;
    input.placeholder = this.open ? t("call.chat_placeholder") : t("call.chat_unavailable");
  }

  _status(key, vars = {}) {
    this.ui.status.textContent = t(key, vars);
  }

  _wire() {
    const { toggle, close, form, input, fileButton, fileInput, panel } = this.ui;
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
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.ui.status.textContent = "";
      if (this.sendText(input.value)) input.value = "";
    });
    // Enter sends, Shift+Enter starts a new line.
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    fileButton.addEventListener("click", () => fileInput.click());
    fileInput.addEventListener("change", () => {
      this.ui.status.textContent = "";
      for (const file of fileInput.files) this.sendFile(file);
      fileInput.value = "";
    });
  }
}

/** Resolves once the channel's buffer drained to its low threshold (rejects if it closes). */
function drained(channel) {
  return new Promise((resolve, reject) => {
    const done = () => {
      channel.removeEventListener("close", failed);
      resolve();
    };
    const failed = () => {
      channel.removeEventListener("bufferedamountlow", done);
      reject(new Error("channel closed"));
    };
    channel.addEventListener("bufferedamountlow", done, { once: true });
    channel.addEventListener("close", failed, { once: true });
  });
}
