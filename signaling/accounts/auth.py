"""Accounts, two-step sign-in (password, then TOTP), lockouts and server-side sessions.

Over 500 lines: sign-in, its lockouts and the sessions it opens (with their idle lock) share one
set of rules (what counts as a failure, what ends or locks a session); split apart they would
be read apart. Unlocking a locked session is in session_lock.py.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag

from config import SecuritySettings
from signaling.accounts import mfa
from signaling.accounts.common_passwords import is_common
from signaling.accounts.passkey_policy import passkey_policy
from signaling.accounts.passwords import hash_password, verify_password
from signaling.audit.trail import AuditTrail
from signaling.audit_actions import AuditAction
from signaling.clock import Clock
from signaling.crypto import SecretBox, sha256_hex
from signaling.errors import AppError
from signaling.metrics import Metrics
from signaling.models import Session, StaffRole, User
from signaling.store.base import DuplicateUsername, Store

USERNAME_MAX = 64
# Records a refused step (user, source address, reason) under the caller's audit action.
RefusalRecorder = Callable[[User, str, str], Awaitable[None]]
log = logging.getLogger("teleconsult.auth")


@dataclass(frozen=True)
class IssuedSession:
    cookie_value: str
    session: Session


@dataclass(frozen=True)
class StaffSession:
    session: Session
    locked: bool
    # When it locks (or locked) unless a request comes first.
    locks_at: float


@dataclass(frozen=True)
class Enrolment:
    secret: str
    otpauth_uri: str
    qr_svg: str


def without_passkeys(user: User) -> User:
    return user.evolve(passkeys=())


def validate_username(username: str) -> str:
    name = username.strip()
    if not (3 <= len(name) <= USERNAME_MAX) or not all(ch.isalnum() or ch in "._-@" for ch in name):
        raise AppError(
            "invalid_body",
            "A username has 3 to 64 letters, digits or . _ - @ characters.",
        )
    return name


class Accounts:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        settings: SecuritySettings,
        totp_box: SecretBox,
        audit: AuditTrail,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self._box = totp_box
        self._audit = audit
        self.metrics = metrics or Metrics()

    # -- users
    def check_password_strength(self, password: str) -> None:
        if len(password) < self.settings.password_min_length:
            raise AppError(
                "weak_password",
                f"A password needs at least {self.settings.password_min_length} characters.",
            )
        if len(password) > 1024:
            raise AppError("invalid_body", "A password has at most 1024 characters.")
        if is_common(password):
            raise AppError("common_password")

    async def create_user(
        self, username: str, password: str, role: StaffRole, display_name: str = ""
    ) -> User:
        user = await self._new_user(username, password, role, display_name)
        try:
            await self.store.create_user(user)
        except DuplicateUsername:
            raise AppError("username_taken") from None
        return user

    async def create_first_admin(
        self, username: str, password: str, display_name: str, nonce_name: str, nonce: str
    ) -> User:
        """The first administrator, through the one-time setup link whose nonce is stored
        under ``nonce_name``: claiming the link and creating the account are one store
        operation, so parallel requests with the same link make one account."""
        user = await self._new_user(username, password, "admin", display_name)
        claim = await self.store.create_first_user(user, nonce_name, nonce)
        if claim == "setup_done":
            raise AppError("setup_done")
        if claim == "link_invalid":
            raise AppError("setup_link_invalid")
        return user

    async def _new_user(
        self, username: str, password: str, role: StaffRole, display_name: str
    ) -> User:
        name = validate_username(username)
        self.check_password_strength(password)
        display = (display_name or name).strip()[:120]
        return User(
            id=uuid.uuid4().hex,
            username=name,
            display_name=display,
            role=role,
            password_hash=await hash_password(password),
            created_at=self.clock.now(),
        )

    def totp_secret(self, user: User) -> str | None:
        if user.totp_secret_enc is None:
            return None
        try:
            return self._box.open(user.totp_secret_enc, aad=user.id.encode()).decode()
        except InvalidTag:
            # Sealed with another app secret (the key file was replaced): only a reset helps.
            log.error(
                "the TOTP secret of user %s cannot be decrypted with the current app "
                "secret; run: python run.py reset-mfa --username <name>",
                user.id,
            )
            raise AppError("mfa_unreadable") from None

    async def start_enrolment(self, user: User) -> Enrolment:
        """Give the user a TOTP secret to enrol; it counts only after a correct code."""
        if user.totp_confirmed:
            raise AppError("forbidden", "Two-factor authentication is already set up.")
        secret = self.totp_secret(user)
        if secret is None:
            secret = mfa.new_secret()
            user = user.evolve(totp_secret_enc=self._box.seal(secret.encode(), user.id.encode()))
            await self.store.update_user(user)
        uri = mfa.provisioning_uri(secret, user.username)
        return Enrolment(secret=secret, otpauth_uri=uri, qr_svg=mfa.qr_svg(uri))

    def with_new_totp_secret(self, user: User, secret: str | None = None) -> User:
        """``user`` with a TOTP secret to enrol (fresh unless given), sealed, bound to the
        user id; it counts after a first correct code."""
        secret = secret or mfa.new_secret()
        return user.evolve(
            totp_secret_enc=self._box.seal(secret.encode(), user.id.encode()),
            totp_confirmed=False,
        )

    async def set_totp_secret(self, user: User, secret: str) -> User:
        """Enrol with a secret the caller brings (``run.py add-user --credentials-stdin``)."""
        user = self.with_new_totp_secret(user, secret)
        await self.store.update_user(user)
        return user

    async def reset_mfa(self, user: User) -> User:
        """A new authenticator secret to enrol, no passkey left, every session ended."""
        user = self.with_new_totp_secret(user)
        await self.store.update_user(user)
        user = await self.store.change_user(user.id, without_passkeys) or user
        await self.store.delete_user_sessions(user.id)
        return user

    async def set_disabled(self, user: User, disabled: bool) -> User:
        user = user.evolve(disabled=disabled)
        await self.store.update_user(user)
        if disabled:
            await self.store.delete_user_sessions(user.id)
        return user

    async def change_role(self, user: User, role: StaffRole) -> User:
        """Give ``user`` another role and end its sessions: least privilege, the new role
        applies from the next sign-in (a session never carries a role it was not opened with).
        Raises ``last_admin`` when that would leave no enabled administrator."""
        if not await self.store.set_user_role(user.id, role):
            raise AppError("last_admin")
        await self.store.delete_user_sessions(user.id)
        if role != "assistant" and user.assists:
            # Least privilege: made an assistant again later, it schedules for nobody until
            # an admin says for whom.
            await self.store.change_user(
                user.id, lambda u: u.evolve(assists=()) if u.assists else None
            )
        return user.evolve(role=role, assists=user.assists if role == "assistant" else ())

    async def drop_from_assistants(self, doctor_id: str) -> list[tuple[User, User]]:
        """Take an account that is no longer a doctor's off every assistant's list; answers
        each assistant's (before, after) for the audit trail."""
        changed: list[tuple[User, User]] = []

        def without(u: User) -> User | None:
            kept = tuple(d for d in u.assists if d != doctor_id)
            return u.evolve(assists=kept) if kept != u.assists else None

        for assistant in await self.store.list_users():
            if doctor_id in assistant.assists:
                after = await self.store.change_user(assistant.id, without)
                if after is not None:
                    changed.append((assistant, after))
        return changed

    async def change_password(
        self,
        user: User,
        session: Session,
        current: str,
        new: str,
        code: str,
        address: str,
        *,
        passkey_proof: Callable[[], Awaitable[object]] | None = None,
    ) -> int:
        """A signed-in user replaces their own password, proving it with the current password
        and a fresh TOTP code, or with ``passkey_proof`` (a passkey with user verification,
        checked by Passkeys.reauthenticate): a stolen session cookie alone is not enough.
        Wrong answers count toward the same lockouts as sign-in. The calling session is kept;
        every other session of the account ends. Answers how many sessions ended."""
        self.check_password_strength(new)
        if passkey_proof is None:
            if new == current:
                raise AppError("password_unchanged")
            await self.reauthenticate(user, current, code, address, "user.password_changed")
        else:
            await passkey_proof()
            if await verify_password(user.password_hash, new):
                raise AppError("password_unchanged")
        refused = self._failure_audit("user.password_changed", on_own_account=True)
        changed = await self.store.set_user_password(
            user.id, user.password_hash, await hash_password(new), session.id_hash
        )
        if changed is None:  # another change won the race: this current password is stale
            await refused(user, address, "wrong_password")
            raise AppError("wrong_password")
        await self._audit.record(
            "user.password_changed",
            actor=user.id,
            actor_role=user.role,
            target=user.id,
            address=address,
            sessions_ended=changed,
        )
        return changed

    async def reauthenticate(
        self, user: User, password: str, code: str, address: str, action: AuditAction
    ) -> None:
        """A signed-in user proves again that it is them, with the password and a fresh TOTP
        code (a session cookie alone is not enough). Wrong answers count toward the same
        lockouts as sign-in and are recorded as failures of ``action``."""
        await self.check_locks(user.username, address)
        refused = self._failure_audit(action, on_own_account=True)
        await self._refuse_code_if_passkey_bound(user, address, refused)
        if not await verify_password(user.password_hash, password):
            await self.count_failure(user.username, address, "password")
            await refused(user, address, "wrong_password")
            raise AppError("wrong_password")
        await self._use_totp_code(user, code, address, refused)
        await self.store.delete_key(f"fail:user:{user.username.casefold()}")

    def _failure_audit(self, action: AuditAction, *, on_own_account: bool) -> RefusalRecorder:
        """Records a refused step as a failure of ``action`` (its target is the account
        itself when the action is about the account, as a password change is)."""

        async def record(user: User, address: str, reason: str) -> None:
            await self._audit.record(
                action,
                actor=user.id,
                actor_role=user.role,
                target=user.id if on_own_account else "",
                address=address,
                outcome="failure",
                reason=reason,
            )

        return record

    # -- lockouts
    def _lock_keys(self, username: str, address: str) -> tuple[str, str]:
        return f"lock:user:{username.casefold()}", f"lock:addr:{address}"

    async def check_locks(self, username: str, address: str) -> None:
        now = self.clock.now()
        user_lock, _ = self._lock_keys(username, address)
        if await self.store.get_count(user_lock, now):
            raise AppError(
                "account_locked", details={"retry_after_minutes": self.settings.lockout_minutes}
            )
        await self.check_address(address)

    async def check_address(self, address: str) -> None:
        """Refuse (``address_locked``) an address that failed too often: sign-in steps and
        patients' access codes alike."""
        if await self.store.get_count(f"lock:addr:{address}", self.clock.now()):
            raise AppError(
                "address_locked", details={"retry_after_minutes": self.settings.lockout_minutes}
            )

    async def count_address_failure(self, address: str, step: str) -> None:
        """One more failure from ``address`` (``step``: the metrics label); at the threshold
        the address is locked for the lockout period."""
        self.metrics.login_failures.labels(step).inc()
        await self._count_address_failure(address)

    async def count_failure(self, username: str, address: str, step: str) -> None:
        now = self.clock.now()
        window = self.settings.lockout_minutes * 60
        user_lock, _ = self._lock_keys(username, address)
        self.metrics.login_failures.labels(step).inc()
        user_failures = await self.store.incr(f"fail:user:{username.casefold()}", window, now)
        await self._count_address_failure(address)
        if user_failures >= self.settings.lockout_threshold:
            # The lock lasts the full period from the failure that set it.
            await self.store.claim_once(user_lock, window, now)
            self.metrics.lockouts.labels("account").inc()
            await self.store.delete_key(f"fail:user:{username.casefold()}")
            await self._show_lock(username, now + window)
            # The typed username may be anything (even a password typed in the wrong
            # field): the trail keeps only a pseudonymous digest of it.
            await self._audit.record(
                "account.locked",
                actor="",
                actor_role="unknown",
                target=f"username-sha256:{sha256_hex(username.casefold())[:16]}",
                address=address,
                outcome="locked",
            )

    async def _show_lock(self, username: str, until: float | None) -> None:
        """Keep the lock's end on the account (when the name is one) for the admin page."""
        user = await self.store.get_user_by_username(username) if len(username) <= 64 else None
        if user is not None and user.locked_until != until:
            await self.store.update_user(user.evolve(locked_until=until))

    async def unlock(self, username: str) -> None:
        """End an account's lockout and forget its failures (an admin vouched for it)."""
        user_lock, _ = self._lock_keys(username, "")
        await self.store.delete_key(user_lock)
        await self.store.delete_key(f"fail:user:{username.casefold()}")
        await self._show_lock(username, None)

    async def _count_address_failure(self, address: str) -> None:
        now = self.clock.now()
        window = self.settings.lockout_minutes * 60
        addr_lock = f"lock:addr:{address}"
        addr_failures = await self.store.incr(f"fail:addr:{address}", window, now)
        if addr_failures >= self.settings.address_failure_threshold:
            await self.store.claim_once(addr_lock, window, now)
            self.metrics.lockouts.labels("address").inc()
            await self.store.delete_key(f"fail:addr:{address}")
            await self._audit.record(
                "address.locked",
                actor="",
                actor_role="unknown",
                target=address,
                address=address,
                outcome="locked",
            )

    # -- sign-in
    async def _issue(
        self,
        kind: str,
        lifetime: float,
        user_id: str | None,
        consultation_id: str | None,
        *,
        invite_generation: int = 0,
    ) -> IssuedSession:
        now = self.clock.now()
        cookie = secrets.token_urlsafe(32)
        session = Session(
            id_hash=sha256_hex(cookie),
            kind=kind,  # type: ignore[arg-type]
            created_at=now,
            last_seen=now,
            expires_at=now + lifetime,
            csrf_token=secrets.token_urlsafe(24),
            user_id=user_id,
            consultation_id=consultation_id,
            invite_generation=invite_generation,
        )
        await self.store.put_session(session)
        return IssuedSession(cookie_value=cookie, session=session)

    async def login_password(
        self, username: str, password: str, address: str
    ) -> tuple[IssuedSession, User]:
        """Step one. Same answer and same work for an unknown user and a wrong password."""
        await self.check_locks(username, address)
        user = await self.store.get_user_by_username(username) if len(username) <= 64 else None
        ok = await verify_password(user.password_hash if user else None, password)
        if not ok or user is None or user.disabled:
            await self.count_failure(username, address, "password")
            await self._audit.record(
                "login.password",
                actor=user.id if user else "",
                actor_role=user.role if user else "unknown",
                address=address,
                outcome="failure",
                reason="disabled" if user and ok else "bad_credentials",
            )
            raise AppError("invalid_credentials")
        pending = await self._issue(
            "pending", self.settings.login_pending_minutes * 60, user.id, None
        )
        await self._audit.record(
            "login.password", actor=user.id, actor_role=user.role, address=address
        )
        return pending, user

    async def pending_user(self, cookie_value: str | None) -> tuple[Session, User]:
        if not cookie_value:
            raise AppError("login_expired")
        session = await self.store.get_session(sha256_hex(cookie_value))
        now = self.clock.now()
        if session is None or session.kind != "pending" or session.expires_at <= now:
            raise AppError("login_expired")
        user = await self.store.get_user(session.user_id or "")
        if user is None or user.disabled:
            raise AppError("login_expired")
        return session, user

    async def login_totp(
        self, pending_cookie: str | None, code: str, address: str
    ) -> tuple[IssuedSession, User]:
        """Step two: a correct, unused code turns the pending login into a session."""
        pending, user = await self.pending_user(pending_cookie)
        await self.check_locks(user.username, address)
        refused = self._failure_audit("login.totp", on_own_account=False)
        await self._refuse_code_if_passkey_bound(user, address, refused)
        await self._use_totp_code(user, code, address, refused)
        enrolled_now = not user.totp_confirmed
        # Re-read after the step advanced, so this write does not put an older step back.
        user = (await self.store.get_user(user.id)) or user
        user = user.evolve(totp_confirmed=True, last_sign_in_at=self.clock.now())
        await self.store.update_user(user)
        if enrolled_now:
            await self._audit.record(
                "mfa.enrolled", actor=user.id, actor_role=user.role, target=user.id, address=address
            )
        return await self.complete_sign_in(pending, user, address), user

    async def _refuse_code_if_passkey_bound(
        self, user: User, address: str, refused: RefusalRecorder
    ) -> None:
        """An account the clinic's policy binds to its passkey, which has one, is not proven
        by the code unless the policy keeps the code as a fallback (passkey_policy.py)."""
        if not user.passkeys:
            return
        policy = await passkey_policy(self.store, self.settings)
        if policy.binds(user.role) and not policy.totp_fallback:
            await refused(user, address, "passkey_required")
            raise AppError("passkey_required")

    async def complete_sign_in(
        self, pending: Session | None, user: User, address: str, **details: str
    ) -> IssuedSession:
        """The pending sign-in of ``user`` (none for a passkey alone), whose factors were
        just proven, becomes a session; the account's failure count starts again."""
        if pending is not None:
            await self.store.delete_session(pending.id_hash)
        await self.store.delete_key(f"fail:user:{user.username.casefold()}")
        issued = await self.issue_staff_session(user)
        await self._audit.record(
            "login.success", actor=user.id, actor_role=user.role, address=address, **details
        )
        return issued

    async def issue_staff_session(self, user: User) -> IssuedSession:
        """A signed-in session for ``user``, who has just proven password and code."""
        absolute = self.settings.session_absolute_hours * 3600
        return await self._issue("staff", absolute, user.id, None)

    async def _use_totp_code(
        self, user: User, code: str, address: str, refused: RefusalRecorder
    ) -> None:
        """Accept ``code`` once: it must match and be newer than the last accepted one (the
        monotonic ``totp_last_step``). A refusal counts toward the lockouts and is recorded
        by ``refused`` with the reason."""
        secret = self.totp_secret(user)
        if secret is None:
            raise AppError("enrolment_required")
        step = mfa.matching_step(secret, code.strip().replace(" ", ""), self.clock.now())
        if step is None:
            await self.count_failure(user.username, address, "totp")
            await refused(user, address, "wrong_code")
            raise AppError("invalid_totp")
        if not await self.store.advance_totp_step(user.id, step):
            await self.count_failure(user.username, address, "totp")
            await refused(user, address, "reused_code")
            raise AppError("totp_reused")

    async def issue_patient_session(
        self, consultation_id: str, until: float, invite_generation: int
    ) -> IssuedSession:
        """A patient session for one consultation, bound to the invite generation whose link
        and code opened it (a re-issued invite ends it)."""
        return await self._issue(
            "patient",
            max(until - self.clock.now(), 60.0),
            None,
            consultation_id,
            invite_generation=invite_generation,
        )

    async def session_for(
        self, cookie_value: str | None, kind: str, *, touch: bool = True
    ) -> Session | None:
        """The live session behind a cookie, touching its idle timer unless ``touch`` is
        false (a page's background polling is no sign of a person); None if gone, and None
        for a locked staff session (staff_session tells it apart)."""
        if kind == "staff":
            staff = await self.staff_session(cookie_value, touch=touch)
            return None if staff is None or staff.locked else staff.session
        session = await self._unexpired(cookie_value, kind)
        if session is not None and touch:
            session = await self._touch(session)
        return session

    async def staff_session(
        self, cookie_value: str | None, *, touch: bool = True
    ) -> StaffSession | None:
        """The staff session behind a cookie, and whether it is locked: past
        ``security.session_idle_minutes`` without a (non-quiet) request it is locked, not
        ended, so an open dashboard keeps its place and its waiting-room count until the
        person proves it is them again (signaling/accounts/session_lock.py). A locked
        session is not touched; the absolute limit ends it as any other."""
        session = await self._unexpired(cookie_value, "staff")
        if session is None:
            return None
        # Locked once strictly past the idle period, as sessions used to end (a request at
        # exactly the limit still counts as within it).
        if self.clock.now() > self.locks_at(session):
            await self._record_lock(session)
            return StaffSession(session, locked=True, locks_at=self.locks_at(session))
        if touch:
            session = await self._touch(session)
        return StaffSession(session, locked=False, locks_at=self.locks_at(session))

    def locks_at(self, session: Session) -> float:
        return session.last_seen + self.settings.session_idle_minutes * 60

    async def _unexpired(self, cookie_value: str | None, kind: str) -> Session | None:
        if not cookie_value or len(cookie_value) > 128:
            return None
        session = await self.store.get_session(sha256_hex(cookie_value))
        if session is None or session.kind != kind:
            return None
        if session.expires_at <= self.clock.now():
            await self.store.delete_session(session.id_hash)
            return None
        return session

    async def _touch(self, session: Session) -> Session:
        now = self.clock.now()
        if now - session.last_seen > 30:  # spare the store a write per request
            session = session.evolve(last_seen=now)
            await self.store.put_session(session)
        return session

    async def _record_lock(self, session: Session) -> None:
        """One ``session.locked`` entry per lock (the key names the activity it ended)."""
        key = f"locked:{session.id_hash}:{session.last_seen:.3f}"
        remaining = session.expires_at - self.clock.now()
        if not await self.store.claim_once(key, max(remaining, 1.0), self.clock.now()):
            return
        user = await self.store.get_user(session.user_id or "")
        await self._audit.record(
            "session.locked",
            actor=session.user_id or "",
            actor_role=user.role if user else "unknown",
            target=session.user_id or "",
            outcome="locked",
            idle_minutes=self.settings.session_idle_minutes,
        )

    async def logout(self, session: Session) -> None:
        await self.store.delete_session(session.id_hash)
