"""Recording consent rules, enforced by the server whatever the clients claim."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from signaling.clock import ManualClock
from signaling.errors import AppError
from signaling.recording.consent import ConsentBook, ConsentState
from signaling.store.sqlite import SqliteStore


@pytest.fixture
async def book(tmp_path: Path, clock: ManualClock) -> AsyncIterator[ConsentBook]:
    store = SqliteStore(tmp_path / "db.sqlite3")
    await store.open()
    yield ConsentBook("c1", store, clock)
    await store.close()


async def test_recording_may_start_only_when_both_granted(book: ConsentBook) -> None:
    rid = book.request("doctor")
    assert not await book.answer("doctor", "user:d", True)
    with pytest.raises(AppError) as info:
        book.started()
    assert info.value.code == "consent_required"
    assert not book.may_record()
    assert await book.answer("patient", "patient:c1", True)
    book.started()
    assert book.may_record()
    receipts = await book.store.list_consent_receipts("c1")
    assert [(r.role, r.decision, r.recording_id) for r in receipts] == [
        ("doctor", "granted", rid),
        ("patient", "granted", rid),
    ]


async def test_one_consent_alone_records_nothing(book: ConsentBook) -> None:
    book.request("doctor")
    await book.answer("doctor", "user:d", True)
    # The doctor saying yes twice is still one role's consent.
    assert not await book.answer("doctor", "user:d", True)
    assert not book.may_record()


async def test_a_decline_ends_the_request(book: ConsentBook) -> None:
    book.request("doctor")
    await book.answer("doctor", "user:d", True)
    assert not await book.answer("patient", "patient:c1", False)
    assert book.state is ConsentState.IDLE
    with pytest.raises(AppError):
        await book.answer("patient", "patient:c1", True)  # nothing asked any more
    decisions = [r.decision for r in await book.store.list_consent_receipts("c1")]
    assert decisions == ["granted", "declined"]


async def test_withdrawal_by_either_side_stops_the_recording(book: ConsentBook) -> None:
    for withdrawing in ("patient", "doctor"):
        book.request("doctor")
        await book.answer("doctor", "user:d", True)
        await book.answer("patient", "patient:c1", True)
        book.started()
        assert await book.withdraw(withdrawing, "s")
        assert not book.may_record()
        assert book.state is ConsentState.IDLE
    assert [r.decision for r in await book.store.list_consent_receipts("c1")][-1] == "withdrawn"


async def test_only_the_doctor_asks_and_only_known_roles_answer(book: ConsentBook) -> None:
    with pytest.raises(AppError):
        book.request("patient")
    book.request("doctor")
    admin: Any = "admin"  # as if it came from data: mypy cannot see it
    with pytest.raises(AppError):
        await book.answer(admin, "user:a", True)
    with pytest.raises(AppError):
        book.request("doctor")  # already asked
