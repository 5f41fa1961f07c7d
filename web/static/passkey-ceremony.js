// The two WebAuthn ceremonies (enrol, sign in) in the JSON forms the server speaks: options as
// read by PublicKeyCredential.parse*OptionsFromJSON, answers as credential.toJSON(). Browsers
// without those (older Safari) get the same conversion done here, base64url field by field.
import { t } from "./i18n.js";
import { api } from "./api.js";

// Why this page cannot use a passkey (an i18n key), or null when it can. A passkey is bound to
// the page's host name, and an IP address is none: the server would answer passkey_unavailable.
export function passkeyProblem() {
  if (!window.PublicKeyCredential || !navigator.credentials || !window.isSecureContext) {
    return "passkeys.no_webauthn";
  }
  const host = location.hostname;
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.includes(":") || host.startsWith("[")) {
    return "passkeys.ip_address";
  }
  return null;
}

function fromBase64url(text) {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

function toBase64url(buffer) {
  let binary = "";
  for (const byte of new Uint8Array(buffer)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

const withIds = (list) => (list || []).map((c) => ({ ...c, id: fromBase64url(c.id) }));

function creationOptions(json) {
  if (typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function") {
    return PublicKeyCredential.parseCreationOptionsFromJSON(json);
  }
  return {
    ...json,
    challenge: fromBase64url(json.challenge),
    user: { ...json.user, id: fromBase64url(json.user.id) },
    excludeCredentials: withIds(json.excludeCredentials),
  };
}

function requestOptions(json) {
  if (typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function") {
    return PublicKeyCredential.parseRequestOptionsFromJSON(json);
  }
  return { ...json, challenge: fromBase64url(json.challenge), allowCredentials: withIds(json.allowCredentials) };
}

function credentialJson(credential) {
  if (typeof credential.toJSON === "function") return credential.toJSON();
  const r = credential.response;
  const response = { clientDataJSON: toBase64url(r.clientDataJSON) };
  if (r.attestationObject) {
    response.attestationObject = toBase64url(r.attestationObject);
    response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
  } else {
    response.authenticatorData = toBase64url(r.authenticatorData);
    response.signature = toBase64url(r.signature);
    if (r.userHandle) response.userHandle = toBase64url(r.userHandle);
  }
  return {
    id: credential.id,
    rawId: toBase64url(credential.rawId),
    type: credential.type,
    authenticatorAttachment: credential.authenticatorAttachment || undefined,
    clientExtensionResults: credential.getClientExtensionResults(),
    response,
  };
}

/** A new passkey made by the browser for these options (POST /api/me/passkeys/options). */
export async function createPasskey(publicKey) {
  const credential = await navigator.credentials.create({ publicKey: creationOptions(publicKey) });
  return credentialJson(credential);
}

/** The browser's signature with one of the account's passkeys (POST /api/auth/passkey/options). */
export async function usePasskey(publicKey) {
  const credential = await navigator.credentials.get({ publicKey: requestOptions(publicKey) });
  return credentialJson(credential);
}

/** What to tell the person when the browser's side of a ceremony failed (a DOMException). */
export function browserFailure(error) {
  if (error && error.name === "NotAllowedError") return t("passkeys.cancelled");
  if (error && error.name === "InvalidStateError") return t("passkeys.already");
  if (error && error.name === "SecurityError") return t("passkeys.ip_address");
  return t("passkeys.failed");
}

/** Why the browser's side failed, worded for the person (browserFailure), as an error. */
export class PasskeyBrowserFailure extends Error {}

/** A passkey's signature over a challenge the server gives at ``optionsPath`` (POST): what
 * navigator.credentials.get() answered, as JSON. An API error is thrown as api() throws it;
 * the browser's own failure as a PasskeyBrowserFailure carrying the message to show. */
export async function signWithPasskey(optionsPath) {
  const options = await api(optionsPath, { method: "POST" });
  try {
    return await usePasskey(options.public_key);
  } catch (error) {
    throw new PasskeyBrowserFailure(browserFailure(error), { cause: error });
  }
}

/** The message to show for an error of signWithPasskey() or of the request after it. */
export function passkeyFailureMessage(error) {
  if (error instanceof PasskeyBrowserFailure) return browserFailure(error.cause); // in today's language
  return error.userMessage || t("error.internal_error");
}
