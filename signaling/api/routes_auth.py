"""First-run setup, two-step sign-in, TOTP enrolment, the current user, sign-out."""

from __future__ import annotations

from aiohttp import web

from signaling.accounts.auth import IssuedSession
from signaling.accounts.passkey_policy import passkey_policy
from signaling.api.api_types import (
    EnrolmentResponse,
    LoginRequest,
    LoginResponse,
    MeResponse,
    SetupRequest,
    SetupStatus,
    TotpRequest,
)
from signaling.api.http_api import (
    PENDING_COOKIE,
    SESSION_COOKIE,
    SESSION_KEY,
    USER_KEY,
    ApiRegistry,
    audit_request,
    client_address,
    json_response,
)
from signaling.api.views import clear_cookie, set_cookie, user_view
from signaling.errors import AppError
from signaling.keys import SERVICES, Services
from signaling.models import Session, User

routes = ApiRegistry()
SETUP_NONCE = "setup_nonce"

# The sign-in, as the handlers below and Accounts (signaling/accounts/auth.py) run it. README.md's
# "Signing in" says the same; tests/test_docs_contract.py checks every `next` is in both.
_LOGIN = """Step 1 of sign-in. A right password answers `next` and sets the `tc_pending` cookie
(HttpOnly, valid `expires_in` seconds: `security.login_pending_minutes`). `next` is one of:

- `"totp"`: the account has a confirmed authenticator app. Send a current code to
  `POST /api/auth/totp`.
- `"enrol"`: the account has no confirmed authenticator yet (created through the setup link
  or with `run.py add-user --credentials-stdin`, or its two-factor setup was reset). Call
  `POST /api/auth/enrol` for the secret and QR code, then send a code from the app to
  `POST /api/auth/totp`, which confirms the app and signs in. The secret stays the same on
  every call until a code confirms it: for an account made with `run.py add-user` it is the key
  that command printed, so an app that scanned it can go straight to `POST /api/auth/totp`.

`passkey` true: the account has a passkey, which may replace the code: ask
`POST /api/auth/passkey/options` and send what the browser answered to `POST /api/auth/passkey`.
`passkey_only` true: the clinic's policy (`GET /api/passkey-policy`) binds the account to its
passkey with no code fallback: `POST /api/auth/totp` answers `passkey_required`.

There is no other value and no `"done"`: sign-in is complete when `POST /api/auth/totp`
(or `POST /api/auth/passkey`) answers 200 with the user and the session's `csrf_token` and
sets the `tc_session` cookie.
After `expires_in` seconds the pending sign-in is gone (`login_expired`): start again here.
An unknown username, a wrong password and a disabled account all answer `invalid_credentials`;
each failure counts toward `account_locked` / `address_locked`."""


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
    errors=("setup_done", "setup_link_invalid", "weak_password", "common_password", "invalid_body"),
    tag="auth",
    description=(
        'Answers 201 with `next` `"enrol"` and sets the `tc_pending` cookie: go on with '
        "`POST /api/auth/enrol` and `POST /api/auth/totp`, as after `POST /api/auth/login`."
    ),
)
async def setup(request: web.Request, body: SetupRequest) -> web.Response:
    services = request.app[SERVICES]
    nonce = services.setup_tokens.read(body.setup_token)
    # Cheap early answers that spare a password hash; the claim itself below is atomic.
    if await services.store.count_users() > 0:
        raise AppError("setup_done")
    if nonce != await services.store.get_meta(SETUP_NONCE):
        # A parallel request with this very link may have won between the two reads (the
        # winner consumes the nonce): that is "already set up", not a bad link.
        if await services.store.count_users() > 0:
            raise AppError("setup_done")
        raise AppError("setup_link_invalid")
    accounts = services.accounts
    user = await accounts.create_first_admin(
        body.username, body.password, body.display_name, SETUP_NONCE, nonce
    )
    address = client_address(request)
    await audit_request(
        request, "user.created", by=user, target=user.id, via="setup_link", role="admin"
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
    description=_LOGIN,
)
async def login(request: web.Request, body: LoginRequest) -> web.Response:
    services = request.app[SERVICES]
    pending, user = await services.accounts.login_password(
        body.username, body.password, client_address(request)
    )
    policy = await passkey_policy(services.store, services.settings.security)
    lifetime = pending.session.expires_at - pending.session.created_at
    response = json_response(
        LoginResponse(
            next="totp" if user.totp_confirmed else "enrol",
            expires_in=int(lifetime),
            passkey=bool(user.passkeys),
            passkey_only=bool(user.passkeys)
            and policy.binds(user.role)
            and not policy.totp_fallback,
        )
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
    errors=("login_expired", "forbidden", "mfa_unreadable"),
    tag="auth",
    description=(
        'Only while sign-in answered `next` `"enrol"` (`forbidden` once the account has a '
        "confirmed authenticator). No body; needs the `tc_pending` cookie. The secret is the "
        "same on every call until a code sent to `POST /api/auth/totp` confirms it."
    ),
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
        "passkey_required",
        "invalid_body",
    ),
    tag="auth",
    description=(
        "`passkey_required`: the clinic's policy binds this account to its passkey and keeps "
        "no code fallback (`POST /api/auth/passkey` instead). Step 2 of sign-in, with the "
        "`tc_pending` cookie of step 1. A right code, not used "
        "before, answers the user and the session's `csrf_token`, sets the `tc_session` cookie "
        "(locked after `security.session_idle_minutes` without a request, see "
        "`POST /api/auth/unlock`, and ended after `security.session_absolute_hours` in any "
        "case) and ends the pending sign-in. On an "
        "account still enrolling, it confirms the authenticator (`enrolment_required` if the "
        "account has no secret yet: call `POST /api/auth/enrol` first). A wrong code counts "
        "toward the lockouts; the pending sign-in stays usable until it expires."
    ),
)
async def totp(request: web.Request, body: TotpRequest) -> web.Response:
    services = request.app[SERVICES]
    issued, user = await services.accounts.login_totp(
        request.cookies.get(PENDING_COOKIE), body.code, client_address(request)
    )
    return await signed_in_response(services, issued, user)


