// What happened in a consultation's call, on its dashboard row: "Call 14:02–14:19 (17 min) ·
// recorded · 2 files exchanged · ended by the doctor". The server keeps the first start, the
// last end and why it ended (signaling/live/call_summary.py); files are counted, never named.
import { el, formatTime } from "./ui.js";
import { t } from "./i18n.js";

/** The row's line about the call, or null when there was none. */
export function callSummary(c) {
  if (!c.call_started_at) return null;
  const parts = [];
  if (c.call_ended_at) {
    const minutes = Math.max(0, Math.round((new Date(c.call_ended_at) - new Date(c.call_started_at)) / 60000));
    parts.push(t("summary.call", { start: formatTime(c.call_started_at), end: formatTime(c.call_ended_at), minutes }));
  } else {
    parts.push(t("summary.call_open", { start: formatTime(c.call_started_at) }));
  }
  if (c.recordings) parts.push(t("summary.recorded"));
  if (c.files_exchanged) parts.push(t("summary.files", { count: c.files_exchanged }));
  if (c.call_end) parts.push(t(`summary.end_${c.call_end}`));
  return el("p", { class: "consult-call muted small", dataset: { callEnd: c.call_end || "" } }, parts.join(" · "));
}
