"""The HTTP edge: the listening socket and the connection protocol, safe with no proxy in front.

``python run.py serve`` faces browsers directly (the README's first command). aiohttp's server
bounds the size of a request head (8190-byte lines, 128 headers) and closes connections idle
between requests, but it gives no deadline to a client that sends its head or its body a byte
at a time, has no limit on open connections, answers its parser's errors without the app's
security headers, and logs each of them, and each client that leaves mid-request, as a
traceback. :func:`start_edge` serves an app with those gaps closed (settings in ``[server]``):

- a request head must be complete ``header_timeout_seconds`` after the connection opens (or,
  on a kept-alive connection, after its first byte); a TLS handshake gets the same limit;
- a request body must be complete ``body_timeout_seconds`` after its head;
- a connection idle between requests closes after ``keepalive_timeout_seconds``;
- at most ``max_connections`` open connections per process; beyond, a new one is closed at once;
- a request the parser refuses gets ``400 bad_request`` in JSON with the security headers;
- every connection given up (timed out, or left by its client mid-request) logs one line.

WebSockets and the waiting-room event stream are long-lived by design and untouched: once a
head is read only a body in flight has a clock, and an upgraded connection has none (the
WebSocket heartbeat watches it).
"""

from __future__ import annotations

import asyncio
import logging
import resource
import ssl
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse
from aiohttp.web_server import Server
from yarl import URL

from config.settings import ServerSettings
from signaling.api.http_api import json_response
from signaling.api.middleware import access_logger_class, set_security_headers
from signaling.errors import AppError

log = logging.getLogger("teleconsult.edge")

# How often, at most, refused connections are reported while the limit holds.
LIMIT_REPORT_SECONDS = 60.0
# File descriptors the process needs beside its connections (store, logs, Redis, workers).
SPARE_FILE_DESCRIPTORS = 128


@dataclass
class ConnectionGate:
    """This process's open HTTP connections, and the refusal of those beyond the limit."""

    limit: int
    open: int = 0
    # Refused since the last report, and when the next report may be written.
    unreported: int = 0
    next_report: float = field(default=float("-inf"))

    def admit(self, now: float) -> bool:
        if self.open < self.limit:
            self.open += 1
            return True
        self.unreported += 1
        self._report(now)
        return False

    def release(self, now: float) -> None:
        self.open -= 1
        self._report(now)

    def _report(self, now: float) -> None:
        # One line when the limit is first hit, then at most one a minute while refusals go
        # on: a flood of connections must not become a flood of log lines.
        if self.unreported and now >= self.next_report:
            log.warning(
                "connection limit reached (server.max_connections = %d): "
                "%d new connection(s) closed at once",
                self.limit,
                self.unreported,
            )
            self.unreported = 0
            self.next_report = now + LIMIT_REPORT_SECONDS


@dataclass(frozen=True)
class EdgeLimits:
    gate: ConnectionGate
    header_timeout: float
    body_timeout: float
    hsts: bool


def _peer(transport: asyncio.BaseTransport | None) -> str:
    peer = transport.get_extra_info("peername") if transport is not None else None
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return "unknown"


