"""The pages and their assets over HTTP, from the snapshot of web/ in ``signaling/api/site.py``.

- ``/``, ``/admin``... (``site.PAGES``): the assembled HTML, ``Cache-Control: no-store``.
- ``/v/<version>/static/...``, ``/v/<version>/protocol.js``: the assets of this process's
  version, immutable for a year; any other version is a 404 that is never cached.
- ``/static/<file>``, ``/protocol.js``: the same snapshot unversioned, ``no-cache`` with an
  ETag (``/protocol.js`` for a client outside the pages: the pages import it versioned).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from signaling.api.site import PAGES, VERSIONED_PREFIX, Asset, load_site
from signaling.keys import SITE

IMMUTABLE = "public, max-age=31536000, immutable"


def _page(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def serve(request: web.Request) -> web.StreamResponse:
        # no-store rather than no-cache: a back or forward navigation never shows a stale copy
        # (browsers reuse a no-cache page on history navigation without asking), and a staff
        # page is not restored from the back/forward cache after sign-out with the patients it
        # showed. A validator would never be used, so none is sent.
        return web.Response(
            body=request.app[SITE].pages[name],
            content_type="text/html",
            charset="utf-8",
            headers={"Cache-Control": "no-store"},
        )

    return serve


def _not_found() -> web.HTTPNotFound:
    # Never cached: the same URL may exist once this instance (or the next) holds that version.
    return web.HTTPNotFound(headers={"Cache-Control": "no-store"})


def _asset_response(request: web.Request, asset: Asset, cache_control: str) -> web.Response:
    headers = {"Cache-Control": cache_control, "ETag": f'"{asset.etag}"'}
    if any(tag.value in (asset.etag, "*") for tag in request.if_none_match or ()):
        return web.Response(status=304, headers=headers)
    return web.Response(body=asset.body, headers={**headers, "Content-Type": asset.content_type})


async def serve_versioned(request: web.Request) -> web.StreamResponse:
    site = request.app[SITE]
    asset = site.assets.get(request.match_info["path"])
    if request.match_info["version"] != site.version or asset is None:
        raise _not_found()
    return _asset_response(request, asset, IMMUTABLE)


async def serve_static(request: web.Request) -> web.StreamResponse:
    asset = request.app[SITE].assets.get("static/" + request.match_info["path"])
    if asset is None:
        raise _not_found()
    return _asset_response(request, asset, "no-cache")


async def serve_protocol_js(request: web.Request) -> web.StreamResponse:
    return _asset_response(request, request.app[SITE].assets["protocol.js"], "no-cache")


def setup_pages(app: web.Application, web_root: Path) -> None:
    app[SITE] = load_site(web_root)
    for route, name in PAGES.items():
        app.router.add_get(route, _page(name), name=f"page:{name}")
    app.router.add_get(f"{VERSIONED_PREFIX}{{version}}/{{path:.+}}", serve_versioned)
    app.router.add_get("/static/{path:.+}", serve_static, name="static")
    app.router.add_get("/protocol.js", serve_protocol_js)
