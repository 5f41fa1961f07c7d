// First-run page: the one-time link /setup/<token> creates the first administrator,
// then hands over to TOTP enrolment on the sign-in page.
import { initI18n, t } from "./i18n.js";
import { api } from "./api.js";
import { $, showError, setBusy, showOnly, focusHeading, wirePasswordToggles } from "./ui.js";

const MIN_PASSWORD = 12;
const token = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");

function fail(codeKey) {
  $("#setup-failed-body").dataset.i18n = codeKey;
  $("#setup-failed-body").textContent = t(codeKey);
  showOnly(["setup", "setup-failed"], "setup-failed");
  focusHeading($("#setup-failed"));
}

async function start() {
  initI18n();
  wirePasswordToggles();
  try {
    const status = await api("/api/setup");
    if (!status.needs_setup) return fail("error.setup_done");
  } catch {
    /* the POST below will say what is wrong */
  }
  const form = $("#setup-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const username = $("#username").value.trim();
    const password = $("#password").value;
    if (username.length < 3) return showError(form, t("setup.username_hint"));
    if (password.length < MIN_PASSWORD) return showError(form, t("error.weak_password"));
    if (password !== $("#password2").value) return showError(form, t("setup.mismatch"));
    showError(form, "");
    setBusy(form, true);
    try {
      await api("/api/setup", {
        method: "POST",
        body: {
          setup_token: token,
          username,
          password,
          display_name: $("#display-name").value.trim(),
        },
      });
      location.assign("/#enrol");
    } catch (error) {
      if (error.code === "setup_done" || error.code === "setup_link_invalid") {
        fail(`error.${error.code}`);
      } else {
        showError(form, error.userMessage);
      }
    } finally {
      setBusy(form, false);
    }
  });
  $("#display-name").focus();
}

start();
