// The encryption short code: both participants compute the same 6 digits from the two DTLS
// certificate fingerprints of their connection and can compare them aloud. A party in the
// middle (a rogue signaling server) would have to present its own certificate to each side,
// so the two pages would then show different codes.
//
// Code = the first 4 bytes of SHA-256(sorted fingerprints joined by "\n"), as a big-endian
// number modulo 1 000 000, written as two groups of 3 digits ("042 917").
// tests/browser/test_call_features.py computes it in Python from the same SDP lines.

const FINGERPRINT = /^a=fingerprint:(\S+)\s+(\S+)\s*$/im;

/** "sha-256 AB:CD:…" (algorithm lower case, hex upper case) from an SDP, or null. */
export function fingerprintOf(sdp) {
  const match = FINGERPRINT.exec(sdp || "");
  return match ? `${match[1].toLowerCase()} ${match[2].toUpperCase()}` : null;
}

/** The 6-digit code of two fingerprints, the same whichever side computes it. */
export async function shortCode(fingerprintA, fingerprintB) {
  const input = [fingerprintA, fingerprintB].sort().join("\n");
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(input));
  const number = new DataView(digest).getUint32(0) % 1_000_000;
  const digits = String(number).padStart(6, "0");
  return `${digits.slice(0, 3)} ${digits.slice(3)}`;
}

/** The code of a connection whose both descriptions are set, or null before that. */
export async function connectionCode(pc) {
  const local = fingerprintOf(pc.localDescription && pc.localDescription.sdp);
  const remote = fingerprintOf(pc.remoteDescription && pc.remoteDescription.sdp);
  if (!local || !remote) return null;
  return shortCode(local, remote);
}

/**
 * Shows the code of the current connection in `container` (hidden while there is none).
 * `value` is the element that gets the digits.
 */
export class CallCode {
  constructor({ container, value }) {
    this.container = container;
    this.value = value;
    this.pc = null;
  }

  /** A new RTCPeerConnection (or null when it is gone). */
  attach(pc) {
    this.pc = pc;
    this._show(null);
    if (!pc) return;
    const update = async () => {
      if (this.pc !== pc || pc.connectionState !== "connected") return;
      const code = await connectionCode(pc);
      if (this.pc === pc) this._show(code);
    };
    // Connected again after an ICE restart: the certificates did not change, the code is
    // recomputed anyway in case the other side came back with a fresh connection.
    pc.addEventListener("connectionstatechange", update);
    pc.addEventListener("signalingstatechange", update);
  }

  _show(code) {
    this.container.hidden = !code;
    this.value.textContent = code || "";
  }
}
