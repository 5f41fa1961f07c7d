"""Passkeys: enrolled and removed from My account, used as sign-in's second step, as the whole
sign-in when the clinic allows it, and to prove oneself again (unlock, password change)."""

from __future__ import annotations

from aiohttp import web

from signaling.accounts.passkey_policy import passkey_policy
from signaling.accounts.session_lock import unlock_session_with_passkey
from signaling.api.api_types import (
    AuthMethods,
    MeResponse,
    PasskeyEnrolRequest,
    PasskeyList,
    PasskeyOptions,
    PasskeyProofRequest,
    PasskeySignInRequest,
    PasskeyView,
)
from signaling.api.http_api import (
    PENDING_COOKIE,
    SESSION_KEY,
    USER_KEY,
    ApiRegistry,
    audit_request,
    client_address,
    json_response,
)
from signaling.api.routes_auth import me_response, signed_in_response
from signaling.keys import SERVICES
from signaling.models import User

routes = ApiRegistry()

_CEREMONY = (
    "The RP ID is the host name of the page that asks (its `Origin`, one the service answers "
    "for): passkeys work at the service's name (`server.public_url`, or `localhost`), not at "
    "an IP address (`passkey_unavailable`). The challenge is single use, for this session, "
    "and expires after 3 minutes."
)


def passkey_list(user: User) -> PasskeyList:
    return PasskeyList(
        passkeys=[
            PasskeyView(id=p.id, name=p.name, created_at=p.created_at, last_used_at=p.last_used_at)
            for p in user.passkeys
        ],
        removable=user.second_factors > 1,
    )


async def _stored(request: web.Request) -> User:
    """The signed-in user as stored now (the session's copy may predate a passkey)."""
    user: User = request[USER_KEY]
    return await request.app[SERVICES].store.get_user(user.id) or user


@routes.route(
    "GET",
    "/api/me/passkeys",
    summary="One's own passkeys, with when each was enrolled and last used",
    auth="staff",
    response=PasskeyList,
    errors=("not_authenticated",),
    tag="auth",
)
async def list_passkeys(request: web.Request) -> web.Response:
    return json_response(passkey_list(await _stored(request)))


@routes.route(
    "POST",
    "/api/me/passkeys/options",
    summary="Start enrolling a passkey: the options for navigator.credentials.create()",
    auth="staff",
    response=PasskeyOptions,
    errors=("not_authenticated", "csrf_failed", "passkey_unavailable", "invalid_body"),
    tag="auth",
    description=_CEREMONY + " Attestation `none`; at most 10 passkeys per account.",
)
async def enrolment_options(request: web.Request) -> web.Response:
    options = await request.app[SERVICES].passkeys.registration_options(
        await _stored(request), request[SESSION_KEY], request.headers.get("Origin")
    )
    return json_response(PasskeyOptions(public_key=options))


@routes.route(
    "POST",
    "/api/me/passkeys",
    summary="Enrol a passkey: its name and what navigator.credentials.create() answered",
    auth="staff",
    body=PasskeyEnrolRequest,
    response=PasskeyList,
    status=201,
    errors=(
        "not_authenticated",
        "csrf_failed",
        "passkey_refused",
        "passkey_unavailable",
        "invalid_body",
    ),
    tag="auth",
    description=(
        "Answers 201 with the account's passkeys. `passkey_refused` when the challenge is "
        "not one issued to this session by `POST /api/me/passkeys/options` (or was used), or "
        "the origin, RP ID or response does not check."
    ),
)
async def enrol_passkey(request: web.Request, body: PasskeyEnrolRequest) -> web.Response:
    services = request.app[SERVICES]
    user = await _stored(request)
    await services.passkeys.enrol(
        user,
        request[SESSION_KEY],
        body.name,
        body.credential,
        request.headers.get("Origin"),
        client_address(request),
    )
    return json_response(passkey_list(await _stored(request)), status=201)


@routes.route(
    "POST",
    "/api/me/passkeys/{passkey_id}/delete",
    summary="Remove one of one's passkeys (never the account's last second factor)",
    auth="staff",
    response=PasskeyList,
    errors=("not_authenticated", "csrf_failed", "passkey_not_found", "last_second_factor"),
    tag="auth",
)
async def remove_passkey(request: web.Request) -> web.Response:
    await request.app[SERVICES].passkeys.remove(
        await _stored(request), request.match_info["passkey_id"], client_address(request)
    )
    return json_response(passkey_list(await _stored(request)))


