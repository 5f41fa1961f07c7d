// "My account": a signed-in staff member changes their own password (POST /api/me/password),
// proving it with the current password and a fresh authenticator code, or with one of their
// passkeys instead, and manages their passkeys (account-passkeys.js).
import { initI18n, t } from "./i18n.js";
import { api } from "./api.js";
import { signedInStaff } from "./staff-session.js";
import { startPasskeys } from "./account-passkeys.js";
import { passkeyProblem, signWithPasskey, passkeyFailureMessage } from "./passkey-ceremony.js";
import { $, showOnly, showError, setBusy, say, wirePasswordToggles } from "./ui.js";

// The server's rule (security.password_min_length) decides; this only spares a round trip.
const MIN_LENGTH = 12;
// Which field to put the focus on when the server refuses for this reason.
const FIELD_OF_ERROR = {
  wrong_password: "#current-password",
  weak_password: "#new-password",
  common_password: "#new-password",
  password_unchanged: "#new-password",
  invalid_totp: "#account-code",
  totp_reused: "#account-code",
  passkey_required: "#password-passkey-use", // the clinic keeps no code for this account
};

// A problem of the new password itself: [message key, field], or null.
function newPasswordProblem(fresh, repeat) {
  if (fresh.length < MIN_LENGTH) return ["error.weak_password", "#new-password"];
  if (fresh !== repeat) return ["account.mismatch", "#repeat-password"];
  return null;
}

// A problem found in the form before asking the server: [message key, field], or null.
function formProblem(current, fresh, repeat, code) {
  if (!current) return ["account.need_current", "#current-password"];
  if (fresh.length >= MIN_LENGTH && fresh === current) return ["error.password_unchanged", "#new-password"];
  return newPasswordProblem(fresh, repeat) || (/^[0-9]{6}$/.test(code) ? null : ["account.need_code", "#account-code"]);
}

function refuse(form, problem) {
  if (!problem) return false;
  showError(form, () => t(problem[0]));
  $(problem[1]).focus();
  return true;
}

async function submit(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const current = $("#current-password").value;
  const fresh = $("#new-password").value;
  const code = $("#account-code").value.replace(/\s/g, "");
  $("#password-done").hidden = true;
  if (refuse(form, formProblem(current, fresh, $("#repeat-password").value, code))) return;
  await change(form, () => ({ current_password: current, new_password: fresh, code }), "#current-password");
}

// The passkey instead of the current password and the code: the browser asks for the
// fingerprint, face or PIN (user verification), the server checks it as at the lock screen.
async function submitWithPasskey() {
  const form = $("#password-form");
  const fresh = $("#new-password").value;
  $("#password-done").hidden = true;
  if (refuse(form, newPasswordProblem(fresh, $("#repeat-password").value))) return;
  const credential = async () => ({
    new_password: fresh,
    credential: await signWithPasskey("/api/auth/reauth/options"),
  });
  await change(form, credential, "#password-passkey-use");
}

// Ask the server; ``body()`` gives what to send (it may ask the passkey first), ``fallback`` is
// the field to focus on a refusal that names none.
async function change(form, body, fallback) {
  showError(form, "");
  setBusy(form, true);
  try {
    const answer = await api("/api/me/password", { method: "POST", body: await body() });
    form.reset();
    const done = $("#password-done");
    const ended = answer.sessions_ended;
    say(done, () => t(ended ? "account.changed" : "account.changed_alone", { count: ended }));
    done.hidden = false;
    done.tabIndex = -1;
    done.focus();
  } catch (error) {
    if (error.code === "not_authenticated") return location.assign("/");
    showError(form, () => passkeyFailureMessage(error)); // the server's words, or the browser's
    $("#account-code").value = ""; // a code is good once: the next try needs a new one
    $(FIELD_OF_ERROR[error.code] || fallback).focus();
  } finally {
    setBusy(form, false);
  }
}

async function start() {
  initI18n();
  const me = await signedInStaff();
  if (!me) return;
  const identity = () => {
    $("#account-identity").textContent = t("account.identity", {
      username: me.username,
      role: t(`role.${me.role}`),
    });
  };
  identity();
  document.addEventListener("langchange", identity);
  wirePasswordToggles();
  $("#password-form").addEventListener("submit", submit);
  $("#password-passkey-use").addEventListener("click", submitWithPasskey);
  // Offered once the account has a passkey this page can use (account-passkeys.js tells).
  document.addEventListener("passkeyschange", (event) => {
    $("#password-passkey").hidden = event.detail.count === 0 || passkeyProblem() !== null;
  });
  await startPasskeys();
  showOnly(["loading", "account"], "account");
}

start();
