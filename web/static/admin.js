// Administration: list accounts with their status, create one (a one-time enrolment link),
// issue a reset link, unlock, change a role, disable/enable.
import { initI18n, t } from "./i18n.js";
import { api } from "./api.js";
import { signedInStaff } from "./staff-session.js";
import { $, el, showOnly, focusHeading, showError, setBusy, confirmDialog, formatDateTime } from "./ui.js";
import { statusCell, mfaText, showLink, wireLinkBox } from "./account-care.js";
import { showAssistants } from "./admin-assistants.js";
import { showClinicForm } from "./admin-clinic.js";
import { showPasskeyPolicy } from "./admin-passkeys.js";

let me = null;
let users = [];

let said = null; // the last confirmation, {key, vars}: said again on a language switch

function say(messageKey, vars) {
  said = { key: messageKey, vars };
  const box = $("#users-status");
  box.textContent = t(messageKey, vars);
  box.hidden = false;
  $("#users-error").hidden = true;
}

function fail(error) {
  if (error.code === "not_authenticated") return location.assign("/");
  const box = $("#users-error");
  box.textContent = error.userMessage;
  box.hidden = false;
  $("#users-status").hidden = true;
}

async function load() {
  try {
    users = (await api("/api/users")).users;
    render();
  } catch (error) {
    fail(error);
  }
}

function cell(labelKey, ...content) {
  return el("td", { "data-label": labelKey ? t(labelKey) : undefined }, ...content);
}

function render() {
  const rows = users.map((user) => {
    const name = user.display_name || user.username;
    const actions = el("div", { class: "actions" });
    if (user.id !== me.id) {
      const toggle = el(
        "button",
        {
          type: "button",
          class: `btn btn-small ${user.disabled ? "btn-secondary" : "btn-ghost btn-danger-text"}`,
          "aria-label": t(user.disabled ? "admin.enable_for" : "admin.disable_for", { name }),
        },
        t(user.disabled ? "admin.enable" : "admin.disable"),
      );
      toggle.addEventListener("click", () => setDisabled(user, !user.disabled));
      actions.append(toggle);
    }
    if (user.status === "locked") {
      const unlock = el(
        "button",
        { type: "button", class: "btn btn-secondary btn-small", "aria-label": t("admin.unlock_for", { name }) },
        t("admin.unlock"),
      );
      unlock.addEventListener("click", () => unlockUser(user));
      actions.append(unlock);
    }
    if (user.id !== me.id && !user.disabled) {
      const pending = user.link_purpose === "enrolment";
      const reset = el(
        "button",
        {
          type: "button",
          class: "btn btn-ghost btn-small",
          "aria-label": t(pending ? "admin.new_link_for" : "admin.reset_link_for", { name }),
        },
        t(pending ? "admin.new_link" : "admin.reset_link"),
      );
      reset.addEventListener("click", () => issueResetLink(user, pending));
      actions.append(reset);
    }
    return el(
      "tr",
      { class: user.disabled ? "is-disabled" : "", dataset: { username: user.username } },
      cell(
        null,
        el("strong", {}, name),
        el("br"),
        el("span", { class: "muted small" }, user.username),
        user.id === me.id ? el("span", { class: "muted small" }, ` · ${t("admin.you")}`) : null,
      ),
      cell("admin.col_role", user.id === me.id ? t(`role.${user.role}`) : roleSelector(user, name)),
      cell(
        "admin.col_mfa",
        el("span", { class: `badge ${user.mfa_enrolled ? "badge-live" : "badge-warning"}` }, mfaText(user)),
      ),
      cell(
        "admin.col_state",
        ...statusCell(user),
        el("span", { class: "visually-hidden" }, ` ${t("admin.created", { when: formatDateTime(new Date(user.created_at * 1000), { dateStyle: "medium" }) })}`),
      ),
      cell(null, actions),
    );
  });
  $("#users-body").replaceChildren(...rows);
  showAssistants(users, { onSaved: (name) => load().then(() => say("assist.saved", { name })), onError: fail });
}

