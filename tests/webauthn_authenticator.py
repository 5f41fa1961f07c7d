"""A software WebAuthn authenticator for the API tests: an ES256 key per credential, the
attestation object (format "none") and assertions built as a browser and its authenticator
would, byte for byte (WebAuthn Level 2, §6.1 authenticator data, §6.5.4 attestation)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, AT = 0x01, 0x04, 0x40


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass
class SoftwareAuthenticator:
    """One credential on one authenticator; ``sign_count`` is what the next use reports."""

    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    credential_id: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    sign_count: int = 0
    rp_id: str = "localhost"
    user_handle: str = ""
    # Whether it keeps the credential as a discoverable one (a "resident key"), as it tells
    # the browser (credProps); and whether it verifies the person (a PIN, a fingerprint).
    discoverable: bool = True
    verifies_user: bool = True

    @property
    def id(self) -> str:
        return b64url(self.credential_id)

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps(
            {
                1: 2,
                3: -7,
                -1: 1,
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )

    def _auth_data(self, flags: int, attested: bytes = b"") -> bytes:
        rp_hash = hashlib.sha256(self.rp_id.encode()).digest()
        return rp_hash + bytes([flags]) + struct.pack(">I", self.sign_count) + attested

    @staticmethod
    def _client_data(kind: str, challenge: str, origin: str) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False}
        ).encode()

    def create(self, options: dict[str, Any], origin: str) -> dict[str, Any]:
        """What navigator.credentials.create() answers (toJSON form) for ``options``."""
        self.rp_id = options["rp"]["id"]
        self.user_handle = options["user"]["id"]
        attested = (
            bytes(16)  # AAGUID: none, as attestation "none" allows
            + struct.pack(">H", len(self.credential_id))
            + self.credential_id
            + self._cose_key()
        )
        auth_data = self._auth_data(UP | self._uv | AT, attested)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        made = self._credential(
            {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["internal"],
            }
        )
        if options.get("extensions", {}).get("credProps"):
            made["clientExtensionResults"] = {"credProps": {"rk": self.discoverable}}
        return made

    @property
    def _uv(self) -> int:
        return UV if self.verifies_user else 0

    def get(self, options: dict[str, Any], origin: str, *, count_up: bool = True) -> dict[str, Any]:
        """What navigator.credentials.get() answers for ``options``; the counter moves on
        first, as an authenticator's does (``count_up`` False: a clone's stale counter)."""
        if count_up:
            self.sign_count += 1
        auth_data = self._auth_data(UP | self._uv)
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        signed = auth_data + hashlib.sha256(client_data).digest()
        signature = self.key.sign(signed, ec.ECDSA(hashes.SHA256()))
        response = {
            "clientDataJSON": b64url(client_data),
            "authenticatorData": b64url(auth_data),
            "signature": b64url(signature),
        }
        # A credential that is not discoverable returns no user handle (WebAuthn §5.2.2).
        if self.discoverable:
            response["userHandle"] = self.user_handle
        return self._credential(response)

    def _credential(self, response: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": self.id,
            "rawId": self.id,
            "type": "public-key",
            "response": response,
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }
