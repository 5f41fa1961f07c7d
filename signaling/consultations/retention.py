"""Retention and erasure: patient details are kept no longer than needed.

Erasing a consultation removes what identifies the patient (display name, email address,
note, access code, live invite links) and keeps the consultation id, times and audit
entries, which refer to people only by ids: the audit chain stays whole and still verifies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from config import Settings
from signaling.audit.trail import AuditTrail
from signaling.clock import Clock
from signaling.keys import SERVICES
from signaling.models import Consultation
from signaling.recording.recordings import RecordingLibrary
from signaling.store.base import Store, StoreUnavailable

log = logging.getLogger("teleconsult.retention")
DAY = 86400.0


async def erase_consultation(
    store: Store,
    consultation: Consultation,
    now: float,
    library: RecordingLibrary | None = None,
) -> tuple[Consultation, int]:
    """Erase the patient's details; with ``library``, crypto-shred the recordings too.

    Answers the erased consultation and how many recordings were shredded.
    """
    shredded = 0
    if library is not None:
        for recording in await store.list_recordings(consultation_id=consultation.id):
            if recording.status not in ("deleted", "recording"):
                await library.delete(recording, "erased")
                shredded += 1
    erased = consultation.evolve(
        patient_name="",
        patient_email="",
        note="",
        access_code_hash="",
        invite_nonce=secrets.token_urlsafe(9),
        invite_locked=True,
        erased_at=now,
        status="cancelled" if consultation.status == "scheduled" else consultation.status,
    )
    await store.update_consultation(erased)
    await store.scrub()
    return erased, shredded


@dataclass(frozen=True)
class SweepReport:
    consultations_erased: int
    sessions_purged: int
    recordings_purged: int = 0
    consent_receipts_purged: int = 0
    # Audit entries removed behind the checkpoint (their purge is an audit entry itself).
    audit_entries_purged: int = 0
    # Not retention, but the same pass: invitation reminders emailed.
    reminders_sent: int = 0
    # Expired short-lived keys (used token ids, counters, lockouts) removed from a store
    # that keeps them in a table: housekeeping, not personal data, so neither audited nor
    # counted in ``anything`` (it would log every sweep).
    ephemeral_keys_purged: int = 0

    @property
    def anything(self) -> bool:
        return any(
            (
                self.consultations_erased,
                self.sessions_purged,
                self.recordings_purged,
                self.consent_receipts_purged,
                self.audit_entries_purged,
                self.reminders_sent,
            )
        )


class ReminderSender(Protocol):
    """Sends the reminders due among the consultations a sweep reads (signaling/mail/)."""

    async def send_due_reminders(self, consultations: list[Consultation]) -> int: ...


class RetentionSweeper:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        settings: Settings,
        audit: AuditTrail,
        reminders: ReminderSender | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.audit = audit
        self.reminders = reminders

    async def _send_reminders(self, consultations: list[Consultation]) -> int:
        """The sweeper's second job: one pass over the consultations it already read. A
        failure here is logged and never stops the retention work."""
        if self.reminders is None:
            return 0
        try:
            return await self.reminders.send_due_reminders(consultations)
        except StoreUnavailable:
            raise
        except Exception:
            log.exception("invitation reminders failed")
            return 0

    async def sweep(self) -> SweepReport:
        now = self.clock.now()
        kept = self.settings.retention
        erased = receipts = 0
        consultations = await self.store.list_consultations(None)
        reminded = await self._send_reminders(consultations)
        for c in consultations:
            if c.erased_at is None and c.scheduled_end + kept.consultation_days * DAY < now:
                await erase_consultation(self.store, c, now)
                erased += 1
            receipts += await self.store.delete_consent_receipts(
                c.id, now - kept.consent_receipt_days * DAY
            )
        sessions = await self.store.purge_sessions(now)
        ephemeral = await self.store.purge_ephemeral(now)
        purged = await RecordingLibrary(self.store, self.clock, self.settings).purge_expired()
        for recording in purged:
            # One entry per recording, so its trail (and a breach report) shows when it went.
            await self.audit.record(
                "recording.purged",
                actor="system",
                actor_role="system",
                target=recording.id,
                consultation=recording.consultation_id,
                recording_days=self.settings.recording.retention_days,
            )
        recordings = len(purged)
        if erased or sessions or recordings or receipts:
            await self.audit.record(
                "retention.purged",
                actor="system",
                actor_role="system",
                consultations_erased=erased,
                sessions_purged=sessions,
                recordings_purged=recordings,
                consent_receipts_purged=receipts,
                consultation_days=kept.consultation_days,
                recording_days=self.settings.recording.retention_days,
                consent_receipt_days=kept.consent_receipt_days,
            )
        # Last, so the entries above are not purged before anyone could read them.
        audit_purge = await self.audit.purge_before(now - kept.audit_days * DAY, kept.audit_days)
        return SweepReport(
            consultations_erased=erased,
            sessions_purged=sessions,
            recordings_purged=recordings,
            consent_receipts_purged=receipts,
            audit_entries_purged=int(json.loads(audit_purge.details)["removed"])
            if audit_purge
            else 0,
            reminders_sent=reminded,
            ephemeral_keys_purged=ephemeral,
        )


def setup_retention(app: web.Application) -> None:
    """Sweep at start and then every ``retention.sweep_interval_minutes``."""

    async def run(app: web.Application) -> AsyncIterator[None]:
        services = app[SERVICES]
        sweeper = RetentionSweeper(
            services.store, services.clock, services.settings, services.audit, services.mailer
        )
        interval = services.settings.retention.sweep_interval_minutes * 60

        stop = asyncio.Event()

        async def sweep_once() -> None:
            try:
                report = await sweeper.sweep()
                if report.anything:
                    log.info("retention sweep: %s", report)
            except StoreUnavailable:
                log.warning("retention sweep skipped: store unavailable")
            except Exception:
                log.exception("retention sweep failed")
            try:
                # The head of the audit chain, logged periodically: an auditor who keeps
                # these lines can detect a truncated tail with `audit verify --anchor`.
                head = await services.store.audit_head()
                if head is not None:
                    log.info("audit anchor %d:%s", head.seq, head.hash)
            except StoreUnavailable:
                pass

        async def loop() -> None:
            while not stop.is_set():
                # An event, not a bare sleep: shutdown never waits for a whole interval.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=interval)
                if not stop.is_set():
                    await sweep_once()

        # The first sweep runs before the service starts answering, so nothing is in flight
        # against the store while requests begin.
        await sweep_once()
        task = asyncio.create_task(loop(), name="retention-sweeper")
        yield
        # Let a sweep in progress finish rather than cancel it mid-command (a cancelled
        # Redis command can leave its connection behind); cancel only if it hangs.
        stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=10)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app.cleanup_ctx.append(run)
