// Staff home page: sign-in (password, then TOTP, a passkey, or enrolment), then the dashboard.
import { initI18n, t } from "./i18n.js";
import { api, setCsrf, ApiError } from "./api.js";
import { $, showOnly, focusHeading, showError, setBusy, wirePasswordToggles, copyText } from "./ui.js";
import { startDashboard } from "./dashboard.js";
import { groupKey, svgDataUrl } from "./totp-key.js";
import { passkeyProblem, signWithPasskey, passkeyFailureMessage } from "./passkey-ceremony.js";

const STEPS = ["loading", "signin", "enrol", "totp", "dashboard"];

function show(step) {
  showOnly(STEPS, step);
  focusHeading(document.getElementById(step));
}

function showSignIn(noticeKey) {
  const notice = $("#signin-notice");
  notice.hidden = !noticeKey;
  if (noticeKey) {
    notice.dataset.i18n = noticeKey;
    notice.textContent = t(noticeKey);
  } else {
    delete notice.dataset.i18n;
  }
  $("#password").value = "";
  show("signin");
  offerPasswordless();
  $("#username").focus();
}

async function startEnrolment() {
  try {
    const enrolment = await api("/api/auth/enrol", { method: "POST" });
    $("#qr").src = svgDataUrl(enrolment.qr_svg);
    $("#secret").textContent = groupKey(enrolment.secret);
    $("#secret").dataset.secret = enrolment.secret;
    show("enrol");
  } catch (error) {
    handleStepError(error, null);
  }
}

// login_expired means the password step has to be done again.
function handleStepError(error, form) {
  if (error instanceof ApiError && error.code === "login_expired") {
    showSignIn("signin.expired");
    return;
  }
  if (form) showError(form, error.userMessage || t("error.internal_error"));
  else showSignIn();
}

async function submitCode(form, input) {
  const code = input.value.replace(/\s+/g, "");
  if (!/^\d{6}$/.test(code)) {
    showError(form, t("totp.need_six"));
    input.focus();
    return;
  }
  showError(form, "");
  setBusy(form, true);
  try {
    const me = await api("/api/auth/totp", { method: "POST", body: { code } });
    setCsrf(me.csrf_token);
    history.replaceState(null, "", "/");
    enterDashboard(me);
  } catch (error) {
    input.value = "";
    handleStepError(error, form);
    input.focus();
  } finally {
    setBusy(form, false);
  }
}

const showPasskeyError = (message) => showBoxMessage("#passkey-error", message);

// Step 2: the code, and first of all the passkey when the account has one. A page opened at
// an IP address cannot use it (passkeyProblem): it says so and leaves the code.
// With passkeyOnly (the clinic keeps no code fallback for this account) the code is not
// offered: the server would refuse it.
function showSecondStep(hasPasskey, passkeyOnly = false) {
  const problem = hasPasskey ? passkeyProblem() : null;
  const offered = hasPasskey && !problem;
  $("#passkey-choice").hidden = !hasPasskey;
  $("#totp-form").hidden = passkeyOnly;
  $("#passkey-choice .passkey-or").hidden = passkeyOnly;
  $("#passkey-use").hidden = !offered;
  showPasskeyError(problem ? t(problem) : "");
  for (const [id, passkeyKey, codeKey] of [
    ["#totp-title", "passkeys.step_title", "totp.title"],
    ["#totp-lead", "passkeys.step_lead", "totp.lead"],
  ]) {
    const node = $(id);
    node.dataset.i18n = offered ? passkeyKey : codeKey;
    node.textContent = t(node.dataset.i18n);
  }
  $("#totp-submit").className = `btn ${offered ? "btn-secondary" : "btn-primary"} btn-block`;
  show("totp");
  (offered ? $("#passkey-use") : $("#totp-code")).focus();
}

// The whole sign-in with a passkey, when the clinic allows it: no username, no password (the
// browser offers the keys it holds for this site; the fingerprint or PIN stands for them).
async function offerPasswordless() {
  let methods;
  try {
    methods = await api("/api/auth/methods");
  } catch {
    return; // the password form is there whatever this says
  }
  $("#passwordless").hidden = !methods.passwordless || passkeyProblem() !== null;
}

function showBoxMessage(selector, message) {
  const box = $(selector);
  box.textContent = message;
  box.hidden = !message;
}

// Sign in with a passkey: the options at `${path}/options`, the browser's signature, then
// `path`; a failure shows in ``errorBox`` (login_expired: back to the password step).
async function passkeySignIn(button, errorBox, path) {
  showBoxMessage(errorBox, "");
  button.disabled = true;
  try {
    const credential = await signWithPasskey(`${path}/options`);
    const me = await api(path, { method: "POST", body: { credential } });
    setCsrf(me.csrf_token);
    history.replaceState(null, "", "/");
    enterDashboard(me);
  } catch (error) {
    if (error instanceof ApiError && error.code === "login_expired") showSignIn("signin.expired");
    else showBoxMessage(errorBox, passkeyFailureMessage(error));
  } finally {
    button.disabled = false;
  }
}

// A session the clinic's policy binds to enrol a passkey first reaches My account only.
function enterDashboard(me) {
  if (me.passkey_enrolment_required) {
    location.assign("/account#passkeys");
    return;
  }
  show("dashboard");
  startDashboard(me.user);
}

function wireForms() {
  const signinForm = $("#signin-form");
  signinForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const username = $("#username").value.trim();
    const password = $("#password").value;
    if (!username || !password) {
      showError(signinForm, t("signin.fill_both"));
      return;
    }
    showError(signinForm, "");
    $("#signin-notice").hidden = true;
    setBusy(signinForm, true);
    try {
      const answer = await api("/api/auth/login", {
        method: "POST",
        body: { username, password },
      });
      $("#password").value = "";
      if (answer.next === "enrol") await startEnrolment();
      else showSecondStep(answer.passkey === true, answer.passkey_only === true);
    } catch (error) {
      showError(signinForm, error.userMessage);
    } finally {
      setBusy(signinForm, false);
    }
  });

  const totpForm = $("#totp-form");
  totpForm.addEventListener("submit", (event) => {
    event.preventDefault();
    submitCode(totpForm, $("#totp-code"));
  });
  const enrolForm = $("#enrol-form");
  enrolForm.addEventListener("submit", (event) => {
    event.preventDefault();
    submitCode(enrolForm, $("#enrol-code"));
  });
  $("#totp-back").addEventListener("click", () => showSignIn());
  $("#passkey-use").addEventListener("click", (event) => passkeySignIn(event.currentTarget, "#passkey-error", "/api/auth/passkey"));
  $("#passwordless-use").addEventListener("click", (event) => passkeySignIn(event.currentTarget, "#passwordless-error", "/api/auth/passwordless"));
  $("#copy-secret").addEventListener("click", (event) => {
    copyText($("#secret").dataset.secret, event.target.nextElementSibling);
  });
  wirePasswordToggles();
}

async function start() {
  initI18n();
  wireForms();
  try {
    const me = await api("/api/me");
    setCsrf(me.csrf_token);
    enterDashboard(me);
    return;
  } catch (error) {
    if (!(error instanceof ApiError) || error.code !== "not_authenticated") {
      showSignIn();
      showError($("#signin-form"), error.userMessage);
      return;
    }
  }
  // Arriving from the first-run setup page: the password step is already done.
  if (location.hash === "#enrol") {
    history.replaceState(null, "", "/");
    await startEnrolment();
    return;
  }
  showSignIn();
}

start();
