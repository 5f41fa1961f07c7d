// Audit trail page: filter, page through and export the trail; admins also see the chain head
// and can have the chain verified. A doctor gets the entries about own consultations only:
// the server enforces it (GET /api/audit), this page only offers the matching filters.
import { initI18n, t, has } from "./i18n.js";
import { api } from "./api.js";
import { signedInStaff } from "./staff-session.js";
import { $, el, showOnly, showError, formatDateTime, isoWithOffset } from "./ui.js";

const PAGE_SIZE = 25;
const EXPORT_LIMIT = 10000;
const OUTCOMES = ["success", "failure", "locked", "refused", "denied"];
const FILTERS = ["consultation", "action", "actor", "outcome", "since", "until"];

let me = null;
let offset = 0;
let actions = [];
let users = new Map();
let consultations = new Map();
let lastPage = null;
// The filters of the entries shown (the form may hold edits not applied yet).
let current = {};

const isAdmin = () => me && me.role === "admin";

function label(prefix, value) {
  const key = `${prefix}${value}`;
  return has(key) ? t(key) : value;
}

function consultationName(c) {
  const when = formatDateTime(c.scheduled_start, { dateStyle: "medium", timeStyle: "short" });
  const patient = c.erased || !c.patient_name ? t("audit.consultation_erased") : c.patient_name;
  return t("audit.consultation_option", { patient, when });
}

function actorName(actor) {
  if (me && actor === me.id) return t("audit.actor_you");
  const user = users.get(actor);
  if (user) return user.display_name || user.username;
  if (["patient", "system", "cli", "unknown"].includes(actor)) return t(`audit.actor_${actor}`);
  return actor;
}

function option(value, text, selected) {
  return el("option", { value, selected: selected === value }, text);
}

// The select's choices; keeps the current choice across a language change.
function fillSelects(chosen) {
  $("#f-consultation").replaceChildren(
    option("", t("audit.any_feminine"), chosen.consultation || ""),
    ...[...consultations.values()].map((c) => option(c.id, consultationName(c), chosen.consultation)),
  );
  const sorted = [...actions].sort((a, b) => label("audit.action.", a).localeCompare(label("audit.action.", b)));
  $("#f-action").replaceChildren(
    option("", t("audit.any_feminine"), chosen.action || ""),
    ...sorted.map((a) => option(a, label("audit.action.", a), chosen.action)),
  );
  const actors = [...users.keys()];
  if (!users.has(me.id)) actors.unshift(me.id);
  $("#f-actor").replaceChildren(
    option("", t("audit.any"), chosen.actor || ""),
    ...actors.map((id) => option(id, actorName(id), chosen.actor)),
    ...["patient", "system"].map((id) => option(id, actorName(id), chosen.actor)),
  );
  $("#f-outcome").replaceChildren(
    option("", t("audit.any"), chosen.outcome || ""),
    ...OUTCOMES.map((o) => option(o, t(`audit.outcome_${o}`), chosen.outcome)),
  );
}

function chosenFilters() {
  const chosen = {};
  for (const name of FILTERS) {
    const value = $(`#f-${name}`).value;
    if (value) chosen[name] = value;
  }
  return chosen;
}

function setFilters(chosen) {
  fillSelects(chosen);
  $("#f-since").value = chosen.since || "";
  $("#f-until").value = chosen.until || "";
}

// Filters as the API takes them: a period of whole local days, sent with their UTC offset.
function apiParams(chosen) {
  const params = new URLSearchParams();
  for (const name of ["consultation", "action", "actor", "outcome"]) {
    if (chosen[name]) params.set(name, chosen[name]);
  }
  if (chosen.since) params.set("since", isoWithOffset(new Date(`${chosen.since}T00:00`)));
  if (chosen.until) {
    const end = new Date(`${chosen.until}T00:00`);
    end.setDate(end.getDate() + 1);
    params.set("until", isoWithOffset(end));
  }
  return params;
}

function periodIsValid(chosen) {
  return !(chosen.since && chosen.until && chosen.until < chosen.since);
}

function updateExportLinks(chosen) {
  for (const format of ["jsonl", "csv"]) {
    const params = apiParams(chosen);
    params.set("format", format);
    params.set("limit", String(EXPORT_LIMIT));
    $(`#export-${format}`).href = `/api/audit/export?${params}`;
  }
}

// The page's address keeps the filters (never a secret), so a reload or a shared link
// shows the same entries.
function rememberFilters(chosen) {
  const params = new URLSearchParams(chosen);
  const query = params.toString();
  history.replaceState(null, "", query ? `/audit?${query}` : "/audit");
}

function targetCell(entry) {
  const consultation = consultations.get(entry.target);
  const user = users.get(entry.target);
  let text = entry.target;
  if (consultation) text = t("audit.target_consultation", { name: consultationName(consultation) });
  else if (user) text = t("audit.target_user", { name: user.display_name || user.username });
  else if (entry.action.startsWith("recording.") && entry.target) text = t("audit.target_recording");
  const showId = entry.target && text !== entry.target;
  return el(
    "td",
    { "data-label": t("audit.col_target") },
    text || "—",
    showId ? el("span", { class: "audit-id muted small" }, entry.target) : null,
  );
}

