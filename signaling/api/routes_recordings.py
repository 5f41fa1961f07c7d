"""Recordings for their doctor and for admins: list, play (HTTP Range, decrypted segment by
segment), download (decrypted on the fly), delete. Any other role is refused all four (403
forbidden, permissions.may_see_recordings); among those who pass, RecordingLibrary.may_see
keeps each to the recordings it may see (another doctor's answers 404)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

from aiohttp import web

from media.encrypted_recording import RecordingError
from signaling.api.api_types import RecordingList, RecordingQuery, RecordingView
from signaling.api.http_api import (
    SESSION_KEY,
    USER_KEY,
    ApiRegistry,
    audit_request,
    json_response,
)
from signaling.api.views import recording_view
from signaling.consultations import permissions
from signaling.errors import AppError, ErrorCode
from signaling.keys import SERVICES
from signaling.models import Recording, User
from signaling.recording.recordings import RecordingLibrary

log = logging.getLogger("teleconsult.recordings")
routes = ApiRegistry()
_ERRORS: tuple[ErrorCode, ...] = (
    "not_authenticated",
    "forbidden",
    "recording_not_found",
    "recording_unreadable",
    "recording_file_missing",
)
VIEW_AUDIT_SECONDS = 600.0  # one recording.viewed per session and recording in this time


def library(request: web.Request) -> RecordingLibrary:
    s = request.app[SERVICES]
    return RecordingLibrary(s.store, s.clock, s.settings)


def _viewer(request: web.Request) -> User:
    user = request[USER_KEY]
    if not permissions.may_see_recordings(user):
        raise permissions.refuse_feature(user, "Recordings are for the doctor and admins.")
    return user


@routes.route(
    "GET",
    "/api/recordings",
    summary="Recordings of own consultations (all of them "
    "for an admin), newest first; listing is audited",
    auth="staff",
    query=RecordingQuery,
    response=RecordingList,
    errors=("not_authenticated", "forbidden"),
    tag="recordings",
)
async def list_recordings(request: web.Request, query: RecordingQuery) -> web.Response:
    user = _viewer(request)
    lib = library(request)
    found = await lib.list_for(user, query.consultation)
    receipts = {
        cid: await lib.store.list_consent_receipts(cid)
        for cid in {r.consultation_id for r in found}
    }
    await audit_request(
        request, "recording.listed", target=query.consultation or "", count=len(found)
    )
    views = [
        recording_view(r, receipts[r.consultation_id], lib.retention_ends_at(r)) for r in found
    ]
    return json_response(RecordingList(recordings=views))


def _require_media(recording: Recording) -> None:
    """Play and download need a finished recording that holds media."""
    if recording.status == "recording":
        raise AppError("invalid_state", "The recording is still being written.")
    if recording.empty:
        raise AppError("recording_empty")


async def _require_file(lib: RecordingLibrary, recording: Recording) -> None:
    if not await asyncio.to_thread(lib.path_of(recording).exists):
        raise AppError("recording_file_missing")


@routes.route(
    "GET",
    "/api/recordings/{recording_id}/media",
    summary="The recording as WebM for the page's player: decrypted segment by segment as it "
    "streams (never written decrypted), one HTTP Range at a time (206) so the player can "
    "seek; a view is audited once per session and recording every 10 minutes",
    auth="staff",
    produces="video/webm",
    errors=(*_ERRORS, "invalid_state", "recording_empty", "range_not_satisfiable"),
    tag="recordings",
)
async def recording_media(request: web.Request) -> web.StreamResponse:
    user = _viewer(request)
    lib = library(request)
    recording = await lib.visible_to(user, request.match_info["recording_id"])
    _require_media(recording)
    await _require_file(lib, recording)
    try:
        ranges = await asyncio.to_thread(lib.ranges, recording)
    except (RecordingError, OSError):
        log.exception("recording %s cannot be read", recording.id)
        raise AppError("recording_unreadable") from None
    try:
        try:
            wanted = request.http_range
        except ValueError:
            raise AppError("range_not_satisfiable") from None
        start, stop = wanted.start, wanted.stop
        if start is not None and start < 0 and stop is not None:
            raise AppError("range_not_satisfiable")
        if start is None:
            start = 0
        elif start < 0:  # bytes=-N: the last N bytes
            start = max(ranges.size + start, 0)
        stop = ranges.size if stop is None else min(stop, ranges.size)
        if (start >= ranges.size and ranges.size > 0) or start > stop:
            raise AppError("range_not_satisfiable")
        await _audit_view(request, recording)
        partial = "Range" in request.headers
        response = web.StreamResponse(
            status=206 if partial else 200,
            headers={
                "Content-Type": "video/webm",
                "Accept-Ranges": "bytes",
                "Cache-Control": "no-store",
                "Content-Length": str(stop - start),
            },
        )
        if partial:
            response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{ranges.size}"
        await response.prepare(request)
        pieces = ranges.read(start, stop)
        # A damaged segment raises here: the connection is dropped, not ended as complete.
        while piece := await asyncio.to_thread(next, pieces, b""):
            await response.write(piece)
        await response.write_eof()
        return response
    finally:
        ranges.close()


async def _audit_view(request: web.Request, recording: Recording) -> None:
    """A player asks for many ranges per viewing: one entry per session and recording every
    VIEW_AUDIT_SECONDS, claimed in the store so every instance shares it."""
    services = request.app[SERVICES]
    session = request[SESSION_KEY]
    key = f"recording-view:{session.id_hash}:{recording.id}"
    if await services.store.claim_once(key, VIEW_AUDIT_SECONDS, services.clock.now()):
        await audit_request(request, "recording.viewed", target=recording.id)


@routes.route(
    "GET",
    "/api/recordings/{recording_id}/download",
    summary="The recording as WebM, decrypted while it streams (never written decrypted); audited",
    auth="staff",
    produces="video/webm",
    errors=(*_ERRORS, "invalid_state", "recording_empty"),
    tag="recordings",
)
async def download_recording(request: web.Request) -> web.StreamResponse:
    user = _viewer(request)
    lib = library(request)
    recording = await lib.visible_to(user, request.match_info["recording_id"])
    _require_media(recording)
    await _require_file(lib, recording)
    chunks: Iterator[bytes] = lib.plaintext(recording)
    # The first chunk authenticates the header and the key before anything is answered.
    try:
        first = await asyncio.to_thread(next, chunks, b"")
    except (RecordingError, OSError):
        log.exception("recording %s cannot be read", recording.id)
        await audit_request(request, "recording.downloaded", target=recording.id, outcome="failure")
        raise AppError("recording_unreadable") from None
    await audit_request(request, "recording.downloaded", target=recording.id)
    response = web.StreamResponse(
        headers={
            "Content-Type": "video/webm",
            "Content-Disposition": f'attachment; filename="recording-{recording.id}.webm"',
            "Cache-Control": "no-store",
        }
    )
    await response.prepare(request)
    chunk = first
    while chunk:
        await response.write(chunk)
        # A damaged segment raises here: the connection is dropped rather than the
        # download ending as if complete.
        chunk = await asyncio.to_thread(next, chunks, b"")
    await response.write_eof()
    return response


@routes.route(
    "POST",
    "/api/recordings/{recording_id}/delete",
    summary="Delete a recording: "
    "its wrapped key is destroyed and the file removed (crypto-shredding); audited",
    auth="staff",
    response=RecordingView,
    errors=(*_ERRORS, "csrf_failed", "invalid_state"),
    tag="recordings",
)
async def delete_recording(request: web.Request) -> web.Response:
    user = _viewer(request)
    lib = library(request)
    recording = await lib.visible_to(user, request.match_info["recording_id"])
    if recording.status == "recording":
        raise AppError("invalid_state", "Stop the recording before deleting it.")
    # A file on another instance's disk would survive the deletion of the record.
    await _require_file(lib, recording)
    deleted = await lib.delete(recording, "deleted")
    await audit_request(request, "recording.deleted", target=recording.id)
    return json_response(recording_view(deleted))
