"""Hash chaining of audit entries, shared by every store backend and by ``audit verify``."""

from __future__ import annotations

import hashlib
import json

import msgspec

from signaling.audit_actions import AuditAction
from signaling.models import AuditEntry, AuditFields
from signaling.store.base import AuditCheckpoint

GENESIS = "0" * 64
# The entry a purge of old audit entries leaves; its details name the new checkpoint.
PURGE_ACTION: AuditAction = "audit.purged"


def entry_hash(fields: AuditFields, seq: int, prev_hash: str) -> str:
    """SHA-256 of the canonical encoding of ``fields`` at position ``seq`` after ``prev_hash``.

    Spelled out field by field on purpose: the hash format must not follow the record's
    field order, or reordering the Struct would break every stored trail."""
    f = fields
    payload = json.dumps(
        [
            seq,
            repr(float(f.at)),
            f.actor,
            f.actor_role,
            f.action,
            f.target,
            f.outcome,
            f.address,
            f.details,
            prev_hash,
        ],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def chained_entry(fields: AuditFields, seq: int, prev_hash: str) -> AuditEntry:
    """The entry ``fields`` become at position ``seq`` after ``prev_hash`` (every backend)."""
    return AuditEntry(
        **msgspec.structs.asdict(fields),
        seq=seq,
        prev_hash=prev_hash,
        hash=entry_hash(fields, seq, prev_hash),
    )


def recompute(entry: AuditEntry) -> str:
    return entry_hash(entry, entry.seq, entry.prev_hash)


def first_broken(
    entries: list[AuditEntry], start: AuditCheckpoint | None = None
) -> tuple[int, str] | None:
    """Return (position, reason) of the first entry that does not chain, or None.

    ``start`` is the checkpoint left by purges: the first kept entry chains onto it.
    """
    prev = start.hash if start else GENESIS
    first_seq = start.seq + 1 if start else 1
    for position, entry in enumerate(entries):
        if entry.seq != first_seq + position:
            return position, f"entry {first_seq + position} has sequence number {entry.seq}"
        if entry.prev_hash != prev:
            return position, f"entry {entry.seq} does not follow the previous entry"
        if recompute(entry) != entry.hash:
            return position, f"entry {entry.seq} was modified"
        prev = entry.hash
    return None


def purge_details(removed: int, checkpoint: AuditCheckpoint) -> dict[str, object]:
    """What a purge entry records, so that ``checkpoint_mismatch`` can cross-check it."""
    return {"removed": removed, "through_seq": checkpoint.seq, "through_hash": checkpoint.hash}


def checkpoint_mismatch(
    entries: list[AuditEntry], checkpoint: AuditCheckpoint | None
) -> str | None:
    """Why the stored checkpoint cannot be trusted, or None.

    The checkpoint lives outside the chain; the last purge entry, inside it, names the
    checkpoint it left. Moving the checkpoint forward (to hide removed entries) or back is
    therefore seen, unless the purge entry is forged too, which breaks the chain.
    """
    purges = [e for e in entries if e.action == PURGE_ACTION]
    if checkpoint is None:
        if purges:
            return f"entry {purges[-1].seq} records a purge but no checkpoint is stored"
        return None
    if not purges:
        return f"checkpoint {checkpoint.seq} is recorded by no purge entry"
    try:
        details = json.loads(purges[-1].details)
        recorded = AuditCheckpoint(int(details["through_seq"]), str(details["through_hash"]))
    except (ValueError, KeyError, TypeError):
        return f"entry {purges[-1].seq} does not name its checkpoint"
    if recorded != checkpoint:
        return (
            f"checkpoint {checkpoint.seq} differs from the one purge entry "
            f"{purges[-1].seq} recorded ({recorded.seq})"
        )
    return None
