"""Unlocking a staff session locked by inactivity.

Past ``security.session_idle_minutes`` without a request a staff session is locked rather
than ended (Accounts.staff_session): the dashboard keeps its place and keeps hearing how many
patients wait, but every data endpoint answers ``session_locked`` until the person proves it
is them again with the password and a fresh authenticator code, as at sign-in (same
lockouts), or with one of their passkeys and user verification (Passkeys.reauthenticate).
The absolute limit (``security.session_absolute_hours``) still ends it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from signaling.accounts.auth import Accounts
from signaling.models import Session, User


async def unlock_session(
    accounts: Accounts, session: Session, user: User, password: str, code: str, address: str
) -> Session:
    """The session, unlocked (its idle timer starts again) once ``password`` and ``code``
    prove ``user``; a wrong answer raises (wrong_password, invalid_totp, totp_reused, or the
    lockouts) and counts like a failed sign-in. The caller records the success."""
    await accounts.reauthenticate(user, password, code, address, "session.unlocked")
    unlocked = session.evolve(last_seen=accounts.clock.now())
    await accounts.store.put_session(unlocked)
    return unlocked


async def unlock_session_with_passkey(
    accounts: Accounts, session: Session, proof: Callable[[], Awaitable[object]]
) -> Session:
    """The session, unlocked once ``proof`` (a passkey checked by Passkeys.reauthenticate,
    which raises and counts a refusal) passes."""
    await proof()
    unlocked = session.evolve(last_seen=accounts.clock.now())
    await accounts.store.put_session(unlocked)
    return unlocked
