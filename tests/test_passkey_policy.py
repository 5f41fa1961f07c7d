"""Passkeys beyond the second step, through the API with a software authenticator: the sign-in
by a passkey alone (and its refusals), the clinic's passkey policy (who must use one, the code
as a fallback or not, an account bound to enrol one first), and proving oneself again with a
passkey (the locked dashboard, a password change)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp import web

from signaling.accounts.passkey_policy import PasskeyPolicy, save_passkey_policy
from signaling.keys import SERVICES
from tests.conftest import ORIGIN, PASSWORD, Accounts, Staff
from tests.test_passkeys import HEADERS, enrol, trail
from tests.webauthn_authenticator import SoftwareAuthenticator

pytestmark = pytest.mark.both_stores


async def set_policy(admin: Staff, **changes: Any) -> dict[str, Any]:
    body = {"required_for": "nobody", "totp_fallback": True, "passwordless": False, **changes}
    resp = await admin.client.post(
        "/api/passkey-policy", json=body, headers={**HEADERS, "X-CSRF-Token": admin.csrf}
    )
    assert resp.status == 200, await resp.text()
    saved: dict[str, Any] = await resp.json()
    return saved


async def passwordless_options(session: aiohttp.ClientSession) -> Any:
    return await session.post("/api/auth/passwordless/options", headers=HEADERS)


async def passwordless(
    accounts: Accounts, key: SoftwareAuthenticator, origin: str = ORIGIN
) -> tuple[aiohttp.ClientSession, Any]:
    """A fresh browser signs in with ``key`` alone: the options, then the assertion."""
    session = accounts.new_session()
    resp = await passwordless_options(session)
    assert resp.status == 200, await resp.text()
    options = (await resp.json())["public_key"]
    resp = await session.post(
        "/api/auth/passwordless", json={"credential": key.get(options, origin)}, headers=HEADERS
    )
    return session, resp


async def code(resp: Any) -> str:
    body = await resp.json()
    return str(body["error"]["code"])


# -- sign-in by a passkey alone


async def test_passwordless_is_off_until_an_admin_allows_it_and_the_change_is_audited(
    accounts: Accounts, doctor: Staff, admin: Staff, app: web.Application
) -> None:
    stranger = accounts.new_session()
    assert await (await stranger.get("/api/auth/methods")).json() == {"passwordless": False}
    resp = await passwordless_options(stranger)
    assert (resp.status, await code(resp)) == (403, "passwordless_disabled")
    resp = await stranger.post("/api/auth/passwordless", json={"credential": {}}, headers=HEADERS)
    assert await code(resp) == "passwordless_disabled"

    saved = await set_policy(admin, passwordless=True)
    assert saved == {"required_for": "nobody", "totp_fallback": True, "passwordless": True}
    assert await (await stranger.get("/api/auth/methods")).json() == {"passwordless": True}
    # Saving the same again records nothing.
    await set_policy(admin, passwordless=True)
    [entry] = await trail(app, "passkey.policy_changed")
    assert (entry.actor, entry.outcome) == (admin.user["id"], "success")
    assert '"fields":["passwordless"]' in entry.details
    assert '"old":{"passwordless":false}' in entry.details
    # Doctors do not see or change it.
    resp = await doctor.client.get("/api/passkey-policy")
    assert resp.status == 403


async def test_a_doctor_signs_in_with_a_passkey_alone(
    accounts: Accounts, doctor: Staff, admin: Staff, app: web.Application
) -> None:
    key = SoftwareAuthenticator()
    resp = await enrol(doctor, key)
    assert resp.status == 201, await resp.text()
    stored = await app[SERVICES].store.get_user(doctor.user["id"])
    assert stored is not None
    assert (stored.passkeys[0].discoverable, stored.passkeys[0].user_verified) == (True, True)
    await set_policy(admin, passwordless=True)

    session = accounts.new_session()
    options = (await (await passwordless_options(session)).json())["public_key"]
    # No username given: the browser offers the discoverable keys it holds, and must verify
    # the person.
    assert options.get("allowCredentials", []) == []
    assert options["userVerification"] == "required"
    resp = await session.post(
        "/api/auth/passwordless", json={"credential": key.get(options, ORIGIN)}, headers=HEADERS
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["user"]["username"] == "dr.martin"
    assert body["passkey_enrolment_required"] is False
    assert (await session.get("/api/me")).status == 200
    used = [e for e in await trail(app, "login.") if e.actor == doctor.user["id"]][-2:]
    assert [(e.action, e.outcome) for e in used] == [
        ("login.passkey", "success"),
        ("login.success", "success"),
    ]
    assert '"method":"passwordless"' in used[0].details


async def test_passwordless_refusals(
    accounts: Accounts, doctor: Staff, admin: Staff, app: web.Application
) -> None:
    key = SoftwareAuthenticator()
    assert (await enrol(doctor, key)).status == 201
    await set_policy(admin, passwordless=True)

    # A look-alike page relaying the ceremony: the browser names its own origin.
    session, resp = await passwordless(accounts, key, "https://clinic-login.example")
    assert (resp.status, await code(resp)) == (401, "passkey_refused")
    assert (await session.get("/api/me")).status == 401

    # A replayed assertion: its challenge is used.
    session = accounts.new_session()
    options = (await (await passwordless_options(session)).json())["public_key"]
    assertion = key.get(options, ORIGIN)
    first = await session.post("/api/auth/passwordless", json={"credential": assertion})
    assert first.status == 200, await first.text()
    again = await accounts.new_session().post(
        "/api/auth/passwordless", json={"credential": assertion}, headers=HEADERS
    )
    assert await code(again) == "passkey_refused"

    # A copy of the key whose counter is behind: refused and audited as a clone.
    session = accounts.new_session()
    options = (await (await passwordless_options(session)).json())["public_key"]
    clone = key.get(options, ORIGIN, count_up=False)
    resp = await session.post("/api/auth/passwordless", json={"credential": clone})
    assert await code(resp) == "passkey_refused"
    [suspected] = await trail(app, "passkey.clone_suspected")
    assert suspected.actor == doctor.user["id"]

    # A key the service does not know, though it names the doctor's user handle.
    stranger = SoftwareAuthenticator(user_handle=key.user_handle)
    _, resp = await passwordless(accounts, stranger)
    assert await code(resp) == "passkey_refused"
    # A user handle of nobody.
    _, resp = await passwordless(accounts, SoftwareAuthenticator(user_handle="bm9ib2R5"))
    assert await code(resp) == "passkey_refused"
    # An authenticator that did not verify the person (no PIN, no fingerprint).
    key.verifies_user = False
    _, resp = await passwordless(accounts, key)
    assert await code(resp) == "passkey_refused"

    reasons = [e.details for e in await trail(app, "login.passkey") if e.outcome == "failure"]
    for reason in (
        "wrong_origin",
        "challenge_unknown_or_used",
        "counter_went_back",
        "unknown_passkey",
        "unknown_user",
        "no_user_verification",
    ):
        assert any(f'"reason":"{reason}"' in d for d in reasons), (reason, reasons)


async def test_a_key_that_is_not_discoverable_does_not_sign_in_alone(
    accounts: Accounts, doctor: Staff, admin: Staff, app: web.Application
) -> None:
    key = SoftwareAuthenticator(discoverable=False)
    assert (await enrol(doctor, key)).status == 201
    stored = await app[SERVICES].store.get_user(doctor.user["id"])
    assert stored is not None and stored.passkeys[0].discoverable is False
    await set_policy(admin, passwordless=True)
    # Such a key answers without a user handle: nothing names the account.
    _, resp = await passwordless(accounts, key)
    assert await code(resp) == "passkey_refused"
    # And one the service recorded as not discoverable is refused even with a handle.
    key.discoverable = True
    _, resp = await passwordless(accounts, key)
    assert await code(resp) == "passkey_refused"
    reasons = [e.details for e in await trail(app, "login.passkey") if e.outcome == "failure"]
    assert '"reason":"no_user_handle"' in reasons[0]
    assert '"reason":"not_discoverable"' in reasons[1]


# -- the clinic's policy at sign-in


async def test_without_fallback_an_account_with_a_passkey_is_refused_the_code(
    accounts: Accounts, doctor: Staff, admin: Staff, app: web.Application
) -> None:
    key = SoftwareAuthenticator()
    assert (await enrol(doctor, key)).status == 201
    assert (await enrol(admin, SoftwareAuthenticator())).status == 201
    await set_policy(admin, required_for="everyone", totp_fallback=False)
    session = accounts.new_session()
    resp = await session.post(
        "/api/auth/login", json={"username": "dr.martin", "password": PASSWORD}, headers=HEADERS
    )
    answer = await resp.json()
    assert (answer["passkey"], answer["passkey_only"]) == (True, True)
    resp = await session.post("/api/auth/totp", json={"code": accounts.next_code(doctor.totp)})
    assert (resp.status, await code(resp)) == (403, "passkey_required")
    refused = (await trail(app, "login.totp"))[-1]
    assert '"reason":"passkey_required"' in refused.details
    # The passkey signs in.
    options = await (await session.post("/api/auth/passkey/options", headers=HEADERS)).json()
    resp = await session.post(
        "/api/auth/passkey",
        json={"credential": key.get(options["public_key"], ORIGIN)},
        headers=HEADERS,
    )
    assert resp.status == 200, await resp.text()

    # With the fallback kept, the code signs the same account in.
    await set_policy(admin, required_for="everyone", totp_fallback=True)
    signed = await accounts.sign_in("dr.martin", totp=doctor.totp)
    assert (await signed.client.get("/api/consultations")).status == 200


async def test_an_account_bound_to_a_passkey_without_one_enrols_it_first(
    accounts: Accounts, doctor: Staff, admin: Staff, app: web.Application
) -> None:
    # An admin without a passkey cannot bind admins: their own session would be bound.
    resp = await admin.post(
        "/api/passkey-policy",
        {"required_for": "admins", "totp_fallback": False, "passwordless": False},
    )
    assert (await code(resp), (await resp.json())["error"]["details"]) == (
        "invalid_body",
        {"field": "required_for"},
    )
    # Another admin's policy (saved as the admin page would) binds this one.
    await save_passkey_policy(
        app[SERVICES].store, PasskeyPolicy(required_for="admins", totp_fallback=False)
    )
    # A doctor is not bound by "admins".
    assert (await doctor.client.get("/api/consultations")).status == 200
    # The admin (no passkey yet) signs in with password and code, into a session that can
    # only enrol one.
    boss = await accounts.sign_in("admin.root", totp=admin.totp)
    me = await (await boss.client.get("/api/me")).json()
    assert me["passkey_enrolment_required"] is True
    resp = await boss.client.get("/api/users")
    assert (resp.status, await code(resp)) == (403, "passkey_enrolment_required")
    resp = await boss.client.get("/api/passkey-policy")
    assert await code(resp) == "passkey_enrolment_required"
    assert (await enrol(boss, SoftwareAuthenticator())).status == 201
    assert (await boss.client.get("/api/users")).status == 200
    me = await (await boss.client.get("/api/me")).json()
    assert me["passkey_enrolment_required"] is False

    # "everyone" binds the doctor too, at once, in the session already open.
    await set_policy(boss, required_for="everyone", totp_fallback=False)
    resp = await doctor.client.get("/api/consultations")
    assert await code(resp) == "passkey_enrolment_required"


async def test_an_admin_reset_leaves_no_passkey_and_the_account_enrols_again(
    accounts: Accounts, doctor: Staff, admin: Staff, app: web.Application
) -> None:
    assert (await enrol(doctor, SoftwareAuthenticator())).status == 201
    assert (await enrol(admin, SoftwareAuthenticator())).status == 201
    await set_policy(admin, required_for="everyone")
    resp = await admin.post(f"/api/users/{doctor.user['id']}/reset-link")
    assert resp.status == 200, await resp.text()
    stored = await app[SERVICES].store.get_user(doctor.user["id"])
    assert stored is not None and stored.passkeys == ()
    # The session the doctor had is gone.
    assert (await doctor.client.get("/api/me")).status == 401


# -- proving oneself again with a passkey


async def reauth_assertion(staff: Staff, key: SoftwareAuthenticator) -> dict[str, Any]:
    resp = await staff.client.post(
        "/api/auth/reauth/options", headers={**HEADERS, "X-CSRF-Token": staff.csrf}
    )
    assert resp.status == 200, await resp.text()
    options = (await resp.json())["public_key"]
    assert options["userVerification"] == "required"
    return key.get(options, ORIGIN)


async def test_a_locked_session_unlocks_with_a_passkey(
    accounts: Accounts, doctor: Staff, app: web.Application
) -> None:
    key = SoftwareAuthenticator()
    assert (await enrol(doctor, key)).status == 201
    idle = app[SERVICES].settings.security.session_idle_minutes * 60
    accounts.clock.advance(idle + 1)
    assert await code(await doctor.client.get("/api/consultations")) == "session_locked"

    # Without user verification the passkey does not stand for password and code.
    key.verifies_user = False
    resp = await doctor.post(
        "/api/auth/unlock/passkey", {"credential": await reauth_assertion(doctor, key)}
    )
    assert (resp.status, await code(resp)) == (401, "passkey_refused")
    key.verifies_user = True
    # An assertion made for another page.
    resp = await doctor.client.post(
        "/api/auth/reauth/options", headers={**HEADERS, "X-CSRF-Token": doctor.csrf}
    )
    options = (await resp.json())["public_key"]
    resp = await doctor.post(
        "/api/auth/unlock/passkey", {"credential": key.get(options, "https://evil.example")}
    )
    assert await code(resp) == "passkey_refused"
    assert await code(await doctor.client.get("/api/consultations")) == "session_locked"

    assertion = await reauth_assertion(doctor, key)
    resp = await doctor.post("/api/auth/unlock/passkey", {"credential": assertion})
    assert resp.status == 200, await resp.text()
    assert (await doctor.client.get("/api/consultations")).status == 200
    # Replayed: its challenge is used.
    resp = await doctor.post("/api/auth/unlock/passkey", {"credential": assertion})
    assert await code(resp) == "passkey_refused"
    unlocks = [(e.outcome, e.details) for e in await trail(app, "session.unlocked")]
    assert [o for o, _ in unlocks] == ["failure", "failure", "success", "failure"]
    assert '"reason":"no_user_verification"' in unlocks[0][1]
    assert '"method":"passkey"' in unlocks[2][1]

    # Bound to the passkey without fallback: the password and code no longer unlock.
    await save_passkey_policy(
        app[SERVICES].store, PasskeyPolicy(required_for="everyone", totp_fallback=False)
    )
    accounts.clock.advance(idle + 1)
    body = {"password": PASSWORD, "code": accounts.next_code(doctor.totp)}
    resp = await doctor.post("/api/auth/unlock", body)
    assert await code(resp) == "passkey_required"


async def test_a_password_change_proven_with_a_passkey(
    accounts: Accounts, doctor: Staff, app: web.Application
) -> None:
    key = SoftwareAuthenticator()
    assert (await enrol(doctor, key)).status == 201
    new = "a brand new long passphrase"
    resp = await doctor.post(
        "/api/me/password",
        {"new_password": new, "credential": await reauth_assertion(doctor, key)},
    )
    assert resp.status == 200, await resp.text()
    await accounts.sign_in("dr.martin", password=new, totp=doctor.totp)
    # Without a passkey's answer nor the current password, nothing changes.
    resp = await doctor.post("/api/me/password", {"new_password": "yet another passphrase"})
    assert await code(resp) == "wrong_password"
    changes = [e.outcome for e in await trail(app, "user.password_changed")]
    assert changes == ["success", "failure"]
