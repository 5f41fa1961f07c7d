"""Make a recording seekable: a final remux pass into a new encrypted file with a Duration and
Cues, which players need to show a length and to seek.

Why a pass at the end rather than cues kept while writing: the live muxer writes to an
encrypted stream that cannot seek back, and a Matroska file keeps its Segment size, Duration
and the position of its Cues at the front. At the stop (or at a repair) the plaintext is read
back segment by segment, remuxed by FFmpeg (no transcoding: packets are copied) onto a
seekable output and encrypted again under a new data key. Only the first segment of the new
file is held in memory (FFmpeg comes back to its first bytes at the end); everything else is
encrypted as it is written, and the first segment is sealed last, in its place
(``RecordingWriter(defer_first_segment=True)``). Nothing plaintext touches the disk.

The new file replaces the old one atomically (``os.replace``); the old one's header, the only
copy of its wrapped data key, is then overwritten through a descriptor kept open, so a
recording once deleted cannot come back from the pre-remux copy's blocks. A crash during the
pass leaves the old file in place and a ``.seekable`` leftover that the next pass removes.

A recording cut short (worker killed, disk full) reads with ``recover=True`` up to its last
complete segment; the demuxer stops at the torn cluster, and the result is a complete,
seekable recording of what was whole.
"""

from __future__ import annotations

import io
import logging
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import av.error

from media.encrypted_recording import (
    HEADER_SIZE,
    SEGMENT_SIZE,
    RecordingReader,
    RecordingWriter,
)
from media.keyring import Keyring

log = logging.getLogger(__name__)

LEFTOVER_SUFFIX = ".seekable"


class SeekableRemuxError(Exception):
    """The remux pass failed; the original recording is left as it was."""


class EmptyRecordingError(SeekableRemuxError):
    """The recording holds no media packet (it stopped before any arrived): there is nothing
    to remux, now or at any later pass. The original is left as it was."""


@dataclass(frozen=True, slots=True)
class SeekableResult:
    duration: float  # seconds, as written in the file's Info
    packets: int
    size_bytes: int  # of the new encrypted file
    recovered: bool  # the source lacked its last segment (cut short)
    cpu_seconds: float  # the pass's CPU time (this thread), for the cost figure


class _PlaintextSource(io.RawIOBase):
    """The decrypted chunks as a readable, non-seekable file for the demuxer."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")
        self.exhausted = False  # every chunk was read
        self.delivered = 0  # bytes read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                self.exhausted = True
                return 0
            self._pending = memoryview(chunk)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        self.delivered += size
        return size


class _HeadInMemoryOutput:
    """A seekable output for the muxer: bytes below ``head_size`` stay in memory and may be
    rewritten at any time; bytes past it must come in order and go to the encrypted writer."""

    def __init__(self, writer: RecordingWriter, head_size: int) -> None:
        self._writer = writer
        self._head_size = head_size
        self.head = bytearray()
        self._position = 0
        self._end = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data).cast("B")
        size = view.nbytes
        position = self._position
        if position < self._head_size:
            if position > len(self.head):
                raise io.UnsupportedOperation("a write past the end of the head")
            take = min(size, self._head_size - position)
            self.head[position : position + take] = view[:take]
            view = view[take:]
            position += take
            self._end = max(self._end, position)
        if view.nbytes:
            if position != self._end or len(self.head) < self._head_size:
                raise io.UnsupportedOperation(
                    f"a write at {position} past the head, where only appending at "
                    f"{self._end} is possible"
                )
            self._writer.write(view)
            position += view.nbytes
        self._position = position
        self._end = max(self._end, position)
        return size

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._end}.get(whence)
        if base is None or base + offset < 0:
            raise io.UnsupportedOperation(f"seek({offset}, {whence})")
        self._position = base + offset
        return self._position

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False


def _remux(source: _PlaintextSource, output: _HeadInMemoryOutput) -> tuple[float, int]:
    """Copy every packet into a WebM written on a seekable output; answer (duration, packets)."""
    packets = 0
    end = 0.0
    try:
        inp = av.open(source, mode="r", format="matroska")
    except (av.error.EOFError, av.error.InvalidDataError) as exc:
        # Nothing at all (a worker killed before its first segment), or read to its end
        # without finding a cluster: the muxer's header alone (a stop before the first
        # frame). Anything else that does not open is a failure, tried again next pass.
        nothing = source.delivered == 0
        header_only = isinstance(exc, av.error.EOFError) and source.exhausted
        if nothing or header_only:
            raise EmptyRecordingError("the recording holds no media") from exc
        raise
    with inp:
        with av.open(output, mode="w", format="webm") as out:
            streams = {}
            for stream in inp.streams:
                copy = out.add_stream_from_template(stream)
                copy.metadata.update(stream.metadata)
                streams[stream.index] = copy
            try:
                for packet in inp.demux():
                    if packet.dts is None:
                        continue  # the demuxer's flush packet
                    if packet.pts is not None and packet.time_base is not None:
                        tail = packet.duration or 0
                        end = max(end, float((packet.pts + tail) * packet.time_base))
                    packet.stream = streams[packet.stream.index]
                    out.mux(packet)
                    packets += 1
            except av.error.InvalidDataError:
                # A file cut short ends in a torn cluster: keep what came before it.
                log.warning("recording ends with a damaged cluster; kept %d packets", packets)
            if not packets:
                raise EmptyRecordingError("the recording holds no media packet")
    return end, packets


def make_seekable(
    path: Path | str, keyring: Keyring, *, context: bytes = b"", recover: bool = False
) -> SeekableResult:
    """Remux the recording at ``path`` into a seekable one, in place (see the module doc).

    Raises SeekableRemuxError (the original untouched) when the pass fails, its subclass
    EmptyRecordingError when the recording holds no media, and the reader's
    RecordingIntegrityError when the source does not authenticate.
    """
    path = Path(path)
    started = time.thread_time()
    leftover = path.with_name(path.name + LEFTOVER_SUFFIX)
    leftover.unlink(missing_ok=True)
    with RecordingReader.open(path, keyring, recover=recover, context=context) as reader:
        writer = RecordingWriter.create(
            leftover, keyring.current, context=context, defer_first_segment=True
        )
        output = _HeadInMemoryOutput(writer, SEGMENT_SIZE)
        try:
            duration, packets = _remux(_PlaintextSource(reader.chunks()), output)
            writer.close(first_segment=bytes(output.head))
        except BaseException as exc:
            writer.abort()
            leftover.unlink(missing_ok=True)
            if isinstance(exc, av.error.FFmpegError | io.UnsupportedOperation | ValueError):
                raise SeekableRemuxError(f"{path}: remux failed: {exc}") from exc
            raise
        finally:
            output.head[:] = bytes(len(output.head))  # no plaintext left in freed memory
        recovered = not reader.complete
    _replace_and_shred(leftover, path)
    return SeekableResult(
        duration=round(duration, 3),
        packets=packets,
        size_bytes=path.stat().st_size,
        recovered=recovered,
        cpu_seconds=time.thread_time() - started,
    )


def _replace_and_shred(new: Path, old: Path) -> None:
    fd = os.open(old, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        os.replace(new, old)
        _sync_directory(old.parent)
        size = min(os.fstat(fd).st_size, HEADER_SIZE)
        os.pwrite(fd, secrets.token_bytes(size), 0)
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_directory(directory: Path) -> None:
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
