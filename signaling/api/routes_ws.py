"""The ``/ws`` endpoint: the upgrade, refused before it for a foreign page or an address with
too many connections, then one :class:`signaling.live.connection.Connection` per socket, dispatching
through the handlers of :mod:`signaling.live.handlers`."""

from __future__ import annotations

import asyncio

from aiohttp import WSCloseCode, web

from signaling.api.http_api import client_address
from signaling.errors import AppError
from signaling.live.connection import Connection, new_socket
from signaling.live.handlers import DISPATCH
from signaling.live.signaling_state import SIGNALING, Signaling


async def websocket_handler(request: web.Request) -> web.StreamResponse:
    signaling = request.app[SIGNALING]
    settings = signaling.services.settings
    # Refused before the upgrade: no WebSocket is ever opened for a foreign page.
    if request.headers.get("Origin") not in settings.server.allowed_origins:
        signaling.services.metrics.refusals.labels("origin_refused").inc()
        raise AppError("origin_refused")
    address = client_address(request)
    if not signaling.acquire_address(address):
        signaling.services.metrics.refusals.labels("too_many_connections").inc()
        raise AppError("too_many_connections")
    try:
        ws = new_socket(settings.signaling)
        await ws.prepare(request)
        signaling.sockets.add(ws)
        await Connection(signaling, ws, address, DISPATCH).run()
        return ws
    finally:
        signaling.release_address(address)


def setup_websocket(app: web.Application, signaling: Signaling) -> None:
    """Serve ``/ws`` with ``signaling``; its sockets close (going away) at shutdown."""
    app[SIGNALING] = signaling
    app.router.add_get("/ws", websocket_handler)

    async def close_sockets(app: web.Application) -> None:
        sockets = list(app[SIGNALING].sockets)
        await asyncio.gather(
            *(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown") for ws in sockets),
            return_exceptions=True,
        )

    app.on_shutdown.append(close_sockets)
