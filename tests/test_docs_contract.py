"""The documents a client is written from say what the server does.

docs/protocol.md's error table and the OpenAPI document's error codes are both generated from
the one registry (signaling/errors.py); every error the middleware can answer is declared on
the operations it can answer it for; every `next` of the sign-in and every setting the docs
name exists in the code.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args, get_type_hints

import pyotp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from config import Settings
from signaling.api import audit_docs
from signaling.api.api_types import LoginResponse
from signaling.api.error_docs import (
    BEGIN,
    END,
    JOIN_REFUSED,
    PROTOCOL_DOC,
    websocket_kinds,
    websocket_table,
)
from signaling.api.http_api import CSRF_HEADER, UNSAFE_METHODS, Endpoint
from signaling.app import all_routes
from signaling.audit.trail import AUDITED_ACTIONS
from signaling.errors import KINDS
from signaling.keys import SERVICES
from tests.conftest import ORIGIN, PASSWORD, Accounts, Staff

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
FILE_SUFFIXES = {"py", "md", "js", "json", "toml", "html", "conf", "service", "sh"}
SESSION_AUTHS = ("staff", "staff_quiet", "admin", "patient", "staff_or_patient")


@pytest.fixture
async def openapi(client: TestClient[Any, Any]) -> dict[str, Any]:
    resp = await client.get("/api/openapi.json")
    assert resp.status == 200
    doc: dict[str, Any] = await resp.json()
    return doc


def operation(doc: dict[str, Any], endpoint: Endpoint) -> dict[str, Any]:
    op: dict[str, Any] = doc["paths"][endpoint.path][endpoint.method.lower()]
    return op


def documented(op: dict[str, Any]) -> dict[str, int]:
    """Error code -> status, as the operation's responses list them (one example per code)."""
    codes: dict[str, int] = {}
    for status, response in op["responses"].items():
        examples = response.get("content", {}).get("application/json", {}).get("examples", {})
        for code, example in examples.items():
            assert example["value"]["error"]["code"] == code
            codes[code] = int(status)
    return codes


def concrete(path: str) -> str:
    return re.sub(r"{\w+}", "x", path)


async def assert_documented(doc: dict[str, Any], endpoint: Endpoint, resp: Any) -> str | None:
    """An error answer's code is declared on the operation with the status it came with."""
    if resp.status < 400:
        return None
    body = await resp.json()
    code: str = body["error"]["code"]
    declared = documented(operation(doc, endpoint))
    where = f"{endpoint.method} {endpoint.path}"
    assert code in declared, f"{where} answered {code!r}, which its operation does not declare"
    assert declared[code] == resp.status, where
    return code


# -- the WebSocket error table


def committed_table() -> str:
    text = PROTOCOL_DOC.read_text()
    assert BEGIN in text and END in text, f"{PROTOCOL_DOC} lacks the {BEGIN} / {END} markers"
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n")


def test_protocol_error_table_is_the_generated_one() -> None:
    assert committed_table() == websocket_table().strip("\n"), (
        "docs/protocol.md's error table differs from signaling/errors.py: "
        "run `python -m signaling.api.error_docs` and commit the result"
    )


def test_protocol_error_table_lists_every_websocket_error_with_its_close() -> None:
    rows = {
        m.group(1): m.group(2).strip()
        for m in re.finditer(r"^\| `(\w+)` \| ([^|]+) \|", committed_table(), re.M)
    }
    on_socket = {kind.code for kind in websocket_kinds()}
    for code, kind in KINDS.items():
        if code not in on_socket:
            assert code not in rows, f"{code} is never sent on a WebSocket"
            continue
        assert code in rows, code
        if kind.websocket is not None and kind.websocket.phase == "handshake":
            assert rows[code] == f"HTTP {kind.http_status}", code
        elif kind.close_code is not None:
            assert rows[code] == str(kind.close_code), code
        else:
            assert "socket kept" in rows[code], code


def test_a_join_refused_without_a_close_code_of_its_own_closes_as_documented() -> None:
    from signaling.live.connection import CLOSE_PROTOCOL_ERROR

    assert JOIN_REFUSED == CLOSE_PROTOCOL_ERROR


