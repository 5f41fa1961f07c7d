"""Consultations, their patient invites (link + access code) and who may enter which room."""

from __future__ import annotations

import hmac
import secrets
import uuid
from dataclasses import dataclass
from typing import Protocol

from config import SecuritySettings
from signaling.audit.access_audit import AccessRefused
from signaling.audit.trail import AuditTrail
from signaling.clock import Clock
from signaling.consultations import permissions
from signaling.consultations.short_invites import grouped, lookup_name, read_code
from signaling.consultations.tokens import InviteTokens
from signaling.crypto import keyed_digest
from signaling.errors import AppError, ErrorCode
from signaling.models import Consultation, PatientLanguage, Session, User
from signaling.store.base import Store

ACCESS_CODE_DIGITS = 6


class AddressLockout(Protocol):
    """The per-address failure limit shared with sign-in (signaling.accounts.auth.Accounts)."""

    async def check_address(self, address: str) -> None: ...
    async def count_address_failure(self, address: str, step: str) -> None: ...


@dataclass(frozen=True)
class IssuedInvite:
    consultation: Consultation
    invite_token: str
    access_code: str  # shown once to the doctor, stored only as a keyed hash


class Consultations:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        settings: SecuritySettings,
        invites: InviteTokens,
        code_key: bytes,
        audit: AuditTrail,
        lockout: AddressLockout,
    ) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.invites = invites
        self._code_key = code_key
        self._audit = audit
        self._lockout = lockout

    def _code_hash(self, consultation_id: str, nonce: str, code: str) -> str:
        return keyed_digest(self._code_key, f"{consultation_id}:{nonce}:{code}")

    def link_token(self, consultation: Consultation) -> str:
        """The last segment of the consultation's current patient link (its short code,
        grouped): the same for as long as the invite nonce is, so an email can carry it."""
        return grouped(self.invites.short(consultation.id, consultation.invite_nonce))

    def _new_invite(self, consultation: Consultation) -> IssuedInvite:
        nonce = secrets.token_urlsafe(9)
        code = f"{secrets.randbelow(10**ACCESS_CODE_DIGITS):0{ACCESS_CODE_DIGITS}d}"
        consultation = consultation.evolve(
            invite_nonce=nonce,
            access_code_hash=self._code_hash(consultation.id, nonce, code),
            code_failures=0,
            invite_locked=False,
        )
        return IssuedInvite(consultation, self.link_token(consultation), code)

    async def _register_link(self, consultation: Consultation) -> None:
        """Map the short code's hash to the consultation, before the link is shown."""
        code = self.invites.short(consultation.id, consultation.invite_nonce)
        await self.store.set_meta(lookup_name(code), consultation.id)

    async def create(
        self,
        doctor: User,
        patient_name: str,
        scheduled_start: float,
        duration_minutes: int,
        note: str,
        *,
        patient_email: str = "",
        patient_language: PatientLanguage = "fr",
    ) -> IssuedInvite:
        base = Consultation(
            patient_email=patient_email,
            patient_language=patient_language,
            id=uuid.uuid4().hex,
            doctor_id=doctor.id,
            patient_name=patient_name,
            scheduled_start=scheduled_start,
            duration_minutes=duration_minutes,
            note=note,
            status="scheduled",
            created_at=self.clock.now(),
            invite_nonce="",
            access_code_hash="",
        )
        issued = self._new_invite(base)
        await self._register_link(issued.consultation)
        await self.store.create_consultation(issued.consultation)
        return issued

    async def reissue_invite(self, consultation: Consultation) -> IssuedInvite:
        """A new link and code, one generation up: every patient session and patient room
        token of the earlier generations is refused from now on (``invite_superseded``)."""
        self.ensure_open(consultation)
        issued = self._new_invite(
            consultation.evolve(invite_generation=consultation.invite_generation + 1)
        )
        await self._register_link(issued.consultation)
        await self.store.update_consultation(issued.consultation)
        return issued

    def ensure_open(self, consultation: Consultation) -> None:
        if consultation.status == "cancelled":
            raise AppError("consultation_cancelled")
        if consultation.status == "ended":
            raise AppError("consultation_ended")

    def invite_deadline(self, consultation: Consultation) -> float:
        return consultation.scheduled_end + self.settings.invite_grace_minutes * 60

    async def visible_to(self, user: User, consultation_id: str) -> Consultation:
        """The consultation if this user may see it (permissions.may_see), else not found."""
        consultation = await self.store.get_consultation(consultation_id)
        if consultation is None or not permissions.may_see(user, consultation):
            # Same answer for "absent" and "someone else's": ids are not confirmed to outsiders.
            # Only the audit trail tells them apart (signaling/audit/access_audit.py).
            raise AccessRefused(
                "consultation_not_found",
                user,
                "not_found" if consultation is None else "not_owner",
                "consultation",
                consultation_id,
            )
        return consultation

    async def list_for(self, user: User) -> list[Consultation]:
        if user.role == "admin":
            return await self.store.list_consultations(None)
        found = [
            c
            for doctor_id in permissions.assisted_doctors(user)
            for c in await self.store.list_consultations(doctor_id)
        ]
        # One doctor's list is in start order; an assistant's doctors are merged into it.
        return sorted(found, key=lambda c: c.scheduled_start)

    async def reschedule(
        self, consultation: Consultation, scheduled_start: float, duration_minutes: int
    ) -> Consultation:
        """A new time; the links stay valid (their deadline follows the new end)."""
        self.ensure_open(consultation)
        moved = consultation.evolve(
            scheduled_start=scheduled_start, duration_minutes=duration_minutes
        )
        await self.store.update_consultation(moved)
        return moved

    async def edit(self, consultation: Consultation, **changes: object) -> Consultation:
        """New details (time, duration, name, note); the links stay valid, their deadline
        follows a new end."""
        self.ensure_open(consultation)
        edited = consultation.evolve(**changes)
        await self.store.update_consultation(edited)
        return edited

    async def cancel(self, consultation: Consultation) -> Consultation:
        self.ensure_open(consultation)
        # A new nonce revokes every invite link that was handed out.
        cancelled = consultation.evolve(status="cancelled", invite_nonce=secrets.token_urlsafe(9))
        await self.store.update_consultation(cancelled)
        return cancelled

    async def end(self, consultation: Consultation) -> Consultation:
        if consultation.status != "scheduled":
            return consultation
        ended = consultation.evolve(status="ended", ended_at=self.clock.now())
        await self.store.update_consultation(ended)
        return ended

    async def _linked_consultation(self, invite_token: str) -> Consultation:
        """The consultation a link names, if the link is its current one (else invalid)."""
        code = read_code(invite_token) if isinstance(invite_token, str) else None
        if code is not None:
            consultation_id = await self.store.get_meta(lookup_name(code))
            consultation = await self.store.get_consultation(consultation_id or "")
            if consultation is None:
                raise AppError("invite_invalid")
            self.ensure_open(consultation)
            current = self.invites.short(consultation.id, consultation.invite_nonce)
            if not hmac.compare_digest(current, code):
                raise AppError("invite_invalid")
            return consultation
        claims = self.invites.read(invite_token)
        consultation = await self.store.get_consultation(claims.consultation_id)
        if consultation is None:
            raise AppError("invite_invalid")
        self.ensure_open(consultation)
        if not hmac.compare_digest(consultation.invite_nonce, claims.nonce):
            raise AppError("invite_invalid")
        return consultation

    async def open_invite(self, invite_token: str) -> Consultation:
        """The consultation behind a link, if the link is still usable."""
        consultation = await self._linked_consultation(invite_token)
        if self.clock.now() > self.invite_deadline(consultation):
            raise AppError("invite_expired")
        if consultation.invite_locked:
            raise AppError("invite_locked")
        return consultation

    async def patient_consultation(
        self, session: Session, address: str, endpoint: str
    ) -> Consultation:
        """The consultation of a patient session that is still valid. A cancellation or a
        re-issued invite (a newer generation) ends the sessions opened before it: each
        refused request is audited and answered with the reason, on every endpoint."""
        consultation = await self.store.get_consultation(session.consultation_id or "")
        if consultation is None:
            raise AppError("consultation_not_found")
        reason: ErrorCode
        if consultation.status == "cancelled":
            reason = "consultation_cancelled"
        elif session.invite_generation != consultation.invite_generation:
            reason = "invite_superseded"
        else:
            return consultation
        await self._audit.record(
            "patient.session_refused",
            actor="patient",
            actor_role="patient",
            target=consultation.id,
            outcome="refused",
            address=address,
            reason=reason,
            generation=session.invite_generation,
            endpoint=endpoint,
        )
        raise AppError(reason)

    async def redeem(self, invite_token: str, access_code: str, address: str) -> Consultation:
        # An address that failed too often (wrong passwords, wrong codes on any invite) is
        # refused before a code is looked at: guessing spread over many invites is slowed
        # like guessing on one.
        await self._lockout.check_address(address)
        consultation = await self.open_invite(invite_token)
        code = access_code.strip().replace(" ", "")
        expected = consultation.access_code_hash
        given = self._code_hash(consultation.id, consultation.invite_nonce, code)
        if not hmac.compare_digest(expected, given):
            updated = await self.store.record_code_failure(
                consultation.id, self.settings.invite_max_code_attempts
            )
            await self._audit.record(
                "invite.code",
                actor="patient",
                actor_role="patient",
                target=consultation.id,
                address=address,
                outcome="failure",
            )
            await self._lockout.count_address_failure(address, "access_code")
            if updated.invite_locked:
                await self._audit.record(
                    "invite.locked",
                    actor="patient",
                    actor_role="patient",
                    target=consultation.id,
                    address=address,
                    outcome="locked",
                )
                raise AppError("invite_locked")
            remaining = self.settings.invite_max_code_attempts - updated.code_failures
            raise AppError("invalid_access_code", details={"attempts_left": remaining})
        await self._audit.record(
            "invite.used",
            actor="patient",
            actor_role="patient",
            target=consultation.id,
            address=address,
        )
        return consultation
