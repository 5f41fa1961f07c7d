// The enrolment or reset link's page (/enrol#<token>): the person chooses their password and
// adds the account to their authenticator app, then a code signs them in. The token is read
// from the fragment (never sent in a URL) and posted in a body.
import { initI18n, t } from "./i18n.js";
import { api } from "./api.js";
import { $, showOnly, focusHeading, showError, setBusy, wirePasswordToggles, copyText, formatDateTime } from "./ui.js";
import { groupKey, svgDataUrl } from "./totp-key.js";

const STEPS = ["loading", "link-enrol", "link-failed"];
const MIN_PASSWORD = 12;
const FIELD_OF_ERROR = {
  weak_password: "#password",
  common_password: "#password",
  invalid_totp: "#link-code",
};
const token = decodeURIComponent(location.hash.slice(1));

function show(step) {
  showOnly(STEPS, step);
  focusHeading(document.getElementById(step));
}

function fail(error) {
  const body = $("#link-failed-body");
  const key = error.code === "account_link_invalid" ? "error.account_link_invalid" : null;
  if (key) body.dataset.i18n = key;
  body.textContent = key ? t(key) : error.userMessage;
  show("link-failed");
}

function fillLink(details) {
  const purpose = details.purpose === "reset" ? "reset" : "enrolment";
  const title = $("#link-title");
  title.dataset.i18n = `link.title_${purpose}`;
  title.textContent = t(title.dataset.i18n);
  const lead = $("#link-lead");
  lead.textContent = t(`link.lead_${purpose}`, {
    name: details.display_name,
    username: details.username,
    until: formatDateTime(new Date(details.expires_at * 1000).toISOString()),
  });
  $("#qr").src = svgDataUrl(details.qr_svg);
  $("#secret").textContent = groupKey(details.secret);
  $("#secret").dataset.secret = details.secret;
  $("#otpauth-link").href = details.otpauth_uri;
}

function problem(password) {
  if (password.length < MIN_PASSWORD) return ["error.weak_password", "#password"];
  if (password !== $("#password2").value) return ["setup.mismatch", "#password2"];
  if (!/^\d{6}$/.test($("#link-code").value.trim())) return ["link.need_code", "#link-code"];
  return null;
}

async function submit(form) {
  const password = $("#password").value;
  const found = problem(password);
  if (found) {
    showError(form, t(found[0]));
    $(found[1]).focus();
    return;
  }
  showError(form, "");
  setBusy(form, true);
  try {
    await api("/api/account-link/complete", {
      method: "POST",
      body: { token, password, code: $("#link-code").value.trim() },
    });
    // Signed in: the fragment (the used link) leaves the address bar and the history entry.
    location.replace("/");
  } catch (error) {
    if (error.code === "account_link_invalid") return fail(error);
    showError(form, error.userMessage);
    // The message shows under the form: take the person to the field to change.
    const field = FIELD_OF_ERROR[error.code];
    if (field) $(field).focus();
  } finally {
    setBusy(form, false);
  }
}

async function start() {
  initI18n();
  wirePasswordToggles();
  if (!token) return fail({ code: "account_link_invalid" });
  let details;
  try {
    details = await api("/api/account-link", { method: "POST", body: { token } });
  } catch (error) {
    return fail(error);
  }
  fillLink(details);
  document.addEventListener("langchange", () => fillLink(details));
  const form = $("#link-form");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit(form);
  });
  $("#copy-secret").addEventListener("click", (event) => {
    copyText($("#secret").dataset.secret, event.target.nextElementSibling);
  });
  show("link-enrol");
  $("#password").focus();
}

start();