function row(entry) {
  const outcomeClass = entry.outcome === "success" ? "badge-live" : entry.outcome === "failure" ? "badge-danger" : "badge-warning";
  return el(
    "tr",
    { dataset: { seq: entry.seq, action: entry.action, target: entry.target } },
    el(
      "td",
      { "data-label": t("audit.col_time") },
      el("time", { datetime: entry.at }, formatDateTime(entry.at, { dateStyle: "medium", timeStyle: "medium" })),
      el("span", { class: "audit-id audit-seq muted small" }, t("audit.seq", { seq: entry.seq })),
    ),
    el(
      "td",
      { "data-label": t("audit.col_actor") },
      el("strong", {}, actorName(entry.actor)),
      el("span", { class: "muted small audit-role" }, label("audit.role_", entry.actor_role)),
    ),
    el(
      "td",
      { "data-label": t("audit.col_action") },
      label("audit.action.", entry.action),
      el("span", { class: "audit-id muted small" }, entry.action),
      entry.details ? el("span", { class: "audit-details muted small" }, entry.details) : null,
    ),
    targetCell(entry),
    el(
      "td",
      { "data-label": t("audit.col_outcome") },
      el("span", { class: `badge ${outcomeClass}` }, label("audit.outcome_", entry.outcome)),
    ),
    el("td", { "data-label": t("audit.col_address"), class: "audit-address" }, entry.address || "—"),
  );
}

function render() {
  if (!lastPage) return;
  const entries = lastPage.entries;
  $("#audit-body").replaceChildren(...entries.map(row));
  $("#results-empty").hidden = entries.length > 0;
  $("#results-range").textContent = entries.length
    ? t("audit.range", { first: offset + 1, last: offset + entries.length })
    : "";
  $("#prev-page").disabled = offset === 0;
  $("#next-page").disabled = !lastPage.more;
  if (isAdmin()) {
    $("#chain-head").textContent = t("audit.chain_head", { seq: lastPage.head_seq });
    $("#chain-hash").textContent = lastPage.head;
  }
}

async function load() {
  const params = apiParams(current);
  params.set("newest_first", "true");
  params.set("offset", String(offset));
  params.set("limit", String(PAGE_SIZE));
  const box = $("#results-error");
  try {
    lastPage = await api(`/api/audit?${params}`);
    box.hidden = true;
    if (!actions.length) {
      actions = lastPage.actions;
      fillSelects(current);
    }
    render();
  } catch (error) {
    if (error.code === "not_authenticated") return location.assign("/");
    box.textContent = error.userMessage;
    box.hidden = false;
  }
}

async function verify() {
  const status = $("#verify-status");
  status.className = "alert alert-info audit-verify";
  status.textContent = t("audit.verifying");
  status.hidden = false;
  try {
    const report = await api("/api/audit/verify");
    if (report.intact) {
      status.className = "alert alert-success audit-verify";
      status.textContent = report.checkpoint_seq
        ? t("audit.verify_ok_checkpoint", { count: report.entries, seq: report.checkpoint_seq })
        : t("audit.verify_ok", { count: report.entries });
    } else {
      status.className = "alert alert-error audit-verify";
      status.textContent = t("audit.verify_broken", { seq: report.broken_at, reason: report.reason });
    }
  } catch (error) {
    status.className = "alert alert-error audit-verify";
    status.textContent = error.userMessage;
  }
}

function apply() {
  const form = $("#filter-form");
  const chosen = chosenFilters();
  if (!periodIsValid(chosen)) return showError(form, t("audit.bad_period"));
  showError(form, "");
  current = chosen;
  offset = 0;
  updateExportLinks(chosen);
  rememberFilters(chosen);
  return load();
}

function wire() {
  $("#filter-form").addEventListener("submit", (event) => {
    event.preventDefault();
    apply();
  });
  $("#reset-filters").addEventListener("click", () => {
    setFilters({});
    apply();
  });
  $("#prev-page").addEventListener("click", () => {
    offset = Math.max(0, offset - PAGE_SIZE);
    load();
  });
  $("#next-page").addEventListener("click", () => {
    offset += PAGE_SIZE;
    load();
  });
  $("#refresh").addEventListener("click", () => load());
  $("#verify").addEventListener("click", () => verify());
  for (const format of ["jsonl", "csv"]) {
    $(`#export-${format}`).addEventListener("click", () => {
      $("#export-status").textContent = t("audit.export_started");
    });
  }
  document.addEventListener("langchange", () => {
    setFilters(chosenFilters());
    $("#audit-lead").textContent = t(isAdmin() ? "audit.lead_admin" : "audit.lead_doctor");
    render();
  });
}

async function loadContext() {
  const [list, accounts] = await Promise.all([
    api("/api/consultations"),
    isAdmin() ? api("/api/users") : Promise.resolve({ users: [] }),
  ]);
  consultations = new Map(list.consultations.map((c) => [c.id, c]));
  users = new Map(accounts.users.map((u) => [u.id, u]));
}

async function start() {
  initI18n();
  me = await signedInStaff();
  if (!me) return;
  $("#chain-card").hidden = !isAdmin();
  $("#audit-lead").textContent = t(isAdmin() ? "audit.lead_admin" : "audit.lead_doctor");
  try {
    await loadContext();
  } catch (error) {
    if (error.code === "not_authenticated") return location.assign("/");
  }
  current = Object.fromEntries(
    [...new URLSearchParams(location.search)].filter(([name]) => FILTERS.includes(name)),
  );
  setFilters(current);
  updateExportLinks(current);
  wire();
  showOnly(["loading", "audit"], "audit");
  await load();
}

start();
