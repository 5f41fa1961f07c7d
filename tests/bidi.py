"""A small WebDriver BiDi client over aiohttp WebSockets: commands with ids answered by futures,
events handed to callbacks, and the BiDi value (de)serialisation a test needs.

Why our own and not puppeteer-core: the browser tests are pytest fixtures around Playwright's
sync API and a LiveServer on its own event loop; a Node.js driver would put every Firefox step
behind a subprocess and a second language. BiDi is a JSON protocol over one WebSocket, and the
handful of commands the journeys use (session, browsingContext, script, log, browser) fit here.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
from collections.abc import Callable
from typing import Any

import aiohttp

EventHandler = Callable[[dict[str, Any]], None]


class BidiError(Exception):
    """The browser answered a command with an error, or a script threw."""


class BidiSession:
    """One BiDi session on a browser's ``/session`` endpoint."""

    def __init__(
        self, http: aiohttp.ClientSession, socket: aiohttp.ClientWebSocketResponse
    ) -> None:
        self._http = http
        self._socket = socket
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._handlers: dict[str, list[EventHandler]] = {}
        self._reader = asyncio.get_running_loop().create_task(self._read())
        self.capabilities: dict[str, Any] = {}

    @classmethod
    async def connect(cls, url: str) -> BidiSession:
        http = aiohttp.ClientSession()
        try:
            socket = await http.ws_connect(url, max_msg_size=0)
        except BaseException:
            await http.close()
            raise
        session = cls(http, socket)
        started = await session.command("session.new", {"capabilities": {}})
        session.capabilities = started.get("capabilities", {})
        return session

    def on(self, event: str, handler: EventHandler) -> None:
        self._handlers.setdefault(event, []).append(handler)

    async def command(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        command_id = next(self._ids)
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = answer
        await self._socket.send_str(
            json.dumps({"id": command_id, "method": method, "params": params})
        )
        return await answer

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.command("session.end", {}), timeout=5)
        except (BidiError, TimeoutError, ConnectionError):
            pass  # the browser goes away next anyway
        await self._socket.close()
        self._reader.cancel()
        await self._http.close()

    async def _read(self) -> None:
        async for frame in self._socket:
            if frame.type != aiohttp.WSMsgType.TEXT:
                continue
            message = json.loads(frame.data)
            if "id" in message and message["id"] is not None:
                answer = self._pending.pop(message["id"], None)
                if answer is None or answer.done():
                    continue
                if message.get("type") == "error":
                    answer.set_exception(
                        BidiError(f"{message.get('error')}: {message.get('message')}")
                    )
                else:
                    answer.set_result(message.get("result", {}))
            elif message.get("type") == "event":
                for handler in self._handlers.get(message["method"], []):
                    handler(message["params"])
        for answer in self._pending.values():
            if not answer.done():
                answer.set_exception(ConnectionError("the browser closed the BiDi session"))


def local_value(value: Any) -> dict[str, Any]:
    """A Python value as a BiDi LocalValue (an argument of script.callFunction)."""
    if value is None:
        return {"type": "null"}
    if isinstance(value, bool):
        return {"type": "boolean", "value": value}
    if isinstance(value, int | float):
        return {"type": "number", "value": value}
    if isinstance(value, str):
        return {"type": "string", "value": value}
    if isinstance(value, list | tuple):
        return {"type": "array", "value": [local_value(item) for item in value]}
    if isinstance(value, dict):
        return {"type": "object", "value": [[str(k), local_value(v)] for k, v in value.items()]}
    raise TypeError(f"cannot pass {type(value).__name__} to a page")


_NUMBERS = {"NaN": math.nan, "-0": -0.0, "Infinity": math.inf, "-Infinity": -math.inf}


def python_value(remote: dict[str, Any]) -> Any:
    """A BiDi RemoteValue (a script's result) as a Python value; handles (nodes, windows,
    functions) come back as their type name."""
    kind = remote["type"]
    if kind in ("undefined", "null"):
        return None
    if kind in ("string", "boolean"):
        return remote["value"]
    if kind == "number":
        number = remote["value"]
        return _NUMBERS.get(number, number) if isinstance(number, str) else number
    if kind in ("array", "set"):
        return [python_value(item) for item in remote.get("value", [])]
    if kind in ("object", "map"):
        return {
            key if isinstance(key, str) else python_value(key): python_value(item)
            for key, item in remote.get("value", [])
        }
    return kind
