"""Passthrough "decoders" for aiortc: hand the depayloaded encoded frames over, decode nothing.

aiortc's receiver runs ``get_decoder(codec).decode(jitter_frame)`` in one thread per track and
puts what it returns on the track's queue, so ``track.recv()`` yields it. Replacing
``aiortc.rtcrtpreceiver.get_decoder`` with :func:`passthrough_decoder` makes every remote track
of the process yield :class:`EncodedFrame` objects instead of decoded ``av`` frames: a recorder
can mux VP8 and Opus as received, at a fraction of the cost of decoding and re-encoding.

The patch is process-wide (every receiver of the process stops yielding decoded frames): only
the recording worker installs it (:func:`install`).

The direct path: aiortc's decoder thread hands each frame to the event loop
(``run_coroutine_threadsafe(queue.put(frame))``: a coroutine, a task and a loop wake-up per
frame) only for the recorder to pass it on to its muxer thread. :func:`install` also replaces
aiortc's ``decoder_worker`` with :func:`direct_decoder_worker`, which gives the frames of a
track routed with :func:`route_track` straight to a sink (the muxer's ``submit``) from the
decoder thread: the event loop only does network, SRTP and reassembly. It is installed only
when aiortc's ``decoder_worker`` has the signature it was written against; otherwise the stock
worker stays and every frame goes through ``track.recv()`` as before.

Pitfalls handled here (see docs "Facts measured"): ``decode()`` runs in aiortc's decoder
thread and any exception other than ``av.FFmpegError`` kills that thread (``recv()`` then hangs
forever), so everything is caught; raising ``av.error.InvalidDataError`` makes aiortc send a
PLI (keyframe request), which is how a broken or missing keyframe is asked for again.
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import logging
import math
import queue
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

import aiortc.rtcrtpreceiver
import av.error

log = logging.getLogger(__name__)

MediaKind = Literal["audio", "video"]

VP8_START_CODE = b"\x9d\x01\x2a"
VP8_MAX_VERSION = 3
# While waiting for a keyframe, ask again (raise -> PLI) at most this often: the sender may
# have missed the request, and one PLI per dropped frame would flood it.
KEYFRAME_REQUEST_INTERVAL = 1.0
_AVERROR_INVALIDDATA = -1094995529  # FFERRTAG('I','N','D','A')


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One depayloaded frame as it came off the wire.

    ``timestamp`` is the RTP timestamp (as aiortc mapped it: origin 0, not yet reduced
    modulo 2**32 by anyone, so consumers unwrap it themselves); ``arrival`` is
    ``time.monotonic()`` when the frame was complete; ``width``/``height`` are set on VP8
    keyframes only.
    """

    kind: MediaKind
    data: bytes
    timestamp: int
    keyframe: bool
    arrival: float
    width: int | None = None
    height: int | None = None

    def __post_init__(self) -> None:
        if not self.data:
            raise ValueError("an encoded frame cannot be empty")
        if self.kind not in ("audio", "video"):
            raise ValueError(f"unknown media kind {self.kind!r}")


@dataclass(frozen=True, slots=True)
class Vp8FrameInfo:
    keyframe: bool
    version: int
    show_frame: bool
    first_partition_size: int
    width: int | None
    height: int | None


def parse_vp8_frame(data: bytes) -> Vp8FrameInfo:
    """Check a VP8 frame's header (RFC 6386 section 9.1); raise ValueError when it is broken.

    Catches what aiortc's jitter buffer hands over under unrepaired loss: truncated frames,
    frames starting in the middle of a partition.
    """
    if len(data) < 3:
        raise ValueError(f"VP8 frame too short ({len(data)} bytes)")
    tag = data[0] | (data[1] << 8) | (data[2] << 16)
    keyframe = (tag & 1) == 0
    version = (tag >> 1) & 7
    show_frame = bool((tag >> 4) & 1)
    first_partition_size = (tag >> 5) & 0x7FFFF
    if version > VP8_MAX_VERSION:
        raise ValueError(f"VP8 version {version} is not valid")
    header_size = 10 if keyframe else 3
    if len(data) < header_size:
        raise ValueError(f"VP8 keyframe too short ({len(data)} bytes)")
    if first_partition_size == 0 or first_partition_size > len(data) - header_size:
        raise ValueError(
            f"VP8 first partition size {first_partition_size} does not fit in "
            f"{len(data)} bytes (truncated frame)"
        )
    width = height = None
    if keyframe:
        if data[3:6] != VP8_START_CODE:
            raise ValueError("VP8 keyframe without its start code")
        width = (data[6] | (data[7] << 8)) & 0x3FFF
        height = (data[8] | (data[9] << 8)) & 0x3FFF
        if width == 0 or height == 0:
            raise ValueError(f"VP8 keyframe with an empty picture ({width}x{height})")
    return Vp8FrameInfo(keyframe, version, show_frame, first_partition_size, width, height)


