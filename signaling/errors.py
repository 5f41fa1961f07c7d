"""The closed set of errors a user may see, mapped in one place to HTTP status and close code.

Anything raised that is not an :class:`AppError` is logged and answered as ``internal_error``,
so a message meant for the log (with a path, a query, a token) never reaches a client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ErrorKind:
    code: str
    http_status: int
    # WebSocket close code when the error ends the connection (None: reported, socket kept).
    close_code: int | None
    message: str


_KINDS = [
    # -- request shape
    ErrorKind("invalid_body", 400, None, "The request body is not valid."),
    ErrorKind("payload_too_large", 413, 1009, "The request is larger than allowed."),
    ErrorKind("not_found", 404, None, "Nothing here."),
    ErrorKind("method_not_allowed", 405, None, "This method is not allowed here."),
    ErrorKind("internal_error", 500, 1011, "Something went wrong on the server."),
    ErrorKind("unavailable", 503, 1013, "The service is temporarily unavailable."),
    # -- authentication
    ErrorKind("invalid_credentials", 401, None, "Wrong username or password."),
    ErrorKind("invalid_totp", 401, None, "Wrong or expired code."),
    ErrorKind("totp_reused", 401, None, "This code was already used; wait for the next one."),
    ErrorKind("login_expired", 401, None, "The sign-in took too long; start again."),
    ErrorKind("account_locked", 429, None, "Too many failed attempts; try again later."),
    ErrorKind("address_locked", 429, None, "Too many failed attempts from this address."),
    ErrorKind("not_authenticated", 401, None, "Sign in first."),
    ErrorKind("enrolment_required", 403, None, "Set up your authenticator app first."),
    ErrorKind(
        "mfa_unreadable",
        409,
        None,
        "Your two-factor setup can no longer be read; ask an administrator to reset it.",
    ),
    ErrorKind("csrf_failed", 403, None, "The request did not carry a valid CSRF token."),
    ErrorKind("forbidden", 403, None, "You are not allowed to do this."),
    ErrorKind("weak_password", 400, None, "The password is too short."),
    ErrorKind("wrong_password", 403, None, "The current password is wrong."),
    ErrorKind(
        "password_unchanged", 400, None, "The new password must differ from the current one."
    ),
    ErrorKind("username_taken", 409, None, "This username is already taken."),
    ErrorKind("last_admin", 409, None, "The service needs at least one active administrator."),
    ErrorKind("setup_done", 409, None, "The service is already set up."),
    ErrorKind("setup_link_invalid", 403, None, "This setup link is invalid or expired."),
    # -- consultations and invites
    ErrorKind("consultation_not_found", 404, 4404, "No such consultation."),
    ErrorKind("consultation_cancelled", 410, 4410, "This consultation was cancelled."),
    ErrorKind("consultation_ended", 410, 4410, "This consultation has ended."),
    ErrorKind("invite_invalid", 404, None, "This link is invalid."),
    ErrorKind("invite_expired", 410, None, "This link has expired."),
    ErrorKind("invite_locked", 423, None, "Too many wrong codes; ask your doctor for a new link."),
    ErrorKind("invalid_access_code", 403, None, "Wrong access code."),
    # -- room tokens
    ErrorKind("token_invalid", 401, 4401, "The room token is invalid."),
    ErrorKind("token_expired", 401, 4401, "The room token has expired."),
    ErrorKind("token_replayed", 401, 4401, "The room token was already used."),
    ErrorKind("token_wrong_room", 403, 4403, "The room token is for another room."),
    ErrorKind("token_wrong_role", 403, 4403, "The room token is for another role."),
    # -- signaling
    ErrorKind("join_timeout", 408, 4408, "No join message in time."),
    ErrorKind("origin_refused", 403, 4403, "Connections from this origin are refused."),
    ErrorKind("too_many_connections", 429, 4429, "Too many connections from this address."),
    ErrorKind("rate_limited", 429, 4429, "Too many messages; slow down."),
    ErrorKind("malformed_message", 400, None, "The message is not valid."),
    ErrorKind("binary_not_supported", 400, 1003, "Binary messages are not supported."),
    ErrorKind("message_too_large", 413, 1009, "The message is larger than allowed."),
    ErrorKind("unsupported_version", 400, 4400, "This protocol version is not supported."),
    ErrorKind("not_joined", 400, None, "Join a room first."),
    ErrorKind("already_joined", 400, None, "Already joined."),
    ErrorKind("invalid_state", 409, None, "Not possible in the room's current state."),
    ErrorKind("room_full", 409, 4409, "Somebody else already holds this place."),
    ErrorKind("replaced", 409, 4000, "This session was opened somewhere else."),
    ErrorKind("denied", 403, 4003, "The doctor did not admit you."),
    ErrorKind("insecure_sdp", 400, None, "Only DTLS-SRTP media descriptions are accepted."),
    ErrorKind("invalid_sdp", 400, None, "The session description is not valid."),
    ErrorKind("too_many_candidates", 400, None, "Too many ICE candidates."),
    ErrorKind("peer_absent", 409, None, "The other participant is not connected."),
    # -- recordings
    ErrorKind("recording_not_found", 404, None, "No such recording."),
    ErrorKind(
        "recording_unreadable",
        500,
        None,
        "This recording cannot be decrypted: it is damaged or its key is gone.",
    ),
    ErrorKind("consent_required", 409, None, "Both participants must consent first."),
]

KINDS: dict[str, ErrorKind] = {kind.code: kind for kind in _KINDS}


class AppError(Exception):
    """A user-visible error; ``code`` must be one of :data:`KINDS`."""

    def __init__(
        self, code: str, message: str | None = None, *, details: dict[str, Any] | None = None
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