class EdgeProtocol(RequestHandler):
    """aiohttp's connection protocol with deadlines, a connection limit and quiet errors."""

    __slots__ = (
        "_admitted",
        "_body",
        "_body_deadline",
        "_gave_up",
        "_head_deadline",
        "_head_started",
        "_limits",
        "_peer",
    )

    def __init__(self, manager: Server, *, limits: EdgeLimits, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._limits = limits
        self._admitted = False
        self._peer = "unknown"
        # Bytes of a request head have come and the head is not complete yet.
        self._head_started = False
        self._head_deadline: asyncio.TimerHandle | None = None
        # The body being received (at most one: the parser reads the next head after it).
        self._body: StreamReader | None = None
        self._body_deadline: asyncio.TimerHandle | None = None
        # The edge wrote this connection's one log line and closed it.
        self._gave_up = False

    # -- connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._limits.gate.admit(self._loop.time()):
            transport.close()
            return
        self._admitted = True
        self._peer = _peer(transport)
        super().connection_made(transport)
        # A connection that never sends a complete head is closed like a slow one.
        self._head_deadline = self._loop.call_later(
            self._limits.header_timeout, self._head_timed_out
        )

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self._admitted:
            return
        self._admitted = False
        self._cancel_deadlines()
        if not self._gave_up:
            # A client leaving while its request is being received or handled: one line,
            # and no access-log line for a request that got no answer.
            if self._body is not None and not self._body.is_eof() and self._unanswered():
                self._gave_up = True
                log.info("client %s left before sending its whole request body", self._peer)
            elif self._head_started:
                self._gave_up = True
                log.info("client %s left before sending a whole request head", self._peer)
        body = self._body
        if body is not None and not body.is_eof() and not self._unanswered():
            # Answered already (e.g. 413), the rest of the body was being read and dropped
            # (aiohttp's lingering close): nothing more can come, so end that wait now rather
            # than at the end of the lingering time.
            body.feed_eof()
        self._limits.gate.release(self._loop.time())
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._admitted:
            return
        reading_heads = not (self._upgraded or self._close or self._force_close)
        if data and reading_heads and self._payload_parser is None and self._body is None:
            # With no body in flight, bytes are (the start of) a request head.
            self._head_started = True
            if self._head_deadline is None:
                self._head_deadline = self._loop.call_later(
                    self._limits.header_timeout, self._head_timed_out
                )
        before = self._request_count
        super().data_received(data)
        parsed = self._request_count - before
        if parsed:
            self._heads_complete(parsed)

    # -- deadlines

    def _heads_complete(self, count: int) -> None:
        self._head_started = False
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None
        for _message, payload in list(self._messages)[-count:]:
            if not payload.is_eof():
                self._body = payload
                self._body_deadline = self._loop.call_later(
                    self._limits.body_timeout, self._body_timed_out
                )
                payload.on_eof(self._body_complete)

    def _body_complete(self) -> None:
        self._body = None
        if self._body_deadline is not None:
            self._body_deadline.cancel()
            self._body_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self._head_started:
            self._give_up(f"no whole request head within {self._limits.header_timeout:g} s")
        else:
            # Nothing sent at all (a browser's spare connection, a port scan): no line.
            self._gave_up = True
            self.force_close()

    def _body_timed_out(self) -> None:
        self._body_deadline = None
        if self._body is None or self._body.is_eof():
            return
        if self._unanswered():
            self._give_up(f"no whole request body within {self._limits.body_timeout:g} s")
        else:
            # The request was answered already (e.g. 413) and the rest of its body is being
            # read and dropped: that answer's access-log line says it all.
            self._gave_up = True
            self.force_close()

    def _unanswered(self) -> bool:
        """The request whose body is in flight is being handled or waits its turn."""
        body = self._body
        return self._request_in_progress or any(p is body for _, p in self._messages)

    def _give_up(self, reason: str) -> None:
        self._gave_up = True
        log.warning("closed the connection of %s: %s", self._peer, reason)
        self.force_close()

    def _cancel_deadlines(self) -> None:
        for handle in (self._head_deadline, self._body_deadline):
            if handle is not None:
                handle.cancel()
        self._head_deadline = self._body_deadline = None

    # -- answers and logs

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> StreamResponse:
        """The answer to a request the parser refused (or, never expected, one that escaped
        every middleware): JSON from the closed error set with the security headers, never
        the parser's message (it quotes the request, which may carry a token in its path)."""
        if request.writer.output_size > 0:
            raise ConnectionError("the response was partly sent; no error can follow it")
        if status >= 500:
            log.error("unhandled error answering %s", self._peer, exc_info=exc)
            error = AppError("internal_error")
        else:
            log.debug("refused a malformed request from %s: %s", self._peer, type(exc).__name__)
            error = AppError("bad_request")
        response = json_response(error.to_json(), status=error.http_status)
        set_security_headers(response.headers, hsts=self._limits.hsts)
        response.force_close()
        return response

    def log_access(
        self, request: BaseRequest, response: StreamResponse, time: float | None
    ) -> None:
        if not self._gave_up:  # else the edge logged this connection's one line already
            super().log_access(request, response, time)


class EdgeSite(web.BaseSite):
    """A TCP site whose connections are :class:`EdgeProtocol`s (TLS handshake limited too)."""

    def __init__(
        self,
        runner: web.AppRunner,
        server: ServerSettings,
        limits: EdgeLimits,
        handler_args: dict[str, Any],
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._settings = server
        self._limits = limits
        self._handler_args = handler_args

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return str(URL.build(scheme=scheme, host=self._settings.host, port=self._settings.port))

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        manager = self._runner.server
        assert manager is not None  # BaseSite refuses a runner that was not set up

        def protocol() -> EdgeProtocol:
            return EdgeProtocol(manager, loop=loop, limits=self._limits, **self._handler_args)

        self._server = await loop.create_server(
            protocol,
            self._settings.host,
            self._settings.port,
            ssl=self._ssl_context,
            ssl_handshake_timeout=self._limits.header_timeout if self._ssl_context else None,
        )


def _ensure_file_descriptors(needed: int) -> None:
    """Raise the soft open-file limit towards what max_connections needs, within the hard one
    (a soft limit of 1024 would fail accept() before the connection limit is reached)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < needed:
            log.warning(
                "open-file limit %d is below server.max_connections plus %d spare: "
                "raise LimitNOFILE (systemd) or ulimit -n",
                target,
                SPARE_FILE_DESCRIPTORS,
            )


async def start_edge(
    app: web.Application, server: ServerSettings, ssl_context: ssl.SSLContext | None = None
) -> web.AppRunner:
    """Start serving ``app`` on ``server.host:server.port``; ``await runner.cleanup()`` stops."""
    _ensure_file_descriptors(server.max_connections + SPARE_FILE_DESCRIPTORS)
    limits = EdgeLimits(
        gate=ConnectionGate(server.max_connections),
        header_timeout=server.header_timeout_seconds,
        body_timeout=server.body_timeout_seconds,
        hsts=server.secure_cookies,
    )
    handler_args: dict[str, Any] = {
        "access_log_class": access_logger_class(server.trust_proxy_headers),
        "access_log": logging.getLogger("teleconsult.access"),
        "keepalive_timeout": server.keepalive_timeout_seconds,
    }
    runner = web.AppRunner(app, handle_signals=False, **handler_args)
    await runner.setup()
    try:
        await EdgeSite(runner, server, limits, handler_args, ssl_context).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
