// My account's "Passkeys" section: the account's passkeys (name, when added, when last used),
// each removable after a confirmation, and "Add a passkey" (a name, then the browser's
// navigator.credentials.create()). The server refuses removing the last second factor.
import { t } from "./i18n.js";
import { api } from "./api.js";
import { $, el, showError, setBusy, say, confirmDialog, formatDateTime } from "./ui.js";
import { passkeyProblem, createPasskey, browserFailure } from "./passkey-ceremony.js";

const WHEN = { dateStyle: "medium", timeStyle: "short" };
let passkeys = [];
// The last success message, kept as key and values so a language change re-words it.
let done = null;

const when = (seconds) => formatDateTime(new Date(seconds * 1000), WHEN);

function item(passkey) {
  const used = passkey.last_used_at
    ? t("passkeys.last_used", { when: when(passkey.last_used_at) })
    : t("passkeys.never_used");
  const remove = el(
    "button",
    { type: "button", class: "btn btn-secondary btn-small", "aria-label": t("passkeys.remove_for", { name: passkey.name }) },
    t("passkeys.remove"),
  );
  remove.addEventListener("click", () => removePasskey(passkey));
  return el(
    "li",
    { class: "passkey-item", dataset: { id: passkey.id } },
    el(
      "div",
      { class: "passkey-who" },
      el("span", { class: "passkey-name" }, passkey.name),
      el("span", { class: "muted small" }, t("passkeys.created", { when: when(passkey.created_at) })),
      el("span", { class: "muted small passkey-used" }, used),
    ),
    remove,
  );
}

function render() {
  $("#passkey-list").replaceChildren(...passkeys.map(item));
  $("#passkey-list").hidden = passkeys.length === 0;
  $("#passkeys-none").hidden = passkeys.length > 0;
  const box = $("#passkeys-done");
  box.hidden = !done;
  if (done) box.textContent = t(done.key, done.vars);
}

function show(list, message = null) {
  passkeys = list.passkeys;
  done = message;
  // The password form offers "Confirm with my passkey" while there is one (account.js).
  document.dispatchEvent(new CustomEvent("passkeyschange", { detail: { count: passkeys.length } }));
  $("#passkeys-error").hidden = true;
  render();
}

function fail(error) {
  if (error.code === "not_authenticated") return location.assign("/");
  const box = $("#passkeys-error");
  say(box, () => error.userMessage);
  box.hidden = false;
}

async function removePasskey(passkey) {
  const name = passkey.name;
  const ok = await confirmDialog(
    t("passkeys.remove_title", { name }),
    t("passkeys.remove_body"),
    t("passkeys.remove"),
  );
  if (!ok) return;
  try {
    const list = await api(`/api/me/passkeys/${encodeURIComponent(passkey.id)}/delete`, { method: "POST" });
    show(list, { key: "passkeys.removed", vars: { name } });
  } catch (error) {
    fail(error);
  }
}

async function addPasskey(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const name = $("#passkey-name").value.trim();
  $("#passkeys-done").hidden = true;
  $("#passkeys-error").hidden = true;
  if (!name) {
    showError(form, t("passkeys.need_name"));
    $("#passkey-name").focus();
    return;
  }
  showError(form, "");
  setBusy(form, true);
  try {
    const options = await api("/api/me/passkeys/options", { method: "POST" });
    let credential;
    try {
      credential = await createPasskey(options.public_key);
    } catch (error) {
      showError(form, () => browserFailure(error));
      return;
    }
    const list = await api("/api/me/passkeys", { method: "POST", body: { name, credential } });
    form.reset();
    show(list, { key: "passkeys.added", vars: { name } });
  } catch (error) {
    if (error.code === "not_authenticated") return location.assign("/");
    showError(form, () => error.userMessage);
  } finally {
    setBusy(form, false);
  }
}

/** Fill the section; where this browser or address cannot make a passkey, say why instead of
 * offering "Add" (the list stays: a passkey made elsewhere can still be removed here). */
// The clinic's policy binds this account to a passkey and it has none: nothing else opens
// until it enrols one (the server answers passkey_enrolment_required elsewhere).
async function showRequired() {
  let me;
  try {
    me = await api("/api/me");
  } catch {
    return;
  }
  const box = $("#passkeys-required");
  box.hidden = !me.passkey_enrolment_required;
  if (me.passkey_enrolment_required) box.scrollIntoView({ block: "center" });
}

export async function startPasskeys() {
  const problem = passkeyProblem();
  if (problem) {
    const box = $("#passkeys-problem");
    box.dataset.i18n = problem;
    box.textContent = t(problem);
    box.hidden = false;
    $("#passkey-form").hidden = true;
  }
  $("#passkey-form").addEventListener("submit", addPasskey);
  document.addEventListener("langchange", render);
  showRequired();
  try {
    show(await api("/api/me/passkeys"));
  } catch (error) {
    fail(error);
  }
}
