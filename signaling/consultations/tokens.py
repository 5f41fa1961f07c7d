"""Signed tokens, one itsdangerous salt per purpose.

* room tokens: short-lived (<= 120 s), bound to room + role + subject, single use (the jti is
  claimed in the store until the token would have expired anyway); a patient's token also
  names the invite generation it was issued under, so a re-issued link refuses it at the join;
* invite tokens: the patient link (short codes now, signed tokens before); validity comes
  from the consultation (scheduled end + grace) and its ``invite_nonce``, so cancelling or
  re-issuing revokes old links;
* setup tokens: the one-time first-admin link printed on first start.

Tokens travel in request bodies, the URL path of a link, or the first WebSocket message;
never in a query string, and never in a log line.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from itsdangerous import (
    BadSignature,
    SignatureExpired,
    TimestampSigner,
    URLSafeSerializer,
    URLSafeTimedSerializer,
)

from signaling.clock import Clock
from signaling.consultations.short_invites import short_code
from signaling.crypto import derive_key
from signaling.errors import AppError
from signaling.models import SEAT_ROLES, SeatRole
from signaling.store.base import Store

ROOM_SALT = "teleconsult.room-token.v1"
INVITE_SALT = "teleconsult.invite.v1"
SETUP_SALT = "teleconsult.setup.v1"


@dataclass(frozen=True)
class RoomClaims:
    room: str
    role: SeatRole
    subject: str
    jti: str
    issued_at: float
    # Patient tokens: the invite generation of the session that asked (0 for a doctor).
    generation: int = 0


def _timed(secret: bytes, salt: str, clock: Clock) -> URLSafeTimedSerializer:
    class ClockedSigner(TimestampSigner):
        # itsdangerous reads time through this hook, both to stamp and to check age.
        def get_timestamp(self) -> int:
            return int(clock.now())

    return URLSafeTimedSerializer(secret, salt=salt, signer=ClockedSigner)


class RoomTokens:
    def __init__(self, secret: bytes, store: Store, clock: Clock, ttl_seconds: int) -> None:
        self._serializer = _timed(secret, ROOM_SALT, clock)
        self._store = store
        self._clock = clock
        self.ttl = ttl_seconds

    def issue(self, room: str, role: SeatRole, subject: str, generation: int = 0) -> str:
        """``generation``: for a patient, the invite generation it came through (>= 1)."""
        payload: dict[str, Any] = {
            "r": room,
            "o": role,
            "s": subject,
            "j": secrets.token_urlsafe(16),
        }
        if role == "patient":
            if generation < 1:
                raise ValueError("a patient room token needs the invite generation")
            payload["g"] = generation
        return str(self._serializer.dumps(payload))

    def _decode(self, token: str) -> RoomClaims:
        try:
            payload, issued = self._serializer.loads(token, max_age=self.ttl, return_timestamp=True)
        except SignatureExpired:
            raise AppError("token_expired") from None
        except BadSignature:
            raise AppError("token_invalid") from None
        if not isinstance(payload, dict) or payload.get("o") not in SEAT_ROLES:
            raise AppError("token_invalid")
        fields: dict[str, Any] = payload
        if not all(isinstance(fields.get(k), str) for k in ("r", "s", "j")):
            raise AppError("token_invalid")
        generation = fields.get("g", 0)
        if fields["o"] == "patient" and not (type(generation) is int and generation >= 1):
            # Every patient token names its invite generation (bool is no int here).
            raise AppError("token_invalid")
        return RoomClaims(
            room=fields["r"],
            role=fields["o"],
            subject=fields["s"],
            jti=fields["j"],
            issued_at=issued.timestamp(),
            generation=generation if fields["o"] == "patient" else 0,
        )

    async def redeem(self, token: str) -> RoomClaims:
        """Verify and consume: a token is good for exactly one join. The token itself names
        the room and the role (the seat), so there is nothing to compare it with."""
        if not isinstance(token, str) or len(token) > 1024:
            raise AppError("token_invalid")
        claims = self._decode(token)
        # Remember the jti for as long as the token could still verify (plus clock slack).
        if not await self._store.claim_once(f"jti:{claims.jti}", self.ttl + 5, self._clock.now()):
            raise AppError("token_replayed")
        return claims


@dataclass(frozen=True)
class InviteClaims:
    consultation_id: str
    nonce: str


class InviteTokens:
    def __init__(self, secret: bytes) -> None:
        self._serializer = URLSafeSerializer(secret, salt=INVITE_SALT)
        self._short_key = derive_key(secret, "short-invites")

    def issue(self, consultation_id: str, nonce: str) -> str:
        """The signed link of the earlier form, still accepted until its consultation's
        invite deadline (links handed out before short links existed)."""
        return str(self._serializer.dumps({"c": consultation_id, "n": nonce}))

    def short(self, consultation_id: str, nonce: str) -> str:
        """The short code of the link (signaling/consultations/short_invites.py)."""
        return short_code(self._short_key, consultation_id, nonce)

    def read(self, token: str) -> InviteClaims:
        if not isinstance(token, str) or len(token) > 512:
            raise AppError("invite_invalid")
        try:
            payload = self._serializer.loads(token)
        except BadSignature:
            raise AppError("invite_invalid") from None
        if not (
            isinstance(payload, dict)
            and isinstance(payload.get("c"), str)
            and isinstance(payload.get("n"), str)
        ):
            raise AppError("invite_invalid")
        return InviteClaims(consultation_id=payload["c"], nonce=payload["n"])


class SetupTokens:
    def __init__(self, secret: bytes, clock: Clock, ttl_minutes: int) -> None:
        self._serializer = _timed(secret, SETUP_SALT, clock)
        self.ttl = ttl_minutes * 60

    def issue(self, nonce: str) -> str:
        return str(self._serializer.dumps({"n": nonce}))

    def read(self, token: str) -> str:
        """Return the nonce of a valid, unexpired setup token."""
        try:
            payload = self._serializer.loads(token, max_age=self.ttl)
        except BadSignature:  # SignatureExpired is a BadSignature
            raise AppError("setup_link_invalid") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("n"), str):
            raise AppError("setup_link_invalid")
        return str(payload["n"])
