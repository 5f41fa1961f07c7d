"""What the signaling server calls to record: a recording worker process and its protocol.

>>> worker = await RecorderProcess.spawn(loopback="include")  # doctest: +SKIP
>>> await worker.start_recording("rec-1", path, key_file)  # doctest: +SKIP
>>> answer_sdp = await worker.offer("rec-1", "doctor", offer_sdp)  # doctest: +SKIP
>>> stopped = await worker.stop("rec-1")  # doctest: +SKIP (within 1 s, or killed)
>>> await worker.close()  # doctest: +SKIP

Unsolicited events (participant connected/disconnected, a recording stopped by a write
error) arrive on :meth:`RecorderProcess.next_event` / ``on_event``. Every request has a
timeout; a worker that misses one is killed (SIGKILL) and every pending request fails with
:class:`RecorderUnavailable`: for a stop that is what keeps the one-second promise of consent
withdrawal (a dead worker writes nothing more; its files read with ``recover=True``).

One worker per recording is the simple choice: a hung worker killed on a missed deadline
takes only its own recording along, and recordings spread over the cores. A worker can hold
several recordings (the protocol names each), which saves ~60 MB of memory per recording.
``loopback``: ``"include"`` for the local default set-up (browser and server on one machine),
``"only"`` in tests, ``"off"`` in production (see :mod:`media.recorder_worker`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeVar

import msgspec

from media.recorder_protocol import (
    DEFAULT_ROLES,
    MAX_LINE,
    WORKER_MESSAGE_DECODER,
    Answer,
    ErrorCode,
    Event,
    Failed,
    IceServerConfig,
    Offer,
    Ready,
    Reply,
    Request,
    Start,
    Started,
    Stop,
    Stopped,
    encode_line,
)

log = logging.getLogger(__name__)

PROJECT_ROOT: Final = Path(__file__).resolve().parent.parent
SPAWN_TIMEOUT: Final = 20.0  # importing aiortc and PyAV on a cold, busy machine
START_TIMEOUT: Final = 5.0
OFFER_TIMEOUT: Final = 10.0  # the answer waits for candidate gathering
STOP_TIMEOUT: Final = 1.0  # consent withdrawal takes effect within a second
CLOSE_TIMEOUT: Final = 3.0

R = TypeVar("R", bound=Reply)


@dataclass(frozen=True, slots=True)
class WorkerExited:
    """Not a protocol message: the worker process ended (every recording in it stopped; a
    killed worker leaves files that read with ``recover=True``)."""

    returncode: int | None
    reason: str


ServiceEvent = Event | WorkerExited


class RecorderServiceError(Exception):
    """Base of the errors of the recording service."""


class RecorderRequestFailed(RecorderServiceError):
    """The worker refused or failed a request; ``code`` is the protocol's error code."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code: ErrorCode = code
        self.message = message


class RecorderUnavailable(RecorderServiceError):
    """The worker died, or missed a deadline and was killed."""


