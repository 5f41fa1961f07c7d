"""Liveness and readiness probes."""

from __future__ import annotations

from aiohttp import web

from signaling.api.api_types import Health
from signaling.api.http_api import ApiRegistry, json_response
from signaling.errors import AppError
from signaling.keys import SERVICES
from signaling.live.signaling_state import SIGNALING
from signaling.store.base import StoreUnavailable

routes = ApiRegistry()


@routes.route(
    "GET",
    "/healthz",
    summary="Liveness: the process answers",
    response=Health,
    tag="health",
    store=False,
)
async def healthz(request: web.Request) -> web.Response:
    return json_response(Health(status="ok"))


@routes.route(
    "GET",
    "/readyz",
    summary="Readiness: the store answers, and the Redis bus (several instances) is subscribed",
    response=Health,
    errors=("unavailable",),
    tag="health",
)
async def readyz(request: web.Request) -> web.Response:
    try:
        await request.app[SERVICES].store.ping()
    except StoreUnavailable:
        raise AppError("unavailable", "The store does not answer.") from None
    # With several instances, a socket taken before our bus channel is subscribed again
    # could not hear its peer: take this instance out of the proxy's rotation until then.
    signaling = request.app.get(SIGNALING)
    if signaling is not None and not signaling.bus.ready:
        raise AppError("unavailable", "The message bus is not subscribed yet.")
    return json_response(Health(status="ready"))
