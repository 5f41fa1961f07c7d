"""Seekable recordings: the remux pass writes a Duration and Cues into a new encrypted file,
and repairs a recording cut short. Checked with ffprobe and PyAV (players need the duration to
show a length and the cues to seek)."""

from __future__ import annotations

import io
import json
import os
import subprocess
from pathlib import Path

import av
import pytest

from media.encrypted_recording import (
    HEADER_SIZE,
    RecordingIntegrityError,
    RecordingReader,
    RecordingWriter,
    decrypt_file,
)
from media.keyring import Keyring, MasterKey
from media.muxer import RecordingMuxer
from media.seekable_recording import (
    LEFTOVER_SUFFIX,
    EmptyRecordingError,
    SeekableRemuxError,
    make_seekable,
)
from tests.conftest import deadline
from tests.test_media_recorder_units import (
    ROLES,
    ManualClock,
    audio,
    encode_opus,
    encode_vp8,
    video,
)

MEDIA_SECONDS = 20
CONTEXT = b"teleconsult.recording:rec-seek"
CUES_ID = bytes.fromhex("1c53bb6b")
UNKNOWN_SEGMENT = bytes.fromhex("18538067") + bytes.fromhex("01ffffffffffffff")


@pytest.fixture(scope="module")
def media() -> tuple[list[bytes], list[bytes]]:
    return encode_vp8(MEDIA_SECONDS * 30, gop=30), encode_opus(MEDIA_SECONDS * 50)


@pytest.fixture
def keyring() -> Keyring:
    return Keyring(MasterKey.generate())


def record(
    path: Path,
    keyring: Keyring,
    media: tuple[list[bytes], list[bytes]],
    *,
    finish: bool = True,
    context: bytes = CONTEXT,
) -> float:
    """Both roles for MEDIA_SECONDS, muxed live into an encrypted file as the worker does;
    answers the muxer's media duration. ``finish=False`` leaves the file as a killed worker
    does: without its last segment."""
    vp8, opus = media
    # Small segments: a cut leaves many whole ones (the synthetic video is tiny).
    writer = RecordingWriter.create(path, keyring.current, context=context, segment_size=4096)
    muxer = RecordingMuxer(writer, ROLES, clock=ManualClock())
    for i in range(max(len(vp8), len(opus))):
        for n, role in enumerate(ROLES):
            base = 1000.0 + n * 0.01
            if i < len(vp8):
                muxer.push(role, n * 2 + 1, video(vp8[i], i * 3000, base + i / 30))
            if i < len(opus):
                muxer.push(role, n * 2 + 2, audio(opus[i], i * 960, base + 0.06 + i * 0.02))
    if finish:
        result = muxer.close()
        writer.close()
    else:
        result = muxer.abort()
        writer.abort()
    return result.duration


def plaintext(path: Path, keyring: Keyring, *, recover: bool = False) -> bytes:
    out = io.BytesIO()
    decrypt_file(path, keyring, out, recover=recover, context=CONTEXT)
    return out.getvalue()


def ffprobe(data: bytes, tmp_path: Path) -> dict[str, object]:
    # Synthetic media from this test, written where ffprobe can seek in it.
    probe_input = tmp_path / "probe.webm"
    probe_input.write_bytes(data)
    try:
        done = subprocess.run(
            [
                "ffprobe", "-v", "error", "-of", "json",
                "-show_entries", "format=duration:stream=index,codec_type:stream_tags",
                str(probe_input),
            ],
            capture_output=True, check=True, timeout=deadline(30),
        )  # fmt: skip
    finally:
        probe_input.unlink()
    result: dict[str, object] = json.loads(done.stdout)
    return result


