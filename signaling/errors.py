"""The closed set of errors a user may see, mapped in one place to HTTP status and close code.

Anything raised that is not an :class:`AppError` is logged and answered as ``internal_error``,
so a message meant for the log (with a path, a query, a token) never reaches a client.

Over 400 lines on purpose: it is one table, each error with its status, close code, message and
where a WebSocket client meets it; the docs' tables are generated from it, so it stays whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

# Every code a user may see, as one closed set that mypy checks wherever a code is written
# (AppError, an endpoint's declared errors); _KINDS below gives each one its status, close
# code and message, and the import fails if the two ever differ.
ErrorCode = Literal[
    # request shape
    "invalid_body",
    "bad_request",
    "payload_too_large",
    "not_found",
    "method_not_allowed",
    "internal_error",
    "unavailable",
    # authentication
    "invalid_credentials",
    "invalid_totp",
    "totp_reused",
    "login_expired",
    "account_locked",
    "address_locked",
    "not_authenticated",
    "session_locked",
    "enrolment_required",
    "mfa_unreadable",
    "csrf_failed",
    "forbidden",
    "weak_password",
    "common_password",
    "wrong_password",
    "password_unchanged",
    "username_taken",
    "passkey_refused",
    "passkey_unavailable",
    "passkey_not_found",
    "last_second_factor",
    "passkey_required",
    "passkey_enrolment_required",
    "passwordless_disabled",
    "last_admin",
    "setup_done",
    "setup_link_invalid",
    "account_link_invalid",
    # consultations and invites
    "consultation_not_found",
    "consultation_cancelled",
    "consultation_ended",
    "invite_invalid",
    "invite_expired",
    "invite_locked",
    "invalid_access_code",
    "invite_superseded",
    # invitations by email
    "mail_not_configured",
    "patient_email_missing",
    "mail_refused",
    "mail_unreachable",
    # room tokens
    "token_invalid",
    "token_expired",
    "token_replayed",
    # signaling
    "join_timeout",
    "origin_refused",
    "too_many_connections",
    "rate_limited",
    "malformed_message",
    "binary_not_supported",
    "unsupported_version",
    "not_joined",
    "already_joined",
    "invalid_state",
    "replaced",
    "denied",
    "insecure_sdp",
    "invalid_sdp",
    "too_many_candidates",
    "peer_absent",
    "not_waiting",
    # recordings
    "recording_not_found",
    "recording_unreadable",
    "recording_file_missing",
    "recording_empty",
    "range_not_satisfiable",
    "consent_required",
]
ERROR_CODES: tuple[ErrorCode, ...] = get_args(ErrorCode)

WsPhase = Literal["handshake", "join", "room", "any"]


@dataclass(frozen=True)
class Ws:
    """Where a WebSocket client meets an error: docs/protocol.md's error table is generated
    from these (``python -m signaling.api.error_docs``), so say it here, once.

    ``phase``: "handshake" (refused before the upgrade, as a plain HTTP answer), "join" (in
    answer to ``join``/``resume``, which closes the socket), "room" (after the join) or "any".
    ``when``: the cause, as Markdown for the table."""

    phase: WsPhase
    when: str


@dataclass(frozen=True)
class ErrorKind:
    code: ErrorCode
    http_status: int
    # WebSocket close code when the error ends the connection (None: reported, socket kept;
    # during the join every error closes, with 4400 when it has no code of its own).
    close_code: int | None
    message: str
    # Sent on the WebSocket (None: HTTP only). A code with a close code is listed in the
    # protocol's table even without it, but then its cause is only its message.
    websocket: Ws | None = None


_KINDS = [
    # -- request shape
    ErrorKind("invalid_body", 400, None, "The request body is not valid."),
    # Refused by the HTTP parser itself (request line or header too long, bad syntax).
    ErrorKind("bad_request", 400, None, "The request is not valid HTTP."),
    ErrorKind("payload_too_large", 413, None, "The request is larger than allowed."),
    ErrorKind("not_found", 404, None, "Nothing here."),
    ErrorKind("method_not_allowed", 405, None, "This method is not allowed here."),
    ErrorKind(
        "internal_error",
        500,
        1011,
        "Something went wrong on the server.",
        websocket=Ws("room", "a server bug (logged there)"),
    ),
    ErrorKind(
        "unavailable",
        503,
        1013,
        "The service is temporarily unavailable.",
        websocket=Ws(
            "any",
            "the store (Redis) or the recorder cannot be reached: try again shortly (a "
            "recording message handled by another instance: socket kept)",
        ),
    ),
    # -- authentication
    ErrorKind("invalid_credentials", 401, None, "Wrong username or password."),
    ErrorKind("invalid_totp", 401, None, "Wrong or expired code."),
    ErrorKind("totp_reused", 401, None, "This code was already used; wait for the next one."),
    ErrorKind("login_expired", 401, None, "The sign-in took too long; start again."),
    ErrorKind("account_locked", 429, None, "Too many failed attempts; try again later."),
    ErrorKind("address_locked", 429, None, "Too many failed attempts from this address."),
    ErrorKind("not_authenticated", 401, None, "Sign in first."),
    # Past security.session_idle_minutes without a request: kept, not ended, until
    # POST /api/auth/unlock (password and code) or the absolute limit.
    ErrorKind(
        "session_locked",
        401,
        None,
        "Your session is locked after a period without activity; confirm your password and code.",
    ),
    ErrorKind("enrolment_required", 403, None, "Set up your authenticator app first."),
    ErrorKind(
        "mfa_unreadable",
        409,
        None,
        "Your two-factor setup can no longer be read; ask an administrator to reset it.",
    ),
    ErrorKind("csrf_failed", 403, None, "The request did not carry a valid CSRF token."),
    ErrorKind(
        "forbidden",
        403,
        None,
        "You are not allowed to do this.",
        websocket=Ws(
            "any",
            "a patient sends `admit`, `deny`, `hang_up` with `end: true`, `file_exchanged` or "
            "`recording_request`; `recording_request` on a service that does not record; "
            "at `join`, a doctor's token whose account may no longer take the seat (an "
            "assistant, a disabled account, no longer the consultation's doctor): closes 4400",
        ),
    ),
    ErrorKind("weak_password", 400, None, "The password is too short."),
    ErrorKind(
        "common_password",
        400,
        None,
        "This password is among the most common (leaked) passwords; choose another.",
    ),
    ErrorKind("wrong_password", 403, None, "The current password is wrong."),
    ErrorKind(
        "password_unchanged", 400, None, "The new password must differ from the current one."
    ),
    ErrorKind("username_taken", 409, None, "This username is already taken."),
    ErrorKind("passkey_refused", 401, None, "This passkey was not accepted; try again."),
    ErrorKind(
        "passkey_unavailable",
        400,
        None,
        "Passkeys work only when the service is opened at its name, not at an IP address.",
    ),
    ErrorKind("passkey_not_found", 404, None, "No such passkey on this account."),
    ErrorKind(
        "last_second_factor",
        409,
        None,
        "This is the account's last second factor: add another before removing it.",
    ),
    ErrorKind(
        "passkey_required",
        403,
        None,
        "This account signs in with its passkey: the authenticator code is not accepted.",
    ),
    ErrorKind(
        "passkey_enrolment_required",
        403,
        None,
        "Add a passkey to your account (My account) before anything else.",
    ),
    ErrorKind(
        "passwordless_disabled",
        403,
        None,
        "Signing in with a passkey alone is not enabled on this service.",
    ),
    ErrorKind("last_admin", 409, None, "The service needs at least one active administrator."),
    ErrorKind("setup_done", 409, None, "The service is already set up."),
    ErrorKind("setup_link_invalid", 403, None, "This setup link is invalid or expired."),
    ErrorKind(
        "account_link_invalid",
        403,
        None,
        "This link is invalid, expired or already used; ask your administrator for a new one.",
    ),
    # -- consultations and invites
    ErrorKind(
        "consultation_not_found",
        404,
        4404,
        "No such consultation.",
        websocket=Ws("any", "the consultation no longer exists"),
    ),
    ErrorKind(
        "consultation_cancelled",
        410,
        4410,
        "This consultation was cancelled.",
        websocket=Ws("join", "the consultation was cancelled"),
    ),
    ErrorKind(
        "consultation_ended",
        410,
        4410,
        "This consultation has ended.",
        websocket=Ws("join", "the consultation has ended"),
    ),
    ErrorKind("invite_invalid", 404, None, "This link is invalid."),
    ErrorKind("invite_expired", 410, None, "This link has expired."),
    ErrorKind("invite_locked", 423, None, "Too many wrong codes; ask your doctor for a new link."),
    ErrorKind("invalid_access_code", 403, None, "Wrong access code."),
    ErrorKind(
        "invite_superseded",
        410,
        4410,
        "Your doctor replaced this link with a new one; open the new link you were sent.",
        websocket=Ws(
            "any",
            "a patient's room token from before the doctor issued a new invite link (refused "
            "at the join), or a patient of an earlier link still in the room when the new one "
            "was issued (shown out)",
        ),
    ),
    # -- invitations by email (nothing is lost when one fails: the consultation, its link and
    # the address stay as they were, and sending again works)
    ErrorKind(
        "mail_not_configured",
        409,
        None,
        "Sending by email is not set up on this service; give the patient the link yourself.",
    ),
    ErrorKind(
        "patient_email_missing",
        409,
        None,
        "This consultation has no email address for the patient; add one first.",
    ),
    ErrorKind(
        "mail_refused",
        502,
        None,
        "The mail server refused the message; check the patient's address, or try again "
        "later. The consultation and its link are unchanged.",
    ),
    ErrorKind(
        "mail_unreachable",
        503,
        None,
        "The mail server could not be reached; try again in a moment. The consultation and "
        "its link are unchanged.",
    ),
    # -- room tokens
    ErrorKind(
        "token_invalid",
        401,
        4401,
        "The room token is invalid.",
        websocket=Ws("join", "bad room token, or unknown/expired resume secret"),
    ),
    ErrorKind(
        "token_expired",
        401,
        4401,
        "The room token has expired.",
        websocket=Ws("join", "room token older than `security.room_token_ttl_seconds` (120 s)"),
    ),
    ErrorKind(
        "token_replayed",
        401,
        4401,
        "The room token was already used.",
        websocket=Ws("join", "room token already used"),
    ),
    # -- signaling
    ErrorKind(
        "join_timeout",
        408,
        4408,
        "No join message in time.",
        websocket=Ws("join", "no `join`/`resume` within `signaling.join_timeout_seconds` (5 s)"),
    ),
    ErrorKind(
        "origin_refused",
        403,
        4403,
        "This page was opened at an address the service does not answer for: open it at "
        "the address the service printed at start-up, or set server.public_url to this one.",
        websocket=Ws(
            "handshake",
            "the `Origin` header is missing or is not the service's origin (see *Transport*)",
        ),
    ),
    ErrorKind(
        "too_many_connections",
        429,
        4429,
        "Too many connections from this address.",
        websocket=Ws(
            "handshake",
            "the address already holds `signaling.connections_per_address` (20) sockets",
        ),
    ),
    ErrorKind(
        "rate_limited",
        429,
        4429,
        "Too many messages; slow down.",
        websocket=Ws(
            "room",
            "more than `signaling.messages_per_second` (40) messages per second on average, "
            "beyond bursts of `signaling.message_burst` (80)",
        ),
    ),
    ErrorKind(
        "malformed_message",
        400,
        None,
        "The message is not valid.",
        websocket=Ws(
            "any",
            "not JSON, unknown `type`, missing/unknown field, wrong type, out of bounds (`at` "
            "names the field, e.g. `$.sdp`, `$.type`)",
        ),
    ),
    ErrorKind(
        "binary_not_supported",
        400,
        1003,
        "Binary messages are not supported.",
        websocket=Ws("any", "a binary frame"),
    ),
    ErrorKind(
        "unsupported_version",
        400,
        4400,
        "This protocol version is not supported.",
        websocket=Ws("join", "`v` is not 1"),
    ),
    ErrorKind(
        "not_joined",
        400,
        None,
        "Join a room first.",
        websocket=Ws(
            "any",
            "the first message is not `join`/`resume`; after the join, a message from a "
            "connection that no longer holds its seat",
        ),
    ),
    ErrorKind(
        "already_joined",
        400,
        None,
        "Already joined.",
        websocket=Ws("room", "`join`/`resume` after the join"),
    ),
    ErrorKind(
        "invalid_state",
        409,
        None,
        "Not possible in the room's current state.",
        websocket=Ws(
            "any",
            "not possible in the room's state (e.g. `offer` before admission, a resume into an "
            "ended room); `details` not sent",
        ),
    ),
    ErrorKind(
        "replaced",
        409,
        4000,
        "This session was opened somewhere else.",
        websocket=Ws("room", "a newer connection took this seat (another tab, a reload, a resume)"),
    ),
    ErrorKind(
        "denied",
        403,
        4003,
        "The doctor did not admit you.",
        websocket=Ws(
            "room",
            "never in an `error` message: the patient receives the `denied` message, then this "
            "close",
        ),
    ),
    ErrorKind(
        "insecure_sdp",
        400,
        None,
        "Only DTLS-SRTP media descriptions are accepted.",
        websocket=Ws("room", "SDP without DTLS-SRTP (see *Media security*)"),
    ),
    ErrorKind(
        "invalid_sdp",
        400,
        None,
        "The session description is not valid.",
        websocket=Ws(
            "room",
            "SDP or candidate that is not valid, too large, too many `m=` lines; a control "
            "character or stray line break in an SDP, a candidate or its `sdp_mid` (see *Media "
            "security*); a `recording_offer` the recording peer refuses",
        ),
    ),
    ErrorKind(
        "too_many_candidates",
        400,
        None,
        "Too many ICE candidates.",
        websocket=Ws("room", "too many candidates in an SDP or trickled"),
    ),
    ErrorKind(
        "peer_absent",
        409,
        None,
        "The other participant is not connected.",
        websocket=Ws(
            "room",
            "`admit`/`deny` with nobody waiting; a relay while the other participant is "
            "disconnected",
        ),
    ),
    # A message to the waiting room (HTTP only: the patient's socket never meets it).
    ErrorKind(
        "not_waiting",
        409,
        None,
        "Nobody waits in this consultation's waiting room now (not arrived, gone, or already "
        "in the call): the message was not sent.",
    ),
    # -- recordings
    ErrorKind("recording_not_found", 404, None, "No such recording."),
    ErrorKind(
        "recording_unreadable",
        500,
        None,
        "This recording cannot be decrypted: it is damaged or its key is gone.",
    ),
    ErrorKind(
        "recording_file_missing",
        404,
        None,
        "This recording's file is not in this server's recordings directory (with several "
        "instances, that directory must be shared).",
    ),
    ErrorKind(
        "recording_empty",
        409,
        None,
        "This recording holds no picture or sound (it stopped before any arrived): there is "
        "nothing to play or download. It can be deleted.",
    ),
    ErrorKind(
        "range_not_satisfiable",
        416,
        None,
        "The requested byte range is not in this recording (one range, within its size).",
    ),
    ErrorKind(
        "consent_required",
        409,
        None,
        "Both participants must consent first.",
        websocket=Ws("room", "`recording_offer` without both consents (see *Recording*)"),
    ),
]

KINDS: dict[ErrorCode, ErrorKind] = {kind.code: kind for kind in _KINDS}
if list(KINDS) != list(ERROR_CODES) or len(_KINDS) != len(KINDS):
    # A code in ErrorCode without its kind (or twice, or out of order: the OpenAPI document
    # and the protocol's table list them in this order) is a bug to catch at import.
    raise RuntimeError(f"ErrorCode and _KINDS differ: {sorted(set(ERROR_CODES) ^ set(KINDS))}")


class AppError(Exception):
    """A user-visible error; ``code`` is one of :data:`ErrorCode` (checked by mypy, and here
    again for a code that came from data)."""

    def __init__(
        self, code: ErrorCode, message: str | None = None, *, details: dict[str, Any] | None = None
    ) -> None:
        if code not in KINDS:
            raise ValueError(f"unknown error code {code!r}")
        self.kind = KINDS[code]
        self.code = code
        self.message = message or self.kind.message
        self.details = details or {}
        super().__init__(f"{code}: {self.message}")

    @property
    def http_status(self) -> int:
        return self.kind.http_status

    @property
    def close_code(self) -> int | None:
        return self.kind.close_code

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return {"error": body}
