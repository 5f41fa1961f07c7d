// Administration: list accounts, create one, change a role, disable/enable, reset two-factor
// authentication.
import { initI18n, t } from "./i18n.js";
import { api } from "./api.js";
import { signedInStaff } from "./staff-session.js";
import { $, el, showOnly, focusHeading, showError, setBusy, confirmDialog, formatDateTime } from "./ui.js";

let me = null;
let users = [];

function say(messageKey, vars) {
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
    if (user.mfa_enrolled) {
      const reset = el(
        "button",
        { type: "button", class: "btn btn-ghost btn-small", "aria-label": t("admin.reset_mfa_for", { name }) },
        t("admin.reset_mfa"),
      );
      reset.addEventListener("click", () => resetMfa(user));
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
        el("span", { class: `badge ${user.mfa_enrolled ? "badge-live" : "badge-warning"}` }, t(user.mfa_enrolled ? "admin.mfa_on" : "admin.mfa_pending")),
      ),
      cell(
        "admin.col_state",
        el("span", { class: `badge ${user.disabled ? "badge-danger" : ""}` }, t(user.disabled ? "admin.disabled" : "admin.active")),
        el("span", { class: "visually-hidden" }, ` ${t("admin.created", { when: formatDateTime(new Date(user.created_at * 1000), { dateStyle: "medium" }) })}`),
      ),
      cell(null, actions),
    );
  });
  $("#users-body").replaceChildren(...rows);
}

// Own role is shown, not offered: the server refuses it, so nobody demotes themself by mistake.
function roleSelector(user, name) {
  const select = el(
    "select",
    { class: "role-select", "aria-label": t("admin.role_for", { name }) },
    ...["doctor", "admin"].map((role) => el("option", { value: role }, t(`role.${role}`))),
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

async function resetMfa(user) {
  const name = user.display_name || user.username;
  const ok = await confirmDialog(t("admin.reset_title", { name }), t("admin.reset_body"), t("admin.reset_mfa"));
  if (!ok) return;
  try {
    await api(`/api/users/${encodeURIComponent(user.id)}/reset-mfa`, { method: "POST" });
    say("admin.reset_done", { name });
    await load();
  } catch (error) {
    fail(error);
  }
}

// 16 characters from an alphabet without look-alikes (no 0/O, 1/l/I).
function generatePassword() {
  const alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  const chars = [...bytes].map((b) => alphabet[b % alphabet.length]);
  return `${chars.slice(0, 4).join("")}-${chars.slice(4, 8).join("")}-${chars.slice(8, 12).join("")}-${chars.slice(12).join("")}`;
}

function wire() {
  const form = $("#user-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const username = $("#new-username").value.trim();
    const password = $("#new-password").value;
    if (username.length < 3) return showError(form, t("setup.username_hint"));
    if (password.length < 12) return showError(form, t("error.weak_password"));
    showError(form, "");
    setBusy(form, true);
    try {
      const user = await api("/api/users", {
        method: "POST",
        body: {
          username,
          password,
          role: $("#new-role").value,
          display_name: $("#new-display-name").value.trim(),
        },
      });
      form.reset();
      say("admin.created_done", { name: user.display_name || user.username });
      await load();
    } catch (error) {
      if (error.code === "not_authenticated") return location.assign("/");
      showError(form, error.userMessage);
    } finally {
      setBusy(form, false);
    }
  });
  $("#generate").addEventListener("click", () => {
    $("#new-password").value = generatePassword();
    $("#new-password").focus();
  });
  document.addEventListener("langchange", () => users.length && render());
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
  await load();
}

start();