def test_the_generator_rewrites_only_the_table(tmp_path: Path) -> None:
    doc = tmp_path / "protocol.md"
    doc.write_text(f"before\n\n{BEGIN}\nstale\n{END}\n\nafter\n")
    check = [sys.executable, "-m", "signaling.api.error_docs", "--check", str(doc)]
    assert subprocess.run(check, cwd=ROOT, capture_output=True).returncode == 1
    subprocess.run(
        [sys.executable, "-m", "signaling.api.error_docs", str(doc)], cwd=ROOT, check=True
    )
    text = doc.read_text()
    assert text.startswith("before\n\n") and text.endswith("\n\nafter\n")
    assert "stale" not in text and websocket_table().strip("\n") in text
    assert subprocess.run(check, cwd=ROOT, capture_output=True).returncode == 0


# -- the audit actions' table


def test_architecture_audit_actions_table_is_the_generated_one() -> None:
    text = audit_docs.ARCHITECTURE_DOC.read_text()
    assert audit_docs.BEGIN in text and audit_docs.END in text
    committed = text.split(audit_docs.BEGIN, 1)[1].split(audit_docs.END, 1)[0]
    assert committed.strip("\n") == audit_docs.actions_table().strip("\n"), (
        "docs/architecture.md's audit actions differ from signaling/audit_actions.py: "
        "run `python -m signaling.api.audit_docs` and commit the result"
    )
    listed = re.findall(r"^\| `([a-z_.]+)` \|", committed, re.M)
    assert listed == list(AUDITED_ACTIONS)


def test_the_audit_actions_generator_rewrites_only_its_table(tmp_path: Path) -> None:
    doc = tmp_path / "architecture.md"
    # The error table's markers are left alone: each generator has its own.
    doc.write_text(
        f"before\n{BEGIN}\nx\n{END}\n{audit_docs.BEGIN}\nstale\n{audit_docs.END}\nafter\n"
    )
    check = [sys.executable, "-m", "signaling.api.audit_docs", "--check", str(doc)]
    assert subprocess.run(check, cwd=ROOT, capture_output=True).returncode == 1
    subprocess.run(
        [sys.executable, "-m", "signaling.api.audit_docs", str(doc)], cwd=ROOT, check=True
    )
    text = doc.read_text()
    assert text.startswith(f"before\n{BEGIN}\nx\n{END}\n") and text.endswith("\nafter\n")
    assert "stale" not in text and audit_docs.actions_table() in text
    assert subprocess.run(check, cwd=ROOT, capture_output=True).returncode == 0


def test_every_error_code_is_documented_where_a_client_meets_it(
    openapi: dict[str, Any],
) -> None:
    over_http = {code for e in all_routes().endpoints for code in documented(operation(openapi, e))}
    # Answers to requests that match no operation are described once, for the whole API.
    over_http |= {c for c in KINDS if f"`{c}`" in openapi["info"]["description"]}
    on_socket = {kind.code for kind in websocket_kinds()}
    unreachable = [c for c in KINDS if c not in over_http | on_socket]
    assert not unreachable, (
        f"{unreachable}: declared in signaling/errors.py but answered by no operation and "
        "not marked as sent on the WebSocket (websocket=Ws(...))"
    )


# -- the OpenAPI document's errors


async def test_openapi_error_codes_are_the_registry(openapi: dict[str, Any]) -> None:
    assert openapi["x-error-codes"] == {
        code: {"status": kind.http_status, "message": kind.message} for code, kind in KINDS.items()
    }
    for endpoint in all_routes().endpoints:
        for status, response in operation(openapi, endpoint)["responses"].items():
            examples = response.get("content", {}).get("application/json", {}).get("examples", {})
            for code, example in examples.items():
                assert int(status) == KINDS[code].http_status
                assert example["value"]["error"]["message"] == KINDS[code].message


async def test_cross_origin_state_changes_answer_origin_refused_as_documented(
    client: TestClient[Any, Any], openapi: dict[str, Any]
) -> None:
    for endpoint in all_routes().endpoints:
        if endpoint.method not in UNSAFE_METHODS:
            continue
        resp = await client.request(
            endpoint.method, concrete(endpoint.path), headers={"Origin": "https://evil.example"}
        )
        assert await assert_documented(openapi, endpoint, resp) == "origin_refused"
        assert (await resp.json())["error"]["message"] == KINDS["origin_refused"].message
    # A client that sends no Origin at all (not a browser) is not refused for it.
    resp = await client.post("/api/auth/login", json={"username": "nobody", "password": "x"})
    assert (await resp.json())["error"]["code"] == "invalid_credentials"
    resp = await client.post(
        "/api/auth/login",
        json={"username": "nobody", "password": "x"},
        headers={"Origin": ORIGIN},
    )
    assert (await resp.json())["error"]["code"] == "invalid_credentials"


