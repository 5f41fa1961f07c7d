"""One invitation or reminder email: plain text and HTML alternatives and the .ics, built with
the standard library's EmailMessage (headers encoded and checked by its policy)."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from signaling.clinic.details import ClinicDetails
from signaling.mail.ics import CalendarEvent, calendar_file
from signaling.mail.templates import WORDING, MailKind, spoken_date
from signaling.models import PatientLanguage


@dataclass(frozen=True)
class Appointment:
    """What an email may say about a consultation: no note, no reason, no access code."""

    consultation_id: str
    # Raised with each new link, so a calendar replaces the event it holds.
    sequence: int
    patient_name: str
    patient_email: str
    doctor_name: str
    start: float
    end: float
    link: str


def _one_line(text: str) -> str:
    return " ".join(text.split())


def compose(
    appointment: Appointment,
    kind: MailKind,
    language: PatientLanguage,
    clinic: ClinicDetails,
    timezone: str,
    sender: str,
    origin: str,
    now: float,
) -> EmailMessage:
    words = WORDING[language]
    zone = ZoneInfo(timezone)
    date = spoken_date(datetime.fromtimestamp(appointment.start, zone), language)
    values = {
        "clinic": _one_line(clinic.name),
        "doctor": _one_line(appointment.doctor_name) or _one_line(clinic.name),
        "patient": _one_line(appointment.patient_name),
        "date": date,
        "timezone": timezone,
        "minutes": str(round((appointment.end - appointment.start) / 60)),
        "prefix": f"{origin}/join/",
        "phone": clinic.phone,
        "hours": _one_line(clinic.hours),
        "link": appointment.link,
    }
    paragraphs = [
        words.greeting.format(**values),
        words.opening[kind].format(**values),
        words.join.format(**values),
        appointment.link,
        words.code,
        words.calendar,
        words.genuine.format(**values),
        # The clinic's own words, in the message's language; never empty (config/clinic_rules).
        _one_line(clinic.emergency(language)),
    ]
    footer = [values["clinic"]]
    if clinic.phone:
        footer.append(words.call_us.format(**values))
    if clinic.hours:
        footer.append(words.hours.format(**values))
    footer.append(words.automatic)

    message = EmailMessage()
    message["From"] = sender
    message["To"] = Address(display_name=values["patient"], addr_spec=appointment.patient_email)
    message["Subject"] = words.subject[kind].format(**values)
    message["Date"] = format_datetime(datetime.fromtimestamp(now, zone))
    message["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1].strip(" >"))
    # RFC 3834: no out-of-office reply to a message nobody reads.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content("\n\n".join([*paragraphs, "\n".join(footer)]) + "\n")
    message.add_alternative(_html(paragraphs, footer, appointment.link, language), subtype="html")
    event = CalendarEvent(
        uid=f"{appointment.consultation_id}@{urlsplit(origin).hostname or 'teleconsult'}",
        sequence=appointment.sequence,
        start=appointment.start,
        end=appointment.end,
        stamp=now,
        summary=words.event_summary.format(**values),
        description=words.event_description.format(**values),
        url=appointment.link,
    )
    message.add_attachment(
        calendar_file(event, f"-//{values['clinic']}//Teleconsult//{language.upper()}"),
        maintype="text",
        subtype="calendar",
        filename="consultation.ics",
        params={"method": "PUBLISH"},
    )
    # Set last: a Content-* header set before the parts were added moves into the first part.
    message["Content-Language"] = language
    return message


def _html(paragraphs: list[str], footer: list[str], link: str, language: PatientLanguage) -> str:
    """The same words as the text part; no image, no remote content, no script."""
    parts = []
    for text in paragraphs:
        if text == link:
            href = html.escape(link, quote=True)
            parts.append(f'<p style="font-size:18px"><a href="{href}">{html.escape(link)}</a></p>')
        else:
            parts.append(f"<p>{html.escape(text)}</p>")
    foot = "<br>".join(html.escape(line) for line in footer)
    return (
        f'<!DOCTYPE html><html lang="{language}"><head><meta charset="utf-8"></head>'
        '<body style="font-family:sans-serif;line-height:1.5;max-width:36em">'
        + "".join(parts)
        + f'<p style="color:#555;font-size:14px">{foot}</p></body></html>\n'
    )
