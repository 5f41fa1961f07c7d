"""The recording pieces without a network: passthrough decoders, VP8 checks, RTP timestamp
unwrapping, the WebM muxer (fed with frames PyAV encodes here) and the control protocol."""

from __future__ import annotations

import contextlib
import errno
import io
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.encrypted_recording import RecordingReader, RecordingWriteError, RecordingWriter
from media.keyring import Keyring, MasterKey
from media.muxer import MuxerOverflowError, MuxerThread, RecordingMuxer, RtpTimestampUnwrapper
from media.passthrough import (
    EncodedFrame,
    OpusPassthrough,
    Vp8Passthrough,
    parse_vp8_frame,
    passthrough_decoder,
)
from media.recorder import OfferRejected, check_offer
from media.recorder_protocol import (
    REQUEST_DECODER,
    WORKER_MESSAGE_DECODER,
    Offer,
    RecordingFailed,
    Start,
    Stopped,
    encode_line,
)
from tests.conftest import deadline

ROLES = ("doctor", "patient")


@dataclass
class Jitter:
    data: bytes
    timestamp: int


class ManualClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def encode_vp8(frames: int, width: int = 160, height: int = 120, gop: int = 30) -> list[bytes]:
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height = width, height
    encoder.pix_fmt = "yuv420p"
    encoder.time_base = Fraction(1, 30)
    encoder.gop_size = gop
    encoder.options = {"deadline": "realtime", "cpu-used": "8"}
    out: list[bytes] = []
    for i in range(frames):
        frame = av.VideoFrame(width, height, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes([(i * 7 + plane.line_size) % 256]) * plane.buffer_size)
        frame.pts = i
        out.extend(bytes(p) for p in encoder.encode(frame))
    out.extend(bytes(p) for p in encoder.encode(None))
    return out


def encode_opus(packets: int) -> list[bytes]:
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = 48000
    encoder.layout = "stereo"
    encoder.format = "s16"
    encoder.time_base = Fraction(1, 48000)
    out: list[bytes] = []
    i = 0
    while len(out) < packets:
        frame = av.AudioFrame(format="s16", layout="stereo", samples=960)
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.sample_rate = 48000
        frame.pts = i * 960
        i += 1
        out.extend(bytes(p) for p in encoder.encode(frame))
    return out[:packets]


@pytest.fixture(scope="module")
def vp8_frames() -> list[bytes]:
    return encode_vp8(60)


@pytest.fixture(scope="module")
def opus_packets() -> list[bytes]:
    return encode_opus(100)


def video(data: bytes, ts: int, arrival: float) -> EncodedFrame:
    info = parse_vp8_frame(data)
    return EncodedFrame("video", data, ts, info.keyframe, arrival, info.width, info.height)


def audio(data: bytes, ts: int, arrival: float) -> EncodedFrame:
    return EncodedFrame("audio", data, ts, True, arrival)


