// Recordings page: the recordings of the doctor's own consultations (all of them for an admin):
// when, how long, how big, who consented and when, how long they are kept; play in the page
// (the server decrypts segment by segment and answers HTTP ranges, so the player seeks),
// download, delete after a confirmation (crypto-shredding). The server decides who sees what
// and audits every listing, view, download and deletion; this page only shows it.
//   /recordings                      every recording this user may see
//   /recordings?consultation=<id>    one consultation's (an id, not a secret)
import { initI18n, t } from "./i18n.js";
import { api, errorMessage } from "./api.js";
import { signedInStaff } from "./staff-session.js";
import { $, el, formatDateTime, confirmDialog } from "./ui.js";

const DAY_MS = 86400000;

let me = null;
let recordings = [];
let patients = new Map(); // consultation id -> { name, start }
let playing = null; // the recording in the player
const consultation = new URLSearchParams(location.search).get("consultation") || "";

function duration(seconds) {
  const total = Math.round(seconds);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

function size(bytes) {
  const mb = bytes / 1e6;
  const number = new Intl.NumberFormat(document.documentElement.lang, {
    maximumFractionDigits: mb < 10 ? 1 : 0,
  }).format(mb);
  return t("recordings.size_mb", { size: number });
}

function when(iso) {
  return formatDateTime(iso, { dateStyle: "medium", timeStyle: "short" });
}

function patientOf(r) {
  const known = patients.get(r.consultation_id);
  return known && known.name ? known.name : t("recordings.patient_unknown");
}

function consents(r) {
  if (!r.consents.length) return [el("li", {}, t("recordings.consent_none"))];
  return r.consents.map((c) =>
    el("li", {}, t(`recordings.consent_${c.decision}`, { who: t(`recordings.role_${c.role}`), when: when(c.at) })),
  );
}

function retention(r) {
  if (!r.retention_ends_at) return "";
  const days = Math.max(0, Math.ceil((Date.parse(r.retention_ends_at) - Date.now()) / DAY_MS));
  return t("recordings.retention_left", { count: days });
}

function status(r) {
  if (r.status === "recording") return t("recordings.status_recording");
  if (r.empty) return t("recordings.status_empty");
  if (r.status === "failed") return t("recordings.status_failed");
  if (!r.seekable) return t("recordings.status_not_seekable");
  return "";
}

function fact(label, value) {
  return el("div", { class: "recording-fact" }, el("dt", {}, label), el("dd", {}, value));
}

function item(r) {
  const ready = r.status !== "recording";
  const playable = ready && !r.empty; // an empty one holds nothing to play: it can be deleted
  const play = el("button", { type: "button", class: "btn btn-primary btn-small recording-play", disabled: !playable }, t("recordings.play"));
  play.addEventListener("click", () => openPlayer(r));
  const download = el(
    "a",
    { class: "btn btn-secondary btn-small recording-download", href: `/api/recordings/${encodeURIComponent(r.id)}/download`, download: `recording-${r.id}.webm` },
    t("recordings.download"),
  );
  if (!playable) download.hidden = true;
  const remove = el("button", { type: "button", class: "btn btn-ghost btn-small recording-delete", disabled: !ready }, t("recordings.delete"));
  remove.addEventListener("click", () => deleteRecording(r));
  const note = status(r);
  return el(
    "li",
    { class: "recording-item", dataset: { id: r.id } },
    el("h3", { class: "recording-title" }, titleOf(r)),
    note ? el("p", { class: "recordings-note small" }, note) : "",
    el(
      "dl",
      { class: "recording-facts" },
      fact(t("recordings.duration"), r.duration_seconds ? duration(r.duration_seconds) : "—"),
      fact(t("recordings.size"), r.empty ? "—" : size(r.size_bytes)), // a header's bytes say nothing
      fact(t("recordings.kept"), retention(r)),
    ),
    el("p", { class: "small recording-consents-title" }, t("recordings.consents")),
    el("ul", { class: "recording-consents small" }, ...consents(r)),
    el("div", { class: "actions recording-actions" }, play, download, remove),
  );
}

function render() {
  const list = $("#recording-list");
  list.replaceChildren(...recordings.map(item));
  $("#list-empty").hidden = recordings.length > 0;
  $("#show-all").hidden = !consultation;
  const lead = me.role === "admin" ? "recordings.lead_admin" : "recordings.lead_doctor";
  $("#recordings-lead").textContent = t(lead);
  if (playing) $("#player-title").textContent = titleOf(playing);
}

function titleOf(r) {
  return t("recordings.item_title", { patient: patientOf(r), when: when(r.media_started_at || r.started_at) });
}

function openPlayer(r) {
  const card = $("#player-card");
  const video = $("#player");
  $("#player-error").hidden = true;
  playing = r;
  $("#player-title").textContent = titleOf(r);
  video.dataset.id = r.id;
  video.src = `/api/recordings/${encodeURIComponent(r.id)}/media`;
  card.hidden = false;
  card.scrollIntoView({ block: "start" });
  video.focus();
}

async function deleteRecording(r) {
  const ok = await confirmDialog(
    t("recordings.delete_title"),
    t("recordings.delete_body", { patient: patientOf(r), when: when(r.media_started_at || r.started_at) }),
    t("recordings.delete_ok"),
  );
  if (!ok) return;
  try {
    await api(`/api/recordings/${encodeURIComponent(r.id)}/delete`, { method: "POST" });
  } catch (error) {
    showListError(error);
    return;
  }
  if ($("#player").dataset.id === r.id) closePlayer();
  recordings = recordings.filter((x) => x.id !== r.id);
  render();
  $("#list-status").textContent = t("recordings.deleted");
}

function closePlayer() {
  const video = $("#player");
  video.removeAttribute("src");
  video.load();
  delete video.dataset.id;
  playing = null;
  $("#player-card").hidden = true;
}

function showListError(error) {
  const box = $("#list-error");
  box.textContent = errorMessage(error.code, error.details, t("recordings.error_generic"));
  box.hidden = false;
}

async function load() {
  const query = consultation ? `?consultation=${encodeURIComponent(consultation)}` : "";
  const [list, mine] = await Promise.all([api(`/api/recordings${query}`), api("/api/consultations")]);
  recordings = list.recordings;
  patients = new Map(mine.consultations.map((c) => [c.id, { name: c.erased ? "" : c.patient_name, start: c.scheduled_start }]));
}

async function main() {
  initI18n();
  me = await signedInStaff();
  if (!me) return;
  $("#player").addEventListener("error", () => {
    const box = $("#player-error");
    box.textContent = t("recordings.play_failed");
    box.hidden = false;
  });
  try {
    await load();
  } catch (error) {
    showListError(error);
  }
  $("#loading").hidden = true;
  $("#recordings").hidden = false;
  render();
  document.addEventListener("langchange", render);
}

main();
