// The admin page's part for the clinic's passkey policy: who must sign in with a passkey, the
// authenticator code kept as a fallback or not, sign-in with a passkey alone. Read from
// GET /api/passkey-policy, saved with POST /api/passkey-policy (audited as
// passkey.policy_changed). The server refuses a policy that binds the admin saving it while
// they have no passkey (their session could then only enrol one).
import { t } from "./i18n.js";
import { api } from "./api.js";
import { $, showError, setBusy } from "./ui.js";

function fill(policy) {
  $("#passkey-required-for").value = policy.required_for;
  $("#passkey-totp-fallback").checked = policy.totp_fallback;
  $("#passkey-passwordless").checked = policy.passwordless;
}

async function save(event) {
  event.preventDefault();
  const form = event.target;
  const status = $("#passkey-policy-status");
  status.hidden = true;
  showError(form, "");
  setBusy(form, true);
  try {
    const body = {
      required_for: $("#passkey-required-for").value,
      totp_fallback: $("#passkey-totp-fallback").checked,
      passwordless: $("#passkey-passwordless").checked,
    };
    fill(await api("/api/passkey-policy", { method: "POST", body }));
    // data-i18n: a language change re-words it (i18n.js) as it does the static texts.
    status.dataset.i18n = "passkey_policy.saved";
    status.textContent = t("passkey_policy.saved");
    status.hidden = false;
  } catch (error) {
    const key = error.details && error.details.field === "required_for" ? "passkey_policy.own_first" : null;
    showError(form, key ? t(key) : error.userMessage);
  } finally {
    setBusy(form, false);
  }
}

/** Show the policy in effect and wire its form. */
export async function showPasskeyPolicy() {
  const form = $("#passkey-policy-form");
  form.addEventListener("submit", save);
  try {
    fill(await api("/api/passkey-policy"));
  } catch (error) {
    showError(form, error.userMessage);
  }
}
