"""Cross-cutting HTTP behaviour: error mapping, security headers, Origin checks, access log."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from signaling.api.http_api import UNSAFE_METHODS, address_of, json_response
from signaling.errors import AppError, ErrorCode
from signaling.keys import SERVICES
from signaling.store.base import StoreUnavailable

log = logging.getLogger("teleconsult.http")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_HTTP_CODES: dict[int, ErrorCode] = {
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}
# The Server header of every response: a product name, no version to look vulnerabilities up.
SERVER_NAME = "teleconsult"
# Status of a request whose client left before it could be answered (nginx's convention):
# nothing is sent, the number only names the case in the access log.
CLIENT_GONE = 499

Handler = Callable[[web.Request], Awaitable[StreamResponse]]


def _error_response(error: AppError) -> web.Response:
    return json_response(error.to_json(), status=error.http_status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> StreamResponse:
    try:
        return await handler(request)
    except AppError as error:
        return _error_response(error)
    except StoreUnavailable:
        request.app[SERVICES].metrics.store_errors.inc()
        log.warning("store unavailable during %s %s", request.method, redact_path(request.path))
        return _error_response(AppError("unavailable"))
    except web.HTTPException as exc:
        code = _HTTP_CODES.get(exc.status)
        if code is not None and (request.path.startswith("/api/") or exc.status == 413):
            return _error_response(AppError(code))
        raise
    except Exception as exc:
        if isinstance(exc, ConnectionError) and request.transport is None:
            # The client left mid-request (reading its body failed): no answer can reach it,
            # and the HTTP edge logs the connection's end in one line, not a traceback.
            return web.Response(status=CLIENT_GONE)
        log.exception("unhandled error in %s %s", request.method, redact_path(request.path))
        return _error_response(AppError("internal_error"))


@web.middleware
async def body_limit_middleware(request: web.Request, handler: Handler) -> StreamResponse:
    """Refuse a body announced above ``server.max_body_bytes`` before reading a byte of it
    (aiohttp would read up to the limit first, as slowly as the client sends)."""
    announced = request.content_length
    if announced is not None and announced > request.app[SERVICES].settings.server.max_body_bytes:
        raise AppError("payload_too_large")
    return await handler(request)


@web.middleware
async def origin_middleware(request: web.Request, handler: Handler) -> StreamResponse:
    """Refuse cross-origin state changes (a second line behind SameSite=Strict and CSRF).

    Browsers always send Origin on these; a request without one (not a browser) passes here
    and meets the CSRF check if it uses a session. Its own code, not csrf_failed, so a client
    can tell a wrong origin from a missing token (endpoint_errors declares it)."""
    if request.method in UNSAFE_METHODS:
        origin = request.headers.get("Origin")
        allowed = request.app[SERVICES].settings.server.allowed_origins
        if origin is not None and origin not in allowed:
            raise AppError("origin_refused")
    return await handler(request)


async def add_security_headers(request: web.Request, response: StreamResponse) -> None:
    set_security_headers(
        response.headers, hsts=request.app[SERVICES].settings.server.secure_cookies
    )


def set_security_headers(headers: MutableMapping[str, str], *, hsts: bool) -> None:
    """The headers of every response, the app's and the HTTP parser's own (signaling/api/edge.py);
    ``hsts`` when browsers reach the service over https."""
    headers["Server"] = SERVER_NAME
    headers.setdefault("Content-Security-Policy", CSP)
    headers["Referrer-Policy"] = "no-referrer"  # invite links carry a token in their path
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Permissions-Policy"] = (
        "camera=(self), microphone=(self), display-capture=(self), geolocation=()"
    )
    if hsts:
        headers["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"


# Anywhere in the path: a path the router does not normalise (``/x/../join/<token>``) still
# carries the token.
_SECRET_PATH = re.compile(r"/(join|setup)/[^/]+")


def redact_path(path: str) -> str:
    """Invite and setup links carry a token in their path: keep it out of every log."""
    return _SECRET_PATH.sub(lambda m: f"/{m.group(1)}/<redacted>", path)


class RedactingAccessLogger(AbstractAccessLogger):
    """Access log without query strings or path tokens.

    It reads nothing from the app: a request the HTTP parser refused never reached it (no
    route, no settings) and is logged all the same. Whether to trust X-Forwarded-For comes
    from the class (:func:`access_logger_class`)."""

    trust_proxy_headers = False

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        # Behind a trusted proxy, the address the proxy vouches for, not the proxy's own.
        if isinstance(request, BaseRequest):
            address = address_of(request.headers, request.remote, self.trust_proxy_headers)
        else:
            address = request.remote
        self.logger.info(
            '%s "%s %s" %s %.1fms',
            address,
            request.method,
            redact_path(request.path),
            response.status,
            time * 1000,
        )


def access_logger_class(trust_proxy_headers: bool) -> type[RedactingAccessLogger]:
    """The access logger for a server (``server.trust_proxy_headers``)."""
    return type(
        "RedactingAccessLogger",
        (RedactingAccessLogger,),
        {"trust_proxy_headers": trust_proxy_headers},
    )
