"""The rules of the store's read-then-write operations, the same on every backend: each
backend reads the record and writes what these answer, inside its own transaction (a lock,
WATCH/MULTI, FOR UPDATE). None: nothing is written."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from signaling.models import Consultation, StaffRole, User


def keeps_an_enabled_admin(users: Iterable[User], user_id: str, role: StaffRole) -> bool:
    """Whether giving ``user_id`` the role ``role`` leaves some other enabled admin (or makes
    one): the last enabled admin is never demoted."""
    return role == "admin" or any(
        u.role == "admin" and not u.disabled and u.id != user_id for u in users
    )


def code_failure_counted(lock_at: int) -> Callable[[Consultation], Consultation]:
    """One more wrong access code; the invite locks at ``lock_at`` failures."""

    def counted(c: Consultation) -> Consultation:
        failures = c.code_failures + 1
        return c.evolve(
            code_failures=failures, invite_locked=c.invite_locked or failures >= lock_at
        )

    return counted


def totp_advanced(step: int) -> Callable[[User], User | None]:
    """totp_last_step raised to ``step``; None when it already is at or past it."""
    return lambda u: u.evolve(totp_last_step=step) if u.totp_last_step < step else None


def password_replaced(old_hash: str, new_hash: str) -> Callable[[User], User | None]:
    """The new hash, only while the stored one is still ``old_hash``."""
    return lambda u: u.evolve(password_hash=new_hash) if u.password_hash == old_hash else None


def updated_keeping_totp_step(user: User) -> Callable[[User], User]:
    """``user`` as given, but with the stored totp_last_step (only advance_totp_step moves
    it, so it stays monotonic) and the stored passkeys (only change_user moves them: their
    counters never go back, a removed one never comes back)."""
    return lambda stored: user.evolve(
        totp_last_step=stored.totp_last_step,
        passkeys=stored.passkeys,
        webauthn_handle=stored.webauthn_handle,
    )
