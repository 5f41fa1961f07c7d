"""Settings changed between two starts are named in the audit trail (never their values),
on both backends: the app is really started (its start-up hooks run) and stopped each time."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json

import pytest
from aiohttp import web

from config import Settings
from signaling.app import create_app
from signaling.audit.settings_audit import DIGESTS_META, record_settings_change, setting_digests
from signaling.audit.trail import AuditTrail
from signaling.clock import ManualClock
from signaling.crypto import derive_key
from signaling.keys import SERVICES
from signaling.models import AuditEntry
from signaling.store.sqlite import SqliteStore

pytestmark = pytest.mark.both_stores


async def start_and_stop(settings: Settings, clock: ManualClock) -> list[AuditEntry]:
    """One start of the service (as ``run.py serve`` does it); the settings entries after it."""
    app = create_app(settings, clock=clock, record_settings=True)
    runner = web.AppRunner(app)
    await runner.setup()  # runs the start-up hooks: store opened, settings compared
    try:
        entries = await app[SERVICES].store.all_audit()
    finally:
        await runner.cleanup()
    return [e for e in entries if e.action.startswith("settings.")]


async def test_a_restart_records_only_the_keys_that_changed(
    settings: Settings, clock: ManualClock
) -> None:
    first = await start_and_stop(settings, clock)
    assert [(e.action, e.actor, e.actor_role, e.outcome) for e in first] == [
        ("settings.initial", "system", "system", "success")
    ]
    named = json.loads(first[0].details)["keys"]
    assert "security.lockout_minutes" in named and "storage.redis_url" in named
    assert len(named) == len(setting_digests(settings, b"k" * 32))

    # The same settings again: nothing new.
    assert await start_and_stop(settings, clock) == first

    changed = settings.replace(security=dataclasses.replace(settings.security, lockout_minutes=42))
    after = await start_and_stop(changed, clock)
    assert [e.action for e in after] == ["settings.initial", "settings.changed"]
    assert json.loads(after[1].details) == {"keys": ["security.lockout_minutes"]}
    assert "42" not in after[1].details

    # Changed back, with a second key: both named, once.
    other = settings.replace(turn=dataclasses.replace(settings.turn, max_credential_hours=3))
    again = await start_and_stop(other, clock)
    assert json.loads(again[-1].details) == {
        "keys": ["security.lockout_minutes", "turn.max_credential_hours"]
    }
    assert len(again) == 3


async def test_apps_that_do_not_record_settings_write_nothing(
    settings: Settings, clock: ManualClock
) -> None:
    app = create_app(settings, clock=clock)  # tests and command-line tools
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        assert await app[SERVICES].store.get_meta(DIGESTS_META) is None
    finally:
        await runner.cleanup()


async def test_a_secret_in_a_setting_is_neither_stored_nor_audited(
    settings: Settings, clock: ManualClock
) -> None:
    # A Redis URL may carry a password: only its keyed digest is kept.
    password = "s3cret-redis-pass"
    storage = dataclasses.replace(
        settings.storage, redis_url=f"redis://:{password}@127.0.0.1:6390/0"
    )
    store = SqliteStore(settings.storage.data_path / "secret-test.sqlite3")
    await store.open()
    try:
        audit = AuditTrail(store, clock)
        key = derive_key(b"k" * 32, "settings-digests")
        await record_settings_change(store, audit, settings, key)
        await record_settings_change(store, audit, settings.replace(storage=storage), key)
        stored = await store.get_meta(DIGESTS_META)
        assert stored is not None and password not in stored
        entries = await store.all_audit()
        assert json.loads(entries[-1].details) == {"keys": ["storage.redis_url"]}
        assert all(password not in e.details for e in entries)

        # Another app secret: the old digests cannot be compared; every key is named, with
        # the reason, rather than nothing.
        other_key = derive_key(b"z" * 32, "settings-digests")
        entry = await record_settings_change(store, audit, settings, other_key)
        assert entry is not None
        details = json.loads(entry.details)
        assert details["reason"] == "secret_key_changed"
        assert len(details["keys"]) == len(setting_digests(settings, key))
        assert await record_settings_change(store, audit, settings, other_key) is None
    finally:
        await store.close()


KEY = derive_key(b"k" * 32, "settings-digests")


def test_two_settings_holding_the_same_value_have_different_digests(settings: Settings) -> None:
    # Both hold 7: a reader of the stored digests must not learn that they are equal.
    same = settings.replace(
        security=dataclasses.replace(settings.security, lockout_minutes=7, lockout_threshold=7)
    )
    digests = setting_digests(same, KEY)
    assert digests["security.lockout_minutes"] != digests["security.lockout_threshold"]
    # The defaults hold many equal values (false, 0, ""): still one distinct digest per key.
    defaults = setting_digests(settings, KEY)
    assert len(set(defaults.values())) == len(defaults)


def first_format_record(settings: Settings, key: bytes) -> str:
    """The stored digests as the first format wrote them: HMAC of the value alone, no format."""
    digests: dict[str, str] = {}
    for section in dataclasses.fields(settings):
        values = getattr(settings, section.name)
        for item in dataclasses.fields(values):
            value = getattr(values, item.name)
            text = json.dumps(list(value) if isinstance(value, tuple) else value).encode()
            digests[f"{section.name}.{item.name}"] = hmac.new(key, text, hashlib.sha256).hexdigest()
    check = hmac.new(key, b"settings-digest-key-check", hashlib.sha256).hexdigest()
    return json.dumps({"key_check": check, "digests": digests}, sort_keys=True)


async def test_digests_stored_in_the_first_format_are_upgraded_without_a_false_alarm(
    settings: Settings, clock: ManualClock
) -> None:
    store = SqliteStore(settings.storage.data_path / "format-test.sqlite3")
    await store.open()
    try:
        audit = AuditTrail(store, clock)
        await store.set_meta(DIGESTS_META, first_format_record(settings, KEY))
        # Same settings, digests of the old format: nothing changed, nothing audited.
        assert await record_settings_change(store, audit, settings, KEY) is None
        assert await store.all_audit() == []
        stored = json.loads(await store.get_meta(DIGESTS_META) or "{}")
        assert stored["format"] == 2
        assert stored["digests"] == setting_digests(settings, KEY)
        # From the new format on, a change is still found, and only that one.
        changed = settings.replace(turn=dataclasses.replace(settings.turn, max_credential_hours=5))
        entry = await record_settings_change(store, audit, changed, KEY)
        assert entry is not None and json.loads(entry.details) == {
            "keys": ["turn.max_credential_hours"]
        }
        assert await record_settings_change(store, audit, changed, KEY) is None

        # Old-format digests and a real change at the same start: exactly that key is named.
        await store.set_meta(DIGESTS_META, first_format_record(settings, KEY))
        other = settings.replace(
            security=dataclasses.replace(settings.security, lockout_minutes=44)
        )
        entry = await record_settings_change(store, audit, other, KEY)
        assert entry is not None
        assert json.loads(entry.details) == {"keys": ["security.lockout_minutes"]}
        assert await record_settings_change(store, audit, other, KEY) is None
    finally:
        await store.close()
