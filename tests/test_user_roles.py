"""An admin changes another account's role (doctor <-> admin), on both backends: validation,
the last enabled admin, the sessions that end, and the audit entry with old and new role."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from aiohttp import web

from signaling.keys import SERVICES
from signaling.models import User
from tests.conftest import Accounts, Staff

pytestmark = pytest.mark.both_stores


async def role_entries(app: web.Application) -> list[Any]:
    return [e for e in await app[SERVICES].store.all_audit() if e.action == "user.role_changed"]


async def test_an_admin_promotes_a_doctor_whose_sessions_end(
    app: web.Application, accounts: Accounts, admin: Staff, doctor: Staff
) -> None:
    resp = await admin.post(f"/api/users/{doctor.user['id']}/role", json={"role": "admin"})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["role"] == "admin"
    stored = await app[SERVICES].store.get_user(doctor.user["id"])
    assert stored is not None and stored.role == "admin"
    # Least privilege: the session opened as a doctor is over; the role applies from the
    # next sign-in.
    resp = await doctor.client.get("/api/me")
    assert resp.status == 401
    again = await accounts.sign_in("dr.martin", totp=doctor.totp)
    assert again.user["role"] == "admin"
    resp = await again.client.get("/api/users")
    assert resp.status == 200

    (entry,) = await role_entries(app)
    assert (entry.actor, entry.actor_role, entry.target, entry.outcome) == (
        admin.user["id"],
        "admin",
        doctor.user["id"],
        "success",
    )
    assert json.loads(entry.details) == {"old_role": "doctor", "new_role": "admin"}

    # And back: the new admin's sessions end again; the list shows the doctor.
    resp = await admin.post(f"/api/users/{doctor.user['id']}/role", json={"role": "doctor"})
    assert resp.status == 200, await resp.text()
    assert (await again.client.get("/api/users")).status == 401
    listing = await (await admin.client.get("/api/users")).json()
    assert {u["username"]: u["role"] for u in listing["users"]}["dr.martin"] == "doctor"
    assert [json.loads(e.details)["new_role"] for e in await role_entries(app)] == [
        "admin",
        "doctor",
    ]


async def test_the_same_role_changes_nothing_and_records_nothing(
    app: web.Application, admin: Staff, doctor: Staff
) -> None:
    resp = await admin.post(f"/api/users/{doctor.user['id']}/role", json={"role": "doctor"})
    assert resp.status == 200
    assert (await doctor.client.get("/api/me")).status == 200  # its session is kept
    assert await role_entries(app) == []


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"role": "superuser"}, 400, "invalid_body"),
        ({"role": "patient"}, 400, "invalid_body"),
        ({}, 400, "invalid_body"),
        ({"role": "admin", "extra": 1}, 400, "invalid_body"),
    ],
)
async def test_an_unknown_role_is_a_clear_400(
    app: web.Application,
    admin: Staff,
    doctor: Staff,
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    resp = await admin.post(f"/api/users/{doctor.user['id']}/role", json=body)
    assert resp.status == status
    error = (await resp.json())["error"]
    assert error["code"] == code
    if "role" in body and "extra" not in body:
        assert "role" in error["message"]  # says which field is wrong
    assert await role_entries(app) == []


async def test_refusals_unknown_user_own_role_doctor_and_csrf(
    app: web.Application, admin: Staff, doctor: Staff
) -> None:
    resp = await admin.post(f"/api/users/{uuid.uuid4().hex}/role", json={"role": "admin"})
    assert (resp.status, (await resp.json())["error"]["code"]) == (404, "not_found")
    resp = await admin.post(f"/api/users/{admin.user['id']}/role", json={"role": "doctor"})
    assert (resp.status, (await resp.json())["error"]["code"]) == (403, "forbidden")
    assert "own role" in (await resp.json())["error"]["message"]
    resp = await doctor.post(f"/api/users/{doctor.user['id']}/role", json={"role": "admin"})
    assert (resp.status, (await resp.json())["error"]["code"]) == (403, "forbidden")
    resp = await admin.client.post(
        f"/api/users/{doctor.user['id']}/role", json={"role": "admin"}
    )  # no CSRF token
    assert (resp.status, (await resp.json())["error"]["code"]) == (403, "csrf_failed")
    user = await app[SERVICES].store.get_user(doctor.user["id"])
    assert user is not None and user.role == "doctor"
    assert await role_entries(app) == []


def _user(name: str, role: str, disabled: bool = False) -> User:
    return User(
        id=uuid.uuid4().hex,
        username=name,
        display_name=name,
        role=role,  # type: ignore[arg-type]
        password_hash="x",
        created_at=0.0,
        disabled=disabled,
    )


async def test_the_store_keeps_one_enabled_admin(app: web.Application, admin: Staff) -> None:
    store = app[SERVICES].store
    sole = admin.user["id"]
    retired = _user("retired", "admin", disabled=True)
    await store.create_user(retired)
    # A disabled admin does not count: the sole enabled admin stays an admin.
    assert await store.set_user_role(sole, "doctor") is False
    user = await store.get_user(sole)
    assert user is not None and user.role == "admin"
    assert await store.set_user_role(retired.id, "doctor") is True
    assert await store.set_user_role(retired.id, "admin") is True

    # Two admins demoting each other at once: exactly one succeeds.
    other = _user("second.admin", "admin")
    await store.create_user(other)
    results = await asyncio.gather(
        store.set_user_role(sole, "doctor"), store.set_user_role(other.id, "doctor")
    )
    assert sorted(results) == [False, True]
    roles = [u.role for u in await store.list_users() if not u.disabled]
    assert roles.count("admin") == 1


async def test_two_admins_demoting_each_other_leave_one_admin(
    app: web.Application, accounts: Accounts, admin: Staff
) -> None:
    await accounts.create("second.admin", role="admin")
    second = await accounts.sign_in("second.admin")
    first_resp, second_resp = await asyncio.gather(
        admin.post(f"/api/users/{second.user['id']}/role", json={"role": "doctor"}),
        second.post(f"/api/users/{admin.user['id']}/role", json={"role": "doctor"}),
    )
    # Exactly one wins. The other request meets the race at one of three points, each with
    # its own answer: its session had already ended (401), its account was a doctor already
    # while its sessions were still being ended (403), or it passed the admin check too and
    # the store kept the last enabled admin (409).
    first_won = first_resp.status == 200
    winner, loser = (admin, second) if first_won else (second, admin)
    lost = second_resp if first_won else first_resp
    assert (first_resp.status == 200) != (second_resp.status == 200)
    legitimate = {401: "not_authenticated", 403: "forbidden", 409: "last_admin"}
    error = (await lost.json())["error"]
    assert (lost.status, error["code"]) in legitimate.items(), (lost.status, error)
    # The invariant: one enabled admin, the winner; the loser is a doctor signed out.
    users = {u.id: u for u in await app[SERVICES].store.list_users()}
    assert [u.id for u in users.values() if u.role == "admin" and not u.disabled] == [
        winner.user["id"]
    ]
    assert users[loser.user["id"]].role == "doctor"
    assert (await loser.client.get("/api/me")).status == 401
    assert len(await role_entries(app)) == 1
