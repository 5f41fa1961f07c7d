"""Invitations by email through a real SMTP server (aiosmtpd): STARTTLS with AUTH or
implicit TLS, both languages, the .ics parsed, no access code and no note in any message;
a refusing or unreachable server answers the doctor a clear error and loses nothing."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import icalendar
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from config import ClinicSettings, MailSettings, Settings
from signaling.clock import ManualClock
from signaling.consultations.retention import RetentionSweeper
from signaling.keys import SERVICES
from signaling.store.base import AuditFilter
from tests.conftest import Accounts, Staff
from tests.mail_server import SMTP_PASSWORD, SMTP_USER, Mode, SmtpServer, start_smtp_server
from tests.servers import free_port
from tests.test_consultations import create, start_in

pytestmark = [
    pytest.mark.both_stores,
    # aiosmtpd counts only STARTTLS as TLS, and warns on AUTH over its implicit TLS mode.
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning"),
]

PATIENT_EMAIL = "camille.durand@patient.example"
NOTE = "suivi diabète, HbA1c"
CLINIC = ClinicSettings(name="Cabinet Dupont", phone="01 23 45 67 89")


@pytest.fixture
def smtp_mode(request: pytest.FixtureRequest) -> Mode:
    return getattr(request, "param", "starttls")


@pytest.fixture
def smtp(tmp_path: Path, smtp_mode: Mode) -> Iterator[SmtpServer]:
    server = start_smtp_server(tmp_path / "smtp-cert", smtp_mode)
    yield server
    server.stop()


def mail_settings(server: SmtpServer, directory: Path, port: int) -> MailSettings:
    password_file = directory / "smtp-password"
    password_file.write_text(SMTP_PASSWORD + "\n")
    os.chmod(password_file, 0o600)
    return MailSettings(
        host="127.0.0.1",
        port=port,
        security="tls" if server.mode == "tls" else "starttls",
        username=SMTP_USER,
        password_file=str(password_file),
        ca_file=str(server.ca_file),
        from_address=f"Cabinet Dupont <{SMTP_USER}>",
        timeout_seconds=10,
        reminder_lead_minutes=120,
    )


@pytest.fixture
def mail_port(request: pytest.FixtureRequest, smtp: SmtpServer) -> int:
    """The test server's port, or ("closed") a free port where nothing listens."""
    return free_port() if getattr(request, "param", "") == "closed" else smtp.port


@pytest.fixture
def settings(settings: Settings, smtp: SmtpServer, mail_port: int, tmp_path: Path) -> Settings:
    mail = mail_settings(smtp, tmp_path, mail_port)
    return settings.replace(mail=mail, clinic=CLINIC).validate()


async def booked(doctor: Staff, clock: ManualClock, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"patient_email": PATIENT_EMAIL, "note": NOTE}
    body.update(overrides)
    return await create(doctor, clock, **body)


async def send(doctor: Staff, cid: str, body: dict[str, Any] | None = None) -> Any:
    return await doctor.post(f"/api/consultations/{cid}/email", json=body or {})


