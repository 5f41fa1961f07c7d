"""Refused access to records and endpoints, in the audit trail without flooding it.

A staff member who asks for a consultation or a recording that is not theirs (answered 404, as
for an id that does not exist, so ids are not confirmed to outsiders), or who calls an admin
endpoint without being one (403), is refused by raising :class:`AccessRefused`. The API
registry (``http_api``), which knows the route and the address, hands it to
:class:`AccessRefusals`, which writes ``access.refused``: the actor and role, the target kind
and id as given (only when it has the shape of an id: never text a client typed), the route
and the reason (``not_owner``, ``not_found``, ``not_admin``, and ``not_permitted`` for a
feature the caller's role never has, signaling/consultations/permissions.py). An incident
report on the record or on the actor then shows the probing.

Rate limit. A script can make thousands of refused requests a minute, and each entry costs a
store write and a place in the chain that every verification walks. So at most
:data:`REFUSALS_PER_WINDOW` entries are written per actor per window of
:data:`WINDOW_SECONDS` (a fixed window opened by the actor's first refusal); the refusals past
the cap are only counted, and written as one ``access.refused_suppressed`` entry (``count``,
``window_start``) when the window closes: the first of the actor's next refusal after it, the
once-a-second check of :meth:`AccessRefusals.running`, or the application's shutdown. Every
refusal is thus in the trail, individually or in a count, and an actor adds at most
``REFUSALS_PER_WINDOW + 1`` entries a minute. Windows live in memory, per process: with several
instances the cap applies on each, and a process killed outright loses the count of its open
windows (its individual entries are written already).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from signaling.audit_actions import AuditAction
from signaling.clock import Clock
from signaling.errors import AppError, ErrorCode
from signaling.models import User

log = logging.getLogger("teleconsult.audit")

REFUSALS_PER_WINDOW = 10
WINDOW_SECONDS = 60.0
# How often (event-loop seconds) closed windows are looked for and summarised.
FLUSH_EVERY_SECONDS = 1.0

RefusalReason = Literal["not_owner", "not_found", "not_admin", "not_permitted"]
TargetKind = Literal["consultation", "recording", "user", ""]


class AccessRefused(AppError):
    """A refusal answered as ``code`` like any :class:`AppError`, and audited by the API
    registry. ``target`` is the id as the client gave it (the registry keeps it only if it has
    an id's shape); an empty ``kind`` lets the registry take both from the route's path."""

    def __init__(
        self,
        code: ErrorCode,
        user: User,
        reason: RefusalReason,
        kind: TargetKind = "",
        target: str = "",
        message: str | None = None,
    ) -> None:
        super().__init__(code, message)
        self.user = user
        self.reason = reason
        self.target_kind = kind
        self.target = target


class Recorder(Protocol):
    """What writes an entry (signaling.audit.AuditTrail)."""

    async def record(
        self,
        action: AuditAction,
        *,
        actor: str,
        actor_role: str,
        target: str = "",
        outcome: str = "success",
        address: str = "",
        **details: Any,
    ) -> Any: ...


@dataclass
class _Window:
    start: float
    role: str
    address: str
    written: int = 0
    suppressed: int = 0


class AccessRefusals:
    """Writes ``access.refused`` entries, at most ``limit`` per actor per ``window`` seconds,
    and one ``access.refused_suppressed`` per window for the rest (see the module's text)."""

    def __init__(
        self,
        trail: Recorder,
        clock: Clock,
        limit: int = REFUSALS_PER_WINDOW,
        window: float = WINDOW_SECONDS,
    ) -> None:
        self._trail = trail
        self._clock = clock
        self.limit = limit
        self.window = window
        self._windows: dict[str, _Window] = {}

    async def refused(
        self,
        *,
        actor: str,
        actor_role: str,
        kind: str,
        target: str,
        route: str,
        address: str,
        reason: str,
    ) -> None:
        now = self._clock.now()
        window = self._windows.get(actor)
        if window is not None and now >= window.start + self.window:
            del self._windows[actor]
            await self._summarise(actor, window)
            window = None
        if window is None:
            window = self._windows[actor] = _Window(now, actor_role, address)
        # Counted before any await: concurrent refusals of one actor never exceed the cap.
        if window.written >= self.limit:
            window.suppressed += 1
            return
        window.written += 1
        await self._trail.record(
            "access.refused",
            actor=actor,
            actor_role=actor_role,
            target=target,
            outcome="refused",
            address=address,
            kind=kind,
            route=route,
            reason=reason,
        )

    async def flush(self, *, everything: bool = False) -> None:
        """Summarise the windows that have closed (``everything``: all of them, at shutdown)."""
        now = self._clock.now()
        for actor, window in list(self._windows.items()):
            if everything or now >= window.start + self.window:
                # Taken out before the await: a refusal meanwhile opens a fresh window.
                if self._windows.get(actor) is window:
                    del self._windows[actor]
                    await self._summarise(actor, window)

    async def _summarise(self, actor: str, window: _Window) -> None:
        if not window.suppressed:
            return
        await self._trail.record(
            "access.refused_suppressed",
            actor=actor,
            actor_role=window.role,
            outcome="refused",
            address=window.address,
            count=window.suppressed,
            window_start=window.start,
            window_seconds=self.window,
        )

    async def running(self, app: object) -> AsyncIterator[None]:
        """A cleanup context (after the store's): closed windows summarised once a second,
        and every open one at shutdown, before the store closes."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(FLUSH_EVERY_SECONDS)
                try:
                    await self.flush()
                except Exception:
                    # The store may be away for a while: the counts wait for the next pass.
                    log.exception("access refusals: could not write a summary")

        task = asyncio.get_running_loop().create_task(loop())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self.flush(everything=True)
