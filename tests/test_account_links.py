"""Nobody knows anyone else's password: enrolment and reset links, unlock, account status."""

from __future__ import annotations

import asyncio
from typing import Any

import pyotp
import pytest
from aiohttp import web

from signaling.keys import SERVICES
from tests.conftest import PASSWORD, Accounts, Staff

pytestmark = pytest.mark.both_stores
OWN_PASSWORD = "a passphrase of my very own"
DUMMY_PASSWORD = "not a real password, only a timing equaliser"
HOUR = 3600.0


def token_of(link: str) -> str:
    # The secret travels in the fragment, which no server, proxy or log ever sees.
    page, _, token = link.partition("#")
    assert page.endswith("/enrol") and "?" not in link and token
    return token


async def create(admin: Staff, username: str = "dr.new", role: str = "doctor") -> dict[str, Any]:
    resp = await admin.post(
        "/api/users", json={"username": username, "role": role, "display_name": "Dr New"}
    )
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def open_link(accounts: Accounts, token: str) -> Any:
    return await accounts.new_session().post("/api/account-link", json={"token": token})


async def secret_of(accounts: Accounts, token: str) -> pyotp.TOTP:
    resp = await open_link(accounts, token)
    assert resp.status == 200, await resp.text()
    return pyotp.TOTP((await resp.json())["secret"])


def complete(accounts: Accounts, token: str, code: str, password: str = OWN_PASSWORD) -> Any:
    return accounts.new_session().post(
        "/api/account-link/complete", json={"token": token, "password": password, "code": code}
    )


async def error_of(resp: Any) -> tuple[int, str]:
    return resp.status, (await resp.json())["error"]["code"]


async def listed(admin: Staff, username: str) -> dict[str, Any]:
    users = (await (await admin.client.get("/api/users")).json())["users"]
    found: dict[str, Any] = next(u for u in users if u["username"] == username)
    return found


async def test_a_new_account_enrols_through_its_link_and_signs_in(
    accounts: Accounts, admin: Staff, app: web.Application
) -> None:
    created = await create(admin)
    now = accounts.clock.now()
    assert created["expires_at"] == now + 72 * HOUR
    assert created["user"]["status"] == "enrolment_pending"
    token = token_of(created["link"])
    # Nobody signs in to a pending account, whatever password they try (the timing
    # equaliser's own password included: an empty hash is checked against it).
    for guess in ("", PASSWORD, token, DUMMY_PASSWORD):
        resp = await accounts.new_session().post(
            "/api/auth/login", json={"username": "dr.new", "password": guess or "x"}
        )
        assert resp.status == 401
    details = await (await open_link(accounts, token)).json()
    assert details["purpose"] == "enrolment" and details["username"] == "dr.new"
    assert details["otpauth_uri"].startswith("otpauth://totp/") and "<svg" in details["qr_svg"]
    totp = pyotp.TOTP(details["secret"])
    resp = await complete(accounts, token, accounts.next_code(totp))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["user"]["mfa_enrolled"] is True
    shown = await listed(admin, "dr.new")
    assert shown["status"] == "active" and shown["link_purpose"] is None
    assert shown["last_sign_in_at"] == accounts.clock.now()
    # The code used to enrol is spent; the chosen password and the next code sign in.
    await accounts.sign_in("dr.new", password=OWN_PASSWORD, totp=totp)
    trail = [(e.action, e.outcome) for e in await app[SERVICES].store.all_audit()]
    assert ("user.link_issued", "success") in trail and ("user.link_used", "success") in trail
    assert all(token.split(".")[1] not in e.details for e in await app[SERVICES].store.all_audit())


async def test_of_parallel_uses_of_one_link_exactly_one_wins(
    accounts: Accounts, admin: Staff
) -> None:
    token = token_of((await create(admin))["link"])
    code = accounts.next_code(await secret_of(accounts, token))
    answers = await asyncio.gather(*(complete(accounts, token, code) for _ in range(6)))
    statuses = sorted([resp.status for resp in answers])
    assert statuses == [200] + [403] * 5
    refused = [await error_of(r) for r in answers if r.status == 403]
    assert {code for _, code in refused} == {"account_link_invalid"}
    assert await error_of(await open_link(accounts, token)) == (403, "account_link_invalid")


async def test_common_short_or_wrong_answers_leave_the_link_usable(
    accounts: Accounts, admin: Staff
) -> None:
    token = token_of((await create(admin))["link"])
    totp = await secret_of(accounts, token)
    # On the shipped list whatever the case, though long enough.
    for common in ("1qaz2wsx3edc", "1QAZ2WSX3EDC"):
        resp = await complete(accounts, token, accounts.next_code(totp), password=common)
        assert await error_of(resp) == (400, "common_password")
    resp = await complete(accounts, token, accounts.next_code(totp), password="short")
    assert await error_of(resp) == (400, "weak_password")
    resp = await complete(accounts, token, "000000")
    assert await error_of(resp) == (401, "invalid_totp")
    wrong = token.split(".")[0] + ".not-the-secret"
    assert await error_of(await open_link(accounts, wrong)) == (403, "account_link_invalid")
    resp = await complete(accounts, token, accounts.next_code(totp))
    assert resp.status == 200, await resp.text()


