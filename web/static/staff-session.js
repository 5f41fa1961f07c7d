// The signed-in staff member of a staff page (dashboard, administration, audit trail, account):
// the staff top bar (web/shell.html), the CSRF token for the API, the sign-out button.
import { api, setCsrf } from "./api.js";
import { $ } from "./ui.js";

/** Show the staff top bar's name and the links that apply: every page's but this one's, the
 * administration to admins only. They are all hidden until the user is known. */
export function showStaffTopbar(user) {
  $("#who").textContent = user.display_name || user.username;
  $("#who").hidden = false;
  $("#signout").hidden = false;
  for (const id of ["dashboard-link", "admin-link", "recordings-link", "audit-link", "account-link"]) {
    const link = document.getElementById(id);
    if (!link) continue;
    const here = link.getAttribute("href") === location.pathname;
    // Recordings: the doctor's and the admins' only (an allow-list, as on the server).
    const recordings = id === "recordings-link" && !["doctor", "admin"].includes(user.role);
    link.hidden = here || (id === "admin-link" && user.role !== "admin") || recordings;
  }
}

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
  showStaffTopbar(me);
  $("#signout").addEventListener("click", async () => {
    try {
      await api("/api/auth/logout", { method: "POST" });
    } finally {
      location.assign("/");
    }
  });
  return me;
}
