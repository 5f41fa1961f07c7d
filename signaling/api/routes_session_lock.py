"""The staff session's idle lock, as the pages see it: its state (so a dashboard warns a
minute before it locks and knows when it did) and the unlock with password and code.

While locked, every other staff endpoint answers ``session_locked`` except the sign-out and
the waiting-room stream, which then carries the count of waiting patients and no name
(signaling/api/routes_live.py)."""

from __future__ import annotations

from aiohttp import web

from signaling.accounts.session_lock import unlock_session
from signaling.api.api_types import MeResponse, SessionState, UnlockRequest
from signaling.api.http_api import (
    LOCKED_KEY,
    SESSION_KEY,
    USER_KEY,
    ApiRegistry,
    audit_request,
    client_address,
    json_response,
)
from signaling.api.routes_auth import me_response
from signaling.errors import ErrorCode
from signaling.keys import SERVICES

routes = ApiRegistry()
# What proving oneself again with password and code may answer (Accounts.reauthenticate):
# the unlock here, a password change (routes_me.py).
REAUTHENTICATION_ERRORS: tuple[ErrorCode, ...] = (
    "wrong_password",
    "invalid_totp",
    "totp_reused",
    "enrolment_required",
    "mfa_unreadable",
    "account_locked",
    "address_locked",
    "passkey_required",
)


@routes.route(
    "GET",
    "/api/auth/session",
    summary="Whether this staff session is locked, and when it locks or ends (does not "
    "extend the session)",
    auth="staff_quiet",
    response=SessionState,
    tag="auth",
    while_locked=True,
    description=(
        "Answers also while the session is locked by inactivity. `locks_in_seconds` counts "
        "from the last request that kept the session alive (any request but this one, "
        "`GET /api/waiting` and its stream): a page warns before it and checks again, since "
        "another tab may have kept the session alive meanwhile."
    ),
)
async def session_state(request: web.Request) -> web.Response:
    accounts = request.app[SERVICES].accounts
    session = request[SESSION_KEY]
    now = accounts.clock.now()
    return json_response(
        SessionState(
            locked=request[LOCKED_KEY],
            idle_seconds=accounts.settings.session_idle_minutes * 60,
            locks_in_seconds=max(accounts.locks_at(session) - now, 0.0),
            ends_in_seconds=max(session.expires_at - now, 0.0),
        )
    )


@routes.route(
    "POST",
    "/api/auth/unlock",
    summary="Unlock a session locked by inactivity with the password and a fresh TOTP code",
    auth="staff",
    body=UnlockRequest,
    response=MeResponse,
    errors=REAUTHENTICATION_ERRORS,
    tag="auth",
    while_locked=True,
    description=(
        "After `security.session_idle_minutes` without a request a staff session is locked, "
        "not ended: every staff endpoint but this one, `POST /api/auth/logout`, "
        "`GET /api/auth/session` and `GET /api/waiting/events` (the waiting count, no names) "
        "answers `session_locked` (401). The same session's cookie and `X-CSRF-Token` with the "
        "account's password and a code not used before unlock it: the idle timer starts "
        "again, the answer is `GET /api/me`'s. A wrong password (`wrong_password`) or code "
        "counts toward `account_locked` / `address_locked` as at sign-in. On a session that "
        "is not locked it only checks and keeps it alive. After "
        "`security.session_absolute_hours` the session ends, locked or not "
        "(`not_authenticated`)."
    ),
)
async def unlock(request: web.Request, body: UnlockRequest) -> web.Response:
    user = request[USER_KEY]
    session = await unlock_session(
        request.app[SERVICES].accounts,
        request[SESSION_KEY],
        user,
        body.password,
        body.code,
        client_address(request),
    )
    await audit_request(request, "session.unlocked", target=user.id)
    return json_response(await me_response(request.app[SERVICES], user, session))
