"""Declared API endpoints: one registry feeds both the router and the OpenAPI document.

Each endpoint names its body type (decoded and validated by msgspec before the handler runs),
its response type, who may call it and which documented errors it may answer.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
from aiohttp import web

from signaling.accounts.passkey_policy import ENROLMENT_PATHS, passkey_policy
from signaling.audit.access_audit import AccessRefused
from signaling.audit_actions import AuditAction
from signaling.errors import AppError, ErrorCode
from signaling.keys import SERVICES
from signaling.models import AuditEntry, Session, User

# "staff_quiet": a staff session that the request does not keep alive (background polling).
Auth = Literal["none", "pending", "staff", "staff_quiet", "admin", "patient", "staff_or_patient"]
Handler = Callable[..., Awaitable[web.StreamResponse]]

SESSION_COOKIE = "tc_session"
PENDING_COOKIE = "tc_pending"
PATIENT_COOKIE = "tc_patient"
CSRF_HEADER = "X-CSRF-Token"

SESSION_KEY = web.RequestKey("session", Session)
USER_KEY = web.RequestKey("user", User)
# Whether the staff session of a `while_locked` endpoint's request is locked.
LOCKED_KEY = web.RequestKey("session_locked", bool)
STAFF_AUTHS: frozenset[Auth] = frozenset({"staff", "staff_quiet", "admin", "staff_or_patient"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    auth: Auth
    body: type[Any] | None
    response: type[Any] | None
    status: int
    # What the handler itself may raise; endpoint_errors adds what the app answers around it
    # (and alone decides the codes in _RULED_CODES, whatever this says).
    errors: tuple[ErrorCode, ...]
    tag: str
    # msgspec Struct describing the query string (filters only: never a secret).
    query: type[Any] | None = None
    # Media type of a non-JSON success answer (exports), for the OpenAPI document.
    produces: str | None = None
    # Longer text for the OpenAPI document (Markdown): what to do next, states, limits.
    description: str = ""
    # Reads or writes the store, so a store outage answers `unavailable` (503).
    store: bool = True
    # Served to a staff session locked by inactivity too (unlock, sign-out, the waiting
    # count); every other staff endpoint answers `session_locked` (LOCKED_KEY says which).
    while_locked: bool = False


# Who holds a session cookie (and so a CSRF token) for an endpoint's auth.
SESSION_AUTHS: frozenset[Auth] = frozenset(
    {"staff", "staff_quiet", "admin", "patient", "staff_or_patient"}
)
# Codes the rules of endpoint_errors alone decide: a route's own list cannot add them where
# they cannot happen (csrf_failed on a GET) nor leave them out where they can.
_RULED_CODES: frozenset[ErrorCode] = frozenset(
    {
        "origin_refused",
        "not_authenticated",
        "csrf_failed",
        "session_locked",
        "payload_too_large",
        "bad_request",
        "internal_error",
    }
)


def needs_csrf(endpoint: Endpoint) -> bool:
    """Only state changes made with a session carry the session's CSRF token (_authenticate)."""
    return endpoint.method in UNSAFE_METHODS and endpoint.auth in SESSION_AUTHS


def endpoint_errors(endpoint: Endpoint) -> tuple[ErrorCode, ...]:
    """Every error code ``endpoint`` can answer: its own, then those the app answers around
    its handler (origin_middleware, _authenticate, body and query decoding, the store,
    error_middleware). The OpenAPI document lists exactly these, so keep them with the code
    that answers them."""
    codes = [code for code in endpoint.errors if code not in _RULED_CODES]
    if endpoint.method in UNSAFE_METHODS:
        codes.append("origin_refused")
    if endpoint.auth in SESSION_AUTHS:
        codes.append("not_authenticated")
    if endpoint.auth in STAFF_AUTHS and not endpoint.while_locked:
        codes.append("session_locked")
    if endpoint.auth in STAFF_AUTHS and endpoint.path not in ENROLMENT_PATHS:
        codes.append("passkey_enrolment_required")
    if endpoint.auth == "admin":
        codes.append("forbidden")
    if needs_csrf(endpoint):
        codes.append("csrf_failed")
    if endpoint.auth == "pending":
        codes.append("login_expired")
    if endpoint.body is not None:
        codes += ["payload_too_large", "invalid_body"]
    if endpoint.query is not None:
        codes.append("invalid_body")
    if endpoint.store:
        codes.append("unavailable")
    # Any request may be refused by the HTTP parser (signaling/api/edge.py) or meet a bug.
    codes += ["bad_request", "internal_error"]
    return tuple(dict.fromkeys(codes))


@dataclass
class ApiRegistry:
    endpoints: list[Endpoint] = field(default_factory=list)

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        auth: Auth = "none",
        body: type[Any] | None = None,
        response: type[Any] | None = None,
        status: int = 200,
        errors: tuple[ErrorCode, ...] = (),
        tag: str = "api",
        query: type[Any] | None = None,
        produces: str | None = None,
        description: str = "",
        store: bool = True,
        while_locked: bool = False,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.endpoints.append(
                Endpoint(
                    method,
                    path,
                    handler,
                    summary,
                    auth,
                    body,
                    response,
                    status,
                    errors,
                    tag,
                    query,
                    produces,
                    description,
                    store,
                    while_locked,
                )
            )
            return handler

        return register

    def install(self, app: web.Application) -> None:
        for endpoint in self.endpoints:
            app.router.add_route(endpoint.method, endpoint.path, _wrap(endpoint))