// Own role is shown, not offered: the server refuses it, so nobody demotes themself by mistake.
function roleSelector(user, name) {
  const select = el(
    "select",
    { class: "role-select", "aria-label": t("admin.role_for", { name }) },
    ...["doctor", "assistant", "admin"].map((role) => el("option", { value: role }, t(`role.${role}`))),
  );
  select.value = user.role;
  select.addEventListener("change", () => changeRole(user, select));
  return select;
}

async function changeRole(user, select) {
  const name = user.display_name || user.username;
  const role = select.value;
  const ok = await confirmDialog(
    t("admin.role_title", { name, role: t(`role.${role}`) }),
    t("admin.role_body"),
    t("admin.role_change"),
  );
  if (!ok) {
    select.value = user.role;
    return;
  }
  try {
    await api(`/api/users/${encodeURIComponent(user.id)}/role`, { method: "POST", body: { role } });
    say("admin.role_done", { name, role: t(`role.${role}`) });
    await load();
  } catch (error) {
    select.value = user.role;
    fail(error);
  }
}

async function setDisabled(user, disabled) {
  const name = user.display_name || user.username;
  if (disabled) {
    const ok = await confirmDialog(t("admin.disable_title", { name }), t("admin.disable_body"), t("admin.disable"));
    if (!ok) return;
  }
  try {
    await api(`/api/users/${encodeURIComponent(user.id)}/${disabled ? "disable" : "enable"}`, { method: "POST" });
    say(disabled ? "admin.disabled_done" : "admin.enabled_done", { name });
    await load();
  } catch (error) {
    fail(error);
  }
}

async function issueResetLink(user, pending) {
  const name = user.display_name || user.username;
  const kind = pending ? "new_link" : "reset_link";
  const ok = await confirmDialog(t(`admin.${kind}_title`, { name }), t(`admin.${kind}_body`), t(`admin.${kind}`));
  if (!ok) return;
  try {
    const answer = await api(`/api/users/${encodeURIComponent(user.id)}/reset-link`, { method: "POST" });
    say(pending ? "admin.new_link_done" : "admin.reset_link_done", { name });
    showLink(answer);
    await load();
  } catch (error) {
    fail(error);
  }
}

async function unlockUser(user) {
  const name = user.display_name || user.username;
  try {
    await api(`/api/users/${encodeURIComponent(user.id)}/unlock`, { method: "POST" });
    say("admin.unlocked_done", { name });
    await load();
  } catch (error) {
    fail(error);
  }
}

function wire() {
  const form = $("#user-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const username = $("#new-username").value.trim();
    if (username.length < 3) return showError(form, t("setup.username_hint"));
    showError(form, "");
    setBusy(form, true);
    try {
      const answer = await api("/api/users", {
        method: "POST",
        body: {
          username,
          role: $("#new-role").value,
          display_name: $("#new-display-name").value.trim(),
        },
      });
      form.reset();
      say("admin.created_done", { name: answer.user.display_name || answer.user.username });
      await load();
      showLink(answer);
    } catch (error) {
      if (error.code === "not_authenticated") return location.assign("/");
      showError(form, error.userMessage);
    } finally {
      setBusy(form, false);
    }
  });
  wireLinkBox();
  document.addEventListener("langchange", () => {
    if (users.length) render();
    if (said && !$("#users-status").hidden) say(said.key, said.vars);
  });
}

async function start() {
  initI18n();
  me = await signedInStaff();
  if (!me) return;
  if (me.role !== "admin") {
    showOnly(["loading", "denied", "admin"], "denied");
    focusHeading($("#denied"));
    return;
  }
  wire();
  showOnly(["loading", "denied", "admin"], "admin");
  showClinicForm();
  showPasskeyPolicy();
  await load();
}

start();
