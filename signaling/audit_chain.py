"""Hash chaining of audit entries, shared by every store backend and by ``audit verify``."""

from __future__ import annotations

import hashlib
import json

from signaling.models import AuditEntry
from signaling.store.base import AuditFields

GENESIS = "0" * 64


def entry_hash(
    seq: int,
    at: float,
    actor: str,
    actor_role: str,
    action: str,
    target: str,
    outcome: str,
    address: str,
    details: str,
    prev_hash: str,
) -> str:
    # Canonical JSON: field order and float formatting are fixed, so any backend agrees.
    payload = json.dumps(
        [
            seq,
            repr(float(at)),
            actor,
            actor_role,
            action,
            target,
            outcome,
            address,
            details,
            prev_hash,
        ],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def chained_entry(fields: AuditFields, seq: int, prev_hash: str) -> AuditEntry:
    """The entry ``fields`` become at position ``seq`` after ``prev_hash`` (every backend)."""
    f = fields
    digest = entry_hash(
        seq,
        f.at,
        f.actor,
        f.actor_role,
        f.action,
        f.target,
        f.outcome,
        f.address,
        f.details,
        prev_hash,
    )
    return AuditEntry(
        seq=seq,
        at=f.at,
        actor=f.actor,
        actor_role=f.actor_role,
        action=f.action,
        target=f.target,
        outcome=f.outcome,
        address=f.address,
        details=f.details,
        prev_hash=prev_hash,
        hash=digest,
    )


def recompute(entry: AuditEntry) -> str:
    return entry_hash(
        entry.seq,
        entry.at,
        entry.actor,
        entry.actor_role,
        entry.action,
        entry.target,
        entry.outcome,
        entry.address,
        entry.details,
        entry.prev_hash,
    )


def first_broken(entries: list[AuditEntry]) -> tuple[int, str] | None:
    """Return (position, reason) of the first entry that does not chain, or None."""
    prev = GENESIS
    for position, entry in enumerate(entries):
        if entry.seq != position + 1:
            return position, f"entry {position + 1} has sequence number {entry.seq}"
        if entry.prev_hash != prev:
            return position, f"entry {entry.seq} does not follow the previous entry"
        if recompute(entry) != entry.hash:
            return position, f"entry {entry.seq} was modified"
        prev = entry.hash
    return None