class JitterFrameLike(Protocol):
    """What aiortc's jitter buffer hands a decoder (``aiortc.jitterbuffer.JitterFrame``)."""

    data: bytes
    timestamp: int


Clock = Callable[[], float]


def _invalid_data(message: str) -> av.error.InvalidDataError:
    return av.error.InvalidDataError(_AVERROR_INVALIDDATA, message)


class Vp8Passthrough:
    """Yields each valid VP8 frame; drops frames until a keyframe at the start and after a
    broken frame, asking for a keyframe (raising InvalidDataError -> PLI) meanwhile."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._waiting_for_keyframe = True
        self._last_request = -math.inf
        self.frames = 0
        self.dropped = 0
        self.broken = 0

    def decode(self, encoded: JitterFrameLike) -> list[EncodedFrame]:
        now = self._clock()
        data = bytes(encoded.data)
        try:
            info = parse_vp8_frame(data)
        except ValueError as exc:
            self.broken += 1
            self.dropped += 1
            self._waiting_for_keyframe = True
            self._last_request = now
            raise _invalid_data(f"dropping until the next keyframe: {exc}") from None
        if self._waiting_for_keyframe:
            if not info.keyframe:
                self.dropped += 1
                if now - self._last_request >= KEYFRAME_REQUEST_INTERVAL:
                    self._last_request = now
                    raise _invalid_data("waiting for a VP8 keyframe")
                return []
            self._waiting_for_keyframe = False
        self.frames += 1
        return [
            EncodedFrame(
                "video",
                data,
                encoded.timestamp,
                info.keyframe,
                now,
                info.width,
                info.height,
            )
        ]


class OpusPassthrough:
    """Yields each non-empty Opus packet (every one is independently decodable)."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self.frames = 0
        self.dropped = 0

    def decode(self, encoded: JitterFrameLike) -> list[EncodedFrame]:
        if not encoded.data:
            self.dropped += 1
            return []
        self.frames += 1
        return [EncodedFrame("audio", bytes(encoded.data), encoded.timestamp, True, self._clock())]


class DroppingDecoder:
    """For a codec the recorder does not take (the answer offers VP8 and Opus only)."""

    def __init__(self, codec_name: str) -> None:
        self._codec_name = codec_name
        self.dropped = 0

    def decode(self, encoded: JitterFrameLike) -> list[EncodedFrame]:
        if self.dropped == 0:
            log.warning("passthrough: dropping frames of unsupported codec %s", self._codec_name)
        self.dropped += 1
        return []


class _GuardedDecoder:
    """Turns any unexpected exception into an FFmpegError, so aiortc's decoder thread lives."""

    def __init__(self, inner: Vp8Passthrough | OpusPassthrough | DroppingDecoder) -> None:
        self._inner = inner

    def decode(self, encoded: JitterFrameLike) -> list[EncodedFrame]:
        try:
            return self._inner.decode(encoded)
        except av.error.FFmpegError:
            raise
        except Exception as exc:  # a dead decoder thread hangs recv() forever
            log.exception("passthrough: unexpected error in %r", self._inner)
            raise av.error.FFmpegError(errno.EINVAL, f"passthrough failed: {exc}") from None


def passthrough_decoder(codec: Any) -> _GuardedDecoder:
    """Drop-in replacement for ``aiortc.codecs.get_decoder(codec)``."""
    mime = str(getattr(codec, "mimeType", "")).lower()
    inner: Vp8Passthrough | OpusPassthrough | DroppingDecoder
    if mime == "video/vp8":
        inner = Vp8Passthrough()
    elif mime == "audio/opus":
        inner = OpusPassthrough()
    else:
        inner = DroppingDecoder(mime or "unknown")
    return _GuardedDecoder(inner)