def text_of(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None
    return str(part.get_content())


def calendar_of(message: EmailMessage) -> icalendar.Calendar:
    attachments = [p for p in message.iter_attachments() if p.get_content_type() == "text/calendar"]
    assert len(attachments) == 1
    assert attachments[0].get_filename() == "consultation.ics"
    assert attachments[0].get_param("method") == "PUBLISH"
    raw = attachments[0].get_payload(decode=True)
    assert isinstance(raw, bytes)
    # RFC 5545: CRLF line ends, no line over 75 octets.
    assert all(len(line) <= 75 for line in raw.split(b"\r\n"))
    assert b"\n" not in raw.replace(b"\r\n", b"")
    return icalendar.Calendar.from_ical(raw)


def sweeper_of(app: web.Application) -> RetentionSweeper:
    services = app[SERVICES]
    return RetentionSweeper(
        services.store, services.clock, services.settings, services.audit, services.mailer
    )


async def audit_entries(app: web.Application, action: str) -> list[Any]:
    store = app[SERVICES].store
    return await store.list_audit(AuditFilter(action=action))


@pytest.mark.parametrize(
    ("smtp_mode", "language"), [("starttls", "fr"), ("tls", "en")], indirect=["smtp_mode"]
)
async def test_the_patient_receives_the_link_and_calendar_but_no_code_or_note(
    doctor: Staff, clock: ManualClock, app: web.Application, smtp: SmtpServer, language: str
) -> None:
    created = await booked(doctor, clock, patient_language=language)
    cid, link = created["consultation"]["id"], created["invite_url"]
    resp = await send(doctor, cid)
    assert resp.status == 200, await resp.text()
    view = await resp.json()
    assert view["invite_emailed_at"] == datetime.fromtimestamp(clock.now(), UTC).isoformat(
        timespec="seconds"
    ).replace("+00:00", "Z")
    assert view["patient_email"] == PATIENT_EMAIL

    assert smtp.handler.authenticated, "the client signed in to the SMTP server"
    [received] = smtp.received
    assert received.recipients == [PATIENT_EMAIL]
    message = received.message
    assert message["To"].addresses[0].addr_spec == PATIENT_EMAIL
    assert message["To"].addresses[0].display_name == "Camille Durand"
    assert message["From"].addresses[0].addr_spec == SMTP_USER
    assert message["Content-Language"] == language
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Message-ID"].endswith("@cabinet.example>")
    assert message["Date"]
    assert "Cabinet Dupont" in message["Subject"]
    # 2027-01-15T08:10Z, shown in the clinic's zone (Paris, UTC+1 in January).
    when = {"fr": "vendredi 15 janvier 2027 à 09:10", "en": "Friday 15 January 2027 at 09:10"}
    assert when[language] in message["Subject"]

    plain, page = text_of(message, "plain"), text_of(message, "html")
    for body in (plain, page):
        assert link in body
        assert "01 23 45 67 89" in body
        assert "Dr.Martin" in body  # the doctor's display name
    genuine = {"fr": "reconnaître une invitation authentique", "en": "recognise a genuine"}
    assert genuine[language] in plain
    code_by_phone = {"fr": "par téléphone ou par SMS", "en": "by phone or text message"}
    assert code_by_phone[language] in plain

    raw = message.as_string()
    assert created["access_code"] not in raw
    assert "diab" not in raw and "HbA1c" not in raw

    event = calendar_of(message).walk("VEVENT")[0]
    calendar = calendar_of(message)
    assert calendar["METHOD"] == "PUBLISH"
    assert event["UID"] == f"{cid}@localhost"
    assert event.decoded("DTSTART") == datetime.fromtimestamp(clock.now() + 600, UTC)
    assert event.decoded("DTEND") == datetime.fromtimestamp(clock.now() + 600 + 1800, UTC)
    assert str(event["URL"]) == link
    assert link in str(event["DESCRIPTION"])
    assert "Cabinet Dupont" in str(event["SUMMARY"])

    [entry] = await audit_entries(app, "invite.emailed")
    assert entry.target == cid and entry.outcome == "success"
    assert PATIENT_EMAIL not in entry.details and "patient.example" not in entry.details
    assert json.loads(entry.details)["language"] == language


async def test_sending_again_sends_the_same_link_and_an_updated_calendar_after_a_reissue(
    doctor: Staff, clock: ManualClock, smtp: SmtpServer
) -> None:
    created = await booked(doctor, clock)
    cid = created["consultation"]["id"]
    assert (await send(doctor, cid)).status == 200
    assert (await send(doctor, cid)).status == 200
    first, again = (r.message for r in smtp.received)
    assert created["invite_url"] in text_of(again, "plain")
    assert calendar_of(first).walk("VEVENT")[0]["SEQUENCE"] == 0
    reissued = await (await doctor.post(f"/api/consultations/{cid}/invite")).json()
    assert (await send(doctor, cid)).status == 200
    third = smtp.received[-1].message
    assert reissued["invite_url"] in text_of(third, "plain")
    assert created["invite_url"] not in text_of(third, "plain")
    event = calendar_of(third).walk("VEVENT")[0]
    assert event["SEQUENCE"] == 1 and event["UID"] == f"{cid}@localhost"


async def test_an_address_given_at_sending_is_kept_and_a_bad_one_refused(
    doctor: Staff, clock: ManualClock, smtp: SmtpServer
) -> None:
    created = await create(doctor, clock)
    cid = created["consultation"]["id"]
    resp = await send(doctor, cid)
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "patient_email_missing"
    for bad in ("not-an-address", "a@b", "a b@c.fr", "x@y.fr\n", "<x@y.fr>", "x@y.fr, z@w.fr"):
        resp = await send(doctor, cid, {"patient_email": bad})
        assert resp.status == 400, bad
        assert (await resp.json())["error"]["code"] == "invalid_body"
    assert smtp.received == []
    view = await (await doctor.client.get(f"/api/consultations/{cid}")).json()
    assert view["patient_email"] == ""
    resp = await send(
        doctor, cid, {"patient_email": "new@patient.example", "patient_language": "en"}
    )
    assert resp.status == 200, await resp.text()
    view = await resp.json()
    assert view["patient_email"] == "new@patient.example"
    assert view["patient_language"] == "en"
    assert smtp.received[0].recipients == ["new@patient.example"]


async def test_a_refusing_server_is_a_clear_error_and_loses_nothing(
    doctor: Staff,
    clock: ManualClock,
    client: TestClient[Any, Any],
    app: web.Application,
    smtp: SmtpServer,
) -> None:
    created = await create(doctor, clock)
    cid = created["consultation"]["id"]
    smtp.handler.refuse = "550 5.1.1 <nobody@patient.example>: mailbox unavailable"
    resp = await send(doctor, cid, {"patient_email": "nobody@patient.example"})
    assert resp.status == 502
    error = (await resp.json())["error"]
    assert error["code"] == "mail_refused"
    assert "unchanged" in error["message"] and "nobody" not in error["message"]
    # Nothing lost: the address typed is kept, the link and code still work.
    view = await (await doctor.client.get(f"/api/consultations/{cid}")).json()
    assert view["patient_email"] == "nobody@patient.example"
    assert view["invite_emailed_at"] is None
    assert view["invite_generation"] == 1
    token = created["invite_url"].rsplit("/join/", 1)[1]
    resp = await client.post("/api/invites/inspect", json={"invite": token})
    assert resp.status == 200
    [failed] = await audit_entries(app, "invite.emailed")
    assert failed.outcome == "failure" and json.loads(failed.details)["reason"] == "mail_refused"
    assert json.loads(failed.details)["address_changed"] is True
    assert "nobody" not in failed.details
    # The server takes mail again: the same call works.
    smtp.handler.refuse = ""
    resp = await send(doctor, cid)
    assert resp.status == 200, await resp.text()
    assert [r.recipients for r in smtp.received] == [["nobody@patient.example"]]


@pytest.mark.parametrize("mail_port", ["closed"], indirect=True)
async def test_an_unreachable_server_is_a_clear_error_and_loses_nothing(
    doctor: Staff, clock: ManualClock, smtp: SmtpServer
) -> None:
    created = await booked(doctor, clock)
    cid = created["consultation"]["id"]
    resp = await send(doctor, cid)
    assert resp.status == 503
    error = (await resp.json())["error"]
    assert error["code"] == "mail_unreachable" and "unchanged" in error["message"]
    view = await (await doctor.client.get(f"/api/consultations/{cid}")).json()
    assert view["patient_email"] == PATIENT_EMAIL and view["invite_emailed_at"] is None
    assert view["status"] == "scheduled"
    assert smtp.received == []


async def test_only_the_consultations_doctor_sends_its_link(
    doctor: Staff, clock: ManualClock, accounts: Accounts, smtp: SmtpServer
) -> None:
    created = await booked(doctor, clock)
    cid = created["consultation"]["id"]
    await accounts.create("dr.other")
    other = await accounts.sign_in("dr.other")
    resp = await send(other, cid)
    assert (resp.status, (await resp.json())["error"]["code"]) == (404, "consultation_not_found")
    await accounts.create("admin.root", role="admin")
    admin = await accounts.sign_in("admin.root")
    resp = await send(admin, cid)
    assert (resp.status, (await resp.json())["error"]["code"]) == (403, "forbidden")
    resp = await doctor.client.post(f"/api/consultations/{cid}/email", json={})
    assert (await resp.json())["error"]["code"] == "csrf_failed"
    await doctor.post(f"/api/consultations/{cid}/cancel")
    resp = await send(doctor, cid)
    assert (await resp.json())["error"]["code"] == "consultation_cancelled"
    assert smtp.received == []


async def test_one_reminder_before_the_start_even_from_two_sweepers(
    doctor: Staff, clock: ManualClock, app: web.Application, smtp: SmtpServer
) -> None:
    created = await booked(doctor, clock, scheduled_start=start_in(clock, 300))
    cid = created["consultation"]["id"]
    assert (await send(doctor, cid)).status == 200
    # Two instances sweeping one store.
    sweepers = [sweeper_of(app), sweeper_of(app)]
    # Not yet: the reminder goes 120 minutes before the start.
    clock.advance(300 * 60 - 121 * 60)
    assert [r.reminders_sent for r in await asyncio.gather(*(s.sweep() for s in sweepers))] == [
        0,
        0,
    ]
    clock.advance(2 * 60)
    reports = await asyncio.gather(*(s.sweep() for s in sweepers))
    assert sorted(r.reminders_sent for r in reports) == [0, 1]
    assert len(smtp.received) == 2
    reminder = smtp.received[1].message
    assert reminder["Subject"].startswith("Rappel")
    assert created["invite_url"] in text_of(reminder, "plain")
    assert created["access_code"] not in reminder.as_string()
    assert (await sweepers[0].sweep()).reminders_sent == 0
    [entry] = await audit_entries(app, "invite.reminded")
    assert entry.actor == "system" and entry.target == cid and entry.outcome == "success"
    assert "patient.example" not in entry.details


async def test_a_failed_reminder_is_tried_again_at_the_next_sweep(
    doctor: Staff, clock: ManualClock, app: web.Application, smtp: SmtpServer
) -> None:
    created = await booked(doctor, clock, scheduled_start=start_in(clock, 300))
    cid = created["consultation"]["id"]
    assert (await send(doctor, cid)).status == 200
    sweeper = sweeper_of(app)
    clock.advance(300 * 60 - 60 * 60)
    smtp.handler.refuse = "451 4.3.0 try later"
    assert (await sweeper.sweep()).reminders_sent == 0
    smtp.handler.refuse = ""
    assert (await sweeper.sweep()).reminders_sent == 1
    outcomes = [e.outcome for e in await audit_entries(app, "invite.reminded")]
    assert sorted(outcomes) == ["failure", "success"]


async def test_no_reminder_for_a_patient_not_invited_by_email_or_invited_late(
    doctor: Staff, clock: ManualClock, app: web.Application, smtp: SmtpServer
) -> None:
    await booked(doctor, clock, scheduled_start=start_in(clock, 300))
    late = await booked(doctor, clock, scheduled_start=start_in(clock, 100))
    assert (await send(doctor, late["consultation"]["id"])).status == 200
    sweeper = sweeper_of(app)
    clock.advance(90 * 60)
    assert (await sweeper.sweep()).reminders_sent == 0
    clock.advance(150 * 60)
    assert (await sweeper.sweep()).reminders_sent == 0


async def test_erasure_removes_the_patients_address(
    doctor: Staff, admin: Staff, clock: ManualClock, app: web.Application, smtp: SmtpServer
) -> None:
    created = await booked(doctor, clock)
    cid = created["consultation"]["id"]
    resp = await admin.post(f"/api/consultations/{cid}/erase")
    assert resp.status == 200, await resp.text()
    stored = await app[SERVICES].store.get_consultation(cid)
    assert stored is not None and stored.patient_email == ""
    resp = await send(doctor, cid)
    assert (await resp.json())["error"]["code"] == "consultation_cancelled"


async def test_the_patients_page_names_the_clinic_as_the_email_does(
    client: TestClient[Any, Any],
) -> None:
    resp = await client.get("/api/clinic")
    clinic = await resp.json()
    assert (clinic["name"], clinic["phone"]) == ("Cabinet Dupont", "01 23 45 67 89")
