// The call's privacy line, plain words first: "Your call is private: encrypted from end to
// end", with what that means and the technical details (DTLS-SRTP, the SRTP cipher the
// browser reports) one click away in a disclosure. The pages' badge is a <details> element
// (call.html, join.html) that this fills once and then only re-words, so a keyboard user's
// focus and an opened disclosure survive the updates (every 2 s, and on a language switch).
import { t } from "./i18n.js";
import { el } from "./ui.js";

/** Show `cipher` (null: not encrypted yet, nothing shown) in the page's badge. */
export function renderPrivacy(badge, cipher) {
  if (!badge.firstChild) {
    badge.append(
      el("summary", {}, el("span", { class: "call-privacy-title" })),
      el("p", { class: "call-privacy-how" }),
      el("p", { class: "call-privacy-tech" }),
    );
  }
  badge.hidden = !cipher;
  badge.querySelector(".call-privacy-title").textContent = t("callscreen.private");
  badge.querySelector(".call-privacy-how").textContent = t("callscreen.private_how");
  badge.querySelector(".call-privacy-tech").textContent = cipher ? t("callscreen.private_tech", { cipher }) : "";
}
