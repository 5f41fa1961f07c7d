"""Sign-in with password then TOTP, lockouts, sessions, CSRF, cookies."""

from __future__ import annotations

import time
from typing import Any

import pyotp
import pytest
from aiohttp.test_utils import TestClient

from signaling.clock import ManualClock
from tests.conftest import PASSWORD, Accounts, Staff

pytestmark = pytest.mark.both_stores


async def test_doctor_signs_in_with_password_then_totp(doctor: Staff) -> None:
    resp = await doctor.client.get("/api/me")
    assert resp.status == 200
    body = await resp.json()
    assert body["user"]["username"] == "dr.martin"
    assert body["user"]["mfa_enrolled"] is True
    assert body["csrf_token"] == doctor.csrf


async def test_password_alone_gives_no_session(accounts: Accounts) -> None:
    await accounts.create("dr.alone")
    session = accounts.new_session()
    resp = await session.post(
        "/api/auth/login", json={"username": "dr.alone", "password": PASSWORD}
    )
    assert resp.status == 200
    assert (await resp.json())["next"] == "enrol"
    resp = await session.get("/api/me")
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "not_authenticated"


async def test_totp_code_is_accepted_only_once(accounts: Accounts, doctor: Staff) -> None:
    session = accounts.new_session()
    await session.post("/api/auth/login", json={"username": "dr.martin", "password": PASSWORD})
    code = accounts.next_code(doctor.totp)
    first = await session.post("/api/auth/totp", json={"code": code})
    assert first.status == 200
    other = accounts.new_session()
    await other.post("/api/auth/login", json={"username": "dr.martin", "password": PASSWORD})
    again = await other.post("/api/auth/totp", json={"code": code})
    assert again.status == 401
    assert (await again.json())["error"]["code"] == "totp_reused"


async def test_totp_from_an_earlier_step_is_refused_after_a_later_one(
    accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    earlier = str(doctor.totp.at(clock.now() - 30))  # the step before the one used to sign in
    session = accounts.new_session()
    await session.post("/api/auth/login", json={"username": "dr.martin", "password": PASSWORD})
    resp = await session.post("/api/auth/totp", json={"code": earlier})
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] in ("totp_reused", "invalid_totp")


