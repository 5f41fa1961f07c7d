"""What a signed-in staff member does on their own account: change their password."""

from __future__ import annotations

from aiohttp import web

from signaling.api.api_types import PasswordChanged, PasswordChangeRequest
from signaling.api.http_api import SESSION_KEY, USER_KEY, ApiRegistry, client_address, json_response
from signaling.keys import SERVICES

routes = ApiRegistry()


@routes.route(
    "POST",
    "/api/me/password",
    summary=(
        "Change one's own password, proven with the current password and a fresh TOTP code "
        "(single use, as at sign-in). Wrong answers count toward the account lockout. This "
        "session stays signed in; every other session of the account ends."
    ),
    auth="staff",
    body=PasswordChangeRequest,
    response=PasswordChanged,
    errors=(
        "not_authenticated",
        "csrf_failed",
        "invalid_body",
        "weak_password",
        "password_unchanged",
        "wrong_password",
        "invalid_totp",
        "totp_reused",
        "enrolment_required",
        "mfa_unreadable",
        "account_locked",
        "address_locked",
    ),
    tag="auth",
)
async def change_password(request: web.Request, body: PasswordChangeRequest) -> web.Response:
    ended = await request.app[SERVICES].accounts.change_password(
        request[USER_KEY],
        request[SESSION_KEY],
        body.current_password,
        body.new_password,
        body.code,
        client_address(request),
    )
    return json_response(PasswordChanged(sessions_ended=ended))
