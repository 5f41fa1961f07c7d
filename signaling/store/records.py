"""What the store keeps, declared once for every backend.

Each kind of record is a msgspec Struct (signaling/models.py) stored whole, as one JSON value:
a row's ``body`` in SQL, one key's value in Redis. Beside it, a backend keeps only what its
lists need, as this module declares: the record's key, its :class:`Index` (the lists that
filter on a field and sort on another) and its :class:`Unique` values (a user name, case
folded). SQLite maps an index to columns derived from the body and an SQL index, Redis to
one sorted set per value; a new field needs no migration anywhere, a new index only its line
here. Nothing in this module knows a backend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import msgspec

from signaling.models import AuditEntry, ConsentReceipt, Consultation, Recording, Session, User

R = TypeVar("R", bound=msgspec.Struct)


@dataclass(frozen=True)
class Index:
    """A list the store answers: records whose ``field`` equals a value (None: all of them),
    sorted on ``order`` (None: in no particular order). Fields are the record's own."""

    field: str | None
    order: str | None = None

    @property
    def name(self) -> str:
        return (self.field or "all") + (f"_by_{self.order}" if self.order else "")

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(c for c in (self.field, self.order) if c is not None)


@dataclass(frozen=True)
class Unique(Generic[R]):
    """A value derived from a record that no two records may share."""

    name: str
    of: Callable[[R], str]


@dataclass(frozen=True)
class Kind(Generic[R]):
    """A kind of record: its Struct, the field that identifies one, its indexes."""

    name: str
    type: type[R]
    key: str
    indexes: tuple[Index, ...] = ()
    unique: tuple[Unique[R], ...] = ()
    _decoder: msgspec.json.Decoder[R] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = {f.name for f in msgspec.structs.fields(self.type)}
        named = {self.key, *(c for index in self.indexes for c in index.columns)}
        if not named <= names:
            raise ValueError(f"{self.name}: no such field {sorted(named - names)}")
        object.__setattr__(self, "_decoder", msgspec.json.Decoder(self.type))

    @property
    def columns(self) -> tuple[str, ...]:
        """The fields a backend keeps beside the body (key first), each once."""
        ordered = [self.key, *(c for index in self.indexes for c in index.columns)]
        return tuple(dict.fromkeys(ordered))

    def key_of(self, record: R) -> str:
        return str(getattr(record, self.key))

    def encode(self, record: R) -> bytes:
        return _encoder.encode(record)

    def decode(self, raw: bytes | str) -> R:
        return self._decoder.decode(raw)


_encoder = msgspec.json.Encoder()


def fold_username(username: str) -> str:
    """Usernames are unique case-insensitively: what two equal ones have in common."""
    return username.casefold()


USERS = Kind(
    "users",
    User,
    key="id",
    # Listed whole (sorted on username_key by the caller's backend); few records.
    indexes=(Index(None),),
    unique=(Unique[User]("username_key", lambda user: fold_username(user.username)),),
)
SESSIONS = Kind(
    "sessions",
    Session,
    key="id_hash",
    # A user's sessions end together; expired ones are purged by expiry.
    indexes=(Index("user_id"), Index(None, "expires_at")),
)
CONSULTATIONS = Kind(
    "consultations",
    Consultation,
    key="id",
    indexes=(Index(None, "scheduled_start"), Index("doctor_id", "scheduled_start")),
)
RECORDINGS = Kind(
    "recordings",
    Recording,
    key="id",
    indexes=(
        Index(None, "started_at"),
        Index("doctor_id", "started_at"),
        Index("consultation_id", "started_at"),
    ),
)
CONSENT_RECEIPTS = Kind(
    "consent_receipts",
    ConsentReceipt,
    key="id",
    indexes=(Index("consultation_id", "at"),),
)
# The audit page filters on each of these, pages in sequence order, and bounds by time.
AUDIT_FILTERS = ("actor", "target", "action", "outcome")
AUDIT = Kind(
    "audit",
    AuditEntry,
    key="seq",
    indexes=(
        Index(None, "seq"),
        Index(None, "at"),
        *(Index(name, "seq") for name in AUDIT_FILTERS),
    ),
)

KINDS: tuple[Kind[Any], ...] = (USERS, SESSIONS, CONSULTATIONS, RECORDINGS, CONSENT_RECEIPTS, AUDIT)
