"""Turn stored records into API views and set cookies the same way everywhere."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec
from aiohttp import web

from signaling.api.api_types import (
    MAX_DAYS_AHEAD,
    AccountStatus,
    AccountView,
    AuditEntryView,
    ConsultationView,
    RecordingConsentView,
    RecordingView,
    UserView,
)
from signaling.errors import AppError
from signaling.models import AuditEntry, ConsentReceipt, Consultation, Recording, User

log = logging.getLogger("teleconsult.views")

DAY = 86400.0
# MAX_DAYS_AHEAD (api_types): how far ahead a consultation may be booked, and the latest
# instant a period filter names. The earliest one it names: the service records nothing older.
EARLIEST_FILTER = 0.0  # 1970-01-01T00:00:00Z
# The instants a datetime can show (years 1 to 9999, UTC). A stored value beyond them (an old
# database, a hand-edited row) is shown clamped to the nearer end instead of failing a view.
_FIRST = datetime(1, 1, 1, tzinfo=UTC).timestamp()
_LAST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()


def representable(ts: float) -> bool:
    return _FIRST <= ts <= _LAST  # False for NaN too


def clamp(ts: float) -> float:
    return _FIRST if math.isnan(ts) else min(max(ts, _FIRST), _LAST)


def iso(ts: float) -> str:
    when = datetime.fromtimestamp(clamp(ts), tz=UTC)
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_iso(
    value: str,
    field: str = "scheduled_start",
    *,
    earliest: float = _FIRST,
    latest: float = _LAST,
    bounds: str = "",
) -> float:
    """An ISO 8601 date-time with a UTC offset, as a timestamp within [earliest, latest];
    ``bounds`` says in words what the range is, for the error message."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise AppError("invalid_body", f"{field}: expected an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        raise AppError("invalid_body", f"{field}: include a UTC offset, e.g. Z or +01:00")
    ts = parsed.timestamp()
    if not (max(earliest, _FIRST) <= ts <= min(latest, _LAST)):
        hint = f" ({bounds})" if bounds else ""
        raise AppError(
            "invalid_body",
            f"{field}: must be between {iso(earliest)} and {iso(latest)}{hint}",
        )
    return ts


def parse_period(
    since: str | None, until: str | None, now: float
) -> tuple[float | None, float | None]:
    """A period filter (audit page, incident report): each end from 1970 to
    MAX_DAYS_AHEAD days ahead, and ``until`` after ``since``."""
    bounds = f"from 1970 to at most {MAX_DAYS_AHEAD} days ahead"
    latest = now + MAX_DAYS_AHEAD * DAY
    start = (
        parse_iso(since, "since", earliest=EARLIEST_FILTER, latest=latest, bounds=bounds)
        if since
        else None
    )
    end = (
        parse_iso(until, "until", earliest=EARLIEST_FILTER, latest=latest, bounds=bounds)
        if until
        else None
    )
    if start is not None and end is not None and end < start:
        raise AppError("invalid_body", "until: must not be before since")
    return start, end


def user_view(user: User) -> UserView:
    return UserView(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        role=user.role,
        mfa_enrolled=user.totp_confirmed,
        disabled=user.disabled,
        created_at=user.created_at,
        assists=list(user.assists) if user.role == "assistant" else [],
    )


def account_view(user: User, now: float) -> AccountView:
    """An account as the admin page lists it, with its status at ``now``."""
    link = user.account_link
    locked = user.locked_until is not None and user.locked_until > now
    if user.disabled:
        status: AccountStatus = "disabled"
    elif locked:
        status = "locked"
    elif link is not None and link.expires_at <= now:
        status = "link_expired"
    elif link is not None:
        status = "enrolment_pending" if link.purpose == "enrolment" else "reset_pending"
    else:
        status = "active"
    return AccountView(
        **msgspec.structs.asdict(user_view(user)),
        status=status,
        locked_until=user.locked_until if locked else None,
        last_sign_in_at=user.last_sign_in_at,
        link_purpose=link.purpose if link else None,
        link_expires_at=link.expires_at if link else None,
    )


def checked_email(address: str) -> str:
    """A patient address as the body's pattern accepted it, refused if it hides a line end
    (a regular expression's ``$`` matches before a final newline)."""
    if address != address.strip():
        raise AppError("invalid_body", "patient_email: must be one address, no spaces")
    return address


def consultation_view(
    c: Consultation,
    invite_deadline: float,
    show_note: bool = True,
    recordings: int | msgspec.UnsetType = msgspec.UNSET,
) -> ConsultationView:
    start, end = c.scheduled_start, c.scheduled_end
    if not (representable(start) and representable(end) and representable(invite_deadline)):
        # Refused at the HTTP edge today, but a row from before the bounds (or written by
        # hand) must not fail every list it is in: shown clamped, so it can be cancelled.
        log.warning(
            "consultation %s: stored dates out of range (scheduled_start=%r, "
            "duration_minutes=%r), shown clamped",
            c.id,
            start,
            c.duration_minutes,
        )
    return ConsultationView(
        id=c.id,
        doctor_id=c.doctor_id,
        patient_name=c.patient_name,
        scheduled_start=iso(start),
        scheduled_end=iso(end),
        duration_minutes=c.duration_minutes,
        # Empty for a viewer who may not read the doctor's private notes (an assistant).
        note=c.note if show_note else "",
        status=c.status,
        invite_locked=c.invite_locked,
        invite_expires=iso(invite_deadline),
        erased=c.erased_at is not None,
        invite_generation=c.invite_generation,
        patient_email=c.patient_email,
        patient_language=c.patient_language,
        invite_emailed_at=iso(c.invite_emailed_at) if c.invite_emailed_at is not None else None,
        call_started_at=iso(c.call_started_at) if c.call_started_at is not None else None,
        call_ended_at=iso(c.call_ended_at) if c.call_ended_at is not None else None,
        call_end=c.call_end,
        files_exchanged=c.files_exchanged,
        recordings=recordings,
    )


def recording_view(
    r: Recording,
    receipts: Sequence[ConsentReceipt] = (),
    retention_ends_at: float | None = None,
) -> RecordingView:
    return RecordingView(
        id=r.id,
        consultation_id=r.consultation_id,
        doctor_id=r.doctor_id,
        started_at=iso(r.started_at),
        stopped_at=iso(r.stopped_at) if r.stopped_at else None,
        status=r.status,
        size_bytes=r.size_bytes,
        stop_reason=r.stop_reason,
        media_started_at=iso(r.media_started_at) if r.media_started_at is not None else None,
        media_ended_at=iso(r.media_ended_at) if r.media_ended_at is not None else None,
        duration_seconds=r.duration_seconds,
        seekable=r.seekable,
        empty=r.empty,
        retention_ends_at=iso(retention_ends_at) if retention_ends_at is not None else None,
        consents=[
            RecordingConsentView(role=c.role, decision=c.decision, at=iso(c.at))  # type: ignore[arg-type]
            for c in receipts
            if c.recording_id == r.id
        ],
    )


def audit_entry_view(e: AuditEntry) -> AuditEntryView:
    # The entry's own fields, its time as ISO 8601.
    return AuditEntryView(**{**msgspec.structs.asdict(e), "at": iso(e.at)})


def set_cookie(
    response: web.StreamResponse, name: str, value: str, max_age: float, secure: bool
) -> None:
    response.set_cookie(
        name, value, max_age=int(max_age), path="/", httponly=True, samesite="Strict", secure=secure
    )


def clear_cookie(response: web.StreamResponse, name: str, secure: bool) -> None:
    response.del_cookie(name, path="/", httponly=True, samesite="Strict", secure=secure)
