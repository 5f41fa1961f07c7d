"""Moving the durable records from one store to another (``run.py store export | run.py store
import``): the migration path between any two backends, e.g. SQLite or Redis to PostgreSQL.

The export is a stream of JSON lines through the Store protocol alone, so it reads any backend:
a header, the users, the consultations with their consent receipts, the recordings' metadata,
the meta values it is told to carry (by name or by prefix: the short patient links' codes are
one meta value each), the audit checkpoint, then the audit trail a page at a time, each page
past the last entry given (memory and the cost of a page stay flat however long the trail). The
import writes them into an empty store with the same calls the service makes, and appends the
trail entry by entry from the checkpoint: the target computes every hash again, and the import
stops at the first one that differs from the exported one (a trail altered in transit or a
broken source).

Not carried: sessions (everybody signs in again) and short-lived keys (used token ids,
counters, lockouts), which expire within minutes of the service stopping.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec

from signaling.models import (
    AuditEntry,
    AuditFields,
    ConsentReceipt,
    Consultation,
    Recording,
    User,
)
from signaling.store.base import AuditCheckpoint, AuditFilter, Store
from signaling.store.records import (
    AUDIT,
    CONSENT_RECEIPTS,
    CONSULTATIONS,
    RECORDINGS,
    USERS,
    Kind,
)

R = TypeVar("R", bound=msgspec.Struct)
FORMAT = "teleconsult-store-export"
VERSION = 1
# Audit entries read per page on export.
PAGE = 1000
_KINDS: dict[str, Kind[Any]] = {
    k.name: k for k in (USERS, CONSULTATIONS, CONSENT_RECEIPTS, RECORDINGS, AUDIT)
}


class Header(msgspec.Struct, tag="header"):
    format: str
    version: int


class Record(msgspec.Struct, tag="record"):
    kind: str
    record: msgspec.Raw


class Meta(msgspec.Struct, tag="meta"):
    name: str
    value: str


class Checkpoint(msgspec.Struct, tag="checkpoint"):
    seq: int
    hash: str


Line = Header | Record | Meta | Checkpoint
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Line)


class TransferError(Exception):
    """The export cannot be imported; the message says why and what to do."""


@dataclass
class Counts:
    """How many of each were carried (for the command's report)."""

    by_kind: dict[str, int] = field(default_factory=dict)

    def add(self, name: str) -> None:
        self.by_kind[name] = self.by_kind.get(name, 0) + 1

    def __str__(self) -> str:
        return ", ".join(f"{count} {name}" for name, count in self.by_kind.items()) or "nothing"


def _line(item: Line) -> bytes:
    return _encoder.encode(item) + b"\n"


def _record(kind: Kind[R], record: R) -> bytes:
    return _line(Record(kind.name, msgspec.Raw(kind.encode(record))))


async def export_lines(
    store: Store, meta_names: Sequence[str], meta_prefixes: Sequence[str] = ()
) -> AsyncIterator[bytes]:
    """The store's durable records as JSON lines, the trail last and a page at a time; of
    the meta values, those named in ``meta_names`` and all whose name starts with one of
    ``meta_prefixes``."""
    yield _line(Header(FORMAT, VERSION))
    for user in await store.list_users():
        yield _record(USERS, user)
    for consultation in await store.list_consultations(None):
        yield _record(CONSULTATIONS, consultation)
        for receipt in await store.list_consent_receipts(consultation.id):
            yield _record(CONSENT_RECEIPTS, receipt)
    for recording in await store.list_recordings():
        yield _record(RECORDINGS, recording)
    for name in meta_names:
        value = await store.get_meta(name)
        if value is not None:
            yield _line(Meta(name, value))
    for prefix in meta_prefixes:
        for name, value in await store.list_meta(prefix):
            yield _line(Meta(name, value))
    checkpoint = await store.audit_checkpoint()
    if checkpoint is not None:
        yield _line(Checkpoint(checkpoint.seq, checkpoint.hash))
    # Keyset pages (past the last entry given), not offsets: each page costs the same however
    # long the trail, and a purge or appends meanwhile neither skip nor repeat an entry.
    last: int | None = None
    while page := await store.list_audit(AuditFilter(after_seq=last, limit=PAGE)):
        for entry in page:
            yield _record(AUDIT, entry)
        last = page[-1].seq


async def import_lines(store: Store, lines: Iterable[bytes]) -> Counts:
    """Write an export into ``store``, which must hold no user and no audit entry."""
    if await store.count_users() or await store.audit_head() is not None:
        raise TransferError("the target store is not empty (it has users or audit entries)")
    counts = Counts()
    started = False
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            item = _decoder.decode(raw)
        except msgspec.ValidationError as exc:
            raise TransferError(f"line {number}: not an export line ({exc})") from None
        if not started:
            if not isinstance(item, Header) or (item.format, item.version) != (FORMAT, VERSION):
                raise TransferError(f"not an export of format {FORMAT} version {VERSION}")
            started = True
            continue
        await _import_one(store, item, number, counts)
    if not started:
        raise TransferError("the export is empty")
    return counts


async def _import_one(store: Store, item: Line, number: int, counts: Counts) -> None:
    if isinstance(item, Meta):
        await store.set_meta(item.name, item.value)
        counts.add("meta values")
    elif isinstance(item, Checkpoint):
        await store.set_audit_checkpoint(AuditCheckpoint(item.seq, item.hash))
        counts.add("checkpoint")
    elif isinstance(item, Record):
        kind = _KINDS.get(item.kind)
        if kind is None:
            raise TransferError(f"line {number}: unknown record kind {item.kind!r}")
        await _import_record(store, kind.decode(item.record), number)
        counts.add(kind.name)
    else:
        raise TransferError(f"line {number}: a second header")


async def _import_record(store: Store, record: msgspec.Struct, number: int) -> None:
    if isinstance(record, User):
        await store.create_user(record)
    elif isinstance(record, Consultation):
        await store.create_consultation(record)
    elif isinstance(record, ConsentReceipt):
        await store.add_consent_receipt(record)
    elif isinstance(record, Recording):
        await store.create_recording(record)
    elif isinstance(record, AuditEntry):
        fields = {name: getattr(record, name) for name in AuditFields.__struct_fields__}
        appended = await store.append_audit(AuditFields(**fields))
        if (appended.seq, appended.hash) != (record.seq, record.hash):
            raise TransferError(
                f"line {number}: audit entry {record.seq} does not chain as exported "
                f"(imported as {appended.seq}); the target holds a partial import: "
                "empty it before trying again"
            )