@routes.route(
    "POST",
    "/api/auth/passkey/options",
    summary="Step 2 of sign-in with a passkey: the options for navigator.credentials.get()",
    auth="pending",
    response=PasskeyOptions,
    errors=("login_expired", "passkey_unavailable", "passkey_not_found"),
    tag="auth",
    description=(
        "With the `tc_pending` cookie of `POST /api/auth/login` when it answered `passkey` "
        "true. Lists the account's passkeys made for this page's host name "
        "(`passkey_not_found` when there is none). " + _CEREMONY
    ),
)
async def sign_in_options(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    pending, user = await services.accounts.pending_user(request.cookies.get(PENDING_COOKIE))
    options = await services.passkeys.authentication_options(
        pending, user, request.headers.get("Origin")
    )
    return json_response(PasskeyOptions(public_key=options))


@routes.route(
    "POST",
    "/api/auth/passkey",
    summary="Step 2 of sign-in with a passkey: what navigator.credentials.get() answered",
    auth="pending",
    body=PasskeySignInRequest,
    response=MeResponse,
    errors=(
        "login_expired",
        "passkey_refused",
        "passkey_unavailable",
        "account_locked",
        "address_locked",
        "invalid_body",
    ),
    tag="auth",
    description=(
        "Completes sign-in as `POST /api/auth/totp` does (the user, the `csrf_token`, the "
        "`tc_session` cookie). `passkey_refused` for an unknown passkey, a challenge not "
        "issued to this sign-in or already used, a wrong origin or signature, or a signature "
        "counter not above the last one seen (audited as `passkey.clone_suspected`). Each "
        "refusal counts toward the lockouts."
    ),
)
async def sign_in_with_passkey(request: web.Request, body: PasskeySignInRequest) -> web.Response:
    services = request.app[SERVICES]
    issued, user = await services.passkeys.sign_in(
        request.cookies.get(PENDING_COOKIE),
        body.credential,
        request.headers.get("Origin"),
        client_address(request),
    )
    return await signed_in_response(services, issued, user)


@routes.route(
    "GET",
    "/api/auth/methods",
    summary="How staff may sign in here: whether a passkey alone is offered",
    response=AuthMethods,
    tag="auth",
    description=(
        "Public (the sign-in page asks before anyone signs in). `passwordless` follows the "
        "clinic's passkey policy (`GET /api/passkey-policy`)."
    ),
)
async def auth_methods(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    policy = await passkey_policy(services.store, services.settings.security)
    return json_response(AuthMethods(passwordless=policy.passwordless))


@routes.route(
    "POST",
    "/api/auth/passwordless/options",
    summary="Sign in with a passkey alone: the options for navigator.credentials.get()",
    response=PasskeyOptions,
    errors=("passwordless_disabled", "passkey_unavailable", "address_locked"),
    tag="auth",
    description=(
        "No username, no password: the options name no passkey (the browser offers the "
        "discoverable ones it holds for this host) and require user verification (a PIN or "
        "fingerprint). `passwordless_disabled` unless the clinic's policy allows it. " + _CEREMONY
    ),
)
async def passwordless_options(request: web.Request) -> web.Response:
    options = await request.app[SERVICES].passkeys.passwordless_options(
        request.headers.get("Origin"), client_address(request)
    )
    return json_response(PasskeyOptions(public_key=options))


@routes.route(
    "POST",
    "/api/auth/passwordless",
    summary="Sign in with a passkey alone: what navigator.credentials.get() answered",
    body=PasskeySignInRequest,
    response=MeResponse,
    errors=(
        "passwordless_disabled",
        "passkey_refused",
        "passkey_unavailable",
        "account_locked",
        "address_locked",
        "invalid_body",
    ),
    tag="auth",
    description=(
        "Completes sign-in as `POST /api/auth/totp` does (the user, the `csrf_token`, the "
        "`tc_session` cookie). The credential's user handle (random, never the username) "
        "names the account. `passkey_refused` for a challenge not issued by "
        "`POST /api/auth/passwordless/options` or already used, no or an unknown user handle, "
        "a passkey not on that account or known not to be discoverable, no user verification, "
        "a wrong origin or signature, or a signature counter not above the last one seen "
        "(audited as `passkey.clone_suspected`). Each refusal counts toward the lockouts (the "
        "address's when no account is named)."
    ),
)
async def sign_in_passwordless(request: web.Request, body: PasskeySignInRequest) -> web.Response:
    services = request.app[SERVICES]
    issued, user = await services.passkeys.passwordless(
        body.credential, request.headers.get("Origin"), client_address(request)
    )
    return await signed_in_response(services, issued, user)


@routes.route(
    "POST",
    "/api/auth/reauth/options",
    summary="Prove it is you again with a passkey (unlock, password change): the options for "
    "navigator.credentials.get()",
    auth="staff",
    response=PasskeyOptions,
    errors=("passkey_unavailable", "passkey_not_found"),
    tag="auth",
    while_locked=True,
    description=(
        "Also while the session is locked. Names the account's passkeys for this host and "
        "requires user verification: the passkey then stands for the password and the code "
        "(`POST /api/auth/unlock/passkey`, `POST /api/me/password` with `credential`). " + _CEREMONY
    ),
)
async def reauth_options(request: web.Request) -> web.Response:
    options = await request.app[SERVICES].passkeys.reauth_options(
        request[SESSION_KEY], await _stored(request), request.headers.get("Origin")
    )
    return json_response(PasskeyOptions(public_key=options))


@routes.route(
    "POST",
    "/api/auth/unlock/passkey",
    summary="Unlock a session locked by inactivity with a passkey (user verification)",
    auth="staff",
    body=PasskeyProofRequest,
    response=MeResponse,
    errors=("passkey_refused", "passkey_unavailable", "account_locked", "address_locked"),
    tag="auth",
    while_locked=True,
    description=(
        "As `POST /api/auth/unlock`, with what `navigator.credentials.get()` answered to "
        "`POST /api/auth/reauth/options` instead of the password and code. A refusal "
        "(`passkey_refused`: challenge not issued to this session or used, no user "
        "verification, wrong origin or signature, counter gone back) counts toward the "
        "lockouts and is audited as a failed `session.unlocked`."
    ),
)
async def unlock_with_passkey(request: web.Request, body: PasskeyProofRequest) -> web.Response:
    services = request.app[SERVICES]
    user = await _stored(request)
    session = await unlock_session_with_passkey(
        services.accounts,
        request[SESSION_KEY],
        lambda: services.passkeys.reauthenticate(
            user,
            request[SESSION_KEY],
            body.credential,
            request.headers.get("Origin"),
            client_address(request),
            "session.unlocked",
        ),
    )
    await audit_request(request, "session.unlocked", target=user.id, method="passkey")
    return json_response(await me_response(services, user, session))
