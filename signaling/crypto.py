"""Keys derived from the app secret, one per purpose, and small authenticated encryption."""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def derive_key(secret: bytes, purpose: str, length: int = 32) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=length, salt=None, info=f"teleconsult/{purpose}".encode()
    ).derive(secret)


class SecretBox:
    """AES-256-GCM with a random nonce; ``aad`` binds a ciphertext to its owner record."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        return self._aead.decrypt(sealed[:12], sealed[12:], aad)


def keyed_digest(key: bytes, value: str) -> str:
    """HMAC-SHA256: hashes of short secrets (access codes) that resist offline guessing."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()
