"""Who may do what with a consultation: the one place a route asks.

Three staff roles (signaling/models.py StaffRole):

* ``doctor``: its own consultations, whole (notes, room, recordings).
* ``assistant`` (the medical secretariat): schedules for the doctors an admin attached it to
  (``User.assists``): books, reschedules, cancels, issues links and watches their waiting
  rooms. Never a private note, a seat in a call, a recording, a patient's export, nor
  anyone's audit entries but its own.
* ``admin``: accounts, the audit trail, patients' rights, and every consultation read and
  cancelled; it books for nobody (one role per account: an admin who also works as a
  secretary holds a second, assistant account, so that day-to-day scheduling never runs
  with administration rights and the trail tells the two hats apart).

The routes raise the answers below rather than spelling the rule: a new endpoint calls
these and stays in step with the others.
"""

from __future__ import annotations

from typing import Any

from signaling.audit.access_audit import AccessRefused
from signaling.errors import AppError
from signaling.models import Consultation, User


def assisted_doctors(user: User) -> tuple[str, ...]:
    """The doctors ``user`` schedules for: itself for a doctor, its doctors for an
    assistant, nobody for an admin."""
    if user.role == "doctor":
        return (user.id,)
    if user.role == "assistant":
        return user.assists
    return ()


def may_book_for(user: User, doctor_id: str) -> bool:
    return doctor_id in assisted_doctors(user)


def may_see(user: User, consultation: Consultation) -> bool:
    return user.role == "admin" or may_book_for(user, consultation.doctor_id)


def may_manage(user: User, consultation: Consultation) -> bool:
    """Reschedule it and issue its links: its doctor or the doctor's assistant."""
    return may_book_for(user, consultation.doctor_id)


def may_cancel(user: User, consultation: Consultation) -> bool:
    # An admin cancels any consultation (a doctor who left, a clinic closed for the day).
    return user.role == "admin" or may_manage(user, consultation)


def may_join(user: User, consultation: Consultation) -> bool:
    """Take the doctor's seat in its room: its own doctor only (an admin who holds a
    consultation from its time as a doctor included), never an assistant."""
    return user.role != "assistant" and consultation.doctor_id == user.id


def may_see_notes(user: User) -> bool:
    """Private notes are the doctor's: a secretary never reads them."""
    return user.role != "assistant"


def may_see_recordings(user: User) -> bool:
    return user.role != "assistant"


def audit_actor_scope(user: User) -> str | None:
    """Whose entries alone ``user`` reads in the trail: its own for an assistant (None: as
    the trail's own rules for its role say)."""
    return user.id if user.role == "assistant" else None


def acting_for(user: User, doctor_id: str) -> dict[str, Any]:
    """The audit detail every action of an assistant carries: the doctor it acted for."""
    return {"for_doctor": doctor_id} if user.role == "assistant" else {}


def refuse_feature(user: User, message: str) -> AccessRefused:
    """A feature the caller's role never has: ``forbidden`` (403), audited as a refused
    access (``not_permitted``) with the target the route's path names."""
    return AccessRefused("forbidden", user, "not_permitted", message=message)


def ensure_bookable(user: User, doctor: User | None, doctor_id: str) -> User:
    """The doctor a new consultation is for, if ``user`` books for it."""
    if not may_book_for(user, doctor_id):
        if user.role == "admin":
            raise refuse_feature(user, "Only doctors and their assistants book consultations.")
        raise AccessRefused(
            "forbidden",
            user,
            "not_owner",
            "user",
            doctor_id,
            "You do not schedule for this doctor.",
        )
    if doctor is None or doctor.role != "doctor" or doctor.disabled:
        raise AppError("invalid_body", "doctor_id: not an active doctor's account")
    return doctor
