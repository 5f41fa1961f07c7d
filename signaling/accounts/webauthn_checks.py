"""The WebAuthn details the passkey ceremonies share (signaling/accounts/passkeys.py): the
relying party of the page that asks, the challenge a credential signed, and what the service
keeps or records of a credential (its transports, whether it is discoverable, a refusal's
reason)."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import AuthenticatorTransport, PublicKeyCredentialDescriptor

from config import ServerSettings
from signaling.errors import AppError
from signaling.models import Passkey


@dataclass(frozen=True)
class RelyingParty:
    """Where a ceremony happens: the RP ID (a host name) and the origins accepted for it."""

    id: str
    origins: tuple[str, ...]


def relying_party(server: ServerSettings, page_origin: str | None) -> RelyingParty:
    """The RP of the page that asks (its Origin, already one the service answers for;
    the service's own origin without one). An IP address is no RP ID: a service opened at
    one (a LAN address) offers no passkey there."""
    origin = page_origin if page_origin in server.allowed_origins else server.origin
    host = urlsplit(origin).hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        raise AppError("passkey_unavailable")
    same_host = sorted(o for o in server.allowed_origins if urlsplit(o).hostname == host)
    return RelyingParty(id=host, origins=tuple(same_host))


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def challenge_of(credential: dict[str, Any]) -> str:
    """The challenge the browser signed, read from the credential's client data (checked
    against what was issued before anything else is)."""
    try:
        client_data = json.loads(b64url_decode(credential["response"]["clientDataJSON"]))
        challenge = client_data["challenge"]
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise AppError("passkey_refused") from None
    if not isinstance(challenge, str) or not 16 <= len(challenge) <= 128:
        raise AppError("passkey_refused")
    return challenge


def descriptor(passkey: Passkey) -> PublicKeyCredentialDescriptor:
    transports = []
    for name in passkey.transports:
        try:
            transports.append(AuthenticatorTransport(name))
        except ValueError:
            continue  # a transport this library does not know: the browser finds it anyway
    return PublicKeyCredentialDescriptor(
        id=b64url_decode(passkey.id), transports=transports or None
    )


def transports_of(credential: dict[str, Any]) -> tuple[str, ...]:
    given = credential.get("response", {}).get("transports") or []
    if not isinstance(given, list):
        return ()
    return tuple(str(t)[:16] for t in given if isinstance(t, str))[:8]


def discoverable_of(credential: dict[str, Any]) -> bool | None:
    """What the browser said of the new key (the credProps extension), if anything."""
    results = credential.get("clientExtensionResults")
    props = results.get("credProps") if isinstance(results, dict) else None
    found = props.get("rk") if isinstance(props, dict) else None
    return found if isinstance(found, bool) else None


def refusal_reason(exc: WebAuthnException) -> str:
    """A short, secret-free reason for the audit trail, from the library's message."""
    text = str(exc).lower()
    for needle, reason in (
        ("origin", "wrong_origin"),
        ("rp id", "wrong_rp_id"),
        ("signature", "bad_signature"),
        ("challenge", "wrong_challenge"),
        ("user presen", "no_user_presence"),
        ("user verif", "no_user_verification"),
        ("type", "wrong_type"),
    ):
        if needle in text:
            return reason
    return "invalid_response"
