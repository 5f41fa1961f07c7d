"""Administration of accounts: list, create (an enrolment link), reset link, unlock,
disable/enable, change role, reset MFA (admins only)."""

from __future__ import annotations

from aiohttp import web

from signaling.accounts.account_links import IssuedLink
from signaling.api.api_types import (
    AccountLinkResponse,
    AccountView,
    CreateUserRequest,
    RoleChangeRequest,
    UserList,
    UserView,
)
from signaling.api.http_api import USER_KEY, ApiRegistry, audit_request, json_response
from signaling.api.views import account_view, user_view
from signaling.errors import AppError, ErrorCode
from signaling.keys import SERVICES, Services
from signaling.models import User

routes = ApiRegistry()
_ADMIN_ERRORS: tuple[ErrorCode, ...] = ("not_authenticated", "forbidden", "csrf_failed")


async def _target(request: web.Request) -> User:
    user = await request.app[SERVICES].store.get_user(request.match_info["user_id"])
    if user is None:
        raise AppError("not_found", "No such user.")
    return user


@routes.route(
    "GET",
    "/api/users",
    summary="List accounts",
    auth="admin",
    response=UserList,
    errors=_ADMIN_ERRORS,
    tag="users",
)
async def list_users(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    users = await services.store.list_users()
    now = services.clock.now()
    return json_response(UserList(users=[account_view(u, now) for u in users]))


def _link_response(services: Services, issued: IssuedLink) -> AccountLinkResponse:
    return AccountLinkResponse(
        user=account_view(issued.user, services.clock.now()),
        link=issued.url(services.settings.server.origin),
        expires_at=issued.expires_at,
    )


@routes.route(
    "POST",
    "/api/users",
    summary=(
        "Create an account without a password: answers a one-time enrolment link (valid "
        "`security.account_link_hours`, shown once) where the person chooses their password "
        "and enrols their authenticator; nobody can sign in to the account before"
    ),
    auth="admin",
    body=CreateUserRequest,
    response=AccountLinkResponse,
    status=201,
    errors=(*_ADMIN_ERRORS, "username_taken", "invalid_body"),
    tag="users",
)
async def create_user(request: web.Request, body: CreateUserRequest) -> web.Response:
    services = request.app[SERVICES]
    issued = await services.account_links.create_account(
        body.username, body.role, body.display_name
    )
    user = issued.user
    await audit_request(request, "user.created", target=user.id, role=user.role)
    await audit_request(request, "user.link_issued", target=user.id, purpose="enrolment")
    return json_response(_link_response(services, issued), status=201)


@routes.route(
    "POST",
    "/api/users/{user_id}/reset-link",
    summary=(
        "Issue a one-time reset link (an enrolment link for an account that never enrolled): "
        "the account's sessions end at once, its password and authenticator stop working, "
        "any earlier link stops working; the person chooses a new password and enrols their "
        "authenticator again through the link"
    ),
    auth="admin",
    response=AccountLinkResponse,
    errors=(*_ADMIN_ERRORS, "not_found"),
    tag="users",
)
async def issue_reset_link(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    target = await _target(request)
    if target.id == request[USER_KEY].id:
        # The admin would sign themself out with nobody to hand them the link: another
        # admin does it (or `run.py reset-link`).
        raise AppError("forbidden", "You cannot reset your own account.")
    issued = await services.account_links.issue_reset(target)
    purpose = issued.user.account_link.purpose if issued.user.account_link else ""
    await audit_request(request, "user.link_issued", target=target.id, purpose=purpose)
    return json_response(_link_response(services, issued))


@routes.route(
    "POST",
    "/api/users/{user_id}/unlock",
    summary="End an account's lockout after failed sign-ins, and forget its failures",
    auth="admin",
    response=AccountView,
    errors=(*_ADMIN_ERRORS, "not_found"),
    tag="users",
)
async def unlock_user(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    target = await _target(request)
    await services.accounts.unlock(target.username)
    await audit_request(request, "user.unlocked", target=target.id)
    user = await services.store.get_user(target.id) or target
    return json_response(account_view(user, services.clock.now()))


async def _set_disabled(request: web.Request, disabled: bool) -> web.Response:
    services = request.app[SERVICES]
    admin = request[USER_KEY]
    target = await _target(request)
    if target.id == admin.id and disabled:
        raise AppError("forbidden", "You cannot disable your own account.")
    user = await services.accounts.set_disabled(target, disabled)
    await audit_request(request, "user.disabled" if disabled else "user.enabled", target=user.id)
    return json_response(user_view(user))


@routes.route(
    "POST",
    "/api/users/{user_id}/disable",
    summary="Disable an account and end its sessions",
    auth="admin",
    response=UserView,
    errors=(*_ADMIN_ERRORS, "not_found"),
    tag="users",
)
async def disable_user(request: web.Request) -> web.Response:
    return await _set_disabled(request, True)


@routes.route(
    "POST",
    "/api/users/{user_id}/enable",
    summary="Enable a disabled account",
    auth="admin",
    response=UserView,
    errors=(*_ADMIN_ERRORS, "not_found"),
    tag="users",
)
async def enable_user(request: web.Request) -> web.Response:
    return await _set_disabled(request, False)


@routes.route(
    "POST",
    "/api/users/{user_id}/reset-mfa",
    summary="Reset TOTP: the user enrols again at next sign-in",
    auth="admin",
    response=UserView,
    errors=(*_ADMIN_ERRORS, "not_found"),
    tag="users",
)
async def reset_mfa(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    user = await services.accounts.reset_mfa(await _target(request))
    await audit_request(request, "mfa.reset", target=user.id)
    return json_response(user_view(user))


@routes.route(
    "POST",
    "/api/users/{user_id}/role",
    summary=(
        "Change an account's role (doctor or admin); its sessions end, so the new role "
        "applies from its next sign-in. The last enabled admin keeps the role; an admin "
        "cannot change their own role. An account that stops being a doctor leaves every "
        "assistant's list, and one that stops being an assistant assists nobody (audited)."
    ),
    auth="admin",
    body=RoleChangeRequest,
    response=UserView,
    errors=(*_ADMIN_ERRORS, "not_found", "invalid_body", "last_admin"),
    tag="users",
)
async def change_role(request: web.Request, body: RoleChangeRequest) -> web.Response:
    services = request.app[SERVICES]
    admin = request[USER_KEY]
    target = await _target(request)
    if target.id == admin.id:
        # Another admin does it: nobody locks themself out of administration by mistake.
        raise AppError("forbidden", "You cannot change your own role.")
    if target.role == body.role:
        return json_response(user_view(target))  # nothing changes: nothing to record
    user = await services.accounts.change_role(target, body.role)
    await audit_request(
        request, "user.role_changed", target=user.id, old_role=target.role, new_role=user.role
    )
    if target.role == "doctor":
        for before, after in await services.accounts.drop_from_assistants(user.id):
            await audit_request(
                request,
                "user.assists_changed",
                target=after.id,
                old=list(before.assists),
                new=list(after.assists),
            )
    return json_response(user_view(user))
