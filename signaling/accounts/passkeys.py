"""Passkeys (WebAuthn) for staff: enrolled from My account, used as the second factor of
sign-in in place of the authenticator code, as the whole sign-in (a discoverable credential
with user verification, when the clinic's policy allows it: passkey_policy.py), and to prove
oneself again (the locked dashboard, a password change).

A passkey is bound by the browser to the page's host name (the RP ID), so a look-alike site
cannot obtain a signature for this service, nor relay one: the signed client data names the
origin, checked here against the origins the service answers for. Checks are the ``webauthn``
package's; what is decided here is where challenges live and what a refusal counts as.

Challenges are random, issued for one session (pending sign-in or staff session) and one
ceremony, kept as short-lived store keys (``incr`` marks one issued, ``claim_once`` uses it):
single use on every backend, gone after :data:`CHALLENGE_SECONDS`. Attestation is ``none``:
the service trusts the key the browser made, not a vendor's certificate of it.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import webauthn
from webauthn.helpers import bytes_to_base64url, options_to_json_dict
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from config import ServerSettings
from signaling.accounts import mfa
from signaling.accounts.auth import Accounts, IssuedSession
from signaling.accounts.passkey_policy import passkey_policy
from signaling.accounts.webauthn_checks import (
    b64url_decode,
    challenge_of,
    descriptor,
    discoverable_of,
    refusal_reason,
    relying_party,
    transports_of,
)
from signaling.audit.trail import AuditTrail
from signaling.audit_actions import AuditAction
from signaling.crypto import sha256_hex
from signaling.errors import AppError
from signaling.models import Passkey, Session, User

# How long a ceremony may take in the browser (ms), and how long its challenge is kept (s).
CEREMONY_TIMEOUT_MS = 120_000
CHALLENGE_SECONDS = 180
MAX_PASSKEYS = 10
NAME_MAX = 60
# "passwordless": the whole sign-in; "reauth": a signed-in person proving it is them again.
Ceremony = Literal["enrol", "sign-in", "passwordless", "reauth"]
# The challenge of a sign-in by passkey alone belongs to no session yet.
NO_SESSION = "-"


@dataclass(frozen=True)
class Assertion:
    """What navigator.credentials.get() answered, and for which ceremony, session and user."""

    ceremony: Ceremony
    session: Session | None
    user: User
    credential: dict[str, Any]
    page_origin: str | None
    address: str


@dataclass(frozen=True)
class UsedPasskey:
    user: User  # as stored after the counter moved on
    key: str  # the passkey's id, shortened, for the audit trail


# Records a refused assertion (and counts it toward the lockouts) with its reason.
Refusal = Callable[[Assertion, str, Passkey | None], Awaitable[None]]


class Passkeys:
    def __init__(self, accounts: Accounts, server: ServerSettings, audit: AuditTrail) -> None:
        self._accounts = accounts
        self._store = accounts.store
        self._clock = accounts.clock
        self._server = server
        self._audit = audit

    # -- challenges
    def _challenge_key(self, ceremony: Ceremony, session: Session | None, challenge: str) -> str:
        owner = session.id_hash if session is not None else NO_SESSION
        return f"passkey-challenge:{ceremony}:{owner}:{sha256_hex(challenge)}"

    async def _issue_challenge(self, ceremony: Ceremony, session: Session | None) -> bytes:
        challenge = secrets.token_bytes(32)
        key = self._challenge_key(ceremony, session, bytes_to_base64url(challenge))
        await self._store.incr(key, CHALLENGE_SECONDS, self._clock.now())
        return challenge

    async def _use_challenge(
        self, ceremony: Ceremony, session: Session | None, challenge: str
    ) -> bool:
        """Whether ``challenge`` was issued for this session (or, passwordless, for none) and
        ceremony, is unexpired and is used now for the first time."""
        key = self._challenge_key(ceremony, session, challenge)
        now = self._clock.now()
        if not await self._store.get_count(key, now):
            return False
        return await self._store.claim_once(f"{key}:used", CHALLENGE_SECONDS, now)

    # -- enrolment (a signed-in staff member, from My account)
    async def registration_options(
        self, user: User, session: Session, page_origin: str | None
    ) -> dict[str, Any]:
        rp = relying_party(self._server, page_origin)
        if len(user.passkeys) >= MAX_PASSKEYS:
            raise AppError("invalid_body", f"An account holds at most {MAX_PASSKEYS} passkeys.")
        handle = user.webauthn_handle
        if not handle:
            fresh = bytes_to_base64url(secrets.token_bytes(32))
            stored = await self._store.change_user(
                user.id, lambda u: None if u.webauthn_handle else u.evolve(webauthn_handle=fresh)
            )
            # None: a parallel request made the handle first; take that one.
            handle = (stored or await self._reread(user)).webauthn_handle
        options = webauthn.generate_registration_options(
            rp_id=rp.id,
            rp_name=mfa.ISSUER,
            user_name=user.username,
            user_id=b64url_decode(handle),
            user_display_name=user.display_name,
            challenge=await self._issue_challenge("enrol", session),
            timeout=CEREMONY_TIMEOUT_MS,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.PREFERRED,
                user_verification=UserVerificationRequirement.PREFERRED,
            ),
            exclude_credentials=[descriptor(p) for p in user.passkeys],
        )
        made = options_to_json_dict(options)
        # The browser then says whether the key is discoverable (a sign-in by passkey alone
        # needs one); residentKey "preferred" asks for one where the authenticator can.
        made["extensions"] = {"credProps": True}
        return made

    async def enrol(
        self,
        user: User,
        session: Session,
        name: str,
        credential: dict[str, Any],
        page_origin: str | None,
        address: str,
    ) -> Passkey:
        rp = relying_party(self._server, page_origin)
        label = name.strip()
        if not 1 <= len(label) <= NAME_MAX:
            raise AppError("invalid_body", f"A passkey's name has 1 to {NAME_MAX} characters.")
        challenge = challenge_of(credential)
        reason = ""
        if not await self._use_challenge("enrol", session, challenge):
            reason = "challenge_unknown_or_used"
        else:
            try:
                verified = webauthn.verify_registration_response(
                    credential=credential,
                    expected_challenge=b64url_decode(challenge),
                    expected_rp_id=rp.id,
                    expected_origin=list(rp.origins),
                )
            except WebAuthnException as exc:
                reason = refusal_reason(exc)
        if reason:
            await self._record("passkey.enrolled", user, address, "failure", reason=reason)
            raise AppError("passkey_refused")
        passkey = Passkey(
            id=bytes_to_base64url(verified.credential_id),
            name=label,
            public_key=verified.credential_public_key,
            rp_id=rp.id,
            sign_count=verified.sign_count,
            created_at=self._clock.now(),
            transports=transports_of(credential),
            discoverable=discoverable_of(credential),
            user_verified=verified.user_verified,
        )

        def added(u: User) -> User | None:
            if any(p.id == passkey.id for p in u.passkeys) or len(u.passkeys) >= MAX_PASSKEYS:
                return None
            return u.evolve(passkeys=(*u.passkeys, passkey))

        if await self._store.change_user(user.id, added) is None:
            raise AppError("invalid_body", "This passkey is already enrolled.")
        await self._record("passkey.enrolled", user, address, passkey=passkey.id[:16])
        return passkey

    async def remove(self, user: User, passkey_id: str, address: str) -> None:
        """Remove one of the user's passkeys; never the account's last second factor."""
        outcome: list[str] = []

        def removed(u: User) -> User | None:
            kept = tuple(p for p in u.passkeys if p.id != passkey_id)
            if len(kept) == len(u.passkeys):
                outcome.append("not_found")
                return None
            if u.second_factors - 1 < 1:
                outcome.append("last_second_factor")
                return None
            return u.evolve(passkeys=kept)

        changed = await self._store.change_user(user.id, removed)
        if changed is None and outcome == ["not_found"]:
            raise AppError("passkey_not_found")
        if changed is None:
            reason = outcome[-1] if outcome else "gone"
            await self._record(
                "passkey.removed", user, address, "failure", passkey=passkey_id[:16], reason=reason
            )
            raise AppError("last_second_factor")
        await self._record("passkey.removed", user, address, passkey=passkey_id[:16])

    # -- sign-in (step two, after the password)
    async def authentication_options(
        self, pending: Session, user: User, page_origin: str | None
    ) -> dict[str, Any]:
        return await self._request_options("sign-in", pending, user, page_origin)

    async def _request_options(
        self, ceremony: Ceremony, session: Session, user: User, page_origin: str | None
    ) -> dict[str, Any]:
        """Options naming the user's passkeys for this page's host (second step, re-auth):
        re-authentication takes the passkey alone, so it asks for user verification."""
        rp = relying_party(self._server, page_origin)
        mine = [p for p in user.passkeys if p.rp_id == rp.id]
        if not mine:
            raise AppError("passkey_not_found")
        options = webauthn.generate_authentication_options(
            rp_id=rp.id,
            challenge=await self._issue_challenge(ceremony, session),
            timeout=CEREMONY_TIMEOUT_MS,
            allow_credentials=[descriptor(p) for p in mine],
            user_verification=(
                UserVerificationRequirement.REQUIRED
                if ceremony == "reauth"
                else UserVerificationRequirement.PREFERRED
            ),
        )
        return options_to_json_dict(options)

    async def sign_in(
        self,
        pending_cookie: str | None,
        credential: dict[str, Any],
        page_origin: str | None,
        address: str,
    ) -> tuple[IssuedSession, User]:
        accounts = self._accounts
        pending, user = await accounts.pending_user(pending_cookie)
        await accounts.check_locks(user.username, address)
        used = await self._assert(
            Assertion("sign-in", pending, user, credential, page_origin, address),
            self._sign_in_refused,
        )
        await self._record("login.passkey", used.user, address, on_account=False, passkey=used.key)
        issued = await accounts.complete_sign_in(
            pending, used.user, address, second_factor="passkey"
        )
        return issued, used.user

    # -- sign-in by a passkey alone (no username, no password)
    async def passwordless_options(self, page_origin: str | None, address: str) -> dict[str, Any]:
        """Options for a discoverable credential: no list of keys (the browser offers those
        it holds for this host), user verification required (the PIN or fingerprint stands
        for the password). Only when the clinic's policy allows it."""
        await self._allowed_passwordless()
        await self._accounts.check_address(address)
        rp = relying_party(self._server, page_origin)
        options = webauthn.generate_authentication_options(
            rp_id=rp.id,
            challenge=await self._issue_challenge("passwordless", None),
            timeout=CEREMONY_TIMEOUT_MS,
            allow_credentials=[],
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        return options_to_json_dict(options)

    async def passwordless(
        self, credential: dict[str, Any], page_origin: str | None, address: str
    ) -> tuple[IssuedSession, User]:
        """Sign in with a discoverable passkey: its user handle names the account (a random
        value, never the username), the signature and user verification prove the person."""
        await self._allowed_passwordless()
        await self._accounts.check_address(address)
        relying_party(self._server, page_origin)  # passkey_unavailable at an IP address
        challenge = challenge_of(credential)
        handle = credential.get("response", {}).get("userHandle")
        user = await self._holder_of(handle) if isinstance(handle, str) and handle else None
        if user is None or user.disabled:
            # No account to count against: the address pays for the guess.
            await self._accounts.count_address_failure(address, "passkey")
            await self._audit.record(
                "login.passkey",
                actor=user.id if user else "",
                actor_role=user.role if user else "unknown",
                address=address,
                outcome="failure",
                method="passwordless",
                reason="disabled" if user else ("unknown_user" if handle else "no_user_handle"),
            )
            # The challenge goes too: one try per challenge, whatever the outcome.
            await self._use_challenge("passwordless", None, challenge)
            raise AppError("passkey_refused")
        await self._accounts.check_locks(user.username, address)
        used = await self._assert(
            Assertion("passwordless", None, user, credential, page_origin, address),
            self._sign_in_refused,
        )
        await self._record(
            "login.passkey",
            used.user,
            address,
            on_account=False,
            passkey=used.key,
            method="passwordless",
        )
        issued = await self._accounts.complete_sign_in(
            None, used.user, address, second_factor="passkey", method="passwordless"
        )
        return issued, used.user

    async def _allowed_passwordless(self) -> None:
        policy = await passkey_policy(self._store, self._accounts.settings)
        if not policy.passwordless:
            raise AppError("passwordless_disabled")

    async def _holder_of(self, handle: str) -> User | None:
        """The account whose WebAuthn user handle is ``handle`` (a clinic has tens of staff
        accounts, not millions: a scan, no index to keep in step)."""
        if len(handle) > 128:
            return None
        for user in await self._store.list_users():
            if user.webauthn_handle and secrets.compare_digest(user.webauthn_handle, handle):
                return user
        return None

    # -- proving oneself again (the locked dashboard, a password change)
    async def reauth_options(
        self, session: Session, user: User, page_origin: str | None
    ) -> dict[str, Any]:
        return await self._request_options("reauth", session, user, page_origin)

    async def reauthenticate(
        self,
        user: User,
        session: Session,
        credential: dict[str, Any],
        page_origin: str | None,
        address: str,
        action: AuditAction,
    ) -> User:
        """A signed-in person proves again that it is them with a passkey and user
        verification (no password: the PIN or fingerprint is the second factor). Refusals
        count toward the lockouts and are recorded as failures of ``action``."""
        await self._accounts.check_locks(user.username, address)

        async def refused(assertion: Assertion, reason: str, passkey: Passkey | None) -> None:
            await self._accounts.count_failure(user.username, address, "passkey")
            await self._record(
                action,
                user,
                address,
                "failure",
                reason=reason,
                method="passkey",
                passkey=passkey.id[:16] if passkey else "",
            )

        used = await self._assert(
            Assertion("reauth", session, user, credential, page_origin, address), refused
        )
        await self._store.delete_key(f"fail:user:{user.username.casefold()}")
        return used.user

    # -- what every assertion goes through
    async def _assert(self, a: Assertion, refused: Refusal) -> UsedPasskey:
        """Check ``a`` (its challenge, origin, RP ID, signature, user verification where the
        ceremony needs it) and move the passkey's counter on; a refusal is reported to
        ``refused`` with its reason and raises ``passkey_refused``."""
        rp = relying_party(self._server, a.page_origin)
        user = a.user
        passkey = next((p for p in user.passkeys if p.id == a.credential.get("id")), None)
        challenge = challenge_of(a.credential)
        # Passwordless and re-authentication stand without the password: the authenticator
        # must have verified the person.
        needs_uv = a.ceremony in ("passwordless", "reauth")
        reason = ""
        new_count = 0
        if not await self._use_challenge(a.ceremony, a.session, challenge):
            reason = "challenge_unknown_or_used"
        elif passkey is None:
            reason = "unknown_passkey"
        elif a.ceremony == "passwordless" and passkey.discoverable is False:
            reason = "not_discoverable"
        else:
            try:
                # The counter is checked below, after the signature: a counter gone back on a
                # valid signature is the sign of a cloned key, not of a mere failure.
                verified = webauthn.verify_authentication_response(
                    credential=a.credential,
                    expected_challenge=b64url_decode(challenge),
                    expected_rp_id=rp.id,
                    expected_origin=list(rp.origins),
                    credential_public_key=passkey.public_key,
                    credential_current_sign_count=0,
                    require_user_verification=needs_uv,
                )
                new_count = verified.new_sign_count
            except WebAuthnException as exc:
                reason = refusal_reason(exc)
        if reason or passkey is None:
            await refused(a, reason, passkey)
            raise AppError("passkey_refused")
        now = self._clock.now()
        clone = False

        def used(u: User) -> User | None:
            nonlocal clone
            stored = next((p for p in u.passkeys if p.id == passkey.id), None)
            if stored is None:
                return None
            # Counters of 0 on both sides: an authenticator that keeps none (synced passkeys).
            if (new_count or stored.sign_count) and new_count <= stored.sign_count:
                clone = True
                return None
            fresh = stored.evolve(sign_count=new_count, last_used_at=now)
            keys = tuple(fresh if p.id == passkey.id else p for p in u.passkeys)
            if a.ceremony == "reauth":
                return u.evolve(passkeys=keys)
            return u.evolve(passkeys=keys, last_sign_in_at=now)

        stored = await self._store.change_user(user.id, used)
        if stored is None:
            if clone:
                await self._record(
                    "passkey.clone_suspected",
                    user,
                    a.address,
                    "failure",
                    passkey=passkey.id[:16],
                    sign_count=new_count,
                    stored_sign_count=passkey.sign_count,
                )
            await refused(a, "counter_went_back" if clone else "removed", passkey)
            raise AppError("passkey_refused")
        return UsedPasskey(stored, passkey.id[:16])

    async def _sign_in_refused(self, a: Assertion, reason: str, passkey: Passkey | None) -> None:
        """A refused assertion counts toward the lockouts, as a wrong code does."""
        await self._accounts.count_failure(a.user.username, a.address, "passkey")
        await self._record(
            "login.passkey",
            a.user,
            a.address,
            "failure",
            on_account=False,
            reason=reason,
            **({"passkey": passkey.id[:16]} if passkey else {}),
            **({"method": "passwordless"} if a.ceremony == "passwordless" else {}),
        )

    async def _record(
        self,
        action: AuditAction,
        user: User,
        address: str,
        outcome: str = "success",
        *,
        on_account: bool = True,
        **details: object,
    ) -> None:
        """Record ``action`` by ``user`` on their own account (or, at sign-in, on none)."""
        await self._audit.record(
            action,
            actor=user.id,
            actor_role=user.role,
            target=user.id if on_account else "",
            address=address,
            outcome=outcome,
            **details,
        )

    async def _reread(self, user: User) -> User:
        stored = await self._store.get_user(user.id)
        if stored is None:
            raise AppError("not_authenticated")
        return stored
