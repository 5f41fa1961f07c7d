"""One-time enrolment and reset links: nobody chooses, types or knows another's password.

An admin (or ``run.py add-user``) creates an account without a password; the service answers a
link, shown once, which the admin hands to the person. Opening it shows the authenticator's
secret (QR code and ``otpauth://`` link); the person chooses a password and confirms the
authenticator with a code, which signs them in. A reset does the same for an existing account:
it ends the account's sessions at once and voids its password and authenticator until the
person uses the link.

The link is ``/enrol#<user id>.<secret>``: the secret rides in the fragment, which a browser
never sends (so no access log, proxy or Referer sees it); the page posts it back in a body.
The account keeps only the secret's SHA-256 and the link's expiry. Single use, even under
concurrent requests: using it claims ``account-link:<hash>`` with the store's ``claim_once``,
one store operation on every backend, before anything is written.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from dataclasses import dataclass

from config import SecuritySettings
from signaling.accounts import mfa
from signaling.accounts.auth import (
    Accounts,
    Enrolment,
    IssuedSession,
    validate_username,
    without_passkeys,
)
from signaling.accounts.passwords import hash_password
from signaling.audit.trail import AuditTrail
from signaling.crypto import sha256_hex
from signaling.errors import AppError
from signaling.models import AccountLink, AccountLinkPurpose, StaffRole, User
from signaling.store.base import DuplicateUsername

# The page the link opens; the token follows after "#".
LINK_PATH = "/enrol"


@dataclass(frozen=True)
class IssuedLink:
    user: User
    # "<user id>.<secret>": shown once, never stored, never logged.
    token: str

    @property
    def expires_at(self) -> float:
        assert self.user.account_link is not None
        return self.user.account_link.expires_at

    def url(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}{LINK_PATH}#{self.token}"


@dataclass(frozen=True)
class OpenedLink:
    """What the link's page shows before the person chooses a password."""

    user: User
    link: AccountLink
    enrolment: Enrolment


