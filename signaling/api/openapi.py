"""The OpenAPI 3.1 document, generated from the endpoint registry and the msgspec types."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from signaling.api.api_types import ErrorBody
from signaling.api.http_api import (
    CSRF_HEADER,
    PATIENT_COOKIE,
    PENDING_COOKIE,
    SESSION_COOKIE,
    UNSAFE_METHODS,
    Endpoint,
    endpoint_errors,
    needs_csrf,
)
from signaling.errors import KINDS, ErrorCode

# The cookie each kind of caller holds (security schemes below).
_COOKIES: dict[str, list[str]] = {
    "pending": ["pendingLogin"],
    "staff": ["session"],
    "staff_quiet": ["session"],
    "admin": ["session"],
    "patient": ["patientSession"],
    "staff_or_patient": ["session", "patientSession"],
}


def _security(endpoint: Endpoint) -> list[dict[str, list[str]]] | None:
    cookies = _COOKIES.get(endpoint.auth)
    if cookies is None:
        return None
    extra = ["csrf"] if needs_csrf(endpoint) else []
    return [{name: [] for name in (cookie, *extra)} for cookie in cookies]


def _error_example(code: ErrorCode) -> dict[str, Any]:
    kind = KINDS[code]
    return {"summary": kind.message, "value": {"error": {"code": code, "message": kind.message}}}


def _description(endpoints: list[Endpoint]) -> str:
    """The rules every operation follows, derived from the endpoints where they can be."""
    unsafe = "/".join(sorted(UNSAFE_METHODS))
    token_sources = ", ".join(
        f"`{e.method} {e.path}`"
        for e in endpoints
        if e.response is not None and "csrf_token" in getattr(e.response, "__struct_fields__", ())
    )
    return (
        'Errors are answered as `{"error": {"code", "message"}}`. Every operation lists the '
        "codes it can answer under its error statuses, with the message the server sends as "
        "the example; x-error-codes holds every code with its status and message. A few "
        "answers replace the message with a more precise sentence (which body field is wrong, "
        "how many characters a password needs): act on `code`, show `message`. An unknown "
        "path under /api/ answers 404 `not_found`, a known path with another method 405 "
        "`method_not_allowed`.\n\n"
        f"**CSRF.** Only {unsafe} requests made with a session cookie (`{SESSION_COOKIE}` or "
        f"`{PATIENT_COOKIE}`) need the `{CSRF_HEADER}` header, holding the session's "
        f"`csrf_token`; without it or with another value they answer 403 `csrf_failed`. GET "
        "requests never need it. The token comes in the `csrf_token` field of "
        f"{token_sources}; it stays the same for the whole session. Sign-in steps "
        f"(`{PENDING_COOKIE}` cookie) and calls without a session need none.\n\n"
        f"**Origin.** A {unsafe} request whose `Origin` header is not exactly the service's "
        "origin answers 403 `origin_refused`, whatever its path and cookies. The service's "
        "origin is the scheme, host and port of the setting `server.public_url` (e.g. "
        "`https://visio.clinic.example`, no trailing slash, no default port), or, when it is "
        "empty, `http://` (`https://` with `server.tls_cert_file`) + `server.host` (`localhost` "
        "when it is 127.0.0.1, 0.0.0.0 or ::) + `:` + `server.port`, e.g. "
        "`http://localhost:8080`. Browsers send `Origin` by themselves; a request without it "
        "is not refused for that. The WebSocket `/ws` requires it (docs/protocol.md).\n\n"
        "Room tokens, invite tokens and setup tokens travel in bodies only, never in a URL."
    )


def build_openapi(endpoints: list[Endpoint], version: str) -> dict[str, Any]:
    types: list[Any] = [ErrorBody]
    for e in endpoints:
        types.extend(t for t in (e.body, e.response) if t is not None)
    schemas, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}"
    )
    by_type = dict(zip(types, schemas, strict=True))
    paths: dict[str, Any] = {}
    for e in endpoints:
        op: dict[str, Any] = {
            "summary": e.summary,
            "operationId": e.handler.__name__,
            "tags": [e.tag],
            "responses": {},
        }
        params = re.findall(r"{(\w+)}", e.path)
        parameters: list[dict[str, Any]] = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in params
        ]
        if e.query is not None:
            query_schema = msgspec.json.schema(e.query)
            fields = query_schema["$defs"][e.query.__name__]
            for name, field_schema in fields["properties"].items():
                parameters.append(
                    {
                        "name": name,
                        "in": "query",
                        "required": name in fields.get("required", []),
                        "schema": field_schema,
                    }
                )
        if parameters:
            op["parameters"] = parameters
        if e.description:
            op["description"] = e.description
        security = _security(e)
        if security is not None:
            op["security"] = security
        if e.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": by_type[e.body]}},
            }
        ok: dict[str, Any] = {"description": "Success"}
        if e.produces is not None:
            ok["content"] = {e.produces: {"schema": {"type": "string"}}}
        elif e.response is not None:
            ok["content"] = {"application/json": {"schema": by_type[e.response]}}
        op["responses"][str(e.status)] = ok
        by_status: dict[int, list[ErrorCode]] = {}
        for code in endpoint_errors(e):
            by_status.setdefault(KINDS[code].http_status, []).append(code)
        for status, names in sorted(by_status.items()):
            op["responses"][str(status)] = {
                "description": "Error: " + ", ".join(f"`{n}`" for n in names),
                "content": {
                    "application/json": {
                        "schema": by_type[ErrorBody],
                        "examples": {n: _error_example(n) for n in names},
                    }
                },
            }
        paths.setdefault(e.path, {})[e.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Teleconsultation API",
            "version": version,
            "description": _description(endpoints),
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE},
                "pendingLogin": {"type": "apiKey", "in": "cookie", "name": PENDING_COOKIE},
                "patientSession": {"type": "apiKey", "in": "cookie", "name": PATIENT_COOKIE},
                "csrf": {"type": "apiKey", "in": "header", "name": CSRF_HEADER},
            },
        },
        "x-error-codes": {
            code: {"status": k.http_status, "message": k.message} for code, k in KINDS.items()
        },
    }
