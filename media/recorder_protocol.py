"""The control protocol between the signaling server and a recording worker process.

Transport: JSON lines (one UTF-8 JSON object per ``\\n``-terminated line, at most
:data:`MAX_LINE` bytes) on the worker's stdin (requests) and stdout (replies and events); the
worker logs on stderr only (its fd 1 is moved to fd 2 at start, so a stray print from a
library cannot corrupt the channel). Every object has a ``type`` tag.

Requests (server -> worker) carry an ``id`` chosen by the server; exactly one reply with the
same ``id`` answers each: the matching success reply or ``failed``. Requests are handled
concurrently (a ``stop`` is never queued behind an ``offer`` that is gathering candidates).

===========================  ===============================================================
request                      success reply
===========================  ===============================================================
``start``                    ``started``: the encrypted file is created (mode 0600, must not
  recording_id, path,          exist) under the keyring's current master key; ``key_id``
  key_file, key_id?,           (hex), when given, must be the current key's id (so a rotation
  roles, ice_servers           in between is noticed). Nothing is written before media comes.
``offer``                    ``answer``: ``sdp`` is a complete answer (aiortc gathers every
  recording_id, role, sdp      candidate first: no trickle; the offer must be complete too,
                               send-only audio/video, DTLS-SRTP). A second offer for a role
                               replaces that participant's connection (reconnection).
``stop``                     ``stopped``: muxing stopped, the file is sealed (``complete``)
  recording_id                 or, after a write error, left valid up to its last segment.
                               ``bytes`` is the file size on disk, ``duration`` the media
                               seconds recorded. Idempotent: a stopped or failed recording
                               answers with its final figures. The worker answers within a
                               second; the server kills a worker that does not.
===========================  ===============================================================

Events (worker -> server, no ``id``):

- ``ready`` once at start (pid, loopback mode);
- ``participant_connected`` / ``participant_disconnected`` (recording_id, role): the
  participant's DTLS-SRTP connection to the recorder came up / went away;
- ``intake_stopped`` (recording_id): a ``stop`` has stopped taking media in; the file is
  being sealed (the ``stopped`` reply follows), so the room can be told at once;
- ``error`` (recording_id, code, message, bytes, duration): the recording stopped by itself
  (``write_error`` for a full disk or an I/O error); the file is valid up to its last
  complete segment and reads with ``RecordingReader(recover=True)``.

Error codes (``failed.code``, ``error.code``): see :data:`ErrorCode`.

End of the worker: closing its stdin (or SIGTERM) stops every recording cleanly, then it
exits. SIGKILL leaves each file readable with ``recover=True`` up to its last segment.
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec

MAX_LINE: Final = 1 << 20  # an SDP is a few KB

ErrorCode = Literal[
    "bad_request",  # unparsable or invalid request
    "unknown_recording",  # no such recording_id in this worker
    "already_exists",  # start: recording_id in use
    "invalid_state",  # offer after stop, role not part of the recording...
    "key_error",  # the key file cannot be read or is not the expected key
    "io_error",  # the file cannot be created
    "sdp_rejected",  # not DTLS-SRTP, no VP8/Opus, malformed
    "write_error",  # writing the recording failed (disk full, I/O error)
    "internal",
]

DEFAULT_ROLES: Final = ("doctor", "patient")


class IceServerConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    urls: list[str]
    username: str | None = None
    credential: str | None = None


# -- requests


class Start(msgspec.Struct, tag="start", tag_field="type", forbid_unknown_fields=True):
    id: int
    recording_id: str
    path: str
    key_file: str
    key_id: str | None = None
    roles: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_ROLES))
    ice_servers: list[IceServerConfig] = msgspec.field(default_factory=list)
    # Associated data binding the file to its recording (the reader must pass the same).
    context: str = ""


class Offer(msgspec.Struct, tag="offer", tag_field="type", forbid_unknown_fields=True):
    id: int
    recording_id: str
    role: str
    sdp: str


class Stop(msgspec.Struct, tag="stop", tag_field="type", forbid_unknown_fields=True):
    id: int
    recording_id: str


Request = Start | Offer | Stop

# -- replies


class Started(msgspec.Struct, tag="started", tag_field="type"):
    id: int
    recording_id: str
    key_id: str


class Answer(msgspec.Struct, tag="answer", tag_field="type"):
    id: int
    recording_id: str
    role: str
    sdp: str


class Stopped(msgspec.Struct, tag="stopped", tag_field="type"):
    id: int
    recording_id: str
    bytes: int
    duration: float
    complete: bool


class Failed(msgspec.Struct, tag="failed", tag_field="type"):
    id: int | None
    code: ErrorCode
    message: str


Reply = Started | Answer | Stopped | Failed

# -- events


class Ready(msgspec.Struct, tag="ready", tag_field="type"):
    pid: int
    loopback: str


class ParticipantConnected(msgspec.Struct, tag="participant_connected", tag_field="type"):
    recording_id: str
    role: str


class ParticipantDisconnected(msgspec.Struct, tag="participant_disconnected", tag_field="type"):
    recording_id: str
    role: str


class RecordingFailed(msgspec.Struct, tag="error", tag_field="type"):
    recording_id: str
    code: ErrorCode
    message: str
    bytes: int
    duration: float


class IntakeStopped(msgspec.Struct, tag="intake_stopped", tag_field="type"):
    recording_id: str


Event = Ready | ParticipantConnected | ParticipantDisconnected | IntakeStopped | RecordingFailed
WorkerMessage = Reply | Event

REQUEST_DECODER: Final = msgspec.json.Decoder(Request)
WORKER_MESSAGE_DECODER: Final = msgspec.json.Decoder(WorkerMessage)
_ENCODER: Final = msgspec.json.Encoder()


def encode_line(message: Request | WorkerMessage) -> bytes:
    return _ENCODER.encode(message) + b"\n"
