"""The recording peer: one receive-only aiortc connection per participant, muxed into one file.

Each consenting participant opens a second, send-only RTCPeerConnection to the recorder (the
call between the participants stays peer to peer and untouched); :meth:`Recorder.accept_offer`
answers it with VP8 and Opus only. The received tracks yield encoded frames (the passthrough
decoders of :mod:`media.passthrough` must be installed in this process) which go, untouched,
to a :class:`media.muxer.MuxerThread` that writes into the recording's output (an encrypted
``RecordingWriter``: no plaintext byte reaches the disk). With the passthrough's direct path,
aiortc's decoder threads hand the frames to the muxer thread themselves (no event-loop hop per
frame); without it, a task per track reads ``track.recv()``.

Runs in the recording worker process (:mod:`media.recorder_worker`), never in the signaling
server: the passthrough patch is process-wide.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import itertools
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any, Final

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media import passthrough
from media.muxer import DEFAULT_HEADER_WAIT, MuxerThread, MuxOutput, MuxResult
from media.passthrough import EncodedFrame

log = logging.getLogger(__name__)

ACCEPTED_CODECS: Final = {
    "audio": ("audio/opus",),
    "video": ("video/vp8", "video/rtx"),
}
PEER_CLOSE_TIMEOUT: Final = 2.0
_MEDIA_LINE = re.compile(r"^m=(\w+) \d+ (\S+) ", re.MULTILINE)


class RecorderStateError(Exception):
    """The recorder cannot do that now (stopped, unknown role)."""


class OfferRejected(ValueError):
    """The offer breaks the media rules (no DTLS-SRTP, nothing recordable)."""


def check_offer(sdp: str) -> None:
    """Refuse an offer that is not DTLS-SRTP (security invariant) or carries no media."""
    media = _MEDIA_LINE.findall(sdp)
    if not media:
        raise OfferRejected("the offer has no media section")
    if "a=fingerprint:" not in sdp:
        raise OfferRejected("the offer has no DTLS fingerprint")
    for kind, profile in media:
        if kind in ("audio", "video") and profile != "UDP/TLS/RTP/SAVPF":
            raise OfferRejected(f"{kind} uses {profile}, only UDP/TLS/RTP/SAVPF is accepted")


class _Participant:
    def __init__(self, role: str, pc: RTCPeerConnection) -> None:
        self.role = role
        self.pc = pc
        self.connected = False
        self.tasks: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        try:
            await asyncio.wait_for(self.pc.close(), PEER_CLOSE_TIMEOUT)
        except TimeoutError:
            log.warning("recorder: closing %s's connection timed out", self.role)


class Recorder:
    """One recording: receives each role's tracks and muxes them into ``output``.

    ``on_participant(role, connected)`` reports connections coming up and going away;
    ``on_failure(error)`` is called (on the event loop) when the output fails: the recording
    is then over, muxing has stopped and the connections are closed.
    """

    def __init__(
        self,
        recording_id: str,
        output: MuxOutput,
        *,
        roles: Sequence[str],
        ice_servers: Sequence[RTCIceServer] = (),
        on_participant: Callable[[str, bool], None] | None = None,
        on_failure: Callable[[BaseException], None] | None = None,
        header_wait: float = DEFAULT_HEADER_WAIT,
    ) -> None:
        if not passthrough.installed():
            raise RuntimeError("the passthrough decoders are not installed in this process")
        self.recording_id = recording_id
        self._roles = tuple(roles)
        self._ice_servers = list(ice_servers)
        self._on_participant = on_participant
        self._on_failure = on_failure
        self._loop = asyncio.get_running_loop()
        self._muxer = MuxerThread(
            output,
            self._roles,
            on_error=self._muxer_failed_threadsafe,
            header_wait=header_wait,
            name=f"muxer-{recording_id}",
        )
        self._participants: dict[str, _Participant] = {}
        self._source_ids = itertools.count(1)
        self._stopped = False
        self.failure: BaseException | None = None

    @property
    def stopped(self) -> bool:
        return self._stopped

    async def accept_offer(self, role: str, sdp: str) -> str:
        """Answer ``role``'s send-only offer (complete answer, all candidates gathered)."""
        if self._stopped:
            raise RecorderStateError("the recording is stopped")
        if role not in self._roles:
            raise RecorderStateError(f"{role!r} is not a participant of this recording")
        check_offer(sdp)
        previous = self._participants.pop(role, None)
        if previous is not None:
            log.info("recorder %s: %s reconnects", self.recording_id, role)
            await previous.close()
        pc = RTCPeerConnection(RTCConfiguration(iceServers=list(self._ice_servers)))
        participant = _Participant(role, pc)
        self._participants[role] = participant
        self._watch(participant)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            recordable = 0
            for transceiver in pc.getTransceivers():
                kind = transceiver.kind
                if kind not in ACCEPTED_CODECS:
                    continue
                capabilities = RTCRtpReceiver.getCapabilities(kind)
                if capabilities is None:
                    continue
                codecs = [
                    c for c in capabilities.codecs if c.mimeType.lower() in ACCEPTED_CODECS[kind]
                ]
                transceiver.setCodecPreferences(codecs)
                recordable += 1
            if not recordable:
                raise OfferRejected("the offer has no audio or video to record")
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
        except ValueError as exc:  # aiortc reports malformed or incompatible SDP so
            await self._drop(participant)
            if isinstance(exc, OfferRejected):
                raise
            raise OfferRejected(str(exc)) from exc
        except BaseException:
            await self._drop(participant)
            raise
        if self._stopped:  # stopped while gathering
            await self._drop(participant)
            raise RecorderStateError("the recording was stopped")
        return str(pc.localDescription.sdp)

    async def stop(self) -> MuxResult:
        """Stop muxing now (what is still queued is dropped), seal the file, return figures.

        The connections are left to :meth:`close`, so the reply does not wait for them.
        """
        return await asyncio.wrap_future(self.stop_intake())

    def stop_intake(self) -> concurrent.futures.Future[MuxResult]:
        """Stop taking frames in, now; the future resolves once the file is sealed."""
        self._stopped = True
        return self._muxer.stop()

    async def close(self) -> None:
        """Stop (if not yet) and close every participant's connection."""
        await self.stop()
        participants = list(self._participants.values())
        self._participants.clear()
        await asyncio.gather(*(p.close() for p in participants))

    # -- internals

    def _watch(self, participant: _Participant) -> None:
        pc = participant.pc

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind not in ("audio", "video"):
                return
            source_id = next(self._source_ids)
            log.info(
                "recorder %s: %s %s track (source %d)",
                self.recording_id,
                participant.role,
                track.kind,
                source_id,
            )
            submit = functools.partial(self._muxer.submit, participant.role, source_id)
            passthrough.route_track(track, submit)
            # Reads what the direct path does not take: the end of the track, or every frame
            # when the direct path is not installed.
            task = asyncio.ensure_future(self._consume(participant.role, source_id, track))
            participant.tasks.add(task)
            task.add_done_callback(participant.tasks.discard)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            state = pc.connectionState
            log.info("recorder %s: %s state -> %s", self.recording_id, participant.role, state)
            if state == "connected" and not participant.connected:
                participant.connected = True
                self._notify(participant.role, True)
            elif state in ("failed", "closed") and participant.connected:
                participant.connected = False
                self._notify(participant.role, False)
                if state == "failed":
                    await pc.close()

    async def _consume(self, role: str, source_id: int, track: MediaStreamTrack) -> None:
        submit = self._muxer.submit
        while True:
            try:
                frame: Any = await track.recv()
            except MediaStreamError:
                return
            if isinstance(frame, EncodedFrame):
                submit(role, source_id, frame)

    def _notify(self, role: str, connected: bool) -> None:
        if self._on_participant is not None:
            self._on_participant(role, connected)

    async def _drop(self, participant: _Participant) -> None:
        if self._participants.get(participant.role) is participant:
            del self._participants[participant.role]
        await participant.close()

    def _muxer_failed_threadsafe(self, error: BaseException) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            self._loop.call_soon_threadsafe(self._muxer_failed, error)

    def _muxer_failed(self, error: BaseException) -> None:
        self._stopped = True
        self.failure = error
        if self._on_failure is not None:
            self._on_failure(error)