class PlainSink(io.RawIOBase):
    """A non-seekable in-memory sink, like a pipe."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        self.data += b
        return len(b)


def decode_all(data: bytes) -> dict[str, tuple[int, float]]:
    """Frames decoded and last timestamp (s) per stream title."""
    result: dict[str, tuple[int, float]] = {}
    with av.open(io.BytesIO(data), mode="r") as container:
        titles = {s.index: s.metadata.get("title", str(s.index)) for s in container.streams}
        for title in titles.values():
            result[title] = (0, 0.0)
        for packet in container.demux():
            if packet.pts is None:
                continue
            title = titles[packet.stream.index]
            count, last = result[title]
            count += len(packet.decode())
            result[title] = (count, max(last, float(packet.pts * packet.time_base)))
    return result


def stream_titles(data: bytes) -> list[str]:
    """Track names in a WebM header (FFmpeg cannot open a file without any cluster)."""
    assert data[:4] == bytes.fromhex("1a45dfa3")
    titles = [b"doctor video", b"doctor audio", b"patient video", b"patient audio"]
    return [t.decode() for t in sorted((t for t in titles if t in data), key=data.index)]


def feed_call(
    muxer: RecordingMuxer, vp8: list[bytes], opus: list[bytes], *, start_ts: int = 0
) -> None:
    """Both roles send ~2 s: video at 30 fps, audio 20 ms, audio arriving 60 ms late."""
    for i in range(max(len(vp8), len(opus))):
        for n, role in enumerate(ROLES):
            base = 1000.0 + n * 0.01
            if i < len(vp8):
                ts = (start_ts + i * 3000) & 0xFFFFFFFF
                muxer.push(role, n * 2 + 1, video(vp8[i], ts, base + i / 30))
            if i < len(opus):
                ts = (start_ts + i * 960) & 0xFFFFFFFF
                muxer.push(role, n * 2 + 2, audio(opus[i], ts, base + 0.06 + i * 0.02))


# -- VP8 header checks -------------------------------------------------------------------------


def test_vp8_keyframe_header_gives_the_picture_size(vp8_frames: list[bytes]) -> None:
    info = parse_vp8_frame(vp8_frames[0])
    assert info.keyframe and (info.width, info.height) == (160, 120)
    delta = parse_vp8_frame(vp8_frames[1])
    assert not delta.keyframe and delta.width is None


@pytest.mark.parametrize(
    "mangle",
    [
        lambda d: d[:2],  # shorter than the frame tag
        lambda d: d[:8],  # keyframe cut inside its header
        lambda d: d[:3] + b"\x00\x00\x00" + d[6:],  # start code gone
        lambda d: bytes([d[0] | 0x0E]) + d[1:],  # version 7
        lambda d: d[: len(d) // 4],  # truncated: first partition does not fit
    ],
)
def test_broken_vp8_keyframes_are_refused(vp8_frames: list[bytes], mangle: object) -> None:
    assert callable(mangle)
    with pytest.raises(ValueError):
        parse_vp8_frame(mangle(vp8_frames[0]))


@given(st.binary(max_size=64))
def test_vp8_parser_raises_only_value_error_on_any_input(data: bytes) -> None:
    try:
        parse_vp8_frame(data)
    except ValueError:
        pass


# -- passthrough decoders -----------------------------------------------------------------------


def test_vp8_passthrough_waits_for_a_keyframe_and_asks_for_one(vp8_frames: list[bytes]) -> None:
    clock = ManualClock()
    decoder = Vp8Passthrough(clock)
    with pytest.raises(av.error.InvalidDataError):  # first delta frame: PLI
        decoder.decode(Jitter(vp8_frames[1], 3000))
    assert decoder.decode(Jitter(vp8_frames[2], 6000)) == []  # no PLI flood
    clock.now += 1.5
    with pytest.raises(av.error.InvalidDataError):  # asks again after a while
        decoder.decode(Jitter(vp8_frames[3], 9000))
    [frame] = decoder.decode(Jitter(vp8_frames[0], 0))
    assert frame.keyframe and frame.kind == "video" and frame.arrival == clock.now
    assert (frame.width, frame.height) == (160, 120)
    assert len(decoder.decode(Jitter(vp8_frames[1], 3000))) == 1


def test_vp8_passthrough_drops_until_next_keyframe_after_a_broken_frame(
    vp8_frames: list[bytes],
) -> None:
    decoder = Vp8Passthrough(ManualClock())
    assert len(decoder.decode(Jitter(vp8_frames[0], 0))) == 1
    with pytest.raises(av.error.InvalidDataError):
        decoder.decode(Jitter(vp8_frames[1][:3] + b"\x00", 3000))
    assert decoder.decode(Jitter(vp8_frames[2], 6000)) == []
    assert decoder.broken == 1
    keyframe = next(f for f in vp8_frames[1:] if parse_vp8_frame(f).keyframe)
    assert len(decoder.decode(Jitter(keyframe, 90000))) == 1


def test_opus_passthrough_yields_every_packet(opus_packets: list[bytes]) -> None:
    decoder = OpusPassthrough(ManualClock())
    [frame] = decoder.decode(Jitter(opus_packets[0], 960))
    assert frame.kind == "audio" and frame.timestamp == 960 and frame.data == opus_packets[0]
    assert decoder.decode(Jitter(b"", 1920)) == []


class _Codec:
    def __init__(self, mime: str) -> None:
        self.mimeType = mime


def test_the_decoder_factory_never_lets_an_unexpected_error_kill_the_decoder_thread() -> None:
    decoder = passthrough_decoder(_Codec("video/VP8"))
    with pytest.raises(av.error.FFmpegError):
        decoder.decode(Jitter(None, 0))  # type: ignore[arg-type]
    assert passthrough_decoder(_Codec("video/H264")).decode(Jitter(b"\x00", 0)) == []


# -- RTP timestamps ------------------------------------------------------------------------------


@given(
    start=st.integers(0, 2**32 - 1),
    steps=st.lists(st.integers(-(2**20), 2**24), min_size=1, max_size=200),
)
def test_rtp_timestamps_unwrap_across_the_32_bit_boundary(start: int, steps: list[int]) -> None:
    unwrapper = RtpTimestampUnwrapper()
    assert unwrapper.unwrap(start) == start
    value = start
    for step in steps:
        value += step
        assert unwrapper.unwrap(value & 0xFFFFFFFF) == value


# -- muxer ---------------------------------------------------------------------------------------


def test_muxer_writes_two_participants_into_one_decodable_webm(
    vp8_frames: list[bytes], opus_packets: list[bytes]
) -> None:
    sink = PlainSink()
    muxer = RecordingMuxer(sink, ROLES, clock=ManualClock())
    feed_call(muxer, vp8_frames, opus_packets, start_ts=2**32 - 30_000)  # wraps at once
    result = muxer.close()
    assert sink.data[:4] == bytes.fromhex("1a45dfa3")
    decoded = decode_all(bytes(sink.data))
    assert set(decoded) == {"doctor video", "doctor audio", "patient video", "patient audio"}
    for title, (frames, last) in decoded.items():
        expected = 60 if "video" in title else 100
        assert frames == expected, title
        assert last == pytest.approx(
            (expected - 1) * (1 / 30 if "video" in title else 0.02)
            + (0.06 if "audio" in title else 0)
            + (0.01 if "patient" in title else 0),
            abs=0.002,
        ), title
    assert result.packets == 320
    assert result.duration == pytest.approx(2.08, abs=0.05)


def test_muxer_puts_a_late_participant_at_its_arrival_time(
    vp8_frames: list[bytes], opus_packets: list[bytes]
) -> None:
    clock = ManualClock()
    sink = PlainSink()
    muxer = RecordingMuxer(sink, ROLES, clock=clock, header_wait=1.0)
    for i, data in enumerate(vp8_frames[:30]):
        muxer.push("doctor", 1, video(data, 5000 + i * 3000, 200.0 + i / 30))
    clock.now += 1.0
    muxer.tick()  # the patient is late: the header goes out with a default size
    assert muxer.header_written
    for i, data in enumerate(vp8_frames[:30]):
        muxer.push("patient", 2, video(data, 123 + i * 3000, 202.0 + i / 30))
    muxer.close()
    decoded = decode_all(bytes(sink.data))
    assert decoded["patient video"][0] == 30
    assert decoded["patient video"][1] == pytest.approx(2.0 + 29 / 30, abs=0.002)
    assert decoded["doctor audio"] == (0, 0.0)


def test_muxer_drops_video_until_the_first_keyframe_of_each_track(
    vp8_frames: list[bytes],
) -> None:
    sink = PlainSink()
    muxer = RecordingMuxer(sink, ("doctor",), clock=ManualClock())
    for i, data in enumerate(vp8_frames[1:10], start=1):
        muxer.push("doctor", 1, video(data, i * 3000, 10 + i / 30))
    assert not muxer.header_written
    for i, data in enumerate(vp8_frames[:30]):
        muxer.push("doctor", 2, video(data, i * 3000, 11 + i / 30))
    muxer.close()
    assert decode_all(bytes(sink.data))["doctor video"][0] == 30
    assert muxer.dropped == 9


class FailingSink(io.RawIOBase):
    """A disk that fills up after ``capacity`` bytes."""

    def __init__(self, capacity: int) -> None:
        self.data = bytearray()
        self.capacity = capacity

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        if len(self.data) + len(b) > self.capacity:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.data += b
        return len(b)

    def truncate(self, size: int | None = None) -> int:
        self.data = self.data[: size or 0]
        return len(self.data)


def test_a_write_error_stops_the_muxer_thread_and_keeps_the_complete_segments(
    vp8_frames: list[bytes], opus_packets: list[bytes]
) -> None:
    keyring = Keyring(MasterKey.generate())
    sink = FailingSink(capacity=88 + 3 * (4096 + 16) + 100)
    writer = RecordingWriter(sink, keyring.current, segment_size=4096)
    errors: list[BaseException] = []
    # Frames come faster than any muxer here: let them queue, the point is the write error.
    thread = MuxerThread(writer, ROLES, on_error=errors.append, max_queued=100_000)

    def frames() -> Iterator[tuple[str, int, EncodedFrame]]:
        for i in range(10_000):
            for n, role in enumerate(ROLES):
                data = vp8_frames[i % len(vp8_frames)]
                yield role, n, video(data, i * 3000, 50 + i / 30)

    for role, source, frame in frames():
        thread.submit(role, source, frame)
        if thread.done.done():
            break
    result = thread.done.result(timeout=deadline(10))
    assert isinstance(result.error, RecordingWriteError)
    assert result.error.errno == errno.ENOSPC
    assert errors == [result.error]
    assert writer.closed and not writer.complete
    with RecordingReader(io.BytesIO(bytes(sink.data)), keyring, recover=True) as reader:
        plaintext = b"".join(reader)
    assert reader.segments_read == 3
    with av.open(io.BytesIO(plaintext), mode="r") as container:
        frames_read = 0
        with contextlib.suppress(av.error.FFmpegError):  # the cut may show as an error
            for packet in container.demux():
                frames_read += len(packet.decode())
        assert frames_read > 10


def test_stopping_the_muxer_thread_drops_what_is_queued_and_closes_the_output(
    tmp_path: Path, vp8_frames: list[bytes]
) -> None:
    keyring = Keyring(MasterKey.generate())
    writer = RecordingWriter.create(tmp_path / "r.enc", keyring.current)
    thread = MuxerThread(writer, ("doctor",))
    for i, data in enumerate(vp8_frames):
        thread.submit("doctor", 1, video(data, i * 3000, 5 + i / 30))
    result = thread.stop().result(timeout=deadline(5))
    thread.submit("doctor", 1, video(vp8_frames[0], 0, 9))  # after the stop: ignored
    assert result.error is None
    assert writer.closed and writer.complete
    assert result.packets <= len(vp8_frames)
    with RecordingReader.open(tmp_path / "r.enc", keyring) as reader:
        assert stream_titles(b"".join(reader)) == ["doctor video", "doctor audio"]


def test_stopping_before_any_media_leaves_a_valid_empty_recording(tmp_path: Path) -> None:
    keyring = Keyring(MasterKey.generate())
    writer = RecordingWriter.create(tmp_path / "r.enc", keyring.current)
    result = MuxerThread(writer, ROLES).stop().result(timeout=deadline(5))
    assert result.packets == 0 and result.duration == 0.0
    with RecordingReader.open(tmp_path / "r.enc", keyring) as reader:
        titles = stream_titles(b"".join(reader))
    assert titles == ["doctor video", "doctor audio", "patient video", "patient audio"]


# -- offers and the protocol -----------------------------------------------------------------


OFFER = (
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
    "a=fingerprint:sha-256 AA:BB\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
)


def test_offers_must_be_dtls_srtp() -> None:
    check_offer(OFFER)
    with pytest.raises(OfferRejected, match="fingerprint"):
        check_offer(OFFER.replace("a=fingerprint:sha-256 AA:BB\r\n", ""))
    with pytest.raises(OfferRejected, match="RTP/AVP"):
        check_offer(OFFER.replace("UDP/TLS/RTP/SAVPF 96", "RTP/AVP 96"))
    with pytest.raises(OfferRejected):
        check_offer("v=0\r\n")


def test_protocol_messages_round_trip_as_json_lines() -> None:
    start = Start(id=1, recording_id="r", path="/x.enc", key_file="/k")
    line = encode_line(start)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    decoded = REQUEST_DECODER.decode(line)
    assert decoded == start and decoded.roles == ["doctor", "patient"]
    offer = REQUEST_DECODER.decode(
        encode_line(Offer(id=2, recording_id="r", role="doctor", sdp="v=0\r\n"))
    )
    assert isinstance(offer, Offer) and offer.sdp == "v=0\r\n"
    event = RecordingFailed(recording_id="r", code="write_error", message="m", bytes=1, duration=2)
    assert WORKER_MESSAGE_DECODER.decode(encode_line(event)) == event
    stopped = Stopped(id=3, recording_id="r", bytes=10, duration=1.5, complete=True)
    assert WORKER_MESSAGE_DECODER.decode(encode_line(stopped)) == stopped
    with pytest.raises(msgspec.ValidationError):
        REQUEST_DECODER.decode(b'{"type": "start", "id": 1, "recording_id": "r", "evil": 1}')
    assert math.isfinite(stopped.duration)


class SlowSink(PlainSink):
    """Storage that stalls: every write takes a while."""

    def write(self, b: bytes) -> int:  # type: ignore[override]
        time.sleep(0.05)
        return super().write(b)


def test_a_stalled_output_stops_the_recording_instead_of_queueing_without_bound(
    vp8_frames: list[bytes],
) -> None:
    keyring = Keyring(MasterKey.generate())
    sink = SlowSink()
    writer = RecordingWriter(sink, keyring.current, segment_size=1024)
    errors: list[BaseException] = []
    thread = MuxerThread(writer, ("doctor",), on_error=errors.append, max_queued=5)
    for i in range(200):
        thread.submit("doctor", 1, video(vp8_frames[i % 60], i * 3000, 7 + i / 30))
    result = thread.done.result(timeout=deadline(30))
    assert len(errors) == 1 and isinstance(errors[0], MuxerOverflowError)
    assert result.error is errors[0]
    assert result.packets < 200
    assert writer.complete  # what was muxed is sealed as usual
    with RecordingReader(io.BytesIO(bytes(sink.data)), keyring) as reader:
        assert stream_titles(b"".join(reader)) == ["doctor video", "doctor audio"]
