"""Writes the hash-chained audit trail: every security-relevant action lands here."""

from __future__ import annotations

import json
import logging
from typing import Any

from signaling.clock import Clock
from signaling.models import AuditEntry
from signaling.store.base import AuditFields, Store

log = logging.getLogger("teleconsult.audit")


class AuditTrail:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def record(
        self,
        action: str,
        *,
        actor: str,
        actor_role: str,
        target: str = "",
        outcome: str = "success",
        address: str = "",
        **details: Any,
    ) -> AuditEntry:
        # Details hold identifiers and reasons only: never a secret, never health data.
        fields = AuditFields(
            at=self._clock.now(),
            actor=actor,
            actor_role=actor_role,
            action=action,
            target=target,
            outcome=outcome,
            address=address,
            details=json.dumps(details, sort_keys=True, separators=(",", ":")) if details else "",
        )
        entry = await self._store.append_audit(fields)
        log.info(
            "audit %s %s actor=%s target=%s outcome=%s", entry.seq, action, actor, target, outcome
        )
        return entry


async def verify_trail(store: Store) -> tuple[int, str, tuple[int, str] | None]:
    """Walk the whole chain: (entries, head hash, first break as (seq, reason) or None)."""
    from signaling.audit_chain import GENESIS, first_broken

    entries = await store.all_audit()
    broken = first_broken(entries)
    head = entries[-1].hash if entries else GENESIS
    if broken is None:
        return len(entries), head, None
    position, reason = broken
    return len(entries), head, (position + 1, reason)