class AccountLinks:
    def __init__(self, accounts: Accounts, settings: SecuritySettings, audit: AuditTrail) -> None:
        self._accounts = accounts
        self._store = accounts.store
        self._clock = accounts.clock
        self._settings = settings
        self._audit = audit

    def _with_new_link(self, user: User, purpose: AccountLinkPurpose) -> IssuedLink:
        """``user`` holding a new link (and a new authenticator secret to enrol), and the
        link's token; nothing is stored yet."""
        secret = secrets.token_urlsafe(32)
        now = self._clock.now()
        link = AccountLink(
            purpose=purpose,
            secret_hash=sha256_hex(secret),
            issued_at=now,
            expires_at=now + self._settings.account_link_hours * 3600,
        )
        user = self._accounts.with_new_totp_secret(user).evolve(password_hash="", account_link=link)
        return IssuedLink(user=user, token=f"{user.id}.{secret}")

    async def create_account(
        self, username: str, role: StaffRole, display_name: str = ""
    ) -> IssuedLink:
        """A new account that nobody can sign in to until its enrolment link is used."""
        name = validate_username(username)
        user = User(
            id=uuid.uuid4().hex,
            username=name,
            display_name=(display_name or name).strip()[:120],
            role=role,
            password_hash="",
            created_at=self._clock.now(),
        )
        issued = self._with_new_link(user, "enrolment")
        try:
            await self._store.create_user(issued.user)
        except DuplicateUsername:
            raise AppError("username_taken") from None
        return issued

    async def issue_reset(self, user: User) -> IssuedLink:
        """A new link for ``user``: its sessions end now, its password and authenticator stop
        working, any earlier link stops working. An account that never enrolled gets a new
        enrolment link."""
        pending = user.account_link
        purpose: AccountLinkPurpose = (
            "enrolment" if pending is not None and pending.purpose == "enrolment" else "reset"
        )
        issued = self._with_new_link(user, purpose)
        await self._store.update_user(issued.user)
        # Its passkeys go too: whoever holds the link enrols the account's factors anew.
        await self._store.change_user(user.id, without_passkeys)
        await self._store.delete_user_sessions(user.id)
        return issued

    async def open(self, token: str, address: str) -> OpenedLink:
        user, link = await self._holder(token, address)
        secret = self._accounts.totp_secret(user)
        if secret is None:  # every link is issued with a secret; a hand-edited record
            raise AppError("account_link_invalid")
        uri = mfa.provisioning_uri(secret, user.username)
        return OpenedLink(user, link, Enrolment(secret, uri, mfa.qr_svg(uri)))

    async def complete(
        self, token: str, password: str, code: str, address: str
    ) -> tuple[IssuedSession, User]:
        """The link's holder chooses ``password`` and confirms the authenticator with
        ``code``; the link is used up and the person is signed in."""
        user, link = await self._holder(token, address)
        self._accounts.check_password_strength(password)
        secret = self._accounts.totp_secret(user)
        now = self._clock.now()
        step = mfa.matching_step(secret or "", code.strip().replace(" ", ""), now)
        if secret is None or step is None:
            await self._accounts.count_address_failure(address, "account_link")
            await self._refused(user, link, address, "wrong_code")
            raise AppError("invalid_totp")
        claimed = await self._store.claim_once(
            f"account-link:{link.secret_hash}", max(link.expires_at - now, 1.0), now
        )
        if not claimed:  # a parallel request with the same link won
            await self._refused(user, link, address, "used")
            raise AppError("account_link_invalid")
        password_hash = await hash_password(password)
        fresh = await self._store.get_user(user.id)
        if fresh is None or fresh.account_link != link:  # replaced by a newer link meanwhile
            await self._refused(user, link, address, "replaced")
            raise AppError("account_link_invalid")
        done = fresh.evolve(
            password_hash=password_hash,
            totp_confirmed=True,
            totp_last_step=max(fresh.totp_last_step, step),
            account_link=None,
            last_sign_in_at=now,
        )
        await self._store.update_user(done)
        # The admin vouched for the holder: an earlier lockout of the name no longer stands.
        await self._accounts.unlock(done.username)
        await self._audit.record(
            "user.link_used",
            actor=done.id,
            actor_role=done.role,
            target=done.id,
            address=address,
            purpose=link.purpose,
        )
        issued = await self._accounts.issue_staff_session(done)
        await self._audit.record(
            "login.success", actor=done.id, actor_role=done.role, address=address
        )
        return issued, done

    async def _holder(self, token: str, address: str) -> tuple[User, AccountLink]:
        """The account and its pending link that ``token`` opens; ``account_link_invalid``
        for a wrong, replaced, used or expired one (each counts toward the address lock)."""
        await self._accounts.check_address(address)
        user_id, _, secret = token.partition(".")
        user = await self._store.get_user(user_id) if user_id and secret else None
        link = user.account_link if user is not None else None
        reason = ""
        if user is None:
            reason = "unknown"
        elif link is None:
            reason = "no_pending_link"
        elif not hmac.compare_digest(link.secret_hash, sha256_hex(secret)):
            reason = "wrong_secret"
        elif link.expires_at <= self._clock.now():
            reason = "expired"
        elif user.disabled:
            reason = "disabled"
        if reason:
            await self._accounts.count_address_failure(address, "account_link")
            if user is not None:
                await self._refused(user, link, address, reason)
            raise AppError("account_link_invalid")
        assert user is not None and link is not None  # every other case has a reason
        return user, link

    async def _refused(
        self, user: User, link: AccountLink | None, address: str, reason: str
    ) -> None:
        await self._audit.record(
            "user.link_used",
            actor="",
            actor_role="unknown",
            target=user.id,
            address=address,
            outcome="failure",
            reason=reason,
            purpose=link.purpose if link is not None else "",
        )
