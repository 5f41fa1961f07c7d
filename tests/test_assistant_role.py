"""The secretariat role, endpoint by endpoint, on both stores: every route of the application
is walked (so a new route cannot be forgotten: it must be classified below), and the
assistant's answer checked: allowed for the doctor it assists, refused for another doctor's
consultations (404, as for a doctor: ids are not confirmed) and for the features the role
never has (403 forbidden), with stored data left intact; the WebSocket refuses it a seat."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from config import Settings
from signaling.api.routes_live import STREAM_TIMING, StreamTiming
from signaling.api.site import PAGES, VERSIONED_PREFIX
from signaling.app import create_app
from signaling.clock import ManualClock
from signaling.keys import SERVICES
from signaling.live.protocol import Waiting
from tests.conftest import PASSWORD, Accounts, Staff
from tests.rtc import Booking, book, connect, join
from tests.test_passkeys import HEADERS, enrol, password_step, send_assertion, sign_in_options
from tests.test_recordings_api import make_recording
from tests.webauthn_authenticator import SoftwareAuthenticator

pytestmark = pytest.mark.both_stores
ALICE, BOB = "Alice Assisted", "Bob Elsewhere"
NOTE = "private: suspected hypertension"


@pytest.fixture
def app(settings: Settings, clock: ManualClock) -> web.Application:
    app = create_app(settings, clock=clock)
    app[STREAM_TIMING] = StreamTiming(poll_seconds=0.05, heartbeat_seconds=0.1)
    return app


@dataclasses.dataclass
class Clinic:
    """An admin, two doctors, an assistant of the first, one waiting patient each."""

    app: web.Application
    client: TestClient[Any, Any]
    accounts: Accounts
    clock: ManualClock
    admin: Staff
    mine: Staff  # the doctor the assistant schedules for
    other: Staff  # a doctor it does not
    assistant: Staff
    booked_mine: Booking
    booked_other: Booking
    recording_mine: str
    recording_other: str

    def start(self, hours: float = 1) -> str:
        return datetime.fromtimestamp(self.clock.now() + hours * 3600, UTC).isoformat()

    async def book_for(self, doctor: Staff, **extra: Any) -> Any:
        body = {"patient_name": "Carol", "scheduled_start": self.start(), **extra}
        return await self.assistant.post(
            "/api/consultations", json={**body, "doctor_id": doctor.user["id"]}
        )


async def open_clinic(
    app: web.Application, client: TestClient[Any, Any], accounts: Accounts, clock: ManualClock
) -> Clinic:
    await accounts.create("admin.root", role="admin")
    await accounts.create("dr.mine")
    await accounts.create("dr.other")
    await accounts.create("sec.anne", role="assistant")
    admin = await accounts.sign_in("admin.root")
    mine, other = await accounts.sign_in("dr.mine"), await accounts.sign_in("dr.other")
    assistant = await accounts.sign_in("sec.anne")
    resp = await admin.post(
        f"/api/users/{assistant.user['id']}/assists", json={"doctor_ids": [mine.user["id"]]}
    )
    assert resp.status == 200, await resp.text()
    booked_mine = await book(accounts, mine, clock, ALICE)
    booked_other = await book(accounts, other, clock, BOB)
    # The notes are written straight into the store (the API has no note editing).
    store = app[SERVICES].store
    for booked in (booked_mine, booked_other):
        c = await store.get_consultation(booked.consultation_id)
        assert c is not None
        await store.update_consultation(c.evolve(note=NOTE))
    rec_mine, rec_other = "a" * 32, "b" * 32
    await make_recording(app, booked_mine.consultation_id, mine.user["id"], rec_mine)
    await make_recording(app, booked_other.consultation_id, other.user["id"], rec_other)
    return Clinic(
        app,
        client,
        accounts,
        clock,
        admin,
        mine,
        other,
        assistant,
        booked_mine,
        booked_other,
        rec_mine,
        rec_other,
    )


async def status_code(resp: Any) -> tuple[int, str]:
    body = await resp.read()
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = ""
    return resp.status, code


async def snapshot(app: web.Application) -> tuple[Any, ...]:
    """What the stored data is, to compare before and after a refusal."""
    store = app[SERVICES].store
    return (
        await store.list_consultations(None),
        await store.list_users(),
        await store.list_recordings(),
    )


# -- the probes: each returns after asserting the assistant's answer -----------------------

Probe = Callable[[Clinic], Awaitable[None]]


async def refused(clinic: Clinic, method: str, path: str, body: Any = None) -> None:
    """A feature the role never has: 403 forbidden, nothing stored changes."""
    before = await snapshot(clinic.app)
    if method == "GET":
        resp = await clinic.assistant.client.get(path)
    else:
        resp = await clinic.assistant.post(path, json=body)
    assert await status_code(resp) == (403, "forbidden"), (method, path)
    assert await snapshot(clinic.app) == before


async def not_found_for_other(clinic: Clinic, method: str, path_of: Callable[[str], str]) -> None:
    """Another doctor's consultation: answered as for an id that does not exist."""
    before = await snapshot(clinic.app)
    path = path_of(clinic.booked_other.consultation_id)
    if method == "GET":
        resp = await clinic.assistant.client.get(path)
    else:
        body = (
            {"scheduled_start": clinic.start(2), "duration_minutes": 30}
            if path.endswith(("/reschedule", "/edit"))
            else None
        )
        resp = await clinic.assistant.post(path, json=body)
    assert await status_code(resp) == (404, "consultation_not_found"), path
    assert await snapshot(clinic.app) == before


