"""What each client message does: the handlers, registered by message type.

``FIRST`` takes a connection's first message (join or resume: a valid room token or resume
secret seats it), ``IN_ROOM`` every message after. A handler acts with the role of its
connection, never one taken from a message, and checks the connection still holds its seat
(shared rooms: as saved, not as this process last saw it) before acting.
"""

from __future__ import annotations

from collections.abc import Callable

from signaling.consultations import permissions
from signaling.errors import AppError
from signaling.live.call_summary import file_counted
from signaling.live.connection import Connection, Dispatch, MessageTable
from signaling.live.protocol import (
    PROTOCOL_VERSION,
    SUPPORTED_VERSIONS,
    Admit,
    Answer,
    Candidate,
    Deny,
    EndOfCandidates,
    FileExchanged,
    HangUp,
    Join,
    MediaState,
    Offer,
    Ping,
    Pong,
    RecordingConsent,
    RecordingOffer,
    RecordingRequest,
    RecordingStop,
    RecordingWithdraw,
    RelayedAnswer,
    RelayedCandidate,
    RelayedEndOfCandidates,
    RelayedMediaState,
    RelayedOffer,
    Resume,
    Welcome,
    encode,
)
from signaling.live.recording_routing import RecordingMessage
from signaling.live.room import JoinResult, Room, RoomState, Seat
from signaling.live.sdp import MAX_TRICKLE_CANDIDATES, validate_candidate, validate_sdp
from signaling.live.turn import credential_expiry, ice_servers
from signaling.models import Consultation

FIRST = MessageTable()
IN_ROOM = MessageTable()

# -- join and resume


async def _audit_refusal(connection: Connection, reason: str) -> None:
    await connection.services.audit.record(
        "signaling.token_refused",
        actor="unknown",
        actor_role="unknown",
        outcome="refused",
        address=connection.address,
        reason=reason,
    )


def _welcome(connection: Connection, room: Room, resumed: bool) -> Callable[[JoinResult], None]:
    services = connection.services
    settings = services.settings
    consultation_end = connection.consultation_end

    def send(result: JoinResult) -> None:
        expires = credential_expiry(
            services.clock.now(),
            consultation_end,
            settings.security.invite_grace_minutes * 60,
            settings.turn.max_credential_hours,
        )
        servers, ice_expires = ice_servers(
            settings.turn, services.turn_secret, f"{connection.role}.{room.id}", expires
        )
        welcome = Welcome(
            v=PROTOCOL_VERSION,
            room=room.id,
            role=connection.role,
            state=result.state.value,
            ice_servers=servers,
            resume=result.resume_secret,
            resume_grace_seconds=settings.signaling.resume_grace_seconds,
            ice_expires_at=ice_expires,
            resumed=resumed,
            recording_available=settings.recording.enabled,
            recording_retention_days=settings.recording.retention_days,
        )
        connection.deliver(encode(welcome), None)

    return send


async def _open_consultation(connection: Connection, room_id: str) -> Consultation:
    services = connection.services
    consultation = await services.store.get_consultation(room_id)
    if consultation is None:
        raise AppError("consultation_not_found")
    services.consultations.ensure_open(consultation)
    connection.consultation_end = consultation.scheduled_end
    return consultation


async def _ensure_seat_holder(connection: Connection, subject: str, c: Consultation) -> None:
    """A doctor's token was issued to the consultation's doctor; the account is looked at
    again here, as it may have changed in the token's lifetime (a role changed to assistant,
    an account disabled): an assistant never takes a seat, whatever token it holds."""
    user = await connection.services.store.get_user(subject.removeprefix("user:"))
    if user is None or user.disabled or not permissions.may_join(user, c):
        raise AppError("forbidden", "This account does not take part in calls.")


@FIRST.on(Join)
async def join(connection: Connection, message: Join) -> None:
    if message.v not in SUPPORTED_VERSIONS:
        raise AppError("unsupported_version", details={"supported": [PROTOCOL_VERSION]})
    services = connection.services
    try:
        claims = await services.room_tokens.redeem(message.token)
        consultation = await _open_consultation(connection, claims.room)
        if claims.role == "patient" and claims.generation != consultation.invite_generation:
            # Minted before the doctor re-issued the invite (a leaked link's token lives
            # up to 120 s): it must not take, nor push anyone out of, the patient seat.
            raise AppError("invite_superseded")
        if claims.role == "doctor":
            await _ensure_seat_holder(connection, claims.subject, consultation)
    except AppError as error:
        await _audit_refusal(connection, error.code)
        raise
    rooms = connection.signaling.rooms
    room = rooms.get_or_create(claims.room, consultation.patient_name)
    # Known before the first await of the join: if this task dies there (the client drops
    # and aiohttp cancels the handler), the connection still frees the seat.
    connection.role = claims.role
    connection.room = room
    await room.join(
        connection.id,
        claims.role,
        claims.subject,
        connection.address,
        _welcome(connection, room, False),
        claims.generation,
    )
    if claims.role == "patient":
        # A re-issue between the check above and the seat: its show-out may have found
        # the room without this seat, so look again now that the seat is saved.
        now = await services.store.get_consultation(claims.room)
        if now is not None and now.invite_generation != claims.generation:
            await rooms.supersede_patient(room.id, now.invite_generation)


