"""Mux encoded VP8 and Opus frames, as received, into one WebM file (no transcoding).

Layout of a recording: for each participant role, in the order given (``doctor``,
``patient``), one VP8 video stream then one Opus audio stream, titled ``"<role> video"`` and
``"<role> audio"``. A stream stays empty when its participant sent nothing.

Timeline: aiortc exposes no RTCP sender reports, so tracks are aligned by arrival time. Each
incoming track (a *source*: a participant's reconnection starts a new one) is placed at
``arrival of its first frame - origin`` and advances by its own unwrapped RTP timestamps; the
origin is the earliest arrival of the frames buffered before the header. Timestamps within a
stream never go back (a reconnection overlapping the previous source is clamped).

Matroska needs every stream, and the video size, in its header, written before the first
packet: frames are held back until every role has sent a VP8 keyframe (its header gives the
size) or ``header_wait`` seconds have passed since the first frame, whichever comes first.
The size in the header is a hint; players follow the keyframes when it changes.

:class:`RecordingMuxer` is single-threaded (PyAV containers are not thread-safe);
:class:`MuxerThread` runs one in its own thread, fed from any thread, so neither aiortc's
decoder threads nor the event loop ever touch the container, and a slow disk (the writer
fsyncs) does not stall the event loop.

Over 400 lines on purpose: the timeline (arrival alignment, unwrapping, clamping), the
header wait and the VP8 integrity checks are one algorithm over the same per-source state.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import errno
import logging
import queue
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Final, Protocol, cast

import av
import av.error

from media.passthrough import EncodedFrame, MediaKind

log = logging.getLogger(__name__)

VIDEO_CLOCK_RATE: Final = 90_000
AUDIO_CLOCK_RATE: Final = 48_000
VIDEO_TIME_BASE: Final = Fraction(1, VIDEO_CLOCK_RATE)
AUDIO_TIME_BASE: Final = Fraction(1, AUDIO_CLOCK_RATE)
# Opus in WebM needs an OpusHead in CodecPrivate (version 1, 2 channels, no pre-skip,
# 48 kHz, 0 dB gain, mapping family 0); add_mux_stream("opus") would write none.
OPUS_HEAD: Final = b"OpusHead" + struct.pack("<BBHIhB", 1, 2, 0, AUDIO_CLOCK_RATE, 0, 0)
DEFAULT_WIDTH: Final = 640
DEFAULT_HEIGHT: Final = 480
DEFAULT_HEADER_WAIT: Final = 3.0  # seconds after the first frame
MAX_PENDING_FRAMES: Final = 2_000  # ~20 s of one participant: write the header anyway
OPUS_FRAME_SECONDS: Final = 0.02
_TICK = 0.1  # the muxer thread's idle wake-up, seconds
MAX_QUEUED_FRAMES: Final = 3_000  # ~20 s of two participants waiting for a stalled output


class MuxerOverflowError(OSError):
    """The output could not keep up (a stalled disk): the recording was stopped."""


class MuxOutput(Protocol):
    """The binary, write-only file the container goes to (a RecordingWriter in production)."""

    def write(self, data: bytes, /) -> object: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class RtpTimestampUnwrapper:
    """Turns 32-bit RTP timestamps into a monotonic-as-sent 64-bit count (RFC 3550 wraps
    them every 13 h at 90 kHz, 24.9 h at 48 kHz); a step back of less than 2**31 stays a
    step back (reordering), a bigger one is a wrap."""

    def __init__(self) -> None:
        self._last: int | None = None
        self._value = 0

    def unwrap(self, timestamp: int) -> int:
        timestamp &= 0xFFFFFFFF
        if self._last is None:
            self._value = timestamp
        else:
            delta = (timestamp - self._last) & 0xFFFFFFFF
            if delta >= 1 << 31:
                delta -= 1 << 32
            self._value += delta
        self._last = timestamp
        return self._value


@dataclass(frozen=True, slots=True)
class StreamStats:
    role: str
    kind: MediaKind
    packets: int
    duration: float  # seconds, from the recording's origin to the end of the last packet


@dataclass(frozen=True, slots=True)
class MuxResult:
    """What a finished (or failed) muxer produced."""

    duration: float
    streams: tuple[StreamStats, ...]
    bytes_muxed: int  # container bytes handed to the output (plaintext)
    error: BaseException | None = None

    @property
    def packets(self) -> int:
        return sum(s.packets for s in self.streams)


@dataclass(slots=True)
class _Source:
    clock_rate: int
    unwrapper: RtpTimestampUnwrapper
    first_timestamp: int
    offset: int  # in clock ticks from the origin


@dataclass(slots=True)
class _Stream:
    role: str
    kind: MediaKind
    clock_rate: int
    stream: Any = None
    last_pts: int = -1
    end: int = 0  # end of the last packet, in clock ticks
    packets: int = 0
    width: int | None = None
    height: int | None = None


@dataclass(slots=True)
class _Pending:
    role: str
    source_id: int
    frame: EncodedFrame


class _CountingOutput:
    """Counts what the container writes; PyAV only needs write()."""

    def __init__(self, inner: MuxOutput) -> None:
        self._inner = inner
        self.written = 0

    def write(self, data: bytes) -> int:
        self._inner.write(data)
        size = memoryview(data).nbytes
        self.written += size
        return size

    def flush(self) -> None:
        self._inner.flush()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False


class RecordingMuxer:
    """Single-threaded WebM muxer for the streams of several participants (see module doc).

    ``push`` raises OSError (RecordingWriteError) when the output fails: the recording is
    over then (``abort``); other bad input is logged and dropped.
    """

    def __init__(
        self,
        output: MuxOutput,
        roles: Sequence[str],
        *,
        header_wait: float = DEFAULT_HEADER_WAIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not roles or len(set(roles)) != len(roles):
            raise ValueError("roles must be distinct and at least one")
        self._output = _CountingOutput(output)
        self._roles = tuple(roles)
        self._header_wait = header_wait
        self._clock = clock
        self._streams: dict[tuple[str, MediaKind], _Stream] = {}
        for role in self._roles:
            self._streams[(role, "video")] = _Stream(role, "video", VIDEO_CLOCK_RATE)
            self._streams[(role, "audio")] = _Stream(role, "audio", AUDIO_CLOCK_RATE)
        self._sources: dict[tuple[str, MediaKind, int], _Source] = {}
        self._pending: list[_Pending] = []
        self._first_pending_at: float | None = None
        self._container: Any = None
        self._origin = 0.0
        self._closed = False
        self.dropped = 0

    @property
    def header_written(self) -> bool:
        return self._container is not None

    @property
    def bytes_muxed(self) -> int:
        return self._output.written

    def push(self, role: str, source_id: int, frame: EncodedFrame) -> None:
        """Take one frame of ``role``'s track ``source_id`` (a new id per received track)."""
        if self._closed:
            return
        if (role, frame.kind) not in self._streams:
            self.dropped += 1
            log.warning("muxer: no stream for %s %s, frame dropped", role, frame.kind)
            return
        if self._container is None:
            if frame.kind == "video":
                stream = self._streams[(role, "video")]
                if frame.keyframe and stream.width is None:
                    stream.width, stream.height = frame.width, frame.height
            if self._first_pending_at is None:
                self._first_pending_at = self._clock()
            self._pending.append(_Pending(role, source_id, frame))
            if self._header_ready():
                self._write_header()
            return
        self._mux(role, source_id, frame)

    def tick(self) -> None:
        """Let time pass: writes the header once ``header_wait`` is over."""
        if self._container is None and self._pending and self._header_ready():
            self._write_header()

    def close(self) -> MuxResult:
        """Write what is held back and the trailer; the output is left open (caller's)."""
        if not self._closed:
            if self._container is None:
                self._write_header()
            self._closed = True
            if not any(s.packets for s in self._streams.values()):
                self._container.start_encoding()  # an empty recording still gets its header
            self._container.close()
        return self.result()

    def abort(self, error: BaseException | None = None) -> MuxResult:
        """Give up after an output failure; the container's buffers are thrown away."""
        self._closed = True
        self._pending.clear()
        if self._container is not None:
            # FFmpeg's I/O context keeps the write error: closing reports it again.
            with contextlib.suppress(Exception):
                self._container.close()
        return self.result(error)

    def result(self, error: BaseException | None = None) -> MuxResult:
        stats = tuple(
            StreamStats(s.role, s.kind, s.packets, s.end / s.clock_rate)
            for s in self._streams.values()
        )
        duration = max((s.duration for s in stats if s.packets), default=0.0)
        return MuxResult(duration, stats, self._output.written, error)

    # -- internals

    def _header_ready(self) -> bool:
        if all(self._streams[(role, "video")].width is not None for role in self._roles):
            return True
        if len(self._pending) >= MAX_PENDING_FRAMES:
            return True
        assert self._first_pending_at is not None
        return self._clock() - self._first_pending_at >= self._header_wait

    def _write_header(self) -> None:
        pending, self._pending = self._pending, []
        self._origin = min((p.frame.arrival for p in pending), default=self._clock())
        container = av.open(self._output, mode="w", format="webm")
        try:
            for role in self._roles:
                video = self._streams[(role, "video")]
                video.stream = container.add_mux_stream(
                    "vp8",
                    width=video.width or DEFAULT_WIDTH,
                    height=video.height or DEFAULT_HEIGHT,
                )
                video.stream.metadata["title"] = f"{role} video"
                audio = self._streams[(role, "audio")]
                # libopus only for its codec parameters: nothing is encoded.
                audio.stream = container.add_stream("libopus", rate=AUDIO_CLOCK_RATE)
                audio.stream.codec_context.layout = "stereo"
                audio.stream.codec_context.extradata = OPUS_HEAD
                audio.stream.metadata["title"] = f"{role} audio"
        except BaseException:
            with contextlib.suppress(Exception):
                container.close()
            raise
        self._container = container
        log.info(
            "muxer: header written (%s) after %d held-back frames",
            ", ".join(
                f"{r} {self._streams[(r, 'video')].width}x{self._streams[(r, 'video')].height}"
                for r in self._roles
            ),
            len(pending),
        )
        for item in pending:
            self._mux(item.role, item.source_id, item.frame)

    def _mux(self, role: str, source_id: int, frame: EncodedFrame) -> None:
        stream = self._streams[(role, frame.kind)]
        key = (role, frame.kind, source_id)
        source = self._sources.get(key)
        if source is None:
            if frame.kind == "video" and not frame.keyframe:
                self.dropped += 1  # a video source starts at a keyframe
                return
            unwrapper = RtpTimestampUnwrapper()
            first = unwrapper.unwrap(frame.timestamp)
            offset = max(0, round((frame.arrival - self._origin) * stream.clock_rate))
            source = _Source(stream.clock_rate, unwrapper, first, offset)
            self._sources[key] = source
            log.info(
                "muxer: %s %s source %d starts at %.3f s",
                role,
                frame.kind,
                source_id,
                offset / stream.clock_rate,
            )
            pts = offset
        else:
            pts = source.offset + source.unwrapper.unwrap(frame.timestamp) - source.first_timestamp
        if pts < stream.last_pts:
            pts = stream.last_pts  # never back within a stream (reconnections overlap)
        packet = av.Packet(frame.data)
        packet.pts = packet.dts = pts
        packet.time_base = VIDEO_TIME_BASE if frame.kind == "video" else AUDIO_TIME_BASE
        packet.stream = stream.stream
        packet.is_keyframe = frame.keyframe
        try:
            self._container.mux(packet)
        except OSError:
            raise
        except av.error.FFmpegError as exc:
            self.dropped += 1
            log.warning("muxer: %s %s packet dropped: %s", role, frame.kind, exc)
            return
        stream.last_pts = pts
        stream.packets += 1
        length = (
            round(OPUS_FRAME_SECONDS * stream.clock_rate)
            if frame.kind == "audio"
            else stream.clock_rate // 30
        )
        stream.end = max(stream.end, pts + length)


