"""Passkeys for staff, through the API with a software authenticator: enrolment from My
account, sign-in with the password and a passkey, and the refusals (wrong origin, replayed
challenge, counter gone back, the last second factor)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp import web

from signaling.keys import SERVICES
from signaling.models import AuditEntry
from tests.conftest import ORIGIN, PASSWORD, Accounts, Staff
from tests.webauthn_authenticator import SoftwareAuthenticator

pytestmark = pytest.mark.both_stores
HEADERS = {"Origin": ORIGIN}


async def enrolment_options(staff: Staff) -> dict[str, Any]:
    resp = await staff.client.post(
        "/api/me/passkeys/options", headers={**HEADERS, "X-CSRF-Token": staff.csrf}
    )
    assert resp.status == 200, await resp.text()
    options: dict[str, Any] = (await resp.json())["public_key"]
    return options


async def enrol(
    staff: Staff, key: SoftwareAuthenticator, name: str = "Laptop", origin: str = ORIGIN
) -> Any:
    body = {"name": name, "credential": key.create(await enrolment_options(staff), origin)}
    return await staff.client.post(
        "/api/me/passkeys", json=body, headers={**HEADERS, "X-CSRF-Token": staff.csrf}
    )


async def password_step(accounts: Accounts, username: str = "dr.martin") -> aiohttp.ClientSession:
    session = accounts.new_session()
    resp = await session.post(
        "/api/auth/login", json={"username": username, "password": PASSWORD}, headers=HEADERS
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["passkey"] is True
    return session


async def sign_in_options(session: aiohttp.ClientSession) -> dict[str, Any]:
    resp = await session.post("/api/auth/passkey/options", headers=HEADERS)
    assert resp.status == 200, await resp.text()
    options: dict[str, Any] = (await resp.json())["public_key"]
    return options


async def send_assertion(session: aiohttp.ClientSession, credential: dict[str, Any]) -> Any:
    return await session.post("/api/auth/passkey", json={"credential": credential}, headers=HEADERS)


async def trail(app: web.Application, prefix: str) -> list[AuditEntry]:
    return [e for e in await app[SERVICES].store.all_audit() if e.action.startswith(prefix)]


async def test_a_doctor_enrols_a_passkey_and_signs_in_with_it_instead_of_the_code(
    accounts: Accounts, doctor: Staff, app: web.Application
) -> None:
    key = SoftwareAuthenticator()
    resp = await enrol(doctor, key)
    assert resp.status == 201, await resp.text()
    listed = await resp.json()
    assert [p["name"] for p in listed["passkeys"]] == ["Laptop"]
    assert listed["passkeys"][0]["last_used_at"] is None
    assert listed["removable"] is True
    assert key.rp_id == "localhost"
    # The user handle is random, not the username.
    assert key.user_handle and "martin" not in key.user_handle

    session = await password_step(accounts)
    options = await sign_in_options(session)
    assert [c["id"] for c in options["allowCredentials"]] == [key.id]
    resp = await send_assertion(session, key.get(options, ORIGIN))
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["user"]["username"] == "dr.martin"
    me = await session.get("/api/me")
    assert me.status == 200

    listed = await (await session.get("/api/me/passkeys")).json()
    assert listed["passkeys"][0]["last_used_at"] == accounts.clock.now()
    actions = [(e.action, e.outcome) for e in await trail(app, "passkey.")]
    assert actions == [("passkey.enrolled", "success")]
    logins = [(e.action, e.outcome) for e in await trail(app, "login.")][-3:]
    assert logins == [
        ("login.password", "success"),
        ("login.passkey", "success"),
        ("login.success", "success"),
    ]


async def test_an_assertion_made_for_another_origin_is_refused(
    accounts: Accounts, doctor: Staff, app: web.Application
) -> None:
    key = SoftwareAuthenticator()
    assert (await enrol(doctor, key)).status == 201
    session = await password_step(accounts)
    options = await sign_in_options(session)
    # A look-alike page relaying the ceremony: the browser names its own origin.
    resp = await send_assertion(session, key.get(options, "https://clinic-login.example"))
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "passkey_refused"
    refused = (await trail(app, "login.passkey"))[-1]
    assert (refused.outcome, '"reason":"wrong_origin"' in refused.details) == ("failure", True)
    assert (await session.get("/api/me")).status == 401


async def test_an_enrolment_made_for_another_origin_is_refused(
    doctor: Staff, app: web.Application
) -> None:
    resp = await enrol(doctor, SoftwareAuthenticator(), origin="https://evil.example")
    assert (await resp.json())["error"]["code"] == "passkey_refused"
    assert (await (await doctor.client.get("/api/me/passkeys")).json())["passkeys"] == []
    assert [(e.action, e.outcome) for e in await trail(app, "passkey.")] == [
        ("passkey.enrolled", "failure")
    ]


async def test_a_replayed_assertion_is_refused(accounts: Accounts, doctor: Staff) -> None:
    key = SoftwareAuthenticator()
    assert (await enrol(doctor, key)).status == 201
    session = await password_step(accounts)
    options = await sign_in_options(session)
    assertion = key.get(options, ORIGIN)
    assert (await send_assertion(session, assertion)).status == 200
    # The same assertion, captured, sent again in another pending sign-in: its challenge was
    # issued to the first one and is used.
    other = await password_step(accounts)
    await sign_in_options(other)
    resp = await send_assertion(other, assertion)
    assert (await resp.json())["error"]["code"] == "passkey_refused"
    # And a fresh signature over a used challenge is refused too.
    resp = await send_assertion(other, key.get(options, ORIGIN))
    assert (await resp.json())["error"]["code"] == "passkey_refused"


async def test_a_counter_gone_back_is_refused_and_audited_as_a_clone(
    accounts: Accounts, doctor: Staff, app: web.Application
) -> None:
    key = SoftwareAuthenticator()
    assert (await enrol(doctor, key)).status == 201
    session = await password_step(accounts)
    assert (
        await send_assertion(session, key.get(await sign_in_options(session), ORIGIN))
    ).status == 200
    # A copy of the key, its counter where the original's was: its signature is valid.
    session = await password_step(accounts)
    clone = key.get(await sign_in_options(session), ORIGIN, count_up=False)
    resp = await send_assertion(session, clone)
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "passkey_refused"
    suspected = await trail(app, "passkey.clone_suspected")
    assert len(suspected) == 1 and suspected[0].actor == doctor.user["id"]
    refused = (await trail(app, "login.passkey"))[-1]
    assert '"reason":"counter_went_back"' in refused.details


async def test_removing_a_passkey_and_never_the_last_second_factor(
    accounts: Accounts, doctor: Staff, app: web.Application
) -> None:
    key, spare = SoftwareAuthenticator(), SoftwareAuthenticator()
    assert (await enrol(doctor, key)).status == 201
    assert (await enrol(doctor, spare, "Phone")).status == 201
    resp = await doctor.post(f"/api/me/passkeys/{spare.id}/delete")
    assert resp.status == 200, await resp.text()
    assert [p["name"] for p in (await resp.json())["passkeys"]] == ["Laptop"]
    resp = await doctor.post("/api/me/passkeys/no-such-key/delete")
    assert (await resp.json())["error"]["code"] == "passkey_not_found"
    # The removed one no longer signs in.
    session = await password_step(accounts)
    resp = await send_assertion(session, spare.get(await sign_in_options(session), ORIGIN))
    assert (await resp.json())["error"]["code"] == "passkey_refused"

    # An account whose passkey is its only second factor (no confirmed authenticator app)
    # keeps it.
    store = app[SERVICES].store
    await store.change_user(doctor.user["id"], lambda u: u.evolve(totp_confirmed=False))
    resp = await doctor.post(f"/api/me/passkeys/{key.id}/delete")
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "last_second_factor"
    listed = await (await doctor.client.get("/api/me/passkeys")).json()
    assert ([p["name"] for p in listed["passkeys"]], listed["removable"]) == (["Laptop"], False)
    removals = [(e.outcome, e.details) for e in await trail(app, "passkey.removed")]
    assert [o for o, _ in removals] == ["success", "failure"]
    assert '"reason":"last_second_factor"' in removals[1][1]


async def test_a_stale_whole_record_update_keeps_the_passkeys(
    doctor: Staff, app: web.Application
) -> None:
    store = app[SERVICES].store
    stale = await store.get_user(doctor.user["id"])
    assert stale is not None
    assert (await enrol(doctor, SoftwareAuthenticator())).status == 201
    await store.update_user(stale.evolve(display_name="Dr Martin"))
    stored = await store.get_user(doctor.user["id"])
    assert stored is not None and len(stored.passkeys) == 1
    assert stored.display_name == "Dr Martin"


async def test_passkey_refusals_count_toward_the_lockout(
    accounts: Accounts, doctor: Staff, app: web.Application
) -> None:
    key = SoftwareAuthenticator()
    assert (await enrol(doctor, key)).status == 201
    session = await password_step(accounts)
    options = await sign_in_options(session)
    threshold = app[SERVICES].settings.security.lockout_threshold
    for _ in range(threshold):
        resp = await send_assertion(session, key.get(options, "https://evil.example"))
        assert (await resp.json())["error"]["code"] == "passkey_refused"
    resp = await send_assertion(session, key.get(options, ORIGIN))
    assert (await resp.json())["error"]["code"] == "account_locked"


async def test_no_passkey_at_an_ip_address(doctor: Staff) -> None:
    resp = await doctor.client.post(
        "/api/me/passkeys/options",
        headers={"Origin": "http://127.0.0.1:8080", "X-CSRF-Token": doctor.csrf},
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "passkey_unavailable"


async def test_an_admin_reset_removes_the_passkeys(
    accounts: Accounts, doctor: Staff, admin: Staff, app: web.Application
) -> None:
    assert (await enrol(doctor, SoftwareAuthenticator())).status == 201
    resp = await admin.post(f"/api/users/{doctor.user['id']}/reset-mfa")
    assert resp.status in (200, 204), await resp.text()
    stored = await app[SERVICES].store.get_user(doctor.user["id"])
    assert stored is not None and stored.passkeys == ()


async def test_the_passkey_routes_need_a_session_and_csrf(
    accounts: Accounts, doctor: Staff
) -> None:
    resp = await doctor.client.post("/api/me/passkeys/options", headers=HEADERS)
    assert (await resp.json())["error"]["code"] == "csrf_failed"
    stranger = accounts.new_session()
    assert (await stranger.get("/api/me/passkeys")).status == 401
    resp = await stranger.post("/api/auth/passkey/options", headers=HEADERS)
    assert (await resp.json())["error"]["code"] == "login_expired"
    resp = await doctor.post("/api/me/passkeys", json={"name": "x", "credential": {}, "more": 1})
    assert (await resp.json())["error"]["code"] == "invalid_body"
