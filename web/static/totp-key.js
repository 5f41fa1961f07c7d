// Showing an authenticator secret: as a QR code image and as a key to type by hand
// (the sign-in page's enrolment and the enrolment/reset link page).

// Group a base32 secret by 4 characters for reading aloud or typing.
export function groupKey(secret) {
  return secret.replace(/(.{4})/g, "$1 ").trim();
}

export function svgDataUrl(svg) {
  // btoa takes bytes as a Latin-1 string: encode as UTF-8 first.
  const bytes = new TextEncoder().encode(svg);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return `data:image/svg+xml;base64,${btoa(binary)}`;
}
