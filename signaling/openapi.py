"""The OpenAPI 3.1 document, generated from the endpoint registry and the msgspec types."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from signaling.api_types import ErrorBody
from signaling.errors import KINDS
from signaling.http_api import CSRF_HEADER, PATIENT_COOKIE, SESSION_COOKIE, Endpoint

_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "pending": [{"pendingLogin": []}],
    "staff": [{"session": [], "csrf": []}],
    "staff_quiet": [{"session": [], "csrf": []}],
    "admin": [{"session": [], "csrf": []}],
    "patient": [{"patientSession": [], "csrf": []}],
    "staff_or_patient": [{"session": [], "csrf": []}, {"patientSession": [], "csrf": []}],
}


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
        if e.auth in _SECURITY:
            op["security"] = _SECURITY[e.auth]
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
        codes = list(e.errors)
        if e.body is not None:
            codes += ["payload_too_large"]
        if e.body is not None or e.query is not None:
            codes += ["invalid_body"]
        codes.append("internal_error")
        by_status: dict[int, list[str]] = {}
        for code in dict.fromkeys(codes):
            by_status.setdefault(KINDS[code].http_status, []).append(code)
        for status, names in sorted(by_status.items()):
            op["responses"][str(status)] = {
                "description": "Error: " + ", ".join(f"`{n}`" for n in names),
                "content": {"application/json": {"schema": by_type[ErrorBody]}},
            }
        paths.setdefault(e.path, {})[e.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Teleconsultation API",
            "version": version,
            "description": (
                'Errors are answered as {"error": {"code", "message"}}; the codes are '
                "listed in x-error-codes. State-changing calls with a session need the "
                f"{CSRF_HEADER} header. Room tokens and invite tokens travel in bodies only."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE},
                "pendingLogin": {"type": "apiKey", "in": "cookie", "name": "tc_pending"},
                "patientSession": {"type": "apiKey", "in": "cookie", "name": PATIENT_COOKIE},
                "csrf": {"type": "apiKey", "in": "header", "name": CSRF_HEADER},
            },
        },
        "x-error-codes": {
            code: {"status": k.http_status, "message": k.message} for code, k in KINDS.items()
        },
    }
