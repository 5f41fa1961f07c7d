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

Each digest is bound to its key name (HMAC over ``name NUL value``): with the value alone, two
keys holding the same value had the same digest, which told a reader of the store that they
were equal (a password reused in two URLs, say). Digests stored in that first format (no
``format`` field) are still compared, against first-format digests recomputed from the current
settings, so the upgrade reports exactly the keys that changed, not every key; the new format
is then stored, and the upgrade only logged: no setting changed, nothing for the trail.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging

from config import Settings
from signaling.audit.trail import AuditTrail
from signaling.models import AuditEntry
from signaling.store.base import Store

log = logging.getLogger("teleconsult.settings")

DIGESTS_META = "settings_digests"
# 1: HMAC(value), before the format was recorded; 2: HMAC(name NUL value).
DIGEST_FORMAT = 2
# A digest of a fixed text: tells whether the stored digests were made with the same key.
_KEY_CHECK = b"settings-digest-key-check"


def _setting_texts(settings: Settings) -> dict[str, bytes]:
    """Each setting key (``section.name``) and its effective value as JSON."""
    texts: dict[str, bytes] = {}
    for section in dataclasses.fields(settings):
        values = getattr(settings, section.name)
        for item in dataclasses.fields(values):
            value = getattr(values, item.name)
            text = json.dumps(list(value) if isinstance(value, tuple) else value)
            texts[f"{section.name}.{item.name}"] = text.encode()
    return texts


def setting_digests(settings: Settings, key: bytes) -> dict[str, str]:
    """One keyed digest per setting key of the effective settings, bound to the key's name
    (names are identifiers, never holding a NUL, so name and value cannot run together)."""
    return {
        name: _digest(key, name.encode() + b"\0" + text)
        for name, text in _setting_texts(settings).items()
    }


def _first_format_digests(settings: Settings, key: bytes) -> dict[str, str]:
    """Digests as format 1 made them (the value alone): only to compare with a stored set."""
    return {name: _digest(key, text) for name, text in _setting_texts(settings).items()}


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
        stored_format = previous.get("format", 1)
        unknown_format = stored_format not in (1, DIGEST_FORMAT)
        if unknown_format or previous.get("key_check") != _digest(key, _KEY_CHECK):
            # The app secret changed (or a newer version wrote the digests, then was rolled
            # back): the old digests cannot be compared, so every key is named, with the
            # reason, rather than claiming nothing changed.
            entry = await audit.record(
                "settings.changed",
                actor="system",
                actor_role="system",
                keys=sorted(current.keys() | before.keys()),
                reason="digest_format_unknown" if unknown_format else "secret_key_changed",
            )
        else:
            # Format 1 digests are compared with format 1 digests of the current settings.
            comparable = current
            if stored_format != DIGEST_FORMAT:
                comparable = _first_format_digests(settings, key)
                log.info("settings digests: format %s stored, now format %s", 1, DIGEST_FORMAT)
            changed = sorted(
                k for k in comparable.keys() | before.keys() if comparable.get(k) != before.get(k)
            )
            if changed:
                entry = await audit.record(
                    "settings.changed", actor="system", actor_role="system", keys=changed
                )
            elif stored_format == DIGEST_FORMAT:
                return None
            else:
                entry = None  # only the format changed: store the new one, nothing to audit
    stored = {"format": DIGEST_FORMAT, "key_check": _digest(key, _KEY_CHECK), "digests": current}
    await store.set_meta(DIGESTS_META, json.dumps(stored, sort_keys=True))
    return entry
