"""The enrolment and reset links' endpoints, used by the page the link opens (``/enrol``):
read what the link is for, then choose a password and confirm the authenticator."""

from __future__ import annotations

from aiohttp import web

from signaling.api.api_types import (
    AccountLinkCompletion,
    AccountLinkDetails,
    AccountLinkRequest,
    MeResponse,
)
from signaling.api.http_api import ApiRegistry, client_address, json_response
from signaling.api.routes_auth import signed_in_response
from signaling.keys import SERVICES

routes = ApiRegistry()

_LINK = """The token is what follows `#` in the link an admin was given (the fragment never
reaches a server log); it travels in this body, never in a URL. A wrong, replaced, expired or
used link answers `account_link_invalid` and counts toward the address lockout."""


@routes.route(
    "POST",
    "/api/account-link",
    summary="What an enrolment or reset link is for: the account, and the authenticator to enrol",
    body=AccountLinkRequest,
    response=AccountLinkDetails,
    errors=("account_link_invalid", "address_locked", "mfa_unreadable", "invalid_body"),
    tag="auth",
    description=_LINK
    + " Changes nothing: the secret, `otpauth://` URI and QR code (SVG) are the same on every "
    "call until the link is used.",
)
async def open_account_link(request: web.Request, body: AccountLinkRequest) -> web.Response:
    services = request.app[SERVICES]
    opened = await services.account_links.open(body.token, client_address(request))
    return json_response(
        AccountLinkDetails(
            username=opened.user.username,
            display_name=opened.user.display_name,
            purpose=opened.link.purpose,
            expires_at=opened.link.expires_at,
            secret=opened.enrolment.secret,
            otpauth_uri=opened.enrolment.otpauth_uri,
            qr_svg=opened.enrolment.qr_svg,
        )
    )


@routes.route(
    "POST",
    "/api/account-link/complete",
    summary="Use an enrolment or reset link: choose a password, confirm the authenticator",
    body=AccountLinkCompletion,
    response=MeResponse,
    errors=(
        "account_link_invalid",
        "weak_password",
        "common_password",
        "invalid_totp",
        "address_locked",
        "mfa_unreadable",
        "invalid_body",
    ),
    tag="auth",
    description=_LINK
    + " A password of at least `security.password_min_length` characters, not on the shipped "
    "list of common passwords, and a current code of the authenticator: the link is used up "
    "(one request wins, even among parallel ones), the account signed in as after "
    "`POST /api/auth/totp` (the `tc_session` cookie and the session's `csrf_token`).",
)
async def complete_account_link(request: web.Request, body: AccountLinkCompletion) -> web.Response:
    services = request.app[SERVICES]
    issued, user = await services.account_links.complete(
        body.token, body.password, body.code, client_address(request)
    )
    return await signed_in_response(services, issued, user)
