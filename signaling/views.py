"""Turn stored records into API views and set cookies the same way everywhere."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from signaling.api_types import ConsultationView, UserView
from signaling.errors import AppError
from signaling.models import Consultation, User


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_iso(value: str, field: str = "scheduled_start") -> float:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise AppError("invalid_body", f"{field}: expected an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        raise AppError("invalid_body", f"{field}: include a UTC offset, e.g. Z or +01:00")
    return parsed.timestamp()


def user_view(user: User) -> UserView:
    return UserView(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        role=user.role,
        mfa_enrolled=user.totp_confirmed,
        disabled=user.disabled,
        created_at=user.created_at,
    )


def consultation_view(c: Consultation, invite_deadline: float) -> ConsultationView:
    return ConsultationView(
        id=c.id,
        doctor_id=c.doctor_id,
        patient_name=c.patient_name,
        scheduled_start=iso(c.scheduled_start),
        scheduled_end=iso(c.scheduled_end),
        duration_minutes=c.duration_minutes,
        note=c.note,
        status=c.status,
        invite_locked=c.invite_locked,
        invite_expires=iso(invite_deadline),
        erased=c.erased_at is not None,
    )


def set_cookie(
    response: web.StreamResponse, name: str, value: str, max_age: float, secure: bool
) -> None:
    response.set_cookie(
        name, value, max_age=int(max_age), path="/", httponly=True, samesite="Strict", secure=secure
    )


def clear_cookie(response: web.StreamResponse, name: str, secure: bool) -> None:
    response.del_cookie(name, path="/", httponly=True, samesite="Strict", secure=secure)
