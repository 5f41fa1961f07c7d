"""The signaling wire protocol: one msgspec Struct per message, tagged by ``type``.

Decoding a client frame is one call (:data:`CLIENT_DECODER`): it parses the JSON, picks the
message type from the ``type`` tag, checks every field's type and bound, and refuses unknown
fields. ``docs/protocol.md`` documents every message below; ``web/protocol.js`` follows it.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from signaling.models import SeatRole

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS = frozenset({PROTOCOL_VERSION})

MAX_SDP_BYTES = 64 * 1024
MAX_CANDIDATE_CHARS = 1024

RoomStateName = Literal["waiting", "in_call", "ended"]
# "superseded": the doctor issued a new invite link; the patient of the earlier one is out.
LeaveReason = Literal["left", "disconnected", "replaced", "denied", "superseded"]
EndReason = Literal["ended_by_doctor", "cancelled"]

Version = Annotated[int, Meta(ge=0, le=1000)]
Token = Annotated[str, Meta(min_length=1, max_length=1024)]
Sdp = Annotated[str, Meta(min_length=1, max_length=MAX_SDP_BYTES + 1)]
ShortText = Annotated[str, Meta(max_length=200)]
PingId = Annotated[int, Meta(ge=0, le=2**53)]
# The chat's own limit (web/static/call-chat.js MAX_FILE_BYTES): a larger one is not a file
# the call page sends or accepts.
MAX_CHAT_FILE_BYTES = 10 * 1024 * 1024
FileSize = Annotated[int, Meta(ge=0, le=MAX_CHAT_FILE_BYTES)]


class ClientBase(msgspec.Struct, tag_field="type", forbid_unknown_fields=True):
    """A message a client sends: tagged by ``type``, unknown fields refused."""


class ServerBase(msgspec.Struct, tag_field="type", omit_defaults=True):
    """A message the server sends: tagged by ``type``, default-valued fields left out."""


# -- client -> server ------------------------------------------------------------------------


class Join(ClientBase, tag="join"):
    v: Version
    token: Token


class Resume(ClientBase, tag="resume"):
    v: Version
    resume: Token


class Admit(ClientBase, tag="admit"):
    pass


class Deny(ClientBase, tag="deny"):
    pass


class Offer(ClientBase, tag="offer"):
    sdp: Sdp
    # True when the offer restarts ICE (new ufrag/pwd) after a network change.
    ice_restart: bool = False


class Answer(ClientBase, tag="answer"):
    sdp: Sdp


class Candidate(ClientBase, tag="candidate"):
    candidate: Annotated[str, Meta(min_length=1, max_length=MAX_CANDIDATE_CHARS)]
    sdp_mid: Annotated[str, Meta(max_length=32)] | None = None
    sdp_mline_index: Annotated[int, Meta(ge=0, le=63)] | None = None


class EndOfCandidates(ClientBase, tag="end_of_candidates"):
    pass


class HangUp(ClientBase, tag="hang_up"):
    # Doctor only: True ends the consultation for good; False (or a patient) just leaves.
    end: bool = False


class FileExchanged(ClientBase, tag="file_exchanged"):
    """Doctor only: a chat file went through the data channel (sent or received, said by the
    doctor's page, which sees both ways). Its size only: the server never learns a name or a
    content; it counts the file on the consultation's row."""

    size: FileSize


class Ping(ClientBase, tag="ping"):
    id: PingId = 0


MediaKind = Literal["audio", "video"]


class MediaState(ClientBase, tag="media_state"):
    """Whether the sender's microphone and camera send anything (present and not muted or
    turned off), so the other page can say so instead of showing a silent black tile.
    ``missing``: the kinds the sender has no device for at all (none found, or the browser's
    permission refused), so the other page says "joined without a camera" rather than "turned
    it off"."""

    audio: bool
    video: bool
    missing: frozenset[MediaKind] = frozenset()

    def __post_init__(self) -> None:
        # A device that is not there sends nothing: saying both is a confused client.
        if any(getattr(self, kind) for kind in self.missing):
            # decode_client() reads the JSON path from this text, as from msgspec's own.
            raise ValueError("a missing device cannot send - at `$.missing`")


class RecordingRequest(ClientBase, tag="recording_request"):
    """The doctor asks both participants to consent to a recording."""


class RecordingConsent(ClientBase, tag="recording_consent"):
    """The sender's own answer; it never counts for the other participant."""

    granted: bool


class RecordingWithdraw(ClientBase, tag="recording_withdraw"):
    """Either participant withdraws consent: a running recording stops within a second."""


class RecordingStop(ClientBase, tag="recording_stop"):
    """Either participant stops a running recording (consent is not withdrawn: the receipt
    and the audit trail say "stopped"); it stops within a second, like a withdrawal."""


class RecordingOffer(ClientBase, tag="recording_offer"):
    """A complete (non-trickled) send-only offer to the server's recording peer."""

    sdp: Sdp


ClientMessage = (
    Join
    | Resume
    | Admit
    | Deny
    | Offer
    | Answer
    | Candidate
    | EndOfCandidates
    | MediaState
    | HangUp
    | FileExchanged
    | Ping
    | RecordingRequest
    | RecordingConsent
    | RecordingWithdraw
    | RecordingStop
    | RecordingOffer
)
FIRST_MESSAGES = (Join, Resume)

# -- server -> client ------------------------------------------------------------------------


class IceServer(msgspec.Struct, omit_defaults=True, frozen=True):
    """An RTCIceServer, as a browser's RTCPeerConnection takes it."""

    urls: list[str]
    username: str | None = None
    credential: str | None = None


class Welcome(ServerBase, tag="welcome"):
    v: int
    room: str
    role: SeatRole
    state: RoomStateName
    ice_servers: list[IceServer]
    # Send it in a ``resume`` message to take this place back after a dropped connection.
    resume: str
    resume_grace_seconds: float
    # When the TURN credentials stop working (Unix seconds); 0 when no TURN is configured.
    ice_expires_at: int = 0
    resumed: bool = False
    # Whether the doctor may ask to record (the service records at all), and how many days a
    # recording is kept: what the pages' consent prompt tells both participants.
    recording_available: bool = False
    recording_retention_days: int = 0


class WaitingPatient(msgspec.Struct, frozen=True):
    name: str
    since: float  # Unix seconds
    # Which invite link (1 for the first, +1 per re-issue) the patient came through.
    invite_generation: int = 0


# Why the patient's seat was freed, as the doctor is told in ``lobby.left``.
PatientLeftReason = Literal["left", "disconnected", "superseded"]


class PatientLeft(msgspec.Struct, frozen=True):
    """The patient's seat was just freed: why, and whether the same link lets them back (a
    left or dropped patient may come back with their link while the consultation is open; a
    patient of a replaced link may not: only the new link and code work)."""

    reason: PatientLeftReason
    may_return: bool


class Lobby(ServerBase, tag="lobby"):
    """Doctor only: who waits in the waiting room (``None``: nobody); ``left`` only in the
    message sent when the patient's seat is freed (the room keeps no record of it)."""

    waiting: WaitingPatient | None = None
    left: PatientLeft | None = None


class Waiting(ServerBase, tag="waiting"):
    """Patient only: you are in the waiting room."""


class Admitted(ServerBase, tag="admitted"):
    pass


class Denied(ServerBase, tag="denied"):
    pass


class PeerJoined(ServerBase, tag="peer_joined"):
    role: SeatRole
    resumed: bool = False


class PeerLeft(ServerBase, tag="peer_left"):
    role: SeatRole
    reason: LeaveReason


class RelayedOffer(ServerBase, tag="offer"):
    sdp: str
    ice_restart: bool = False


class RelayedAnswer(ServerBase, tag="answer"):
    sdp: str


class RelayedCandidate(ServerBase, tag="candidate"):
    candidate: str
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None


class RelayedEndOfCandidates(ServerBase, tag="end_of_candidates"):
    pass


class RelayedMediaState(ServerBase, tag="media_state"):
    """The other participant's microphone and camera, as it last said (``MediaState``);
    ``missing`` in a stable order, left out when empty."""

    audio: bool
    video: bool
    missing: tuple[MediaKind, ...] = ()


class Ended(ServerBase, tag="ended"):
    reason: EndReason


class Pong(ServerBase, tag="pong"):
    id: int = 0


class ErrorMessage(ServerBase, tag="error"):
    code: str
    message: str
    # The client message type the error answers, when known.
    ref: str | None = None
    # Where a malformed message went wrong, as a JSON path such as ``$.sdp``.
    at: str | None = None


RecordingStateName = Literal["idle", "asked", "recording"]


class RecordingState(ServerBase, tag="recording_state"):
    """Sent to both participants whenever the recording's state changes."""

    state: RecordingStateName
    recording_id: str = ""
    # Why it went back to idle: declined_by_doctor|patient, consent_withdrawn, call_ended,
    # recorder_unavailable, write_error, recorder_exited...
    reason: str = ""


class RecordingAnswer(ServerBase, tag="recording_answer"):
    sdp: str


# Who wrote a message to the waiting room: the doctor, or the doctor's secretariat.
StaffSender = Literal["doctor", "assistant"]


class StaffMessage(ServerBase, tag="staff_message"):
    """Patient only, while it waits: a short message from the doctor or the secretariat,
    either a preset (an id the patient's page words in the patient's own language) or a
    short free text, never both (signaling/live/staff_messages.py). Kept nowhere."""

    from_role: StaffSender
    sent_at: float  # Unix seconds, by the service clock
    preset: str | None = None
    text: str = ""


ServerMessage = (
    StaffMessage
    | RecordingState
    | RecordingAnswer
    | Welcome
    | Lobby
    | Waiting
    | Admitted
    | Denied
    | PeerJoined
    | PeerLeft
    | RelayedOffer
    | RelayedAnswer
    | RelayedCandidate
    | RelayedEndOfCandidates
    | RelayedMediaState
    | Ended
    | Pong
    | ErrorMessage
)

CLIENT_DECODER: msgspec.json.Decoder[ClientMessage] = msgspec.json.Decoder(ClientMessage)
SERVER_DECODER: msgspec.json.Decoder[ServerMessage] = msgspec.json.Decoder(ServerMessage)
_ENCODER = msgspec.json.Encoder()


def encode(message: ServerBase) -> bytes:
    return _ENCODER.encode(message)


_PATH = re.compile(r"- at `(\$[^`]{0,80})`")
# An unknown or a missing field: ``at`` names it (msgspec says where the object is, not which).
_NAMED_FIELD = re.compile(r"(?:unknown|missing required) field `([A-Za-z_][A-Za-z0-9_]{0,31})`")


class MalformedMessage(Exception):
    """A frame that is not a valid client message; ``at`` names where, never echoes values."""

    def __init__(self, at: str | None) -> None:
        super().__init__(at or "$")
        self.at = at


def decode_client(frame: str | bytes) -> ClientMessage:
    try:
        return CLIENT_DECODER.decode(frame)
    except msgspec.ValidationError as exc:
        # msgspec's text may quote the offending value (a token pasted in the wrong field):
        # only the JSON path leaves the server.
        text = str(exc)
        match = _PATH.search(text)
        at = match.group(1) if match else "$"
        named = _NAMED_FIELD.search(text)
        if named is not None:
            at = f"{at}.{named.group(1)}"
        raise MalformedMessage(at) from None
    except msgspec.DecodeError:
        raise MalformedMessage(None) from None


def message_type(message: msgspec.Struct) -> str:
    tag = type(message).__struct_config__.tag
    return str(tag)
