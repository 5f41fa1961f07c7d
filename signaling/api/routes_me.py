"""What a signed-in staff member does on their own account: change their password."""

from __future__ import annotations

from aiohttp import web

from signaling.api.api_types import PasswordChanged, PasswordChangeRequest
from signaling.api.http_api import SESSION_KEY, USER_KEY, ApiRegistry, client_address, json_response
from signaling.api.routes_session_lock import REAUTHENTICATION_ERRORS
from signaling.keys import SERVICES

routes = ApiRegistry()


@routes.route(
    "POST",
    "/api/me/password",
    summary=(
        "Change one's own password, proven with the current password and a fresh TOTP code "
        "(single use, as at sign-in), or with a passkey (`credential`: what "
        "navigator.credentials.get() answered to POST /api/auth/reauth/options, user "
        "verification required). Wrong answers count toward the account lockout. This "
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
        "common_password",
        "password_unchanged",
        "passkey_refused",
        "passkey_unavailable",
        *REAUTHENTICATION_ERRORS,
    ),
    tag="auth",
)
async def change_password(request: web.Request, body: PasswordChangeRequest) -> web.Response:
    services = request.app[SERVICES]
    user, session, address = request[USER_KEY], request[SESSION_KEY], client_address(request)
    credential = body.credential
    proof = None
    if credential is not None:

        async def proof() -> object:
            return await services.passkeys.reauthenticate(
                user,
                session,
                credential,
                request.headers.get("Origin"),
                address,
                "user.password_changed",
            )

    ended = await services.accounts.change_password(
        user,
        session,
        body.current_password,
        body.new_password,
        body.code,
        address,
        passkey_proof=proof,
    )
    return json_response(PasswordChanged(sessions_ended=ended))
