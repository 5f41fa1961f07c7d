"""The clinic's details on every store: an admin saves them (POST /api/clinic), the patient's
pages read them (GET /api/clinic, public), doctors and assistants are refused, each field is
checked with a clear error naming it, the change is audited, and the store export carries it."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from config import ClinicSettings, Settings
from signaling.app import create_app
from signaling.clock import ManualClock
from signaling.keys import SERVICES
from signaling.store.base import AuditFilter
from tests.conftest import Accounts, Staff
from tests.postgres_cluster import PostgresCluster
from tests.test_store_transfer import move_by_commands

pytestmark = pytest.mark.both_stores

TOML_CLINIC = ClinicSettings(name="Cabinet Dupont", phone="01 23 45 67 89")
EDITED = {
    "name": "Maison de santé des Lilas",
    "phone": "+33 1 98 76 54 32",
    "hours": "Lun–ven 8h–19h, sam 9h–12h",
    "emergency_fr": "En cas d'urgence, appelez le 15 (SAMU) ou le 112.",
    "emergency_en": "In an emergency, call 15 (SAMU) or 112.",
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(clinic=TOML_CLINIC).validate()


async def clinic_now(client: TestClient[Any, Any]) -> dict[str, str]:
    resp = await client.get("/api/clinic")  # no session: the patient's page reads it
    assert resp.status == 200, await resp.text()
    assert resp.headers["Cache-Control"] == "no-store"
    return await resp.json()  # type: ignore[no-any-return]


async def test_the_settings_are_the_default_until_an_admin_saves_the_details(
    client: TestClient[Any, Any], admin: Staff, app: web.Application
) -> None:
    assert await clinic_now(client) == {
        "name": "Cabinet Dupont",
        "phone": "01 23 45 67 89",
        "hours": "",
        "emergency_fr": "En cas d'urgence, appelez le 15 ou le 112.",
        "emergency_en": "In an emergency, call 15 or 112.",
    }
    resp = await admin.post("/api/clinic", json={**EDITED, "name": "  " + EDITED["name"] + " "})
    assert resp.status == 200, await resp.text()
    assert await resp.json() == EDITED  # spaces around a value dropped
    assert await clinic_now(client) == EDITED

    [entry] = await app[SERVICES].store.list_audit(AuditFilter(action="clinic.updated"))
    assert (entry.actor, entry.actor_role, entry.target) == (admin.user["id"], "admin", "clinic")
    details = json.loads(entry.details)
    assert details["fields"] == list(EDITED)
    assert details["old"]["phone"] == "01 23 45 67 89"
    assert details["new"]["phone"] == "+33 1 98 76 54 32"

    # One field changed: the entry names it alone; the same again writes nothing.
    for _ in range(2):
        resp = await admin.post("/api/clinic", json={**EDITED, "hours": ""})
        assert resp.status == 200, await resp.text()
    entries = await app[SERVICES].store.list_audit(AuditFilter(action="clinic.updated"))
    assert len(entries) == 2
    assert json.loads(entries[-1].details) == {
        "fields": ["hours"],
        "old": {"hours": EDITED["hours"]},
        "new": {"hours": ""},
    }
    assert (await clinic_now(client))["hours"] == ""


@pytest.mark.parametrize("role", ["doctor", "assistant"])
async def test_only_an_admin_saves_the_details(
    client: TestClient[Any, Any], accounts: Accounts, app: web.Application, role: str
) -> None:
    await accounts.create("someone", role=role)  # type: ignore[arg-type]
    staff = await accounts.sign_in("someone")
    before = await clinic_now(client)
    resp = await staff.post("/api/clinic", json=EDITED)
    assert resp.status == 403, await resp.text()
    assert (await resp.json())["error"]["code"] == "forbidden"
    assert await clinic_now(client) == before
    store = app[SERVICES].store
    assert await store.list_audit(AuditFilter(action="clinic.updated")) == []


async def test_a_save_without_the_csrf_token_or_a_session_is_refused(
    client: TestClient[Any, Any], admin: Staff
) -> None:
    resp = await admin.client.post("/api/clinic", json=EDITED)
    assert (await resp.json())["error"]["code"] == "csrf_failed"
    resp = await client.post("/api/clinic", json=EDITED)
    assert resp.status == 401
    assert (await clinic_now(client))["name"] == "Cabinet Dupont"


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("name", "", "may not be empty"),
        ("name", "x" * 121, "at most 120 characters"),
        ("name", "Cabinet\nDupont", "without control characters"),
        ("hours", "Lun\u202even", "without control characters"),
        ("phone", "appelez-nous", "a phone number"),
        ("phone", "1", "a phone number"),
        ("phone", "+33 1 23 45 67 89 00 11 22 33 44 55", "a phone number"),
        ("emergency_fr", "   ", "may not be empty"),
        ("emergency_en", "y" * 201, "at most 200 characters"),
    ],
)
async def test_a_refused_field_is_named_and_nothing_is_saved(
    client: TestClient[Any, Any], admin: Staff, field: str, value: str, expected: str
) -> None:
    resp = await admin.post("/api/clinic", json={**EDITED, field: value})
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["code"] == "invalid_body"
    assert error["details"] == {"field": field}
    assert error["message"].startswith(f"{field}: expected ")
    assert expected in error["message"]
    assert (await clinic_now(client))["name"] == "Cabinet Dupont"


async def test_a_missing_or_unknown_field_is_refused(
    client: TestClient[Any, Any], admin: Staff
) -> None:
    missing = {k: v for k, v in EDITED.items() if k != "hours"}
    for body in (missing, {**EDITED, "email": "x@y.example"}):
        resp = await admin.post("/api/clinic", json=body)
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == "invalid_body"


async def test_the_store_export_carries_the_details_to_another_store(
    settings: Settings,
    admin: Staff,
    clock: ManualClock,
    postgres_cluster: PostgresCluster,
    aiohttp_client: Callable[[web.Application], Awaitable[TestClient[Any, Any]]],
) -> None:
    resp = await admin.post("/api/clinic", json=EDITED)
    assert resp.status == 200, await resp.text()
    moved = move_by_commands(settings, postgres_cluster)
    patient = await aiohttp_client(create_app(moved, clock=clock))
    assert await clinic_now(patient) == EDITED
