"""Closed sets are types (error codes, audit actions, roles): mypy --strict checks every place a
member is written, and these tests check what mypy cannot see: that each set and the table
built on it agree, and that a value which reaches them from data is still refused at run time."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args, get_type_hints

import pytest

from signaling.audit import trail as audit
from signaling.audit.trail import AuditTrail
from signaling.audit_actions import AUDITED_ACTIONS, AuditAction
from signaling.clock import ManualClock
from signaling.consultations import tokens
from signaling.consultations.tokens import RoomClaims
from signaling.errors import ERROR_CODES, KINDS, AppError, ErrorCode
from signaling.live import protocol
from signaling.live.protocol import PeerJoined
from signaling.models import SEAT_ROLES, STAFF_ROLES, SeatRole, StaffRole, User
from signaling.recording.consent import ConsentBook
from signaling.store.sqlite import SqliteStore


def test_every_error_code_has_its_kind_in_the_order_the_docs_list_them() -> None:
    assert ERROR_CODES == get_args(ErrorCode)
    assert list(KINDS) == list(ERROR_CODES)
    assert all(code == kind.code for code, kind in KINDS.items())


def test_an_error_code_outside_the_set_is_refused_at_run_time() -> None:
    code: Any = "no_such_code"  # as if it came from data: mypy cannot see it
    with pytest.raises(ValueError, match="unknown error code"):
        AppError(code)
    assert AppError("not_found").http_status == 404


def test_the_audited_actions_are_the_literal_and_the_trail_takes_only_them() -> None:
    assert AUDITED_ACTIONS == get_args(AuditAction)
    assert audit.AUDITED_ACTIONS is AUDITED_ACTIONS  # the trail's module re-exports the set
    assert len(set(AUDITED_ACTIONS)) == len(AUDITED_ACTIONS)
    # mypy checks the callers against these annotations; the entry points must carry them.
    assert get_type_hints(AuditTrail.record)["action"] == AuditAction
    assert get_type_hints(AppError.__init__)["code"] == ErrorCode


async def test_an_undeclared_audit_action_is_refused_and_writes_nothing(
    tmp_path: Path, clock: ManualClock
) -> None:
    store = SqliteStore(tmp_path / "audit.sqlite3")
    await store.open()
    try:
        trail = AuditTrail(store, clock)
        action: Any = "login.sucess"  # as if it came from data: mypy cannot see it
        with pytest.raises(ValueError, match="undeclared audit action"):
            await trail.record(action, actor="u1", actor_role="doctor")
        assert await store.all_audit() == []
        await trail.record("login.success", actor="u1", actor_role="doctor")
        assert [e.action for e in await store.all_audit()] == ["login.success"]
    finally:
        await store.close()


def test_staff_roles_and_seat_roles_are_two_sets_each_defined_once() -> None:
    assert STAFF_ROLES == get_args(StaffRole) == ("admin", "doctor", "assistant")
    assert SEAT_ROLES == get_args(SeatRole) == ("doctor", "patient")
    # Accounts hold a staff role; tokens, protocol messages and consent name a seat.
    assert get_type_hints(User)["role"] == StaffRole
    assert get_type_hints(RoomClaims)["role"] == SeatRole
    assert get_type_hints(PeerJoined)["role"] == SeatRole
    assert get_type_hints(ConsentBook.answer)["role"] == SeatRole
    for module in (protocol, tokens):
        assert not hasattr(module, "Role") and not hasattr(module, "ParticipantRole"), module
