// Staff home page: sign-in (password, then TOTP or enrolment), then the dashboard.
import { initI18n, t } from "./i18n.js";
import { api, setCsrf, ApiError } from "./api.js";
import { $, showOnly, focusHeading, showError, setBusy, wirePasswordToggles, copyText } from "./ui.js";
import { startDashboard } from "./dashboard.js";

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
  $("#username").focus();
}

// Group a base32 secret by 4 characters for reading aloud or typing.
function groupKey(secret) {
  return secret.replace(/(.{4})/g, "$1 ").trim();
}

function svgDataUrl(svg) {
  // btoa takes bytes as a Latin-1 string: encode as UTF-8 first.
  const bytes = new TextEncoder().encode(svg);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return `data:image/svg+xml;base64,${btoa(binary)}`;
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
    enterDashboard(me.user);
  } catch (error) {
    input.value = "";
    handleStepError(error, form);
    input.focus();
  } finally {
    setBusy(form, false);
  }
}

function enterDashboard(user) {
  show("dashboard");
  startDashboard(user);
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
      else {
        show("totp");
        $("#totp-code").focus();
      }
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
    enterDashboard(me.user);
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
