"""Encrypted recording files: a streaming AEAD (AES-256-GCM in fixed segments), a crash-safe
writer PyAV can mux into, a constant-memory reader, and crypto-shredding.

The construction follows age's STREAM and Tink's AES-GCM-HKDF streaming AEAD: the plaintext is
cut into segments of ``segment_size`` bytes, each sealed with its own nonce made of a per-file
random prefix, the segment counter and a last-segment flag. Reordering, duplicating or
dropping segments changes the nonce a segment is opened with; truncation removes the one
segment sealed with the last flag.

Byte layout, format version 1 (all integers big-endian)::

    offset  size  field
    ------  ----  ---------------------------------------------------------------------------
         0     8  magic            b"TCREC\\r\\n\\x1a"
         8     1  version          1
         9     4  segment_size     plaintext bytes per segment (65536 by default)
        13     7  nonce_prefix     random, per file
        20     8  key_id           id of the master key that wraps the data key (keyring.py)
        28    12  wrap_nonce       random
        40    48  wrapped_key      AES-256-GCM(master wrap key, wrap_nonce,
                                               plaintext = 32-byte random data key,
                                               associated data = bytes 0..27 || context)
        88        segment 0, segment 1, ..., segment n (n >= 0)

    segment i = AES-256-GCM(segment_key, nonce_i, plaintext_i, associated data = b"")
                = ciphertext (len(plaintext_i) bytes) || tag (16 bytes)
    nonce_i     = nonce_prefix (7) || i as uint32 (4) || last flag (1: 0x01 for n, else 0x00)
    segment_key = HKDF-SHA256(ikm = data key, salt = none,
                              info = b"teleconsult recording v1 segments" || bytes 0..19
                                     || context)

    context     = associated data chosen by the caller and not stored in the file (b"" by
                  default), e.g. the recording's id: a whole file put in the place of
                  another recording then fails at its header. Readers pass the same bytes.

Every segment but the last holds exactly ``segment_size`` plaintext bytes; the last one holds
0 to ``segment_size - 1`` bytes, so a segment's role follows from its length and no
look-ahead is needed to seal it. An empty recording is the header plus one 16-byte segment.

Header integrity: every header field is associated data of the key wrap, so a changed field
fails the unwrap; the stream fields (bytes 0..19) also go into the segment key, and the data
key is unique per recording, so a header moved onto another recording's segments fails at
segment 0. The key id and the wrapped key are left out of the segment key on purpose: a
recording can be re-wrapped under a new master key without re-encrypting its segments
(:func:`rewrap`).

Crypto-shredding: the data key exists only wrapped in the header, so :func:`shred` overwrites
the header and unlinks the file; retiring a master key shreds everything it wrapped.

Over 400 lines on purpose: the writer, the reader and shredding share one byte format and
one nonce and key schedule; kept together, a change to the format is made in one place.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import secrets
import struct
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from media.keyring import KEY_ID_BYTES, Keyring, MasterKey

log = logging.getLogger(__name__)

MAGIC = b"TCREC\r\n\x1a"
FORMAT_VERSION = 1
SEGMENT_SIZE = 64 * 1024
MIN_SEGMENT_SIZE = 16
MAX_SEGMENT_SIZE = 16 * 1024 * 1024
NONCE_PREFIX_BYTES = 7
DATA_KEY_BYTES = 32
TAG_BYTES = 16
WRAP_NONCE_BYTES = 12
MAX_SEGMENTS = 2**32  # the counter is 32 bits
DEFAULT_FSYNC_EVERY = 16  # segments: 1 MiB at the default size

_STREAM_FIELDS = struct.Struct(">8sBI7s")  # magic, version, segment_size, nonce_prefix
_HEADER = struct.Struct(f">8sBI7s{KEY_ID_BYTES}s{WRAP_NONCE_BYTES}s{DATA_KEY_BYTES + TAG_BYTES}s")
HEADER_SIZE = _HEADER.size  # 88
_STREAM_END = _STREAM_FIELDS.size  # 20: bytes bound into the segment key
_WRAP_AAD_END = _STREAM_END + KEY_ID_BYTES  # 28: bytes bound into the key wrap
_SEGMENT_KEY_INFO = b"teleconsult recording v1 segments"
_COUNTER = struct.Struct(">IB")


class RecordingError(Exception):
    """Base of the errors of this module."""


class RecordingIntegrityError(RecordingError):
    """A recording failed authentication: wrong key, tampered, truncated or reordered data.

    The message names the file, what failed and the segment index; never key material.
    """


class RecordingWriteError(RecordingError, OSError):
    """Writing a recording failed (for instance ENOSPC); ``errno`` is the cause's when known.

    The file stays valid up to its last complete segment and reads with ``recover=True``.
    """


def _write_error(code: int | None, message: str) -> RecordingWriteError:
    return RecordingWriteError(code, message) if code is not None else RecordingWriteError(message)


class BinarySink(Protocol):
    """What the writer needs from the file it writes to (``fileno``/``truncate`` are used
    when present)."""

    def write(self, data: bytes, /) -> object: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class BinarySource(Protocol):
    def read(self, size: int = -1, /) -> bytes | None: ...


@dataclass(frozen=True)
class RecordingHeader:
    version: int
    segment_size: int
    nonce_prefix: bytes
    key_id: bytes
    wrap_nonce: bytes
    wrapped_key: bytes

    def __post_init__(self) -> None:
        if not MIN_SEGMENT_SIZE <= self.segment_size <= MAX_SEGMENT_SIZE:
            raise ValueError(
                f"segment size must be between {MIN_SEGMENT_SIZE} and {MAX_SEGMENT_SIZE}"
            )

    def encode(self) -> bytes:
        return _HEADER.pack(
            MAGIC,
            self.version,
            self.segment_size,
            self.nonce_prefix,
            self.key_id,
            self.wrap_nonce,
            self.wrapped_key,
        )

    @property
    def encrypted_segment_size(self) -> int:
        return self.segment_size + TAG_BYTES


def _segment_aead(data_key: bytes, header_bytes: bytes, context: bytes) -> AESGCM:
    info = _SEGMENT_KEY_INFO + header_bytes[:_STREAM_END] + context
    hkdf = HKDF(algorithm=hashes.SHA256(), length=DATA_KEY_BYTES, salt=None, info=info)
    return AESGCM(hkdf.derive(data_key))


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + _COUNTER.pack(index, 1 if last else 0)


def _seal_header(
    master: MasterKey, segment_size: int, prefix: bytes, data_key: bytes, context: bytes
) -> bytes:
    """Header bytes with ``data_key`` wrapped by ``master``, every field as associated data."""
    wrap_nonce = secrets.token_bytes(WRAP_NONCE_BYTES)
    aad = _STREAM_FIELDS.pack(MAGIC, FORMAT_VERSION, segment_size, prefix) + master.key_id
    wrapped = AESGCM(master.wrap_key).encrypt(wrap_nonce, data_key, aad + context)
    header = RecordingHeader(
        FORMAT_VERSION, segment_size, prefix, master.key_id, wrap_nonce, wrapped
    ).encode()
    assert header[:_WRAP_AAD_END] == aad
    return header


def _open_header(
    raw: bytes, keyring: Keyring, context: bytes, name: str
) -> tuple[RecordingHeader, bytes]:
    """Parse and authenticate a header; return it with the data key."""
    header = parse_header(raw, name)
    master = keyring.get(header.key_id)
    if master is None:
        raise RecordingIntegrityError(
            f"{name}: header: master key {header.key_id.hex()} is not in the key ring "
            "(wrong or retired key)"
        )
    try:
        data_key = AESGCM(master.wrap_key).decrypt(
            header.wrap_nonce, header.wrapped_key, raw[:_WRAP_AAD_END] + context
        )
    except InvalidTag:
        raise RecordingIntegrityError(
            f"{name}: header: authentication failed (wrong master key, tampered header or "
            "another recording's context)"
        ) from None
    return header, data_key


def parse_header(raw: bytes, name: str = "<recording>") -> RecordingHeader:
    """Check the framing of a header (not its authenticity: that needs the key)."""
    if len(raw) < HEADER_SIZE:
        raise RecordingIntegrityError(
            f"{name}: header: file too short ({len(raw)} bytes) to be a recording"
        )
    magic, version, segment_size, prefix, key_id, wrap_nonce, wrapped = _HEADER.unpack(
        raw[:HEADER_SIZE]
    )
    if magic != MAGIC:
        raise RecordingIntegrityError(f"{name}: header: not an encrypted recording (bad magic)")
    if version != FORMAT_VERSION:
        raise RecordingIntegrityError(f"{name}: header: unsupported format version {version}")
    try:
        return RecordingHeader(version, segment_size, prefix, key_id, wrap_nonce, wrapped)
    except ValueError as exc:
        raise RecordingIntegrityError(f"{name}: header: {exc}") from None


# -- writing ---------------------------------------------------------------------------------


class RecordingWriter:
    """A write-only, non-seekable binary file that encrypts what it is given.

    Plaintext is held in memory up to one segment; each full segment is sealed and written at
    once, so at most ``segment_size`` bytes are lost if the process dies. ``flush()`` flushes
    sealed segments only (a partial segment cannot be written without ending the stream).
    ``close()`` seals the last segment; until then the file reads only with ``recover=True``.
    Not thread-safe: one producer (PyAV's muxer) at a time.

    A failed write (ENOSPC, EIO...) raises RecordingWriteError and cuts the partial segment
    off when the sink can truncate; every later call raises too, ``close()`` included (the
    file stays unfinished). PyAV re-raises the error from ``mux()``, but closing its container
    afterwards raises ``av.error.PyAVCallbackError`` (FFmpeg's I/O context keeps the error):
    ``failure`` holds the cause.

    >>> with RecordingWriter.create(path, keyring.current) as out:  # doctest: +SKIP
    ...     with av.open(out, mode="w", format="webm") as container: ...
    """

    def __init__(
        self,
        sink: BinarySink,
        master: MasterKey,
        *,
        segment_size: int = SEGMENT_SIZE,
        fsync_every: int = DEFAULT_FSYNC_EVERY,
        context: bytes = b"",
        close_sink: bool = True,
        name: str | None = None,
        defer_first_segment: bool = False,
        _dir_to_sync: Path | None = None,
    ) -> None:
        if fsync_every < 0:
            raise ValueError("fsync_every must be >= 0 (0: only at close)")
        data_key = secrets.token_bytes(DATA_KEY_BYTES)
        prefix = secrets.token_bytes(NONCE_PREFIX_BYTES)
        header_bytes = _seal_header(master, segment_size, prefix, data_key, context)
        self.header = parse_header(header_bytes)
        self.name = name if name is not None else str(getattr(sink, "name", "<recording>"))
        self._sink = sink
        self._close_sink = close_sink
        self._dir_to_sync = _dir_to_sync
        self._aead = _segment_aead(data_key, header_bytes, context)
        self._prefix = prefix
        self._segment_size = segment_size
        self._buffer = bytearray(segment_size)
        self._view = memoryview(self._buffer)
        self._fill = 0
        self._index = 0
        self._fsync_every = fsync_every
        self._position = 0  # plaintext bytes accepted
        self._committed = 0  # file bytes known written: header and whole segments
        self._failure: RecordingWriteError | None = None
        self._closed = False
        self._complete = False
        self._write_out(header_bytes, "header")
        self._committed = HEADER_SIZE
        self._deferred = defer_first_segment
        if defer_first_segment:
            # Segment 0 is sealed last, in its place (close(first_segment=...)): a muxer on a
            # seekable output comes back to its first bytes (sizes, duration, index) at the
            # end. Each segment is still sealed exactly once, so no nonce is ever reused.
            self._sink_seek(HEADER_SIZE + self.header.encrypted_segment_size)
            self._index = 1
            self._committed += self.header.encrypted_segment_size

    @classmethod
    def create(
        cls,
        path: Path | str,
        master: MasterKey,
        *,
        segment_size: int = SEGMENT_SIZE,
        fsync_every: int = DEFAULT_FSYNC_EVERY,
        context: bytes = b"",
        defer_first_segment: bool = False,
    ) -> RecordingWriter:
        """Create ``path`` (mode 0600, must not exist) and write a recording into it.

        ``defer_first_segment``: ``write()`` takes the plaintext from offset ``segment_size``
        on, and ``close(first_segment=...)`` gives the first ``segment_size`` bytes (or the
        whole plaintext when it is shorter and nothing else was written)."""
        path = Path(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        sink = os.fdopen(fd, "wb", buffering=0)
        try:
            return cls(
                sink,
                master,
                segment_size=segment_size,
                fsync_every=fsync_every,
                context=context,
                name=str(path),
                defer_first_segment=defer_first_segment,
                _dir_to_sync=path.parent,
            )
        except BaseException:
            sink.close()
            raise

    # -- the file-like surface PyAV uses

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._check_open()
        view = memoryview(data).cast("B")
        size = view.nbytes
        size_cap = self._segment_size
        pos = 0
        while pos < size:
            if self._fill == 0 and size - pos >= size_cap:
                self._seal(view[pos : pos + size_cap], last=False)  # no copy for big writes
                pos += size_cap
                continue
            take = min(size_cap - self._fill, size - pos)
            self._view[self._fill : self._fill + take] = view[pos : pos + take]
            self._fill += take
            pos += take
            if self._fill == size_cap:
                self._seal(self._view[:size_cap], last=False)
                self._fill = 0
        self._position += size
        return size

    def flush(self) -> None:
        self._check_open()
        try:
            self._sink.flush()
        except OSError as exc:
            raise self._fail(exc, "flushing") from exc

    def close(self, first_segment: bytes | None = None) -> None:
        """Seal the last segment, fsync, close. Raises RecordingWriteError if that fails or an
        earlier write failed (the recording then stays unfinished). ``first_segment`` is
        required by, and only by, a writer made with ``defer_first_segment``."""
        if self._closed:
            return
        if (first_segment is not None) != self._deferred:
            raise ValueError("first_segment goes with defer_first_segment, and only with it")
        try:
            if self._failure is not None:
                raise _write_error(
                    self._failure.errno,
                    f"{self.name}: not finalized, an earlier write failed: {self._failure}",
                )
            if first_segment is not None:
                self._seal_first_segment(first_segment)
            else:
                self._seal(self._view[: self._fill], last=True)
            self._sync()
            self._complete = True
        finally:
            self._release()

    def abort(self) -> None:
        """Close without the last segment: the file reads only with ``recover=True``."""
        if self._closed:
            return
        try:
            if self._failure is None:
                self._sink.flush()
        except OSError:
            log.warning("%s: flush failed while aborting", self.name)
        finally:
            self._release()

    def writable(self) -> bool:
        return not self._closed

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        raise io.UnsupportedOperation("an encrypted recording is written sequentially")

    def tell(self) -> int:
        """Plaintext bytes written so far."""
        return self._position

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def complete(self) -> bool:
        """Closed with its last segment: a reader accepts it without ``recover``."""
        return self._complete

    @property
    def failure(self) -> RecordingWriteError | None:
        """The write error that made this writer unusable, if any."""
        return self._failure

    @property
    def segments_written(self) -> int:
        return self._index

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # A producer that failed did not finish the recording: do not mark it complete.
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<RecordingWriter {self.name!r} {state} segments={self._index}>"

    # -- internals

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("I/O operation on closed recording writer")
        if self._failure is not None:
            raise _write_error(
                self._failure.errno, f"{self.name}: unusable after an earlier failure"
            ) from self._failure

    def _seal(self, plaintext: memoryview, last: bool) -> None:
        if self._index >= MAX_SEGMENTS:
            raise self._fail(OSError(errno.EFBIG, "too many segments"), f"segment {self._index}")
        sealed = self._aead.encrypt(_nonce(self._prefix, self._index, last), plaintext, None)
        self._write_out(sealed, f"segment {self._index}")
        self._committed += len(sealed)
        self._index += 1
        if not last and self._fsync_every and self._index % self._fsync_every == 0:
            self._sync()

    def _seal_first_segment(self, plaintext: bytes) -> None:
        size = self._segment_size
        if len(plaintext) == size:
            self._seal(self._view[: self._fill], last=True)
            sealed = self._aead.encrypt(_nonce(self._prefix, 0, False), plaintext, None)
            self._sink_seek(HEADER_SIZE)
            self._write_out(sealed, "segment 0")
        elif len(plaintext) < size and self._index == 1 and self._fill == 0:
            # The whole recording fits in segment 0: it is the last one, and the reserved
            # room is given back.
            self._sink_seek(HEADER_SIZE)
            truncate = getattr(self._sink, "truncate", None)
            if truncate is not None:
                truncate(HEADER_SIZE)
            self._index = 0
            self._committed = HEADER_SIZE
            self._seal(memoryview(plaintext), last=True)
        else:
            raise ValueError(
                f"first segment of {len(plaintext)} bytes with {self._position} bytes after it"
            )

    def _sink_seek(self, offset: int) -> None:
        seek = getattr(self._sink, "seek", None)
        if seek is None:
            raise ValueError("defer_first_segment needs a seekable sink")
        try:
            seek(offset)
        except OSError as exc:
            raise self._fail(exc, "seeking") from exc

    def _write_out(self, data: bytes, what: str) -> None:
        view = memoryview(data)
        try:
            while view:
                written = self._sink.write(view)  # type: ignore[arg-type]
                if isinstance(written, int) and written < len(view):
                    if written <= 0:
                        raise OSError(errno.EIO, "the sink accepted no bytes")
                    view = view[written:]
                else:
                    break
        except OSError as exc:
            raise self._fail(exc, f"writing {what}") from exc

    def _sync(self) -> None:
        try:
            self._sink.flush()
            fileno = getattr(self._sink, "fileno", None)
            if fileno is not None:
                try:
                    fd = fileno()
                except (OSError, ValueError):  # io.UnsupportedOperation: not a real file
                    fd = None
                if isinstance(fd, int):
                    os.fsync(fd)
            if self._dir_to_sync is not None:
                dir_fd = os.open(self._dir_to_sync, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
                self._dir_to_sync = None  # the name is durable once
        except OSError as exc:
            raise self._fail(exc, "syncing") from exc

    def _fail(self, exc: OSError, what: str) -> RecordingWriteError:
        """Remember the failure, cut a partial segment off the file, build the error."""
        self._cut_partial_segment()
        reason = exc.strerror or str(exc) or type(exc).__name__
        error = _write_error(
            exc.errno,
            f"{self.name}: {what} failed ({reason}); the file keeps "
            f"{self._index} complete segments",
        )
        self._failure = error
        return error

    def _cut_partial_segment(self) -> None:
        # Best effort, and only when the file is known to hold more than the whole segments
        # (truncating a buffered sink that lags behind would pad it with zeros instead).
        # A reader in recovery mode skips a partial tail anyway.
        truncate = getattr(self._sink, "truncate", None)
        fileno = getattr(self._sink, "fileno", None)
        if truncate is None or fileno is None:
            return
        try:
            if os.fstat(fileno()).st_size > self._committed:
                truncate(self._committed)
        except (OSError, ValueError):  # io.UnsupportedOperation is both
            log.warning("%s: could not cut the partial segment after a failure", self.name)

    def _release(self) -> None:
        self._closed = True
        self._buffer[:] = bytes(len(self._buffer))  # do not leave plaintext in freed memory
        self._view.release()
        if self._close_sink:
            try:
                self._sink.close()
            except OSError as exc:
                if self._failure is None:
                    raise self._fail(exc, "closing") from exc


# -- reading ---------------------------------------------------------------------------------


class _ClosedOnExit:
    """``with reader:`` closes it (the readers own their file)."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class RecordingReader(_ClosedOnExit):
    """Authenticates and decrypts a recording segment by segment (memory: two segments).

    The header is checked at construction, so a wrong key or a tampered header fails before
    anything is streamed. Iterating yields authentic plaintext chunks; a problem further on
    raises RecordingIntegrityError when reached, so a consumer streaming to a client must
    abort the transfer (not complete it) on that exception.

    ``recover=True`` accepts a recording that lacks its last segment (a writer killed or out
    of space): it yields every complete, authentic segment and stops at the cut. A corrupt
    segment that is followed by more data is an error even then.
    """

    def __init__(
        self,
        source: BinarySource,
        keyring: Keyring,
        *,
        recover: bool = False,
        context: bytes = b"",
        name: str | None = None,
    ) -> None:
        self.name = name if name is not None else str(getattr(source, "name", "<recording>"))
        self._source = source
        self._recover = recover
        raw = self._read(HEADER_SIZE)
        self.header, data_key = _open_header(raw, keyring, context, self.name)
        self._aead = _segment_aead(data_key, raw, context)
        self._owned: io.BufferedReader | None = None
        self._started = False
        self.complete = False
        self.segments_read = 0

    @classmethod
    def open(
        cls, path: Path | str, keyring: Keyring, *, recover: bool = False, context: bytes = b""
    ) -> RecordingReader:
        """Open ``path``; close the reader (or use it as a context manager) when done."""
        file = open(path, "rb")  # owned by the reader: closed in close()
        try:
            reader = cls(file, keyring, recover=recover, context=context, name=str(path))
        except BaseException:
            file.close()
            raise
        reader._owned = file
        return reader

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()

    def __iter__(self) -> Iterator[bytes]:
        return self.chunks()

    def chunks(self) -> Iterator[bytes]:
        """Yield the plaintext, one authentic segment at a time (once per reader)."""
        if self._started:
            raise ValueError("a recording reader is single-pass")
        self._started = True
        full = self.header.encrypted_segment_size
        index = 0
        chunk = self._read(full)
        while len(chunk) == full:
            # Every full-length segment is a middle one; look one ahead to tell a torn tail
            # (tolerated in recovery) from damage in the middle of the file.
            following = self._read(full)
            if index >= MAX_SEGMENTS:
                raise self._error(index, "more segments than the 32-bit counter allows")
            try:
                plaintext = self._aead.decrypt(
                    _nonce(self.header.nonce_prefix, index, False), chunk, None
                )
            except InvalidTag:
                if self._recover and not following:
                    self._recovered(index, "its final segment does not authenticate")
                    return
                raise self._error(
                    index,
                    "authentication failed (corrupted, reordered, duplicated or from "
                    "another recording)",
                ) from None
            self.segments_read += 1
            yield plaintext
            index += 1
            if not following:
                if self._recover:
                    self._recovered(index, "it ends at a segment boundary")
                    return
                raise self._error(
                    index, "missing: the file ends without its last segment (truncated)"
                )
            chunk = following
        # A short chunk is the end of the file and must be the last segment.
        if len(chunk) < TAG_BYTES:
            if self._recover:
                self._recovered(index, f"it ends with {len(chunk)} stray bytes")
                return
            if not chunk:
                raise self._error(
                    index, "missing: the file ends without its last segment (truncated)"
                )
            raise self._error(index, f"truncated ({len(chunk)} bytes, shorter than a tag)")
        try:
            plaintext = self._aead.decrypt(
                _nonce(self.header.nonce_prefix, index, True), chunk, None
            )
        except InvalidTag:
            if self._recover:
                self._recovered(index, "it ends with a partial segment")
                return
            raise self._error(
                index,
                "authentication failed as the last segment (truncated mid-segment or corrupted)",
            ) from None
        self.segments_read += 1
        self.complete = True
        if plaintext:
            yield plaintext

    def decrypt_to(self, dest: BinarySink) -> int:
        """Write the whole plaintext to ``dest``; return its size."""
        total = 0
        for chunk in self.chunks():
            dest.write(chunk)
            total += len(chunk)
        return total

    def _read(self, size: int) -> bytes:
        parts: list[bytes] = []
        missing = size
        while missing:
            part = self._source.read(missing)
            if part is None:
                raise BlockingIOError(errno.EAGAIN, f"{self.name}: the source would block")
            if not part:
                break
            parts.append(part)
            missing -= len(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _error(self, index: int, what: str) -> RecordingIntegrityError:
        return RecordingIntegrityError(f"{self.name}: segment {index}: {what}")

    def _recovered(self, index: int, why: str) -> None:
        log.warning(
            "%s: unfinished recording (%s); recovered %d complete segments",
            self.name,
            why,
            index,
        )


class RecordingRanges(_ClosedOnExit):
    """Random access to a *complete* recording's plaintext, for HTTP Range requests: the
    segments holding a byte range are read at their offsets and authenticated one by one
    (segment i is at ``HEADER_SIZE + i * (segment_size + 16)``; every segment but the last
    is full, so the sizes follow from the file's length). The last segment is opened with
    the last flag, so a truncated file fails there. Memory: one segment."""

    def __init__(self, path: Path | str, keyring: Keyring, *, context: bytes = b"") -> None:
        self.name = str(path)
        self._file = open(path, "rb")  # closed in close()
        try:
            raw = self._file.read(HEADER_SIZE)
            self.header, data_key = _open_header(raw, keyring, context, self.name)
            self._aead = _segment_aead(data_key, raw, context)
            body = os.fstat(self._file.fileno()).st_size - HEADER_SIZE
            full = self.header.encrypted_segment_size
            self._segments = body // full + 1
            last = body - (self._segments - 1) * full
            if last < TAG_BYTES:
                raise RecordingIntegrityError(f"{self.name}: truncated (no last segment)")
            self.size = (self._segments - 1) * self.header.segment_size + last - TAG_BYTES
        except BaseException:
            self._file.close()
            raise

    def read(self, start: int, stop: int) -> Iterator[bytes]:
        """Plaintext bytes ``[start, stop)``, one segment's worth at a time."""
        if not 0 <= start <= stop <= self.size:
            raise ValueError(f"range {start}-{stop} outside 0-{self.size}")
        size = self.header.segment_size
        index = start // size
        while start < stop:
            plaintext = self._segment(index)
            offset = start - index * size
            piece = plaintext[offset : offset + stop - start]
            yield piece
            start += len(piece)
            index += 1

    def _segment(self, index: int) -> bytes:
        full = self.header.encrypted_segment_size
        self._file.seek(HEADER_SIZE + index * full)
        sealed = self._file.read(full)
        last = index == self._segments - 1
        try:
            return self._aead.decrypt(_nonce(self.header.nonce_prefix, index, last), sealed, None)
        except InvalidTag:
            raise RecordingIntegrityError(
                f"{self.name}: segment {index}: authentication failed"
            ) from None

    def close(self) -> None:
        self._file.close()


def decrypt_file(
    path: Path | str,
    keyring: Keyring,
    dest: BinarySink,
    *,
    recover: bool = False,
    context: bytes = b"",
) -> int:
    """Decrypt the recording at ``path`` into ``dest``; return the plaintext size."""
    with RecordingReader.open(path, keyring, recover=recover, context=context) as reader:
        return reader.decrypt_to(dest)


def iter_plaintext(
    path: Path | str, keyring: Keyring, *, recover: bool = False, context: bytes = b""
) -> Generator[bytes, None, None]:
    """Plaintext chunks of ``path``; the header is checked at the first ``next()``."""
    with RecordingReader.open(path, keyring, recover=recover, context=context) as reader:
        yield from reader.chunks()


# -- key management ----------------------------------------------------------------------------


def rewrap(path: Path | str, keyring: Keyring, *, context: bytes = b"") -> bool:
    """Re-wrap a recording's data key under the key ring's current master key, in place.

    Only the key id, wrap nonce and wrapped key change (the segments are untouched), so after
    every recording is re-wrapped an old master key can be retired. Returns False when the
    recording already uses the current key. The old header is authenticated first; the new
    one is written at offset 0 in one write (it fits in a disk sector) and fsynced.
    """
    path = Path(path)
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        raw = os.pread(fd, HEADER_SIZE, 0)
        header, data_key = _open_header(raw, keyring, context, str(path))
        if header.key_id == keyring.current.key_id:
            return False
        new = _seal_header(
            keyring.current, header.segment_size, header.nonce_prefix, data_key, context
        )
        assert new[:_STREAM_END] == raw[:_STREAM_END]  # the segment key does not change
        if os.pwrite(fd, new, 0) != HEADER_SIZE:
            raise OSError(errno.EIO, f"{path}: short write of the new header")
        os.fsync(fd)
    finally:
        os.close(fd)
    log.info(
        "%s: re-wrapped from master key %s to %s",
        path,
        header.key_id.hex(),
        keyring.current.key_id_hex,
    )
    return True


# -- deletion --------------------------------------------------------------------------------


def shred(path: Path | str, *, missing_ok: bool = False) -> None:
    """Crypto-shred a recording: overwrite its header (the only copy of the wrapped data key)
    with random bytes, fsync, unlink, fsync the directory.

    On copy-on-write or wear-levelled storage the old header block may survive the
    overwrite; it stays useless once the master key that wrapped it is retired.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        if missing_ok:
            return
        raise
    try:
        size = min(os.fstat(fd).st_size, HEADER_SIZE)
        os.pwrite(fd, secrets.token_bytes(size), 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink()
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
