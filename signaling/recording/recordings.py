"""The recording library: who may list, download and delete which recording, and retention.

Files live under ``<data_dir>/recordings`` encrypted (media.encrypted_recording), each bound
to its recording id through the AEAD context, so a file moved into another recording's place
does not decrypt. Downloads decrypt on the fly, segment by segment: no plaintext file is ever
written. Deleting crypto-shreds: the header holding the wrapped data key is overwritten, then
the file is removed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

from config import Settings
from media.encrypted_recording import RecordingError, RecordingRanges, RecordingReader, shred
from media.keyring import Keyring, load_keyring_from_settings
from media.seekable_recording import EmptyRecordingError, SeekableRemuxError, make_seekable
from signaling.audit.access_audit import AccessRefused
from signaling.clock import Clock
from signaling.models import Recording, User
from signaling.store.base import Store

log = logging.getLogger("teleconsult.recording")

DAY = 86400.0


def recording_context(recording_id: str) -> bytes:
    """Associated data binding a recording file to its id (writer and reader must agree)."""
    return f"teleconsult.recording:{recording_id}".encode()


class RecordingLibrary:
    def __init__(self, store: Store, clock: Clock, settings: Settings) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.directory = settings.recordings_path

    def keyring(self) -> Keyring:
        # Loaded each time, so a master-key rotation is picked up without a restart.
        return load_keyring_from_settings(self.settings)

    def path_of(self, recording: Recording) -> Path:
        return self.directory / Path(recording.file_name).name

    @staticmethod
    def may_see(user: User, recording: Recording) -> bool:
        """An allow-list: the consultation's doctor and admins, as the consent prompt tells
        the patient. Any other role (a secretariat, a role added later) sees none."""
        if user.role == "admin":
            return True
        return user.role == "doctor" and recording.doctor_id == user.id

    async def visible_to(self, user: User, recording_id: str) -> Recording:
        recording = await self.store.get_recording(recording_id)
        if recording is None or recording.status == "deleted" or not self.may_see(user, recording):
            # Audited with the reason; the answer is the same for all three.
            gone = recording is None or recording.status == "deleted"
            raise AccessRefused(
                "recording_not_found",
                user,
                "not_found" if gone else "not_owner",
                "recording",
                recording_id,
            )
        return recording

    async def list_for(self, user: User, consultation_id: str | None) -> list[Recording]:
        if user.role not in ("admin", "doctor"):
            return []  # the allow-list of may_see, without reading anything
        found = await self.store.list_recordings(
            consultation_id=consultation_id, doctor_id=None if user.role == "admin" else user.id
        )
        return [r for r in found if r.status != "deleted" and self.may_see(user, r)]

    def retention_ends_at(self, recording: Recording) -> float:
        return recording.started_at + self.settings.recording.retention_days * DAY

    def ranges(self, recording: Recording) -> RecordingRanges:
        """Random access to a complete recording's plaintext (close it when done)."""
        return RecordingRanges(
            self.path_of(recording), self.keyring(), context=recording_context(recording.id)
        )

    def plaintext(self, recording: Recording) -> Iterator[bytes]:
        """Decrypted chunks; a file cut short (a recorder killed mid-way) yields what is whole."""
        recover = recording.status != "complete"
        reader = RecordingReader.open(
            self.path_of(recording),
            self.keyring(),
            recover=recover,
            context=recording_context(recording.id),
        )
        try:
            yield from reader.chunks()
        finally:
            reader.close()

    async def make_seekable(self, recording: Recording, media_ended_at: float) -> Recording:
        """The remux pass (media.seekable_recording) off the event loop: answers the record
        with its duration, media times, new size and key id. A recording cut short is
        repaired up to its last complete segment. A failure keeps the file as it was (it
        still plays from the start, without a length), is logged and answers the record as
        it was; a recording without media is answered marked ``empty`` (no pass will find
        any, so none is tried again)."""
        keyring = self.keyring()
        try:
            result = await asyncio.to_thread(
                make_seekable,
                self.path_of(recording),
                keyring,
                context=recording_context(recording.id),
                recover=recording.status != "complete",
            )
        except EmptyRecordingError:
            log.info("recording %s holds no media (stopped before any arrived)", recording.id)
            return recording.evolve(empty=True, duration_seconds=0.0)
        except (SeekableRemuxError, RecordingError, OSError) as exc:
            log.error("recording %s: not made seekable: %s", recording.id, exc)
            return recording
        log.info(
            "recording %s made seekable: %.1f s of media, %d packets, %.3f CPU-s%s",
            recording.id,
            result.duration,
            result.packets,
            result.cpu_seconds,
            " (repaired up to its last complete segment)" if result.recovered else "",
        )
        return recording.evolve(
            seekable=True,
            duration_seconds=result.duration,
            size_bytes=result.size_bytes,
            key_id=keyring.current.key_id_hex,
            # The muxer's origin is the first frame's arrival; the file ends when intake did.
            media_started_at=media_ended_at - result.duration,
            media_ended_at=media_ended_at,
        )

    async def delete(self, recording: Recording, reason: str) -> Recording:
        await asyncio.to_thread(shred, self.path_of(recording), missing_ok=True)
        deleted = recording.evolve(
            status="deleted",
            deleted_at=self.clock.now(),
            stop_reason=recording.stop_reason or reason,
        )
        await self.store.update_recording(deleted)
        return deleted

    async def purge_expired(self) -> list[Recording]:
        """Crypto-shred recordings past their retention; answers those purged (for the audit)."""
        limit = self.clock.now() - self.settings.recording.retention_days * DAY
        purged: list[Recording] = []
        for recording in await self.store.list_recordings():
            if recording.status != "deleted" and recording.started_at < limit:
                if recording.status == "recording":
                    continue  # still being written: the next sweep takes it
                purged.append(await self.delete(recording, "retention"))
        return purged
