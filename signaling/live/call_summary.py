"""What the consultation row says about its call: when it started and ended, why it ended,
how many files were sent.

The rooms already tell their audit hook when a call starts (``call.started``, the doctor
admits the patient) and ends (``call.ended`` with its reason); :func:`with_call_summary`
wraps that hook so the same two moments are also kept on the Consultation record, which every
store backend keeps (a field, no migration). The audit trail stays the full story; the record
keeps the summary a doctor reads at a glance: the first start, the last end.

Files exchanged in the chat go peer to peer over the data channel, so the server counts what
the sender's page tells it (the ``file_sent`` message, a size and nothing else): a count the
participants declare, never a name or a content.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from signaling.audit_actions import AuditAction
from signaling.clock import Clock
from signaling.live.room import Room, Seat
from signaling.live.room_registry import AuditHook
from signaling.models import CallEnd, Consultation
from signaling.store.base import Store

log = logging.getLogger("teleconsult.rooms")

# The room's reason for a call's end, as the row says it (signaling/live/room.py).
_CALL_END_OF_REASON: dict[str, CallEnd] = {
    "ended_by_doctor": "doctor",
    "left": "patient",
    "disconnected": "connection_lost",
    "cancelled": "cancelled",
    "superseded": "new_link",
}


def call_started(at: float) -> Callable[[Consultation], Consultation | None]:
    def change(c: Consultation) -> Consultation:
        # A call may start again (the patient came back): the row keeps the first start and
        # forgets the previous end until this call ends.
        started = c.call_started_at if c.call_started_at is not None else at
        return c.evolve(call_started_at=started, call_ended_at=None, call_end=None)

    return change


def call_ended(at: float, reason: str) -> Callable[[Consultation], Consultation | None]:
    def change(c: Consultation) -> Consultation | None:
        if c.call_started_at is None:
            return None
        return c.evolve(call_ended_at=at, call_end=_CALL_END_OF_REASON.get(reason))

    return change


def file_counted(c: Consultation) -> Consultation:
    return c.evolve(files_exchanged=c.files_exchanged + 1)


def with_call_summary(hook: AuditHook, store: Store, clock: Clock) -> AuditHook:
    """``hook``, which also keeps the call's summary on the consultation record."""

    async def audit(room: Room, action: AuditAction, seat: Seat, **details: Any) -> None:
        await hook(room, action, seat, **details)
        change: Callable[[Consultation], Consultation | None]
        if action == "call.started":
            change = call_started(clock.now())
        elif action == "call.ended":
            change = call_ended(clock.now(), str(details.get("reason", "")))
        else:
            return
        try:
            await store.change_consultation(room.id, change)
        except Exception:
            # The call itself goes on; the audit trail above has the moment anyway.
            log.exception("room %s: the call summary was not saved", room.id)

    return audit
