"""The clinic's passkey policy: who must sign in with a passkey, whether the authenticator
code still signs such an account in, and whether a passkey alone may be the whole sign-in.

The policy in effect is the one an admin saved on the admin page (one meta value of the
store, so every backend keeps it and ``run.py store export`` carries it), else the TOML's
``[security]`` keys, the initial default.

What it means at sign-in (signaling/accounts/auth.py, passkeys.py, api/http_api.py):

- An account *bound* to use a passkey (``required_for`` names its role) that has one signs in
  with it. With ``totp_fallback`` the code still works (a forgotten key, a borrowed
  computer); without it the code is refused (``passkey_required``), at sign-in and when the
  session is unlocked or the password changed.
- A bound account without a passkey yet (new, reset by an admin, or the policy just turned
  on) signs in with its password and code, fallback or not, into a session that can only
  enrol a passkey (every other staff endpoint answers ``passkey_enrolment_required``) until
  it has one. Refusing it instead would lock it out for good: an admin's reset removes the
  passkeys, so nobody could ever enrol one. The cost is that such an account is as phishable
  as the code until it enrols, which the audit trail shows (``passkey.enrolled``).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from config import SecuritySettings
from signaling.models import StaffRole
from signaling.store.base import Store

PasskeyRequirement = Literal["nobody", "admins", "everyone"]
POLICY_META = "passkey_policy"

# What a session bound to enrol a passkey may still reach: itself, its passkeys, the sign-out
# and the idle lock (the endpoints' path templates).
ENROLMENT_PATHS = frozenset(
    {
        "/api/me",
        "/api/me/passkeys",
        "/api/me/passkeys/options",
        "/api/me/passkeys/{passkey_id}/delete",
        "/api/auth/logout",
        "/api/auth/session",
        "/api/auth/unlock",
        "/api/auth/reauth/options",
        "/api/auth/unlock/passkey",
        "/api/auth/methods",
    }
)


class PasskeyPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    required_for: PasskeyRequirement = "nobody"
    totp_fallback: bool = True
    passwordless: bool = False

    def binds(self, role: StaffRole) -> bool:
        """Whether an account of ``role`` must sign in with a passkey."""
        return self.required_for == "everyone" or (
            self.required_for == "admins" and role == "admin"
        )

    def changed_fields(self, before: PasskeyPolicy) -> list[str]:
        return [f for f in self.__struct_fields__ if getattr(self, f) != getattr(before, f)]


_decoder = msgspec.json.Decoder(PasskeyPolicy)


_REQUIREMENTS: dict[str, PasskeyRequirement] = {r: r for r in ("nobody", "admins", "everyone")}


def from_settings(settings: SecuritySettings) -> PasskeyPolicy:
    return PasskeyPolicy(
        # Checked when the settings load (config/settings.py): one of the three.
        required_for=_REQUIREMENTS.get(settings.passkeys_required_for, "nobody"),
        totp_fallback=settings.passkey_totp_fallback,
        passwordless=settings.passwordless_sign_in,
    )


async def passkey_policy(store: Store, settings: SecuritySettings) -> PasskeyPolicy:
    """The policy in effect: the admin's saved one, else the settings'."""
    raw = await store.get_meta(POLICY_META)
    return from_settings(settings) if raw is None else _decoder.decode(raw)


async def save_passkey_policy(store: Store, policy: PasskeyPolicy) -> None:
    await store.set_meta(POLICY_META, msgspec.json.encode(policy).decode())
