"""Each audited action lands in the trail exactly once, with the right actor, role and
outcome, on both backends: every action is driven through the HTTP API, the WebSocket or the
command line, and each step's new entries are compared with what that step must write."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyotp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from config import ClinicSettings, MailSettings, Settings
from signaling.api.views import iso
from signaling.audit.access_audit import REFUSALS_PER_WINDOW, WINDOW_SECONDS
from signaling.audit.settings_audit import record_settings_change
from signaling.audit.trail import AUDITED_ACTIONS
from signaling.clock import ManualClock
from signaling.consultations.retention import DAY, RetentionSweeper
from signaling.crypto import derive_key
from signaling.keys import SERVICES
from signaling.live.protocol import Denied, PeerLeft, StaffMessage, Waiting
from signaling.models import AuditEntry
from tests.cli import run_cli, store_env
from tests.conftest import ORIGIN, PASSWORD, Accounts, Staff, deadline
from tests.mail_server import SmtpServer, start_smtp_server
from tests.rtc import book, connect, enter_call, join
from tests.test_passkeys import enrol, password_step, send_assertion, sign_in_options
from tests.test_recordings_api import make_recording
from tests.test_signaling_recording import record_then_patient_withdraws
from tests.webauthn_authenticator import SoftwareAuthenticator

pytestmark = [
    pytest.mark.both_stores,
    pytest.mark.slow,
    pytest.mark.usefixtures("loopback_only"),
]
ROOT = Path(__file__).resolve().parent.parent
# (action, actor, role, outcome); actor "@name" stands for that user's id.
Expected = tuple[str, str, str, str]


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    server = start_smtp_server(tmp_path / "smtp", "plain")
    yield server
    server.stop()


@pytest.fixture
def settings(settings: Settings, smtp: SmtpServer) -> Settings:
    # Small thresholds, so that locks come within a few attempts.
    security = dataclasses.replace(
        settings.security, lockout_threshold=3, address_failure_threshold=6
    )
    recording = dataclasses.replace(settings.recording, worker_loopback="only")
    mail = MailSettings(
        host="127.0.0.1", port=smtp.port, security="none", from_address="visio@clinic.example"
    )
    return dataclasses.replace(
        settings,
        security=security,
        recording=recording,
        mail=mail,
        clinic=ClinicSettings(name="Clinic"),
    )


class Trail:
    """Reads the entries each step adds and checks them against what the step must write."""

    def __init__(self, app: web.Application) -> None:
        self.store = app[SERVICES].store
        self.ids: dict[str, str] = {"patient": "patient", "system": "system", "cli": "cli"}
        self.seen = 0
        self.covered: Counter[str] = Counter()

    def actor(self, name: str) -> str:
        return self.ids.get(name.removeprefix("@"), name) if name.startswith("@") else name

    async def new_entries(self) -> list[AuditEntry]:
        entries = [e for e in await self.store.all_audit() if e.seq > self.seen]
        if entries:
            self.seen = entries[-1].seq
        return entries

    async def step(self, *expected: Expected, settle: float = 0.0) -> list[AuditEntry]:
        """The entries written since the last step must be exactly ``expected`` (any order).

        WebSocket actions are recorded just after the sockets are told: wait for them.
        """
        want = Counter((a, self.actor(who), role, outcome) for a, who, role, outcome in expected)
        got: list[AuditEntry] = []
        have: Counter[tuple[str, str, str, str]] = Counter()
        loop = asyncio.get_running_loop()
        limit = loop.time() + deadline(10)
        while True:
            got += await self.new_entries()
            have = Counter((e.action, e.actor, e.actor_role, e.outcome) for e in got)
            if not want - have or loop.time() >= limit:
                break
            await asyncio.sleep(0.02)
        if settle:
            await asyncio.sleep(settle)  # nothing more may come (e.g. no second entry)
            got += await self.new_entries()
            have = Counter((e.action, e.actor, e.actor_role, e.outcome) for e in got)
        assert have == want, f"written {sorted(have.items())}\nexpected {sorted(want.items())}"
        for e in got:
            assert e.address in ("127.0.0.1", ""), e  # the source address, when one exists
            self.covered[e.action] += 1
        return got


async def sign_in_steps(
    trail: Trail, accounts: Accounts, username: str, role: str, first: bool
) -> Staff:
    staff = await accounts.sign_in(username)
    trail.ids[username] = staff.user["id"]
    me = f"@{username}"
    extra: list[Expected] = [("mfa.enrolled", me, role, "success")] if first else []
    await trail.step(
        ("login.password", me, role, "success"), *extra, ("login.success", me, role, "success")
    )
    return staff


async def enrol_by_link(trail: Trail, accounts: Accounts, link: str, me: str) -> Staff:
    """Use a one-time link as its holder would: the chosen password is PASSWORD."""
    token = link.partition("#")[2]
    session = accounts.new_session()
    resp = await session.post("/api/account-link", json={"token": token})
    assert resp.status == 200, await resp.text()
    totp = pyotp.TOTP((await resp.json())["secret"])
    body = {"token": token, "password": PASSWORD, "code": accounts.next_code(totp)}
    resp = await session.post("/api/account-link/complete", json=body)
    assert resp.status == 200, await resp.text()
    signed_in = await resp.json()
    await trail.step(
        ("user.link_used", me, "doctor", "success"), ("login.success", me, "doctor", "success")
    )
    return Staff(session, signed_in["user"], signed_in["csrf_token"], totp, PASSWORD)


async def passkey_steps(trail: Trail, accounts: Accounts, doctor: Staff) -> None:
    me = "@dr.house"
    address_failures = await accounts.app[SERVICES].store.get_count(
        "fail:addr:127.0.0.1", accounts.clock.now()
    )
    key = SoftwareAuthenticator()
    resp = await enrol(doctor, SoftwareAuthenticator(), origin="https://evil.example")
    assert resp.status == 401, await resp.text()
    await trail.step(("passkey.enrolled", me, "doctor", "failure"))
    assert (await enrol(doctor, key)).status == 201
    await trail.step(("passkey.enrolled", me, "doctor", "success"))
    signed_in: list[Expected] = [
        ("login.password", me, "doctor", "success"),
        ("login.passkey", me, "doctor", "success"),
        ("login.success", me, "doctor", "success"),
    ]
    session = await password_step(accounts, "dr.house")
    resp = await send_assertion(session, key.get(await sign_in_options(session), ORIGIN))
    assert resp.status == 200, await resp.text()
    await trail.step(*signed_in)
    session = await password_step(accounts, "dr.house")
    clone = key.get(await sign_in_options(session), ORIGIN, count_up=False)
    assert (await send_assertion(session, clone)).status == 401
    await trail.step(
        ("login.password", me, "doctor", "success"),
        ("passkey.clone_suspected", me, "doctor", "failure"),
        ("login.passkey", me, "doctor", "failure"),
    )
    # The genuine key again (its failure count starts over), then removed.
    resp = await send_assertion(session, key.get(await sign_in_options(session), ORIGIN))
    assert resp.status == 200, await resp.text()
    await trail.step(*signed_in[1:])
    resp = await doctor.post(f"/api/me/passkeys/{key.id}/delete")
    assert resp.status == 200, await resp.text()
    await trail.step(("passkey.removed", me, "doctor", "success"))
    # The clone's refusal counted against this address too: put the count back as it was,
    # later steps count up to the address's lock from there.
    store, now = accounts.app[SERVICES].store, accounts.clock.now()
    await store.delete_key("fail:addr:127.0.0.1")
    for _ in range(address_failures):
        await store.incr("fail:addr:127.0.0.1", 15 * 60, now)


async def test_each_audited_action_is_written_exactly_once(
    app: web.Application,
    client: TestClient[Any, Any],
    accounts: Accounts,
    clock: ManualClock,
    settings: Settings,
) -> None:
    trail = Trail(app)
    services = app[SERVICES]
    await accounts.create("boss", role="admin")
    admin = await sign_in_steps(trail, accounts, "boss", "admin", first=True)

    # -- accounts
    resp = await admin.post(
        "/api/users", json={"username": "dr.house", "role": "doctor", "display_name": ""}
    )
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    doctor_id = created["user"]["id"]
    trail.ids["dr.house"] = doctor_id
    await trail.step(
        ("user.created", "@boss", "admin", "success"),
        ("user.link_issued", "@boss", "admin", "success"),
    )
    doctor = await enrol_by_link(trail, accounts, created["link"], "@dr.house")

    resp = await accounts.new_session().post(
        "/api/auth/login", json={"username": "dr.house", "password": "wrong password!"}
    )
    assert resp.status == 401
    await trail.step(("login.password", "@dr.house", "doctor", "failure"))
    session = accounts.new_session()
    resp = await session.post(
        "/api/auth/login", json={"username": "dr.house", "password": PASSWORD}
    )
    assert resp.status == 200
    await trail.step(("login.password", "@dr.house", "doctor", "success"))
    resp = await session.post("/api/auth/totp", json={"code": "000000"})
    assert resp.status == 401
    await trail.step(("login.totp", "@dr.house", "doctor", "failure"))
    # A third failure for this account locks it.
    resp = await accounts.new_session().post(
        "/api/auth/login", json={"username": "dr.house", "password": "wrong again!!"}
    )
    assert resp.status == 401
    await trail.step(
        ("login.password", "@dr.house", "doctor", "failure"),
        ("account.locked", "", "unknown", "locked"),
    )
    resp = await admin.post(f"/api/users/{doctor_id}/unlock")
    assert resp.status == 200, await resp.text()
    await trail.step(("user.unlocked", "@boss", "admin", "success"))

    resp = await admin.post(f"/api/users/{doctor_id}/reset-mfa")
    assert resp.status == 200, await resp.text()
    await trail.step(("mfa.reset", "@boss", "admin", "success"))
    resp = await admin.post(f"/api/users/{doctor_id}/disable")
    assert resp.status == 200
    await trail.step(("user.disabled", "@boss", "admin", "success"))
    resp = await admin.post(f"/api/users/{doctor_id}/enable")
    assert resp.status == 200
    await trail.step(("user.enabled", "@boss", "admin", "success"))
    for role in ("admin", "doctor"):  # promoted, then back: its sessions end each time
        resp = await admin.post(f"/api/users/{doctor_id}/role", json={"role": role})
        assert resp.status == 200, await resp.text()
        await trail.step(("user.role_changed", "@boss", "admin", "success"))
    clock.advance(settings.security.lockout_minutes * 60 + 1)  # the address's failures expire
    resp = await admin.post("/api/users", json={"username": "sec.anne", "role": "assistant"})
    assert resp.status == 201, await resp.text()
    await trail.step(
        ("user.created", "@boss", "admin", "success"),
        ("user.link_issued", "@boss", "admin", "success"),
    )
    resp = await admin.post(
        f"/api/users/{(await resp.json())['user']['id']}/assists",
        json={"doctor_ids": [doctor_id]},
    )
    assert resp.status == 200, await resp.text()
    await trail.step(("user.assists_changed", "@boss", "admin", "success"))
    resp = await admin.post(
        "/api/clinic",
        json={
            "name": "Clinic",
            "phone": "01 23 45 67 89",
            "hours": "Lun–ven 8h–19h",
            "emergency_fr": "En cas d'urgence, appelez le 15 ou le 112.",
            "emergency_en": "In an emergency, call 15 or 112.",
        },
    )
    assert resp.status == 200, await resp.text()
    await trail.step(("clinic.updated", "@boss", "admin", "success"))
    resp = await admin.post(
        "/api/passkey-policy",
        json={"required_for": "nobody", "totp_fallback": True, "passwordless": True},
    )
    assert resp.status == 200, await resp.text()
    await trail.step(("passkey.policy_changed", "@boss", "admin", "success"))
    doctor = await sign_in_steps(trail, accounts, "dr.house", "doctor", first=True)
    resp = await admin.post(f"/api/users/{doctor_id}/reset-link")
    assert resp.status == 200, await resp.text()
    await trail.step(("user.link_issued", "@boss", "admin", "success"))
    doctor = await enrol_by_link(trail, accounts, (await resp.json())["link"], "@dr.house")

    # -- own password: a refused change, then a change and back (later steps sign in with it)
    new_password = "another long passphrase"
    resp = await doctor.post(
        "/api/me/password",
        json={
            "current_password": "not the password",
            "new_password": new_password,
            "code": accounts.next_code(doctor.totp),
        },
    )
    assert resp.status == 403, await resp.text()
    await trail.step(("user.password_changed", "@dr.house", "doctor", "failure"))
    for current, new in ((PASSWORD, new_password), (new_password, PASSWORD)):
        body = {"current_password": current, "new_password": new}
        resp = await doctor.post(
            "/api/me/password", json={**body, "code": accounts.next_code(doctor.totp)}
        )
        assert resp.status == 200, await resp.text()
        await trail.step(("user.password_changed", "@dr.house", "doctor", "success"))

    # -- the idle lock: locked, a wrong code refused, then unlocked
    clock.advance(settings.security.session_idle_minutes * 60 + 1)
    resp = await doctor.client.get("/api/me")
    assert resp.status == 401, await resp.text()
    await trail.step(("session.locked", "@dr.house", "doctor", "locked"))
    resp = await doctor.post("/api/auth/unlock", json={"password": PASSWORD, "code": "000000"})
    assert resp.status == 401, await resp.text()
    await trail.step(("session.unlocked", "@dr.house", "doctor", "failure"))
    resp = await doctor.post(
        "/api/auth/unlock", json={"password": PASSWORD, "code": accounts.next_code(doctor.totp)}
    )
    assert resp.status == 200, await resp.text()
    await trail.step(("session.unlocked", "@dr.house", "doctor", "success"), settle=0.1)
    resp = await admin.post(
        "/api/auth/unlock", json={"password": PASSWORD, "code": accounts.next_code(admin.totp)}
    )
    assert resp.status == 200, await resp.text()  # the admin's session, idle as long
    await trail.step(
        ("session.locked", "@boss", "admin", "locked"),
        ("session.unlocked", "@boss", "admin", "success"),
    )
    # -- passkeys: a refused enrolment, one enrolled, a sign-in with it, a clone, a removal
    await passkey_steps(trail, accounts, doctor)

    # -- consultations and invites
    booking = await book(accounts, doctor, clock)
    cid = booking.consultation_id
    await trail.step(
        ("consultation.created", "@dr.house", "doctor", "success"),
        ("invite.created", "@dr.house", "doctor", "success"),
        ("invite.used", "patient", "patient", "success"),
        ("token.issued", "patient", "patient", "success"),
    )

    # A room token for a consultation that is not this doctor's is refused, and recorded.
    resp = await doctor.post("/api/room-tokens", json={"consultation_id": uuid.uuid4().hex})
    assert resp.status == 404
    await trail.step(("token.refused", "@dr.house", "doctor", "refused"))

    # -- the room: join, waiting, admission, call, a drop and its resume, the end
    doctor_ws, _, patient_ws, patient_welcome = await enter_call(client, booking)
    await trail.step(
        ("token.issued", "@dr.house", "doctor", "success"),
        ("signaling.join", "@dr.house", "doctor", "success"),
        ("signaling.join", "patient", "patient", "success"),
        ("signaling.waiting", "patient", "patient", "success"),
        ("signaling.admitted", "patient", "patient", "success"),
        ("call.started", "@dr.house", "doctor", "success"),
    )
    refused = await connect(client)
    await refused.send({"type": "join", "v": 1, "token": "not-a-token"})
    await refused.expect_error("token_invalid")
    await trail.step(("signaling.token_refused", "unknown", "unknown", "refused"))

    # -- recording: request, both consents, start, withdrawal, stop
    rid = await record_then_patient_withdraws(doctor_ws, patient_ws, seconds=1)
    await trail.step(
        ("recording.requested", "@dr.house", "doctor", "success"),
        ("consent.given", "patient", "patient", "success"),
        ("consent.given", "@dr.house", "doctor", "success"),
        # The service starts and stops it, on the consents it holds.
        ("recording.started", "system", "system", "success"),
        ("consent.withdrawn", "patient", "patient", "success"),
        ("recording.stopped", "system", "system", "success"),
    )
    await doctor_ws.send({"type": "recording_request"})
    await patient_ws.send({"type": "recording_consent", "granted": False})
    await trail.step(
        ("recording.requested", "@dr.house", "doctor", "success"),
        ("consent.declined", "patient", "patient", "success"),
    )
    # -- a stop that is not a withdrawal
    await doctor_ws.send({"type": "recording_request"})
    await patient_ws.send({"type": "recording_consent", "granted": True})
    await doctor_ws.send({"type": "recording_consent", "granted": True})
    await trail.step(
        ("recording.requested", "@dr.house", "doctor", "success"),
        ("consent.given", "patient", "patient", "success"),
        ("consent.given", "@dr.house", "doctor", "success"),
        ("recording.started", "system", "system", "success"),
    )
    await doctor_ws.send({"type": "recording_stop"})
    await trail.step(
        ("recording.stop_requested", "@dr.house", "doctor", "success"),
        ("recording.stopped", "system", "system", "success"),
    )

    patient_ws.drop()
    while not isinstance(await doctor_ws.recv(), PeerLeft):  # past the recording states
        pass
    await trail.step(("signaling.disconnected", "patient", "patient", "success"))
    back = await connect(client)
    await back.send({"type": "resume", "v": 1, "resume": patient_welcome.resume})
    await trail.step(("signaling.resume", "patient", "patient", "success"))
    await doctor_ws.send({"type": "hang_up", "end": True})
    await trail.step(
        ("call.ended", "@dr.house", "doctor", "success"),
        ("consultation.ended", "@dr.house", "doctor", "success"),
        settle=0.3,
    )
    await back.close()
    await doctor_ws.close()

    # -- recordings: listed, downloaded, exported (command line), deleted
    resp = await doctor.client.get("/api/recordings", params={"consultation": cid})
    assert resp.status == 200
    await trail.step(("recording.listed", "@dr.house", "doctor", "success"))
    resp = await doctor.client.get(f"/api/recordings/{rid}/download")
    assert resp.status == 200
    await resp.read()
    await trail.step(("recording.downloaded", "@dr.house", "doctor", "success"))
    for _ in range(2):  # a player's ranges: one view
        resp = await doctor.client.get(
            f"/api/recordings/{rid}/media", headers={"Range": "bytes=0-99"}
        )
        assert resp.status == 206
        await resp.read()
    await trail.step(("recording.viewed", "@dr.house", "doctor", "success"))

    async def recording_cli(*args: str) -> None:
        done = await asyncio.to_thread(
            run_cli,
            "recording",
            *args,
            data_dir=settings.storage.data_dir,
            env=store_env(settings),
            within=120,
        )
        assert done.returncode == 0, done.stderr

    await make_recording(app, cid, trail.ids["dr.house"], recording_id="rec-legacy")
    await recording_cli("repair", "--id", "rec-legacy")
    await trail.step(("recording.repaired", "cli", "admin", "success"))
    out = Path(settings.storage.data_dir).parent / "export.webm"
    await recording_cli("export", rid, "--out", str(out))
    await trail.step(("recording.exported", "cli", "admin", "success"))
    moved = await asyncio.to_thread(
        run_cli, "store", "export", data_dir=settings.storage.data_dir, env=store_env(settings)
    )
    assert moved.returncode == 0, moved.stderr
    await trail.step(("store.exported", "cli", "admin", "success"))
    resp = await doctor.post(f"/api/recordings/{rid}/delete")
    assert resp.status == 200, await resp.text()
    await trail.step(("recording.deleted", "@dr.house", "doctor", "success"))

    # -- refused access: a consultation that is not the doctor's, an admin endpoint; past the
    # cap of a window, the rest is one count when the window closes
    resp = await doctor.client.get(f"/api/consultations/{uuid.uuid4().hex}")
    assert resp.status == 404
    await trail.step(("access.refused", "@dr.house", "doctor", "refused"))
    for _ in range(REFUSALS_PER_WINDOW + 1):
        resp = await doctor.client.get("/api/users")
        assert resp.status == 403
    # The window opened with the first refusal above: the cap leaves room for one fewer.
    capped = [("access.refused", "@dr.house", "doctor", "refused")] * (REFUSALS_PER_WINDOW - 1)
    await trail.step(*capped)
    clock.advance(WINDOW_SECONDS)
    await trail.step(("access.refused_suppressed", "@dr.house", "doctor", "refused"))

    # -- a second consultation: denied patient, wrong codes, a lock, a new link, cancelled
    other = await book(accounts, doctor, clock, patient_name="Bob Patient")
    await trail.step(
        ("consultation.created", "@dr.house", "doctor", "success"),
        ("invite.created", "@dr.house", "doctor", "success"),
        ("invite.used", "patient", "patient", "success"),
        ("token.issued", "patient", "patient", "success"),
    )
    doctor_ws, _ = await join(client, await other.doctor_token())
    patient_ws, _ = await join(client, await other.patient_token())
    await patient_ws.expect(Waiting)
    await doctor_ws.send({"type": "deny"})
    await patient_ws.expect(Denied)
    await trail.step(
        ("token.issued", "@dr.house", "doctor", "success"),
        ("signaling.join", "@dr.house", "doctor", "success"),
        ("signaling.join", "patient", "patient", "success"),  # with the token of the redeem
        ("signaling.waiting", "patient", "patient", "success"),
        ("signaling.denied", "patient", "patient", "denied"),
    )
    await doctor_ws.close()
    await patient_ws.close()
    # The declined patient was shown out by the room; the doctor leaves it.
    await trail.step(("signaling.disconnected", "@dr.house", "doctor", "success"), settle=0.3)

    # The patient comes back to the waiting room; a new link shows them out, and their
    # session (of the first link) is refused from then on.
    patient_ws, _ = await join(client, await other.patient_token())
    await patient_ws.expect(Waiting)
    await trail.step(
        ("token.issued", "patient", "patient", "success"),
        ("signaling.join", "patient", "patient", "success"),
        ("signaling.waiting", "patient", "patient", "success"),
    )
    resp = await doctor.post(
        f"/api/consultations/{other.consultation_id}/waiting-message", json={"preset": "soon_10"}
    )
    assert resp.status == 200, await resp.text()
    assert (await patient_ws.expect(StaffMessage)).preset == "soon_10"
    await trail.step(("waiting.message_sent", "@dr.house", "doctor", "success"))
    resp = await doctor.post(f"/api/consultations/{other.consultation_id}/invite")
    assert resp.status == 200, await resp.text()
    invite = (await resp.json())["invite_url"].rsplit("/join/", 1)[1]
    await patient_ws.expect_error("invite_superseded")
    await trail.step(
        ("invite.created", "@dr.house", "doctor", "success"),
        ("patient.sessions_ended", "@dr.house", "doctor", "success"),
        ("signaling.superseded", "patient", "patient", "ended"),
        settle=0.3,
    )
    await patient_ws.close()
    resp = await other.patient.get("/api/patient/session")
    assert resp.status == 410, await resp.text()
    await trail.step(("patient.session_refused", "patient", "patient", "refused"))
    patient = accounts.new_session()
    attempts = services.settings.security.invite_max_code_attempts
    # Wrong codes count toward the address's failures as wrong passwords do.
    failures = int(await services.store.get_count("fail:addr:127.0.0.1", clock.now()))
    threshold = settings.security.address_failure_threshold
    assert failures + attempts >= threshold  # the codes lock the address on the way
    for n in range(1, attempts + 1):
        resp = await patient.post(
            "/api/invites/redeem", json={"invite": invite, "access_code": "000000"}
        )
        assert resp.status in (401, 403, 423), await resp.text()
        locked: list[Expected] = [("invite.locked", "patient", "patient", "locked")]
        address: list[Expected] = [("address.locked", "", "unknown", "locked")]
        await trail.step(
            ("invite.code", "patient", "patient", "failure"),
            *(locked if n == attempts else []),
            *(address if failures + n == threshold else []),
        )
    later = datetime.fromtimestamp(clock.now() + 3600, UTC).isoformat()
    resp = await doctor.post(
        f"/api/consultations/{other.consultation_id}/reschedule",
        json={"scheduled_start": later, "duration_minutes": 20},
    )
    assert resp.status == 200, await resp.text()
    await trail.step(("consultation.rescheduled", "@dr.house", "doctor", "success"))
    resp = await doctor.post(
        f"/api/consultations/{other.consultation_id}/edit", json={"patient_name": "Renamed"}
    )
    assert resp.status == 200, await resp.text()
    await trail.step(("consultation.edited", "@dr.house", "doctor", "success"))
    resp = await doctor.post(f"/api/consultations/{other.consultation_id}/cancel")
    assert resp.status == 200, await resp.text()
    await trail.step(
        ("consultation.cancelled", "@dr.house", "doctor", "success"),
        ("patient.sessions_ended", "@dr.house", "doctor", "success"),
    )

    # -- a patient's rights, breach response, audit export
    resp = await admin.client.get(f"/api/consultations/{cid}/export")
    assert resp.status == 200
    await trail.step(("consultation.exported", "@boss", "admin", "success"))
    resp = await admin.post(f"/api/consultations/{cid}/erase")
    assert resp.status == 200
    await trail.step(("consultation.erased", "@boss", "admin", "success"))
    resp = await admin.client.get("/api/audit/incident", params={"subject": cid})
    assert resp.status == 200
    await trail.step(("audit.incident_report", "@boss", "admin", "success"))
    resp = await admin.client.get("/api/audit/export", params={"format": "csv"})
    assert resp.status == 200
    await trail.step(("audit.exported", "@boss", "admin", "success"))

    # -- the link by email, and later its reminder
    resp = await doctor.post(
        "/api/consultations",
        json={
            "patient_name": "Mail Patient",
            "patient_email": "patient@mail.example",
            "scheduled_start": iso(clock.now() + 300 * 60),
        },
    )
    assert resp.status == 201, await resp.text()
    mailed = (await resp.json())["consultation"]["id"]
    await trail.step(
        ("consultation.created", "@dr.house", "doctor", "success"),
        ("invite.created", "@dr.house", "doctor", "success"),
    )
    resp = await doctor.post(f"/api/consultations/{mailed}/email", json={})
    assert resp.status == 200, await resp.text()
    await trail.step(("invite.emailed", "@dr.house", "doctor", "success"))

    # -- sign-out, then failures from one address until it is locked
    resp = await doctor.post("/api/auth/logout")
    assert resp.status in (200, 204)
    await trail.step(("session.end", "@dr.house", "doctor", "success"))
    clock.advance(settings.security.lockout_minutes * 60 + 1)  # the codes' lock is over
    failures = int(await services.store.get_count("fail:addr:127.0.0.1", clock.now()))
    for n in range(failures + 1, threshold + 1):
        resp = await accounts.new_session().post(
            "/api/auth/login", json={"username": f"nobody{n}", "password": "not this one"}
        )
        assert resp.status == 401
        last: list[Expected] = [("address.locked", "", "unknown", "locked")]
        await trail.step(
            ("login.password", "", "unknown", "failure"), *(last if n == threshold else [])
        )

    # -- settings at start-up: the first start, the same settings again, one key changed
    digest_key = derive_key(b"k" * 32, "settings-digests")
    await record_settings_change(services.store, services.audit, settings, digest_key)
    await trail.step(("settings.initial", "system", "system", "success"))
    await record_settings_change(services.store, services.audit, settings, digest_key)
    await trail.step(settle=0.1)  # nothing changed: nothing written
    changed = settings.replace(security=dataclasses.replace(settings.security, lockout_minutes=99))
    await record_settings_change(services.store, services.audit, changed, digest_key)
    await trail.step(("settings.changed", "system", "system", "success"))

    # -- the reminder of the consultation emailed above, less than two hours before it
    clock.advance(190 * 60)
    consultations = await services.store.list_consultations(None)
    assert await services.mailer.send_due_reminders(consultations) == 1
    await trail.step(("invite.reminded", "system", "system", "success"))

    # -- retention: a recording purged, then a year later the old audit entries
    await make_recording(app, cid, doctor_id, recording_id="rec-old")
    clock.advance(31 * DAY)
    sweeper = RetentionSweeper(services.store, clock, services.settings, services.audit)
    await sweeper.sweep()
    await trail.step(
        ("recording.purged", "system", "system", "success"),
        ("retention.purged", "system", "system", "success"),
    )
    clock.advance(366 * DAY)
    await sweeper.sweep()
    # Everything above is now over a year old: gone, behind one purge entry (the sweep's
    # own report of erased details and purged receipts comes just before it).
    kept = await services.store.all_audit()
    assert [(e.action, e.actor, e.outcome) for e in kept] == [
        ("retention.purged", "system", "success"),
        ("audit.purged", "system", "success"),
    ]
    trail.covered["audit.purged"] += 1

    # Every action the service declares was driven here; none written that is not declared
    # (AuditAction, checked by mypy where an action is written and by AuditTrail.record).
    assert set(trail.covered) == set(AUDITED_ACTIONS), sorted(
        set(AUDITED_ACTIONS) ^ set(trail.covered)
    )