def hms(value: str) -> float:
    hours, minutes, seconds = value.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def seek_lands_near(data: bytes, target: float) -> dict[str, float]:
    """For each stream: seek to ``target`` seconds, decode, answer the first frame's time."""
    landed: dict[str, float] = {}
    with av.open(io.BytesIO(data), mode="r") as container:
        for stream in container.streams:
            assert stream.time_base is not None
            container.seek(int(target / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                assert isinstance(frame, av.VideoFrame | av.AudioFrame)
                if frame.pts is not None and frame.time_base is not None:
                    landed[stream.metadata["title"]] = float(frame.pts * frame.time_base)
                    break
    return landed


def test_a_live_recording_has_no_duration_which_is_why_the_remux_pass_exists(
    tmp_path: Path, keyring: Keyring, media: tuple[list[bytes], list[bytes]]
) -> None:
    path = tmp_path / "rec.tcrec"
    record(path, keyring, media)
    data = plaintext(path, keyring)
    assert data.find(UNKNOWN_SEGMENT) >= 0 and CUES_ID not in data
    assert ffprobe(data, tmp_path)["format"] == {}  # duration=N/A: ffprobe leaves it out


def test_the_remuxed_recording_has_its_duration_and_seeks_to_the_middle_of_each_stream(
    tmp_path: Path, keyring: Keyring, media: tuple[list[bytes], list[bytes]]
) -> None:
    path = tmp_path / "rec.tcrec"
    media_time = record(path, keyring, media)
    before = path.read_bytes()

    result = make_seekable(path, keyring, context=CONTEXT)

    assert not result.recovered and result.packets == 4 * MEDIA_SECONDS * 40
    after = path.read_bytes()
    assert after[:HEADER_SIZE] != before[:HEADER_SIZE]  # a new data key
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.tcrec"]
    data = plaintext(path, keyring)  # complete: reads without recover
    assert CUES_ID in data and UNKNOWN_SEGMENT not in data
    probe = ffprobe(data, tmp_path)
    duration = float(probe["format"]["duration"])  # type: ignore[index]
    assert duration == pytest.approx(media_time, rel=0.02)
    assert result.duration == pytest.approx(media_time, rel=0.02)
    streams = probe["streams"]
    assert isinstance(streams, list) and len(streams) == 4
    for stream in streams:
        assert hms(stream["tags"]["DURATION"]) == pytest.approx(media_time, rel=0.02), stream
    middle = media_time / 2
    landed = seek_lands_near(data, middle)
    assert set(landed) == {f"{r} {k}" for r in ROLES for k in ("video", "audio")}
    for title, at in landed.items():
        assert abs(at - middle) <= 1.0, (title, at)


def test_a_recording_cut_short_is_repaired_up_to_its_last_complete_segment(
    tmp_path: Path, keyring: Keyring, media: tuple[list[bytes], list[bytes]]
) -> None:
    path = tmp_path / "rec.tcrec"
    record(path, keyring, media, finish=False)
    with open(path, "r+b") as torn:  # a SIGKILL in the middle of a segment write
        torn.truncate(path.stat().st_size - 1000)
    whole = plaintext(path, keyring, recover=True)
    with pytest.raises(RecordingIntegrityError):
        plaintext(path, keyring)
    cut_at = max(
        float(p.pts * p.time_base)
        for p in av.open(io.BytesIO(whole), mode="r").demux()
        if p.pts is not None and p.time_base is not None
    )

    result = make_seekable(path, keyring, context=CONTEXT, recover=True)

    assert result.recovered
    data = plaintext(path, keyring)  # now complete
    duration = float(ffprobe(data, tmp_path)["format"]["duration"])  # type: ignore[index]
    assert duration == pytest.approx(cut_at, abs=0.1)
    assert MEDIA_SECONDS / 2 < duration < MEDIA_SECONDS
    landed = seek_lands_near(data, duration / 2)
    assert all(abs(at - duration / 2) <= 1.0 for at in landed.values()), landed


def test_a_failed_remux_leaves_the_original_recording_untouched(
    tmp_path: Path, keyring: Keyring
) -> None:
    path = tmp_path / "rec.tcrec"
    with RecordingWriter.create(path, keyring.current, context=CONTEXT) as out:
        out.write(b"not a webm at all" * 100)
    before = path.read_bytes()
    with pytest.raises(SeekableRemuxError) as failed:
        make_seekable(path, keyring, context=CONTEXT)
    assert not isinstance(failed.value, EmptyRecordingError)  # tried again at the next pass
    assert path.read_bytes() == before
    assert not path.with_name(path.name + LEFTOVER_SUFFIX).exists()


@pytest.mark.parametrize("finish", [True, False], ids=["stopped", "killed"])
def test_a_recording_without_media_is_told_apart_from_a_failed_pass(
    tmp_path: Path, keyring: Keyring, finish: bool
) -> None:
    # Stopped before the first frame (the muxer's header alone), or killed before its first
    # segment was sealed (nothing at all).
    path = tmp_path / "rec.tcrec"
    record(path, keyring, ([], []), finish=finish)
    before = path.read_bytes()
    with pytest.raises(EmptyRecordingError):
        make_seekable(path, keyring, context=CONTEXT, recover=not finish)
    assert path.read_bytes() == before
    assert not path.with_name(path.name + LEFTOVER_SUFFIX).exists()


def test_a_recording_from_another_context_is_refused_and_kept(
    tmp_path: Path, keyring: Keyring, media: tuple[list[bytes], list[bytes]]
) -> None:
    path = tmp_path / "rec.tcrec"
    record(path, keyring, media)
    before = path.read_bytes()
    with pytest.raises(RecordingIntegrityError):
        make_seekable(path, keyring, context=b"teleconsult.recording:other")
    assert path.read_bytes() == before


@pytest.mark.parametrize("size", [0, 100, 65536, 65537, 200_000])
def test_a_deferred_first_segment_reads_like_any_recording(
    tmp_path: Path, keyring: Keyring, size: int
) -> None:
    data = os.urandom(size)
    path = tmp_path / "rec.tcrec"
    head, rest = data[:65536], data[65536:]
    writer = RecordingWriter.create(
        path, keyring.current, context=CONTEXT, defer_first_segment=True
    )
    writer.write(rest)
    writer.close(first_segment=head)
    with RecordingReader.open(path, keyring, context=CONTEXT) as reader:
        assert b"".join(reader.chunks()) == data
        assert reader.complete
