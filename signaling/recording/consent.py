"""Recording consent: the server alone decides when a recording may run.

One ``ConsentBook`` per room. The doctor asks; each participant answers for their own role
only (the role comes from the authenticated connection, never from a message, so a client
that claims the other side's consent changes nothing). Recording may start only when both
have granted consent for the current request; a withdrawal by either side, at any time,
stops it. Every answer is kept as a receipt (who, role, when, which consultation, which
recording).

States::

    idle ──request──► asked ──both granted──► recording ──withdraw / stop──► idle
      ▲                 │                                                  │
      └──decline / withdraw / cancel──────────────────────────────────────┘
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum

from signaling.clock import Clock
from signaling.errors import AppError
from signaling.models import SEAT_ROLES, ConsentDecision, ConsentReceipt, SeatRole
from signaling.store.base import Store


class ConsentState(StrEnum):
    IDLE = "idle"
    ASKED = "asked"
    RECORDING = "recording"


@dataclass
class ConsentBook:
    consultation_id: str
    store: Store
    clock: Clock
    state: ConsentState = ConsentState.IDLE
    # The recording the current request is about: receipts name it from the first answer.
    recording_id: str = ""
    granted: dict[SeatRole, str] = field(default_factory=dict)  # role -> subject

    def _require(self, *states: ConsentState) -> None:
        if self.state not in states:
            raise AppError("invalid_state", details={"consent": self.state.value})

    async def _receipt(self, role: SeatRole, subject: str, decision: ConsentDecision) -> None:
        await self.store.add_consent_receipt(
            ConsentReceipt(
                id=uuid.uuid4().hex,
                consultation_id=self.consultation_id,
                recording_id=self.recording_id,
                role=role,
                subject=subject,
                decision=decision,
                at=self.clock.now(),
            )
        )

    def request(self, role: SeatRole) -> str:
        """The doctor asks to record; answers the id the recording will have."""
        if role != "doctor":
            raise AppError("forbidden", "Only the doctor asks to record.")
        self._require(ConsentState.IDLE)
        self.state = ConsentState.ASKED
        self.recording_id = uuid.uuid4().hex
        self.granted.clear()
        return self.recording_id

    async def answer(self, role: SeatRole, subject: str, granted: bool) -> bool:
        """Record ``role``'s answer; True when both have now granted (recording may start)."""
        if role not in SEAT_ROLES:
            raise AppError("forbidden")
        self._require(ConsentState.ASKED)
        await self._receipt(role, subject, "granted" if granted else "declined")
        if not granted:
            self._reset()
            return False
        self.granted[role] = subject
        return all(r in self.granted for r in SEAT_ROLES)

    def started(self) -> None:
        self._require(ConsentState.ASKED)
        if not all(r in self.granted for r in SEAT_ROLES):
            raise AppError("consent_required")
        self.state = ConsentState.RECORDING

    async def withdraw(self, role: SeatRole, subject: str) -> bool:
        """Either side withdraws; True when a running recording must stop now."""
        if role not in SEAT_ROLES:
            raise AppError("forbidden")
        if self.state is ConsentState.IDLE:
            return False
        was_recording = self.state is ConsentState.RECORDING
        await self._receipt(role, subject, "withdrawn")
        self._reset()
        return was_recording

    async def stop(self, role: SeatRole, subject: str) -> None:
        """Either side stops a running recording, consent kept: receipt ``stopped``."""
        if role not in SEAT_ROLES:
            raise AppError("forbidden")
        self._require(ConsentState.RECORDING)
        await self._receipt(role, subject, "stopped")
        self._reset()

    def may_record(self) -> bool:
        return self.state is ConsentState.RECORDING and all(r in self.granted for r in SEAT_ROLES)

    def _reset(self) -> None:
        self.state = ConsentState.IDLE
        self.granted.clear()