async def test_totp_drift_of_one_step_is_accepted_but_not_two(
    accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    clock.advance(300)
    session = accounts.new_session()
    await session.post("/api/auth/login", json={"username": "dr.martin", "password": PASSWORD})
    two_ahead = str(doctor.totp.at(clock.now() + 60))
    resp = await session.post("/api/auth/totp", json={"code": two_ahead})
    assert (await resp.json())["error"]["code"] == "invalid_totp"
    one_ahead = str(doctor.totp.at(clock.now() + 30))
    resp = await session.post("/api/auth/totp", json={"code": one_ahead})
    assert resp.status == 200


async def test_wrong_code_is_refused(accounts: Accounts, doctor: Staff, clock: ManualClock) -> None:
    session = accounts.new_session()
    await session.post("/api/auth/login", json={"username": "dr.martin", "password": PASSWORD})
    good = doctor.totp.at(clock.now() + 30)
    wrong = f"{(int(good) + 1) % 1_000_000:06d}"
    resp = await session.post("/api/auth/totp", json={"code": wrong})
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "invalid_totp"


async def test_pending_login_expires_after_five_minutes(
    accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    session = accounts.new_session()
    await session.post("/api/auth/login", json={"username": "dr.martin", "password": PASSWORD})
    clock.advance(5 * 60 + 1)
    resp = await session.post("/api/auth/totp", json={"code": doctor.totp.at(clock.now())})
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "login_expired"


async def test_five_failures_lock_the_account_for_fifteen_minutes(
    accounts: Accounts, clock: ManualClock
) -> None:
    await accounts.create("dr.lock")
    session = accounts.new_session()
    for _ in range(5):
        resp = await session.post(
            "/api/auth/login", json={"username": "dr.lock", "password": "wrong password!!"}
        )
        assert (await resp.json())["error"]["code"] == "invalid_credentials"
    # Even the right password is refused while locked, with a clear error.
    resp = await session.post("/api/auth/login", json={"username": "dr.lock", "password": PASSWORD})
    assert resp.status == 429
    body = await resp.json()
    assert body["error"]["code"] == "account_locked"
    assert body["error"]["details"]["retry_after_minutes"] == 15
    clock.advance(14 * 60)
    resp = await session.post("/api/auth/login", json={"username": "dr.lock", "password": PASSWORD})
    assert resp.status == 429
    clock.advance(61)
    resp = await session.post("/api/auth/login", json={"username": "dr.lock", "password": PASSWORD})
    assert resp.status == 200


async def test_wrong_totp_codes_count_towards_the_lockout(
    accounts: Accounts, doctor: Staff, clock: ManualClock
) -> None:
    session = accounts.new_session()
    await session.post("/api/auth/login", json={"username": "dr.martin", "password": PASSWORD})
    for _ in range(5):
        resp = await session.post("/api/auth/totp", json={"code": "000000"})
    resp = await session.post("/api/auth/totp", json={"code": doctor.totp.at(clock.now() + 30)})
    assert resp.status == 429
    assert (await resp.json())["error"]["code"] == "account_locked"


async def test_one_address_failing_on_many_accounts_is_locked(accounts: Accounts) -> None:
    session = accounts.new_session()
    for i in range(20):
        resp = await session.post(
            "/api/auth/login", json={"username": f"nobody{i}", "password": "x" * 12}
        )
        assert (await resp.json())["error"]["code"] == "invalid_credentials"
    resp = await session.post(
        "/api/auth/login", json={"username": "nobody-else", "password": "x" * 12}
    )
    assert resp.status == 429
    assert (await resp.json())["error"]["code"] == "address_locked"


@pytest.mark.usefixtures("production_password_cost")  # the cost whose timing must not differ
async def test_unknown_user_and_wrong_password_answer_alike(accounts: Accounts) -> None:
    await accounts.create("dr.real")
    session = accounts.new_session()

    async def attempt(username: str) -> tuple[int, Any, float]:
        start = time.perf_counter()
        resp = await session.post(
            "/api/auth/login", json={"username": username, "password": "not the password"}
        )
        return resp.status, await resp.json(), time.perf_counter() - start

    known = await attempt("dr.real")
    unknown = await attempt("dr.ghost")
    assert known[0] == unknown[0] == 401
    assert known[1] == unknown[1]
    # Both paths run one argon2 verification; this is a sanity bound, not a benchmark.
    assert unknown[2] > known[2] / 10


async def test_staff_session_locks_after_idle_time(doctor: Staff, clock: ManualClock) -> None:
    clock.advance(29 * 60)
    assert (await doctor.client.get("/api/me")).status == 200
    clock.advance(29 * 60)  # active 29 minutes ago: still within the idle timeout
    assert (await doctor.client.get("/api/me")).status == 200
    clock.advance(31 * 60)
    resp = await doctor.client.get("/api/me")
    assert resp.status == 401
    # Locked until password and code (tests/test_session_lock.py), not ended.
    assert (await resp.json())["error"]["code"] == "session_locked"


async def test_staff_session_ends_after_absolute_lifetime(
    doctor: Staff, clock: ManualClock
) -> None:
    for _ in range(12 * 3):  # stay active every 20 minutes for 12 hours
        clock.advance(20 * 60)
        await doctor.client.get("/api/me")
    assert (await doctor.client.get("/api/me")).status == 401


async def test_logout_ends_the_session(doctor: Staff) -> None:
    resp = await doctor.post("/api/auth/logout")
    assert resp.status == 204
    assert (await doctor.client.get("/api/me")).status == 401


async def test_state_change_without_csrf_token_is_refused(doctor: Staff) -> None:
    resp = await doctor.client.post("/api/auth/logout")
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "csrf_failed"
    resp = await doctor.client.post("/api/auth/logout", headers={"X-CSRF-Token": "forged"})
    assert resp.status == 403
    assert (await doctor.client.get("/api/me")).status == 200


async def test_cross_origin_post_is_refused(doctor: Staff) -> None:
    resp = await doctor.client.post(
        "/api/auth/logout", headers={"X-CSRF-Token": doctor.csrf, "Origin": "https://evil.example"}
    )
    assert resp.status == 403
    assert (await doctor.client.get("/api/me")).status == 200


async def test_session_cookie_flags(accounts: Accounts, client: TestClient[Any, Any]) -> None:
    await accounts.create("dr.cookie")
    resp = await client.post(
        "/api/auth/login", json={"username": "dr.cookie", "password": PASSWORD}
    )
    pending = resp.cookies["tc_pending"]
    assert pending["httponly"] is True
    assert pending["samesite"] == "Strict"
    totp = await accounts.enrol(client)  # type: ignore[arg-type]
    resp = await client.post("/api/auth/totp", json={"code": accounts.next_code(totp)})
    cookie = resp.cookies["tc_session"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/"
    assert not cookie["secure"]  # plain http on localhost; Secure under TLS (test_http)


async def test_enrolment_is_active_only_after_a_correct_code(accounts: Accounts, app: Any) -> None:
    await accounts.create("dr.new")
    session = accounts.new_session()
    await session.post("/api/auth/login", json={"username": "dr.new", "password": PASSWORD})
    totp = await accounts.enrol(session)
    from signaling.keys import SERVICES

    user = await app[SERVICES].store.get_user_by_username("dr.new")
    assert user.totp_confirmed is False
    assert user.totp_secret_enc is not None
    assert totp.secret.encode() not in user.totp_secret_enc  # stored encrypted
    resp = await session.post("/api/auth/totp", json={"code": "000000"})
    assert resp.status == 401
    user = await app[SERVICES].store.get_user_by_username("dr.new")
    assert user.totp_confirmed is False
    resp = await session.post("/api/auth/totp", json={"code": accounts.next_code(totp)})
    assert resp.status == 200
    user = await app[SERVICES].store.get_user_by_username("dr.new")
    assert user.totp_confirmed is True


async def test_enrolment_offers_qr_code_and_standard_uri(accounts: Accounts) -> None:
    await accounts.create("dr.qr")
    session = accounts.new_session()
    await session.post("/api/auth/login", json={"username": "dr.qr", "password": PASSWORD})
    body = await (await session.post("/api/auth/enrol")).json()
    assert body["qr_svg"].lstrip().startswith("<svg")
    totp = pyotp.parse_uri(body["otpauth_uri"])
    assert isinstance(totp, pyotp.TOTP)
    assert totp.secret == body["secret"]
    assert totp.digits == 6 and totp.interval == 30
    assert "algorithm" not in body["otpauth_uri"] or "SHA1" in body["otpauth_uri"]


async def test_enrolled_user_cannot_enrol_again(accounts: Accounts, doctor: Staff) -> None:
    session = accounts.new_session()
    await session.post("/api/auth/login", json={"username": "dr.martin", "password": PASSWORD})
    resp = await session.post("/api/auth/enrol")
    assert resp.status == 403


async def test_disabled_user_cannot_sign_in_and_loses_sessions(
    accounts: Accounts, admin: Staff, doctor: Staff
) -> None:
    resp = await admin.post(f"/api/users/{doctor.user['id']}/disable")
    assert resp.status == 200
    assert (await doctor.client.get("/api/me")).status == 401
    session = accounts.new_session()
    resp = await session.post(
        "/api/auth/login", json={"username": "dr.martin", "password": PASSWORD}
    )
    assert (await resp.json())["error"]["code"] == "invalid_credentials"


async def test_reset_mfa_requires_new_enrolment(
    accounts: Accounts, admin: Staff, doctor: Staff
) -> None:
    resp = await admin.post(f"/api/users/{doctor.user['id']}/reset-mfa")
    assert resp.status == 200
    assert (await resp.json())["mfa_enrolled"] is False
    assert (await doctor.client.get("/api/me")).status == 401
    session = accounts.new_session()
    resp = await session.post(
        "/api/auth/login", json={"username": "dr.martin", "password": PASSWORD}
    )
    assert (await resp.json())["next"] == "enrol"
    # The old authenticator entry no longer works.
    resp = await session.post("/api/auth/totp", json={"code": accounts.next_code(doctor.totp)})
    assert resp.status == 401


async def test_totp_sealed_with_a_replaced_app_secret_gives_a_clear_error(
    accounts: Accounts, doctor: Staff, app: Any
) -> None:
    from signaling.crypto import SecretBox
    from signaling.keys import SERVICES

    services = app[SERVICES]
    services.accounts._box = SecretBox(b"\x01" * 32)  # as after the key file was replaced
    session = accounts.new_session()
    await session.post("/api/auth/login", json={"username": "dr.martin", "password": PASSWORD})
    resp = await session.post("/api/auth/totp", json={"code": accounts.next_code(doctor.totp)})
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "mfa_unreadable"