async def probe_me(clinic: Clinic) -> None:
    resp = await clinic.assistant.client.get("/api/me")
    me = (await resp.json())["user"]
    assert (me["role"], me["assists"]) == ("assistant", [clinic.mine.user["id"]])


async def probe_session_state(clinic: Clinic) -> None:
    resp = await clinic.assistant.client.get("/api/auth/session")
    assert resp.status == 200
    assert (await resp.json())["locked"] is False


async def probe_unlock(clinic: Clinic) -> None:
    # An assistant's session locks and unlocks as any staff member's.
    clinic.clock.advance(clinic.app[SERVICES].settings.security.session_idle_minutes * 60 + 1)
    resp = await clinic.assistant.client.get("/api/me")
    assert (await resp.json())["error"]["code"] == "session_locked"
    resp = await clinic.assistant.post(
        "/api/auth/unlock",
        json={"password": PASSWORD, "code": clinic.accounts.next_code(clinic.assistant.totp)},
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["user"]["role"] == "assistant"


async def probe_my_doctors(clinic: Clinic) -> None:
    resp = await clinic.assistant.client.get("/api/me/doctors")
    assert resp.status == 200
    assert (await resp.json())["doctors"] == [
        {"id": clinic.mine.user["id"], "display_name": "Dr.Mine"}
    ]


async def probe_list(clinic: Clinic) -> None:
    resp = await clinic.assistant.client.get("/api/consultations")
    assert resp.status == 200
    listed = (await resp.json())["consultations"]
    assert [c["id"] for c in listed] == [clinic.booked_mine.consultation_id]
    assert listed[0]["note"] == ""  # the doctor's own list still has it
    resp = await clinic.mine.client.get("/api/consultations")
    assert (await resp.json())["consultations"][0]["note"] == NOTE


async def probe_create(clinic: Clinic) -> None:
    resp = await clinic.book_for(clinic.mine)
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    assert created["consultation"]["doctor_id"] == clinic.mine.user["id"]
    assert created["access_code"].isdigit() and "/join/" in created["invite_url"]
    # The doctor sees it in its own list.
    resp = await clinic.mine.client.get(f"/api/consultations/{created['consultation']['id']}")
    assert resp.status == 200
    before = await snapshot(clinic.app)
    # For a doctor it does not assist, without a doctor, with a note: refused, nothing made.
    resp = await clinic.book_for(clinic.other)
    assert await status_code(resp) == (403, "forbidden")
    resp = await clinic.book_for(clinic.admin)
    assert await status_code(resp) == (403, "forbidden")
    resp = await clinic.book_for(clinic.mine, note="a note")
    assert await status_code(resp) == (403, "forbidden")
    resp = await clinic.assistant.post(
        "/api/consultations", json={"patient_name": "Carol", "scheduled_start": clinic.start()}
    )
    assert await status_code(resp) == (400, "invalid_body")
    assert await snapshot(clinic.app) == before


async def probe_get(clinic: Clinic) -> None:
    cid = clinic.booked_mine.consultation_id
    resp = await clinic.assistant.client.get(f"/api/consultations/{cid}")
    assert resp.status == 200
    view = await resp.json()
    assert (view["patient_name"], view["note"]) == (ALICE, "")
    await not_found_for_other(clinic, "GET", lambda c: f"/api/consultations/{c}")


async def probe_reschedule(clinic: Clinic) -> None:
    await not_found_for_other(clinic, "POST", lambda c: f"/api/consultations/{c}/reschedule")
    cid = clinic.booked_mine.consultation_id
    resp = await clinic.assistant.post(
        f"/api/consultations/{cid}/reschedule",
        json={"scheduled_start": clinic.start(0.25), "duration_minutes": 45},
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["duration_minutes"] == 45
    resp = await clinic.assistant.post(
        f"/api/consultations/{cid}/reschedule",
        json={"scheduled_start": "2000-01-01T00:00:00Z", "duration_minutes": 45},
    )
    assert await status_code(resp) == (400, "invalid_body")


async def probe_edit(clinic: Clinic) -> None:
    """The assistant renames its doctor's patient; the doctor's note it may not set."""
    await not_found_for_other(clinic, "POST", lambda c: f"/api/consultations/{c}/edit")
    path = f"/api/consultations/{clinic.booked_mine.consultation_id}/edit"
    resp = await clinic.assistant.post(path, json={"patient_name": "Alice Martin-Roy"})
    assert resp.status == 200, await resp.text()
    view = await resp.json()
    assert (view["patient_name"], view["note"]) == ("Alice Martin-Roy", "")
    before = await snapshot(clinic.app)
    resp = await clinic.assistant.post(path, json={"patient_name": "X", "note": "n"})
    assert await status_code(resp) == (403, "forbidden")
    assert await snapshot(clinic.app) == before


async def changes_a_new_booking(clinic: Clinic, action: str) -> Any:
    """``action`` on another doctor's consultation is refused; on a consultation the
    assistant books for its doctor, it answers (the answer's JSON)."""
    await not_found_for_other(clinic, "POST", lambda c: f"/api/consultations/{c}/{action}")
    resp = await clinic.book_for(clinic.mine)
    cid = (await resp.json())["consultation"]["id"]
    resp = await clinic.assistant.post(f"/api/consultations/{cid}/{action}")
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def probe_invite(clinic: Clinic) -> None:
    reissued = await changes_a_new_booking(clinic, "invite")
    assert reissued["consultation"]["invite_generation"] == 2


async def probe_email(clinic: Clinic) -> None:
    # Past the permission check for its doctor's consultation (this app has no mail server:
    # the next refusal is mail_not_configured); another doctor's is not found; nothing changes.
    before = await snapshot(clinic.app)
    for consultation_id, answer in (
        (clinic.booked_mine.consultation_id, (409, "mail_not_configured")),
        (clinic.booked_other.consultation_id, (404, "consultation_not_found")),
    ):
        resp = await clinic.assistant.post(f"/api/consultations/{consultation_id}/email", json={})
        assert await status_code(resp) == answer
    assert await snapshot(clinic.app) == before


async def probe_waiting_message(clinic: Clinic) -> None:
    # Its doctor's waiting patient is written to (tests/test_waiting_messages.py checks what
    # the patient receives); another doctor's consultation is not found; nothing changes.
    before = await snapshot(clinic.app)
    for consultation_id, answer in (
        (clinic.booked_mine.consultation_id, (200, "")),
        (clinic.booked_other.consultation_id, (404, "consultation_not_found")),
    ):
        resp = await clinic.assistant.post(
            f"/api/consultations/{consultation_id}/waiting-message", json={"preset": "soon_10"}
        )
        assert await status_code(resp) == answer
    assert await snapshot(clinic.app) == before


async def probe_cancel(clinic: Clinic) -> None:
    assert (await changes_a_new_booking(clinic, "cancel"))["status"] == "cancelled"


async def probe_waiting(clinic: Clinic) -> None:
    resp = await clinic.assistant.client.get("/api/waiting")
    assert resp.status == 200
    [entry] = (await resp.json())["waiting"]
    assert (entry["consultation_id"], entry["doctor_id"], entry["patient_name"]) == (
        clinic.booked_mine.consultation_id,
        clinic.mine.user["id"],
        ALICE,
    )


async def probe_waiting_events(clinic: Clinic) -> None:
    resp = await clinic.assistant.client.get("/api/waiting/events")
    assert resp.status == 200
    try:
        async with asyncio.timeout(10):
            while not (line := await resp.content.readline()).startswith(b"data: "):
                assert line, "the stream ended before its first event"
    finally:
        resp.close()
    waiting = json.loads(line.removeprefix(b"data: "))["waiting"]
    assert [w["consultation_id"] for w in waiting] == [clinic.booked_mine.consultation_id]


async def probe_ice_policy(clinic: Clinic) -> None:
    resp = await clinic.assistant.client.get("/api/ice-policy")
    assert resp.status == 200


async def probe_room_token(clinic: Clinic) -> None:
    for booked, expected in (
        (clinic.booked_mine, (403, "forbidden")),
        (clinic.booked_other, (404, "consultation_not_found")),
    ):
        resp = await clinic.assistant.post(
            "/api/room-tokens", json={"consultation_id": booked.consultation_id}
        )
        assert await status_code(resp) == expected


async def probe_audit(clinic: Clinic) -> None:
    me = clinic.assistant.user["id"]
    for params in (
        {},
        {"actor": clinic.mine.user["id"]},
        {"consultation": clinic.booked_mine.consultation_id},
    ):
        resp = await clinic.assistant.client.get("/api/audit", params=params)
        assert resp.status == 200
        entries = (await resp.json())["entries"]
        assert {e["actor"] for e in entries} <= {me}, params
    resp = await clinic.assistant.client.get("/api/audit")
    assert (await resp.json())["entries"], "its own sign-in at least"


async def probe_audit_export(clinic: Clinic) -> None:
    resp = await clinic.assistant.client.get(
        "/api/audit/export", params={"actor": clinic.mine.user["id"]}
    )
    assert resp.status == 200
    rows = [json.loads(line) for line in (await resp.text()).splitlines()]
    assert rows and {r["actor"] for r in rows} == {clinic.assistant.user["id"]}


async def probe_password(clinic: Clinic) -> None:
    resp = await clinic.assistant.post(
        "/api/me/password",
        json={
            "current_password": PASSWORD,
            "new_password": "another long passphrase",
            "code": clinic.accounts.next_code(clinic.assistant.totp),
        },
    )
    assert resp.status == 200, await resp.text()


async def probe_own_passkeys(clinic: Clinic) -> None:
    # Enrols a passkey on its own account, signs in with it, lists and removes it.
    key = SoftwareAuthenticator()
    assert (await enrol(clinic.assistant, key)).status == 201
    session = await password_step(clinic.accounts, "sec.anne")
    resp = await send_assertion(session, key.get(await sign_in_options(session), HEADERS["Origin"]))
    assert resp.status == 200, await resp.text()
    listed = await (await clinic.assistant.client.get("/api/me/passkeys")).json()
    assert [p["id"] for p in listed["passkeys"]] == [key.id]
    resp = await clinic.assistant.post(f"/api/me/passkeys/{key.id}/delete")
    assert resp.status == 200, await resp.text()


async def probe_unlock_with_passkey(clinic: Clinic) -> None:
    # An assistant's locked session opens with its own passkey, as any staff member's.
    key = SoftwareAuthenticator()
    assert (await enrol(clinic.assistant, key)).status == 201
    clinic.clock.advance(clinic.app[SERVICES].settings.security.session_idle_minutes * 60 + 1)
    resp = await clinic.assistant.client.post(
        "/api/auth/reauth/options", headers={**HEADERS, "X-CSRF-Token": clinic.assistant.csrf}
    )
    assert resp.status == 200, await resp.text()
    options = (await resp.json())["public_key"]
    resp = await clinic.assistant.post(
        "/api/auth/unlock/passkey", {"credential": key.get(options, HEADERS["Origin"])}
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["user"]["role"] == "assistant"


async def probe_signs_in_and_out(clinic: Clinic) -> None:
    # login, totp (and enrol, at the first sign-in in open_clinic) then logout.
    again = await clinic.accounts.sign_in("sec.anne", password=PASSWORD, totp=clinic.assistant.totp)
    resp = await again.post("/api/auth/logout")
    assert resp.status in (200, 204)


def probe_refused(method: str, route: str) -> Probe:
    """The route, its ids those of the assisted doctor's records."""

    async def probe(clinic: Clinic) -> None:
        path = route.format(
            consultation_id=clinic.booked_mine.consultation_id,
            user_id=clinic.mine.user["id"],
            recording_id=clinic.recording_mine,
        )
        await refused(clinic, method, path)

    return probe


# (method, route as declared) -> what the assistant gets.
ALLOWED: dict[tuple[str, str], Probe] = {
    ("POST", "/api/auth/login"): probe_signs_in_and_out,
    ("POST", "/api/auth/enrol"): probe_signs_in_and_out,
    ("POST", "/api/auth/totp"): probe_signs_in_and_out,
    ("POST", "/api/auth/logout"): probe_signs_in_and_out,
    ("GET", "/api/me"): probe_me,
    ("GET", "/api/auth/session"): probe_session_state,
    ("POST", "/api/auth/unlock"): probe_unlock,
    ("POST", "/api/me/password"): probe_password,
    ("GET", "/api/me/passkeys"): probe_own_passkeys,
    ("POST", "/api/me/passkeys/options"): probe_own_passkeys,
    ("POST", "/api/me/passkeys"): probe_own_passkeys,
    ("POST", "/api/me/passkeys/{passkey_id}/delete"): probe_own_passkeys,
    ("POST", "/api/auth/passkey/options"): probe_own_passkeys,
    ("POST", "/api/auth/passkey"): probe_own_passkeys,
    ("POST", "/api/auth/reauth/options"): probe_unlock_with_passkey,
    ("POST", "/api/auth/unlock/passkey"): probe_unlock_with_passkey,
    ("GET", "/api/me/doctors"): probe_my_doctors,
    ("GET", "/api/consultations"): probe_list,
    ("POST", "/api/consultations"): probe_create,
    ("GET", "/api/consultations/{consultation_id}"): probe_get,
    ("POST", "/api/consultations/{consultation_id}/reschedule"): probe_reschedule,
    ("POST", "/api/consultations/{consultation_id}/edit"): probe_edit,
    ("POST", "/api/consultations/{consultation_id}/invite"): probe_invite,
    ("POST", "/api/consultations/{consultation_id}/cancel"): probe_cancel,
    ("POST", "/api/consultations/{consultation_id}/email"): probe_email,
    ("POST", "/api/consultations/{consultation_id}/waiting-message"): probe_waiting_message,
    ("GET", "/api/waiting"): probe_waiting,
    ("GET", "/api/waiting/events"): probe_waiting_events,
    ("GET", "/api/ice-policy"): probe_ice_policy,
    ("GET", "/api/audit"): probe_audit,
    ("GET", "/api/audit/export"): probe_audit_export,
}
# Refused whoever's record the path names: 403 forbidden, nothing changes (probe_refused).
REFUSED: dict[tuple[str, str], Probe | None] = {
    ("POST", "/api/room-tokens"): probe_room_token,
    ("GET", "/api/users"): None,
    ("POST", "/api/users"): None,
    ("POST", "/api/users/{user_id}/disable"): None,
    ("POST", "/api/users/{user_id}/enable"): None,
    ("POST", "/api/users/{user_id}/reset-mfa"): None,
    ("POST", "/api/users/{user_id}/role"): None,
    ("POST", "/api/users/{user_id}/assists"): None,
    ("POST", "/api/clinic"): None,
    ("POST", "/api/users/{user_id}/unlock"): None,
    ("POST", "/api/users/{user_id}/reset-link"): None,
    ("GET", "/api/consultations/{consultation_id}/export"): None,
    ("POST", "/api/consultations/{consultation_id}/erase"): None,
    ("GET", "/api/recordings"): None,
    ("GET", "/api/recordings/{recording_id}/download"): None,
    ("GET", "/api/recordings/{recording_id}/media"): None,
    ("POST", "/api/recordings/{recording_id}/delete"): None,
    ("GET", "/api/audit/verify"): None,
    ("GET", "/api/audit/incident"): None,
    ("GET", "/api/passkey-policy"): None,
    ("POST", "/api/passkey-policy"): None,
}
# Not staff endpoints: public, the patient's (no staff session reaches them) or the
# pages and their assets. Each says why; /ws has its own test below.
OUTSIDE: dict[tuple[str, str], str] = {
    ("GET", "/api/setup"): "first-run setup, public",
    ("POST", "/api/setup"): "first-run setup, a one-time link",
    ("POST", "/api/account-link"): "a one-time enrolment or reset link, before any session",
    ("POST", "/api/account-link/complete"): "a one-time enrolment or reset link",
    ("POST", "/api/invites/inspect"): "the patient's link",
    ("POST", "/api/invites/redeem"): "the patient's link and code",
    ("GET", "/api/patient/session"): "the patient's session",
    ("GET", "/healthz"): "public",
    ("GET", "/api/auth/methods"): "public: which sign-in steps the page offers",
    ("POST", "/api/auth/passwordless/options"): "sign-in with a passkey alone, before any session",
    ("POST", "/api/auth/passwordless"): "sign-in with a passkey alone, before any session",
    ("GET", "/api/clinic"): "public: the clinic's details for the patient's pages",
    ("GET", "/readyz"): "public",
    ("GET", "/api/openapi.json"): "public document",
    ("GET", "/metrics"): "loopback only",
    ("GET", "/ws"): "test_an_assistant_never_takes_a_seat_on_the_websocket",
    ("GET", "/protocol.js"): "asset",
    ("GET", "/static/{path}"): "asset",
}


def app_routes(app: web.Application) -> set[tuple[str, str]]:
    found = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        path = route.resource.canonical if route.resource is not None else ""
        found.add((route.method, path))
    return found


def is_page(method: str, path: str) -> bool:
    """The HTML pages and the versioned assets: the same for anyone, the data they show
    comes from the API routes above."""
    return method == "GET" and (path in PAGES or path.startswith(VERSIONED_PREFIX))


def test_every_route_is_classified_for_the_assistant(app: web.Application) -> None:
    routes = app_routes(app)
    classified = set(ALLOWED) | set(REFUSED) | set(OUTSIDE)
    unclassified = {r for r in routes - classified if not is_page(*r)}
    assert unclassified == set(), "classify these routes for the assistant role"
    assert set(ALLOWED) & set(REFUSED) == set()
    # And no entry names a route that is gone.
    assert classified - routes == set()


@pytest.mark.parametrize("route", [*ALLOWED, *REFUSED], ids=lambda r: f"{r[0]} {r[1]}")
async def test_the_assistants_answer_on_each_route(
    app: web.Application,
    client: TestClient[Any, Any],
    accounts: Accounts,
    clock: ManualClock,
    route: tuple[str, str],
) -> None:
    clinic = await open_clinic(app, client, accounts, clock)
    # Both patients wait: the assistant must see its doctor's only.
    patients = []
    for booked in (clinic.booked_mine, clinic.booked_other):
        signal, _ = await join(client, await booked.patient_token())
        await signal.expect(Waiting)
        patients.append(signal)
    try:
        probe = ALLOWED.get(route) or REFUSED[route] or probe_refused(*route)
        await probe(clinic)
    finally:
        for signal in patients:
            await signal.close()


async def test_each_action_of_an_assistant_names_the_doctor_it_acted_for(
    app: web.Application, client: TestClient[Any, Any], accounts: Accounts, clock: ManualClock
) -> None:
    clinic = await open_clinic(app, client, accounts, clock)
    seen = await app[SERVICES].store.audit_head()
    assert seen is not None
    resp = await clinic.book_for(clinic.mine)
    cid = (await resp.json())["consultation"]["id"]
    await clinic.assistant.post(
        f"/api/consultations/{cid}/reschedule",
        json={"scheduled_start": clinic.start(3), "duration_minutes": 20},
    )
    await clinic.assistant.post(f"/api/consultations/{cid}/invite")
    await clinic.assistant.post(f"/api/consultations/{cid}/cancel")
    entries = [
        e
        for e in await app[SERVICES].store.all_audit()
        if e.seq > seen.seq and e.actor == clinic.assistant.user["id"]
    ]
    assert sorted(e.action for e in entries) == sorted(
        [
            "consultation.created",
            "invite.created",
            "consultation.rescheduled",
            "invite.created",
            "patient.sessions_ended",
            "patient.sessions_ended",
            "consultation.cancelled",
        ]
    )
    for e in entries:
        assert (e.actor_role, e.target) == ("assistant", cid)
        assert json.loads(e.details)["for_doctor"] == clinic.mine.user["id"], e
    # The doctor reads them in its own trail (they are about its consultation).
    resp = await clinic.mine.client.get("/api/audit", params={"consultation": cid})
    actors = {e["actor"] for e in (await resp.json())["entries"]}
    assert clinic.assistant.user["id"] in actors


async def test_an_assistant_never_takes_a_seat_on_the_websocket(
    app: web.Application, client: TestClient[Any, Any], accounts: Accounts, clock: ManualClock
) -> None:
    """No token for it over HTTP (above); and a doctor's token minted before the account
    became an assistant's is refused at the join, within the token's lifetime."""
    clinic = await open_clinic(app, client, accounts, clock)
    token = await clinic.booked_other.doctor_token()
    resp = await clinic.admin.post(
        f"/api/users/{clinic.other.user['id']}/role", json={"role": "assistant"}
    )
    assert resp.status == 200, await resp.text()
    signal = await connect(client)
    await signal.send({"type": "join", "v": 1, "token": token})
    await signal.expect_error("forbidden")
    await signal.close()
    refusals = [
        e for e in await app[SERVICES].store.all_audit() if e.action == "signaling.token_refused"
    ]
    assert json.loads(refusals[-1].details)["reason"] == "forbidden"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"doctor_ids": ["0" * 32]}, "invalid_body"),  # no such account
        ({"doctor_ids": "dr"}, "invalid_body"),
        ({}, "invalid_body"),
        ({"doctor_ids": [], "extra": 1}, "invalid_body"),
    ],
)
async def test_assists_takes_only_existing_doctors(
    app: web.Application,
    client: TestClient[Any, Any],
    accounts: Accounts,
    clock: ManualClock,
    body: dict[str, Any],
    code: str,
) -> None:
    clinic = await open_clinic(app, client, accounts, clock)
    before = await snapshot(app)
    path = f"/api/users/{clinic.assistant.user['id']}/assists"
    resp = await clinic.admin.post(path, json=body)
    assert await status_code(resp) == (400, code)
    # An admin or another assistant is no doctor; a doctor's account has no doctors.
    for not_a_doctor in (clinic.admin, clinic.assistant):
        resp = await clinic.admin.post(path, json={"doctor_ids": [not_a_doctor.user["id"]]})
        assert await status_code(resp) == (400, "invalid_body")
    resp = await clinic.admin.post(
        f"/api/users/{clinic.mine.user['id']}/assists", json={"doctor_ids": []}
    )
    assert await status_code(resp) == (400, "invalid_body")
    resp = await clinic.admin.post("/api/users/" + "f" * 32 + "/assists", json={"doctor_ids": []})
    assert await status_code(resp) == (404, "not_found")
    assert await snapshot(app) == before


