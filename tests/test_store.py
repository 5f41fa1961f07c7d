"""The Store contract. Every backend must pass it: SQLite, Redis, PostgreSQL (alone, and with its
short-lived keys in Redis)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis

from config import ConfigError
from signaling.models import AccountLink, Consultation, Session, User
from signaling.store.audit_chain import GENESIS, first_broken
from signaling.store.base import (
    SETUP_NONCE_USED,
    AuditFields,
    AuditFilter,
    DuplicateUsername,
    Store,
    StoreUnavailable,
)
from signaling.store.postgres import PostgresStore
from signaling.store.redis import RedisStore
from signaling.store.short_lived_redis import RedisShortLivedStore
from signaling.store.sqlite import SqliteStore
from tests.postgres_cluster import PostgresCluster
from tests.servers import RedisServer

NOW = 1_800_000_000.0


async def open_store(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """An opened, empty store of ``backend``: "sqlite", "redis", "postgres" or
    "postgres+redis" (short-lived keys in Redis, as with several instances)."""
    store: Store
    if backend == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        store = RedisStore(server.url)
        await store.open()
        await store.r.flushdb()
    elif backend.startswith("postgres"):
        cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
        short_lived = None
        if backend.endswith("+redis"):
            server = request.getfixturevalue("redis_server")
            flush = redis.Redis.from_url(server.url)
            flush.flushdb()
            flush.close()
            short_lived = RedisShortLivedStore(server.url)
        store = PostgresStore(cluster.new_database(), short_lived=short_lived)
        await store.open()
    else:
        store = SqliteStore(tmp_path / "store.sqlite3")
        await store.open()
    return store


@pytest.fixture(params=["sqlite", "redis", "postgres", "postgres+redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    backend = await open_store(request.param, request, tmp_path)
    yield backend
    await backend.close()


async def test_redis_without_aof_is_refused(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "noaof", appendonly=False).start()
    try:
        with pytest.raises(ConfigError, match="appendonly"):
            await RedisStore(server.url).open()
        relaxed = RedisStore(server.url, require_aof=False)
        await relaxed.open()
        await relaxed.ping()
        await relaxed.close()
    finally:
        server.stop()


async def test_stopped_redis_is_unavailable_then_recovers(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "stop").start()
    store = RedisStore(server.url)
    await store.open()
    await store.set_meta("kept", "yes")
    port = server.port
    server.stop()
    with pytest.raises(StoreUnavailable):
        await store.ping()
    with pytest.raises(StoreUnavailable):
        await store.get_meta("kept")
    server = RedisServer(tmp_path / "stop", port=port).start()  # same dir: AOF replays
    try:
        await store.ping()
        assert await store.get_meta("kept") == "yes"
    finally:
        await store.close()
        server.stop()


def another_instance(store: PostgresStore) -> PostgresStore:
    """A second PostgresStore on the same database (and the same Redis for short-lived keys,
    when the first has one): what another instance of the service is."""
    first = store._short_lived
    short_lived = (
        RedisShortLivedStore(first.url) if isinstance(first, RedisShortLivedStore) else None
    )
    return PostgresStore(store.dsn, short_lived=short_lived)


async def another_connection(store: Store) -> Store:
    """The same backend again, opened apart: what a second process would race with."""
    other: Store
    if isinstance(store, SqliteStore):
        other = SqliteStore(store.path)
    elif isinstance(store, PostgresStore):
        other = another_instance(store)
    else:
        assert isinstance(store, RedisStore)
        other = RedisStore(store.url)
    await other.open()
    return other


def user(name: str = "dr.a", role: str = "doctor") -> User:
    return User(
        id=f"id-{name}",
        username=name,
        display_name=name.upper(),
        role=role,  # type: ignore[arg-type]
        password_hash="h",
        created_at=NOW,
    )


def consultation(cid: str = "c1", doctor: str = "id-dr.a", start: float = NOW) -> Consultation:
    return Consultation(
        id=cid,
        doctor_id=doctor,
        patient_name="P",
        scheduled_start=start,
        duration_minutes=30,
        note="",
        status="scheduled",
        created_at=NOW,
        invite_nonce="n",
        access_code_hash="h",
    )


async def test_users_round_trip_and_usernames_are_unique_case_insensitively(store: Store) -> None:
    await store.create_user(user("Dr.A"))
    with pytest.raises(DuplicateUsername):
        await store.create_user(user("dr.a").evolve(id="other"))
    found = await store.get_user_by_username("DR.a")
    assert found is not None and found.username == "Dr.A"
    assert await store.count_users() == 1
    await store.update_user(found.evolve(disabled=True, totp_secret_enc=b"\x00\x01"))
    again = await store.get_user(found.id)
    assert again is not None and again.disabled and again.totp_secret_enc == b"\x00\x01"
    assert await store.get_user("absent") is None


async def test_an_account_link_and_sign_in_times_round_trip(store: Store) -> None:
    link = AccountLink(
        purpose="enrolment", secret_hash="ab" * 32, issued_at=NOW, expires_at=NOW + 9
    )
    await store.create_user(user().evolve(password_hash="", account_link=link))
    stored = await store.get_user("id-dr.a")
    assert stored is not None and stored.account_link == link and stored.password_hash == ""
    await store.update_user(stored.evolve(account_link=None, last_sign_in_at=NOW, locked_until=NOW))
    done = await store.get_user_by_username("dr.a")
    assert done is not None and done.account_link is None
    assert (done.last_sign_in_at, done.locked_until) == (NOW, NOW)


async def test_of_parallel_claims_of_one_key_exactly_one_wins(store: Store) -> None:
    # What keeps an enrolment or reset link single use: two connections race for it.
    other = await another_connection(store)
    try:
        claims = await asyncio.gather(
            *((store if i % 2 else other).claim_once("account-link:x", 60, NOW) for i in range(12))
        )
    finally:
        await other.close()
    assert sorted(claims) == [False] * 11 + [True]


async def test_totp_step_only_moves_forward(store: Store) -> None:
    await store.create_user(user())
    assert await store.advance_totp_step("id-dr.a", 100)
    assert not await store.advance_totp_step("id-dr.a", 100)
    assert not await store.advance_totp_step("id-dr.a", 99)
    assert await store.advance_totp_step("id-dr.a", 101)
    u = await store.get_user("id-dr.a")
    assert u is not None
    await store.update_user(u.evolve(totp_last_step=0))  # update never rewinds it
    assert not await store.advance_totp_step("id-dr.a", 101)


async def test_the_setup_link_creates_the_first_user_once(store: Store) -> None:
    assert await store.create_first_user(user("boss", "admin"), "setup", "n1") == "link_invalid"
    await store.set_meta("setup", "n1")
    assert await store.create_first_user(user("boss", "admin"), "setup", "n0") == "link_invalid"
    assert await store.count_users() == 0 and await store.get_meta("setup") == "n1"
    assert await store.create_first_user(user("boss", "admin"), "setup", "n1") == "created"
    found = await store.get_user_by_username("BOSS")
    assert found == user("boss", "admin")
    assert await store.get_meta("setup") == SETUP_NONCE_USED
    assert await store.create_first_user(user("evil", "admin"), "setup", "n1") == "setup_done"
    assert await store.create_first_user(user("evil", "admin"), "setup", "used") == "setup_done"
    assert [u.username for u in await store.list_users()] == ["boss"]


async def test_concurrent_setup_claims_create_exactly_one_user(store: Store) -> None:
    # Two instances of the backend (two connections, or two processes' worth of them) race.
    other = await another_connection(store)
    try:
        await store.set_meta("setup", "n1")
        results = await asyncio.gather(
            *(
                (store if i % 2 else other).create_first_user(
                    user(f"admin{i}", "admin"), "setup", "n1"
                )
                for i in range(8)
            )
        )
    finally:
        await other.close()
    assert sorted(results) == ["created"] + ["setup_done"] * 7
    assert await store.count_users() == 1
    assert len(await store.list_users()) == 1
    assert await store.get_meta("setup") == SETUP_NONCE_USED


def staff_session(id_hash: str, user_id: str) -> Session:
    return Session(
        id_hash=id_hash,
        kind="staff",
        created_at=NOW,
        last_seen=NOW,
        expires_at=NOW + 10,
        csrf_token="c",
        user_id=user_id,
    )


async def test_sessions(store: Store) -> None:
    s = staff_session("h1", "u1")
    await store.put_session(s)
    await store.put_session(s.evolve(id_hash="h2"))
    assert await store.get_session("h1") == s
    assert await store.delete_user_sessions("u1") == 2
    assert await store.get_session("h2") is None
    await store.put_session(s)
    assert await store.purge_sessions(NOW + 11) == 1


async def test_set_user_role_keeps_at_least_one_enabled_admin(store: Store) -> None:
    await store.create_user(user("boss", role="admin"))
    await store.create_user(user("dr.a"))
    assert await store.set_user_role("id-dr.a", "admin")
    assert (await store.get_user("id-dr.a")).role == "admin"  # type: ignore[union-attr]
    # Two admins: one may step down, but not the second one after it.
    assert await store.set_user_role("id-boss", "doctor")
    assert not await store.set_user_role("id-dr.a", "doctor")
    assert (await store.get_user("id-dr.a")).role == "admin"  # type: ignore[union-attr]
    # A disabled admin does not count as one the service can rely on.
    assert await store.set_user_role("id-boss", "admin")
    boss = await store.get_user("id-boss")
    assert boss is not None
    await store.update_user(boss.evolve(disabled=True))
    assert not await store.set_user_role("id-dr.a", "doctor")
    assert await store.set_user_role("id-dr.a", "admin")  # no change of role is always fine
    await store.update_user(boss.evolve(disabled=False))
    assert await store.set_user_role("id-dr.a", "doctor")
    assert (await store.get_user("id-dr.a")).role == "doctor"  # type: ignore[union-attr]


async def test_set_user_password_ends_the_other_sessions_only(store: Store) -> None:
    await store.create_user(user())
    await store.create_user(user("dr.b"))
    base = staff_session("mine", "id-dr.a")
    for session in (
        base,
        base.evolve(id_hash="laptop"),
        base.evolve(id_hash="pending", kind="pending"),
        base.evolve(id_hash="theirs", user_id="id-dr.b"),
    ):
        await store.put_session(session)
    # A stale old hash (changed meanwhile) writes nothing and ends nothing.
    assert await store.set_user_password("id-dr.a", "stale", "new-hash", "mine") is None
    assert (await store.get_user("id-dr.a")).password_hash == "h"  # type: ignore[union-attr]
    assert await store.get_session("laptop") is not None
    assert await store.set_user_password("absent", "h", "new-hash", "mine") is None

    assert await store.set_user_password("id-dr.a", "h", "new-hash", "mine") == 2
    assert (await store.get_user("id-dr.a")).password_hash == "new-hash"  # type: ignore[union-attr]
    assert await store.get_session("mine") == base
    assert await store.get_session("laptop") is None
    assert await store.get_session("pending") is None
    assert await store.get_session("theirs") is not None
    assert (await store.get_user("id-dr.b")).password_hash == "h"  # type: ignore[union-attr]
    # The kept session is still indexed: ending the user's sessions later finds it.
    assert await store.delete_user_sessions("id-dr.a") == 1


async def test_consultations_and_atomic_code_failures(store: Store) -> None:
    await store.create_consultation(consultation("c1", start=NOW + 100))
    await store.create_consultation(consultation("c2", start=NOW))
    await store.create_consultation(consultation("c3", doctor="other"))
    assert [c.id for c in await store.list_consultations("id-dr.a")] == ["c2", "c1"]
    assert len(await store.list_consultations(None)) == 3
    for expected in range(1, 5):
        c = await store.record_code_failure("c1", lock_at=5)
        assert c.code_failures == expected and not c.invite_locked
    assert (await store.record_code_failure("c1", lock_at=5)).invite_locked
    stored = await store.get_consultation("c1")
    assert stored is not None
    await store.update_consultation(stored.evolve(status="cancelled"))
    again = await store.get_consultation("c1")
    assert again is not None and again.status == "cancelled" and again.invite_locked


async def test_claim_once_and_counters_expire(store: Store) -> None:
    assert await store.claim_once("k", 10, NOW)
    assert not await store.claim_once("k", 10, NOW + 9)
    assert await store.claim_once("k", 10, NOW + 10)
    assert await store.incr("n", 60, NOW) == 1
    assert await store.incr("n", 60, NOW + 1) == 2
    assert await store.get_count("n", NOW + 59) == 2
    assert await store.get_count("n", NOW + 60) == 0
    assert await store.incr("n", 60, NOW + 61) == 1
    await store.delete_key("n")
    assert await store.get_count("n", NOW + 61) == 0


async def test_meta(store: Store) -> None:
    assert await store.get_meta("x") is None
    await store.set_meta("x", "1")
    await store.set_meta("x", "2")
    assert await store.get_meta("x") == "2"


async def test_meta_values_are_listed_by_prefix(store: Store) -> None:
    # The prefix matches as written: none of its characters is a wildcard in any backend
    # (SQL LIKE's % and _, Redis patterns' * ? [ ] and \).
    names = ["p:b", "p:a", "p:", "p", "q:a", "p%_*?[x]\\:1", "p%_*?[x]\\", "pX_*?[x]\\:2"]
    for n, name in enumerate(names):
        await store.set_meta(name, str(n))
    assert await store.list_meta("p:") == [("p:", "2"), ("p:a", "1"), ("p:b", "0")]
    assert await store.list_meta("p%_*?[x]\\") == [
        ("p%_*?[x]\\", "6"),
        ("p%_*?[x]\\:1", "5"),
    ]
    assert await store.list_meta("none:") == []
    assert len(await store.list_meta("")) == len(names)


async def test_audit_entries_chain_and_filter(store: Store) -> None:
    for i, action in enumerate(["login.success", "consultation.created", "login.success"]):
        await store.append_audit(
            AuditFields(
                at=NOW + i,
                actor=f"u{i % 2}",
                actor_role="doctor",
                action=action,
                target="t",
                outcome="success",
                address="127.0.0.1",
                details="",
            )
        )
    entries = await store.all_audit()
    assert [e.seq for e in entries] == [1, 2, 3]
    assert entries[0].prev_hash == GENESIS
    assert entries[1].prev_hash == entries[0].hash
    assert first_broken(entries) is None
    assert first_broken([entries[0], entries[2]]) is not None
    assert first_broken([entries[0], entries[1].evolve(actor="x"), entries[2]]) == (
        1,
        "entry 2 was modified",
    )
    found = await store.list_audit(AuditFilter(action="login.success"))
    assert [e.seq for e in found] == [1, 3]
    assert [e.seq for e in await store.list_audit(AuditFilter(actor="u1"))] == [2]
    assert [e.seq for e in await store.list_audit(AuditFilter(since=NOW + 1, until=NOW + 2))] == [2]


async def test_recordings_and_consent_receipts(store: Store) -> None:
    from signaling.models import ConsentReceipt, Recording

    first = Recording(
        id="r1",
        consultation_id="c1",
        doctor_id="d1",
        started_at=NOW,
        key_id="ab" * 8,
        file_name="r1.tcrec",
    )
    second = first.evolve(id="r2", started_at=NOW + 10, file_name="r2.tcrec", doctor_id="d2")
    await store.create_recording(first)
    await store.create_recording(second)
    assert [r.id for r in await store.list_recordings()] == ["r2", "r1"]
    assert [r.id for r in await store.list_recordings(doctor_id="d1")] == ["r1"]
    assert [r.id for r in await store.list_recordings(consultation_id="c1")] == ["r2", "r1"]
    done = first.evolve(
        status="complete", stopped_at=NOW + 5, size_bytes=1234, stop_reason="consent_withdrawn"
    )
    await store.update_recording(done)
    assert await store.get_recording("r1") == done
    assert await store.get_recording("absent") is None
    for i, decision in enumerate(["granted", "granted", "withdrawn"]):
        await store.add_consent_receipt(
            ConsentReceipt(
                id=f"k{i}",
                consultation_id="c1",
                recording_id="r1",
                role="doctor" if i == 0 else "patient",
                subject="s",
                decision=decision,  # type: ignore[arg-type]
                at=NOW + i,
            )
        )
    receipts = await store.list_consent_receipts("c1")
    assert [(r.role, r.decision) for r in receipts] == [
        ("doctor", "granted"),
        ("patient", "granted"),
        ("patient", "withdrawn"),
    ]
    assert await store.list_consent_receipts("c2") == []


async def test_audit_head_is_the_last_entry(store: Store) -> None:
    assert await store.audit_head() is None
    for i in range(3):
        last = await store.append_audit(
            AuditFields(
                at=NOW + i,
                actor="u",
                actor_role="doctor",
                action="a",
                target="t",
                outcome="success",
                address="",
                details="",
            )
        )
    assert await store.audit_head() == last


async def test_audit_pages_answer_what_the_filter_matches(store: Store) -> None:
    # However a backend reads a page (an index, a doctor's targets merged, the period, several
    # conditions at once, an offset, past a sequence number), it answers the filter's own test
    # over the whole trail, in sequence order, also where the clock went back between two
    # entries.
    for i in range(60):
        await store.append_audit(
            AuditFields(
                at=NOW + (i - 30 if i % 13 == 0 else i),
                actor=f"u{i % 3}",
                actor_role="doctor",
                action="a" if i % 2 else "b",
                target=f"t{i % 5}",
                outcome="failure" if i % 7 == 0 else "success",
                address="",
                details="",
            )
        )
    trail = await store.all_audit()
    queries = [
        {},
        {"actor": "u1"},
        {"action": "a", "outcome": "success"},
        {"outcome": "failure"},
        {"target": "t2"},
        {"targets": frozenset({"t1", "t3"})},
        {"targets": frozenset({"t1", "t3"}), "actor": "u2"},
        {"targets": frozenset({"t1"}), "target": "t1"},
        {"targets": frozenset({"t1"}), "target": "t2"},
        {"targets": frozenset()},
        {"since": NOW + 10},
        {"until": NOW + 20},
        {"since": NOW + 10, "until": NOW + 40},
        {"since": NOW + 10, "until": NOW + 40, "actor": "u0"},
        {"since": NOW - 30, "until": NOW + 1, "targets": frozenset({"t0", "t4"})},
    ]
    for conditions, newest_first, after in itertools.product(
        queries, (False, True), (None, 1, 20, 45, 60)
    ):
        matching = AuditFilter(**conditions)  # type: ignore[arg-type]
        ordered = list(reversed(trail)) if newest_first else trail
        past = [
            e
            for e in ordered
            if matching.matches(e)
            and (after is None or (e.seq < after if newest_first else e.seq > after))
        ]
        for offset, limit in ((0, 1), (0, 100), (3, 5)):
            query = AuditFilter(
                **conditions,  # type: ignore[arg-type]
                newest_first=newest_first,
                after_seq=after,
                offset=offset,
                limit=limit,
            )
            assert await store.list_audit(query) == past[offset : offset + limit], query


async def test_set_user_role_on_an_empty_store_changes_nothing(store: Store) -> None:
    # Nobody to promote: nothing written; nobody left as admin: refused.
    assert await store.set_user_role("absent", "admin")
    assert not await store.set_user_role("absent", "doctor")
    assert await store.count_users() == 0
