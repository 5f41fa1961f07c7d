// "My account": a signed-in staff member changes their own password (POST /api/me/password),
// proving it with the current password and a fresh authenticator code.
import { initI18n, t } from "./i18n.js";
import { api } from "./api.js";
import { signedInStaff } from "./staff-session.js";
import { $, showOnly, showError, setBusy, wirePasswordToggles } from "./ui.js";

// The server's rule (security.password_min_length) decides; this only spares a round trip.
const MIN_LENGTH = 12;
// Which field to put the focus on when the server refuses for this reason.
const FIELD_OF_ERROR = {
  wrong_password: "#current-password",
  weak_password: "#new-password",
  password_unchanged: "#new-password",
  invalid_totp: "#account-code",
  totp_reused: "#account-code",
};

// A problem found in the form before asking the server: [message key, field], or null.
function formProblem(current, fresh, repeat, code) {
  if (!current) return ["account.need_current", "#current-password"];
  if (fresh.length < MIN_LENGTH) return ["error.weak_password", "#new-password"];
  if (fresh === current) return ["error.password_unchanged", "#new-password"];
  if (fresh !== repeat) return ["account.mismatch", "#repeat-password"];
  if (!/^[0-9]{6}$/.test(code)) return ["account.need_code", "#account-code"];
  return null;
}

async function submit(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const current = $("#current-password").value;
  const fresh = $("#new-password").value;
  const code = $("#account-code").value.replace(/\s/g, "");
  $("#password-done").hidden = true;
  const problem = formProblem(current, fresh, $("#repeat-password").value, code);
  if (problem) {
    showError(form, t(problem[0]));
    $(problem[1]).focus();
    return;
  }
  showError(form, "");
  setBusy(form, true);
  try {
    const body = { current_password: current, new_password: fresh, code };
    const answer = await api("/api/me/password", { method: "POST", body });
    form.reset();
    const done = $("#password-done");
    const ended = answer.sessions_ended;
    done.textContent = t(ended ? "account.changed" : "account.changed_alone", { count: ended });
    done.hidden = false;
    done.tabIndex = -1;
    done.focus();
  } catch (error) {
    if (error.code === "not_authenticated") return location.assign("/");
    showError(form, error.userMessage);
    $("#account-code").value = ""; // a code is good once: the next try needs a new one
    $(FIELD_OF_ERROR[error.code] || "#current-password").focus();
  } finally {
    setBusy(form, false);
  }
}

async function start() {
  initI18n();
  const me = await signedInStaff();
  if (!me) return;
  $("#account-identity").textContent = t("account.identity", {
    username: me.username,
    role: t(`role.${me.role}`),
  });
  wirePasswordToggles();
  $("#password-form").addEventListener("submit", submit);
  showOnly(["loading", "account"], "account");
}

start();