async def test_only_state_changes_with_a_session_need_the_csrf_token(
    admin: Staff, openapi: dict[str, Any]
) -> None:
    for endpoint in all_routes().endpoints:
        op = operation(openapi, endpoint)
        needs = endpoint.method in UNSAFE_METHODS and endpoint.auth in SESSION_AUTHS
        in_security = any("csrf" in option for option in op.get("security", []))
        assert in_security == needs, f"{endpoint.method} {endpoint.path}"
        assert ("csrf_failed" in documented(op)) == needs, f"{endpoint.method} {endpoint.path}"
        if endpoint.path == "/api/waiting/events":
            continue  # an event stream: answered 403 for an admin, but checked below anyway
        # Signed in, same origin, no CSRF header: a GET is never refused for it.
        resp = await admin.client.request(endpoint.method, concrete(endpoint.path))
        code = await assert_documented(openapi, endpoint, resp)
        assert (code == "csrf_failed") == (needs and endpoint.auth != "patient"), endpoint.path
    resp = await admin.client.get("/api/waiting/events")
    assert (await resp.json())["error"]["code"] == "forbidden"
    # Where the token comes from: every answer that carries one is named in the document.
    description = openapi["info"]["description"]
    assert CSRF_HEADER in description
    for source in (
        "POST /api/auth/totp",
        "GET /api/me",
        "POST /api/invites/redeem",
        "GET /api/patient/session",
    ):
        assert f"`{source}`" in description, source


async def test_requests_the_middleware_refuses_answer_documented_errors(
    client: TestClient[Any, Any], admin: Staff, openapi: dict[str, Any]
) -> None:
    limit = client.app[SERVICES].settings.server.max_body_bytes
    for endpoint in all_routes().endpoints:
        path = concrete(endpoint.path)
        if endpoint.path == "/api/waiting/events":
            continue
        # Not signed in.
        resp = await client.request(endpoint.method, path)
        await assert_documented(openapi, endpoint, resp)
        if endpoint.body is None and endpoint.query is None:
            continue
        headers = {CSRF_HEADER: admin.csrf, "Content-Type": "application/json"}
        if endpoint.body is not None:
            resp = await admin.client.request(
                endpoint.method, path, data=b"{" + b" " * limit + b"}", headers=headers
            )
            assert await assert_documented(openapi, endpoint, resp) == "payload_too_large"
            resp = await admin.client.request(endpoint.method, path, data=b"{", headers=headers)
            assert await assert_documented(openapi, endpoint, resp) == "invalid_body"
        else:
            resp = await admin.client.request(endpoint.method, path, params={"limit": "many"})
            assert await assert_documented(openapi, endpoint, resp) == "invalid_body"


async def test_a_store_outage_answers_documented_errors(
    client: TestClient[Any, Any], admin: Staff, openapi: dict[str, Any]
) -> None:
    store = client.app[SERVICES].store
    await store.close()
    try:
        for endpoint in all_routes().endpoints:
            if endpoint.path == "/api/waiting/events":
                continue
            resp = await admin.client.request(
                endpoint.method, concrete(endpoint.path), json={}, headers={CSRF_HEADER: "x"}
            )
            await assert_documented(openapi, endpoint, resp)
    finally:
        await store.open()  # let the fixture close it cleanly


async def test_invite_fields_take_the_token_after_join(
    openapi: dict[str, Any], doctor: Staff, client: TestClient[Any, Any]
) -> None:
    schemas = openapi["components"]["schemas"]
    for name in ("InviteInspectRequest", "RedeemRequest"):
        invite = schemas[name]["properties"]["invite"]
        assert "/join/" in invite["description"] and "not the whole link" in invite["description"]
        assert invite["maxLength"] == 512
    assert "/join/" in schemas["InviteResponse"]["properties"]["invite_url"]["description"]
    # What the description says, the server does: the segment works, the whole link does not.
    created = await doctor.post(
        "/api/consultations",
        json={"patient_name": "Alice", "scheduled_start": "2027-01-15T09:00:00Z"},
    )
    link = (await created.json())["invite_url"]
    token = link.rsplit("/join/", 1)[1]
    resp = await client.post("/api/invites/inspect", json={"invite": link})
    assert (await resp.json())["error"]["code"] == "invite_invalid"
    resp = await client.post("/api/invites/inspect", json={"invite": token})
    assert resp.status == 200, await resp.text()


# -- sign-in and settings named in the docs