async def test_detached_the_assistant_loses_the_doctor_at_once(
    app: web.Application, client: TestClient[Any, Any], accounts: Accounts, clock: ManualClock
) -> None:
    clinic = await open_clinic(app, client, accounts, clock)
    path = f"/api/users/{clinic.assistant.user['id']}/assists"
    resp = await clinic.admin.post(path, json={"doctor_ids": [clinic.other.user["id"]]})
    assert resp.status == 200
    assert (await resp.json())["assists"] == [clinic.other.user["id"]]
    entry = [
        e for e in await app[SERVICES].store.all_audit() if e.action == "user.assists_changed"
    ][-1]
    assert json.loads(entry.details) == {
        "old": [clinic.mine.user["id"]],
        "new": [clinic.other.user["id"]],
    }
    resp = await clinic.assistant.client.get(
        f"/api/consultations/{clinic.booked_mine.consultation_id}"
    )
    assert await status_code(resp) == (404, "consultation_not_found")
    resp = await clinic.assistant.client.get(
        f"/api/consultations/{clinic.booked_other.consultation_id}"
    )
    assert resp.status == 200


async def test_a_role_change_takes_the_account_off_every_assistants_list(
    app: web.Application, client: TestClient[Any, Any], accounts: Accounts, clock: ManualClock
) -> None:
    clinic = await open_clinic(app, client, accounts, clock)
    store = app[SERVICES].store
    assistant_id, mine_id = clinic.assistant.user["id"], clinic.mine.user["id"]
    # The doctor becomes an admin: the secretariat no longer schedules for that account.
    resp = await clinic.admin.post(f"/api/users/{mine_id}/role", json={"role": "admin"})
    assert resp.status == 200, await resp.text()
    assistant = await store.get_user(assistant_id)
    assert assistant is not None and assistant.assists == ()
    changed = [e for e in await store.all_audit() if e.action == "user.assists_changed"][-1]
    assert (changed.target, json.loads(changed.details)) == (
        assistant_id,
        {"old": [mine_id], "new": []},
    )
    # The assistant becomes a doctor, then an assistant again: it assists nobody until an
    # admin says for whom (its old list does not come back).
    resp = await clinic.admin.post(
        f"/api/users/{assistant_id}/assists", json={"doctor_ids": [clinic.other.user["id"]]}
    )
    assert resp.status == 200, await resp.text()
    for role in ("doctor", "assistant"):
        resp = await clinic.admin.post(f"/api/users/{assistant_id}/role", json={"role": role})
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["assists"] == []
    again = await store.get_user(assistant_id)
    assert again is not None and (again.role, again.assists) == ("assistant", ())


async def test_an_admin_books_for_nobody(
    app: web.Application, client: TestClient[Any, Any], accounts: Accounts, clock: ManualClock
) -> None:
    clinic = await open_clinic(app, client, accounts, clock)
    body = {"patient_name": "Carol", "scheduled_start": clinic.start()}
    for extra in ({}, {"doctor_id": clinic.mine.user["id"]}):
        resp = await clinic.admin.post("/api/consultations", json={**body, **extra})
        assert await status_code(resp) == (403, "forbidden")
    cid = clinic.booked_mine.consultation_id
    for path in (f"/api/consultations/{cid}/invite", f"/api/consultations/{cid}/reschedule"):
        resp = await clinic.admin.post(
            path, json={"scheduled_start": clinic.start(), "duration_minutes": 30}
        )
        assert await status_code(resp) == (403, "forbidden"), path
    resp = await clinic.admin.client.get("/api/me/doctors")
    assert (await resp.json())["doctors"] == []
