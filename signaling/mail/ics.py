"""The appointment as an iCalendar file (RFC 5545), written by hand: one event, nothing else.

``METHOD:PUBLISH``, not ``REQUEST``: REQUEST is an iTIP scheduling request (RFC 5546) that
needs an ORGANIZER and the patient as an ATTENDEE, and makes calendar apps send an
accept/decline reply to the organizer's address: a mailbox nobody reads, and the patient's
address written into the file. PUBLISH lets the patient add the event to their calendar,
and a later file with the same UID and a higher SEQUENCE updates it rather than adding a
second one. Times are UTC (``...Z``): no VTIMEZONE to carry, each calendar shows local time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

_LINE_OCTETS = 75  # RFC 5545 §3.1: lines longer than this are folded


@dataclass(frozen=True)
class CalendarEvent:
    uid: str
    # Raised each time the event changes (a new link): calendars keep the highest.
    sequence: int
    start: float
    end: float
    stamp: float
    summary: str
    description: str
    url: str


def escape_text(value: str) -> str:
    """A TEXT value (RFC 5545 §3.3.11): backslash, semicolon, comma and newlines escaped."""
    value = value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    return value.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")


def fold(line: str) -> str:
    """Fold a content line at 75 octets without splitting a UTF-8 character (§3.1)."""
    parts: list[str] = []
    current, size = "", 0
    for ch in line:
        octets = len(ch.encode())
        # Continuation lines start with a space, which counts toward their 75 octets.
        limit = _LINE_OCTETS if not parts else _LINE_OCTETS - 1
        if size + octets > limit:
            parts.append(current)
            current, size = "", 0
        current += ch
        size += octets
    parts.append(current)
    return "\r\n ".join(parts)


def utc_stamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y%m%dT%H%M%SZ")


def calendar_file(event: CalendarEvent, product: str) -> bytes:
    """The whole file, CRLF line ends, UTF-8."""
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{escape_text(product)}",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        "BEGIN:VEVENT",
        f"UID:{escape_text(event.uid)}",
        f"SEQUENCE:{event.sequence}",
        f"DTSTAMP:{utc_stamp(event.stamp)}",
        f"DTSTART:{utc_stamp(event.start)}",
        f"DTEND:{utc_stamp(event.end)}",
        f"SUMMARY:{escape_text(event.summary)}",
        f"DESCRIPTION:{escape_text(event.description)}",
        # A URI value is not TEXT: it is written as is (§3.3.13).
        f"URL:{event.url}",
        f"LOCATION:{escape_text(event.url)}",
        "STATUS:CONFIRMED",
        "TRANSP:OPAQUE",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return ("\r\n".join(fold(line) for line in lines) + "\r\n").encode()
