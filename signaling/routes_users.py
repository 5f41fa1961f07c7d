"""Administration of accounts: list, create, disable/enable, reset MFA (admins only)."""

from __future__ import annotations

from aiohttp import web

from signaling.api_types import CreateUserRequest, UserList, UserView
from signaling.errors import AppError
from signaling.http_api import USER_KEY, ApiRegistry, client_address, json_response
from signaling.keys import SERVICES
from signaling.models import User
from signaling.views import user_view

routes = ApiRegistry()
_ADMIN_ERRORS = ("not_authenticated", "forbidden", "csrf_failed")


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
    admin = request[USER_KEY]
    user = await services.accounts.create_user(
        body.username, body.password, body.role, body.display_name
    )
    await services.audit.record(
        "user.created",
        actor=admin.id,
        actor_role=admin.role,
        target=user.id,
        address=client_address(request),
        role=user.role,
    )
    return json_response(user_view(user), status=201)


async def _set_disabled(request: web.Request, disabled: bool) -> web.Response:
    services = request.app[SERVICES]
    admin = request[USER_KEY]
    target = await _target(request)
    if target.id == admin.id and disabled:
        raise AppError("forbidden", "You cannot disable your own account.")
    user = await services.accounts.set_disabled(target, disabled)
    await services.audit.record(
        "user.disabled" if disabled else "user.enabled",
        actor=admin.id,
        actor_role=admin.role,
        target=user.id,
        address=client_address(request),
    )
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
    admin = request[USER_KEY]
    user = await services.accounts.reset_mfa(await _target(request))
    await services.audit.record(
        "mfa.reset",
        actor=admin.id,
        actor_role=admin.role,
        target=user.id,
        address=client_address(request),
    )
    return json_response(user_view(user))
