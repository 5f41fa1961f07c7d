"""The static pages and ES modules under web/ (no build step, no inline script)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from signaling.keys import SERVICES

# Paths whose last segment is a token: each serves the same page, whose script reads the
# token from location.pathname and sends it in a request body.
PAGES = {
    "/": "index.html",
    "/account": "account.html",
    "/admin": "admin.html",
    "/audit": "audit.html",
    "/call/{consultation_id}": "call.html",
    "/join/{token}": "join.html",
    "/setup/{token}": "setup.html",
}


def _page(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def serve(request: web.Request) -> web.StreamResponse:
        path: Path = request.app[SERVICES].web_root / name
        # FileResponse answers 404 itself when the page is missing.
        return web.FileResponse(path, headers={"Cache-Control": "no-store"})

    return serve


def setup_pages(app: web.Application, web_root: Path) -> None:
    for route, name in PAGES.items():
        app.router.add_get(route, _page(name), name=f"page:{name}")
    app.router.add_static(
        "/static/", web_root / "static", name="static", append_version=False, show_index=False
    )