def json_response(value: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(value),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


async def decode_body(request: web.Request, body_type: type[Any]) -> Any:
    if request.content_type != "application/json":
        raise AppError("invalid_body", "Send the body as application/json.")
    raw = await request.read()  # aiohttp enforces client_max_size (413)
    try:
        return msgspec.json.decode(raw, type=body_type)
    except msgspec.ValidationError as exc:
        raise AppError("invalid_body", f"Invalid body: {exc}") from None
    except msgspec.DecodeError:
        raise AppError("invalid_body", "The body is not valid JSON.") from None


def decode_query(request: web.Request, query_type: type[Any]) -> Any:
    values = {key: request.query.getone(key) for key in request.query}
    try:
        return msgspec.convert(values, type=query_type, strict=False)
    except msgspec.ValidationError as exc:
        raise AppError("invalid_body", f"Invalid query: {exc}") from None


async def _authenticate(request: web.Request, endpoint: Endpoint) -> None:
    auth = endpoint.auth
    services = request.app[SERVICES]
    accounts = services.accounts
    session: Session | None = None
    if auth in STAFF_AUTHS:
        staff = await accounts.staff_session(
            request.cookies.get(SESSION_COOKIE), touch=auth != "staff_quiet"
        )
        if staff is not None:
            if staff.locked and not endpoint.while_locked:
                raise AppError("session_locked")
            session = staff.session
            request[LOCKED_KEY] = staff.locked
            user = await services.store.get_user(session.user_id or "")
            if user is None or user.disabled:
                raise AppError("not_authenticated")
            if auth == "admin" and user.role != "admin":
                raise AccessRefused("forbidden", user, "not_admin")
            if not user.passkeys and endpoint.path not in ENROLMENT_PATHS:
                policy = await passkey_policy(services.store, services.settings.security)
                if policy.binds(user.role):
                    # Bound to sign in with a passkey and without one yet: enrol it first.
                    raise AppError("passkey_enrolment_required")
            request[USER_KEY] = user
    if session is None and auth in ("patient", "staff_or_patient"):
        session = await accounts.session_for(request.cookies.get(PATIENT_COOKIE), "patient")
        if session is not None:
            # Ended by a re-issued invite or a cancellation: one clear answer, everywhere.
            await services.consultations.patient_consultation(
                session, client_address(request), endpoint.path
            )
    if session is None:
        raise AppError("not_authenticated")
    request[SESSION_KEY] = session
    if request.method in UNSAFE_METHODS:
        given = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(given.encode(), session.csrf_token.encode()):
            raise AppError("csrf_failed")


def _wrap(endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        if endpoint.auth not in ("none", "pending"):
            await _authenticate(request, endpoint)
        if endpoint.body is not None:
            body = await decode_body(request, endpoint.body)
            return await endpoint.handler(request, body)
        if endpoint.query is not None:
            return await endpoint.handler(request, decode_query(request, endpoint.query))
        return await endpoint.handler(request)

    handle.__name__ = endpoint.handler.__name__
    return _auditing_refusals(endpoint, handle)


# The ids of consultations, recordings and users are uuid4().hex: a refused id is recorded only
# when it has this shape, as the trail takes no text a client typed.
_ID_CHARACTERS = frozenset("0123456789abcdef")


def id_shaped(text: str) -> bool:
    return len(text) == 32 and set(text) <= _ID_CHARACTERS


def _auditing_refusals(
    endpoint: Endpoint, handle: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Every AccessRefused of this endpoint (its role check, an ownership check in the
    handler) lands in the audit trail, rate-limited (signaling/audit/access_audit.py)."""
    route = f"{endpoint.method} {endpoint.path}"

    async def audited(request: web.Request) -> web.StreamResponse:
        try:
            return await handle(request)
        except AccessRefused as refused:
            kind: str = refused.target_kind
            given = refused.target
            if not kind:
                # The role check: the record the path names, if it names one.
                for name, value in request.match_info.items():
                    if name.endswith("_id"):
                        kind, given = name.removesuffix("_id"), value
                        break
            await request.app[SERVICES].audit.refusals.refused(
                actor=refused.user.id,
                actor_role=refused.user.role,
                kind=kind,
                target=given if id_shaped(given) else "",
                route=route,
                address=client_address(request),
                reason=refused.reason,
            )
            raise

    audited.__name__ = handle.__name__
    return audited


async def audit_request(
    request: web.Request,
    action: AuditAction,
    *,
    by: User | None = None,
    actor_role: str | None = None,
    target: str = "",
    outcome: str = "success",
    **details: Any,
) -> AuditEntry:
    """Record ``action`` for this request, with its actor and address filled the one way the
    routes fill them: the actor is ``by``, else the signed-in staff member, else the patient
    (a patient session, or a patient redeeming a link); ``actor_role`` only where the role
    acted in is not the account's (a seat); the address is the client's (client_address)."""
    user = by if by is not None else request.get(USER_KEY)
    actor, role = (user.id, user.role) if user is not None else ("patient", "patient")
    return await request.app[SERVICES].audit.record(
        action,
        actor=actor,
        actor_role=actor_role if actor_role is not None else role,
        target=target,
        outcome=outcome,
        address=client_address(request),
        **details,
    )


def client_address(request: web.Request) -> str:
    trust = request.app[SERVICES].settings.server.trust_proxy_headers
    return address_of(request.headers, request.remote, trust)


def address_of(headers: Mapping[str, str], remote: str | None, trust_proxy: bool) -> str:
    """The client's address: the peer's, or behind a trusted proxy the one it vouches for."""
    if trust_proxy:
        forwarded = headers.get("X-Forwarded-For", "")
        if forwarded:
            # The proxy appends the peer it saw: the last hop is the one it vouches for.
            return forwarded.split(",")[-1].strip()[:64]
    return (remote or "unknown")[:64]
