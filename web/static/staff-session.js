// The signed-in staff member of a staff page (administration, audit trail): the name in the
// top bar, the CSRF token for the API, the sign-out button.
import { api, setCsrf } from "./api.js";
import { $ } from "./ui.js";

// Answers the signed-in user, or null once the browser is on its way to the sign-in page.
export async function signedInStaff() {
  let answer;
  try {
    answer = await api("/api/me");
  } catch {
    location.assign("/");
    return null;
  }
  setCsrf(answer.csrf_token);
  const me = answer.user;
  $("#who").textContent = me.display_name || me.username;
  $("#who").hidden = false;
  $("#signout").hidden = false;
  const accountLink = $("#account-link"); // the account page itself has none
  if (accountLink) accountLink.hidden = false;
  $("#signout").addEventListener("click", async () => {
    try {
      await api("/api/auth/logout", { method: "POST" });
    } finally {
      location.assign("/");
    }
  });
  return me;
}
