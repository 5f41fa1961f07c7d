// Fetch wrapper for the JSON API: sends the CSRF header, turns every error answer
// ({"error": {code, message, details}}) into an ApiError with a translated message.
import { t, has } from "./i18n.js";

let csrfToken = "";

export function setCsrf(token) {
  csrfToken = token || "";
}

export class ApiError extends Error {
  constructor(code, serverMessage, details, status) {
    super(serverMessage || code);
    this.code = code;
    this.serverMessage = serverMessage;
    this.details = details || {};
    this.status = status;
  }

  // The message a person reads, in the page's language.
  get userMessage() {
    return errorMessage(this.code, this.details, this.serverMessage);
  }
}

export function errorMessage(code, details = {}, fallback = "") {
  const key = `error.${code}`;
  if (has(key)) {
    let text = t(key, details);
    if (details.retry_after_minutes !== undefined && has(`${key}_retry`)) {
      text = t(`${key}_retry`, details);
    }
    return text;
  }
  return fallback || t("error.internal_error");
}

export async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError("network_error", "", {}, 0);
  }
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    // Locked after the idle time: the page's lock screen (staff-lock.js) takes over.
    if (error.code === "session_locked") window.dispatchEvent(new Event("staff-session-locked"));
    throw new ApiError(error.code || "internal_error", error.message, error.details, response.status);
  }
  return data;
}
