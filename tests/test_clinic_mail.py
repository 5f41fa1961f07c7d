"""Invitations carry the clinic's details an admin saved (name, phone, hours, emergency line
in the email's language), through a real SMTP server, in French and in English."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from config import ClinicSettings, Settings
from signaling.clock import ManualClock
from tests.conftest import Staff
from tests.mail_server import SmtpServer, start_smtp_server
from tests.test_clinic_details import EDITED
from tests.test_mail_invitations import booked, mail_settings, send, text_of

pytestmark = pytest.mark.both_stores


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    server = start_smtp_server(tmp_path / "smtp-cert", "starttls")
    yield server
    server.stop()


@pytest.fixture
def settings(settings: Settings, smtp: SmtpServer, tmp_path: Path) -> Settings:
    mail = mail_settings(smtp, tmp_path, smtp.port)
    clinic = ClinicSettings(name="Cabinet Dupont", phone="01 23 45 67 89")
    return settings.replace(mail=mail, clinic=clinic).validate()


@pytest.mark.parametrize("language", ["fr", "en"])
async def test_an_invitation_gives_the_clinics_saved_details_and_emergency_line(
    admin: Staff, doctor: Staff, clock: ManualClock, smtp: SmtpServer, language: str
) -> None:
    resp = await admin.post("/api/clinic", json=EDITED)
    assert resp.status == 200, await resp.text()
    created = await booked(doctor, clock, patient_language=language)
    resp = await send(doctor, created["consultation"]["id"])
    assert resp.status == 200, await resp.text()

    [received] = smtp.received
    message = received.message
    assert EDITED["name"] in message["Subject"]
    emergency = EDITED[f"emergency_{language}"]
    other = EDITED["emergency_en" if language == "fr" else "emergency_fr"]
    hours = {"fr": "Horaires du cabinet : ", "en": "Opening hours: "}[language]
    call = {"fr": "appelez le ", "en": "call "}[language]
    for subtype in ("plain", "html"):
        text = text_of(message, subtype).replace("&#x27;", "'")
        assert EDITED["name"] in text
        assert call + EDITED["phone"] in text
        assert hours + EDITED["hours"] in text
        assert emergency in text
        assert other not in text  # the emergency line in the email's language only
        # The TOML's values no longer show once the admin saved the details.
        assert "Cabinet Dupont" not in text and "01 23 45 67 89" not in text
