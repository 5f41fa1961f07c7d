"""The recording worker process: ``python -m media.recorder_worker [--loopback MODE]``.

Speaks the protocol of :mod:`media.recorder_protocol` on stdin/stdout and runs any number of
:class:`media.recorder.Recorder` in its event loop, with the passthrough decoders installed
(process-wide, which is why this is a process of its own: the signaling server's event loop
and its CPU stay clear of media).

``--loopback``: aioice leaves 127.0.0.1 out of its host candidates. ``include`` adds it to the
real addresses (a browser on the same machine, the local default set-up), ``only`` offers it
alone (tests: traffic stays on loopback), ``off`` (production behind a real address) leaves
aioice alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import aioice.ice
import msgspec
from aiortc import RTCIceServer

from config import ConfigError
from media import passthrough
from media.encrypted_recording import RecordingWriter
from media.keyring import load_keyring
from media.muxer import MuxResult
from media.recorder import OfferRejected, Recorder, RecorderStateError
from media.recorder_protocol import (
    MAX_LINE,
    REQUEST_DECODER,
    Answer,
    ErrorCode,
    Failed,
    IntakeStopped,
    Offer,
    ParticipantConnected,
    ParticipantDisconnected,
    Ready,
    RecordingFailed,
    Request,
    Start,
    Started,
    Stop,
    Stopped,
    WorkerMessage,
    encode_line,
)

log = logging.getLogger("media.recorder_worker")

LoopbackMode = Literal["off", "include", "only"]
LOOPBACK_MODES: Final = ("off", "include", "only")
LOOPBACK_ADDRESS: Final = "127.0.0.1"


def patch_host_addresses(mode: LoopbackMode) -> None:
    """Make aioice offer 127.0.0.1 as a host candidate (process-wide)."""
    if mode == "off":
        return
    original: Callable[[bool, bool], list[str]] = aioice.ice.get_host_addresses

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        if mode == "only":
            return [LOOPBACK_ADDRESS] if use_ipv4 else []
        addresses = list(original(use_ipv4, use_ipv6))
        if use_ipv4 and LOOPBACK_ADDRESS not in addresses:
            addresses.append(LOOPBACK_ADDRESS)
        return addresses

    aioice.ice.get_host_addresses = host_addresses


class RequestError(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: ErrorCode = code


@dataclass
class _Recording:
    recorder: Recorder
    path: Path
    final: Stopped | None = None  # figures once stopped or failed


class Worker:
    """Dispatches requests to recordings; ``send`` writes one message to the server."""

    def __init__(self, send: Callable[[WorkerMessage], None]) -> None:
        self._send = send
        self._recordings: dict[str, _Recording] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def handle_line(self, line: bytes) -> None:
        try:
            request = REQUEST_DECODER.decode(line)
        except msgspec.DecodeError as exc:
            self._send(Failed(id=_request_id(line), code="bad_request", message=str(exc)))
            return
        task = asyncio.ensure_future(self._handle(request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, request: Request) -> None:
        try:
            match request:
                case Start():
                    reply: WorkerMessage = await self._start(request)
                case Offer():
                    reply = await self._offer(request)
                case Stop():
                    reply = await self._stop(request)
        except RequestError as exc:
            reply = Failed(id=request.id, code=exc.code, message=str(exc))
        except Exception as exc:
            log.exception("request %s failed", request.id)
            reply = Failed(id=request.id, code="internal", message=type(exc).__name__)
        self._send(reply)

    async def _start(self, request: Start) -> Started:
        rid = request.recording_id
        if not rid or rid in self._recordings:
            raise RequestError("already_exists", f"recording {rid!r} exists in this worker")
        if not request.roles or len(set(request.roles)) != len(request.roles):
            raise RequestError("bad_request", "roles must be distinct and at least one")
        try:
            keyring = load_keyring(Path(request.key_file), create=False)
        except (ConfigError, OSError, ValueError) as exc:
            raise RequestError("key_error", f"cannot load the key: {exc}") from None
        master = keyring.current
        if request.key_id is not None and request.key_id != master.key_id_hex:
            raise RequestError(
                "key_error", f"the current key is {master.key_id_hex}, not {request.key_id}"
            )
        path = Path(request.path)
        try:
            writer = RecordingWriter.create(path, master, context=request.context.encode())
        except OSError as exc:
            raise RequestError("io_error", f"cannot create {path}: {exc.strerror}") from None
        servers = [
            RTCIceServer(urls=s.urls, username=s.username, credential=s.credential)
            for s in request.ice_servers
        ]
        recorder = Recorder(
            rid,
            writer,
            roles=request.roles,
            ice_servers=servers,
            on_participant=lambda role, up: self._participant(rid, role, up),
            on_failure=lambda error: self._failed(rid, error),
        )
        self._recordings[rid] = _Recording(recorder, path)
        log.info("recording %s: started into %s (key %s)", rid, path, master.key_id_hex)
        return Started(id=request.id, recording_id=rid, key_id=master.key_id_hex)

    async def _offer(self, request: Offer) -> Answer:
        recording = self._get(request.recording_id)
        try:
            sdp = await recording.recorder.accept_offer(request.role, request.sdp)
        except OfferRejected as exc:
            raise RequestError("sdp_rejected", str(exc)) from None
        except RecorderStateError as exc:
            raise RequestError("invalid_state", str(exc)) from None
        return Answer(id=request.id, recording_id=request.recording_id, role=request.role, sdp=sdp)

    async def _stop(self, request: Stop) -> Stopped:
        recording = self._get(request.recording_id)
        if recording.final is None:
            sealed = recording.recorder.stop_intake()
            self._send(IntakeStopped(recording_id=request.recording_id))
            result = await asyncio.wrap_future(sealed)
            if recording.final is None:
                recording.final = self._figures(request.recording_id, recording, result)
            self._close_later(recording.recorder)
        final = recording.final
        return Stopped(
            id=request.id,
            recording_id=final.recording_id,
            bytes=final.bytes,
            duration=final.duration,
            complete=final.complete,
        )

    async def shutdown(self) -> None:
        """Stop every recording cleanly (end of stdin, SIGTERM)."""
        await asyncio.gather(
            *(r.recorder.close() for r in self._recordings.values()), return_exceptions=True
        )
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2.0)

    # -- internals

    def _get(self, recording_id: str) -> _Recording:
        recording = self._recordings.get(recording_id)
        if recording is None:
            raise RequestError("unknown_recording", f"no recording {recording_id!r}")
        return recording

    def _figures(self, rid: str, recording: _Recording, result: MuxResult) -> Stopped:
        try:
            size = recording.path.stat().st_size
        except OSError:
            size = 0
        return Stopped(
            id=0,
            recording_id=rid,
            bytes=size,
            duration=round(result.duration, 3),
            complete=result.error is None,
        )

    def _participant(self, rid: str, role: str, connected: bool) -> None:
        if connected:
            self._send(ParticipantConnected(recording_id=rid, role=role))
        else:
            self._send(ParticipantDisconnected(recording_id=rid, role=role))

    def _failed(self, rid: str, error: BaseException) -> None:
        recording = self._recordings.get(rid)
        if recording is None:
            return
        task = asyncio.ensure_future(self._report_failure(rid, recording, error))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _report_failure(self, rid: str, recording: _Recording, error: BaseException) -> None:
        result = await recording.recorder.stop()  # resolved already: the muxer thread ended
        if recording.final is None:
            recording.final = self._figures(rid, recording, result)
        code: ErrorCode = "write_error" if isinstance(error, OSError) else "internal"
        message = str(error) if isinstance(error, OSError) else type(error).__name__
        self._send(
            RecordingFailed(
                recording_id=rid,
                code=code,
                message=message,
                bytes=recording.final.bytes,
                duration=recording.final.duration,
            )
        )
        await recording.recorder.close()

    def _close_later(self, recorder: Recorder) -> None:
        task = asyncio.ensure_future(recorder.close())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _request_id(line: bytes) -> int | None:
    try:
        value = msgspec.json.decode(line)
    except msgspec.DecodeError:
        return None
    if isinstance(value, dict) and isinstance(value.get("id"), int):
        return int(value["id"])
    return None


async def serve(loopback: LoopbackMode) -> None:
    loop = asyncio.get_running_loop()
    # The protocol gets a private copy of stdout; fd 1 becomes stderr, so nothing else can
    # write into the channel.
    channel_fd = os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    channel = os.fdopen(channel_fd, "wb", buffering=0)
    transport, _ = await loop.connect_write_pipe(asyncio.Protocol, channel)

    def send(message: WorkerMessage) -> None:
        if not transport.is_closing():
            transport.write(encode_line(message))

    reader = asyncio.StreamReader(limit=MAX_LINE)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    worker = Worker(send)
    done = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, done.set)

    async def read_requests() -> None:
        try:
            while line := await reader.readline():
                if line.strip():
                    worker.handle_line(line)
        except ValueError:  # a line over MAX_LINE: the channel is unusable
            log.error("request line too long, stopping")
        done.set()

    reading = asyncio.ensure_future(read_requests())
    send(Ready(pid=os.getpid(), loopback=loopback))
    await done.wait()
    reading.cancel()
    await worker.shutdown()
    transport.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m media.recorder_worker")
    parser.add_argument("--loopback", choices=LOOPBACK_MODES, default="off")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level.upper(),
        format="%(asctime)s recorder[%(process)d] %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("aioice").setLevel(logging.WARNING)
    logging.getLogger("aiortc").setLevel(logging.WARNING)
    passthrough.install()
    patch_host_addresses(args.loopback)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.loopback))
    return 0


if __name__ == "__main__":
    code = main()
    # Every recording is sealed and every file closed by now. The interpreter's teardown
    # (freeing aiortc's, PyAV's and OpenSSL's objects one by one) writes nothing, yet it was
    # most of a close: 0.3-1 s on a loaded 2-core machine against ~40 ms for the shutdown
    # itself, enough under heavier load to pass RecorderProcess.close's deadline and be
    # killed. So: flush what is buffered and leave at once.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