def next_values() -> set[str]:
    return set(get_args(get_type_hints(LoginResponse)["next"]))


def sign_in_section(readme: str) -> str:
    match = re.search(r"^## Signing in\n.*?(?=^## )", readme, re.M | re.S)
    assert match, "README.md has no '## Signing in' section"
    return match.group(0)


async def test_every_next_of_the_sign_in_is_documented(
    openapi: dict[str, Any], accounts: Accounts
) -> None:
    values = next_values()
    section = sign_in_section(README.read_text())
    login = openapi["paths"]["/api/auth/login"]["post"]["description"]
    setup = openapi["paths"]["/api/setup"]["post"]["description"]
    for value in values:
        assert f'`"{value}"`' in section, value
        assert f'`"{value}"`' in login, value
    mentioned = set(re.findall(r'next[`"]?:? ?`?"(\w+)"', section + login + setup))
    assert mentioned <= values, mentioned - values
    # And the code answers them as described: an account made as `run.py add-user` makes it
    # enrols, and the key printed then signs in without asking for a new one.
    services = accounts.app[SERVICES]
    user = await services.accounts.create_user("dr.cli", PASSWORD, "doctor", "")
    printed = await services.accounts.start_enrolment(user)
    session = accounts.new_session()
    resp = await session.post("/api/auth/login", json={"username": "dr.cli", "password": PASSWORD})
    assert (await resp.json())["next"] == "enrol"
    enrolment = await (await session.post("/api/auth/enrol")).json()
    assert enrolment["secret"] == printed.secret
    code = accounts.next_code(pyotp.TOTP(printed.secret))
    resp = await session.post("/api/auth/totp", json={"code": code})
    assert resp.status == 200 and "csrf_token" in await resp.json()
    resp = await session.post("/api/auth/login", json={"username": "dr.cli", "password": PASSWORD})
    assert (await resp.json())["next"] == "totp"


def settings_fields() -> dict[str, set[str]]:
    defaults = Settings()
    return {
        section.name: {f.name for f in dataclasses.fields(getattr(defaults, section.name))}
        for section in dataclasses.fields(defaults)
    }


def named_settings(text: str) -> set[str]:
    """`section.key` names in prose and keys of ```toml blocks, minus audit actions and
    module names that share a section's name (`signaling.token_refused`, `signaling.errors`)."""
    sections = settings_fields()
    # Not a host name (turn.clinic.example) nor a file (/etc/teleconsult/turn.key).
    pattern = re.compile(rf"(?<![\w./:-])({'|'.join(sections)})\.([a-z][a-z0-9_]*)\b(?![.\w/-])")
    names = set()
    for section, key in pattern.findall(text):
        name = f"{section}.{key}"
        if (
            key in FILE_SUFFIXES
            or name in AUDITED_ACTIONS
            or (ROOT / section / f"{key}.py").exists()
        ):
            continue
        names.add(name)
    for block in re.findall(r"```toml\n(.*?)```", text, re.S):
        section = ""
        for line in block.splitlines():
            header = re.match(r"\[(\w+)\]", line)
            if header:
                section = header.group(1)
            key = re.match(r"(\w+)\s*=", line)
            if key:
                names.add(f"{section}.{key.group(1)}")
    return names


@pytest.mark.parametrize("doc", ["README.md", "docs/protocol.md", "docs/deploy.md"])
def test_every_setting_the_docs_name_exists(doc: str) -> None:
    sections = settings_fields()
    names = named_settings((ROOT / doc).read_text())
    assert names, doc
    missing = sorted(
        name for name in names if name.split(".")[1] not in sections.get(name.split(".")[0], ())
    )
    assert not missing, f"{doc} names settings that config/settings.py lacks: {missing}"


def test_the_settings_check_sees_a_setting_that_does_not_exist() -> None:
    assert "server.origin" in named_settings("The origin (`server.origin`) must match.")
    assert not named_settings("stun:turn.clinic.example, /etc/teleconsult/turn.key, server.py")
    assert "server.origin" not in {
        f"server.{f}" for f in settings_fields()["server"]
    }  # a property of ServerSettings, not a setting anyone can write


def test_the_middleware_rules_are_those_of_the_app(app: web.Application) -> None:
    # The origin the checks compare with is the one documented: public_url's scheme://host.
    settings = app[SERVICES].settings
    assert settings.server.origin == ORIGIN
    other = dataclasses.replace(
        settings.server, public_url="https://visio.clinic.example/some/path"
    )
    assert other.origin == "https://visio.clinic.example"
