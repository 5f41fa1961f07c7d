"""At start-up, record in the audit trail which settings changed since the previous start.

Each setting key (``section.name``) is reduced to a keyed digest (HMAC-SHA-256 with a key
derived from the app secret) of its effective value; the digests are kept in the store and
compared at the next start. Only key NAMES reach the trail, never a value, and a value that
may hold a secret (a Redis URL with a password) is never stored, only its keyed digest, which
cannot be brute-forced without the app secret.

The first start writes ``settings.initial`` naming every key; later starts write one
``settings.changed`` naming the keys whose value differs, or nothing. The entry is written
before the new digests are stored: a crash in between reports the change again at the next
start rather than never.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json

from config import Settings
from signaling.audit import AuditTrail
from signaling.models import AuditEntry
from signaling.store.base import Store

DIGESTS_META = "settings_digests"
# A digest of a fixed text: tells whether the stored digests were made with the same key.
_KEY_CHECK = b"settings-digest-key-check"


def setting_digests(settings: Settings, key: bytes) -> dict[str, str]:
    """One keyed digest per setting key of the effective settings."""
    digests: dict[str, str] = {}
    for section in dataclasses.fields(settings):
        values = getattr(settings, section.name)
        for item in dataclasses.fields(values):
            value = getattr(values, item.name)
            text = json.dumps(list(value) if isinstance(value, tuple) else value)
            digests[f"{section.name}.{item.name}"] = _digest(key, text.encode())
    return digests


def _digest(key: bytes, data: bytes) -> str:
    return hmac.new(key, data, hashlib.sha256).hexdigest()


async def record_settings_change(
    store: Store, audit: AuditTrail, settings: Settings, key: bytes
) -> AuditEntry | None:
    """Compare with the digests of the previous start; audit the change, if any."""
    current = setting_digests(settings, key)
    raw = await store.get_meta(DIGESTS_META)
    entry: AuditEntry | None
    if raw is None:
        entry = await audit.record(
            "settings.initial", actor="system", actor_role="system", keys=sorted(current)
        )
    else:
        previous = json.loads(raw)
        before: dict[str, str] = previous.get("digests", {})
        if previous.get("key_check") != _digest(key, _KEY_CHECK):
            # The app secret changed: the old digests cannot be compared, so every key is
            # named, with the reason, rather than claiming nothing changed.
            entry = await audit.record(
                "settings.changed",
                actor="system",
                actor_role="system",
                keys=sorted(current.keys() | before.keys()),
                reason="secret_key_changed",
            )
        else:
            changed = sorted(
                k for k in current.keys() | before.keys() if current.get(k) != before.get(k)
            )
            if not changed:
                return None
            entry = await audit.record(
                "settings.changed", actor="system", actor_role="system", keys=changed
            )
    stored = {"key_check": _digest(key, _KEY_CHECK), "digests": current}
    await store.set_meta(DIGESTS_META, json.dumps(stored, sort_keys=True))
    return entry
