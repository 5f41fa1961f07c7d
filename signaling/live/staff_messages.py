"""Messages from the staff to a waiting patient: which presets exist and what a free text may
hold.

A preset travels as its id, so that the patient's page words it in the patient's own language
(web/static/i18n-dict-waiting-message.js), whatever the sender's. A free text travels as
typed, once checked here: short, one line, no control character (a line break, an escape
sequence or a bidirectional override could make the waiting room show something else than
was written). Neither is stored anywhere: the room relays the message and forgets it, and the
audit entry says which preset, or that it was a free text and how long, never the text.
"""

from __future__ import annotations

import unicodedata
from typing import Literal, get_args

from signaling.errors import AppError
from signaling.live.protocol import StaffMessage, StaffSender

StaffPreset = Literal[
    "soon_10",  # "I'll be with you in about 10 minutes."
    "few_minutes",  # "I'll be with you in a few minutes."
    "running_late",  # "I'm running late; thank you for waiting."
    "check_microphone",  # "Please check your microphone."
    "check_camera",  # "Please check your camera."
]
STAFF_PRESETS: tuple[StaffPreset, ...] = get_args(StaffPreset)

# A tweet's length: a sentence or two, read at a glance in the waiting room.
MAX_TEXT_CHARS = 280

# Unicode categories refused in a free text: controls (Cc: line breaks, escapes), format
# characters (Cf: bidirectional overrides, zero-width characters), and the line and paragraph
# separators (Zl, Zp).
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def checked_text(text: str) -> str:
    """The free text as relayed (surrounding spaces removed), or ``invalid_body`` saying why.
    The error never quotes the text."""
    text = text.strip()
    if not text:
        raise AppError("invalid_body", "text: must not be blank")
    if len(text) > MAX_TEXT_CHARS:
        raise AppError("invalid_body", f"text: at most {MAX_TEXT_CHARS} characters")
    if any(unicodedata.category(char) in _REFUSED_CATEGORIES for char in text):
        raise AppError(
            "invalid_body",
            "text: one line of plain text (no line break, control or formatting character)",
        )
    return text


def staff_message(
    preset: StaffPreset | None, text: str | None, from_role: StaffSender, sent_at: float
) -> StaffMessage:
    """The message to relay: exactly one of a preset id (checked by the request's type) and
    a free text."""
    if (preset is None) == (text is None):
        raise AppError("invalid_body", "give either preset or text")
    if preset is not None:
        return StaffMessage(from_role=from_role, sent_at=sent_at, preset=preset)
    assert text is not None
    return StaffMessage(from_role=from_role, sent_at=sent_at, text=checked_text(text))