FrameSink = Callable[[EncodedFrame], None]
# aiortc's decoder_worker, as direct_decoder_worker replaces it (aiortc 1.x).
DECODER_WORKER_PARAMETERS: Final = ("loop", "input_q", "output_q", "decode_error")

# A routed track's queue -> its sink; looked up by the decoder thread on each frame.
_sinks: weakref.WeakKeyDictionary[asyncio.Queue[Any], FrameSink] = weakref.WeakKeyDictionary()


def route_track(track: object, sink: FrameSink) -> bool:
    """Have ``track``'s decoder thread call ``sink(frame)`` for each frame (from that thread)
    instead of queueing it for ``track.recv()``; the end of the track still reaches
    ``recv()``. False (nothing changed) when the direct path is not installed: read
    ``track.recv()`` then. Route from the ``track`` event: it fires before the receiver starts
    its decoder thread, so no frame goes the other way first."""
    track_queue = getattr(track, "_queue", None)
    if not direct_installed() or not isinstance(track_queue, asyncio.Queue):
        return False
    _sinks[track_queue] = sink
    return True


def direct_decoder_worker(
    loop: asyncio.AbstractEventLoop,
    input_q: queue.Queue[Any],
    output_q: asyncio.Queue[Any],
    decode_error: threading.Event,
) -> None:
    """aiortc's ``decoder_worker`` with the direct path: frames of a routed track go to its
    sink, the others (and the end of every track) to the track's queue as aiortc does."""
    codec_name = None
    decoder: Any = None
    while True:
        task = input_q.get()
        if task is None:
            asyncio.run_coroutine_threadsafe(output_q.put(None), loop)
            return
        codec, encoded_frame = task
        if codec.name != codec_name:
            decoder = _receiver_module.get_decoder(codec)
            codec_name = codec.name
        try:
            frames = decoder.decode(encoded_frame)
        except av.error.FFmpegError as exc:
            log.warning("passthrough: %s frame not passed on: %s", codec.name, exc)
            decode_error.set()  # the receiver sends a PLI
            continue
        sink = _sinks.get(output_q)
        for frame in frames:
            if sink is None:
                asyncio.run_coroutine_threadsafe(output_q.put(frame), loop)
                continue
            try:
                sink(frame)
            except Exception:  # a dead decoder thread hangs the track forever
                log.exception("passthrough: the frame sink failed")


def _matches_aiortc(worker: object) -> bool:
    if not callable(worker):
        return False
    try:
        parameters = tuple(inspect.signature(worker).parameters)
    except (TypeError, ValueError):
        return False
    return parameters == DECODER_WORKER_PARAMETERS


_install_lock = threading.Lock()
_original_get_decoder: Any = None
_original_decoder_worker: Any = None
# Where RTCRtpReceiver looks decoder_worker up and decoder_worker looks get_decoder up.
_receiver_module: Any = aiortc.rtcrtpreceiver


def install(*, direct: bool = True) -> None:
    """Make every aiortc receiver of this process yield EncodedFrame objects (idempotent);
    ``direct``: with the direct path too, when this aiortc's decoder_worker matches."""
    global _original_get_decoder, _original_decoder_worker
    with _install_lock:
        if _original_get_decoder is None:
            _original_get_decoder = _receiver_module.get_decoder
            _receiver_module.get_decoder = passthrough_decoder
            log.info("passthrough decoders installed (process-wide)")
        if direct and _original_decoder_worker is None:
            stock = getattr(_receiver_module, "decoder_worker", None)
            if _matches_aiortc(stock):
                _original_decoder_worker = stock
                _receiver_module.decoder_worker = direct_decoder_worker
                log.info("passthrough direct path installed")
            else:
                log.warning(
                    "passthrough: aiortc's decoder_worker is not the one expected (%s), "
                    "frames go through the event loop",
                    DECODER_WORKER_PARAMETERS,
                )


def uninstall() -> None:
    global _original_get_decoder, _original_decoder_worker
    with _install_lock:
        if _original_get_decoder is not None:
            _receiver_module.get_decoder = _original_get_decoder
            _original_get_decoder = None
        if _original_decoder_worker is not None:
            _receiver_module.decoder_worker = _original_decoder_worker
            _original_decoder_worker = None


def installed() -> bool:
    return _original_get_decoder is not None


def direct_installed() -> bool:
    return _original_decoder_worker is not None
