"""First-run setup, two-step sign-in, TOTP enrolment, the current user, sign-out."""

from __future__ import annotations

from aiohttp import web

from signaling.api_types import (
    EnrolmentResponse,
    LoginRequest,
    LoginResponse,
    MeResponse,
    SetupRequest,
    SetupStatus,
    TotpRequest,
)
from signaling.errors import AppError
from signaling.http_api import (
    PENDING_COOKIE,
    SESSION_COOKIE,
    SESSION_KEY,
    USER_KEY,
    ApiRegistry,
    client_address,
    json_response,
)
from signaling.keys import SERVICES
from signaling.views import clear_cookie, set_cookie, user_view

routes = ApiRegistry()
SETUP_NONCE = "setup_nonce"


@routes.route(
    "GET",
    "/api/setup",
    summary="Whether the first administrator is still to be created",
    response=SetupStatus,
    tag="auth",
)
async def setup_status(request: web.Request) -> web.Response:
    count = await request.app[SERVICES].store.count_users()
    return json_response(SetupStatus(needs_setup=count == 0))


@routes.route(
    "POST",
    "/api/setup",
    summary="Create the first administrator with the one-time setup link printed at first start",
    body=SetupRequest,
    response=LoginResponse,
    errors=("setup_done", "setup_link_invalid", "weak_password", "invalid_body"),
    tag="auth",
)
async def setup(request: web.Request, body: SetupRequest) -> web.Response:
    services = request.app[SERVICES]
    nonce = services.setup_tokens.read(body.setup_token)
    # Cheap early answers that spare a password hash; the claim itself below is atomic.
    if await services.store.count_users() > 0:
        raise AppError("setup_done")
    if nonce != await services.store.get_meta(SETUP_NONCE):
        raise AppError("setup_link_invalid")
    accounts = services.accounts
    user = await accounts.create_first_admin(
        body.username, body.password, body.display_name, SETUP_NONCE, nonce
    )
    address = client_address(request)
    await services.audit.record(
        "user.created",
        actor=user.id,
        actor_role="admin",
        target=user.id,
        address=address,
        via="setup_link",
        role="admin",
    )
    # Continue straight into TOTP enrolment, as after a password check.
    pending, _ = await accounts.login_password(body.username, body.password, address)
    response = json_response(
        LoginResponse(
            next="enrol", expires_in=int(pending.session.expires_at - pending.session.created_at)
        ),
        status=201,
    )
    set_cookie(
        response,
        PENDING_COOKIE,
        pending.cookie_value,
        pending.session.expires_at - pending.session.created_at,
        services.settings.server.secure_cookies,
    )
    return response


@routes.route(
    "POST",
    "/api/auth/login",
    summary="Step 1 of sign-in: username and password",
    body=LoginRequest,
    response=LoginResponse,
    errors=("invalid_credentials", "account_locked", "address_locked", "invalid_body"),
    tag="auth",
)
async def login(request: web.Request, body: LoginRequest) -> web.Response:
    services = request.app[SERVICES]
    pending, user = await services.accounts.login_password(
        body.username, body.password, client_address(request)
    )
    lifetime = pending.session.expires_at - pending.session.created_at
    response = json_response(
        LoginResponse(next="totp" if user.totp_confirmed else "enrol", expires_in=int(lifetime))
    )
    set_cookie(
        response,
        PENDING_COOKIE,
        pending.cookie_value,
        lifetime,
        services.settings.server.secure_cookies,
    )
    return response


@routes.route(
    "POST",
    "/api/auth/enrol",
    summary="Start TOTP enrolment after step 1 (secret, otpauth URI, QR code as SVG)",
    auth="pending",
    response=EnrolmentResponse,
    errors=("login_expired", "forbidden"),
    tag="auth",
)
async def enrol(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    _, user = await services.accounts.pending_user(request.cookies.get(PENDING_COOKIE))
    enrolment = await services.accounts.start_enrolment(user)
    return json_response(
        EnrolmentResponse(
            secret=enrolment.secret, otpauth_uri=enrolment.otpauth_uri, qr_svg=enrolment.qr_svg
        )
    )


@routes.route(
    "POST",
    "/api/auth/totp",
    summary="Step 2 of sign-in: a TOTP code (also confirms enrolment)",
    auth="pending",
    body=TotpRequest,
    response=MeResponse,
    errors=(
        "login_expired",
        "invalid_totp",
        "totp_reused",
        "account_locked",
        "address_locked",
        "enrolment_required",
        "mfa_unreadable",
        "invalid_body",
    ),
    tag="auth",
)
async def totp(request: web.Request, body: TotpRequest) -> web.Response:
    services = request.app[SERVICES]
    issued, user = await services.accounts.login_totp(
        request.cookies.get(PENDING_COOKIE), body.code, client_address(request)
    )
    secure = services.settings.server.secure_cookies
    response = json_response(MeResponse(user=user_view(user), csrf_token=issued.session.csrf_token))
    set_cookie(
        response,
        SESSION_COOKIE,
        issued.cookie_value,
        issued.session.expires_at - issued.session.created_at,
        secure,
    )
    clear_cookie(response, PENDING_COOKIE, secure)
    return response


@routes.route(
    "GET",
    "/api/me",
    summary="The signed-in user and the CSRF token for this session",
    auth="staff",
    response=MeResponse,
    errors=("not_authenticated",),
    tag="auth",
)
async def me(request: web.Request) -> web.Response:
    return json_response(
        MeResponse(user=user_view(request[USER_KEY]), csrf_token=request[SESSION_KEY].csrf_token)
    )


@routes.route(
    "POST",
    "/api/auth/logout",
    summary="End the session",
    auth="staff",
    status=204,
    errors=("not_authenticated", "csrf_failed"),
    tag="auth",
)
async def logout(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    user = request[USER_KEY]
    await services.accounts.logout(request[SESSION_KEY])
    await services.audit.record(
        "session.end",
        actor=user.id,
        actor_role=user.role,
        address=client_address(request),
        reason="logout",
    )
    response = web.Response(status=204)
    clear_cookie(response, SESSION_COOKIE, services.settings.server.secure_cookies)
    return response
