"""Room tokens: signed, short-lived, bound to room + role + subject, single use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from itsdangerous import URLSafeTimedSerializer

from signaling.clock import ManualClock
from signaling.consultations.tokens import INVITE_SALT, ROOM_SALT, InviteTokens, RoomTokens, _timed
from signaling.errors import AppError
from signaling.store.sqlite import SqliteStore

SECRET = b"k" * 32


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "db.sqlite3")
    await s.open()
    yield s
    await s.close()


@pytest.fixture
def tokens(store: SqliteStore, clock: ManualClock) -> RoomTokens:
    return RoomTokens(SECRET, store, clock, ttl_seconds=120)


async def refused(tokens: RoomTokens, token: str, code: str) -> None:
    with pytest.raises(AppError) as info:
        await tokens.redeem(token)
    assert info.value.code == code


async def test_valid_token_redeems_once(tokens: RoomTokens) -> None:
    token = tokens.issue("room-1", "patient", "patient:room-1", generation=1)
    claims = await tokens.redeem(token)
    assert (claims.room, claims.role, claims.subject) == ("room-1", "patient", "patient:room-1")
    await refused(tokens, token, "token_replayed")


async def test_expired_token_is_refused(tokens: RoomTokens, clock: ManualClock) -> None:
    token = tokens.issue("room-1", "doctor", "user:1")
    clock.advance(121)
    await refused(tokens, token, "token_expired")


async def test_token_within_ttl_is_accepted(tokens: RoomTokens, clock: ManualClock) -> None:
    token = tokens.issue("room-1", "doctor", "user:1")
    clock.advance(119)
    assert (await tokens.redeem(token)).role == "doctor"


async def test_tampered_token_is_refused(tokens: RoomTokens) -> None:
    token = tokens.issue("room-1", "doctor", "user:1")
    payload, _, _rest = token.partition(".")
    forged = URLSafeTimedSerializer(b"x" * 32, salt=ROOM_SALT).dumps(
        {"r": "room-1", "o": "doctor", "s": "user:evil", "j": "j"}
    )
    flipped = token[:5] + ("A" if token[5] != "A" else "B") + token[6:]
    for bad in (flipped, forged, payload, "", "garbage", "a" * 2000):
        await refused(tokens, bad, "token_invalid")


async def test_token_signed_for_another_purpose_is_refused(tokens: RoomTokens) -> None:
    invite = InviteTokens(SECRET).issue("room-1", "nonce")
    await refused(tokens, invite, "token_invalid")
    other_salt = URLSafeTimedSerializer(SECRET, salt=INVITE_SALT).dumps(
        {"r": "room-1", "o": "doctor", "s": "user:1", "j": "abc"}
    )
    await refused(tokens, other_salt, "token_invalid")


async def test_token_with_unknown_role_is_refused(tokens: RoomTokens, clock: ManualClock) -> None:
    forged = _timed(SECRET, ROOM_SALT, clock).dumps(
        {"r": "room-1", "o": "admin", "s": "user:1", "j": "abc"}
    )
    await refused(tokens, forged, "token_invalid")


async def test_jti_is_remembered_until_expiry_then_forgotten(
    tokens: RoomTokens, store: SqliteStore, clock: ManualClock
) -> None:
    token = tokens.issue("room-1", "patient", "patient:room-1", generation=1)
    claims = await tokens.redeem(token)
    assert not await store.claim_once(f"jti:{claims.jti}", 1, clock.now())
    clock.advance(126)
    # By now the token itself has expired, so forgetting its jti reopens nothing.
    await refused(tokens, token, "token_expired")
    assert await store.claim_once(f"jti:{claims.jti}", 1, clock.now())