async def me_response(services: Services, user: User, session: Session) -> MeResponse:
    """The user, the session's CSRF token, and whether the account must enrol a passkey
    before anything else (the clinic's policy binds it and it has none)."""
    policy = await passkey_policy(services.store, services.settings.security)
    return MeResponse(
        user=user_view(user),
        csrf_token=session.csrf_token,
        passkey_enrolment_required=not user.passkeys and policy.binds(user.role),
    )


async def signed_in_response(services: Services, issued: IssuedSession, user: User) -> web.Response:
    """The answer that completes a sign-in: the user, the session's CSRF token, the session
    cookie set and the pending one cleared."""
    secure = services.settings.server.secure_cookies
    response = json_response(await me_response(services, user, issued.session))
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
    tag="auth",
    description=(
        "A GET: needs the `tc_session` cookie, no CSRF header. Its `csrf_token` is the value "
        "every POST made with this session must carry in `X-CSRF-Token` (the same as "
        "`POST /api/auth/totp` answered, for the whole session). "
        "`passkey_enrolment_required` true: the clinic's policy binds the account to a "
        "passkey and it has none; enrol one (`POST /api/me/passkeys/options`) before anything "
        "else."
    ),
)
async def me(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    return json_response(await me_response(services, request[USER_KEY], request[SESSION_KEY]))


@routes.route(
    "POST",
    "/api/auth/logout",
    summary="End the session (also a session locked by inactivity)",
    auth="staff",
    status=204,
    tag="auth",
    while_locked=True,
)
async def logout(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    await services.accounts.logout(request[SESSION_KEY])
    await audit_request(request, "session.end", reason="logout")
    response = web.Response(status=204)
    clear_cookie(response, SESSION_COOKIE, services.settings.server.secure_cookies)
    return response
