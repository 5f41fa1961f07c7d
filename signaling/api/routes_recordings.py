"""Recordings for their doctor and for admins: list, download (decrypted on the fly), delete."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

from aiohttp import web

from media.encrypted_recording import RecordingError
from signaling.api.api_types import RecordingList, RecordingQuery, RecordingView
from signaling.api.http_api import USER_KEY, ApiRegistry, audit_request, json_response
from signaling.api.views import recording_view
from signaling.errors import AppError, ErrorCode
from signaling.keys import SERVICES
from signaling.recording.recordings import RecordingLibrary

log = logging.getLogger("teleconsult.recordings")
routes = ApiRegistry()
_ERRORS: tuple[ErrorCode, ...] = (
    "not_authenticated",
    "recording_not_found",
    "recording_unreadable",
)


def library(request: web.Request) -> RecordingLibrary:
    s = request.app[SERVICES]
    return RecordingLibrary(s.store, s.clock, s.settings)


@routes.route(
    "GET",
    "/api/recordings",
    summary="Recordings of own consultations (all of them "
    "for an admin), newest first; listing is audited",
    auth="staff",
    query=RecordingQuery,
    response=RecordingList,
    errors=("not_authenticated",),
    tag="recordings",
)
async def list_recordings(request: web.Request, query: RecordingQuery) -> web.Response:
    user = request[USER_KEY]
    found = await library(request).list_for(user, query.consultation)
    await audit_request(
        request, "recording.listed", target=query.consultation or "", count=len(found)
    )
    return json_response(RecordingList(recordings=[recording_view(r) for r in found]))


@routes.route(
    "GET",
    "/api/recordings/{recording_id}/download",
    summary="The recording as WebM, decrypted while it streams (never written decrypted); audited",
    auth="staff",
    produces="video/webm",
    errors=_ERRORS,
    tag="recordings",
)
async def download_recording(request: web.Request) -> web.StreamResponse:
    user = request[USER_KEY]
    lib = library(request)
    recording = await lib.visible_to(user, request.match_info["recording_id"])
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
    user = request[USER_KEY]
    lib = library(request)
    recording = await lib.visible_to(user, request.match_info["recording_id"])
    if recording.status == "recording":
        raise AppError("invalid_state", "Stop the recording before deleting it.")
    deleted = await lib.delete(recording, "deleted")
    await audit_request(request, "recording.deleted", target=recording.id)
    return json_response(recording_view(deleted))
