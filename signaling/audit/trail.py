"""Writes the hash-chained audit trail: every security-relevant action lands here.

The closed set of actions is :data:`AuditAction` (signaling/audit_actions.py, a module that
imports nothing so every layer can name the type), re-exported here with AUDITED_ACTIONS.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from signaling.audit.access_audit import AccessRefusals
from signaling.audit_actions import AUDITED_ACTIONS as AUDITED_ACTIONS
from signaling.audit_actions import AuditAction as AuditAction
from signaling.clock import Clock
from signaling.models import AuditEntry
from signaling.store.base import AuditCheckpoint, AuditFields, Store

log = logging.getLogger("teleconsult.audit")


class AuditTrail:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        # Refused accesses, written through this trail at a bounded rate per actor.
        self.refusals = AccessRefusals(self, clock)

    async def record(
        self,
        action: AuditAction,
        *,
        actor: str,
        actor_role: str,
        target: str = "",
        outcome: str = "success",
        address: str = "",
        **details: Any,
    ) -> AuditEntry:
        if action not in AUDITED_ACTIONS:
            # Checked by mypy where the action is written; this catches one that came from
            # data (an undeclared action would be missing from the audit page's filter).
            raise ValueError(f"undeclared audit action {action!r}")
        # Details hold identifiers and reasons only: never a secret, never health data.
        fields = AuditFields(
            at=self._clock.now(),
            actor=_actor_id(actor),
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

    async def purge_before(self, before: float, keep_days: int) -> AuditEntry | None:
        """Remove entries dated before ``before``; the purge report is itself an entry.

        The removal, the new checkpoint and the report are one store operation, so a crash
        never leaves a checkpoint that no purge entry vouches for.
        """
        from signaling.store.audit_chain import PURGE_ACTION, purge_details

        def report(removed: int, checkpoint: AuditCheckpoint) -> AuditFields:
            details = purge_details(removed, checkpoint) | {"audit_days": keep_days}
            return AuditFields(
                at=self._clock.now(),
                actor="system",
                actor_role="system",
                action=PURGE_ACTION,
                target="",
                outcome="success",
                address="",
                details=json.dumps(details, sort_keys=True, separators=(",", ":")),
            )

        entry = await self._store.purge_audit(before, report)
        if entry is not None:
            log.info("audit %s %s actor=system details=%s", entry.seq, PURGE_ACTION, entry.details)
        return entry


def _actor_id(actor: str) -> str:
    """One spelling per actor, whoever records: a room seat's subject ("user:<id>",
    "patient:<consultation>") becomes the user id or "patient", as the HTTP routes write it,
    so that filtering the trail by actor finds every entry."""
    kind, sep, rest = actor.partition(":")
    if sep and kind == "user" and rest:
        return rest
    if sep and kind == "patient":
        return "patient"
    return actor


async def verify_trail(store: Store) -> tuple[int, str, tuple[int, str] | None]:
    """Walk the whole chain: (entries, head hash, first break as (seq, reason) or None)."""
    report = await verify_chain(store)
    return len(report.entries), report.head_hash, report.broken


@dataclass(frozen=True)
class ChainReport:
    entries: list[AuditEntry]
    checkpoint: AuditCheckpoint | None
    # (sequence number, reason) of the first break, or None when the chain holds.
    broken: tuple[int, str] | None

    @property
    def head_seq(self) -> int:
        if self.entries:
            return self.entries[-1].seq
        return self.checkpoint.seq if self.checkpoint else 0

    @property
    def head_hash(self) -> str:
        from signaling.store.audit_chain import GENESIS

        if self.entries:
            return self.entries[-1].hash
        return self.checkpoint.hash if self.checkpoint else GENESIS

    def holds_anchor(self, seq: int, digest: str) -> bool:
        """An anchor kept outside (``seq:hash``) is still in the trail, or was purged."""
        if self.checkpoint and seq <= self.checkpoint.seq:
            # Purged since: only the checkpoint itself can still be compared.
            return seq < self.checkpoint.seq or digest == self.checkpoint.hash
        first = self.checkpoint.seq + 1 if self.checkpoint else 1
        index = seq - first
        return 0 <= index < len(self.entries) and self.entries[index].hash == digest


async def verify_chain(store: Store) -> ChainReport:
    """Walk the kept trail from the purge checkpoint and cross-check that checkpoint."""
    from signaling.store.audit_chain import checkpoint_mismatch, first_broken

    entries = await store.all_audit()
    checkpoint = await store.audit_checkpoint()
    broken = first_broken(entries, checkpoint)
    if broken is not None:
        position, reason = broken
        first = checkpoint.seq + 1 if checkpoint else 1
        return ChainReport(entries, checkpoint, (first + position, reason))
    mismatch = checkpoint_mismatch(entries, checkpoint)
    if mismatch is not None:
        first = entries[0].seq if entries else (checkpoint.seq if checkpoint else 0)
        return ChainReport(entries, checkpoint, (first, mismatch))
    return ChainReport(entries, checkpoint, None)
