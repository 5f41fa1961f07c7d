"""The Bus seam: delivers encoded signaling messages to a connection wherever it lives.

Rooms address connections by an opaque id and publish bytes to it; they never hold a
socket and never call Redis. :class:`LocalBus` serves one process;
:class:`signaling.cluster.bus_redis.RedisBus` (one pub/sub channel per instance) serves several.

Besides messages to sockets, the bus carries work for *the process that holds a connection*
(``is_local``, ``forward``): a room's recording runs in the process of its doctor's socket,
and the patient's recording messages are handed over to it this way.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Protocol

# An inbox takes an encoded message (b"": none) and, to end the connection, a close code.
Inbox = Callable[[bytes, int | None], None]


# Takes a frame another process forwarded here (``Bus.forward``); must not block.
ForwardHandler = Callable[[bytes], None]


class Bus(Protocol):
    on_forward: ForwardHandler

    def new_connection_id(self) -> str:
        """A fresh id for a connection whose socket lives in this process."""

    @property
    def ready(self) -> bool:
        """True while messages published to this process's connections reach them."""

    async def wait_ready(self, within: float) -> bool:
        """True once messages published to this process's connections reach them (waiting
        at most ``within`` seconds)."""

    def attach(self, connection_id: str, inbox: Inbox) -> None:
        """Route messages published to ``connection_id`` to ``inbox`` (which must not block)."""

    def detach(self, connection_id: str) -> None: ...

    def publish(self, connection_id: str, payload: bytes, close_code: int | None = None) -> bool:
        """Hand ``payload`` over for delivery without waiting; False if nobody is attached.

        With ``close_code`` the connection is closed with it once ``payload`` is written.
        """

    def is_local(self, connection_id: str) -> bool:
        """True when ``connection_id`` was made by this process (its socket lives, or lived,
        here)."""

    def forward(self, connection_id: str, frame: bytes) -> None:
        """Hand ``frame`` to ``on_forward`` in the process of ``connection_id``, in order with
        the messages published to it from here."""


class LocalBus:
    """In-process delivery: a dictionary lookup and a put on the connection's queue."""

    def __init__(self) -> None:
        self._inboxes: dict[str, Inbox] = {}
        self.on_forward: ForwardHandler = lambda frame: None

    def new_connection_id(self) -> str:
        return secrets.token_hex(8)

    @property
    def ready(self) -> bool:
        return True

    async def wait_ready(self, within: float) -> bool:
        return True

    def attach(self, connection_id: str, inbox: Inbox) -> None:
        self._inboxes[connection_id] = inbox

    def detach(self, connection_id: str) -> None:
        self._inboxes.pop(connection_id, None)

    def publish(self, connection_id: str, payload: bytes, close_code: int | None = None) -> bool:
        inbox = self._inboxes.get(connection_id)
        if inbox is None:
            return False
        inbox(payload, close_code)
        return True

    def is_local(self, connection_id: str) -> bool:
        return True  # one process: every connection is ours

    def forward(self, connection_id: str, frame: bytes) -> None:
        self.on_forward(frame)

    def __len__(self) -> int:
        return len(self._inboxes)
