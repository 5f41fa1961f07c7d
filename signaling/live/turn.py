"""ICE servers for the welcome message: STUN as configured, TURN with REST credentials.

TURN REST scheme (coturn ``use-auth-secret``): username ``"<expiry>:<subject>"`` where expiry
is a Unix time, password ``base64(HMAC-SHA1(shared secret, username))``. coturn recomputes
the password and refuses the allocation once the expiry has passed.

The shared secret is the *text* of ``turn.secret_file`` (a base64 key): put the same text in
coturn's ``static-auth-secret``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

from config import TurnSettings
from signaling.live.protocol import IceServer

# Credentials for a consultation that is already past its scheduled end still last this long.
MIN_CREDENTIAL_SECONDS = 10 * 60
_SUBJECT = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class TurnCredential:
    username: str
    password: str
    expires_at: int


def secret_text(secret: bytes) -> bytes:
    """The HMAC key: the base64 text of the key file, as coturn reads it from its config."""
    return base64.b64encode(secret)


def turn_credential(secret: bytes, subject: str, expires_at: int) -> TurnCredential:
    # ':' separates expiry and subject in coturn; keep the subject to a safe alphabet.
    username = f"{expires_at}:{_SUBJECT.sub('_', subject)[:64]}"
    digest = hmac.new(secret_text(secret), username.encode(), hashlib.sha1).digest()
    return TurnCredential(username, base64.b64encode(digest).decode(), expires_at)


def credential_expiry(
    now: float, consultation_end: float, grace_seconds: float, max_hours: int
) -> int:
    """Until the consultation's scheduled end + grace, never beyond ``max_hours`` from now."""
    wanted = max(consultation_end + grace_seconds, now + MIN_CREDENTIAL_SECONDS)
    return int(min(wanted, now + max_hours * 3600))


def ice_servers(
    settings: TurnSettings, secret: bytes | None, subject: str, expires_at: int
) -> tuple[list[IceServer], int]:
    """The RTCIceServer list for one participant and when its TURN credentials expire."""
    servers: list[IceServer] = []
    if settings.stun_urls:
        servers.append(IceServer(urls=list(settings.stun_urls)))
    if settings.turn_urls and secret is not None:
        credential = turn_credential(secret, subject, expires_at)
        servers.append(
            IceServer(
                urls=list(settings.turn_urls),
                username=credential.username,
                credential=credential.password,
            )
        )
        return servers, expires_at
    return servers, 0
