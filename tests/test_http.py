"""HTTP behaviour shared by every endpoint: headers, errors, health, OpenAPI, first-run setup."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pyotp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from config import Settings
from signaling.app import all_routes, create_app
from signaling.clock import ManualClock
from signaling.errors import KINDS
from signaling.keys import SERVICES
from tests.conftest import PASSWORD, new_session, setup_link_token

pytestmark = pytest.mark.both_stores


async def test_security_headers_on_every_kind_of_response(client: TestClient[Any, Any]) -> None:
    for path in ("/healthz", "/api/me", "/api/nothing", "/static/app.css", "/"):
        resp = await client.get(path)
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp, path
        assert "frame-ancestors 'none'" in csp
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert "Strict-Transport-Security" not in resp.headers  # plain http here


async def test_hsts_and_secure_cookies_under_tls(
    settings: Settings, clock: ManualClock, aiohttp_client: Any
) -> None:
    import dataclasses

    tls = dataclasses.replace(
        settings,
        server=dataclasses.replace(settings.server, public_url="https://visio.clinic.example"),
    )
    client = await aiohttp_client(create_app(tls, clock=clock))
    resp = await client.get("/healthz")
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=")
    from signaling.keys import SERVICES

    await client.app[SERVICES].accounts.create_user("dr.tls", PASSWORD, "doctor")
    resp = await client.post(
        "/api/auth/login",
        json={"username": "dr.tls", "password": PASSWORD},
        headers={"Origin": "https://visio.clinic.example"},
    )
    assert resp.status == 200
    assert resp.cookies["tc_pending"]["secure"] is True


async def test_unknown_api_path_and_method_answer_json_errors(
    client: TestClient[Any, Any],
) -> None:
    resp = await client.get("/api/nothing-here")
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"
    resp = await client.delete("/api/auth/login")
    assert resp.status == 405
    assert (await resp.json())["error"]["code"] == "method_not_allowed"


async def test_body_must_be_json(client: TestClient[Any, Any]) -> None:
    resp = await client.post(
        "/api/auth/login",
        data="username=a&password=b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "invalid_body"
    resp = await client.post("/api/auth/login", json={"username": 5, "password": "x"})
    assert resp.status == 400
    assert "username" in (await resp.json())["error"]["message"]


async def test_health_and_readiness(client: TestClient[Any, Any]) -> None:
    assert (await (await client.get("/healthz")).json()) == {"status": "ok"}
    assert (await (await client.get("/readyz")).json()) == {"status": "ready"}


async def test_readiness_fails_when_the_store_is_gone(client: TestClient[Any, Any]) -> None:
    from signaling.keys import SERVICES

    store = client.app[SERVICES].store
    await store.close()
    resp = await client.get("/readyz")
    assert resp.status == 503
    assert (await resp.json())["error"]["code"] == "unavailable"
    assert (await client.get("/healthz")).status == 200
    await store.open()  # let the fixture close it cleanly


async def test_openapi_documents_every_api_route(client: TestClient[Any, Any]) -> None:
    doc = await (await client.get("/api/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    for endpoint in all_routes().endpoints:
        op = doc["paths"][endpoint.path][endpoint.method.lower()]
        assert op["summary"]
        assert str(endpoint.status) in op["responses"]
        if endpoint.body is not None:
            assert "requestBody" in op
    routes = {
        (r.method, r.resource.canonical)
        for r in client.app.router.routes()
        if r.resource is not None and r.resource.canonical.startswith("/api/")
    }
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert (
        routes
        - {("GET", "/api/openapi.json"), ("HEAD", "/api/openapi.json")}
        - {("HEAD", p) for _, p in documented}
        <= documented
    )
    assert set(doc["x-error-codes"]) == set(KINDS)


async def test_first_admin_is_created_through_the_setup_link(
    app: web.Application, client: TestClient[Any, Any], clock: ManualClock
) -> None:
    assert (await (await client.get("/api/setup")).json()) == {"needs_setup": True}
    token = await setup_link_token(app)
    resp = await client.post(
        "/api/setup", json={"setup_token": token, "username": "admin", "password": "short"}
    )
    assert (await resp.json())["error"]["code"] == "weak_password"
    resp = await client.post(
        "/api/setup", json={"setup_token": token, "username": "admin", "password": PASSWORD}
    )
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["next"] == "enrol"
    enrol = await (await client.post("/api/auth/enrol")).json()
    clock.advance(30)
    code = pyotp.TOTP(enrol["secret"]).at(clock.now())
    me = await (await client.post("/api/auth/totp", json={"code": code})).json()
    assert me["user"]["role"] == "admin"
    # The link works once: a second administrator cannot be made with it.
    other = new_session(client)
    try:
        resp = await other.post(
            "/api/setup", json={"setup_token": token, "username": "evil", "password": PASSWORD}
        )
        assert (await resp.json())["error"]["code"] == "setup_done"
    finally:
        await other.close()
    assert (await (await client.get("/api/setup")).json()) == {"needs_setup": False}


async def test_parallel_setups_with_one_link_create_exactly_one_admin(
    app: web.Application, client: TestClient[Any, Any]
) -> None:
    services = app[SERVICES]
    token = await setup_link_token(app)
    sessions = [new_session(client) for _ in range(8)]
    try:
        # Different usernames, so only the one-time link (not a duplicate name) can stop them;
        # password hashing runs in a thread, so the requests really overlap.
        responses = await asyncio.gather(
            *(
                s.post(
                    "/api/setup",
                    json={"setup_token": token, "username": f"admin{i}", "password": PASSWORD},
                )
                for i, s in enumerate(sessions)
            )
        )
        statuses = sorted(r.status for r in responses)
        codes = [
            (await r.json()).get("error", {}).get("code") for r in responses if r.status != 201
        ]
    finally:
        for s in sessions:
            await s.close()
    assert statuses == [201] + [409] * 7
    assert codes == ["setup_done"] * 7
    assert await services.store.count_users() == 1
    created = [e for e in await services.store.all_audit() if e.action == "user.created"]
    assert len(created) == 1
    assert await services.store.get_meta("setup_nonce") == "used"


async def test_setup_link_expires_after_thirty_minutes(
    app: web.Application, client: TestClient[Any, Any], clock: ManualClock
) -> None:
    token = await setup_link_token(app)
    clock.advance(31 * 60)
    resp = await client.post(
        "/api/setup", json={"setup_token": token, "username": "admin", "password": PASSWORD}
    )
    assert (await resp.json())["error"]["code"] == "setup_link_invalid"


async def test_only_the_latest_setup_link_works(
    app: web.Application, client: TestClient[Any, Any]
) -> None:
    first = await setup_link_token(app)
    await setup_link_token(app)  # a restart prints a new link
    resp = await client.post(
        "/api/setup", json={"setup_token": first, "username": "admin", "password": PASSWORD}
    )
    assert (await resp.json())["error"]["code"] == "setup_link_invalid"


async def test_invite_and_setup_tokens_never_reach_the_access_log(
    client: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    from signaling.api.middleware import RedactingAccessLogger

    logger = RedactingAccessLogger(logging.getLogger("teleconsult.access"), "")
    caplog.set_level(logging.INFO, "teleconsult.access")

    class FakeRequest:
        remote = "127.0.0.1"
        method = "GET"
        path = "/join/SECRET-TOKEN-VALUE"

    class FakeResponse:
        status = 200

    logger.log(FakeRequest(), FakeResponse(), 0.01)  # type: ignore[arg-type]
    FakeRequest.path = "/setup/SECRET-SETUP"
    logger.log(FakeRequest(), FakeResponse(), 0.01)  # type: ignore[arg-type]
    assert "SECRET" not in caplog.text
    assert "/join/<redacted>" in caplog.text and "/setup/<redacted>" in caplog.text