_STOP: Final = object()


class MuxerThread:
    """Runs a :class:`RecordingMuxer` in its own thread and owns the output.

    ``submit`` may be called from any thread; ``stop`` makes the thread drop whatever is
    still queued (consent withdrawal: nothing received after the stop is written, and nothing
    queued before it either), close the container and the output, and resolves to the
    :class:`MuxResult`. An output failure stops the thread the same way (``abort`` on the
    output when it has one: a RecordingWriter keeps its complete segments) and is reported
    once through ``on_error`` from the muxer thread.

    Memory stays bounded when the output stalls (a hung disk): past ``max_queued`` frames
    waiting, the recording stops with :class:`MuxerOverflowError` (reported through
    ``on_error`` from the submitting thread); what was muxed is sealed as usual.
    """

    def __init__(
        self,
        output: MuxOutput,
        roles: Sequence[str],
        *,
        on_error: Callable[[BaseException], None] | None = None,
        header_wait: float = DEFAULT_HEADER_WAIT,
        max_queued: int = MAX_QUEUED_FRAMES,
        name: str = "recording-muxer",
    ) -> None:
        self._output = output
        self._max_queued = max_queued
        self._overflow: MuxerOverflowError | None = None
        self._muxer = RecordingMuxer(output, roles, header_wait=header_wait)
        self._on_error = on_error
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._done: concurrent.futures.Future[MuxResult] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def done(self) -> concurrent.futures.Future[MuxResult]:
        return self._done

    def submit(self, role: str, source_id: int, frame: EncodedFrame) -> None:
        if self._stopping.is_set():
            return
        if self._queue.qsize() >= self._max_queued:
            self._overflowed()
            return
        self._queue.put((role, source_id, frame))

    def _overflowed(self) -> None:
        error = MuxerOverflowError(
            errno.ENOBUFS,
            f"the output fell {self._max_queued} frames behind (storage too slow or hung); "
            "recording stopped",
        )
        self._overflow = error
        self.stop()
        log.error("muxer: %s", error)
        if self._on_error is not None:
            try:
                self._on_error(error)
            except Exception:
                log.exception("muxer: error callback failed")

    def stop(self) -> concurrent.futures.Future[MuxResult]:
        self._stopping.set()
        self._queue.put(_STOP)
        return self._done

    def _run(self) -> None:
        result: MuxResult | None = None
        try:
            while not self._stopping.is_set():
                try:
                    item = self._queue.get(timeout=_TICK)
                except queue.Empty:
                    self._muxer.tick()
                    continue
                if item is _STOP or self._stopping.is_set():
                    break
                role, source_id, frame = cast(tuple[str, int, EncodedFrame], item)
                self._muxer.push(role, source_id, frame)
                self._muxer.tick()
            result = self._muxer.close()
            self._output.close()
            if self._overflow is not None:
                result = dataclasses.replace(result, error=self._overflow)
        except BaseException as exc:
            self._stopping.set()
            log.error("muxer: recording stopped by an error: %s", exc)
            result = self._muxer.abort(exc)
            abort = getattr(self._output, "abort", None)
            with contextlib.suppress(Exception):
                if abort is not None:
                    abort()
                else:
                    self._output.close()
            if self._on_error is not None and self._overflow is None:  # reported once
                try:
                    self._on_error(exc)
                except Exception:
                    log.exception("muxer: error callback failed")
        finally:
            if result is None:
                result = self._muxer.result()
            self._done.set_result(result)
