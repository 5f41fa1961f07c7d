"""Short patient links: ``/join/7KQM-2XRT-9HPW`` instead of ~100 characters of signed token.

The code is 12 characters of Crockford's base32 (digits and capitals without I, L, O, U: no
letter to mistake for a digit when read over the phone), 60 bits taken from an HMAC of the
consultation id and its invite nonce under a key derived from the app secret. So:

* the service can write the same link again whenever it needs it (an email, a reminder)
  without keeping it: it stores only the SHA-256 of the code, mapped to the consultation
  (store meta ``invite-short:<sha256>``), which a stolen database cannot turn back into a link;
* a new nonce (re-issue, cancellation, erasure) gives a new code, and the old one no longer
  matches the consultation it still maps to: revoked like the signed links;
* 60 bits leave an online guesser nothing to find (failed opens are of no use to a guesser
  without the access code either, which stays rate limited per invite and per address).
"""

from __future__ import annotations

import hashlib
import hmac

from signaling.crypto import sha256_hex

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 12
GROUP = 4
# Read aloud, these are heard or typed for the letters they look like (Crockford's decoding).
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})


def short_code(key: bytes, consultation_id: str, nonce: str) -> str:
    """The 12 characters of a consultation's current link (ungrouped)."""
    digest = hmac.new(key, f"short-invite:{consultation_id}:{nonce}".encode(), hashlib.sha256)
    number = int.from_bytes(digest.digest()[:8], "big") >> (64 - 5 * CODE_LENGTH)
    return "".join(
        ALPHABET[(number >> (5 * (CODE_LENGTH - 1 - i))) & 31] for i in range(CODE_LENGTH)
    )


def grouped(code: str) -> str:
    """``7KQM2XRT9HPW`` → ``7KQM-2XRT-9HPW``: how the link shows the code."""
    return "-".join(code[i : i + GROUP] for i in range(0, len(code), GROUP))


def read_code(text: str) -> str | None:
    """The code a link segment holds (any case, with or without hyphens or spaces), or None
    when the segment is not a short code (a signed link of the earlier form)."""
    if len(text) > 2 * CODE_LENGTH:
        return None
    code = text.replace("-", "").replace(" ", "").upper().translate(_READ_AS)
    if len(code) != CODE_LENGTH or any(ch not in ALPHABET for ch in code):
        return None
    return code


# Every code's meta name starts so (``run.py store export`` carries them all).
LOOKUP_PREFIX = "invite-short:"


def lookup_name(code: str) -> str:
    """The store meta name that maps a code (by its hash) to its consultation."""
    return f"{LOOKUP_PREFIX}{sha256_hex(code)}"