class RecorderProcess:
    """One recording worker process (it may hold several recordings)."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        *,
        on_event: Callable[[ServiceEvent], None] | None = None,
    ) -> None:
        self._process = process
        self._on_event = on_event
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Reply]] = {}
        self._events: asyncio.Queue[ServiceEvent] = asyncio.Queue()
        self._ready: asyncio.Future[Ready] = asyncio.get_running_loop().create_future()
        self._dead: str | None = None
        self._reader = asyncio.ensure_future(self._read_replies())

    @classmethod
    async def spawn(
        cls,
        *,
        loopback: str = "off",
        python: str = sys.executable,
        on_event: Callable[[ServiceEvent], None] | None = None,
        file_size_limit: int | None = None,
        log_level: str = "INFO",
        reply_timeout: float = SPAWN_TIMEOUT,
    ) -> RecorderProcess:
        """Start ``python -m media.recorder_worker`` and wait for its ``ready``.

        ``file_size_limit`` (bytes, RLIMIT_FSIZE) caps every file the worker writes: past it
        writes fail with EFBIG and the recording stops with a ``write_error`` event, like a
        full disk.
        """
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p
        )
        preexec: Callable[[], None] | None = None
        if file_size_limit is not None:
            limit = file_size_limit

            def preexec() -> None:
                import resource

                resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        process = await asyncio.create_subprocess_exec(
            python,
            "-m",
            "media.recorder_worker",
            "--loopback",
            loopback,
            "--log-level",
            log_level,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=None,  # the worker's log goes where ours goes
            env=env,
            cwd=str(PROJECT_ROOT),
            limit=MAX_LINE,
            preexec_fn=preexec,
        )
        worker = cls(process, on_event=on_event)
        try:
            await asyncio.wait_for(asyncio.shield(worker._ready), reply_timeout)
        except (TimeoutError, RecorderUnavailable):
            await worker.kill()
            raise RecorderUnavailable("the recording worker did not start") from None
        return worker

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def alive(self) -> bool:
        return self._dead is None and self._process.returncode is None

    async def start_recording(
        self,
        recording_id: str,
        path: Path | str,
        key_file: Path | str,
        *,
        key_id: str | None = None,
        roles: Sequence[str] = DEFAULT_ROLES,
        ice_servers: Sequence[IceServerConfig] = (),
        context: str = "",
        reply_timeout: float = START_TIMEOUT,
    ) -> Started:
        request = Start(
            id=next(self._ids),
            recording_id=recording_id,
            path=str(path),
            key_file=str(key_file),
            key_id=key_id,
            roles=list(roles),
            ice_servers=list(ice_servers),
            context=context,
        )
        return await self._call(request, Started, reply_timeout)

    async def offer(
        self, recording_id: str, role: str, sdp: str, *, reply_timeout: float = OFFER_TIMEOUT
    ) -> str:
        """Send ``role``'s complete offer; return the recorder's complete answer SDP."""
        request = Offer(id=next(self._ids), recording_id=recording_id, role=role, sdp=sdp)
        return (await self._call(request, Answer, reply_timeout)).sdp

    async def stop(self, recording_id: str, *, reply_timeout: float = STOP_TIMEOUT) -> Stopped:
        """Stop a recording: muxing ends and the file is sealed, or the worker is killed."""
        return await self._call(
            Stop(id=next(self._ids), recording_id=recording_id), Stopped, reply_timeout
        )

    async def next_event(self) -> ServiceEvent:
        return await self._events.get()

    async def close(self, reply_timeout: float = CLOSE_TIMEOUT) -> int | None:
        """Ask the worker to stop every recording and exit (EOF on stdin); kill it if it
        does not within ``reply_timeout``. Returns its exit code."""
        stdin = self._process.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()
        try:
            await asyncio.wait_for(self._process.wait(), reply_timeout)
        except TimeoutError:
            log.warning("recording worker %d did not exit, killing it", self.pid)
            await self.kill()
        await self._reader
        return self._process.returncode

    async def kill(self) -> None:
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            await self._process.wait()
        self._fail_pending("the recording worker was killed")
        if not self._reader.done():
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    # -- internals

    async def _call(self, request: Request, expected: type[R], reply_timeout: float) -> R:
        if not self.alive:
            raise RecorderUnavailable(self._dead or "the recording worker has exited")
        stdin = self._process.stdin
        assert stdin is not None
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[request.id] = future
        try:
            stdin.write(encode_line(request))
            await stdin.drain()
            reply = await asyncio.wait_for(asyncio.shield(future), reply_timeout)
        except TimeoutError:
            log.error(
                "recording worker %d: no reply to %s within %.1f s, killing it",
                self.pid,
                type(request).__name__.lower(),
                reply_timeout,
            )
            await self.kill()
            raise RecorderUnavailable(
                f"the recording worker missed the {reply_timeout:.1f} s deadline and was killed"
            ) from None
        except (ConnectionError, BrokenPipeError):
            raise RecorderUnavailable("the recording worker has exited") from None
        finally:
            self._pending.pop(request.id, None)
        if isinstance(reply, Failed):
            raise RecorderRequestFailed(reply.code, reply.message)
        if not isinstance(reply, expected):
            raise RecorderServiceError(f"unexpected reply {type(reply).__name__}")
        return reply

    async def _read_replies(self) -> None:
        stdout = self._process.stdout
        assert stdout is not None
        try:
            while line := await stdout.readline():
                try:
                    message = WORKER_MESSAGE_DECODER.decode(line)
                except msgspec.DecodeError:
                    log.error("recording worker %d: unreadable line %r", self.pid, line[:200])
                    continue
                self._dispatch(message)
        except (ValueError, ConnectionError) as exc:
            log.error("recording worker %d: channel broken: %s", self.pid, exc)
        finally:
            self._fail_pending("the recording worker has exited")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._process.wait(), 1.0)
            self._emit(WorkerExited(self._process.returncode, self._dead or "exited"))

    def _dispatch(self, message: Reply | Event) -> None:
        if isinstance(message, Ready):
            if not self._ready.done():
                self._ready.set_result(message)
            return
        if isinstance(message, Started | Answer | Stopped | Failed):
            future = self._pending.get(message.id) if message.id is not None else None
            if future is not None and not future.done():
                future.set_result(message)
            elif isinstance(message, Failed):
                log.error("recording worker %d: %s: %s", self.pid, message.code, message.message)
            return
        self._emit(message)

    def _emit(self, event: ServiceEvent) -> None:
        self._events.put_nowait(event)
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:
                log.exception("recording event handler failed")

    def _fail_pending(self, why: str) -> None:
        if self._dead is None:
            self._dead = why
        for future in self._pending.values():
            if not future.done():
                future.set_exception(RecorderUnavailable(why))
        if not self._ready.done():
            self._ready.set_exception(RecorderUnavailable(why))
            self._ready.exception()  # retrieved: no "never retrieved" warning
