"""Invitations and reminders by email: what is sent, to whom, and once.

A send never changes the link or the access code: the email carries the consultation's
current link (its short code is derived again from the stored nonce), never the code. A
failed send raises the error the doctor sees and leaves the consultation as it was; only a
sent one records when (``invite_emailed_at``).

Reminders ride on the retention sweeper (one pass per ``retention.sweep_interval_minutes``):
each consultation due one is claimed in the store (``claim_once``), so with several
instances sweeping the same store a patient still gets one reminder; a failed send gives
the claim back so the next sweep tries again while the reminder is still due.
"""

from __future__ import annotations

import logging
from email.message import EmailMessage
from typing import Protocol

from config import Settings
from signaling.audit.trail import AuditTrail
from signaling.clinic.details import clinic_details
from signaling.clock import Clock
from signaling.consultations.booking import Consultations
from signaling.errors import AppError
from signaling.mail.message import Appointment, compose
from signaling.mail.smtp import MailFailure
from signaling.mail.templates import MailKind
from signaling.models import Consultation
from signaling.store.base import Store

log = logging.getLogger("teleconsult.mail")


class MailTransport(Protocol):
    async def send(self, message: EmailMessage) -> None:
        """Raise MailFailure when the message could not be handed to the mail server."""


class InviteMailer:
    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        store: Store,
        audit: AuditTrail,
        consultations: Consultations,
        transport: MailTransport | None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._store = store
        self._audit = audit
        self._consultations = consultations
        self._transport = transport

    def _link(self, c: Consultation) -> str:
        return f"{self._settings.server.origin}/join/{self._consultations.link_token(c)}"

    async def _message(self, c: Consultation, kind: MailKind) -> EmailMessage:
        doctor = await self._store.get_user(c.doctor_id)
        appointment = Appointment(
            consultation_id=c.id,
            sequence=c.invite_generation - 1,
            patient_name=c.patient_name,
            patient_email=c.patient_email,
            doctor_name=doctor.display_name if doctor else "",
            start=c.scheduled_start,
            end=c.scheduled_end,
            link=self._link(c),
        )
        return compose(
            appointment,
            kind,
            c.patient_language,
            await clinic_details(self._store, self._settings.clinic),
            self._settings.clinic.timezone,
            self._settings.mail.from_address,
            self._settings.server.origin,
            self._clock.now(),
        )

    def ensure_sendable(self, c: Consultation) -> None:
        """The checks before a send: mail set up, an address, a link that still works."""
        if self._transport is None:
            raise AppError("mail_not_configured")
        self._consultations.ensure_open(c)
        if self._clock.now() > self._consultations.invite_deadline(c):
            raise AppError("invite_expired")
        if not c.patient_email:
            raise AppError("patient_email_missing")

    async def _deliver(self, c: Consultation, kind: MailKind) -> None:
        assert self._transport is not None
        try:
            await self._transport.send(await self._message(c, kind))
        except MailFailure as failure:
            raise AppError(
                "mail_refused" if failure.reason == "refused" else "mail_unreachable"
            ) from None

    async def send_invitation(self, c: Consultation) -> Consultation:
        """Email the current link; answers the consultation as stored after the send."""
        self.ensure_sendable(c)
        await self._deliver(c, "invitation")
        return await self._mark_sent(c)

    async def _mark_sent(self, c: Consultation) -> Consultation:
        # Re-read: the send took a while, and a wrong code or a re-issue may have been
        # written meanwhile. A link replaced meanwhile was not the one sent: nothing to mark.
        fresh = await self._store.get_consultation(c.id)
        if fresh is None or fresh.invite_nonce != c.invite_nonce:
            return fresh or c
        marked = fresh.evolve(invite_emailed_at=self._clock.now())
        await self._store.update_consultation(marked)
        return marked

    def _reminder_due(self, c: Consultation, now: float) -> bool:
        lead = self._settings.mail.reminder_lead_minutes * 60
        opens = c.scheduled_start - lead
        return (
            lead > 0
            and c.status == "scheduled"
            and c.erased_at is None
            and not c.invite_locked
            and bool(c.patient_email)
            # Invited by email, and before the reminder's window: a patient invited ten
            # minutes ago needs no reminder.
            and c.invite_emailed_at is not None
            and c.invite_emailed_at < opens
            and opens <= now < c.scheduled_start
        )

    async def send_due_reminders(self, consultations: list[Consultation]) -> int:
        """Send the reminders due now among ``consultations``; answers how many went."""
        if self._transport is None:
            return 0
        now = self._clock.now()
        sent = 0
        for c in consultations:
            if not self._reminder_due(c, now):
                continue
            # One reminder per consultation and start time (a rescheduled one gets another),
            # whichever instance sweeps first; kept until the consultation is over.
            key = f"invite-reminder:{c.id}:{c.scheduled_start:.0f}"
            if not await self._store.claim_once(key, c.scheduled_end - now + 3600, now):
                continue
            try:
                await self._deliver(c, "reminder")
            except AppError as error:
                await self._store.delete_key(key)
                await self._audit_reminder(c, "failure", reason=error.code)
                continue
            await self._audit_reminder(c, "success")
            sent += 1
        return sent

    async def _audit_reminder(self, c: Consultation, outcome: str, **details: str) -> None:
        await self._audit.record(
            "invite.reminded",
            actor="system",
            actor_role="system",
            target=c.id,
            outcome=outcome,
            language=c.patient_language,
            **details,
        )
