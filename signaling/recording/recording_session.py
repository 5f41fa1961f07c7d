"""One room's recording: consent (signaling.recording.consent), the recorder worker, the
stored record.

The room calls this with the role of the *authenticated* connection. When both participants
have granted consent the coordinator spawns a recording worker (one per recording, so a
killed worker only takes its own file), registers the recording and waits for each
participant's send-only offer; a withdrawal, the end of the call or a worker error stops it,
within a second (a worker that misses the stop deadline is killed; its file still reads up to
its last segment). ``on_change`` tells the room what to announce to both participants.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from config import Settings
from media.recorder_protocol import IceServerConfig, IntakeStopped, RecordingFailed
from media.recording_service import (
    RecorderProcess,
    RecorderServiceError,
    ServiceEvent,
    WorkerExited,
)
from signaling.audit.trail import AuditTrail
from signaling.clock import Clock
from signaling.errors import AppError
from signaling.live.turn import credential_expiry, ice_servers
from signaling.models import Consultation, Recording, SeatRole
from signaling.recording.consent import ConsentBook, ConsentState
from signaling.recording.recordings import RecordingLibrary, recording_context
from signaling.store.base import Store

log = logging.getLogger("teleconsult.recording")


@dataclass(frozen=True)
class RecordingChange:
    """What both participants are told: state is idle, asked or recording."""

    state: str
    recording_id: str
    reason: str = ""


ChangeHook = Callable[[RecordingChange], Awaitable[None]]


class RecordingSession:
    def __init__(
        self,
        consultation: Consultation,
        store: Store,
        clock: Clock,
        settings: Settings,
        audit: AuditTrail,
        on_change: ChangeHook,
        loopback: str = "off",
        turn_secret: bytes | None = None,
    ) -> None:
        self.consultation = consultation
        self.store = store
        self.clock = clock
        self.settings = settings
        self.audit = audit
        self.on_change = on_change
        self.loopback = loopback
        self.turn_secret = turn_secret
        self.book = ConsentBook(consultation.id, store, clock)
        self.library = RecordingLibrary(store, clock, settings)
        self.worker: RecorderProcess | None = None
        self.recording: Recording | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._intake_stopped: dict[str, asyncio.Future[None]] = {}

    @property
    def state(self) -> ConsentState:
        return self.book.state

    async def request(self, role: SeatRole, subject: str) -> str:
        if not self.settings.recording.enabled:
            raise AppError("forbidden", "Recording is turned off on this service.")
        recording_id = self.book.request(role)
        await self.audit.record(
            "recording.requested",
            actor=subject,
            actor_role=role,
            target=self.consultation.id,
            recording=recording_id,
        )
        await self.on_change(RecordingChange("asked", recording_id))
        return recording_id

    async def answer(self, role: SeatRole, subject: str, granted: bool) -> None:
        recording_id = self.book.recording_id
        both = await self.book.answer(role, subject, granted)
        await self.audit.record(
            "consent.given" if granted else "consent.declined",
            actor=subject,
            actor_role=role,
            target=self.consultation.id,
            recording=recording_id,
        )
        if not granted:
            await self.on_change(RecordingChange("idle", recording_id, f"declined_by_{role}"))
        elif both:
            await self._start(recording_id)

    async def _start(self, recording_id: str) -> None:
        keyring = self.library.keyring()
        self.library.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        recording = Recording(
            id=recording_id,
            consultation_id=self.consultation.id,
            doctor_id=self.consultation.doctor_id,
            started_at=self.clock.now(),
            key_id=keyring.current.key_id_hex,
            file_name=f"{recording_id}.tcrec",
        )
        try:
            self.worker = await RecorderProcess.spawn(
                loopback=self.loopback, on_event=self._on_event
            )
            await self.worker.start_recording(
                recording_id,
                self.library.path_of(recording),
                self.settings.recording_key_path,
                key_id=keyring.current.key_id_hex,
                ice_servers=self.worker_ice_servers(),
                context=recording_context(recording_id).decode(),
            )
        except RecorderServiceError as exc:
            log.error("recording %s could not start: %s", recording_id, exc)
            await self._discard_worker()
            self.book.state = ConsentState.IDLE
            await self.on_change(RecordingChange("idle", recording_id, "recorder_unavailable"))
            raise AppError("unavailable", "The recorder could not start.") from None
        self.book.started()
        self.recording = recording
        await self.store.create_recording(recording)
        await self.audit.record(
            "recording.started",
            actor="system",
            actor_role="system",
            target=self.consultation.id,
            recording=recording_id,
        )
        await self.on_change(RecordingChange("recording", recording_id))

    def worker_ice_servers(self) -> list[IceServerConfig]:
        """The recording peer's STUN/TURN servers: the participants' own, with TURN REST
        credentials of its own that last as long as theirs (until the consultation's end +
        grace). A browser restricted to relay (turn.relay_only) offers relay candidates only;
        with a relay candidate of its own the recording peer is reachable through the same
        TURN server even when its host addresses are not (a server behind NAT)."""
        settings = self.settings
        expires = credential_expiry(
            self.clock.now(),
            self.consultation.scheduled_end,
            settings.security.invite_grace_minutes * 60,
            settings.turn.max_credential_hours,
        )
        subject = f"recorder.{self.consultation.id}"
        servers, _ = ice_servers(settings.turn, self.turn_secret, subject, expires)
        return [IceServerConfig(s.urls, s.username, s.credential) for s in servers]

    async def offer(self, role: SeatRole, sdp: str) -> str:
        """A consenting participant's send-only offer; answers the recorder's SDP."""
        if not self.book.may_record() or self.worker is None or self.recording is None:
            raise AppError("consent_required")
        try:
            return await self.worker.offer(self.recording.id, role, sdp)
        except RecorderServiceError as exc:
            raise AppError("invalid_sdp", f"The recorder refused the offer: {exc}") from None

    async def withdraw(self, role: SeatRole, subject: str) -> None:
        recording_id = self.book.recording_id
        must_stop = await self.book.withdraw(role, subject)  # the receipt first: the proof
        # The worker is asked to stop before the audit write, not after it (the entry still
        # lands before recording.stopped, which waits for the file).
        stopping = asyncio.ensure_future(self.stop("consent_withdrawn")) if must_stop else None
        await self.audit.record(
            "consent.withdrawn",
            actor=subject,
            actor_role=role,
            target=self.consultation.id,
            recording=recording_id,
        )
        if stopping is not None:
            await stopping
        else:
            await self.on_change(RecordingChange("idle", recording_id, "consent_withdrawn"))

    async def stop_by(self, role: SeatRole, subject: str) -> None:
        """A participant stops the recording without withdrawing consent."""
        recording_id = self.book.recording_id
        await self.book.stop(role, subject)  # invalid_state unless recording
        # The book is idle now; stop() still finds the running recording and its worker.
        stopping = asyncio.ensure_future(self.stop(f"stopped_by_{role}"))
        await self.audit.record(
            "recording.stop_requested",
            actor=subject,
            actor_role=role,
            target=self.consultation.id,
            recording=recording_id,
        )
        await stopping

    async def stop(self, reason: str) -> None:
        """Stop now (withdrawal, end of call, error): within a second, whatever the worker."""
        recording, worker = self.recording, self.worker
        self.recording = None
        pending = self.book.state is ConsentState.ASKED
        if self.book.state is not ConsentState.IDLE:
            self.book.state = ConsentState.IDLE
            self.book.granted.clear()
        if recording is None or worker is None:
            if pending:
                # A request still awaiting answers is gone too: say so, or the side that
                # stayed keeps a prompt (or a "waiting for the other" note) for nothing.
                await self.on_change(RecordingChange("idle", self.book.recording_id, reason))
            return
        size, complete = 0, False
        intake = self._intake_stopped[recording.id] = asyncio.get_running_loop().create_future()
        stopping = asyncio.ensure_future(worker.stop(recording.id))
        # The room hears it as soon as intake has stopped (the worker's intake_stopped event),
        # or the stop is through, or failed (the worker was killed): not after the sealing.
        await asyncio.wait({intake, stopping}, return_when=asyncio.FIRST_COMPLETED)
        self._intake_stopped.pop(recording.id, None)
        stopped_at = self.clock.now()
        await self.on_change(RecordingChange("idle", recording.id, reason))
        try:
            stopped = await stopping
            size, complete = stopped.bytes, stopped.complete
        except RecorderServiceError as exc:
            log.warning("recording %s: stop failed (%s); the worker was killed", recording.id, exc)
        await self._discard_worker()
        path = self.library.path_of(recording)
        if not size and path.exists():
            size = path.stat().st_size
        closed = recording.evolve(
            status="complete" if complete else "failed",
            stopped_at=stopped_at,
            size_bytes=size,
            stop_reason=reason,
        )
        # The record says "recording" until the remux pass has replaced the file, so the
        # file is not deleted or purged under it.
        done = await self.library.make_seekable(closed, stopped_at)
        await self.store.update_recording(done)
        await self.audit.record(
            "recording.stopped",
            actor="system",
            actor_role="system",
            target=self.consultation.id,
            recording=recording.id,
            reason=reason,
            outcome="success" if complete else "failure",
            seekable=done.seekable,
            empty=done.empty,
            duration_seconds=done.duration_seconds,
        )

    async def _discard_worker(self) -> None:
        worker, self.worker = self.worker, None
        if worker is not None:
            try:
                await worker.close()
            except RecorderServiceError:
                await worker.kill()

    def _on_event(self, event: ServiceEvent) -> None:
        if isinstance(event, IntakeStopped):
            waiter = self._intake_stopped.get(event.recording_id)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            return
        if isinstance(event, RecordingFailed | WorkerExited) and self.recording is not None:
            reason = event.code if isinstance(event, RecordingFailed) else "recorder_exited"
            log.error("recording %s stopped: %s", self.recording.id, reason)
            task = asyncio.get_running_loop().create_task(self.stop(reason))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
