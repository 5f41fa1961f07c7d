"""Liveness and readiness probes."""

from __future__ import annotations

from aiohttp import web

from signaling.api_types import Health
from signaling.errors import AppError
from signaling.http_api import ApiRegistry, json_response
from signaling.keys import SERVICES
from signaling.store.base import StoreUnavailable

routes = ApiRegistry()


@routes.route(
    "GET", "/healthz", summary="Liveness: the process answers", response=Health, tag="health"
)
async def healthz(request: web.Request) -> web.Response:
    return json_response(Health(status="ok"))


@routes.route(
    "GET",
    "/readyz",
    summary="Readiness: the store answers",
    response=Health,
    errors=("unavailable",),
    tag="health",
)
async def readyz(request: web.Request) -> web.Response:
    try:
        await request.app[SERVICES].store.ping()
    except StoreUnavailable:
        raise AppError("unavailable", "The store does not answer.") from None
    return json_response(Health(status="ready"))