@FIRST.on(Resume)
async def resume(connection: Connection, message: Resume) -> None:
    if message.v not in SUPPORTED_VERSIONS:
        raise AppError("unsupported_version", details={"supported": [PROTOCOL_VERSION]})
    found = await connection.signaling.rooms.find_resume(message.resume)
    if found is None:
        await _audit_refusal(connection, "resume_invalid")
        raise AppError("token_invalid", "This place can no longer be resumed.")
    room, role, secret_hash = found
    try:
        consultation = await _open_consultation(connection, room.id)
    except AppError as error:
        await _audit_refusal(connection, error.code)
        raise
    connection.role = role
    connection.room = room
    try:
        await room.resume(
            connection.id,
            role,
            _welcome(connection, room, True),
            secret_hash,
            consultation.invite_generation,
        )
    except AppError as error:
        if error.code == "invite_superseded":  # the seat of a replaced link
            await _audit_refusal(connection, error.code)
        raise


async def second_join(connection: Connection, message: Join | Resume) -> None:
    raise AppError("already_joined")


IN_ROOM.add(Join, second_join)
IN_ROOM.add(Resume, second_join)

# -- in the room


def _joined(connection: Connection) -> Room:
    if connection.room is None:
        raise AppError("not_joined")
    return connection.room


async def _seat(connection: Connection) -> Seat:
    room = _joined(connection)
    await room.refresh()  # shared rooms: as saved, not as this handle last saw them
    seat = room.seats.get(connection.role)
    if seat is None or seat.connection_id != connection.id:
        raise AppError("not_joined")
    return seat


@IN_ROOM.on(Admit)
async def admit(connection: Connection, message: Admit) -> None:
    await _seat(connection)
    await _joined(connection).admit(connection.role)


@IN_ROOM.on(Deny)
async def deny(connection: Connection, message: Deny) -> None:
    await _seat(connection)
    await _joined(connection).deny(connection.role)


@IN_ROOM.on(Offer)
async def offer(connection: Connection, message: Offer) -> None:
    await _seat(connection)
    room = _joined(connection)
    peer = room.relay_target(connection.role)
    connection.candidates = validate_sdp(message.sdp)
    relayed = RelayedOffer(sdp=message.sdp, ice_restart=message.ice_restart)
    room.send_raw(peer, encode(relayed))


@IN_ROOM.on(Answer)
async def answer(connection: Connection, message: Answer) -> None:
    await _seat(connection)
    room = _joined(connection)
    peer = room.relay_target(connection.role)
    connection.candidates = validate_sdp(message.sdp)
    room.send_raw(peer, encode(RelayedAnswer(sdp=message.sdp)))


@IN_ROOM.on(Candidate)
async def candidate(connection: Connection, message: Candidate) -> None:
    await _seat(connection)
    room = _joined(connection)
    peer = room.relay_target(connection.role)
    validate_candidate(message.candidate, message.sdp_mid)
    if connection.candidates >= MAX_TRICKLE_CANDIDATES:
        raise AppError(
            "too_many_candidates",
            f"More than {MAX_TRICKLE_CANDIDATES} candidates for one description.",
        )
    connection.candidates += 1
    relayed = RelayedCandidate(
        candidate=message.candidate,
        sdp_mid=message.sdp_mid,
        sdp_mline_index=message.sdp_mline_index,
    )
    room.send_raw(peer, encode(relayed))


@IN_ROOM.on(EndOfCandidates)
async def end_of_candidates(connection: Connection, message: EndOfCandidates) -> None:
    await _seat(connection)
    room = _joined(connection)
    room.send_raw(room.relay_target(connection.role), encode(RelayedEndOfCandidates()))


@IN_ROOM.on(MediaState)
async def media_state(connection: Connection, message: MediaState) -> None:
    # Relayed as said: the server keeps nothing, each page sends its state again after every
    # peer_joined, so a participant who comes back learns it.
    await _seat(connection)
    room = _joined(connection)
    relayed = RelayedMediaState(
        audio=message.audio, video=message.video, missing=tuple(sorted(message.missing))
    )
    room.send_raw(room.relay_target(connection.role), encode(relayed))


@IN_ROOM.on(HangUp)
async def hang_up(connection: Connection, message: HangUp) -> None:
    seat = await _seat(connection)
    room = _joined(connection)
    services = connection.services
    if message.end and connection.role == "doctor":
        consultation = await services.store.get_consultation(room.id)
        if consultation is not None:
            await services.consultations.end(consultation)
        connection.hung_up = True
        await room.end("ended_by_doctor", seat)
        return
    if message.end:
        raise AppError("forbidden", "Only the doctor ends the consultation.")
    connection.hung_up = True
    await room.hang_up(connection.id, connection.role)


@IN_ROOM.on(FileExchanged)
async def file_exchanged(connection: Connection, message: FileExchanged) -> None:
    await _seat(connection)
    room = _joined(connection)
    if connection.role != "doctor":
        raise AppError("forbidden", "Only the doctor's page counts the files exchanged.")
    room.require(RoomState.IN_CALL, action="file_exchanged")
    await connection.services.store.change_consultation(room.id, file_counted)


@IN_ROOM.on(Ping)
async def ping(connection: Connection, message: Ping) -> None:
    connection.deliver(encode(Pong(id=message.id)), None)


# -- recording consent: the role is the connection's, never taken from a message


async def recording(connection: Connection, message: RecordingMessage) -> None:
    seat = await _seat(connection)
    await connection.signaling.recordings.receive(
        _joined(connection),
        connection.id,
        connection.role,
        seat.subject,
        message,
        connection.deliver,
    )


IN_ROOM.add(RecordingRequest, recording)
IN_ROOM.add(RecordingConsent, recording)
IN_ROOM.add(RecordingWithdraw, recording)
IN_ROOM.add(RecordingStop, recording)
IN_ROOM.add(RecordingOffer, recording)

DISPATCH = Dispatch(
    first=FIRST,
    in_room=IN_ROOM,
    # Messages relayed to the other participant: their handling time feeds the relay histogram.
    relayed=frozenset({Offer, Answer, Candidate, EndOfCandidates, MediaState}),
)
