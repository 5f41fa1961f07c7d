"""The [mail] and [clinic] settings, the SMTP password file, the .ics writer's escaping and
folding, and a service without mail that says so."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import icalendar
import pytest

from config import ConfigError, MailSettings, load_settings, read_password_file
from signaling.clock import ManualClock
from signaling.mail.ics import CalendarEvent, calendar_file, escape_text, fold
from signaling.mail.smtp import SmtpSender
from tests.conftest import Staff
from tests.test_consultations import create

MAIL = '[mail]\nhost = "smtp.example"\nfrom_address = "visio@clinic.example"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "teleconsult.toml"
    path.write_text(text)
    return path


def test_a_complete_mail_section_loads(tmp_path: Path) -> None:
    text = MAIL + 'security = "tls"\nport = 465\n[clinic]\nname = "Cabinet"\nphone = "01"\n'
    settings = load_settings(write(tmp_path, text), environ={})
    assert settings.mail.enabled and settings.mail.security == "tls"
    assert settings.clinic.name == "Cabinet" and settings.clinic.timezone == "Europe/Paris"
    assert not load_settings(environ={}).mail.enabled


@pytest.mark.parametrize(
    ("text", "names"),
    [
        (MAIL, "clinic.name"),
        ('[mail]\nhost = "smtp.example"\n[clinic]\nname = "C"\n', "mail.from_address"),
        (MAIL + 'security = "ssl"\n[clinic]\nname = "C"\n', "mail.security"),
        (MAIL + 'username = "u"\n[clinic]\nname = "C"\n', "mail.password_file"),
        (
            MAIL + 'security = "none"\nusername = "u"\npassword_file = "/p"\n'
            '[clinic]\nname = "C"\n',
            "mail.security",
        ),
        ("[mail]\nreminder_lead_minutes = -1\n", "mail.reminder_lead_minutes"),
        (
            MAIL + 'reminder_lead_minutes = 30\n[clinic]\nname = "C"\n',
            "mail.reminder_lead_minutes",
        ),
        ("[mail]\ntimeout_seconds = 0\n", "mail.timeout_seconds"),
        ('[clinic]\ntimezone = "Mars/Olympus"\n', "clinic.timezone"),
        ('[clinic]\nname = "a\\nb"\n', "clinic.name"),
    ],
)
def test_a_bad_mail_or_clinic_setting_names_the_key(tmp_path: Path, text: str, names: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), environ={})
    assert str(info.value).startswith(names)


def test_the_smtp_password_file_must_be_private(tmp_path: Path) -> None:
    path = tmp_path / "smtp-password"
    path.write_text("s3cret pass\nignored\n")
    os.chmod(path, 0o640)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_password_file(path)
    os.chmod(path, 0o600)
    assert read_password_file(path) == "s3cret pass"
    with pytest.raises(ConfigError, match="does not exist"):
        read_password_file(tmp_path / "missing")


def test_ics_text_is_escaped_and_long_lines_folded_without_splitting_a_character() -> None:
    assert escape_text("a,b;c\\d\ne") == "a\\,b\\;c\\\\d\\ne"
    line = "DESCRIPTION:" + "é" * 100
    folded = fold(line)
    assert all(len(part.encode()) <= 75 for part in folded.split("\r\n"))
    assert folded.replace("\r\n ", "") == line
    event = CalendarEvent(
        uid="c1@visio.example",
        sequence=2,
        start=1_800_000_000,
        end=1_800_001_800,
        stamp=1_799_990_000,
        summary="Téléconsultation – Cabinet; Dupont, Martin",
        description="Ligne 1\nLigne 2, avec; ponctuation \\ et accents éàü " * 4,
        url="https://visio.example/join/7KQM-2XRT-9HPW",
    )
    raw = calendar_file(event, "-//Cabinet//Teleconsult//FR")
    assert raw.endswith(b"\r\n") and all(len(x) <= 75 for x in raw.split(b"\r\n"))
    parsed = icalendar.Calendar.from_ical(raw).walk("VEVENT")[0]
    assert str(parsed["SUMMARY"]) == event.summary
    assert str(parsed["DESCRIPTION"]) == event.description
    assert parsed["SEQUENCE"] == 2
    assert parsed.decoded("DTSTART").timestamp() == event.start


@pytest.mark.both_stores
async def test_without_mail_settings_sending_says_it_is_not_set_up(
    doctor: Staff, clock: ManualClock
) -> None:
    created: dict[str, Any] = await create(doctor, clock, patient_email="p@patient.example")
    cid = created["consultation"]["id"]
    resp = await doctor.post(f"/api/consultations/{cid}/email", json={})
    assert resp.status == 409
    error = (await resp.json())["error"]
    assert error["code"] == "mail_not_configured" and "yourself" in error["message"]
    view = await (await doctor.client.get(f"/api/consultations/{cid}")).json()
    assert view["patient_email"] == "p@patient.example" and view["invite_emailed_at"] is None


async def test_the_clinic_endpoint_answers_empty_values_when_not_set(client: Any) -> None:
    resp = await client.get("/api/clinic")
    assert resp.status == 200
    assert await resp.json() == {
        "name": "",
        "phone": "",
        "hours": "",
        "emergency_fr": "En cas d'urgence, appelez le 15 ou le 112.",
        "emergency_en": "In an emergency, call 15 or 112.",
    }


def test_an_unreadable_ca_file_stops_start_up_naming_the_setting(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-certificate.pem"
    bad.write_text("nothing here\n")
    for path in (bad, tmp_path / "missing.pem"):
        mail = MailSettings(host="smtp.example", from_address="v@clinic.example", ca_file=str(path))
        with pytest.raises(ConfigError, match=r"^mail\.ca_file"):
            SmtpSender(mail, None)
