"""A signed-in staff member changes their own password: POST /api/me/password."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from signaling.keys import SERVICES
from tests.conftest import PASSWORD, Accounts, Staff

pytestmark = pytest.mark.both_stores
NEW_PASSWORD = "a brand new long passphrase"


def change(staff: Staff, code: str, current: str = PASSWORD, new: str = NEW_PASSWORD) -> Any:
    body = {"current_password": current, "new_password": new, "code": code}
    return staff.post("/api/me/password", json=body)


async def test_change_keeps_this_session_ends_the_others_and_swaps_the_password(
    accounts: Accounts, doctor: Staff, app: web.Application
) -> None:
    laptop = await accounts.sign_in("dr.martin", totp=doctor.totp)
    resp = await change(doctor, accounts.next_code(doctor.totp))
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"sessions_ended": 1}
    assert (await doctor.client.get("/api/me")).status == 200
    assert (await laptop.client.get("/api/me")).status == 401
    old = await accounts.new_session().post(
        "/api/auth/login", json={"username": "dr.martin", "password": PASSWORD}
    )
    assert old.status == 401
    await accounts.sign_in("dr.martin", password=NEW_PASSWORD, totp=doctor.totp)
    trail = [e for e in await app[SERVICES].store.all_audit() if e.action.startswith("user.")]
    assert [(e.action, e.outcome, e.details) for e in trail] == [
        ("user.password_changed", "success", '{"sessions_ended":1}')
    ]


async def test_a_code_is_accepted_once(accounts: Accounts, doctor: Staff) -> None:
    code = accounts.next_code(doctor.totp)
    assert (await change(doctor, code)).status == 200
    resp = await change(doctor, code, current=NEW_PASSWORD, new="yet another passphrase")
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "totp_reused"
    # The sign-in code was used too: the same monotonic step refuses it.
    resp = await change(doctor, "000000", current=NEW_PASSWORD, new="yet another passphrase")
    assert (await resp.json())["error"]["code"] == "invalid_totp"


@pytest.mark.parametrize(
    ("current", "new", "status", "code"),
    [
        (PASSWORD, "short", 400, "weak_password"),
        (PASSWORD, PASSWORD, 400, "password_unchanged"),
        ("not my password at all", NEW_PASSWORD, 403, "wrong_password"),
    ],
)
async def test_refusals_leave_the_password_as_it_was(
    accounts: Accounts, doctor: Staff, current: str, new: str, status: int, code: str
) -> None:
    resp = await change(doctor, accounts.next_code(doctor.totp), current=current, new=new)
    assert resp.status == status
    assert (await resp.json())["error"]["code"] == code
    await accounts.sign_in("dr.martin", totp=doctor.totp)


async def test_wrong_current_passwords_lock_the_account_like_sign_in(
    accounts: Accounts, doctor: Staff, app: web.Application
) -> None:
    threshold = app[SERVICES].settings.security.lockout_threshold
    for _ in range(threshold):
        resp = await change(doctor, accounts.next_code(doctor.totp), current="wrong password!!")
        assert resp.status == 403
    resp = await change(doctor, accounts.next_code(doctor.totp))
    assert resp.status == 429
    assert (await resp.json())["error"]["code"] == "account_locked"
    resp = await accounts.new_session().post(
        "/api/auth/login", json={"username": "dr.martin", "password": PASSWORD}
    )
    assert (await resp.json())["error"]["code"] == "account_locked"


async def test_needs_csrf_and_a_session(accounts: Accounts, doctor: Staff) -> None:
    body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "code": "123456"}
    resp = await doctor.client.post("/api/me/password", json=body)
    assert (await resp.json())["error"]["code"] == "csrf_failed"
    resp = await accounts.new_session().post("/api/me/password", json=body)
    assert resp.status == 401
    resp = await doctor.post("/api/me/password", json={**body, "extra": 1})
    assert (await resp.json())["error"]["code"] == "invalid_body"