async def test_an_expired_link_is_refused_and_a_new_one_replaces_it(
    accounts: Accounts, admin: Staff
) -> None:
    created = await create(admin)
    old = token_of(created["link"])
    accounts.clock.advance(72 * HOUR + 1)
    assert await error_of(await open_link(accounts, old)) == (403, "account_link_invalid")
    admin = await accounts.sign_in("admin.root", totp=admin.totp)  # that session ran out
    assert (await listed(admin, "dr.new"))["status"] == "link_expired"
    resp = await admin.post(f"/api/users/{created['user']['id']}/reset-link")
    assert resp.status == 200, await resp.text()
    again = await resp.json()
    # Never enrolled: the new link is an enrolment link still.
    assert again["user"]["status"] == "enrolment_pending"
    new = token_of(again["link"])
    assert await error_of(await open_link(accounts, old)) == (403, "account_link_invalid")
    resp = await complete(accounts, new, accounts.next_code(await secret_of(accounts, new)))
    assert resp.status == 200, await resp.text()


async def test_a_reset_ends_sessions_and_voids_password_and_authenticator(
    accounts: Accounts, admin: Staff, doctor: Staff, app: web.Application
) -> None:
    resp = await admin.post(f"/api/users/{doctor.user['id']}/reset-link")
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["user"]["status"] == "reset_pending" and not body["user"]["mfa_enrolled"]
    assert (await doctor.client.get("/api/me")).status == 401
    resp = await accounts.new_session().post(
        "/api/auth/login", json={"username": "dr.martin", "password": PASSWORD}
    )
    assert resp.status == 401
    token = token_of(body["link"])
    details = await (await open_link(accounts, token)).json()
    assert details["purpose"] == "reset" and details["secret"] != doctor.totp.secret
    totp = pyotp.TOTP(details["secret"])
    assert (await complete(accounts, token, accounts.next_code(totp))).status == 200
    await accounts.sign_in("dr.martin", password=OWN_PASSWORD, totp=totp)
    resp = await admin.post(f"/api/users/{admin.user['id']}/reset-link")
    assert await error_of(resp) == (403, "forbidden")
    issued = [e for e in await app[SERVICES].store.all_audit() if e.action == "user.link_issued"]
    assert [e.details for e in issued][-1] == '{"purpose":"reset"}'


async def test_a_locked_account_shows_until_when_and_an_admin_unlocks_it(
    accounts: Accounts, admin: Staff, doctor: Staff, app: web.Application
) -> None:
    for _ in range(5):
        await accounts.new_session().post(
            "/api/auth/login", json={"username": "dr.martin", "password": "not the password"}
        )
    locked_at = accounts.clock.now()
    shown = await listed(admin, "dr.martin")
    assert shown["status"] == "locked" and shown["locked_until"] == locked_at + 15 * 60
    resp = await accounts.new_session().post(
        "/api/auth/login", json={"username": "dr.martin", "password": PASSWORD}
    )
    assert await error_of(resp) == (429, "account_locked")
    resp = await admin.post(f"/api/users/{doctor.user['id']}/unlock")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["status"] == "active"
    await accounts.sign_in("dr.martin", totp=doctor.totp)
    unlocked = [e for e in await app[SERVICES].store.all_audit() if e.action == "user.unlocked"]
    assert [(e.actor, e.target) for e in unlocked] == [(admin.user["id"], doctor.user["id"])]


async def test_a_lock_that_ran_out_is_not_shown(accounts: Accounts, admin: Staff) -> None:
    await accounts.create("dr.locked")
    for _ in range(5):
        await accounts.new_session().post(
            "/api/auth/login", json={"username": "dr.locked", "password": "not the password"}
        )
    accounts.clock.advance(15 * 60)
    shown = await listed(admin, "dr.locked")
    assert shown["status"] == "active" and shown["locked_until"] is None


async def test_changing_ones_password_to_a_common_one_is_refused(
    accounts: Accounts, doctor: Staff
) -> None:
    body = {
        "current_password": PASSWORD,
        "new_password": "Qwerty123456",
        "code": accounts.next_code(doctor.totp),
    }
    resp = await doctor.post("/api/me/password", json=body)
    assert await error_of(resp) == (400, "common_password")


async def test_creating_an_account_takes_no_password(admin: Staff) -> None:
    resp = await admin.post(
        "/api/users", json={"username": "dr.x", "role": "doctor", "password": PASSWORD}
    )
    assert await error_of(resp) == (400, "invalid_body")
