"""The passthrough's direct path: aiortc's decoder threads hand the frames of a routed track
straight to a sink (the recorder's muxer) instead of the event loop. A real aiortc sender and
receiver in this process over DTLS-SRTP on loopback; the passthrough is installed in this
process for each test and removed after it (other tests' aiortc peers decode as usual)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import aiortc.rtcrtpreceiver
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack, VideoStreamTrack

from media import passthrough
from media.passthrough import EncodedFrame
from tests.conftest import deadline, wait_until

pytestmark = pytest.mark.usefixtures("loopback_only")
# Typed loosely: a test swaps its decoder_worker for one of another signature.
RECEIVER_MODULE: Any = aiortc.rtcrtpreceiver


@pytest.fixture
def direct_path() -> Iterator[None]:
    passthrough.install()
    try:
        yield
    finally:
        passthrough.uninstall()


async def send_video_until(
    on_track: Callable[[MediaStreamTrack], object], enough: Callable[[], bool]
) -> None:
    """A VideoStreamTrack sent to a receiver whose ``track`` event calls ``on_track``, until
    ``enough()``; both connections closed after."""
    sender = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receiver = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    sender.addTrack(VideoStreamTrack())
    receiver.on("track", on_track)
    try:
        await sender.setLocalDescription(await sender.createOffer())
        await receiver.setRemoteDescription(sender.localDescription)
        await receiver.setLocalDescription(await receiver.createAnswer())
        await sender.setRemoteDescription(receiver.localDescription)
        await wait_until(enough, within=10.0)
    finally:
        await sender.close()
        await receiver.close()


@pytest.mark.usefixtures("direct_path")
async def test_a_routed_track_hands_its_frames_to_the_sink_from_the_decoder_thread() -> None:
    assert passthrough.direct_installed()
    assert aiortc.rtcrtpreceiver.decoder_worker is passthrough.direct_decoder_worker
    received: list[tuple[EncodedFrame, str]] = []
    tracks: list[MediaStreamTrack] = []

    def sink(frame: EncodedFrame) -> None:
        received.append((frame, threading.current_thread().name))

    def on_track(track: MediaStreamTrack) -> None:
        tracks.append(track)
        assert passthrough.route_track(track, sink)

    await send_video_until(on_track, lambda: len(received) >= 10)
    frames = [frame for frame, _ in received]
    assert frames[0].kind == "video" and frames[0].keyframe
    assert (frames[0].width, frames[0].height) == (640, 480)
    assert {thread for _, thread in received} == {"video-decoder"}
    # Nothing went through the event loop but the end of the track.
    [track] = tracks
    with pytest.raises(MediaStreamError):
        async with asyncio.timeout(deadline(2.0)):
            await track.recv()


@pytest.mark.usefixtures("direct_path")
async def test_a_failing_sink_does_not_stop_the_decoder_thread(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[EncodedFrame] = []

    def sink(frame: EncodedFrame) -> None:
        calls.append(frame)
        if len(calls) == 1:
            raise RuntimeError("the first frame fails")

    await send_video_until(
        lambda track: passthrough.route_track(track, sink), lambda: len(calls) >= 5
    )
    assert "the frame sink failed" in caplog.text


def test_an_aiortc_whose_decoder_worker_differs_keeps_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def other_decoder_worker(loop: Any, input_q: Any, output_q: Any) -> None:
        raise AssertionError("not called here")

    monkeypatch.setattr(aiortc.rtcrtpreceiver, "decoder_worker", other_decoder_worker)
    passthrough.install()
    try:
        assert passthrough.installed() and not passthrough.direct_installed()
        assert RECEIVER_MODULE.decoder_worker is other_decoder_worker
        assert not passthrough.route_track(VideoStreamTrack(), lambda frame: None)
    finally:
        passthrough.uninstall()
    assert RECEIVER_MODULE.decoder_worker is other_decoder_worker


def test_uninstall_gives_aiortc_its_decoder_worker_back() -> None:
    stock = aiortc.rtcrtpreceiver.decoder_worker
    passthrough.install()
    passthrough.uninstall()
    assert aiortc.rtcrtpreceiver.decoder_worker is stock
    assert not passthrough.installed() and not passthrough.direct_installed()
