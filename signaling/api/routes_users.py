"""Administration of accounts: list, create, disable/enable, change role, reset MFA (admins
only)."""

from __future__ import annotations

from aiohttp import web

from signaling.api.api_types import CreateUserRequest, RoleChangeRequest, UserList, UserView
from signaling.api.http_api import USER_KEY, ApiRegistry, audit_request, json_response
from signaling.api.views import user_view
from signaling.errors import AppError, ErrorCode
from signaling.keys import SERVICES
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
    users = await request.app[SERVICES].store.list_users()
    return json_response(UserList(users=[user_view(u) for u in users]))


@routes.route(
    "POST",
    "/api/users",
    summary="Create an account (the user enrols TOTP at first sign-in)",
    auth="admin",
    body=CreateUserRequest,
    response=UserView,
    status=201,
    errors=(*_ADMIN_ERRORS, "username_taken", "weak_password", "invalid_body"),
    tag="users",
)
async def create_user(request: web.Request, body: CreateUserRequest) -> web.Response:
    services = request.app[SERVICES]
    user = await services.accounts.create_user(
        body.username, body.password, body.role, body.display_name
    )
    await audit_request(request, "user.created", target=user.id, role=user.role)
    return json_response(user_view(user), status=201)


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
        "cannot change their own role."
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
    return json_response(user_view(user))
