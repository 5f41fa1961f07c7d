"""The words of invitation and reminder emails, in French and English.

Plain ``str.format`` templates, one table per language: the values put in are the clinic's
name, phone and hours, the doctor's and the patient's names, the appointment's date and the
link. The emergency line is the clinic's own text in each language (signaling/clinic/).
Nothing of the consultation's note or reason is ever given to a template, and the access code
is not known here at all: the doctor gives it by phone or SMS.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from signaling.models import PatientLanguage

MailKind = Literal["invitation", "reminder"]

_FR_DAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
_FR_MONTHS = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)
_EN_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_EN_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def spoken_date(at: datetime, language: PatientLanguage) -> str:
    """``mercredi 3 décembre 2026 à 14:30`` / ``Wednesday 3 December 2026 at 14:30``: no
    locale database needed, and the same on every machine."""
    if language == "fr":
        day, month = _FR_DAYS[at.weekday()], _FR_MONTHS[at.month - 1]
        return f"{day} {at.day} {month} {at.year} à {at:%H:%M}"
    day, month = _EN_DAYS[at.weekday()], _EN_MONTHS[at.month - 1]
    return f"{day} {at.day} {month} {at.year} at {at:%H:%M}"


@dataclass(frozen=True)
class Wording:
    subject: dict[MailKind, str]
    greeting: str
    opening: dict[MailKind, str]
    join: str
    code: str
    genuine: str
    call_us: str
    hours: str
    automatic: str
    calendar: str
    event_summary: str
    event_description: str


WORDING: dict[PatientLanguage, Wording] = {
    "fr": Wording(
        subject={
            "invitation": "Votre téléconsultation du {date} – {clinic}",
            "reminder": "Rappel : votre téléconsultation du {date} – {clinic}",
        },
        greeting="Bonjour {patient},",
        opening={
            "invitation": "{doctor} vous donne rendez-vous en téléconsultation vidéo le {date} "
            "({timezone}), pour {minutes} minutes.",
            "reminder": "Nous vous rappelons votre téléconsultation vidéo avec {doctor} le "
            "{date} ({timezone}).",
        },
        join="Pour la rejoindre, ouvrez ce lien quelques minutes avant l'heure, depuis un "
        "téléphone ou un ordinateur équipé d'une caméra et d'un micro :",
        code="Le code d'accès n'est pas dans ce message : votre médecin vous le donne par "
        "téléphone ou par SMS.",
        genuine="Pour reconnaître une invitation authentique : le lien commence par {prefix} ; "
        "nous ne vous demandons jamais de mot de passe, de code ni de paiement par email. En "
        "cas de doute, n'ouvrez pas le lien et appelez le cabinet.",
        call_us="Pour toute question, appelez le {phone}.",
        hours="Horaires du cabinet : {hours}",
        automatic="Ce message est envoyé automatiquement : merci de ne pas y répondre.",
        calendar="Le fichier joint ajoute le rendez-vous à votre agenda.",
        event_summary="Téléconsultation – {clinic}",
        event_description="Téléconsultation vidéo avec {doctor}. Ouvrez le lien quelques "
        "minutes avant l'heure : {link}. Le code d'accès vous est donné par téléphone ou SMS.",
    ),
    "en": Wording(
        subject={
            "invitation": "Your video consultation on {date} – {clinic}",
            "reminder": "Reminder: your video consultation on {date} – {clinic}",
        },
        greeting="Hello {patient},",
        opening={
            "invitation": "{doctor} will see you in a video consultation on {date} "
            "({timezone} time), for {minutes} minutes.",
            "reminder": "This is a reminder of your video consultation with {doctor} on {date} "
            "({timezone} time).",
        },
        join="To join, open this link a few minutes before the time, on a phone or a computer "
        "with a camera and a microphone:",
        code="The access code is not in this message: your doctor gives it to you by phone or "
        "text message.",
        genuine="How to recognise a genuine invitation: the link starts with {prefix}; we never "
        "ask for a password, a code or a payment by email. If in doubt, do not open the link "
        "and call the practice.",
        call_us="For any question, call {phone}.",
        hours="Opening hours: {hours}",
        automatic="This message is sent automatically: please do not reply to it.",
        calendar="The attached file adds the appointment to your calendar.",
        event_summary="Video consultation – {clinic}",
        event_description="Video consultation with {doctor}. Open the link a few minutes "
        "before the time: {link}. The access code is given to you by phone or text message.",
    ),
}
