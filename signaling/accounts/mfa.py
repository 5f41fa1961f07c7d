"""TOTP (RFC 6238 defaults: SHA-1, 6 digits, 30 s) so every authenticator app works."""

from __future__ import annotations

import base64
import binascii
import hmac
import io

import pyotp
import segno

STEP_SECONDS = 30
DIGITS = 6
ISSUER = "Teleconsultation"


def new_secret() -> str:
    return pyotp.random_base32()  # 160 bits, as RFC 4226 recommends


def is_valid_secret(secret: str) -> bool:
    """Base32 of at least 128 bits, the least RFC 4226 allows (a secret brought by automation)."""
    try:
        raw = base64.b32decode(secret + "=" * (-len(secret) % 8))
    except (binascii.Error, ValueError):
        return False
    return len(raw) >= 16


def provisioning_uri(secret: str, username: str, issuer: str = ISSUER) -> str:
    return str(pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer))


def qr_svg(uri: str) -> str:
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(
        buffer, kind="svg", scale=5, border=2, xmldecl=False, svgns=True, title="TOTP QR code"
    )
    return buffer.getvalue().decode()


def qr_terminal(uri: str) -> str:
    buffer = io.StringIO()
    segno.make(uri, error="l").terminal(out=buffer, compact=True, border=2)
    return buffer.getvalue()


def matching_step(secret: str, code: str, now: float) -> int | None:
    """The time step whose code equals ``code``, allowing one step of drift either way.

    Only the step is returned; whether it was already used is the caller's business
    (pyotp's ``verify`` alone would accept the same code again within its window).
    """
    if len(code) != DIGITS or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    current = int(now) // STEP_SECONDS
    found: int | None = None
    for step in (current - 1, current, current + 1):
        # Compare every candidate (no early exit), in constant time.
        if hmac.compare_digest(totp.at(step * STEP_SECONDS), code):
            found = step
    return found
